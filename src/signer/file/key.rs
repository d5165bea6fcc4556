//! The signing key built from a file's DER: RSA through `ring`; EC P-256 through `ring` for
//! SHA-256 (what SigV4-X509 signs), several times faster than RustCrypto's generic curve
//! arithmetic, and through RustCrypto for the other digests `sign-string` may ask for; P-384
//! through RustCrypto (`ring` has no P-384 with SHA-256 for signing, which SigV4-X509
//! requires); ML-DSA through RustCrypto's `ml-dsa` (see [`super::mldsa`]).

use std::fmt;

use der::Decode;
use der::asn1::ObjectIdentifier;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use pkcs8::PrivateKeyInfoRef;
use ring::signature::RsaKeyPair;
use sec1::EcPrivateKey;

use super::FileKeyError;
use super::mldsa::MlDsaKey;
use crate::cert::KeyType;
use crate::signer::der_sig::ecdsa_raw_to_der;
use crate::signer::{Digest, SignError, Signer};

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// A private key read from a file.
pub(super) struct FileKey {
    inner: Inner,
    /// RSA: PKCS#1 `RSAPublicKey` DER; EC: the uncompressed point; ML-DSA: `pkEncode`.
    public_key: Vec<u8>,
}

enum Inner {
    Rsa(Box<RsaKeyPair>),
    P256 {
        /// Signs SHA-256.
        pair: Box<ring::signature::EcdsaKeyPair>,
        /// The private scalar, for the digests `ring` does not pair with P-256.
        scalar: zeroize::Zeroizing<[u8; 32]>,
    },
    P384(p384::ecdsa::SigningKey),
    MlDsa(MlDsaKey),
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKey")
            .field("key_type", &self.key_type())
            .finish_non_exhaustive()
    }
}

impl Signer for FileKey {
    fn key_type(&self) -> KeyType {
        match &self.inner {
            Inner::Rsa(_) => KeyType::Rsa,
            Inner::P256 { .. } => KeyType::EcP256,
            Inner::P384(_) => KeyType::EcP384,
            Inner::MlDsa(key) => key.key_type(),
        }
    }

    fn public_key_bits(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, digest: Digest, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            Inner::Rsa(pair) => {
                let encoding = match digest {
                    Digest::Sha256 => &ring::signature::RSA_PKCS1_SHA256,
                    Digest::Sha384 => &ring::signature::RSA_PKCS1_SHA384,
                    Digest::Sha512 => &ring::signature::RSA_PKCS1_SHA512,
                };
                let mut signature = vec![0; pair.public().modulus_len()];
                // The RNG only blinds the private-key operation; PKCS#1 v1.5 is deterministic.
                pair.sign(
                    encoding,
                    &ring::rand::SystemRandom::new(),
                    message,
                    &mut signature,
                )
                // ring checks n, e, p and q at load but not dP, dQ and qInv; it verifies each
                // signature it makes, so a damaged CRT component fails here. Checking at load
                // would cost a second private-key operation on every run.
                .map_err(|_| SignError::RsaInconsistent)?;
                Ok(signature)
            }
            Inner::P256 { pair, .. } if digest == Digest::Sha256 => {
                let signature = pair
                    .sign(&ring::rand::SystemRandom::new(), message)
                    .map_err(|_| SignError::Ecdsa {
                        curve: "P-256",
                        detail: "ring could not sign".to_owned(),
                    })?;
                Ok(signature.as_ref().to_vec())
            }
            Inner::P256 { scalar, .. } => {
                let key = p256::ecdsa::SigningKey::from_slice(scalar.as_ref()).map_err(|e| {
                    SignError::Ecdsa {
                        curve: "P-256",
                        detail: e.to_string(),
                    }
                })?;
                let signature: p256::ecdsa::Signature = key
                    .sign_prehash(&digest.hash(message))
                    .map_err(|e| SignError::Ecdsa {
                        curve: "P-256",
                        detail: e.to_string(),
                    })?;
                raw_to_der(&signature.to_bytes())
            }
            Inner::P384(key) => {
                let signature: p384::ecdsa::Signature = key
                    .sign_prehash(&digest.hash(message))
                    .map_err(|e| SignError::Ecdsa {
                        curve: "P-384",
                        detail: e.to_string(),
                    })?;
                raw_to_der(&signature.to_bytes())
            }
            // Pure ML-DSA hashes internally (SHAKE256); SigV4-X509 asks for no digest.
            Inner::MlDsa(key) => key.sign(message),
        }
    }
}

fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>, SignError> {
    ecdsa_raw_to_der(raw).ok_or(SignError::OddEcdsaLength)
}

/// Builds the key from PKCS#8 `PrivateKeyInfo` DER (v1 or v2).
pub(super) fn from_pkcs8(der: &[u8], origin: &str) -> Result<FileKey, FileKeyError> {
    let info = PrivateKeyInfoRef::from_der(der).map_err(|e| malformed(origin, "PKCS#8 key", e))?;
    let algorithm = info.algorithm.oid.to_string();
    match algorithm.as_str() {
        OID_RSA => rsa_from_pkcs1(info.private_key.as_bytes(), origin, "PKCS#8 key"),
        OID_EC => {
            let curve = match info.algorithm.parameters {
                Some(params) => params.decode_as::<ObjectIdentifier>().map_err(|_| {
                    unsupported(
                        origin,
                        "EC with explicit curve parameters (not a named curve)",
                    )
                })?,
                None => {
                    return Err(FileKeyError::Malformed {
                        path: origin.to_owned(),
                        format: "PKCS#8 key",
                        detail: "the EC key names no curve".to_owned(),
                    });
                }
            };
            let ec = EcPrivateKey::from_der(info.private_key.as_bytes())
                .map_err(|e| malformed(origin, "PKCS#8 key", e))?;
            if let Some(inner) = ec.parameters.and_then(|p| p.named_curve())
                && inner != curve
            {
                return Err(FileKeyError::Malformed {
                    path: origin.to_owned(),
                    format: "PKCS#8 key",
                    detail: format!(
                        "the EC key names two curves ({curve} outside, {inner} inside)"
                    ),
                });
            }
            let public = ec
                .public_key
                .or_else(|| info.public_key.and_then(|bits| bits.as_bytes()));
            ec_key(curve, ec.private_key, public, origin)
        }
        other => match KeyType::ml_dsa_from_oid(other) {
            Some(key_type) => {
                // RFC 9881 §6: the AlgorithmIdentifier has no parameters.
                if info.algorithm.parameters.is_some() {
                    return Err(malformed(
                        origin,
                        "PKCS#8 key",
                        format!("the {key_type} algorithm identifier carries parameters"),
                    ));
                }
                let (key, public_key) =
                    super::mldsa::from_private_key(key_type, info.private_key.as_bytes(), origin)?;
                if let Some(stored) = info.public_key.and_then(|bits| bits.as_bytes())
                    && stored != public_key.as_slice()
                {
                    return Err(FileKeyError::KeyRejected {
                        path: origin.to_owned(),
                        detail: "the public key stored in the file is not the private key's"
                            .to_owned(),
                    });
                }
                Ok(FileKey {
                    inner: Inner::MlDsa(key),
                    public_key,
                })
            }
            None => Err(unsupported(origin, &algorithm_name(other))),
        },
    }
}

/// Builds the key from SEC1 `ECPrivateKey` DER, which must name its curve.
pub(super) fn from_sec1(der: &[u8], origin: &str) -> Result<FileKey, FileKeyError> {
    let ec = EcPrivateKey::from_der(der).map_err(|e| malformed(origin, "SEC1 EC key", e))?;
    let curve =
        ec.parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| FileKeyError::Malformed {
                path: origin.to_owned(),
                format: "SEC1 EC key",
                detail: "the key names no curve".to_owned(),
            })?;
    ec_key(curve, ec.private_key, ec.public_key, origin)
}

/// Builds the key from PKCS#1 `RSAPrivateKey` DER.
pub(super) fn from_pkcs1(der: &[u8], origin: &str) -> Result<FileKey, FileKeyError> {
    rsa_from_pkcs1(der, origin, "PKCS#1 RSA key")
}

fn rsa_from_pkcs1(der: &[u8], origin: &str, format: &'static str) -> Result<FileKey, FileKeyError> {
    let pair = RsaKeyPair::from_der(der).map_err(|e| {
        let detail = match e.to_string().as_str() {
            "TooSmall" => "RSA keys must have at least 2048 bits".to_owned(),
            "TooLarge" => "RSA keys must have at most 8192 bits".to_owned(),
            "InvalidEncoding" => {
                return malformed(origin, format, "not a valid RSAPrivateKey");
            }
            other => format!("the RSA key was rejected ({other})"),
        };
        FileKeyError::KeyRejected {
            path: origin.to_owned(),
            detail,
        }
    })?;
    let public_key = pair.public().as_ref().to_vec();
    Ok(FileKey {
        inner: Inner::Rsa(Box::new(pair)),
        public_key,
    })
}

/// Builds an EC key from the raw private scalar. When the file also stores the public key,
/// it must be the one the scalar gives (a mismatch means a corrupt or spliced file).
fn ec_key(
    curve: ObjectIdentifier,
    scalar: &[u8],
    stored_public: Option<&[u8]>,
    origin: &str,
) -> Result<FileKey, FileKeyError> {
    let (inner, public_key, stored_matches) = match curve.to_string().as_str() {
        OID_P256 => return p256_key(scalar, stored_public, origin),
        OID_P384 => {
            let key = p384::ecdsa::SigningKey::from_slice(scalar)
                .map_err(|_| bad_scalar(origin, "P-384"))?;
            let public = key.verifying_key().to_sec1_point(false).as_bytes().to_vec();
            let matches = stored_public.is_none_or(|stored| {
                p384::ecdsa::VerifyingKey::from_sec1_bytes(stored)
                    .is_ok_and(|k| k.to_sec1_point(false).as_bytes() == public.as_slice())
            });
            (Inner::P384(key), public, matches)
        }
        other => return Err(unsupported(origin, &curve_name(other))),
    };
    if !stored_matches {
        return Err(public_mismatch(origin));
    }
    Ok(FileKey { inner, public_key })
}

/// A P-256 key. With the public key stored in the file (OpenSSL always writes it), `ring`
/// derives it once from the scalar and compares: one fast scalar multiplication, which is
/// also the check that the two belong together.
fn p256_key(
    scalar: &[u8],
    stored_public: Option<&[u8]>,
    origin: &str,
) -> Result<FileKey, FileKeyError> {
    // SEC1 fixes the length at 32 octets; a shorter value is the same integer.
    let mut padded = zeroize::Zeroizing::new([0u8; 32]);
    let start = 32usize
        .checked_sub(scalar.len())
        .ok_or_else(|| bad_scalar(origin, "P-256"))?;
    padded[start..].copy_from_slice(scalar);
    let stored_uncompressed = match stored_public {
        Some(point) if point.len() == 65 && point[0] == 0x04 => Some(point.to_vec()),
        // A compressed point: decompressed without touching the scalar.
        Some(point) => Some(
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| public_mismatch(origin))?
                .to_sec1_point(false)
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    let public = match &stored_uncompressed {
        Some(point) => point.clone(),
        None => p256::ecdsa::SigningKey::from_slice(padded.as_ref())
            .map_err(|_| bad_scalar(origin, "P-256"))?
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec(),
    };
    let pair = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        padded.as_ref(),
        &public,
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| {
        if e.to_string() == "InconsistentComponents" && stored_uncompressed.is_some() {
            public_mismatch(origin)
        } else {
            bad_scalar(origin, "P-256")
        }
    })?;
    Ok(FileKey {
        inner: Inner::P256 {
            pair: Box::new(pair),
            scalar: padded,
        },
        public_key: public,
    })
}

fn public_mismatch(origin: &str) -> FileKeyError {
    FileKeyError::KeyRejected {
        path: origin.to_owned(),
        detail: "the public key stored in the file is not the private key's".to_owned(),
    }
}

fn bad_scalar(origin: &str, curve: &str) -> FileKeyError {
    FileKeyError::KeyRejected {
        path: origin.to_owned(),
        detail: format!("the private value is not a valid {curve} scalar"),
    }
}

fn malformed(origin: &str, format: &'static str, detail: impl fmt::Display) -> FileKeyError {
    FileKeyError::Malformed {
        path: origin.to_owned(),
        format,
        detail: detail.to_string(),
    }
}

fn unsupported(origin: &str, key_type: &str) -> FileKeyError {
    FileKeyError::UnsupportedKeyType {
        path: origin.to_owned(),
        key_type: key_type.to_owned(),
    }
}

/// A readable name for a PKCS#8 key algorithm we do not support.
fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".to_owned(),
        "1.2.840.113549.1.3.1" | "1.2.840.10046.2.1" => "DH".to_owned(),
        "2.16.840.1.101.3.4.3.32" => "HashML-DSA-44 with SHA-512".to_owned(),
        "2.16.840.1.101.3.4.3.33" => "HashML-DSA-65 with SHA-512".to_owned(),
        "2.16.840.1.101.3.4.3.34" => "HashML-DSA-87 with SHA-512".to_owned(),
        other => format!("with algorithm OID {other}"),
    }
}

/// A readable name for an EC curve we do not support.
fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.35" => "EC P-521".to_owned(),
        "1.3.132.0.33" => "EC P-224".to_owned(),
        "1.2.840.10045.3.1.1" => "EC P-192".to_owned(),
        "1.3.132.0.10" => "EC secp256k1".to_owned(),
        "1.3.36.3.3.2.8.1.1.7" => "EC brainpoolP256r1".to_owned(),
        "1.3.36.3.3.2.8.1.1.11" => "EC brainpoolP384r1".to_owned(),
        "1.3.36.3.3.2.8.1.1.13" => "EC brainpoolP512r1".to_owned(),
        "1.2.156.10197.1.301" => "EC SM2".to_owned(),
        other => format!("EC on curve {other}"),
    }
}
