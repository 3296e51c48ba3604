//! HTTP proxy clients on a SOCKS listener: the first byte of a connection (after TLS on a
//! TLS listener) told the session it is HTTP. CONNECT (RFC 9110 §9.3.6) is a SOCKS
//! CONNECT answered in HTTP, relayed the same way; a request for an `http://` target
//! (RFC 9112 §3.2.2) is forwarded, and the connection then carries the client's next
//! request, each authenticated, authorised on its own target and logged as it ends.
//!
//! The same users, throttle, rules, limits and caps as SOCKS: `Proxy-Authorization: Basic`
//! goes through `login::log_in` like RFC 1929 credentials, a request is decided by
//! `authorize` (CONNECT as `connect`, a forwarded request as `http`, which rules about
//! `connect` cover too), and its target is reached by `command::reach` (directly or through
//! the rule's route). Every refusal is a status with a one-line body, and closes the
//! connection. A WebSocket upgrade, once the target agreed, is relayed like a CONNECT.

mod body;
mod forward;
mod io;

use std::time::Duration;

use socksgate_auth::Credentials;
use socksgate_client::ProxyStream;
use socksgate_http::{HttpError, RequestHead, Target};
use socksgate_proto::server::Request;
use socksgate_proto::{Address, Command, Method, Version};
use tokio::io::AsyncWriteExt;

use self::forward::Exchanged;
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
use crate::subject::Subject;
use crate::Shared;

/// The realm of socksgate's `407` challenge.
const REALM: &str = "socksgate";

/// The methods a request may be sent twice with (RFC 9110 §9.2.2).
const IDEMPOTENT: [&str; 6] = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];

/// How long socksgate's own answer may wait for a client that does not read it.
const ANSWER_TIME: Duration = Duration::from_secs(10);

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
    /// A CONNECT granted and answered, or a WebSocket upgrade the target agreed to:
    /// relayed like a SOCKS CONNECT (the session's record is that request's).
    Tunnel(Established),
    /// Forwarded requests until the connection ended, each recorded as it ended.
    Requests,
}

/// An HTTP client's connection, between its requests.
struct Connection<'a> {
    client: &'a mut ClientStream,
    /// What the client sent and no request has used yet.
    incoming: Incoming,
    access: HttpAccess,
    shared: &'a Shared,
    /// Who the client is before any request's credentials: its address (or the one a
    /// balancer named), the listener, a client certificate's user.
    base: Subject,
    /// The credentials a request last proved, and the subject they made: the next request
    /// with the very same credentials is not checked again (a browser sends them on each).
    verified: Option<(Credentials, Subject)>,
    /// The target connection the last request left open.
    kept: Option<KeptTarget>,
}

/// A target connection an earlier request left open, for the next request to the same
/// target under the same rule.
struct KeptTarget {
    target: Address,
    /// The rule that decided it, as decided (before a route's "via").
    decided_by: Option<String>,
    /// The rule as logged.
    logged_rule: Option<String>,
    stream: ProxyStream,
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
    let mut connection = Connection {
        client,
        incoming: Incoming::new(input),
        access,
        shared,
        base: record.subject.clone(),
        verified: None,
        kept: None,
    };
    let mut first = true;
    loop {
        let deadline = if first {
            tokio::time::Instant::from_std(record.started) + shared.timeouts.handshake
        } else {
            tokio::time::Instant::now() + BETWEEN_REQUESTS
        };
        let head = match connection.read_head(deadline).await {
            Ok(Some(head)) => head,
            // The client closed (or went quiet) between requests: a normal end.
            Ok(None) => return Ok(HttpNext::Requests),
            Err((failure, status)) if first => {
                if let Some(status) = status {
                    record.set_status(status);
                }
                return Err(failure);
            }
            Err((failure, Some(status))) => {
                let mut request = record.for_http_request("", None, Command::HTTP_REQUEST);
                request.set_status(status);
                record_end(shared, &request, Err(failure));
                return Ok(HttpNext::Requests);
            }
            Err((_, None)) => return Ok(HttpNext::Requests),
        };
        first = false;
        if head.is_connect() {
            return connection.connect(head, record, listing).await;
        }
        let mut request = record.for_http_request(
            &head.method,
            Some(head.target.address()),
            Command::HTTP_REQUEST,
        );
        request.subject = connection.base.clone();
        let result = connection.forwarded(head, &mut request).await;
        match result {
            Ok(Forwarded::Answered { persists }) => {
                record_end(shared, &request, Ok(Ended::Forwarded));
                if !persists {
                    return Ok(HttpNext::Requests);
                }
            }
            Ok(Forwarded::Upgraded(established, upgraded_listing)) => {
                // A tunnel lives as long as a CONNECT's: a client that vanishes is noticed.
                if let Some(keepalive) = shared.timeouts.keepalive {
                    crate::sockets::keep_alive(connection.client.tcp(), keepalive);
                }
                // The session's record and listing are the upgraded request's from here.
                *record = request;
                *listing = upgraded_listing;
                return Ok(HttpNext::Tunnel(established));
            }
            Err(failure) => {
                record_end(shared, &request, Err(failure));
                return Ok(HttpNext::Requests);
            }
        }
    }
}

/// How a forwarded request ended.
enum Forwarded {
    /// Answered; whether the client's connection carries another request.
    Answered { persists: bool },
    /// A WebSocket upgrade the target agreed to: a tunnel from here, with its listing.
    Upgraded(Established, Option<Box<Listing>>),
}

impl Connection<'_> {
    /// Reads the next request head. `Ok(None)`: the client closed, or did not begin another
    /// request in time, between requests. A malformed head is answered here: the failure
    /// comes with the status sent.
    async fn read_head(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<RequestHead>, (Failure, Option<u16>)> {
        // Empty lines before a request are ignored (RFC 9112 §2.2): a stray CRLF after a
        // body does not begin one.
        let blank = self
            .incoming
            .bytes
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.incoming.consume(blank);
        // A request began when any of its bytes are here (pipelined, or the first read):
        // its head within the handshake timeout.
        let mut started = !self.incoming.bytes.is_empty();
        let mut deadline = deadline;
        if started {
            deadline = deadline.min(tokio::time::Instant::now() + self.shared.timeouts.handshake);
        }
        loop {
            // Parsed again only when a head could be complete (an empty line arrived) or
            // over a cap, so a head sent a byte at a time costs one parse, not thousands.
            if self.incoming.may_hold_a_head() {
                match socksgate_http::request::parse(&self.incoming.bytes) {
                    Ok(Some((head, used))) => {
                        self.incoming.consume(used);
                        return Ok(Some(head));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let status = error.status;
                        answer(self.client, &error.answer()).await;
                        return Err((Failure::BadRequest(error), Some(status)));
                    }
                }
            }
            let read = tokio::time::timeout_at(deadline, self.incoming.fill(self.client, None));
            match read.await {
                Ok(Ok(0)) if !started => return Ok(None),
                Ok(Ok(0)) => {
                    let gone = std::io::ErrorKind::UnexpectedEof.into();
                    return Err((Failure::ClientGone(gone), None));
                }
                Ok(Ok(_)) => {
                    if !started {
                        // The next request began: its head within the handshake timeout.
                        started = true;
                        deadline = tokio::time::Instant::now() + self.shared.timeouts.handshake;
                    }
                }
                Ok(Err(error)) => return Err((Failure::ClientGone(error), None)),
                Err(_) if !started => return Ok(None),
                Err(_) => {
                    let error = HttpError::new(408, "the request head did not arrive in time");
                    answer(self.client, &error.answer()).await;
                    return Err((Failure::HandshakeTimeout, Some(408)));
                }
            }
        }
    }

    /// Sets the request's subject from its credentials (checked, unless they are the very
    /// ones the connection's last request proved), or asks for them (`407`) where the
    /// listener needs them. Each request stands on its own credentials: one without them
    /// is anonymous (or the client certificate's user), whatever came before.
    async fn admit(
        &mut self,
        credentials: Option<Credentials>,
        record: &mut AccessRecord,
    ) -> Result<(), Failure> {
        record.subject = self.base.clone();
        match credentials {
            Some(credentials) if self.access.password => {
                if let Some((known, subject)) = &self.verified {
                    if *known == credentials {
                        record.subject = subject.clone();
                        return Ok(());
                    }
                }
                match log_in(self.shared, &mut record.subject, credentials.clone()).await {
                    Ok(()) => {
                        record.subject.method_selected(Method::PASSWORD);
                        self.verified = Some((credentials, record.subject.clone()));
                        Ok(())
                    }
                    Err(refusal) => {
                        self.ask_for_credentials(record, "the proxy refused these credentials")
                            .await;
                        Err(Failure::Authentication(refusal))
                    }
                }
            }
            // A listener that needs a password needs it of HTTP clients too, as SOCKS5 on
            // it offers only the password method, client certificate or not.
            _ if self.access.anonymous => Ok(()),
            _ => {
                self.ask_for_credentials(record, "the proxy needs a user name and password")
                    .await;
                Err(Failure::CredentialsNeeded)
            }
        }
    }

    /// Answers `407` with the Basic challenge, and closes.
    async fn ask_for_credentials(&mut self, record: &mut AccessRecord, why: &str) {
        record.set_status(407);
        let challenge = socksgate_http::status::authentication_required(REALM, why);
        answer(self.client, &challenge).await;
    }

    /// Decides a request as the rules say; a refusal is answered (`403`, or `407` when a
    /// rule refused an anonymous client that could log in).
    async fn decide(
        &mut self,
        request: &Request,
        record: &mut AccessRecord,
    ) -> Result<Grant, Failure> {
        let decision = authorize::authorize(self.shared, &record.subject, request).await;
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
            // A rule (not a limit: its refusal names more than the rule) refused an
            // anonymous client: ask who it is.
            Err(Failure::Denied(why))
                if self.access.password
                    && record.subject.user().is_none()
                    && record.rule.as_deref() == Some(why.as_str()) =>
            {
                let text = "the proxy's rules need a user name and password";
                self.ask_for_credentials(record, text).await;
                Err(Failure::CredentialsNeeded)
            }
            Err(failure) => {
                let status = reply_status(crate::reply::for_refusal(&failure));
                record.set_status(status);
                let text = match &failure {
                    Failure::Denied(_) => "the proxy's rules do not allow this request",
                    other => other.outcome(),
                };
                answer(
                    self.client,
                    &socksgate_http::status::answer(status, text, &[]),
                )
                .await;
                Err(failure)
            }
        }
    }

    /// A CONNECT: admitted, decided, reached and answered `200`, then relayed by the
    /// session (whose record is the CONNECT's).
    async fn connect(
        mut self,
        mut head: RequestHead,
        record: &mut AccessRecord,
        listing: &mut Option<Box<Listing>>,
    ) -> Result<HttpNext, Failure> {
        let Target::Tunnel(target) = &head.target else {
            return Err(Failure::BadRequest(HttpError::bad_request("not a CONNECT")));
        };
        let target = target.clone();
        if let Some(http) = &mut record.http {
            http.method = head.method.clone();
        }
        record.command = Some(Command::CONNECT);
        record.target = Some(target.clone());
        tracing::debug!(method = %head.method, %target, "http request");
        self.admit(head.credentials.take(), record).await?;
        let request = as_request(Command::CONNECT, &target);
        let grant = self.decide(&request, record).await?;
        let shared = self.shared;
        if let Some(keepalive) = shared.timeouts.keepalive {
            crate::sockets::keep_alive(self.client.tcp(), keepalive);
        }
        if let Some(table) = &shared.session_table {
            *listing = Some(Box::new(table.list(record)));
        }
        let session = Requested {
            client: self.client,
            machine: Answer::Http { tunnel: true },
            request,
            pipelined: self.incoming.bytes,
            shared,
            record,
        };
        command::connect(session, grant).await.map(HttpNext::Tunnel)
    }

    /// A forwarded request: admitted, decided, its target reached (or the kept connection
    /// to it reused), exchanged.
    async fn forwarded(
        &mut self,
        mut head: RequestHead,
        record: &mut AccessRecord,
    ) -> Result<Forwarded, Failure> {
        let target = head.target.address().clone();
        tracing::debug!(method = %head.method, %target, "http request");
        self.admit(head.credentials.take(), record).await?;
        let request = as_request(Command::HTTP_REQUEST, &target);
        let grant = self.decide(&request, record).await?;
        let decided_by = record.rule.clone();
        let listing = self
            .shared
            .session_table
            .as_ref()
            .map(|table| Box::new(table.list(record)));
        // A kept connection the target has closed meanwhile (or written to unasked) is not
        // used; one that closes before answering is tried once more with a new connection,
        // when the request can be sent again (it has no body).
        let mut reused = self
            .kept
            .take()
            .filter(|kept| kept.target == target && kept.decided_by == decided_by)
            .and_then(|mut kept| forward::still_open(&mut kept.stream).then_some(kept))
            .map(|kept| {
                record.rule = kept.logged_rule;
                kept.stream
            });
        loop {
            let was_reused = reused.is_some();
            let mut stream = match reused.take() {
                Some(stream) => stream,
                None => self.reach(&request, &grant, record).await?,
            };
            let mut progress = forward::Progress::default();
            let exchanged = forward::exchange(
                self.client,
                &mut self.incoming,
                &mut stream,
                &head,
                &grant.caps,
                &record.counters,
                self.shared.timeouts.idle,
                &mut progress,
            )
            .await;
            if let Some(status) = progress.status {
                record.set_status(status);
            }
            match exchanged {
                Ok(Exchanged::Answered {
                    client_persists,
                    target_persists,
                }) => {
                    if target_persists {
                        self.kept = Some(KeptTarget {
                            target,
                            decided_by,
                            logged_rule: record.rule.clone(),
                            stream,
                        });
                    }
                    if !client_persists {
                        linger_close(self.client).await;
                    }
                    return Ok(Forwarded::Answered {
                        persists: client_persists,
                    });
                }
                Ok(Exchanged::Upgraded) => {
                    let established = Established {
                        other: stream,
                        caps: grant.caps,
                        _slots: grant._slots.into_boxed_slice(),
                    };
                    return Ok(Forwarded::Upgraded(established, listing));
                }
                // A kept connection the target closed as the request went out, before a
                // byte of an answer: sent again on a new connection, if sending it twice
                // does no harm (RFC 9112 §9.3.1.1: idempotent, and no body to resend).
                Err(Failure::Reset(_))
                    if was_reused
                        && !progress.target_answered
                        && !progress.client_written
                        && head.body == socksgate_http::Framing::Empty
                        && IDEMPOTENT.contains(&head.method.as_str()) =>
                {
                    record.rule = decided_by.clone();
                    continue;
                }
                Err(failure) => {
                    self.refuse_after(&failure, progress.client_written, record)
                        .await;
                    return Err(failure);
                }
            }
        }
    }

    /// Reaches the target as the grant says; a failure has been answered (`502`, `504`).
    async fn reach(
        &mut self,
        request: &Request,
        grant: &Grant,
        record: &mut AccessRecord,
    ) -> Result<ProxyStream, Failure> {
        let mut session = Requested {
            client: &mut *self.client,
            machine: Answer::Http { tunnel: false },
            request: request.clone(),
            pipelined: Vec::new(),
            shared: self.shared,
            record,
        };
        Ok(command::reach(&mut session, grant).await?.0)
    }

    /// After an exchange failed: socksgate's own answer when nothing of the target's
    /// reached the client yet, and the connection closed.
    async fn refuse_after(&mut self, failure: &Failure, answered: bool, record: &mut AccessRecord) {
        let own = match failure {
            _ if answered => None,
            Failure::BadResponse(why) => Some((502, why.clone())),
            Failure::ResponseTimeout => Some((504, "the target did not answer in time".to_owned())),
            Failure::Reset(error) => Some((502, error.to_string())),
            _ => None,
        };
        match own {
            Some((status, why)) => {
                record.set_status(status);
                answer(
                    self.client,
                    &socksgate_http::status::answer(status, &why, &[]),
                )
                .await;
            }
            None => linger_close(self.client).await,
        }
    }
}

/// Writes one of socksgate's own answers, then closes as after a SOCKS failure reply.
async fn answer(client: &mut ClientStream, bytes: &[u8]) {
    let sent = async { client.write_all(bytes).await.is_ok() && client.flush().await.is_ok() };
    if tokio::time::timeout(ANSWER_TIME, sent)
        .await
        .unwrap_or(false)
    {
        linger_close(client).await;
    }
}

/// The SOCKS request an HTTP request is decided as.
fn as_request(command: Command, target: &Address) -> Request {
    Request {
        version: Version::Socks5,
        command,
        target: target.clone(),
        user_id: Vec::new(),
    }
}
