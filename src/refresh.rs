//! Keeping credentials fresh in the long-running modes (`serve`, `update`): an identity that
//! follows certificate rotation, the schedule, the retries, and the refresher thread.
//!
//! The refresher is the only thread that signs: it owns the [`Identity`] (a token session
//! or TPM context) and the CreateSession client (which blocks the thread that calls it), so
//! a thousand clients at once still cause one signature. It renews each slot (a role of
//! `serve`, the profile of `update`) `refresh_before` seconds before expiry and hands the
//! credentials to an [`Outlet`]; on failure the outlet keeps the last good credentials, and
//! the slot is tried again after [`retry_delay`].
//!
//! Time comes from a [`Clock`]: the system's in production, a test's own in tests, so that
//! the schedule is tested without waiting for it. [`Timer::next_due`] is a pure function of
//! the slot's state; every wait is cut short by [`Stop`]. This module is the one owner of
//! retries: [`create_session`] retries one call, [`Refresher`] the refresh cycles.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::config::{
    CertificateSource, IdentityConfig, PrivateKeySource, RefreshTiming, SessionRequest,
};
use crate::credentials::Credentials;
use crate::error::{Error, ErrorClass};
use crate::pkcs11_uri::TokenUri;
use crate::rolesanywhere::{Client, CreateSessionError};
use crate::sdnotify::Notifier;
use crate::signer::{self, Identity};
use crate::time::UtcTime;

/// The time as the refresh loop sees it, and its waits.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> UtcTime;

    /// Waits `d`, or less if `stop` is raised meanwhile: true when stopped.
    fn sleep(&self, d: Duration, stop: &Stop) -> bool;
}

/// The system's clock; its waits are woken by [`Stop::stop`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UtcTime {
        UtcTime::now()
    }

    fn sleep(&self, d: Duration, stop: &Stop) -> bool {
        stop.wait(d)
    }
}

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
    let text = format!(
        "{} (caused by: {})",
        e.message,
        causes.join("; caused by: ")
    );
    match &e.hint {
        Some(h) => format!("{text} (hint: {h})"),
        None => text,
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
            token_certificates(&mut ctx, uri, config);
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
fn token_certificates(ctx: &mut ring::digest::Context, uri: &TokenUri, config: &IdentityConfig) {
    // Certificates are public objects: listing them needs no login, and the module is
    // loaded once per process, so the identity's own session is not disturbed.
    ctx.update(b"token");
    match signer::pkcs11::list_certificates(uri.uri(), &config.pkcs11, false) {
        Ok(certs) => {
            for c in certs {
                ctx.update(c.cert.der());
            }
        }
        Err(_) => ctx.update(b"unlisted"),
    }
}

#[cfg(not(feature = "pkcs11"))]
fn token_certificates(ctx: &mut ring::digest::Context, _: &TokenUri, _: &IdentityConfig) {
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

/// A stop flag a sleeping thread can be woken from, and the request to refresh now
/// (SIGUSR1), which wakes it too.
#[derive(Default)]
pub struct Stop {
    flags: Mutex<Flags>,
    wake: Condvar,
}

#[derive(Default)]
struct Flags {
    stopped: bool,
    refresh_now: bool,
}

impl Stop {
    /// Asks the thread to stop.
    pub fn stop(&self) {
        self.flags().stopped = true;
        self.wake.notify_all();
    }

    /// Whether the thread was asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.flags().stopped
    }

    /// Asks the thread to refresh every slot now.
    pub fn refresh_now(&self) {
        self.flags().refresh_now = true;
        self.wake.notify_all();
    }

    /// Whether a refresh was asked for since the last call (which answers it).
    pub fn take_refresh_request(&self) -> bool {
        std::mem::take(&mut self.flags().refresh_now)
    }

    /// Sleeps up to `d`, less if asked to stop or to refresh; true if asked to stop.
    pub fn wait(&self, d: Duration) -> bool {
        let guard = self.flags();
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |f| !f.stopped && !f.refresh_now)
            .unwrap_or_else(PoisonError::into_inner);
        guard.stopped
    }

    fn flags(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The schedule of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// When the slot's current credentials expire.
    pub expiration: UtcTime,
    /// When they were got.
    pub last_success: UtcTime,
    /// Failed refreshes since then.
    pub failures: u32,
    /// When to try again after a failure.
    pub retry_at: UtcTime,
}

/// Refreshes come at most this often, whatever lifetime the service grants.
pub const MIN_REFRESH_INTERVAL: u64 = 5;

impl Timer {
    /// A slot whose credentials, got at `now`, expire at `expiration`.
    pub fn new(expiration: UtcTime, now: UtcTime) -> Timer {
        Timer {
            expiration,
            last_success: now,
            failures: 0,
            retry_at: now,
        }
    }

    /// When the slot is next due: `refresh_before` seconds before expiry (and at least
    /// [`MIN_REFRESH_INTERVAL`] after the last success), or the retry time after a failure.
    pub fn next_due(&self, timing: RefreshTiming) -> UtcTime {
        if self.failures > 0 {
            return self.retry_at;
        }
        UtcTime::from_unix(
            self.expiration
                .unix()
                .saturating_sub(timing.refresh_before)
                .max(self.last_success.unix() + MIN_REFRESH_INTERVAL),
        )
    }

    /// Records fresh credentials.
    fn succeeded(&mut self, expiration: UtcTime, now: UtcTime) {
        *self = Timer::new(expiration, now);
    }

    /// Records a failure; the seconds until the next try.
    fn failed(&mut self, now: UtcTime, timing: RefreshTiming) -> u64 {
        self.failures += 1;
        let delay = retry_delay(self.failures, timing.retry_interval);
        self.retry_at = UtcTime::from_unix(now.unix() + delay);
        delay
    }
}

/// Where a refresher hands fresh credentials: the published answers of `serve`, the
/// credentials file of `update`.
pub trait Outlet: Send {
    /// The mode, as log lines name it ("serve").
    fn mode(&self) -> &'static str;

    /// The slot as log lines name it, after "refresh N" (" of role Admin"), or "".
    fn slot_name(&self, slot: usize) -> String;

    /// Hands on `creds` for `slot`: the log line, or why they could not be handed on.
    fn deliver(&mut self, slot: usize, creds: &Credentials, now: UtcTime)
    -> Result<String, String>;

    /// Records that a refresh of `slot` failed for `reason` (one line) of `class`; what the
    /// clients keep meanwhile, for the log.
    fn failed(
        &mut self,
        slot: usize,
        reason: &str,
        class: ErrorClass,
        timer: &Timer,
        now: UtcTime,
    ) -> String;

    /// How long the CreateSession of a successful refresh of `slot` took, retries included
    /// (called before [`Outlet::deliver`]).
    fn took(&mut self, _slot: usize, _elapsed: Duration) {}
}

/// Calls CreateSession, retrying throttling, 5xx and transport failures up to the client's
/// `max_attempts` with exponential backoff and full jitter; every attempt is signed afresh.
/// A stop during a wait gives up with the last error.
pub fn create_session(
    client: &Client,
    identity: &Identity,
    request: &SessionRequest,
    clock: &dyn Clock,
    stop: &Stop,
) -> Result<Credentials, CreateSessionError> {
    let max_attempts = client.options().max_attempts;
    let mut attempt = 1;
    loop {
        match client.create_session(identity, request, clock.now()) {
            // A stop that came during the attempt: no retry, and nothing said of one.
            Err(e) if stop.is_stopped() => return Err(e),
            Err(e) if crate::error::is_retryable(&e) && attempt < max_attempts => {
                let delay = backoff(attempt);
                crate::diag!(
                    "ra-signer: attempt {attempt} of {max_attempts} failed ({e}); retrying in {} ms",
                    delay.as_millis()
                );
                if clock.sleep(delay, stop) {
                    return Err(e);
                }
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(2 s, 200 ms × 2^(attempt-1))].
pub fn backoff(attempt: u32) -> Duration {
    let cap_ms = (200u64 << attempt.saturating_sub(1).min(4)).min(2000);
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    Duration::from_millis(u64::from_le_bytes(b) % (cap_ms + 1))
}

/// A clock that pings the watchdog before each wait: between the attempts of one
/// CreateSession, the loop is retrying, not stuck.
struct Pinging<'a> {
    clock: &'a dyn Clock,
    notifier: &'a Notifier,
}

impl Clock for Pinging<'_> {
    fn now(&self) -> UtcTime {
        self.clock.now()
    }

    fn sleep(&self, d: Duration, stop: &Stop) -> bool {
        self.notifier.ping();
        self.clock.sleep(d, stop)
    }
}

/// The refresh loop of `serve` and `update`: owns the identity and the client.
pub struct Refresher<O: Outlet> {
    /// The identity.
    pub live: LiveIdentity,
    /// The CreateSession client.
    pub client: Client,
    /// One request per slot.
    pub requests: Vec<SessionRequest>,
    /// When to refresh.
    pub timing: RefreshTiming,
    /// Where the credentials go.
    pub outlet: O,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The expiration of each slot's initial credentials.
    pub initial: Vec<UtcTime>,
    /// The service manager, told each refresh's outcome and pinged from this loop (the
    /// design is in [`crate::sdnotify`]).
    pub notifier: Option<Arc<Notifier>>,
}

impl<O: Outlet> Refresher<O> {
    /// Runs until `stop`; drops the identity on the way out.
    pub fn run(mut self, stop: &Stop) {
        let started = self.clock.now();
        let mut timers: Vec<Timer> = self
            .initial
            .iter()
            .map(|&expiration| Timer::new(expiration, started))
            .collect();
        let watchdog = self.notifier.as_ref().and_then(|n| n.watchdog_interval());
        loop {
            if let Some(n) = &self.notifier {
                n.ping();
            }
            let now = self.clock.now();
            let next = timers
                .iter()
                .map(|t| t.next_due(self.timing))
                .min()
                .unwrap_or(now);
            let asked = stop.take_refresh_request();
            if next > now && !asked {
                let due = Duration::from_secs(next.unix() - now.unix());
                // Woken early for the watchdog, the loop pings and finds nothing due yet.
                let wait = watchdog.map_or(due, |w| w.min(due));
                if self.clock.sleep(wait, stop) {
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
            for (slot, timer) in timers.iter_mut().enumerate() {
                if stop.is_stopped() {
                    break;
                }
                if asked || timer.next_due(self.timing) <= now {
                    self.refresh(slot, timer, stop);
                }
            }
        }
        self.live.close();
    }

    fn refresh(&mut self, slot: usize, timer: &mut Timer, stop: &Stop) {
        let request = &self.requests[slot];
        let pinging;
        let clock: &dyn Clock = match &self.notifier {
            Some(notifier) => {
                notifier.ping();
                pinging = Pinging {
                    clock: self.clock.as_ref(),
                    notifier,
                };
                &pinging
            }
            None => self.clock.as_ref(),
        };
        let started = std::time::Instant::now();
        let result = match self.live.identity() {
            Some(identity) => {
                create_session(&self.client, identity, request, clock, stop).map_err(|e| {
                    let e = crate::error::session_error(e, identity, request);
                    (log_text(&e, self.client.options().debug), e.class)
                })
            }
            None => Err((
                "no identity is open (see the re-open error above)".to_owned(),
                ErrorClass::Identity,
            )),
        };
        if result.is_ok() {
            self.outlet.took(slot, started.elapsed());
        }
        if result.is_err() && stop.is_stopped() {
            // Cut short by shutdown: no retry is coming, and the last good credentials
            // stay where they are until the process ends.
            return;
        }
        let now = self.clock.now();
        let mode = self.outlet.mode();
        let delivered = result.and_then(|creds| {
            self.outlet
                .deliver(slot, &creds, now)
                .map(|l| (l, creds))
                .map_err(|reason| (reason, ErrorClass::Other))
        });
        match delivered {
            Ok((line, creds)) => {
                timer.succeeded(creds.expiration, now);
                if let Some(n) = &self.notifier {
                    n.status(&line);
                }
                log(mode, &line);
            }
            Err((reason, class)) => {
                let delay = timer.failed(now, self.timing);
                let keep = self.outlet.failed(slot, &reason, class, timer, now);
                let line = format!(
                    "refresh {}{} failed: {reason}; {keep}; retrying in {delay} s",
                    timer.failures,
                    self.outlet.slot_name(slot)
                );
                if let Some(n) = &self.notifier {
                    n.status(&line);
                }
                log(mode, &line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: RefreshTiming = RefreshTiming {
        refresh_before: 300,
        retry_interval: 30,
    };

    #[test]
    fn a_slot_is_due_before_expiry_or_at_its_retry() {
        let now = UtcTime::from_unix(1_000_000);
        let t = Timer::new(UtcTime::from_unix(1_003_600), now);
        assert_eq!(t.next_due(TIMING).unix(), 1_003_300);
        // Short-lived credentials: never more often than every 5 s.
        let t = Timer::new(UtcTime::from_unix(1_000_100), now);
        assert_eq!(t.next_due(TIMING).unix(), 1_000_005);
        let mut t = Timer::new(UtcTime::from_unix(1_003_600), now);
        let delay = t.failed(now, TIMING);
        assert_eq!(t.next_due(TIMING).unix(), 1_000_000 + delay);
        assert_eq!(delay, 30, "the first retry waits the minimum interval");
        t.succeeded(UtcTime::from_unix(1_007_200), UtcTime::from_unix(1_000_400));
        assert_eq!((t.failures, t.next_due(TIMING).unix()), (0, 1_006_900));
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 0..10 {
            assert!(backoff(attempt) <= Duration::from_millis(2000));
        }
    }

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
            require_hardware_key: false,
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

    #[test]
    fn a_refresh_request_wakes_a_sleeper_without_stopping_it() {
        let stop = Arc::new(Stop::default());
        let s = Arc::clone(&stop);
        let started = std::time::Instant::now();
        let t = std::thread::spawn(move || s.wait(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        stop.refresh_now();
        assert!(!t.join().expect("join"), "woken, not stopped");
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(stop.take_refresh_request());
        assert!(!stop.take_refresh_request(), "one request is answered once");
        assert!(!stop.is_stopped());
    }
}
