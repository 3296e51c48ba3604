//! The file as written: serde structs that reject unknown fields. Nothing here is trusted;
//! `validate` turns it into the types in `model`.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) danger_allow_open_proxy: Option<bool>,
    #[serde(default)]
    pub(crate) listen: Vec<RawListener>,
    #[serde(default)]
    pub(crate) timeouts: RawTimeouts,
    #[serde(default)]
    pub(crate) limits: RawLimits,
    #[serde(default)]
    pub(crate) log: RawLog,
    #[serde(default)]
    pub(crate) auth: RawAuth,
    #[serde(default)]
    pub(crate) policy: RawPolicy,
    #[serde(default)]
    pub(crate) client_rule: Vec<Spanned<RawClientRule>>,
    #[serde(default)]
    pub(crate) rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub(crate) upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    pub(crate) bind: RawBind,
    #[serde(default)]
    pub(crate) udp: RawUdp,
    #[serde(default)]
    pub(crate) gssapi: RawGssapi,
    #[serde(default)]
    pub(crate) icmp: RawIcmp,
    #[serde(default)]
    pub(crate) admin: RawAdmin,
    #[serde(default)]
    pub(crate) process: RawProcess,
    #[serde(default)]
    pub(crate) fleet: RawFleet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    pub(crate) redis: Option<Spanned<String>>,
    pub(crate) node: Option<String>,
    pub(crate) sync_interval: Option<Spanned<RawDuration>>,
    pub(crate) max_sessions_per_user: Option<Spanned<u64>>,
    pub(crate) max_sessions_per_source: Option<Spanned<u64>>,
    pub(crate) quota_per_user: Option<Spanned<String>>,
    pub(crate) quota_period: Option<Spanned<String>>,
    pub(crate) login_failures: Option<Spanned<u64>>,
    pub(crate) login_window: Option<Spanned<RawDuration>>,
    pub(crate) login_delay: Option<Spanned<RawDuration>>,
    pub(crate) on_redis_down: Option<Spanned<String>>,
    pub(crate) sessions_on_redis_down: Option<Spanned<String>>,
    pub(crate) quota_on_redis_down: Option<Spanned<String>>,
    pub(crate) logins_on_redis_down: Option<Spanned<String>>,
}

impl RawFleet {
    /// The first setting given, for an error when `redis` is missing.
    pub(crate) fn first_setting(&self) -> Option<&'static str> {
        let given = [
            (
                "max_sessions_per_user",
                self.max_sessions_per_user.is_some(),
            ),
            (
                "max_sessions_per_source",
                self.max_sessions_per_source.is_some(),
            ),
            ("quota_per_user", self.quota_per_user.is_some()),
            ("login_failures", self.login_failures.is_some()),
            ("node", self.node.is_some()),
        ];
        given.iter().find(|(_, set)| *set).map(|(name, _)| *name)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProcess {
    pub(crate) user: Option<String>,
    pub(crate) group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) per_user_metrics: Option<Spanned<u64>>,
    pub(crate) token_file: Option<String>,
    pub(crate) tls: Option<RawListenerTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIcmp {
    pub(crate) enabled: Option<bool>,
    pub(crate) socket: Option<Spanned<String>>,
    pub(crate) rate: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGssapi {
    pub(crate) service: Option<String>,
    pub(crate) keytab: Option<String>,
    pub(crate) protection: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) nec: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBind {
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) advertise_address: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUdp {
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) ports: Option<Spanned<String>>,
    pub(crate) advertise_address: Option<Spanned<String>>,
    pub(crate) filtering: Option<Spanned<String>>,
    pub(crate) fragments: Option<Spanned<String>>,
    pub(crate) reassembly_timeout: Option<Spanned<RawDuration>>,
    pub(crate) idle: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) address: Spanned<String>,
    pub(crate) methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) socks4: Option<Spanned<bool>>,
    pub(crate) protocols: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) tls: Option<RawListenerTls>,
    pub(crate) proxy_protocol: Option<Vec<Spanned<String>>>,
    pub(crate) trust_socks4_userid: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerTls {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) client_ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) handshake: Option<Spanned<RawDuration>>,
    pub(crate) connect: Option<Spanned<RawDuration>>,
    pub(crate) idle: Option<Spanned<RawDuration>>,
    pub(crate) keepalive: Option<Spanned<RawDuration>>,
    pub(crate) shutdown: Option<Spanned<RawDuration>>,
}

/// `10`, `"10s"` or `"off"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawDuration {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) max_sessions: Option<Spanned<u64>>,
    pub(crate) max_sessions_per_source: Option<Spanned<u64>>,
    pub(crate) max_sessions_per_user: Option<Spanned<u64>>,
    pub(crate) bandwidth_per_user: Option<Spanned<String>>,
    pub(crate) connection_rate_per_source: Option<Spanned<u64>>,
    pub(crate) ipv6_source_prefix: Option<Spanned<u64>>,
    pub(crate) listen_backlog: Option<Spanned<u64>>,
    pub(crate) max_udp_associations: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) format: Option<Spanned<String>>,
    pub(crate) level: Option<Spanned<String>>,
    pub(crate) access: Option<bool>,
    pub(crate) output: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) password_file: Option<Spanned<String>>,
    pub(crate) group_file: Option<String>,
    pub(crate) pam_service: Option<Spanned<String>>,
    pub(crate) danger_plaintext_passwords: Option<bool>,
    pub(crate) throttle_free_failures: Option<u32>,
    pub(crate) throttle_base: Option<Spanned<RawDuration>>,
    pub(crate) throttle_source_cap: Option<Spanned<RawDuration>>,
    pub(crate) throttle_user_cap: Option<Spanned<RawDuration>>,
    pub(crate) throttle_pending_per_source: Option<Spanned<u64>>,
    pub(crate) throttle_pending_per_user: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub(crate) deny_private_destinations: Option<bool>,
}

/// A port written as a number or as a string range.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawPort {
    Number(u16),
    Text(String),
}

type List = Option<Vec<Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientRule {
    pub(crate) from: List,
    pub(crate) listener: List,
    pub(crate) action: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) from: List,
    pub(crate) listener: List,
    pub(crate) users: List,
    pub(crate) groups: List,
    pub(crate) methods: List,
    pub(crate) commands: List,
    pub(crate) to: List,
    pub(crate) ports: Option<Vec<Spanned<RawPort>>>,
    pub(crate) days: List,
    pub(crate) hours: Option<Spanned<String>>,
    pub(crate) action: Spanned<String>,
    pub(crate) route: Option<Spanned<String>>,
    pub(crate) log: Option<Spanned<String>>,
    pub(crate) max_sessions_per_user: Option<u32>,
    pub(crate) max_sessions_per_source: Option<u32>,
    pub(crate) bandwidth: Option<Spanned<String>>,
    pub(crate) bandwidth_per_user: Option<Spanned<String>>,
    pub(crate) interface: Option<Spanned<String>>,
    pub(crate) source_address: Option<Spanned<RawAddresses>>,
    pub(crate) mark: Option<Spanned<u32>>,
}

/// One address, or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawAddresses {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub(crate) name: Spanned<String>,
    pub(crate) chains: Vec<Vec<Spanned<String>>>,
    pub(crate) selection: Option<Spanned<String>>,
    pub(crate) max_failures: Option<u32>,
    pub(crate) retry_after: Option<Spanned<RawDuration>>,
    pub(crate) connect_timeout: Option<Spanned<RawDuration>>,
    pub(crate) handshake_timeout: Option<Spanned<RawDuration>>,
    pub(crate) tls: Option<RawUpstreamTls>,
    pub(crate) gssapi: Option<RawUpstreamGssapi>,
    pub(crate) send_proxy_protocol: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamGssapi {
    pub(crate) service: Option<String>,
    pub(crate) protection: Option<Spanned<String>>,
    pub(crate) nec: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    pub(crate) ca: Option<String>,
    pub(crate) pin: Option<Spanned<String>>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<Spanned<String>>,
}
