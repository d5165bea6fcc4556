//! Why `keygen` failed (`crate::error` says with which exit code and hint).

use std::path::PathBuf;

use crate::cert::CertError;
use crate::signer::SignError;
use crate::signer::csr::CsrError;

/// Why `keygen` failed.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The token refused, or keygen's work on it failed.
    #[cfg(feature = "pkcs11")]
    #[error(transparent)]
    Token(#[from] crate::signer::pkcs11::ProvisionError),
    /// The TPM refused, or a password for it could not be had.
    #[cfg(feature = "tpm")]
    #[error(transparent)]
    Tpm(#[from] crate::signer::tpm::TpmError),
    /// The certificate to store could not be read.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// The certificate file to store holds none.
    #[error("{} holds no certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The new key did not sign its CSR.
    #[error("cannot sign the CSR with {key}: {source}")]
    SignCsr {
        /// The new key.
        key: String,
        /// The backend's failure.
        #[source]
        source: SignError,
    },
    /// The CSR could not be made for the new key.
    #[error(transparent)]
    Csr(CsrError),
    /// An output file exists and `--force` was not given.
    #[error("{} exists: not replacing it (--force replaces it)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A token key was asked of a build without PKCS#11.
    #[error("this ra-signer was built without PKCS#11 support, which keygen needs")]
    NoPkcs11Support,
    /// A TPM key was asked of a build without TPM support.
    #[error("this ra-signer was built without TPM support, which keygen --tpm needs")]
    NoTpmSupport,
    /// The CSR could not be written on standard output.
    #[error(transparent)]
    Stdout(#[from] crate::diag::StdoutError),
}

impl KeygenError {
    /// The failure to make the CSR with the new key (`key` names it).
    #[cfg(any(feature = "pkcs11", feature = "tpm"))]
    pub(super) fn csr(key: &str, e: CsrError) -> KeygenError {
        match e {
            CsrError::Sign(source) => KeygenError::SignCsr {
                key: key.to_owned(),
                source,
            },
            other => KeygenError::Csr(other),
        }
    }
}
