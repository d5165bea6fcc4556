//! Where file inputs (certificates, keys, intermediates) are read from: a path, or
//! `env:NAME`, the contents of the environment variable NAME, for CI runners that hold the
//! certificate and key as secrets rather than files. A variable holds PEM text, or the
//! base64 of DER (as secret stores often keep binary values). A file whose name really
//! starts with `env:` is reached as `./env:…`.

use std::io;
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

/// The variable name when `path` is `env:NAME`.
pub fn env_name(path: &Path) -> Option<&str> {
    path.to_str()?.strip_prefix("env:")
}

/// Reads a file input; the bytes are zeroized when dropped (keys pass through here).
pub fn read(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let Some(name) = env_name(path) else {
        return std::fs::read(path).map(Zeroizing::new);
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
}
