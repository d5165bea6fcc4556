//! systemd's notify protocol, heard on a real datagram socket that `NOTIFY_SOCKET` names,
//! from a real `serve` and `update` against the emulator: `READY=1` only once credentials
//! are held, `WATCHDOG=1` from the refresh loop at half of `WATCHDOG_USEC`, `STOPPING=1`
//! at SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::serve::{Daemon, imds_credentials, role_name, serve_args};

/// The service manager's end: a datagram socket in the test's temp dir.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Manager {
    fn bind(dir: &Path) -> Manager {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager { socket, path }
    }

    /// The next datagram within `timeout`, with the time it arrived.
    fn next(&self, timeout: Duration) -> Option<(String, Instant)> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some((
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            Instant::now(),
        ))
    }

    /// Waits for a datagram that starts with `state`, skipping others (watchdog pings).
    fn wait_for(&self, state: &str, timeout: Duration) -> (String, Instant) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {state} within {timeout:?}");
            if let Some((text, at)) = self.next(left)
                && text.starts_with(state)
            {
                return (text, at);
            }
        }
    }

    /// The arrival times of the `WATCHDOG=1` pings heard for `span`.
    fn pings(&self, span: Duration) -> Vec<Instant> {
        let end = Instant::now() + span;
        let mut at = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.next(left.max(Duration::from_millis(1))) {
                Some((text, t)) if text == "WATCHDOG=1" => at.push(t),
                Some(_) => {}
                None => break,
            }
        }
        at
    }
}

fn start(home: &Path, args: &[String], env: &[(&str, &str)]) -> Daemon {
    let mut cmd = ra_signer(home);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Daemon::spawn(cmd, false)
}

fn listening_addr(d: &mut Daemon) -> String {
    let line = d.wait_for("listening on http://", Duration::from_secs(5));
    let rest = &line[line.find("http://").expect("url") + 7..];
    format!("http://{}", &rest[..rest.find('/').expect("slash")])
}

fn largest_gap(pings: &[Instant]) -> Duration {
    pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[test]
fn serve_is_ready_once_it_holds_credentials_pings_and_says_it_stops() {
    // The first CreateSession takes 1.5 s: READY=1 must wait for it.
    let w = World::new(&["--fault", "delay=1500:1"]);
    let leaf = w.leaf("notify-serve", KeyKind::P256);
    let manager = Manager::bind(w.dir.path());
    let started = Instant::now();
    let mut d = start(
        w.dir.path(),
        &serve_args(&w, &leaf, &[]),
        &[
            ("NOTIFY_SOCKET", manager.path.to_str().expect("path")),
            ("WATCHDOG_USEC", "500000"),
        ],
    );
    let (ready, at) = manager.wait_for("READY=1", Duration::from_secs(30));
    assert!(
        at - started >= Duration::from_millis(1500),
        "READY=1 before the first CreateSession answered"
    );
    assert!(ready.contains("\nSTATUS=listening on http://"), "{ready}");
    // At READY=1 the credentials are there to be served.
    let base = listening_addr(&mut d);
    let (status, creds) = imds_credentials(&base, role_name());
    assert_eq!(status, 200, "{creds}");
    assert_issued_key(&creds);

    // Half of 500 ms: about four pings a second, none missed.
    let pings = manager.pings(Duration::from_millis(1500));
    assert!(pings.len() >= 4, "{} pings in 1.5 s", pings.len());
    assert!(
        largest_gap(&pings) < Duration::from_millis(450),
        "{pings:?}"
    );

    // A refresh that hangs in CreateSession holds the loop, and so the pings: the watchdog
    // sees what the refresh loop does (see src/sdnotify.rs).
    w.emulator.set_faults(&["delay=2000:1"]);
    let pid = d.pid().to_string();
    let ok = Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .expect("kill");
    assert!(ok.success());
    let (status, _) = manager.wait_for("STATUS=refreshed", Duration::from_secs(10));
    assert!(status.contains(role_name()), "{status}");
    let pings = manager.pings(Duration::from_millis(600));
    assert!(pings.len() >= 2, "the pings resume after the refresh");

    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", d.stderr());
    let (stopping, _) = manager.wait_for("STOPPING=1", Duration::from_secs(1));
    assert!(stopping.contains("SIGTERM"), "{stopping}");
}

#[test]
fn a_slow_refresh_stops_the_pings_until_it_ends() {
    let w = World::new(&[]);
    let leaf = w.leaf("notify-stall", KeyKind::P256);
    let manager = Manager::bind(w.dir.path());
    let d = start(
        w.dir.path(),
        &serve_args(&w, &leaf, &[]),
        &[
            ("NOTIFY_SOCKET", manager.path.to_str().expect("path")),
            ("WATCHDOG_USEC", "500000"),
        ],
    );
    manager.wait_for("READY=1", Duration::from_secs(30));
    w.emulator.set_faults(&["delay=2000:1"]);
    let ok = Command::new("kill")
        .args(["-USR1", &d.pid().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let pings = manager.pings(Duration::from_millis(3500));
    let gap = largest_gap(&pings);
    assert!(
        gap >= Duration::from_millis(1500) && gap < Duration::from_millis(3000),
        "the longest silence ({gap:?}) is the 2 s CreateSession: {pings:?}"
    );
}

#[test]
fn serve_that_cannot_get_credentials_is_never_ready() {
    let w = World::new(&["--fault", "status=403"]);
    let leaf = w.leaf("notify-refused", KeyKind::P256);
    let manager = Manager::bind(w.dir.path());
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(serve_args(&w, &leaf, &[]))
        .env("NOTIFY_SOCKET", &manager.path)
        .env("WATCHDOG_USEC", "500000");
    let out = run(&mut cmd);
    assert_exit(&out, 4);
    if let Some((text, _)) = manager.next(Duration::from_millis(200)) {
        panic!("a serve that exits said {text:?}");
    }
}

#[test]
fn update_is_ready_once_the_profile_is_written_and_honours_watchdog_pid() {
    let w = World::new(&[]);
    let leaf = w.leaf("notify-update", KeyKind::P256);
    let manager = Manager::bind(w.dir.path());
    let file = w.dir.path().join("aws/credentials");
    let mut args: Vec<String> = vec!["update".into(), "--profile".into(), "svc".into()];
    args.extend(leaf.file_args());
    args.extend(w.emulator.session_args());
    let socket = manager.path.to_str().expect("path");
    let file_text = file.to_str().expect("path");
    let mut d = start(
        w.dir.path(),
        &args,
        &[
            ("NOTIFY_SOCKET", socket),
            ("WATCHDOG_USEC", "500000"),
            ("AWS_SHARED_CREDENTIALS_FILE", file_text),
        ],
    );
    let (ready, _) = manager.wait_for("READY=1", Duration::from_secs(30));
    assert!(ready.contains("profile [svc]"), "{ready}");
    let text = std::fs::read_to_string(&file).expect("the profile is written at READY=1");
    assert!(text.contains("[svc]\naws_access_key_id = "), "{text}");
    let pings = manager.pings(Duration::from_millis(1200));
    assert!(pings.len() >= 3, "{} pings in 1.2 s", pings.len());
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", d.stderr());
    manager.wait_for("STOPPING=1", Duration::from_secs(1));
    drop(d);

    // The watchdog is meant for another process: READY=1, but no pings.
    let mut d = start(
        w.dir.path(),
        &args,
        &[
            ("NOTIFY_SOCKET", socket),
            ("WATCHDOG_USEC", "500000"),
            ("WATCHDOG_PID", "1"),
            ("AWS_SHARED_CREDENTIALS_FILE", file_text),
        ],
    );
    manager.wait_for("READY=1", Duration::from_secs(30));
    assert!(manager.pings(Duration::from_millis(800)).is_empty());
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", d.stderr());
}

#[test]
fn update_once_says_nothing() {
    let w = World::new(&[]);
    let leaf = w.leaf("notify-once", KeyKind::P256);
    let manager = Manager::bind(w.dir.path());
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(["update", "--once"])
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .env("NOTIFY_SOCKET", &manager.path)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            w.dir.path().join("credentials"),
        );
    assert_exit(&run(&mut cmd), 0);
    assert!(manager.next(Duration::from_millis(200)).is_none());
}

#[test]
fn an_abstract_socket_is_reached() {
    let w = World::new(&[]);
    let leaf = w.leaf("notify-abstract", KeyKind::P256);
    let name = format!("ra-signer-it-{}", std::process::id());
    let addr = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name")
    };
    let socket = UnixDatagram::bind_addr(&addr).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut d = start(
        w.dir.path(),
        &serve_args(&w, &leaf, &[]),
        &[("NOTIFY_SOCKET", &format!("@{name}"))],
    );
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("READY=1");
    assert!(buf[..n].starts_with(b"READY=1\n"));
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success());
}
