//! The refresh loop of `serve` and `update` (`ra_signer::refresh`), driven by a test clock:
//! a real file identity signs real CreateSession calls to the real emulator, whose clock is
//! moved in step, so hours of refreshes, retries and backoff run in a second of wall time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ra_signer::config::{
    Arn, ArnKind, CertificateSource, ClientOptions, IdentityConfig, PrivateKeySource,
    RefreshTiming, SessionDuration, SessionRequest,
};
use ra_signer::credentials::Credentials;
use ra_signer::error::ErrorClass;
use ra_signer::refresh::{Clock, LiveIdentity, Outlet, Refresher, Stop, Timer, create_session};
use ra_signer::rolesanywhere::Client;
use ra_signer::time::UtcTime;

use crate::common::*;

/// A clock that jumps over every wait and moves the emulator's clock with it, until a
/// horizon after which every wait reports a stop (the end of the test's time).
struct TestClock {
    started: u64,
    offset_ms: AtomicU64,
    horizon: u64,
    emulator: String,
    http: reqwest::blocking::Client,
}

impl TestClock {
    fn new(emulator: &Emulator, horizon: Duration) -> Arc<TestClock> {
        let http = http_client(&emulator.tls_ca);
        Arc::new(TestClock {
            started: UtcTime::now().unix(),
            offset_ms: AtomicU64::new(0),
            horizon: horizon.as_secs(),
            emulator: emulator.url.clone(),
            http,
        })
    }

    /// Seconds of test time since the start.
    fn elapsed(&self) -> u64 {
        self.offset_ms.load(Ordering::SeqCst) / 1000
    }
}

impl Clock for TestClock {
    fn now(&self) -> UtcTime {
        UtcTime::from_unix(self.started + self.elapsed())
    }

    fn sleep(&self, d: Duration, stop: &Stop) -> bool {
        if stop.is_stopped() {
            return true;
        }
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let offset = self
            .offset_ms
            .fetch_add(ms, Ordering::SeqCst)
            .saturating_add(ms);
        if offset / 1000 > self.horizon {
            return true;
        }
        // The service's time becomes ours, to the second.
        let ours = i64::try_from(self.now().unix()).expect("time");
        let theirs = i64::try_from(UtcTime::now().unix()).expect("time");
        let resp = self
            .http
            .post(format!("{}/_emulator/clock", self.emulator))
            .body(serde_json::json!({ "offset": ours - theirs }).to_string())
            .send()
            .expect("moving the emulator's clock");
        assert!(resp.status().is_success(), "{}", resp.status());
        false
    }
}

/// What reached the outlet, at what test time.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Delivered {
        at: u64,
        slot: usize,
        key: String,
        expires: u64,
    },
    Failed {
        at: u64,
        slot: usize,
        reason: String,
        still_valid: bool,
    },
}

#[derive(Clone)]
struct Recorder {
    clock: Arc<TestClock>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn deliveries(&self) -> Vec<(u64, usize, String, u64)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Delivered {
                    at,
                    slot,
                    key,
                    expires,
                } => Some((at, slot, key, expires)),
                Event::Failed { .. } => None,
            })
            .collect()
    }

    fn failures(&self) -> Vec<(u64, String, bool)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Failed {
                    at,
                    reason,
                    still_valid,
                    ..
                } => Some((at, reason, still_valid)),
                Event::Delivered { .. } => None,
            })
            .collect()
    }
}

impl Outlet for Recorder {
    fn mode(&self) -> &'static str {
        "test"
    }

    fn slot_name(&self, slot: usize) -> String {
        format!(" of slot {slot}")
    }

    fn deliver(&mut self, slot: usize, creds: &Credentials, _: UtcTime) -> Result<String, String> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Event::Delivered {
                at: self.clock.elapsed(),
                slot,
                key: creds.access_key_id.clone(),
                expires: creds.expiration.unix(),
            });
        Ok(format!("delivered slot {slot}"))
    }

    fn failed(
        &mut self,
        slot: usize,
        reason: &str,
        _: ErrorClass,
        timer: &Timer,
        now: UtcTime,
    ) -> String {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Event::Failed {
                at: self.clock.elapsed(),
                slot,
                reason: reason.to_owned(),
                still_valid: timer.expiration > now,
            });
        "kept".to_owned()
    }
}

struct Setup {
    world: World,
    leaf: Leaf,
}

impl Setup {
    fn new() -> Setup {
        let world = World::new(&[]);
        let leaf = world.leaf("refresh", KeyKind::P256);
        Setup { world, leaf }
    }

    fn identity(&self) -> IdentityConfig {
        IdentityConfig {
            certificate: Some(CertificateSource::File(self.leaf.cert_path.clone())),
            private_key: PrivateKeySource::File(self.leaf.key_path.clone()),
            intermediates: None,
            key_password_sources: vec![],
            pkcs11: Default::default(),
            tpm: Default::default(),
            require_hardware_key: false,
        }
    }

    fn request(&self, duration: u32) -> SessionRequest {
        SessionRequest::new(
            Arn::parse(TRUST_ANCHOR_ARN, ArnKind::TrustAnchor).expect("arn"),
            Arn::parse(PROFILE_ARN, ArnKind::Profile).expect("arn"),
            Arn::parse(ROLE_ARN, ArnKind::Role).expect("arn"),
            SessionDuration::new(duration).expect("duration"),
            None,
        )
        .expect("request")
    }

    fn client(&self, max_attempts: u32) -> Client {
        Client::new(ClientOptions {
            endpoint: self.world.emulator.url.clone(),
            region: "us-east-1".parse().expect("region"),
            ca_bundle: Some(self.world.emulator.tls_ca.clone()),
            system_trust: None,
            danger_accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(1),
            max_attempts,
            debug: false,
        })
        .expect("client")
    }

    /// Runs a refresher over `slots` copies of the request for `horizon` of test time;
    /// `after_start` runs once the initial credentials are got.
    fn run(
        &self,
        slots: usize,
        duration: u32,
        max_attempts: u32,
        horizon: Duration,
        after_start: &dyn Fn(),
    ) -> (Recorder, Arc<TestClock>) {
        let clock = TestClock::new(&self.world.emulator, horizon);
        let recorder = Recorder {
            clock: Arc::clone(&clock),
            events: Arc::default(),
        };
        let live =
            LiveIdentity::open(self.identity(), "test").unwrap_or_else(|e| panic!("identity: {e}"));
        let client = self.client(max_attempts);
        let requests = vec![self.request(duration); slots];
        let identity = live.identity().expect("open");
        let initial = requests
            .iter()
            .map(|r| {
                create_session(&client, identity, r, clock.as_ref(), &Stop::default())
                    .expect("initial credentials")
                    .expiration
            })
            .collect();
        after_start();
        let refresher = Refresher {
            live,
            client,
            requests,
            timing: TIMING,
            outlet: recorder.clone(),
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            initial,
            notifier: None,
        };
        let wall = Instant::now();
        refresher.run(&Stop::default());
        assert!(
            wall.elapsed() < Duration::from_secs(60),
            "the test clock should make hours pass in seconds: {:?}",
            wall.elapsed()
        );
        (recorder, clock)
    }

    fn requests(&self) -> u64 {
        self.world.emulator.stats()["requests"]
            .as_u64()
            .expect("requests")
    }
}

const TIMING: RefreshTiming = RefreshTiming {
    refresh_before: 300,
    retry_interval: 30,
};

#[test]
fn every_slot_is_renewed_refresh_before_its_expiry_and_not_sooner() {
    let s = Setup::new();
    let (recorder, clock) = s.run(2, 900, 3, Duration::from_secs(3 * 3600 + 30), &|| {});
    let deliveries = recorder.deliveries();
    // 900 s credentials renewed 300 s before expiry: every 600 s, for each of two slots.
    for slot in [0, 1] {
        let times: Vec<u64> = deliveries
            .iter()
            .filter(|d| d.1 == slot)
            .map(|d| d.0)
            .collect();
        assert_eq!(times.len(), 18, "slot {slot}: {times:?}");
        for (n, t) in times.iter().enumerate() {
            let due = 600 * (n as u64 + 1);
            assert!(
                (due..=due + 1).contains(t),
                "slot {slot} refresh {n} at {t}"
            );
        }
    }
    // Each delivery is new credentials, valid for the whole duration from then.
    let start = clock.started;
    for (at, _, _, expires) in &deliveries {
        let lifetime = expires - (start + at);
        assert!((899..=901).contains(&lifetime), "{lifetime}");
    }
    let mut keys: Vec<&String> = deliveries.iter().map(|d| &d.2).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        deliveries.len(),
        "every refresh is a new session"
    );
    assert!(recorder.failures().is_empty(), "{:?}", recorder.failures());
    assert_eq!(
        s.requests(),
        2 + 36,
        "one CreateSession per slot and refresh"
    );
}

#[test]
fn a_failing_service_backs_off_keeps_the_credentials_and_recovers() {
    let s = Setup::new();
    // From the first refresh on, 12 calls fail: 3 attempts a cycle, so cycles 1-4 fail and
    // cycle 5 gets through.
    let (recorder, _) = s.run(1, 3600, 3, Duration::from_secs(6 * 3600), &|| {
        s.world.emulator.set_faults(&["status=500:12"]);
    });
    let failures = recorder.failures();
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(
        failures.iter().all(|f| f.1.contains("500") && f.2),
        "the credentials stay valid meanwhile: {failures:?}"
    );
    // The first cycle is due 300 s before expiry; then the waits double from 30 s.
    assert!((3300..=3302).contains(&failures[0].0), "{failures:?}");
    let gaps: Vec<u64> = failures.windows(2).map(|w| w[1].0 - w[0].0).collect();
    for (n, gap) in gaps.iter().enumerate() {
        let min = 30u64 << n;
        assert!(
            (min.min(300) / 2..=min.min(300) + 5).contains(gap) && *gap >= 30,
            "wait {n}: {gap} s ({gaps:?})"
        );
    }
    let deliveries = recorder.deliveries();
    assert!(
        !deliveries.is_empty(),
        "it recovers: {:?}",
        recorder.events()
    );
    assert!(deliveries[0].0 > failures[3].0);
    // After the recovery, the plain schedule again: 300 s before each expiry.
    for w in deliveries.windows(2) {
        assert!((3300..=3302).contains(&(w[1].0 - w[0].0)), "{deliveries:?}");
    }
    assert_eq!(deliveries.len(), 6, "{deliveries:?}");
    // Calls stay bounded: the initial one, 4 failed cycles of 3, then one per refresh.
    assert_eq!(s.requests(), 1 + 12 + deliveries.len() as u64);
}

#[test]
fn faults_of_every_kind_are_retried_or_not_as_they_deserve() {
    let s = Setup::new();
    // Before the first refresh: a timeout (the delay holds the first 503), 5xx and
    // throttling (retried within a cycle), garbage and an empty credential set (not
    // retried), a dropped connection (retried).
    let clock_horizon = Duration::from_secs(3600);
    let setup_faults = || {
        s.world.emulator.set_faults(&[
            "delay=1500:1",
            "status=503:2",
            "throttle:1",
            "garbage:1",
            "close:1",
            "empty-set:1",
        ]);
    };
    // The faults apply to the calls after the initial one.
    let (recorder, _) = s.run(1, 900, 3, clock_horizon, &setup_faults);
    let failures = recorder.failures();
    let reasons: Vec<&str> = failures.iter().map(|f| f.1.as_str()).collect();
    // Cycle 1: timeout, 503, throttle (three attempts). Cycle 2: garbage (not retried).
    // Cycle 3: close (retried), empty set (not retried). Cycle 4: success.
    assert_eq!(failures.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("Throttl"), "{reasons:?}");
    assert!(!reasons[1].is_empty() && !reasons[2].is_empty());
    assert!(
        reasons[2].contains("no credentials") || reasons[2].contains("credentialSet"),
        "{reasons:?}"
    );
    let deliveries = recorder.deliveries();
    assert!(
        deliveries.first().is_some_and(|d| d.0 > failures[2].0),
        "{:?}",
        recorder.events()
    );
    let log = std::fs::read_to_string(&s.world.emulator.log).unwrap_or_default();
    for fault in ["status=503", "throttle", "garbage", "close", "empty-set"] {
        assert!(
            log.contains(&format!("\"fault\":\"{fault}")),
            "{fault} was not hit: {log}"
        );
    }
}

#[test]
fn credentials_that_expire_while_the_service_fails_are_reported_as_gone() {
    let s = Setup::new();
    let (recorder, _) = s.run(1, 900, 1, Duration::from_secs(3 * 3600), &|| {
        s.world.emulator.set_faults(&["status=500"]);
    });
    let failures = recorder.failures();
    assert!(recorder.deliveries().is_empty());
    // Due at 600 s; valid until 900 s; then reported as expired, retried every ≤300 s.
    assert!(failures.iter().any(|f| f.0 < 900 && f.2), "{failures:?}");
    assert!(failures.iter().any(|f| f.0 > 900 && !f.2), "{failures:?}");
    assert!(
        failures.iter().all(|f| (f.0 < 900) == f.2),
        "valid exactly until expiry: {failures:?}"
    );
    let gaps: Vec<u64> = failures.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.iter().all(|g| (30..=300).contains(g)), "{gaps:?}");
    // 3 hours of failures cost at most one call per 15 s on average, and far fewer later.
    assert!(failures.len() < 3 * 3600 / 150 + 10, "{}", failures.len());
}

#[test]
fn a_rotated_certificate_signs_from_the_next_refresh() {
    let s = Setup::new();
    // Once the first credentials are got, a new key and certificate (another serial and
    // key type) are swapped in place.
    let rotate = || {
        let next = s.world.dir.path().join("next");
        std::fs::create_dir(&next).expect("mkdir");
        let opts = LeafOptions {
            serial: vec![0x42, 0x42, 0x42],
            ..LeafOptions::default()
        };
        let new = s.world.ca.leaf(&next, "rotated", KeyKind::Rsa2048, &opts);
        std::fs::copy(&new.key_path, &s.leaf.key_path).expect("key");
        std::fs::copy(&new.cert_path, &s.leaf.cert_path).expect("cert");
    };
    let (recorder, _) = s.run(1, 900, 3, Duration::from_secs(1300), &rotate);
    assert_eq!(recorder.deliveries().len(), 2, "{:?}", recorder.events());
    let log = std::fs::read_to_string(&s.world.emulator.log).expect("log");
    let serials: Vec<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["decision"] == "issued")
        .filter_map(|v| v["serial"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(serials.len(), 3, "{serials:?}");
    assert_ne!(serials[0], "4342338", "the old certificate signed first");
    assert!(
        serials[1..].iter().all(|s| s == "4342338"),
        "the new certificate (serial 0x424242) signs every refresh: {serials:?}"
    );
}

#[test]
fn a_stop_ends_the_loop_at_once_whatever_is_due() {
    let s = Setup::new();
    let clock = TestClock::new(&s.world.emulator, Duration::from_secs(24 * 3600));
    let recorder = Recorder {
        clock: Arc::clone(&clock),
        events: Arc::default(),
    };
    let live = LiveIdentity::open(s.identity(), "test").unwrap_or_else(|e| panic!("{e}"));
    let client = s.client(3);
    let request = s.request(900);
    let stop = Stop::default();
    stop.stop();
    Refresher {
        live,
        client,
        requests: vec![request],
        timing: TIMING,
        outlet: recorder.clone(),
        clock: Arc::clone(&clock) as Arc<dyn Clock>,
        // Already expired: due at once, but the stop comes first.
        initial: vec![UtcTime::from_unix(0)],
        notifier: None,
    }
    .run(&stop);
    assert!(recorder.events().is_empty(), "{:?}", recorder.events());
    assert_eq!(s.requests(), 0);
}
