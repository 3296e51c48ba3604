//! The configuration file: what is accepted, and what errors say.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::Path;
use std::time::Duration;

use socksgate_config::{Config, LogFormat};

fn parse(text: &str) -> Result<Config, socksgate_config::ConfigError> {
    Config::parse(text, Path::new("gate.toml"))
}

/// `text` is refused, the error naming `field` (and, when given, its `line`).
fn assert_rejected(text: &str, field: &str, line: Option<usize>) {
    let error = parse(text).unwrap_err();
    assert_eq!(error.field.as_deref(), Some(field), "{text}: {error}");
    if let Some(line) = line {
        assert_eq!(error.position.map(|p| p.0), Some(line), "{error}");
    }
}

#[test]
fn empty_file_is_the_loopback_default() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    let addresses: Vec<String> = config
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    assert_eq!(addresses, ["127.0.0.1:1080", "[::1]:1080"]);
    assert_eq!(config.timeouts.handshake, Duration::from_secs(10));
    // Issue #23: idle relays end after 2 h, dead peers after about 2 min of keepalive.
    assert_eq!(config.timeouts.idle, Some(Duration::from_secs(7200)));
    assert_eq!(config.timeouts.keepalive, Some(Duration::from_secs(60)));
    let never = parse("[timeouts]\nidle = \"off\"\nkeepalive = \"off\"\n").unwrap();
    assert_eq!(
        (never.timeouts.idle, never.timeouts.keepalive),
        (None, None)
    );
}

#[test]
fn full_gateway_config() {
    let config = parse(
        r#"
danger_allow_open_proxy = true

[[listen]]
address = "0.0.0.0:1080"
socks4 = false

[[listen]]
address = "[::1]:1081"

[timeouts]
handshake = "5s"
connect = 3
idle = "2h"
shutdown = "500ms"

[limits]
max_sessions = 20

[log]
format = "json"
level = "debug"
access = false
"#,
    )
    .unwrap();
    assert_eq!(config.listeners.len(), 2);
    assert!(!config.listeners[0].socks4 && config.listeners[1].socks4);
    assert_eq!(config.timeouts.connect, Duration::from_secs(3));
    assert_eq!(config.timeouts.idle, Some(Duration::from_secs(7200)));
    assert_eq!(config.timeouts.shutdown, Duration::from_millis(500));
    assert_eq!(config.limits.max_sessions, Some(20));
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(!config.log.access);
}

#[test]
fn typo_names_file_line_column_and_field() {
    let error = parse("[[listen]]\naddress = \"127.0.0.1:1080\"\nsock4 = true\n").unwrap_err();
    assert_eq!(error.position.map(|p| p.0), Some(3));
    // With the table it is in (issue #30: not a bare `sock4`).
    assert_eq!(error.field.as_deref(), Some("listen[0].sock4"));
    let shown = error.to_string();
    assert!(
        shown.starts_with("gate.toml:3:1: field `listen[0].sock4`: unknown field"),
        "{shown}"
    );
}

#[test]
fn bad_value_names_its_field() {
    let error = parse("[timeouts]\nconnect = \"soon\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("timeouts.connect"));
    assert_eq!(error.position, Some((2, 11)));
    let error = parse("[[listen]]\naddress = \"localhost\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("listen[0].address"));
    let error = parse("[log]\nformat = \"xml\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("log.format"));
    let error = parse("[limits]\nmax_sessions = 0\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("limits.max_sessions"));
    let error = parse("[timeouts]\nconnect = \"off\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("timeouts.connect"));
}

#[test]
fn open_proxy_is_refused_without_the_danger_switch() {
    let text = "[[listen]]\naddress = \"127.0.0.1:1080\"\n[[listen]]\naddress = \"0.0.0.0:1080\"\n";
    let error = parse(text).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("listen[1].address"));
    assert_eq!(error.position.map(|p| p.0), Some(4));
    assert!(error.to_string().contains("open proxy"), "{error}");
    assert!(
        error.to_string().contains("danger_allow_open_proxy"),
        "{error}"
    );
    assert!(parse(&format!("danger_allow_open_proxy = true\n{text}")).is_ok());
}

#[test]
fn command_line_listeners_are_checked_too() {
    let public = ["0.0.0.0:1080".parse().unwrap()];
    let error = Config::default().with_listeners(&public).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("<command line>: field `listen[0].address`"),
        "{error}"
    );
    let loopback = ["127.0.0.2:9000".parse().unwrap()];
    assert_eq!(
        Config::default()
            .with_listeners(&loopback)
            .unwrap()
            .listeners
            .len(),
        1
    );
}

#[test]
fn idle_timeout_off_or_zero_means_never() {
    assert_eq!(
        parse("[timeouts]\nidle = \"off\"\n").unwrap().timeouts.idle,
        None
    );
    assert_eq!(parse("[timeouts]\nidle = 0\n").unwrap().timeouts.idle, None);
}

#[test]
fn rendered_config_parses_back_to_itself() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/gateway.toml"
    ))
    .unwrap();
    // Where each rule was written differs between the two texts; all else must not.
    let without_origins = |mut config: Config| {
        for rule in &mut config.policy.rules {
            rule.origin.line = 0;
        }
        for rule in &mut config.policy.client_rules {
            rule.origin.line = 0;
        }
        config
    };
    for config in [Config::default(), parse(&text).unwrap()] {
        let rendered = config.to_toml();
        assert_eq!(
            without_origins(parse(&rendered).unwrap()),
            without_origins(config),
            "{rendered}"
        );
    }
    let mut odd = Config::default();
    odd.timeouts.connect = Duration::from_millis(1500);
    odd.timeouts.idle = Some(Duration::from_secs(90));
    assert!(odd.to_toml().contains("connect = \"1500ms\""));
    assert_eq!(parse(&odd.to_toml()).unwrap(), odd);
}

#[test]
fn bind_and_udp_sections() {
    let config = parse(
        "[bind]\naddress = \"127.0.0.1\"\ntimeout = \"30s\"\n\
         [udp]\nports = \"40000-40009\"\nadvertise_address = \"198.51.100.7\"\n\
         filtering = \"address\"\nfragments = \"drop\"\nidle = \"1m\"\n",
    )
    .unwrap();
    assert_eq!(config.bind.address, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(config.bind.timeout, Duration::from_secs(30));
    assert_eq!(config.udp.ports, Some(40000..=40009));
    assert_eq!(
        config.udp.filtering,
        socksgate_config::UdpFiltering::Address
    );
    assert_eq!(config.udp.fragments, socksgate_config::Fragments::Drop);
    assert_eq!(parse(&config.to_toml()).unwrap(), config);

    for (text, field) in [
        ("[udp]\nports = \"9-1\"\n", "udp.ports"),
        ("[udp]\nports = \"0\"\n", "udp.ports"),
        ("[udp]\nfiltering = \"cone\"\n", "udp.filtering"),
        (
            "[udp]\nreassembly_timeout = \"1s\"\n",
            "udp.reassembly_timeout",
        ),
        (
            "[bind]\nadvertise_address = \"gateway\"\n",
            "bind.advertise_address",
        ),
    ] {
        assert_rejected(text, field, Some(2));
    }
}

#[test]
fn the_icmp_section_is_off_by_default_and_checked() {
    use socksgate_config::IcmpSocket;
    let default = parse("").unwrap();
    assert!(!default.icmp.enabled);
    assert_eq!(default.icmp.socket, IcmpSocket::Auto);
    let config = parse(
        "[icmp]\nenabled = true\nsocket = \"ping\"\nrate = 3\n\
         [[rule]]\naction = \"deny\"\ncommands = [\"icmp\"]\n",
    )
    .unwrap();
    assert!(config.icmp.enabled);
    assert_eq!(config.icmp.socket, IcmpSocket::Ping);
    assert_eq!(config.icmp.rate, 3);
    let shown = parse(&config.to_toml()).unwrap();
    assert_eq!(shown.icmp, config.icmp);
    assert_eq!(
        shown.policy.rules[0].commands,
        config.policy.rules[0].commands
    );
    for (text, field) in [
        ("[icmp]\nsocket = \"dgram\"\n", "icmp.socket"),
        ("[icmp]\nrate = 0\n", "icmp.rate"),
    ] {
        assert_rejected(text, field, Some(2));
    }
}

#[test]
fn the_process_section_names_who_the_server_becomes() {
    assert_eq!(
        parse("").unwrap().process,
        socksgate_config::Process::default()
    );
    let config = parse("[process]\nuser = \"socksgate\"\ngroup = \"proxy\"\n").unwrap();
    assert_eq!(config.process.user.as_deref(), Some("socksgate"));
    assert_eq!(config.process.group.as_deref(), Some("proxy"));
    assert_eq!(parse(&config.to_toml()).unwrap().process, config.process);
    let error = parse("[process]\nuid = 0\n").unwrap_err();
    assert!(error.to_string().contains("uid"), "{error}");
}

#[test]
fn the_admin_listener_is_off_unless_given_an_address() {
    assert_eq!(parse("").unwrap().admin, None);
    let config = parse("[admin]\naddress = \"127.0.0.1:9180\"\n").unwrap();
    let admin = config.admin.clone().unwrap();
    assert_eq!(admin.address, "127.0.0.1:9180".parse().unwrap());
    assert_eq!(admin.per_user_metrics, None);
    assert_eq!(parse(&config.to_toml()).unwrap().admin, config.admin);
    let error = parse("[admin]\naddress = \"localhost\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("admin.address"));
    let config = parse("[admin]\naddress = \"127.0.0.1:9180\"\nper_user_metrics = 100\n").unwrap();
    assert_eq!(config.admin.clone().unwrap().per_user_metrics, Some(100));
    assert_eq!(parse(&config.to_toml()).unwrap().admin, config.admin);
    let error = parse("[admin]\nper_user_metrics = 100\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("admin.per_user_metrics"));
}

// Issue #21, finding 5: an admin listener off loopback (here on every address) needs a token
// or client certificates; on loopback it may go without. Both survive a round trip.
#[test]
fn finding_5_an_admin_listener_off_loopback_must_authenticate() {
    for address in ["0.0.0.0:9180", "[::]:9180", "192.0.2.1:9180"] {
        let error = parse(&format!("[admin]\naddress = \"{address}\"\n")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("admin.address"), "{address}");
        assert!(error.message.contains("token_file"), "{}", error.message);
    }
    let with_token = "[admin]\naddress = \"0.0.0.0:9180\"\ntoken_file = \"/etc/socksgate/token\"\n";
    let config = parse(with_token).unwrap();
    assert!(config.admin.as_ref().unwrap().authenticates());
    assert_eq!(parse(&config.to_toml()).unwrap().admin, config.admin);
    // TLS alone is encryption, not authentication: it needs a client_ca.
    let tls = "[admin]\naddress = \"0.0.0.0:9180\"\ntls = { cert = \"a.pem\", key = \"a.key\" }\n";
    assert!(parse(tls).is_err());
    let certificates = tls.replace("a.key\"", "a.key\", client_ca = \"ops.pem\"");
    let config = parse(&certificates).unwrap();
    assert_eq!(parse(&config.to_toml()).unwrap().admin, config.admin);
    assert!(parse("[admin]\naddress = \"[::1]:9180\"\n").is_ok());
}

#[test]
fn server_wide_session_limits_per_source_and_user() {
    let config =
        parse("[limits]\nmax_sessions_per_source = 20\nmax_sessions_per_user = 5\n").unwrap();
    assert_eq!(config.limits.max_sessions_per_source, Some(20));
    assert_eq!(config.limits.max_sessions_per_user, Some(5));
    assert_eq!(parse(&config.to_toml()).unwrap().limits, config.limits);
    assert_eq!(parse("").unwrap().limits.max_sessions_per_user, None);
    let error = parse("[limits]\nmax_sessions_per_user = 0\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("limits.max_sessions_per_user"));
}

#[test]
fn server_wide_bandwidth_per_user_and_connection_rate_per_source() {
    let config = parse(
        "[limits]\nbandwidth_per_user = \"2MB/s\"\nconnection_rate_per_source = 20\n\n\
         [[rule]]\naction = \"allow\"\nbandwidth_per_user = \"512KiB/s\"\n",
    )
    .unwrap();
    assert_eq!(config.limits.bandwidth_per_user, Some(2_000_000));
    assert_eq!(config.limits.connection_rate_per_source, Some(20));
    assert_eq!(
        config.policy.rules[0].options.bandwidth_per_user,
        Some(512 * 1024)
    );
    let rendered = parse(&config.to_toml()).unwrap();
    assert_eq!(rendered.limits, config.limits);
    assert_eq!(
        rendered.policy.rules[0].options,
        config.policy.rules[0].options
    );
    let error = parse("[limits]\nbandwidth_per_user = \"fast\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("limits.bandwidth_per_user"));
    assert_eq!(error.position.map(|(line, _)| line), Some(2), "{error}");
    let error = parse("[limits]\nconnection_rate_per_source = 0\n").unwrap_err();
    assert_eq!(
        error.field.as_deref(),
        Some("limits.connection_rate_per_source")
    );
    let error = parse("[[rule]]\naction = \"allow\"\nbandwidth_per_user = \"x\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("rule[0].bandwidth_per_user"));
}

#[test]
fn listeners_behind_load_balancers_name_them() {
    let config = parse(
        "[[listen]]\naddress = \"127.0.0.1:1080\"\nproxy_protocol = [\"10.0.0.0/8\", \"127.0.0.1\"]\n",
    )
    .unwrap();
    let trusted = &config.listeners[0].proxy_protocol;
    assert_eq!(trusted.len(), 2);
    assert!(trusted[0].contains("10.1.2.3".parse().unwrap()));
    assert_eq!(
        parse(&config.to_toml()).unwrap().listeners,
        config.listeners
    );
    let error =
        parse("[[listen]]\naddress = \"127.0.0.1:1080\"\nproxy_protocol = [\"balancer\"]\n")
            .unwrap_err();
    assert_eq!(
        error.field.as_deref(),
        Some("listen[0].proxy_protocol"),
        "{error}"
    );
    assert_eq!(error.position.map(|p| p.0), Some(3), "{error}");
}

#[test]
fn authentication_methods_per_listener() {
    use socksgate_config::AuthBackend;
    use socksgate_proto::Method;
    let config = Config::parse(
        "[auth]\npassword_file = \"users.htpasswd\"\n\
         [[listen]]\naddress = \"0.0.0.0:1080\"\n\
         [[listen]]\naddress = \"127.0.0.1:1081\"\nmethods = [\"password\", \"none\"]\n",
        Path::new("/etc/socksgate/gate.toml"),
    )
    .unwrap();
    // A public listener that requires a password is not an open proxy.
    assert_eq!(config.listeners[0].methods, [Method::PASSWORD]);
    assert!(!config.listeners[0].socks4, "SOCKS4 cannot authenticate");
    assert_eq!(
        config.listeners[1].methods,
        [Method::PASSWORD, Method::NO_AUTH]
    );
    assert!(config.listeners[1].socks4);
    assert_eq!(
        config.auth.backend,
        Some(AuthBackend::PasswordFile {
            path: "/etc/socksgate/users.htpasswd".into(),
            groups: None,
            danger_plaintext_passwords: false,
        })
    );
    assert_eq!(
        Config::parse(&config.to_toml(), Path::new("/elsewhere/x.toml")).unwrap(),
        config
    );
}

#[test]
fn authentication_mistakes_are_named() {
    for (text, field, line) in [
        (
            "[[listen]]\naddress = \"127.0.0.1:1\"\nmethods = [\"password\"]\n",
            "listen[0].methods",
            3,
        ),
        (
            "[[listen]]\naddress = \"127.0.0.1:1\"\nmethods = [\"kerberos\"]\n",
            "listen[0].methods",
            3,
        ),
        (
            "[[listen]]\naddress = \"127.0.0.1:1\"\nmethods = []\n",
            "listen[0].methods",
            3,
        ),
        (
            "[auth]\npam_service = \"x\"\n[[listen]]\naddress = \"127.0.0.1:1\"\nsocks4 = true\n",
            "listen[0].socks4",
            5,
        ),
        (
            "[auth]\npassword_file = \"a\"\npam_service = \"x\"\n",
            "auth.pam_service",
            3,
        ),
    ] {
        assert_rejected(text, field, Some(line));
    }
}

#[test]
fn command_line_listeners_require_passwords_when_a_back_end_is_configured() {
    let config = parse("[auth]\npam_service = \"socksgate\"\n").unwrap();
    let public = ["0.0.0.0:1080".parse().unwrap()];
    let config = config.with_listeners(&public).unwrap();
    assert_eq!(
        config.listeners[0].methods,
        [socksgate_proto::Method::PASSWORD]
    );
}

const POLICY: &str = r#"[policy]
deny_private_destinations = true

[[client_rule]]
from = ["10.0.0.0/8", "192.168.0.0/16"]
action = "allow"

# Office hours for staff, to the web.
[[rule]]
groups = ["staff"]
commands = ["connect"]
to = ["*.example.com", "example.com", "192.0.2.0/24"]
ports = [80, 443, "8000-8100"]
days = ["mon-fri"]
hours = "08:00-18:00"
action = "allow"
log = "debug"
max_sessions_per_user = 20
bandwidth = "10MB/s"

[[rule]]
users = ["backup"]
action = "deny"
"#;

#[test]
fn policy_rules_remember_their_line() {
    use socksgate_policy::{Action, LogLevel};
    let config = parse(POLICY).unwrap();
    let policy = &config.policy;
    assert!(policy.deny_private_destinations);
    assert_eq!(policy.client_rules.len(), 1);
    assert_eq!(policy.client_rules[0].origin.to_string(), "gate.toml:4");
    let office = &policy.rules[0];
    assert_eq!(office.origin.to_string(), "gate.toml:9");
    assert_eq!(office.groups, ["staff"]);
    let single = parse("[[rule]]\ngroups = \"staff\"\naction = \"allow\"\n").unwrap_err();
    assert!(
        single.to_string().contains("expected a sequence"),
        "{single}"
    );
    assert_eq!(office.to.len(), 3);
    assert_eq!(office.ports.len(), 3);
    assert_eq!(office.options.log, LogLevel::Debug);
    assert_eq!(office.options.max_sessions_per_user, Some(20));
    assert_eq!(office.options.bandwidth, Some(10_000_000));
    assert_eq!(policy.rules[1].origin.line, 21);
    assert_eq!(policy.rules[1].action, Action::Deny);
}

#[test]
fn policy_round_trips_through_the_rendered_config() {
    let config = parse(POLICY).unwrap();
    let mut again = parse(&config.to_toml()).unwrap();
    // Only where the rules were written differs.
    for (rule, original) in again.policy.rules.iter_mut().zip(&config.policy.rules) {
        rule.origin = original.origin.clone();
    }
    for (rule, original) in again
        .policy
        .client_rules
        .iter_mut()
        .zip(&config.policy.client_rules)
    {
        rule.origin = original.origin.clone();
    }
    assert_eq!(again, config);
}

#[test]
fn policy_mistakes_are_named() {
    for (text, field, line) in [
        (
            "[[rule]]\nto = [\"*.exa*mple.com\"]\naction = \"allow\"\n",
            "rule[0].to",
            2,
        ),
        (
            "[[rule]]\nports = [\"90-80\"]\naction = \"allow\"\n",
            "rule[0].ports",
            2,
        ),
        (
            "[[rule]]\ndays = [\"someday\"]\naction = \"allow\"\n",
            "rule[0].days",
            2,
        ),
        (
            "[[rule]]\nhours = \"8-18\"\naction = \"allow\"\n",
            "rule[0].hours",
            2,
        ),
        ("[[rule]]\naction = \"permit\"\n", "rule[0].action", 2),
        (
            "[[rule]]\nfrom = [\"10.0.0.0/33\"]\naction = \"allow\"\n",
            "rule[0].from",
            2,
        ),
        (
            "[[rule]]\ncommands = [\"ping\"]\naction = \"allow\"\n",
            "rule[0].commands",
            2,
        ),
        (
            "[[rule]]\nbandwidth = \"fast\"\naction = \"allow\"\n",
            "rule[0].bandwidth",
            2,
        ),
        (
            "[[client_rule]]\nlistener = [\"*:1080\"]\naction = \"deny\"\n",
            "client_rule[0].listener",
            2,
        ),
    ] {
        assert_rejected(text, field, Some(line));
    }
    let error = parse("[[rule]]\nuser = \"x\"\naction = \"allow\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("rule[0].user"), "{error}");
}

#[test]
fn upstream_groups_and_route_rules() {
    use socksgate_config::Selection;
    use socksgate_policy::Action;
    let text = r#"[[upstream]]
name = "corp"
chains = [["socks5://u:p%40ss@10.0.0.1:1080", "socks5h://10.0.0.2"], ["socks4a://10.0.0.3:1081"]]
selection = "round-robin"
max_failures = 2
retry_after = "10s"

[[rule]]
to = ["*.corp.example"]
action = "route"
route = "corp"
"#;
    let config = parse(text).unwrap();
    let group = &config.upstreams[0];
    assert_eq!(
        (
            group.name.as_str(),
            group.chains.len(),
            group.chains[0].len()
        ),
        ("corp", 2, 2)
    );
    assert_eq!(group.selection, Selection::RoundRobin);
    assert_eq!(group.retry_after, Duration::from_secs(10));
    assert_eq!(config.policy.rules[0].action, Action::Route);
    assert_eq!(config.policy.rules[0].route.as_deref(), Some("corp"));
    let mut again = parse(&config.to_toml()).unwrap();
    again.policy.rules[0].origin = config.policy.rules[0].origin.clone();
    assert_eq!(again, config, "passwords survive the round trip");
    assert!(!config.to_toml_redacted().contains("p%40ss"));

    for (text, field) in [
        ("[[rule]]\naction = \"route\"\n", "rule[0].route"),
        (
            "[[rule]]\naction = \"route\"\nroute = \"nowhere\"\n",
            "rule[0].route",
        ),
        (
            "[[rule]]\naction = \"allow\"\nroute = \"x\"\n",
            "rule[0].route",
        ),
        (
            "[[upstream]]\nname = \"x\"\nchains = [[\"ftp://proxy\"]]\n",
            "upstream[0].chains",
        ),
        // An HTTP hop carries TCP only: a route rule for every command is refused.
        (
            "[[upstream]]\nname = \"x\"\nchains = [[\"http://proxy:3128\"]]\n\n\
             [[rule]]\naction = \"route\"\nroute = \"x\"\n",
            "rule[0].route",
        ),
        (
            "[[upstream]]\nname = \"x\"\nchains = []\n",
            "upstream[0].chains",
        ),
    ] {
        assert_rejected(text, field, None);
    }
}

#[test]
fn a_rule_chooses_interface_source_address_and_mark() {
    let config = parse(
        "[[rule]]\naction = \"allow\"\ninterface = \"eth1\"\n\
         source_address = [\"192.0.2.7\", \"2001:db8::7\"]\nmark = 0x62\n\n\
         [[rule]]\naction = \"allow\"\nsource_address = \"192.0.2.8\"\n",
    )
    .unwrap();
    let egress = config.policy.rules[0].egress.clone().unwrap();
    assert_eq!(egress.interface.as_deref(), Some("eth1"));
    assert_eq!(egress.sources.len(), 2);
    assert_eq!(egress.mark, Some(0x62));
    let single = config.policy.rules[1].egress.clone().unwrap();
    assert_eq!(
        &single.sources[..],
        &["192.0.2.8".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(single.interface, None);
    let rendered = parse(&config.to_toml()).unwrap();
    assert_eq!(
        rendered.policy.rules[0].egress,
        config.policy.rules[0].egress
    );
    assert_eq!(
        rendered.policy.rules[1].egress,
        config.policy.rules[1].egress
    );
    assert_eq!(
        parse("[[rule]]\naction = \"allow\"\n")
            .unwrap()
            .policy
            .rules[0]
            .egress,
        None
    );

    let error_of = |rule: &str| {
        parse(&format!("[[rule]]\naction = \"allow\"\n{rule}\n"))
            .unwrap_err()
            .field
            .unwrap()
    };
    assert_eq!(
        error_of("interface = \"a-very-long-interface\""),
        "rule[0].interface"
    );
    assert_eq!(error_of("interface = \"\""), "rule[0].interface");
    assert_eq!(
        error_of("source_address = \"eth0\""),
        "rule[0].source_address"
    );
    assert_eq!(
        error_of("source_address = [\"192.0.2.1\", \"192.0.2.2\"]"),
        "rule[0].source_address"
    );
    assert!(parse("[[rule]]\naction = \"allow\"\nmark = -1\n").is_err());
}

#[test]
fn an_upstream_group_may_send_proxy_headers() {
    let text = "[[upstream]]\nname = \"up\"\nchains = [[\"socks5://127.0.0.1:1081\"]]\n";
    assert!(!parse(text).unwrap().upstreams[0].send_proxy_protocol);
    let config = parse(&format!("{text}send_proxy_protocol = true\n")).unwrap();
    assert!(config.upstreams[0].send_proxy_protocol);
    assert_eq!(
        parse(&config.to_toml()).unwrap().upstreams,
        config.upstreams
    );
}

#[test]
fn logs_go_to_stderr_stdout_or_a_file() {
    use socksgate_config::LogOutput;
    assert_eq!(parse("").unwrap().log.output, LogOutput::Stderr);
    let config = parse("[log]\noutput = \"/var/log/socksgate.log\"\n").unwrap();
    assert_eq!(
        config.log.output,
        LogOutput::File("/var/log/socksgate.log".into())
    );
    assert_eq!(parse(&config.to_toml()).unwrap().log, config.log);
    assert_eq!(
        parse("[log]\noutput = \"stdout\"\n").unwrap().log.output,
        LogOutput::Stdout
    );
    let error = parse("[log]\noutput = \"relative.log\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("log.output"));
}

#[test]
fn a_fleet_needs_redis_and_names_its_limits() {
    use socksgate_config::{FailMode, QuotaPeriod};
    let config = parse(
        "[fleet]\nredis = \"redis://:secret@10.0.0.5:6379/0\"\nnode = \"a\"\n\
         max_sessions_per_user = 2\nquota_per_user = \"10GB\"\nquota_period = \"month\"\n\
         login_failures = 20\non_redis_down = \"closed\"\nquota_on_redis_down = \"open\"\n",
    )
    .unwrap();
    let fleet = config.fleet.clone().unwrap();
    assert_eq!(fleet.max_sessions_per_user, Some(2));
    assert_eq!(fleet.quota.unwrap().bytes, 10_000_000_000);
    assert_eq!(fleet.quota.unwrap().period, QuotaPeriod::Month);
    assert_eq!(
        fleet.logins.unwrap().delay,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(fleet.sessions_on_redis_down, FailMode::Closed);
    assert_eq!(fleet.quota_on_redis_down, FailMode::Open);
    assert_eq!(parse(&config.to_toml()).unwrap().fleet, config.fleet);
    // Shown for people, the password is not.
    let shown = config.to_toml_redacted();
    assert!(
        !shown.contains("secret") && shown.contains("REDACTED@10.0.0.5"),
        "{shown}"
    );
    assert_eq!(parse("").unwrap().fleet, None);
    let error = parse("[fleet]\nmax_sessions_per_user = 2\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("fleet.max_sessions_per_user"));
    let error = parse("[fleet]\nredis = \"10.0.0.5:6379\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("fleet.redis"));
    let error = parse("[fleet]\nredis = \"redis://r\"\non_redis_down = \"maybe\"\n").unwrap_err();
    assert_eq!(error.field.as_deref(), Some("fleet.on_redis_down"));
}

// Issue #21, finding 6: a proxy URL in the wrong place (a flat list of chains) is quoted by
// the parser's error; its password is not.
#[test]
fn a_misplaced_proxy_url_is_quoted_without_its_password() {
    let error =
        parse("[[upstream]]\nname = \"up\"\nchains = [\"socks5h://alice:hunter2@proxy:1080\"]\n")
            .unwrap_err()
            .to_string();
    assert!(!error.contains("hunter2"), "{error}");
    assert!(error.contains("socks5h://***@proxy:1080"), "{error}");
    // A password with a slash in it is hidden whole.
    let error =
        parse("[[upstream]]\nname = \"up\"\nchains = [\"socks5h://alice:hun/ter2@proxy:1080\"]\n")
            .unwrap_err()
            .to_string();
    assert!(!error.contains("hun") && !error.contains("ter2"), "{error}");
}

// Issue #21, finding 10: a listener that is not on loopback refuses private destinations
// (SSRF to 169.254.169.254, 10/8…) unless the file turns the guard off; loopback-only
// configurations and the embedded default keep reaching them.
#[test]
fn public_listeners_refuse_private_destinations_by_default() {
    let public = "[auth]\npassword_file = \"users\"\n\n[[listen]]\naddress = \"0.0.0.0:1080\"\n";
    let config = parse(public).unwrap();
    assert!(config.policy.deny_private_destinations);
    assert!(config
        .to_toml()
        .contains("# deny_private_destinations = true   (unset: a listener is public: off loopback, or behind a balancer)"));
    let turned_off = parse(&format!(
        "{public}\n[policy]\ndeny_private_destinations = false\n"
    ));
    assert!(!turned_off.unwrap().policy.deny_private_destinations);
    let loopback = parse("[[listen]]\naddress = \"127.0.0.1:1080\"\n").unwrap();
    assert!(!loopback.policy.deny_private_destinations);
    // Behind a balancer on the same host, a loopback listener serves the public.
    let balanced =
        parse("[[listen]]\naddress = \"127.0.0.1:1080\"\nproxy_protocol = [\"127.0.0.1/32\"]\n")
            .unwrap();
    assert!(balanced.policy.deny_private_destinations);
    assert!(!Config::default().policy.deny_private_destinations);
    // A listener given on the command line counts as well.
    let overridden = loopback
        .with_listeners(&["[::]:1080".parse().unwrap()])
        .err()
        .map(|error| error.to_string());
    assert!(overridden.is_some_and(|error| error.contains("open proxy")));
    let with_password = parse("[auth]\npassword_file = \"users\"\n").unwrap();
    let overridden = with_password
        .with_listeners(&["[::]:1080".parse().unwrap()])
        .unwrap();
    assert!(overridden.policy.deny_private_destinations);
}

// Issue #21, finding 3: IPv6 sources group by a prefix of 1 to 128 bits (64 by default);
// 0 (every client one source) and 129 are refused, naming the field.
#[test]
fn the_ipv6_source_prefix_is_a_prefix_length() {
    assert_eq!(parse("").unwrap().limits.ipv6_source_prefix, 64);
    for bits in [1, 48, 128] {
        let config = parse(&format!("[limits]\nipv6_source_prefix = {bits}\n")).unwrap();
        assert_eq!(config.limits.ipv6_source_prefix, bits);
        assert_eq!(parse(&config.to_toml()).unwrap().limits, config.limits);
    }
    for bits in [0, 129, 300] {
        let error = parse(&format!("[limits]\nipv6_source_prefix = {bits}\n")).unwrap_err();
        assert_eq!(
            error.field.as_deref(),
            Some("limits.ipv6_source_prefix"),
            "{bits}"
        );
        assert!(error.message.contains("from 1 to 128"), "{}", error.message);
    }
}

/// Issue #30 (review): a typo after a multi-line array of proxy URLs is named with its
/// table's path — the URL above it is no header, and its password never shows.
#[test]
fn a_typo_below_a_chain_of_urls_is_named_without_the_password() {
    let error = parse(
        "[[upstream]]\nname = \"corp\"\nchains = [\n  [\"socks5://alice:s3cret@10.0.0.1:1080\"],\n]\nmax_failure = 3\n",
    )
    .unwrap_err();
    assert_eq!(
        error.field.as_deref(),
        Some("upstream[0].max_failure"),
        "{error}"
    );
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

/// Issue #23: keepalive takes what the kernel's TCP_KEEPIDLE takes (1 to 32,767 s), named
/// with its field when it is not.
#[test]
fn keepalive_is_within_what_the_kernel_takes() {
    for text in ["500ms", "10h"] {
        let error = parse(&format!("[timeouts]\nkeepalive = \"{text}\"\n")).unwrap_err();
        assert_eq!(
            error.field.as_deref(),
            Some("timeouts.keepalive"),
            "{text}: {error}"
        );
    }
    let config = parse("[timeouts]\nkeepalive = \"9h\"\n").unwrap();
    assert_eq!(
        config.timeouts.keepalive,
        Some(Duration::from_secs(9 * 3600))
    );
}
