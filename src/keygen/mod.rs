//! `ra-signer keygen`: generates a key pair inside a PKCS#11 token (sensitive, never
//! extractable) or a TPM 2.0 (`--tpm`), writes a PKCS#10 CSR signed by that key for a
//! private CA, and, for tokens, once the CA has issued it, stores the certificate beside the
//! key (`--import-cert`).
//!
//! ```text
//! ra-signer keygen --pkcs11-uri 'pkcs11:token=prod;object=ra;id=%01' --key-type p256 \
//!     --subject 'CN=host1,O=Example' --csr-out host1.csr
//! ra-signer keygen --pkcs11-uri 'pkcs11:token=prod;object=ra' --import-cert host1.pem
//! ra-signer keygen --tpm --key-type p256 --out host1.tss2.pem --subject 'CN=host1' --csr-out host1.csr
//! ```
//!
//! The flags arrive checked ([`KeygenConfig`]); [`pkcs11`] and [`tpm`] make the key through
//! their backend's keygen API and sign the CSR with it ([`crate::signer::csr`]); this module
//! writes the files and says what was done. Every failure is a [`KeygenError`], classified
//! once, below.

#[cfg(feature = "pkcs11")]
mod pkcs11;
#[cfg(feature = "tpm")]
mod tpm;

use std::path::{Path, PathBuf};

use crate::cert::CertError;
use crate::config::{CsrRequest, KeygenConfig, KeygenJob, KeygenKeyType, TokenKeygen, TpmKeygen};
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
            KeygenError::Certificate(e) => crate::signer::cert_error(e),
            KeygenError::NoCertificate { .. } | KeygenError::Exists { .. } => usage(),
            KeygenError::SignCsr { source, .. } => {
                let error = Error::new(ErrorClass::Identity, message);
                match source.hint() {
                    Some(hint) => error.with_hint(hint),
                    None => error,
                }
            }
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

/// Runs `ra-signer keygen`: the CSR goes to its file or standard output, what was made to
/// stderr.
pub fn run(config: &KeygenConfig) -> Result<(), Error> {
    if config.debug {
        say_what_is_done(&config.job);
    }
    match &config.job {
        KeygenJob::TokenKey {
            token,
            key_type,
            always_authenticate,
            csr,
        } => token_key(token, *key_type, *always_authenticate, csr),
        KeygenJob::TokenCertificate { token, certificate } => token_certificate(token, certificate),
        KeygenJob::TpmKey { tpm, csr } => tpm_key(tpm, csr),
    }
}

fn say_what_is_done(job: &KeygenJob) {
    let (key_type, place) = match job {
        KeygenJob::TokenCertificate { certificate, .. } => {
            crate::diag!(
                "ra-signer: debug: keygen: storing {} beside the key on the PKCS#11 token",
                certificate.display()
            );
            return;
        }
        KeygenJob::TokenKey { key_type, .. } => (format!("{key_type:?}"), "on the PKCS#11 token"),
        KeygenJob::TpmKey { tpm, .. } => (format!("{:?}", tpm.key_type), "in the TPM"),
    };
    crate::diag!("ra-signer: debug: keygen: generating a non-extractable {key_type} key {place}");
}

#[cfg(feature = "pkcs11")]
fn token_key(
    token: &TokenKeygen,
    key_type: KeygenKeyType,
    always_authenticate: bool,
    csr: &CsrRequest,
) -> Result<(), Error> {
    let made = pkcs11::generate(token, key_type, always_authenticate, &csr.subject)?;
    write_csr(csr, &made.csr_pem)?;
    crate::diag!(
        "generated {} key {} inside the token (sensitive, not extractable{})",
        made.key_type,
        made.uri,
        if always_authenticate {
            ", always-authenticate"
        } else {
            ""
        }
    );
    if let Some(path) = &csr.out {
        crate::diag!("CSR written to {}", path.display());
    }
    let mut key_uri = made.uri;
    key_uri.object_type = None;
    crate::diag!(
        "next: have your CA sign the CSR, then: ra-signer keygen --pkcs11-uri '{key_uri}' --import-cert CERT.pem"
    );
    Ok(())
}

#[cfg(feature = "pkcs11")]
fn token_certificate(token: &TokenKeygen, certificate: &Path) -> Result<(), Error> {
    let stored = pkcs11::store(token, certificate)?;
    crate::diag!(
        "stored {} certificate(s) on {} beside key {} (subject \"{}\", serial {})",
        stored.written,
        stored.token,
        stored.key,
        stored.subject,
        stored.serial
    );
    Ok(())
}

#[cfg(not(feature = "pkcs11"))]
fn token_key(_: &TokenKeygen, _: KeygenKeyType, _: bool, _: &CsrRequest) -> Result<(), Error> {
    Err(KeygenError::NoPkcs11Support.into())
}

#[cfg(not(feature = "pkcs11"))]
fn token_certificate(_: &TokenKeygen, _: &Path) -> Result<(), Error> {
    Err(KeygenError::NoPkcs11Support.into())
}

#[cfg(feature = "tpm")]
fn tpm_key(config: &TpmKeygen, csr: &CsrRequest) -> Result<(), Error> {
    // Refused before the TPM makes anything: a persistent key would outlive the failure.
    let key_file = match &config.target {
        crate::config::TpmKeyTarget::File(path) => Some(path.as_path()),
        crate::config::TpmKeyTarget::Persistent(_) => None,
    };
    for path in csr.out.iter().map(PathBuf::as_path).chain(key_file) {
        if !config.replace && path.exists() {
            return Err(KeygenError::Exists {
                path: path.to_owned(),
            }
            .into());
        }
    }
    let made = tpm::generate(config, &csr.subject)?;
    if let (Some(path), Some(pem)) = (key_file, &made.key_file) {
        write_output(path, pem.as_bytes(), config.replace)?;
    }
    write_csr(csr, &made.csr_pem)?;
    let csr_place = match &csr.out {
        Some(path) => path.display().to_string(),
        None => "standard output".to_owned(),
    };
    crate::diag!(
        "created a {} key inside the TPM: --private-key {}\nwrote the certificate signing request to {csr_place}\nnext: have your CA issue a certificate from the CSR, then run ra-signer with --private-key {} --certificate CERT.pem",
        made.key_type,
        made.private_key_arg,
        made.private_key_arg,
    );
    Ok(())
}

#[cfg(not(feature = "tpm"))]
fn tpm_key(_: &TpmKeygen, _: &CsrRequest) -> Result<(), Error> {
    Err(KeygenError::NoTpmSupport.into())
}

/// The PEM CSR for `subject`, signed by the new key (`key` names it in messages).
#[cfg(any(feature = "pkcs11", feature = "tpm"))]
fn request_pem(
    subject: &crate::subject::Subject,
    signer: &dyn crate::signer::Signer,
    key: &str,
) -> Result<String, KeygenError> {
    crate::signer::csr::request_pem(subject, signer).map_err(|e| match e {
        CsrError::Sign(source) => KeygenError::SignCsr {
            key: key.to_owned(),
            source,
        },
        other => KeygenError::Csr(other),
    })
}

/// Writes the CSR to its file, or to standard output.
#[cfg(any(feature = "pkcs11", feature = "tpm"))]
fn write_csr(csr: &CsrRequest, pem: &str) -> Result<(), Error> {
    match &csr.out {
        Some(path) => Ok(write_output(path, pem.as_bytes(), csr.replace)?),
        None => crate::diag::result(|out| out.write_all(pem.as_bytes())),
    }
}

/// Writes an output file whole or not at all (see [`crate::outfile::write`]).
#[cfg(any(feature = "pkcs11", feature = "tpm"))]
fn write_output(path: &Path, contents: &[u8], replace: bool) -> Result<(), KeygenError> {
    crate::outfile::write(path, contents, replace).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeygenError::Exists {
                path: path.to_owned(),
            }
        } else {
            KeygenError::Write {
                path: path.to_owned(),
                source,
            }
        }
    })
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
        let sign = KeygenError::SignCsr {
            key: "key pkcs11:object=k".into(),
            source: SignError::new("C_Sign failed").with_hint("check the token"),
        };
        assert_eq!(
            classified(sign),
            (
                3,
                "cannot sign the CSR with key pkcs11:object=k: C_Sign failed".into(),
                Some("check the token".into())
            )
        );
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
