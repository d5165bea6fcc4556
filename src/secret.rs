//! Secrets (PINs, passwords) as types: zeroized on drop, redacted in `Debug`, and read from
//! sources that keep them off the command line where possible.

use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// A secret string, zeroized when dropped and never printed: `secrecy`'s `SecretString` (the
/// type cryptoki takes PINs as) under the name and `Debug` the rest of ra-signer uses.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a string.
    pub fn new(value: String) -> Self {
        // `SecretString::from(String)` shrinks the string in place, which may move it and
        // free the old bytes unzeroized: copy to an exact-size box and zeroize the original.
        let value = Zeroizing::new(value);
        Secret(SecretString::new(Box::from(value.as_str())))
    }

    /// The secret, for the one call that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

/// Where a secret comes from. The first source that is set wins, in the order the caller
/// lists them.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Given on the command line (visible to other users through `ps`).
    Value(Secret),
    /// An environment variable, read when needed.
    Env(&'static str),
    /// A file whose first line is the secret.
    File(PathBuf),
    /// A prompt on the terminal, only when one is attached.
    Prompt,
}

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A secret is needed, none was given, and there is no terminal to ask on.
    #[error("{what} is needed and none was given, and there is no terminal to ask for it")]
    NoneGiven {
        /// Which secret ("the PKCS#8 password").
        what: String,
    },
    /// The secret file could not be read.
    #[error("cannot read {what} from {path}: {source}")]
    File {
        /// Which secret.
        what: String,
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret given is empty where an empty one is never right (a PIN).
    #[error("{what} is empty")]
    Empty {
        /// Which secret.
        what: String,
    },
    /// The secret file's first line, which holds the secret, is empty.
    #[error("the first line of {path}, which must hold {what}, is empty")]
    EmptyFirstLine {
        /// Which secret.
        what: String,
        /// The file.
        path: String,
    },
    /// The prompt failed.
    #[error("cannot read {what} from the terminal: {source}")]
    Prompt {
        /// Which secret.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Whether a person can be asked: stdin and stderr are both terminals.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Resolves the first available secret among `sources`. `what` names it in prompts and
/// errors ("the PKCS#8 password").
pub fn resolve(sources: &[SecretSource], what: &str) -> Result<Secret, SecretError> {
    for source in sources {
        match source {
            SecretSource::Value(v) => return Ok(v.clone()),
            SecretSource::Env(name) => {
                if let Some(v) = from_environment(name) {
                    return Ok(v);
                }
            }
            SecretSource::File(path) => return read_secret_file(path, what),
            SecretSource::Prompt => {
                if can_prompt() {
                    let value = rpassword::prompt_password(format!("Enter {what}: ")).map_err(
                        |source| SecretError::Prompt {
                            what: what.to_owned(),
                            source,
                        },
                    )?;
                    return Ok(Secret::new(value));
                }
            }
        }
    }
    Err(SecretError::NoneGiven {
        what: what.to_owned(),
    })
}

/// The environment variables that hold secrets. The binary reads them once at start-up
/// ([`capture_environment`]) and then removes them from the process environment, so that no
/// child inherits them and nothing reads them from there again.
pub const SECRET_ENV_VARS: &[&str] = crate::env::SECRETS;

/// What [`capture_environment`] read: once it has run, [`SecretSource::Env`] of a name in
/// [`SECRET_ENV_VARS`] is answered from here, never from the environment.
static CAPTURED: std::sync::OnceLock<Vec<(&'static str, Secret)>> = std::sync::OnceLock::new();

/// Reads every variable of [`SECRET_ENV_VARS`] that is set, and returns their names for the
/// caller to remove from the environment. Only the first call reads.
pub fn capture_environment() -> Vec<&'static str> {
    let captured = CAPTURED.get_or_init(|| {
        SECRET_ENV_VARS
            .iter()
            .filter_map(|&name| {
                let raw = Zeroizing::new(std::env::var_os(name)?.into_encoded_bytes());
                Some((
                    name,
                    Secret::new(String::from_utf8_lossy(&raw).into_owned()),
                ))
            })
            .collect()
    });
    captured.iter().map(|(name, _)| *name).collect()
}

/// The variables [`capture_environment`] read and removed, with their values: what a
/// process this one `exec`s in its place must be given back.
pub fn captured_environment() -> impl Iterator<Item = (&'static str, &'static str)> {
    CAPTURED
        .get()
        .into_iter()
        .flatten()
        .map(|(name, secret)| (*name, secret.expose()))
}

fn from_environment(name: &str) -> Option<Secret> {
    match CAPTURED.get() {
        Some(captured) if SECRET_ENV_VARS.contains(&name) => captured
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone()),
        // The library used without the binary's start-up (its own tests, an embedder).
        _ => {
            let raw = Zeroizing::new(std::env::var_os(name)?.into_encoded_bytes());
            Some(Secret::new(String::from_utf8_lossy(&raw).into_owned()))
        }
    }
}

/// Reads a secret file: its first line, without the line ending. An empty first line is
/// refused rather than used: an empty PIN sent to a token costs one of its few retries, and
/// a secret on a later line is a mistake this names.
pub fn read_secret_file(path: &std::path::Path, what: &str) -> Result<Secret, SecretError> {
    let shown = || path.display().to_string();
    let bytes = crate::input::read_file(path).map_err(|source| SecretError::File {
        what: what.to_owned(),
        path: shown(),
        source,
    })?;
    let contents = std::str::from_utf8(&bytes).map_err(|_| SecretError::File {
        what: what.to_owned(),
        path: shown(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
    })?;
    let first = contents.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(SecretError::EmptyFirstLine {
            what: what.to_owned(),
            path: shown(),
        });
    }
    Ok(Secret::new(first.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "** redacted **");
        assert!(!format!("{:?}", SecretSource::Value(s)).contains("hunter2"));
    }

    #[test]
    fn every_secret_variable_is_captured() {
        let named = [
            crate::env::PKCS8_PASSWORD,
            crate::env::PKCS11_PIN,
            crate::env::PKCS11_CONTEXT_PIN,
            crate::env::TPM_KEY_PASSWORD,
            crate::env::TPM_PARENT_PASSWORD,
            crate::env::TPM_OWNER_PASSWORD,
            crate::env::OPENSSL_PARENT_AUTH,
        ];
        for name in named {
            assert!(SECRET_ENV_VARS.contains(&name), "{name}");
        }
    }

    #[test]
    fn first_set_source_wins_and_file_drops_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\nignored\n").expect("write");
        let got = resolve(
            &[
                SecretSource::Env("RA_SIGNER_TEST_SURELY_UNSET_VARIABLE"),
                SecretSource::File(path),
            ],
            "the test password",
        )
        .expect("resolved");
        assert_eq!(got.expose(), "s3cret");
    }

    #[test]
    fn empty_first_line_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("blank", "\n123456\n"),
            ("crlf", "\r\n123456"),
            ("empty", ""),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let err = read_secret_file(&path, "the PIN").expect_err(name);
            assert!(
                matches!(err, SecretError::EmptyFirstLine { .. }),
                "{name}: {err}"
            );
            assert!(!err.to_string().contains("123456"), "{err}");
        }
    }
}
