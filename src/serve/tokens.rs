//! IMDSv2 session tokens: random, short-lived, kept in a bounded table and compared in
//! constant time.
//!
//! A token is 32 random bytes in base64url (43 characters): the first 8 bytes are the
//! table key, the other 24 the secret compared in constant time. The table holds at most
//! [`TokenTable::CAPACITY`] tokens; issuing one into a full table drops expired tokens,
//! then the oldest.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

const ID_LEN: usize = 8;
const SECRET_LEN: usize = 24;
const TOKEN_LEN: usize = ID_LEN + SECRET_LEN;
/// Length of a token's text (base64url without padding of 32 bytes).
pub(crate) const TOKEN_TEXT_LEN: usize = 43;

/// The longest token TTL IMDSv2 accepts, in seconds.
pub(crate) const MAX_TTL: u64 = 21_600;

struct Entry {
    secret: [u8; SECRET_LEN],
    expires: Instant,
}

/// The tokens issued and not yet expired or evicted.
pub(crate) struct TokenTable {
    map: HashMap<u64, Entry>,
    order: VecDeque<u64>,
    capacity: usize,
    rng: SystemRandom,
}

impl Default for TokenTable {
    fn default() -> Self {
        TokenTable::with_capacity(TokenTable::CAPACITY)
    }
}

impl TokenTable {
    /// How many live tokens the server keeps by default.
    pub(crate) const CAPACITY: usize = 10_000;

    /// An empty table holding at most `capacity` tokens.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        TokenTable {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            rng: SystemRandom::new(),
        }
    }

    /// How many tokens are held (expired ones included until evicted).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }

    /// Issues a token valid for `ttl` from `now`; `None` when the system RNG fails.
    pub(crate) fn issue(&mut self, ttl: Duration, now: Instant) -> Option<Zeroizing<String>> {
        while let Some(&oldest) = self.order.front() {
            let expired = self.map.get(&oldest).is_none_or(|e| e.expires <= now);
            if !expired && self.map.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            self.map.remove(&oldest);
        }
        let mut raw = Zeroizing::new([0u8; TOKEN_LEN]);
        let id = loop {
            self.rng.fill(raw.as_mut()).ok()?;
            let mut id_bytes = [0u8; ID_LEN];
            id_bytes.copy_from_slice(&raw[..ID_LEN]);
            let id = u64::from_le_bytes(id_bytes);
            if !self.map.contains_key(&id) {
                break id;
            }
        };
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&raw[ID_LEN..]);
        self.map.insert(
            id,
            Entry {
                secret,
                expires: now + ttl,
            },
        );
        self.order.push_back(id);
        Some(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref()),
        ))
    }

    /// Whether `token` was issued here and has not expired at `now`.
    pub(crate) fn check(&self, token: &[u8], now: Instant) -> bool {
        if token.len() != TOKEN_TEXT_LEN {
            return false;
        }
        let mut raw = Zeroizing::new([0u8; TOKEN_LEN + 2]);
        let Ok(n) = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(token, raw.as_mut_slice())
        else {
            return false;
        };
        if n != TOKEN_LEN {
            return false;
        }
        let mut id_bytes = [0u8; ID_LEN];
        id_bytes.copy_from_slice(&raw[..ID_LEN]);
        match self.map.get(&u64::from_le_bytes(id_bytes)) {
            Some(entry) => {
                constant_time_eq(&entry.secret, &raw[ID_LEN..TOKEN_LEN]) && entry.expires > now
            }
            None => false,
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_check_until_they_expire() {
        let mut t = TokenTable::default();
        let now = Instant::now();
        let token = t.issue(Duration::from_secs(10), now).expect("token");
        assert_eq!(token.len(), TOKEN_TEXT_LEN);
        assert!(t.check(token.as_bytes(), now));
        assert!(t.check(token.as_bytes(), now + Duration::from_secs(9)));
        assert!(!t.check(token.as_bytes(), now + Duration::from_secs(10)));
        // A changed character, a truncated token, garbage.
        let mut bad = token.as_bytes().to_vec();
        bad[20] = if bad[20] == b'A' { b'B' } else { b'A' };
        assert!(!t.check(&bad, now));
        assert!(!t.check(&token.as_bytes()[..42], now));
        assert!(!t.check(b"", now));
        assert!(!t.check(&[b'!'; TOKEN_TEXT_LEN], now));
    }

    #[test]
    fn the_table_is_bounded_and_evicts_expired_then_oldest() {
        let mut t = TokenTable::with_capacity(3);
        let now = Instant::now();
        let short = t.issue(Duration::from_secs(1), now).expect("token");
        let a = t.issue(Duration::from_secs(100), now).expect("token");
        let b = t.issue(Duration::from_secs(100), now).expect("token");
        assert_eq!(t.len(), 3);
        let later = now + Duration::from_secs(2);
        let c = t.issue(Duration::from_secs(100), later).expect("token");
        assert_eq!(t.len(), 3);
        assert!(!t.check(short.as_bytes(), later));
        assert!(t.check(a.as_bytes(), later) && t.check(b.as_bytes(), later));
        let d = t.issue(Duration::from_secs(100), later).expect("token");
        assert_eq!(t.len(), 3, "full: the oldest goes");
        assert!(!t.check(a.as_bytes(), later));
        for tok in [&b, &c, &d] {
            assert!(t.check(tok.as_bytes(), later));
        }
        for _ in 0..100 {
            t.issue(Duration::from_secs(100), later).expect("token");
        }
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
