//! The TPM 2.0 backend: keys in TSS2 PRIVATE KEY files (loaded under their parent) or at
//! persistent handles (`handle:0x81000101`), signing inside the TPM through `tss-esapi`.
//!
//! A key is loaded once per process and flushed when its [`Identity`] is dropped; if the
//! TPM forgets it (reset, restarted simulator) it is loaded again once. A refused password
//! is never retried, so the dictionary-attack counter moves at most once per process.
//!
//! Which TPM, how long a command may take, and where the parent password comes from are
//! decided where flags are lowered ([`crate::config::TpmConnection`],
//! [`crate::config::TpmSettings`]): this backend reads no environment.

mod context;
mod create;
mod keyfile;
mod relay;
mod signer;
#[cfg(test)]
#[path = "../../../tests/it/common/swtpm.rs"]
pub(crate) mod swtpm;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::cert::{Cert, CertError};
use crate::config::{CertificateSource, IdentityConfig, PrivateKeySource};
use crate::secret::{self, Secret, SecretError, SecretSource};
use crate::signer::{Identity, KeyMismatch};

pub use context::{OUT_OF_MEMORY_HINT, Rc, Tcti, release_all};
pub use create::{CreatedKey, NewKey, create_key};
pub use keyfile::{KeyFileError, TssKey, is_hierarchy, parent_name};
pub use signer::TpmSigner;

/// Why the TPM backend could not open or use a key.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The certificate could not be read.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// The certificate does not come from a file.
    #[error("with a TPM key the certificate must be a file (--certificate cert.pem), not {0}")]
    CertificateSource(String),
    /// The key file could not be read.
    #[error("cannot read TPM key file {path}: {source}")]
    KeyFileRead {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file is malformed or of an unsupported kind.
    #[error("TPM key file {path} cannot be used: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: KeyFileError,
    },
    /// The key is of a kind ra-signer does not use.
    #[error("{key}: {why}")]
    Unsupported {
        /// The key.
        key: String,
        /// What is not supported.
        why: String,
    },
    /// The TCTI string is malformed or names something this build cannot reach.
    #[error("TCTI \"{tcti}\" (from {origin}) cannot be used: {why}")]
    BadTcti {
        /// The TCTI string.
        tcti: String,
        /// Where it came from.
        origin: &'static str,
        /// Why.
        why: String,
    },
    /// Nothing answered at the TCTI.
    #[error("cannot reach the TPM at \"{tcti}\" (from {origin}): {why}")]
    Unreachable {
        /// The TCTI string.
        tcti: String,
        /// Where it came from.
        origin: &'static str,
        /// Why.
        why: String,
    },
    /// A TPM operation did not finish within [`context::TIMEOUT_ENV`] seconds (a stopped
    /// simulator, a TPM busy with another client).
    #[error("the TPM at \"{tcti}\" (from {origin}) did not answer within {secs} s while {call}")]
    Timeout {
        /// What was being done ("signing").
        call: &'static str,
        /// The TCTI string.
        tcti: String,
        /// Where it came from.
        origin: &'static str,
        /// The limit.
        secs: u64,
    },
    /// The TPM was let go because the process is ending on a signal.
    #[error("the TPM was released: ra-signer is ending on a signal")]
    Released,
    /// The TPM refused a password.
    #[error("the TPM refused {what} of {key}: {rc}")]
    WrongPassword {
        /// Which password ("the password").
        what: &'static str,
        /// The object.
        key: String,
        /// The TPM's answer.
        rc: Rc,
        /// What to try.
        hint: String,
    },
    /// The TPM is in dictionary-attack lockout.
    #[error("the TPM is in dictionary-attack lockout and refuses passwords ({rc})")]
    Lockout {
        /// The TPM's answer.
        rc: Rc,
    },
    /// No object at a persistent handle.
    #[error("there is no object at persistent handle {handle:#010x} ({role})")]
    NoObject {
        /// The handle.
        handle: u32,
        /// What it was for ("the key", "the key file's parent").
        role: &'static str,
    },
    /// The key cannot make the signatures SigV4-X509 needs.
    #[error("{key} cannot sign: {why}")]
    CannotSign {
        /// The key.
        key: String,
        /// Why.
        why: String,
    },
    /// A password could not be had.
    #[error(transparent)]
    Password(#[from] SecretError),
    /// A key file not marked emptyAuth, no password given, no terminal to ask on.
    #[error(
        "{key} is not marked as having no password (emptyAuth), no password was given, and there is no terminal to ask for one"
    )]
    KeyPasswordNeeded {
        /// The key.
        key: String,
    },
    /// A TPM command failed for another reason.
    #[error("{call} failed for {key}: {rc}")]
    Tpm {
        /// The command ("TPM2_Load").
        call: &'static str,
        /// The object.
        key: String,
        /// The TPM's (or the TSS's) answer.
        rc: Rc,
        /// What to try, when known.
        hint: Option<String>,
    },
    /// tss-esapi refused a call before it reached the TPM (a value out of range).
    #[error("{call} failed for {key}: {source}")]
    Wrapper {
        /// The command ("TPM2_Sign").
        call: &'static str,
        /// The object.
        key: String,
        /// tss-esapi's refusal.
        source: tss_esapi::Error,
    },
    /// The TPM refused this key's password (or is in lockout) earlier in this process, so
    /// it is not asked again: each refusal moves the dictionary-attack counter.
    #[error("TPM2_Sign failed for {key}: not asking the TPM again after: {why}")]
    RefusedBefore {
        /// The object.
        key: String,
        /// The first refusal.
        why: String,
        /// What to try, from the first refusal.
        hint: Option<String>,
    },
    /// The new key could not sign its certificate request.
    #[error("TPM2_Sign failed for the new key (signing the CSR): {0}")]
    CsrSign(#[source] crate::signer::SignError),
    /// The key does not belong with the certificate.
    #[error(transparent)]
    Mismatch(#[from] KeyMismatch),
    /// A keygen argument or output problem.
    #[error("{0}")]
    Keygen(String),
}

/// What to do when the TPM is in dictionary-attack lockout.
pub const LOCKOUT_HINT: &str = "wait for the lockout to expire, or clear it with the lockout \
     password (tpm2_dictionarylockout --clear-lockout); check the password before trying again";

/// What to do when the TPM did not answer in time.
pub fn timeout_hint() -> String {
    format!(
        "another process may hold the TPM (swtpm serves one client at a time; a kernel \
         resource manager, device:/dev/tpmrm0, or tabrmd shares it), or the TPM is \
         stopped; {}=SECONDS changes the limit",
        context::TIMEOUT_ENV
    )
}

impl TpmError {
    /// What to do about it, where there is something to say.
    pub fn hint(&self) -> Option<String> {
        let tcti_hint = "name the TPM with --tpm-tcti (or TPM2TOOLS_TCTI): device:/dev/tpmrm0 \
                         for the kernel resource manager, swtpm:host=127.0.0.1,port=2321 for a \
                         simulator";
        Some(match self {
            TpmError::Unreachable { .. } | TpmError::BadTcti { .. } => tcti_hint.to_owned(),
            TpmError::Timeout { .. } => timeout_hint(),
            TpmError::CertificateSource(_) => {
                "export the certificate to a PEM file and pass --certificate cert.pem".to_owned()
            }
            TpmError::KeyFile { source, .. } => match source {
                KeyFileError::Importable | KeyFileError::Policy(_) | KeyFileError::RsaParent => {
                    "create a plain loadable key, e.g. `ra-signer keygen --tpm` or \
                     `openssl genpkey -provider tpm2 -algorithm EC -pkeyopt group:P-256`"
                        .to_owned()
                }
                _ => "the file must be a TSS2 PRIVATE KEY as written by tpm2-openssl, \
                      tpm2_encodeobject or `ra-signer keygen --tpm`"
                    .to_owned(),
            },
            TpmError::WrongPassword { hint, .. } => hint.clone(),
            TpmError::Lockout { .. } => LOCKOUT_HINT.to_owned(),
            TpmError::NoObject { .. } => {
                "list persistent objects with `tpm2_getcap handles-persistent`".to_owned()
            }
            TpmError::KeyPasswordNeeded { .. } => {
                "give the password with --tpm-key-password-file or RA_SIGNER_TPM_KEY_PASSWORD; \
                 if the key has none, pass --no-tpm-key-password (tpm2_encodeobject without -p \
                 marks keys without a password this way)"
                    .to_owned()
            }
            TpmError::Password(_) => {
                "give the key password with --tpm-key-password-file, RA_SIGNER_TPM_KEY_PASSWORD, \
                 or --no-tpm-key-password if the key has none"
                    .to_owned()
            }
            TpmError::Mismatch(_) => {
                "pass the certificate issued for this TPM key (compare `openssl x509 -pubkey` \
                 with `tpm2_readpublic`)"
                    .to_owned()
            }
            TpmError::Tpm { hint, .. } | TpmError::RefusedBefore { hint, .. } => {
                return hint.clone();
            }
            TpmError::CannotSign { .. } | TpmError::Unsupported { .. } => {
                "use an unrestricted RSA (RSASSA) or ECC P-256/P-384 signing key".to_owned()
            }
            _ => return None,
        })
    }
}

/// Where a key lives.
#[derive(Debug, Clone)]
pub enum KeyLocation {
    /// A TSS2 key file, loaded under its parent.
    File {
        /// The file, for messages.
        path: PathBuf,
        /// Its contents.
        key: TssKey,
    },
    /// A persistent object.
    Persistent(u32),
}

impl KeyLocation {
    /// Names the key in messages.
    pub fn describe(&self) -> String {
        match self {
            KeyLocation::File { path, .. } => format!("TPM key file {}", path.display()),
            KeyLocation::Persistent(h) => format!("TPM key handle:{h:#010x}"),
        }
    }
}

/// The passwords a key needs: its own and its parent's (or hierarchy's).
#[derive(Debug, Clone, Default)]
pub struct Passwords {
    /// The key's password; `None` means empty.
    pub key: Option<Secret>,
    /// Where the key password came from, for hints ("RA_SIGNER_TPM_KEY_PASSWORD").
    pub key_origin: &'static str,
    /// The parent's or hierarchy's password; `None` means empty.
    pub parent: Option<Secret>,
}

/// Reads the parent password from `sources` (none given: the empty password).
pub fn parent_password(sources: &[SecretSource]) -> Result<Option<Secret>, SecretError> {
    match secret::resolve(sources, "the TPM parent password") {
        Ok(s) => Ok(Some(s)),
        Err(SecretError::NoneGiven { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Decides the key password. A password given explicitly (flag, environment, file) always
/// wins, because `emptyAuth` is only a hint (tpm2_encodeobject writes it inverted);
/// otherwise a key file marked emptyAuth, and a persistent key, get the empty password; a
/// key file not so marked prompts on a terminal, and is an error without one.
pub fn key_password(
    settings: &crate::config::TpmSettings,
    location: &KeyLocation,
) -> Result<(Option<Secret>, &'static str), SecretError> {
    if settings.no_key_password {
        return Ok((None, "--no-tpm-key-password"));
    }
    let what = "the TPM key password";
    for source in &settings.key_password_sources {
        let origin = match source {
            SecretSource::Value(_) => "--tpm-key-password",
            SecretSource::Env(name) => name,
            SecretSource::File(_) => "--tpm-key-password-file",
            SecretSource::Prompt => continue,
        };
        match secret::resolve(std::slice::from_ref(source), what) {
            Ok(s) => return Ok((Some(s), origin)),
            Err(SecretError::NoneGiven { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let empty_hint = match location {
        KeyLocation::File { key, .. } => key.empty_auth == Some(true),
        KeyLocation::Persistent(_) => true,
    };
    if empty_hint {
        return Ok((None, "the key file's emptyAuth"));
    }
    let prompt: Vec<SecretSource> = settings
        .key_password_sources
        .iter()
        .filter(|s| matches!(s, SecretSource::Prompt))
        .cloned()
        .collect();
    secret::resolve(&prompt, what).map(|s| (Some(s), "the prompt"))
}

/// Opens the TPM key named by `config` with its certificate and chain.
pub fn open(config: &IdentityConfig) -> Result<Identity, TpmError> {
    let leaf = match &config.certificate {
        Some(CertificateSource::File(path)) => Cert::first_from_file(path)?,
        Some(CertificateSource::Pkcs11(uri)) => {
            return Err(TpmError::CertificateSource(format!(
                "the PKCS#11 object {}",
                crate::display::redact_pin_value(uri.as_str())
            )));
        }
        None => {
            return Err(TpmError::CertificateSource(
                "nothing (--certificate is missing)".to_owned(),
            ));
        }
    };
    let chain = match &config.intermediates {
        Some(path) => Cert::all_from_file(path)?,
        None => Vec::new(),
    };
    let location = match &config.private_key {
        PrivateKeySource::TpmHandle(h) => KeyLocation::Persistent(*h),
        PrivateKeySource::File(path) => KeyLocation::File {
            path: path.clone(),
            key: read_key_file(path)?,
        },
        PrivateKeySource::Pkcs11(uri) => {
            return Err(TpmError::Keygen(format!(
                "{} is a PKCS#11 key, not a TPM key",
                crate::display::redact_pin_value(uri.as_str())
            )));
        }
        PrivateKeySource::MatchingTokenCertificate => {
            return Err(TpmError::Keygen(
                "the key is on the certificate's PKCS#11 token, not in a TPM".into(),
            ));
        }
    };
    let (key, key_origin) = match key_password(&config.tpm, &location) {
        Err(SecretError::NoneGiven { .. }) => {
            return Err(TpmError::KeyPasswordNeeded {
                key: location.describe(),
            });
        }
        other => other?,
    };
    let passwords = Passwords {
        key,
        key_origin,
        parent: parent_password(&config.tpm.parent_password_sources)?,
    };
    let tcti = Tcti::new(&config.tpm.connection);
    let signer = TpmSigner::open(tcti, location, passwords)?;
    let desc = signer.description().to_owned();
    Ok(Identity::new(leaf, chain, Box::new(signer), &desc)?)
}

/// Reads and parses a TSS2 key file.
pub fn read_key_file(path: &Path) -> Result<TssKey, TpmError> {
    let bytes = crate::input::read(path).map_err(|source| TpmError::KeyFileRead {
        path: path.display().to_string(),
        source,
    })?;
    TssKey::from_bytes(&bytes).map_err(|source| TpmError::KeyFile {
        path: path.display().to_string(),
        source,
    })
}
