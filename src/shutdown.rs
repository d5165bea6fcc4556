//! Ending the long-running modes (`serve`, `update`) on a signal without waiting on
//! hardware.
//!
//! SIGTERM, SIGINT, SIGHUP and SIGQUIT all mean "stop": a terminal closing (HUP) or a
//! `kill -QUIT` must close the identity like a `systemctl stop`, since a TPM without a
//! resource manager keeps every transient object a killed process leaves behind. The
//! thread that owns the identity is told to stop and given [`GRACE`] to finish and drop
//! it (token logout, TPM flush); a TPM or token that does not answer in that time is left
//! behind and the process ends anyway.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::refresh::Stop;

/// How long shutdown waits for the owner of the identity to close it.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// The signals that stop a long-running mode, and SIGUSR1, which asks it to refresh now.
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    quit: Signal,
    usr1: Signal,
}

/// What a signal asks of a long-running mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    /// Stop (the signal's name).
    Stop(&'static str),
    /// Refresh every credential now and look for a rotated certificate (SIGUSR1).
    RefreshNow,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime); from here on these signals no
    /// longer end the process by themselves.
    pub(crate) fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    /// Waits for the next signal.
    pub(crate) async fn recv(&mut self) -> Asked {
        tokio::select! {
            _ = self.term.recv() => Asked::Stop("SIGTERM"),
            _ = self.int.recv() => Asked::Stop("SIGINT"),
            _ = self.hup.recv() => Asked::Stop("SIGHUP"),
            _ = self.quit.recv() => Asked::Stop("SIGQUIT"),
            _ = self.usr1.recv() => Asked::RefreshNow,
        }
    }
}

/// A thread that owns the identity, with the flag that stops it.
pub(crate) struct Worker {
    stop: Arc<Stop>,
    done: Receiver<()>,
    thread: JoinHandle<()>,
}

impl Worker {
    /// Starts `body` on a thread named `name`; `body` returns once its [`Stop`] is set.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(&Stop) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let stop = Arc::new(Stop::default());
        let (tx, done) = channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                body(&flag);
                let _ = tx.send(());
            })?;
        Ok(Worker { stop, done, thread })
    }

    /// Tells the thread to stop, without waiting.
    pub(crate) fn stop(&self) {
        self.stop.stop();
    }

    /// Wakes the thread to refresh now.
    pub(crate) fn refresh_now(&self) {
        self.stop.refresh_now();
    }

    /// Stops the thread and waits until `deadline` at most; true if it finished (and so
    /// dropped what it owned).
    pub(crate) fn stop_by(self, deadline: Instant) -> bool {
        self.stop.stop();
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = self.thread.join();
                true
            }
            // Still inside a hardware call: the process ends without it.
            Err(RecvTimeoutError::Timeout) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_worker_does_not_hold_up_the_stop() {
        let (release, stuck) = channel::<()>();
        let worker = Worker::spawn("stuck", move |_| {
            // Like a TPM call that does not return.
            let _ = stuck.recv_timeout(Duration::from_secs(30));
        })
        .expect("spawn");
        let started = Instant::now();
        assert!(!worker.stop_by(Instant::now() + Duration::from_millis(200)));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(release);
    }

    #[test]
    fn a_sleeping_worker_stops_at_once() {
        let worker = Worker::spawn(
            "sleeper",
            |stop| {
                while !stop.wait(Duration::from_secs(60)) {}
            },
        )
        .expect("spawn");
        let started = Instant::now();
        assert!(worker.stop_by(Instant::now() + GRACE));
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
