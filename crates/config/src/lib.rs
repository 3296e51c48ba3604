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
//! idle = "2h"              # no traffic either way (the default; "off" never)
//! shutdown = "30s"         # draining sessions on SIGTERM
//!
//! [limits]
//! max_sessions = 10000     # default: what the descriptor limit holds
//!
//! [log]
//! format = "human"         # or "json"
//! level = "info"
//! access = true            # one event per session
//! ```

mod duration;
mod error;
mod fleet;
mod keyword;
mod locate;
mod model;
mod raw;
mod render;
mod rules;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use error::ConfigError;
pub use model::{
    Admin, Auth, AuthBackend, Bind, Config, FailMode, Fleet, Fragments, Gssapi, Icmp, IcmpSocket,
    Limits, Listener, ListenerTls, Log, LogFormat, LogOutput, LoginLimit, LoginThrottle, Process,
    Protection, Quota, QuotaPeriod, Selection, Timeouts, Udp, UdpFiltering, UpstreamGroup,
    UpstreamGssapi,
};
pub use rules::{command_name, parse_command};

use error::Origin;
use raw::{RawConfig, RawDuration, RawListener};
use socksgate_proto::Method;
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
            // The parser quotes the value it did not expect: a proxy URL's password with it.
            let message = socksgate_proto::hop::redact_urls(error.message());
            // The field with the tables it is in (`auth.pasword_file`, `listen[1].sock4`),
            // its URLs' passwords hidden as the message's are.
            let field = unknown_field_name(&message).map(|key| {
                let path = error
                    .span()
                    .and_then(|span| locate::field_at(text, span.start));
                socksgate_proto::hop::redact_urls(&path.unwrap_or(key))
            });
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
        render::to_toml(self, false)
    }

    /// As [`Config::to_toml`], with upstream passwords replaced by `REDACTED`: for display.
    pub fn to_toml_redacted(&self) -> String {
        render::to_toml(self, true)
    }

    /// Replaces the listeners (from `--listen` flags), keeping each one's other settings at
    /// their defaults, and checks the result again.
    pub fn with_listeners(mut self, addresses: &[SocketAddr]) -> Result<Self, ConfigError> {
        let methods = default_methods(&self.auth);
        self.listeners = addresses
            .iter()
            .map(|&address| Listener {
                address,
                socks4: methods.contains(&Method::NO_AUTH),
                socks5: true,
                http: http_allowed(&methods),
                methods: methods.clone(),
                tls: None,
                proxy_protocol: Vec::new(),
                trust_socks4_userid: false,
            })
            .collect();
        let origin = Origin {
            file: Path::new("<command line>"),
            text: "",
        };
        check_open_proxy(&self, &origin, |_| None)?;
        self.apply_private_destinations_default();
        Ok(self)
    }

    /// The private-destination guard in force: as the file sets it, else on whenever a
    /// listener is not on loopback or serves clients through a load balancer (a PROXY
    /// protocol listener on loopback behind a local HAProxy is public all the same): a
    /// public gateway must not be a way into the network behind it, or to a cloud's
    /// metadata service.
    fn apply_private_destinations_default(&mut self) {
        let public = self.listeners.iter().any(Listener::is_public);
        self.policy.deny_private_destinations = self.private_destinations_setting.unwrap_or(public);
    }
}

/// Serde names an unknown field in its message (`unknown field `adress`, expected …`).
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

fn validate(raw: RawConfig, origin: &Origin<'_>) -> Result<Config, ConfigError> {
    let defaults = Config::default();
    let auth = validate_auth(&raw.auth, origin)?;
    let mut spans = Vec::new();
    let mut listeners = Vec::new();
    for (index, listener) in raw.listen.iter().enumerate() {
        listeners.push(validate_listener(listener, index, &auth, origin)?);
        spans.push(listener.address.span());
    }
    if listeners.is_empty() {
        let methods = default_methods(&auth);
        listeners = defaults
            .listeners
            .into_iter()
            .map(|listener| Listener {
                socks4: methods.contains(&Method::NO_AUTH),
                http: http_allowed(&methods),
                methods: methods.clone(),
                ..listener
            })
            .collect();
    }

    let timeouts = &raw.timeouts;
    let fallback = defaults.timeouts;
    let timeouts = Timeouts {
        handshake: required_duration(
            &timeouts.handshake,
            "timeouts.handshake",
            fallback.handshake,
            origin,
        )?,
        connect: required_duration(
            &timeouts.connect,
            "timeouts.connect",
            fallback.connect,
            origin,
        )?,
        // Unset: the default; "off" or 0: never.
        idle: match duration(&timeouts.idle, "timeouts.idle", origin)? {
            None => fallback.idle,
            Some(idle) => idle.filter(|d| !d.is_zero()),
        },
        // Unset: the default; "off" or 0: none. Under a second would probe constantly.
        keepalive: match duration(&timeouts.keepalive, "timeouts.keepalive", origin)? {
            None => fallback.keepalive,
            Some(Some(keepalive)) if keepalive.is_zero() => None,
            // The kernel's TCP_KEEPIDLE takes 1 to 32,767 seconds.
            Some(Some(keepalive))
                if keepalive < std::time::Duration::from_secs(1)
                    || keepalive > std::time::Duration::from_secs(32_767) =>
            {
                return Err(ConfigError::new(
                    origin,
                    "must be from 1s to 32767s, about 9 hours (or \"off\")",
                )
                .at(origin, timeouts.keepalive.as_ref().map(Spanned::span))
                .field("timeouts.keepalive"))
            }
            Some(keepalive) => keepalive,
        },
        shutdown: required_duration(
            &timeouts.shutdown,
            "timeouts.shutdown",
            fallback.shutdown,
            origin,
        )?,
    };

    let limits = Limits {
        max_sessions: count_field(
            &raw.limits.max_sessions,
            "limits.max_sessions",
            "must be at least 1",
            origin,
        )?
        .or(defaults.limits.max_sessions),
        max_sessions_per_source: count_field(
            &raw.limits.max_sessions_per_source,
            "limits.max_sessions_per_source",
            "must be at least 1",
            origin,
        )?,
        max_sessions_per_user: count_field(
            &raw.limits.max_sessions_per_user,
            "limits.max_sessions_per_user",
            "must be at least 1",
            origin,
        )?,
        bandwidth_per_user: rules::rate_field(
            raw.limits.bandwidth_per_user.as_ref(),
            "limits.bandwidth_per_user",
            origin,
        )?,
        connection_rate_per_source: count_field(
            &raw.limits.connection_rate_per_source,
            "limits.connection_rate_per_source",
            "must be at least 1",
            origin,
        )?,
        ipv6_source_prefix: match count_field::<u8>(
            &raw.limits.ipv6_source_prefix,
            "limits.ipv6_source_prefix",
            "must be a prefix length from 1 to 128",
            origin,
        )? {
            Some(bits) if bits > 128 => {
                return Err(
                    ConfigError::new(origin, "must be a prefix length from 1 to 128")
                        .at(
                            origin,
                            raw.limits.ipv6_source_prefix.as_ref().map(Spanned::span),
                        )
                        .field("limits.ipv6_source_prefix"),
                )
            }
            Some(bits) => bits,
            None => defaults.limits.ipv6_source_prefix,
        },
        listen_backlog: count_field(
            &raw.limits.listen_backlog,
            "limits.listen_backlog",
            "must be at least 1",
            origin,
        )?,
        max_udp_associations: count_field(
            &raw.limits.max_udp_associations,
            "limits.max_udp_associations",
            "must be at least 1",
            origin,
        )?,
    };

    let log = Log {
        format: text_field(
            &raw.log.format,
            "log.format",
            "\"human\" or \"json\"",
            origin,
            |text| match text {
                "human" => Some(LogFormat::Human),
                "json" => Some(LogFormat::Json),
                _ => None,
            },
        )?
        .unwrap_or(LogFormat::Human),
        level: raw
            .log
            .level
            .as_ref()
            .map_or(defaults.log.level, |level| level.get_ref().clone()),
        access: raw.log.access.unwrap_or(true),
        output: text_field(
            &raw.log.output,
            "log.output",
            "\"stderr\", \"stdout\" or an absolute file path",
            origin,
            |text| match text {
                "stderr" => Some(LogOutput::Stderr),
                "stdout" => Some(LogOutput::Stdout),
                path if path.starts_with('/') => Some(LogOutput::File(path.into())),
                _ => None,
            },
        )?
        .unwrap_or_default(),
    };

    let upstreams = validate_upstreams(&raw.upstream, origin)?;
    let policy = rules::validate_policy(&raw.policy, &raw.client_rule, &raw.rule, origin)?;
    rules::check_routes(&policy, &raw.rule, &upstreams, origin)?;
    let bind = validate_bind(&raw.bind, origin)?;
    let udp = validate_udp(&raw.udp, origin)?;
    let gssapi = validate_gssapi(&raw.gssapi, origin)?;
    let icmp = validate_icmp(&raw.icmp, origin)?;
    if let (None, Some(users)) = (&raw.admin.address, &raw.admin.per_user_metrics) {
        return Err(
            ConfigError::new(origin, "per-user metrics need the admin listener's address")
                .at(origin, Some(users.span()))
                .field("admin.per_user_metrics"),
        );
    }
    let admin = validate_admin(&raw.admin, origin)?;

    let config = Config {
        listeners,
        timeouts,
        limits,
        log,
        auth,
        policy,
        upstreams,
        bind,
        udp,
        gssapi,
        icmp,
        admin,
        fleet: fleet::validate(&raw.fleet, origin)?,
        process: Process {
            user: raw.process.user.clone(),
            group: raw.process.group.clone(),
        },
        danger_allow_open_proxy: raw.danger_allow_open_proxy.unwrap_or(false),
        private_destinations_setting: raw.policy.deny_private_destinations,
    };
    check_open_proxy(&config, origin, |index| spans.get(index).cloned())?;
    let mut config = config;
    config.apply_private_destinations_default();
    Ok(config)
}

/// Password when a back end is configured, no authentication otherwise.
fn default_methods(auth: &Auth) -> Vec<Method> {
    match auth.backend {
        Some(_) => vec![Method::PASSWORD],
        None => vec![Method::NO_AUTH],
    }
}

fn validate_listener(
    raw: &RawListener,
    index: usize,
    auth: &Auth,
    origin: &Origin<'_>,
) -> Result<Listener, ConfigError> {
    let address = raw.address.get_ref().parse().map_err(|_| {
        ConfigError::new(
            origin,
            "expected IP:PORT, like \"0.0.0.0:1080\" or \"[::]:1080\"",
        )
        .at(origin, Some(raw.address.span()))
        .field(format!("listen[{index}].address"))
    })?;
    let field = format!("listen[{index}].methods");
    let methods = match &raw.methods {
        None => default_methods(auth),
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(ConfigError::new(origin, "list at least one method")
                    .at(origin, Some(list.span()))
                    .field(&field));
            }
            let mut methods = Vec::new();
            for name in list.get_ref() {
                let error = |message: &str| {
                    ConfigError::new(origin, message)
                        .at(origin, Some(name.span()))
                        .field(&field)
                };
                let method = keyword::one_of(name.get_ref(), rules::METHODS)
                    .map_err(|message| error(&message))?;
                if method == Method::PASSWORD && auth.backend.is_none() {
                    return Err(error(
                        "\"password\" needs [auth] password_file or pam_service",
                    ));
                }
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
            methods
        }
    };
    let (socks5, socks4, http) = listener_protocols(raw, index, &methods, origin)?;
    let tls = raw.tls.as_ref().map(|tls| listener_tls(tls, origin));
    let proxy_protocol = rules::list(
        &raw.proxy_protocol,
        &format!("listen[{index}].proxy_protocol"),
        origin,
        str::parse,
    )?;
    Ok(Listener {
        address,
        methods,
        socks4,
        socks5,
        http,
        tls,
        proxy_protocol,
        trust_socks4_userid: raw.trust_socks4_userid.unwrap_or(false),
    })
}

/// Whether HTTP proxy clients can use a listener with these methods: they authenticate
/// with Basic credentials (the password method) or not at all; GSS-API is SOCKS's only.
fn http_allowed(methods: &[Method]) -> bool {
    methods.contains(&Method::NO_AUTH) || methods.contains(&Method::PASSWORD)
}

/// The protocols a listener serves — SOCKS5, SOCKS4 (and 4a), HTTP — from `protocols`, or
/// the older `socks4` switch, or what its methods allow.
fn listener_protocols(
    raw: &raw::RawListener,
    index: usize,
    methods: &[Method],
    origin: &Origin<'_>,
) -> Result<(bool, bool, bool), ConfigError> {
    let anonymous = methods.contains(&Method::NO_AUTH);
    let socks4_refused = |span| {
        ConfigError::new(
            origin,
            "SOCKS4 cannot authenticate: allow \"none\" in methods, or leave socks4 out",
        )
        .at(origin, Some(span))
    };
    let Some(list) = &raw.protocols else {
        let socks4 = match &raw.socks4 {
            None => anonymous,
            Some(socks4) if *socks4.get_ref() && !anonymous => {
                return Err(socks4_refused(socks4.span()).field(format!("listen[{index}].socks4")))
            }
            Some(socks4) => *socks4.get_ref(),
        };
        return Ok((true, socks4, http_allowed(methods)));
    };
    let field = format!("listen[{index}].protocols");
    if let Some(socks4) = &raw.socks4 {
        return Err(ConfigError::new(
            origin,
            "set either protocols or socks4, not both (list \"socks4\" in protocols)",
        )
        .at(origin, Some(socks4.span()))
        .field(format!("listen[{index}].socks4")));
    }
    if list.get_ref().is_empty() {
        return Err(ConfigError::new(origin, "list at least one protocol")
            .at(origin, Some(list.span()))
            .field(&field));
    }
    let (mut socks5, mut socks4, mut http) = (false, false, false);
    for name in list.get_ref() {
        let protocol = keyword::one_of(name.get_ref(), PROTOCOLS).map_err(|message| {
            ConfigError::new(origin, &message)
                .at(origin, Some(name.span()))
                .field(&field)
        })?;
        match protocol {
            Protocol::Socks5 => socks5 = true,
            Protocol::Socks4 if !anonymous => return Err(socks4_refused(name.span()).field(&field)),
            Protocol::Socks4 => socks4 = true,
            Protocol::Http if !http_allowed(methods) => {
                return Err(ConfigError::new(
                    origin,
                    "HTTP clients authenticate with a password or not at all: \
                     allow \"password\" or \"none\" in methods",
                )
                .at(origin, Some(name.span()))
                .field(&field))
            }
            Protocol::Http => http = true,
        }
    }
    Ok((socks5, socks4, http))
}

#[derive(Clone, Copy)]
enum Protocol {
    Socks5,
    Socks4,
    Http,
}

/// The protocols a listener's `protocols` names.
const PROTOCOLS: &[(&str, Protocol)] = &[
    ("socks5", Protocol::Socks5),
    ("socks4", Protocol::Socks4),
    ("http", Protocol::Http),
];

fn validate_admin(raw: &raw::RawAdmin, origin: &Origin<'_>) -> Result<Option<Admin>, ConfigError> {
    let Some(address) = text_field(
        &raw.address,
        "admin.address",
        "IP:PORT, like \"127.0.0.1:9180\"",
        origin,
        |text| text.parse::<SocketAddr>().ok(),
    )?
    else {
        return Ok(None);
    };
    let admin = Admin {
        address,
        per_user_metrics: count_field(
            &raw.per_user_metrics,
            "admin.per_user_metrics",
            "must be at least 1",
            origin,
        )?,
        token_file: raw
            .token_file
            .as_deref()
            .map(|path| resolve_path(origin, path)),
        tls: raw.tls.as_ref().map(|tls| listener_tls(tls, origin)),
    };
    // `/sessions` names clients, users and targets: nobody off this machine reads it
    // without proving who they are.
    if !address.ip().to_canonical().is_loopback() && !admin.authenticates() {
        return Err(ConfigError::new(
            origin,
            "an admin listener off loopback needs authentication: set admin.token_file, \
             or admin.tls with a client_ca",
        )
        .at(origin, raw.address.as_ref().map(Spanned::span))
        .field("admin.address"));
    }
    Ok(Some(admin))
}

fn listener_tls(raw: &raw::RawListenerTls, origin: &Origin<'_>) -> ListenerTls {
    ListenerTls {
        cert: resolve_path(origin, &raw.cert),
        key: resolve_path(origin, &raw.key),
        client_ca: raw.client_ca.as_deref().map(|ca| resolve_path(origin, ca)),
    }
}

fn validate_auth(raw: &raw::RawAuth, origin: &Origin<'_>) -> Result<Auth, ConfigError> {
    let backend = match (&raw.password_file, &raw.pam_service) {
        (Some(_), Some(pam)) => {
            return Err(ConfigError::new(
                origin,
                "choose one back end: password_file or pam_service",
            )
            .at(origin, Some(pam.span()))
            .field("auth.pam_service"))
        }
        (Some(path), None) => Some(AuthBackend::PasswordFile {
            path: resolve_path(origin, path.get_ref()),
            groups: raw.group_file.as_deref().map(|p| resolve_path(origin, p)),
            danger_plaintext_passwords: raw.danger_plaintext_passwords.unwrap_or(false),
        }),
        (None, Some(service)) => Some(AuthBackend::Pam {
            service: service.get_ref().clone(),
        }),
        (None, None) => None,
    };
    let defaults = LoginThrottle::default();
    let throttle = LoginThrottle {
        free_failures: raw.throttle_free_failures.unwrap_or(defaults.free_failures),
        base: required_duration(
            &raw.throttle_base,
            "auth.throttle_base",
            defaults.base,
            origin,
        )?,
        source_cap: required_duration(
            &raw.throttle_source_cap,
            "auth.throttle_source_cap",
            defaults.source_cap,
            origin,
        )?,
        user_cap: required_duration(
            &raw.throttle_user_cap,
            "auth.throttle_user_cap",
            defaults.user_cap,
            origin,
        )?,
        pending_per_source: count_field(
            &raw.throttle_pending_per_source,
            "auth.throttle_pending_per_source",
            "must be at least 1",
            origin,
        )?
        .unwrap_or(defaults.pending_per_source),
        pending_per_user: count_field(
            &raw.throttle_pending_per_user,
            "auth.throttle_pending_per_user",
            "must be at least 1",
            origin,
        )?
        .unwrap_or(defaults.pending_per_user),
    };
    Ok(Auth { backend, throttle })
}

/// A path in the file is relative to the file's directory.
fn resolve_path(origin: &Origin<'_>, path: &str) -> std::path::PathBuf {
    let path = Path::new(path);
    match origin.file.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

fn ip_field(
    value: &Option<Spanned<String>>,
    field: &str,
    origin: &Origin<'_>,
) -> Result<Option<std::net::IpAddr>, ConfigError> {
    text_field(value, field, "an IP address", origin, |text| {
        text.parse().ok()
    })
}

/// Parses an optional text field; an error names what was expected, where.
fn text_field<T>(
    value: &Option<Spanned<String>>,
    field: &str,
    expected: &str,
    origin: &Origin<'_>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    parse(value.get_ref()).map(Some).ok_or_else(|| {
        ConfigError::new(origin, format!("expected {expected}"))
            .at(origin, Some(value.span()))
            .field(field)
    })
}

fn validate_upstreams(
    raw: &[Spanned<raw::RawUpstream>],
    origin: &Origin<'_>,
) -> Result<Vec<UpstreamGroup>, ConfigError> {
    let mut groups: Vec<UpstreamGroup> = Vec::new();
    for (index, spanned) in raw.iter().enumerate() {
        let group = spanned.get_ref();
        let field = |name: &str| format!("upstream[{index}].{name}");
        let name = group.name.get_ref().clone();
        if groups.iter().any(|g| g.name == name) {
            return Err(
                ConfigError::new(origin, format!("another group is named {name:?}"))
                    .at(origin, Some(group.name.span()))
                    .field(field("name")),
            );
        }
        if group.chains.is_empty() || group.chains.iter().any(Vec::is_empty) {
            return Err(ConfigError::new(
                origin,
                "each group needs at least one chain of one proxy or more",
            )
            .at(origin, Some(spanned.span()))
            .field(field("chains")));
        }
        let chains = group
            .chains
            .iter()
            .map(|chain| {
                chain
                    .iter()
                    .map(|url| {
                        url.get_ref()
                            .parse()
                            .map_err(|error: socksgate_proto::hop::UrlError| {
                                ConfigError::new(origin, error.to_string())
                                    .at(origin, Some(url.span()))
                                    .field(field("chains"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let selection = text_field(
            &group.selection,
            &field("selection"),
            "\"failover\", \"round-robin\" or \"hash-client\"",
            origin,
            |text| match text {
                "failover" => Some(Selection::Failover),
                "round-robin" => Some(Selection::RoundRobin),
                "hash-client" => Some(Selection::HashByClient),
                _ => None,
            },
        )?
        .unwrap_or(Selection::Failover);
        let tls = match &group.tls {
            None => socksgate_tls::ClientTls::default(),
            Some(tls) => upstream_tls(tls, &field("tls"), origin)?,
        };
        let gssapi = match &group.gssapi {
            None => None,
            Some(raw) => Some(UpstreamGssapi {
                service: raw.service.clone().unwrap_or_else(|| "rcmd".to_owned()),
                protection: match &raw.protection {
                    None => Protection::Confidentiality,
                    Some(level) => protection_level(level, &field("gssapi.protection"), origin)?,
                },
                nec: raw.nec.unwrap_or(false),
            }),
        };
        groups.push(UpstreamGroup {
            name,
            chains,
            selection,
            tls,
            gssapi,
            max_failures: group.max_failures.unwrap_or(3).max(1),
            send_proxy_protocol: group.send_proxy_protocol.unwrap_or(false),
            retry_after: required_duration(
                &group.retry_after,
                &field("retry_after"),
                Duration::from_secs(30),
                origin,
            )?,
            connect_timeout: required_duration(
                &group.connect_timeout,
                &field("connect_timeout"),
                Duration::from_secs(4),
                origin,
            )?,
            handshake_timeout: required_duration(
                &group.handshake_timeout,
                &field("handshake_timeout"),
                Duration::from_secs(5),
                origin,
            )?,
        });
    }
    Ok(groups)
}

fn upstream_tls(
    raw: &raw::RawUpstreamTls,
    field: &str,
    origin: &Origin<'_>,
) -> Result<socksgate_tls::ClientTls, ConfigError> {
    let pin =
        match &raw.pin {
            None => None,
            Some(pin) => Some(pin.get_ref().parse().map_err(
                |error: socksgate_tls::TlsError| {
                    ConfigError::new(origin, error.to_string())
                        .at(origin, Some(pin.span()))
                        .field(format!("{field}.pin"))
                },
            )?),
        };
    if let (Some(key), None) = (&raw.key, &raw.cert) {
        return Err(ConfigError::new(origin, "a client key needs its cert")
            .at(origin, Some(key.span()))
            .field(format!("{field}.cert")));
    }
    if let (None, Some(_)) = (&raw.key, &raw.cert) {
        return Err(
            ConfigError::new(origin, "a client cert needs its key").field(format!("{field}.key"))
        );
    }
    Ok(socksgate_tls::ClientTls {
        ca: raw.ca.as_deref().map(|ca| resolve_path(origin, ca)),
        pin,
        cert: raw.cert.as_deref().map(|cert| resolve_path(origin, cert)),
        key: raw
            .key
            .as_ref()
            .map(|key| resolve_path(origin, key.get_ref())),
    })
}

/// The GSS-API protection levels (RFC 1961 §4), as `[gssapi]` names them.
const PROTECTIONS: &[(&str, Protection)] = &[
    ("none", Protection::None),
    ("integrity", Protection::Integrity),
    ("confidentiality", Protection::Confidentiality),
];

fn protection_level(
    name: &toml::Spanned<String>,
    field: &str,
    origin: &Origin<'_>,
) -> Result<Protection, ConfigError> {
    keyword::keyword(name, field, PROTECTIONS, origin)
}

fn validate_gssapi(raw: &raw::RawGssapi, origin: &Origin<'_>) -> Result<Gssapi, ConfigError> {
    let defaults = Gssapi::default();
    let protection = match &raw.protection {
        None => defaults.protection,
        Some(list) => {
            let mut levels = Vec::new();
            for name in list.get_ref() {
                let level = protection_level(name, "gssapi.protection", origin)?;
                if !levels.contains(&level) {
                    levels.push(level);
                }
            }
            if levels.is_empty() {
                return Err(ConfigError::new(origin, "list at least one level")
                    .at(origin, Some(list.span()))
                    .field("gssapi.protection"));
            }
            levels
        }
    };
    Ok(Gssapi {
        service: raw.service.clone().unwrap_or(defaults.service),
        keytab: raw.keytab.as_deref().map(|path| resolve_path(origin, path)),
        protection,
        nec: raw.nec.unwrap_or(false),
    })
}

fn validate_icmp(raw: &raw::RawIcmp, origin: &Origin<'_>) -> Result<Icmp, ConfigError> {
    let defaults = Icmp::default();
    let socket = text_field(
        &raw.socket,
        "icmp.socket",
        "\"auto\", \"ping\" or \"raw\"",
        origin,
        |text| match text {
            "auto" => Some(IcmpSocket::Auto),
            "ping" => Some(IcmpSocket::Ping),
            "raw" => Some(IcmpSocket::Raw),
            _ => None,
        },
    )?;
    let rate = count_field(
        &raw.rate,
        "icmp.rate",
        "must be at least 1 (echo requests per second)",
        origin,
    )?
    .unwrap_or(defaults.rate);
    Ok(Icmp {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        socket: socket.unwrap_or(defaults.socket),
        rate,
    })
}

fn validate_bind(raw: &raw::RawBind, origin: &Origin<'_>) -> Result<Bind, ConfigError> {
    let defaults = Bind::default();
    Ok(Bind {
        address: ip_field(&raw.address, "bind.address", origin)?,
        advertise_address: ip_field(&raw.advertise_address, "bind.advertise_address", origin)?,
        timeout: required_duration(&raw.timeout, "bind.timeout", defaults.timeout, origin)?,
    })
}

fn validate_udp(raw: &raw::RawUdp, origin: &Origin<'_>) -> Result<Udp, ConfigError> {
    let defaults = Udp::default();
    let ports = text_field(
        &raw.ports,
        "udp.ports",
        "a port range like \"40000-40999\"",
        origin,
        |text| {
            let (low, high) = text.split_once('-').unwrap_or((text, text));
            let (low, high): (u16, u16) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
            (low > 0 && low <= high).then_some(low..=high)
        },
    )?;
    let filtering = text_field(
        &raw.filtering,
        "udp.filtering",
        "\"address-and-port\", \"address\" or \"endpoint-independent\"",
        origin,
        |text| match text {
            "address-and-port" => Some(UdpFiltering::AddressAndPort),
            "address" => Some(UdpFiltering::Address),
            "endpoint-independent" => Some(UdpFiltering::EndpointIndependent),
            _ => None,
        },
    )?;
    let fragments = text_field(
        &raw.fragments,
        "udp.fragments",
        "\"reassemble\" or \"drop\"",
        origin,
        |text| match text {
            "reassemble" => Some(Fragments::Reassemble),
            "drop" => Some(Fragments::Drop),
            _ => None,
        },
    )?;
    let reassembly_timeout = required_duration(
        &raw.reassembly_timeout,
        "udp.reassembly_timeout",
        defaults.reassembly_timeout,
        origin,
    )?;
    if reassembly_timeout < Duration::from_secs(5) {
        return Err(
            ConfigError::new(origin, "RFC 1928 §7 requires at least 5 seconds")
                .at(origin, raw.reassembly_timeout.as_ref().map(Spanned::span))
                .field("udp.reassembly_timeout"),
        );
    }
    Ok(Udp {
        address: ip_field(&raw.address, "udp.address", origin)?,
        ports,
        advertise_address: ip_field(&raw.advertise_address, "udp.advertise_address", origin)?,
        filtering: filtering.unwrap_or(defaults.filtering),
        fragments: fragments.unwrap_or(defaults.fragments),
        reassembly_timeout,
        idle: required_duration(&raw.idle, "udp.idle", defaults.idle, origin)?,
    })
}

/// A whole number of at least 1 that fits `T`, when set; `why` says what is wrong otherwise.
fn count_field<T: TryFrom<u64>>(
    value: &Option<Spanned<u64>>,
    field: &str,
    why: &str,
    origin: &Origin<'_>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let number = *value.get_ref();
    match T::try_from(number) {
        Ok(count) if number > 0 => Ok(Some(count)),
        _ => Err(ConfigError::new(origin, why)
            .at(origin, Some(value.span()))
            .field(field)),
    }
}

/// A duration that must be set to something positive, or left at its default.
fn required_duration(
    value: &Option<Spanned<RawDuration>>,
    field: &str,
    default: Duration,
    origin: &Origin<'_>,
) -> Result<Duration, ConfigError> {
    match duration(value, field, origin)? {
        Some(Some(duration)) if !duration.is_zero() => Ok(duration),
        None => Ok(default),
        Some(_) => Err(ConfigError::new(origin, "cannot be off or zero")
            .at(origin, value.as_ref().map(Spanned::span))
            .field(field)),
    }
}

/// `Some(None)` for "off", `Some(Some(d))` for a duration, `None` when absent.
fn duration(
    value: &Option<Spanned<RawDuration>>,
    field: &str,
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
        .field(field)
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
        .position(|listener| listener.allows_anonymous() && !listener.address.ip().is_loopback())
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
