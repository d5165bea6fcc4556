//! Keys held in files: PKCS#8 (plain and encrypted; RSA, EC and ML-DSA), SEC1, PKCS#1, PEM
//! bundles with certificate and key, and PKCS#12.
//!
//! [`load`] reads a file, recognises its format from the content (never the extension), asks
//! for a password only when the file is encrypted, and returns a [`Signer`](super::Signer)
//! plus any certificates found in the same file. RSA keys sign with `ring`; EC P-256 and
//! P-384 keys sign with RustCrypto's `p256`/`p384`, because `ring` only pairs each curve with
//! one digest and SigV4-X509 needs SHA-256 with P-384 keys too; ML-DSA-44/65/87 keys (seed,
//! expanded-key and both forms) sign with RustCrypto's `ml-dsa`.
//!
//! Key bytes (file contents, DER buffers, decrypted plaintext) live in
//! [`Zeroizing`](zeroize::Zeroizing) buffers that are dropped as soon as the signing key is
//! built; the signing keys themselves are zeroized on drop by their crates. Errors name the
//! file and never carry a password or key bytes.

mod detect;
mod encrypted;
mod key;
mod mldsa;
mod pkcs12;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

use crate::cert::{Cert, CertError};
use crate::secret::{Secret, SecretError};

pub use detect::TSS2_PEM_HEADER;
use detect::{Block, Kind};

/// The formats [`load`] accepts, as listed in its errors.
const SUPPORTED_FORMATS: &str = "PKCS#8, SEC1, PKCS#1, encrypted PKCS#8, PKCS#12";

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileKeyError {
    /// The file could not be read (missing, permissions, ...).
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Nothing in the file is a private key in a format we know.
    #[error("{path} is not a private key in any supported format ({SUPPORTED_FORMATS})")]
    NotAKey {
        /// The file.
        path: String,
    },
    /// The file holds certificates and no key.
    #[error(
        "{path} holds a certificate, not a private key; pass the certificate with \
         --certificate and the key file with --private-key"
    )]
    CertificateOnly {
        /// The file.
        path: String,
    },
    /// A TPM 2.0 key file (`-----BEGIN TSS2 PRIVATE KEY-----`): the TPM backend opens these.
    #[error("{path} is a TPM 2.0 key file (TSS2 PRIVATE KEY), not a plain key file")]
    TpmKeyFile {
        /// The file.
        path: String,
    },
    /// OpenSSL's traditional encrypted PEM ("Proc-Type: 4,ENCRYPTED").
    #[error(
        "{path} is a legacy OpenSSL encrypted PEM key (\"Proc-Type: 4,ENCRYPTED\"), which is \
         not supported; convert it to encrypted PKCS#8 with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {path} -out key.p8.pem`"
    )]
    LegacyEncryptedPem {
        /// The file.
        path: String,
    },
    /// A key container we recognise but do not read (OpenSSH, ...).
    #[error("{path} holds {what}, which is not supported; {hint}")]
    UnsupportedFormat {
        /// The file.
        path: String,
        /// What the file holds ("an OpenSSH private key").
        what: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// A key of a type ra-signer cannot sign with.
    #[error(
        "{path} holds an unsupported key type {key_type}; supported: RSA, EC P-256, EC P-384, ML-DSA-44, ML-DSA-65, ML-DSA-87"
    )]
    UnsupportedKeyType {
        /// The file.
        path: String,
        /// The key's type ("Ed25519", "EC P-521", ...).
        key_type: String,
    },
    /// The encryption scheme of an encrypted key is not one we can decrypt.
    #[error(
        "{path} is encrypted with {scheme}, which is not supported; re-encrypt it with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {path} -out key.p8.pem`"
    )]
    UnsupportedEncryption {
        /// The file.
        path: String,
        /// The scheme, as precisely as known.
        scheme: String,
    },
    /// The password does not decrypt the file (PBES2 padding or content, PKCS#12 MAC).
    #[error("the password for {format} file {path} is wrong")]
    WrongPassword {
        /// The file.
        path: String,
        /// "encrypted PKCS#8 key" or "PKCS#12".
        format: &'static str,
    },
    /// The file has the shape of a known format but its content is broken.
    #[error("{path} holds a malformed {format}: {detail}")]
    Malformed {
        /// The file.
        path: String,
        /// The format it was read as.
        format: &'static str,
        /// The parser's complaint (never key bytes).
        detail: String,
    },
    /// The key parsed but cannot be used (RSA size outside 2048..8192 bits, inconsistent
    /// components, ...).
    #[error("the key in {path} cannot be used: {detail}")]
    KeyRejected {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// More than one private key in one file.
    #[error("{path} holds {count} private keys; give a file with exactly one")]
    SeveralKeys {
        /// The file.
        path: String,
        /// How many.
        count: usize,
    },
    /// A PKCS#12 file with certificates only.
    #[error("the PKCS#12 file {path} holds no private key")]
    NoKeyInPkcs12 {
        /// The file.
        path: String,
    },
    /// A certificate stored with the key is malformed.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// The password could not be obtained.
    #[error(transparent)]
    Password(#[from] SecretError),
}

/// What a key file held.
pub struct LoadedKey {
    /// The key, ready to sign.
    pub signer: Box<dyn super::Signer>,
    /// Certificates found in the same file: in file order for PEM; for PKCS#12 the leaf (the
    /// certificate whose public key is the key's) first, then the others in file order.
    pub certificates: Vec<Cert>,
    /// A short description of the key's format: "PKCS#8", "encrypted PKCS#8", "SEC1",
    /// "PKCS#1" or "PKCS#12".
    pub format: &'static str,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("key_type", &self.signer.key_type())
            .field("certificates", &self.certificates)
            .field("format", &self.format)
            .finish()
    }
}

/// Loads a private key file. `password` is called at most once, and only when the file is
/// encrypted (encrypted PKCS#8; PKCS#12 unless its password is empty).
pub fn load(
    path: &Path,
    password: &mut dyn FnMut() -> Result<Secret, SecretError>,
) -> Result<LoadedKey, FileKeyError> {
    let origin = path.display().to_string();
    let bytes = crate::input::read(path).map_err(|source| FileKeyError::Read {
        path: origin.clone(),
        source,
    })?;
    load_bytes(&bytes, &origin, password)
}

/// [`load`] on bytes already read; `origin` names them in errors.
fn load_bytes(
    bytes: &[u8],
    origin: &str,
    password: &mut dyn FnMut() -> Result<Secret, SecretError>,
) -> Result<LoadedKey, FileKeyError> {
    let (key_block, certificates) = detect::classify(bytes, origin)?;
    let Block { kind, der } = key_block;
    match kind {
        Kind::Pkcs8 => Ok(LoadedKey {
            signer: Box::new(key::from_pkcs8(&der, origin)?),
            certificates,
            format: "PKCS#8",
        }),
        Kind::Sec1 => Ok(LoadedKey {
            signer: Box::new(key::from_sec1(&der, origin)?),
            certificates,
            format: "SEC1",
        }),
        Kind::Pkcs1 => Ok(LoadedKey {
            signer: Box::new(key::from_pkcs1(&der, origin)?),
            certificates,
            format: "PKCS#1",
        }),
        Kind::EncryptedPkcs8 => {
            let plain = encrypted::decrypt(&der, origin, password)?;
            drop(der);
            Ok(LoadedKey {
                signer: Box::new(key::from_pkcs8(&plain, origin)?),
                certificates,
                format: "encrypted PKCS#8",
            })
        }
        Kind::Pkcs12 => {
            let (signer, certificates) = pkcs12::load(&der, origin, password)?;
            Ok(LoadedKey {
                signer: Box::new(signer),
                certificates,
                format: "PKCS#12",
            })
        }
    }
}
