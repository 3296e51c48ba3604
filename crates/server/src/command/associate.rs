//! UDP ASSOCIATE: relay datagrams between the client and the targets it names
//! (RFC 1928 §7).
//!
//! One relay socket per association faces both ways, like a NAT: datagrams from the client
//! carry a SOCKS UDP header naming their target; datagrams from outside get one naming their
//! source. Only the client may send through the relay: its IP is the control connection's
//! peer, and its port is DST.PORT of the request or, when that is 0, the port of its first
//! datagram; it is fixed from then on. (DST.ADDR is not used to narrow the client's IP: a
//! client behind NAT names an address the server never sees.) Datagrams from outside reach
//! the client only from where the client has sent, unless the filtering is loosened. A
//! `route` rule sends the association through an upstream group instead: the client's
//! datagrams go on through the upstream chain's own association, and the answers come back
//! from it. The association ends with its control
//! connection, when it has been idle too long, when the relay socket fails, when the fleet
//! halts it (the user is over the byte quota), or, routed, when the upstream ends it; all
//! its state goes with it.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socksgate_config::{Fragments, Udp, UdpFiltering};
use socksgate_proto::udp::{Reassembled, Reassembler, UdpHeader};
use socksgate_proto::{Address, DomainName, Host, Reply, Wire};
use tokio::net::UdpSocket;

use super::through_route;
use crate::access_log::UdpStats;
use crate::authorize::{datagram_decision, datagram_way, way_out, Grant, Way};
use crate::counters::Tally;
use crate::failure::Failure;
use crate::limits::AssociationSlot;
use crate::requested::Requested;
use crate::sockets::{canonical, is_family_unavailable, reachable_from, wildcard_candidates};
use crate::stream::{ClientStream, ClientTcp};
use crate::subject::Subject;
use crate::{Resolver, Shared, Stats};
use socksgate_client::UdpChain;
use socksgate_policy::Evaluation;

/// Room in front of a received datagram for the header that goes back to the client: ATYP,
/// 16 bytes of IPv6 address, port, RSV and FRAG.
const HEADROOM: usize = 3 + 1 + 16 + 2;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams handled per wake-up before the association yields to its other events.
const DRAIN_BATCH: usize = 32;
/// A batch that has taken this long ends early (a datagram waited for a name), so that the
/// association's other events are seen.
const SLOW_DRAIN: Duration = Duration::from_millis(50);
/// How many targets an association remembers for filtering before it starts over.
const MAX_PERMITTED: usize = 4096;
/// Ports remembered per name in the verdicts of routed named datagrams.
const PORTS_PER_NAME: usize = 32;
/// How many resolved names an association remembers, and for how long.
const NAME_CACHE_SIZE: usize = 256;
const NAME_CACHE_TTL: Duration = Duration::from_secs(30);

/// How an association ended.
#[derive(Debug)]
pub(crate) enum AssociationEnd {
    /// The client closed (or reset) its control connection.
    ControlClosed,
    /// No datagram either way for the idle timeout.
    Idle,
    /// The relay socket failed.
    Error(io::Error),
    /// Stopped: the user used up the fleet's byte quota.
    Halted,
    /// The upstream chain of a routed association ended it (a hop closed its control
    /// connection).
    UpstreamClosed,
}

impl AssociationEnd {
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::ControlClosed => "closed",
            Self::Idle => "idle-timeout",
            Self::Error(_) => "relay-error",
            Self::Halted => "quota-exceeded",
            Self::UpstreamClosed => "upstream-closed",
        }
    }

    pub(crate) fn error(&self) -> Option<&io::Error> {
        match self {
            Self::Error(error) => Some(error),
            _ => None,
        }
    }
}

/// An association set up and answered, owning what its relay needs: the handshake's state
/// (the session's largest) is freed before the association starts its life, as a CONNECT's
/// is before its relay.
pub(crate) struct PreparedAssociation {
    upstream: Option<UdpChain>,
    route: Option<Arc<str>>,
    subject: Subject,
    socket: UdpSocket,
    local: SocketAddr,
    client_ip: IpAddr,
    client_port: Option<u16>,
    #[cfg(feature = "gssapi")]
    gss: Option<Box<socksgate_gssapi::GssLayer>>,
    /// Counted for the association's life (server-wide, across reloads).
    slot: AssociationSlot,
}

/// Sets up the association and answers the request; [`PreparedAssociation::run`] runs it.
pub(crate) async fn associate(
    mut session: Requested<'_>,
    grant: Grant,
) -> Result<Box<PreparedAssociation>, Failure> {
    let shared = session.shared;
    let config = &shared.udp;
    let Some(slot) = shared
        .limits
        .udp_association(shared.session_caps.max_udp_associations)
    else {
        session.refuse(Reply::NOT_ALLOWED).await;
        return Err(Failure::Denied("limits.max_udp_associations".to_owned()));
    };
    // The client as the session knows it: behind a trusted balancer, the one its PROXY
    // header named (the balancer carries TCP only; datagrams come from the client itself).
    let control_peer = session.record.subject.client();
    // Through an upstream group, datagrams go out wrapped for its chain.
    let upstream = match grant.route.clone() {
        None => None,
        Some(route) => Some(
            through_route(&mut session, &route, &grant.outbound, |chain| async move {
                chain.udp_associate().await
            })
            .await?,
        ),
    };
    // The upstream's control connections are this association's lifeline, as a target
    // socket is a CONNECT's: a hop that vanishes must be noticed.
    if let (Some(upstream), Some(keepalive)) = (&upstream, shared.timeouts.keepalive) {
        upstream.each_control(|tcp| crate::sockets::keep_alive(tcp, keepalive));
    }
    let socket = match bind_relay(config).await {
        Ok(socket) => socket,
        Err(error) => {
            session.refuse(Reply::GENERAL_FAILURE).await;
            return Err(Failure::Setup(error));
        }
    };
    let local = socket.local_addr().map_err(Failure::Setup)?;
    let advertised = config.advertise_address.unwrap_or_else(|| {
        session
            .client
            .tcp()
            .local_addr()
            .map_or(local.ip(), |control| control.ip().to_canonical())
    });
    session
        .reply(
            Reply::SUCCEEDED,
            &Address::from(SocketAddr::new(advertised, local.port())),
        )
        .await
        .map_err(Failure::ClientGone)?;

    let requested_port = session.request.target.port;
    Ok(Box::new(PreparedAssociation {
        upstream,
        route: grant.route.clone(),
        subject: session.record.subject.clone(),
        socket,
        local,
        client_ip: control_peer.ip().to_canonical(),
        client_port: (requested_port != 0).then_some(requested_port),
        // RFC 1961 §5: with GSS-API protection agreed, datagrams are sealed too, with the
        // control connection's context (the control connection carries nothing more).
        #[cfg(feature = "gssapi")]
        gss: session.client.take_encapsulation(),
        slot,
    }))
}

impl PreparedAssociation {
    /// Relays the association's datagrams until it ends; `counters` are the session's byte
    /// counts as `/sessions` shows them.
    pub(crate) async fn run(
        self: Box<Self>,
        control: &mut ClientStream,
        shared: &Shared,
        counters: &Tally,
    ) -> (AssociationEnd, UdpStats) {
        let config = &shared.udp;
        let PreparedAssociation {
            upstream,
            route,
            subject,
            socket,
            local,
            client_ip,
            client_port,
            #[cfg(feature = "gssapi")]
            gss,
            slot,
        } = {
            // Moved out in a block of its own, so that the box is freed now, not at the end.
            let prepared = self;
            *prepared
        };
        let _slot = slot;
        let mut association = Association {
            shared,
            upstream,
            route,
            subject,
            verdicts: HashMap::new(),
            name_verdicts: HashMap::new(),
            socket,
            local,
            client_ip,
            client_port,
            filter: Filter::new(config.filtering),
            fragments: config.fragments,
            reassembler: Reassembler::new(config.reassembly_timeout, MAX_DATAGRAM),
            names: HashMap::new(),
            resolver: shared.resolver.as_ref(),
            resolve_timeout: shared.timeouts.connect,
            stats: UdpStats::default(),
            counters,
            header: Vec::with_capacity(HEADROOM),
            #[cfg(feature = "gssapi")]
            gss,
            _gauge: AssociationGauge::new(&shared.stats),
        };
        let end = association.run(control, config.idle).await;
        (end, association.stats)
    }
}

/// Binds the relay socket: on the configured address or every address, on a free port of
/// the configured range (tried from a random start) or any free port.
async fn bind_relay(config: &Udp) -> io::Result<UdpSocket> {
    let addresses = config
        .address
        .map_or(wildcard_candidates().to_vec(), |ip| vec![ip]);
    let ports: Vec<u16> = match &config.ports {
        None => vec![0],
        Some(range) => {
            let count = usize::from(range.end() - range.start()) + 1;
            let start = RandomState::new().hash_one(0u8) as usize % count;
            let all: Vec<u16> = range.clone().collect();
            all[start..].iter().chain(&all[..start]).copied().collect()
        }
    };
    let mut last_error = io::Error::new(io::ErrorKind::AddrInUse, "no free port in udp.ports");
    for ip in addresses {
        for &port in &ports {
            match UdpSocket::bind((ip, port)).await {
                Ok(socket) => return Ok(socket),
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = error,
                Err(error) if is_family_unavailable(&error) => {
                    last_error = error;
                    break;
                }
                Err(error) => return Err(error),
            }
        }
    }
    Err(last_error)
}

/// Counts an association as open (`Stats::associations`) for as long as it exists.
struct AssociationGauge<'a>(&'a Stats);

impl<'a> AssociationGauge<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.associations.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for AssociationGauge<'_> {
    fn drop(&mut self) {
        self.0.associations.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which outside senders may reach the client: those it has sent to.
struct Filter {
    mode: UdpFiltering,
    permitted: HashSet<SocketAddr>,
}

impl Filter {
    fn new(mode: UdpFiltering) -> Self {
        Self {
            mode,
            permitted: HashSet::new(),
        }
    }

    fn key(&self, addr: SocketAddr) -> SocketAddr {
        match self.mode {
            UdpFiltering::Address => SocketAddr::new(addr.ip(), 0),
            _ => addr,
        }
    }

    fn permit(&mut self, target: SocketAddr) {
        if self.mode == UdpFiltering::EndpointIndependent {
            return;
        }
        if self.permitted.len() >= MAX_PERMITTED {
            self.permitted.clear();
        }
        self.permitted.insert(self.key(target));
    }

    fn allows(&self, source: SocketAddr) -> bool {
        self.mode == UdpFiltering::EndpointIndependent || self.permitted.contains(&self.key(source))
    }
}

/// Who the association belongs to, as the policy sees it.
struct Association<'a> {
    shared: &'a Shared,
    /// The association through an upstream group's chain, for routed traffic.
    upstream: Option<UdpChain>,
    /// The group it goes through, as the rule that granted it named it.
    route: Option<Arc<str>>,
    /// Who sends the association's datagrams, as the rules see it.
    subject: Subject,
    /// The policy's answer per destination, remembered (bounded like the filter) for the
    /// association's life: a `days`/`hours` condition is judged when a destination is first
    /// used, as a session's rule is when it starts.
    verdicts: HashMap<SocketAddr, Option<Way>>,
    /// The same for routed datagrams addressed by name, by name and port: a rule walk and
    /// a clock reading per datagram otherwise.
    /// (By name, then port: a datagram's lookup borrows its name, allocating nothing.)
    name_verdicts: HashMap<DomainName, Vec<(u16, Option<Way>)>>,
    socket: UdpSocket,
    local: SocketAddr,
    client_ip: IpAddr,
    client_port: Option<u16>,
    filter: Filter,
    fragments: Fragments,
    reassembler: Reassembler,
    names: HashMap<DomainName, (SocketAddr, Instant)>,
    resolver: &'a dyn Resolver,
    resolve_timeout: Duration,
    stats: UdpStats,
    /// The session's byte counts as `/sessions` shows them while the association runs.
    counters: &'a Tally,
    /// Where the header of a datagram for the client is written (reused: no allocation per
    /// datagram).
    header: Vec<u8>,
    /// The GSS-API layer datagrams are sealed with, when the session agreed on protection.
    #[cfg(feature = "gssapi")]
    gss: Option<Box<socksgate_gssapi::GssLayer>>,
    _gauge: AssociationGauge<'a>,
}

impl Association<'_> {
    async fn run(&mut self, control: &mut ClientStream, idle: Duration) -> AssociationEnd {
        // One timer for the association's life, re-armed only when it fires early: a timer
        // per datagram would cost a timer-wheel insertion and removal each time.
        let mut last_activity = tokio::time::Instant::now();
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        loop {
            let side = tokio::select! {
                // Over the fleet's quota: ended at once, datagrams or not.
                () = self.counters.halt_requested() => return AssociationEnd::Halted,
                () = control_closed(control) => return AssociationEnd::ControlClosed,
                () = upstream_closed(self.upstream.as_ref()) => return AssociationEnd::UpstreamClosed,
                ready = self.socket.readable() => ready.map(|()| Side::Relay),
                ready = upstream_readable(self.upstream.as_ref()) => ready.map(|()| Side::Upstream),
                () = &mut idle_timer => {
                    let deadline = last_activity + idle;
                    if tokio::time::Instant::now() >= deadline {
                        return AssociationEnd::Idle;
                    }
                    idle_timer.as_mut().reset(deadline);
                    continue;
                },
            };
            let side = match side {
                Ok(side) => side,
                Err(error) => return AssociationEnd::Error(error),
            };
            let relayed = self.relayed();
            // Boxed, only while datagrams flow: inline, the drain's state (~900 bytes) would
            // be held by every idle association.
            if let Err(error) = Box::pin(self.drain(side)).await {
                return AssociationEnd::Error(error);
            }
            // Only datagrams relayed count as activity: a stranger's, dropped, must not keep
            // the association (and its port) alive.
            if self.relayed() != relayed {
                last_activity = tokio::time::Instant::now();
            }
        }
    }

    /// Datagrams relayed so far, either way.
    fn relayed(&self) -> u64 {
        self.stats.datagrams_up + self.stats.datagrams_down
    }

    /// Relays the datagrams waiting on one side, a batch at most, then gives the other
    /// events their turn — sooner when one datagram took long (a name to resolve), so that
    /// a closed control connection or a halt waits for one resolution at most.
    async fn drain(&mut self, side: Side) -> io::Result<()> {
        let started = tokio::time::Instant::now();
        for _ in 0..DRAIN_BATCH {
            let received = match side {
                Side::Relay => landed(|buffer| self.socket.try_recv_buf_from(buffer))
                    .map(|(datagram, (len, from))| Landed::Relay(datagram, len, canonical(from))),
                Side::Upstream => {
                    let Some(upstream) = self.upstream.as_ref() else {
                        return Ok(());
                    };
                    landed(|buffer| upstream.try_recv_buf_from(buffer))
                        .map(|(datagram, received)| Landed::Upstream(datagram, received))
                }
            };
            match received {
                Ok(Landed::Relay(mut datagram, len, from)) => {
                    self.on_datagram(&mut datagram, len, from).await;
                }
                Ok(Landed::Upstream(mut datagram, Some((len, source)))) => {
                    self.relay_from_upstream(&mut datagram, len, source).await;
                }
                // Not wrapped once per hop, or not from the upstream's relay.
                Ok(Landed::Upstream(_, None)) => self.stats.drops.malformed += 1,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // An ICMP error for an earlier datagram: not the association's end.
                Err(error) if is_transient(&error) => {}
                Err(error) => return Err(error),
            }
            // Reading without waiting spends none of the task's scheduling budget: a sprayed
            // socket would otherwise keep this worker for ever. Spent here, the task yields
            // when its budget runs out, as a task doing awaited I/O does.
            tokio::task::consume_budget().await;
            if started.elapsed() >= SLOW_DRAIN {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sorts a datagram: from the client, a reply for the client, or dropped.
    async fn on_datagram(&mut self, buffer: &mut [u8], len: usize, from: SocketAddr) {
        let client = self
            .client_port
            .map(|port| SocketAddr::new(self.client_ip, port));
        if Some(from) == client {
            self.relay_from_client(&buffer[HEADROOM..HEADROOM + len])
                .await;
        } else if let Some(client) = client.filter(|_| self.filter.allows(from)) {
            self.relay_inbound(buffer, len, Address::from(from), client)
                .await;
        } else if client.is_none() && from.ip() == self.client_ip {
            self.client_port = Some(from.port());
            self.relay_from_client(&buffer[HEADROOM..HEADROOM + len])
                .await;
        } else {
            self.stats.drops.unexpected_source += 1;
        }
    }

    /// A datagram from the client: opened first when the session sealed it (RFC 1961 §5).
    async fn relay_from_client(&mut self, datagram: &[u8]) {
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut self.gss {
            match gss.open_datagram(datagram) {
                Ok(opened) => self.relay_outbound(&opened).await,
                Err(_) => self.stats.drops.malformed += 1,
            }
            return;
        }
        self.relay_outbound(datagram).await;
    }

    async fn relay_outbound(&mut self, datagram: &[u8]) {
        let Ok((header, payload)) = UdpHeader::split(datagram) else {
            self.stats.drops.malformed += 1;
            return;
        };
        let (target, data) = if header.frag.is_standalone() {
            self.reassembler.abandon();
            (header.address, Cow::Borrowed(payload))
        } else if self.fragments == Fragments::Drop {
            self.stats.drops.fragments += 1;
            return;
        } else {
            match self
                .reassembler
                .push(Instant::now(), header.frag, &header.address, payload)
            {
                Reassembled::Complete { address, data } => (address, Cow::Owned(data)),
                Reassembled::Queued => return,
                Reassembled::Dropped(_) => {
                    self.stats.drops.fragments += 1;
                    return;
                }
            }
        };
        if self.upstream.is_some() {
            // Names travel as they are, for the upstream to resolve; both names and addresses
            // are judged here, by the same rules as direct datagrams. What the rules allow
            // rather than route goes out directly, as in a direct association.
            let way = match target.socket_addr() {
                Some(address) => self.way(&target.host, address),
                None => self.name_way(&target).await,
            };
            match (way, &self.upstream) {
                (Some(Way::Upstream), Some(upstream)) => {
                    if upstream.send_to(&data, &target).await.is_ok() {
                        self.stats.datagrams_up += 1;
                        self.stats.bytes_up += data.len() as u64;
                        self.counters.add_up(data.len());
                    } else {
                        self.stats.drops.unreachable += 1;
                    }
                    return;
                }
                (Some(Way::Direct), _) => {}
                _ => {
                    self.stats.drops.denied += 1;
                    return;
                }
            }
        }
        let Some(destination) = self.resolve(&target).await else {
            self.stats.drops.unresolved += 1;
            return;
        };
        if self.way(&target.host, destination) != Some(Way::Direct) {
            self.stats.drops.denied += 1;
            return;
        }
        let Some(send_to) = reachable_from(self.local, destination) else {
            self.stats.drops.unreachable += 1;
            return;
        };
        self.filter.permit(destination);
        match self.socket.send_to(&data, send_to).await {
            Ok(_) => {
                self.stats.datagrams_up += 1;
                self.stats.bytes_up += data.len() as u64;
                self.counters.add_up(data.len());
            }
            Err(_) => self.stats.drops.unreachable += 1,
        }
    }

    /// Prefixes the datagram in `buffer` with a header naming `source`, in the room left in
    /// front of it, and sends it to the client.
    async fn relay_inbound(
        &mut self,
        buffer: &mut [u8],
        len: usize,
        source: Address,
        client: SocketAddr,
    ) {
        self.header.clear();
        UdpHeader::new(source).encode(&mut self.header);
        let Some(start) = HEADROOM.checked_sub(self.header.len()) else {
            return;
        };
        buffer[start..HEADROOM].copy_from_slice(&self.header);
        let Some(send_to) = reachable_from(self.local, client) else {
            return;
        };
        let datagram = &buffer[start..HEADROOM + len];
        #[cfg(feature = "gssapi")]
        let sealed;
        #[cfg(feature = "gssapi")]
        let datagram = match &mut self.gss {
            Some(gss) => match gss.seal_datagram(datagram) {
                Ok(bytes) => {
                    sealed = bytes;
                    &sealed[..]
                }
                Err(_) => return,
            },
            None => datagram,
        };
        if self.socket.send_to(datagram, send_to).await.is_ok() {
            self.stats.datagrams_down += 1;
            self.stats.bytes_down += len as u64;
            self.counters.add_down(len);
        }
    }

    /// Passes a datagram that came back through the upstream chain to the client.
    async fn relay_from_upstream(&mut self, buffer: &mut [u8], len: usize, source: Address) {
        if let Some(port) = self.client_port {
            let client = SocketAddr::new(self.client_ip, port);
            self.relay_inbound(buffer, len, source, client).await;
        }
    }

    /// How a datagram to `destination` (named `host` in the request) goes out, if the
    /// policy lets it.
    fn way(&mut self, host: &Host, destination: SocketAddr) -> Option<Way> {
        if !self.shared.policy.judges_destinations() {
            return Some(Way::Direct);
        }
        if let Some(&way) = self.verdicts.get(&destination) {
            return way;
        }
        let way = datagram_way(
            self.shared,
            &self.subject,
            host,
            destination,
            self.route.as_deref(),
        );
        if self.verdicts.len() >= MAX_PERMITTED {
            self.verdicts.clear();
        }
        self.verdicts.insert(destination, way);
        way
    }

    /// How a datagram to a name goes out, if the rules let it: by the name alone where that
    /// settles it, else by the address it resolves to here (as for a routed CONNECT).
    async fn name_way(&mut self, target: &Address) -> Option<Way> {
        if !self.shared.policy.judges_destinations() {
            return Some(Way::Direct);
        }
        let Host::Domain(name) = &target.host else {
            return None;
        };
        let known = self.name_verdicts.get(name).and_then(|ports| {
            ports
                .iter()
                .find(|(port, _)| *port == target.port)
                .map(|&(_, way)| way)
        });
        if let Some(way) = known {
            return way;
        }
        match datagram_decision(self.shared, &self.subject, &target.host, target.port, None) {
            // Settled by the name: remembered for the association's next datagrams.
            Evaluation::Decided(verdict) => {
                let way = way_out(&verdict, self.route.as_deref());
                if self.name_verdicts.len() >= MAX_PERMITTED {
                    self.name_verdicts.clear();
                }
                let ports = self.name_verdicts.entry(name.clone()).or_default();
                // Bounded per name too (and short, as it is scanned): a client cycling ports
                // must not grow one entry.
                if ports.len() >= PORTS_PER_NAME {
                    ports.clear();
                }
                ports.push((target.port, way));
                way
            }
            // Judged by the address it resolves to now (not remembered: the address may
            // change), and never through the cache of verdicts by address: another name may
            // share the address and not the verdict.
            Evaluation::NeedsAddress => {
                let address = self.resolve(target).await?;
                datagram_way(
                    self.shared,
                    &self.subject,
                    &target.host,
                    address,
                    self.route.as_deref(),
                )
            }
        }
    }

    /// The socket address of a target; names are resolved and cached briefly.
    async fn resolve(&mut self, target: &Address) -> Option<SocketAddr> {
        let name = match &target.host {
            Host::Ip(ip) => return Some(SocketAddr::new(ip.to_canonical(), target.port)),
            Host::Domain(name) => name,
        };
        let now = Instant::now();
        if let Some(&(address, resolved)) = self.names.get(name) {
            if now.duration_since(resolved) < NAME_CACHE_TTL {
                return Some(SocketAddr::new(address.ip(), target.port));
            }
        }
        let lookup = self.resolver.resolve(name, target.port);
        let addresses = tokio::time::timeout(self.resolve_timeout, lookup)
            .await
            .ok()?
            .ok()?;
        let address = addresses
            .into_iter()
            .map(canonical)
            .find(|&a| reachable_from(self.local, a).is_some())?;
        if self.names.len() >= NAME_CACHE_SIZE {
            self.names.clear();
        }
        self.names.insert(name.clone(), (address, now));
        Some(address)
    }
}

/// Which socket has datagrams waiting.
#[derive(Clone, Copy)]
enum Side {
    /// The relay socket: the client's datagrams and the targets' replies.
    Relay,
    /// The upstream chain's socket, for a routed association.
    Upstream,
}

/// A datagram read from one side, copied out of the landing buffer at its own size, with
/// `HEADROOM` bytes in front.
enum Landed {
    /// From the relay socket: its length and sender.
    Relay(Vec<u8>, usize, SocketAddr),
    /// From the upstream chain: its length and innermost source, or `None` for one it
    /// dropped.
    Upstream(Vec<u8>, Option<(usize, Address)>),
}

thread_local! {
    /// Where each datagram is read first: one 64 KiB buffer per worker thread, never
    /// zeroed, so that no association holds one; a datagram is copied out of it at its own
    /// size before anything that can wait (a name to resolve).
    static LANDING: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads one datagram with `read` (into a vector with `HEADROOM` bytes in front and room
/// for the largest datagram after) and returns a copy of what it filled, and what it said.
fn landed<T>(read: impl FnOnce(&mut Vec<u8>) -> io::Result<T>) -> io::Result<(Vec<u8>, T)> {
    LANDING.with_borrow_mut(|landing| {
        landing.clear();
        landing.reserve(HEADROOM + MAX_DATAGRAM);
        landing.resize(HEADROOM, 0);
        let said = read(landing)?;
        Ok((landing.clone(), said))
    })
}

/// When the client's control connection closes or fails. What it sends meanwhile is read
/// and ignored (nothing is expected) through a scratch buffer that exists only during a
/// poll: the association's state holds none.
fn control_closed(control: &mut ClientStream) -> impl std::future::Future<Output = ()> + '_ {
    std::future::poll_fn(move |context| socksgate_client::poll_ended(control, context))
}

/// When the upstream chain has ended the association; never when there is none.
async fn upstream_closed(upstream: Option<&UdpChain>) {
    match upstream {
        Some(upstream) => upstream.closed().await,
        None => std::future::pending().await,
    }
}

/// Ready when the upstream chain may have a datagram waiting; never when there is none.
async fn upstream_readable(upstream: Option<&UdpChain>) -> io::Result<()> {
    match upstream {
        Some(upstream) => upstream.readable().await,
        None => std::future::pending().await,
    }
}

/// Errors a UDP socket reports for earlier datagrams (ICMP unreachable and the like).
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
