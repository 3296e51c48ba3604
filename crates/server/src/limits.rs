//! Limits that span sessions: sessions at once per scope (the server, or a rule) and user or
//! source, UDP associations at once server-wide, bandwidth shared by a user's sessions, and
//! new connections per second per source.
//! All of them outlive reloads: a reload must not forgive what is in use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::relay::SharedCap;

/// Every cross-session limit's state.
#[derive(Debug, Default)]
pub(crate) struct LimitState {
    pub(crate) sessions: Arc<SessionLimits>,
    pub(crate) bandwidth: SharedCaps,
    pub(crate) connection_rates: ConnectionRates,
    /// UDP associations running now, server-wide.
    pub(crate) udp_associations: Arc<std::sync::atomic::AtomicUsize>,
}

/// One running UDP association, counted until dropped.
pub(crate) struct AssociationSlot(Arc<std::sync::atomic::AtomicUsize>);

impl LimitState {
    /// A slot for one more UDP association, unless `cap` are running.
    pub(crate) fn udp_association(&self, cap: Option<usize>) -> Option<AssociationSlot> {
        use std::sync::atomic::Ordering;
        let counter = &self.udp_associations;
        let taken = counter.fetch_add(1, Ordering::AcqRel);
        if cap.is_some_and(|cap| taken >= cap) {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(AssociationSlot(counter.clone()))
    }
}

impl Drop for AssociationSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Counts sessions per scope (the server, or a rule) and user, and per scope and source
/// address.
#[derive(Debug, Default)]
pub(crate) struct SessionLimits {
    counts: Mutex<HashMap<(usize, LimitKey), u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    User(String),
    Source(IpAddr),
}

/// One held slot; released when dropped.
pub(crate) enum LimitSlot {
    /// Counted in this server.
    Local(LocalSlot),
    /// Counted across the fleet.
    Fleet(
        #[expect(dead_code, reason = "held for its drop, which gives the slot back")]
        Box<dyn Send + Sync>,
    ),
}

impl std::fmt::Debug for LimitSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(slot) => slot.fmt(f),
            Self::Fleet(_) => f.write_str("Fleet"),
        }
    }
}

/// A slot under a limit of this server.
#[derive(Debug)]
pub(crate) struct LocalSlot {
    limits: Arc<SessionLimits>,
    key: (usize, LimitKey),
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        let mut counts = self
            .limits
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The scope of the server-wide limits (rules are numbered by their line, from 1).
pub(crate) const SERVER_SCOPE: usize = 0;

/// The session limits of one scope: the server's, or a rule's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LimitScope {
    pub(crate) id: usize,
    pub(crate) per_user: Option<u32>,
    pub(crate) per_source: Option<u32>,
}

impl SessionLimits {
    /// Takes a slot under each limit of each scope, or says which one is full.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        scopes: &[Option<LimitScope>],
        source: IpAddr,
        user: Option<&str>,
    ) -> Result<Vec<LimitSlot>, &'static str> {
        let mut wanted = Vec::new();
        for scope in scopes.iter().flatten() {
            let server = scope.id == SERVER_SCOPE;
            if let (Some(limit), Some(user)) = (scope.per_user, user) {
                let name = if server {
                    "limits.max_sessions_per_user"
                } else {
                    "max_sessions_per_user"
                };
                wanted.push(((scope.id, LimitKey::User(user.to_owned())), limit, name));
            }
            if let Some(limit) = scope.per_source {
                let name = if server {
                    "limits.max_sessions_per_source"
                } else {
                    "max_sessions_per_source"
                };
                wanted.push(((scope.id, LimitKey::Source(source)), limit, name));
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, name)) = wanted
            .iter()
            .find(|(key, limit, _)| counts.get(key).copied().unwrap_or(0) >= *limit)
        {
            return Err(name);
        }
        Ok(wanted
            .into_iter()
            .map(|(key, _, _)| {
                *counts.entry(key.clone()).or_insert(0) += 1;
                LimitSlot::Local(LocalSlot {
                    limits: self.clone(),
                    key,
                })
            })
            .collect())
    }
}

/// Bandwidth caps shared by a user's sessions, one per scope, user and rate; a cap lives as
/// long as a session holds it.
#[derive(Debug, Default)]
pub(crate) struct SharedCaps {
    caps: Mutex<HashMap<(usize, String, u64), Weak<SharedCap>>>,
}

impl SharedCaps {
    /// The cap `user`'s sessions in `scope` share (made when none of them holds one).
    pub(crate) fn get(&self, scope: usize, user: &str, rate: u64) -> Arc<SharedCap> {
        let mut caps = self.caps.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (scope, user.to_owned(), rate);
        if let Some(cap) = caps.get(&key).and_then(Weak::upgrade) {
            return cap;
        }
        // Forget the caps no session holds any more, each time the table doubles.
        if caps.len() >= 64 && caps.len().is_power_of_two() {
            caps.retain(|_, cap| cap.strong_count() > 0);
        }
        let cap = Arc::new(SharedCap::new(rate));
        caps.insert(key, Arc::downgrade(&cap));
        cap
    }
}

/// New connections per second per source address: a token bucket per address, in a table
/// bounded by forgetting addresses whose bucket has refilled.
#[derive(Debug, Default)]
pub(crate) struct ConnectionRates {
    table: Mutex<RateTable>,
}

#[derive(Debug, Default)]
struct RateTable {
    buckets: HashMap<IpAddr, (f64, std::time::Instant)>,
    /// The size at which the next sweep runs: twice what the last one kept, so that a flood
    /// from many busy sources does not sweep on every connection.
    sweep_at: usize,
}

/// Sources remembered before the table is first swept of full buckets.
const RATE_TABLE_SWEEP: usize = 4096;

impl ConnectionRates {
    /// Whether one more connection from `source` is within `per_second` (bursts of as many).
    pub(crate) fn admit(&self, source: IpAddr, per_second: u32) -> bool {
        self.admit_at(std::time::Instant::now(), source, per_second)
    }

    /// [`admit`](Self::admit) at `now` (the tests pass time in, as the login throttle's do).
    fn admit_at(&self, now: std::time::Instant, source: IpAddr, per_second: u32) -> bool {
        let rate = f64::from(per_second.max(1));
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.buckets.len() >= table.sweep_at.max(RATE_TABLE_SWEEP) {
            table.buckets.retain(|_, (tokens, last)| {
                *tokens + now.duration_since(*last).as_secs_f64() * rate < rate
            });
            table.sweep_at = 2 * table.buckets.len();
        }
        let (tokens, last) = table.buckets.entry(source).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_rate_is_refused_and_the_rate_refills() {
        let rates = ConnectionRates::default();
        let source: IpAddr = [127, 0, 0, 9].into();
        let start = std::time::Instant::now();
        let at = |millis| start + std::time::Duration::from_millis(millis);
        assert!((0..5).all(|_| rates.admit_at(start, source, 5)));
        assert!(!rates.admit_at(start, source, 5));
        // Another source has its own bucket.
        assert!(rates.admit_at(start, [127, 0, 0, 10].into(), 5));
        // Five a second: a token every 200 ms, and not before.
        assert!(!rates.admit_at(at(190), source, 5));
        assert!(rates.admit_at(at(210), source, 5));
        assert!(!rates.admit_at(at(220), source, 5));
        // An idle second refills the whole burst, and no more.
        assert!((0..5).all(|_| rates.admit_at(at(5_000), source, 5)));
        assert!(!rates.admit_at(at(5_000), source, 5));
    }

    #[test]
    fn a_table_of_busy_sources_is_not_swept_on_every_connection() {
        let rates = ConnectionRates::default();
        // 4,097 sources, each with a bucket not yet refilled: the sweep keeps them all, and
        // the next one waits until the table has doubled.
        for index in 0..=RATE_TABLE_SWEEP as u32 {
            assert!(rates.admit(std::net::Ipv4Addr::from(index).into(), 1));
        }
        let table = rates.table.lock().unwrap();
        assert_eq!(table.buckets.len(), RATE_TABLE_SWEEP + 1);
        assert_eq!(table.sweep_at, 2 * RATE_TABLE_SWEEP);
    }

    #[test]
    fn sessions_of_one_user_share_a_cap_while_any_holds_it() {
        let caps = SharedCaps::default();
        let first = caps.get(0, "alice", 1000);
        let second = caps.get(0, "alice", 1000);
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &caps.get(0, "bob", 1000)));
        assert!(!Arc::ptr_eq(&first, &caps.get(7, "alice", 1000)));
        drop((first, second));
        for user in 0..61 {
            drop(caps.get(0, &user.to_string(), 1000));
        }
        let _held = caps.get(0, "carol", 1000);
        // 64 entries (alice twice, bob, 61 more), none held: swept before carol's went in.
        assert_eq!(caps.caps.lock().unwrap().len(), 1);
    }
}
