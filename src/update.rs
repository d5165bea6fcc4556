//! `update`: keeps a profile of the shared credentials file fresh.
//!
//! Start-up is fail-fast (one CreateSession, written, or exit with the classified error).
//! Then, unless `--once`, the profile is rewritten 300 seconds before expiry;
//! a failed refresh is logged and retried with backoff, never an exit, and the file keeps
//! the last good credentials meanwhile. SIGTERM, SIGINT, SIGHUP and SIGQUIT stop it: the
//! refresher thread, which owns the identity, is told to stop and given
//! [`GRACE`] to close it ([`crate::shutdown`]).
//!
//! Every write is a read-modify-write under an exclusive `flock` on a lock file next to the
//! credentials file (`.credentials.ra-signer.lock`), so two writers cannot lose each
//! other's profiles; the new contents go to a temporary file in the same directory (mode
//! 0600), are fsynced, renamed over the file, and the directory is fsynced. The file is read
//! as botocore reads it ([`crate::credentials_file`]) and refused when botocore would refuse
//! it; every other line, profile and comment is kept; in the target profile only the
//! credential keys are replaced. Missing directories are created with mode 0700.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

use crate::config::{SessionConfig, UpdateConfig};
use crate::credentials::Credentials;
use crate::credentials_file::{self, Refused};
use crate::error::{Error, ModeError};
use crate::refresh::{
    self, LiveIdentity, Outlet, Refresher, Stop, SystemClock, Timer, log, one_line,
};
use crate::rolesanywhere::Client;
use crate::shutdown::{Asked, GRACE, Signals, Worker};
use crate::time::UtcTime;

/// The keys of a profile that `update` owns (configparser lower-cases option names): the
/// three it writes, then a stale one it removes.
const CREDENTIAL_KEYS: [&str; 4] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
];

/// Runs `update`.
pub fn run(config: UpdateConfig) -> Result<(), Error> {
    let UpdateConfig {
        identity: identity_config,
        session: SessionConfig { request, client },
        credentials_file: path,
        profile,
        once,
        timing,
    } = config;
    check_file(&path)?;
    let live = LiveIdentity::open(identity_config, "update")?;
    let identity = live.identity().ok_or(ModeError::NoIdentity)?;
    let client =
        Client::new(client).map_err(|e| crate::error::session_error(e, identity, &request))?;
    let creds =
        refresh::create_session(&client, identity, &request, &SystemClock, &Stop::default())
            .map_err(|e| crate::error::session_error(e, identity, &request))?;
    write_profile(&path, &profile, &creds).map_err(|e| write_error(&path, e))?;
    log(
        "update",
        &format!(
            "wrote profile [{profile}] to {}; the credentials expire at {}",
            path.display(),
            creds.expiration.rfc3339()
        ),
    );
    if once {
        return Ok(());
    }

    // The identity and the client (which blocks its caller) move to a refresher thread; this
    // one only waits for a signal, so a stalled TPM or endpoint cannot hold up the stop.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ModeError::Process {
            what: "start the runtime",
            source,
        })?;
    let mut signals = rt
        .block_on(async { Signals::install() })
        .map_err(|source| ModeError::Process {
            what: "watch signals",
            source,
        })?;
    let notifier = crate::sdnotify::Notifier::from_env().map(Arc::new);
    let ready = format!(
        "profile [{profile}] of {} holds credentials",
        path.display()
    );
    let refresher = Refresher {
        live,
        client,
        requests: vec![request],
        timing,
        outlet: CredentialsFile { path, profile },
        clock: Arc::new(SystemClock),
        initial: vec![creds.expiration],
        notifier: notifier.clone(),
    };
    drop(creds);
    let worker = Worker::spawn("refresh", move |stop| refresher.run(stop)).map_err(|source| {
        ModeError::Process {
            what: "start a thread",
            source,
        }
    })?;
    // The profile holds the first credentials and the signals are watched.
    if let Some(n) = &notifier {
        n.ready(&ready);
    }
    let signal = loop {
        match rt.block_on(signals.recv()) {
            Asked::Stop(name) => break name,
            Asked::RefreshNow => {
                log("update", "SIGUSR1: refreshing now");
                worker.refresh_now();
            }
        }
    };
    let line = format!("{signal}: stopping");
    if let Some(n) = &notifier {
        n.stopping(&line);
    }
    log("update", &line);
    if worker.stop_by(Instant::now() + GRACE) {
        log("update", "stopped; the identity is closed");
    } else {
        log(
            "update",
            "stopped without closing the identity: the key's hardware did not answer in time",
        );
    }
    Ok(())
}

/// The profile `update` keeps fresh.
struct CredentialsFile {
    path: PathBuf,
    profile: String,
}

impl Outlet for CredentialsFile {
    fn mode(&self) -> &'static str {
        "update"
    }

    fn slot_name(&self, _: usize) -> String {
        String::new()
    }

    fn deliver(&mut self, _: usize, creds: &Credentials, _: UtcTime) -> Result<String, String> {
        let (path, profile) = (&self.path, &self.profile);
        write_profile(path, profile, creds)
            .map_err(|e| one_line(&Error::from(write_error(path, e))))?;
        Ok(format!(
            "refreshed profile [{profile}] in {}; the credentials expire at {}",
            path.display(),
            creds.expiration.rfc3339()
        ))
    }

    fn failed(
        &mut self,
        _: usize,
        _: &str,
        _: crate::error::ErrorClass,
        timer: &Timer,
        now: UtcTime,
    ) -> String {
        if timer.expiration > now {
            format!(
                "the file keeps the current credentials, valid until {}",
                timer.expiration.rfc3339()
            )
        } else {
            "the credentials in the file have expired".to_owned()
        }
    }
}

fn write_error(path: &Path, e: io::Error) -> ModeError {
    if let Some(refused) = e.get_ref().and_then(|e| e.downcast_ref::<Refused>()) {
        return ModeError::RefusedFile {
            path: path.to_owned(),
            refused: refused.to_string(),
        };
    }
    ModeError::WriteFile {
        path: path.to_owned(),
        source: e,
    }
}

/// Writes `creds` into `profile` of the credentials file at `path`, atomically and under
/// the lock.
pub fn write_profile(path: &Path, profile: &str, creds: &Credentials) -> io::Result<()> {
    // Write through a symlink to its target, so that managed dotfiles stay links.
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path)?,
        _ => path.to_owned(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?
        .to_string_lossy()
        .into_owned();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;

    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(format!(".{name}.ra-signer.lock")))?;
    lock.lock()?;

    let existing = read_existing(&target)?;
    let contents = merge(&existing, profile, creds)
        .map_err(|r| io::Error::new(io::ErrorKind::InvalidData, r))?;

    let written = crate::outfile::write(&target, contents.as_bytes(), true);
    drop(lock);
    written
}

/// The credentials file as text, bounded like every input (empty when it does not exist).
fn read_existing(path: &Path) -> io::Result<Zeroizing<String>> {
    match crate::input::read_file(path) {
        Ok(mut bytes) => {
            let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
                // Do not echo the bytes: they may hold other profiles' secrets.
                let _ = Zeroizing::new(e.into_bytes());
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the file is not UTF-8 text; not rewriting it",
                )
            })?;
            Ok(Zeroizing::new(text))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Zeroizing::new(String::new())),
        Err(e) => Err(e),
    }
}

/// Refuses, before any CreateSession, a credentials file that cannot be rewritten as it is.
fn check_file(path: &Path) -> Result<(), ModeError> {
    let existing = read_existing(path).map_err(|e| write_error(path, e))?;
    credentials_file::parse(&existing)
        .map(drop)
        .map_err(|r| write_error(path, io::Error::new(io::ErrorKind::InvalidData, r)))
}

/// The file with `profile` holding `creds` (and no stale `aws_security_token`), everything
/// else kept byte for byte; refused when botocore would refuse the file as it is.
pub fn merge(
    existing: &str,
    profile: &str,
    creds: &Credentials,
) -> Result<Zeroizing<String>, Refused> {
    credentials_file::set_keys(
        existing,
        profile,
        &[
            (CREDENTIAL_KEYS[0], creds.access_key_id.as_str()),
            (CREDENTIAL_KEYS[1], creds.secret_access_key.expose()),
            (CREDENTIAL_KEYS[2], creds.session_token.expose()),
        ],
        &CREDENTIAL_KEYS[3..],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn creds(n: u32) -> Credentials {
        Credentials {
            access_key_id: format!("ASIA{n}"),
            secret_access_key: Secret::new(format!("secret{n}")),
            session_token: Secret::new(format!("token{n}")),
            expiration: UtcTime::from_unix(1_765_470_865),
        }
    }

    const FRESH: &str =
        "aws_access_key_id = ASIA1\naws_secret_access_key = secret1\naws_session_token = token1\n";

    #[test]
    fn appends_to_empty_and_to_other_profiles() {
        assert_eq!(
            merge("", "default", &creds(1)).expect("merge").as_str(),
            format!("[default]\n{FRESH}")
        );
        assert_eq!(
            merge("[other]\nregion = x", "p", &creds(1))
                .expect("merge")
                .as_str(),
            format!("[other]\nregion = x\n\n[p]\n{FRESH}")
        );
        assert_eq!(
            merge("[other]\nregion = x\n\n", "p", &creds(1))
                .expect("merge")
                .as_str(),
            format!("[other]\nregion = x\n\n[p]\n{FRESH}")
        );
    }

    #[test]
    fn replaces_only_the_credential_keys_of_the_profile() {
        let existing = "# my creds\n[a]\naws_access_key_id=OLD\nregion = eu-west-1\nAWS_SECRET_ACCESS_KEY : old\naws_session_token = old\n  continued\naws_security_token = older\n\n[ p ]\nx = 1\n[b]\naws_access_key_id = KEEP\n";
        let got = merge(existing, "a", &creds(1)).expect("merge");
        assert_eq!(
            got.as_str(),
            format!(
                "# my creds\n[a]\n{FRESH}region = eu-west-1\n\n[ p ]\nx = 1\n[b]\naws_access_key_id = KEEP\n"
            )
        );
        // Idempotent apart from the values.
        let again = merge(&got, "a", &creds(2)).expect("merge");
        assert_eq!(
            again.as_str(),
            merge(existing, "a", &creds(2)).expect("merge").as_str()
        );
        // "[ p ]" is profile " p " to botocore, not "p".
        let p = merge(existing, "p", &creds(1)).expect("merge");
        assert!(
            p.ends_with(&format!(
                "[ p ]\nx = 1\n[b]\naws_access_key_id = KEEP\n\n[p]\n{FRESH}"
            )),
            "{}",
            p.as_str()
        );
    }

    #[test]
    fn a_file_botocore_refuses_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("credentials");
        let before = "[default] # main\naws_access_key_id = A\n[default]\nregion = x\n";
        fs::write(&path, before).expect("write");
        let e = write_profile(&path, "default", &creds(1)).expect_err("refused");
        assert_eq!(fs::read_to_string(&path).expect("read"), before);
        let err = Error::from(write_error(&path, e));
        assert_eq!(err.class.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("line 3: a second [default] section"),
            "{text}"
        );
        assert!(!text.contains("aws_access_key_id"), "{text}");
    }

    #[test]
    fn writes_atomically_with_modes() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new/deeper/credentials");
        write_profile(&path, "default", &creds(1)).expect("write");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(mode(&dir.path().join("new/deeper")), 0o700);
        let ino = fs::metadata(&path).expect("meta").ino();
        write_profile(&path, "other", &creds(2)).expect("write");
        assert_ne!(
            fs::metadata(&path).expect("meta").ino(),
            ino,
            "replaced by rename"
        );
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains("ASIA1") && text.contains("ASIA2"), "{text}");
        // Only the file and its lock remain.
        let mut names: Vec<String> = fs::read_dir(dir.path().join("new/deeper"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".credentials.ra-signer.lock", "credentials"]);
        // A symlink stays a symlink.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        write_profile(&link, "third", &creds(3)).expect("write");
        assert!(
            fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert!(fs::read_to_string(&path).expect("read").contains("ASIA3"));
    }
}
