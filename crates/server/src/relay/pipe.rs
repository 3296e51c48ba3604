//! Pipes for `splice(2)`, pooled: a direction holds one only while a burst of data flows,
//! so an idle session holds none and a busy server does not create and destroy two pipes
//! per connection.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, PoisonError};

use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, PipeFlags};

/// The pipe capacity asked for: bulk transfers move more per splice (fewer calls per byte).
const PIPE_SIZE: usize = 256 * 1024;

/// The default capacity, the fallback when a larger one is refused (pipe-user-pages-soft).
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// Empty pipes kept for reuse (each is two descriptors).
pub(super) const POOL_SIZE: usize = 256;

/// A pipe's two ends and its capacity, as kept in the pool.
struct PipeFds {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

static POOL: Mutex<Vec<PipeFds>> = Mutex::new(Vec::new());

/// A pipe, returned to the pool when dropped empty (a pipe with data in it is closed).
pub(super) struct Pipe {
    ends: Option<PipeFds>,
    /// Bytes in it, not yet written out.
    pub(super) filled: usize,
}

impl Pipe {
    pub(super) fn take() -> io::Result<Self> {
        let pooled = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let ends = match pooled {
            Some(ends) => ends,
            None => {
                let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
                let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
                let capacity = fcntl_getpipe_size(&write).unwrap_or(DEFAULT_PIPE_SIZE);
                PipeFds {
                    read,
                    write,
                    capacity,
                }
            }
        };
        Ok(Self {
            ends: Some(ends),
            filled: 0,
        })
    }

    /// The most one splice may move in: the whole capacity, so the pipe is never full when
    /// the socket is read and `EAGAIN` always means "socket not ready".
    pub(super) fn capacity(&self) -> usize {
        self.ends.as_ref().map_or(0, |ends| ends.capacity)
    }

    /// The read end and the write end.
    pub(super) fn ends(&self) -> io::Result<(&OwnedFd, &OwnedFd)> {
        match &self.ends {
            Some(ends) => Ok((&ends.read, &ends.write)),
            None => Err(io::Error::other("pipe already closed")),
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if let (0, Some(ends)) = (self.filled, self.ends.take()) {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOL_SIZE {
                pool.push(ends);
            }
        }
    }
}
