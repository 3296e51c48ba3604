//! Bytes in and out of an HTTP exchange: a connection's unread input kept between reads
//! (a pipelined request, the start of a body), and writes paced by bandwidth caps, bounded
//! by the idle timeout, counted, and stopped when the fleet halts the session.

use std::future::poll_fn;
use std::io;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::counters::Tally;
use crate::relay::Limiter;

/// How much one read takes at most.
const READ_SIZE: usize = 16 * 1024;

/// Bytes read from a connection and not used yet.
#[derive(Debug, Default)]
pub(super) struct Incoming {
    pub(super) bytes: Vec<u8>,
    /// How far `bytes` has been searched for the empty line that ends a head.
    searched: usize,
}

impl Incoming {
    pub(super) fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, searched: 0 }
    }

    /// Reads more (at most [`READ_SIZE`]); 0 at the end of the stream. Within `wait`
    /// when given, else a timed-out error.
    pub(super) async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        from: &mut R,
        wait: Option<Duration>,
    ) -> io::Result<usize> {
        self.bytes.reserve(READ_SIZE);
        let mut limited = from.take(READ_SIZE as u64);
        let read = limited.read_buf(&mut self.bytes);
        match wait {
            None => read.await,
            Some(wait) => tokio::time::timeout(wait, read)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        }
    }

    /// Drops the first `used` bytes.
    pub(super) fn consume(&mut self, used: usize) {
        self.bytes.drain(..used);
        self.searched = 0;
    }

    /// Whether a request head may be complete here (an empty line arrived), or is over a
    /// cap: only then is it worth parsing. Each byte is searched once.
    pub(super) fn may_hold_a_head(&mut self) -> bool {
        use socksgate_http::request::{MAX_HEAD, MAX_REQUEST_LINE};
        let from = self.searched.min(self.bytes.len()).saturating_sub(2);
        let window = &self.bytes[from..];
        let ended = window.windows(2).any(|pair| pair == b"\n\n")
            || window.windows(3).any(|three| three == b"\n\r\n");
        self.searched = self.bytes.len();
        let no_line_end = !self.bytes.contains(&b'\n');
        ended || self.bytes.len() > MAX_HEAD || (no_line_end && self.bytes.len() > MAX_REQUEST_LINE)
    }
}

/// Writes one direction of an exchange.
pub(super) struct Paced<'a> {
    /// The direction's bandwidth caps, when any.
    pub(super) limiter: Option<Box<Limiter>>,
    /// The session's counts (and its halt).
    pub(super) counters: &'a Tally,
    /// Whether these writes go to the target (counted up) or the client (down).
    pub(super) up: bool,
    /// How long one write may wait for its peer to take the bytes.
    pub(super) idle: Option<Duration>,
}

impl Paced<'_> {
    /// Writes all of `bytes` to `to`, as fast as the caps allow.
    pub(super) async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        to: &mut W,
        mut bytes: &[u8],
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let counters = self.counters;
            if poll_fn(|task| Poll::Ready(counters.halted(task))).await {
                return Err(io::Error::other(HALTED));
            }
            let allowed = match &mut self.limiter {
                Some(limiter) => {
                    let allowed = poll_fn(|cx| limiter.poll_allowance(cx, bytes.len())).await;
                    limiter.spend(allowed);
                    allowed.clamp(1, bytes.len())
                }
                None => bytes.len(),
            };
            let write = to.write_all(&bytes[..allowed]);
            match self.idle {
                None => write.await?,
                Some(idle) => tokio::time::timeout(idle, write)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))?,
            }
            if self.up {
                self.counters.add_up(allowed);
            } else {
                self.counters.add_down(allowed);
            }
            bytes = &bytes[allowed..];
        }
        Ok(())
    }
}

impl Paced<'_> {
    /// Flushes `to` (a TLS stream takes its peer's time only here), within the idle time.
    pub(super) async fn flush<W: AsyncWrite + Unpin>(&mut self, to: &mut W) -> io::Result<()> {
        match self.idle {
            None => to.flush().await,
            Some(idle) => tokio::time::timeout(idle, to.flush())
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        }
    }
}

/// The error a write fails with once the fleet halted the session (its user is over the
/// byte quota).
pub(super) const HALTED: &str = "stopped: fleet.quota_per_user";
