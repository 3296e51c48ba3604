//! One client session: handshake, request, outbound connection, relay, access log.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socksgate_proto::server::{Request, ServerError, ServerEvent, ServerHandshake, ServerOptions};
use socksgate_proto::{Address, Command, Reply, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::access_log::AccessRecord;
use crate::outbound::{self, ConnectError};
use crate::relay::{self, RelayEnd};
use crate::{reply, Shared};

/// The longest handshake message is a SOCKS4a request: 8 + 256 + 256 bytes. A client that
/// sends more without completing a message is not speaking SOCKS.
const MAX_HANDSHAKE_BUFFER: usize = 1024;

/// After a failure reply, how long the client gets to read it and close.
const LINGER: Duration = Duration::from_secs(2);

/// Why a session ended before or instead of relaying.
#[derive(Debug)]
enum Failure {
    /// The client broke the protocol or offered nothing acceptable.
    Handshake(ServerError),
    /// The client did not complete the handshake in time.
    HandshakeTimeout,
    /// The client sent too much without completing a message.
    HandshakeTooLong,
    /// The client closed or reset the connection during the handshake.
    ClientGone(io::Error),
    /// The request names a command this server does not serve.
    UnsupportedCommand,
    /// The target could not be reached.
    Connect(ConnectError),
}

impl Failure {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Handshake(_) | Self::HandshakeTooLong => "bad-handshake",
            Self::HandshakeTimeout => "handshake-timeout",
            Self::ClientGone(_) => "client-gone",
            Self::UnsupportedCommand => "unsupported-command",
            Self::Connect(ConnectError::TimedOut) => "connect-timeout",
            Self::Connect(ConnectError::Resolve(_)) => "unresolved",
            Self::Connect(_) => "connect-failed",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::Handshake(error) => Some(error.to_string()),
            Self::ClientGone(error) => Some(error.to_string()),
            Self::Connect(error) => Some(error.to_string()),
            _ => None,
        }
    }
}

/// Serves one accepted connection to the end.
pub(crate) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    listener: SocketAddr,
    options: ServerOptions,
    shared: &Shared,
) {
    let mut record = AccessRecord::new(peer, listener);
    let _ = client.set_nodelay(true);
    let result = run(&mut client, options, shared, &mut record).await;
    if !shared.access_log {
        return;
    }
    match result {
        Ok(RelayEnd::Closed) => record.emit("closed", None),
        Ok(RelayEnd::Idle) => record.emit("idle-timeout", None),
        Ok(RelayEnd::Error(error)) => record.emit("reset", Some(&error)),
        Err(failure) => {
            let detail = failure.detail();
            record.emit(
                failure.outcome(),
                detail.as_ref().map(|d| d as &dyn std::fmt::Display),
            )
        }
    }
}

async fn run(
    client: &mut TcpStream,
    options: ServerOptions,
    shared: &Shared,
    record: &mut AccessRecord,
) -> Result<RelayEnd, Failure> {
    let handshake = tokio::time::timeout(shared.timeouts.handshake, read_request(client, options));
    let (mut machine, request, pipelined) = match handshake.await {
        Ok(result) => result?,
        Err(_) => return Err(Failure::HandshakeTimeout),
    };
    record.version = Some(request.version);
    record.command = Some(request.command);
    record.target = Some(request.target.clone());
    if !request.user_id.is_empty() {
        record.user = Some(String::from_utf8_lossy(&request.user_id).into_owned());
    }

    if request.command != Command::CONNECT {
        refuse(client, &mut machine, Reply::COMMAND_NOT_SUPPORTED, record).await;
        return Err(Failure::UnsupportedCommand);
    }
    let connected = outbound::connect(
        &request.target,
        shared.resolver.as_ref(),
        shared.timeouts.connect,
    )
    .await;
    let mut target = match connected {
        Ok(target) => target,
        Err(error) => {
            refuse(
                client,
                &mut machine,
                reply::for_connect_error(&error),
                record,
            )
            .await;
            return Err(Failure::Connect(error));
        }
    };
    let _ = target.set_nodelay(true);
    let bound = target
        .local_addr()
        .map_or(Address::unspecified(), Address::from);
    answer(client, &mut machine, Reply::SUCCEEDED, &bound, record)
        .await
        .map_err(Failure::ClientGone)?;
    Ok(relay::relay(
        client,
        &mut target,
        &pipelined,
        shared.timeouts.idle,
        &record.counters,
    )
    .await)
}

/// Runs the handshake up to the request. Returns the machine (waiting for the reply), the
/// request, and any bytes the client sent after it.
async fn read_request(
    client: &mut TcpStream,
    options: ServerOptions,
) -> Result<(ServerHandshake, Request, Vec<u8>), Failure> {
    let mut machine = ServerHandshake::new(options);
    let mut input = Vec::with_capacity(256);
    loop {
        match machine.feed(&input) {
            Ok(Step::Event { used, event }) => {
                input.drain(..used);
                match event {
                    ServerEvent::Request(request) => return Ok((machine, request, input)),
                    ServerEvent::MethodSelected(_) => {}
                    // Only "no authentication" is offered until authentication back ends
                    // exist; a machine configured that way never asks for a verdict.
                    ServerEvent::Credentials(_) | ServerEvent::Gssapi(_) => {
                        let _ = machine.authenticated(false);
                        flush(client, &mut machine)
                            .await
                            .map_err(Failure::ClientGone)?;
                        return Err(Failure::Handshake(ServerError::NoAcceptableMethod));
                    }
                }
            }
            Ok(Step::NeedMore { .. } | Step::Idle) => {
                flush(client, &mut machine)
                    .await
                    .map_err(Failure::ClientGone)?;
                if input.len() >= MAX_HANDSHAKE_BUFFER {
                    return Err(Failure::HandshakeTooLong);
                }
                let read = client
                    .read_buf(&mut input)
                    .await
                    .map_err(Failure::ClientGone)?;
                if read == 0 {
                    return Err(Failure::ClientGone(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            Err(error) => {
                // The machine may have queued a reply that says why (0xFF, 0x08, 0x5B, …).
                let _ = flush(client, &mut machine).await;
                linger_close(client).await;
                return Err(Failure::Handshake(error));
            }
        }
    }
}

/// Sends the reply to the request.
async fn answer(
    client: &mut TcpStream,
    machine: &mut ServerHandshake,
    reply: Reply,
    bound: &Address,
    record: &mut AccessRecord,
) -> io::Result<()> {
    record.reply = Some(reply);
    if machine.reply(reply, bound).is_err() {
        return Err(io::Error::other("reply out of order"));
    }
    flush(client, machine).await
}

/// Sends a failure reply and closes the connection (RFC 1928 §6: at once, and no later
/// than 10 seconds).
async fn refuse(
    client: &mut TcpStream,
    machine: &mut ServerHandshake,
    reply: Reply,
    record: &mut AccessRecord,
) {
    if answer(client, machine, reply, &Address::unspecified(), record)
        .await
        .is_ok()
    {
        linger_close(client).await;
    }
}

async fn flush(client: &mut TcpStream, machine: &mut ServerHandshake) -> io::Result<()> {
    let pending = machine.pending_output();
    if !pending.is_empty() {
        client.write_all(pending).await?;
        let written = pending.len();
        machine.output_written(written);
    }
    Ok(())
}

/// Closes so that the client reads the last reply: send FIN, then wait briefly for the
/// client's own close, discarding what it still sends. Closing with unread input would send
/// a reset, which can destroy the reply before the client reads it.
async fn linger_close(client: &mut TcpStream) {
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
