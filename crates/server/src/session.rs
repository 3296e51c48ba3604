//! One client session: handshake, request, the command it asks for, access log.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use socksgate_auth::Identity;
use socksgate_proto::server::{Request, ServerError, ServerEvent, ServerHandshake, ServerOptions};
use socksgate_proto::{Command, Reply, Step, Version};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::access_log::AccessRecord;
use crate::authorize;
use crate::command::{self, Established, IcmpSession};
use crate::ended::{outcome_of, record_end, Ended};
use crate::failure::Failure;
#[cfg(feature = "gssapi")]
use crate::gss::{Negotiation, Progress};
use crate::http::HttpNext;
use crate::login::log_in;
use crate::requested::{flush, linger_close, Answer, Requested};
use crate::session_table::Listing;
use crate::stream::{ClientStream, ClientTcp};
use crate::{boxed, ListenerSetup, Protocols, Shared};
use socksgate_client::Layered;
#[cfg(feature = "gssapi")]
use socksgate_gssapi::{GssLayer, Level};
use socksgate_tls::tokio_rustls::TlsAcceptor;
use socksgate_tls::MaybeTls;

/// What a granted request leads to once its replies are sent.
enum Next {
    /// A CONNECT or BIND, ready to relay.
    Relay(Established),
    /// A UDP association, answered, to run.
    Associate(Box<command::PreparedAssociation>),
    /// Over already (an ICMP session's).
    Ended(Ended),
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
    let admitted = Admitted {
        shared,
        _slot: slot,
    };
    let record = AccessRecord::new(peer, listener);
    // Each step of the session at debug level (`[log] level = "debug"`), all under one span
    // naming the client; a span that is off costs a check per session.
    let span = tracing::debug_span!("session", client = %peer, %listener);
    serve_session(
        Layered::new(MaybeTls::Plain(client)),
        setup,
        admitted,
        record,
        span,
    )
}

/// Counts a session as served (`Stats::sessions`), and holds its slot, until dropped (also
/// when the task is cancelled).
struct Admitted {
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Admitted {
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
    admitted: Admitted,
    mut record: AccessRecord,
    span: tracing::Span,
) -> impl Future<Output = ()> + Send {
    async move {
        let shared = &*admitted.shared;
        // The session's steps inside its span; its end (metrics, the access log, whose
        // fields are its whole schema in every format) outside. The steps move the client
        // and the listener's set-up in (so they are stored once, in the steps), and borrow
        // the record, which the end reads.
        let record_of_steps = &mut record;
        let steps = async move {
            let record = record_of_steps;
            // The session's place in the session table, once granted (if the table is kept).
            let mut listing = None;
            'session: {
                if !setup.proxy_protocol.is_empty() {
                    let deadline = handshake_deadline(shared, record);
                    let trusted = &setup.proxy_protocol;
                    if let Err(failure) =
                        boxed(proxied(&mut client, trusted, deadline, &mut *record)).await
                    {
                        break 'session Err(failure);
                    }
                }
                if let Some(rate) = shared.session_caps.connection_rate_per_source {
                    // Too fast: closed before a byte is read, as cheaply as it can be.
                    if !shared
                        .limits
                        .connection_rates
                        .admit(shared.source_group(record.subject.client().ip()), rate)
                    {
                        break 'session Err(Failure::RateLimited);
                    }
                }
                if let Some(why) = client_refusal(shared, record) {
                    // Refused before a byte is read: the connection is simply closed.
                    record.rule = Some(why.clone());
                    break 'session Err(Failure::ClientDenied(why));
                }
                let _ = client.tcp().set_nodelay(true);
                if let Some(acceptor) = setup.tls {
                    let deadline = handshake_deadline(shared, record);
                    client = match boxed(secure(client, acceptor, deadline, &mut *record)).await {
                        Ok(secured) => secured,
                        Err(failure) => break 'session Err(failure),
                    };
                }
                // The handshake, the request and the command's set-up live in one allocation,
                // freed before the relay starts.
                // The outcome is taken apart before the relay's or the association's await:
                // a value held around an await (a match's scrutinee is, to the match's end)
                // takes its whole room in the session's state for the session's life.
                let trust = setup.trust_socks4_userid;
                let association = 'relay_unless_associated: {
                    let request = run(
                        &mut client,
                        setup.options,
                        setup.protocols,
                        trust,
                        shared,
                        &mut *record,
                        &mut listing,
                    );
                    let established = match boxed(request).await {
                        Ok(Next::Relay(established)) => established,
                        Ok(Next::Associate(prepared)) => break 'relay_unless_associated prepared,
                        Ok(Next::Ended(ended)) => break 'session Ok(ended),
                        Err(failure) => break 'session Err(failure),
                    };
                    let idle = shared.timeouts.idle;
                    if let Some(keepalive) = shared.timeouts.keepalive {
                        crate::sockets::keep_alive(established.other.tcp(), keepalive);
                    }
                    tracing::debug!("relaying");
                    let relay = established.relay(&mut client, idle, &record.counters);
                    break 'session Ok(Ended::Relay(relay.await));
                };
                let (end, stats) =
                    boxed(association.run(&mut client, shared, &record.counters)).await;
                record.udp = Some(Box::new(stats));
                Ok(Ended::Association(end))
            }
        };
        let result = tracing::Instrument::instrument(steps, span.clone()).await;
        span.in_scope(|| {
            tracing::debug!(
                outcome = outcome_of(&result),
                bytes_up = record.counters.up.load(Ordering::Relaxed),
                bytes_down = record.counters.down.load(Ordering::Relaxed),
                "session ended"
            );
        });
        record_end(shared, &record, result);
    }
}

/// When the handshake must be done: one deadline from `accept` to the request, across the
/// PROXY header, TLS, authentication and the request (each step does not get its own).
fn handshake_deadline(shared: &Shared, record: &AccessRecord) -> tokio::time::Instant {
    tokio::time::Instant::from_std(record.started) + shared.timeouts.handshake
}

/// On a listener behind load balancers: a trusted balancer's connection must begin with a
/// PROXY protocol header, whose client becomes the session's (for the rules and the log);
/// anyone else's must not begin with one (a client cannot claim to be someone else).
async fn proxied(
    client: &mut ClientStream,
    trusted: &[socksgate_policy::Cidr],
    deadline: tokio::time::Instant,
    record: &mut AccessRecord,
) -> Result<(), Failure> {
    use socksgate_proto::proxy_header::ProxyHeader;
    use socksgate_proto::DecodeError;
    let balancer = record.subject.client();
    let is_trusted = trusted.iter().any(|block| block.contains(balancer.ip()));
    // Peeked, so that nothing after the header is consumed: the header is read exactly.
    let mut start = [0u8; 512];
    // Woken by the socket, not by a timer: a peek that finds the header incomplete answers
    // "would block" to tokio, which then waits for the next bytes to arrive.
    let peeked = async {
        loop {
            let tcp = client.tcp();
            let ready = tcp
                .ready(tokio::io::Interest::READABLE)
                .await
                .map_err(Failure::ClientGone)?;
            let seen = tcp.try_io(tokio::io::Interest::READABLE, || {
                let length = rustix::net::recv(
                    tcp,
                    &mut start,
                    rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
                )
                .map(|(length, _)| length)
                .map_err(io::Error::from)?;
                let whole = length == 0
                    || length == start.len()
                    || !matches!(
                        ProxyHeader::decode(&start[..length]),
                        Err(DecodeError::Incomplete { .. })
                    );
                if whole {
                    Ok(length)
                } else {
                    // The rest of the header has not arrived yet.
                    Err(io::ErrorKind::WouldBlock.into())
                }
            });
            let length = match seen {
                Ok(length) => length,
                // Half a header and then the client's end of the connection: nothing more
                // will come (and "readable" would stay set, so waiting would spin).
                Err(error)
                    if error.kind() == io::ErrorKind::WouldBlock && ready.is_read_closed() =>
                {
                    return Err(Failure::ClientGone(io::ErrorKind::UnexpectedEof.into()))
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // A backstop: a wake-up with nothing new gives the other tasks their turn.
                    tokio::task::consume_budget().await;
                    continue;
                }
                Err(error) => return Err(Failure::ClientGone(error)),
            };
            if length == 0 {
                return Err(Failure::ClientGone(io::ErrorKind::UnexpectedEof.into()));
            }
            return match ProxyHeader::decode(&start[..length]) {
                Ok((header, used)) => Ok(Some((header, used))),
                Err(DecodeError::Invalid(error)) if is_trusted => {
                    Err(Failure::ProxyHeader(error.to_string()))
                }
                Err(DecodeError::Invalid(_)) => Ok(None),
                Err(DecodeError::Incomplete { .. }) => {
                    Err(Failure::ProxyHeader("header longer than 512 bytes".into()))
                }
            };
        }
    };
    let found = match tokio::time::timeout_at(deadline, peeked).await {
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
        record.subject.proxied(source);
    }
    Ok(())
}

/// The TLS handshake of a TLS listener, within the handshake timeout. The subject of a
/// client certificate (when the listener asks for one) becomes the session's user.
async fn secure(
    client: ClientStream,
    acceptor: TlsAcceptor,
    deadline: tokio::time::Instant,
    record: &mut AccessRecord,
) -> Result<ClientStream, Failure> {
    let Ok(MaybeTls::Plain(tcp)) = client.into_inner() else {
        return Err(Failure::Tls(io::Error::other("TLS inside TLS")));
    };
    let stream = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
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
        // The first proof of identity: nothing can conflict with it yet.
        let _ = record.subject.prove(Identity {
            user,
            groups: Vec::new(),
            method: socksgate_proto::Method::NO_AUTH,
        });
    }
    Ok(Layered::new(MaybeTls::Tls(Box::new(stream))))
}

/// Why the client rules refuse this client, if they do.
fn client_refusal(shared: &Shared, record: &AccessRecord) -> Option<String> {
    let verdict = shared
        .policy
        .decide_client(record.subject.client().ip(), record.subject.listener());
    (verdict.action == socksgate_policy::Action::Deny).then(|| verdict.reason.to_string())
}

async fn run(
    client: &mut ClientStream,
    options: ServerOptions,
    protocols: Protocols,
    trust_socks4_userid: bool,
    shared: &Shared,
    record: &mut AccessRecord,
    listing: &mut Option<Box<Listing>>,
) -> Result<Next, Failure> {
    // The first byte tells the protocols apart: 0x04 / 0x05 SOCKS, a letter HTTP.
    let mut input = Vec::with_capacity(256);
    match tokio::time::timeout_at(
        handshake_deadline(shared, record),
        client.read_buf(&mut input),
    )
    .await
    {
        Ok(Ok(0)) => return Err(Failure::ClientGone(io::ErrorKind::UnexpectedEof.into())),
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(Failure::ClientGone(error)),
        Err(_) => return Err(Failure::HandshakeTimeout),
    }
    if socksgate_http::starts_request(input[0]) {
        let Some(access) = protocols.http else {
            return Err(Failure::ProtocolNotServed("http"));
        };
        return match crate::http::serve(client, input, access, shared, record, listing).await? {
            HttpNext::Tunnel(established) => Ok(Next::Relay(established)),
            HttpNext::Requests => Ok(Next::Ended(Ended::Requests)),
        };
    }
    if input[0] == 0x05 && !protocols.socks5 {
        return Err(Failure::ProtocolNotServed("socks5"));
    }
    let handshake = tokio::time::timeout_at(
        handshake_deadline(shared, record),
        read_request(client, options, shared, record, input),
    );
    let (machine, request, pipelined) = match handshake.await {
        Ok(result) => result?,
        Err(_) => return Err(Failure::HandshakeTimeout),
    };
    shared.metrics.handshake.observe(record.started.elapsed());
    tracing::debug!(
        version = ?request.version,
        command = %socksgate_config::command_name(request.command),
        target = %request.target,
        "request"
    );
    record.version = Some(request.version);
    record.command = Some(request.command);
    record.target = Some(request.target.clone());
    if !request.user_id.is_empty() {
        // A SOCKS4 USERID is what the client says, not who it proved to be: logged, and the
        // session's user only where the listener trusts it, and never over a user a client
        // certificate named.
        let claimed = String::from_utf8_lossy(&request.user_id).into_owned();
        record.subject.claim(claimed, trust_socks4_userid);
    }
    let mut session = Requested {
        client,
        machine: Answer::Socks(machine),
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
    let decision = authorize::authorize(shared, &session.record.subject, &session.request).await;
    tracing::debug!(
        user = session.record.subject.user().unwrap_or("-"),
        rule = decision.rule.as_deref().unwrap_or("-"),
        allowed = decision.result.is_ok(),
        "policy decided"
    );
    session.record.rule = decision.rule;
    let grant = match decision.result {
        Ok(grant) => grant,
        Err(failure) => {
            session.refuse(crate::reply::for_refusal(&failure)).await;
            return Err(failure);
        }
    };
    session.record.log = grant.options.log;
    // From here the client's connection lives as long as its command (a relay, a UDP
    // association's control connection): a client whose network vanishes must be noticed.
    if let Some(keepalive) = shared.timeouts.keepalive {
        crate::sockets::keep_alive(session.client.tcp(), keepalive);
    }
    if let Some(table) = &shared.session_table {
        *listing = Some(Box::new(table.list(session.record)));
    }
    // No boxes inside: this whole future is one short-lived allocation, freed before the
    // relay or the association starts, and fewer allocations per session cost less and
    // fragment less.
    match session.request.command {
        Command::CONNECT => command::connect(session, grant).await.map(Next::Relay),
        Command::BIND => command::bind(session, grant).await.map(Next::Relay),
        Command::ICMP_ECHO => command::icmp(session, grant).await.map(|icmp| match icmp {
            IcmpSession::Routed(established) => Next::Relay(established),
            IcmpSession::Ended(end) => Next::Ended(Ended::Relay(end)),
        }),
        _ => command::associate(session, grant)
            .await
            .map(Next::Associate),
    }
}

/// Runs the handshake up to the request. Returns the machine (waiting for the reply), the
/// request, and any bytes the client sent after it.
async fn read_request(
    client: &mut ClientStream,
    options: ServerOptions,
    shared: &Shared,
    record: &mut AccessRecord,
    mut input: Vec<u8>,
) -> Result<(ServerHandshake, Request, Vec<u8>), Failure> {
    let mut machine = ServerHandshake::new(options);
    #[cfg(feature = "gssapi")]
    let mut gss = Negotiation::default();
    loop {
        match machine.feed(&input) {
            Ok(Step::Event { used, event }) => {
                input.drain(..used);
                match event {
                    ServerEvent::Request(request) => return Ok((machine, request, input)),
                    ServerEvent::MethodSelected(method) => {
                        tracing::debug!(%method, "method chosen");
                        record.subject.method_selected(method)
                    }
                    ServerEvent::Credentials(credentials) => {
                        let proven = log_in(shared, &mut record.subject, credentials).await;
                        let _ = machine.authenticated(proven.is_ok());
                        flush(client, &mut machine)
                            .await
                            .map_err(Failure::ClientGone)?;
                        if let Err(refusal) = proven {
                            // RFC 1929 §2: after a failure status the server closes.
                            linger_close(client).await;
                            return Err(Failure::Authentication(refusal));
                        }
                    }
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
                                // A principal for another user than the client certificate
                                // is refused, never taken over it.
                                if let Err(conflict) = record.subject.prove(Identity {
                                    user: principal,
                                    groups: Vec::new(),
                                    method: socksgate_proto::Method::GSSAPI,
                                }) {
                                    return Err(Failure::Gssapi(conflict.to_string()));
                                }
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
                // A client that sends more than the message it is at can hold, without
                // completing it, is not speaking SOCKS (or RFC 1961).
                if input.len() >= machine.longest_message() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The README, ARCHITECTURE.md and docs/performance.md give about 1.8 KB of server
    /// memory per idle CONNECT session: this future (the session task's state while it
    /// relays), tokio's task header and trailer, two sockets' readiness records (2 × 256 B)
    /// and allocator overhead. The future is 808 B in a release build (840 in a test build).
    /// docs/performance.md sets an idle session at no more than 2 KB: the future may grow
    /// by about 200 B before that no longer holds, so its bound is 1,024 B. A change that
    /// puts a buffer, a timer or the handshake's state back into the session's whole life
    /// fails here rather than in the next benchmark.
    const IDLE_SESSION_FUTURE_BOUND: usize = 1024;

    #[tokio::test]
    async fn a_session_future_stays_within_its_idle_memory_bound() {
        let config = socksgate_config::Config::parse(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n",
            std::path::Path::new("size.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let server = crate::Server::bind(config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let shared = server
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let setup = shared
            .listener_setups
            .values()
            .next()
            .cloned()
            .unwrap_or_else(|| panic!("no listener set-up"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let _client = TcpStream::connect(address)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (accepted, peer) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let slot = Arc::new(tokio::sync::Semaphore::new(1))
            .acquire_owned()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let session = serve(accepted, peer, address, setup, shared, slot);
        let size = std::mem::size_of_val(&session);
        assert!(
            size <= IDLE_SESSION_FUTURE_BOUND,
            "an idle session's future is {size} B, over its bound of \
             {IDLE_SESSION_FUTURE_BOUND} B"
        );
    }
}
