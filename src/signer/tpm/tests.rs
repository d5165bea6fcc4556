//! The TPM backend against real swtpm instances, with keys made by tpm2-openssl and
//! tpm2-tools, signatures checked with ring and OpenSSL (keys made by `keygen --tpm`:
//! `keygen::tpm`'s tests).

use std::path::PathBuf;

use super::swtpm::{Launch, Swtpm, command_name, fixture, serial};
use super::*;
use crate::cert::KeyType;
use crate::config::TpmSettings;
use crate::signer::{Digest, SignError, Signer};

/// The hint of a signing failure that kept the TPM backend's error (a refused password).
fn key_hint(e: &SignError) -> Option<String> {
    match e {
        SignError::TpmKey(e) => e.hint(),
        _ => None,
    }
}

/// The TCTI of `tpm`, as `--tpm-tcti` gives it.
fn tcti(tpm: &Swtpm) -> Tcti {
    Tcti::explicit(&tpm.tcti())
}

fn file(name: &str) -> PathBuf {
    fixture().files.join(name)
}

fn key_file(name: &str) -> KeyLocation {
    let path = file(&format!("{name}.key"));
    KeyLocation::File {
        key: read_key_file(&path).expect("fixture key file"),
        path,
    }
}

fn passwords(key: Option<&str>, parent: Option<&str>) -> Passwords {
    Passwords {
        key: key.map(|k| Secret::new(k.to_owned())),
        key_origin: "the test",
        parent: parent.map(|p| Secret::new(p.to_owned())),
    }
}

fn identity(
    tpm: &Swtpm,
    location: KeyLocation,
    pw: Passwords,
    cert: &str,
) -> Result<Identity, TpmError> {
    let leaf = Cert::first_from_file(&file(&format!("{cert}.pem")))?;
    let signer = TpmSigner::open(tcti(tpm), location, pw)?;
    let desc = signer.description().to_owned();
    Ok(Identity::new(leaf, Vec::new(), Box::new(signer), &desc)?)
}

fn verify(cert: &Cert, digest: Digest, message: &[u8], signature: &[u8]) {
    use ring::signature as sig;
    let alg: &dyn sig::VerificationAlgorithm = match (cert.key_type(), digest) {
        (KeyType::Rsa, Digest::Sha256) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (KeyType::Rsa, Digest::Sha384) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (KeyType::Rsa, Digest::Sha512) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (KeyType::EcP256, Digest::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
        (KeyType::EcP256, Digest::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
        (KeyType::EcP384, Digest::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (KeyType::EcP384, Digest::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
        other => panic!("no verifier for {other:?}"),
    };
    sig::UnparsedPublicKey::new(alg, cert.public_key_bits())
        .verify(message, signature)
        .unwrap_or_else(|_| {
            panic!(
                "signature does not verify ({:?} {digest:?})",
                cert.key_type()
            )
        });
}

fn sign_and_verify(id: &Identity, digest: Digest) {
    let message = b"AWS4-X509-ECDSA-SHA256\n20260101T000000Z\nscope\nhash";
    let signature = id.signer().sign(digest, message).expect("signs");
    verify(id.leaf(), digest, message, &signature);
}

#[test]
fn every_key_type_under_each_parent_kind() {
    let _serial = serial();
    let tpm = Swtpm::provisioned();
    let cases: Vec<(&str, KeyLocation, Passwords, KeyType)> = vec![
        // tpm2-openssl keys under the owner hierarchy (the SRK made on the fly).
        (
            "ossl-p256",
            key_file("ossl-p256"),
            passwords(None, None),
            KeyType::EcP256,
        ),
        (
            "ossl-p384",
            key_file("ossl-p384"),
            passwords(None, None),
            KeyType::EcP384,
        ),
        (
            "ossl-rsa",
            key_file("ossl-rsa"),
            passwords(None, None),
            KeyType::Rsa,
        ),
        // tpm2-tools keys under a persistent SRK.
        (
            "tools-p256",
            key_file("tools-p256"),
            passwords(None, None),
            KeyType::EcP256,
        ),
        (
            "tools-p384",
            key_file("tools-p384"),
            passwords(None, None),
            KeyType::EcP384,
        ),
        (
            "tools-rsa",
            key_file("tools-rsa"),
            passwords(None, None),
            KeyType::Rsa,
        ),
        // Key passwords, and a parent with a password.
        (
            "ossl-p256-pw",
            key_file("ossl-p256-pw"),
            passwords(Some("osslpw"), None),
            KeyType::EcP256,
        ),
        (
            "tools-p256-pw",
            key_file("tools-p256-pw"),
            passwords(Some("toolspw"), None),
            KeyType::EcP256,
        ),
        (
            "srkpw-p256",
            key_file("srkpw-p256"),
            passwords(None, Some("srkpw")),
            KeyType::EcP256,
        ),
        // Persistent keys, with and without a password.
        (
            "handle-p256",
            KeyLocation::Persistent(0x8100_0101),
            passwords(None, None),
            KeyType::EcP256,
        ),
        (
            "handle-p384",
            KeyLocation::Persistent(0x8100_0103),
            passwords(None, None),
            KeyType::EcP384,
        ),
        (
            "handle-rsa-pw",
            KeyLocation::Persistent(0x8100_0102),
            passwords(Some("handlepw"), None),
            KeyType::Rsa,
        ),
    ];
    for (cert, location, pw, key_type) in cases {
        let id = identity(&tpm, location, pw, cert).unwrap_or_else(|e| panic!("{cert}: {e}"));
        assert_eq!(id.signer().key_type(), key_type, "{cert}");
        sign_and_verify(&id, Digest::Sha256);
        sign_and_verify(&id, Digest::Sha384);
        if key_type == KeyType::Rsa {
            sign_and_verify(&id, Digest::Sha512);
        }
        drop(id);
        assert_eq!(
            tpm.transient_handles(),
            0,
            "{cert}: a transient object leaked"
        );
    }
}

#[test]
fn open_reads_the_config() {
    let _serial = serial();
    let tpm = Swtpm::provisioned();
    let config = IdentityConfig {
        certificate: Some(CertificateSource::File(file("ossl-p384.pem"))),
        private_key: PrivateKeySource::File(file("ossl-p384.key")),
        intermediates: Some(file("ca/int.pem")),
        key_password_sources: Vec::new(),
        pkcs11: Default::default(),
        tpm: TpmSettings {
            connection: crate::config::TpmConnection::explicit(&tpm.tcti()),
            parent_password_sources: vec![],
            key_password_sources: vec![SecretSource::Prompt],
            no_key_password: false,
        },
        require_hardware_key: false,
    };
    let id = open(&config).expect("opens");
    assert_eq!(id.chain().len(), 1);
    sign_and_verify(&id, Digest::Sha256);
    // swtpm serves one connection at a time: one identity open at once.
    drop(id);

    let handle = IdentityConfig {
        certificate: Some(CertificateSource::File(file("handle-rsa-pw.pem"))),
        private_key: PrivateKeySource::TpmHandle(0x8100_0102),
        tpm: TpmSettings {
            connection: crate::config::TpmConnection::explicit(&tpm.tcti()),
            parent_password_sources: vec![],
            key_password_sources: vec![SecretSource::Value(Secret::new("handlepw".into()))],
            no_key_password: false,
        },
        ..config.clone()
    };
    sign_and_verify(&open(&handle).expect("opens"), Digest::Sha256);

    // The wrong certificate is refused before anything is signed.
    let mismatch = IdentityConfig {
        certificate: Some(CertificateSource::File(file("ossl-p256.pem"))),
        ..config.clone()
    };
    let err = open(&mismatch).expect_err("mismatch");
    assert!(matches!(err, TpmError::Mismatch(_)), "{err}");

    let no_cert = IdentityConfig {
        certificate: None,
        ..config
    };
    assert!(matches!(
        open(&no_cert),
        Err(TpmError::CertificateSource(_))
    ));
}

#[test]
fn a_stalled_tpm_times_out_and_the_key_is_loaded_again() {
    let _serial = serial();
    use std::time::{Duration, Instant};
    let tpm = Swtpm::provisioned();
    let bounded = tcti(&tpm).with_timeout(Duration::from_secs(2));
    let signer =
        TpmSigner::open(bounded, key_file("ossl-p256"), passwords(None, None)).expect("opens");
    let hash = Digest::Sha256.hash(b"message");
    signer.sign_digest(Digest::Sha256, &hash).expect("signs");
    tpm.pause();
    for call in ["signing", "opening the TPM"] {
        // The first stalls in TPM2_Sign; the second in opening a new context.
        let start = Instant::now();
        let err = signer
            .sign_digest(Digest::Sha256, &hash)
            .expect_err("a stopped TPM does not sign");
        assert!(
            matches!(&err, TpmError::Timeout { call: c, secs: 2, .. } if *c == call),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("did not answer within 2 s"),
            "{err}"
        );
        assert!(err.hint().is_some_and(|h| h.contains(context::TIMEOUT_ENV)));
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
    }
    tpm.resume();
    // A new context; the stalled ones finish, flush what they loaded and close.
    signer
        .sign_digest(Digest::Sha256, &hash)
        .expect("signs once the TPM answers");
    drop(signer);
    // Counted through a bounded context of our own: after the stalls, tpm2-tools' swtpm
    // TCTI was seen to wait for ever on swtpm's one-connection-at-a-time queue.
    let mut worker = tcti(&tpm)
        .with_timeout(Duration::from_secs(10))
        .connect()
        .expect("connects");
    let (data, _) = worker
        .call("counting transient objects", |ctx| {
            ctx.execute_without_session(|c| {
                c.get_capability(
                    tss_esapi::constants::CapabilityType::Handles,
                    0x8000_0000,
                    16,
                )
            })
        })
        .expect("answers")
        .expect("get_capability");
    let tss_esapi::structures::CapabilityData::Handles(handles) = data else {
        panic!("not a handle list: {data:?}");
    };
    assert_eq!(handles.len(), 0, "{handles:?}");
}

#[test]
fn loads_once_signs_many_and_flushes_on_drop() {
    let _serial = serial();
    let tpm = Launch::provisioned().log_commands().start();
    let id = identity(
        &tpm,
        key_file("ossl-p256"),
        passwords(None, None),
        "ossl-p256",
    )
    .expect("opens");
    let before = tpm.commands().len();
    for _ in 0..5 {
        sign_and_verify(&id, Digest::Sha256);
    }
    let during: Vec<&str> = tpm.commands()[before..]
        .iter()
        .map(|c| command_name(*c))
        .collect();
    assert_eq!(during, vec!["Sign"; 5]);
    drop(id);
    assert_eq!(tpm.transient_handles(), 0);
}

/// The TPM commands one credential costs: what `credential-process` sends (open, one
/// signature, drop), for each kind of key; and the Go helper's reload per signature.
#[test]
fn tpm_commands_per_credential() {
    let _serial = serial();
    let tpm = Launch::provisioned().log_commands().start();
    let mut report = Vec::new();
    let cases: Vec<(&str, KeyLocation, &str)> = vec![
        (
            "key file, owner hierarchy parent",
            key_file("ossl-p256"),
            "ossl-p256",
        ),
        (
            "key file, persistent parent",
            key_file("tools-p256"),
            "tools-p256",
        ),
        (
            "persistent handle",
            KeyLocation::Persistent(0x8100_0101),
            "handle-p256",
        ),
    ];
    let mut counts = Vec::new();
    for (what, location, cert) in cases {
        let start = tpm.commands().len();
        let id = identity(&tpm, location.clone(), passwords(None, None), cert).expect("opens");
        sign_and_verify(&id, Digest::Sha256);
        drop(id);
        let one: Vec<&str> = tpm.commands()[start..]
            .iter()
            .map(|c| command_name(*c))
            .collect();
        // Ten credentials in a long-running process (serve/update): loaded once.
        let start = tpm.commands().len();
        let id = identity(&tpm, location.clone(), passwords(None, None), cert).expect("opens");
        for _ in 0..10 {
            sign_and_verify(&id, Digest::Sha256);
        }
        drop(id);
        let kept = tpm.commands().len() - start;
        // The Go helper's way: load the key for every signature.
        let start = tpm.commands().len();
        for _ in 0..10 {
            let id = identity(&tpm, location.clone(), passwords(None, None), cert).expect("opens");
            sign_and_verify(&id, Digest::Sha256);
        }
        let reload = tpm.commands().len() - start;
        report.push(format!(
            "{what}: {} commands per process ({}); 10 credentials: {kept} loaded once, {reload} reloading per signature",
            one.len(),
            one.join(", ")
        ));
        counts.push((one.len(), kept, reload));
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(counts[0], (5, 14, 50));
    assert_eq!(counts[1], (4, 13, 40));
    assert_eq!(counts[2], (3, 12, 30));
    assert_eq!(tpm.transient_handles(), 0);
}

#[test]
fn wrong_password_fails_once_and_is_not_retried() {
    let _serial = serial();
    let tpm = Launch::provisioned().log_commands().start();
    let id = identity(
        &tpm,
        KeyLocation::Persistent(0x8100_0102),
        passwords(Some("not-the-password"), None),
        "handle-rsa-pw",
    )
    .expect("opening checks no key password");
    let err = id
        .signer()
        .sign(Digest::Sha256, b"x")
        .expect_err("wrong password");
    assert!(err.to_string().contains("TPM_RC_AUTH_FAIL"), "{err}");
    let hint = key_hint(&err).expect("a password hint");
    assert!(hint.contains("RA_SIGNER_TPM_KEY_PASSWORD"), "{hint}");
    let sent = tpm.commands().len();
    let again = id
        .signer()
        .sign(Digest::Sha256, b"x")
        .expect_err("still refused");
    assert!(
        again.to_string().contains("not asking the TPM again"),
        "{again}"
    );
    assert_eq!(key_hint(&again), Some(hint), "the refusal keeps its hint");
    assert_eq!(tpm.commands().len(), sent, "the password was sent again");
    drop(id);
    let vars = tpm.run("tpm2_getcap", &["properties-variable"]);
    let counter = vars
        .split("TPM2_PT_LOCKOUT_COUNTER:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("lockout counter");
    assert_eq!(
        counter, "0x1",
        "the dictionary-attack counter moved more than once"
    );

    // A password given for a key that has none: refused, with the emptyAuth hint.
    let id = identity(
        &tpm,
        key_file("ossl-p256"),
        passwords(Some("surplus"), None),
        "ossl-p256",
    )
    .expect("opens");
    let err = id
        .signer()
        .sign(Digest::Sha256, b"x")
        .expect_err("wrong password");
    let hint = key_hint(&err).expect("a hint");
    assert!(hint.contains("--no-tpm-key-password"), "{hint}");

    // A key password missing: the hint says how to give one.
    let id = identity(
        &tpm,
        key_file("ossl-p256-pw"),
        passwords(None, None),
        "ossl-p256-pw",
    )
    .expect("opens");
    let err = id
        .signer()
        .sign(Digest::Sha256, b"x")
        .expect_err("no password");
    let hint = key_hint(&err).expect("a hint");
    assert!(hint.contains("--tpm-key-password-file"), "{hint}");
}

#[test]
fn key_password_rules() {
    let _serial = serial();
    let settings = |sources: Vec<SecretSource>, none: bool| TpmSettings {
        connection: Default::default(),
        parent_password_sources: vec![],
        key_password_sources: sources,
        no_key_password: none,
    };
    // tpm2-tools without -p writes emptyAuth FALSE for a key without password: headless,
    // that is an error saying what to pass, not a guess that costs a DA attempt.
    let tools = key_file("tools-p256");
    let err = key_password(&settings(vec![SecretSource::Prompt], false), &tools)
        .expect_err("no terminal");
    assert!(matches!(err, SecretError::NoneGiven { .. }));
    let (pw, _) = key_password(&settings(vec![SecretSource::Prompt], true), &tools).expect("none");
    assert!(pw.is_none());
    // emptyAuth TRUE: no password, no prompt.
    let (pw, _) = key_password(
        &settings(vec![SecretSource::Prompt], false),
        &key_file("ossl-p256"),
    )
    .expect("empty");
    assert!(pw.is_none());
    // An explicit password wins over emptyAuth.
    let (pw, origin) = key_password(
        &settings(vec![SecretSource::Value(Secret::new("pw".into()))], false),
        &key_file("ossl-p256"),
    )
    .expect("given");
    assert_eq!(
        (pw.map(|p| p.expose().to_owned()), origin),
        (Some("pw".into()), "--tpm-key-password")
    );
    // Persistent keys: empty unless given.
    let (pw, _) = key_password(
        &settings(vec![SecretSource::Prompt], false),
        &KeyLocation::Persistent(0x8100_0101),
    )
    .expect("empty");
    assert!(pw.is_none());
}

#[test]
fn unusable_keys_say_why() {
    let _serial = serial();
    let tpm = Swtpm::provisioned();
    let err = identity(
        &tpm,
        key_file("decrypt-rsa"),
        passwords(None, None),
        "decrypt-rsa",
    )
    .expect_err("decrypt-only");
    assert!(
        matches!(&err, TpmError::CannotSign { why, .. } if why.contains("decrypt-only")),
        "{err}"
    );
    let err = identity(
        &tpm,
        KeyLocation::Persistent(0x8100_0999),
        passwords(None, None),
        "handle-p256",
    )
    .expect_err("nothing there");
    assert!(
        matches!(
            err,
            TpmError::NoObject {
                handle: 0x8100_0999,
                ..
            }
        ),
        "{err}"
    );
    // The SRK is a storage key, not a signing key.
    let err = identity(
        &tpm,
        KeyLocation::Persistent(0x8100_0001),
        passwords(None, None),
        "handle-p256",
    )
    .expect_err("storage key");
    assert!(matches!(err, TpmError::CannotSign { .. }), "{err}");
    // Parent password missing.
    let err = identity(
        &tpm,
        key_file("srkpw-p256"),
        passwords(None, None),
        "srkpw-p256",
    )
    .expect_err("parent password");
    assert!(
        matches!(
            &err,
            TpmError::WrongPassword {
                what: "the parent password",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.hint()
            .unwrap_or_default()
            .contains("RA_SIGNER_TPM_PARENT_PASSWORD")
    );
}

#[test]
fn key_files_from_elsewhere_and_garbled_blobs() {
    let _serial = serial();
    // A fresh TPM has other seeds: the fixture's key files do not load there.
    let other = Swtpm::fresh();
    let err = identity(
        &other,
        key_file("ossl-p256"),
        passwords(None, None),
        "ossl-p256",
    )
    .expect_err("another TPM");
    let TpmError::Tpm { call, hint, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*call, "TPM2_Load");
    assert!(hint.as_deref().unwrap_or_default().contains("another TPM"));
    let err = identity(
        &other,
        key_file("tools-p256"),
        passwords(None, None),
        "tools-p256",
    )
    .expect_err("no SRK");
    assert!(
        matches!(
            err,
            TpmError::NoObject {
                handle: 0x8100_0001,
                ..
            }
        ),
        "{err}"
    );
    drop(other);

    let tpm = Swtpm::provisioned();
    let KeyLocation::File { mut key, path } = key_file("ossl-p256") else {
        unreachable!()
    };
    let last = key.private.len() - 1;
    key.private[last] ^= 0x55;
    let err = identity(
        &tpm,
        KeyLocation::File { key, path },
        passwords(None, None),
        "ossl-p256",
    )
    .expect_err("garbled");
    assert!(
        matches!(
            err,
            TpmError::Tpm {
                call: "TPM2_Load",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        tpm.transient_handles(),
        0,
        "a failed load leaked the primary"
    );

    // Malformed files are refused before the TPM is asked.
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = std::fs::read_to_string(file("ossl-p256.key")).expect("read");
    let truncated = dir.path().join("truncated.key");
    std::fs::write(&truncated, &pem[..pem.len() / 2]).expect("write");
    assert!(matches!(
        read_key_file(&truncated),
        Err(TpmError::KeyFile {
            source: KeyFileError::Pem(_),
            ..
        })
    ));
}

#[test]
fn survives_a_tpm_restart_between_signatures() {
    let _serial = serial();
    let tpm = Swtpm::provisioned();
    // swtpm serves one connection at a time: one identity open at once.
    for (location, cert) in [
        (key_file("ossl-rsa"), "ossl-rsa"),
        (KeyLocation::Persistent(0x8100_0101), "handle-p256"),
    ] {
        let id = identity(&tpm, location, passwords(None, None), cert).expect("opens");
        sign_and_verify(&id, Digest::Sha256);
        tpm.restart();
        sign_and_verify(&id, Digest::Sha256);
        // And once more, now that it is loaded again.
        sign_and_verify(&id, Digest::Sha256);
        drop(id);
        assert_eq!(tpm.transient_handles(), 0, "{cert}");
    }
}

#[test]
fn a_unix_socket_tpm_signs_and_survives_a_restart() {
    let _serial = serial();
    let tpm = Launch::provisioned().unix_socket().start();
    for (location, cert) in [
        (key_file("ossl-p384"), "ossl-p384"),
        (KeyLocation::Persistent(0x8100_0101), "handle-p256"),
    ] {
        let id = identity(&tpm, location, passwords(None, None), cert).expect("opens");
        sign_and_verify(&id, Digest::Sha256);
        sign_and_verify(&id, Digest::Sha384);
        // The old connection (and its relay) breaks; the key is loaded again through a
        // new one.
        tpm.restart();
        sign_and_verify(&id, Digest::Sha256);
        sign_and_verify(&id, Digest::Sha256);
    }
}

#[test]
fn hierarchy_password() {
    let _serial = serial();
    let tpm = Swtpm::fresh();
    tpm.run("tpm2_changeauth", &["-c", "owner", "ownerpw"]);
    let key = tpm.dir().join("k.key");
    let key_arg = key.to_str().expect("utf-8 path");
    let out = tpm
        .tool("openssl")
        .args([
            "genpkey",
            "-provider",
            "tpm2",
            "-provider",
            "base",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "group:P-256",
            "-pkeyopt",
            "parent-auth:ownerpw",
            "-out",
            key_arg,
        ])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let location = || KeyLocation::File {
        path: key.clone(),
        key: read_key_file(&key).expect("key file"),
    };
    let err = TpmSigner::open(tcti(&tpm), location(), passwords(None, None))
        .expect_err("hierarchy password needed");
    assert!(
        matches!(
            &err,
            TpmError::WrongPassword {
                what: "the hierarchy password",
                ..
            }
        ),
        "{err}"
    );
    let signer =
        TpmSigner::open(tcti(&tpm), location(), passwords(None, Some("ownerpw"))).expect("opens");
    let message = b"hello";
    let signature = signer.sign(Digest::Sha256, message).expect("signs");
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        signer.public_key_bits(),
    )
    .verify(message, &signature)
    .expect("verifies");
}
