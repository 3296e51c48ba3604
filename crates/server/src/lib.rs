//! The socksgate SOCKS server.
//!
//! [`Server::bind`] opens the listeners of a validated [`Config`]; [`Server::run`] serves
//! until a shutdown future completes, then stops accepting and lets running sessions drain
//! for the configured time. Each accepted connection is one task that drives
//! `socksgate-proto`'s server machine, connects to the target (through a [`Resolver`]), replies
//! with the code [`reply`] chooses, relays with `splice(2)` on Linux, and writes one
//! access-log event (`tracing` target `socksgate::access`).
//!
//! This crate reads no flag or environment variable, and no file but those the [`Config`]
//! names (TLS material, the admin token) and the kernel's `net.core.somaxconn`.

mod access_log;
mod admin;
mod authorize;
mod command;
mod counters;
mod ended;
mod failure;
pub mod fleet;
#[cfg(feature = "gssapi")]
mod gss;
mod http;
mod icmp;
mod limits;
mod listener;
mod login;
mod metrics;
mod outbound;
mod relay;
pub mod reply;
mod requested;
mod session;
mod session_table;
mod sockets;
mod stream;
mod subject;
mod upstream;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use socksgate_auth::{Authenticator, Throttle, ThrottleSettings};
use socksgate_config::{Bind, Config, Icmp, LoginThrottle, Timeouts, Udp};
use socksgate_policy::{Moment, Policy};
use socksgate_proto::server::ServerOptions;
use socksgate_proto::{Method, Methods};
use socksgate_tls::tokio_rustls::TlsAcceptor;
use socksgate_tls::TlsError;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use outbound::{ConnectError, ResolveFuture, Resolver, SystemResolver};

/// Descriptors a server needs to hold `max_sessions` relaying sessions at once: two sockets
/// each, the relay's pooled pipes, and room for listeners, logs and name lookups. A pipe
/// that cannot be had (descriptors exhausted) only slows a bulk transfer down to buffered
/// reads; an accept that fails for lack of descriptors backs off and retries.
pub fn descriptors_needed(max_sessions: usize) -> usize {
    const MISCELLANEOUS: usize = 512;
    max_sessions
        .saturating_mul(2)
        .saturating_add(relay::POOLED_DESCRIPTORS + MISCELLANEOUS)
}

/// Sessions a descriptor limit of `descriptors` holds, at least one: the inverse of
/// [`descriptors_needed`], except that under a small limit at most a quarter of it is kept
/// for the rest (pipes are an optimisation: a session without one reads through a buffer).
pub fn sessions_held_by(descriptors: u64) -> usize {
    let descriptors = usize::try_from(descriptors).unwrap_or(usize::MAX);
    let kept = descriptors_needed(0).min(descriptors / 4);
    (descriptors.saturating_sub(kept) / 2).max(1)
}

/// The most sessions an unconfigured server serves at once, however many descriptors it may
/// have: each costs memory too (about 2 KB here, plus the kernel's socket buffers).
pub const DEFAULT_SESSION_CAP: usize = 10_000;

/// The session cap in force: the configured one, or what the process's descriptor limit
/// holds, up to [`DEFAULT_SESSION_CAP`].
pub fn session_cap(limits: &socksgate_config::Limits) -> usize {
    limits.max_sessions.unwrap_or_else(|| {
        default_session_cap(rustix::process::getrlimit(rustix::process::Resource::Nofile).current)
    })
}

/// The unconfigured cap under a descriptor limit (`None`: unlimited).
fn default_session_cap(descriptor_limit: Option<u64>) -> usize {
    descriptor_limit
        .map_or(DEFAULT_SESSION_CAP, sessions_held_by)
        .min(DEFAULT_SESSION_CAP)
}

/// Puts a future on the heap. A plain function, not an async one: a future boxed inside an
/// async fn still takes room in the caller's state (rust-lang/rust#62958), which is exactly
/// what boxing is meant to avoid.
pub(crate) fn boxed<'a, T>(
    future: impl std::future::Future<Output = T> + Send + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>> {
    Box::pin(future)
}

/// What every session needs, shared read-only.
pub(crate) struct Shared {
    pub(crate) timeouts: Timeouts,
    pub(crate) bind: Bind,
    pub(crate) udp: Udp,
    pub(crate) icmp: Icmp,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) throttle: Arc<Throttle>,
    /// Bounds the password checks running at once (bcrypt is expensive by design).
    pub(crate) verifications: Semaphore,
    pub(crate) access_log: bool,
    pub(crate) stats: Arc<Stats>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) policy: Policy,
    pub(crate) clock: Clock,
    /// Sessions held, shared bandwidth, connection rates: kept across reloads.
    pub(crate) limits: Arc<limits::LimitState>,
    /// The sessions in progress, when the admin listener shows them or a fleet counts them.
    pub(crate) session_table: Option<Arc<session_table::SessionTable>>,
    /// Limits shared with other nodes, when configured.
    pub(crate) fleet: Option<Arc<dyn fleet::FleetLimits>>,
    /// Server-wide session limits per source and per user.
    pub(crate) session_caps: socksgate_config::Limits,
    /// What each configured listener accepts (methods, SOCKS4, TLS).
    pub(crate) listener_setups: HashMap<SocketAddr, ListenerSetup>,
    /// Upstream groups for `route` rules.
    pub(crate) upstreams: upstream::Upstreams,
    /// The GSS-API method's acceptor and levels.
    #[cfg(feature = "gssapi")]
    pub(crate) gssapi: Option<Arc<gss::GssSetup>>,
    /// Who may read the admin listener's pages.
    pub(crate) admin: Arc<admin::AdminAccess>,
}

/// What outlives a reload: counts, the login throttle (a reload must not forgive guessers),
/// the resolver and the clock.
#[derive(Clone)]
struct Lasting {
    resolver: Arc<dyn Resolver>,
    clock: Clock,
    stats: Arc<Stats>,
    metrics: Arc<metrics::Metrics>,
    throttle: Arc<Throttle>,
    limits: Arc<limits::LimitState>,
    session_table: Arc<session_table::SessionTable>,
    fleet: Option<Arc<dyn fleet::FleetLimits>>,
}

impl Shared {
    /// The source `client` counts as for per-source limits, the connection rate and the
    /// login throttle: its IPv4 address, or its IPv6 prefix (`limits.ipv6_source_prefix`).
    pub(crate) fn source_group(&self, client: std::net::IpAddr) -> std::net::IpAddr {
        socksgate_policy::source_group(client, self.session_caps.ipv6_source_prefix)
    }

    fn new(
        config: &Config,
        authenticator: Option<Arc<dyn Authenticator>>,
        tls: &Material,
        lasting: &Lasting,
    ) -> Self {
        lasting.metrics.count_users(
            config
                .admin
                .as_ref()
                .and_then(|admin| admin.per_user_metrics),
        );
        Self {
            timeouts: config.timeouts,
            bind: config.bind.clone(),
            udp: config.udp.clone(),
            icmp: config.icmp.clone(),
            resolver: lasting.resolver.clone(),
            authenticator,
            throttle: lasting.throttle.clone(),
            verifications: Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            ),
            access_log: config.log.access,
            stats: lasting.stats.clone(),
            metrics: lasting.metrics.clone(),
            policy: config.policy.clone(),
            clock: lasting.clock.clone(),
            limits: lasting.limits.clone(),
            // Listed for `/sessions`, or for a fleet's quota.
            session_table: (config.admin.is_some() || lasting.fleet.is_some())
                .then(|| lasting.session_table.clone()),
            fleet: lasting.fleet.clone(),
            session_caps: config.limits,
            listener_setups: config
                .listeners
                .iter()
                .map(|listener| {
                    let setup = ListenerSetup {
                        options: listener_options(listener),
                        protocols: Protocols {
                            socks5: listener.socks5,
                            http: listener.http.then_some(http::HttpAccess {
                                anonymous: listener.methods.contains(&Method::NO_AUTH),
                                password: listener.methods.contains(&Method::PASSWORD),
                            }),
                        },
                        tls: tls.acceptors.get(&listener.address).cloned(),
                        proxy_protocol: listener.proxy_protocol.clone().into(),
                        trust_socks4_userid: listener.trust_socks4_userid,
                    };
                    (listener.address, setup)
                })
                .collect(),
            upstreams: upstream::Upstreams::new(&config.upstreams, &tls.upstreams),
            #[cfg(feature = "gssapi")]
            gssapi: tls.gssapi.clone(),
            admin: tls.admin.clone(),
        }
    }
}

/// Which protocols a listener serves besides SOCKS4 (which `ServerOptions` says).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Protocols {
    pub(crate) socks5: bool,
    /// HTTP proxy clients, and what they may do without credentials.
    pub(crate) http: Option<http::HttpAccess>,
}

/// What one listener accepts.
#[derive(Clone)]
pub(crate) struct ListenerSetup {
    pub(crate) options: ServerOptions,
    pub(crate) protocols: Protocols,
    /// SOCKS inside TLS, when configured.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Load balancers that send a PROXY protocol header (empty: none do).
    pub(crate) proxy_protocol: Arc<[socksgate_policy::Cidr]>,
    /// Whether a SOCKS4 USERID is taken as the session's user (else only logged).
    pub(crate) trust_socks4_userid: bool,
}

/// Reads every TLS file the configuration names (listeners' certificates and keys, upstream
/// groups' authorities and client certificates) and acquires the GSS-API service's keys, as
/// starting the server would: for `socksgate check`.
pub fn check_tls(config: &Config) -> Result<(), BindError> {
    load_material(config).map(drop)
}

/// What a configuration's key material holds (TLS files, GSS-API credentials), read when it
/// is installed.
#[derive(Clone, Default)]
struct Material {
    /// The TLS listeners' acceptors, by configured address.
    acceptors: HashMap<SocketAddr, TlsAcceptor>,
    /// The upstream groups' client configurations, by name.
    upstreams: upstream::UpstreamTls,
    /// The GSS-API acceptor, when a listener offers the method.
    #[cfg(feature = "gssapi")]
    gssapi: Option<Arc<gss::GssSetup>>,
    /// The admin listener's token and TLS acceptor.
    admin: Arc<admin::AdminAccess>,
}

/// Reads every TLS listener's certificate and key (and client authorities), every upstream
/// group's authorities and client certificate, and the GSS-API service's keys. The error
/// names the listener, group or service, and the file.
fn load_material(config: &Config) -> Result<Material, BindError> {
    let mut acceptors = HashMap::new();
    for listener in &config.listeners {
        if let Some(tls) = &listener.tls {
            let server_config =
                socksgate_tls::server_config(&tls.cert, &tls.key, tls.client_ca.as_deref())
                    .map_err(|error| BindError::Tls {
                        what: format!("listener {}", listener.address),
                        error,
                    })?;
            acceptors.insert(listener.address, TlsAcceptor::from(server_config));
        }
    }
    let upstreams =
        upstream::upstream_tls(&config.upstreams).map_err(|(group, error)| BindError::Tls {
            what: format!("upstream {group:?}"),
            error,
        })?;
    #[cfg(feature = "gssapi")]
    let gssapi = gss::setup(config).map_err(BindError::Gssapi)?;
    #[cfg(not(feature = "gssapi"))]
    if config
        .listeners
        .iter()
        .any(|listener| listener.methods.contains(&Method::GSSAPI))
        || config.upstreams.iter().any(|group| group.gssapi.is_some())
    {
        return Err(BindError::Gssapi(
            "this build has no GSS-API support (cargo feature gssapi)".to_owned(),
        ));
    }
    let admin = match &config.admin {
        Some(admin) => admin::AdminAccess::load(admin).map_err(BindError::Admin)?,
        None => admin::AdminAccess::default(),
    };
    Ok(Material {
        admin: Arc::new(admin),
        acceptors,
        upstreams,
        #[cfg(feature = "gssapi")]
        gssapi,
    })
}

fn listener_options(listener: &socksgate_config::Listener) -> ServerOptions {
    ServerOptions {
        methods: Methods::new(&listener.methods).unwrap_or(Methods::one(Method::NO_AUTH)),
        allow_socks4: listener.socks4,
    }
}

/// The configuration sessions start with; replaced whole by a reload.
type Current = Arc<RwLock<Arc<Shared>>>;

/// Applies a new configuration to a running server: sessions started afterwards use it,
/// running ones keep the one they started with.
#[derive(Clone)]
pub struct ReloadHandle {
    current: Current,
    /// The TLS material in force, for the builder calls that rebuild the configuration.
    tls: Arc<RwLock<Material>>,
    lasting: Lasting,
    listeners: Vec<SocketAddr>,
    /// Whether a listener the server started with is public (`Listener::is_public`): it
    /// serves until a restart, whatever a reloaded file says of it.
    started_public: bool,
    /// The admin listener's address, as bound at start.
    admin_bound: Option<SocketAddr>,
    max_sessions: Option<usize>,
    /// The fleet settings started with (its connection and tasks are not rebuilt).
    fleet: Option<socksgate_config::Fleet>,
}

impl ReloadHandle {
    /// Installs `config` (already validated) with its `authenticator`, reading TLS
    /// certificates and keys again. Returns what could not be applied without a restart
    /// (listeners added or removed, the session cap, `[fleet]`); a TLS file that cannot be used is an
    /// error, and the running configuration stays.
    pub fn reload(
        &self,
        config: &Config,
        authenticator: Option<Arc<dyn Authenticator>>,
    ) -> Result<Vec<String>, String> {
        let mut tls = load_material(config).map_err(|error| error.to_string())?;
        let mut not_applied = Vec::new();
        // The admin listener is bound once: its address changes at a restart, and one off
        // loopback keeps asking who reads it whatever a reloaded file says.
        let admin = config.admin.as_ref();
        if admin.map(|admin| admin.address) != self.admin_bound {
            not_applied.push("a changed [admin] address needs a restart".to_owned());
        }
        if let Some(bound) = self.admin_bound {
            let old = self
                .tls
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .admin
                .clone();
            let authenticates = admin.is_some_and(socksgate_config::Admin::authenticates);
            // Off loopback, neither the proof asked for nor the encryption may go.
            let weaker = !authenticates || (old.has_tls() && !tls.admin.has_tls());
            if !bound.ip().to_canonical().is_loopback() && weaker {
                tls.admin = old;
                not_applied.push(format!(
                    "the admin listener on {bound} keeps its authentication and TLS until a \
                     restart"
                ));
            }
        }
        let configured: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
        for address in configured.iter().filter(|a| !self.listeners.contains(a)) {
            not_applied.push(format!("new listener {address} needs a restart"));
        }
        for address in self.listeners.iter().filter(|a| !configured.contains(a)) {
            not_applied.push(format!("removing listener {address} needs a restart"));
        }
        if config.limits.max_sessions != self.max_sessions {
            not_applied.push("a new limits.max_sessions needs a restart".to_owned());
        }
        if config.fleet != self.fleet {
            not_applied.push("a changed [fleet] needs a restart".to_owned());
        }
        // The private-destination guard's default follows the listeners that serve, and a
        // listener removed from the file (or its PROXY setting) serves until a restart.
        let mut config = config.clone();
        if config.private_destinations_setting.is_none() && self.started_public {
            config.policy.deny_private_destinations = true;
        }
        let config = &config;
        let shared = Arc::new(Shared::new(config, authenticator, &tls, &self.lasting));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = shared;
        *self.tls.write().unwrap_or_else(PoisonError::into_inner) = tls;
        Ok(not_applied)
    }
}

/// Tells the policy what time it is (local time by default; tests inject their own).
pub type Clock = Arc<dyn Fn() -> Moment + Send + Sync>;

/// Live counts, readable while the server runs.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) sessions: AtomicUsize,
    pub(crate) associations: AtomicUsize,
}

impl Stats {
    /// Sessions being served (handshake, relay or association).
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// UDP associations open, each with its relay socket.
    pub fn associations(&self) -> usize {
        self.associations.load(Ordering::Relaxed)
    }
}

/// Why a server could not start.
#[derive(Debug)]
pub enum BindError {
    /// A listener could not be opened.
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A TLS file (a listener's certificate or key, an upstream group's authorities or
    /// client certificate) could not be used.
    Tls {
        /// The listener or group, as the configuration names it.
        what: String,
        /// The file and the reason.
        error: TlsError,
    },
    /// The GSS-API service's credentials could not be acquired (no keytab, no key for it).
    Gssapi(String),
    /// The admin listener's token file or TLS files could not be used (the file and why).
    Admin(String),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Listen { address, source } => write!(f, "cannot listen on {address}: {source}"),
            Self::Tls { what, error } => write!(f, "{what}: TLS: {error}"),
            Self::Gssapi(error) => write!(f, "GSS-API: {error}"),
            Self::Admin(error) => f.write_str(error),
        }
    }
}

/// The message names the cause already, so no `source` is given: a report that prints
/// the chain (anyhow's `{:#}`) would say it twice.
impl std::error::Error for BindError {}

/// A server with its listeners open.
pub struct Server {
    config: Config,
    authenticator: Option<Arc<dyn Authenticator>>,
    tls: Arc<RwLock<Material>>,
    lasting: Lasting,
    current: Current,
    listeners: Vec<(TcpListener, SocketAddr)>,
    /// The admin listener (`/metrics`, `/health`), when configured.
    admin: Option<TcpListener>,
}

impl Server {
    /// Reads the TLS listeners' certificates and keys, and opens every configured listener.
    pub async fn bind(config: Config) -> Result<Self, BindError> {
        Self::bind_with(config, Vec::new()).await
    }

    /// As [`Server::bind`], taking listening sockets already open (systemd's socket
    /// activation) for the configured listeners whose address they have. A socket that is
    /// no configured listener is an error: the configuration and the socket unit disagree.
    pub async fn bind_with(
        config: Config,
        inherited: Vec<std::net::TcpListener>,
    ) -> Result<Self, BindError> {
        let tls = load_material(&config)?;
        let mut inherited: Vec<(SocketAddr, std::net::TcpListener)> = inherited
            .into_iter()
            .map(|socket| Ok((socket.local_addr()?, socket)))
            .collect::<io::Result<_>>()
            .map_err(|source| BindError::Listen {
                address: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            let address = listener.address;
            let given = inherited.iter().position(|(local, _)| *local == address);
            let socket = match given {
                Some(index) => {
                    let (_, socket) = inherited.swap_remove(index);
                    tracing::info!(%address, "using the listening socket systemd passed");
                    socket
                        .set_nonblocking(true)
                        .and_then(|()| TcpListener::from_std(socket))
                }
                None => sockets::listen_on(address, config.limits.listen_backlog),
            };
            let socket = socket.map_err(|source| BindError::Listen { address, source })?;
            listeners.push((socket, address));
        }
        if let Some((address, _)) = inherited.first() {
            return Err(BindError::Listen {
                address: *address,
                source: io::Error::other("a socket passed by systemd is no configured listener"),
            });
        }
        let admin = match config.admin.as_ref().map(|admin| admin.address) {
            Some(address) => Some(
                sockets::listen_on(address, config.limits.listen_backlog)
                    .map_err(|source| BindError::Listen { address, source })?,
            ),
            None => None,
        };
        let lasting = Lasting {
            resolver: Arc::new(SystemResolver),
            clock: Arc::new(authorize::local_moment),
            stats: Arc::default(),
            metrics: Arc::default(),
            throttle: Arc::new(Throttle::new(throttle_settings(&config.auth.throttle))),
            limits: Arc::default(),
            session_table: Arc::default(),
            fleet: None,
        };
        let current = Arc::new(RwLock::new(Arc::new(Shared::new(
            &config, None, &tls, &lasting,
        ))));
        Ok(Self {
            config,
            authenticator: None,
            tls: Arc::new(RwLock::new(tls)),
            lasting,
            current,
            listeners,
            admin,
        })
    }

    /// Resolves target names with `resolver` instead of the system's.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.lasting.resolver = resolver;
        self.refresh()
    }

    /// Rebuilds the current configuration after a builder call changed what it holds.
    fn refresh(self) -> Self {
        let tls = self
            .tls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let shared = Shared::new(
            &self.config,
            self.authenticator.clone(),
            &tls,
            &self.lasting,
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(shared);
        self
    }

    /// Checks usernames and passwords with `authenticator`. Without one, every password is
    /// refused.
    pub fn with_authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self.refresh()
    }

    /// Shares limits with the other nodes of a fleet through `fleet` (`[fleet]`).
    pub fn with_fleet(mut self, fleet: Arc<dyn fleet::FleetLimits>) -> Self {
        let _ = self.lasting.session_table.fleet.set(fleet.clone());
        self.lasting.fleet = Some(fleet);
        self.refresh()
    }

    /// Uses `clock` for the policy's day and time windows.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.lasting.clock = clock;
        self.refresh()
    }

    /// A handle to apply new configurations while the server runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            current: self.current.clone(),
            tls: self.tls.clone(),
            lasting: self.lasting.clone(),
            listeners: self
                .listeners
                .iter()
                .map(|(_, configured)| *configured)
                .collect(),
            started_public: self
                .config
                .listeners
                .iter()
                .any(socksgate_config::Listener::is_public),
            admin_bound: self.config.admin.as_ref().map(|admin| admin.address),
            max_sessions: self.config.limits.max_sessions,
            fleet: self.config.fleet.clone(),
        }
    }

    /// Live counts of this server, to read while it runs.
    pub fn stats(&self) -> Arc<Stats> {
        self.lasting.stats.clone()
    }

    /// The admin listener's address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|admin| admin.local_addr().ok())
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(listener, _)| listener.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes; then stops accepting and waits for running
    /// sessions for up to the shutdown timeout. Returns how many sessions were still
    /// running when the wait ended (they are dropped with the runtime).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> usize {
        let cap = session_cap(&self.config.limits);
        tracing::info!(max_sessions = cap, "sessions served at once");
        let slots = Arc::new(Semaphore::new(cap));
        let sessions = TaskTracker::new();
        let stop = CancellationToken::new();
        if let Some(fleet) = &self.lasting.fleet {
            // Bytes of the sessions in progress go to the fleet on a tick, never per byte.
            let (table, period, stop) = (
                self.lasting.session_table.clone(),
                fleet.sync_interval(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tokio::select! {
                        _ = tick.tick() => table.sweep(),
                        () = stop.cancelled() => return,
                    }
                }
            });
        }
        let mut accept_loops = Vec::with_capacity(self.listeners.len());
        for (listener, configured) in self.listeners {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "listening");
            }
            accept_loops.push(tokio::spawn(listener::accept_loop(
                listener,
                configured,
                self.current.clone(),
                slots.clone(),
                sessions.clone(),
                stop.clone(),
            )));
        }
        if let Some(admin) = self.admin {
            tokio::spawn(admin::serve(
                admin,
                self.current.clone(),
                self.lasting.session_table.clone(),
                stop.clone(),
            ));
        }
        shutdown.await;
        stop.cancel();
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        sessions.close();
        let running = sessions.len();
        if running > 0 {
            tracing::info!(
                sessions = running,
                "no longer accepting; waiting up to {:?} for sessions to finish",
                self.config.timeouts.shutdown
            );
        }
        let drained = tokio::time::timeout(self.config.timeouts.shutdown, sessions.wait()).await;
        if drained.is_ok() {
            0
        } else {
            sessions.len()
        }
    }
}

fn throttle_settings(config: &LoginThrottle) -> ThrottleSettings {
    ThrottleSettings {
        free_failures: config.free_failures,
        base: config.base,
        source_cap: config.source_cap,
        user_cap: config.user_cap,
        pending_per_source: config.pending_per_source,
        pending_per_user: config.pending_per_user,
        forget_after: ThrottleSettings::FORGET_AFTER,
    }
}

#[cfg(test)]
mod descriptor_tests {
    use super::{default_session_cap, descriptors_needed, session_cap, sessions_held_by};

    // docs/performance.md: 10,000 sessions want 21,024 descriptors (two sockets each, the
    // 256-pipe pool, 512 spare), and LimitNOFILE is advised accordingly.
    #[test]
    #[cfg(target_os = "linux")]
    fn ten_thousand_sessions_want_21_024_descriptors() {
        assert_eq!(descriptors_needed(10_000), 21_024);
        assert_eq!(descriptors_needed(usize::MAX), usize::MAX);
    }

    // The unconfigured cap is what the descriptor limit holds: never more than it can, and
    // at least one session however small the limit.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_default_cap_is_what_the_descriptor_limit_holds() {
        assert_eq!(sessions_held_by(21_024), 10_000);
        assert_eq!(sessions_held_by(21_025), 10_000);
        // A small limit: a quarter kept for pipes and the rest, two descriptors a session.
        assert_eq!(sessions_held_by(1_024), 384);
        assert_eq!(sessions_held_by(2), 1);
        for limit in [4_096u64, 65_536, 1_048_576] {
            let held = sessions_held_by(limit);
            assert!(descriptors_needed(held) as u64 <= limit, "{limit}");
            assert!(descriptors_needed(held + 1) as u64 > limit, "{limit}");
        }
        let configured = socksgate_config::Limits {
            max_sessions: Some(7),
            ..Default::default()
        };
        assert_eq!(session_cap(&configured), 7);
        // Unconfigured: what the limit holds, never more than 10,000 (memory counts too).
        assert_eq!(default_session_cap(Some(1_024)), 384);
        assert_eq!(default_session_cap(Some(1 << 20)), 10_000);
        assert_eq!(default_session_cap(None), 10_000);
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("reload.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Issue #21, finding 10: a server that started with a public listener (here one taking
    /// PROXY headers on loopback) keeps the private-destination guard on through a reload of
    /// a file that no longer makes it public, unless the file turns the guard off itself.
    #[tokio::test]
    async fn a_reload_keeps_the_guard_while_a_public_listener_serves() {
        let public = "[[listen]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = [\"127.0.0.1/32\"]\n";
        let server = Server::bind(parse(public))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let guard = |server: &Server| {
            server
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .policy
                .deny_private_destinations
        };
        assert!(guard(&server));
        let handle = server.reload_handle();
        let quiet = "[[listen]]\naddress = \"127.0.0.1:0\"\n";
        let _ = handle.reload(&parse(quiet), None);
        assert!(guard(&server), "the guard went off with the reload");
        let said = format!("{quiet}[policy]\ndeny_private_destinations = false\n");
        let _ = handle.reload(&parse(&said), None);
        assert!(!guard(&server), "the file's own setting applies");
    }

    /// Review of #21: an admin listener off loopback keeps asking for its token when a
    /// reloaded file drops the token (or the whole [admin] table): it stays bound until a
    /// restart, and must not open up in the meantime.
    #[tokio::test]
    async fn a_reload_cannot_open_an_admin_listener_off_loopback() {
        let dir = std::env::temp_dir().join(format!("sg-admin-reload-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let token = dir.join("token");
        let _ = std::fs::write(&token, "4f6c2d9a8e1b7c3f5a0d2e4b6c8a1f3e\n");
        let guarded = format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"0.0.0.0:0\"\n\
             token_file = {:?}\n",
            token.display().to_string()
        );
        let server = Server::bind(parse(&guarded))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let asks = |server: &Server| {
            let shared = server
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            !shared.admin.admits(b"GET /metrics HTTP/1.1\r\n\r\n")
        };
        assert!(asks(&server));
        let handle = server.reload_handle();
        for open in [
            "[[listen]]\naddress = \"127.0.0.1:0\"\n".to_owned(),
            "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n"
                .to_owned(),
        ] {
            let said = handle.reload(&parse(&open), None).unwrap_or_default();
            assert!(asks(&server), "the admin listener opened up: {said:?}");
            assert!(
                said.iter().any(|s| s.contains("keeps its authentication")),
                "{said:?}"
            );
            assert!(
                said.iter().any(|s| s.contains("[admin] address")),
                "{said:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn what_a_reload_cannot_apply_is_named() {
        let base = "[[listen]]\naddress = \"127.0.0.1:0\"\n";
        let server = Server::bind(parse(base))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let handle = server.reload_handle();
        let same = handle.reload(&parse(base), None);
        assert_eq!(same, Ok(Vec::new()));
        let changed = format!(
            "{base}[limits]\nmax_sessions = 5\n\n[fleet]\nredis = \"redis://127.0.0.1:1/0\"\n"
        );
        let warnings = handle.reload(&parse(&changed), None).unwrap_or_default();
        assert_eq!(
            warnings,
            [
                "a new limits.max_sessions needs a restart",
                "a changed [fleet] needs a restart"
            ]
        );
    }
}
