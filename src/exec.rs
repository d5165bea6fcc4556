//! `exec`: run a command with the credentials in its environment, and
//! `credential-process --format env`: the same variables as shell lines.
//!
//! The command replaces ra-signer (`execve`, through [`CommandExt::exec`]) rather than
//! running as its child: its exit code and every signal sent to the pid that was started
//! reach it without a relay, no parent is left holding the credentials for the command's
//! lifetime, and there is no window in which a signal kills the parent but not the child.
//! The key (token session, TPM objects) is closed before the exec.
//!
//! The command gets `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and
//! `AWS_CREDENTIAL_EXPIRATION`, and `AWS_REGION`/`AWS_DEFAULT_REGION` (the signing region)
//! unless the environment already names a region. It loses `AWS_PROFILE` and
//! `AWS_DEFAULT_PROFILE`, with which the JavaScript v3 SDK skips the environment's keys for
//! the profile's (and every SDK takes the profile's region and endpoint settings), and
//! `AWS_SECURITY_TOKEN`, the old name of the session token that boto 2 reads. ra-signer's own secrets
//! (`RA_SIGNER_PKCS11_PIN`, …) were removed from the environment at start-up.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::{ExecCommand, Region};
use crate::credentials::Credentials;
use crate::env;

/// Variables whose value, inherited, means the user already has credentials or a profile
/// chosen: `exec` refuses to replace them unless `--override-env` says so.
pub(crate) const REFUSED: [&str; 6] = [
    env::AWS_ACCESS_KEY_ID,
    env::AWS_SECRET_ACCESS_KEY,
    env::AWS_SESSION_TOKEN,
    env::AWS_SECURITY_TOKEN,
    env::AWS_PROFILE,
    env::AWS_DEFAULT_PROFILE,
];

/// Variables removed from the command's environment: with them an SDK may choose other
/// credentials than the ones given.
pub(crate) const STRIPPED: [&str; 3] = [
    env::AWS_PROFILE,
    env::AWS_DEFAULT_PROFILE,
    env::AWS_SECURITY_TOKEN,
];

/// Where a program without a `/` is looked for when `PATH` is unset (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Why `exec` cannot run the command.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Credentials or a profile are already in the environment.
    #[error(
        "{name} is already set in the environment: exec would run the command with other credentials than it was given"
    )]
    Inherited {
        /// The first such variable.
        name: &'static str,
    },
    /// No such program.
    #[error("command not found: {program}")]
    NotFound {
        /// The program as given.
        program: String,
    },
    /// The program exists but cannot be run.
    #[error("cannot run {program}: {why}")]
    NotExecutable {
        /// The program as given.
        program: String,
        /// Why.
        why: String,
    },
    /// `execve` failed.
    #[error("cannot run {program}: {source}")]
    Exec {
        /// The program as given.
        program: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The variables that carry `creds` (and `region`, unless `inherited` already names a
/// region), in the order they are set.
pub(crate) fn credential_variables(
    creds: &Credentials,
    region: &Region,
    inherited: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, Zeroizing<String>)> {
    let mut vars = vec![
        (
            env::AWS_ACCESS_KEY_ID,
            Zeroizing::new(creds.access_key_id.clone()),
        ),
        (
            env::AWS_SECRET_ACCESS_KEY,
            Zeroizing::new(creds.secret_access_key.expose().to_owned()),
        ),
        (
            env::AWS_SESSION_TOKEN,
            Zeroizing::new(creds.session_token.expose().to_owned()),
        ),
        (
            env::AWS_CREDENTIAL_EXPIRATION,
            Zeroizing::new(creds.expiration.rfc3339()),
        ),
    ];
    // A region the user chose is where the command works; ours is only a default.
    let has_region = [env::AWS_REGION, env::AWS_DEFAULT_REGION]
        .iter()
        .any(|name| inherited(name).is_some());
    if !has_region {
        for name in [env::AWS_REGION, env::AWS_DEFAULT_REGION] {
            vars.push((name, Zeroizing::new(region.as_str().to_owned())));
        }
    }
    vars
}

/// `value` as one POSIX shell word: in single quotes, each `'` written `'\''`.
pub(crate) fn shell_quote(value: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(value.len() + 2));
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// `credential-process --format env`: an `unset` of [`STRIPPED`], then one
/// `export NAME='value'` line per variable, for `eval`.
pub(crate) fn export_lines(
    creds: &Credentials,
    region: &Region,
    inherited: impl Fn(&str) -> Option<String>,
) -> Zeroizing<String> {
    let mut out = Zeroizing::new(format!("unset {}\n", STRIPPED.join(" ")));
    for (name, value) in credential_variables(creds, region, inherited) {
        out.push_str("export ");
        out.push_str(name);
        out.push('=');
        out.push_str(&shell_quote(&value));
        out.push('\n');
    }
    out
}

/// A command checked before any credentials are fetched: the environment refuses nothing,
/// and the program exists and may be run.
#[derive(Debug)]
pub(crate) struct Prepared {
    program: PathBuf,
    command: ExecCommand,
}

/// Checks the environment (`inherited`) and finds the program, so that a command that
/// cannot run fails before the key is used.
pub(crate) fn prepare(
    command: ExecCommand,
    override_env: bool,
    inherited: impl Fn(&str) -> Option<String>,
) -> Result<Prepared, ExecError> {
    if !override_env && let Some(name) = REFUSED.iter().find(|n| inherited(n).is_some()) {
        return Err(ExecError::Inherited { name });
    }
    let path = std::env::var_os(env::PATH);
    let program = find_program(&command.program, path.as_deref())?;
    Ok(Prepared { program, command })
}

/// The program `execvp` would run: `name` itself when it holds a `/`, else the first
/// executable file of that name in `path`'s directories (an empty one is the current
/// directory).
fn find_program(name: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, ExecError> {
    let shown = || shown(name);
    let runnable = |candidate: &Path| -> Result<(), String> {
        let meta = std::fs::metadata(candidate).map_err(|e| e.to_string())?;
        if meta.is_dir() {
            return Err("it is a directory".into());
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("it is not executable (no x permission)".into());
        }
        Ok(())
    };
    if name.as_encoded_bytes().contains(&b'/') {
        let candidate = PathBuf::from(name);
        if !candidate.exists() {
            return Err(ExecError::NotFound { program: shown() });
        }
        return runnable(&candidate)
            .map(|()| candidate)
            .map_err(|why| ExecError::NotExecutable {
                program: shown(),
                why,
            });
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut refused = None;
    for dir in std::env::split_paths(path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        if !candidate.exists() {
            continue;
        }
        match runnable(&candidate) {
            Ok(()) => return Ok(candidate),
            // execvp goes on looking, and reports EACCES if nothing else is found.
            Err(why) => refused = refused.or(Some(format!("{}: {why}", candidate.display()))),
        }
    }
    Err(match refused {
        Some(why) => ExecError::NotExecutable {
            program: shown(),
            why,
        },
        None => ExecError::NotFound { program: shown() },
    })
}

/// A program name as messages show it: escaped (it may hold a newline or a terminal
/// escape) and bounded.
fn shown(name: &OsStr) -> String {
    crate::display::remote_bytes(name.as_encoded_bytes())
}

impl Prepared {
    /// Replaces this process with the command, `creds` in its environment. Returns only
    /// when `execve` fails.
    pub(crate) fn exec(self, creds: &Credentials, region: &Region) -> ExecError {
        // What the key held in hardware goes first: nothing runs after the exec.
        crate::signer::release_hardware();
        let mut cmd = std::process::Command::new(&self.program);
        cmd.arg0(&self.command.program).args(&self.command.args);
        for name in REFUSED.iter().chain(STRIPPED.iter()) {
            cmd.env_remove(name);
        }
        for (name, value) in credential_variables(creds, region, env::non_blank) {
            cmd.env(name, OsString::from(value.as_str()));
        }
        let source = cmd.exec();
        let program = shown(&self.command.program);
        match source.kind() {
            // The program was found a moment ago: unless it went since, what is missing is
            // what it needs to start.
            std::io::ErrorKind::NotFound if self.program.exists() => ExecError::NotExecutable {
                program,
                why: "its #! interpreter or its dynamic loader is missing".into(),
            },
            std::io::ErrorKind::NotFound => ExecError::NotFound { program },
            _ => ExecError::Exec { program, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::time::UtcTime;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("se'cr\"et $(x) `y`".into()),
            session_token: Secret::new("to/ken+=".into()),
            expiration: UtcTime::from_unix(1_765_470_865),
        }
    }

    #[test]
    fn quoting_survives_quotes_and_shell_syntax() {
        assert_eq!(shell_quote("plain").as_str(), "'plain'");
        assert_eq!(shell_quote("").as_str(), "''");
        assert_eq!(shell_quote("it's").as_str(), r"'it'\''s'");
        assert_eq!(shell_quote("''").as_str(), r"''\'''\'''");
        assert_eq!(shell_quote("$HOME `x` \\ \n").as_str(), "'$HOME `x` \\ \n'");
    }

    #[test]
    fn export_lines_set_the_credentials_and_a_region_unless_one_is_chosen() {
        let region: Region = "eu-west-1".parse().expect("region");
        let text = export_lines(&creds(), &region, |_| None);
        assert_eq!(
            text.as_str(),
            "unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SECURITY_TOKEN\n\
             export AWS_ACCESS_KEY_ID='ASIAEXAMPLE'\n\
             export AWS_SECRET_ACCESS_KEY='se'\\''cr\"et $(x) `y`'\n\
             export AWS_SESSION_TOKEN='to/ken+='\n\
             export AWS_CREDENTIAL_EXPIRATION='2025-12-11T16:34:25Z'\n\
             export AWS_REGION='eu-west-1'\n\
             export AWS_DEFAULT_REGION='eu-west-1'\n"
        );
        for chosen in [env::AWS_REGION, env::AWS_DEFAULT_REGION] {
            let text = export_lines(&creds(), &region, |n| {
                (n == chosen).then(|| "us-west-2".to_owned())
            });
            assert!(!text.contains("REGION"), "{chosen}: {}", text.as_str());
        }
    }

    #[test]
    fn inherited_credentials_and_profiles_are_refused_unless_overridden() {
        let cmd = || ExecCommand::new(vec!["sh".into()]).expect("command");
        for name in REFUSED {
            let err =
                prepare(cmd(), false, |n| (n == name).then(|| "x".to_owned())).expect_err(name);
            assert!(err.to_string().starts_with(name), "{err}");
            assert!(prepare(cmd(), true, |n| (n == name).then(|| "x".to_owned())).is_ok());
        }
        assert!(prepare(cmd(), false, |_| None).is_ok());
    }

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").expect("write");
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).expect("path");
        assert_eq!(
            find_program(OsStr::new("tool"), Some(&path)).expect("found"),
            tool
        );
        assert!(matches!(
            find_program(OsStr::new("absent"), Some(&path)),
            Err(ExecError::NotFound { .. })
        ));
        assert!(matches!(
            find_program(OsStr::new("plain"), Some(&path)),
            Err(ExecError::NotExecutable { .. })
        ));
        assert!(matches!(
            find_program(dir.path().as_os_str(), None),
            Err(ExecError::NotExecutable { .. })
        ));
        assert!(matches!(
            find_program(dir.path().join("absent").as_os_str(), None),
            Err(ExecError::NotFound { .. })
        ));
        assert_eq!(find_program(tool.as_os_str(), None).expect("a path"), tool);
    }
}
