//! Slowing password guessing down, per source group and per user name, without slowing
//! the real user down.
//!
//! - **The wrong guess waits, not the next login.** A failed login's reply is held back,
//!   the wait doubling with each recent failure (after a few free ones) up to a cap, longer
//!   for a source than for a user. A success is never held back: the real user who types
//!   the right password from an address under attack logs in at once.
//! - **Few pending logins per suspect.** Once a source group or a user has used its free
//!   failures, at most `pending_per_source` / `pending_per_user` of its logins may be
//!   pending at once (being checked, or holding back their failure); the excess fails at
//!   once, unchecked. Parallel connections therefore get at most `pending / wait` guesses
//!   a second between them, and hanging up does not help: a failure stays pending until its
//!   wait is over, whether or not the client is still there.
//! - **Memory that cannot be switched off.** Failures are counted over a sliding window
//!   (`forget_after`). A success forgets the user's failures, never the source's (a
//!   guesser's own account must not wash its address clean). Each table is bounded, and a
//!   full one forgets the key seen least recently, so a flood of junk names or addresses
//!   cannot stop a targeted user from being tracked.
//!
//! This type only decides, with time passed in; the caller sleeps.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::recent::Recent;

/// How hard to throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures allowed before any wait (and before the pending caps apply).
    pub free_failures: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait of a failure from one source group.
    pub source_cap: Duration,
    /// The longest wait of a failure for one user name.
    pub user_cap: Duration,
    /// Logins that may be pending at once from a source group past its free failures.
    pub pending_per_source: u32,
    /// Logins that may be pending at once for a user past their free failures.
    pub pending_per_user: u32,
    /// The window over which failures are counted ([`ThrottleSettings::FORGET_AFTER`]).
    pub forget_after: Duration,
}

impl ThrottleSettings {
    /// How long failures are remembered unless configured otherwise. (The operator-facing
    /// defaults of the other fields are the configuration's: `[auth] throttle_*`.)
    pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
}

/// Why a login was failed unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowded {
    /// Too many logins pending from this source group.
    Source,
    /// Too many logins pending for this user name.
    User,
}

impl fmt::Display for Crowded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Source => "too many logins pending from this source",
            Self::User => "too many logins pending for this user",
        })
    }
}

/// Most source groups, and most user names, tracked at once.
const TRACKED: usize = 65_536;

/// Failures in a sliding window: this window's count plus the share of the last one's that
/// the window still overlaps.
#[derive(Debug, Clone, Copy)]
struct Failures {
    started: Instant,
    current: u32,
    previous: u32,
}

impl Failures {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            current: 0,
            previous: 0,
        }
    }

    fn count(&mut self, now: Instant, window: Duration) -> u32 {
        let window = window.max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= window * 2 {
            *self = Self::new(now);
        } else if elapsed >= window {
            self.previous = self.current;
            self.current = 0;
            self.started += window;
        }
        let into = now.saturating_duration_since(self.started).as_nanos();
        let length = window.as_nanos();
        let overlap = u128::from(self.previous) * length.saturating_sub(into) / length;
        self.current
            .saturating_add(u32::try_from(overlap).unwrap_or(u32::MAX))
    }
}

#[derive(Debug)]
struct Record {
    failures: Failures,
    /// Logins being checked.
    checking: u32,
    /// When the failures still being held back are sent.
    held_until: Vec<Instant>,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            failures: Failures::new(now),
            checking: 0,
            held_until: Vec::new(),
        }
    }

    /// Whether another login may be checked: always while the free failures last, then
    /// only below `cap` pending.
    fn admits(&mut self, now: Instant, settings: &ThrottleSettings, cap: u32) -> bool {
        if self.failures.count(now, settings.forget_after) < settings.free_failures {
            return true;
        }
        self.held_until.retain(|until| *until > now);
        let pending = u64::from(self.checking) + self.held_until.len() as u64;
        pending < u64::from(cap)
    }

    /// Ends a check; for a failure, counts it and returns how long its reply waits.
    fn finish(&mut self, now: Instant, settings: &ThrottleSettings, cap: Duration) -> Duration {
        self.checking = self.checking.saturating_sub(1);
        let before = self.failures.count(now, settings.forget_after);
        self.failures.current = self.failures.current.saturating_add(1);
        let Some(beyond) = before.checked_sub(settings.free_failures) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(beyond).unwrap_or(u32::MAX);
        settings.base.saturating_mul(factor).min(cap)
    }
}

#[derive(Debug)]
struct Tables {
    sources: Recent<IpAddr, Record>,
    users: Recent<String, Record>,
}

/// Failed-login bookkeeping for one server.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    tables: Mutex<Tables>,
}

impl Throttle {
    /// A throttle with `settings`.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self::tracking(settings, TRACKED)
    }

    fn tracking(settings: ThrottleSettings, capacity: usize) -> Self {
        Self {
            settings,
            tables: Mutex::new(Tables {
                sources: Recent::new(capacity),
                users: Recent::new(capacity),
            }),
        }
    }

    /// Registers a login from `source` (a source group) for `user`: `Ok` to check it (then
    /// [`Throttle::finish`] must follow), or why it is to be failed unchecked.
    pub fn begin(&self, now: Instant, source: IpAddr, user: &str) -> Result<(), Crowded> {
        let settings = &self.settings;
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let user = user.to_owned();
        let by_source = tables.sources.touch(&source, || Record::new(now));
        if !by_source.admits(now, settings, settings.pending_per_source) {
            return Err(Crowded::Source);
        }
        let by_user = tables.users.touch(&user, || Record::new(now));
        if !by_user.admits(now, settings, settings.pending_per_user) {
            return Err(Crowded::User);
        }
        by_user.checking += 1;
        if let Some(by_source) = tables.sources.get_mut(&source) {
            by_source.checking += 1;
        }
        Ok(())
    }

    /// Records a checked login's outcome; returns how long its reply waits (zero for a
    /// success). The login stays pending from both `source` and `user` until then.
    pub fn finish(&self, now: Instant, source: IpAddr, user: &str, success: bool) -> Duration {
        let settings = &self.settings;
        let mut guard = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let tables = &mut *guard;
        let user = user.to_owned();
        if success {
            if let Some(by_source) = tables.sources.get_mut(&source) {
                by_source.checking = by_source.checking.saturating_sub(1);
            }
            tables.users.remove(&user);
            return Duration::ZERO;
        }
        let mut wait = Duration::ZERO;
        if let Some(by_source) = tables.sources.get_mut(&source) {
            wait = wait.max(by_source.finish(now, settings, settings.source_cap));
        }
        if let Some(by_user) = tables.users.get_mut(&user) {
            wait = wait.max(by_user.finish(now, settings, settings.user_cap));
        }
        if !wait.is_zero() {
            for record in [tables.sources.get_mut(&source), tables.users.get_mut(&user)]
                .into_iter()
                .flatten()
            {
                record.held_until.push(now + wait);
            }
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice";

    fn attacker() -> IpAddr {
        IpAddr::from([192, 0, 2, 66])
    }

    fn elsewhere() -> IpAddr {
        IpAddr::from([198, 51, 100, 1])
    }

    /// A checked failure; its wait.
    fn fail(throttle: &Throttle, now: Instant, source: IpAddr, user: &str) -> Duration {
        throttle.begin(now, source, user).unwrap();
        throttle.finish(now, source, user, false)
    }

    /// `count` failures in a row, each guess after the last one's reply; returns when the
    /// last reply came.
    fn guess(throttle: &Throttle, mut now: Instant, user: &str, count: u32) -> Instant {
        for _ in 0..count {
            now += fail(throttle, now, attacker(), user);
        }
        now
    }

    /// The settings these tests' numbers assume: 3 free failures, then 100 ms doubling up to
    /// 5 s per source and 1 s per user; 4 pending per source, 8 per user.
    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            free_failures: 3,
            base: Duration::from_millis(100),
            source_cap: Duration::from_secs(5),
            user_cap: Duration::from_secs(1),
            pending_per_source: 4,
            pending_per_user: 8,
            forget_after: ThrottleSettings::FORGET_AFTER,
        }
    }

    #[test]
    fn failure_replies_wait_doubling_after_the_free_failures_up_to_the_caps() {
        let throttle = Throttle::new(settings());
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..12 {
            let wait = fail(&throttle, now, attacker(), ALICE);
            waits.push(wait.as_millis());
            now += wait; // the guesser waits for its reply before guessing again
        }
        assert_eq!(
            waits,
            [0, 0, 0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
        );
        // A wrong password for alice from elsewhere waits at most the per-user cap.
        assert_eq!(
            fail(&throttle, now, elsewhere(), ALICE),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_right_password_after_200_wrong_ones_from_the_same_source_is_not_delayed() {
        let throttle = Throttle::new(settings());
        let mut now = Instant::now();
        for _ in 0..200 {
            match throttle.begin(now, attacker(), ALICE) {
                Ok(()) => now += throttle.finish(now, attacker(), ALICE, false),
                Err(_) => now += Duration::from_millis(10),
            }
        }
        // Every failure has had its reply: the real user is checked at once and not held.
        assert_eq!(throttle.begin(now, attacker(), ALICE), Ok(()));
        assert_eq!(
            throttle.finish(now, attacker(), ALICE, true),
            Duration::ZERO
        );
    }

    #[test]
    fn past_the_free_failures_a_source_has_few_pending_logins_even_if_it_hangs_up() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        for _ in 0..3 {
            fail(&throttle, now, attacker(), ALICE);
        }
        // Four guesses fail and hold their replies back (the clients may be long gone).
        let users = ["u1", "u2", "u3", "u4"];
        let waits: Vec<Duration> = users
            .iter()
            .map(|user| fail(&throttle, now, attacker(), user))
            .collect();
        assert!(waits.iter().all(|wait| !wait.is_zero()));
        assert_eq!(throttle.begin(now, attacker(), "u5"), Err(Crowded::Source));
        // Another source is not concerned.
        assert_eq!(throttle.begin(now, elsewhere(), "u5"), Ok(()));
        // Once the first wait is over, one more may be checked.
        let later = now + waits[0];
        assert_eq!(throttle.begin(later, attacker(), "u5"), Ok(()));
        assert_eq!(
            throttle.begin(later, attacker(), "u6"),
            Err(Crowded::Source)
        );
    }

    #[test]
    fn a_user_guessed_from_many_sources_has_few_pending_logins() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        let source = |n: u8| IpAddr::from([203, 0, 113, n]);
        for n in 0..3 {
            fail(&throttle, now, source(n), ALICE);
        }
        for n in 3..11 {
            throttle.begin(now, source(n), ALICE).unwrap();
        }
        assert_eq!(throttle.begin(now, source(11), ALICE), Err(Crowded::User));
        assert_eq!(throttle.begin(now, source(11), "bob"), Ok(()));
    }

    #[test]
    fn a_clean_source_may_log_in_many_times_at_once() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        for _ in 0..50 {
            assert_eq!(throttle.begin(now, attacker(), ALICE), Ok(()));
        }
    }

    #[test]
    fn a_success_forgets_the_users_failures_but_not_the_sources() {
        let throttle = Throttle::new(settings());
        let now = guess(&throttle, Instant::now(), ALICE, 8);
        throttle.begin(now, attacker(), "mallory").unwrap();
        throttle.finish(now, attacker(), "mallory", true);
        // The source keeps its record: its ninth failure, for anyone, waits 3.2 s.
        assert_eq!(
            fail(&throttle, now, attacker(), "bob"),
            Duration::from_millis(3200)
        );
        throttle.begin(now, elsewhere(), ALICE).unwrap();
        throttle.finish(now, elsewhere(), ALICE, true);
        // Alice's own record starts again: her next typo, from elsewhere, is free.
        assert_eq!(fail(&throttle, now, elsewhere(), ALICE), Duration::ZERO);
    }

    #[test]
    fn failures_fade_out_over_the_window() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        guess(&throttle, now, ALICE, 8);
        let window = ThrottleSettings::FORGET_AFTER;
        // Half a window on, half of the eight still count (and a user cap of 1 s).
        assert_eq!(
            fail(&throttle, now + window + window / 2, attacker(), "bob"),
            Duration::from_millis(200)
        );
        // Two windows of quiet later, nothing counts.
        assert_eq!(
            fail(&throttle, now + window * 4, attacker(), "carol"),
            Duration::ZERO
        );
    }

    #[test]
    fn a_flood_of_junk_names_does_not_stop_a_new_target_from_being_tracked() {
        let throttle = Throttle::tracking(settings(), 100);
        let now = Instant::now();
        for n in 0..1_000 {
            let source = IpAddr::from([10, 0, (n / 256) as u8, (n % 256) as u8]);
            fail(&throttle, now, source, &format!("junk{n}"));
        }
        let waits: Vec<Duration> = (0..5)
            .map(|n| fail(&throttle, now, IpAddr::from([192, 0, 2, n]), ALICE))
            .collect();
        assert_eq!(waits[4], Duration::from_millis(200));
    }
}
