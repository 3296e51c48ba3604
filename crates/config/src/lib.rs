//! socksgate's configuration file.
//!
//! Two layers: the TOML text is read into raw serde structs that reject unknown fields, then
//! validated into [`Config`], the only type the rest of socksgate sees. Every error names the
//! file, the line and column, and the field ([`ConfigError`]).
//!
//! ```toml
//! # A gateway on every address of the host. Without authentication this is an open proxy,
//! # so socksgate refuses it unless told otherwise.
//! danger_allow_open_proxy = true
//!
//! [[listen]]
//! address = "0.0.0.0:1080"
//! socks4 = false           # SOCKS4 and SOCKS4a (default: true)
//!
//! [timeouts]
//! handshake = "10s"        # accept → complete request
//! connect = "10s"          # reaching the target
//! idle = "2h"              # no traffic either way ("off" by default)
//! shutdown = "30s"         # draining sessions on SIGTERM
//!
//! [limits]
//! max_sessions = 10000
//!
//! [log]
//! format = "human"         # or "json"
//! level = "info"
//! access = true            # one event per session
//! ```

mod duration;
mod error;
mod model;
mod raw;
mod render;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use error::ConfigError;
pub use model::{Config, Limits, Listener, Log, LogFormat, Timeouts};

use error::Origin;
use raw::{RawConfig, RawDuration};
use toml::Spanned;

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            file: path.to_path_buf(),
            position: None,
            field: None,
            message: format!("cannot read: {error}"),
        })?;
        Self::parse(&text, path)
    }

    /// Validates configuration text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let origin = Origin { file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|error| {
            let message = error.message().to_owned();
            let field = unknown_field_name(&message);
            let error = ConfigError::new(&origin, message).at(&origin, error.span());
            match field {
                Some(field) => error.field(field),
                None => error,
            }
        })?;
        validate(raw, &origin)
    }

    /// The configuration as TOML, every default written out; parses back to `self`.
    pub fn to_toml(&self) -> String {
        render::to_toml(self)
    }

    /// Replaces the listeners (from `--listen` flags), keeping each one's other settings at
    /// their defaults, and checks the result again.
    pub fn with_listeners(mut self, addresses: &[SocketAddr]) -> Result<Self, ConfigError> {
        self.listeners = addresses
            .iter()
            .map(|&address| Listener {
                address,
                socks4: true,
            })
            .collect();
        let origin = Origin {
            file: Path::new("<command line>"),
            text: "",
        };
        check_open_proxy(&self, &origin, |_| None)?;
        Ok(self)
    }
}

/// Serde names an unknown field in its message (`unknown field `adress`, expected …`).
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

fn validate(raw: RawConfig, origin: &Origin<'_>) -> Result<Config, ConfigError> {
    let defaults = Config::default();
    let mut spans = Vec::new();
    let mut listeners = Vec::new();
    for (index, listener) in raw.listen.iter().enumerate() {
        let field = format!("listen[{index}].address");
        let address = listener.address.get_ref().parse().map_err(|_| {
            ConfigError::new(
                origin,
                "expected IP:PORT, like \"0.0.0.0:1080\" or \"[::]:1080\"",
            )
            .at(origin, Some(listener.address.span()))
            .field(&field)
        })?;
        spans.push(listener.address.span());
        listeners.push(Listener {
            address,
            socks4: listener.socks4.unwrap_or(true),
        });
    }
    if listeners.is_empty() {
        listeners = defaults.listeners;
    }

    let timeouts = &raw.timeouts;
    let fallback = defaults.timeouts;
    let required =
        |value: &Option<Spanned<RawDuration>>, name: &str, default: Duration| match duration(
            value, name, origin,
        )? {
            Some(Some(duration)) if !duration.is_zero() => Ok(duration),
            None => Ok(default),
            Some(_) => Err(
                ConfigError::new(origin, "this timeout cannot be off or zero")
                    .at(origin, value.as_ref().map(Spanned::span))
                    .field(format!("timeouts.{name}")),
            ),
        };
    let timeouts = Timeouts {
        handshake: required(&timeouts.handshake, "handshake", fallback.handshake)?,
        connect: required(&timeouts.connect, "connect", fallback.connect)?,
        idle: duration(&timeouts.idle, "idle", origin)?
            .flatten()
            .filter(|d| !d.is_zero()),
        shutdown: required(&timeouts.shutdown, "shutdown", fallback.shutdown)?,
    };

    let limits = Limits {
        max_sessions: match &raw.limits.max_sessions {
            None => defaults.limits.max_sessions,
            Some(value) => usize::try_from(*value.get_ref())
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    ConfigError::new(origin, "must be at least 1")
                        .at(origin, Some(value.span()))
                        .field("limits.max_sessions")
                })?,
        },
    };

    let log = Log {
        format: match &raw.log.format {
            None => LogFormat::Human,
            Some(format) => match format.get_ref().as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(origin, "expected \"human\" or \"json\"")
                        .at(origin, Some(format.span()))
                        .field("log.format"))
                }
            },
        },
        level: raw
            .log
            .level
            .as_ref()
            .map_or(defaults.log.level, |level| level.get_ref().clone()),
        access: raw.log.access.unwrap_or(true),
    };

    let config = Config {
        listeners,
        timeouts,
        limits,
        log,
        danger_allow_open_proxy: raw.danger_allow_open_proxy.unwrap_or(false),
    };
    check_open_proxy(&config, origin, |index| spans.get(index).cloned())?;
    Ok(config)
}

/// `Some(None)` for "off", `Some(Some(d))` for a duration, `None` when absent.
fn duration(
    value: &Option<Spanned<RawDuration>>,
    name: &str,
    origin: &Origin<'_>,
) -> Result<Option<Option<Duration>>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let parsed = match value.get_ref() {
        RawDuration::Seconds(seconds) => Some(Some(Duration::from_secs(*seconds))),
        RawDuration::Text(text) if text == "off" => Some(None),
        RawDuration::Text(text) => duration::parse(text).map(Some),
    };
    parsed.map(Some).ok_or_else(|| {
        ConfigError::new(
            origin,
            "expected a duration like \"500ms\", \"10s\", \"5m\", \"2h\" or \"off\"",
        )
        .at(origin, Some(value.span()))
        .field(format!("timeouts.{name}"))
    })
}

/// A listener reachable from other hosts, without authentication, is an open proxy.
fn check_open_proxy(
    config: &Config,
    origin: &Origin<'_>,
    span_of: impl Fn(usize) -> Option<std::ops::Range<usize>>,
) -> Result<(), ConfigError> {
    if config.danger_allow_open_proxy {
        return Ok(());
    }
    match config
        .listeners
        .iter()
        .position(|listener| !listener.address.ip().is_loopback())
    {
        None => Ok(()),
        Some(index) => Err(ConfigError::new(
            origin,
            format!(
                "{} is reachable from other hosts and clients need no authentication: \
                 this is an open proxy. Listen on a loopback address, or set \
                 danger_allow_open_proxy = true if that is really what you want",
                config.listeners[index].address
            ),
        )
        .at(origin, span_of(index))
        .field(format!("listen[{index}].address"))),
    }
}
