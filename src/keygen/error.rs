//! Why `keygen` failed, and the one place that says with which exit code and hint.

use std::path::PathBuf;

use crate::cert::CertError;
use crate::error::{Error, ErrorClass};
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
}

impl From<KeygenError> for Error {
    fn from(e: KeygenError) -> Self {
        let message = e.to_string();
        let usage = || Error::new(ErrorClass::Usage, message.clone());
        match e {
            #[cfg(feature = "pkcs11")]
            KeygenError::Token(e) => {
                use crate::signer::pkcs11::ProvisionError as P;
                match e {
                    P::Token(e) => Error::from(e),
                    P::NoLabel => usage()
                        .with_hint("e.g. --pkcs11-uri 'pkcs11:token=prod;object=ra-signer;id=%01'"),
                    P::KeyExists { .. } => {
                        usage().with_hint("choose another object= and id=, or delete the old key")
                    }
                    P::AmbiguousKey { .. } | P::NoPublicKey | P::NoCertificate => usage(),
                    P::Unprotected { .. } => Error::new(ErrorClass::Identity, message),
                    P::NoRandomness => Error::new(ErrorClass::Other, message),
                }
            }
            #[cfg(feature = "tpm")]
            KeygenError::Tpm(e) => Error::from(e),
            KeygenError::Certificate(e) => crate::error::cert_error(e),
            KeygenError::NoCertificate { .. } | KeygenError::Exists { .. } => usage(),
            KeygenError::SignCsr { source, .. } => Error::new(ErrorClass::Identity, message)
                .with_optional_hint(crate::error::sign_hint(&source)),
            KeygenError::Csr(_) | KeygenError::Write { .. } => {
                Error::new(ErrorClass::Other, message)
            }
            KeygenError::NoPkcs11Support => usage(),
            KeygenError::NoTpmSupport => usage().with_hint(
                "rebuild with `cargo build --release --features tpm` (needs libtss2-dev)",
            ),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(e: KeygenError) -> (u8, String, Option<String>) {
        let e = Error::from(e);
        (e.class.exit_code(), e.message, e.hint)
    }

    #[test]
    fn every_failure_has_its_class_and_hint() {
        let path = || PathBuf::from("out.csr");
        let (code, message, _) = classified(KeygenError::Exists { path: path() });
        assert_eq!(code, 2);
        assert_eq!(
            message,
            "out.csr exists: not replacing it (--force replaces it)"
        );
        let write = KeygenError::Write {
            path: path(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(classified(write).0, 1);
        assert_eq!(classified(KeygenError::NoCertificate { path: path() }).0, 2);
        let failure = || SignError::MalformedSignature {
            key: "key pkcs11:object=k".into(),
            len: 3,
        };
        let sign = KeygenError::SignCsr {
            key: "key pkcs11:object=k".into(),
            source: failure(),
        };
        let (code, message, hint) = classified(sign);
        assert_eq!(code, 3);
        assert!(
            message.starts_with("cannot sign the CSR with key pkcs11:object=k: "),
            "{message}"
        );
        assert_eq!(hint, crate::error::sign_hint(&failure()));
        let (code, _, hint) = classified(KeygenError::NoTpmSupport);
        assert_eq!(code, 2);
        assert!(hint.is_some_and(|h| h.contains("--features tpm")));
        assert_eq!(classified(KeygenError::NoPkcs11Support).0, 2);
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn token_refusals_have_their_class_and_hint() {
        use crate::signer::pkcs11::ProvisionError as P;
        let exists = P::KeyExists {
            label: "k".into(),
            id: "%01".into(),
            token: "token \"t\"".into(),
        };
        let (code, message, hint) = classified(exists.into());
        assert_eq!(code, 2);
        assert!(message.contains("already exists"), "{message}");
        assert!(hint.is_some_and(|h| h.contains("choose another object=")));
        let (code, _, hint) = classified(P::NoLabel.into());
        assert_eq!(code, 2);
        assert!(hint.is_some_and(|h| h.contains("object=")));
        let unprotected = P::Unprotected {
            token: "token \"t\"".into(),
            sensitive: false,
            extractable: true,
        };
        assert_eq!(classified(unprotected.into()).0, 3);
        let ambiguous = P::AmbiguousKey {
            count: 2,
            uri: "pkcs11:token=t".into(),
        };
        assert_eq!(classified(ambiguous.into()).0, 2);
    }
}
