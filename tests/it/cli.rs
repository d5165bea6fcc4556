//! `credential-process`, `sign-string`, `read-certificate-data` and `version` against the
//! emulator, with file keys: the happy paths and every kind of bad input.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn credential_process_with_each_file_key_type() {
    let w = World::new(&[]);
    for kind in [
        KeyKind::Rsa2048,
        KeyKind::Rsa3072,
        KeyKind::P256,
        KeyKind::P384,
    ] {
        let leaf = w.leaf(&format!("leaf-{kind:?}"), kind);
        let out = w.credential_process(&leaf, &[]);
        let json = assert_process_json(&out);
        assert!(
            json["Expiration"]
                .as_str()
                .is_some_and(|e| e.ends_with('Z'))
        );
        assert!(
            stderr(&out).is_empty(),
            "stderr stays quiet: {}",
            stderr(&out)
        );
    }
    assert_eq!(w.emulator.stats()["issued"], 4);
}

#[test]
fn serials_of_every_shape_are_sent_in_decimal() {
    let w = World::new(&[]);
    for serial in [vec![0x01], vec![0x7f; 20], vec![0x00, 0x80, 0x01]] {
        let opts = LeafOptions {
            serial: serial.clone(),
            ..LeafOptions::default()
        };
        let leaf = w.ca.leaf(
            w.dir.path(),
            &format!("serial-{}", unique()),
            KeyKind::P256,
            &opts,
        );
        assert_process_json(&w.credential_process(&leaf, &[]));
    }
    assert_eq!(w.emulator.stats()["issued"], 3);
}

#[test]
fn session_duration_and_role_session_name_reach_the_service() {
    let w = World::new(&["--max-duration", "7200"]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let out = w.credential_process(
        &leaf,
        &[
            "--session-duration",
            "7200",
            "--role-session-name",
            "build-42",
        ],
    );
    assert_process_json(&out);
    let too_long = w.credential_process(&leaf, &["--session-duration", "7201"]);
    assert_exit(&too_long, 4);
    assert!(
        stderr(&too_long).contains("ValidationException"),
        "{}",
        stderr(&too_long)
    );
    assert!(
        stderr(&too_long)
            .contains("hint: the profile allows shorter sessions than --session-duration asks for"),
        "{}",
        stderr(&too_long)
    );
}

#[test]
fn role_session_name_refused_by_profile() {
    let w = World::new(&["--deny-role-session-name"]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let out = w.credential_process(&leaf, &["--role-session-name", "nope"]);
    assert_exit(&out, 4);
    assert!(
        stderr(&out).contains("acceptRoleSessionName"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn intermediates_are_needed_and_sent_in_order() {
    let w = World::new(&[]);
    let inter = w.ca.intermediate(w.dir.path(), "Issuing CA");
    let leaf = inter.leaf(
        w.dir.path(),
        "via-intermediate",
        KeyKind::P256,
        &LeafOptions::default(),
    );

    let without = w.credential_process(&leaf, &[]);
    assert_exit(&without, 4);
    let err = stderr(&without);
    assert!(err.contains("Untrusted Signing Certificate"), "{err}");
    assert!(
        err.contains("no intermediate certificates were sent"),
        "{err}"
    );
    assert!(err.contains("--intermediates"), "{err}");

    let inter_path = inter.cert_path.to_str().expect("utf-8");
    assert_process_json(&w.credential_process(&leaf, &["--intermediates", inter_path]));

    // A certificate file holding the leaf then its issuer: the chain comes from it.
    let bundle = w.dir.path().join("leaf-and-chain.pem");
    let mut text = std::fs::read_to_string(&leaf.cert_path).expect("leaf");
    text.push_str(&std::fs::read_to_string(&inter.cert_path).expect("inter"));
    std::fs::write(&bundle, text).expect("bundle");
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .arg("--certificate")
        .arg(&bundle)
        .arg("--private-key")
        .arg(&leaf.key_path)
        .args(w.emulator.session_args());
    assert_process_json(&run(&mut cmd));
}

#[test]
fn one_pem_with_certificate_and_key() {
    let w = World::new(&[]);
    let leaf = w.leaf("combined", KeyKind::Rsa2048);
    let combined = w.dir.path().join("combined.pem");
    let mut text = std::fs::read_to_string(&leaf.key_path).expect("key");
    text.push_str(&std::fs::read_to_string(&leaf.cert_path).expect("cert"));
    std::fs::write(&combined, text).expect("write");
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .arg("--certificate")
        .arg(&combined)
        .args(w.emulator.session_args());
    assert_process_json(&run(&mut cmd));
}

#[test]
fn mismatched_key_and_certificate_are_refused_before_sending() {
    let w = World::new(&[]);
    let a = w.leaf("a", KeyKind::P256);
    let b = w.leaf("b", KeyKind::P256);
    let rsa = w.leaf("r", KeyKind::Rsa2048);
    for other_key in [&b.key_path, &rsa.key_path] {
        let mut cmd = ra_signer(w.dir.path());
        cmd.arg("credential-process")
            .arg("--certificate")
            .arg(&a.cert_path)
            .arg("--private-key")
            .arg(other_key)
            .args(w.emulator.session_args());
        let out = run(&mut cmd);
        assert_exit(&out, 3);
        let err = stderr(&out);
        assert!(
            err.contains("does not match the certificate \"CN=a\""),
            "{err}"
        );
        assert!(
            err.contains(other_key.to_str().expect("utf-8")),
            "names the key file: {err}"
        );
    }
    assert_eq!(w.emulator.stats()["requests"], 0, "nothing was sent");
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let w = World::new(&[]);
    for (name, nb, na, says) in [
        (
            "expired",
            (2001, 1, 1),
            (2002, 1, 1),
            "expired on 2002-01-01",
        ),
        (
            "future",
            (2080, 1, 1),
            (2090, 1, 1),
            "not valid before 2080-01-01",
        ),
    ] {
        let opts = LeafOptions {
            not_before: nb,
            not_after: na,
            ..LeafOptions::default()
        };
        let leaf = w.ca.leaf(w.dir.path(), name, KeyKind::P256, &opts);
        let out = w.credential_process(&leaf, &[]);
        assert_exit(&out, 3);
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}

#[test]
fn missing_garbled_and_wrong_files() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let garbage = w.dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let text = w.dir.path().join("text.txt");
    std::fs::write(&text, "hello\n").expect("write");
    let missing = w.dir.path().join("missing.pem");
    let cases: [(&std::path::Path, &std::path::Path, &str); 5] = [
        (&missing, &leaf.key_path, "cannot read certificate file"),
        (&garbage, &leaf.key_path, "malformed certificate"),
        (&text, &leaf.key_path, "holds no certificate"),
        (&leaf.cert_path, &missing, "cannot read key file"),
        (&leaf.cert_path, &text, "not a private key"),
    ];
    for (cert, key, says) in cases {
        let mut cmd = ra_signer(w.dir.path());
        cmd.arg("credential-process")
            .arg("--certificate")
            .arg(cert)
            .arg("--private-key")
            .arg(key)
            .args(w.emulator.session_args());
        let out = run(&mut cmd);
        assert_exit(&out, 3);
        let err = stderr(&out);
        assert!(err.contains(says), "expected {says:?} in: {err}");
        assert!(
            err.contains("hint:") || says == "not a private key",
            "a hint: {err}"
        );
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn malformed_arns_and_options_are_usage_errors() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let cases: [(&[&str], &str); 5] = [
        (&["--role-arn", "arn:aws:iam::123:role/x"], "12 digits"),
        (
            &["--trust-anchor-arn", "not-an-arn"],
            "--trust-anchor-arn \"not-an-arn\" is malformed",
        ),
        (
            &[
                "--profile-arn",
                "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/x",
            ],
            "same region",
        ),
        (&["--session-duration", "60"], "900..43200"),
        (&["--region", "Mars"], "not an AWS region"),
    ];
    for (extra, says) in cases {
        let out = w.credential_process(&leaf, extra);
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains(says),
            "expected {says:?} in {}",
            stderr(&out)
        );
    }
    assert_eq!(w.emulator.stats()["requests"], 0);
}

#[test]
fn unknown_role_and_wrong_trust_anchor_are_rejections() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let out = w.credential_process(
        &leaf,
        &["--role-arn", "arn:aws:iam::123456789012:role/other"],
    );
    assert_exit(&out, 4);
    assert!(
        stderr(&out).contains("AccessDeniedException"),
        "{}",
        stderr(&out)
    );

    let out = w.credential_process(
        &leaf,
        &[
            "--trust-anchor-arn",
            "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/other",
        ],
    );
    assert_exit(&out, 4);
    assert!(
        stderr(&out).contains("ResourceNotFoundException"),
        "{}",
        stderr(&out)
    );

    // A certificate from a CA the trust anchor does not hold.
    let other_ca = Ca::root(w.dir.path(), "Other CA");
    let stranger = other_ca.leaf(
        w.dir.path(),
        "stranger",
        KeyKind::P256,
        &LeafOptions::default(),
    );
    let out = w.credential_process(&stranger, &[]);
    assert_exit(&out, 4);
    let err = stderr(&out);
    assert!(
        err.contains("Untrusted Signing Certificate") && err.contains("CN=Other CA"),
        "{err}"
    );
}

#[test]
fn endpoint_down_fails_fast_with_network_exit_code() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let port = closed_port();
    let start = Instant::now();
    let out = w.credential_process(
        &leaf,
        &[
            "--endpoint",
            &format!("https://127.0.0.1:{port}"),
            "--max-attempts",
            "2",
        ],
    );
    assert_exit(&out, 5);
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach") && err.contains("hint:"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn untrusted_tls_certificate_hints_at_ca_bundle() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    // Trusting a CA that did not issue the emulator's TLS certificate.
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .args(leaf.file_args())
        .args(w.emulator.arn_args())
        .arg("--ca-bundle")
        .arg(&w.ca.cert_path);
    let out = run(&mut cmd);
    assert_exit(&out, 5);
    assert!(stderr(&out).contains("--ca-bundle"), "{}", stderr(&out));

    // --no-verify-ssl gets through.
    let out = w.credential_process(&leaf, &["--no-verify-ssl"]);
    assert_process_json(&out);
}

#[test]
fn throttling_and_5xx_are_retried_then_reported() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    w.emulator.set_faults(&["throttle:1", "status=503:1"]);
    assert_process_json(&w.credential_process(&leaf, &[]));
    assert_eq!(w.emulator.stats()["issued"], 1);

    w.emulator.set_faults(&["status=500"]);
    let out = w.credential_process(&leaf, &["--max-attempts", "3"]);
    assert_exit(&out, 5);
    assert!(stderr(&out).contains("HTTP 500"), "{}", stderr(&out));
    assert!(stderr(&out).contains("attempt 2 of 3"), "{}", stderr(&out));
}

#[test]
fn garbage_and_empty_answers_are_clear_errors() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    for (fault, says) in [
        ("garbage", "not JSON"),
        ("empty-set", "empty credentialSet"),
    ] {
        w.emulator.set_faults(&[fault]);
        let out = w.credential_process(&leaf, &["--max-attempts", "1"]);
        assert_exit(&out, 5);
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn slow_endpoint_times_out() {
    let w = World::new(&["--fault", "delay=5000"]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let start = Instant::now();
    let out = w.credential_process(&leaf, &["--request-timeout", "1", "--max-attempts", "1"]);
    assert_exit(&out, 5);
    assert!(
        stderr(&out).contains("no answer within 1 s"),
        "{}",
        stderr(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn debug_shows_signing_stages_and_no_secret() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let out = w.credential_process(&leaf, &["--debug"]);
    let json = assert_process_json(&out);
    let err = stderr(&out);
    assert!(
        err.contains("canonical request:\nPOST\n/sessions\nprofileArn=arn%3Aaws%3Arolesanywhere"),
        "{err}"
    );
    assert!(
        err.contains("string to sign:\nAWS4-X509-ECDSA-SHA256\n"),
        "{err}"
    );
    for secret in ["SecretAccessKey", "SessionToken", "AccessKeyId"] {
        let value = json[secret].as_str().expect("field");
        assert!(!err.contains(value), "{secret} leaked into --debug output");
    }
}

#[test]
fn sign_string_verifies_against_the_certificate() {
    let dir = tempdir();
    let ca = Ca::root(dir.path(), "CA");
    for kind in [KeyKind::Rsa2048, KeyKind::P256, KeyKind::P384] {
        let leaf = ca.leaf(
            dir.path(),
            &format!("s-{kind:?}"),
            kind,
            &LeafOptions::default(),
        );
        let mut cmd = ra_signer(dir.path());
        cmd.arg("sign-string")
            .arg("--private-key")
            .arg(&leaf.key_path)
            .args(["--format", "text"]);
        let out = run(&mut cmd);
        assert_exit(&out, 0);
        let sig = hex_decode(&stdout(&out));
        let cert = ra_signer::cert::Cert::from_der(&leaf.der, "leaf").expect("cert");
        let mut message = b"AWS Roles Anywhere Credential Helper Signing Test1".to_vec();
        let mut tagged = b"IAM RA".to_vec();
        tagged.extend_from_slice(cert.public_key_bits());
        message.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &tagged).as_ref());
        let alg: &dyn ring::signature::VerificationAlgorithm = match kind {
            KeyKind::P256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
            KeyKind::P384 => &ring::signature::ECDSA_P384_SHA256_ASN1,
            _ => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        };
        ring::signature::UnparsedPublicKey::new(alg, cert.public_key_bits())
            .verify(&message, &sig)
            .expect("the signature verifies");
    }
}

#[test]
fn sign_string_formats_and_digests() {
    let dir = tempdir();
    let ca = Ca::root(dir.path(), "CA");
    let leaf = ca.leaf(dir.path(), "rsa", KeyKind::Rsa2048, &LeafOptions::default());
    let sign = |extra: &[&str]| {
        let mut cmd = ra_signer(dir.path());
        cmd.arg("sign-string")
            .arg("--private-key")
            .arg(&leaf.key_path)
            .args(extra);
        run(&mut cmd)
    };
    // As the Go helper's code prints them: no line ending, and json unless told otherwise.
    let text = sign(&["--digest", "SHA512", "--format", "text"]);
    assert_exit(&text, 0);
    let hex = stdout(&text);
    assert_eq!(hex.len(), 512, "RSA-2048 signature in hex, nothing more");
    let json = sign(&["--digest", "SHA512", "--format", "json"]);
    assert_eq!(
        stdout(&json),
        format!("\"{hex}\""),
        "PKCS#1 v1.5 is deterministic"
    );
    let default = sign(&["--digest", "SHA512"]);
    assert_eq!(
        stdout(&default),
        stdout(&json),
        "the default format is json"
    );
    let bin = sign(&["--digest", "SHA512", "--format", "bin"]);
    assert_eq!(bin.stdout, hex_decode(&hex));
    assert_exit(&sign(&["--digest", "MD5"]), 2);
}

#[test]
fn read_certificate_data_matches_the_go_helper_shape() {
    let dir = tempdir();
    let ca = Ca::root(dir.path(), "CA");
    let opts = LeafOptions {
        serial: vec![
            0x15, 0xD1, 0x96, 0x32, 0x23, 0x4B, 0xF7, 0x59, 0xA3, 0x28, 0x02, 0xC0, 0xDA, 0x88,
            0xF9, 0xE8, 0xAF, 0xC8, 0x70, 0x2D,
        ],
        ..LeafOptions::default()
    };
    let leaf = ca.leaf(dir.path(), "rcd", KeyKind::P256, &opts);
    let mut cmd = ra_signer(dir.path());
    cmd.arg("read-certificate-data")
        .arg("--certificate")
        .arg(&leaf.cert_path);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["keyType"], "EC");
    assert_eq!(
        v["serialNumber"],
        "124562745837719059303232313298209415765143613485"
    );
    assert_eq!(
        v["supportedAlgorithms"],
        serde_json::json!(["ECSHA256", "ECSHA384", "ECSHA512"])
    );
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(v["certificateData"].as_str().expect("b64"))
            .expect("base64"),
        leaf.der
    );
}

#[test]
fn help_and_version_and_usage_errors() {
    let dir = tempdir();
    let help = run(ra_signer(dir.path())
        .arg("credential-process")
        .arg("--help"));
    assert_exit(&help, 0);
    let text = stdout(&help);
    for flag in [
        "--certificate",
        "--private-key",
        "--intermediates",
        "--trust-anchor-arn",
        "--profile-arn",
        "--role-arn",
        "--session-duration",
        "--role-session-name",
        "--region",
        "--endpoint",
        "--no-verify-ssl",
        "--with-proxy",
        "--debug",
        "--pkcs11-lib",
        "--reuse-pin",
        "--tpm-key-password",
        "--no-tpm-key-password",
        "--pkcs8-password",
        "--pkcs11-uri",
        "--ca-bundle",
        "--fips",
    ] {
        assert!(
            text.contains(flag),
            "credential-process --help lists {flag}"
        );
    }
    let top = run(ra_signer(dir.path()).arg("--help"));
    assert!(stdout(&top).contains("Exit codes: 0 success"));
    let version = run(ra_signer(dir.path()).arg("version"));
    assert_eq!(
        stdout(&version),
        format!("ra-signer {}\n", env!("CARGO_PKG_VERSION"))
    );
    let bad = run(ra_signer(dir.path()).arg("credential-process"));
    assert_exit(&bad, 2);
    assert!(stderr(&bad).contains("--trust-anchor-arn"));
    assert!(bad.stdout.is_empty());
}

pub(crate) fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn system_trust_store_honours_ssl_cert_file_and_loopback_skips_proxies() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let dead_proxy = format!("http://127.0.0.1:{}", closed_port());
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .args(leaf.file_args())
        .args(w.emulator.arn_args())
        .env("SSL_CERT_FILE", &w.emulator.tls_ca)
        .env("SSL_CERT_DIR", w.dir.path().join("no-such-dir"))
        .env("HTTPS_PROXY", &dead_proxy)
        .env("https_proxy", &dead_proxy);
    assert_process_json(&run(&mut cmd));
}

/// The system store is the union of `$SSL_CERT_FILE` and `$SSL_CERT_DIR`: a CA found only
/// in the directory (read when the file's CAs do not verify the endpoint) is trusted, and
/// one in neither is refused with the hint.
#[test]
fn system_trust_store_is_the_union_of_file_and_directories() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let certs = w.dir.path().join("certs");
    std::fs::create_dir(&certs).expect("mkdir");
    // Other CAs in the file, the emulator's only in the directory, behind a hash-named link.
    let file = w.dir.path().join("bundle.pem");
    std::fs::copy(&w.ca.cert_path, &file).expect("copy");
    std::fs::copy(&w.emulator.tls_ca, certs.join("emulator-ca.pem")).expect("copy");
    std::os::unix::fs::symlink("emulator-ca.pem", certs.join("0a1b2c3d.0")).expect("symlink");
    let run_with = |dir: &std::path::Path| {
        let mut cmd = ra_signer(w.dir.path());
        cmd.arg("credential-process")
            .args(leaf.file_args())
            .args(w.emulator.arn_args())
            .env_remove("AWS_CA_BUNDLE")
            .env("SSL_CERT_FILE", &file)
            .env("SSL_CERT_DIR", dir);
        run(&mut cmd)
    };
    assert_process_json(&run_with(&certs));
    let empty = w.dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let refused = run_with(&empty);
    assert_exit(&refused, 5);
    assert!(
        stderr(&refused).contains("--ca-bundle"),
        "{}",
        stderr(&refused)
    );
    assert!(refused.stdout.is_empty());
}

/// Help text is part of the product: each command's `--help` is compared with
/// tests/snapshots/help-<command>.txt. After a deliberate change, regenerate them with
/// `RA_SIGNER_UPDATE_SNAPSHOTS=1 cargo test --test it help_snapshots` and review the diff.
#[test]
fn help_snapshots() {
    let dir = tempdir();
    let snapshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("RA_SIGNER_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for command in [
        "",
        "credential-process",
        "sign-string",
        "read-certificate-data",
        "serve",
        "update",
        "keygen",
        "version",
        "exec",
        "cache",
        "cache list",
        "cache clear",
        "doctor",
        "completions",
        "man",
    ] {
        let mut cmd = ra_signer(dir.path());
        cmd.args(command.split_whitespace());
        let out = run(cmd.arg("--help").env("COLUMNS", "100"));
        assert_exit(&out, 0);
        let name = if command.is_empty() {
            "ra-signer".to_owned()
        } else {
            command.replace(' ', "-")
        };
        let path = snapshots.join(format!("help-{name}.txt"));
        if update {
            std::fs::create_dir_all(&snapshots).expect("snapshots dir");
            std::fs::write(&path, &out.stdout).expect("write snapshot");
        } else if std::fs::read(&path).ok().as_deref() != Some(&out.stdout[..]) {
            stale.push(format!("{}:\n{}", path.display(), stdout(&out)));
        }
    }
    assert!(
        stale.is_empty(),
        "help text differs from its snapshot (RA_SIGNER_UPDATE_SNAPSHOTS=1 regenerates):\n{}",
        stale.join("\n")
    );
}
