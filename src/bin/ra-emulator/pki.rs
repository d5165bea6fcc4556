//! Certificates as the emulator checks them: parsed with `x509-cert`, keys and
//! signatures verified with `ring` (RSA, ECDSA, Ed25519) or RustCrypto's `ml-dsa` verifier
//! (ML-DSA, here and not through ra-signer's signing code), and a path built from the leaf through the sent
//! intermediates to a configured trust anchor (issuer DER matched to subject DER, each
//! signature checked with the issuer's key, every validity period checked).

use std::fmt;
use std::ops::Range;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::BasicConstraints;

use crate::clock;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
// RFC 9881: one OID names both the key and the (pure) signature algorithm.
const OID_ML_DSA_44: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.17");
const OID_ML_DSA_65: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");
const OID_ML_DSA_87: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.19");

/// Longest path accepted, leaf and anchor included.
const MAX_PATH: usize = 10;

/// A subject public key the emulator can verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// RSA: the `RSAPublicKey` DER (contents of the SPKI bit string).
    Rsa(Vec<u8>),
    /// EC P-256: the uncompressed point.
    EcP256(Vec<u8>),
    /// EC P-384: the uncompressed point.
    EcP384(Vec<u8>),
    /// Ed25519 (accepted for CA keys only).
    Ed25519(Vec<u8>),
    /// ML-DSA-44: the encoded public key.
    MlDsa44(Vec<u8>),
    /// ML-DSA-65: the encoded public key.
    MlDsa65(Vec<u8>),
    /// ML-DSA-87: the encoded public key.
    MlDsa87(Vec<u8>),
    /// Anything else, named for messages.
    Unsupported(String),
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKey::Rsa(_) => f.write_str("RSA"),
            PublicKey::EcP256(_) => f.write_str("EC P-256"),
            PublicKey::EcP384(_) => f.write_str("EC P-384"),
            PublicKey::Ed25519(_) => f.write_str("Ed25519"),
            PublicKey::MlDsa44(_) => f.write_str("ML-DSA-44"),
            PublicKey::MlDsa65(_) => f.write_str("ML-DSA-65"),
            PublicKey::MlDsa87(_) => f.write_str("ML-DSA-87"),
            PublicKey::Unsupported(what) => write!(f, "unsupported key ({what})"),
        }
    }
}

/// The ring verification algorithm for a SigV4-X509 request signature made with `key`:
/// SHA-256 for every curve, P-384 included.
pub(crate) fn request_verification_alg(
    key: &PublicKey,
) -> Option<(&'static dyn VerificationAlgorithm, &[u8])> {
    match key {
        PublicKey::Rsa(k) => Some((&signature::RSA_PKCS1_2048_8192_SHA256, k)),
        PublicKey::EcP256(k) => Some((&signature::ECDSA_P256_SHA256_ASN1, k)),
        PublicKey::EcP384(k) => Some((&signature::ECDSA_P384_SHA256_ASN1, k)),
        PublicKey::Ed25519(_)
        | PublicKey::MlDsa44(_)
        | PublicKey::MlDsa65(_)
        | PublicKey::MlDsa87(_)
        | PublicKey::Unsupported(_) => None,
    }
}

/// Verifies a pure ML-DSA signature (FIPS 204 `ML-DSA.Verify`, empty context) of `message`
/// by `key`; false for a key that is not ML-DSA or bytes of the wrong size.
pub(crate) fn ml_dsa_verify(key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    fn with<P: ml_dsa::MlDsaParams>(key: &[u8], message: &[u8], sig: &[u8]) -> bool {
        let Ok(encoded) = ml_dsa::EncodedVerifyingKey::<P>::try_from(key) else {
            return false;
        };
        let Ok(sig) = ml_dsa::Signature::<P>::try_from(sig) else {
            return false;
        };
        ml_dsa::VerifyingKey::<P>::decode(&encoded).verify_with_context(message, &[], &sig)
    }
    match key {
        PublicKey::MlDsa44(k) => with::<ml_dsa::MlDsa44>(k, message, sig),
        PublicKey::MlDsa65(k) => with::<ml_dsa::MlDsa65>(k, message, sig),
        PublicKey::MlDsa87(k) => with::<ml_dsa::MlDsa87>(k, message, sig),
        _ => false,
    }
}

/// A parsed certificate, keeping its DER and the fields the checks read.
#[derive(Clone)]
pub(crate) struct Cert {
    der: Vec<u8>,
    tbs: Range<usize>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_text: String,
    common_name: Option<String>,
    serial: Vec<u8>,
    key: PublicKey,
    sig_alg: ObjectIdentifier,
    signature: Vec<u8>,
    not_before: u64,
    not_after: u64,
    is_ca: bool,
}

impl fmt::Debug for Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cert({}, serial {})",
            self.subject_text,
            self.serial_hex()
        )
    }
}

/// Header length and content length of the DER TLV at the start of `bytes`
/// (single-byte tags only, which is all X.509 uses at this level).
fn tlv(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = *bytes.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = len << 8 | usize::from(*bytes.get(2 + i)?);
    }
    Some((2 + n, len))
}

/// The byte range of the signed `tbsCertificate` inside a certificate's DER (or of the
/// `tbsCertList` inside a CRL's: the same outer shape).
pub(crate) fn tbs_range(der: &[u8]) -> Option<Range<usize>> {
    let (outer_header, _) = tlv(der)?;
    let (h, len) = tlv(der.get(outer_header..)?)?;
    let range = outer_header..outer_header.checked_add(h)?.checked_add(len)?;
    (range.end <= der.len()).then_some(range)
}

impl Cert {
    /// Parses one DER certificate.
    pub(crate) fn from_der(der: Vec<u8>) -> Result<Cert, String> {
        let cert =
            Certificate::from_der(&der).map_err(|e| format!("malformed certificate: {e}"))?;
        let tbs = tbs_range(&der).ok_or("malformed certificate: bad outer DER")?;
        let t = cert.tbs_certificate();
        let subject = t.subject().to_der().map_err(|e| e.to_string())?;
        let issuer = t.issuer().to_der().map_err(|e| e.to_string())?;
        let spki = t.subject_public_key_info();
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .unwrap_or_default()
            .to_vec();
        let key = if spki.algorithm.oid == OID_RSA {
            PublicKey::Rsa(key_bytes)
        } else if spki.algorithm.oid == OID_EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match curve {
                Some(c) if c == OID_P256 => PublicKey::EcP256(key_bytes),
                Some(c) if c == OID_P384 => PublicKey::EcP384(key_bytes),
                Some(c) => PublicKey::Unsupported(format!("EC curve {c}")),
                None => PublicKey::Unsupported("EC without a named curve".into()),
            }
        } else if spki.algorithm.oid == OID_ED25519 {
            PublicKey::Ed25519(key_bytes)
        } else if spki.algorithm.parameters.is_some() && ml_dsa_oid(spki.algorithm.oid) {
            PublicKey::Unsupported(format!(
                "{} with parameters (RFC 9881 requires none)",
                spki.algorithm.oid
            ))
        } else if spki.algorithm.oid == OID_ML_DSA_44 {
            PublicKey::MlDsa44(key_bytes)
        } else if spki.algorithm.oid == OID_ML_DSA_65 {
            PublicKey::MlDsa65(key_bytes)
        } else if spki.algorithm.oid == OID_ML_DSA_87 {
            PublicKey::MlDsa87(key_bytes)
        } else {
            PublicKey::Unsupported(spki.algorithm.oid.to_string())
        };
        let is_ca = matches!(t.get_extension::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca);
        let common_name = t
            .subject()
            .common_name()
            .ok()
            .flatten()
            .map(|cn| cn.value().into_owned());
        let validity = t.validity();
        Ok(Cert {
            tbs,
            subject,
            issuer,
            subject_text: t.subject().to_string(),
            common_name,
            serial: t.serial_number().as_bytes().to_vec(),
            key,
            sig_alg: cert.signature_algorithm().oid,
            signature: cert.signature().as_bytes().unwrap_or_default().to_vec(),
            not_before: validity.not_before.to_unix_duration().as_secs(),
            not_after: validity.not_after.to_unix_duration().as_secs(),
            is_ca,
            der,
        })
    }

    /// The certificate's DER.
    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's public key.
    pub(crate) fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The subject as an RFC 4514 string.
    pub(crate) fn subject_text(&self) -> &str {
        &self.subject_text
    }

    /// The subject's DER (for stable identifiers).
    pub(crate) fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The subject's first common name, if any.
    pub(crate) fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The serial number in decimal (with a `-` for the rare negative serial).
    pub(crate) fn serial_decimal(&self) -> String {
        let (negative, magnitude) = serial_magnitude(&self.serial);
        let mut digits = Vec::new();
        let mut n = magnitude;
        while n.iter().any(|&b| b != 0) {
            let mut rem = 0u32;
            for b in n.iter_mut() {
                let cur = rem << 8 | u32::from(*b);
                // cur < 2560, so cur / 10 < 256.
                *b = u8::try_from(cur / 10).unwrap_or(0);
                rem = cur % 10;
            }
            digits.push(char::from(b'0' + u8::try_from(rem).unwrap_or(0)));
        }
        if digits.is_empty() {
            digits.push('0');
        }
        if negative {
            digits.push('-');
        }
        digits.iter().rev().collect()
    }

    /// The serial number's magnitude in lower-case hex without leading zeros.
    pub(crate) fn serial_hex(&self) -> String {
        let (_, magnitude) = serial_magnitude(&self.serial);
        let h = crate::sigv4::hex(&magnitude);
        let trimmed = h.trim_start_matches('0');
        if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        }
    }

    /// Whether `now` lies within notBefore..=notAfter.
    pub(crate) fn validity_problem(&self, now: u64, role: &str) -> Option<ChainError> {
        if now > self.not_after {
            Some(ChainError::Expired(format!(
                "Certificate expired: the {role} certificate {} (serial {}) expired at {}",
                self.subject_text,
                self.serial_hex(),
                clock::iso8601(self.not_after)
            )))
        } else if now < self.not_before {
            Some(ChainError::NotYetValid(format!(
                "Certificate not yet valid: the {role} certificate {} (serial {}) is valid from {}",
                self.subject_text,
                self.serial_hex(),
                clock::iso8601(self.not_before)
            )))
        } else {
            None
        }
    }

    /// Checks that `issuer`'s key signed this certificate.
    pub(crate) fn is_signed_by(&self, issuer: &Cert) -> bool {
        signed_by(
            &self.der[self.tbs.clone()],
            self.sig_alg,
            &self.signature,
            issuer,
        )
    }

    /// The issuer's DER (to match a CRL's issuer).
    pub(crate) fn issuer_der(&self) -> &[u8] {
        &self.issuer
    }

    /// The serial number's DER INTEGER content bytes (to match CRL entries).
    pub(crate) fn serial_bytes(&self) -> &[u8] {
        &self.serial
    }
}

/// Checks that `issuer`'s key made `signature` with algorithm `sig_alg` over `signed`
/// (a certificate's or a CRL's to-be-signed DER).
pub(crate) fn signed_by(
    signed: &[u8],
    sig_alg: ObjectIdentifier,
    signature: &[u8],
    issuer: &Cert,
) -> bool {
    match (&issuer.key, sig_alg) {
        (PublicKey::MlDsa44(_), OID_ML_DSA_44)
        | (PublicKey::MlDsa65(_), OID_ML_DSA_65)
        | (PublicKey::MlDsa87(_), OID_ML_DSA_87) => {
            return ml_dsa_verify(&issuer.key, signed, signature);
        }
        _ => {}
    }
    let Some(alg) = cert_verification_alg(sig_alg, &issuer.key) else {
        return false;
    };
    let key = match &issuer.key {
        PublicKey::Rsa(k) | PublicKey::EcP256(k) | PublicKey::EcP384(k) | PublicKey::Ed25519(k) => {
            k
        }
        PublicKey::MlDsa44(_)
        | PublicKey::MlDsa65(_)
        | PublicKey::MlDsa87(_)
        | PublicKey::Unsupported(_) => return false,
    };
    UnparsedPublicKey::new(alg, key)
        .verify(signed, signature)
        .is_ok()
}

fn ml_dsa_oid(oid: ObjectIdentifier) -> bool {
    oid == OID_ML_DSA_44 || oid == OID_ML_DSA_65 || oid == OID_ML_DSA_87
}

/// (negative?, big-endian magnitude) of a DER INTEGER's content bytes.
fn serial_magnitude(bytes: &[u8]) -> (bool, Vec<u8>) {
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        // Two's complement: invert and add one.
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        (true, m)
    } else {
        (false, bytes.to_vec())
    }
}

/// The ring algorithm for a certificate signature `sig_alg` made by `issuer_key`.
fn cert_verification_alg(
    sig_alg: ObjectIdentifier,
    issuer_key: &PublicKey,
) -> Option<&'static dyn VerificationAlgorithm> {
    use signature as s;
    let alg: &'static dyn VerificationAlgorithm = match issuer_key {
        PublicKey::Rsa(_) if sig_alg == OID_SHA256_RSA => &s::RSA_PKCS1_2048_8192_SHA256,
        PublicKey::Rsa(_) if sig_alg == OID_SHA384_RSA => &s::RSA_PKCS1_2048_8192_SHA384,
        PublicKey::Rsa(_) if sig_alg == OID_SHA512_RSA => &s::RSA_PKCS1_2048_8192_SHA512,
        PublicKey::EcP256(_) if sig_alg == OID_ECDSA_SHA256 => &s::ECDSA_P256_SHA256_ASN1,
        PublicKey::EcP256(_) if sig_alg == OID_ECDSA_SHA384 => &s::ECDSA_P256_SHA384_ASN1,
        PublicKey::EcP384(_) if sig_alg == OID_ECDSA_SHA256 => &s::ECDSA_P384_SHA256_ASN1,
        PublicKey::EcP384(_) if sig_alg == OID_ECDSA_SHA384 => &s::ECDSA_P384_SHA384_ASN1,
        PublicKey::Ed25519(_) if sig_alg == OID_ED25519 => &s::ED25519,
        _ => return None,
    };
    Some(alg)
}

/// Loads trust anchors from a PEM bundle or a single DER certificate.
pub(crate) fn load_anchors(bytes: &[u8], origin: &str) -> Result<Vec<Cert>, String> {
    let text_pem = std::str::from_utf8(bytes).is_ok_and(|s| s.contains("-----BEGIN"));
    let ders: Vec<Vec<u8>> = if text_pem {
        Certificate::load_pem_chain(bytes)
            .map_err(|e| format!("{origin}: cannot parse PEM certificates: {e}"))?
            .iter()
            .map(|c| c.to_der().map_err(|e| format!("{origin}: {e}")))
            .collect::<Result<_, _>>()?
    } else {
        vec![bytes.to_vec()]
    };
    if ders.is_empty() {
        return Err(format!("{origin}: no certificate found"));
    }
    ders.into_iter()
        .map(|d| Cert::from_der(d).map_err(|e| format!("{origin}: {e}")))
        .collect()
}

/// Why no acceptable path exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainError {
    /// No path to any anchor, whatever the dates.
    Untrusted,
    /// A path exists but one certificate on it has expired.
    Expired(String),
    /// A path exists but one certificate on it is not valid yet.
    NotYetValid(String),
}

/// Builds and checks a path leaf → intermediates (any order, each used at most once) →
/// one of `anchors`. Returns the path (leaf first, anchor last; a single element when the
/// leaf is itself an anchor). Paths whose certificates are all valid at `now` are
/// preferred; when only an out-of-date path exists, the error names the culprit.
pub(crate) fn build_path<'a>(
    leaf: &'a Cert,
    intermediates: &'a [Cert],
    anchors: &'a [Cert],
    now: u64,
) -> Result<Vec<&'a Cert>, ChainError> {
    for check_dates in [Some(now), None] {
        let mut used = vec![false; intermediates.len()];
        let mut path = vec![leaf];
        if check_dates.is_some() && leaf.validity_problem(now, "signing").is_some() {
            continue;
        }
        if extend(&mut path, intermediates, anchors, &mut used, check_dates) {
            if check_dates.is_some() {
                return Ok(path);
            }
            let last = path.len() - 1;
            for (i, cert) in path.iter().enumerate() {
                let role = if i == 0 {
                    "signing"
                } else if i == last {
                    "trust anchor"
                } else {
                    "intermediate CA"
                };
                if let Some(problem) = cert.validity_problem(now, role) {
                    return Err(problem);
                }
            }
        }
    }
    Err(ChainError::Untrusted)
}

/// Depth-first search from the last certificate of `path`.
fn extend<'a>(
    path: &mut Vec<&'a Cert>,
    intermediates: &'a [Cert],
    anchors: &'a [Cert],
    used: &mut [bool],
    now: Option<u64>,
) -> bool {
    let Some(&current) = path.last() else {
        return false;
    };
    let valid = |c: &Cert| now.is_none_or(|t| c.validity_problem(t, "").is_none());
    // The leaf may itself be an anchor.
    if path.len() == 1 && anchors.iter().any(|a| a.der() == current.der()) {
        return true;
    }
    for anchor in anchors {
        if anchor.subject == current.issuer && valid(anchor) && current.is_signed_by(anchor) {
            path.push(anchor);
            return true;
        }
    }
    if path.len() + 1 >= MAX_PATH {
        return false;
    }
    for (i, inter) in intermediates.iter().enumerate() {
        if used[i]
            || !inter.is_ca
            || inter.subject != current.issuer
            || !valid(inter)
            || !current.is_signed_by(inter)
        {
            continue;
        }
        used[i] = true;
        path.push(inter);
        if extend(path, intermediates, anchors, used, now) {
            return true;
        }
        path.pop();
        used[i] = false;
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints as RcBc, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber,
        date_time_ymd,
    };

    /// A generated certificate with its key.
    pub(crate) struct Made {
        pub cert: Cert,
        pub key: KeyPair,
        pub params: CertificateParams,
    }

    pub(crate) fn params(
        cn: &str,
        ca: bool,
        serial: &[u8],
        years: (i32, i32),
    ) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = if ca {
            IsCa::Ca(RcBc::Unconstrained)
        } else {
            IsCa::NoCa
        };
        p.serial_number = Some(SerialNumber::from_slice(serial));
        p.not_before = date_time_ymd(years.0, 1, 1);
        p.not_after = date_time_ymd(years.1, 1, 1);
        p
    }

    /// A fixed RSA-2048 test key (ring cannot generate RSA keys).
    pub(crate) fn rsa_key() -> KeyPair {
        KeyPair::from_pem(include_str!("testdata/rsa2048-test-key.pem")).expect("rsa key")
    }

    pub(crate) fn self_signed(cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> Made {
        root_with_key(cn, KeyPair::generate_for(alg).expect("keygen"))
    }

    pub(crate) fn root_with_key(cn: &str, key: KeyPair) -> Made {
        let params = params(cn, true, &[1], (2020, 2090));
        let der = params.self_signed(&key).expect("self-sign").der().to_vec();
        Made {
            cert: Cert::from_der(der).expect("parse"),
            key,
            params,
        }
    }

    pub(crate) fn issued(
        issuer: &Made,
        params: CertificateParams,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> Made {
        issued_with_key(issuer, params, KeyPair::generate_for(alg).expect("keygen"))
    }

    pub(crate) fn issued_with_key(issuer: &Made, params: CertificateParams, key: KeyPair) -> Made {
        let iss = Issuer::from_params(&issuer.params, &issuer.key);
        let der = params.signed_by(&key, &iss).expect("sign").der().to_vec();
        Made {
            cert: Cert::from_der(der).expect("parse"),
            key,
            params,
        }
    }

    const NOW: u64 = 1_765_470_865; // 2025-12-11

    #[test]
    fn decimal_serial_matches_protocol_example() {
        let ca = self_signed("ca", &rcgen::PKCS_ECDSA_P256_SHA256);
        let serial = [
            0x15, 0xD1, 0x96, 0x32, 0x23, 0x4B, 0xF7, 0x59, 0xA3, 0x28, 0x02, 0xC0, 0xDA, 0x88,
            0xF9, 0xE8, 0xAF, 0xC8, 0x70, 0x2D,
        ];
        let leaf = issued(
            &ca,
            params("leaf", false, &serial, (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        assert_eq!(
            leaf.cert.serial_decimal(),
            "124562745837719059303232313298209415765143613485"
        );
        assert_eq!(
            leaf.cert.serial_hex(),
            "15d19632234bf759a32802c0da88f9e8afc8702d"
        );
        assert_eq!(leaf.cert.common_name(), Some("leaf"));
        assert_eq!(
            leaf.cert.key(),
            &PublicKey::EcP256(leaf.key.public_key_raw().to_vec())
        );
        // High bit set: rcgen keeps it positive with a leading zero byte.
        let leaf2 = issued(
            &ca,
            params("l2", false, &[0x80, 0x01], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        assert_eq!(leaf2.cert.serial_decimal(), "32769");
        assert_eq!(serial_magnitude(&[0xff]), (true, vec![0x01]));
    }

    #[test]
    fn builds_path_through_intermediate_ignoring_unrelated_cert() {
        let root = self_signed("root", &rcgen::PKCS_ECDSA_P384_SHA384);
        let inter = issued(
            &root,
            params("inter", true, &[2], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let leaf = issued(
            &inter,
            params("leaf", false, &[3], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        // Unrelated CA with the same name as the intermediate: subject matches, signature does not.
        let impostor = self_signed("inter", &rcgen::PKCS_ECDSA_P256_SHA256);
        let unrelated = self_signed("other", &rcgen::PKCS_ECDSA_P256_SHA256);
        let chain = [unrelated.cert.clone(), impostor.cert, inter.cert.clone()];
        let anchors = [unrelated.cert.clone(), root.cert];
        let path = build_path(&leaf.cert, &chain, &anchors, NOW).expect("path");
        let names: Vec<_> = path
            .iter()
            .map(|c| c.common_name().unwrap_or("?"))
            .collect();
        assert_eq!(names, ["leaf", "inter", "root"]);

        // Missing intermediate, or the wrong anchor: untrusted.
        assert_eq!(
            build_path(&leaf.cert, &[], &anchors, NOW).err(),
            Some(ChainError::Untrusted)
        );
        assert_eq!(
            build_path(
                &leaf.cert,
                &chain,
                std::slice::from_ref(&unrelated.cert),
                NOW
            )
            .err(),
            Some(ChainError::Untrusted)
        );
        // The leaf itself as an anchor; the intermediate as anchor.
        assert_eq!(
            build_path(&leaf.cert, &[], std::slice::from_ref(&leaf.cert), NOW)
                .expect("self")
                .len(),
            1
        );
        assert_eq!(
            build_path(&leaf.cert, &[], std::slice::from_ref(&inter.cert), NOW)
                .expect("inter")
                .len(),
            2
        );
    }

    #[test]
    fn reports_expired_and_not_yet_valid() {
        let root = self_signed("root", &rcgen::PKCS_ECDSA_P256_SHA256);
        let old = issued(
            &root,
            params("old", false, &[4], (2000, 2001)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        match build_path(&old.cert, &[], std::slice::from_ref(&root.cert), NOW) {
            Err(ChainError::Expired(m)) => assert!(m.contains("signing certificate CN=old"), "{m}"),
            other => panic!("{other:?}"),
        }
        let young = issued(
            &root,
            params("young", false, &[5], (2080, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        assert!(matches!(
            build_path(&young.cert, &[], std::slice::from_ref(&root.cert), NOW),
            Err(ChainError::NotYetValid(_))
        ));
        let old_inter = issued(
            &root,
            params("oldinter", true, &[6], (2000, 2001)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let leaf = issued(
            &old_inter,
            params("leaf", false, &[7], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        match build_path(
            &leaf.cert,
            std::slice::from_ref(&old_inter.cert),
            std::slice::from_ref(&root.cert),
            NOW,
        ) {
            Err(ChainError::Expired(m)) => assert!(m.contains("intermediate CA"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_non_ca_intermediate_and_loads_pem_bundles() {
        let root = self_signed("root", &rcgen::PKCS_ECDSA_P256_SHA256);
        let not_ca = issued(
            &root,
            params("notca", false, &[8], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let leaf = issued(
            &not_ca,
            params("leaf", false, &[9], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        assert_eq!(
            build_path(
                &leaf.cert,
                std::slice::from_ref(&not_ca.cert),
                std::slice::from_ref(&root.cert),
                NOW
            )
            .err(),
            Some(ChainError::Untrusted)
        );
        let other = self_signed("other", &rcgen::PKCS_ED25519);
        let pem = format!(
            "{}{}",
            CertificateParams::default()
                .self_signed(&root.key)
                .expect("s")
                .pem(),
            other.params.self_signed(&other.key).expect("s").pem()
        );
        let loaded = load_anchors(pem.as_bytes(), "bundle").expect("pem");
        assert_eq!(loaded.len(), 2);
        assert!(matches!(loaded[1].key(), PublicKey::Ed25519(_)));
        let der = load_anchors(root.cert.der(), "der").expect("der");
        assert_eq!(der[0].der(), root.cert.der());
        assert!(load_anchors(b"junk", "junk").is_err());
    }

    #[test]
    fn verifies_rsa_issuer_signatures() {
        let root = root_with_key("rsa-root", rsa_key());
        let leaf = issued(
            &root,
            params("leaf", false, &[10], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P384_SHA384,
        );
        assert!(matches!(root.cert.key(), PublicKey::Rsa(_)));
        assert!(matches!(leaf.cert.key(), PublicKey::EcP384(_)));
        assert_eq!(
            build_path(&leaf.cert, &[], std::slice::from_ref(&root.cert), NOW)
                .expect("rsa")
                .len(),
            2
        );
    }
}
