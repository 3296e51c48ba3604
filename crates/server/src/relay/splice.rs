//! Zero-copy relay: socket → pipe → socket with `splice(2)`.
//!
//! A direction holds a pipe only while data flows: it takes one from a small pool when its
//! source becomes readable and gives it back (empty) as soon as the source has nothing more
//! to read. An idle session holds no pipe, and a busy server does not create and destroy two
//! pipes per connection.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rustix::pipe::{
    fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags,
};
use tokio::io::Interest;

use super::{Bucket, Direction};

/// The pipe capacity asked for: bulk transfers move more per splice (fewer calls per byte).
/// Pipes are only held while data flows, so idle sessions do not pay for it.
const PIPE_SIZE: usize = 256 * 1024;

/// The default capacity, the fallback when a larger one is refused (pipe-user-pages-soft).
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// Empty pipes kept for reuse (each is two descriptors).
const POOL_SIZE: usize = 256;

static POOL: Mutex<Vec<(OwnedFd, OwnedFd)>> = Mutex::new(Vec::new());

/// A pipe (read end, write end), returned to the pool when dropped empty.
struct Pipe {
    ends: Option<(OwnedFd, OwnedFd)>,
    empty: AtomicBool,
    /// The most a splice may move into it: its capacity, so the pipe is never full when the
    /// socket is read and `EAGAIN` always means "socket not ready".
    capacity: usize,
}

impl Pipe {
    fn take() -> io::Result<Self> {
        let pooled = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let ends = match pooled {
            Some(ends) => ends,
            None => {
                let ends = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
                let _ = fcntl_setpipe_size(&ends.1, PIPE_SIZE);
                ends
            }
        };
        let capacity = fcntl_getpipe_size(&ends.1).unwrap_or(DEFAULT_PIPE_SIZE);
        Ok(Self {
            ends: Some(ends),
            empty: AtomicBool::new(true),
            capacity,
        })
    }

    /// The read end and the write end.
    fn ends(&self) -> Option<(&OwnedFd, &OwnedFd)> {
        self.ends.as_ref().map(|(read, write)| (read, write))
    }

    fn set_empty(&self, empty: bool) {
        self.empty.store(empty, Ordering::Relaxed);
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // Only an empty pipe may serve another session; a full one is simply closed.
        if let (true, Some(ends)) = (self.empty.load(Ordering::Relaxed), self.ends.take()) {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOL_SIZE {
                pool.push(ends);
            }
        }
    }
}

/// Moves one direction until end of file, then half-closes the destination.
pub(super) async fn pump(direction: &Direction<'_>) -> io::Result<()> {
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    let mut bucket = direction.bandwidth.map(Bucket::new);
    let mut pipe: Option<Pipe> = None;
    loop {
        let current = match &pipe {
            Some(current) => current,
            None => {
                // Hold a pipe only while data flows.
                direction.from.readable().await?;
                pipe.insert(Pipe::take()?)
            }
        };
        let chunk = match &mut bucket {
            Some(bucket) => bucket.take(current.capacity).await,
            None => current.capacity,
        };
        let Some((pipe_out, pipe_in)) = current.ends() else {
            return Err(io::Error::other("pipe missing"));
        };
        let filled = match direction.from.try_io(Interest::READABLE, || {
            splice(direction.from, None, pipe_in, None, chunk, flags).map_err(io::Error::from)
        }) {
            Ok(filled) => filled,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                // Nothing to read now: give the (empty) pipe back while waiting.
                pipe = None;
                continue;
            }
            Err(error) => return Err(error),
        };
        if let Some(bucket) = &mut bucket {
            bucket.spend(filled);
        }
        if filled == 0 {
            return direction.finish();
        }
        current.set_empty(false);
        let mut in_pipe = filled;
        while in_pipe > 0 {
            in_pipe -= direction
                .to
                .async_io(Interest::WRITABLE, || {
                    splice(pipe_out, None, direction.to, None, in_pipe, flags)
                        .map_err(io::Error::from)
                })
                .await?;
        }
        current.set_empty(true);
        direction.moved(filled);
    }
}
