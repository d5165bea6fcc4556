//! The hand-over to the build with the TPM backend. That backend links libtss2, and through
//! it libcrypto: about 4.8 M instructions of dynamic linking at every start of a process
//! that has them, and two more libraries mapped into it, whether it uses a TPM or not. So
//! the package installs two builds: `/usr/bin/ra-signer` without the backend, and
//! `/usr/lib/ra-signer/ra-signer-tpm` with it. A command that needs a TPM
//! ([`crate::app::needs_tpm`]) is run by the second in the first's place (`exec`: same
//! process, same arguments and standard streams), and every other command never loads the
//! TPM stack.

use std::path::{Path, PathBuf};

/// Where the build with the TPM backend is, from the directory of this binary's own file.
pub const RELATIVE_PATH: &str = "../lib/ra-signer/ra-signer-tpm";

/// The TPM build could not be run in this one's place.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {}, the build of ra-signer with TPM support: {source}", path.display())]
pub struct TpmBuildError {
    /// The file that was to run.
    pub path: PathBuf,
    /// Why `execve` failed.
    #[source]
    pub source: std::io::Error,
}

/// The TPM build that goes with the binary at `exe`, when it is installed. A link from there
/// back to `exe` itself is no TPM build: following it would `exec` the same binary for ever.
pub fn beside(exe: &Path) -> Option<PathBuf> {
    let path = exe.parent()?.join(RELATIVE_PATH);
    if !path.is_file() {
        return None;
    }
    // Named in messages as `/usr/lib/…`, not `/usr/bin/../lib/…`.
    let path = path.canonicalize().unwrap_or(path);
    let itself = exe.canonicalize().unwrap_or_else(|_| exe.to_owned());
    (path != itself).then_some(path)
}

/// Replaces this process with the TPM build installed beside it, with this process's
/// arguments, its environment, and the secrets start-up took out of the environment
/// ([`crate::secret::captured_environment`]) given back. Returns only when it could not:
/// `None` when no TPM build is installed (the command then fails as a build without TPM
/// support does), else why `exec` failed.
pub fn exec() -> Option<TpmBuildError> {
    use std::os::unix::process::CommandExt;
    let path = beside(&std::env::current_exe().ok()?)?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "ra-signer".into());
    let source = std::process::Command::new(&path)
        .arg0(arg0)
        .args(args)
        .envs(crate::secret::captured_environment())
        .exec();
    Some(TpmBuildError { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tpm_build_is_found_only_where_the_package_puts_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("bin/ra-signer");
        std::fs::create_dir_all(exe.parent().expect("bin")).expect("bin");
        assert_eq!(beside(&exe), None);
        let lib = dir.path().join("lib/ra-signer");
        std::fs::create_dir_all(&lib).expect("lib");
        // A directory of that name is not a build.
        std::fs::create_dir(lib.join("ra-signer-tpm")).expect("dir");
        assert_eq!(beside(&exe), None);
        std::fs::remove_dir(lib.join("ra-signer-tpm")).expect("rmdir");
        std::fs::write(lib.join("ra-signer-tpm"), b"").expect("file");
        assert_eq!(
            beside(&exe),
            Some(lib.join("ra-signer-tpm").canonicalize().expect("canonical"))
        );
        // A link back to the binary itself.
        std::fs::write(&exe, b"").expect("exe");
        std::fs::remove_file(lib.join("ra-signer-tpm")).expect("rm");
        std::os::unix::fs::symlink(&exe, lib.join("ra-signer-tpm")).expect("symlink");
        assert_eq!(beside(&exe), None);
    }
}
