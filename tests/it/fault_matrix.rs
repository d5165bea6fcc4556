//! The fault matrix of the long-running modes: `serve` and `update` under every endpoint
//! fault, paired with every hardware fault and every stopping signal.
//!
//! Each endpoint fault runs once per mode; the (hardware fault, signal) pairs are spread so
//! that every pair occurs in each mode (a pairwise covering design: 10 runs per mode instead
//! of 90). After each run: the last good credentials were kept (served, or left in the file)
//! and never past their expiry, no file was corrupted, the process stopped within a bound,
//! and every log line is one `ra-signer:` line with no control character.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::serve::{Daemon, imds_credentials, role_name};

/// What the endpoint does once the daemon has its first credentials.
#[derive(Clone, Copy, Debug)]
enum Endpoint {
    /// The endpoint is gone: connections are refused.
    Refused,
    /// The connection is dropped without an answer (a reset).
    Reset,
    Status5xx,
    Throttled,
    /// Headers come late (a delay past the request timeout).
    SlowHeaders,
    EndlessBody,
    /// Headers at once, then a body that trickles for ever.
    SlowBody,
    Garbage,
    Expired,
    /// Credentials carrying an INI section.
    Hostile,
}

impl Endpoint {
    const ALL: [Endpoint; 10] = [
        Endpoint::Refused,
        Endpoint::Reset,
        Endpoint::Status5xx,
        Endpoint::Throttled,
        Endpoint::SlowHeaders,
        Endpoint::EndlessBody,
        Endpoint::Garbage,
        Endpoint::Expired,
        Endpoint::Hostile,
        Endpoint::SlowBody,
    ];

    fn fault(self) -> Option<&'static str> {
        Some(match self {
            Endpoint::Refused => return None,
            Endpoint::Reset => "close",
            Endpoint::Status5xx => "status=503",
            Endpoint::Throttled => "throttle",
            Endpoint::SlowHeaders => "delay=3000",
            Endpoint::EndlessBody => "endless-body",
            Endpoint::SlowBody => "slow-body",
            Endpoint::Garbage => "garbage",
            Endpoint::Expired => "expired",
            Endpoint::Hostile => "hostile",
        })
    }
}

/// What the key's hardware does meanwhile.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Hardware {
    /// A file key: no hardware to fail.
    Steady,
    /// swtpm stopped (SIGSTOP) during the fault, resumed after.
    TpmStopped,
    /// swtpm restarted (a power cycle: every transient object gone) during the fault.
    TpmRestarted,
}

const HARDWARE: [Hardware; 3] = [
    Hardware::Steady,
    Hardware::TpmStopped,
    Hardware::TpmRestarted,
];
const SIGNALS: [&str; 3] = ["HUP", "TERM", "INT"];

/// One attempt per refresh, so each failure is one log line; refreshes are asked for with
/// SIGUSR1.
const FAST: [&str; 4] = ["--request-timeout", "1", "--max-attempts", "1"];

/// The key a run signs with, and what holds it.
enum Key {
    File(Box<World>, Leaf),
    #[cfg(feature = "tpm")]
    Tpm(crate::tpm::TpmWorld),
}

impl Key {
    fn new(hardware: Hardware, name: &str) -> Key {
        match hardware {
            Hardware::Steady => {
                let w = World::new(&[]);
                let leaf = w.leaf(name, KeyKind::P256);
                Key::File(Box::new(w), leaf)
            }
            #[cfg(feature = "tpm")]
            Hardware::TpmStopped | Hardware::TpmRestarted => Key::Tpm(crate::tpm::TpmWorld::new()),
            #[cfg(not(feature = "tpm"))]
            _ => unreachable!("TPM cases need the tpm feature"),
        }
    }

    fn home(&self) -> PathBuf {
        match self {
            Key::File(w, _) => w.dir.path().to_owned(),
            #[cfg(feature = "tpm")]
            Key::Tpm(t) => t.dir.path().to_owned(),
        }
    }

    fn emulator(&self) -> &Emulator {
        match self {
            Key::File(w, _) => &w.emulator,
            #[cfg(feature = "tpm")]
            Key::Tpm(t) => &t.emulator,
        }
    }

    fn command(&self, mode: &str, extra: &[&str]) -> Command {
        match self {
            Key::File(w, leaf) => {
                let mut cmd = ra_signer(w.dir.path());
                cmd.arg(mode)
                    .args(leaf.file_args())
                    .args(w.emulator.session_args())
                    .args(extra);
                cmd
            }
            #[cfg(feature = "tpm")]
            Key::Tpm(t) => {
                let mut cmd = t.subcommand(mode, "ossl-p256", "ossl-p256", true, extra);
                // A stopped TPM fails a refresh in 2 s instead of 60.
                cmd.env("RA_SIGNER_TPM_TIMEOUT", "2");
                cmd
            }
        }
    }

    fn hardware_fault(&self, hardware: Hardware) {
        #[cfg(feature = "tpm")]
        if let Key::Tpm(t) = self {
            match hardware {
                Hardware::TpmStopped => t.tpm.pause(),
                Hardware::TpmRestarted => t.tpm.restart(),
                Hardware::Steady => {}
            }
        }
        let _ = hardware;
    }

    fn hardware_recovers(&self, hardware: Hardware) {
        #[cfg(feature = "tpm")]
        if let (Key::Tpm(t), Hardware::TpmStopped) = (self, hardware) {
            t.tpm.resume();
        }
        let _ = hardware;
    }
}

/// Every line is one `ra-signer:` line: an endpoint cannot forge a line or move the cursor.
fn assert_clean_log(d: &Daemon, case: &str) {
    let log = d.stderr();
    for line in log.lines() {
        assert!(
            line.starts_with("ra-signer: ") || line.starts_with("hint: "),
            "{case}: a line not ours: {line:?}\n{log}"
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{case}: a control character: {line:?}"
        );
    }
}

/// A stopped TPM is named as the cause of a failed refresh (it fails before the request).
fn assert_hardware_seen(d: &Daemon, hardware: Hardware, case: &str) {
    if hardware == Hardware::TpmStopped {
        assert!(
            d.stderr().contains("did not answer within 2 s"),
            "{case}: no TPM timeout in the log:\n{}",
            d.stderr()
        );
    }
}

/// Waits until `d` logs `needle` `n` times.
/// The case of index `i` (0..10): its endpoint fault, hardware fault and signal. Every
/// (hardware, signal) pair occurs at least once.
fn case(i: usize) -> (Endpoint, Hardware, &'static str) {
    (Endpoint::ALL[i], HARDWARE[i % 3], SIGNALS[(i / 3) % 3])
}

fn serve_case(i: usize) {
    let (endpoint, hardware, signal) = case(i);
    let name = format!("serve {endpoint:?} × {hardware:?} × SIG{signal}");
    let key = Key::new(hardware, &format!("matrix-serve-{i}"));
    let mut extra = vec!["--port", "0"];
    extra.extend(FAST);
    let mut d = Daemon::spawn(key.command("serve", &extra), true);
    let (status, good) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200, "{name}: {good}");

    match endpoint.fault() {
        Some(f) => key.emulator().set_faults(&[f]),
        None => key.emulator().stop(),
    }
    key.hardware_fault(hardware);
    let failed = format!("of role {} failed", role_name());
    for _ in 0..2 {
        d.refresh_now(&failed);
    }
    assert_hardware_seen(&d, hardware, &name);
    // The last good credentials, still valid, whatever the endpoint or the TPM did.
    let (status, now) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200, "{name}: {now}");
    assert_eq!(now["AccessKeyId"], good["AccessKeyId"], "{name}");
    assert_eq!(now["SecretAccessKey"], good["SecretAccessKey"], "{name}");
    let expiration = now["Expiration"].as_str().expect("Expiration");
    assert!(
        expiration > ra_signer::time::UtcTime::now().rfc3339().as_str(),
        "{name}: served past expiry: {expiration}"
    );

    key.hardware_recovers(hardware);
    if endpoint.fault().is_some() {
        key.emulator().set_faults(&[]);
        d.refresh_now("refreshed the credentials of role");
        let (status, fresh) = imds_credentials(&d.url(), role_name());
        assert_eq!(status, 200, "{name}: {fresh}");
        assert_ne!(
            fresh["AccessKeyId"], good["AccessKeyId"],
            "{name}: recovered"
        );
    }

    let (status, took) = d.signal(signal, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{name}: {status}\n{}", d.stderr());
    assert!(took < Duration::from_secs(3), "{name}: {took:?}");
    let late = d.lines_after(&format!("SIG{signal}: shutting down"));
    assert!(
        late.iter().all(|l| !l.contains("refresh")),
        "{name}: a refresh after the signal: {late:?}"
    );
    assert_clean_log(&d, &name);
}

fn update_case(i: usize) {
    let (endpoint, hardware, signal) = case(i);
    let name = format!("update {endpoint:?} × {hardware:?} × SIG{signal}");
    let key = Key::new(hardware, &format!("matrix-update-{i}"));
    let file = key.home().join("aws/credentials");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("dir");
    let others =
        "[other]\r\naws_access_key_id = AKIAOTHER\r\naws_secret_access_key = other/secret\r\n";
    std::fs::write(&file, others).expect("write");
    let mut extra = vec!["--profile", "matrix"];
    extra.extend(FAST);
    let mut cmd = key.command("update", &extra);
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", &file);
    let mut d = Daemon::spawn(cmd, false);
    d.wait_for("wrote profile [matrix]", Duration::from_secs(30));
    let good = std::fs::read(&file).expect("written");

    match endpoint.fault() {
        Some(f) => key.emulator().set_faults(&[f]),
        None => key.emulator().stop(),
    }
    key.hardware_fault(hardware);
    for _ in 0..2 {
        d.refresh_now("failed:");
    }
    assert_hardware_seen(&d, hardware, &name);
    // Nothing the endpoint sent reached the file: it is the last good one, byte for byte.
    assert_eq!(std::fs::read(&file).expect("kept"), good, "{name}");

    key.hardware_recovers(hardware);
    if endpoint.fault().is_some() {
        key.emulator().set_faults(&[]);
        d.refresh_now("refreshed profile [matrix]");
    }

    let (status, took) = d.signal(signal, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{name}: {status}\n{}", d.stderr());
    assert!(took < Duration::from_secs(3), "{name}: {took:?}");
    let text = std::fs::read_to_string(&file).expect("file");
    assert!(
        text.contains(
            "[other]\r\naws_access_key_id = AKIAOTHER\r\naws_secret_access_key = other/secret\r\n"
        ),
        "{name}: the other profile was touched: {text:?}"
    );
    assert_eq!(text.matches("[matrix]").count(), 1, "{name}: {text:?}");
    assert!(!text.contains("[evil]"), "{name}: {text:?}");
    ra_signer::credentials_file::parse(&text)
        .unwrap_or_else(|e| panic!("{name}: botocore would refuse the file: {e}"));
    let late = d.lines_after(&format!("SIG{signal}: stopping"));
    assert!(
        late.iter().all(|l| !l.contains("refresh")),
        "{name}: a refresh after the signal: {late:?}"
    );
    assert_clean_log(&d, &name);
}

macro_rules! matrix {
    ($($serve:ident, $update:ident, $i:expr, $tpm:meta;)*) => {$(
        #[test]
        #[$tpm]
        fn $serve() {
            serve_case($i);
        }

        #[test]
        #[$tpm]
        fn $update() {
            update_case($i);
        }
    )*};
}

// Index i: the endpoint fault of Endpoint::ALL[i], the hardware fault HARDWARE[i % 3], the
// signal SIGNALS[(i / 3) % 3]. A TPM case needs the tpm feature.
matrix! {
    serve_refused_file_hup, update_refused_file_hup, 0, cfg(all());
    serve_reset_tpm_stopped_hup, update_reset_tpm_stopped_hup, 1, cfg(feature = "tpm");
    serve_5xx_tpm_restarted_hup, update_5xx_tpm_restarted_hup, 2, cfg(feature = "tpm");
    serve_throttled_file_term, update_throttled_file_term, 3, cfg(all());
    serve_slow_headers_tpm_stopped_term, update_slow_headers_tpm_stopped_term, 4, cfg(feature = "tpm");
    serve_endless_body_tpm_restarted_term, update_endless_body_tpm_restarted_term, 5, cfg(feature = "tpm");
    serve_garbage_file_int, update_garbage_file_int, 6, cfg(all());
    serve_expired_tpm_stopped_int, update_expired_tpm_stopped_int, 7, cfg(feature = "tpm");
    serve_hostile_tpm_restarted_int, update_hostile_tpm_restarted_int, 8, cfg(feature = "tpm");
    serve_slow_body_file_hup, update_slow_body_file_hup, 9, cfg(all());
}
