//! The top-level error: every failure is classified once, here, into a message, an
//! optional hint (what to do), and an exit code.

use std::fmt;
use std::process::ExitCode;

/// The classes of failure, each with its own exit code (documented in `docs/exit-codes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Anything not classified below. Exit 1.
    Other,
    /// Bad flags or values (malformed ARN, URI, duration). Exit 2.
    Usage,
    /// The certificate, key, token or TPM could not be used (missing, malformed, mismatched,
    /// wrong PIN or password, token absent). Exit 3.
    Identity,
    /// AWS (or the endpoint) answered and refused the request (4xx). Exit 4.
    Rejected,
    /// The endpoint could not be reached, or kept failing (connect, TLS, timeout, 5xx,
    /// throttling after retries, unusable response). Exit 5.
    Network,
    /// `serve` cannot listen: the address is in use, not on this machine, or the port is
    /// privileged. Exit 6.
    Listen,
}

impl ErrorClass {
    /// The process exit code for this class.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Other => 1,
            ErrorClass::Usage => 2,
            ErrorClass::Identity => 3,
            ErrorClass::Rejected => 4,
            ErrorClass::Network => 5,
            ErrorClass::Listen => 6,
        }
    }
}

/// A failure ready to show a person: one sentence, an optional hint, a class.
#[derive(Debug)]
pub struct Error {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Which exit code.
    pub class: ErrorClass,
}

impl Error {
    /// Builds an error.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            hint: None,
            class,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.class.exit_code())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<crate::diag::StdoutError> for Error {
    fn from(e: crate::diag::StdoutError) -> Self {
        let error = Error::new(ErrorClass::Other, e.to_string());
        if e.0.kind() == std::io::ErrorKind::BrokenPipe {
            error.with_hint("stdout was closed before ra-signer could write: run it with stdout open to a reader (a pipe, a file or a terminal)")
        } else {
            error
        }
    }
}
