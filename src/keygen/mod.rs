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
//! The flags arrive checked ([`KeygenConfig`]); `pkcs11.rs` and `tpm.rs` make the key through
//! their backend's keygen API and sign the CSR with it ([`crate::signer::csr`]); this module
//! writes the files and says what was done. Every failure is a [`KeygenError`], classified
//! once (`error.rs`).

mod error;
#[cfg(feature = "pkcs11")]
mod pkcs11;
#[cfg(feature = "tpm")]
mod tpm;

use std::path::Path;

pub(crate) use error::KeygenError;

use crate::config::{CsrRequest, KeygenConfig, KeygenJob, KeygenKeyType, TokenKeygen, TpmKeygen};

/// Runs `ra-signer keygen`: the CSR goes to its file or standard output, what was made to
/// stderr.
pub(crate) fn run(config: &KeygenConfig) -> Result<(), KeygenError> {
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
) -> Result<(), KeygenError> {
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
fn token_certificate(token: &TokenKeygen, certificate: &Path) -> Result<(), KeygenError> {
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
fn token_key(
    _: &TokenKeygen,
    _: KeygenKeyType,
    _: bool,
    _: &CsrRequest,
) -> Result<(), KeygenError> {
    Err(KeygenError::NoPkcs11Support)
}

#[cfg(not(feature = "pkcs11"))]
fn token_certificate(_: &TokenKeygen, _: &Path) -> Result<(), KeygenError> {
    Err(KeygenError::NoPkcs11Support)
}

#[cfg(feature = "tpm")]
fn tpm_key(config: &TpmKeygen, csr: &CsrRequest) -> Result<(), KeygenError> {
    // Refused before the TPM makes anything: a persistent key would outlive the failure.
    let key_file = match &config.target {
        crate::config::TpmKeyTarget::File(path) => Some(path.as_path()),
        crate::config::TpmKeyTarget::Persistent(_) => None,
    };
    for path in csr.out.as_deref().into_iter().chain(key_file) {
        if !config.replace && path.exists() {
            return Err(KeygenError::Exists {
                path: path.to_owned(),
            });
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
fn tpm_key(_: &TpmKeygen, _: &CsrRequest) -> Result<(), KeygenError> {
    Err(KeygenError::NoTpmSupport)
}

/// Writes the CSR to its file, or to standard output.
#[cfg(any(feature = "pkcs11", feature = "tpm"))]
fn write_csr(csr: &CsrRequest, pem: &str) -> Result<(), KeygenError> {
    match &csr.out {
        Some(path) => Ok(write_output(path, pem.as_bytes(), csr.replace)?),
        None => Ok(crate::diag::result(|out| out.write_all(pem.as_bytes()))?),
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
