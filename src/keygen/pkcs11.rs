//! `keygen --pkcs11-uri`: the key pair made on the token through the backend's keygen API,
//! its CSR signed there; `--import-cert`: the issued certificate stored beside the key.

use std::path::Path;

use super::error::KeygenError;
use crate::cert::{Cert, KeyType};
use crate::config::{KeygenKeyType, TokenKeygen};
use crate::signer::csr;
use crate::signer::pkcs11::{self, Pkcs11Uri, StoredCertificates};
use crate::subject::Subject;

/// A key pair made on a token, and its CSR.
pub(super) struct TokenKey {
    /// The new private key's URI (`type=private`).
    pub(super) uri: Pkcs11Uri,
    /// Its type.
    pub(super) key_type: KeyType,
    /// The CSR, PEM.
    pub(super) csr_pem: String,
}

/// Generates the key pair on the token and has it sign the CSR for `subject`.
pub(super) fn generate(
    token: &TokenKeygen,
    key_type: KeygenKeyType,
    always_authenticate: bool,
    subject: &Subject,
) -> Result<TokenKey, KeygenError> {
    let key = pkcs11::generate_key_pair(token, key_type, always_authenticate)?;
    let csr_pem = csr::request_pem(subject, key.signer.as_ref())
        .map_err(|e| KeygenError::csr(&key.uri.to_string(), e))?;
    Ok(TokenKey {
        key_type: key.signer.key_type(),
        uri: key.uri,
        csr_pem,
    })
}

/// Stores the certificates of `certificate` (the leaf and its chain) beside the key.
pub(super) fn store(
    token: &TokenKeygen,
    certificate: &Path,
) -> Result<StoredCertificates, KeygenError> {
    let certs = Cert::all_from_file(certificate)?;
    if certs.is_empty() {
        return Err(KeygenError::NoCertificate {
            path: certificate.to_owned(),
        });
    }
    Ok(pkcs11::store_certificates(token, &certs)?)
}
