//! `ra-signer doctor` against the real emulator, real SoftHSM2 tokens and a real swtpm: a
//! healthy set-up per backend where every check passes, and for each check a broken set-up
//! that makes it fail. Also `--require-hardware-key` on the signing commands, and the
//! least-privilege keys `keygen` makes.

use std::process::Output;

use crate::common::*;

/// The exit code of a doctor run with a failed check (docs/exit-codes.md).
const CHECKS_FAILED: i32 = 7;

/// `ra-signer doctor` with `leaf`'s files, the emulator's flags and `extra`.
fn doctor(w: &World, leaf: &Leaf, extra: &[&str]) -> Output {
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("doctor")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(extra);
    run(&mut cmd)
}

/// The `--trust-anchor-ca` flag for the world's root.
fn anchor(w: &World) -> Vec<String> {
    vec![
        "--trust-anchor-ca".into(),
        w.ca.cert_path.display().to_string(),
    ]
}

/// The line of the check `name` (the first), with its mark.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.split_once(' ').is_some_and(|(_, rest)| {
                rest.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
        })
        .unwrap_or_else(|| panic!("no \"{name}\" line in:\n{text}"))
}

/// Asserts the mark of the check `name` (✔, ! or ✗) and returns its line.
fn assert_mark<'a>(text: &'a str, name: &str, mark: &str) -> &'a str {
    let l = line(text, name);
    assert!(l.starts_with(mark), "{name} should be {mark}: {l}\n{text}");
    l
}

/// The fix printed under the check `name`.
fn fix_of(text: &str, name: &str) -> String {
    let l = line(text, name);
    let mut lines = text.lines().skip_while(|x| *x != l);
    lines.next();
    lines
        .next()
        .and_then(|f| f.trim().strip_prefix("fix: "))
        .unwrap_or_else(|| panic!("no fix under {name}:\n{text}"))
        .to_owned()
}

fn move_clock(w: &World, offset: i64) {
    let resp = http_client(&w.emulator.tls_ca)
        .post(format!("{}/_emulator/clock", w.emulator.url))
        .body(format!("{{\"offset\": {offset}}}"))
        .send()
        .expect("moving the emulator's clock");
    assert!(resp.status().is_success(), "{}", resp.status());
}

#[test]
fn a_healthy_file_key_passes_every_check_and_warns_that_it_is_on_disk() {
    let w = World::new(&[]);
    let leaf = w.leaf("healthy", KeyKind::P256);
    let mut extra = anchor(&w);
    extra.push("--call".into());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let o = doctor(&w, &leaf, &extra);
    assert_exit(&o, 0);
    let text = stdout(&o);
    // The serial as AWS logs it: decimal.
    let serial = ra_signer::cert::Cert::from_der(&leaf.der, "leaf")
        .expect("cert")
        .serial_decimal();
    assert_eq!(serial, "93710594595");
    assert!(
        assert_mark(&text, "certificate", "✔").contains("serial 93710594595 (decimal"),
        "{text}"
    );
    for name in [
        "certificate validity",
        "certificate key usage",
        "certificate basic constraints",
        "certificate signature algorithm",
        "key matches certificate",
        "chain",
        "request",
        "endpoint",
        "network proxy",
        "network dns",
        "network tcp",
        "network tls",
        "clock skew",
        "call",
    ] {
        assert_mark(&text, name, "✔");
    }
    assert_mark(&text, "key storage", "!");
    assert!(fix_of(&text, "key storage").contains("keygen"), "{text}");
    assert!(line(&text, "endpoint").contains("--endpoint"), "{text}");
    assert!(
        line(&text, "chain").contains("\"O=ra-signer tests,CN=Test Root CA\""),
        "{text}"
    );
    // The checks run in the order.
    let order: Vec<usize> = [
        "certificate",
        "key storage",
        "chain",
        "request",
        "network dns",
        "call",
    ]
    .iter()
    .map(|n| text.find(line(&text, n)).expect("line"))
    .collect();
    assert!(order.windows(2).all(|p| p[0] < p[1]), "{text}");
    assert_eq!(w.emulator.stats()["issued"], 1, "one real CreateSession");
    // Credentials never reach the output.
    assert!(!text.contains("ASIA"), "{text}");

    // JSON for scripts: the same checks.
    let o = doctor(&w, &leaf, &["--format", "json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().expect("checks");
    assert!(checks.len() >= 14, "{v}");
    for c in checks {
        let status = c["status"].as_str().expect("status");
        assert!(["pass", "warn"].contains(&status), "{c}");
        assert!(c["name"].is_string() && c["detail"].is_string(), "{c}");
        assert_eq!(c["fix"].is_null(), status == "pass", "{c}");
    }
    let chain = checks.iter().find(|c| c["name"] == "chain").expect("chain");
    assert_eq!(
        chain["status"], "warn",
        "without --trust-anchor-ca: {chain}"
    );

    // --require-hardware-key turns the file key into a failure.
    let o = doctor(&w, &leaf, &["--require-hardware-key"]);
    assert_exit(&o, CHECKS_FAILED);
    assert_mark(&stdout(&o), "key storage", "✗");
    assert!(stderr(&o).contains("checks failed"), "{}", stderr(&o));
}

#[test]
fn an_expired_certificate_fails_the_validity_check() {
    let w = World::new(&[]);
    let opts = LeafOptions {
        not_before: (2001, 1, 1),
        not_after: (2002, 1, 1),
        ..LeafOptions::default()
    };
    let leaf = w.ca.leaf(w.dir.path(), "expired", KeyKind::P256, &opts);
    let o = doctor(&w, &leaf, &["--call"]);
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    assert!(
        assert_mark(&text, "certificate validity", "✗").contains("expired on 2002-01-01"),
        "{text}"
    );
    assert!(
        fix_of(&text, "certificate validity").contains("renew"),
        "{text}"
    );
    // The key is still checked, and the call is made and explained.
    assert_mark(&text, "key matches certificate", "✔");
    assert_mark(&text, "call", "✗");
}

#[test]
fn a_trust_anchor_of_another_ca_fails_the_chain() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let other = Ca::root(w.dir.path(), "Other Root CA");
    let mut args = vec![
        "--trust-anchor-ca".to_owned(),
        other.cert_path.display().to_string(),
    ];
    args.push("--call".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = doctor(&w, &leaf, &args);
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    let l = assert_mark(&text, "chain", "✗");
    assert!(
        l.contains("CN=Test Root CA") && l.contains("CN=Other Root CA"),
        "{l}"
    );
    assert!(fix_of(&text, "chain").contains("wrong CA"), "{text}");
    // A CA of the same name but another key is told apart by the signature.
    let twin_dir = w.dir.path().join("twin");
    std::fs::create_dir(&twin_dir).expect("mkdir");
    let twin = Ca::root(&twin_dir, "Test Root CA");
    let o = doctor(
        &w,
        &leaf,
        &["--trust-anchor-ca", twin.cert_path.to_str().expect("utf-8")],
    );
    assert_exit(&o, CHECKS_FAILED);
    assert!(
        assert_mark(&stdout(&o), "chain", "✗").contains("did not sign it"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_missing_intermediate_is_named() {
    let w = World::new(&[]);
    let int = w.ca.intermediate(w.dir.path(), "Test Intermediate CA");
    let leaf = int.leaf(
        w.dir.path(),
        "under-int",
        KeyKind::P384,
        &LeafOptions::default(),
    );
    let o = doctor(
        &w,
        &leaf,
        &anchor(&w).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    let l = assert_mark(&text, "chain", "✗");
    assert!(
        l.contains(
            "missing intermediate: no certificate for \"O=ra-signer tests,CN=Test Intermediate CA\""
        ),
        "{l}"
    );
    assert!(fix_of(&text, "chain").contains("--intermediates"), "{text}");
    // With it, the chain reaches the anchor, link by link.
    let mut args = anchor(&w);
    args.extend([
        "--intermediates".into(),
        int.cert_path.display().to_string(),
    ]);
    let o = doctor(
        &w,
        &leaf,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert_mark(&text, "chain link", "✔");
    assert!(
        assert_mark(&text, "chain", "✔").contains("\"CN=under-int\" <- \"O=ra-signer tests,CN=Test Intermediate CA\" <- \"O=ra-signer tests,CN=Test Root CA\""),
        "{text}"
    );
}

#[test]
fn a_key_of_another_certificate_fails_the_key_check() {
    let w = World::new(&[]);
    let a = w.leaf("a", KeyKind::P256);
    let b = w.leaf("b", KeyKind::P256);
    let mixed = Leaf {
        key_path: b.key_path,
        cert_path: a.cert_path.clone(),
        der: a.der,
    };
    let o = doctor(
        &w,
        &mixed,
        &anchor(&w).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    assert!(
        assert_mark(&text, "key matches certificate", "✗").contains("does not match"),
        "{text}"
    );
    // The certificate is still checked from its file.
    assert_mark(&text, "certificate validity", "✔");
    assert_mark(&text, "chain", "✔");
}

#[test]
fn clock_skew_is_measured_against_the_endpoints_date() {
    let w = World::new(&[]);
    let leaf = w.leaf("clock", KeyKind::P256);
    move_clock(&w, 600);
    let o = doctor(&w, &leaf, &[]);
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    let l = assert_mark(&text, "clock skew", "✗");
    assert!(l.contains("behind the endpoint"), "{l}");
    assert!(fix_of(&text, "clock skew").contains("5 minutes"), "{text}");
    move_clock(&w, -120);
    let o = doctor(&w, &leaf, &[]);
    assert_exit(&o, 0);
    assert!(
        assert_mark(&stdout(&o), "clock skew", "!").contains("ahead of the endpoint"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_untrusted_endpoint_certificate_fails_the_tls_check() {
    let w = World::new(&[]);
    let leaf = w.leaf("tls", KeyKind::P256);
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("doctor")
        .args(leaf.file_args())
        .args(w.emulator.arn_args())
        // The PKI's CA, not the one that issued the emulator's TLS certificate.
        .arg("--ca-bundle")
        .arg(&w.ca.cert_path);
    let o = run(&mut cmd);
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    assert_mark(&text, "network tcp", "✔");
    let l = assert_mark(&text, "network tls", "✗");
    assert!(l.contains("not trusted by the CA bundle"), "{l}");
    assert!(
        fix_of(&text, "network tls").contains("--ca-bundle"),
        "{text}"
    );
    // A port with nothing listening fails the TCP check.
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("doctor")
        .args(leaf.file_args())
        .args([
            "--trust-anchor-arn",
            TRUST_ANCHOR_ARN,
            "--profile-arn",
            PROFILE_ARN,
            "--role-arn",
            ROLE_ARN,
        ])
        .arg("--endpoint")
        .arg(format!("https://127.0.0.1:{}", closed_port()));
    let o = run(&mut cmd);
    assert_exit(&o, CHECKS_FAILED);
    assert_mark(&stdout(&o), "network tcp", "✗");
}

#[test]
fn a_bad_request_fails_the_request_check_and_skips_the_network() {
    let w = World::new(&[]);
    let leaf = w.leaf("req", KeyKind::P256);
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("doctor")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--session-duration", "60"]);
    let o = run(&mut cmd);
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    assert!(
        assert_mark(&text, "request", "✗").contains("900..43200"),
        "{text}"
    );
    assert!(!text.contains("network dns"), "{text}");
    // One that a hostile shell could send: newlines and escapes stay on one line.
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("doctor")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--role-session-name", "x\n✔ call: fine\u{1b}[2J"]);
    let o = run(&mut cmd);
    assert_exit(&o, CHECKS_FAILED);
    let text = stdout(&o);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("✔ call")), "{text}");
}

#[test]
fn require_hardware_key_refuses_a_file_key_before_signing() {
    let w = World::new(&[]);
    let leaf = w.leaf("file", KeyKind::P256);
    let o = w.credential_process(&leaf, &["--require-hardware-key"]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("--require-hardware-key refuses the key"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(w.emulator.stats()["requests"], 0, "nothing was sent");
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(["sign-string", "--require-hardware-key", "--private-key"])
        .arg(&leaf.key_path);
    let o = run(&mut cmd);
    assert_exit(&o, 3);
    assert!(stdout(&o).is_empty());
    // update and serve open the identity the same way, before their first signature.
    let credentials = w.dir.path().join("credentials");
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(["update", "--once", "--require-hardware-key"])
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials);
    let o = run(&mut cmd);
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("--require-hardware-key refuses the key"),
        "{}",
        stderr(&o)
    );
    assert!(!credentials.exists(), "nothing written");
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(["serve", "--port", "0", "--require-hardware-key"])
        .args(leaf.file_args())
        .args(w.emulator.session_args());
    let o = run(&mut cmd);
    assert_ne!(o.status.code(), Some(0), "serve refuses to start");
    assert!(
        stderr(&o).contains("--require-hardware-key refuses the key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.emulator.stats()["requests"], 0, "nothing was sent");
    // read-certificate-data signs nothing: the flag is refused there.
    let mut cmd = ra_signer(w.dir.path());
    cmd.args([
        "read-certificate-data",
        "--require-hardware-key",
        "--certificate",
    ])
    .arg(&leaf.cert_path);
    let o = run(&mut cmd);
    assert_exit(&o, 2);
}

#[cfg(feature = "pkcs11")]
mod token {
    use super::*;
    use crate::pkcs11::{Hsm, PIN, ca_file, count, fixture, spy_calls};
    use std::path::Path;
    use std::process::Command;

    fn token_doctor(hsm: &Hsm, emu: &Emulator, uri: &str, pin: &str, extra: &[&str]) -> Output {
        let mut cmd = hsm.cmd("doctor");
        cmd.env("RA_SIGNER_PKCS11_PIN", pin)
            .arg("--pkcs11-lib")
            .arg(&fixture().module)
            .arg("--pkcs11-uri")
            .arg(uri)
            .args(emu.session_args())
            .arg("--trust-anchor-ca")
            .arg(ca_file("root"))
            .args(extra);
        run(&mut cmd)
    }

    /// A key made in the token with the library's own tools, `flags` added.
    fn make_key(hsm: &Hsm, label: &str, id: &str, flags: &str) -> std::path::PathBuf {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("softhsm/lib.sh");
        let cert = hsm.path().join(format!("{label}.pem"));
        let script = format!(
            ". '{lib}'; SH_MODULE='{module}'; \
             sh_genkey ra-test {PIN} {label} {id} p256 {flags} && \
             sh_pubkey ra-test {PIN} {label} '{dir}/{label}.pub.pem' && \
             ca_issue '{ca}' '{dir}/{label}.pub.pem' '/O=ra-signer test/CN={label}' '{cert}'",
            lib = lib.display(),
            module = fixture().module.display(),
            dir = hsm.path().display(),
            ca = fixture().dir.join("ca").display(),
            cert = cert.display(),
        );
        let o = Command::new("bash")
            .args(["-c", &script])
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .expect("bash");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        cert
    }

    #[test]
    fn a_healthy_token_key_passes_and_its_extra_usages_are_flagged() {
        let hsm = Hsm::new();
        let emu = hsm.emulator();
        let o = token_doctor(
            &hsm,
            &emu,
            "pkcs11:token=ra-test;object=p256",
            PIN,
            &["--call", "--require-hardware-key"],
        );
        assert_exit(&o, 0);
        let text = stdout(&o);
        for name in [
            "certificate",
            "key matches certificate",
            "key mechanism",
            "key login",
            "chain",
            "clock skew",
            "call",
        ] {
            assert_mark(&text, name, "✔");
        }
        let protection = assert_mark(&text, "key protection", "✔");
        assert!(
            protection.contains("CKA_EXTRACTABLE=false, CKA_NEVER_EXTRACTABLE=true"),
            "{protection}"
        );
        assert!(line(&text, "key mechanism").contains("CKM_ECDSA"), "{text}");
        // pkcs11-tool's keys may also decrypt and unwrap: a warning, not a failure.
        let usages = assert_mark(&text, "key usages", "!");
        assert!(
            usages.contains("CKA_DECRYPT") || usages.contains("CKA_UNWRAP"),
            "{usages}"
        );
        // The chain came from the token.
        assert!(
            assert_mark(&text, "chain link", "✔").contains("intermediate CA"),
            "{text}"
        );
    }

    #[test]
    fn an_extractable_or_imported_token_key_fails_and_is_refused_by_the_policy() {
        let hsm = Hsm::new();
        let emu = hsm.emulator();
        let cert = make_key(&hsm, "extractable", "77", "--extractable");
        let uri = "pkcs11:token=ra-test;object=extractable";
        let o = token_doctor(
            &hsm,
            &emu,
            uri,
            PIN,
            &["--certificate", cert.to_str().expect("utf-8")],
        );
        assert_exit(&o, CHECKS_FAILED);
        let text = stdout(&o);
        let l = assert_mark(&text, "key protection", "✗");
        assert!(l.contains("CKA_EXTRACTABLE is true"), "{l}");
        assert!(fix_of(&text, "key protection").contains("keygen"), "{text}");
        // The policy refuses it before signing, and the imported key (once outside the token).
        for (uri, certificate, says) in [
            (uri, Some(&cert), "CKA_EXTRACTABLE is true"),
            (
                "pkcs11:token=ra-test;object=imported",
                None,
                "CKA_NEVER_EXTRACTABLE is false",
            ),
        ] {
            let mut cmd = hsm.with_pin("credential-process");
            cmd.arg("--pkcs11-uri")
                .arg(uri)
                .args(emu.session_args())
                .arg("--require-hardware-key");
            if let Some(c) = certificate {
                cmd.arg("--certificate").arg(c);
            }
            let o = run(&mut cmd);
            assert_exit(&o, 3);
            let err = stderr(&o);
            assert!(
                err.contains("--require-hardware-key refuses the key") && err.contains(says),
                "{err}"
            );
        }
        assert_eq!(emu.stats()["requests"], 0, "nothing was signed or sent");
    }

    #[test]
    fn a_wrong_pin_fails_the_login_once() {
        let hsm = Hsm::new();
        let emu = hsm.emulator();
        let o = token_doctor(&hsm, &emu, "pkcs11:token=ra-test;object=p256", "4321", &[]);
        assert_exit(&o, CHECKS_FAILED);
        let text = stdout(&o);
        let l = assert_mark(&text, "key login", "✗");
        assert!(l.contains("CKR_PIN_INCORRECT"), "{l}");
        assert!(!text.contains("4321"), "{text}");
        // Through pkcs11-spy: exactly one C_Login, never retried.
        let (mut cmd, log) = hsm.spied("doctor").expect("spy");
        let o = run(cmd
            .env("RA_SIGNER_PKCS11_PIN", "4321")
            .args(["--pkcs11-uri", "pkcs11:token=ra-test;object=p256"])
            .args(emu.session_args()));
        assert_exit(&o, CHECKS_FAILED);
        assert_eq!(count(&spy_calls(&log), "C_Login"), 1, "one login");
        // The token counted the failures, and the right PIN still works.
        let o = token_doctor(&hsm, &emu, "pkcs11:token=ra-test;object=p256", PIN, &[]);
        assert_exit(&o, 0);
    }

    #[test]
    fn keygen_makes_a_signing_only_token_key() {
        let hsm = Hsm::new();
        let emu = hsm.emulator();
        let csr = hsm.path().join("new.csr");
        let mut cmd = hsm.with_pin("keygen");
        let o = run(cmd
            .args(["--pkcs11-uri", "pkcs11:token=ra-other;object=least;id=%51"])
            .args(["--subject", "CN=least"])
            .arg("--csr-out")
            .arg(&csr));
        assert_exit(&o, 0);
        let listing = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&fixture().module)
            .args(["--token-label", "ra-other", "--login", "--pin", PIN])
            .args(["--list-objects"])
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .expect("pkcs11-tool");
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        let usages: Vec<String> = listing
            .split("Object")
            .filter(|o| o.contains("label:      least"))
            .filter_map(|o| {
                o.lines()
                    .find_map(|l| l.trim().strip_prefix("Usage:").map(|u| u.trim().to_owned()))
            })
            .collect();
        // The private key signs, the public key verifies (listed in either order).
        let mut usages = usages;
        usages.sort();
        assert_eq!(usages, ["sign", "verify"], "{listing}");
        // The doctor agrees: signing only.
        let ca = fixture().dir.join("ca");
        let cert = hsm.path().join("least.pem");
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().expect("utf-8"),
            "-CA",
            ca.join("int.pem").to_str().expect("utf-8"),
            "-CAkey",
            ca.join("int.key").to_str().expect("utf-8"),
            "-set_serial",
            "0x5151",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            ca.join("leaf.ext").to_str().expect("utf-8"),
            "-out",
            cert.to_str().expect("utf-8"),
        ]);
        let o = token_doctor(
            &hsm,
            &emu,
            "pkcs11:token=ra-other;object=least",
            PIN,
            &[
                "--certificate",
                cert.to_str().expect("utf-8"),
                "--intermediates",
                ca.join("int.pem").to_str().expect("utf-8"),
            ],
        );
        assert_exit(&o, 0);
        let text = stdout(&o);
        assert!(
            assert_mark(&text, "key usages", "✔").contains("signing only"),
            "{text}"
        );
    }
}

#[cfg(feature = "tpm")]
mod tpm {
    use super::*;
    use crate::common::swtpm::Swtpm;
    use std::path::Path;
    use std::process::Command;

    /// A duplicable TPM key (fixedTPM and fixedParent clear) that may also decrypt: the
    /// protection check fails, the usages are flagged, and the policy refuses it.
    #[test]
    fn a_duplicable_tpm_key_fails_and_is_refused_by_the_policy() {
        let tpm = Swtpm::provisioned();
        let files = tpm.files();
        let dir = tempdir();
        let emulator = Emulator::start(dir.path(), &[&files.join("ca/root.pem")], &[]);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let key = dir.path().join("weak.key");
        let cert = dir.path().join("weak.pem");
        let script = format!(
            ". '{lib}'; . '{tpmlib}'; \
             tpm_tools_key 0x81000001 p256 '{key}' '' '' 'sensitivedataorigin|userwithauth|sign|decrypt' && \
             ca_issue '{ca}' '{dir}/weak.pub.pem' '/O=ra-signer test/CN=weak' '{cert}'",
            lib = repo.join("softhsm/lib.sh").display(),
            tpmlib = repo.join("softhsm/swtpm-lib.sh").display(),
            key = key.display(),
            ca = files.join("ca").display(),
            dir = dir.path().display(),
            cert = cert.display(),
        );
        let o = tpm
            .tool("bash")
            .args(["-c", &script])
            .output()
            .expect("bash");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let identity = |cmd: &mut Command| {
            cmd.arg("--certificate")
                .arg(&cert)
                .arg("--private-key")
                .arg(&key)
                .arg("--intermediates")
                .arg(files.join("ca/int.pem"))
                .args(["--tpm-tcti", &tpm.tcti(), "--no-tpm-key-password"])
                .args(emulator.session_args());
        };
        let mut cmd = ra_signer(dir.path());
        cmd.arg("doctor");
        identity(&mut cmd);
        let o = run(&mut cmd);
        assert_exit(&o, CHECKS_FAILED);
        let text = stdout(&o);
        let l = assert_mark(&text, "key protection", "✗");
        assert!(l.contains("fixedTPM is clear, fixedParent is clear"), "{l}");
        assert!(
            assert_mark(&text, "key usages", "!").contains("decrypt"),
            "{text}"
        );
        // It still signs without the policy, and is refused with it before anything is sent.
        let mut cmd = ra_signer(dir.path());
        cmd.arg("credential-process");
        identity(&mut cmd);
        assert_process_json(&run(&mut cmd));
        let mut cmd = ra_signer(dir.path());
        cmd.args(["credential-process", "--require-hardware-key"]);
        identity(&mut cmd);
        let o = run(&mut cmd);
        assert_exit(&o, 3);
        assert!(
            stderr(&o).contains("--require-hardware-key refuses the key"),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            emulator.stats()["requests"],
            1,
            "only the run without the policy"
        );
    }

    #[test]
    fn a_healthy_tpm_key_made_by_keygen_passes_every_check() {
        let tpm = Swtpm::fresh();
        let w = World::new(&[]);
        let d = |name: &str| w.dir.path().join(name);
        let o = run(ra_signer(w.dir.path())
            .args([
                "keygen",
                "--tpm",
                "--key-type",
                "p256",
                "--subject",
                "CN=tpm-doctor",
            ])
            .arg("--out")
            .arg(d("key.tss2.pem"))
            .arg("--csr-out")
            .arg(d("key.csr"))
            .args(["--tpm-tcti", &tpm.tcti()]));
        assert_exit(&o, 0);
        std::fs::write(
            d("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .expect("ext");
        let ca_key = d("Test_Root_CA.key.pem");
        openssl(&[
            "x509",
            "-req",
            "-in",
            d("key.csr").to_str().expect("utf-8"),
            "-CA",
            w.ca.cert_path.to_str().expect("utf-8"),
            "-CAkey",
            ca_key.to_str().expect("utf-8"),
            "-set_serial",
            "4343",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            d("leaf.ext").to_str().expect("utf-8"),
            "-out",
            d("key.pem").to_str().expect("utf-8"),
        ]);
        let leaf = Leaf {
            key_path: d("key.tss2.pem"),
            cert_path: d("key.pem"),
            der: Vec::new(),
        };
        let mut extra = anchor(&w);
        extra.extend([
            "--call".into(),
            "--require-hardware-key".into(),
            "--no-tpm-key-password".into(),
            "--tpm-tcti".into(),
            tpm.tcti(),
        ]);
        let o = doctor(
            &w,
            &leaf,
            &extra.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_exit(&o, 0);
        let text = stdout(&o);
        let protection = assert_mark(&text, "key protection", "✔");
        assert!(
            protection.contains("fixedTPM=true, fixedParent=true, sensitiveDataOrigin=true"),
            "{protection}"
        );
        for name in ["key matches certificate", "key parent", "chain", "call"] {
            assert_mark(&text, name, "✔");
        }
        // keygen's TPM key signs and does not decrypt.
        assert!(
            assert_mark(&text, "key usages", "✔").contains("signing only"),
            "{text}"
        );
        // The certificate expires in two days: a warning.
        assert_mark(&text, "certificate validity", "!");
    }
}

/// A real HTTP CONNECT proxy on loopback that tunnels every request to `upstream`, whatever
/// host it names (so a service-like name can reach the emulator). Returns its port and the
/// request lines it has seen; its threads end with the test binary.
fn tunnelling_proxy(
    upstream: std::net::SocketAddr,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let record = std::sync::Arc::clone(&record);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().expect("clone"));
                let mut request = String::new();
                if reader.read_line(&mut request).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                record
                    .lock()
                    .expect("seen")
                    .push(request.trim_end().to_owned());
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    return;
                };
                let mut to_client = client;
                if to_client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .is_err()
                {
                    return;
                }
                let (mut from_server, mut to_server) = (server.try_clone().expect("clone"), server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut to_server);
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, seen)
}

#[test]
fn the_proxy_path_is_checked_and_the_call_goes_through_it() {
    // The endpoint's name resolves nowhere: only the proxy can reach it.
    let name = "rolesanywhere.emulator.invalid";
    let w = World::new(&["--tls-name", name]);
    let leaf = w.leaf("proxied", KeyKind::P256);
    let upstream: std::net::SocketAddr = w
        .emulator
        .url
        .trim_start_matches("https://")
        .parse()
        .expect("emulator address");
    let port = upstream.port();
    let (proxy_port, seen) = tunnelling_proxy(upstream);
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("doctor")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--endpoint", &format!("https://{name}:{port}"), "--call"])
        .env(
            "HTTPS_PROXY",
            format!("http://proxyuser:pr0xy-pw@127.0.0.1:{proxy_port}"),
        );
    let out = run(&mut cmd);
    let text = stdout(&out);
    assert_exit(&out, 0);
    let proxy_line = assert_mark(&text, "network proxy", "✔");
    assert!(
        proxy_line.contains(&format!("http://127.0.0.1:{proxy_port}")),
        "{proxy_line}"
    );
    assert!(
        !text.contains("pr0xy-pw") && !text.contains("proxyuser"),
        "the proxy's password is never shown: {text}"
    );
    assert!(
        line(&text, "network dns").contains("127.0.0.1"),
        "DNS is checked for the proxy, not the endpoint: {text}"
    );
    for name in ["network tcp", "network tls", "clock skew", "call"] {
        assert_mark(&text, name, "✔");
    }
    let seen = seen.lock().expect("seen").clone();
    assert!(!seen.is_empty(), "the proxy was used");
    assert!(
        seen.iter()
            .all(|r| r.starts_with(&format!("CONNECT {name}:{port} "))),
        "{seen:?}"
    );
    assert_eq!(w.emulator.stats()["issued"], 1, "--call got credentials");
}

#[test]
fn a_duration_beyond_the_profiles_limit_is_explained_by_the_call() {
    let w = World::new(&["--max-duration", "900"]);
    let leaf = w.leaf("long", KeyKind::P256);
    let out = doctor(&w, &leaf, &["--session-duration", "3600", "--call"]);
    assert_exit(&out, CHECKS_FAILED);
    let text = stdout(&out);
    assert_mark(&text, "request", "✔");
    let call = assert_mark(&text, "call", "✗");
    assert!(
        call.contains("(900)"),
        "the service names its limit: {call}"
    );
    assert!(
        fix_of(&text, "call").contains("--session-duration"),
        "{text}"
    );
    let out = doctor(&w, &leaf, &["--session-duration", "900", "--call"]);
    assert_exit(&out, 0);
}
