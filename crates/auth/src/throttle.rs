//! Slowing down failed logins, per source address and per user name.
//!
//! Each source address and each user name has a count of recent failures, plus the attempts
//! still being checked (so a burst of parallel attempts is counted at once). The first few
//! failures are free; after that each attempt waits before it is checked, the wait doubling
//! with every failure up to a cap — longer for a source than for a user, so that someone
//! guessing one user's password from one address is slowed a lot while the real user,
//! elsewhere, is slowed little. Counts are forgotten after a quiet period or a success.
//! The caller sleeps (without blocking anyone else); this type only decides, with time
//! passed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How hard to throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures allowed before any wait.
    pub free_failures: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait for attempts from one address.
    pub source_cap: Duration,
    /// The longest wait for attempts on one user name.
    pub user_cap: Duration,
    /// Failures older than this are forgotten ([`ThrottleSettings::FORGET_AFTER`]).
    pub forget_after: Duration,
}

impl ThrottleSettings {
    /// How long failures are remembered unless configured otherwise. (The operator-facing
    /// defaults of the other fields are the configuration's: `[auth.throttle]`.)
    pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
}

/// Most addresses or names tracked at once; beyond it new ones are not tracked, so a flood of
/// names cannot exhaust memory.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    in_flight: u32,
    last: Instant,
}

#[derive(Debug)]
struct Counts<K>(Mutex<HashMap<K, Record>>);

impl<K: Hash + Eq + Clone> Counts<K> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    /// Counts an attempt by `key`; returns the failures and other attempts before it.
    fn begin(&self, now: Instant, key: &K, forget_after: Duration) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, record| {
                record.in_flight > 0 || now.duration_since(record.last) < forget_after
            });
            if map.len() >= MAX_TRACKED {
                return 0;
            }
        }
        let record = map.entry(key.clone()).or_insert(Record {
            failures: 0,
            in_flight: 0,
            last: now,
        });
        if record.in_flight == 0 && now.duration_since(record.last) >= forget_after {
            record.failures = 0;
        }
        let before = record.failures + record.in_flight;
        record.in_flight += 1;
        record.last = now;
        before
    }

    fn finish(&self, now: Instant, key: &K, success: bool) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(record) = map.get_mut(key) {
            record.in_flight = record.in_flight.saturating_sub(1);
            record.last = now;
            if success {
                record.failures = 0;
            } else {
                record.failures = record.failures.saturating_add(1);
            }
            if record.failures == 0 && record.in_flight == 0 {
                map.remove(key);
            }
        }
    }
}

/// Failed-login bookkeeping for one server.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    sources: Counts<IpAddr>,
    users: Counts<String>,
}

impl Throttle {
    /// A throttle with `settings`.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            sources: Counts::new(),
            users: Counts::new(),
        }
    }

    /// Registers an attempt from `source` for `user`; returns how long to wait before
    /// checking it. Every `begin` must be followed by a [`Throttle::finish`].
    pub fn begin(&self, now: Instant, source: IpAddr, user: &str) -> Duration {
        let forget = self.settings.forget_after;
        let by_source = self.sources.begin(now, &source, forget);
        let by_user = self.users.begin(now, &user.to_owned(), forget);
        self.wait(by_source, self.settings.source_cap)
            .max(self.wait(by_user, self.settings.user_cap))
    }

    /// Records the attempt's outcome.
    pub fn finish(&self, now: Instant, source: IpAddr, user: &str, success: bool) {
        self.sources.finish(now, &source, success);
        self.users.finish(now, &user.to_owned(), success);
    }

    fn wait(&self, failures: u32, cap: Duration) -> Duration {
        let Some(beyond) = failures.checked_sub(self.settings.free_failures) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(beyond).unwrap_or(u32::MAX);
        self.settings.base.saturating_mul(factor).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice";

    fn attacker() -> IpAddr {
        IpAddr::from([192, 0, 2, 66])
    }

    fn fail(throttle: &Throttle, now: Instant, source: IpAddr, user: &str) -> Duration {
        let wait = throttle.begin(now, source, user);
        throttle.finish(now, source, user, false);
        wait
    }

    /// The settings these tests' numbers assume: 3 free failures, then 100 ms doubling up to
    /// 5 s per address and 1 s per user.
    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            free_failures: 3,
            base: Duration::from_millis(100),
            source_cap: Duration::from_secs(5),
            user_cap: Duration::from_secs(1),
            forget_after: ThrottleSettings::FORGET_AFTER,
        }
    }

    #[test]
    fn waits_double_after_the_free_failures_up_to_the_caps() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        let waits: Vec<u128> = (0..12)
            .map(|_| fail(&throttle, now, attacker(), ALICE).as_millis())
            .collect();
        assert_eq!(
            waits,
            [0, 0, 0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
        );
        // The real user, from elsewhere, waits at most the per-user cap.
        let elsewhere = IpAddr::from([198, 51, 100, 1]);
        assert_eq!(
            throttle.begin(now, elsewhere, ALICE),
            Duration::from_secs(1)
        );
        throttle.finish(now, elsewhere, ALICE, true);
        // Another user from elsewhere is not slowed at all.
        assert_eq!(throttle.begin(now, elsewhere, "bob"), Duration::ZERO);
    }

    #[test]
    fn parallel_attempts_count_before_they_finish() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        let waits: Vec<Duration> = (0..6)
            .map(|_| throttle.begin(now, attacker(), ALICE))
            .collect();
        assert_eq!(waits[5], Duration::from_millis(400));
    }

    #[test]
    fn success_and_time_forget_failures() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        for _ in 0..8 {
            fail(&throttle, now, attacker(), ALICE);
        }
        let later = now + Duration::from_secs(16 * 60);
        assert_eq!(throttle.begin(later, attacker(), ALICE), Duration::ZERO);
        throttle.finish(later, attacker(), ALICE, false);
        for _ in 0..8 {
            fail(&throttle, later, attacker(), ALICE);
        }
        throttle.begin(later, attacker(), ALICE);
        throttle.finish(later, attacker(), ALICE, true);
        assert_eq!(throttle.begin(later, attacker(), ALICE), Duration::ZERO);
    }
}
