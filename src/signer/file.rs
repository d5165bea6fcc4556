//! Keys held in files: PKCS#8 (plain and encrypted), SEC1, PKCS#1, PEM bundles with
//! certificate and key, and PKCS#12. Signing uses `ring`; key material is zeroized on drop.
//!
//! INTERFACE CONTRACT (filled in by the file-key work):
//! - [`load`] reads `path`, detects the format, asks `password` only when the file is
//!   encrypted, and returns the key plus any certificates found in the same file.

use std::path::Path;

use crate::cert::Cert;
use crate::secret::{Secret, SecretError};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileKeyError {
    /// Placeholder variant until the loader lands.
    #[error("{0}")]
    Other(String),
    /// The password could not be obtained.
    #[error(transparent)]
    Password(#[from] SecretError),
}

/// What a key file held.
pub struct LoadedKey {
    /// The key, ready to sign.
    pub signer: Box<dyn super::Signer>,
    /// Certificates found in the same file (PEM bundle or PKCS#12), leaf first when known.
    pub certificates: Vec<Cert>,
    /// A short description of the key's format ("PKCS#8", "encrypted PKCS#8", "PKCS#12").
    pub format: &'static str,
}

/// Loads a private key file.
pub fn load(
    path: &Path,
    password: &mut dyn FnMut() -> Result<Secret, SecretError>,
) -> Result<LoadedKey, FileKeyError> {
    let _ = (path, password);
    Err(FileKeyError::Other("file keys are not loaded yet".into()))
}
