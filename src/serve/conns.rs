//! Who holds the server's connections, so that idle ones cannot keep anyone else out.
//!
//! Every accepted connection is admitted, never refused: at the cap the oldest idle
//! connection of the peer holding the most is closed to make room, so the IMDSv2 token
//! PUT of a new client always gets through however many idle sockets another process
//! keeps open. A remote peer (an IP address) may hold at most half of the cap: past that,
//! its new connections replace its own oldest ones. On loopback every local process has
//! the same address, so there no per-peer share applies and the rule is oldest idle
//! first: a flood's own sockets are older than the client that arrives during it, and
//! are closed before it. Above three quarters of the cap,
//! connections idle for more than [`IDLE_UNDER_PRESSURE`] are closed by [`Connections::sweep`].
//!
//! Room is made [`EVICT_SHARE`]th of the cap at a time: one scan of the table then serves
//! many accepts, so a process reconnecting as fast as it can does not slow accepting down
//! to the point where the listen queue overflows and a client's SYN is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// At the cap, this fraction of it (1/N) is closed at once.
pub(crate) const EVICT_SHARE: usize = 32;

/// How long a connection may stay idle when the server is near its cap.
pub(crate) const IDLE_UNDER_PRESSURE: Duration = Duration::from_secs(1);

/// What a connection task holds: when it was last active, and how it is told to close.
pub(crate) struct Ticket {
    /// The connection's id in the table.
    pub id: u64,
    /// Notified when the connection is to close (evicted or idle under pressure).
    pub close: Arc<Notify>,
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl Ticket {
    /// Records a request on the connection.
    pub(crate) fn touch(&self) {
        self.activity
            .store(millis_since(self.epoch, Instant::now()), Ordering::Relaxed);
    }
}

struct Entry {
    peer: IpAddr,
    activity: Arc<AtomicU64>,
    close: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.open.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&entry.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&entry.peer);
            }
        }
        Some(entry)
    }

    /// Closes the `n` connections of `peer` that have been idle longest.
    fn evict_oldest_of(&mut self, peer: IpAddr, n: usize) {
        let mut candidates: Vec<(u64, u64)> = self
            .open
            .iter()
            .filter(|(_, e)| e.peer == peer)
            .map(|(id, e)| (e.activity.load(Ordering::Relaxed), *id))
            .collect();
        let n = n.min(candidates.len());
        if n == 0 {
            return;
        }
        if n < candidates.len() {
            candidates.select_nth_unstable(n - 1);
        }
        for &(_, id) in &candidates[..n] {
            if let Some(entry) = self.remove(id) {
                entry.close.notify_one();
            }
        }
    }
}

/// The table of open connections.
pub(crate) struct Connections {
    cap: usize,
    per_peer_cap: usize,
    epoch: Instant,
    table: Mutex<Table>,
}

fn millis_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

impl Connections {
    /// A table for at most `cap` connections.
    pub(crate) fn new(cap: usize) -> Connections {
        let cap = cap.max(2);
        Connections {
            cap,
            per_peer_cap: cap / 2,
            epoch: Instant::now(),
            table: Mutex::new(Table::default()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().open.len()
    }

    /// Whether no connection is open.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a connection from `peer`, closing another to make room when needed.
    pub(crate) fn admit(&self, peer: IpAddr) -> Ticket {
        let peer = peer.to_canonical();
        let mut t = self.table();
        if !peer.is_loopback() && t.per_peer.get(&peer).copied().unwrap_or(0) >= self.per_peer_cap {
            t.evict_oldest_of(peer, (self.per_peer_cap / EVICT_SHARE).max(1));
        }
        if t.open.len() >= self.cap {
            let busiest = t.per_peer.iter().max_by_key(|(_, n)| **n).map(|(p, _)| *p);
            if let Some(busiest) = busiest {
                t.evict_oldest_of(busiest, (self.cap / EVICT_SHARE).max(1));
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let activity = Arc::new(AtomicU64::new(millis_since(self.epoch, Instant::now())));
        let close = Arc::new(Notify::new());
        t.open.insert(
            id,
            Entry {
                peer,
                activity: Arc::clone(&activity),
                close: Arc::clone(&close),
            },
        );
        *t.per_peer.entry(peer).or_insert(0) += 1;
        Ticket {
            id,
            close,
            activity,
            epoch: self.epoch,
        }
    }

    /// Forgets a connection that ended.
    pub(crate) fn leave(&self, id: u64) {
        self.table().remove(id);
    }

    /// Above three quarters of the cap, closes the connections idle for longer than
    /// [`IDLE_UNDER_PRESSURE`] at `now`; returns how many.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut t = self.table();
        if t.open.len() * 4 <= self.cap * 3 {
            return 0;
        }
        let limit = millis_since(self.epoch, now)
            .saturating_sub(u64::try_from(IDLE_UNDER_PRESSURE.as_millis()).unwrap_or(0));
        let idle: Vec<u64> = t
            .open
            .iter()
            .filter(|(_, e)| e.activity.load(Ordering::Relaxed) < limit)
            .map(|(id, _)| *id)
            .collect();
        for id in &idle {
            if let Some(entry) = t.remove(*id) {
                entry.close.notify_one();
            }
        }
        idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let c = Connections::new(4);
        let local = ip("127.0.0.1");
        let tickets: Vec<Ticket> = (0..4).map(|_| c.admit(local)).collect();
        // Activity orders them: the first is made the most recent.
        std::thread::sleep(Duration::from_millis(5));
        tickets[0].touch();
        let newcomer = c.admit(local);
        assert_eq!(c.len(), 4, "admitted, not refused");
        let closed: Vec<bool> = tickets
            .iter()
            .map(|t| !c.table().open.contains_key(&t.id))
            .collect();
        assert_eq!(closed, [false, true, false, false]);
        assert!(c.table().open.contains_key(&newcomer.id));
    }

    #[test]
    fn one_peer_cannot_take_another_peers_connections() {
        let c = Connections::new(8);
        let other = c.admit(ip("10.0.0.2"));
        let flood: Vec<Ticket> = (0..100).map(|_| c.admit(ip("10.0.0.1"))).collect();
        assert!(c.table().open.contains_key(&other.id));
        assert_eq!(c.table().per_peer[&ip("10.0.0.1")], 4);
        assert!(c.table().open.contains_key(&flood[99].id));
        // An IPv4-mapped address is the same peer.
        let mapped = c.admit(ip("::ffff:10.0.0.1"));
        assert_eq!(c.table().per_peer[&ip("10.0.0.1")], 4);
        assert!(c.table().open.contains_key(&mapped.id));
    }

    #[test]
    fn near_the_cap_idle_connections_are_closed_after_a_second() {
        let c = Connections::new(8);
        let local = ip("127.0.0.1");
        let few: Vec<Ticket> = (0..6).map(|_| c.admit(local)).collect();
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(c.sweep(later), 0, "at three quarters nothing is closed");
        let more = c.admit(ip("10.0.0.1"));
        more.touch();
        assert_eq!(c.sweep(Instant::now()), 0, "nobody idle for a second yet");
        assert_eq!(c.sweep(later), 7);
        assert!(c.is_empty());
        drop(few);
    }
}
