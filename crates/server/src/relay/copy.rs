//! Portable relay: read into a buffer, write it out.

use std::io;

use tokio::io::Interest;

use super::{Bucket, Direction};

const CHUNK: usize = 16 * 1024;

/// Moves one direction until end of file, then half-closes the destination.
pub(super) async fn pump(direction: &Direction<'_>) -> io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    let mut bucket = direction.bandwidth.map(Bucket::new);
    loop {
        let chunk = match &mut bucket {
            Some(bucket) => bucket.take(CHUNK).await,
            None => CHUNK,
        };
        let filled = direction
            .from
            .async_io(Interest::READABLE, || {
                direction.from.try_read(&mut buffer[..chunk])
            })
            .await?;
        if let Some(bucket) = &mut bucket {
            bucket.spend(filled);
        }
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
