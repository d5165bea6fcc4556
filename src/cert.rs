//! X.509 certificates as ra-signer needs them: parsed once at the boundary into a
//! [`Cert`] that keeps the DER bytes (sent on the wire) and the few fields we read.

use std::fmt;
use std::path::Path;

use der::{Decode, Encode};
use x509_cert::Certificate;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The file could not be read.
    #[error("cannot read certificate file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither PEM with a CERTIFICATE block nor DER.
    #[error("{origin} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" or DER)")]
    NoCertificate {
        /// Where the bytes came from.
        origin: String,
    },
    /// The certificate's ASN.1 is malformed.
    #[error("{origin} holds a malformed certificate: {detail}")]
    Malformed {
        /// Where the bytes came from.
        origin: String,
        /// The parser's complaint.
        detail: String,
    },
}

/// The kind of public key in a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA, any size.
    Rsa,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// ML-DSA-44 (FIPS 204).
    MlDsa44,
    /// ML-DSA-65 (FIPS 204).
    MlDsa65,
    /// ML-DSA-87 (FIPS 204).
    MlDsa87,
    /// Anything else (named by its OID).
    Other,
}

impl KeyType {
    /// "RSA", "EC", or the ML-DSA parameter set ("ML-DSA-65"), as the Go helper's
    /// `read-certificate-data` names them in `keyType`.
    pub fn family(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 | KeyType::EcP384 => "EC",
            KeyType::MlDsa44 => "ML-DSA-44",
            KeyType::MlDsa65 => "ML-DSA-65",
            KeyType::MlDsa87 => "ML-DSA-87",
            KeyType::Other => "unknown",
        }
    }

    /// Whether this is one of the ML-DSA parameter sets.
    pub fn is_ml_dsa(self) -> bool {
        matches!(self, KeyType::MlDsa44 | KeyType::MlDsa65 | KeyType::MlDsa87)
    }

    /// The ML-DSA parameter set of a SubjectPublicKeyInfo / PKCS#8 algorithm OID (RFC 9881:
    /// `id-ml-dsa-44`/`-65`/`-87`, with absent parameters).
    pub fn ml_dsa_from_oid(oid: &str) -> Option<KeyType> {
        match oid {
            OID_ML_DSA_44 => Some(KeyType::MlDsa44),
            OID_ML_DSA_65 => Some(KeyType::MlDsa65),
            OID_ML_DSA_87 => Some(KeyType::MlDsa87),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::MlDsa44 => "ML-DSA-44",
            KeyType::MlDsa65 => "ML-DSA-65",
            KeyType::MlDsa87 => "ML-DSA-87",
            KeyType::Other => "unsupported key type",
        })
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ML_DSA_44: &str = "2.16.840.1.101.3.4.3.17";
const OID_ML_DSA_65: &str = "2.16.840.1.101.3.4.3.18";
const OID_ML_DSA_87: &str = "2.16.840.1.101.3.4.3.19";

/// A parsed X.509 certificate.
#[derive(Clone)]
pub struct Cert {
    der: Vec<u8>,
    parsed: Certificate,
}

impl fmt::Debug for Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cert")
            .field("subject", &self.subject())
            .field("serial", &self.serial_decimal())
            .finish()
    }
}

impl Cert {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8], origin: &str) -> Result<Self, CertError> {
        let parsed = Certificate::from_der(der).map_err(|e| CertError::Malformed {
            origin: origin.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Cert {
            der: der.to_vec(),
            parsed,
        })
    }

    /// Parses every certificate in `bytes`: a PEM bundle (other PEM blocks, such as keys, are
    /// skipped) or a single DER certificate.
    pub fn all_from_bytes(bytes: &[u8], origin: &str) -> Result<Vec<Self>, CertError> {
        if looks_like_pem(bytes) {
            let mut certs = Vec::new();
            for block in pem_blocks(bytes) {
                let (label, der) = block.map_err(|detail| CertError::Malformed {
                    origin: origin.to_owned(),
                    detail,
                })?;
                if label == "CERTIFICATE" {
                    certs.push(Cert::from_der(&der, origin)?);
                }
            }
            Ok(certs)
        } else if bytes.first() == Some(&0x30) {
            Ok(vec![Cert::from_der(bytes, origin)?])
        } else {
            Err(CertError::NoCertificate {
                origin: origin.to_owned(),
            })
        }
    }

    /// Reads the first certificate of a PEM or DER file.
    pub fn first_from_file(path: &Path) -> Result<Self, CertError> {
        let origin = path.display().to_string();
        let bytes = read_file(path)?;
        Cert::all_from_bytes(&bytes, &origin)?
            .into_iter()
            .next()
            .ok_or(CertError::NoCertificate { origin })
    }

    /// Reads every certificate of a PEM bundle or DER file.
    pub fn all_from_file(path: &Path) -> Result<Vec<Self>, CertError> {
        let bytes = read_file(path)?;
        Cert::all_from_bytes(&bytes, &path.display().to_string())
    }

    /// The certificate's DER encoding, exactly as read.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed certificate.
    pub fn parsed(&self) -> &Certificate {
        &self.parsed
    }

    /// The serial number's big-endian bytes (as encoded, possibly with a leading zero).
    pub fn serial_bytes(&self) -> &[u8] {
        self.parsed.tbs_certificate().serial_number().as_bytes()
    }

    /// The serial number in decimal, as the SigV4-X509 credential scope needs it.
    pub fn serial_decimal(&self) -> String {
        decimal_from_be_bytes(self.serial_bytes())
    }

    /// The subject as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.parsed.tbs_certificate().subject().to_string()
    }

    /// The issuer as an RFC 4514 string.
    pub fn issuer(&self) -> String {
        self.parsed.tbs_certificate().issuer().to_string()
    }

    /// The DER of the subject name, for exact issuer matching.
    pub fn subject_der(&self) -> Vec<u8> {
        self.parsed
            .tbs_certificate()
            .subject()
            .to_der()
            .unwrap_or_default()
    }

    /// The DER of the issuer name, for exact issuer matching.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.parsed
            .tbs_certificate()
            .issuer()
            .to_der()
            .unwrap_or_default()
    }

    /// The DER of the SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        self.parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap_or_default()
    }

    /// The raw public key bits (RSAPublicKey DER, the EC point, or the encoded ML-DSA
    /// public key).
    pub fn public_key_bits(&self) -> &[u8] {
        self.parsed
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
    }

    /// The kind of public key.
    pub fn key_type(&self) -> KeyType {
        let spki = self.parsed.tbs_certificate().subject_public_key_info();
        match spki.algorithm.oid.to_string().as_str() {
            OID_RSA => KeyType::Rsa,
            OID_EC => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                    .map(|oid| oid.to_string());
                match curve.as_deref() {
                    Some(OID_P256) => KeyType::EcP256,
                    Some(OID_P384) => KeyType::EcP384,
                    _ => KeyType::Other,
                }
            }
            // RFC 9881 §2: the parameters field is absent; anything else is not a key we know.
            other if spki.algorithm.parameters.is_none() => {
                KeyType::ml_dsa_from_oid(other).unwrap_or(KeyType::Other)
            }
            _ => KeyType::Other,
        }
    }

    /// Validity start, seconds since the Unix epoch.
    pub fn not_before(&self) -> u64 {
        self.parsed
            .tbs_certificate()
            .validity()
            .not_before
            .to_unix_duration()
            .as_secs()
    }

    /// Validity end, seconds since the Unix epoch.
    pub fn not_after(&self) -> u64 {
        self.parsed
            .tbs_certificate()
            .validity()
            .not_after
            .to_unix_duration()
            .as_secs()
    }

    /// Whether `issuer` could have issued this certificate (names match exactly).
    pub fn is_issued_by(&self, issuer: &Cert) -> bool {
        self.issuer_der() == issuer.subject_der()
    }

    /// SHA-256 fingerprint of the DER, lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex_lower(ring::digest::digest(&ring::digest::SHA256, &self.der).as_ref())
    }

    /// SHA-1 fingerprint of the DER, lowercase hex (as the Go helper prints).
    pub fn sha1_hex(&self) -> String {
        hex_lower(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der).as_ref())
    }
}

fn read_file(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, CertError> {
    crate::input::read(path).map_err(|source| CertError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Whether the bytes look like PEM text (rather than DER).
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Iterates over the PEM blocks of `text`, yielding (label, DER) or a parse error.
/// Text between blocks is ignored, as OpenSSL does (bundles often carry comments).
/// Key files pass through here too, so the text copy and the base64 bodies are zeroized.
pub fn pem_blocks(text: &[u8]) -> impl Iterator<Item = Result<(String, Vec<u8>), String>> + '_ {
    use base64::Engine;
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(text).into_owned());
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = zeroize::Zeroizing::new(String::new());
        let mut closed = false;
        for inner in lines.by_ref() {
            let inner = inner.trim();
            if inner == end {
                closed = true;
                break;
            }
            // Encapsulated headers (Proc-Type, DEK-Info) precede the base64 body.
            if inner.contains(':') {
                body.push('\u{0}');
                continue;
            }
            body.push_str(inner);
        }
        if !closed {
            // Debug quoting escapes control characters: the label is the file's text.
            blocks.push(Err(format!("PEM block {label:?} has no END line")));
            break;
        }
        if body.contains('\u{0}') {
            blocks.push(Ok((format!("{label} (legacy encrypted)"), Vec::new())));
            continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
            Ok(der) => blocks.push(Ok((label.to_owned(), der))),
            Err(e) => blocks.push(Err(format!("PEM block {label:?} is not valid base64: {e}"))),
        }
    }
    blocks.into_iter()
}

/// Converts a big-endian unsigned integer to decimal.
pub fn decimal_from_be_bytes(bytes: &[u8]) -> String {
    // Repeated division by 10^9 on base-2^32 limbs would be faster; serials are at most 20
    // bytes, so byte-wise long division is plenty.
    let mut digits: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if digits.is_empty() {
        return "0".to_owned();
    }
    let mut out = Vec::new();
    while !digits.is_empty() {
        let mut rem: u32 = 0;
        let mut next = Vec::with_capacity(digits.len());
        for b in &digits {
            let acc = (rem << 8) | u32::from(*b);
            let q = acc / 10;
            rem = acc % 10;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        out.push(b'0' + rem as u8);
        digits = next;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    // By table rather than `write!("{:02x}")`: a credential hex-encodes three digests and a
    // signature, and the formatter costs ~250 instructions a byte.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_lower_is_the_formatter_s_lower_hex() {
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex_lower(&all), want);
        assert_eq!(hex_lower(&[]), "");
    }

    #[test]
    fn decimal_serials() {
        assert_eq!(decimal_from_be_bytes(&[]), "0");
        assert_eq!(decimal_from_be_bytes(&[0]), "0");
        assert_eq!(decimal_from_be_bytes(&[1]), "1");
        assert_eq!(decimal_from_be_bytes(&[0x00, 0x80]), "128");
        assert_eq!(decimal_from_be_bytes(&[0x01, 0x00]), "256");
        let protocol_example = [
            0x15, 0xD1, 0x96, 0x32, 0x23, 0x4B, 0xF7, 0x59, 0xA3, 0x28, 0x02, 0xC0, 0xDA, 0x88,
            0xF9, 0xE8, 0xAF, 0xC8, 0x70, 0x2D,
        ];
        assert_eq!(
            decimal_from_be_bytes(&protocol_example),
            "124562745837719059303232313298209415765143613485"
        );
        assert_eq!(decimal_from_be_bytes(&[0xff; 8]), u64::MAX.to_string());
    }
}
