//! Slowing password guessing down, per source group and per user name, without slowing
//! the real user down.
//!
//! - **The wrong guess waits, not the next login.** A failed login's reply is held back,
//!   the wait doubling with each recent failure (after a few free ones) up to a cap, longer
//!   for a source than for a user. A success is never held back: the real user who types
//!   the right password from an address under attack logs in at once.
//! - **Few pending logins per suspect.** Once a source group's or a user's failures and the
//!   logins being checked reach the free failures, at most `pending_per_source` /
//!   `pending_per_user` of its logins may be pending at once (being checked, or holding back
//!   their failure); the excess fails at once, unchecked. Parallel connections therefore get
//!   at most `pending / wait` guesses a second between them, and hanging up does not help: a
//!   failure stays pending until its wait is over, whether or not the client is still there.
//! - **Trusted sources.** A source group the right password came from is trusted for that
//!   user, with the name as typed (the last 8 per user, for 7 days, until more wrong
//!   passwords from it than the free failures): its logins for that user are not held to the
//!   user's cap — the source's still applies — so guessers elsewhere who fill the user's
//!   pending slots cannot lock the real user out from where she logged in before.
//! - **Memory that cannot be switched off.** Failures are counted over a sliding window
//!   (`forget_after`); a success forgets none (a guesser gains nothing from the real user's
//!   logins, nor from its own account). User names count without case. Each table is
//!   bounded, and a full one forgets the key seen least recently, so a flood of junk names
//!   or addresses cannot stop a targeted user from being tracked.
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

/// Sources a user logged in from, remembered per user (the most recent few).
const TRUSTED_SOURCES: usize = 8;
/// How long a source stays trusted after the user's last login from it.
const TRUST_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// A source a user logged in from.
#[derive(Debug)]
struct Trusted {
    source: IpAddr,
    /// The name as the user typed it: trust is not shared between `Alice` and `alice`,
    /// which a back end may hold apart.
    user: Box<str>,
    since: Instant,
    /// Wrong passwords for the user from it since; past the free failures, trust ends.
    failures: u32,
}

#[derive(Debug)]
struct Record {
    failures: Failures,
    /// Logins being checked.
    checking: u32,
    /// When the failures still being held back are sent.
    held_until: Vec<Instant>,
    /// For a user: the source groups the right password came from recently. Their logins
    /// for this user are not held to the user's cap (the source's still applies).
    trusted: Vec<Trusted>,
}

impl Record {
    fn new(now: Instant) -> Self {
        Self {
            failures: Failures::new(now),
            checking: 0,
            held_until: Vec::new(),
            trusted: Vec::new(),
        }
    }

    /// Whether another login may be checked: freely without failures (a busy NAT's logins
    /// queue for verification slots, they do not fail) and while failures and the logins
    /// being checked stay within the free failures, then only below `cap` pending.
    fn admits(&mut self, now: Instant, settings: &ThrottleSettings, cap: u32) -> bool {
        let failures = self.failures.count(now, settings.forget_after);
        if failures == 0 || failures.saturating_add(self.checking) < settings.free_failures {
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

    /// Whether `user` (as typed) logged in from `source` within [`TRUST_FOR`].
    fn trusts(&self, now: Instant, source: IpAddr, user: &str) -> bool {
        self.trusted.iter().any(|trusted| {
            trusted.source == source
                && *trusted.user == *user
                && now.duration_since(trusted.since) < TRUST_FOR
        })
    }

    fn trust(&mut self, now: Instant, source: IpAddr, user: &str) {
        self.trusted
            .retain(|trusted| trusted.source != source || *trusted.user != *user);
        if self.trusted.len() >= TRUSTED_SOURCES {
            self.trusted.remove(0);
        }
        self.trusted.push(Trusted {
            source,
            user: user.into(),
            since: now,
            failures: 0,
        });
    }

    /// A wrong password for `user` from `source`: one typo keeps the trust (nor can a
    /// neighbour behind the same address end it with one guess); more than the free
    /// failures end it.
    fn distrust(&mut self, source: IpAddr, user: &str, free_failures: u32) {
        for trusted in &mut self.trusted {
            if trusted.source == source && *trusted.user == *user {
                trusted.failures += 1;
            }
        }
        self.trusted
            .retain(|trusted| trusted.failures <= free_failures);
    }
}

#[derive(Debug)]
struct Tables {
    sources: Recent<IpAddr, Record>,
    users: Recent<String, Record>,
}

impl Tables {
    /// Why a login from `source` for `user` (as typed) is to fail unchecked, if it is. A
    /// source the user logged in from is held to the source's cap, not the user's.
    fn crowded(
        &mut self,
        now: Instant,
        source: IpAddr,
        user: &str,
        settings: &ThrottleSettings,
    ) -> Option<Crowded> {
        if let Some(by_source) = self.sources.get_mut(&source) {
            if !by_source.admits(now, settings, settings.pending_per_source) {
                return Some(Crowded::Source);
            }
        }
        let by_user = self.users.get_mut(&user_key(user))?;
        let capped = !by_user.trusts(now, source, user)
            && !by_user.admits(now, settings, settings.pending_per_user);
        capped.then_some(Crowded::User)
    }
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Success,
    Failure,
    Abandoned,
}

/// Failed-login bookkeeping for one server.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    tables: Mutex<Tables>,
}

/// User names are compared without case: `Alice` and `alice` are one record (a back end
/// that ignores case must not give a guesser a fresh record per spelling).
fn user_key(user: &str) -> String {
    user.to_lowercase()
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

    /// Why a login from `source` for `user` would fail unchecked now, if it would; it is
    /// not registered (for a cheap refusal before waiting for a verification slot).
    pub fn crowded(&self, now: Instant, source: IpAddr, user: &str) -> Option<Crowded> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        tables.crowded(now, source, user, &self.settings)
    }

    /// Registers a login from `source` (a source group) for `user`: `Ok` to check it (then
    /// [`Throttle::finish`] must follow), or why it is to be failed unchecked.
    pub fn begin(&self, now: Instant, source: IpAddr, user: &str) -> Result<(), Crowded> {
        let mut guard = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let tables = &mut *guard;
        tables.sources.touch(&source, || Record::new(now));
        tables.users.touch(&user_key(user), || Record::new(now));
        if let Some(crowded) = tables.crowded(now, source, user, &self.settings) {
            return Err(crowded);
        }
        let user = user_key(user);
        for record in [tables.sources.get_mut(&source), tables.users.get_mut(&user)]
            .into_iter()
            .flatten()
        {
            record.checking += 1;
        }
        Ok(())
    }

    /// Records a checked login's outcome; returns how long its reply waits (zero for a
    /// success). The login stays pending from both `source` and `user` until then. A
    /// success makes `source` trusted for `user`; more wrong passwords from it than the
    /// free failures end that.
    pub fn finish(&self, now: Instant, source: IpAddr, user: &str, success: bool) -> Duration {
        self.end(
            now,
            source,
            user,
            if success { End::Success } else { End::Failure },
        )
    }

    /// Records a login given up before its verdict (the client left, the handshake timed
    /// out): counted as a failure, but no sign against a trusted source.
    pub fn abandon(&self, now: Instant, source: IpAddr, user: &str) -> Duration {
        self.end(now, source, user, End::Abandoned)
    }

    fn end(&self, now: Instant, source: IpAddr, user: &str, end: End) -> Duration {
        let settings = &self.settings;
        let mut guard = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let tables = &mut *guard;
        let key = user_key(user);
        if end == End::Success {
            if let Some(by_source) = tables.sources.get_mut(&source) {
                by_source.checking = by_source.checking.saturating_sub(1);
            }
            if let Some(by_user) = tables.users.get_mut(&key) {
                by_user.checking = by_user.checking.saturating_sub(1);
                by_user.trust(now, source, user);
            }
            return Duration::ZERO;
        }
        let mut wait = Duration::ZERO;
        if let Some(by_source) = tables.sources.get_mut(&source) {
            wait = wait.max(by_source.finish(now, settings, settings.source_cap));
        }
        if let Some(by_user) = tables.users.get_mut(&key) {
            if end == End::Failure {
                by_user.distrust(source, user, settings.free_failures);
            }
            wait = wait.max(by_user.finish(now, settings, settings.user_cap));
        }
        Self::hold(tables, now, source, &key, wait);
        wait
    }

    /// Keeps a failed login, finished at `now` with `held` as its wait, pending from
    /// `source` and for `user` for `longer` from `now` instead (the fleet's delay).
    pub fn hold_longer(
        &self,
        now: Instant,
        source: IpAddr,
        user: &str,
        held: Duration,
        longer: Duration,
    ) {
        if longer <= held {
            return;
        }
        let mut guard = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let tables = &mut *guard;
        let user = user_key(user);
        for record in [tables.sources.get_mut(&source), tables.users.get_mut(&user)]
            .into_iter()
            .flatten()
        {
            // The login's own entry (none when its wait was zero) takes the longer end.
            match record
                .held_until
                .iter_mut()
                .find(|until| **until == now + held)
            {
                Some(until) if !held.is_zero() => *until = now + longer,
                _ => record.held_until.push(now + longer),
            }
        }
    }

    fn hold(tables: &mut Tables, now: Instant, source: IpAddr, user: &String, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        for record in [tables.sources.get_mut(&source), tables.users.get_mut(user)]
            .into_iter()
            .flatten()
        {
            record.held_until.push(now + wait);
        }
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
    fn a_source_without_failures_is_not_capped_and_one_with_failures_counts_its_checks() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        // No failures: a busy NAT's logins all go on to be checked (they queue for slots).
        for _ in 0..50 {
            assert_eq!(throttle.begin(now, elsewhere(), ALICE), Ok(()));
        }
        // One failure: the free failures count the logins being checked (2 more), then the
        // pending cap (4 in all) — a guesser gets 4 at once, not one per verification slot.
        fail(&throttle, now, attacker(), "bob");
        let admitted = (0..50)
            .filter(|_| throttle.begin(now, attacker(), "carol").is_ok())
            .count();
        assert_eq!(admitted, 4);
    }

    #[test]
    fn a_user_under_attack_still_logs_in_from_a_source_she_used_before() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        let home = IpAddr::from([198, 51, 100, 7]);
        throttle.begin(now, home, ALICE).unwrap();
        throttle.finish(now, home, ALICE, true);
        // Three guessing sources keep alice's 8 pending slots full.
        let guessers = [1, 2, 3].map(|n| IpAddr::from([203, 0, 113, n]));
        for guesser in guessers {
            for _ in 0..6 {
                if throttle.begin(now, guesser, ALICE).is_ok() {
                    throttle.finish(now, guesser, ALICE, false);
                }
            }
        }
        assert_eq!(
            throttle.crowded(now, elsewhere(), ALICE),
            Some(Crowded::User)
        );
        // From home she is not capped; her success is not delayed.
        assert_eq!(throttle.begin(now, home, ALICE), Ok(()));
        assert_eq!(throttle.finish(now, home, ALICE, true), Duration::ZERO);
        // A typo, or a login given up, keeps the trust (a neighbour behind the same address
        // cannot end it with one guess); more wrong passwords than the free failures end it.
        for _ in 0..3 {
            throttle.begin(now, home, ALICE).unwrap();
            throttle.finish(now, home, ALICE, false);
        }
        throttle.begin(now, home, ALICE).unwrap();
        throttle.abandon(now, home, ALICE);
        let trusts = |at: Instant, source: IpAddr, user: &str| {
            let mut tables = throttle.tables.lock().unwrap();
            let record = tables.users.get_mut(&user_key(user)).unwrap();
            record.trusts(at, source, user)
        };
        assert!(
            trusts(now, home, ALICE),
            "three wrong passwords and a give-up ended the trust"
        );
        throttle.begin(now, home, ALICE).ok();
        throttle.finish(now, home, ALICE, false);
        assert!(!trusts(now, home, ALICE));
        // Trust is per name as typed (a back end may hold `Alice` and `alice` apart), and
        // lasts days, not the failures' window.
        let later = now + Duration::from_secs(60);
        let other = IpAddr::from([198, 51, 100, 8]);
        throttle.begin(later, other, "Alice").unwrap();
        throttle.finish(later, other, "Alice", true);
        assert!(trusts(later, other, "Alice") && !trusts(later, other, ALICE));
        assert!(trusts(
            later + Duration::from_secs(3 * 24 * 3600),
            other,
            "Alice"
        ));
    }

    #[test]
    fn a_success_trusts_its_source_and_forgets_no_failures() {
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
        // Alice's record is kept too (a guesser gains nothing from her logging in): her
        // next typo waits the per-user cap.
        assert_eq!(
            fail(&throttle, now, elsewhere(), ALICE),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn user_names_are_one_record_whatever_their_case() {
        let throttle = Throttle::new(settings());
        let now = Instant::now();
        let source = |n: u8| IpAddr::from([203, 0, 113, n]);
        for (n, spelling) in ["alice", "Alice", "ALICE", "aLiCe"].into_iter().enumerate() {
            fail(&throttle, now, source(n as u8), spelling);
        }
        assert_eq!(
            fail(&throttle, now, source(9), "AlIcE"),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn a_longer_hold_keeps_the_login_pending() {
        let throttle = Throttle::new(settings());
        let now = guess(&throttle, Instant::now(), ALICE, 3);
        // Four failures held back 5 s by someone else (the fleet), though ours were shorter.
        for user in ["u1", "u2", "u3", "u4"] {
            let held = fail(&throttle, now, attacker(), user);
            throttle.hold_longer(now, attacker(), user, held, Duration::from_secs(5));
        }
        let later = now + Duration::from_secs(2);
        assert_eq!(
            throttle.crowded(later, attacker(), "u5"),
            Some(Crowded::Source)
        );
        let after = now + Duration::from_secs(6);
        assert_eq!(throttle.crowded(after, attacker(), "u5"), None);
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
