//! One client session: handshake, request, the command it asks for, access log.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socksgate_auth::{Credentials, Crowded, Identity, Refusal, Throttle};
use socksgate_proto::server::{Request, ServerError, ServerEvent, ServerHandshake, ServerOptions};
use socksgate_proto::{Address, Command, Reply, Step, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::access_log::AccessRecord;
use crate::authorize;
use crate::command::{self, AssociationEnd, Established, IcmpSession};
#[cfg(feature = "gssapi")]
use crate::gss::{Negotiation, Progress};
use crate::outbound::ConnectError;
use crate::relay::RelayEnd;
use crate::stream::{ClientStream, ClientTcp};
use crate::{boxed, ListenerSetup, Shared};
use socksgate_client::Layered;
#[cfg(feature = "gssapi")]
use socksgate_gssapi::{GssLayer, Level};
use socksgate_tls::tokio_rustls::TlsAcceptor;
use socksgate_tls::MaybeTls;

/// The longest handshake message is a SOCKS4a request: 8 + 256 + 256 bytes. A client that
/// sends more without completing a message is not speaking SOCKS.
const MAX_HANDSHAKE_BUFFER: usize = 1024;

/// After a failure reply, how long the client gets to read it and close.
const LINGER: Duration = Duration::from_secs(2);

/// Why a session ended before or instead of relaying.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The client broke the protocol or offered nothing acceptable.
    Handshake(ServerError),
    /// The client did not complete the handshake in time.
    HandshakeTimeout,
    /// The client sent too much without completing a message.
    HandshakeTooLong,
    /// The client closed or reset the connection before the relay began.
    ClientGone(io::Error),
    /// The TLS handshake failed (a certificate refused, not TLS at all, …).
    Tls(io::Error),
    /// The other side failed while taking the bytes the client sent with its request.
    Reset(io::Error),
    /// The request names a command this server does not serve.
    UnsupportedCommand,
    /// The credentials were refused.
    Authentication(Refusal),
    /// The GSS-API context or protection level was refused (why).
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    Gssapi(String),
    /// The target could not be reached.
    Connect(ConnectError),
    /// No listening (BIND) or relay (UDP) socket could be opened.
    Setup(io::Error),
    /// No peer connected to a BIND socket in time.
    BindTimeout,
    /// The client rules refused the connection.
    ClientDenied(String),
    /// The request rules refused the request (which rule, or why).
    Denied(String),
    /// The upstream group could not carry the request.
    Upstream(String),
    /// A load balancer's PROXY protocol header was missing or malformed (why).
    ProxyHeader(String),
    /// A source not trusted as a load balancer sent a PROXY protocol header.
    UntrustedProxyHeader,
    /// The source opened connections faster than `limits.connection_rate_per_source`.
    RateLimited,
}

impl Failure {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Handshake(_) | Self::HandshakeTooLong => "bad-handshake",
            Self::HandshakeTimeout => "handshake-timeout",
            Self::ClientGone(_) => "client-gone",
            Self::Tls(_) => "tls-failed",
            Self::Reset(_) => "reset",
            Self::UnsupportedCommand => "unsupported-command",
            Self::Authentication(_) | Self::Gssapi(_) => "auth-failed",
            Self::Connect(ConnectError::TimedOut) => "connect-timeout",
            Self::Connect(ConnectError::Resolve(_)) => "unresolved",
            Self::Connect(_) => "connect-failed",
            Self::Setup(_) => "setup-failed",
            Self::BindTimeout => "bind-timeout",
            Self::ClientDenied(_) => "client-denied",
            Self::Denied(_) => "denied",
            Self::Upstream(_) => "upstream-failed",
            Self::ProxyHeader(_) => "bad-proxy-header",
            Self::UntrustedProxyHeader => "untrusted-proxy-header",
            Self::RateLimited => "rate-limited",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::Handshake(error) => Some(error.to_string()),
            Self::ClientGone(error)
            | Self::Tls(error)
            | Self::Reset(error)
            | Self::Setup(error) => Some(error.to_string()),
            Self::Connect(error) => Some(error.to_string()),
            Self::Authentication(refusal) => Some(refusal.to_string()),
            Self::ClientDenied(why)
            | Self::Denied(why)
            | Self::Upstream(why)
            | Self::ProxyHeader(why)
            | Self::Gssapi(why) => Some(why.clone()),
            Self::RateLimited => Some("limits.connection_rate_per_source".to_owned()),
            _ => None,
        }
    }
}

/// What a granted request leads to once its replies are sent.
enum Next {
    /// A CONNECT or BIND, ready to relay.
    Relay(Established),
    /// A UDP association, already over.
    Ended(Ended),
}

/// How a granted session ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// A CONNECT or BIND relay.
    Relay(RelayEnd),
    /// A UDP association.
    Association(AssociationEnd),
}

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

/// Serves one accepted connection to the end, then gives its session slot back.
///
/// A plain function returning the session's future (the task spawned): what it captures
/// is all a session carries for its whole life, so only what is needed is captured.
pub(crate) fn serve(
    client: TcpStream,
    peer: SocketAddr,
    listener: SocketAddr,
    setup: ListenerSetup,
    shared: Arc<Shared>,
    slot: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send {
    shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
    let live = Live {
        shared,
        _slot: slot,
    };
    let record = AccessRecord::new(peer, listener);
    serve_session(Layered::new(MaybeTls::Plain(client)), setup, live, record)
}

/// Counts a session as live, and holds its slot, until dropped (also when the task is
/// cancelled).
struct Live {
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.stats.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The session's whole life. An async block, not an async fn: an async fn copies its
/// arguments into locals, and both copies would stay in the session's state; the block uses
/// its captures in place. Locals that live across the relay's await stay in that state for
/// the session's whole life too, so they are few.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice in the session's state"
)]
fn serve_session(
    mut client: ClientStream,
    setup: ListenerSetup,
    live: Live,
    mut record: AccessRecord,
) -> impl Future<Output = ()> + Send {
    async move {
        let shared = &*live.shared;
        let result = 'session: {
            if !setup.proxy_protocol.is_empty() {
                let limit = shared.timeouts.handshake;
                let trusted = &setup.proxy_protocol;
                if let Err(failure) = boxed(proxied(&mut client, trusted, limit, &mut record)).await
                {
                    break 'session Err(failure);
                }
            }
            if let Some(rate) = shared.session_caps.connection_rate_per_source {
                // Too fast: closed before a byte is read, as cheaply as it can be.
                if !shared
                    .limits
                    .connection_rates
                    .admit(shared.source_group(record.client.ip()), rate)
                {
                    break 'session Err(Failure::RateLimited);
                }
            }
            if let Some(why) = client_refusal(shared, &record) {
                // Refused before a byte is read: the connection is simply closed.
                record.rule = Some(why.clone());
                break 'session Err(Failure::ClientDenied(why));
            }
            let _ = client.tcp().set_nodelay(true);
            if let Some(acceptor) = setup.tls {
                let limit = shared.timeouts.handshake;
                client = match boxed(secure(client, acceptor, limit, &mut record)).await {
                    Ok(secured) => secured,
                    Err(failure) => break 'session Err(failure),
                };
            }
            // The handshake, the request and the command's set-up live in one allocation,
            // freed before the relay starts.
            // The outcome is taken apart before the relay's await: a match on it around the
            // await would keep its whole room in the session's state for the session's life.
            let trust = setup.trust_socks4_userid;
            let established =
                match boxed(run(&mut client, setup.options, trust, shared, &mut record)).await {
                    Ok(Next::Relay(established)) => established,
                    Ok(Next::Ended(ended)) => break 'session Ok(ended),
                    Err(failure) => break 'session Err(failure),
                };
            let idle = shared.timeouts.idle;
            let relay = established.relay(&mut client, idle, &record.counters);
            Ok(Ended::Relay(relay.await))
        };
        shared.metrics.session_ended(&record, &ending(&result));
        if shared.access_log {
            log_end(&record, result);
        }
    }
}

/// On a listener behind load balancers: a trusted balancer's connection must begin with a
/// PROXY protocol header, whose client becomes the session's (for the rules and the log);
/// anyone else's must not begin with one (a client cannot claim to be someone else).
async fn proxied(
    client: &mut ClientStream,
    trusted: &[socksgate_policy::Cidr],
    limit: Duration,
    record: &mut AccessRecord,
) -> Result<(), Failure> {
    use socksgate_proto::proxy_header::ProxyHeader;
    use socksgate_proto::DecodeError;
    let balancer = record.client;
    let is_trusted = trusted.iter().any(|block| block.contains(balancer.ip()));
    // Peeked, so that nothing after the header is consumed: the header is read exactly.
    let mut start = [0u8; 512];
    let peeked = async {
        loop {
            let length = client
                .tcp()
                .peek(&mut start)
                .await
                .map_err(Failure::ClientGone)?;
            if length == 0 {
                return Err(Failure::ClientGone(io::ErrorKind::UnexpectedEof.into()));
            }
            match ProxyHeader::decode(&start[..length]) {
                Ok((header, used)) => return Ok(Some((header, used))),
                Err(DecodeError::Invalid(error)) => {
                    return if is_trusted {
                        Err(Failure::ProxyHeader(error.to_string()))
                    } else {
                        Ok(None)
                    }
                }
                Err(DecodeError::Incomplete { .. }) if length == start.len() => {
                    return Err(Failure::ProxyHeader("header longer than 512 bytes".into()))
                }
                // The rest of the header has not arrived yet.
                Err(DecodeError::Incomplete { .. }) => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
            }
        }
    };
    let found = match tokio::time::timeout(limit, peeked).await {
        Ok(found) => found?,
        Err(_) => return Err(Failure::HandshakeTimeout),
    };
    let Some((header, used)) = found else {
        return Ok(());
    };
    if !is_trusted {
        return Err(Failure::UntrustedProxyHeader);
    }
    let mut consumed = vec![0u8; used];
    client
        .read_exact(&mut consumed)
        .await
        .map_err(Failure::ClientGone)?;
    if let ProxyHeader::Proxied { source, .. } = header {
        record.via = Some(Box::new(balancer));
        record.client = source;
    }
    Ok(())
}

/// The TLS handshake of a TLS listener, within the handshake timeout. The subject of a
/// client certificate (when the listener asks for one) becomes the session's user.
async fn secure(
    client: ClientStream,
    acceptor: TlsAcceptor,
    limit: Duration,
    record: &mut AccessRecord,
) -> Result<ClientStream, Failure> {
    let Ok(MaybeTls::Plain(tcp)) = client.into_inner() else {
        return Err(Failure::Tls(io::Error::other("TLS inside TLS")));
    };
    let stream = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(Failure::Tls(error)),
        Err(_) => return Err(Failure::HandshakeTimeout),
    };
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[_]>::first);
    if let Some(user) = certificate.and_then(socksgate_tls::certificate_user) {
        record.user = Some(user);
    }
    Ok(Layered::new(MaybeTls::Tls(Box::new(stream))))
}

/// The word for how a session ended (the access log's `outcome`, the metrics' label).
fn outcome_of(result: &Result<Ended, Failure>) -> &'static str {
    match result {
        Ok(Ended::Relay(RelayEnd::Closed)) => "closed",
        Ok(Ended::Relay(RelayEnd::Idle)) => "idle-timeout",
        Ok(Ended::Relay(RelayEnd::Error(_))) => "reset",
        Ok(Ended::Relay(RelayEnd::Halted)) => "quota-exceeded",
        Ok(Ended::Association(end)) => end.outcome(),
        Err(failure) => failure.outcome(),
    }
}

/// How a session ended, for the metrics.
fn ending(result: &Result<Ended, Failure>) -> crate::metrics::Ending<'_> {
    let denied_by = match result {
        Err(Failure::Denied(rule) | Failure::ClientDenied(rule)) => Some(rule.as_str()),
        _ => None,
    };
    crate::metrics::Ending {
        outcome: outcome_of(result),
        denied_by,
        authentication_failed: matches!(
            result,
            Err(Failure::Authentication(_) | Failure::Gssapi(_))
        ),
        login_throttled: matches!(result, Err(Failure::Authentication(Refusal::Throttled(_)))),
    }
}

fn log_end(record: &AccessRecord, result: Result<Ended, Failure>) {
    let outcome = outcome_of(&result);
    match result {
        Ok(Ended::Relay(RelayEnd::Error(error))) => record.emit(outcome, Some(&error)),
        Ok(Ended::Association(end)) => record.emit(
            outcome,
            end.error().map(|error| error as &dyn std::fmt::Display),
        ),
        Err(failure) => {
            let detail = failure.detail();
            record.emit(
                outcome,
                detail.as_ref().map(|d| d as &dyn std::fmt::Display),
            )
        }
        Ok(Ended::Relay(RelayEnd::Halted)) => record.emit(outcome, Some(&"fleet.quota_per_user")),
        Ok(Ended::Relay(RelayEnd::Closed | RelayEnd::Idle)) => record.emit(outcome, None),
    }
}

/// Why the client rules refuse this client, if they do.
fn client_refusal(shared: &Shared, record: &AccessRecord) -> Option<String> {
    let verdict = shared
        .policy
        .decide_client(record.client.ip(), record.listener);
    (verdict.action == socksgate_policy::Action::Deny).then(|| verdict.reason.to_string())
}

async fn run(
    client: &mut ClientStream,
    options: ServerOptions,
    trust_socks4_userid: bool,
    shared: &Shared,
    record: &mut AccessRecord,
) -> Result<Next, Failure> {
    let handshake = tokio::time::timeout(
        shared.timeouts.handshake,
        read_request(client, options, shared, record),
    );
    let (machine, request, pipelined) = match handshake.await {
        Ok(result) => result?,
        Err(_) => return Err(Failure::HandshakeTimeout),
    };
    shared.metrics.handshake.observe(record.started.elapsed());
    record.version = Some(request.version);
    record.command = Some(request.command);
    record.target = Some(request.target.clone());
    if !request.user_id.is_empty() {
        // A SOCKS4 USERID is what the client says, not who it proved to be: logged, and the
        // session's user only where the listener trusts it, and never over a user a client
        // certificate named.
        let claimed = String::from_utf8_lossy(&request.user_id).into_owned();
        if trust_socks4_userid && record.user.is_none() {
            record.user = Some(claimed);
        } else {
            record.claimed_user = Some(claimed.into_boxed_str());
        }
    }
    let mut session = Requested {
        client,
        machine,
        request,
        pipelined,
        shared,
        record,
    };
    let supported = match session.request.command {
        Command::CONNECT | Command::BIND => true,
        Command::UDP_ASSOCIATE => session.request.version == Version::Socks5,
        Command::ICMP_ECHO => session.request.version == Version::Socks5 && shared.icmp.enabled,
        _ => false,
    };
    if !supported {
        session.refuse(Reply::COMMAND_NOT_SUPPORTED).await;
        return Err(Failure::UnsupportedCommand);
    }
    let grant = authorize::authorize(&mut session).await?;
    session.record.log = grant.options.log;
    if let Some(live) = &shared.live {
        live.list(session.record);
    }
    // No boxes inside: this whole future is one short-lived allocation (a UDP association
    // keeps it for its life), and fewer allocations per session cost less and fragment less.
    match session.request.command {
        Command::CONNECT => command::connect(session, grant).await.map(Next::Relay),
        Command::BIND => command::bind(session, grant).await.map(Next::Relay),
        Command::ICMP_ECHO => command::icmp(session, grant).await.map(|icmp| match icmp {
            IcmpSession::Routed(established) => Next::Relay(established),
            IcmpSession::Ended(end) => Next::Ended(Ended::Relay(end)),
        }),
        _ => command::associate(session, grant)
            .await
            .map(|end| Next::Ended(Ended::Association(end))),
    }
}

/// Runs the handshake up to the request. Returns the machine (waiting for the reply), the
/// request, and any bytes the client sent after it.
async fn read_request(
    client: &mut ClientStream,
    options: ServerOptions,
    shared: &Shared,
    record: &mut AccessRecord,
) -> Result<(ServerHandshake, Request, Vec<u8>), Failure> {
    let mut machine = ServerHandshake::new(options);
    let mut input = Vec::with_capacity(256);
    #[cfg(feature = "gssapi")]
    let mut gss = Negotiation::default();
    loop {
        match machine.feed(&input) {
            Ok(Step::Event { used, event }) => {
                input.drain(..used);
                match event {
                    ServerEvent::Request(request) => return Ok((machine, request, input)),
                    ServerEvent::MethodSelected(_) => {}
                    ServerEvent::Credentials(credentials) => {
                        let attempted = credentials.username_lossy();
                        // A client certificate already named the user: credentials for
                        // someone else are refused, not taken over it.
                        let verdict = match &record.user {
                            Some(certified) if *certified != attempted => {
                                record.claimed_user = Some(attempted.into_boxed_str());
                                Err(Refusal::Unusable(
                                    "credentials for another user than the client certificate's",
                                ))
                            }
                            _ => {
                                record.user = Some(attempted);
                                let source = shared.source_group(record.client.ip());
                                authenticate(shared, source, credentials).await
                            }
                        };
                        let _ = machine.authenticated(verdict.is_ok());
                        flush(client, &mut machine)
                            .await
                            .map_err(Failure::ClientGone)?;
                        match verdict {
                            Ok(identity) => {
                                // The name the back end settled on (PAM may map `BOB` to
                                // `bob`), not the one typed: rules and limits see one name.
                                record.user = Some(identity.user.clone());
                                record.identity = Some(Box::new(identity));
                            }
                            Err(refusal) => {
                                // RFC 1929 §2: after a failure status the server closes.
                                linger_close(client).await;
                                return Err(Failure::Authentication(refusal));
                            }
                        }
                    }
                    // GSS-API is never offered yet, so the machine never reaches it.
                    #[cfg(feature = "gssapi")]
                    ServerEvent::Gssapi(message) => {
                        let Some(setup) = shared.gssapi.as_deref() else {
                            let _ = machine.authenticated(false);
                            return Err(Failure::Handshake(ServerError::NoAcceptableMethod));
                        };
                        match gss.on_message(setup, message, &mut machine) {
                            Ok(Progress::Continue) => {}
                            Ok(Progress::Established {
                                level,
                                principal,
                                context,
                            }) => {
                                // The level's answer goes out as negotiated (§4), before
                                // everything after it is encapsulated (§5).
                                flush(client, &mut machine)
                                    .await
                                    .map_err(Failure::ClientGone)?;
                                record.user = Some(principal.clone());
                                record.identity = Some(Box::new(Identity {
                                    user: principal,
                                    groups: Vec::new(),
                                    method: socksgate_proto::Method::GSSAPI,
                                }));
                                if level != Level::None {
                                    let pipelined = std::mem::take(&mut input);
                                    let layer = GssLayer::new(Box::new(context), level, pipelined);
                                    client.encapsulate(layer);
                                }
                            }
                            Err(why) => {
                                // §3.7: the abort message, then close.
                                let _ =
                                    machine.send_gssapi(&socksgate_proto::gssapi::Message::abort());
                                let _ = machine.authenticated(false);
                                let _ = flush(client, &mut machine).await;
                                return Err(Failure::Gssapi(why));
                            }
                        }
                    }
                    #[cfg(not(feature = "gssapi"))]
                    ServerEvent::Gssapi(_) => {
                        let _ = machine.authenticated(false);
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

/// Checks credentials on a blocking thread (at most a few at once), as the throttle allows:
/// a login past a suspect's pending cap fails unchecked, a failure's reply is held back as
/// long as the throttle (and the fleet) say, a success is answered at once. The password is
/// wiped when `credentials` is dropped.
async fn authenticate(
    shared: &Shared,
    source: IpAddr,
    credentials: Credentials,
) -> Result<Identity, Refusal> {
    let Some(authenticator) = shared.authenticator.clone() else {
        return Err(Refusal::BackEnd("no authentication back end".to_owned()));
    };
    // The throttle is asked once a verification slot is free, so that a burst of parallel
    // guesses from a clean source is judged by the failures of those checked before it.
    let Ok(permit) = shared.verifications.acquire().await else {
        return Err(Refusal::BackEnd("shutting down".to_owned()));
    };
    let mut attempt =
        ThrottledAttempt::begin(&shared.throttle, source, credentials.username_lossy())
            .map_err(Refusal::Throttled)?;
    let verdict = tokio::task::spawn_blocking(move || authenticator.verify(&credentials))
        .await
        .unwrap_or_else(|error| Err(Refusal::BackEnd(error.to_string())));
    drop(permit);
    let mut wait = attempt.finish(verdict.is_ok());
    if let (Err(Refusal::WrongPassword | Refusal::UnknownUser), Some(fleet)) =
        (&verdict, &shared.fleet)
    {
        // Failures on other nodes of a fleet count too.
        wait = wait.max(fleet.login_failed(&attempt.user).await);
    }
    tokio::time::sleep(wait).await;
    verdict
}

/// One checked login as the throttle sees it; a login abandoned midway (the client left,
/// the handshake timed out) counts as a failure. The throttle holds a failure pending until
/// its reply is due, whether or not this task still waits for it.
struct ThrottledAttempt<'a> {
    throttle: &'a Throttle,
    source: IpAddr,
    user: String,
    finished: bool,
}

impl<'a> ThrottledAttempt<'a> {
    fn begin(throttle: &'a Throttle, source: IpAddr, user: String) -> Result<Self, Crowded> {
        throttle.begin(Instant::now(), source, &user)?;
        Ok(Self {
            throttle,
            source,
            user,
            finished: false,
        })
    }

    /// Records the outcome; returns how long the reply waits.
    fn finish(&mut self, success: bool) -> Duration {
        self.finished = true;
        self.throttle
            .finish(Instant::now(), self.source, &self.user, success)
    }
}

impl Drop for ThrottledAttempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle
                .finish(Instant::now(), self.source, &self.user, false);
        }
    }
}
