//! HTTP proxy clients on a SOCKS listener: the first byte of a connection (after TLS on a
//! TLS listener) told the session it is HTTP. CONNECT (RFC 9110 §9.3.6) is a SOCKS
//! CONNECT answered in HTTP, relayed the same way; a request for an `http://` target
//! (RFC 9112 §3.2.2) is forwarded, and the connection then carries the client's next
//! request, each authorised on its own target and logged as it ends.
//!
//! The same users, throttle, rules, limits and caps as SOCKS: `Proxy-Authorization: Basic`
//! goes through `login::log_in` like RFC 1929 credentials, a request is decided by
//! `authorize` (CONNECT as `connect`, a forwarded request as `http`), and its target is
//! reached by `command::reach` (directly or through the rule's route). Every refusal is a
//! status with a one-line body, and closes the connection.

mod body;
mod forward;
mod io;

use std::time::Duration;

use socksgate_auth::Refusal;
use socksgate_client::ProxyStream;
use socksgate_http::{HttpError, RequestHead, Target};
use socksgate_proto::server::Request;
use socksgate_proto::{Address, Command, Version};
use tokio::io::AsyncWriteExt;

use self::io::Incoming;
use crate::access_log::{AccessRecord, HttpExchange};
use crate::authorize::{self, Grant};
use crate::command::{self, Established};
use crate::ended::{record_end, Ended};
use crate::failure::Failure;
use crate::login::log_in;
use crate::requested::{linger_close, reply_status, Answer, Requested};
use crate::session_table::Listing;
use crate::stream::{ClientStream, ClientTcp};
use crate::Shared;

/// The realm of socksgate's `407` challenge.
const REALM: &str = "socksgate";

/// How long a client's persistent connection may wait for its next request.
const BETWEEN_REQUESTS: Duration = Duration::from_secs(60);

/// What a listener lets HTTP clients do without credentials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpAccess {
    /// Requests without credentials are served (the listener allows "none").
    pub(crate) anonymous: bool,
    /// Basic credentials are checked (the listener allows "password").
    pub(crate) password: bool,
}

/// What an HTTP client's connection leads to.
pub(crate) enum HttpNext {
    /// A CONNECT granted and answered: relayed like a SOCKS CONNECT (the session's record
    /// is the CONNECT's).
    Tunnel(Established),
    /// Forwarded requests until the connection ended, each recorded as it ended.
    Requests,
}

/// Serves an HTTP client whose first bytes are `input`.
pub(crate) async fn serve(
    client: &mut ClientStream,
    input: Vec<u8>,
    access: HttpAccess,
    shared: &Shared,
    record: &mut AccessRecord,
    listing: &mut Option<Box<Listing>>,
) -> Result<HttpNext, Failure> {
    record.http = Some(Box::new(HttpExchange {
        method: String::new(),
        status: None,
    }));
    let mut incoming = Incoming::new(input);
    // The target connection the last request left open, for the next one to the same
    // target under the same rule.
    let mut kept: Option<KeptTarget> = None;
    let mut first = true;
    loop {
        let deadline = if first {
            tokio::time::Instant::from_std(record.started) + shared.timeouts.handshake
        } else {
            tokio::time::Instant::now() + BETWEEN_REQUESTS
        };
        let head = match read_head(client, &mut incoming, deadline, first, shared).await {
            Ok(Some(head)) => head,
            // The client closed (or went quiet) between requests: a normal end.
            Ok(None) => return Ok(HttpNext::Requests),
            Err(failure) if first => return Err(failure),
            Err(failure @ Failure::BadRequest(_)) => {
                let request = record.for_http_request("", None, Command::HTTP_REQUEST);
                record_end(shared, &request, Err(failure));
                return Ok(HttpNext::Requests);
            }
            Err(_) => return Ok(HttpNext::Requests),
        };
        first = false;
        let mut head = head;
        if head.is_connect() {
            return connect(client, head, incoming, access, shared, record, listing).await;
        }
        let mut request = record.for_http_request(
            &head.method,
            Some(head.target.address()),
            Command::HTTP_REQUEST,
        );
        let credentials = head.credentials.take();
        let result = async {
            admit(client, credentials, access, shared, record).await?;
            request.subject = record.subject.clone();
            forwarded(
                client,
                &head,
                &mut incoming,
                access,
                shared,
                &mut request,
                &mut kept,
            )
            .await
        }
        .await;
        let persists = matches!(result, Ok(true));
        record_end(shared, &request, result.map(|_| Ended::Forwarded));
        if !persists {
            return Ok(HttpNext::Requests);
        }
    }
}

/// Reads the next request head. `Ok(None)`: the client closed, or did not begin another
/// request in time, between requests. A malformed head is answered here.
async fn read_head(
    client: &mut ClientStream,
    incoming: &mut Incoming,
    deadline: tokio::time::Instant,
    first: bool,
    shared: &Shared,
) -> Result<Option<RequestHead>, Failure> {
    let mut started = first;
    let mut deadline = deadline;
    loop {
        match socksgate_http::request::parse(&incoming.bytes) {
            Ok(Some((head, used))) => {
                incoming.consume(used);
                return Ok(Some(head));
            }
            Ok(None) => {}
            Err(error) => {
                answer(client, &error.answer()).await;
                return Err(Failure::BadRequest(error));
            }
        }
        let read = tokio::time::timeout_at(deadline, incoming.fill(client, None)).await;
        match read {
            Ok(Ok(0)) if !started && incoming.bytes.is_empty() => return Ok(None),
            Ok(Ok(0)) => {
                return Err(Failure::ClientGone(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ))
            }
            Ok(Ok(_)) => {
                if !started {
                    // The next request began: its head within the handshake timeout.
                    started = true;
                    deadline = tokio::time::Instant::now() + shared.timeouts.handshake;
                }
            }
            Ok(Err(error)) => return Err(Failure::ClientGone(error)),
            Err(_) if !started => return Ok(None),
            Err(_) => {
                let error = HttpError::new(408, "the request head did not arrive in time");
                answer(client, &error.answer()).await;
                return Err(Failure::HandshakeTimeout);
            }
        }
    }
}

/// Writes one of socksgate's own answers, then closes as after a SOCKS failure reply.
async fn answer(client: &mut ClientStream, bytes: &[u8]) {
    if client.write_all(bytes).await.is_ok() && client.flush().await.is_ok() {
        linger_close(client).await;
    }
}

/// Checks the request's credentials, or asks for them (`407`) where the listener needs
/// them. A connection keeps the user its first accepted credentials proved; credentials
/// for that same user on its later requests are not checked again.
async fn admit(
    client: &mut ClientStream,
    credentials: Option<socksgate_auth::Credentials>,
    access: HttpAccess,
    shared: &Shared,
    record: &mut AccessRecord,
) -> Result<(), Failure> {
    match credentials {
        Some(credentials) if access.password => {
            let same_user = record
                .subject
                .user()
                .is_some_and(|user| user.as_bytes() == credentials.username());
            if same_user {
                return Ok(());
            }
            if record.subject.user().is_some() {
                // Another user on a connection already logged in: never taken over it.
                record.set_status(407);
                let text = "credentials for another user on this connection";
                answer(
                    client,
                    &socksgate_http::status::authentication_required(REALM, text),
                )
                .await;
                return Err(Failure::Authentication(Refusal::Unusable(
                    "credentials for another user on this connection",
                )));
            }
            if let Err(refusal) = log_in(shared, &mut record.subject, credentials).await {
                record.set_status(407);
                let text = "the proxy refused these credentials";
                answer(
                    client,
                    &socksgate_http::status::authentication_required(REALM, text),
                )
                .await;
                return Err(Failure::Authentication(refusal));
            }
            Ok(())
        }
        _ if access.anonymous || record.subject.user().is_some() => Ok(()),
        _ => {
            record.set_status(407);
            let text = "the proxy needs a user name and password";
            answer(
                client,
                &socksgate_http::status::authentication_required(REALM, text),
            )
            .await;
            Err(Failure::CredentialsNeeded)
        }
    }
}

/// Decides a request as the rules say; a refusal is answered (`403`, or `407` when
/// credentials could change the verdict).
async fn decide(
    client: &mut ClientStream,
    request: &Request,
    access: HttpAccess,
    shared: &Shared,
    record: &mut AccessRecord,
) -> Result<Grant, Failure> {
    let decision = authorize::authorize(shared, &record.subject, request).await;
    tracing::debug!(
        user = record.subject.user().unwrap_or("-"),
        rule = decision.rule.as_deref().unwrap_or("-"),
        allowed = decision.result.is_ok(),
        "policy decided"
    );
    record.rule = decision.rule;
    match decision.result {
        Ok(grant) => {
            record.log = grant.options.log;
            Ok(grant)
        }
        Err(Failure::Denied(_)) if access.password && record.subject.user().is_none() => {
            // A rule for users refused an anonymous client: ask who it is.
            record.set_status(407);
            let text = "the proxy's rules need a user name and password";
            answer(
                client,
                &socksgate_http::status::authentication_required(REALM, text),
            )
            .await;
            Err(Failure::CredentialsNeeded)
        }
        Err(failure) => {
            let status = reply_status(crate::reply::for_refusal(&failure));
            record.set_status(status);
            let text = match failure {
                Failure::Denied(_) => "the proxy's rules do not allow this request".to_owned(),
                ref other => other.outcome().to_owned(),
            };
            answer(client, &socksgate_http::status::answer(status, &text, &[])).await;
            Err(failure)
        }
    }
}

/// The SOCKS request a HTTP request is decided as.
fn as_request(command: Command, target: &Address) -> Request {
    Request {
        version: Version::Socks5,
        command,
        target: target.clone(),
        user_id: Vec::new(),
    }
}

/// A CONNECT: admitted, decided, reached and answered `200`, then relayed by the session.
async fn connect(
    client: &mut ClientStream,
    mut head: RequestHead,
    incoming: Incoming,
    access: HttpAccess,
    shared: &Shared,
    record: &mut AccessRecord,
    listing: &mut Option<Box<Listing>>,
) -> Result<HttpNext, Failure> {
    let Target::Tunnel(target) = &head.target else {
        return Err(Failure::BadResponse("not a CONNECT".into()));
    };
    let target = target.clone();
    if let Some(http) = &mut record.http {
        http.method = head.method.clone();
    }
    record.command = Some(Command::CONNECT);
    record.target = Some(target.clone());
    tracing::debug!(method = %head.method, %target, "http request");
    admit(client, head.credentials.take(), access, shared, record).await?;
    let request = as_request(Command::CONNECT, &target);
    let grant = decide(client, &request, access, shared, record).await?;
    if let Some(keepalive) = shared.timeouts.keepalive {
        crate::sockets::keep_alive(client.tcp(), keepalive);
    }
    if let Some(table) = &shared.session_table {
        *listing = Some(Box::new(table.list(record)));
    }
    let session = Requested {
        client,
        machine: Answer::Http { tunnel: true },
        request,
        pipelined: incoming.bytes,
        shared,
        record,
    };
    command::connect(session, grant).await.map(HttpNext::Tunnel)
}

/// A target connection an earlier request left open.
struct KeptTarget {
    target: Address,
    rule: Option<String>,
    stream: ProxyStream,
}

/// A forwarded request, decided and exchanged: whether the client's connection carries
/// another request.
async fn forwarded(
    client: &mut ClientStream,
    head: &RequestHead,
    incoming: &mut Incoming,
    access: HttpAccess,
    shared: &Shared,
    record: &mut AccessRecord,
    kept: &mut Option<KeptTarget>,
) -> Result<bool, Failure> {
    let target = head.target.address().clone();
    tracing::debug!(method = %head.method, %target, "http request");
    let request = as_request(Command::HTTP_REQUEST, &target);
    let grant = decide(client, &request, access, shared, record).await?;
    let _listing = shared
        .session_table
        .as_ref()
        .map(|table| table.list(record));
    let reusable = kept
        .take()
        .filter(|kept| kept.target == target && kept.rule == record.rule);
    let mut stream = match reusable {
        Some(kept) => kept.stream,
        None => {
            let mut session = Requested {
                client: &mut *client,
                machine: Answer::Http { tunnel: false },
                request,
                pipelined: Vec::new(),
                shared,
                record: &mut *record,
            };
            command::reach(&mut session, &grant).await?.0
        }
    };
    let mut status = None;
    let exchanged = forward::exchange(
        client,
        incoming,
        &mut stream,
        head,
        &grant.caps,
        &record.counters,
        shared.timeouts.idle,
        &mut status,
    )
    .await;
    if let Some(status) = status {
        record.set_status(status);
    }
    let exchanged = match exchanged {
        Ok(exchanged) => exchanged,
        Err(failure) => {
            // Nothing of the response reached the client yet: it gets socksgate's answer.
            let answered = match &failure {
                Failure::BadResponse(why) if status.is_none() => Some((502, why.clone())),
                Failure::ResponseTimeout if status.is_none() => {
                    Some((504, "the target did not answer in time".to_owned()))
                }
                Failure::Reset(error) if status.is_none() => Some((502, error.to_string())),
                _ => None,
            };
            match answered {
                Some((code, why)) => {
                    record.set_status(code);
                    answer(client, &socksgate_http::status::answer(code, &why, &[])).await;
                }
                None => linger_close(client).await,
            }
            return Err(failure);
        }
    };
    if exchanged.target_persists {
        *kept = Some(KeptTarget {
            target,
            rule: record.rule.clone(),
            stream,
        });
    }
    if !exchanged.client_persists {
        linger_close(client).await;
    }
    Ok(exchanged.client_persists)
}
