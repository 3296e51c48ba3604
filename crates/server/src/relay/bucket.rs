//! Bandwidth caps: a token bucket per direction, so no lock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A token bucket: `rate` bytes per second, bursts up to a quarter of a second's worth
/// (at least 16 KiB).
pub(crate) struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
    /// Armed while waiting for tokens.
    refill: Option<Pin<Box<Sleep>>>,
}

impl Bucket {
    pub(crate) fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let capacity = (rate / 4.0).max(16_384.0);
        Self {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
            refill: None,
        }
    }

    /// How many bytes may move now (at most `want`); pending until at least one may.
    pub(crate) fn poll_allowance(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<usize> {
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.last = now;
            if self.tokens >= 1.0 {
                self.refill = None;
                return Poll::Ready(want.min(self.tokens as usize));
            }
            let wait = Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.001));
            let refill = self
                .refill
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
            refill.as_mut().reset(now + wait);
            std::task::ready!(refill.as_mut().poll(cx));
        }
    }

    /// Records that `moved` bytes went through.
    pub(crate) fn spend(&mut self, moved: usize) {
        self.tokens -= moved as f64;
    }
}
