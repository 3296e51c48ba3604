//! Logins a back end accepted, remembered for a while so that a directory (LDAP, RADIUS, an
//! HTTP hook) is asked once per user per period rather than once per connection.
//!
//! Keyed by a keyed hash of the user name and the password — never the password itself —
//! so a changed password is a different key and misses at once; the hash key is random per
//! process. Only successes are kept (failures are the throttle's business), for `ttl`, up
//! to `capacity` entries; a reload flushes it. Time is passed in.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::{Credentials, Identity};

/// Accepted logins, for a while.
#[derive(Debug)]
pub struct LoginCache {
    ttl: Duration,
    capacity: usize,
    /// The hash key: random per process, so a key seen in memory says nothing elsewhere.
    secret: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl LoginCache {
    /// A cache keeping each accepted login for `ttl`, at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let mut secret = [0u8; 32];
        for (index, chunk) in secret.chunks_mut(8).enumerate() {
            // std's RandomState is seeded from the system's randomness per instance.
            let random = std::collections::hash_map::RandomState::new().hash_one(index);
            chunk.copy_from_slice(&random.to_le_bytes());
        }
        Self {
            ttl,
            capacity: capacity.max(1),
            secret,
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn key(&self, credentials: &Credentials) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.secret);
        // Lengths first: ("ab", "c") and ("a", "bc") are different logins.
        hash.update((credentials.username().len() as u64).to_le_bytes());
        hash.update(credentials.username());
        hash.update(credentials.password());
        hash.finalize().into()
    }

    /// The identity these very credentials proved less than `ttl` before `now`.
    pub fn get(&self, now: Instant, credentials: &Credentials) -> Option<Identity> {
        let key = self.key(credentials);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = entries
            .get(&key)
            .filter(|(_, since)| now.saturating_duration_since(*since) < self.ttl)
            .map(|(identity, _)| identity.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Remembers that `credentials` proved `identity` at `now`.
    pub fn insert(&self, now: Instant, credentials: &Credentials, identity: Identity) {
        let key = self.key(credentials);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, since)| now.saturating_duration_since(*since) < self.ttl);
            if entries.len() >= self.capacity {
                // Still full of live entries: the oldest goes.
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (identity, now));
    }

    /// Forgets every login (a reload: users may have changed).
    pub fn flush(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Lookups that found a login, and those that did not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            groups: vec!["staff".into()],
            method: crate::Method::PASSWORD,
        }
    }

    fn login(user: &str, password: &str) -> Credentials {
        Credentials::new(user, password).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_login_is_kept_for_its_time_and_a_changed_password_misses() {
        let cache = LoginCache::new(Duration::from_secs(60), 10);
        let start = Instant::now();
        cache.insert(start, &login("alice", "pw"), alice());
        assert_eq!(
            cache.get(start + Duration::from_secs(59), &login("alice", "pw")),
            Some(alice())
        );
        assert_eq!(
            cache.get(start + Duration::from_secs(60), &login("alice", "pw")),
            None
        );
        assert_eq!(cache.get(start, &login("alice", "other")), None);
        // The lengths are hashed: a shifted boundary is another login.
        assert_eq!(cache.get(start, &login("alicep", "w")), None);
        assert_eq!(cache.hits_and_misses(), (1, 3));
    }

    #[test]
    fn a_flush_forgets_and_the_capacity_holds() {
        let cache = LoginCache::new(Duration::from_secs(60), 2);
        let start = Instant::now();
        for (offset, user) in ["a", "b", "c"].iter().enumerate() {
            cache.insert(
                start + Duration::from_secs(offset as u64),
                &login(user, "pw"),
                alice(),
            );
        }
        // The oldest went to make room.
        assert_eq!(cache.get(start, &login("a", "pw")), None);
        assert!(cache.get(start, &login("c", "pw")).is_some());
        cache.flush();
        assert_eq!(cache.get(start, &login("c", "pw")), None);
    }

    #[test]
    fn two_caches_hash_the_same_login_differently() {
        let (one, two) = (
            LoginCache::new(Duration::ZERO, 1),
            LoginCache::new(Duration::ZERO, 1),
        );
        assert_ne!(
            one.key(&login("alice", "pw")),
            two.key(&login("alice", "pw"))
        );
    }
}
