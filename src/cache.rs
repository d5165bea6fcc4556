//! `credential-process --cache`: reuse unexpired credentials across invocations (the AWS
//! CLI runs the helper for every command) without writing them to disk.
//!
//! Credentials are kept in the Linux kernel's **user keyring** (`@u`: one per user id,
//! shared by that user's processes, gone at reboot), as a `user` key whose description is
//! `ra-signer:` and a SHA-256 over everything that decides which credentials a run would
//! get: the three ARNs, duration, role session name, region, endpoint, and the
//! certificate's SHA-256 fingerprint (for a certificate on a token: its URI and module,
//! so that a cache hit never loads the module). The key times out when the credentials
//! stop being usable (expiry minus the minimum validity), and a cached answer is only used
//! when it is at least [`MIN_VALIDITY`] seconds from expiry.
//!
//! The key grants everything to its possessor and view/read/search/write/setattr to its
//! owning user (so processes of that user whose session keyring does not link `@u`, such
//! as systemd services, still find it), nothing to group or others.
//!
//! Runs that miss at the same moment (a burst of AWS CLI commands) queue on an exclusive
//! `flock` of a per-entry lock file, `$XDG_RUNTIME_DIR/ra-signer/<hash>.lock` (else
//! `~/.cache/ra-signer/`), and look again once they hold it: one signs, the others find its
//! credentials. The lock file holds nothing.
//!
//! Where the keyring is unavailable (not Linux, a seccomp filter denying `keyctl` as
//! Docker's default profile does, the key quota exhausted), runs fall back to no cache,
//! with one note on stderr under `--debug`.
//!
//! `--refresh` skips the lookup and replaces the entry. Each entry also records its role ARN
//! and the certificate's fingerprint, which `cache list` shows ([`list`], never a secret);
//! `cache clear` invalidates one entry ([`clear`]) or every `ra-signer:` entry of the user
//! keyring ([`clear_all`]), and there, unlike for `--cache`, no keyring is an error.

use std::path::Path;

use crate::config::{CertificateSource, IdentityConfig, PrivateKeySource, SessionRequest};
use crate::credentials::Credentials;
use crate::rolesanywhere::ClientOptions;
#[cfg(target_os = "linux")]
use crate::secret::Secret;
use crate::time::UtcTime;

/// A cached answer must be at least this many seconds from expiry.
pub(crate) const MIN_VALIDITY: u64 = 300;

/// Takes the exclusive lock of `key`'s entry, waiting for a run that is signing for it;
/// released when the returned file is dropped (or the holder exits). `None` when no lock
/// file can be made: the run then goes on unlocked.
pub(crate) fn lock(key: &CacheKey) -> Option<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = match std::env::var_os(crate::env::XDG_RUNTIME_DIR).filter(|d| !d.is_empty()) {
        Some(runtime) => std::path::PathBuf::from(runtime).join("ra-signer"),
        None => {
            std::path::PathBuf::from(std::env::var_os(crate::env::HOME)?).join(".cache/ra-signer")
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let name = key.description.trim_start_matches(DESCRIPTION_PREFIX);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(format!("{name}.lock")))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// Prefix of the keyring key descriptions.
pub(crate) const DESCRIPTION_PREFIX: &str = "ra-signer:";

/// Which cache entry a run uses, and how.
#[derive(Debug, Clone)]
pub(crate) struct CacheKey {
    description: String,
    min_validity: u64,
    debug: bool,
    /// Kept in the entry beside the credentials, for `cache list`.
    role_arn: String,
    /// The certificate's fingerprint (a token URI with any PIN redacted), for `cache list`.
    identity: String,
}

impl CacheKey {
    /// With `--refresh`, say so under `--debug`.
    pub(crate) fn note_refresh(&self) {
        note(
            self,
            "--refresh: not using the cached entry; it is replaced",
        );
    }
}

/// The cache key of a run, or `None` (with a note under `debug`) when the certificate
/// cannot be read to fingerprint it; the run then goes uncached and reports any problem
/// with the certificate as usual.
pub(crate) fn key(
    request: &SessionRequest,
    options: &ClientOptions,
    identity: &IdentityConfig,
    min_validity: u64,
    debug: bool,
) -> Option<CacheKey> {
    let Some(certificate) = certificate_fingerprint(identity) else {
        if debug {
            crate::diag!(
                "ra-signer: debug: cache: cannot read the certificate to key the cache; not caching"
            );
        }
        return None;
    };
    let key_source = match &identity.private_key {
        PrivateKeySource::File(p) => format!("file:{}", p.display()),
        PrivateKeySource::Pkcs11(uri) => uri.as_str().to_owned(),
        PrivateKeySource::TpmHandle(h) => format!("handle:{h:#010x}"),
        PrivateKeySource::MatchingTokenCertificate => "the certificate's".to_owned(),
    };
    // Only a run that passed `--require-hardware-key` stores under this key, so a hit never
    // hands out credentials the policy would have refused.
    let policy = if identity.require_hardware_key {
        "require-hardware-key"
    } else {
        ""
    };
    let fields: [&str; 11] = [
        "ra-signer cache v1",
        request.trust_anchor_arn.as_str(),
        request.profile_arn.as_str(),
        request.role_arn.as_str(),
        &request.duration.seconds().to_string(),
        request.role_session_name.as_deref().unwrap_or(""),
        options.region.as_str(),
        &options.endpoint,
        &certificate,
        &key_source,
        policy,
    ];
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for f in fields {
        // Length-prefixed, so that no two field lists hash the same.
        ctx.update(&(f.len() as u64).to_le_bytes());
        ctx.update(f.as_bytes());
    }
    Some(CacheKey {
        description: format!(
            "{DESCRIPTION_PREFIX}{}",
            crate::cert::hex_lower(ctx.finish().as_ref())
        ),
        min_validity,
        debug,
        role_arn: request.role_arn.as_str().to_owned(),
        identity: crate::display::redact_pin_value(&certificate),
    })
}

/// The certificate's SHA-256 (hex) for a file; its URI and module for a token.
fn certificate_fingerprint(identity: &IdentityConfig) -> Option<String> {
    let file = |path: &Path| -> Option<String> {
        match crate::cert::Cert::first_from_file(path) {
            Ok(c) => Some(format!("sha256:{}", c.sha256_hex())),
            // PKCS#12 and other containers: the file's own hash.
            Err(_) => crate::input::read(path).ok().map(|b| {
                format!(
                    "file-sha256:{}",
                    crate::cert::hex_lower(
                        ring::digest::digest(&ring::digest::SHA256, &b).as_ref()
                    )
                )
            }),
        }
    };
    let module = identity
        .pkcs11
        .module
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match (&identity.certificate, &identity.private_key) {
        (Some(CertificateSource::File(p)), _) => file(p),
        (Some(CertificateSource::Pkcs11(uri)), _) | (None, PrivateKeySource::Pkcs11(uri)) => {
            Some(format!("token:{}|{module}", uri.as_str()))
        }
        (None, PrivateKeySource::File(p)) => file(p),
        (None, PrivateKeySource::TpmHandle(_) | PrivateKeySource::MatchingTokenCertificate) => None,
    }
}

/// Cached credentials for `key`, if some are at least the minimum validity from expiry.
#[cfg(target_os = "linux")]
pub(crate) fn lookup(key: &CacheKey) -> Option<Credentials> {
    use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
    let ring = match KeyRing::from_special_id(KeyRingIdentifier::User, true) {
        Ok(r) => r,
        Err(e) => {
            unavailable(key, &e);
            return None;
        }
    };
    let found = match ring.search(&key.description) {
        Ok(k) => k,
        Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
            note(key, "miss");
            return None;
        }
        Err(e) => {
            unavailable(key, &e);
            return None;
        }
    };
    // A user key holds at most 32767 bytes.
    let mut buf = zeroize::Zeroizing::new(vec![0u8; 32 * 1024]);
    let len = match found.read(&mut *buf) {
        Ok(n) if n <= buf.len() => n,
        Ok(_) => return None,
        Err(e) => {
            unavailable(key, &e);
            return None;
        }
    };
    let creds = parse(&buf[..len])?;
    let left = creds.seconds_left(UtcTime::now());
    if left < key.min_validity {
        note(
            key,
            &format!(
                "bypassed: the cached credentials expire in {left} s (< {} s)",
                key.min_validity
            ),
        );
        return None;
    }
    note(key, &format!("hit: the credentials expire in {left} s"));
    Some(creds)
}

/// Keeps `creds` under `key` until they stop being usable. Failures are silent but for a
/// note under `--debug`: the run has its credentials either way.
#[cfg(target_os = "linux")]
pub(crate) fn store(key: &CacheKey, creds: &Credentials) {
    use linux_keyutils::{KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
    let usable_for = creds
        .seconds_left(UtcTime::now())
        .saturating_sub(key.min_validity);
    if usable_for == 0 {
        note(key, "not stored: the credentials are too close to expiry");
        return;
    }
    let ring = match KeyRing::from_special_id(KeyRingIdentifier::User, true) {
        Ok(r) => r,
        Err(e) => return unavailable(key, &e),
    };
    let json = payload(key, creds);
    let stored = ring
        .add_key(&key.description, json.as_bytes())
        .and_then(|k| {
            let perms = KeyPermissionsBuilder::builder()
                .posessor(Permission::ALL)
                .user(
                    Permission::VIEW
                        | Permission::READ
                        | Permission::WRITE
                        | Permission::SEARCH
                        | Permission::SETATTR,
                )
                .build();
            let set = k
                .set_perms(perms)
                .and_then(|()| k.set_timeout(usize::try_from(usable_for).unwrap_or(usize::MAX)));
            if set.is_err() {
                // Never leave credentials behind without their timeout.
                let _ = k.invalidate();
            }
            set
        });
    match stored {
        Ok(()) => note(key, &format!("stored for {usable_for} s")),
        Err(e) => unavailable(key, &e),
    }
}

/// Not Linux: never cached.
#[cfg(not(target_os = "linux"))]
pub fn lookup(key: &CacheKey) -> Option<Credentials> {
    if key.debug {
        crate::diag!(
            "ra-signer: debug: cache: the kernel keyring exists only on Linux; not caching"
        );
    }
    None
}

/// Not Linux: never cached.
#[cfg(not(target_os = "linux"))]
pub fn store(_: &CacheKey, _: &Credentials) {}

#[cfg(target_os = "linux")]
fn unavailable(key: &CacheKey, e: &linux_keyutils::KeyError) {
    note(
        key,
        &format!("the kernel keyring is not available ({e:?}); not caching"),
    );
}

fn note(key: &CacheKey, what: &str) {
    if key.debug {
        crate::diag!("ra-signer: debug: cache: {what}");
    }
}

/// What an entry holds: the credential_process JSON, and the role ARN and identity
/// fingerprint that `cache list` shows (entries of earlier versions lack these two).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Stored {
    version: u8,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret_access_key.zeroize();
        self.session_token.zeroize();
    }
}

/// The payload [`store`] writes for `creds` under `key`.
#[cfg(target_os = "linux")]
fn payload(key: &CacheKey, creds: &Credentials) -> zeroize::Zeroizing<String> {
    let stored = Stored {
        version: 1,
        access_key_id: creds.access_key_id.clone(),
        secret_access_key: creds.secret_access_key.expose().to_owned(),
        session_token: creds.session_token.expose().to_owned(),
        expiration: creds.expiration.rfc3339(),
        role_arn: Some(key.role_arn.clone()),
        identity: Some(key.identity.clone()),
    };
    zeroize::Zeroizing::new(serde_json::to_string(&stored).unwrap_or_default())
}

/// Reads back what [`store`] wrote: the credentials, and the role and identity when the
/// entry names them.
#[cfg(target_os = "linux")]
fn parse_entry(payload: &[u8]) -> Option<(Credentials, Option<String>, Option<String>)> {
    let mut s: Stored = serde_json::from_slice(payload).ok()?;
    let creds = Credentials {
        access_key_id: std::mem::take(&mut s.access_key_id),
        secret_access_key: Secret::new(std::mem::take(&mut s.secret_access_key)),
        session_token: Secret::new(std::mem::take(&mut s.session_token)),
        expiration: UtcTime::parse_rfc3339(&s.expiration)?,
    };
    (s.version == 1 && !creds.access_key_id.is_empty())
        .then(|| (creds, s.role_arn.take(), s.identity.take()))
}

/// Reads back the credentials [`store`] wrote.
#[cfg(target_os = "linux")]
fn parse(payload: &[u8]) -> Option<Credentials> {
    parse_entry(payload).map(|(creds, _, _)| creds)
}

/// What `cache list` shows of one entry: never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntrySummary {
    /// The keyring key's description: `ra-signer:` and the hash of the entry's inputs.
    pub(crate) entry: String,
    /// The role the credentials are for (`None`: an entry of an earlier version).
    pub(crate) role_arn: Option<String>,
    /// When the credentials expire.
    pub(crate) expiration: UtcTime,
    /// The certificate's fingerprint (`sha256:…`), or the token URI and module of a
    /// certificate on a token (`None`: an entry of an earlier version).
    pub(crate) identity: Option<String>,
}

/// Why `cache list` or `cache clear` cannot look at the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The keyring calls fail (no Linux, a seccomp filter, no quota).
    #[error("the kernel keyring is not available ({0})")]
    Unavailable(String),
    /// The list of keys cannot be read.
    #[error("cannot read the list of keys, /proc/keys: {0}")]
    ProcKeys(#[source] std::io::Error),
    /// The identity has no cache entry to remove: its certificate cannot be read.
    #[error("cannot read the certificate, so these flags have no cache entry to clear")]
    NoEntryKey,
}

/// The kernel user keyring.
#[cfg(target_os = "linux")]
fn user_keyring() -> Result<linux_keyutils::KeyRing, CacheError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    KeyRing::from_special_id(KeyRingIdentifier::User, true)
        .map_err(|e| CacheError::Unavailable(format!("{e:?}")))
}

/// The descriptions of the `ra-signer:` keys this process may view (`/proc/keys`): the
/// kernel has no call that lists a keyring without a fixed-size buffer, and these are
/// then looked up in the user keyring, which also leaves out the keys of other user
/// namespaces' keyrings.
#[cfg(target_os = "linux")]
fn viewable_descriptions() -> Result<Vec<String>, CacheError> {
    let text = crate::input::read_file(Path::new("/proc/keys")).map_err(CacheError::ProcKeys)?;
    let text = String::from_utf8_lossy(&text);
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|line| {
            // id flags usage timeout perm uid gid type description: summary
            let mut fields = line.split_whitespace();
            let kind = fields.nth(7)?;
            let description = fields.next()?.strip_suffix(':')?;
            let hash = description.strip_prefix(DESCRIPTION_PREFIX)?;
            let ours =
                kind == "user" && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            ours.then(|| description.to_owned())
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Every entry in the user keyring, soonest expiry first.
#[cfg(target_os = "linux")]
pub(crate) fn list() -> Result<Vec<EntrySummary>, CacheError> {
    let ring = user_keyring()?;
    let mut entries = Vec::new();
    for description in viewable_descriptions()? {
        let Ok(key) = ring.search(&description) else {
            // Expired, removed meanwhile, or in another keyring.
            continue;
        };
        let mut buf = zeroize::Zeroizing::new(vec![0u8; 32 * 1024]);
        let len = match key.read(&mut *buf) {
            Ok(n) if n <= buf.len() => n,
            _ => continue,
        };
        if let Some((creds, role_arn, identity)) = parse_entry(&buf[..len]) {
            entries.push(EntrySummary {
                entry: description,
                role_arn,
                expiration: creds.expiration,
                identity,
            });
        }
    }
    entries.sort_by_key(|e| e.expiration);
    Ok(entries)
}

/// Removes `key`'s entry; whether there was one.
#[cfg(target_os = "linux")]
pub(crate) fn clear(key: &CacheKey) -> Result<bool, CacheError> {
    let ring = user_keyring()?;
    Ok(invalidate(&ring, &key.description))
}

/// Removes every entry of the user keyring; how many there were.
#[cfg(target_os = "linux")]
pub(crate) fn clear_all() -> Result<usize, CacheError> {
    let ring = user_keyring()?;
    Ok(viewable_descriptions()?
        .iter()
        .filter(|d| invalidate(&ring, d))
        .count())
}

/// Invalidates the key `description` of `ring`, if it holds one.
#[cfg(target_os = "linux")]
fn invalidate(ring: &linux_keyutils::KeyRing, description: &str) -> bool {
    ring.search(description)
        .and_then(|key| key.invalidate())
        .is_ok()
}

/// Not Linux: no keyring.
#[cfg(not(target_os = "linux"))]
pub(crate) fn list() -> Result<Vec<EntrySummary>, CacheError> {
    Err(CacheError::Unavailable(
        "the kernel keyring exists only on Linux".into(),
    ))
}

/// Not Linux: no keyring.
#[cfg(not(target_os = "linux"))]
pub(crate) fn clear(_: &CacheKey) -> Result<bool, CacheError> {
    Err(CacheError::Unavailable(
        "the kernel keyring exists only on Linux".into(),
    ))
}

/// Not Linux: no keyring.
#[cfg(not(target_os = "linux"))]
pub(crate) fn clear_all() -> Result<usize, CacheError> {
    Err(CacheError::Unavailable(
        "the kernel keyring exists only on Linux".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arn, ArnKind, SessionDuration};

    fn request(role: &str, duration: u32, name: Option<&str>) -> SessionRequest {
        SessionRequest::new(
            Arn::parse(
                "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta",
                ArnKind::TrustAnchor,
            )
            .expect("ta"),
            Arn::parse(
                "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p",
                ArnKind::Profile,
            )
            .expect("p"),
            Arn::parse(role, ArnKind::Role).expect("role"),
            SessionDuration::new(duration).expect("duration"),
            name.map(str::to_owned),
        )
        .expect("request")
    }

    fn options(endpoint: &str) -> ClientOptions {
        ClientOptions {
            endpoint: endpoint.into(),
            region: "us-east-1".parse().expect("region"),
            ca_bundle: None,
            system_trust: None,
            danger_accept_invalid_certs: false,
            connect_timeout: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(1),
            max_attempts: 1,
            debug: false,
        }
    }

    fn identity(cert: &Path) -> IdentityConfig {
        IdentityConfig {
            certificate: Some(CertificateSource::File(cert.to_owned())),
            private_key: PrivateKeySource::File(cert.with_extension("key")),
            intermediates: None,
            key_password_sources: vec![],
            pkcs11: Default::default(),
            tpm: Default::default(),
            require_hardware_key: false,
        }
    }

    #[test]
    fn the_key_covers_every_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not a certificate, hashed as a file").expect("write");
        let role = "arn:aws:iam::123456789012:role/A";
        // The cache key for one variation of the inputs.
        let key_for = |role: &str, duration, name, endpoint, min_validity, debug| {
            key(
                &request(role, duration, name),
                &options(endpoint),
                &identity(&cert),
                min_validity,
                debug,
            )
        };
        let base = key_for(role, 3600, None, "https://e", 300, false).expect("key");
        assert!(base.description.starts_with(DESCRIPTION_PREFIX));
        assert_eq!(base.description.len(), DESCRIPTION_PREFIX.len() + 64);
        // How a run uses the entry does not change which entry it is.
        let same = key_for(role, 3600, None, "https://e", 0, true).expect("key");
        assert_eq!(base.description, same.description);
        let variants = [
            key_for(
                "arn:aws:iam::123456789012:role/B",
                3600,
                None,
                "https://e",
                300,
                false,
            ),
            key_for(role, 900, None, "https://e", 300, false),
            key_for(role, 3600, Some("me"), "https://e", 300, false),
            key_for(role, 3600, None, "https://f", 300, false),
        ];
        for v in variants {
            assert_ne!(v.expect("key").description, base.description);
        }
        // A run without --require-hardware-key never reads an entry stored by one with it,
        // nor the other way round.
        let strict = IdentityConfig {
            require_hardware_key: true,
            ..identity(&cert)
        };
        let strict_key = key(
            &request(role, 3600, None),
            &options("https://e"),
            &strict,
            300,
            false,
        );
        assert_ne!(strict_key.expect("key").description, base.description);
        std::fs::write(&cert, "another certificate").expect("write");
        let rotated = key_for(role, 3600, None, "https://e", 300, false).expect("key");
        assert_ne!(rotated.description, base.description);
        std::fs::remove_file(&cert).expect("rm");
        assert!(key_for(role, 3600, None, "https://e", 300, false).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stored_credentials_read_back_until_too_close_to_expiry() {
        let k = CacheKey {
            description: format!("{DESCRIPTION_PREFIX}unit-test-{}", std::process::id()),
            min_validity: 300,
            debug: false,
            role_arn: "arn:aws:iam::123456789012:role/unit".into(),
            identity: "sha256:unit".into(),
        };
        let now = UtcTime::now();
        let creds = Credentials {
            access_key_id: "ASIAUNITTEST".into(),
            secret_access_key: Secret::new("secret".into()),
            session_token: Secret::new("token".into()),
            expiration: now + std::time::Duration::from_secs(1000),
        };
        store(&k, &creds);
        let Some(got) = lookup(&k) else {
            crate::diag!("the kernel keyring is not available here: skipping");
            return;
        };
        assert_eq!(got.access_key_id, "ASIAUNITTEST");
        assert_eq!(got.session_token.expose(), "token");
        assert_eq!(got.expiration, creds.expiration);
        let strict = CacheKey {
            min_validity: 1001,
            ..k.clone()
        };
        assert!(lookup(&strict).is_none(), "within the minimum validity");
        // Clean up.
        let ring = linux_keyutils::KeyRing::from_special_id(
            linux_keyutils::KeyRingIdentifier::User,
            false,
        );
        if let Ok(key) = ring.and_then(|r| r.search(&k.description)) {
            let _ = key.invalidate();
        }
        assert!(lookup(&k).is_none());
    }

    #[test]
    fn payloads_round_trip() {
        let creds = Credentials {
            access_key_id: "ASIAX".into(),
            secret_access_key: Secret::new("s".into()),
            session_token: Secret::new("t".into()),
            expiration: UtcTime::from_unix(1_765_470_865),
        };
        #[cfg(target_os = "linux")]
        {
            let back = parse(creds.to_process_json().as_bytes()).expect("parse");
            assert_eq!(back.expiration, creds.expiration);
            assert!(parse(b"garbage").is_none());
        }
    }
}
