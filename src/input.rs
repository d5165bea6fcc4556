//! Where file inputs (certificates, keys, intermediates) are read from: a path, or
//! `env:NAME`, the contents of the environment variable NAME, for CI runners that hold the
//! certificate and key as secrets rather than files. A variable holds PEM text, or the
//! base64 of DER (as secret stores often keep binary values). A file whose name really
//! starts with `env:` is reached as `./env:…`.
//!
//! Every file input (certificates, keys, intermediates, TSS2 key files, CA bundles, PIN and
//! password files) is read through [`read_file`]: at most [`MAX_INPUT_BYTES`], and only from
//! a regular file, so that `/dev/zero` cannot exhaust memory and a FIFO cannot hang the
//! process. `/dev/stdin` is the one stream, read under the same bound.

use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

/// The variable name when `path` is `env:NAME`.
pub(crate) fn env_name(path: &Path) -> Option<&str> {
    path.to_str()?.strip_prefix("env:")
}

/// The most any one input file may hold. The largest real inputs are CA bundles (the
/// Mozilla store is about 220 KiB as PEM) and PKCS#12 files with long chains.
pub(crate) const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a file input; the bytes are zeroized when dropped (keys pass through here).
pub(crate) fn read(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let Some(name) = env_name(path) else {
        return read_file(path);
    };
    let value = std::env::var_os(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("the environment variable {name} is not set"),
        )
    })?;
    let bytes = Zeroizing::new(value.into_encoded_bytes());
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Ok(bytes);
    }
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(&*compact)
        .map(Zeroizing::new)
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the environment variable {name} holds neither PEM nor base64"),
            )
        })
}

/// Whether `path` names the process's standard input, the one stream a file input may be.
fn is_stdin(path: &Path) -> bool {
    path == Path::new("/dev/stdin")
}

/// Reads a file, bounded: a regular file of at most [`MAX_INPUT_BYTES`], or standard input.
/// The file is opened non-blocking and checked on the open descriptor, so a FIFO put in
/// its place between a check and the open cannot block, and what is checked is what is read.
pub(crate) fn read_file(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    if is_stdin(path) {
        return read_bounded(io::stdin().lock(), 0);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "it is not a regular file but {}",
                kind_of(&meta.file_type())
            ),
        ));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    read_bounded(file, meta.len())
}

/// Reads at most [`MAX_INPUT_BYTES`], failing when there is more (a file may grow while
/// it is read, and stdin has no size). The buffer is sized for `expected` bytes up front:
/// a buffer that grows leaves copies of a key behind that nothing zeroizes.
fn read_bounded(source: impl Read, expected: u64) -> io::Result<Zeroizing<Vec<u8>>> {
    let capacity = usize::try_from(expected.min(MAX_INPUT_BYTES)).unwrap_or(0) + 1;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    source.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "it is larger than {} MiB, more than any certificate, key or secret file holds",
            MAX_INPUT_BYTES / (1024 * 1024)
        ),
    )
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_env_names() {
        assert_eq!(env_name(Path::new("env:RA_CERT")), Some("RA_CERT"));
        assert_eq!(env_name(Path::new("./env:RA_CERT")), None);
        assert_eq!(env_name(Path::new("/etc/cert.pem")), None);
    }

    #[test]
    fn missing_variable_is_not_found() {
        let err = read(Path::new("env:RA_SIGNER_TEST_SURELY_UNSET")).expect_err("unset");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string()
                .contains("RA_SIGNER_TEST_SURELY_UNSET is not set")
        );
    }

    #[test]
    fn files_up_to_the_bound_are_read_and_larger_ones_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exact = dir.path().join("exact");
        std::fs::write(&exact, vec![b'a'; MAX_INPUT_BYTES as usize]).expect("write");
        assert_eq!(
            read(&exact).expect("at the bound").len() as u64,
            MAX_INPUT_BYTES
        );
        let over = dir.path().join("over");
        std::fs::write(&over, vec![b'a'; MAX_INPUT_BYTES as usize + 1]).expect("write");
        let err = read(&over).expect_err("over the bound");
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("larger than 4 MiB"), "{err}");
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let err = read(Path::new("/dev/zero")).expect_err("device");
        assert!(
            err.to_string()
                .contains("not a regular file but a character device"),
            "{err}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read(dir.path()).expect_err("directory");
        assert!(err.to_string().contains("a directory"), "{err}");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        // No writer: a blocking open would never return.
        let err = read(&fifo).expect_err("fifo");
        assert!(err.to_string().contains("a FIFO"), "{err}");
    }
}
