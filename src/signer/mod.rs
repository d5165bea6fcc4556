//! The `Signer` trait every key backend implements, and the `Identity` that pairs a signer
//! with its certificate chain.
//!
//! [`open`] is the only place that matches on the backend; everything above it sees an
//! [`Identity`].

pub mod der_sig;
pub mod file;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;

use std::fmt;

use crate::cert::{Cert, KeyType};

/// The digest a signature is computed over. SigV4-X509 always uses SHA-256; `sign-string`
/// can ask for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Digest {
    /// Hashes `message`.
    pub fn hash(self, message: &[u8]) -> Vec<u8> {
        let alg = match self {
            Digest::Sha256 => &ring::digest::SHA256,
            Digest::Sha384 => &ring::digest::SHA384,
            Digest::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, message).as_ref().to_vec()
    }

    /// The DER DigestInfo prefix for RSA PKCS#1 v1.5 (RFC 8017 §9.2, note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Digest::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Digest::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Digest::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// The signature algorithm of a key, as SigV4-X509 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5.
    Rsa,
    /// ECDSA with a DER `SEQUENCE { r, s }` signature.
    Ecdsa,
}

impl Algorithm {
    /// The SigV4-X509 algorithm name for a SHA-256 signature.
    pub fn sigv4_name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "AWS4-X509-RSA-SHA256",
            Algorithm::Ecdsa => "AWS4-X509-ECDSA-SHA256",
        }
    }
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// A private key that signs, wherever it lives. Implementations hash the message
/// themselves (or have the hardware do it) and return the signature in wire format:
/// PKCS#1 v1.5 bytes for RSA, DER `SEQUENCE { r, s }` for ECDSA.
pub trait Signer: Send {
    /// The key's type (RSA, P-256, P-384).
    fn key_type(&self) -> KeyType;

    /// The public key as a DER SubjectPublicKeyInfo's raw key bits: the PKCS#1
    /// RSAPublicKey DER for RSA, the uncompressed point for EC.
    fn public_key_bits(&self) -> &[u8];

    /// Signs `message` hashed with `digest`.
    fn sign(&self, digest: Digest, message: &[u8]) -> Result<Vec<u8>, SignError>;

    /// The signature algorithm family.
    fn algorithm(&self) -> Algorithm {
        match self.key_type() {
            KeyType::Rsa => Algorithm::Rsa,
            _ => Algorithm::Ecdsa,
        }
    }
}

/// Why a key does not belong with a certificate.
#[derive(Debug, thiserror::Error)]
#[error(
    "the private key ({key_desc}) does not match the certificate \"{subject}\" (serial {serial}, {cert_key})"
)]
pub struct KeyMismatch {
    /// Describes the key (its type and where it is).
    pub key_desc: String,
    /// The certificate's subject.
    pub subject: String,
    /// The certificate's serial, decimal.
    pub serial: String,
    /// The certificate's key type.
    pub cert_key: KeyType,
}

/// A leaf certificate, the intermediates to send with it, and the key that signs for it.
pub struct Identity {
    leaf: Cert,
    chain: Vec<Cert>,
    signer: Box<dyn Signer>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("leaf", &self.leaf)
            .field("chain", &self.chain)
            .field("key_type", &self.signer.key_type())
            .finish()
    }
}

impl Identity {
    /// Pairs a signer with its certificate, refusing a key whose public key is not the
    /// certificate's. `key_desc` names the key in that error ("PKCS#8 file key.pem").
    pub fn new(
        leaf: Cert,
        chain: Vec<Cert>,
        signer: Box<dyn Signer>,
        key_desc: &str,
    ) -> Result<Self, KeyMismatch> {
        if signer.key_type() != leaf.key_type() || signer.public_key_bits() != leaf.public_key_bits()
        {
            return Err(KeyMismatch {
                key_desc: format!("{}, {}", signer.key_type(), key_desc),
                subject: leaf.subject(),
                serial: leaf.serial_decimal(),
                cert_key: leaf.key_type(),
            });
        }
        Ok(Identity {
            leaf,
            chain,
            signer,
        })
    }

    /// The end-entity certificate.
    pub fn leaf(&self) -> &Cert {
        &self.leaf
    }

    /// The intermediates sent in `X-Amz-X509-Chain`, in order.
    pub fn chain(&self) -> &[Cert] {
        &self.chain
    }

    /// The key.
    pub fn signer(&self) -> &dyn Signer {
        self.signer.as_ref()
    }
}
