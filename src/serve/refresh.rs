//! Keeping credentials fresh in the long-running modes (`serve`, `update`): an identity that
//! follows certificate rotation, the retry schedule, and the refresher thread of `serve`.
//!
//! The refresher is the only thread that signs: it owns the [`Identity`] (a token session
//! or TPM context) and the blocking CreateSession client, so a thousand clients at once
//! still cause one signature. It refreshes each role `refresh_before` seconds before
//! expiry; on failure it keeps the last good credentials, records why, and retries after
//! [`retry_delay`].

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::state::Shared;
use crate::config::{CertificateSource, IdentityConfig, PrivateKeySource, SessionRequest};
use crate::error::Error;
use crate::rolesanywhere::Client;
use crate::signer::{self, Identity};
use crate::time::UtcTime;

/// Writes one log line on stderr: `ra-signer: <UTC time> <what>: <message>`. Callers never
/// pass secrets.
pub fn log(what: &str, message: &str) {
    crate::diag!("ra-signer: {} {what}: {message}", UtcTime::now().rfc3339());
}

/// The message and hint of an error, on one line.
pub fn one_line(e: &Error) -> String {
    match &e.hint {
        Some(h) => format!("{} (hint: {h})", e.message),
        None => e.message.clone(),
    }
}

/// An error on one log line; under `--debug` with its whole cause chain.
pub fn log_text(e: &Error, debug: bool) -> String {
    let causes = if debug { e.causes() } else { Vec::new() };
    if causes.is_empty() {
        return one_line(e);
    }
    let causes = format!(
        "{} (caused by: {})",
        e.message,
        causes.join("; caused by: ")
    );
    match &e.hint {
        Some(h) => format!("{causes} (hint: {h})"),
        None => causes,
    }
}

/// Seconds to wait after the `failures`-th consecutive failed refresh: at least
/// `min_interval`, doubling per failure up to 300 s (never below `min_interval`), with
/// jitter over the upper half so that many daemons do not retry in step.
pub fn retry_delay(failures: u32, min_interval: u64) -> u64 {
    let min_interval = min_interval.max(1);
    let exp = min_interval
        .saturating_mul(1u64 << failures.saturating_sub(1).min(10))
        .min(300)
        .max(min_interval);
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let half = exp / 2;
    (half + u64::from_le_bytes(b) % (exp - half + 1)).max(min_interval)
}

/// A SHA-256 over what the identity was opened from: the certificate, key and
/// intermediates files, and for a certificate on a token, the matching certificates' DER.
/// A change means the certificate (or key) was rotated.
pub fn fingerprint(config: &IdentityConfig) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let file = |ctx: &mut ring::digest::Context, tag: &[u8], path: &Path| {
        ctx.update(tag);
        match crate::input::read(path) {
            Ok(bytes) => {
                ctx.update(&(bytes.len() as u64).to_le_bytes());
                ctx.update(&bytes);
            }
            Err(_) => ctx.update(b"unreadable"),
        }
    };
    match &config.certificate {
        Some(CertificateSource::File(p)) => file(&mut ctx, b"cert", p),
        Some(CertificateSource::Pkcs11(uri)) => token_certificates(&mut ctx, uri, config),
        None => {}
    }
    match &config.private_key {
        PrivateKeySource::File(p) => file(&mut ctx, b"key", p),
        PrivateKeySource::Pkcs11(uri) if config.certificate.is_none() => {
            token_certificates(&mut ctx, uri, config)
        }
        _ => {}
    }
    if let Some(p) = &config.intermediates {
        file(&mut ctx, b"intermediates", p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(feature = "pkcs11")]
fn token_certificates(ctx: &mut ring::digest::Context, uri: &str, config: &IdentityConfig) {
    // Certificates are public objects: listing them needs no login, and the module is
    // loaded once per process, so the identity's own session is not disturbed.
    ctx.update(b"token");
    match signer::pkcs11::list_certificates(uri, &config.pkcs11, false) {
        Ok(certs) => {
            for c in certs {
                ctx.update(c.cert.der());
            }
        }
        Err(_) => ctx.update(b"unlisted"),
    }
}

#[cfg(not(feature = "pkcs11"))]
fn token_certificates(ctx: &mut ring::digest::Context, _: &str, _: &IdentityConfig) {
    ctx.update(b"token");
}

/// Whether the key lives in a TPM (one connection at a time to simulators and to devices
/// without a resource manager: the old context must close before a new one opens).
fn is_tpm(config: &IdentityConfig) -> bool {
    match &config.private_key {
        PrivateKeySource::TpmHandle(_) => true,
        PrivateKeySource::File(p) => signer::is_tss2_key_file(p),
        PrivateKeySource::Pkcs11(_) | PrivateKeySource::MatchingTokenCertificate => false,
    }
}

/// An identity that is re-opened when its certificate changes; hardware sessions are kept
/// otherwise.
pub struct LiveIdentity {
    config: IdentityConfig,
    identity: Option<Identity>,
    fingerprint: [u8; 32],
    what: &'static str,
}

impl LiveIdentity {
    /// Opens the identity; `what` names the mode in log lines.
    pub fn open(config: IdentityConfig, what: &'static str) -> Result<LiveIdentity, Error> {
        // Fingerprint first: a change racing with the open is seen at the next refresh.
        let fingerprint = fingerprint(&config);
        let identity = signer::open(&config)?;
        Ok(LiveIdentity {
            config,
            identity: Some(identity),
            fingerprint,
            what,
        })
    }

    /// The identity, when one is open.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Re-opens the identity if its files or token certificate changed since it was opened.
    /// A failed re-open is logged and retried at the next refresh; meanwhile the old
    /// identity keeps signing (except for TPM keys, whose context is closed first).
    pub fn follow_rotation(&mut self) {
        let now = fingerprint(&self.config);
        if now == self.fingerprint && self.identity.is_some() {
            return;
        }
        log(
            self.what,
            "the certificate or key changed (or the last re-open failed): re-opening the identity",
        );
        if is_tpm(&self.config) {
            self.identity = None;
        }
        match signer::open(&self.config) {
            Ok(identity) => {
                log(
                    self.what,
                    &format!(
                        "re-opened the identity: certificate \"{}\", serial {}",
                        identity.leaf().subject(),
                        identity.leaf().serial_decimal()
                    ),
                );
                self.identity = Some(identity);
                self.fingerprint = now;
            }
            Err(e) => log(
                self.what,
                &format!(
                    "cannot re-open the identity, {}: {}",
                    if self.identity.is_some() {
                        "still signing with the previous one"
                    } else {
                        "no identity to sign with until it opens"
                    },
                    one_line(&Error::from(e))
                ),
            ),
        }
    }

    /// Drops the identity (logs out of the token, flushes TPM objects).
    pub fn close(&mut self) {
        self.identity = None;
    }
}

/// A stop flag a sleeping thread can be woken from.
#[derive(Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Asks the thread to stop.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Whether the thread was asked to stop.
    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps up to `d`; true if asked to stop.
    pub fn wait(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

/// When a role is next due.
#[derive(Debug, Clone, Copy)]
struct Timer {
    expiration: UtcTime,
    last_success: UtcTime,
    failures: u32,
    retry_at: UtcTime,
}

/// The refresher of `serve`: owns the identity and the client.
pub struct Refresher {
    /// The identity.
    pub live: LiveIdentity,
    /// The CreateSession client.
    pub client: Client,
    /// One request per role, in the order of `shared.roles`.
    pub requests: Vec<SessionRequest>,
    /// Where credentials are published.
    pub shared: Arc<Shared>,
    /// Refresh this many seconds before expiry.
    pub refresh_before: u64,
    /// Minimum seconds between failed refresh cycles.
    pub retry_interval: u64,
    /// The expiration of each role's initial credentials.
    pub initial: Vec<UtcTime>,
}

impl Refresher {
    /// Runs until `stop`; drops the identity on the way out.
    pub fn run(mut self, stop: &Stop) {
        let started = UtcTime::now();
        let mut timers: Vec<Timer> = self
            .initial
            .iter()
            .map(|&expiration| Timer {
                expiration,
                last_success: started,
                failures: 0,
                retry_at: started,
            })
            .collect();
        loop {
            let now = UtcTime::now();
            let refresh_before = self.refresh_before;
            let due = move |t: &Timer| {
                if t.failures > 0 {
                    t.retry_at
                } else {
                    // At most every 5 s, whatever lifetime the service grants.
                    UtcTime::from_unix(
                        t.expiration
                            .unix()
                            .saturating_sub(refresh_before)
                            .max(t.last_success.unix() + 5),
                    )
                }
            };
            let next = timers.iter().map(due).min().unwrap_or(now);
            if next > now {
                if stop.wait(Duration::from_secs(next.unix() - now.unix())) {
                    break;
                }
                continue;
            }
            // Shutdown may have begun while a refresh or a re-open was in progress: none
            // starts after it.
            if stop.is_stopped() {
                break;
            }
            self.live.follow_rotation();
            for (i, timer) in timers.iter_mut().enumerate() {
                if stop.is_stopped() {
                    break;
                }
                if due(timer) <= now {
                    self.refresh_one(i, timer, stop);
                }
            }
        }
        self.live.close();
    }

    fn refresh_one(&mut self, i: usize, timer: &mut Timer, stop: &Stop) {
        let request = &self.requests[i];
        let role = &self.shared.roles[i];
        let result = match self.live.identity() {
            Some(identity) => self
                .client
                .create_session_pausing(identity, request, &|d| !stop.wait(d))
                .map_err(|e| {
                    let e = crate::error::session_error(e, identity, request);
                    log_text(&e, self.client.debug())
                }),
            None => Err("no identity is open (see the re-open error above)".to_owned()),
        };
        if result.is_err() && stop.is_stopped() {
            // Cut short by shutdown: no retry is coming, and the last good credentials
            // stay published until the process ends.
            return;
        }
        let now = UtcTime::now();
        match result {
            Ok(creds) => {
                role.publish(&creds, now);
                *timer = Timer {
                    expiration: creds.expiration,
                    last_success: now,
                    failures: 0,
                    retry_at: now,
                };
                log(
                    "serve",
                    &format!(
                        "refreshed the credentials of role {}; they expire at {}",
                        role.name,
                        creds.expiration.rfc3339()
                    ),
                );
            }
            Err(reason) => {
                timer.failures += 1;
                let delay = retry_delay(timer.failures, self.retry_interval);
                timer.retry_at = UtcTime::from_unix(now.unix() + delay);
                let keep = if timer.expiration > now {
                    format!(
                        "the current credentials stay in service until {}",
                        timer.expiration.rfc3339()
                    )
                } else {
                    "no valid credentials: answering HTTP 500".to_owned()
                };
                log(
                    "serve",
                    &format!(
                        "refresh {} of role {} failed: {reason}; {keep}; retrying in {delay} s",
                        timer.failures, role.name
                    ),
                );
                role.fail(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_respect_the_minimum_and_the_cap() {
        for failures in 1..20 {
            for min in [1, 2, 30, 600] {
                let d = retry_delay(failures, min);
                assert!(d >= min.max(1), "{failures} {min} {d}");
                assert!(d <= min.max(300), "{failures} {min} {d}");
            }
        }
        // The first retry after the minimum interval is within [min/2.., min] → min.
        assert_eq!(retry_delay(1, 30), 30);
        assert!((30..=60).contains(&retry_delay(2, 30)));
    }

    #[test]
    fn the_fingerprint_follows_file_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "one").expect("write");
        std::fs::write(&key, "key").expect("write");
        let config = IdentityConfig {
            certificate: Some(CertificateSource::File(cert.clone())),
            private_key: PrivateKeySource::File(key),
            intermediates: None,
            key_password_sources: vec![],
            pkcs11: Default::default(),
            tpm: Default::default(),
        };
        let a = fingerprint(&config);
        assert_eq!(a, fingerprint(&config));
        std::fs::write(&cert, "two").expect("write");
        let b = fingerprint(&config);
        assert_ne!(a, b);
        std::fs::remove_file(&cert).expect("rm");
        assert_ne!(b, fingerprint(&config));
    }

    #[test]
    fn stop_wakes_a_sleeper() {
        let stop = Arc::new(Stop::default());
        let s = Arc::clone(&stop);
        let t = std::thread::spawn(move || s.wait(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        stop.stop();
        assert!(t.join().expect("join"));
        assert!(stop.wait(Duration::from_secs(60)));
    }
}
