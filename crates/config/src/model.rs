//! The validated configuration: what the server runs on. Every value here has been checked.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use socksgate_proto::Method;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to accept clients; never empty.
    pub listeners: Vec<Listener>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Limits.
    pub limits: Limits,
    /// Logging.
    pub log: Log,
    /// Authentication back ends.
    pub auth: Auth,
    /// Who may do what.
    pub policy: socksgate_policy::Policy,
    /// Groups of upstream proxy chains that `route` rules send traffic through.
    pub upstreams: Vec<UpstreamGroup>,
    /// The BIND command.
    pub bind: Bind,
    /// The UDP ASSOCIATE command.
    pub udp: Udp,
    /// The GSS-API method (Kerberos, RFC 1961).
    pub gssapi: Gssapi,
    /// socksgate's ICMP extension (ping and traceroute through the proxy); off by default.
    pub icmp: Icmp,
    /// The admin listener (`/metrics`, `/health`, `/sessions`); none by default.
    pub admin: Option<Admin>,
    /// The user and group the server runs as once its listeners are open.
    pub process: Process,
    /// Limits shared with other nodes through Redis; none by default.
    pub fleet: Option<Fleet>,
    /// Whether a listener on a non-loopback address may serve clients without
    /// authentication. Open proxies are found and abused within hours.
    pub danger_allow_open_proxy: bool,
    /// `[policy] deny_private_destinations` as the file says it. Unset (`None`), the guard
    /// is on as soon as a listener is not on loopback (`policy.deny_private_destinations`
    /// holds the effective value).
    pub private_destinations_setting: Option<bool>,
}

/// The GSS-API method: which service's keys, which protection levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gssapi {
    /// The service name: clients ask for `SERVICE@HOST` (`rcmd`, as Dante and curl).
    pub service: String,
    /// The keytab holding the service's keys (`KRB5_KTNAME` or the system's by default).
    pub keytab: Option<PathBuf>,
    /// The levels the server grants, any order: it answers the strongest of them that is not
    /// stronger than the client asked for.
    pub protection: Vec<Protection>,
    /// Accept the protection-level message unprotected, and answer it so (the NEC reference
    /// implementation's behaviour; curl's `--socks5-gssapi-nec`).
    pub nec: bool,
}

impl Default for Gssapi {
    /// Service `rcmd`; integrity or confidentiality; the protected negotiation of RFC 1961.
    fn default() -> Self {
        Self {
            service: "rcmd".to_owned(),
            keytab: None,
            protection: vec![Protection::Integrity, Protection::Confidentiality],
            nec: false,
        }
    }
}

/// RFC 1961 §4 protection of the data after authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protection {
    /// Authentication only: the data is not encapsulated (level 0, curl's only level).
    None,
    /// Per-message integrity (level 1).
    Integrity,
    /// Per-message integrity and confidentiality (level 2).
    Confidentiality,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The address to bind.
    pub address: SocketAddr,
    /// SOCKS5 authentication methods, in order of preference: [`Method::NO_AUTH`],
    /// [`Method::PASSWORD`]. Default: password when an authentication back end is
    /// configured, none otherwise.
    pub methods: Vec<Method>,
    /// Whether SOCKS4 and SOCKS4a are served (they cannot authenticate, so only where
    /// "none" is allowed).
    pub socks4: bool,
    /// Whether SOCKS5 is served (`protocols`; default: yes).
    pub socks5: bool,
    /// Whether HTTP proxy clients are served — CONNECT and forwarded `http://` requests —
    /// on the same port, told apart by their first byte (`protocols`; default: where the
    /// methods allow "none" or "password", which `Proxy-Authorization: Basic` carries).
    pub http: bool,
    /// SOCKS inside TLS on this listener.
    pub tls: Option<ListenerTls>,
    /// Load balancers whose connections begin with a PROXY protocol header (v1 or v2)
    /// naming the real client: a connection from these sources must have one, and one from
    /// anywhere else must not. Empty: no PROXY protocol.
    pub proxy_protocol: Vec<socksgate_policy::Cidr>,
    /// Whether a SOCKS4 USERID counts as the session's user (for rules, per-user limits and
    /// the log's `user`). Off by default: anyone can claim any name; for identd-era
    /// networks whose clients are trusted to say who they are. Otherwise the USERID is only
    /// logged, as `claimed_user`.
    pub trust_socks4_userid: bool,
}

/// A TLS listener's certificate, key and (for client certificates) trusted authorities.
/// The files are PEM; they are read when the server starts and on every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these authorities;
    /// its subject's common name becomes the session's user.
    pub client_ca: Option<PathBuf>,
}

impl Listener {
    /// A listener on `address` without authentication, SOCKS4 included.
    pub fn open(address: SocketAddr) -> Self {
        Self {
            address,
            methods: vec![Method::NO_AUTH],
            socks4: true,
            socks5: true,
            http: true,
            tls: None,
            proxy_protocol: Vec::new(),
            trust_socks4_userid: false,
        }
    }

    /// Whether clients from elsewhere reach it: it is not on loopback, or a load balancer
    /// passes their connections on (a PROXY protocol listener behind a local HAProxy is
    /// public all the same).
    pub fn is_public(&self) -> bool {
        !self.address.ip().to_canonical().is_loopback() || !self.proxy_protocol.is_empty()
    }

    /// Whether clients may connect without authenticating (a TLS listener that requires
    /// client certificates authenticates them).
    pub fn allows_anonymous(&self) -> bool {
        let certified = self.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some());
        self.methods.contains(&Method::NO_AUTH) && !certified
    }
}

/// How long each phase may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accept to a complete request (default 10 s).
    pub handshake: Duration,
    /// To reach the target, all addresses of a name included (default 10 s).
    pub connect: Duration,
    /// A relay with no traffic either way is closed after this long (default 2 h); `None`
    /// never.
    pub idle: Option<Duration>,
    /// TCP keepalive on relayed connections (client and target): probes start after this
    /// long without traffic, every quarter of it (at least 1 s), and four unanswered ones
    /// end the session (no `TCP_USER_TIMEOUT`: it would override the probes and reset peers
    /// that keep their window shut).
    /// A peer whose network vanished is found within about twice this. `None`: off.
    pub keepalive: Option<Duration>,
    /// On SIGTERM or SIGINT, how long running sessions may drain (default 30 s).
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            connect: Duration::from_secs(10),
            idle: Some(Duration::from_secs(2 * 60 * 60)),
            keepalive: Some(Duration::from_secs(60)),
            shutdown: Duration::from_secs(30),
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Where it listens.
    pub address: SocketAddr,
    /// Counters per user in `/metrics`, for at most this many users (the rest are counted
    /// together as `user="(other)"`): opt-in, so that the series stay bounded. `None`: off.
    pub per_user_metrics: Option<u32>,
    /// A file holding the bearer token every page but `/health` asks for.
    pub token_file: Option<PathBuf>,
    /// HTTPS; with `client_ca`, a client certificate from those authorities is required.
    pub tls: Option<ListenerTls>,
}

impl Admin {
    /// Whether clients must prove who they are: a token, or a client certificate. Required
    /// of an admin listener that is not on loopback.
    pub fn authenticates(&self) -> bool {
        self.token_file.is_some() || self.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some())
    }
}

/// Resource limits (by default none is set; IPv6 sources count per /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions served at once; further clients wait in the kernel's accept queue. `None`
    /// (the default): as many as the process's descriptor limit holds, up to 10,000.
    pub max_sessions: Option<usize>,
    /// Sessions at once from one client address, server-wide; a request beyond it is
    /// refused (0x02, or 0x5B for SOCKS4). `None`: no limit.
    pub max_sessions_per_source: Option<u32>,
    /// Sessions at once of one user, server-wide (refused as above). `None`: no limit.
    pub max_sessions_per_user: Option<u32>,
    /// Bytes per second each way that all of one user's sessions share. `None`: no cap.
    pub bandwidth_per_user: Option<u64>,
    /// New connections per second from one client address (bursts of as many); beyond it a
    /// connection is closed before a byte is read. `None`: no limit.
    pub connection_rate_per_source: Option<u32>,
    /// How many leading bits of an IPv6 client address make one source, for the per-source
    /// limits, the connection rate and the login throttle (IPv4: the whole address).
    pub ipv6_source_prefix: u8,
    /// How many connections each listener (SOCKS, admin) lets the kernel queue before they
    /// are accepted. `None` (the default): as many as the kernel allows
    /// (`net.core.somaxconn`): a burst of clients after a network blip or a balancer's
    /// restart waits in the queue instead of having its SYNs dropped.
    pub listen_backlog: Option<u32>,
    /// UDP associations at once, server-wide (each also holds a session slot and a relay
    /// socket); beyond it UDP ASSOCIATE is refused (0x02). `None`: only `max_sessions`.
    pub max_udp_associations: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: None,
            max_sessions_per_source: None,
            max_sessions_per_user: None,
            bandwidth_per_user: None,
            connection_rate_per_source: None,
            ipv6_source_prefix: 64,
            listen_backlog: None,
            max_udp_associations: None,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// Human-readable lines or JSON objects, on standard error.
    pub format: LogFormat,
    /// A `tracing` filter directive (`info`, `socksgate=debug`, …).
    pub level: String,
    /// Whether one access-log event is written per session.
    pub access: bool,
    /// Where logs go.
    pub output: LogOutput,
}

/// Where logs go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogOutput {
    /// Standard error (the default; journald takes it under systemd).
    #[default]
    Stderr,
    /// Standard output.
    Stdout,
    /// A file, appended to, and opened again on SIGUSR1 (after log rotation).
    File(std::path::PathBuf),
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
            access: true,
            output: LogOutput::Stderr,
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    /// The embedded default: loopback only (`127.0.0.1:1080` and `[::1]:1080`), no
    /// authentication, everything allowed.
    fn default() -> Self {
        let loopback = |address: &str| {
            Listener::open(
                address
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1080))),
            )
        };
        Self {
            listeners: vec![loopback("127.0.0.1:1080"), loopback("[::1]:1080")],
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            log: Log::default(),
            auth: Auth::default(),
            policy: socksgate_policy::Policy::default(),
            upstreams: Vec::new(),
            bind: Bind::default(),
            udp: Udp::default(),
            gssapi: Gssapi::default(),
            icmp: Icmp::default(),
            admin: None,
            process: Process::default(),
            fleet: None,
            danger_allow_open_proxy: false,
            private_destinations_setting: None,
        }
    }
}

/// How BIND listens for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The address to listen on; `None` for every address (dual stack where possible).
    pub address: Option<IpAddr>,
    /// The address sent in the first reply, where the peer must connect; `None` to use the
    /// address through which the server reaches the expected peer (or, when the request
    /// names none, the address the client reached the server on).
    pub advertise_address: Option<IpAddr>,
    /// How long to wait for the peer (default 2 minutes).
    pub timeout: Duration,
}

impl Default for Bind {
    fn default() -> Self {
        Self {
            address: None,
            advertise_address: None,
            timeout: Duration::from_secs(120),
        }
    }
}

/// How UDP ASSOCIATE relays datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp {
    /// The address relay sockets bind to; `None` for every address (dual stack where
    /// possible).
    pub address: Option<IpAddr>,
    /// The ports relay sockets may use; `None` for any free port.
    pub ports: Option<RangeInclusive<u16>>,
    /// The address sent in the reply, where the client must send datagrams; `None` for the
    /// address the client reached the server on. Set it behind NAT.
    pub advertise_address: Option<IpAddr>,
    /// Which outside senders may reach the client.
    pub filtering: UdpFiltering,
    /// What to do with fragmented datagrams (RFC 1928 §7).
    pub fragments: Fragments,
    /// How long a fragment sequence may take to complete (at least 5 s).
    pub reassembly_timeout: Duration,
    /// An association with no datagram either way for this long ends (default 5 minutes).
    pub idle: Duration,
}

impl Default for Udp {
    fn default() -> Self {
        Self {
            address: None,
            ports: None,
            advertise_address: None,
            filtering: UdpFiltering::AddressAndPort,
            fragments: Fragments::Reassemble,
            reassembly_timeout: Duration::from_secs(5),
            idle: Duration::from_secs(300),
        }
    }
}

/// Limits that hold across several socksgate nodes, kept in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The Redis server (`redis://[:PASSWORD@]HOST:PORT/DB`).
    pub redis: String,
    /// This node's name in logs and session keys (the host name by default).
    pub node: Option<String>,
    /// How often byte counts are reported and leases renewed.
    pub sync_interval: Duration,
    /// Sessions at once of one user, fleet-wide (exact).
    pub max_sessions_per_user: Option<u32>,
    /// Sessions at once from one address, fleet-wide (exact).
    pub max_sessions_per_source: Option<u32>,
    /// Bytes (both ways together) per user and period, fleet-wide.
    pub quota: Option<Quota>,
    /// Failed logins per user across the fleet before every attempt waits.
    pub logins: Option<LoginLimit>,
    /// What a session limit does while Redis cannot be reached.
    pub sessions_on_redis_down: FailMode,
    /// What the quota does while Redis cannot be reached.
    pub quota_on_redis_down: FailMode,
    /// What the login limit does while Redis cannot be reached.
    pub logins_on_redis_down: FailMode,
}

/// A byte quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Bytes per period.
    pub bytes: u64,
    /// Calendar day or month, UTC.
    pub period: QuotaPeriod,
}

/// The period a quota counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
}

/// Failed logins across the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Failures of one user within `window` after which every attempt waits `delay`.
    pub failures: u32,
    /// How long failures are remembered.
    pub window: Duration,
    /// The wait before each attempt once throttled.
    pub delay: Duration,
}

/// What a limit does when its shared state cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Serve as if within the limit (logged, counted).
    Open,
    /// Refuse as if over the limit (logged, counted).
    Closed,
}

/// Who the server process becomes after opening its listeners (started as root, to bind
/// ports below 1024): it gives up root for this user and group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Process {
    /// The user to run as (a name from the system's user database).
    pub user: Option<String>,
    /// The group to run as; the user's primary group when not given.
    pub group: Option<String>,
}

/// The ICMP extension (`docs/extensions/icmp.md`): echo requests on a client's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp {
    /// Serve the extension at all; off by default (the command is then answered 0x07).
    pub enabled: bool,
    /// Which kind of ICMP socket sends the probes.
    pub socket: IcmpSocket,
    /// Echo requests per second one session may send (a burst of as many is allowed); the
    /// rest are dropped, as a rate-limited router drops them.
    pub rate: u32,
}

impl Default for Icmp {
    fn default() -> Self {
        Self {
            enabled: false,
            socket: IcmpSocket::Auto,
            rate: 10,
        }
    }
}

/// The kind of socket ICMP probes go out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpSocket {
    /// A ping socket where `net.ipv4.ping_group_range` allows it, a raw socket otherwise.
    Auto,
    /// Only unprivileged ping sockets (`SOCK_DGRAM`, `IPPROTO_ICMP`/`IPPROTO_ICMPV6`).
    Ping,
    /// Only raw sockets (needs `CAP_NET_RAW`).
    Raw,
}

/// Which datagrams from the outside are relayed to the client (the terms of RFC 4787).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpFiltering {
    /// Only from an address and port the client has sent to (a strict NAT; the default).
    AddressAndPort,
    /// From any port of an address the client has sent to.
    Address,
    /// From anyone (a full-cone NAT).
    EndpointIndependent,
}

/// Fragmented datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragments {
    /// Reassemble them (RFC 1928 §7).
    Reassemble,
    /// Drop them, as the RFC allows an implementation without fragmentation to.
    Drop,
}

/// Where usernames and passwords are checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// The back end, if any.
    pub backend: Option<AuthBackend>,
    /// Slowing down failed logins.
    pub throttle: LoginThrottle,
}

/// One authentication back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthBackend {
    /// An htpasswd-format file (reloaded when it changes).
    PasswordFile {
        /// The password file.
        path: PathBuf,
        /// An optional group file (`group: user1 user2`).
        groups: Option<PathBuf>,
        /// Whether plaintext passwords in the file are accepted.
        danger_plaintext_passwords: bool,
    },
    /// PAM, with this service name (/etc/pam.d/SERVICE).
    Pam {
        /// The service name.
        service: String,
    },
}

/// How password guessing is slowed down, per source group and per user: failure replies
/// wait, and a suspect has few logins pending at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures allowed before any wait.
    pub free_failures: u32,
    /// The first wait of a failure reply; doubled with each further failure.
    pub base: Duration,
    /// The longest wait of a failure from one source group.
    pub source_cap: Duration,
    /// The longest wait of a failure for one user.
    pub user_cap: Duration,
    /// Logins pending at once from a source group past its free failures.
    pub pending_per_source: u32,
    /// Logins pending at once for a user past their free failures.
    pub pending_per_user: u32,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base: Duration::from_millis(100),
            source_cap: Duration::from_secs(5),
            user_cap: Duration::from_secs(1),
            pending_per_source: 4,
            pending_per_user: 8,
        }
    }
}

/// A named group of upstream chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamGroup {
    /// The name `route` rules use.
    pub name: String,
    /// The members: each a chain of proxies, first hop first. Credentials come from here,
    /// never from the end user.
    pub chains: Vec<Vec<socksgate_proto::hop::Hop>>,
    /// How a member is chosen.
    pub selection: Selection,
    /// Consecutive failures after which a member is set aside.
    pub max_failures: u32,
    /// How long a member that failed stays set aside before it is tried again.
    pub retry_after: Duration,
    /// How long reaching a member's first hop may take before the member counts as failed
    /// and the next one is tried (default 4 s: a black-holed hop fails over in time).
    pub connect_timeout: Duration,
    /// How long each hop's exchange may take (TLS, authentication, request; default 5 s,
    /// so that a member that accepts and never answers fails within the session's 10 s).
    pub handshake_timeout: Duration,
    /// How the group's TLS hops (`socks5s://`, `socks5hs://`) are checked, and the client
    /// certificate they are shown (the system's authorities, no certificate, by default).
    pub tls: socksgate_tls::ClientTls,
    /// GSS-API (Kerberos) offered to the group's SOCKS5 hops, with the server's own
    /// credentials (its ticket cache or client keytab); none when not set.
    pub gssapi: Option<UpstreamGssapi>,
    /// Whether each connection to a chain's first hop begins with a PROXY protocol v2 header
    /// naming the client, for an upstream behind which policy and logs want the real client.
    pub send_proxy_protocol: bool,
}

/// How a group's hops are asked for GSS-API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamGssapi {
    /// The hops' service name (`rcmd`).
    pub service: String,
    /// The level asked for.
    pub protection: Protection,
    /// Send the level unprotected (NEC-style hops).
    pub nec: bool,
}

/// How a group picks the member for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The first healthy member, in order (the others are standbys).
    Failover,
    /// Healthy members in turn.
    RoundRobin,
    /// The same member for the same client address while it is healthy.
    HashByClient,
}
