//! Bytes in and out of an HTTP exchange: a connection's unread input kept between reads
//! (a pipelined request, the start of a body), and writes paced by bandwidth caps and
//! counted.

use std::future::poll_fn;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::relay::Limiter;

/// How much one read takes at most.
const READ_SIZE: usize = 16 * 1024;

/// Bytes read from a connection and not used yet.
#[derive(Debug, Default)]
pub(super) struct Incoming {
    pub(super) bytes: Vec<u8>,
}

impl Incoming {
    pub(super) fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
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
    }
}

/// Writes under a direction's bandwidth caps, adding what it wrote to a counter.
pub(super) struct Paced<'a> {
    pub(super) limiter: Option<Box<Limiter>>,
    pub(super) count: &'a (dyn Fn(usize) + Sync),
}

impl Paced<'_> {
    /// Writes all of `bytes` to `to`, as fast as the caps allow.
    pub(super) async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        to: &mut W,
        mut bytes: &[u8],
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let allowed = match &mut self.limiter {
                Some(limiter) => {
                    let allowed = poll_fn(|cx| limiter.poll_allowance(cx, bytes.len())).await;
                    limiter.spend(allowed);
                    allowed.max(1).min(bytes.len())
                }
                None => bytes.len(),
            };
            to.write_all(&bytes[..allowed]).await?;
            (self.count)(allowed);
            bytes = &bytes[allowed..];
        }
        Ok(())
    }
}
