//! One request forwarded to an `http://` target: its head rewritten (origin-form, no
//! hop-by-hop fields, `Via`), its body sent while the response is read (a client that
//! waits for `100 Continue`, or a server that answers before reading the body, neither
//! blocks), interim responses passed on, the response's body streamed back, and a
//! WebSocket upgrade turned into a tunnel.

use std::time::Duration;

use socksgate_client::ProxyStream;
use socksgate_http::forward::ResponseShape;
use socksgate_http::response::{self, ResponseHead};
use socksgate_http::{Framing, RequestHead};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::body::{self, BodyError};
use super::io::{Incoming, Paced};
use crate::counters::Tally;
use crate::failure::Failure;
use crate::relay::{Caps, Direction};
use crate::stream::ClientStream;

/// How an exchange left the two connections.
pub(super) struct Exchanged {
    /// The client's connection can carry another request.
    pub(super) client_persists: bool,
    /// The target's connection can carry another request.
    pub(super) target_persists: bool,
}

/// Forwards `head` (whose body starts in `from_client`) on `target` and answers the
/// client with the target's response.
#[expect(clippy::too_many_arguments, reason = "one exchange's whole context")]
pub(super) async fn exchange(
    client: &mut ClientStream,
    from_client: &mut Incoming,
    target: &mut ProxyStream,
    head: &RequestHead,
    caps: &Caps,
    counters: &Tally,
    idle: Option<Duration>,
    status: &mut Option<u16>,
) -> Result<Exchanged, Failure> {
    let Some(request) = socksgate_http::forward::request(head, !head.persistent) else {
        return Err(Failure::BadResponse("CONNECT is not forwarded".into()));
    };
    target.write_all(&request).await.map_err(Failure::Reset)?;
    // Heads count as bytes moved, as everything a SOCKS session relays does.
    counters.add_up(request.len());
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut target_read, mut target_write) = tokio::io::split(target);
    let count_up = |n: usize| counters.add_up(n);
    let count_down = |n: usize| counters.add_down(n);
    let mut up = Paced {
        limiter: caps.limiter(Direction::Up),
        count: &count_up,
    };
    let mut down = Paced {
        limiter: caps.limiter(Direction::Down),
        count: &count_down,
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
        status,
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
                        return Err(Failure::BadRequest(socksgate_http::HttpError::bad_request(
                            error.to_string(),
                        )))
                    }
                    Err(BodyError::Write(error)) => send_failed = Some(error),
                },
                result = &mut receive => break result?,
            }
        };
        (answered, sent, send_failed)
    };
    let Answered::Response(response) = answered else {
        // A WebSocket upgrade: a tunnel from here, with what either side already sent.
        let pending = std::mem::take(&mut from_target.bytes);
        return tunnel(
            (&mut client_read, &mut client_write),
            (&mut target_read, &mut target_write),
            from_client,
            &pending,
            (&mut up, &mut down),
        )
        .await;
    };
    Ok(Exchanged {
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
    status: &mut Option<u16>,
) -> Result<Answered, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let head = read_response(incoming, from, &request.method, idle).await?;
        *status = Some(head.status);
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
            paced
                .write(to, &answer)
                .await
                .map_err(Failure::ClientGone)?;
            to.flush().await.map_err(Failure::ClientGone)?;
            return Ok(Answered::Upgraded);
        }
        if (100..200).contains(&head.status) {
            // 100 Continue, 103 Early Hints: passed on, then the final response follows.
            let interim = socksgate_http::forward::response(&head, ResponseShape::default());
            paced
                .write(to, &interim)
                .await
                .map_err(Failure::ClientGone)?;
            to.flush().await.map_err(Failure::ClientGone)?;
            continue;
        }
        // An HTTP/1.0 client cannot read chunks: it gets the data, ended by the close.
        let dechunk = request.minor_version == 0 && head.body == Framing::Chunked;
        let client_persists = request.persistent && head.body != Framing::UntilClose && !dechunk;
        let shape = ResponseShape {
            close: !client_persists,
            dechunk,
            upgrade: false,
        };
        let answer = socksgate_http::forward::response(&head, shape);
        paced
            .write(to, &answer)
            .await
            .map_err(Failure::ClientGone)?;
        body::copy(head.body, dechunk, incoming, from, to, paced, idle)
            .await
            .map_err(|error| match error {
                BodyError::Write(error) => Failure::ClientGone(error),
                BodyError::Read(error) => Failure::Reset(error),
                BodyError::Chunked(error) => Failure::BadResponse(error.to_string()),
            })?;
        return Ok(Answered::Response(Relayed {
            client_persists,
            target_persists: head.persistent,
        }));
    }
}

/// Reads a response head: a target that closes first, sends a malformed head, or is
/// silent for the idle time gets the client a 502 or 504 (by the caller).
async fn read_response<R: AsyncRead + Unpin>(
    incoming: &mut Incoming,
    from: &mut R,
    method: &str,
    idle: Option<Duration>,
) -> Result<ResponseHead, Failure> {
    loop {
        match response::parse(&incoming.bytes, method) {
            Ok(Some((head, used))) => {
                incoming.consume(used);
                return Ok(head);
            }
            Ok(None) => {}
            Err(error) => return Err(Failure::BadResponse(error.to_string())),
        }
        match incoming.fill(from, idle).await {
            Ok(0) => {
                return Err(Failure::BadResponse(
                    "the target closed without a complete response".into(),
                ))
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                return Err(Failure::ResponseTimeout)
            }
            Err(error) => return Err(Failure::BadResponse(error.to_string())),
        }
    }
}

/// After a `101`: bytes both ways until both sides close, under the caps, counted.
async fn tunnel<CR, CW, TR, TW>(
    client: (&mut CR, &mut CW),
    target: (&mut TR, &mut TW),
    from_client: &mut Incoming,
    from_target: &[u8],
    (up, down): (&mut Paced<'_>, &mut Paced<'_>),
) -> Result<Exchanged, Failure>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    TR: AsyncRead + Unpin,
    TW: AsyncWrite + Unpin,
{
    let (client_read, client_write) = client;
    let (target_read, target_write) = target;
    down.write(client_write, from_target)
        .await
        .map_err(Failure::ClientGone)?;
    client_write.flush().await.map_err(Failure::ClientGone)?;
    let upward = async {
        body::copy(
            Framing::UntilClose,
            false,
            from_client,
            client_read,
            target_write,
            up,
            None,
        )
        .await?;
        target_write.shutdown().await.map_err(BodyError::Write)
    };
    let mut from_target = Incoming::default();
    let downward = async {
        body::copy(
            Framing::UntilClose,
            false,
            &mut from_target,
            target_read,
            client_write,
            down,
            None,
        )
        .await?;
        client_write.shutdown().await.map_err(BodyError::Write)
    };
    let (upward, downward) = tokio::join!(upward, downward);
    match upward.and(downward) {
        Ok(()) => Ok(Exchanged {
            client_persists: false,
            target_persists: false,
        }),
        Err(BodyError::Read(error) | BodyError::Write(error)) => Err(Failure::Reset(error)),
        Err(BodyError::Chunked(_)) => Ok(Exchanged {
            client_persists: false,
            target_persists: false,
        }),
    }
}
