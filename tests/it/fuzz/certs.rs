//! Certificates, PEM bundles and DER, through [`Cert::all_from_bytes`]: the loader behind
//! `--certificate`, `--intermediates` and the certificates in a key file.

use proptest::test_runner::{TestCaseError, TestCaseResult};
use ra_signer::cert::Cert;

use super::{check_message, corpus, fuzz, inputs};

const TOKENS: &[&[u8]] = &[
    b"-----BEGIN CERTIFICATE-----\n",
    b"\n-----END CERTIFICATE-----\n",
    b"-----BEGIN PRIVATE KEY-----\n",
    b"-----BEGIN ",
    b"-----\n",
    b"Proc-Type: 4,ENCRYPTED\n",
    b"\r\n",
    b"====",
    b"\x30\x82\xff\xff",
    b"\x30\x80",
    b"\x06\x03\x55\x04\x03\x0c\x01\x0a",
];

/// Everything a command reads from a certificate: none of it may panic, and the text that
/// reaches error lines and logs (subject, issuer) holds no control character.
fn property(input: &[u8]) -> TestCaseResult {
    let certs = match Cert::all_from_bytes(input, "fuzz input") {
        Ok(certs) => certs,
        Err(e) => return check_message("the certificate error", &e.to_string()),
    };
    for cert in &certs {
        let again = Cert::from_der(cert.der(), "fuzz input")
            .map_err(|e| TestCaseError::fail(format!("accepted DER does not parse again: {e}")))?;
        if again.der() != cert.der() {
            return Err(TestCaseError::fail("DER changed on a second parse"));
        }
        let serial = cert.serial_decimal();
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TestCaseError::fail(format!(
                "serial {serial:?} is not decimal"
            )));
        }
        check_message("the subject", &cert.subject())?;
        check_message("the issuer", &cert.issuer())?;
        let _ = (cert.key_type().family(), cert.public_key_bits().len());
        let _ = (cert.not_before(), cert.not_after(), cert.spki_der());
        let _ = (cert.sha1_hex(), cert.sha256_hex(), cert.is_issued_by(cert));
    }
    Ok(())
}

#[test]
fn certificates() {
    let seeds = corpus("certs").into_iter().map(|(_, b)| b).collect();
    fuzz("certs", super::cases(3000), inputs(seeds, TOKENS), property);
}

/// Found by this target: the label of a PEM block was echoed raw in the error, so a file
/// could put a NUL, an escape sequence or a forged second `ra-signer:` line in it.
#[test]
fn regress_pem_label_control_characters_are_escaped() {
    for input in [
        &b"-----BEGIN \0ERTIFICATE-----\nMIIB\n"[..],
        b"-----BEGIN \x1b[2J-----\n",
        b"-----BEGIN CERTIFICATE\rra-signer: forged-----\nMIIB\n",
        b"-----BEGIN \x07-----\n!!!!\n-----END \x07-----\n",
    ] {
        let e = Cert::all_from_bytes(input, "fuzz input").expect_err("refused");
        let message = e.to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(message.contains("PEM block \""), "{message}");
    }
}
