//! Watching a connection that should carry nothing more (a UDP association's control
//! connection) until it ends.

use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Ready once `stream` has ended (end of file or an error); whatever arrives before is read
/// and ignored, until it would block. The scratch buffer lives only during the poll, so a
/// future built on this holds nothing but the stream.
pub fn poll_ended<S: AsyncRead + Unpin>(stream: &mut S, context: &mut Context<'_>) -> Poll<()> {
    let mut scratch = [0u8; 1024];
    loop {
        let mut buffer = ReadBuf::new(&mut scratch);
        match std::pin::Pin::new(&mut *stream).poll_read(context, &mut buffer) {
            Poll::Ready(Ok(())) if buffer.filled().is_empty() => return Poll::Ready(()),
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(())) => {}
            Poll::Pending => return Poll::Pending,
        }
    }
}
