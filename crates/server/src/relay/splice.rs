//! Zero-copy relay: socket → pipe → socket with `splice(2)`.

use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;

use super::{Bucket, Direction};

/// At most this much is moved per splice: the default pipe capacity, so the pipe is never
/// full when the socket is read and a `EAGAIN` always means "socket not ready".
const CHUNK: usize = 64 * 1024;

/// Moves one direction until end of file, then half-closes the destination.
pub(super) async fn pump(direction: &Direction<'_>) -> io::Result<()> {
    let (pipe_out, pipe_in): (OwnedFd, OwnedFd) =
        pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    let mut bucket = direction.bandwidth.map(Bucket::new);
    loop {
        let chunk = match &mut bucket {
            Some(bucket) => bucket.take(CHUNK).await,
            None => CHUNK,
        };
        let filled = direction
            .from
            .async_io(Interest::READABLE, || {
                splice(direction.from, None, &pipe_in, None, chunk, flags).map_err(io::Error::from)
            })
            .await?;
        if let Some(bucket) = &mut bucket {
            bucket.spend(filled);
        }
        if filled == 0 {
            return direction.finish();
        }
        let mut in_pipe = filled;
        while in_pipe > 0 {
            in_pipe -= direction
                .to
                .async_io(Interest::WRITABLE, || {
                    splice(&pipe_out, None, direction.to, None, in_pipe, flags)
                        .map_err(io::Error::from)
                })
                .await?;
        }
        direction.moved(filled);
    }
}
