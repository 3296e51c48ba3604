//! The validated configuration: what the server runs on. Every value here has been checked.

use std::net::SocketAddr;
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
    /// Whether a listener on a non-loopback address may serve clients without
    /// authentication. Open proxies are found and abused within hours.
    pub danger_allow_open_proxy: bool,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The address to bind.
    pub address: SocketAddr,
    /// Whether SOCKS4 and SOCKS4a are served.
    pub socks4: bool,
}

/// How long each phase may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accept to a complete request (default 10 s).
    pub handshake: Duration,
    /// To reach the target, all addresses of a name included (default 10 s).
    pub connect: Duration,
    /// A relay with no traffic either way is closed after this long; `None` never (default).
    pub idle: Option<Duration>,
    /// On SIGTERM or SIGINT, how long running sessions may drain (default 30 s).
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            connect: Duration::from_secs(10),
            idle: None,
            shutdown: Duration::from_secs(30),
        }
    }
}

/// Resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions served at once; further clients wait in the kernel's accept queue.
    pub max_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
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
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
            access: true,
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
        let loopback = |address: &str| Listener {
            address: address
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1080))),
            socks4: true,
        };
        Self {
            listeners: vec![loopback("127.0.0.1:1080"), loopback("[::1]:1080")],
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            log: Log::default(),
            danger_allow_open_proxy: false,
        }
    }
}
