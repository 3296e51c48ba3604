//! One request forwarded to an `http://` target: its head rewritten (origin-form, no
//! hop-by-hop fields, `Via`), its body sent while the response is read (a client that
//! waits for `100 Continue`, or a server that answers before reading the body, neither
//! blocks), interim responses passed on, the response's body streamed back, and a
//! WebSocket upgrade handed over as a tunnel.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use socksgate_client::ProxyStream;
use socksgate_http::forward::ResponseShape;
use socksgate_http::response::{self, ResponseHead};
use socksgate_http::{Framing, HttpError, RequestHead};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::{self, BodyError};
use super::io::{Incoming, Paced, HALTED};
use crate::counters::Tally;
use crate::failure::Failure;
use crate::relay::{Caps, Direction};
use crate::stream::ClientStream;

/// The most interim (1xx) responses one request may get before its final one.
const MAX_INTERIM: usize = 16;

/// How an exchange ended.
pub(super) enum Exchanged {
    /// The response was relayed whole.
    Answered {
        /// The client's connection can carry another request.
        client_persists: bool,
        /// The target's connection can carry another request.
        target_persists: bool,
    },
    /// A WebSocket upgrade: the `101` was passed on, and what either side sent after its
    /// head has reached the other. The two connections are a tunnel from here.
    Upgraded,
}

/// Whether a target connection kept from an earlier request is still usable: it has
/// neither closed nor sent anything unasked (a 408 before closing, say). Polled once,
/// without waiting.
pub(super) fn still_open(stream: &mut ProxyStream) -> bool {
    let mut probe = [0u8; 1];
    let mut buffer = ReadBuf::new(&mut probe);
    let mut task = Context::from_waker(Waker::noop());
    // A peek would be exact on TCP, but the stream may be TLS: a byte read here means the
    // connection is dropped anyway.
    matches!(
        Pin::new(stream).poll_read(&mut task, &mut buffer),
        Poll::Pending
    )
}

/// How far an exchange got, for the caller's answer and its retry.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// The status of the final response head (or the `101`) that reached the client.
    pub(super) status: Option<u16>,
    /// Whether anything of the target's (an interim response too) reached the client.
    pub(super) client_written: bool,
    /// Whether any byte came back from the target.
    pub(super) target_answered: bool,
}

/// Forwards `head` (whose body starts in `from_client`) on `target` and answers the
/// client with the target's response, noting its `progress`.
#[expect(clippy::too_many_arguments, reason = "one exchange's whole context")]
pub(super) async fn exchange(
    client: &mut ClientStream,
    from_client: &mut Incoming,
    target: &mut ProxyStream,
    head: &RequestHead,
    caps: &Caps,
    counters: &Tally,
    idle: Option<Duration>,
    progress: &mut Progress,
) -> Result<Exchanged, Failure> {
    let Some(request) = socksgate_http::forward::request(head, !head.persistent) else {
        return Err(Failure::BadRequest(HttpError::bad_request(
            "CONNECT is not forwarded",
        )));
    };
    let mut up = Paced {
        limiter: caps.limiter(Direction::Up),
        counters,
        up: true,
        idle,
    };
    // Heads count as bytes moved, as everything a SOCKS session relays does. A TLS or
    // RFC 1961 layer may hold the head until flushed (a request without a body writes
    // nothing else).
    up.write(target, &request).await.map_err(Failure::Reset)?;
    up.flush(target).await.map_err(Failure::Reset)?;
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut target_read, mut target_write) = tokio::io::split(target);
    let mut down = Paced {
        limiter: caps.limiter(Direction::Down),
        counters,
        up: false,
        idle,
    };
    let send = body::copy(
        head.body,
        false,
        from_client,
        &mut client_read,
        &mut target_write,
        &mut up,
        idle,
    );
    let mut from_target = Incoming::default();
    let receive = respond(
        head,
        &mut from_target,
        &mut target_read,
        &mut client_write,
        &mut down,
        idle,
        progress,
    );
    // In a block, so that both halves' futures are gone (with their borrows) after it.
    let (answered, sent, send_failed) = {
        tokio::pin!(send, receive);
        let mut sent = head.body == Framing::Empty;
        let mut send_failed = None;
        let answered = loop {
            tokio::select! {
                result = &mut send, if !sent && send_failed.is_none() => match result {
                    Ok(()) => sent = true,
                    // A client gone mid-body ends the exchange; a target that stopped
                    // reading may still be answering (413, 401): wait for that.
                    Err(BodyError::Read(error)) => return Err(Failure::ClientGone(error)),
                    Err(BodyError::Chunked(error)) => {
                        return Err(Failure::BadRequest(HttpError::bad_request(
                            error.to_string(),
                        )))
                    }
                    Err(BodyError::Write(error)) if error.to_string() == HALTED => {
                        return Err(Failure::QuotaExceeded)
                    }
                    Err(BodyError::Write(error)) => send_failed = Some(error),
                },
                result = &mut receive => break result?,
            }
        };
        (answered, sent, send_failed)
    };
    let Answered::Response(response) = answered else {
        // What the target sent after its 101, and the client after its request, go
        // across; the session then relays the two connections as a tunnel.
        down.write(&mut client_write, &from_target.bytes)
            .await
            .map_err(Failure::ClientGone)?;
        down.flush(&mut client_write)
            .await
            .map_err(Failure::ClientGone)?;
        let pending = std::mem::take(&mut from_client.bytes);
        up.write(&mut target_write, &pending)
            .await
            .map_err(Failure::Reset)?;
        up.flush(&mut target_write).await.map_err(Failure::Reset)?;
        return Ok(Exchanged::Upgraded);
    };
    Ok(Exchanged::Answered {
        // A body the target answered before reading leaves the client's stream mid-body.
        client_persists: sent && response.client_persists,
        target_persists: sent
            && send_failed.is_none()
            && response.target_persists
            && from_target.bytes.is_empty(),
    })
}

/// What the response side ended with.
enum Answered {
    /// A response relayed whole.
    Response(Relayed),
    /// A `101 Switching Protocols` to a WebSocket upgrade, passed on.
    Upgraded,
}

struct Relayed {
    client_persists: bool,
    target_persists: bool,
}

/// Reads the target's response (after any interim ones) and relays it to the client.
async fn respond<R, W>(
    request: &RequestHead,
    incoming: &mut Incoming,
    from: &mut R,
    to: &mut W,
    paced: &mut Paced<'_>,
    idle: Option<Duration>,
    progress: &mut Progress,
) -> Result<Answered, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let client_gone = |error: std::io::Error| {
        if error.to_string() == HALTED {
            Failure::QuotaExceeded
        } else {
            Failure::ClientGone(error)
        }
    };
    for _ in 0..=MAX_INTERIM {
        let head = read_response(incoming, from, &request.method, idle, progress).await?;
        if head.status == 101 {
            if !request.websocket {
                return Err(Failure::BadResponse(
                    "101 Switching Protocols to a request that asked for no upgrade".into(),
                ));
            }
            let shape = ResponseShape {
                upgrade: true,
                ..ResponseShape::default()
            };
            let answer = socksgate_http::forward::response(&head, shape);
            progress.client_written = true;
            paced.write(to, &answer).await.map_err(client_gone)?;
            paced.flush(to).await.map_err(Failure::ClientGone)?;
            progress.status = Some(101);
            return Ok(Answered::Upgraded);
        }
        if (100..200).contains(&head.status) {
            // 100 Continue, 103 Early Hints: passed on, then the final response follows.
            // Never to an HTTP/1.0 client, which would take it for the response (RFC 9110
            // §15.2).
            if request.minor_version == 1 {
                let interim = socksgate_http::forward::response(&head, ResponseShape::default());
                progress.client_written = true;
                paced.write(to, &interim).await.map_err(client_gone)?;
                paced.flush(to).await.map_err(Failure::ClientGone)?;
            }
            continue;
        }
        // An HTTP/1.0 client cannot read chunks: it gets the data, ended by the close.
        let dechunk = request.minor_version == 0 && head.body == Framing::Chunked;
        let client_persists = request.persistent && head.body != Framing::UntilClose && !dechunk;
        let shape = ResponseShape {
            close: !client_persists,
            dechunk,
            upgrade: false,
            keep_alive: client_persists && request.minor_version == 0,
        };
        let answer = socksgate_http::forward::response(&head, shape);
        progress.client_written = true;
        paced.write(to, &answer).await.map_err(client_gone)?;
        progress.status = Some(head.status);
        body::copy(head.body, dechunk, incoming, from, to, paced, idle)
            .await
            .map_err(|error| match error {
                BodyError::Write(error) => client_gone(error),
                BodyError::Read(error) => Failure::Reset(error),
                BodyError::Chunked(error) => Failure::BadResponse(error.to_string()),
            })?;
        return Ok(Answered::Response(Relayed {
            client_persists,
            target_persists: head.persistent,
        }));
    }
    Err(Failure::BadResponse(format!(
        "more than {MAX_INTERIM} interim responses"
    )))
}

/// Reads a response head: a target that closes first, sends a malformed head, or is
/// silent for the idle time gets the client a 502 or 504 (by the caller).
async fn read_response<R: AsyncRead + Unpin>(
    incoming: &mut Incoming,
    from: &mut R,
    method: &str,
    idle: Option<Duration>,
    progress: &mut Progress,
) -> Result<ResponseHead, Failure> {
    loop {
        // Parsed only once a head may be complete: a target trickling a head a byte at a
        // time costs one parse.
        if incoming.may_hold_a_head() {
            match response::parse(&incoming.bytes, method) {
                Ok(Some((head, used))) => {
                    incoming.consume(used);
                    return Ok(head);
                }
                Ok(None) => {}
                Err(error) => return Err(Failure::BadResponse(error.to_string())),
            }
        }
        match incoming.fill(from, idle).await {
            // Closed before a byte of an answer: the connection, not the response, failed
            // (a kept one the target had given up on), which a retry may mend.
            Ok(0) if !progress.target_answered => {
                return Err(Failure::Reset(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the target closed without answering",
                )))
            }
            Ok(0) => {
                return Err(Failure::BadResponse(
                    "the target closed without a complete response".into(),
                ))
            }
            Ok(_) => progress.target_answered = true,
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                return Err(Failure::ResponseTimeout)
            }
            Err(error) => return Err(Failure::BadResponse(error.to_string())),
        }
    }
}
