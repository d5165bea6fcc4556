//! The PKCS#11 backend against real SoftHSM2 tokens: the real `ra-signer` binary signs
//! CreateSession inside the token and `ra-emulator` verifies it. The fixture
//! (`softhsm/make-token.sh`) is made once per test run; every test works on its own copy of
//! the token directory, as SoftHSM2 processes sharing one directory fail.
//!
//! The spy-log tests run the binary through OpenSC's `pkcs11-spy`, which logs every call,
//! and check from the log that the key stays in the token.

#![cfg(feature = "pkcs11")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ra_signer::cert::Cert;

use crate::common::*;

pub(crate) const PIN: &str = "1234";

/// The fixture made by `softhsm/make-token.sh`: tokens, CA, certificates.
pub(crate) struct Fixture {
    pub dir: PathBuf,
    pub module: PathBuf,
    spy: Option<PathBuf>,
}

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // Fixtures of earlier runs: remove them (their processes are gone).
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("pkcs11-fixture-")
                    && name != format!("pkcs11-fixture-{}", std::process::id())
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = root.join(format!("pkcs11-fixture-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("softhsm/make-token.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run softhsm/make-token.sh");
        assert!(
            out.status.success(),
            "softhsm/make-token.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.join("env.sh")).expect("env.sh");
        let module = env
            .lines()
            .find_map(|l| l.strip_prefix("export RA_SIGNER_TEST_MODULE="))
            .map(PathBuf::from)
            .expect("module in env.sh");
        let spy = [
            "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
            "/usr/lib/aarch64-linux-gnu/pkcs11/pkcs11-spy.so",
            "/usr/lib/pkcs11/pkcs11-spy.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
        Fixture { dir, module, spy }
    })
}

/// A private copy of the fixture's tokens, with its own softhsm2.conf.
pub(crate) struct Hsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

impl Hsm {
    pub(crate) fn new() -> Hsm {
        Hsm::with_conf("")
    }

    /// With extra softhsm2.conf lines (e.g. `slots.mechanisms`).
    fn with_conf(extra: &str) -> Hsm {
        let fx = fixture();
        let dir = tempdir();
        let tokens = dir.path().join("tokens");
        copy_dir(&fx.dir.join("tokens"), &tokens);
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n{extra}\n",
                tokens.display()
            ),
        )
        .expect("conf");
        Hsm { dir, conf }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Its softhsm2.conf, for the tools run beside ra-signer.
    pub(crate) fn conf(&self) -> &Path {
        &self.conf
    }

    /// `ra-signer SUBCOMMAND` with this token store, and nothing else in the environment.
    pub(crate) fn cmd(&self, sub: &str) -> Command {
        let mut cmd = ra_signer(self.path());
        cmd.env("SOFTHSM2_CONF", &self.conf).arg(sub);
        cmd
    }

    /// `ra-signer SUBCOMMAND --pkcs11-lib SOFTHSM` with the PIN in the environment.
    pub(crate) fn with_pin(&self, sub: &str) -> Command {
        let mut cmd = self.cmd(sub);
        cmd.env("RA_SIGNER_PKCS11_PIN", PIN)
            .arg("--pkcs11-lib")
            .arg(&fixture().module);
        cmd
    }

    /// The same, through pkcs11-spy logging to the returned file.
    pub(crate) fn spied(&self, sub: &str) -> Option<(Command, PathBuf)> {
        let spy = fixture().spy.as_ref()?;
        let log = self.path().join(format!("spy-{}.log", unique()));
        let mut cmd = self.cmd(sub);
        cmd.env("RA_SIGNER_PKCS11_PIN", PIN)
            .env("PKCS11SPY", &fixture().module)
            .env("PKCS11SPY_OUTPUT", &log)
            .arg("--pkcs11-lib")
            .arg(spy);
        Some((cmd, log))
    }

    pub(crate) fn emulator(&self) -> Emulator {
        Emulator::start(self.path(), &[&ca_file("root")], &[])
    }
}

pub(crate) fn cert_file(label: &str) -> PathBuf {
    fixture().dir.join("certs").join(format!("{label}.pem"))
}

pub(crate) fn ca_file(name: &str) -> PathBuf {
    fixture().dir.join("ca").join(format!("{name}.pem"))
}

pub(crate) fn der(path: &Path) -> Vec<u8> {
    Cert::first_from_file(path).expect("cert").der().to_vec()
}

/// The leaf and chain `credential-process --debug` sent (from the canonical request).
pub(crate) fn sent(o: &Output) -> (Vec<u8>, Vec<Vec<u8>>) {
    use base64::Engine;
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .expect("base64")
    };
    let err = stderr(o);
    let leaf = err
        .lines()
        .find_map(|l| l.strip_prefix("x-amz-x509:"))
        .map(b64)
        .unwrap_or_else(|| panic!("no x-amz-x509 in --debug output:\n{err}"));
    let chain = err
        .lines()
        .find_map(|l| l.strip_prefix("x-amz-x509-chain:"))
        .map(|c| c.split(',').map(b64).collect())
        .unwrap_or_default();
    (leaf, chain)
}

fn credential_process(hsm: &Hsm, emu: &Emulator, uri: &str, extra: &[&str]) -> Output {
    let mut cmd = hsm.with_pin("credential-process");
    cmd.arg("--pkcs11-uri")
        .arg(uri)
        .args(emu.session_args())
        .arg("--debug")
        .args(extra);
    run(&mut cmd)
}

/// Asserts success, that `label`'s certificate was the leaf and the intermediate the chain.
pub(crate) fn assert_issued_for(o: &Output, label: &str) {
    assert_process_json(o);
    let (leaf, chain) = sent(o);
    assert!(
        leaf == der(&cert_file(label)),
        "the leaf sent is not {label}'s certificate"
    );
    assert!(
        chain == vec![der(&ca_file("int"))],
        "the chain must be the intermediate alone (not the root, not the unrelated certificate)"
    );
}

#[test]
fn credential_process_with_each_key_type_on_the_token() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    for label in ["rsa2048", "rsa3072", "p256", "p384", "imported"] {
        let o = credential_process(
            &hsm,
            &emu,
            &format!("pkcs11:token=ra-test;object={label}"),
            &[],
        );
        assert_issued_for(&o, label);
    }
    assert_eq!(emu.stats()["issued"], 5, "{}", emu.stats());
}

#[test]
fn tokens_and_objects_are_selected_by_every_attribute() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let listed = run(hsm
        .with_pin("read-certificate-data")
        .args(["--format", "json"])
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256"));
    assert_exit(&listed, 0);
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let full = v[0]["uri"].as_str().expect("uri").to_owned();
    let serial = full
        .split(';')
        .find_map(|a| a.strip_prefix("serial="))
        .expect("serial")
        .to_owned();
    assert!(
        serial.ends_with("80000000"),
        "the fixture token sits in slot 0"
    );
    for uri in [
        "pkcs11:token=ra-test;object=p256".to_owned(),
        "pkcs11:token=ra-test;id=%03".to_owned(),
        format!("pkcs11:serial={serial};id=%03"),
        "pkcs11:slot-id=0;id=%03".to_owned(),
        // Only these two need C_GetSlotInfo, which other URIs no longer pay for.
        "pkcs11:slot-description=SoftHSM%20slot%20ID%200x0;id=%03".to_owned(),
        "pkcs11:slot-manufacturer=SoftHSM%20project;token=ra-test;object=p256".to_owned(),
        "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;token=ra-test;object=p256;type=private"
            .to_owned(),
        "pkcs11:library-manufacturer=SoftHSM;token=ra-test;object=p256".to_owned(),
        full.replace(";type=cert", ""),
    ] {
        let o = credential_process(&hsm, &emu, &uri, &[]);
        assert_issued_for(&o, "p256");
    }
    // The other token has a key with the same label and id: the token attribute decides.
    let o = credential_process(&hsm, &emu, "pkcs11:token=ra-other;object=p256", &[]);
    assert_process_json(&o);
    assert!(sent(&o).0 == der(&cert_file("other-p256")));
    assert!(sent(&o).1.is_empty(), "issued by the root: no chain");
    // A slot id that does not exist.
    let o = credential_process(&hsm, &emu, "pkcs11:slot-id=987654;id=%03", &[]);
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("no token matching"), "{}", stderr(&o));
    // A slot description that no slot has.
    let o = credential_process(&hsm, &emu, "pkcs11:slot-description=nope;id=%03", &[]);
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("no token matching"), "{}", stderr(&o));
}

#[test]
fn every_pin_source() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let pin_file = hsm.path().join("pin");
    std::fs::write(&pin_file, "1234\n").expect("pin file");
    let bad_pin_file = hsm.path().join("bad-pin");
    std::fs::write(&bad_pin_file, "0000\n").expect("pin file");
    let base = |extra_env: Option<&str>| {
        let mut cmd = hsm.cmd("credential-process");
        cmd.arg("--pkcs11-lib").arg(&fixture().module);
        if let Some(pin) = extra_env {
            cmd.env("RA_SIGNER_PKCS11_PIN", pin);
        }
        cmd.args(emu.session_args());
        cmd
    };
    // pin-source in the URI wins over a wrong PIN in the environment.
    let uri = format!(
        "pkcs11:token=ra-test;object=p256?pin-source=file:{}",
        pin_file.display()
    );
    let o = run(base(Some("0000")).arg("--pkcs11-uri").arg(&uri));
    assert_process_json(&o);
    // pin-value works, with a warning.
    let o = run(base(None)
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256?pin-value=1234"));
    assert_process_json(&o);
    assert!(
        stderr(&o).contains("visible") || stderr(&o).contains("other users"),
        "{}",
        stderr(&o)
    );
    // --pkcs11-pin-file wins over the environment.
    let o = run(base(Some("0000"))
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256")
        .arg("--pkcs11-pin-file")
        .arg(&pin_file));
    assert_process_json(&o);
    // The environment variable.
    let o = run(base(Some(PIN))
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256"));
    assert_process_json(&o);
    // A wrong PIN from a file: refused, once.
    let o = run(base(None)
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256")
        .arg("--pkcs11-pin-file")
        .arg(&bad_pin_file));
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("CKR_PIN_INCORRECT"), "{}", stderr(&o));
    // A PIN file that is not there.
    let o = run(base(None)
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256")
        .arg("--pkcs11-pin-file")
        .arg(hsm.path().join("missing")));
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
}

#[test]
fn headless_run_without_a_pin_fails_fast() {
    let hsm = Hsm::new();
    let start = Instant::now();
    let o = run(hsm
        .cmd("sign-string")
        .arg("--pkcs11-lib")
        .arg(&fixture().module)
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no prompt, no wait"
    );
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("PIN") && err.contains("no terminal"), "{err}");
    assert!(
        err.contains("--pkcs11-pin-file"),
        "the hint says what to do: {err}"
    );
}

/// Parses a pkcs11-spy log into (function, lines of its entry).
pub(crate) fn spy_calls(log: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(log).expect("spy log");
    let mut calls: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let head = line
            .split_once(": ")
            .filter(|(n, f)| n.bytes().all(|b| b.is_ascii_digit()) && f.starts_with("C_"));
        match head {
            Some((_, f)) => calls.push((f.trim().to_owned(), Vec::new())),
            None => {
                if let Some(last) = calls.last_mut() {
                    last.1.push(line.to_owned());
                }
            }
        }
    }
    calls
}

pub(crate) fn count(calls: &[(String, Vec<String>)], f: &str) -> usize {
    calls.iter().filter(|(name, _)| name == f).count()
}

/// The value of `[in] NAME = 0x..` in a call's lines.
fn in_handle(lines: &[String], name: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("[in] {name} = "))
            .map(|v| v.trim().to_owned())
    })
}

#[test]
fn spy_log_proves_the_key_stays_in_the_token() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    if fixture().spy.is_none() {
        panic!("pkcs11-spy.so is missing: apt-get install opensc");
    }
    for label in ["rsa2048", "p256", "p384"] {
        let (mut cmd, log) = hsm.spied("credential-process").expect("spy");
        let o = run(cmd
            .arg("--pkcs11-uri")
            .arg(format!("pkcs11:token=ra-test;object={label}"))
            .args(emu.session_args()));
        assert_process_json(&o);
        let calls = spy_calls(&log);
        assert_eq!(
            count(&calls, "C_Initialize"),
            1,
            "{label}: module initialized once"
        );
        assert_eq!(count(&calls, "C_Login"), 1, "{label}: exactly one login");
        assert_eq!(
            count(&calls, "C_SignInit"),
            1,
            "{label}: one signing operation"
        );
        // cryptoki asks the signature length first (pSignature NULL), then signs: one C_Sign
        // produces a signature.
        let signing: Vec<_> = calls
            .iter()
            .filter(|(f, lines)| {
                f == "C_Sign"
                    && lines
                        .iter()
                        .any(|l| l.starts_with("[out] pSignature") && !l.contains("NULL"))
            })
            .collect();
        assert_eq!(
            signing.len(),
            1,
            "{label}: exactly one C_Sign returns a signature"
        );
        assert!(count(&calls, "C_Sign") <= 2, "{label}: no other C_Sign");
        let key = calls
            .iter()
            .find(|(f, _)| f == "C_SignInit")
            .and_then(|(_, lines)| in_handle(lines, "hKey"))
            .expect("hKey of C_SignInit");
        const SECRET: &[&str] = &[
            "CKA_VALUE",
            "CKA_PRIVATE_EXPONENT",
            "CKA_PRIME_1",
            "CKA_PRIME_2",
            "CKA_EXPONENT_1",
            "CKA_EXPONENT_2",
            "CKA_COEFFICIENT",
        ];
        let mut asked_of_key = Vec::new();
        for (f, lines) in &calls {
            if f != "C_GetAttributeValue" {
                continue;
            }
            let on_key = in_handle(lines, "hObject").as_deref() == Some(key.as_str());
            for attr in lines
                .iter()
                .filter(|l| l.starts_with("    CKA_"))
                .filter_map(|l| l.split_whitespace().next())
            {
                assert!(
                    !(on_key && SECRET.contains(&attr)),
                    "{label}: the private key was asked for {attr}"
                );
                assert!(
                    !attr.contains("PRIVATE_EXPONENT") && !attr.starts_with("CKA_PRIME_"),
                    "{label}: a secret attribute was asked for: {attr}"
                );
                if on_key {
                    asked_of_key.push(attr.to_owned());
                }
            }
        }
        asked_of_key.sort();
        asked_of_key.dedup();
        for attr in &asked_of_key {
            assert!(
                [
                    "CKA_KEY_TYPE",
                    "CKA_LABEL",
                    "CKA_ID",
                    "CKA_ALWAYS_AUTHENTICATE",
                    "CKA_MODULUS",
                    "CKA_PUBLIC_EXPONENT",
                    "CKA_EC_PARAMS",
                    // How the key is protected and what it may do, for
                    // --require-hardware-key and doctor: public booleans.
                    "CKA_SENSITIVE",
                    "CKA_EXTRACTABLE",
                    "CKA_NEVER_EXTRACTABLE",
                    "CKA_ALWAYS_SENSITIVE",
                    "CKA_DECRYPT",
                    "CKA_UNWRAP",
                    "CKA_DERIVE",
                ]
                .contains(&attr.as_str()),
                "{label}: unexpected attribute {attr} asked of the private key"
            );
        }
    }
}

#[test]
fn wrong_pin_is_tried_once_and_locked_pin_not_at_all() {
    let hsm = Hsm::new();
    let (mut cmd, log) = hsm.spied("sign-string").expect("spy");
    let o = run(cmd
        .env("RA_SIGNER_PKCS11_PIN", "0000")
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256"));
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("CKR_PIN_INCORRECT") && err.contains("not retry"),
        "{err}"
    );
    assert_eq!(count(&spy_calls(&log), "C_Login"), 1, "never a retry loop");

    // Mark the user PIN locked in the token's metadata (CKF_USER_PIN_LOCKED): SoftHSM2
    // itself never locks, real tokens do after a few failures.
    let token_dir = std::fs::read_dir(hsm.path().join("tokens"))
        .expect("tokens")
        .flatten()
        .map(|e| e.path().join("token.object"))
        .find(|p| std::fs::read(p).is_ok_and(|b| b.windows(8).any(|w| w == b"ra-test ")))
        .expect("ra-test token.object");
    let mut bytes = std::fs::read(&token_dir).expect("read");
    // CKA_OS_TOKENFLAGS (0x8000534B), an unsigned long attribute.
    let tag = [0, 0, 0, 0, 0x80, 0, 0x53, 0x4b, 0, 0, 0, 0, 0, 0, 0, 2];
    let at = bytes
        .windows(tag.len())
        .position(|w| w == tag)
        .expect("token flags attribute")
        + tag.len();
    let mut flags = [0u8; 8];
    flags.copy_from_slice(&bytes[at..at + 8]);
    let flags = u64::from_be_bytes(flags) | 0x0004_0000;
    bytes[at..at + 8].copy_from_slice(&flags.to_be_bytes());
    std::fs::write(&token_dir, bytes).expect("write");

    let (mut cmd, log) = hsm.spied("sign-string").expect("spy");
    let o = run(cmd
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-test;object=p256"));
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("locked") && err.contains("CKR_PIN_LOCKED"),
        "{err}"
    );
    assert_eq!(
        count(&spy_calls(&log), "C_Login"),
        0,
        "a locked PIN is not tried"
    );
}

#[test]
fn certificate_in_a_file_or_by_its_own_uri() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    // --pkcs11-uri for the key, the certificate from a file.
    let leaf_file = cert_file("p384");
    let o = credential_process(
        &hsm,
        &emu,
        "pkcs11:token=ra-test;object=p384",
        &["--certificate", leaf_file.to_str().expect("utf-8")],
    );
    assert_issued_for(&o, "p384");
    // Drop-in form: --certificate pkcs11:… --private-key pkcs11:….
    let mut cmd = hsm.with_pin("credential-process");
    let o = run(cmd
        .arg("--certificate")
        .arg("pkcs11:token=ra-test;object=rsa2048;type=cert")
        .arg("--private-key")
        .arg("pkcs11:token=ra-test;id=%01;type=private")
        .args(emu.session_args())
        .arg("--debug"));
    assert_issued_for(&o, "rsa2048");
    // --intermediates overrides what the token holds.
    let int = ca_file("int");
    let o = credential_process(
        &hsm,
        &emu,
        "pkcs11:token=ra-test;object=p256",
        &["--intermediates", int.to_str().expect("utf-8")],
    );
    assert_issued_for(&o, "p256");
    let unrelated = cert_file("unrelated");
    let o = credential_process(
        &hsm,
        &emu,
        "pkcs11:token=ra-test;object=p256",
        &["--intermediates", unrelated.to_str().expect("utf-8")],
    );
    assert!(
        sent(&o).1 == vec![der(&unrelated)],
        "--intermediates is sent as given"
    );
}

#[test]
fn certificate_on_the_token_with_the_key_in_a_file() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let key = fixture().dir.join("certs/imported.key");
    let mut cmd = hsm.with_pin("credential-process");
    let o = run(cmd
        .arg("--certificate")
        .arg("pkcs11:token=ra-test;object=imported;type=cert")
        .arg("--private-key")
        .arg(&key)
        .args(emu.session_args())
        .arg("--debug"));
    assert_issued_for(&o, "imported");
    let mut cmd = hsm.with_pin("credential-process");
    let o = run(cmd
        .arg("--certificate")
        .arg("pkcs11:token=ra-test;object=p256;type=cert")
        .arg("--private-key")
        .arg(&key)
        .args(emu.session_args()));
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("does not match"), "{}", stderr(&o));
}

#[test]
fn mismatched_key_and_certificate_are_refused_before_sending() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    for cert in ["p384", "imported"] {
        let path = cert_file(cert);
        let o = credential_process(
            &hsm,
            &emu,
            "pkcs11:token=ra-test;object=p256",
            &["--certificate", path.to_str().expect("utf-8")],
        );
        assert_exit(&o, 3);
        let err = stderr(&o);
        assert!(err.contains("does not match"), "{err}");
        assert!(!err.contains("x-amz-x509:"), "nothing was signed or sent");
    }
    assert_eq!(emu.stats()["requests"], 0);
}

#[test]
fn ambiguous_and_missing_tokens_and_objects() {
    let hsm = Hsm::new();
    let sign = |uri: &str| {
        let mut cmd = hsm.with_pin("sign-string");
        run(cmd.arg("--pkcs11-uri").arg(uri))
    };
    let o = sign("pkcs11:token=dup;object=k");
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("2 tokens match"), "{err}");
    assert_eq!(
        err.matches("token \"dup\" (serial").count(),
        2,
        "both are listed: {err}"
    );
    assert!(err.contains("serial="), "the hint's URIs select one: {err}");

    let o = sign("pkcs11:token=ra-test");
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("private keys match"), "{err}");
    assert!(err.contains("object=rsa3072;type=private"), "{err}");

    let o = sign("pkcs11:token=ra-test;object=nothing-here");
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("no private key matching"), "{err}");
    assert!(
        err.contains("object=p384"),
        "the keys present are listed: {err}"
    );

    let o = sign("pkcs11:token=ra-test;object=bare");
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("no certificate matching"),
        "{}",
        stderr(&o)
    );

    let o = sign("pkcs11:token=no-such-token;object=k");
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("no token matching") && err.contains("ra-other"),
        "{err}"
    );
}

#[test]
fn malformed_uris_are_usage_errors() {
    let hsm = Hsm::new();
    for (uri, why) in [
        ("pkcs11:token=a;token=b", "appears twice"),
        ("pkcs11:slot-id=x", "not a decimal number"),
        ("pkcs11:id=%zz", "two hex digits"),
        ("pkcs11:label=x", "unknown path attribute"),
        ("pkcs11:token=a?pin-source=|cat", "not supported"),
    ] {
        let mut cmd = hsm.with_pin("sign-string");
        let o = run(cmd.arg("--pkcs11-uri").arg(uri));
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(why), "{uri}: {}", stderr(&o));
    }
    let mut cmd = hsm.with_pin("sign-string");
    let o = run(cmd
        .arg("--pkcs11-uri")
        .arg("pkcs11:bogus=1?pin-value=s3cret"));
    assert_exit(&o, 2);
    assert!(!stderr(&o).contains("s3cret"), "the PIN is not echoed");
}

#[test]
fn always_authenticate_keys() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let uri = "pkcs11:token=ra-test;object=always-rsa";
    // --reuse-pin answers the context-specific login with the user PIN.
    let (mut cmd, log) = hsm.spied("credential-process").expect("spy");
    let o = run(cmd
        .arg("--pkcs11-uri")
        .arg(uri)
        .arg("--reuse-pin")
        .args(emu.session_args())
        .arg("--debug"));
    assert_issued_for(&o, "always-rsa");
    let calls = spy_calls(&log);
    assert_eq!(
        count(&calls, "C_Login"),
        2,
        "user login + one context-specific login"
    );
    assert!(
        calls
            .iter()
            .filter(|(f, _)| f == "C_Login")
            .any(|(_, l)| l.iter().any(|l| l.contains("CKU_CONTEXT_SPECIFIC"))),
        "a CKU_CONTEXT_SPECIFIC login"
    );
    // A context PIN file.
    let ctx_pin = hsm.path().join("ctx-pin");
    std::fs::write(&ctx_pin, "1234\n").expect("write");
    let o = credential_process(
        &hsm,
        &emu,
        uri,
        &[
            "--pkcs11-context-pin-file",
            ctx_pin.to_str().expect("utf-8"),
        ],
    );
    assert_issued_for(&o, "always-rsa");
    // Neither: headless, no context PIN: a fast, clear failure.
    let o = credential_process(&hsm, &emu, uri, &[]);
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("context-specific PIN"),
        "{}",
        stderr(&o)
    );
    // A wrong context PIN is refused once.
    std::fs::write(&ctx_pin, "9999\n").expect("write");
    let o = credential_process(
        &hsm,
        &emu,
        uri,
        &[
            "--pkcs11-context-pin-file",
            ctx_pin.to_str().expect("utf-8"),
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("CKR_PIN_INCORRECT"), "{}", stderr(&o));
    // SoftHSM2 has no CKM_ECDSA_SHA256, so an always-authenticate EC key cannot get its
    // context-specific login between C_SignInit and C_Sign: refused clearly, before any PIN.
    let o = credential_process(
        &hsm,
        &emu,
        "pkcs11:token=ra-test;object=always-ec",
        &["--reuse-pin"],
    );
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("CKM_ECDSA_SHA256"), "{}", stderr(&o));
}

#[test]
fn rsa_falls_back_to_ckm_rsa_pkcs_with_identical_signatures() {
    let normal = Hsm::new();
    // SoftHSM2 parses the first entry of a '-' list wrongly: a harmless one goes first.
    let limited = Hsm::with_conf(
        "slots.mechanisms = -CKM_MD5,CKM_SHA256_RSA_PKCS,CKM_SHA384_RSA_PKCS,CKM_SHA512_RSA_PKCS",
    );
    for digest in ["SHA256", "SHA384", "SHA512"] {
        let sign = |hsm: &Hsm| {
            let (mut cmd, log) = hsm.spied("sign-string").expect("spy");
            let o = run(cmd
                .arg("--pkcs11-uri")
                .arg("pkcs11:token=ra-test;object=rsa2048")
                .arg("--digest")
                .arg(digest));
            assert_exit(&o, 0);
            let mechanism = spy_calls(&log)
                .iter()
                .find(|(f, _)| f == "C_SignInit")
                .and_then(|(_, lines)| in_handle(lines, "pMechanism->type"))
                .expect("C_SignInit mechanism");
            (stdout(&o), mechanism)
        };
        let (a, mech_a) = sign(&normal);
        let (b, mech_b) = sign(&limited);
        assert_eq!(
            a, b,
            "{digest}: PKCS#1 v1.5 is deterministic: same bytes either way"
        );
        assert_eq!(
            mech_a,
            format!("CKM_{digest}_RSA_PKCS"),
            "hash-and-sign when offered"
        );
        assert_eq!(
            mech_b, "CKM_RSA_PKCS",
            "{digest}: CKM_RSA_PKCS over the DigestInfo"
        );
    }
}

#[test]
fn sign_string_verifies_for_each_key_and_digest() {
    let hsm = Hsm::new();
    for (label, digest, alg) in [
        (
            "rsa2048",
            "SHA256",
            &ring::signature::RSA_PKCS1_2048_8192_SHA256
                as &dyn ring::signature::VerificationAlgorithm,
        ),
        (
            "rsa3072",
            "SHA384",
            &ring::signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        (
            "rsa2048",
            "SHA512",
            &ring::signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        ("p256", "SHA256", &ring::signature::ECDSA_P256_SHA256_ASN1),
        ("p256", "SHA384", &ring::signature::ECDSA_P256_SHA384_ASN1),
        ("p384", "SHA256", &ring::signature::ECDSA_P384_SHA256_ASN1),
        ("p384", "SHA384", &ring::signature::ECDSA_P384_SHA384_ASN1),
        (
            "imported",
            "SHA256",
            &ring::signature::ECDSA_P256_SHA256_ASN1,
        ),
    ] {
        let mut cmd = hsm.with_pin("sign-string");
        let o = run(cmd
            .arg("--pkcs11-uri")
            .arg(format!("pkcs11:token=ra-test;object={label}"))
            .args(["--digest", digest, "--format", "bin"]));
        assert_exit(&o, 0);
        let cert = Cert::first_from_file(&cert_file(label)).expect("cert");
        let mut message = b"AWS Roles Anywhere Credential Helper Signing Test1".to_vec();
        let mut tagged = b"IAM RA".to_vec();
        tagged.extend_from_slice(cert.public_key_bits());
        message.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &tagged).as_ref());
        ring::signature::UnparsedPublicKey::new(alg, cert.public_key_bits())
            .verify(&message, &o.stdout)
            .unwrap_or_else(|_| panic!("{label} {digest}: the signature verifies"));
    }
}

#[test]
fn read_certificate_data_gives_uris_that_select_one_certificate() {
    let hsm = Hsm::new();
    // No PIN: certificates are public objects.
    let list = |uri: &str| {
        let o = run(hsm
            .cmd("read-certificate-data")
            .args(["--format", "json"])
            .arg("--pkcs11-lib")
            .arg(&fixture().module)
            .arg("--pkcs11-uri")
            .arg(uri));
        assert_exit(&o, 0);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v.as_array().expect("array").clone()
    };
    let all = list("pkcs11:token=ra-test");
    assert_eq!(all.len(), 10, "every certificate on the token");
    for c in &all {
        for field in [
            "subject",
            "issuer",
            "serialNumber",
            "notBefore",
            "notAfter",
            "keyType",
            "uri",
        ] {
            assert!(c.get(field).is_some(), "{field} in {c}");
        }
        let uri = c["uri"].as_str().expect("uri");
        assert!(
            uri.contains("serial=") && uri.ends_with(";type=cert"),
            "{uri}"
        );
        let one = list(uri);
        assert_eq!(one.len(), 1, "{uri} selects one certificate");
        assert_eq!(one[0]["certificateData"], c["certificateData"]);
    }
}

#[test]
fn modules_from_the_uri_and_the_p11_kit_proxy() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let run_uri = |uri: String, lib: Option<&str>| {
        let mut cmd = hsm.cmd("credential-process");
        cmd.env("RA_SIGNER_PKCS11_PIN", PIN)
            .arg("--pkcs11-uri")
            .arg(uri)
            .args(emu.session_args());
        if let Some(lib) = lib {
            cmd.arg("--pkcs11-lib").arg(lib);
        }
        run(&mut cmd)
    };
    // module-path in the URI wins over --pkcs11-lib.
    let o = run_uri(
        format!(
            "pkcs11:token=ra-test;object=p256?module-path={}",
            fixture().module.display()
        ),
        Some("/nonexistent/module.so"),
    );
    assert_process_json(&o);
    let o = run_uri(
        "pkcs11:token=ra-test;object=p256".into(),
        Some("/nonexistent/module.so"),
    );
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("/nonexistent/module.so"),
        "{}",
        stderr(&o)
    );
    // SoftHSM2 registers itself with p11-kit: module-name and the default proxy find it.
    assert!(
        Path::new("/usr/share/p11-kit/modules/softhsm2.module").exists(),
        "Debian's softhsm2 package registers the module with p11-kit"
    );
    let o = run_uri(
        "pkcs11:token=ra-test;object=p256?module-name=softhsm2".into(),
        None,
    );
    assert_process_json(&o);
    let o = run_uri("pkcs11:token=ra-test;object=p256".into(), None);
    assert_process_json(&o);
}

#[test]
fn boto3_gets_credentials_through_credential_process_with_a_token_key() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let pin_file = hsm.path().join("pin");
    std::fs::write(&pin_file, "1234\n").expect("pin");
    let mut args = vec![
        "--pkcs11-uri".to_owned(),
        format!(
            "pkcs11:token=ra-test;object=p256?pin-source=file:{}",
            pin_file.display()
        ),
        "--pkcs11-lib".to_owned(),
        fixture().module.display().to_string(),
    ];
    args.extend(emu.session_args());
    let config = crate::real_clients::aws_config(hsm.path(), &args);
    let got = crate::real_clients::boto3_credentials(
        hsm.path(),
        &config,
        &[("SOFTHSM2_CONF", hsm.conf.as_path())],
    );
    assert_issued_key(&got);
    assert_eq!(emu.stats()["issued"], 1);
}

fn keygen_available() -> bool {
    let o = Command::new(bin("ra-signer"))
        .args(["keygen", "--help"])
        .output()
        .expect("run");
    o.status.success()
}

#[test]
fn keygen_makes_a_protected_key_a_verifiable_csr_and_imports_the_certificate() {
    assert!(
        keygen_available(),
        "ra-signer keygen is not wired into the CLI"
    );
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let fx = fixture();
    for (n, kind) in ["rsa2048", "p256", "p384"].iter().enumerate() {
        let label = format!("new-{kind}");
        let uri = format!("pkcs11:token=ra-other;object={label};id=%4{n}");
        let csr = hsm.path().join(format!("{label}.csr"));
        let (mut cmd, log) = hsm.spied("keygen").expect("spy");
        let o = run(cmd
            .arg("--pkcs11-uri")
            .arg(&uri)
            .args(["--key-type", kind])
            .args(["--subject", &format!("CN={label},O=ra-signer test")])
            .arg("--csr-out")
            .arg(&csr));
        assert_exit(&o, 0);
        // The template asked for a sensitive, non-extractable key...
        let calls = spy_calls(&log);
        let generate = calls
            .iter()
            .find(|(f, _)| f == "C_GenerateKeyPair")
            .expect("C_GenerateKeyPair");
        let private_template: Vec<String> = generate
            .1
            .iter()
            .skip_while(|l| !l.contains("pPrivateKeyTemplate"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        for want in [
            "CKA_SENSITIVE True",
            "CKA_EXTRACTABLE False",
            "CKA_PRIVATE True",
        ] {
            assert!(
                private_template.iter().any(|l| l == want),
                "{want}: {private_template:?}"
            );
        }
        // ...and the token says it made one.
        let listing = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&fx.module)
            .args(["--token-label", "ra-other", "--login", "--pin", PIN])
            .args(["--list-objects", "--type", "privkey"])
            .env("SOFTHSM2_CONF", &hsm.conf)
            .output()
            .expect("pkcs11-tool");
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        let access = listing
            .lines()
            .skip_while(|l| l.trim() != format!("label:      {label}"))
            .find_map(|l| l.trim().strip_prefix("Access:"))
            .unwrap_or_else(|| panic!("{label} not listed: {listing}"))
            .trim()
            .to_owned();
        assert!(access.contains("sensitive"), "{access}");
        assert!(access.contains("never extractable"), "{access}");
        assert!(
            !access
                .replace("never extractable", "")
                .contains("extractable"),
            "{access}"
        );
        // The CSR verifies with OpenSSL and carries the subject.
        let csr_path = csr.to_str().expect("utf-8");
        let verify = openssl(&["req", "-in", csr_path, "-verify", "-noout", "-subject"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        assert!(text.contains("verify OK"), "{text}");
        assert!(text.contains(&format!("CN = {label}")), "{text}");
        // The CA signs it; keygen --import-cert stores certificate and chain beside the key.
        let cert = hsm.path().join(format!("{label}.pem"));
        let ca = fx.dir.join("ca");
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr_path,
            "-CA",
            ca.join("int.pem").to_str().expect("utf-8"),
            "-CAkey",
            ca.join("int.key").to_str().expect("utf-8"),
            "-set_serial",
            &format!("0x{}", 0x1000 + n),
            "-days",
            "30",
            "-sha256",
            "-extfile",
            ca.join("leaf.ext").to_str().expect("utf-8"),
            "-out",
            cert.to_str().expect("utf-8"),
        ]);
        let bundle = hsm.path().join(format!("{label}.bundle.pem"));
        let mut pem = std::fs::read(&cert).expect("cert");
        pem.extend(std::fs::read(ca.join("int.pem")).expect("int"));
        std::fs::write(&bundle, pem).expect("bundle");
        let mut cmd = hsm.with_pin("keygen");
        let o = run(cmd
            .arg("--pkcs11-uri")
            .arg(format!("pkcs11:token=ra-other;object={label}"))
            .arg("--import-cert")
            .arg(&bundle));
        assert_exit(&o, 0);
        // The new key now gets credentials, with the intermediate from the token.
        let o = credential_process(
            &hsm,
            &emu,
            &format!("pkcs11:token=ra-other;object={label}"),
            &[],
        );
        assert_process_json(&o);
        assert!(sent(&o).0 == der(&cert));
        assert!(sent(&o).1 == vec![der(&ca_file("int"))]);
    }
    // Generating over an existing key is refused.
    let mut cmd = hsm.with_pin("keygen");
    let o = run(cmd
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-other;object=p256;id=%03")
        .args(["--subject", "CN=x"]));
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // Importing a certificate of another key is refused.
    let mut cmd = hsm.with_pin("keygen");
    let o = run(cmd
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-other;object=p256")
        .arg("--import-cert")
        .arg(cert_file("p384")));
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("does not match"), "{}", stderr(&o));
}

/// `keygen --subject` keeps RFC 4514's order and escapes on the CSR (the same parser as
/// `keygen --tpm`), in both spellings, with a multi-valued RDN and repeated attributes.
#[test]
fn keygen_writes_the_subject_as_given() {
    let hsm = Hsm::new();
    for (n, (kind, subject, expected)) in SUBJECT_CASES.iter().enumerate() {
        let csr = hsm.path().join(format!("subject-{n}.csr"));
        let mut cmd = hsm.with_pin("keygen");
        let o = run(cmd
            .arg("--pkcs11-uri")
            .arg(format!("pkcs11:token=ra-other;object=subject-{n};id=%5{n}"))
            .args(["--key-type", kind, "--subject", subject])
            .arg("--csr-out")
            .arg(&csr));
        assert_exit(&o, 0);
        assert_csr_subject(&csr, subject, expected);
    }
    let mut cmd = hsm.with_pin("keygen");
    let o = run(cmd
        .arg("--pkcs11-uri")
        .arg("pkcs11:token=ra-other;object=bad-subject;id=%60")
        .args(["--subject", "CN=a;b"]));
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains(r"must be escaped as \;"),
        "{}",
        stderr(&o)
    );
}
