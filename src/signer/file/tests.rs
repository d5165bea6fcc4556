//! Fixtures come from the real `openssl` CLI, made per test in a temp dir. Without
//! `openssl` on the PATH these tests fail, saying to install it.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use der::Decode;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

use super::*;
use crate::cert::KeyType;
use crate::signer::{Digest, Signer};

const MESSAGE: &[u8] = b"AWS Roles Anywhere Credential Helper Signing Test";
const PASSWORD: &str = "correct horse battery staple";
const ALL_DIGESTS: [Digest; 3] = [Digest::Sha256, Digest::Sha384, Digest::Sha512];

/// A temp dir and the `openssl` CLI.
struct Fx {
    dir: tempfile::TempDir,
}

impl Fx {
    fn new() -> Self {
        Fx {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `openssl ARGS` in the temp dir; panics with its stderr when it fails.
    fn openssl(&self, args: &[&str]) {
        let output = match Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the `openssl` command is needed by the key-file tests and was not found: \
                 install it (Debian: apt-get install openssl)"
            ),
            Err(e) => panic!("cannot run openssl: {e}"),
        };
        assert!(
            output.status.success(),
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `openssl pkcs8 -topk8 -in key.pem SCHEME… -passout pass:PASSWORD -out OUT`.
    fn encrypt(&self, scheme: &[&str], out: &str) {
        let passout = format!("pass:{PASSWORD}");
        let mut args = vec!["pkcs8", "-topk8", "-in", "key.pem"];
        args.extend_from_slice(scheme);
        args.extend_from_slice(&["-passout", &passout, "-out", out]);
        self.openssl(&args);
    }

    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write fixture");
        path
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read fixture")
    }

    /// `openssl genpkey` for "rsa2048", "rsa1024", "p256", "p384", "p521", "ed25519".
    fn genkey(&self, kind: &str, out: &str) {
        let opts: &[&str] = match kind {
            "rsa2048" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "rsa1024" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
            "p256" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "p384" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "p521" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
            "ed25519" => &["-algorithm", "ED25519"],
            other => panic!("unknown key kind {other}"),
        };
        let mut args = vec!["genpkey"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["-out", out]);
        self.openssl(&args);
    }

    /// A self-signed certificate for `key`.
    fn self_signed(&self, key: &str, cn: &str, out: &str) -> Cert {
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            key,
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "2",
            "-sha256",
            "-out",
            out,
        ]);
        Cert::first_from_file(&self.path(out)).expect("certificate")
    }

    /// A key and its self-signed certificate.
    fn key_and_cert(&self, kind: &str) -> Cert {
        self.genkey(kind, "key.pem");
        self.self_signed("key.pem", kind, "cert.pem")
    }

    /// A CA, and a leaf key "leaf.pem" with certificate "leaf.crt" issued by it ("ca.crt").
    fn ca_and_leaf(&self, kind: &str) -> (Cert, Cert) {
        self.genkey(kind, "ca.key");
        let ca = self.self_signed("ca.key", "Test CA", "ca.crt");
        self.genkey(kind, "leaf.pem");
        self.openssl(&[
            "req", "-new", "-key", "leaf.pem", "-subj", "/CN=leaf", "-out", "leaf.csr",
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-out",
            "leaf.crt",
        ]);
        let leaf = Cert::first_from_file(&self.path("leaf.crt")).expect("leaf certificate");
        (ca, leaf)
    }
}

/// Loads `path`, answering `password` (None: a password request is an error) and counting
/// the requests.
fn load_counting(path: &Path, password: Option<&str>) -> (Result<LoadedKey, FileKeyError>, usize) {
    let calls = Cell::new(0);
    let mut ask = || {
        calls.set(calls.get() + 1);
        match password {
            Some(p) => Ok(Secret::new(p.to_owned())),
            None => Err(SecretError::NoneGiven {
                what: "the test password".to_owned(),
            }),
        }
    };
    let result = load(path, &mut ask);
    (result, calls.get())
}

/// Loads a file that must not ask for a password.
fn load_plain(path: &Path) -> LoadedKey {
    let (result, calls) = load_counting(path, None);
    let loaded = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        calls,
        0,
        "a password was asked for the plain file {}",
        path.display()
    );
    loaded
}

/// Loads an encrypted file with the right password, which must be asked exactly once.
fn load_encrypted(path: &Path) -> LoadedKey {
    let (result, calls) = load_counting(path, Some(PASSWORD));
    let loaded = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(calls, 1, "the password must be asked exactly once");
    loaded
}

fn load_err(path: &Path, password: Option<&str>) -> FileKeyError {
    load_counting(path, password)
        .0
        .expect_err("the file must be refused")
}

/// The signer's public key is the certificate's, and its signatures verify against the
/// certificate's public key with `ring`, for each digest `ring` can verify with that key.
fn assert_signs(signer: &dyn Signer, cert: &Cert) {
    assert_eq!(signer.key_type(), cert.key_type());
    assert_eq!(signer.public_key_bits(), cert.public_key_bits());
    for digest in ALL_DIGESTS {
        let algorithm: &dyn VerificationAlgorithm = match (signer.key_type(), digest) {
            (KeyType::Rsa, Digest::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyType::Rsa, Digest::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyType::Rsa, Digest::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyType::EcP256, Digest::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyType::EcP256, Digest::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyType::EcP384, Digest::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyType::EcP384, Digest::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            // ring cannot verify ECDSA with SHA-512: see `ec_sha512_verifies_with_openssl`.
            _ => continue,
        };
        let sig = signer.sign(digest, MESSAGE).expect("sign");
        UnparsedPublicKey::new(algorithm, cert.public_key_bits())
            .verify(MESSAGE, &sig)
            .unwrap_or_else(|_| {
                panic!(
                    "{:?} {digest:?} signature does not verify",
                    signer.key_type()
                )
            });
    }
}

#[test]
fn rsa_pkcs8_pem_and_der() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("rsa2048");
    let loaded = load_plain(&fx.path("key.pem"));
    assert_eq!(loaded.format, "PKCS#8");
    assert!(loaded.certificates.is_empty());
    assert_signs(loaded.signer.as_ref(), &cert);

    fx.openssl(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
    ]);
    let loaded = load_plain(&fx.path("key.der"));
    assert_eq!(loaded.format, "PKCS#8");
    assert_signs(loaded.signer.as_ref(), &cert);
}

#[test]
fn rsa_pkcs1_pem_and_der() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("rsa2048");
    fx.openssl(&["rsa", "-in", "key.pem", "-traditional", "-out", "pkcs1.pem"]);
    assert!(String::from_utf8_lossy(&fx.read("pkcs1.pem")).contains("BEGIN RSA PRIVATE KEY"));
    let loaded = load_plain(&fx.path("pkcs1.pem"));
    assert_eq!(loaded.format, "PKCS#1");
    assert_signs(loaded.signer.as_ref(), &cert);

    fx.openssl(&[
        "rsa",
        "-in",
        "key.pem",
        "-traditional",
        "-outform",
        "DER",
        "-out",
        "pkcs1.der",
    ]);
    let loaded = load_plain(&fx.path("pkcs1.der"));
    assert_eq!(loaded.format, "PKCS#1");
    assert_signs(loaded.signer.as_ref(), &cert);
}

#[test]
fn ec_pkcs8_and_sec1_pem_and_der() {
    for kind in ["p256", "p384"] {
        let fx = Fx::new();
        let cert = fx.key_and_cert(kind);
        let loaded = load_plain(&fx.path("key.pem"));
        assert_eq!(loaded.format, "PKCS#8");
        assert_signs(loaded.signer.as_ref(), &cert);

        fx.openssl(&[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
        ]);
        let loaded = load_plain(&fx.path("key.der"));
        assert_eq!(loaded.format, "PKCS#8");
        assert_signs(loaded.signer.as_ref(), &cert);

        fx.openssl(&["ec", "-in", "key.pem", "-out", "sec1.pem"]);
        assert!(String::from_utf8_lossy(&fx.read("sec1.pem")).contains("BEGIN EC PRIVATE KEY"));
        let loaded = load_plain(&fx.path("sec1.pem"));
        assert_eq!(loaded.format, "SEC1");
        assert_signs(loaded.signer.as_ref(), &cert);

        fx.openssl(&[
            "ec", "-in", "key.pem", "-outform", "DER", "-out", "sec1.der",
        ]);
        let loaded = load_plain(&fx.path("sec1.der"));
        assert_eq!(loaded.format, "SEC1");
        assert_signs(loaded.signer.as_ref(), &cert);
    }
}

#[test]
fn ec_keys_without_embedded_public_key() {
    for kind in ["p256", "p384"] {
        let fx = Fx::new();
        let cert = fx.key_and_cert(kind);
        fx.openssl(&["ec", "-in", "key.pem", "-no_public", "-out", "sec1.pem"]);
        let loaded = load_plain(&fx.path("sec1.pem"));
        assert_signs(loaded.signer.as_ref(), &cert);

        fx.openssl(&[
            "pkcs8", "-topk8", "-nocrypt", "-in", "sec1.pem", "-out", "p8.pem",
        ]);
        let loaded = load_plain(&fx.path("p8.pem"));
        assert_eq!(loaded.format, "PKCS#8");
        assert_signs(loaded.signer.as_ref(), &cert);

        // A compressed public point is read as the same key.
        fx.openssl(&[
            "ec",
            "-in",
            "key.pem",
            "-conv_form",
            "compressed",
            "-out",
            "compressed.pem",
        ]);
        let loaded = load_plain(&fx.path("compressed.pem"));
        assert_signs(loaded.signer.as_ref(), &cert);
    }
}

/// A file whose stored public key is another key's (spliced, or corrupt) is refused, not
/// signed with: the stored key is what the certificate is compared with.
#[test]
fn ec_keys_whose_stored_public_key_is_another_are_refused() {
    use der::{Decode, Encode};
    for kind in ["p256", "p384"] {
        let fx = Fx::new();
        fx.genkey(kind, "a.pem");
        fx.genkey(kind, "b.pem");
        for name in ["a", "b"] {
            fx.openssl(&[
                "ec",
                "-in",
                &format!("{name}.pem"),
                "-outform",
                "DER",
                "-out",
                &format!("{name}.der"),
            ]);
        }
        let (a, b) = (fx.read("a.der"), fx.read("b.der"));
        let a = sec1::EcPrivateKey::from_der(&a).expect("a");
        let b = sec1::EcPrivateKey::from_der(&b).expect("b");
        let spliced = sec1::EcPrivateKey {
            public_key: b.public_key,
            ..a
        };
        let path = fx.write("spliced.der", &spliced.to_der().expect("der"));
        let err = load_err(&path, None).to_string();
        assert!(
            err.contains("the public key stored in the file is not the private key's"),
            "{kind}: {err}"
        );
    }
}

/// SigV4-X509 signs with SHA-256 whatever the curve.
#[test]
fn p384_signs_with_sha256() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("p384");
    let loaded = load_plain(&fx.path("key.pem"));
    assert_eq!(loaded.signer.key_type(), KeyType::EcP384);
    let sig = loaded.signer.sign(Digest::Sha256, MESSAGE).expect("sign");
    UnparsedPublicKey::new(&signature::ECDSA_P384_SHA256_ASN1, cert.public_key_bits())
        .verify(MESSAGE, &sig)
        .expect("P-384/SHA-256 signature verifies");
    // ... and is not a SHA-384 one.
    assert!(
        UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, cert.public_key_bits())
            .verify(MESSAGE, &sig)
            .is_err()
    );
}

#[test]
fn ec_sha512_verifies_with_openssl() {
    for kind in ["p256", "p384"] {
        let fx = Fx::new();
        fx.genkey(kind, "key.pem");
        fx.openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
        let loaded = load_plain(&fx.path("key.pem"));
        let sig = loaded.signer.sign(Digest::Sha512, MESSAGE).expect("sign");
        fx.write("msg.bin", MESSAGE);
        fx.write("sig.bin", &sig);
        fx.openssl(&[
            "dgst",
            "-sha512",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
            "msg.bin",
        ]);
    }
}

#[test]
fn encrypted_pkcs8_with_each_pbkdf2_prf() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("p256");
    for prf in [
        "hmacWithSHA1",
        "hmacWithSHA256",
        "hmacWithSHA384",
        "hmacWithSHA512",
    ] {
        let out = format!("enc-{prf}.pem");
        fx.encrypt(&["-v2", "aes-256-cbc", "-v2prf", prf], &out);
        let loaded = load_encrypted(&fx.path(&out));
        assert_eq!(loaded.format, "encrypted PKCS#8", "{prf}");
        assert_signs(loaded.signer.as_ref(), &cert);
    }
}

#[test]
fn encrypted_pkcs8_with_each_cipher() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("rsa2048");
    for cipher in ["aes-128-cbc", "aes-192-cbc", "aes-256-cbc", "des3"] {
        let out = format!("enc-{cipher}.pem");
        fx.encrypt(&["-v2", cipher, "-v2prf", "hmacWithSHA256"], &out);
        let loaded = load_encrypted(&fx.path(&out));
        assert_eq!(loaded.format, "encrypted PKCS#8", "{cipher}");
        assert_signs(loaded.signer.as_ref(), &cert);
    }
}

#[test]
fn encrypted_pkcs8_scrypt_and_der() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("p384");
    fx.encrypt(&["-scrypt"], "scrypt.pem");
    let loaded = load_encrypted(&fx.path("scrypt.pem"));
    assert_eq!(loaded.format, "encrypted PKCS#8");
    assert_signs(loaded.signer.as_ref(), &cert);

    fx.encrypt(&["-v2", "aes-256-cbc", "-outform", "DER"], "enc.der");
    let loaded = load_encrypted(&fx.path("enc.der"));
    assert_eq!(loaded.format, "encrypted PKCS#8");
    assert_signs(loaded.signer.as_ref(), &cert);
}

#[test]
fn encrypted_pkcs8_wrong_password() {
    let fx = Fx::new();
    fx.genkey("p256", "key.pem");
    let schemes: [(&str, &[&str]); 2] = [
        ("pbkdf2.pem", &["-v2", "aes-256-cbc"]),
        ("scrypt.pem", &["-scrypt"]),
    ];
    for (name, scheme) in schemes {
        fx.encrypt(scheme, name);
        let path = fx.path(name);
        for wrong in ["wrong password", "Correct horse battery staple", ""] {
            let (result, calls) = load_counting(&path, Some(wrong));
            let err = result.expect_err("wrong password refused");
            assert_eq!(calls, 1);
            assert!(matches!(err, FileKeyError::WrongPassword { .. }), "{err:?}");
            let message = err.to_string();
            assert_eq!(
                message,
                format!(
                    "the password for encrypted PKCS#8 key file {} is wrong",
                    path.display()
                )
            );
            assert!(!message.contains(PASSWORD));
            assert!(wrong.is_empty() || !message.contains(wrong));
        }
    }
}

/// About one wrong password in 256 decrypts with valid CBC padding; the noise it yields must
/// still read as a wrong password.
#[test]
fn wrong_password_with_valid_padding_is_still_wrong() {
    use pkcs8::pkcs5::EncryptionScheme;
    let fx = Fx::new();
    fx.genkey("p256", "key.pem");
    fx.encrypt(
        &[
            "-v2",
            "aes-128-cbc",
            "-v2prf",
            "hmacWithSHA256",
            "-iter",
            "1",
            "-outform",
            "DER",
        ],
        "enc.der",
    );
    let der = fx.read("enc.der");
    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der).expect("encrypted PKCS#8");
    let EncryptionScheme::Pbes2(params) = &info.encryption_algorithm else {
        panic!("openssl wrote PBES1");
    };
    let lucky = (0..20_000)
        .map(|i| format!("wrong-{i}"))
        .find(|candidate| {
            let mut buffer = info.encrypted_data.as_bytes().to_vec();
            params
                .decrypt_in_place(candidate.as_bytes(), &mut buffer)
                .is_ok()
        })
        .expect("a wrong password with valid padding among 20000");
    let err = load_err(&fx.path("enc.der"), Some(&lucky));
    assert!(matches!(err, FileKeyError::WrongPassword { .. }), "{err:?}");
}

#[test]
fn password_source_failure_is_reported() {
    let fx = Fx::new();
    fx.genkey("p256", "key.pem");
    fx.encrypt(&["-v2", "aes-256-cbc"], "enc.pem");
    let err = load_err(&fx.path("enc.pem"), None);
    assert!(
        matches!(err, FileKeyError::Password(SecretError::NoneGiven { .. })),
        "{err:?}"
    );
}

#[test]
fn legacy_pbes1_pkcs8_is_refused_before_asking() {
    let fx = Fx::new();
    fx.genkey("p256", "key.pem");
    fx.encrypt(&["-v1", "PBE-SHA1-3DES"], "pbes1.pem");
    let (result, calls) = load_counting(&fx.path("pbes1.pem"), Some(PASSWORD));
    let err = result.expect_err("PBES1 refused");
    assert_eq!(calls, 0);
    assert!(
        matches!(err, FileKeyError::UnsupportedEncryption { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("pbeWithSHAAnd3-KeyTripleDES-CBC"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("openssl pkcs8 -topk8 -v2 aes-256-cbc"),
        "{err}"
    );
}

#[test]
fn legacy_encrypted_pem_is_refused_before_asking() {
    let fx = Fx::new();
    fx.genkey("rsa2048", "rsa.pem");
    fx.genkey("p256", "ec.pem");
    let passout = format!("pass:{PASSWORD}");
    fx.openssl(&[
        "rsa",
        "-in",
        "rsa.pem",
        "-traditional",
        "-aes256",
        "-passout",
        &passout,
        "-out",
        "rsa-legacy.pem",
    ]);
    fx.openssl(&[
        "ec",
        "-in",
        "ec.pem",
        "-aes256",
        "-passout",
        &passout,
        "-out",
        "ec-legacy.pem",
    ]);
    for name in ["rsa-legacy.pem", "ec-legacy.pem"] {
        assert!(String::from_utf8_lossy(&fx.read(name)).contains("Proc-Type: 4,ENCRYPTED"));
        let (result, calls) = load_counting(&fx.path(name), Some(PASSWORD));
        let err = result.expect_err("legacy encrypted PEM refused");
        assert_eq!(calls, 0);
        assert!(
            matches!(err, FileKeyError::LegacyEncryptedPem { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("openssl pkcs8 -topk8"), "{err}");
    }
}

#[test]
fn pem_with_certificates_and_key_keeps_file_order() {
    let fx = Fx::new();
    let (ca, leaf) = fx.ca_and_leaf("p256");
    let mut bundle = fx.read("leaf.crt");
    bundle.extend_from_slice(b"# a comment between blocks\n");
    bundle.extend(fx.read("leaf.pem"));
    bundle.extend(fx.read("ca.crt"));
    let path = fx.write("bundle.pem", &bundle);
    let loaded = load_plain(&path);
    assert_eq!(loaded.format, "PKCS#8");
    let ders: Vec<&[u8]> = loaded.certificates.iter().map(Cert::der).collect();
    assert_eq!(ders, [leaf.der(), ca.der()]);
    assert_signs(loaded.signer.as_ref(), &leaf);

    // Key first, CA before leaf: still file order.
    let mut bundle = fx.read("leaf.pem");
    bundle.extend(fx.read("ca.crt"));
    bundle.extend(fx.read("leaf.crt"));
    let path = fx.write("bundle2.pem", &bundle);
    let loaded = load_plain(&path);
    let ders: Vec<&[u8]> = loaded.certificates.iter().map(Cert::der).collect();
    assert_eq!(ders, [ca.der(), leaf.der()]);
}

#[test]
fn pem_with_encrypted_key_and_certificate() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("rsa2048");
    fx.encrypt(&["-v2", "aes-256-cbc"], "enc.pem");
    let mut bundle = fx.read("cert.pem");
    bundle.extend(fx.read("enc.pem"));
    let loaded = load_encrypted(&fx.write("bundle.pem", &bundle));
    assert_eq!(loaded.format, "encrypted PKCS#8");
    assert_eq!(loaded.certificates.len(), 1);
    assert_signs(loaded.signer.as_ref(), &cert);
}

fn pkcs12_case(kind: &str, legacy: bool) {
    let fx = Fx::new();
    let (ca, leaf) = fx.ca_and_leaf(kind);
    let mut args = vec![
        "pkcs12",
        "-export",
        "-inkey",
        "leaf.pem",
        "-in",
        "leaf.crt",
        "-certfile",
        "ca.crt",
        "-out",
        "id.p12",
    ];
    let passout = format!("pass:{PASSWORD}");
    args.extend_from_slice(&["-passout", &passout]);
    if legacy {
        args.push("-legacy");
    }
    fx.openssl(&args);
    let path = fx.path("id.p12");
    let loaded = load_encrypted(&path);
    assert_eq!(loaded.format, "PKCS#12");
    let ders: Vec<&[u8]> = loaded.certificates.iter().map(Cert::der).collect();
    assert_eq!(ders, [leaf.der(), ca.der()], "leaf first, then the CA");
    assert_signs(loaded.signer.as_ref(), &leaf);

    let (result, calls) = load_counting(&path, Some("not the password"));
    let err = result.expect_err("wrong password refused");
    assert_eq!(calls, 1);
    assert!(matches!(err, FileKeyError::WrongPassword { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("the password for PKCS#12 file {} is wrong", path.display())
    );
}

#[test]
fn pkcs12_modern() {
    pkcs12_case("p256", false);
}

#[test]
fn pkcs12_legacy() {
    pkcs12_case("rsa2048", true);
}

/// `leaf.pem` as encrypted PKCS#8 DER (PBES2, AES-256-CBC) under `PASSWORD`.
fn shrouded_leaf(fx: &Fx) -> Vec<u8> {
    let passout = format!("pass:{PASSWORD}");
    fx.openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        "leaf.pem",
        "-outform",
        "DER",
        "-passout",
        &passout,
        "-out",
        "leaf.p8",
    ]);
    fx.read("leaf.p8")
}

#[test]
fn pkcs12_puts_the_leaf_first() {
    use super::pkcs12::testing::{Bag, pfx, safe_contents};
    let fx = Fx::new();
    let (ca, leaf) = fx.ca_and_leaf("p384");
    let bags = [
        Bag::certificate(ca.der()),
        Bag::certificate(leaf.der()),
        Bag::shrouded_key(&shrouded_leaf(&fx)),
    ];
    let path = fx.write("ca-first.p12", &pfx(&safe_contents(&bags), PASSWORD, 2048));
    let loaded = load_encrypted(&path);
    let ders: Vec<&[u8]> = loaded.certificates.iter().map(Cert::der).collect();
    assert_eq!(ders, [leaf.der(), ca.der()]);
    assert_signs(loaded.signer.as_ref(), &leaf);
}

/// `openssl pkcs12 -export` of leaf.pem, leaf.crt and ca.crt under `PASSWORD` ("p256").
fn openssl_pkcs12(fx: &Fx) -> (Cert, Vec<u8>) {
    let (_, leaf) = fx.ca_and_leaf("p256");
    let passout = format!("pass:{PASSWORD}");
    fx.openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        "leaf.pem",
        "-in",
        "leaf.crt",
        "-certfile",
        "ca.crt",
        "-passout",
        &passout,
        "-out",
        "id.p12",
    ]);
    (leaf, fx.read("id.p12"))
}

#[test]
fn pkcs12_altered_file_is_told_from_a_wrong_password() {
    let fx = Fx::new();
    let (_, original) = openssl_pkcs12(&fx);
    let (mac_at, certificates_at) = pkcs12::testing::offsets(&original);
    for (name, at) in [("mac", mac_at), ("certificates", certificates_at + 3)] {
        let mut altered = original.clone();
        altered[at] ^= 0x01;
        let path = fx.write(&format!("altered-{name}.p12"), &altered);
        let (result, calls) = load_counting(&path, Some(PASSWORD));
        let err = result.expect_err("an altered file is refused");
        assert_eq!(calls, 1, "{name}");
        assert_eq!(
            err.to_string(),
            format!(
                "{} holds a malformed PKCS#12: its integrity check (MAC) fails although the \
                 password decrypts it: the file was altered or damaged",
                path.display()
            ),
            "{name}"
        );
        let err = load_err(&path, Some("not the password"));
        assert!(
            matches!(err, FileKeyError::WrongPassword { .. }),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn pkcs12_truncated_is_malformed_and_asks_nothing() {
    let fx = Fx::new();
    let (_, der) = openssl_pkcs12(&fx);
    for len in (0..der.len()).step_by(17).chain(der.len() - 40..der.len()) {
        let mut ask = || -> Result<Secret, SecretError> { panic!("asked at {len} bytes") };
        let err = pkcs12::load(&der[..len], "cut.p12", &mut ask)
            .expect_err("a truncated file is refused");
        assert!(
            matches!(
                err,
                FileKeyError::Malformed {
                    format: "PKCS#12",
                    ..
                }
            ),
            "{len}: {err:?}"
        );
    }
}

#[test]
fn pkcs12_hostile_shapes_are_bounded() {
    use super::pkcs12::testing::{Bag, pfx, safe_contents};
    let fx = Fx::new();
    let (_, leaf) = fx.ca_and_leaf("p256");
    let key = shrouded_leaf(&fx);
    let open = |name: &str, der: &[u8]| load_counting(&fx.write(name, der), Some(PASSWORD));
    let detail = |result: Result<LoadedKey, FileKeyError>| match result {
        Err(FileKeyError::Malformed { detail, .. }) => detail,
        other => panic!("expected a malformed PKCS#12, got {other:?}"),
    };

    // Nesting within the bound is read through.
    let nested = Bag::nested(&[Bag::nested(&[
        Bag::certificate(leaf.der()),
        Bag::shrouded_key(&key),
    ])]);
    let (loaded, _) = open(
        "nested.p12",
        &pfx(&safe_contents(&[nested]), PASSWORD, 2048),
    );
    let loaded = loaded.expect("two levels of nesting load");
    assert_signs(loaded.signer.as_ref(), &leaf);

    // Deeper nesting is refused without recursing into it.
    let mut deep = Bag::shrouded_key(&key);
    for _ in 0..200 {
        deep = Bag::nested(std::slice::from_ref(&deep));
    }
    let (result, _) = open("deep.p12", &pfx(&safe_contents(&[deep]), PASSWORD, 2048));
    assert_eq!(detail(result), "SafeContents nested more than 4 deep");

    // Every encrypted part costs a key derivation: their number is bounded.
    let many: Vec<Bag> = (0..9).map(|_| Bag::shrouded_key(&key)).collect();
    let (result, _) = open("many.p12", &pfx(&safe_contents(&many), PASSWORD, 2048));
    assert_eq!(detail(result), "more than 8 encrypted parts");

    // A length far beyond the file is refused by the parser, nothing allocated for it.
    let huge = [0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x00];
    let (result, _) = open("huge.p12", &pfx(&huge, PASSWORD, 2048));
    assert!(detail(result).starts_with("SafeContents: "));

    // A MAC demanding billions of iterations is refused before the password is asked.
    let bags = safe_contents(&[Bag::shrouded_key(&key)]);
    let (result, calls) = open("slow.p12", &pfx(&bags, PASSWORD, 2_000_000_000));
    let err = result.expect_err("refused");
    assert_eq!(calls, 0);
    assert!(
        matches!(err, FileKeyError::UnsupportedEncryption { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("2000000000 iterations"), "{err}");
}

#[test]
fn pkcs12_without_encryption_or_mac_does_not_ask() {
    let fx = Fx::new();
    let (_, leaf) = fx.ca_and_leaf("rsa2048");
    fx.openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        "leaf.pem",
        "-in",
        "leaf.crt",
        "-keypbe",
        "NONE",
        "-certpbe",
        "NONE",
        "-nomac",
        "-passout",
        "pass:",
        "-out",
        "plain.p12",
    ]);
    let loaded = load_plain(&fx.path("plain.p12"));
    assert_eq!(loaded.certificates.len(), 1);
    assert_signs(loaded.signer.as_ref(), &leaf);
}

/// The key derivation of RFC 7292 appendix B agrees with OpenSSL's PKCS12KDF.
#[test]
fn pkcs12_kdf_matches_openssl() {
    use super::pkcs12::{KdfPurpose, kdf, testing::bmp};
    let fx = Fx::new();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let salt = [0x0a, 0x58, 0xcf, 0x64, 0x53, 0x0d, 0x82, 0x3f];
    for (password, purpose, id, len, iterations) in [
        ("smeg", KdfPurpose::Key, "1", 24, 1),
        ("queeg", KdfPurpose::Iv, "2", 8, 1000),
        ("", KdfPurpose::Mac, "3", 20, 2048),
        (
            "pässwörd with more than sixty-four bytes of BMP text",
            KdfPurpose::Key,
            "1",
            45,
            3,
        ),
    ] {
        let ours = kdf::<sha1::Sha1>(&bmp(password), &salt, purpose, iterations, len);
        let output = Command::new("openssl")
            .args(["kdf", "-keylen", &len.to_string(), "-kdfopt", "digest:SHA1"])
            .args(["-kdfopt", &format!("hexpass:{}", hex(&bmp(password)))])
            .args(["-kdfopt", &format!("hexsalt:{}", hex(&salt))])
            .args([
                "-kdfopt",
                &format!("iter:{iterations}"),
                "-kdfopt",
                &format!("id:{id}"),
            ])
            .arg("PKCS12KDF")
            .current_dir(fx.dir.path())
            .output()
            .expect("openssl kdf");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs = String::from_utf8_lossy(&output.stdout)
            .trim()
            .replace(':', "");
        assert_eq!(hex(&ours), theirs, "{password:?} id {id}");
    }
}

#[test]
fn pkcs12_with_empty_password_does_not_ask() {
    let fx = Fx::new();
    let cert = fx.key_and_cert("p256");
    fx.openssl(&[
        "pkcs12", "-export", "-inkey", "key.pem", "-in", "cert.pem", "-passout", "pass:", "-out",
        "id.p12",
    ]);
    let loaded = load_plain(&fx.path("id.p12"));
    assert_eq!(loaded.format, "PKCS#12");
    assert_signs(loaded.signer.as_ref(), &cert);
}

#[test]
fn tss2_key_file_goes_to_the_tpm_backend() {
    let fx = Fx::new();
    let pem = fx.write(
        "tpm.pem",
        b"-----BEGIN TSS2 PRIVATE KEY-----\nMAgGBmeBBQoBAw==\n-----END TSS2 PRIVATE KEY-----\n",
    );
    let err = load_err(&pem, Some(PASSWORD));
    assert!(matches!(err, FileKeyError::TpmKeyFile { .. }), "{err:?}");
    // The same SEQUENCE { OID 2.23.133.10.1.3 } as DER.
    let der = fx.write(
        "tpm.der",
        &[0x30, 0x08, 0x06, 0x06, 0x67, 0x81, 0x05, 0x0a, 0x01, 0x03],
    );
    let err = load_err(&der, Some(PASSWORD));
    assert!(matches!(err, FileKeyError::TpmKeyFile { .. }), "{err:?}");
}

#[test]
fn certificate_only_files() {
    let fx = Fx::new();
    fx.key_and_cert("p256");
    fx.openssl(&[
        "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
    ]);
    for name in ["cert.pem", "cert.der"] {
        let path = fx.path(name);
        let err = load_err(&path, Some(PASSWORD));
        assert!(
            matches!(err, FileKeyError::CertificateOnly { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "{} holds a certificate, not a private key",
                path.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn unsupported_key_types() {
    let fx = Fx::new();
    fx.genkey("ed25519", "ed25519.pem");
    fx.genkey("p521", "p521.pem");
    fx.openssl(&["ec", "-in", "p521.pem", "-out", "p521-sec1.pem"]);
    fx.openssl(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:1024",
        "-out",
        "dsaparam.pem",
    ]);
    fx.openssl(&["genpkey", "-paramfile", "dsaparam.pem", "-out", "dsa.pem"]);
    fx.openssl(&["dsa", "-in", "dsa.pem", "-out", "dsa-trad.pem"]);
    fx.openssl(&[
        "dsa",
        "-in",
        "dsa.pem",
        "-outform",
        "DER",
        "-out",
        "dsa-trad.der",
    ]);
    for (name, key_type) in [
        ("ed25519.pem", "Ed25519"),
        ("p521.pem", "EC P-521"),
        ("p521-sec1.pem", "EC P-521"),
        ("dsa.pem", "DSA"),
        ("dsa-trad.pem", "DSA"),
        ("dsa-trad.der", "DSA"),
    ] {
        let path = fx.path(name);
        let err = load_err(&path, None);
        assert!(
            matches!(err, FileKeyError::UnsupportedKeyType { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{} holds an unsupported key type {key_type}; supported: RSA, EC P-256, EC P-384, ML-DSA-44, ML-DSA-65, ML-DSA-87",
                path.display()
            )
        );
    }
}

#[test]
fn small_rsa_key_is_rejected() {
    let fx = Fx::new();
    fx.genkey("rsa1024", "rsa1024.pem");
    let err = load_err(&fx.path("rsa1024.pem"), None);
    assert!(matches!(err, FileKeyError::KeyRejected { .. }), "{err:?}");
    assert!(err.to_string().contains("at least 2048 bits"), "{err}");
}

#[test]
fn garbage_and_empty_files() {
    let fx = Fx::new();
    for (name, contents) in [
        ("garbage.txt", b"this is not a key\n".as_slice()),
        ("empty", b"".as_slice()),
        ("binary", [0x30, 0x03, 0x02, 0x01, 0x07].as_slice()),
        (
            "public.pem",
            b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n".as_slice(),
        ),
    ] {
        let path = fx.write(name, contents);
        let err = load_err(&path, Some(PASSWORD));
        assert!(
            matches!(err, FileKeyError::NotAKey { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a private key in any supported format (PKCS#8, SEC1, PKCS#1, \
                 encrypted PKCS#8, PKCS#12)",
                path.display()
            )
        );
    }
}

#[test]
fn broken_pem_and_several_keys() {
    let fx = Fx::new();
    let path = fx.write("cut.pem", b"-----BEGIN PRIVATE KEY-----\nMAA=\n");
    assert!(matches!(
        load_err(&path, None),
        FileKeyError::Malformed { .. }
    ));

    fx.genkey("p256", "a.pem");
    fx.genkey("p256", "b.pem");
    let mut two = fx.read("a.pem");
    two.extend(fx.read("b.pem"));
    let path = fx.write("two.pem", &two);
    let err = load_err(&path, None);
    assert!(
        matches!(err, FileKeyError::SeveralKeys { count: 2, .. }),
        "{err:?}"
    );

    let path = fx.write(
        "openssh",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    let err = load_err(&path, None);
    assert!(
        matches!(err, FileKeyError::UnsupportedFormat { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("ssh-keygen -p -m PKCS8"), "{err}");
}

#[test]
fn unreadable_files_name_the_path_and_reason() {
    let fx = Fx::new();
    let missing = fx.path("no-such-key.pem");
    let err = load_err(&missing, None);
    assert!(matches!(err, FileKeyError::Read { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read key file {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let err = load_err(fx.dir.path(), None);
    assert!(matches!(err, FileKeyError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("not a regular file but a directory"),
        "{err}"
    );
}
