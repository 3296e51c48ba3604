//! A session whose request is known: the client, the handshake waiting for its reply, and
//! the request, handed to the command that serves it; and how replies go out.

use std::io;
use std::time::Duration;

use socksgate_proto::server::{Request, ServerHandshake};
use socksgate_proto::{Address, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::access_log::AccessRecord;
use crate::stream::ClientStream;
use crate::Shared;

/// After a failure reply, how long the client gets to read it and close.
const LINGER: Duration = Duration::from_secs(2);

/// A session whose request is known, waiting for its command to run.
pub(crate) struct Requested<'a> {
    pub(crate) client: &'a mut ClientStream,
    pub(crate) machine: ServerHandshake,
    pub(crate) request: Request,
    /// Bytes the client sent after its request, for the target.
    pub(crate) pipelined: Vec<u8>,
    pub(crate) shared: &'a Shared,
    pub(crate) record: &'a mut AccessRecord,
}

impl Requested<'_> {
    /// Sends a reply (the first, or BIND's second).
    pub(crate) async fn reply(&mut self, reply: Reply, bound: &Address) -> io::Result<()> {
        self.record.reply = Some(reply);
        if self.machine.reply(reply, bound).is_err() {
            return Err(io::Error::other("reply out of order"));
        }
        flush(self.client, &mut self.machine).await
    }

    /// Sends a failure reply and closes the connection (RFC 1928 §6: at once, and no later
    /// than 10 seconds).
    pub(crate) async fn refuse(&mut self, reply: Reply) {
        if self.reply(reply, &Address::unspecified()).await.is_ok() {
            linger_close(self.client).await;
        }
    }
}

/// Sends what the handshake machine has to send.
pub(crate) async fn flush(
    client: &mut ClientStream,
    machine: &mut ServerHandshake,
) -> io::Result<()> {
    let pending = machine.pending_output();
    if !pending.is_empty() {
        client.write_all(pending).await?;
        // A TLS stream may hold the last record until flushed.
        client.flush().await?;
        let written = pending.len();
        machine.output_written(written);
    }
    Ok(())
}

/// Closes so that the client reads the last reply: send FIN, then wait briefly for the
/// client's own close, discarding what it still sends. Closing with unread input would send
/// a reset, which can destroy the reply before the client reads it.
pub(crate) async fn linger_close(client: &mut ClientStream) {
    if client.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    let drain = async {
        let mut total = 0usize;
        while total < 64 * 1024 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
