//! systemd's readiness protocol (`sd_notify(3)`) without libsystemd: one datagram per
//! state change to the socket `$NOTIFY_SOCKET` names, a path or `@name` (the abstract
//! namespace). `serve` and `update` say `READY=1` once they hold credentials, `STATUS=…`
//! after each refresh, `STOPPING=1` at a stopping signal, and `WATCHDOG=1` from the refresh
//! loop.
//!
//! The watchdog pings come from the refresh loop itself, each time it wakes, so a loop that
//! stops turning stops them and systemd restarts the service (`WatchdogSec=`). Every call
//! that loop makes is bounded (each CreateSession attempt by `--request-timeout`, each TPM
//! command by `RA_SIGNER_TPM_TIMEOUT`, the retries by `--max-attempts`), and it sleeps, and
//! so pings, between attempts: a loop silent for longer than the longest single call is
//! wedged, not waiting on a slow network. `WatchdogSec=` must exceed that call.
//!
//! `exec` leaves `NOTIFY_SOCKET` and `WATCHDOG_*` in its command's environment, where
//! sd_notify(3) says to unset them for children: its command is no child but this very
//! process (same PID) after execve, the service's main process, whom they are meant for.
//!
//! Nothing here fails a command: a socket that cannot be reached is the service manager's
//! problem, and a `serve` that cannot say it is ready still serves.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The service manager's socket, with the watchdog period when one is asked of us.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` describe, or none
    /// when no service manager listens (or its socket cannot be named).
    pub fn from_env() -> Option<Notifier> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Notifier::new(
            &var(crate::env::NOTIFY_SOCKET)?,
            var(crate::env::WATCHDOG_USEC).as_deref(),
            var(crate::env::WATCHDOG_PID).as_deref(),
            std::process::id(),
        )
    }

    fn new(
        socket: &str,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Option<Notifier> {
        let to = address(socket)?;
        let socket = UnixDatagram::unbound().ok()?;
        // A WATCHDOG_PID of another process (a parent that forked us) is not ours to answer.
        let ours = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            // Half the period, as sd_watchdog_enabled(3) advises: one late wake-up is not a
            // missed ping.
            .map(|u| Duration::from_micros(u / 2));
        Some(Notifier {
            socket,
            to,
            watchdog,
        })
    }

    /// How often the watchdog wants a ping, when it does.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (newline-separated `KEY=value` assignments); failures are ignored.
    pub fn send(&self, state: &str) {
        let _ = self.socket.send_to_addr(state.as_bytes(), &self.to);
    }

    /// `READY=1`, with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A status line (`systemctl status` shows the last one).
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `STOPPING=1`, with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`, when a watchdog is asked of us.
    pub fn ping(&self) {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1");
        }
    }
}

/// A newline would start another assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn address(socket: &str) -> Option<SocketAddr> {
    match socket.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).ok()
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => None,
        None if socket.starts_with('/') => SocketAddr::from_pathname(socket).ok(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (dir, socket, path.display().to_string())
    }

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn states_reach_a_path_socket_on_one_line_each() {
        let (_dir, socket, path) = listener();
        let n = Notifier::new(&path, None, None, 7).expect("notifier");
        n.ready("held\nSTOPPING=1");
        assert_eq!(received(&socket), "READY=1\nSTATUS=held STOPPING=1");
        n.stopping("bye");
        assert_eq!(received(&socket), "STOPPING=1\nSTATUS=bye");
    }

    #[test]
    fn abstract_sockets_are_reached() {
        let name = format!("ra-signer-test-{}", std::process::id());
        let addr = address(&format!("@{name}")).expect("abstract");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind");
        Notifier::new(&format!("@{name}"), None, None, 7)
            .expect("notifier")
            .status("ok");
        assert_eq!(received(&socket), "STATUS=ok");
    }

    #[test]
    fn the_watchdog_pings_at_half_its_period_and_only_for_its_pid() {
        let (_dir, _socket, path) = listener();
        let n = Notifier::new(&path, Some("500000"), None, 7).expect("notifier");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(250)));
        let n = Notifier::new(&path, Some("500000"), Some("7"), 7).expect("notifier");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(250)));
        let n = Notifier::new(&path, Some("500000"), Some("8"), 7).expect("notifier");
        assert_eq!(n.watchdog_interval(), None);
        let n = Notifier::new(&path, Some("0"), None, 7).expect("notifier");
        assert_eq!(n.watchdog_interval(), None);
        assert!(Notifier::new("relative/path", None, None, 7).is_none());
    }
}
