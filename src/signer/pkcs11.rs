//! PKCS#11 backend (filled in by the PKCS#11 work).

use crate::config::IdentityConfig;
use crate::signer::Identity;

/// Why the PKCS#11 backend failed.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// Placeholder until the backend lands.
    #[error("{0}")]
    Other(String),
}

/// Opens the identity described by `config` where the key or certificate is on a token.
pub fn open(config: &IdentityConfig) -> Result<Identity, Pkcs11Error> {
    let _ = config;
    Err(Pkcs11Error::Other("the PKCS#11 backend is not built yet".into()))
}
