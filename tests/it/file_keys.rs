//! Key files through the CLI: encrypted PKCS#8 and PKCS#12 with every password source,
//! wrong passwords, and headless runs that must not prompt.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

fn encrypt_pkcs8(key: &Path, out: &Path, password: &str) {
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-v2prf",
        "hmacWithSHA256",
        "-in",
        key.to_str().expect("utf-8"),
        "-out",
        out.to_str().expect("utf-8"),
        "-passout",
        &format!("pass:{password}"),
    ]);
}

fn pkcs12(leaf: &Leaf, out: &Path, password: &str, legacy: bool) {
    let mut args = vec![
        "pkcs12",
        "-export",
        "-inkey",
        leaf.key_path.to_str().expect("utf-8"),
        "-in",
        leaf.cert_path.to_str().expect("utf-8"),
        "-out",
        out.to_str().expect("utf-8"),
    ];
    let pass = format!("pass:{password}");
    args.extend(["-passout", &pass]);
    if legacy {
        args.push("-legacy");
    }
    openssl(&args);
}

fn with_key(w: &World, cert: Option<&Path>, key: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process");
    if let Some(c) = cert {
        cmd.arg("--certificate").arg(c);
    }
    cmd.arg("--private-key")
        .arg(key)
        .args(w.emulator.session_args())
        .args(extra);
    cmd
}

#[test]
fn encrypted_pkcs8_with_each_password_source() {
    let w = World::new(&[]);
    let leaf = w.leaf("enc", KeyKind::P256);
    let enc: PathBuf = w.dir.path().join("enc.p8.pem");
    encrypt_pkcs8(&leaf.key_path, &enc, "correct horse");
    let pw_file = w.dir.path().join("pw.txt");
    std::fs::write(&pw_file, "correct horse\n").expect("write");

    let out = run(&mut with_key(
        &w,
        Some(&leaf.cert_path),
        &enc,
        &["--pkcs8-password-file", pw_file.to_str().expect("utf-8")],
    ));
    assert_process_json(&out);

    let out = run(with_key(&w, Some(&leaf.cert_path), &enc, &[])
        .env("RA_SIGNER_PKCS8_PASSWORD", "correct horse"));
    assert_process_json(&out);

    let out = run(&mut with_key(
        &w,
        Some(&leaf.cert_path),
        &enc,
        &["--pkcs8-password", "correct horse"],
    ));
    assert_process_json(&out);
    assert!(
        stderr(&out).contains("visible to other users"),
        "warns: {}",
        stderr(&out)
    );
}

#[test]
fn wrong_password_is_one_clear_error() {
    let w = World::new(&[]);
    let leaf = w.leaf("enc", KeyKind::Rsa2048);
    let enc = w.dir.path().join("enc.p8.pem");
    encrypt_pkcs8(&leaf.key_path, &enc, "right");
    let out = run(
        with_key(&w, Some(&leaf.cert_path), &enc, &[]).env("RA_SIGNER_PKCS8_PASSWORD", "wrong")
    );
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("password") && err.contains("wrong"), "{err}");
    assert!(
        !err.contains("right") || err.contains("wrong"),
        "no password echoed"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn headless_run_without_password_fails_fast() {
    let w = World::new(&[]);
    let leaf = w.leaf("enc", KeyKind::P256);
    let enc = w.dir.path().join("enc.p8.pem");
    encrypt_pkcs8(&leaf.key_path, &enc, "pw");
    let start = Instant::now();
    let out = run(&mut with_key(&w, Some(&leaf.cert_path), &enc, &[]));
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("no terminal"), "{err}");
    assert!(
        err.contains("RA_SIGNER_PKCS8_PASSWORD"),
        "hint names the env var: {err}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn pkcs12_legacy_and_modern() {
    let w = World::new(&[]);
    for (legacy, kind) in [
        (true, KeyKind::Rsa2048),
        (false, KeyKind::P256),
        (false, KeyKind::P384),
    ] {
        let leaf = w.leaf(&format!("p12-{legacy}-{kind:?}"), kind);
        let p12 = w.dir.path().join(format!("bundle-{legacy}-{kind:?}.p12"));
        pkcs12(&leaf, &p12, "p12pass", legacy);
        // The certificate comes from the PKCS#12 file itself.
        let out = run(with_key(&w, None, &p12, &[]).env("RA_SIGNER_PKCS8_PASSWORD", "p12pass"));
        assert_process_json(&out);
        let out = run(with_key(&w, None, &p12, &[]).env("RA_SIGNER_PKCS8_PASSWORD", "nope"));
        assert_exit(&out, 3);
        assert!(stderr(&out).contains("wrong"), "{}", stderr(&out));
    }
}

#[test]
fn sec1_and_pkcs1_keys() {
    let w = World::new(&[]);
    let ec = w.leaf("sec1", KeyKind::P256);
    let sec1 = w.dir.path().join("sec1.pem");
    openssl(&[
        "ec",
        "-in",
        ec.key_path.to_str().expect("utf-8"),
        "-out",
        sec1.to_str().expect("utf-8"),
    ]);
    assert!(
        std::fs::read_to_string(&sec1)
            .expect("sec1")
            .contains("BEGIN EC PRIVATE KEY")
    );
    assert_process_json(&run(&mut with_key(&w, Some(&ec.cert_path), &sec1, &[])));

    let rsa = w.leaf("pkcs1", KeyKind::Rsa2048);
    let pkcs1 = w.dir.path().join("pkcs1.pem");
    openssl(&[
        "rsa",
        "-traditional",
        "-in",
        rsa.key_path.to_str().expect("utf-8"),
        "-out",
        pkcs1.to_str().expect("utf-8"),
    ]);
    assert!(
        std::fs::read_to_string(&pkcs1)
            .expect("pkcs1")
            .contains("BEGIN RSA PRIVATE KEY")
    );
    assert_process_json(&run(&mut with_key(&w, Some(&rsa.cert_path), &pkcs1, &[])));
}

#[test]
fn unsupported_key_type_is_named() {
    let w = World::new(&[]);
    let leaf = w.leaf("leaf", KeyKind::P256);
    let ed = w.dir.path().join("ed25519.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ED25519",
        "-out",
        ed.to_str().expect("utf-8"),
    ]);
    let out = run(&mut with_key(&w, Some(&leaf.cert_path), &ed, &[]));
    assert_exit(&out, 3);
    assert!(
        stderr(&out).to_lowercase().contains("unsupported"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn certificate_and_key_from_environment_variables() {
    use base64::Engine;
    let w = World::new(&[]);
    let leaf = w.leaf("from-env", KeyKind::P256);
    let cert_pem = std::fs::read_to_string(&leaf.cert_path).expect("cert");
    let key_pem = std::fs::read_to_string(&leaf.key_path).expect("key");
    let env_cmd = |cert: &str, key: &str| {
        let mut cmd = ra_signer(w.dir.path());
        cmd.args([
            "credential-process",
            "--certificate",
            "env:RA_CERT",
            "--private-key",
            "env:RA_KEY",
        ])
        .args(w.emulator.session_args())
        .env("RA_CERT", cert)
        .env("RA_KEY", key);
        cmd
    };
    // PEM text, as CI secret stores keep it.
    assert_process_json(&run(&mut env_cmd(&cert_pem, &key_pem)));
    // The base64 of DER.
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_der = openssl(&[
        "pkey",
        "-in",
        leaf.key_path.to_str().expect("utf-8"),
        "-outform",
        "DER",
    ])
    .stdout;
    assert_process_json(&run(&mut env_cmd(
        &b64.encode(&leaf.der),
        &b64.encode(&key_der),
    )));
    // An unset variable and garbage are clear identity errors.
    let mut cmd = env_cmd(&cert_pem, &key_pem);
    cmd.env_remove("RA_KEY");
    let out = run(&mut cmd);
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("the environment variable RA_KEY is not set"),
        "{}",
        stderr(&out)
    );
    let out = run(&mut env_cmd("not a certificate!", &key_pem));
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("RA_CERT holds neither PEM nor base64"),
        "{}",
        stderr(&out)
    );
}
