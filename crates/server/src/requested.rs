//! A session whose request is known: the client, what its reply is written in (the SOCKS
//! handshake waiting for it, or HTTP), and the request, handed to the command that serves
//! it; and how replies go out.

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

/// How a session's replies are written.
pub(crate) enum Answer {
    /// By the SOCKS handshake machine, which waits for the reply.
    Socks(ServerHandshake),
    /// In HTTP: a reply code becomes a status (`reply_status`); success is
    /// `200 Connection established` for a CONNECT (`tunnel`), and nothing for a forwarded
    /// request, whose answer is the target's.
    Http {
        /// Whether the request is a CONNECT.
        tunnel: bool,
    },
}

/// A session whose request is known, waiting for its command to run.
pub(crate) struct Requested<'a> {
    pub(crate) client: &'a mut ClientStream,
    pub(crate) machine: Answer,
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
        let tunnel = match &mut self.machine {
            Answer::Socks(machine) => {
                if machine.reply(reply, bound).is_err() {
                    return Err(io::Error::other("reply out of order"));
                }
                return flush(self.client, machine).await;
            }
            Answer::Http { tunnel } => *tunnel,
        };
        let status = reply_status(reply);
        self.record.set_status(status);
        let answer = match status {
            200 if tunnel => socksgate_http::status::CONNECTED.to_vec(),
            200 => return Ok(()),
            status => socksgate_http::status::answer(status, &reply.to_string(), &[]),
        };
        // A client that does not read its answer does not hold the session up.
        let sent = async {
            self.client.write_all(&answer).await?;
            self.client.flush().await
        };
        tokio::time::timeout(self.shared.timeouts.handshake, sent)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Sends a failure reply and closes the connection (RFC 1928 §6: at once, and no later
    /// than 10 seconds).
    pub(crate) async fn refuse(&mut self, reply: Reply) {
        if self.reply(reply, &Address::unspecified()).await.is_ok() {
            linger_close(self.client).await;
        }
    }
}

/// The HTTP status for a SOCKS reply code: the command's outcome in the other protocol.
pub(crate) fn reply_status(reply: Reply) -> u16 {
    match reply {
        Reply::SUCCEEDED => 200,
        Reply::NOT_ALLOWED => 403,
        Reply::TTL_EXPIRED => 504,
        Reply::COMMAND_NOT_SUPPORTED => 501,
        Reply::ADDRESS_TYPE_NOT_SUPPORTED => 400,
        // Unreachable, refused, or the proxy's own failure on the way: a bad gateway.
        _ => 502,
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
