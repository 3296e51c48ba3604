//! Reaching a target through the hops of a chain.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::proxy_header::ProxyHeader;
use socksgate_proto::{Address, Command, Host, Reply, Step};
use socksgate_tls::rustls::pki_types::ServerName;
use socksgate_tls::rustls::ClientConfig;
use socksgate_tls::tokio_rustls::TlsConnector;
use socksgate_tls::{ClientTls, TlsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[cfg(feature = "gssapi")]
use crate::gss::GssapiOptions;
use crate::{IcmpEcho, Outbound, ProxyStream};

use socksgate_proto::hop::{Flavour, Hop};

/// Proxies to go through, first to last.
#[derive(Clone, Default)]
pub struct Chain {
    hops: Vec<Hop>,
    /// How TLS hops are checked (the system's authorities when not set).
    tls: Option<Arc<ClientConfig>>,
    /// GSS-API for SOCKS5 hops, when asked for.
    gssapi: Option<GssapiOptions>,
    /// How the chain's own sockets leave this host.
    egress: Egress,
}

/// How long a chain waits for each step: the connection to the first hop (all its
/// addresses), and each hop's exchange (TLS, authentication, the request and its reply). A
/// black-holed hop fails within these, never waits for the kernel's SYN retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopTimeouts {
    /// Reaching the first hop.
    pub connect: Duration,
    /// Each hop's handshake.
    pub handshake: Duration,
}

impl Default for HopTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
        }
    }
}

/// How a chain's own sockets (to the first hop) leave this host.
#[derive(Debug, Clone, Default)]
struct Egress {
    /// Mark, interface and source address of every socket.
    outbound: Outbound,
    /// The first hop's addresses, resolved ahead of time.
    first_hop: Option<Arc<[SocketAddr]>>,
    /// Sent first on the connection to the first hop (PROXY protocol).
    proxy_header: Option<ProxyHeader>,
    /// How long each step may take.
    timeouts: HopTimeouts,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.hops).finish()
    }
}

impl PartialEq for Chain {
    /// The same hops (TLS settings are not compared).
    fn eq(&self, other: &Self) -> bool {
        self.hops == other.hops
    }
}

impl Eq for Chain {}

impl FromIterator<Hop> for Chain {
    fn from_iter<I: IntoIterator<Item = Hop>>(hops: I) -> Self {
        Self {
            hops: hops.into_iter().collect(),
            tls: None,
            gssapi: None,
            egress: Egress::default(),
        }
    }
}

/// What went wrong at one hop.
#[derive(Debug)]
#[non_exhaustive]
pub enum HopFailure {
    /// The proxy itself could not be reached (only for the first hop; later hops are
    /// reached through the previous one, whose refusal is a [`HopFailure::Refused`]).
    Unreachable(io::Error),
    /// A name the client had to resolve for this hop did not resolve.
    Resolve(io::Error),
    /// The proxy answered with a failure, or broke the protocol.
    Refused(ClientError),
    /// The previous hop could not reach this proxy (it is down, or the previous hop may
    /// not connect to it); the previous hop's answer.
    UnreachableVia(ClientError),
    /// The connection broke during the handshake.
    Io(io::Error),
    /// The GSS-API exchange failed (why).
    Gssapi(String),
    /// The TLS handshake with the proxy failed (its certificate, or ours, refused).
    Tls(io::Error),
    /// The hop cannot carry what was asked (UDP, BIND or ICMP through an HTTP proxy): why.
    NotCarried(String),
    /// An HTTP proxy's answer to CONNECT was not HTTP (why).
    NotHttp(String),
}

/// A failure, and the hop it happened at.
#[derive(Debug)]
pub struct ChainError {
    /// 1-based position of the hop in the chain (0 when the chain is empty).
    pub hop: usize,
    /// The hop's URL, without its password.
    pub proxy: String,
    /// What happened.
    pub failure: HopFailure,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hop {} ({}): ", self.hop, self.proxy)?;
        match &self.failure {
            HopFailure::Unreachable(error) => write!(f, "cannot reach the proxy: {error}"),
            HopFailure::Resolve(error) => write!(f, "cannot resolve: {error}"),
            HopFailure::Refused(error) => write!(f, "{error}"),
            HopFailure::UnreachableVia(error) => {
                write!(f, "the previous hop cannot reach this proxy: {error}")
            }
            HopFailure::Io(error) => write!(f, "connection lost: {error}"),
            HopFailure::Gssapi(why) => write!(f, "GSS-API: {why}"),
            HopFailure::Tls(error) => write!(f, "TLS: {error}"),
            HopFailure::NotCarried(why) => f.write_str(why),
            HopFailure::NotHttp(why) => write!(f, "not an HTTP proxy's answer: {why}"),
        }
    }
}

impl std::error::Error for ChainError {}

impl Chain {
    /// The hops.
    pub fn hops(&self) -> &[Hop] {
        &self.hops
    }

    /// Whether the chain has no hop (connections go direct).
    pub fn is_empty(&self) -> bool {
        self.hops.is_empty()
    }

    /// Checks TLS hops' certificates (and presents a client certificate) as `options` say.
    pub fn with_tls(mut self, options: &ClientTls) -> Result<Self, TlsError> {
        self.tls = Some(socksgate_tls::client_config(options)?);
        Ok(self)
    }

    /// Checks TLS hops with a configuration built already (shared by many chains).
    pub fn with_client_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Offers GSS-API (Kerberos, RFC 1961) to SOCKS5 hops, with the ticket cache's
    /// credentials; a hop that picks it authenticates the user and protects the tunnel at the
    /// level it grants.
    #[cfg(feature = "gssapi")]
    pub fn with_gssapi(mut self, options: GssapiOptions) -> Self {
        self.gssapi = Some(options);
        self
    }

    /// Marks every socket the chain opens (`SO_MARK`, which needs `CAP_NET_ADMIN`), so that
    /// policy routing can send the chain's own traffic around a TUN device that captures
    /// everything else.
    pub fn with_mark(mut self, mark: u32) -> Self {
        self.egress.outbound.mark = Some(mark);
        self
    }

    /// Begins the connection to the first hop with a PROXY protocol v2 `header` (before
    /// TLS), for a first hop that trusts this host to name its clients.
    pub fn with_proxy_header(mut self, header: ProxyHeader) -> Self {
        self.egress.proxy_header = Some(header);
        self
    }

    /// Bounds each step of the chain (see [`HopTimeouts`]; 10 s each by default).
    pub fn with_timeouts(mut self, timeouts: HopTimeouts) -> Self {
        self.egress.timeouts = timeouts;
        self
    }

    /// Runs `step` at hop `index` within `limit`; past it, the hop timed out (`failure`
    /// says as what: the first hop unreachable, or a hop's exchange).
    async fn within<T>(
        &self,
        limit: Duration,
        index: usize,
        failure: fn(io::Error) -> HopFailure,
        step: impl std::future::Future<Output = Result<T, ChainError>>,
    ) -> Result<T, ChainError> {
        match tokio::time::timeout(limit, step).await {
            Ok(done) => done,
            Err(_) => {
                let error = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {limit:?}"),
                );
                Err(self.error(index, failure(error)))
            }
        }
    }

    /// Opens every socket of the chain with these options (mark, interface, source).
    pub fn with_outbound(mut self, outbound: Outbound) -> Self {
        self.egress.outbound = outbound;
        self
    }

    /// Resolves the first hop's name now and keeps its addresses, so the chain needs no
    /// name lookup later (when lookups themselves may be routed through it).
    pub async fn resolve_first_hop(mut self) -> Result<Self, ChainError> {
        let Some(first) = self.hops.first() else {
            return Err(self.error(0, HopFailure::Io(io::Error::other("the chain is empty"))));
        };
        let addresses = resolve(&first.address)
            .await
            .map_err(|error| self.error(0, HopFailure::Unreachable(error)))?;
        self.egress.first_hop = Some(addresses.into());
        Ok(self)
    }

    /// How the chain's sockets leave this host.
    pub(crate) fn outbound(&self) -> &Outbound {
        &self.egress.outbound
    }

    /// The first `index + 1` hops, with the same TLS settings.
    pub(crate) fn prefix(&self, index: usize) -> Self {
        Self {
            hops: self.hops[..=index].to_vec(),
            tls: self.tls.clone(),
            gssapi: self.gssapi.clone(),
            egress: self.egress.clone(),
        }
    }

    /// A TCP connection to `target` through every hop.
    pub async fn connect(&self, target: &Address) -> Result<ProxyStream, ChainError> {
        let (mut stream, last) = self.reach_last_hop().await?;
        match last {
            None => Ok(stream),
            Some(index) => {
                self.request(&mut stream, index, Command::CONNECT, target)
                    .await?;
                Ok(stream)
            }
        }
    }

    /// As [`Chain::connect`], also returning the address the last hop connected from (its
    /// reply's BND.ADDR).
    pub async fn connect_reporting(
        &self,
        target: &Address,
    ) -> Result<(ProxyStream, Address), ChainError> {
        self.request_with_reply(Command::CONNECT, target).await
    }

    /// Asks the last hop to accept one connection from `peer` (BIND); returns where the peer
    /// must connect, and a listener to wait for it.
    pub async fn bind(&self, peer: &Address) -> Result<BindListener, ChainError> {
        self.beyond_tcp("BIND")?;
        let (mut stream, last) = self.reach_last_hop().await?;
        let index = last
            .ok_or_else(|| self.error(0, HopFailure::Io(io::Error::other("BIND needs a proxy"))))?;
        let (Some(machine), events) = self
            .handshake_until(&mut stream, index, Command::BIND, peer, |events| {
                events
                    .iter()
                    .any(|e| matches!(e, ClientEvent::Granted { .. }))
            })
            .await?
        else {
            return Err(self.error(index, HopFailure::Io(io::Error::other("no BIND machine"))));
        };
        let bound = granted_bound(&events);
        Ok(BindListener {
            chain: self.clone(),
            index,
            stream,
            machine,
            bound,
        })
    }

    /// Asks the last hop to send ICMP echo requests to `target` on the client's behalf
    /// (socksgate's extension, command 0xF8, `docs/extensions/icmp.md`); the earlier hops
    /// only carry the connection. A proxy without the extension answers 0x07
    /// (`HopFailure::Refused` with `ClientError::Rejected(Reply::COMMAND_NOT_SUPPORTED)`).
    pub async fn icmp_echo(&self, target: &Address) -> Result<IcmpEcho, ChainError> {
        self.beyond_tcp("ICMP")?;
        let Some(last) = self.hops.last() else {
            return Err(self.error(0, HopFailure::Io(io::Error::other("ICMP needs a proxy"))));
        };
        if matches!(last.flavour, Flavour::Socks4 | Flavour::Socks4a) {
            let error = io::Error::other("the ICMP extension needs a SOCKS5 proxy");
            return Err(self.error(self.hops.len() - 1, HopFailure::Io(error)));
        }
        let (stream, probed) = self.request_with_reply(Command::ICMP_ECHO, target).await?;
        Ok(IcmpEcho::new(stream, probed))
    }

    /// Refuses a command beyond TCP (`what`: UDP, BIND, ICMP) on a chain with an HTTP proxy.
    pub(crate) fn beyond_tcp(&self, what: &str) -> Result<(), ChainError> {
        match socksgate_proto::hop::beyond_tcp_refusal(&self.hops, what) {
            None => Ok(()),
            Some(why) => Err(self.error(
                self.hops
                    .iter()
                    .position(|hop| hop.flavour.carries_only_tcp())
                    .unwrap_or(0),
                HopFailure::NotCarried(why),
            )),
        }
    }

    /// Connects to the first hop, and CONNECTs through each hop to the next one; returns
    /// the stream to the last hop (or to nothing, for an empty chain) and its index.
    async fn reach_last_hop(&self) -> Result<(ProxyStream, Option<usize>), ChainError> {
        let Some(first) = self.hops.first() else {
            return Err(self.error(0, HopFailure::Io(io::Error::other("the chain is empty"))));
        };
        let addresses = match &self.egress.first_hop {
            Some(addresses) => addresses.to_vec(),
            None => resolve(&first.address)
                .await
                .map_err(|error| self.error(0, HopFailure::Unreachable(error)))?,
        };
        let connecting = async {
            connect_any(&addresses, &self.egress.outbound)
                .await
                .map_err(|error| self.error(0, HopFailure::Unreachable(error)))
        };
        let mut stream = self
            .within(
                self.egress.timeouts.connect,
                0,
                HopFailure::Unreachable,
                connecting,
            )
            .await?;
        let _ = stream.set_nodelay(true);
        if let Some(header) = &self.egress.proxy_header {
            let mut bytes = Vec::with_capacity(64);
            header.encode_v2(&mut bytes);
            stream
                .write_all(&bytes)
                .await
                .map_err(|error| self.error(0, HopFailure::Io(error)))?;
        }
        let mut stream = self.secure(ProxyStream::from(stream), 0).await?;
        for index in 0..self.hops.len() - 1 {
            let next = self.hops[index + 1].address.clone();
            self.request(&mut stream, index, Command::CONNECT, &next)
                .await
                .map_err(|error| match error.failure {
                    // The hop could not reach the next one: blame the next. (A refusal by
                    // the hop's own rules stays the hop's.)
                    HopFailure::Refused(ClientError::Rejected(reply)) if is_unreachable(reply) => {
                        self.error(
                            index + 1,
                            HopFailure::UnreachableVia(ClientError::Rejected(reply)),
                        )
                    }
                    _ => error,
                })?;
            stream = self.secure(stream, index + 1).await?;
        }
        Ok((stream, Some(self.hops.len() - 1)))
    }

    /// TLS to hop `index` over `stream`, when the hop asks for it, within the handshake
    /// deadline.
    async fn secure(&self, stream: ProxyStream, index: usize) -> Result<ProxyStream, ChainError> {
        let limit = self.egress.timeouts.handshake;
        self.within(
            limit,
            index,
            HopFailure::Tls,
            self.secure_now(stream, index),
        )
        .await
    }

    async fn secure_now(
        &self,
        stream: ProxyStream,
        index: usize,
    ) -> Result<ProxyStream, ChainError> {
        let hop = &self.hops[index];
        if !hop.tls {
            return Ok(stream);
        }
        let tls_error = |error: io::Error| self.error(index, HopFailure::Tls(error));
        let config = match &self.tls {
            Some(config) => config.clone(),
            None => socksgate_tls::client_config(&ClientTls::default())
                .map_err(|error| tls_error(io::Error::other(error)))?,
        };
        let name = match &hop.address.host {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Domain(name) => ServerName::try_from(name.as_str().to_owned())
                .map_err(|error| tls_error(io::Error::other(error)))?,
        };
        let secured = TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(tls_error)?;
        Ok(ProxyStream::tls(secured))
    }

    /// A request at the last hop (reached through the others): the stream and the first
    /// reply's address.
    pub(crate) async fn request_with_reply(
        &self,
        command: Command,
        target: &Address,
    ) -> Result<(ProxyStream, Address), ChainError> {
        let (mut stream, last) = self.reach_last_hop().await?;
        let index = last.unwrap_or(0);
        let (_, events) = self
            .handshake_until(&mut stream, index, command, target, |_| false)
            .await?;
        let bound = granted_bound(&events);
        Ok((stream, bound))
    }

    /// One request at hop `index`, up to its (first) reply.
    async fn request(
        &self,
        stream: &mut ProxyStream,
        index: usize,
        command: Command,
        target: &Address,
    ) -> Result<(), ChainError> {
        self.handshake_until(stream, index, command, target, |_| false)
            .await
            .map(|_| ())
    }

    /// Runs the handshake with hop `index` until it is established or `enough` says so,
    /// within the handshake deadline.
    async fn handshake_until(
        &self,
        stream: &mut ProxyStream,
        index: usize,
        command: Command,
        target: &Address,
        enough: impl Fn(&[ClientEvent]) -> bool,
    ) -> Result<(Option<ClientHandshake>, Vec<ClientEvent>), ChainError> {
        let limit = self.egress.timeouts.handshake;
        let exchange = self.handshake_now(stream, index, command, target, enough);
        self.within(limit, index, HopFailure::Io, exchange).await
    }

    async fn handshake_now(
        &self,
        stream: &mut ProxyStream,
        index: usize,
        command: Command,
        target: &Address,
        enough: impl Fn(&[ClientEvent]) -> bool,
    ) -> Result<(Option<ClientHandshake>, Vec<ClientEvent>), ChainError> {
        let hop = &self.hops[index];
        let target = self.as_hop_wants(index, target).await?;
        if hop.flavour == Flavour::Http {
            if command != Command::CONNECT {
                let why = format!("an HTTP proxy carries only TCP connections, not {command}");
                return Err(self.error(index, HopFailure::NotCarried(why)));
            }
            crate::http_hop::connect(stream, hop, &target)
                .await
                .map_err(|failure| {
                    use crate::http_hop::HttpHopError;
                    let failure = match failure {
                        HttpHopError::Io(error) => HopFailure::Io(error),
                        HttpHopError::Refused(error) => HopFailure::Refused(error),
                        HttpHopError::NotHttp(why) => HopFailure::NotHttp(why),
                    };
                    self.error(index, failure)
                })?;
            // CONNECT's answer names no address.
            let granted = ClientEvent::Granted {
                bound: Address::unspecified(),
            };
            return Ok((None, vec![granted]));
        }
        let machine = ClientHandshake::new(protocol(hop, self.gssapi.is_some()), command, target)
            .map_err(|error| self.error(index, HopFailure::Refused(error)))?;
        let host = hop.address.host.to_string();
        let gssapi = self.gssapi.as_ref().map(|options| (options, host.as_str()));
        drive(stream, machine, gssapi, enough)
            .await
            .map(|(machine, events)| (Some(machine), events))
            .map_err(|failure| self.error(index, failure))
    }

    /// The target as hop `index` accepts it: names resolved here unless the hop resolves
    /// them itself.
    async fn as_hop_wants(&self, index: usize, target: &Address) -> Result<Address, ChainError> {
        let hop = &self.hops[index];
        match &target.host {
            Host::Domain(_) if !hop.flavour.resolves_names() => {
                let addresses = resolve(target)
                    .await
                    .map_err(|error| self.error(index, HopFailure::Resolve(error)))?;
                let usable = addresses
                    .into_iter()
                    .find(|a| hop.flavour != Flavour::Socks4 || a.is_ipv4());
                usable.map(Address::from).ok_or_else(|| {
                    self.error(
                        index,
                        HopFailure::Resolve(io::Error::other("no usable address")),
                    )
                })
            }
            _ => Ok(target.clone()),
        }
    }

    fn error(&self, index: usize, failure: HopFailure) -> ChainError {
        ChainError {
            hop: if self.hops.is_empty() { 0 } else { index + 1 },
            proxy: self
                .hops
                .get(index)
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            failure,
        }
    }
}

/// A BIND waiting for its peer.
#[derive(Debug)]
pub struct BindListener {
    chain: Chain,
    index: usize,
    stream: ProxyStream,
    machine: ClientHandshake,
    bound: Address,
}

impl BindListener {
    /// Where the peer must connect (the last hop's listening address).
    pub fn bound(&self) -> &Address {
        &self.bound
    }

    /// Waits for the peer; returns the relayed connection and the peer's address.
    pub async fn accept(mut self) -> Result<(ProxyStream, Address), ChainError> {
        let (_, events) = drive(&mut self.stream, self.machine, None, |_| false)
            .await
            .map_err(|failure| self.chain.error(self.index, failure))?;
        let peer = events
            .into_iter()
            .find_map(|event| match event {
                ClientEvent::PeerConnected { peer } => Some(peer),
                _ => None,
            })
            .unwrap_or_else(Address::unspecified);
        Ok((self.stream, peer))
    }
}

/// The handshake with one hop: write what the machine wants, read exactly what it needs.
async fn drive(
    stream: &mut ProxyStream,
    mut machine: ClientHandshake,
    gssapi: Option<GssapiHop<'_>>,
    enough: impl Fn(&[ClientEvent]) -> bool,
) -> Result<(ClientHandshake, Vec<ClientEvent>), HopFailure> {
    let mut events = Vec::new();
    let mut input = Vec::new();
    #[cfg(feature = "gssapi")]
    let mut exchange: Option<crate::gss::Exchange> = None;
    #[cfg(not(feature = "gssapi"))]
    let _ = gssapi;
    loop {
        let pending = machine.pending_output();
        if !pending.is_empty() {
            stream.write_all(pending).await.map_err(HopFailure::Io)?;
            stream.flush().await.map_err(HopFailure::Io)?;
            let written = pending.len();
            machine.output_written(written);
        }
        if machine.is_established() || enough(&events) {
            return Ok((machine, events));
        }
        match machine.feed(&input).map_err(HopFailure::Refused)? {
            Step::Event { used, event } => {
                input.drain(..used);
                #[cfg(feature = "gssapi")]
                match &event {
                    ClientEvent::MethodSelected(socksgate_proto::Method::GSSAPI) => {
                        let Some((options, host)) = gssapi else {
                            return Err(HopFailure::Gssapi("GSS-API was not offered".to_owned()));
                        };
                        let started = crate::gss::Exchange::start(options, host, &mut machine)
                            .map_err(HopFailure::Gssapi)?;
                        exchange = Some(started);
                    }
                    ClientEvent::Gssapi(message) => {
                        let Some(current) = exchange.as_mut() else {
                            return Err(HopFailure::Gssapi(
                                "a GSS-API message out of turn".to_owned(),
                            ));
                        };
                        let agreed = current
                            .on_message(message, &mut machine)
                            .map_err(HopFailure::Gssapi)?;
                        if let Some(level) = agreed {
                            if let Some(done) = exchange.take() {
                                // §5: the request (queued) and all that follows is
                                // encapsulated.
                                done.protect(stream, level, std::mem::take(&mut input));
                            }
                        }
                    }
                    _ => {}
                }
                events.push(event);
            }
            Step::NeedMore { at_least } => {
                let start = input.len();
                input.resize(start + at_least.get(), 0);
                stream
                    .read_exact(&mut input[start..])
                    .await
                    .map_err(HopFailure::Io)?;
            }
            Step::Idle => return Ok((machine, events)),
        }
    }
}

/// What a GSS-API exchange with one hop needs: the options and the hop's host name.
type GssapiHop<'a> = (&'a GssapiOptions, &'a str);

/// Without the gssapi feature a chain never offers GSS-API.
#[cfg(not(feature = "gssapi"))]
#[derive(Debug, Clone)]
pub(crate) struct GssapiOptions;

/// Replies that say the target could not be reached (rather than that it was refused).
fn is_unreachable(reply: Reply) -> bool {
    matches!(
        reply,
        Reply::CONNECTION_REFUSED
            | Reply::NETWORK_UNREACHABLE
            | Reply::HOST_UNREACHABLE
            | Reply::TTL_EXPIRED
    )
}

fn protocol(hop: &Hop, gssapi: bool) -> ClientProtocol {
    let user_id = || {
        hop.credentials
            .as_ref()
            .map(|c| c.username().to_vec())
            .unwrap_or_default()
    };
    match hop.flavour {
        Flavour::Socks4 => ClientProtocol::Socks4 { user_id: user_id() },
        Flavour::Socks4a => ClientProtocol::Socks4a { user_id: user_id() },
        // An HTTP hop is spoken to with CONNECT (`http_hop`), never with this.
        Flavour::Socks5 | Flavour::Socks5h | Flavour::Http => ClientProtocol::Socks5 {
            credentials: hop.credentials.clone(),
            gssapi,
        },
    }
}

pub(crate) async fn resolve(address: &Address) -> io::Result<Vec<SocketAddr>> {
    match &address.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, address.port)]),
        Host::Domain(name) => Ok(tokio::net::lookup_host((name.as_str(), address.port))
            .await?
            .collect()),
    }
}

async fn connect_any(addresses: &[SocketAddr], outbound: &Outbound) -> io::Result<TcpStream> {
    let mut last = io::Error::other("no address");
    for address in addresses {
        match outbound.connect(*address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// BND.ADDR of the grant among a hop's events (unspecified when the reply had none).
fn granted_bound(events: &[ClientEvent]) -> Address {
    events
        .iter()
        .find_map(|event| match event {
            ClientEvent::Granted { bound } => Some(bound.clone()),
            _ => None,
        })
        .unwrap_or_else(Address::unspecified)
}
