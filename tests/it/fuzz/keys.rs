//! Key files in every format the file signer detects (PKCS#8, SEC1, PKCS#1, encrypted
//! PKCS#8 with PBKDF2 and scrypt, PKCS#12, ML-DSA in its three forms, PEM with a certificate
//! beside the key), through the public entry point [`file::load`], from a real file.

use std::cell::Cell;

use proptest::test_runner::{TestCaseError, TestCaseResult};
use ra_signer::cert::KeyType;
use ra_signer::secret::Secret;
use ra_signer::signer::file;
use ra_signer::signer::{Digest, Signer};

use super::{check_message, corpus, fuzz, inputs};

/// The password of every encrypted seed (tests/fuzz-corpus/make.sh).
const PASSWORD: &str = "fuzz-password";

const TOKENS: &[&[u8]] = &[
    b"-----BEGIN PRIVATE KEY-----\n",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
    b"-----BEGIN EC PRIVATE KEY-----\n",
    b"-----BEGIN RSA PRIVATE KEY-----\n",
    b"-----BEGIN CERTIFICATE-----\n",
    b"-----BEGIN TSS2 PRIVATE KEY-----\n",
    b"-----END PRIVATE KEY-----\n",
    b"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n",
    b"\x02\x01\x00",
    b"\x02\x01\x01",
    b"\x02\x01\x03",
    b"\x30\x82\xff\xff",
    b"\x04\x20",
];

fn property(input: &[u8], path: &std::path::Path) -> TestCaseResult {
    std::fs::write(path, input).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let asked = Cell::new(0u32);
    let mut password = || {
        asked.set(asked.get() + 1);
        Ok(Secret::new(PASSWORD.to_owned()))
    };
    let result = file::load(path, &mut password);
    if asked.get() > 1 {
        return Err(TestCaseError::fail(format!(
            "the password was asked for {} times",
            asked.get()
        )));
    }
    let loaded = match result {
        Ok(loaded) => loaded,
        Err(e) => {
            let message = e.to_string();
            if message.contains(PASSWORD) {
                return Err(TestCaseError::fail(format!(
                    "the error shows the password: {message}"
                )));
            }
            return check_message("the key file error", &message);
        }
    };
    if asked.get() > 0 && !matches!(loaded.format, "encrypted PKCS#8" | "PKCS#12") {
        return Err(TestCaseError::fail(format!(
            "the password was asked for a {} file",
            loaded.format
        )));
    }
    for cert in &loaded.certificates {
        check_message("a certificate subject", &cert.subject())?;
    }
    signs_for_its_public_key(loaded.signer.as_ref())
}

/// An accepted key signs, and the signature verifies under the public key it reports: that
/// public key is what is matched against the certificate, so a key file whose stored public
/// key disagrees with its private key must never be accepted.
fn signs_for_its_public_key(signer: &dyn Signer) -> TestCaseResult {
    use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    const MESSAGE: &[u8] = b"ra-signer fuzz";
    let signature = match signer.sign(Digest::Sha256, MESSAGE) {
        Ok(signature) => signature,
        // ring does not check RSA CRT components at load: a damaged one fails the signature
        // (which ring verifies), and must say so.
        Err(e) if signer.key_type() == KeyType::Rsa && e.to_string().contains("inconsistent") => {
            return Ok(());
        }
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "an accepted key does not sign: {e}"
            )));
        }
    };
    let algorithm: &'static dyn VerificationAlgorithm = match signer.key_type() {
        KeyType::Rsa => &signature::RSA_PKCS1_2048_8192_SHA256,
        KeyType::EcP256 => &signature::ECDSA_P256_SHA256_ASN1,
        KeyType::EcP384 => &signature::ECDSA_P384_SHA256_ASN1,
        // ring has no ML-DSA; the ML-DSA unit tests verify against dilithium-py's signatures.
        KeyType::MlDsa44 | KeyType::MlDsa65 | KeyType::MlDsa87 => return Ok(()),
        KeyType::Other => return Err(TestCaseError::fail("a key of no known type was accepted")),
    };
    UnparsedPublicKey::new(algorithm, signer.public_key_bits())
        .verify(MESSAGE, &signature)
        .map_err(|_| {
            TestCaseError::fail("the signature does not verify under the key's public key")
        })
}

#[test]
fn key_files() {
    let dir = crate::common::tempdir();
    let path = dir.path().join("key");
    let seeds = corpus("keys").into_iter().map(|(_, b)| b).collect();
    fuzz("keys", super::cases(1200), inputs(seeds, TOKENS), |input| {
        property(input, &path)
    });
}

/// Found by this target: a PKCS#1 key with one bit flipped in `dP` (the file is the RSA
/// seed as first committed, byte 800 changed) passed ring's checks, loaded, and then failed
/// every signature; it is now refused when the file is loaded, naming the file.
#[test]
fn regress_rsa_key_with_a_damaged_crt_component_fails_with_a_clear_error() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus/keys/regress-rsa-damaged-dp.der");
    let mut password = || -> Result<Secret, ra_signer::secret::SecretError> {
        panic!("a PKCS#1 key has no password")
    };
    // ring does not check the CRT components at load; the signature it verifies fails.
    let key = file::load(&path, &mut password).expect("loads");
    let e = key
        .signer
        .sign(Digest::Sha256, b"message")
        .expect_err("refused");
    let message = e.to_string();
    assert!(message.contains("inconsistent"), "{message}");
}
