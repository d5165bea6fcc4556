//! `serve` against the emulator and real SDKs: boto3 through IMDSv2 and through the ECS
//! container-credentials endpoint, every IMDS rule over real HTTP, refresh under injected
//! faults, certificate rotation, bursts, shutdown, and logs free of secrets.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running `ra-signer serve` (or `update`): stderr collected line by line, killed on drop.
pub(crate) struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// `127.0.0.1:port` once listening (serve only).
    pub addr: String,
}

impl Daemon {
    /// Starts `ra-signer <args>`; for `serve`, waits until it listens.
    pub(crate) fn start(home: &Path, args: &[String], env: &[(&str, &Path)]) -> Daemon {
        let mut cmd = ra_signer(home);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::spawn(cmd, args.first().map(String::as_str) == Some("serve"))
    }

    /// Starts `cmd`; for `serve`, waits until it listens.
    pub(crate) fn spawn(mut cmd: Command, serve: bool) -> Daemon {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start ra-signer");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let mut d = Daemon {
            child,
            lines,
            addr: String::new(),
        };
        if serve {
            let line = d.wait_for("listening on http://", Duration::from_secs(30));
            let rest = &line[line.find("http://").expect("url") + 7..];
            d.addr = rest[..rest.find('/').expect("slash")].to_owned();
        }
        d
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Waits for a stderr line containing `needle`; panics with the log on timeout or exit.
    pub(crate) fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_after(0, needle, timeout)
    }

    /// Sends SIGUSR1 (refresh now) and waits for a new stderr line containing `needle`.
    pub(crate) fn refresh_now(&mut self, needle: &str) -> String {
        let seen = self.lines.lock().expect("lines").len();
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        self.wait_for_after(seen, needle, Duration::from_secs(30))
    }

    /// Waits for a stderr line after the first `seen` containing `needle`.
    pub(crate) fn wait_for_after(
        &mut self,
        seen: usize,
        needle: &str,
        timeout: Duration,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .skip(seen)
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "ra-signer exited ({status}) before \"{needle}\":\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no \"{needle}\" within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many stderr lines contain `needle`.
    pub(crate) fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Sends SIGTERM and waits for the exit status (at most `timeout`).
    pub(crate) fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {timeout:?} of SIGTERM:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The base URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` flags for `leaf` against the world's emulator, on a free loopback port.
pub(crate) fn serve_args(w: &World, leaf: &Leaf, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["serve".into(), "--port".into(), "0".into()];
    args.extend(leaf.file_args());
    args.extend(w.emulator.session_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub(crate) fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

const TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "X-aws-ec2-metadata-token";
const CREDS: &str = "/latest/meta-data/iam/security-credentials/";

pub(crate) fn imds_token(c: &reqwest::blocking::Client, base: &str) -> String {
    let r = c
        .put(format!("{base}/latest/api/token"))
        .header(TTL, "60")
        .send()
        .expect("PUT token");
    assert_eq!(r.status(), 200);
    r.text().expect("token")
}

/// The credentials JSON of `role` through IMDSv2 (a new token each time).
pub(crate) fn imds_credentials(base: &str, role: &str) -> (u16, serde_json::Value) {
    let c = http();
    let token = imds_token(&c, base);
    let r = c
        .get(format!("{base}{CREDS}{role}"))
        .header(TOKEN, &token)
        .send()
        .expect("GET credentials");
    let status = r.status().as_u16();
    let text = r.text().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub(crate) fn role_name() -> &'static str {
    ROLE_ARN.rsplit('/').next().expect("name")
}

/// Runs boto3 with only `env` (plus PATH and HOME) and returns what it resolved.
fn boto3(home: &Path, env: &[(&str, String)]) -> serde_json::Value {
    let script = r#"
import json, boto3
s = boto3.Session(region_name="us-east-1")
c = s.get_credentials()
f = c.get_frozen_credentials()
print(json.dumps({"method": c.method, "AccessKeyId": f.access_key, "SecretAccessKey": f.secret_key, "Token": f.token}))
"#;
    let mut cmd = crate::real_clients::aws_client("python", home, &home.join("no-config"));
    cmd.arg("-c").arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("boto3 output")
}

#[test]
fn boto3_gets_credentials_through_imds() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-boto3", KeyKind::P256);
    let d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &[]), &[]);
    let env = [("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("{}/", d.url()))];
    let first = boto3(w.dir.path(), &env);
    assert_eq!(first["method"], "iam-role", "{first}");
    let (_, served) = imds_credentials(&d.url(), role_name());
    assert_eq!(first["AccessKeyId"], served["AccessKeyId"]);
    assert_eq!(first["SecretAccessKey"], served["SecretAccessKey"]);
    assert_eq!(first["Token"], served["Token"]);
    let second = boto3(w.dir.path(), &env);
    assert_eq!(second["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(
        w.emulator.stats()["issued"],
        1,
        "two SDK processes, one CreateSession"
    );
}

#[test]
fn boto3_gets_credentials_through_the_ecs_endpoint() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-ecs", KeyKind::Rsa2048);
    let token_file = w.dir.path().join("ecs-token");
    let d = Daemon::start(
        w.dir.path(),
        &serve_args(
            &w,
            &leaf,
            &[
                "--ecs",
                "--auth-token-file",
                token_file.to_str().expect("utf-8"),
            ],
        ),
        &[],
    );
    let token = std::fs::read_to_string(&token_file).expect("token file written");
    let token = token.trim().to_owned();
    assert!(token.len() >= 43);
    // The token as a value, and as a file.
    for (k, v) in [
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token.clone()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ] {
        let got = boto3(
            w.dir.path(),
            &[
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    format!("{}/", d.url()),
                ),
                (k, v),
            ],
        );
        assert_eq!(got["method"], "container-role", "{got}");
        assert!(
            got["AccessKeyId"]
                .as_str()
                .is_some_and(|a| a.starts_with("ASIA"))
        );
    }
    // Per-role path.
    let got = boto3(
        w.dir.path(),
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{}/role/{}", d.url(), role_name()),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token.clone()),
        ],
    );
    assert_eq!(got["method"], "container-role");
    assert_eq!(w.emulator.stats()["issued"], 1);

    // The ECS rules over HTTP.
    let c = http();
    let get = |path: &str, auth: Option<&str>| {
        let mut r = c.get(format!("{}{path}", d.url()));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send().expect("GET").status().as_u16()
    };
    assert_eq!(get("/", None), 401);
    assert_eq!(get("/", Some("wrong-token-wrong-token")), 403);
    assert_eq!(get("/", Some(&token)), 200);
    assert_eq!(get("/role/nobody", Some(&token)), 404);
    let r = c
        .get(format!("{}/", d.url()))
        .header("Authorization", &token)
        .send()
        .expect("GET");
    let v: serde_json::Value = serde_json::from_str(&r.text().expect("body")).expect("json");
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["AccessKeyId", "Expiration", "SecretAccessKey", "Token"]
    );
    let r = c
        .post(format!("{}/", d.url()))
        .header("Authorization", &token)
        .send()
        .expect("POST");
    assert_eq!(r.status(), 405);
    let r = c
        .get(format!("{}/", d.url()))
        .header("Authorization", &token)
        .header("X-Forwarded-For", "10.0.0.1")
        .send()
        .expect("GET");
    assert_eq!(r.status(), 403);
}

#[test]
fn every_imds_rule_over_http() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-rules", KeyKind::P256);
    let d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &[]), &[]);
    let base = d.url();
    let c = http();
    let put = |ttl: Option<&str>, xff: bool| {
        let mut r = c.put(format!("{base}/latest/api/token"));
        if let Some(t) = ttl {
            r = r.header(TTL, t);
        }
        if xff {
            r = r.header("X-Forwarded-For", "203.0.113.9");
        }
        r.send().expect("PUT")
    };
    // Token: TTL required, 1..21600, echoed before the body.
    assert_eq!(put(None, false).status(), 400, "missing TTL");
    for bad in ["0", "21601", "-5", "ten", ""] {
        assert_eq!(put(Some(bad), false).status(), 400, "TTL {bad:?}");
    }
    for good in ["1", "21600"] {
        let r = put(Some(good), false);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[TTL], good, "TTL echoed");
        assert_eq!(r.text().expect("token").len(), 43);
    }
    assert_eq!(put(Some("60"), true).status(), 403, "X-Forwarded-For");
    let r = c
        .get(format!("{base}/latest/api/token"))
        .header(TTL, "60")
        .send()
        .expect("GET");
    assert_eq!(r.status(), 405, "wrong method on the token path");
    assert_eq!(r.headers()["allow"], "PUT");

    let token = imds_token(&c, &base);
    let get = |path: &str, token: Option<&str>| {
        let mut r = c.get(format!("{base}{path}"));
        if let Some(t) = token {
            r = r.header(TOKEN, t);
        }
        r.send().expect("GET")
    };
    // Role list and credentials with a valid token.
    let r = get(CREDS, Some(&token));
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("list"), role_name());
    let r = get(&format!("{CREDS}{}", role_name()), Some(&token));
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&r.text().expect("body")).expect("json");
    assert_eq!(v["Code"], "Success");
    assert_eq!(v["Type"], "AWS-HMAC");
    for k in [
        "LastUpdated",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
    ] {
        assert!(v[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {v}");
    }
    // Missing or bad token: 401.
    assert_eq!(get(CREDS, None).status(), 401, "no token");
    assert_eq!(get(&format!("{CREDS}{}", role_name()), None).status(), 401);
    let mut forged = token.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert_eq!(get(CREDS, Some(&forged)).status(), 401, "bad token");
    assert_eq!(get(CREDS, Some("x")).status(), 401);
    // A token expires with its TTL.
    let short = put(Some("1"), false).text().expect("token");
    assert_eq!(get(CREDS, Some(&short)).status(), 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(CREDS, Some(&short)).status(), 401, "expired token");
    // Unknown role and paths: 404.
    assert_eq!(get(&format!("{CREDS}nobody"), Some(&token)).status(), 404);
    assert_eq!(
        get("/latest/meta-data/instance-id", Some(&token)).status(),
        404
    );
    // Wrong method: 405.
    let r = c
        .post(format!("{base}{CREDS}{}", role_name()))
        .header(TOKEN, &token)
        .send()
        .expect("POST");
    assert_eq!(r.status(), 405);
    let r = c
        .delete(format!("{base}{CREDS}"))
        .header(TOKEN, &token)
        .send()
        .expect("DELETE");
    assert_eq!(r.status(), 405);
    // X-Forwarded-For on a GET.
    let r = c
        .get(format!("{base}{CREDS}{}", role_name()))
        .header(TOKEN, &token)
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .expect("GET");
    assert_eq!(r.status(), 403);
    assert_eq!(w.emulator.stats()["issued"], 1);
}

#[test]
fn several_roles_are_served_by_name() {
    let second = "arn:aws:iam::123456789012:role/team/second-role";
    let w = World::new(&["--role-arn", second]);
    let leaf = w.leaf("serve-roles", KeyKind::P256);
    let d = Daemon::start(
        w.dir.path(),
        &serve_args(&w, &leaf, &["--role-arn", second]),
        &[],
    );
    let c = http();
    let token = imds_token(&c, &d.url());
    let list = c
        .get(format!("{}{CREDS}", d.url()))
        .header(TOKEN, &token)
        .send()
        .expect("GET")
        .text()
        .expect("list");
    assert_eq!(list, format!("{}\nsecond-role", role_name()));
    let (s1, a) = imds_credentials(&d.url(), role_name());
    let (s2, b) = imds_credentials(&d.url(), "second-role");
    assert_eq!((s1, s2), (200, 200));
    assert_ne!(a["AccessKeyId"], b["AccessKeyId"]);
    assert_eq!(
        w.emulator.stats()["issued"],
        2,
        "one CreateSession per role"
    );
}

#[test]
fn a_burst_of_first_requests_causes_one_create_session() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-burst", KeyKind::P256);
    let d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &[]), &[]);
    let base = d.url();
    let barrier = Arc::new(std::sync::Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let base = base.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                imds_credentials(&base, role_name())
            })
        })
        .collect();
    let mut keys = std::collections::HashSet::new();
    for t in threads {
        let (status, v) = t.join().expect("thread");
        assert_eq!(status, 200);
        keys.insert(v["AccessKeyId"].as_str().expect("key").to_owned());
    }
    assert_eq!(keys.len(), 1);
    assert_eq!(w.emulator.stats()["issued"], 1);
}

#[test]
fn start_up_fails_fast_with_the_classified_exit_code() {
    // Throttled for good: exit 5 (network/service), nothing served.
    let w = World::new(&["--fault", "throttle"]);
    let leaf = w.leaf("serve-fail", KeyKind::P256);
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(serve_args(&w, &leaf, &["--max-attempts", "1"]));
    let out = run(&mut cmd);
    assert_exit(&out, 5);
    assert!(!stderr(&out).contains("listening"), "{}", stderr(&out));
    // A role the profile does not allow: exit 4 (rejected).
    let w = World::new(&[]);
    let leaf = w.leaf("serve-denied", KeyKind::P256);
    let mut args = serve_args(&w, &leaf, &[]);
    let i = args.iter().position(|a| a == ROLE_ARN).expect("role");
    args[i] = "arn:aws:iam::123456789012:role/not-allowed".into();
    let out = run(ra_signer(w.dir.path()).args(&args));
    assert_exit(&out, 4);
    // Non-loopback without --hop-limit 1: exit 2 before any signature.
    let out = run(ra_signer(w.dir.path()).args(serve_args(&w, &leaf, &["--bind", "0.0.0.0"])));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--hop-limit 1"), "{}", stderr(&out));
    // --ecs without a token file: exit 2.
    let out = run(ra_signer(w.dir.path()).args(serve_args(&w, &leaf, &["--ecs"])));
    assert_exit(&out, 2);
    assert_eq!(
        w.emulator.stats()["requests"],
        1,
        "only the denied role was tried"
    );
}

/// The schedule, retries and backoff of a refresh are tested on a test clock in
/// `refresh.rs`; here, refreshes are asked for with SIGUSR1, and the test checks what
/// `serve` makes of them.
#[test]
fn a_failed_refresh_keeps_the_last_good_credentials_and_a_good_one_replaces_them() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-faults", KeyKind::P256);
    let extra = ["--request-timeout", "1", "--max-attempts", "3", "--debug"];
    let mut d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &extra), &[]);
    let (status, first) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    // A service failing for good: each refresh tries 3 times, then keeps what it has.
    w.emulator.set_faults(&["status=500"]);
    let before = w.emulator.stats()["requests"].as_u64().expect("n");
    let failed = d.refresh_now("refresh 1 of role");
    assert!(
        failed.contains("HTTP 500") && failed.contains("hint:"),
        "{failed}"
    );
    assert!(
        failed.contains("the current credentials stay in service until"),
        "{failed}"
    );
    for _ in 0..3 {
        let (status, v) = imds_credentials(&d.url(), role_name());
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["AccessKeyId"], first["AccessKeyId"]);
    }
    d.refresh_now("refresh 2 of role");
    let calls = w.emulator.stats()["requests"].as_u64().expect("n") - before;
    assert_eq!(calls, 6, "two refreshes of 3 attempts:\n{}", d.stderr());
    // The service is back: the next refresh replaces the credentials.
    w.emulator.set_faults(&[]);
    d.refresh_now("refreshed the credentials of role");
    let (status, refreshed) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    assert_ne!(refreshed["AccessKeyId"], first["AccessKeyId"]);

    // No secret or session token ever reaches the log, --debug included.
    let log = d.stderr();
    for v in [&first, &refreshed] {
        for k in ["SecretAccessKey", "Token"] {
            let secret = v[k].as_str().expect("secret");
            assert!(!log.contains(secret), "{k} in the log:\n{log}");
        }
        assert!(!log.contains(v["AccessKeyId"].as_str().expect("key")));
    }
    assert!(
        log.contains("canonical request"),
        "--debug shows the request"
    );
    assert!(log.contains("SIGUSR1: refreshing every role now"), "{log}");
}

/// The serials (decimal) of the certificates the emulator issued credentials to, in order.
fn issued_serials(emulator: &Emulator) -> Vec<String> {
    std::fs::read_to_string(&emulator.log)
        .expect("emulator log")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["decision"] == "issued")
        .filter_map(|v| v["serial"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_rotated_certificate_is_picked_up_at_the_next_refresh() {
    let w = World::new(&[]);
    let old = w.leaf("rotating", KeyKind::P256);
    let mut d = Daemon::start(w.dir.path(), &serve_args(&w, &old, &[]), &[]);
    // Issue a new key and certificate (another serial) and swap them in place.
    let new_dir = w.dir.path().join("next");
    std::fs::create_dir(&new_dir).expect("mkdir");
    let opts = LeafOptions {
        serial: vec![0x42, 0x42, 0x42],
        ..LeafOptions::default()
    };
    let new = w.ca.leaf(&new_dir, "rotating", KeyKind::Rsa2048, &opts);
    std::fs::copy(&new.key_path, &old.key_path).expect("key");
    std::fs::copy(&new.cert_path, &old.cert_path).expect("cert");
    d.refresh_now("refreshed the credentials");
    d.wait_for("re-opened the identity", Duration::from_secs(1));
    let issued_serials = issued_serials(&w.emulator);
    assert_eq!(
        issued_serials.first().map(String::as_str),
        Some("93710594595")
    );
    assert!(
        issued_serials.iter().any(|s| s == "4342338"),
        "the new certificate (serial 0x424242) signed a refresh: {issued_serials:?}"
    );
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-term", KeyKind::P256);
    let mut d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &[]), &[]);
    let (status, _) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", d.stderr());
    let log = d.stderr();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("the identity is closed"), "{log}");
    assert!(
        std::net::TcpStream::connect(&d.addr).is_err(),
        "no longer listening"
    );
}

/// A SoftHSM2 token made by `softhsm/make-token.sh` in `dir`: (softhsm2.conf, module, root CA).
#[cfg(feature = "pkcs11")]
pub(crate) fn softhsm_token(
    dir: &Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let fixture = dir.join("token");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("softhsm/make-token.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&fixture)
        .output()
        .expect("run softhsm/make-token.sh");
    assert_exit(&out, 0);
    let env = std::fs::read_to_string(fixture.join("env.sh")).expect("env.sh");
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(|v| std::path::PathBuf::from(v.trim_matches(['"', '\''])))
            .unwrap_or_else(|| panic!("{name} in env.sh:\n{env}"))
    };
    (
        var("SOFTHSM2_CONF"),
        var("RA_SIGNER_TEST_MODULE"),
        fixture.join("ca/root.pem"),
    )
}

/// The functions a pkcs11-spy log records, in order.
#[cfg(feature = "pkcs11")]
fn spy_functions(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .expect("spy log")
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, f)| n.bytes().all(|b| b.is_ascii_digit()) && f.starts_with("C_"))
        .map(|(_, f)| f.trim().to_owned())
        .collect()
}

#[cfg(feature = "pkcs11")]
#[test]
fn a_token_key_logs_in_once_for_every_refresh_and_out_at_shutdown() {
    let spy = Path::new("/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so");
    let dir = tempdir();
    let (conf, module, root) = softhsm_token(dir.path());
    let emulator = Emulator::start(dir.path(), &[&root], &[]);
    let log = dir.path().join("spy.log");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--port".into(),
        "0".into(),
        "--pkcs11-uri".into(),
        "pkcs11:token=ra-test;object=p256".into(),
        "--pkcs11-lib".into(),
    ];
    assert!(
        spy.exists(),
        "{} is missing: scripts/setup.sh installs it (apt-get install opensc)",
        spy.display()
    );
    args.push(spy.display().to_string());
    args.extend(emulator.session_args());
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "1234\n").expect("pin");
    args.extend(["--pkcs11-pin-file".into(), pin_file.display().to_string()]);
    let mut d = Daemon::start(
        dir.path(),
        &args,
        &[
            ("SOFTHSM2_CONF", conf.as_path()),
            ("PKCS11SPY", module.as_path()),
            ("PKCS11SPY_OUTPUT", log.as_path()),
        ],
    );
    let (status, first) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    // Two refreshes, each a signature in the token.
    for _ in 0..2 {
        d.refresh_now("refreshed the credentials");
    }
    let (_, now) = imds_credentials(&d.url(), role_name());
    assert_ne!(now["AccessKeyId"], first["AccessKeyId"]);
    assert!(emulator.stats()["issued"].as_u64().expect("n") >= 3);
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{}", d.stderr());
    let calls = spy_functions(&log);
    let n = |f: &str| calls.iter().filter(|c| *c == f).count();
    assert_eq!(
        n("C_Login"),
        1,
        "one login for the life of the daemon: {calls:?}"
    );
    assert!(n("C_SignInit") >= 3, "{calls:?}");
    assert_eq!(
        n("C_OpenSession"),
        n("C_CloseSession"),
        "every session is closed by shutdown: {calls:?}"
    );
}

#[cfg(feature = "tpm")]
#[test]
fn a_tpm_key_refreshes_follows_rotation_and_flushes_at_shutdown() {
    let dir = tempdir();
    let tpm = swtpm::Swtpm::provisioned();
    let files = tpm.files();
    let emulator = Emulator::start(dir.path(), &[&files.join("ca/root.pem")], &[]);
    // The daemon's certificate and key paths; rotated below by copying other files over them.
    let cert = dir.path().join("ra.pem");
    let key = dir.path().join("ra.key");
    std::fs::copy(files.join("ossl-p256.pem"), &cert).expect("cert");
    std::fs::copy(files.join("ossl-p256.key"), &key).expect("key");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--port".into(),
        "0".into(),
        "--certificate".into(),
        cert.display().to_string(),
        "--private-key".into(),
        key.display().to_string(),
        "--intermediates".into(),
        files.join("ca/int.pem").display().to_string(),
        "--tpm-tcti".into(),
        tpm.tcti(),
    ];
    args.extend(emulator.session_args());
    let mut d = Daemon::start(dir.path(), &args, &[]);
    let (status, _) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    d.refresh_now("refreshed the credentials");
    // Rotate to another TPM key and its certificate.
    std::fs::copy(files.join("ossl-p384.key"), &key).expect("key");
    std::fs::copy(files.join("ossl-p384.pem"), &cert).expect("cert");
    d.refresh_now("refreshed the credentials");
    d.wait_for("re-opened the identity", Duration::from_secs(1));
    let serial = |p: &Path| {
        ra_signer::cert::Cert::first_from_file(p)
            .expect("cert")
            .serial_decimal()
    };
    let issued = issued_serials(&emulator);
    for pem in ["ossl-p256.pem", "ossl-p384.pem"] {
        let s = serial(&files.join(pem));
        assert!(issued.contains(&s), "{pem} ({s}) signed: {issued:?}");
    }
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{}", d.stderr());
    // Nothing left loaded in the TPM.
    assert_eq!(tpm.transient_handles(), 0, "transient objects left");
}

impl Daemon {
    /// Sends `signal` (a `kill` name: TERM, HUP…) and waits for the exit status (at most
    /// `timeout`); returns it with the time from the signal to the exit.
    pub(crate) fn signal(
        &mut self,
        signal: &str,
        timeout: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().to_string();
        let sent = Instant::now();
        let ok = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let took = sent.elapsed();
                std::thread::sleep(Duration::from_millis(100));
                return (status, took);
            }
            assert!(
                sent.elapsed() < timeout,
                "no exit within {timeout:?} of SIG{signal}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stderr lines after the first one containing `needle`.
    pub(crate) fn lines_after(&self, needle: &str) -> Vec<String> {
        let lines = self.lines.lock().expect("lines");
        match lines.iter().position(|l| l.contains(needle)) {
            Some(i) => lines[i + 1..].to_vec(),
            None => panic!("no \"{needle}\" in:\n{}", lines.join("\n")),
        }
    }
}

#[test]
fn every_stopping_signal_ends_serve_gracefully() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-signals", KeyKind::P256);
    for signal in ["HUP", "QUIT", "INT", "TERM"] {
        let mut d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &[]), &[]);
        let (status, _) = imds_credentials(&d.url(), role_name());
        assert_eq!(status, 200);
        let (status, took) = d.signal(signal, Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}: {status}\n{}",
            d.stderr()
        );
        assert!(took < Duration::from_secs(3), "SIG{signal}: {took:?}");
        assert_eq!(
            d.count(&format!("SIG{signal}: shutting down")),
            1,
            "{}",
            d.stderr()
        );
        let late = d.lines_after(&format!("SIG{signal}: shutting down"));
        assert!(
            late.len() == 1 && late[0].ends_with("serve: stopped; the identity is closed"),
            "SIG{signal}: {late:?}"
        );
    }
}

#[test]
fn no_refresh_starts_after_shutdown_began() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-stop-retries", KeyKind::P256);
    let extra = ["--max-attempts", "10", "--request-timeout", "2"];
    let mut d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &extra), &[]);
    w.emulator.set_faults(&["status=503"]);
    // The refresher is between two attempts of a refresh, in a backoff wait.
    d.refresh_now("attempt 2 of 10 failed");
    let before = w.emulator.stats()["requests"].as_u64().expect("n");
    let (status, took) = d.signal("TERM", Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(3), "{took:?}\n{}", d.stderr());
    // Give an attempt that was already on its way the time to arrive.
    std::thread::sleep(Duration::from_millis(500));
    let after = w.emulator.stats()["requests"].as_u64().expect("n");
    assert!(
        after <= before + 1,
        "{} CreateSession calls after SIGTERM:\n{}",
        after - before,
        d.stderr()
    );
    let late = d.lines_after("SIGTERM: shutting down");
    assert!(
        late.iter()
            .all(|l| !l.contains("refresh") && !l.contains("retrying")),
        "refresh activity after the signal: {late:?}"
    );
    assert!(
        late.iter().any(|l| l.contains("the identity is closed")),
        "{late:?}"
    );
}

#[test]
fn an_idle_connection_flood_does_not_keep_a_client_out() {
    use std::net::TcpStream;
    let w = World::new(&[]);
    let leaf = w.leaf("serve-flood", KeyKind::P256);
    // A soft limit far below the flood: serve raises it to the hard one itself.
    let base = ra_signer(w.dir.path());
    let mut cmd = Command::new("prlimit");
    cmd.env_clear();
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let hard = String::from_utf8(
        Command::new("bash")
            .args(["-c", "ulimit -Hn"])
            .output()
            .expect("ulimit")
            .stdout,
    )
    .expect("utf-8");
    let hard: u64 = hard.trim().parse().unwrap_or(u64::MAX);
    assert!(
        hard >= 9000,
        "the test needs a hard NOFILE limit of 9000: {hard}"
    );
    cmd.arg(format!("--nofile=1024:{hard}"))
        .arg("--")
        .arg(bin("ra-signer"))
        .args(serve_args(&w, &leaf, &[]))
        .stdin(Stdio::null());
    let mut d = Daemon::spawn(cmd, true);
    let addr: std::net::SocketAddr = d.addr.parse().expect("addr");
    let get = || {
        let started = Instant::now();
        let (status, v) = imds_credentials(&format!("http://{addr}"), role_name());
        assert_eq!(status, 200, "{v}");
        started.elapsed()
    };
    // Starved, a client is refused or waits 30 s; the bound leaves room for the load of a
    // shared 2-core machine (0.1–1.2 s measured at a load average of 8).
    let timed = |what: &str| {
        let took = get();
        assert!(
            took < Duration::from_secs(5),
            "{what}: {took:?}\n{}",
            d.stderr()
        );
        took
    };
    let baseline = get();
    const FLOOD: usize = 4200;
    let mut flood: std::collections::VecDeque<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let first = timed("after 4200 idle connections");
    // Keep reconnecting: the oldest sockets of the flood are replaced by new ones, a few
    // thousand a second. (A loop without pauses on this 2-core machine, under the load of
    // the other tests, can outrun any accept loop: the kernel's listen queue overflows and
    // drops SYNs, which no server code can help.)
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let flooder = std::thread::spawn(move || {
        let mut made = 0usize;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            flood.pop_front();
            flood.push_back(TcpStream::connect(addr).expect("reconnect"));
            made += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        made
    });
    let mut took = vec![first];
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        took.push(timed(&format!("while reconnecting ({i})")));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = flooder.join().expect("flooder");
    assert!(made > 2000, "the flood reconnected only {made} times");
    eprintln!(
        "IMDSv2 credentials took {baseline:?} before the flood, {took:?} under it; {made} reconnections"
    );
    let (status, _) = d.signal("TERM", Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(!d.stderr().contains("accept failed"), "{}", d.stderr());
}

#[cfg(feature = "tpm")]
#[test]
fn a_stopped_tpm_does_not_hold_up_shutdown() {
    let dir = tempdir();
    let tpm = swtpm::Swtpm::provisioned();
    let files = tpm.files();
    let emulator = Emulator::start(dir.path(), &[&files.join("ca/root.pem")], &[]);
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--port".into(),
        "0".into(),
        "--certificate".into(),
        files.join("ossl-p256.pem").display().to_string(),
        "--private-key".into(),
        files.join("ossl-p256.key").display().to_string(),
        "--intermediates".into(),
        files.join("ca/int.pem").display().to_string(),
        "--tpm-tcti".into(),
        tpm.tcti(),
    ];
    args.extend(emulator.session_args());
    let timeout = Path::new("2");
    let mut d = Daemon::start(dir.path(), &args, &[("RA_SIGNER_TPM_TIMEOUT", timeout)]);
    let (status, good) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    // A refresh while the TPM is stopped gives up after the TPM timeout; the last good
    // credentials are served all along.
    tpm.pause();
    let answers = std::thread::scope(|scope| {
        let url = d.url();
        let poller = scope.spawn(move || {
            let mut answers = Vec::new();
            for _ in 0..8 {
                answers.push(imds_credentials(&url, role_name()));
                std::thread::sleep(Duration::from_millis(250));
            }
            answers
        });
        let failed = d.refresh_now("refresh 1 of role");
        assert!(failed.contains("did not answer within 2 s"), "{failed}");
        poller.join().expect("poller")
    });
    for (status, v) in answers {
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["AccessKeyId"], good["AccessKeyId"],
            "the last good credentials"
        );
    }
    // The TPM resumes: the same serve signs again.
    tpm.resume();
    d.refresh_now("refreshed the credentials");
    let (status, fresh) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    assert_ne!(fresh["AccessKeyId"], good["AccessKeyId"]);
    // Stopped again, in the middle of a refresh: SIGTERM still ends serve at once.
    tpm.pause();
    d.refresh_now("SIGUSR1: refreshing every role now");
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = d.signal("TERM", Duration::from_secs(10));
    tpm.resume();
    assert_eq!(status.code(), Some(0), "{status}\n{}", d.stderr());
    assert!(took < Duration::from_secs(3), "{took:?}\n{}", d.stderr());
    assert!(
        d.stderr().contains("stopped without closing the identity"),
        "{}",
        d.stderr()
    );
    eprintln!("SIGTERM to exit with the TPM stopped: {took:?}");
    // The TPM answers again: a new serve works.
    let mut d = Daemon::start(dir.path(), &args, &[]);
    let (status, _) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    let (status, took) = d.signal("TERM", Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        d.stderr().contains("the identity is closed"),
        "{}",
        d.stderr()
    );
}
