//! Portable relay: read into a buffer, write it out.

use std::io;

use tokio::io::Interest;

use super::Direction;

const CHUNK: usize = 16 * 1024;

/// Moves one direction until end of file, then half-closes the destination.
pub(super) async fn pump(direction: &Direction<'_>) -> io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    loop {
        let filled = direction
            .from
            .async_io(Interest::READABLE, || direction.from.try_read(&mut buffer))
            .await?;
        if filled == 0 {
            return direction.finish();
        }
        let mut written = 0;
        while written < filled {
            written += direction
                .to
                .async_io(Interest::WRITABLE, || {
                    direction.to.try_write(&buffer[written..filled])
                })
                .await?;
        }
        direction.moved(filled);
    }
}
