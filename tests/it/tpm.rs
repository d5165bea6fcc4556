//! The TPM backend end to end: the real `ra-signer` binary against a private swtpm (keys
//! made by tpm2-openssl and tpm2-tools through `softhsm/swtpm-provision.sh`) and the real
//! `ra-emulator`, and boto3 through `credential_process`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::swtpm::{Launch, Swtpm, fixture};
use crate::common::*;

/// A provisioned swtpm and an emulator trusting the fixture's root CA.
pub(crate) struct TpmWorld {
    pub tpm: Swtpm,
    pub emulator: Emulator,
    pub dir: tempfile::TempDir,
}

impl TpmWorld {
    pub(crate) fn new() -> TpmWorld {
        TpmWorld::with(Swtpm::provisioned())
    }

    fn with(tpm: Swtpm) -> TpmWorld {
        let dir = tempdir();
        let emulator = Emulator::start(dir.path(), &[&fixture().files.join("ca/root.pem")], &[]);
        TpmWorld { tpm, emulator, dir }
    }

    /// `ra-signer credential-process` with certificate `cert`, key `key` (a fixture key
    /// name, `handle:…`, or a path), the chain, the TCTI (unless `tcti` is false), and
    /// `extra`.
    fn command(&self, cert: &str, key: &str, tcti: bool, extra: &[&str]) -> Command {
        self.subcommand("credential-process", cert, key, tcti, extra)
    }

    /// [`TpmWorld::command`] for another subcommand (`update`, `serve`).
    pub(crate) fn subcommand(
        &self,
        subcommand: &str,
        cert: &str,
        key: &str,
        tcti: bool,
        extra: &[&str],
    ) -> Command {
        let fx = fixture();
        let key_arg = if key.starts_with("handle:") || key.contains('/') {
            key.to_owned()
        } else {
            fx.files.join(format!("{key}.key")).display().to_string()
        };
        let mut cmd = ra_signer(self.dir.path());
        cmd.arg(subcommand)
            .arg("--certificate")
            .arg(fx.files.join(format!("{cert}.pem")))
            .arg("--intermediates")
            .arg(fx.files.join("ca/int.pem"))
            .arg("--private-key")
            .arg(key_arg);
        if tcti {
            cmd.arg("--tpm-tcti").arg(self.tpm.tcti());
        }
        cmd.args(self.emulator.session_args()).args(extra);
        cmd
    }

    pub(crate) fn run(
        &self,
        cert: &str,
        key: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = self.command(cert, key, true, extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }
}

/// Certificate, key, extra flags, environment.
type Case<'a> = (&'a str, &'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[test]
fn credential_process_with_every_kind_of_tpm_key() {
    let w = TpmWorld::new();
    let pw_file = w.dir.path().join("key-password");
    std::fs::write(&pw_file, "osslpw\n").expect("write");
    let pw_arg = pw_file.display().to_string();
    let cases: Vec<Case<'_>> = vec![
        // tpm2-openssl keys under the owner hierarchy.
        ("ossl-p256", "ossl-p256", vec![], vec![]),
        ("ossl-p384", "ossl-p384", vec![], vec![]),
        ("ossl-rsa", "ossl-rsa", vec![], vec![]),
        // tpm2-tools keys under a persistent SRK; tpm2_encodeobject marks them emptyAuth
        // FALSE, so say there is no password.
        (
            "tools-rsa",
            "tools-rsa",
            vec!["--no-tpm-key-password"],
            vec![],
        ),
        (
            "tools-p384",
            "tools-p384",
            vec!["--no-tpm-key-password"],
            vec![],
        ),
        // Passwords from a file, the environment, and for the parent.
        (
            "ossl-p256-pw",
            "ossl-p256-pw",
            vec!["--tpm-key-password-file", &pw_arg],
            vec![],
        ),
        (
            "tools-p256-pw",
            "tools-p256-pw",
            vec![],
            vec![("RA_SIGNER_TPM_KEY_PASSWORD", "toolspw")],
        ),
        (
            "srkpw-p256",
            "srkpw-p256",
            vec!["--no-tpm-key-password"],
            vec![("RA_SIGNER_TPM_PARENT_PASSWORD", "srkpw")],
        ),
        (
            "srkpw-p256",
            "srkpw-p256",
            vec!["--no-tpm-key-password"],
            vec![("TPM2OPENSSL_PARENT_AUTH", "srkpw")],
        ),
        // Persistent keys.
        ("handle-p256", "handle:0x81000101", vec![], vec![]),
        ("handle-p384", "handle:81000103", vec![], vec![]),
        (
            "handle-rsa-pw",
            "handle:0x81000102",
            vec![],
            vec![("RA_SIGNER_TPM_KEY_PASSWORD", "handlepw")],
        ),
    ];
    for (cert, key, extra, env) in &cases {
        let out = w.run(cert, key, extra, env);
        assert_process_json(&out);
    }
    assert_eq!(
        w.emulator.stats()["issued"].as_u64(),
        Some(cases.len() as u64)
    );
}

#[test]
fn tpm_from_the_environment() {
    let w = TpmWorld::new();
    for var in ["TPM2TOOLS_TCTI", "TSS2_TCTI"] {
        let mut cmd = w.command("ossl-p256", "ossl-p256", false, &[]);
        cmd.env(var, w.tpm.tcti());
        assert_process_json(&run(&mut cmd));
    }
}

#[test]
fn password_errors_are_clear_and_not_retried() {
    let w = TpmWorld::new();
    let out = w.run(
        "handle-rsa-pw",
        "handle:0x81000102",
        &[],
        &[("RA_SIGNER_TPM_KEY_PASSWORD", "wrong")],
    );
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("TPM_RC_AUTH_FAIL"), "{err}");
    // A tpm2-tools key marked emptyAuth FALSE, no password given, no terminal.
    let out = w.run("tools-p256", "tools-p256", &[], &[]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("--no-tpm-key-password"), "{err}");
    // A password for a key that has none.
    let out = w.run(
        "ossl-p256",
        "ossl-p256",
        &["--tpm-key-password", "surplus"],
        &[],
    );
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("emptyAuth"), "{}", stderr(&out));
    // The parent password missing.
    let out = w.run("srkpw-p256", "srkpw-p256", &["--no-tpm-key-password"], &[]);
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("RA_SIGNER_TPM_PARENT_PASSWORD"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.emulator.stats()["issued"].as_u64(), Some(0));
}

#[test]
fn unusable_keys_and_files() {
    let w = TpmWorld::new();
    let out = w.run(
        "decrypt-rsa",
        "decrypt-rsa",
        &["--no-tpm-key-password"],
        &[],
    );
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("decrypt-only"), "{}", stderr(&out));

    let pem = std::fs::read_to_string(fixture().files.join("ossl-p256.key")).expect("read");
    let der = base64_decode(&pem);
    let bad = w.dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            pem.as_bytes()[..pem.len() / 2].to_vec(),
            "no END line",
        ),
        (
            "wrong-oid",
            {
                let mut d = der.clone();
                // 2.23.133.10.1.3 → 2.23.133.10.1.4 (importable).
                let at = d
                    .windows(6)
                    .position(|w| w == [0x67, 0x81, 0x05, 0x0a, 0x01, 0x03])
                    .expect("oid");
                d[at + 5] = 0x04;
                pem_wrap(&d).into_bytes()
            },
            "importable",
        ),
        (
            "wrong-length",
            {
                let mut d = der;
                // The pubkey's TPM2B size prefix, one too large.
                let at = d
                    .windows(2)
                    .position(|w| w == [0x04, 0x58])
                    .expect("pubkey")
                    + 3;
                d[at] += 1;
                pem_wrap(&d).into_bytes()
            },
            "size prefix",
        ),
    ];
    for (name, contents, want) in cases {
        let path = bad.join(format!("{name}.key"));
        std::fs::write(&path, contents).expect("write");
        let key = path.display().to_string();
        let out = run(&mut w.command("ossl-p256", &key, true, &[]));
        assert_exit(&out, 3);
        let err = stderr(&out);
        assert!(
            err.contains("cannot be used") && err.contains(want),
            "{name}: {err}"
        );
    }
}

fn base64_decode(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

fn pem_wrap(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN TSS2 PRIVATE KEY-----\n{}\n-----END TSS2 PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[test]
fn unreachable_and_silent_tpms_fail_fast() {
    let w = TpmWorld::new();
    // Nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let start = Instant::now();
    let out = w.run(
        "ossl-p256",
        "ossl-p256",
        &["--tpm-tcti", &format!("swtpm:host=127.0.0.1,port={port}")],
        &[],
    );
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the TPM") && err.contains("--tpm-tcti"),
        "{err}"
    );
    // No device.
    let mut no_device = w.command("ossl-p256", "ossl-p256", false, &[]);
    no_device.env("TPM_DEVICE", "/dev/no-such-tpm");
    let out = run(&mut no_device);
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("no TPM device at /dev/no-such-tpm"),
        "{}",
        stderr(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(10));

    // Something accepts the connection and never answers (a swtpm busy with another
    // client behaves so): the watchdog ends it.
    let (silent, ctrl) = (0..100)
        .find_map(|_| {
            let first = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let port = first.local_addr().ok()?.port();
            let second = std::net::TcpListener::bind(("127.0.0.1", port.checked_add(1)?)).ok()?;
            Some((first, second))
        })
        .expect("two adjacent free ports");
    let silent_port = silent.local_addr().expect("addr").port();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().take(4) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(30));
        drop(ctrl);
    });
    let start = Instant::now();
    let out = w.run(
        "ossl-p256",
        "ossl-p256",
        &[
            "--tpm-tcti",
            &format!("swtpm:host=127.0.0.1,port={silent_port}"),
        ],
        &[("RA_SIGNER_TPM_TIMEOUT", "2")],
    );
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("did not answer within 2 s"),
        "{}",
        stderr(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    drop(hold);
}

#[test]
fn boto3_gets_credentials_from_a_tpm_key() {
    let w = TpmWorld::new();
    let fx = fixture();
    let mut args: Vec<String> = vec![
        "--certificate".into(),
        fx.files.join("handle-p384.pem").display().to_string(),
        "--intermediates".into(),
        fx.files.join("ca/int.pem").display().to_string(),
        "--private-key".into(),
        "handle:0x81000103".into(),
        "--tpm-tcti".into(),
        w.tpm.tcti(),
    ];
    args.extend(w.emulator.session_args());
    let config = crate::real_clients::aws_config(w.dir.path(), &args);
    let creds = crate::real_clients::boto3_credentials(w.dir.path(), &config, &[]);
    assert!(
        creds["AccessKeyId"]
            .as_str()
            .is_some_and(|s| s.starts_with("ASIA")),
        "{creds}"
    );
}

#[test]
fn keygen_tpm_key_file_csr_certificate_and_credentials() {
    let tpm = Swtpm::fresh();
    let dir = tempdir();
    let d = |name: &str| dir.path().join(name);
    let key = d("host.tss2.pem");
    let csr = d("host.csr");
    let mut cmd = ra_signer(dir.path());
    cmd.args([
        "keygen",
        "--tpm",
        "--key-type",
        "p256",
        "--subject",
        "CN=tpm-host,O=ra-signer tests",
    ])
    .arg("--out")
    .arg(&key)
    .arg("--csr-out")
    .arg(&csr)
    .args(["--tpm-tcti", &tpm.tcti()]);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    assert!(
        std::fs::read_to_string(&key)
            .expect("key")
            .contains("BEGIN TSS2 PRIVATE KEY")
    );
    let verify = openssl(&[
        "req",
        "-verify",
        "-noout",
        "-in",
        csr.to_str().expect("utf-8"),
    ]);
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("verify OK")
            || String::from_utf8_lossy(&verify.stdout).contains("verify OK")
    );

    // A throwaway CA issues the certificate from the CSR; the emulator trusts that CA.
    let (ca_key, ca_pem, cert) = (d("ca.key"), d("ca.pem"), d("host.pem"));
    let p = |x: &Path| x.to_str().expect("utf-8").to_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-sha256",
        "-days",
        "2",
        "-subj",
        "/CN=keygen test CA",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca_pem),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca_pem),
        "-CAkey",
        &p(&ca_key),
        "-set_serial",
        "4242",
        "-days",
        "1",
        "-sha256",
        "-out",
        &p(&cert),
    ]);
    let emulator = Emulator::start(dir.path(), &[&ca_pem], &[]);
    let mut cmd = ra_signer(dir.path());
    cmd.arg("credential-process")
        .arg("--certificate")
        .arg(&cert)
        .arg("--private-key")
        .arg(&key)
        .args(["--tpm-tcti", &tpm.tcti(), "--no-tpm-key-password"])
        .args(emulator.session_args());
    assert_process_json(&run(&mut cmd));

    // The PKCS#11-only flags and the TPM flags do not mix; RSA-3072 is not offered.
    let out = run(ra_signer(dir.path())
        .args([
            "keygen",
            "--tpm",
            "--key-type",
            "rsa3072",
            "--subject",
            "CN=x",
        ])
        .arg("--out")
        .arg(d("x.pem")));
    assert_exit(&out, 2);
    let out = run(ra_signer(dir.path()).args(["keygen", "--tpm", "--import-cert", "x.pem"]));
    assert_exit(&out, 2);
}

/// `TPM_DEVICE=<swtpm UNIX socket>`, the Go helper's form, with no `--tpm-tcti`: key files
/// under the owner hierarchy and under a persistent SRK, a persistent key with a password,
/// `--tpm-tcti device:SOCKET`, and `update --once`.
#[test]
fn tpm_device_names_a_unix_socket_swtpm() {
    let w = TpmWorld::with(Launch::provisioned().unix_socket().start());
    let socket = w.tpm.socket().display().to_string();
    let cases: Vec<Case<'_>> = vec![
        ("ossl-p256", "ossl-p256", vec![], vec![]),
        ("ossl-rsa", "ossl-rsa", vec![], vec![]),
        (
            "tools-p384",
            "tools-p384",
            vec!["--no-tpm-key-password"],
            vec![],
        ),
        (
            "handle-rsa-pw",
            "handle:0x81000102",
            vec![],
            vec![("RA_SIGNER_TPM_KEY_PASSWORD", "handlepw")],
        ),
    ];
    for (cert, key, extra, env) in &cases {
        let mut cmd = w.command(cert, key, false, extra);
        cmd.env("TPM_DEVICE", &socket);
        for (k, v) in env {
            cmd.env(k, v);
        }
        assert_process_json(&run(&mut cmd));
    }
    let tcti = format!("device:{socket}");
    let mut cmd = w.command(
        "handle-p256",
        "handle:0x81000101",
        false,
        &["--tpm-tcti", &tcti],
    );
    assert_process_json(&run(&mut cmd));

    let file = w.dir.path().join("credentials");
    let mut cmd = w.subcommand(
        "update",
        "ossl-p256",
        "ossl-p256",
        false,
        &["--once", "--profile", "tpm-socket"],
    );
    cmd.env("TPM_DEVICE", &socket)
        .env("AWS_SHARED_CREDENTIALS_FILE", &file);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    let written = std::fs::read_to_string(&file).expect("credentials file");
    assert!(
        written.contains("[tpm-socket]") && written.contains("aws_session_token"),
        "{written}"
    );
    assert_eq!(
        w.emulator.stats()["issued"].as_u64(),
        Some(cases.len() as u64 + 2)
    );
}

/// The relay adds no TPM command: one credential costs the same commands, in the same
/// order, over a UNIX socket as over TCP.
#[test]
fn a_unix_socket_tpm_gets_the_same_commands_as_tcp() {
    let mut seen = Vec::new();
    for unix in [false, true] {
        let launch = Launch::provisioned().log_commands();
        let w = TpmWorld::with(if unix { launch.unix_socket() } else { launch }.start());
        let mut cmd = w.command("ossl-p256", "ossl-p256", !unix, &[]);
        if unix {
            cmd.env("TPM_DEVICE", w.tpm.socket());
        }
        assert_process_json(&run(&mut cmd));
        seen.push(w.tpm.commands());
    }
    assert!(
        seen[0].contains(&0x15D),
        "no TPM2_Sign logged: {:x?}",
        seen[0]
    );
    assert_eq!(seen[0], seen[1], "TCP and UNIX socket differ");
}

/// `TPM_DEVICE` naming something that is no TPM: a clear error, exit 3, nothing sent.
#[test]
fn tpm_device_that_is_no_tpm_fails_clearly() {
    let w = TpmWorld::new();
    let d = w.dir.path();
    let file = d.join("not-a-tpm");
    std::fs::write(&file, "x").expect("write");
    let dead = d.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    let cases = [
        (file, "is a regular file, not a TPM"),
        (d.join("no-such-tpm"), "there is no TPM device at"),
        (d.to_path_buf(), "is a directory, not a TPM"),
        (dead, "cannot connect to the TPM socket"),
    ];
    for (path, expected) in &cases {
        let mut cmd = w.command("ossl-p256", "ossl-p256", false, &[]);
        cmd.env("TPM_DEVICE", path);
        let out = run(&mut cmd);
        assert_exit(&out, 3);
        let err = stderr(&out);
        assert!(err.contains(expected), "{err}");
        assert!(err.contains("TPM_DEVICE"), "the source is named: {err}");
    }
    assert_eq!(w.emulator.stats()["issued"].as_u64(), Some(0));
}

/// A wrong key password is answered with where passwords come from, not with the generic
/// "the key may sign" advice. Two refusals on a fresh copy of the state stay below swtpm's
/// dictionary-attack limit of three.
#[test]
fn a_wrong_key_password_gets_the_password_hint() {
    let w = TpmWorld::new();
    let wrong = w.dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-osslpw\n").expect("write");
    let wrong_arg = wrong.display().to_string();
    let runs = [
        (
            w.run(
                "ossl-p256-pw",
                "ossl-p256-pw",
                &["--tpm-key-password-file", &wrong_arg],
                &[],
            ),
            "--tpm-key-password-file",
        ),
        (
            w.run(
                "tools-p256-pw",
                "tools-p256-pw",
                &[],
                &[("RA_SIGNER_TPM_KEY_PASSWORD", "wrong")],
            ),
            "RA_SIGNER_TPM_KEY_PASSWORD",
        ),
    ];
    for (out, origin) in &runs {
        assert_exit(out, 3);
        let err = stderr(out);
        assert!(
            err.contains("TPM_RC_AUTH_FAIL") || err.contains("TPM_RC_BAD_AUTH"),
            "{err}"
        );
        let hint = err
            .lines()
            .find(|l| l.trim_start().starts_with("hint:"))
            .unwrap_or_else(|| panic!("no hint: {err}"));
        assert!(hint.contains(&format!("came from {origin}")), "{hint}");
        for source in [
            "--tpm-key-password-file",
            "--tpm-key-password",
            "RA_SIGNER_TPM_KEY_PASSWORD",
        ] {
            assert!(hint.contains(source), "{hint}");
        }
        assert!(!err.contains("may sign"), "{err}");
    }
    assert_eq!(w.emulator.stats()["issued"].as_u64(), Some(0));
}

/// `keygen --tpm --subject` keeps RFC 4514's order and escapes on the CSR (the same parser
/// as the PKCS#11 keygen), in both spellings, with a multi-valued RDN and repeated
/// attributes; the TPM is a UNIX-socket swtpm named by `TPM_DEVICE`.
#[test]
fn keygen_tpm_writes_the_subject_as_given() {
    let tpm = Launch::fresh().unix_socket().start();
    let dir = tempdir();
    for (n, (kind, subject, expected)) in SUBJECT_CASES.iter().enumerate() {
        let csr = dir.path().join(format!("subject-{n}.csr"));
        let mut cmd = ra_signer(dir.path());
        cmd.args(["keygen", "--tpm", "--key-type", kind, "--subject", subject])
            .arg("--out")
            .arg(dir.path().join(format!("subject-{n}.key")))
            .arg("--csr-out")
            .arg(&csr)
            .env("TPM_DEVICE", tpm.socket());
        assert_exit(&run(&mut cmd), 0);
        assert_csr_subject(&csr, subject, expected);
    }
    let out = run(ra_signer(dir.path())
        .args(["keygen", "--tpm", "--subject", "CN=a;b"])
        .arg("--out")
        .arg(dir.path().join("bad.key"))
        .env("TPM_DEVICE", tpm.socket()));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(r"must be escaped as \;"),
        "{}",
        stderr(&out)
    );
}

/// Waits for `child` at most `limit`, killing it if it runs longer.
fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stopped_tpm_fails_within_the_timeout_and_the_next_run_works() {
    let w = TpmWorld::new();
    w.tpm.pause();
    let start = Instant::now();
    let out = w.run(
        "ossl-p256",
        "ossl-p256",
        &[],
        &[("RA_SIGNER_TPM_TIMEOUT", "2")],
    );
    let took = start.elapsed();
    w.tpm.resume();
    assert_exit(&out, 3);
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("ERROR:") && !l.starts_with("WARNING:"))
        .collect();
    assert_eq!(ours.len(), 2, "{err}");
    assert!(
        ours[0].starts_with("ra-signer: error: the TPM at \"swtpm:")
            && ours[0].contains("did not answer within 2 s"),
        "{err}"
    );
    assert!(
        ours[1].starts_with("hint: ") && ours[1].contains("RA_SIGNER_TPM_TIMEOUT"),
        "{err}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_process_json(&w.run("ossl-p256", "ossl-p256", &[], &[]));
}

#[test]
fn signals_flush_tpm_objects_and_exit_with_128_plus_the_signal() {
    // swtpm has no resource manager and room for three objects; each run holds two for a
    // moment (the storage key and the key) and one while CreateSession is under way.
    let w = TpmWorld::new();
    w.emulator.set_faults(&["delay=60000"]);
    for (name, signo) in [("HUP", 1), ("INT", 2), ("QUIT", 3), ("TERM", 15)]
        .iter()
        .cycle()
        .take(8)
    {
        let before = w.emulator.stats()["requests"].as_u64().expect("requests");
        let mut child = w
            .command("ossl-p256", "ossl-p256", true, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Signed, loaded, and waiting on the endpoint.
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.emulator.stats()["requests"].as_u64() == Some(before) {
            assert!(Instant::now() < deadline, "no CreateSession arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Instant::now();
        let status = Command::new("kill")
            .args([format!("-{name}"), child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = wait_bounded(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(128 + signo), "SIG{name}: {status:?}");
        assert!(sent.elapsed() < Duration::from_secs(5), "SIG{name}");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut out)
            .expect("read");
        assert!(out.is_empty(), "SIG{name} printed {out}");
        assert_eq!(w.tpm.transient_handles(), 0, "SIG{name} left an object");
    }
    w.emulator.set_faults(&[]);
    assert_process_json(&w.run("ossl-p256", "ossl-p256", &[], &[]));
}

#[test]
fn a_full_tpm_gets_the_flush_hint() {
    // SIGKILL cannot be caught: each killed run leaves its key in a TPM without a resource
    // manager, and two fill swtpm's three slots for the next run (storage key + key).
    let w = TpmWorld::new();
    w.emulator.set_faults(&["delay=60000"]);
    for _ in 0..2 {
        let before = w.emulator.stats()["requests"].as_u64().expect("requests");
        let mut child = w
            .command("ossl-p256", "ossl-p256", true, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.emulator.stats()["requests"].as_u64() == Some(before) {
            assert!(Instant::now() < deadline, "no CreateSession arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().expect("kill");
        let _ = child.wait();
    }
    w.emulator.set_faults(&[]);
    assert_eq!(w.tpm.transient_handles(), 2);
    let out = w.run("ossl-p256", "ossl-p256", &[], &[]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("TPM_RC_OBJECT_MEMORY"), "{err}");
    assert!(
        err.contains("no room for another object") && err.contains("tpm2_flushcontext -t"),
        "{err}"
    );
    assert!(!err.contains("not made under"), "{err}");
    // The hint's advice works.
    let flushed = Command::new("tpm2_flushcontext")
        .arg("-t")
        .env("TPM2TOOLS_TCTI", w.tpm.tcti())
        .output()
        .expect("tpm2_flushcontext");
    assert_exit(&flushed, 0);
    assert_process_json(&w.run("ossl-p256", "ossl-p256", &[], &[]));
}

#[test]
fn exec_releases_the_tpm_before_the_command_runs_and_leaves_it_the_signals() {
    let w = TpmWorld::new();
    let base = w.dir.path().join("exec-tpm");
    // The command says it runs, waits for the test to look at the TPM, and answers
    // SIGTERM (which ra-signer, holding a TPM key, caught until the exec) through its trap.
    let script = r#"
trap 'echo "$AWS_ACCESS_KEY_ID" > "$0.term"; exit 0' TERM
echo $$ > "$0.pid"
while :; do sleep 0.05; done
"#;
    let mut child = w
        .subcommand(
            "exec",
            "ossl-p256",
            "ossl-p256",
            true,
            &["--", "sh", "-c", script, base.to_str().expect("utf-8")],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid_file = base.with_extension("pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file)
            && text.ends_with('\n')
        {
            break text.trim().to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the command never ran");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(pid, child.id().to_string());
    assert_eq!(
        w.tpm.transient_handles(),
        0,
        "the TPM objects were flushed before the command started"
    );
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "the command's trap, not ra-signer's handler"
    );
    let key = std::fs::read_to_string(base.with_extension("term")).expect("the trap ran");
    assert!(key.starts_with("ASIA"), "{key}");
}
