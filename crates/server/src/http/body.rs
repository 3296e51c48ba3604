//! Copying a message body from one connection to the other, framed as its head says: a
//! length, the chunked coding (passed on as it is, or as its data alone for an HTTP/1.0
//! client), or the sender's close. What follows the body stays in the `Incoming`.

use std::io;
use std::time::Duration;

use socksgate_http::chunked::{Piece, Scanner};
use socksgate_http::Framing;
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{Incoming, Paced};

/// Why a body did not arrive whole.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Reading the sender failed, it closed early, or it was silent for the idle time.
    Read(io::Error),
    /// Writing to the receiver failed.
    Write(io::Error),
    /// The chunked coding was broken.
    Chunked(socksgate_http::chunked::ChunkError),
}

/// Copies one body from `from` (its first bytes in `incoming`) to `to`. `dechunk` sends
/// a chunked body's data alone.
pub(super) async fn copy<R, W>(
    framing: Framing,
    dechunk: bool,
    incoming: &mut Incoming,
    from: &mut R,
    to: &mut W,
    paced: &mut Paced<'_>,
    idle: Option<Duration>,
) -> Result<(), BodyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match framing {
        Framing::Empty => {}
        Framing::Length(mut left) => {
            while left > 0 {
                if incoming.bytes.is_empty() {
                    fill(incoming, from, idle, true).await?;
                }
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(incoming.bytes.len());
                paced
                    .write(to, &incoming.bytes[..take])
                    .await
                    .map_err(BodyError::Write)?;
                incoming.consume(take);
                left -= take as u64;
            }
        }
        Framing::Chunked => {
            // All that one read brought is scanned, then written in one piece (its data
            // pieces alone when de-chunking): a body of one-byte chunks costs a write per
            // read, not one per chunk.
            let mut scanner = Scanner::new();
            let mut data = Vec::new();
            loop {
                let mut at = 0;
                let mut ended = false;
                while at < incoming.bytes.len() {
                    match scanner
                        .next(&incoming.bytes[at..])
                        .map_err(BodyError::Chunked)?
                    {
                        Piece::NeedMore => break,
                        Piece::Data(n) => {
                            if dechunk {
                                data.extend_from_slice(&incoming.bytes[at..at + n]);
                            }
                            at += n;
                        }
                        Piece::Framing(n) => at += n,
                        Piece::End(n) => {
                            at += n;
                            ended = true;
                            break;
                        }
                    }
                }
                let passed = if dechunk {
                    &data[..]
                } else {
                    &incoming.bytes[..at]
                };
                if !passed.is_empty() {
                    paced.write(to, passed).await.map_err(BodyError::Write)?;
                }
                data.clear();
                incoming.consume(at);
                if ended {
                    break;
                }
                fill(incoming, from, idle, true).await?;
            }
        }
        Framing::UntilClose => loop {
            if !incoming.bytes.is_empty() {
                paced
                    .write(to, &incoming.bytes)
                    .await
                    .map_err(BodyError::Write)?;
                incoming.bytes.clear();
            }
            if fill(incoming, from, idle, false).await? == 0 {
                break;
            }
        },
    }
    paced.flush(to).await.map_err(BodyError::Write)
}

/// Reads more; the end of the stream is an error where the body is not over (`needed`).
async fn fill<R: AsyncRead + Unpin>(
    incoming: &mut Incoming,
    from: &mut R,
    idle: Option<Duration>,
    needed: bool,
) -> Result<usize, BodyError> {
    let read = incoming.fill(from, idle).await.map_err(BodyError::Read)?;
    if read == 0 && needed {
        return Err(BodyError::Read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the body ended early",
        )));
    }
    Ok(read)
}
