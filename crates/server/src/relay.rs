//! Moving bytes between the client and the target until both directions are closed.
//!
//! Each direction runs until its source reaches end of file, then shuts down the writing side
//! of its destination (half-close), so a client that has finished sending still receives the
//! whole response. An error in either direction ends both. With an idle timeout, a relay
//! that moved nothing either way for that long is ended.
//!
//! On Linux the bytes move with `splice(2)` through a pipe per direction: they never enter
//! user space, and an idle session holds no buffer. Elsewhere a small buffer per direction
//! is used.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[cfg(target_os = "linux")]
mod splice;
#[cfg(target_os = "linux")]
use splice::pump;

#[cfg(not(target_os = "linux"))]
mod copy;
#[cfg(not(target_os = "linux"))]
use copy::pump;

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum RelayEnd {
    /// Both sides closed their writing halves.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A socket failed (usually a reset).
    Error(io::Error),
}

/// Bytes moved each way, counted as they move so an error does not lose them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Client to target.
    pub(crate) up: AtomicU64,
    /// Target to client.
    pub(crate) down: AtomicU64,
}

/// The last time anything moved, in milliseconds since the relay started.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One direction: where from, where to, what to count.
struct Direction<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    counter: &'a AtomicU64,
    activity: &'a Activity,
    /// Bytes per second this direction may move, if capped.
    bandwidth: Option<u64>,
}

/// A token bucket: `rate` bytes per second, bursts up to a quarter of a second's worth
/// (at least 16 KiB). One per direction, so no lock.
pub(crate) struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
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
        }
    }

    /// Waits until some bytes may move; returns how many (at most `want`).
    pub(crate) async fn take(&mut self, want: usize) -> usize {
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.last = now;
            if self.tokens >= 1.0 {
                return want.min(self.tokens as usize);
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait.max(0.001))).await;
        }
    }

    /// Records that `moved` bytes went through.
    pub(crate) fn spend(&mut self, moved: usize) {
        self.tokens -= moved as f64;
    }
}

impl Direction<'_> {
    fn moved(&self, bytes: usize) {
        self.counter.fetch_add(bytes as u64, Ordering::Relaxed);
        self.activity.touch();
    }

    /// The source is finished: pass the end of file on.
    fn finish(&self) -> io::Result<()> {
        match rustix::net::shutdown(self.to, rustix::net::Shutdown::Write) {
            // The peer may have gone already; the other direction will see it.
            Ok(()) | Err(rustix::io::Errno::NOTCONN) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }
}

/// Relays until both directions are closed. `pipelined` (bytes the client sent right after
/// its request) is delivered to the target first.
pub(crate) async fn relay(
    client: &mut TcpStream,
    target: &mut TcpStream,
    pipelined: &[u8],
    idle: Option<Duration>,
    bandwidth: Option<u64>,
    counters: &Counters,
) -> RelayEnd {
    if !pipelined.is_empty() {
        if let Err(error) = target.write_all(pipelined).await {
            return RelayEnd::Error(error);
        }
        counters
            .up
            .fetch_add(pipelined.len() as u64, Ordering::Relaxed);
    }
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let up = Direction {
        from: client,
        to: target,
        counter: &counters.up,
        activity: &activity,
        bandwidth,
    };
    let down = Direction {
        from: target,
        to: client,
        counter: &counters.down,
        activity: &activity,
        bandwidth,
    };
    let both = async { tokio::try_join!(pump(&up), pump(&down)) };
    let idle_watch = async {
        match idle {
            Some(limit) => activity.idle_for(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = both => match result {
            Ok(_) => RelayEnd::Closed,
            Err(error) => RelayEnd::Error(error),
        },
        () = idle_watch => RelayEnd::Idle,
    }
}
