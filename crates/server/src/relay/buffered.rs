//! One direction of a relay over streams that must be read and written through buffers
//! (TLS): the buffer is borrowed from a pool while data flows, and given back while the
//! source has nothing to read.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Limiter;

/// The size of a pooled buffer: one TLS record's worth of plaintext.
const BUFFER_SIZE: usize = 16 * 1024;

/// Idle buffers kept for reuse.
const POOL_SIZE: usize = 256;

static POOL: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

fn take_buffer() -> Box<[u8]> {
    let pooled = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
    pooled.unwrap_or_else(|| vec![0; BUFFER_SIZE].into_boxed_slice())
}

fn give_back(buffer: Box<[u8]>) {
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.len() < POOL_SIZE {
        pool.push(buffer);
    }
}

/// One direction's state between polls.
pub(super) struct BufferedFlow {
    buffer: Option<Box<[u8]>>,
    /// The bytes of `buffer` not written yet: `start..end`.
    start: usize,
    end: usize,
    /// The source reached end of file; the destination is still to be shut down.
    end_of_file: bool,
    finished: bool,
    limiter: Option<Box<Limiter>>,
}

impl Drop for BufferedFlow {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            give_back(buffer);
        }
    }
}

impl BufferedFlow {
    pub(super) fn new(limiter: Option<Box<Limiter>>) -> Self {
        Self {
            buffer: None,
            start: 0,
            end: 0,
            end_of_file: false,
            finished: false,
            limiter,
        }
    }

    /// Moves what can be moved now; ready once the end of file has been passed on.
    pub(super) fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        counter: &AtomicU64,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            if let Some(buffer) = &self.buffer {
                while self.start < self.end {
                    let written =
                        ready!(Pin::new(&mut *to).poll_write(cx, &buffer[self.start..self.end]))?;
                    if written == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    self.start += written;
                }
            }
            if self.end_of_file {
                ready!(Pin::new(&mut *to).poll_shutdown(cx))?;
                self.finished = true;
                continue;
            }
            let allowance = match &mut self.limiter {
                Some(limiter) => ready!(limiter.poll_allowance(cx, BUFFER_SIZE)),
                None => BUFFER_SIZE,
            };
            let buffer = self.buffer.get_or_insert_with(take_buffer);
            let mut read = ReadBuf::new(&mut buffer[..allowance.min(BUFFER_SIZE)]);
            match Pin::new(&mut *from).poll_read(cx, &mut read) {
                Poll::Pending => {
                    // Nothing to read: send on what the destination may still hold (a TLS
                    // record in the making), and hold no buffer while waiting.
                    if let Poll::Ready(Err(error)) = Pin::new(&mut *to).poll_flush(cx) {
                        return Poll::Ready(Err(error));
                    }
                    if let Some(buffer) = self.buffer.take() {
                        give_back(buffer);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {
                    let read = read.filled().len();
                    if read == 0 {
                        self.end_of_file = true;
                    } else {
                        (self.start, self.end) = (0, read);
                        counter.fetch_add(read as u64, Ordering::Relaxed);
                        if let Some(limiter) = &mut self.limiter {
                            limiter.spend(read);
                        }
                    }
                }
            }
        }
    }
}
