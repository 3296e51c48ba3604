//! The effective configuration written back as TOML, defaults included: what
//! `socksgate check` prints, and valid input for `Config::parse`.

use std::fmt::Write;
use std::time::Duration;

use socksgate_proto::Method;

use crate::model::{
    AuthBackend, Config, Fragments, IcmpSocket, LogFormat, LogOutput, UdpFiltering,
};

/// Renders `config` as a TOML document that parses back to the same `Config`.
pub(crate) fn to_toml(config: &Config, redact: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "danger_allow_open_proxy = {}",
        config.danger_allow_open_proxy
    );
    for listener in &config.listeners {
        let _ = writeln!(out, "\n[[listen]]");
        let _ = writeln!(out, "address = \"{}\"", listener.address);
        let methods: Vec<String> = listener
            .methods
            .iter()
            .map(|&method| match method {
                Method::PASSWORD => "\"password\"".to_owned(),
                Method::GSSAPI => "\"gssapi\"".to_owned(),
                _ => "\"none\"".to_owned(),
            })
            .collect();
        let _ = writeln!(out, "methods = [{}]", methods.join(", "));
        let protocols: Vec<&str> = [
            (listener.socks5, "\"socks5\""),
            (listener.socks4, "\"socks4\""),
            (listener.http, "\"http\""),
        ]
        .into_iter()
        .filter_map(|(served, name)| served.then_some(name))
        .collect();
        let _ = writeln!(out, "protocols = [{}]", protocols.join(", "));
        if listener.trust_socks4_userid {
            let _ = writeln!(out, "trust_socks4_userid = true");
        }
        if !listener.proxy_protocol.is_empty() {
            let sources: Vec<String> = listener
                .proxy_protocol
                .iter()
                .map(|block| format!("\"{block}\""))
                .collect();
            let _ = writeln!(out, "proxy_protocol = [{}]", sources.join(", "));
        }
        if let Some(tls) = &listener.tls {
            render_tls(&mut out, tls);
        }
    }
    let timeouts = &config.timeouts;
    let _ = writeln!(out, "\n[timeouts]");
    let _ = writeln!(out, "handshake = \"{}\"", duration(timeouts.handshake));
    let _ = writeln!(out, "connect = \"{}\"", duration(timeouts.connect));
    let idle = timeouts.idle.map_or("off".to_owned(), duration);
    let _ = writeln!(out, "idle = \"{idle}\"");
    let keepalive = timeouts.keepalive.map_or("off".to_owned(), duration);
    let _ = writeln!(out, "keepalive = \"{keepalive}\"");
    let _ = writeln!(out, "shutdown = \"{}\"", duration(timeouts.shutdown));
    let _ = writeln!(out, "\n[limits]");
    match config.limits.max_sessions {
        Some(limit) => {
            let _ = writeln!(out, "max_sessions = {limit}");
        }
        None => {
            let _ = writeln!(out, "# max_sessions: as many as the descriptor limit holds");
        }
    }
    if let Some(limit) = config.limits.max_sessions_per_source {
        let _ = writeln!(out, "max_sessions_per_source = {limit}");
    }
    if let Some(limit) = config.limits.max_sessions_per_user {
        let _ = writeln!(out, "max_sessions_per_user = {limit}");
    }
    if let Some(rate) = config.limits.bandwidth_per_user {
        let _ = writeln!(out, "bandwidth_per_user = \"{rate}B/s\"");
    }
    let _ = writeln!(
        out,
        "ipv6_source_prefix = {}",
        config.limits.ipv6_source_prefix
    );
    if let Some(rate) = config.limits.connection_rate_per_source {
        let _ = writeln!(out, "connection_rate_per_source = {rate}");
    }
    if let Some(limit) = config.limits.max_udp_associations {
        let _ = writeln!(out, "max_udp_associations = {limit}");
    }
    match config.limits.listen_backlog {
        Some(backlog) => {
            let _ = writeln!(out, "listen_backlog = {backlog}");
        }
        None => {
            let _ = writeln!(
                out,
                "# listen_backlog: as many as the kernel allows (somaxconn)"
            );
        }
    }
    let _ = writeln!(out, "\n[log]");
    let format = match config.log.format {
        LogFormat::Human => "human",
        LogFormat::Json => "json",
    };
    let _ = writeln!(out, "format = \"{format}\"");
    let _ = writeln!(out, "level = {:?}", config.log.level);
    let _ = writeln!(out, "access = {}", config.log.access);
    let output = match &config.log.output {
        LogOutput::Stderr => "stderr".to_owned(),
        LogOutput::Stdout => "stdout".to_owned(),
        LogOutput::File(path) => path.display().to_string(),
    };
    let _ = writeln!(out, "output = {output:?}");

    let auth = &config.auth;
    let _ = writeln!(out, "\n[auth]");
    match &auth.backend {
        Some(AuthBackend::PasswordFile {
            path,
            groups,
            danger_plaintext_passwords,
        }) => {
            let _ = writeln!(out, "password_file = {:?}", path.display().to_string());
            if let Some(groups) = groups {
                let _ = writeln!(out, "group_file = {:?}", groups.display().to_string());
            }
            let _ = writeln!(
                out,
                "danger_plaintext_passwords = {danger_plaintext_passwords}"
            );
        }
        Some(AuthBackend::Pam { service }) => {
            let _ = writeln!(out, "pam_service = {service:?}");
        }
        None => {}
    }
    let throttle = &auth.throttle;
    let _ = writeln!(out, "throttle_free_failures = {}", throttle.free_failures);
    let _ = writeln!(out, "throttle_base = \"{}\"", duration(throttle.base));
    let _ = writeln!(
        out,
        "throttle_source_cap = \"{}\"",
        duration(throttle.source_cap)
    );
    let _ = writeln!(
        out,
        "throttle_user_cap = \"{}\"",
        duration(throttle.user_cap)
    );
    let _ = writeln!(
        out,
        "throttle_pending_per_source = {}\nthrottle_pending_per_user = {}",
        throttle.pending_per_source, throttle.pending_per_user
    );

    render_upstreams(&mut out, &config.upstreams, redact);
    render_gssapi(&mut out, &config.gssapi);
    render_policy(
        &mut out,
        &config.policy,
        config.private_destinations_setting,
    );

    let bind = &config.bind;
    let _ = writeln!(out, "\n[bind]");
    if let Some(address) = bind.address {
        let _ = writeln!(out, "address = \"{address}\"");
    }
    if let Some(address) = bind.advertise_address {
        let _ = writeln!(out, "advertise_address = \"{address}\"");
    }
    let _ = writeln!(out, "timeout = \"{}\"", duration(bind.timeout));

    let udp = &config.udp;
    let _ = writeln!(out, "\n[udp]");
    if let Some(address) = udp.address {
        let _ = writeln!(out, "address = \"{address}\"");
    }
    if let Some(ports) = &udp.ports {
        let _ = writeln!(out, "ports = \"{}-{}\"", ports.start(), ports.end());
    }
    if let Some(address) = udp.advertise_address {
        let _ = writeln!(out, "advertise_address = \"{address}\"");
    }
    let filtering = match udp.filtering {
        UdpFiltering::AddressAndPort => "address-and-port",
        UdpFiltering::Address => "address",
        UdpFiltering::EndpointIndependent => "endpoint-independent",
    };
    let _ = writeln!(out, "filtering = \"{filtering}\"");
    let fragments = match udp.fragments {
        Fragments::Reassemble => "reassemble",
        Fragments::Drop => "drop",
    };
    let _ = writeln!(out, "fragments = \"{fragments}\"");
    let _ = writeln!(
        out,
        "reassembly_timeout = \"{}\"",
        duration(udp.reassembly_timeout)
    );
    let _ = writeln!(out, "idle = \"{}\"", duration(udp.idle));

    let icmp = &config.icmp;
    let _ = writeln!(out, "\n[icmp]");
    let _ = writeln!(out, "enabled = {}", icmp.enabled);
    let socket = match icmp.socket {
        IcmpSocket::Auto => "auto",
        IcmpSocket::Ping => "ping",
        IcmpSocket::Raw => "raw",
    };
    let _ = writeln!(out, "socket = \"{socket}\"");
    let _ = writeln!(out, "rate = {}", icmp.rate);
    if let Some(admin) = &config.admin {
        let _ = writeln!(out, "\n[admin]\naddress = \"{}\"", admin.address);
        if let Some(users) = admin.per_user_metrics {
            let _ = writeln!(out, "per_user_metrics = {users}");
        }
        if let Some(path) = &admin.token_file {
            let _ = writeln!(out, "token_file = {:?}", path.display().to_string());
        }
        if let Some(tls) = &admin.tls {
            render_tls(&mut out, tls);
        }
    }
    if let Some(fleet) = &config.fleet {
        crate::fleet::render(&mut out, fleet, redact);
    }
    let process = &config.process;
    if process.user.is_some() || process.group.is_some() {
        let _ = writeln!(out, "\n[process]");
        if let Some(user) = &process.user {
            let _ = writeln!(out, "user = {user:?}");
        }
        if let Some(group) = &process.group {
            let _ = writeln!(out, "group = {group:?}");
        }
    }
    out
}

/// The largest whole unit: `2h`, `90s`, `1500ms`.
fn duration(value: Duration) -> String {
    let millis = value.as_millis();
    if millis % 1000 != 0 {
        return format!("{millis}ms");
    }
    let seconds = value.as_secs();
    match seconds {
        s if s % 86400 == 0 && s > 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn render_policy(out: &mut String, policy: &socksgate_policy::Policy, setting: Option<bool>) {
    use socksgate_policy::{Action, LogLevel};
    fn list<T: std::fmt::Display>(out: &mut String, key: &str, items: &[T]) {
        if !items.is_empty() {
            let quoted: Vec<String> = items.iter().map(|item| format!("\"{item}\"")).collect();
            let _ = writeln!(out, "{key} = [{}]", quoted.join(", "));
        }
    }
    let action = |action: Action| match action {
        Action::Allow => "allow",
        Action::Deny => "deny",
        Action::Route => "route",
    };
    let _ = writeln!(out, "\n[policy]");
    let effective = policy.deny_private_destinations;
    if setting.is_some() {
        let _ = writeln!(out, "deny_private_destinations = {effective}");
    } else {
        // Unset, it follows the listeners: shown, and left to follow them when read back.
        let why = if effective {
            "a listener is public: off loopback, or behind a balancer"
        } else {
            "every listener is on loopback, none behind a balancer"
        };
        let _ = writeln!(
            out,
            "# deny_private_destinations = {effective}   (unset: {why})"
        );
    }
    for rule in &policy.client_rules {
        let _ = writeln!(out, "\n[[client_rule]]  # {}", rule.origin);
        list(out, "from", &rule.from);
        list(out, "listener", &rule.listeners);
        let _ = writeln!(out, "action = \"{}\"", action(rule.action));
    }
    for rule in &policy.rules {
        let _ = writeln!(out, "\n[[rule]]  # {}", rule.origin);
        list(out, "from", &rule.from);
        list(out, "listener", &rule.listeners);
        list(out, "users", &rule.users);
        list(out, "groups", &rule.groups);
        let methods: Vec<&str> = rule
            .methods
            .iter()
            .map(|&m| match m {
                Method::PASSWORD => "password",
                Method::GSSAPI => "gssapi",
                _ => "none",
            })
            .collect();
        list(out, "methods", &methods);
        let commands: Vec<&str> = rule
            .commands
            .iter()
            .map(|&c| crate::rules::command_name(c))
            .collect();
        list(out, "commands", &commands);
        list(out, "to", &rule.to);
        list(out, "ports", &rule.ports);
        if let Some(days) = rule.days {
            list(out, "days", &days.names().collect::<Vec<_>>());
        }
        if let Some(hours) = rule.hours {
            let _ = writeln!(out, "hours = \"{hours}\"");
        }
        let _ = writeln!(out, "action = \"{}\"", action(rule.action));
        if let Some(route) = &rule.route {
            let _ = writeln!(out, "route = {route:?}");
        }
        let options = &rule.options;
        if options.log != LogLevel::Info {
            let level = match options.log {
                LogLevel::Off => "off",
                LogLevel::Debug => "debug",
                LogLevel::Warn => "warn",
                LogLevel::Info => "info",
            };
            let _ = writeln!(out, "log = \"{level}\"");
        }
        if let Some(limit) = options.max_sessions_per_user {
            let _ = writeln!(out, "max_sessions_per_user = {limit}");
        }
        if let Some(limit) = options.max_sessions_per_source {
            let _ = writeln!(out, "max_sessions_per_source = {limit}");
        }
        if let Some(rate) = options.bandwidth {
            let _ = writeln!(out, "bandwidth = \"{rate}B/s\"");
        }
        if let Some(rate) = options.bandwidth_per_user {
            let _ = writeln!(out, "bandwidth_per_user = \"{rate}B/s\"");
        }
        if let Some(egress) = &rule.egress {
            if let Some(interface) = &egress.interface {
                let _ = writeln!(out, "interface = \"{interface}\"");
            }
            if !egress.sources.is_empty() {
                list(out, "source_address", &egress.sources);
            }
            if let Some(mark) = egress.mark {
                let _ = writeln!(out, "mark = {mark:#x}");
            }
        }
    }
}

/// Upstream URLs are written with their passwords (so the rendered file works as the original
/// does), or with `REDACTED` in their place for display.
fn render_upstreams(out: &mut String, groups: &[crate::model::UpstreamGroup], redact: bool) {
    use crate::model::Selection;
    for group in groups {
        let _ = writeln!(out, "\n[[upstream]]");
        let _ = writeln!(out, "name = {:?}", group.name);
        let chains: Vec<String> = group
            .chains
            .iter()
            .map(|chain| {
                let urls: Vec<String> = chain
                    .iter()
                    .map(|hop| format!("{:?}", hop_url(hop, redact)))
                    .collect();
                format!("[{}]", urls.join(", "))
            })
            .collect();
        let _ = writeln!(out, "chains = [{}]", chains.join(", "));
        let selection = match group.selection {
            Selection::Failover => "failover",
            Selection::RoundRobin => "round-robin",
            Selection::HashByClient => "hash-client",
        };
        let _ = writeln!(out, "selection = \"{selection}\"");
        let _ = writeln!(out, "max_failures = {}", group.max_failures);
        if group.send_proxy_protocol {
            let _ = writeln!(out, "send_proxy_protocol = true");
        }
        let _ = writeln!(out, "retry_after = \"{}\"", duration(group.retry_after));
        let _ = writeln!(
            out,
            "connect_timeout = \"{}\"",
            duration(group.connect_timeout)
        );
        let _ = writeln!(
            out,
            "handshake_timeout = \"{}\"",
            duration(group.handshake_timeout)
        );
        render_upstream_tls(out, &group.tls);
        if let Some(gssapi) = &group.gssapi {
            let _ = writeln!(
                out,
                "gssapi = {{ service = {:?}, protection = \"{}\", nec = {} }}",
                gssapi.service,
                protection_name(gssapi.protection),
                gssapi.nec
            );
        }
    }
}

fn protection_name(level: crate::model::Protection) -> &'static str {
    use crate::model::Protection;
    match level {
        Protection::None => "none",
        Protection::Integrity => "integrity",
        Protection::Confidentiality => "confidentiality",
    }
}

fn render_gssapi(out: &mut String, gssapi: &crate::model::Gssapi) {
    let _ = writeln!(out, "\n[gssapi]");
    let _ = writeln!(out, "service = {:?}", gssapi.service);
    if let Some(keytab) = &gssapi.keytab {
        let _ = writeln!(out, "keytab = {:?}", keytab.display().to_string());
    }
    let levels: Vec<String> = gssapi
        .protection
        .iter()
        .map(|&level| format!("\"{}\"", protection_name(level)))
        .collect();
    let _ = writeln!(out, "protection = [{}]", levels.join(", "));
    let _ = writeln!(out, "nec = {}", gssapi.nec);
}

fn render_upstream_tls(out: &mut String, tls: &socksgate_tls::ClientTls) {
    let path = |path: &std::path::PathBuf| format!("{:?}", path.display().to_string());
    let mut fields = Vec::new();
    fields.extend(tls.ca.as_ref().map(|ca| format!("ca = {}", path(ca))));
    fields.extend(tls.pin.map(|pin| format!("pin = \"{pin}\"")));
    fields.extend(
        tls.cert
            .as_ref()
            .map(|cert| format!("cert = {}", path(cert))),
    );
    fields.extend(tls.key.as_ref().map(|key| format!("key = {}", path(key))));
    if !fields.is_empty() {
        let _ = writeln!(out, "tls = {{ {} }}", fields.join(", "));
    }
}

/// The URL with its password, or `REDACTED` in its place.
fn hop_url(hop: &socksgate_proto::hop::Hop, redact: bool) -> String {
    if !redact || hop.credentials.is_none() {
        return hop.url_with_password();
    }
    let shown = hop.to_string();
    let (scheme, rest) = shown.split_once("://").unwrap_or(("socks5", &shown));
    let (user, host) = rest.rsplit_once('@').unwrap_or(("", rest));
    format!("{scheme}://{user}:REDACTED@{host}")
}

/// `tls = { cert = …, key = …, client_ca = … }` on a line of its own.
fn render_tls(out: &mut String, tls: &crate::ListenerTls) {
    let _ = write!(
        out,
        "tls = {{ cert = {:?}, key = {:?}",
        tls.cert.display().to_string(),
        tls.key.display().to_string()
    );
    if let Some(ca) = &tls.client_ca {
        let _ = write!(out, ", client_ca = {:?}", ca.display().to_string());
    }
    let _ = writeln!(out, " }}");
}
