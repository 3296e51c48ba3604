//! Bandwidth caps as token buckets: a session's own (one per direction, so no lock), and
//! caps shared by several sessions (a user's), each behind its own small lock that is held
//! only to add and subtract a few numbers — never a lock shared by everyone.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The caps one relay obeys, each in bytes per second each way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caps {
    /// The session's own cap (the deciding rule's `bandwidth`).
    pub(crate) session: Option<u64>,
    /// Caps shared with other sessions (`bandwidth_per_user`).
    pub(crate) shared: Vec<Arc<SharedCap>>,
}

impl Caps {
    /// The limiter of one direction, or `None` when nothing caps it.
    pub(crate) fn limiter(&self, direction: Direction) -> Option<Box<Limiter>> {
        if self.session.is_none() && self.shared.is_empty() {
            return None;
        }
        Some(Box::new(Limiter {
            own: self.session.map(Level::new),
            shared: self.shared.clone(),
            direction,
            refill: None,
        }))
    }
}

/// Which way bytes move: a shared cap keeps one bucket each way.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    Up,
    Down,
}

/// A cap shared by several sessions: one bucket each way.
#[derive(Debug)]
pub(crate) struct SharedCap {
    up: Mutex<Level>,
    down: Mutex<Level>,
}

impl SharedCap {
    pub(crate) fn new(rate: u64) -> Self {
        Self {
            up: Mutex::new(Level::new(rate)),
            down: Mutex::new(Level::new(rate)),
        }
    }

    fn level(&self, direction: Direction) -> std::sync::MutexGuard<'_, Level> {
        match direction {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A token bucket's fill: `rate` bytes per second, bursts up to a quarter of a second's worth
/// (at least 16 KiB). Bytes are counted after they moved, so sessions sharing a bucket may
/// overdraw it together; the debt (negative tokens) is paid back by waiting.
#[derive(Debug)]
struct Level {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Level {
    fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let capacity = (rate / 4.0).max(16_384.0);
        Self {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Tokens now, and how long until there is at least one.
    fn available(&mut self, now: Instant) -> (f64, Duration) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
        let wait = ((1.0 - self.tokens) / self.rate).max(0.001);
        (self.tokens, Duration::from_secs_f64(wait))
    }
}

/// One direction's limiter: how many bytes may move now, under every cap that applies.
#[derive(Debug)]
pub(crate) struct Limiter {
    own: Option<Level>,
    shared: Vec<Arc<SharedCap>>,
    /// Which of each shared cap's buckets this direction draws on.
    direction: Direction,
    /// Armed while waiting for tokens; each session has its own.
    refill: Option<Pin<Box<Sleep>>>,
}

impl Limiter {
    /// How many bytes may move now (at most `want`); pending until at least one may.
    pub(crate) fn poll_allowance(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<usize> {
        loop {
            let now = Instant::now();
            let mut tokens = f64::INFINITY;
            let mut wait = Duration::ZERO;
            let mut take = |(available, until): (f64, Duration)| {
                tokens = tokens.min(available);
                wait = wait.max(until);
            };
            if let Some(own) = &mut self.own {
                take(own.available(now));
            }
            for cap in &self.shared {
                take(cap.level(self.direction).available(now));
            }
            if tokens >= 1.0 {
                self.refill = None;
                return Poll::Ready(want.min(tokens as usize));
            }
            let refill = self
                .refill
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
            refill.as_mut().reset(now + wait);
            std::task::ready!(refill.as_mut().poll(cx));
        }
    }

    /// Records that `moved` bytes went through.
    pub(crate) fn spend(&mut self, moved: usize) {
        let moved = moved as f64;
        if let Some(own) = &mut self.own {
            own.tokens -= moved;
        }
        for cap in &self.shared {
            cap.level(self.direction).tokens -= moved;
        }
    }
}
