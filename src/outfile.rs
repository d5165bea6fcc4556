//! Files that ra-signer creates for the user (TPM key files, CSRs): written whole into a
//! temporary file beside the path, mode 0600, then moved into place. A symlink at the path
//! is replaced, never followed, so `--force` cannot write through it into its target (nor
//! keep that target's mode); a crash leaves the old file or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `contents` to `path`. With `replace`, whatever is at `path` (a file, a symlink)
/// is replaced; without it, an existing path (a dangling symlink included) is an
/// `AlreadyExists` error and is left alone.
pub(crate) fn write(path: &Path, contents: &[u8], replace: bool) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut suffix = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
        .map_err(|_| io::Error::other("no randomness for a temporary file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        crate::cert::hex_lower(&suffix)
    ));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        if replace {
            fs::rename(&tmp, path)?;
        } else {
            // link(2) fails on any existing name, a symlink included, where a check followed
            // by rename(2) would race with whoever creates the path in between.
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
        }
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    #[test]
    fn a_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        fs::write(&target, "keep me").expect("write");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).expect("chmod");
        let link = dir.path().join("key.tss");
        symlink(&target, &link).expect("symlink");

        let err = write(&link, b"new", false).expect_err("exists");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        write(&link, b"new", true).expect("replaced");

        assert_eq!(fs::read_to_string(&target).expect("read"), "keep me");
        let meta = fs::symlink_metadata(&link).expect("stat");
        assert!(
            meta.file_type().is_file(),
            "the symlink itself was replaced"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&link).expect("read"), b"new");
        let left: Vec<_> = fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind");
    }

    #[test]
    fn a_dangling_symlink_is_not_written_through_without_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("csr.pem");
        symlink(dir.path().join("elsewhere"), &link).expect("symlink");
        assert!(write(&link, b"x", false).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }
}
