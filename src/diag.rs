//! Everything ra-signer writes: one writer for diagnostic lines on stderr, one for results
//! on stdout. (A standard descriptor closed at exec, `>&-`, is reopened on /dev/null by the
//! Rust runtime before `main`, so no file ra-signer opens can become fd 1 or 2.)
//!
//! `eprintln!` panics when stderr is a pipe whose reader has gone (`serve 2>&1 | head`), and
//! the release profile's `panic = "abort"` turns that into SIGABRT: a log line must never end
//! the process, so every diagnostic goes through [`line`], which drops write errors. The
//! library denies `clippy::print_stderr`/`print_stdout` so that no other writer appears.

use std::fmt;
use std::io::Write;

/// Writes one diagnostic line on stderr, ignoring any failure: a closed or full stderr must
/// not stop a command, and least of all `serve`.
pub fn line(args: fmt::Arguments<'_>) {
    // One buffer, one write: lines from several threads never interleave mid-line.
    let mut text = fmt::format(args);
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Writes a diagnostic line on stderr; never panics, never fails (see [`line`]).
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::diag::line(::std::format_args!($($arg)*))
    };
}

/// The result could not be written on stdout: it was not delivered.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the result to stdout: {0}")]
pub struct StdoutError(#[source] pub std::io::Error);

/// Writes a command's result on stdout and flushes it. A stdout whose reader has gone
/// (EPIPE), or that cannot be written, is an error (exit 1): the result was not delivered.
pub fn result(
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}
