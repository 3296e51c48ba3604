//! `[policy]`, `[[client_rule]]` and `[[rule]]`: validated into a `socksgate_policy::Policy`,
//! each rule remembering the file and line of its `[[rule]]` header.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use socksgate_policy::{
    Action, Cidr, ClientRule, Days, Egress, HostPattern, Hours, LogLevel, Origin, Policy,
    PortRange, Rule, RuleOptions,
};
use socksgate_proto::{Command, Method};
use toml::Spanned;

use crate::error::{ConfigError, Origin as TextOrigin};
use crate::keyword::{keyword, one_of, word_for};
use crate::raw::{RawAddresses, RawClientRule, RawPolicy, RawPort, RawRule};

pub(crate) fn validate_policy(
    raw: &RawPolicy,
    client_rules: &[Spanned<RawClientRule>],
    rules: &[Spanned<RawRule>],
    origin: &TextOrigin<'_>,
) -> Result<Policy, ConfigError> {
    let file: Arc<str> = Arc::from(origin.file.display().to_string());
    let at = |span: std::ops::Range<usize>| Origin {
        file: file.clone(),
        line: origin.line_column(span.start).0,
    };
    let client_rules = client_rules
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let field = |name: &str| format!("client_rule[{index}].{name}");
            Ok(ClientRule {
                origin: at(raw.span()),
                from: list(&raw.get_ref().from, &field("from"), origin, Cidr::from_str)?,
                listeners: list(
                    &raw.get_ref().listener,
                    &field("listener"),
                    origin,
                    parse_listener,
                )?,
                action: action(&raw.get_ref().action, &field("action"), origin)?,
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    let rules = rules
        .iter()
        .enumerate()
        .map(|(index, raw)| validate_rule(raw.get_ref(), at(raw.span()), index, origin))
        .collect::<Result<_, ConfigError>>()?;
    Ok(Policy {
        client_rules,
        rules,
        deny_private_destinations: raw.deny_private_destinations.unwrap_or(false),
    })
}

fn validate_rule(
    raw: &RawRule,
    rule_origin: Origin,
    index: usize,
    origin: &TextOrigin<'_>,
) -> Result<Rule, ConfigError> {
    let field = |name: &str| format!("rule[{index}].{name}");
    let to_string = |text: &str| Ok::<_, String>(text.to_owned());
    let ports = match &raw.ports {
        None => Vec::new(),
        Some(ports) => ports
            .iter()
            .map(|port| match port.get_ref() {
                RawPort::Number(number) => Ok(PortRange {
                    first: *number,
                    last: *number,
                }),
                RawPort::Text(text) => text.parse().map_err(|message: String| {
                    ConfigError::new(origin, message)
                        .at(origin, Some(port.span()))
                        .field(field("ports"))
                }),
            })
            .collect::<Result<_, _>>()?,
    };
    let days = match &raw.days {
        None => None,
        Some(days) => {
            let items: Vec<&Spanned<String>> = days.iter().collect();
            Some(
                Days::parse(items.iter().map(|d| d.get_ref().as_str())).map_err(|message| {
                    ConfigError::new(origin, message)
                        .at(origin, items.first().map(|d| d.span()))
                        .field(field("days"))
                })?,
            )
        }
    };
    let hours = match &raw.hours {
        None => None,
        Some(hours) => Some(hours.get_ref().parse::<Hours>().map_err(|message| {
            ConfigError::new(origin, message)
                .at(origin, Some(hours.span()))
                .field(field("hours"))
        })?),
    };
    let log = match &raw.log {
        None => LogLevel::Info,
        Some(level) => keyword(level, &field("log"), LOG_LEVELS, origin)?,
    };
    let bandwidth = rate_field(raw.bandwidth.as_ref(), &field("bandwidth"), origin)?;
    let bandwidth_per_user = rate_field(
        raw.bandwidth_per_user.as_ref(),
        &field("bandwidth_per_user"),
        origin,
    )?;
    Ok(Rule {
        origin: rule_origin,
        from: list(&raw.from, &field("from"), origin, Cidr::from_str)?,
        listeners: list(&raw.listener, &field("listener"), origin, parse_listener)?,
        users: list(&raw.users, &field("users"), origin, to_string)?,
        groups: list(&raw.groups, &field("groups"), origin, to_string)?,
        methods: list(&raw.methods, &field("methods"), origin, parse_method)?,
        commands: list(&raw.commands, &field("commands"), origin, parse_command)?,
        to: list(&raw.to, &field("to"), origin, HostPattern::from_str)?,
        ports,
        days,
        hours,
        action: action(&raw.action, &field("action"), origin)?,
        route: raw
            .route
            .as_ref()
            .map(|route| Arc::from(route.get_ref().as_str())),
        options: RuleOptions {
            log,
            max_sessions_per_user: raw.max_sessions_per_user,
            max_sessions_per_source: raw.max_sessions_per_source,
            bandwidth,
            bandwidth_per_user,
        },
        egress: egress(raw, &field, origin)?,
    })
}

/// Parses every item of an optional list; an error points at the item.
pub(crate) fn list<T, E: ToString>(
    items: &Option<Vec<Spanned<String>>>,
    field: &str,
    origin: &TextOrigin<'_>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, ConfigError> {
    let Some(items) = items else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|item| {
            parse(item.get_ref()).map_err(|error| {
                ConfigError::new(origin, error.to_string())
                    .at(origin, Some(item.span()))
                    .field(field)
            })
        })
        .collect()
}

/// A rule's `action`.
const ACTIONS: &[(&str, Action)] = &[
    ("allow", Action::Allow),
    ("deny", Action::Deny),
    ("route", Action::Route),
];

/// A rule's `log` level.
const LOG_LEVELS: &[(&str, LogLevel)] = &[
    ("off", LogLevel::Off),
    ("debug", LogLevel::Debug),
    ("info", LogLevel::Info),
    ("warn", LogLevel::Warn),
];

/// The SOCKS5 methods, as listeners and rules name them.
pub(crate) const METHODS: &[(&str, Method)] = &[
    ("none", Method::NO_AUTH),
    ("password", Method::PASSWORD),
    ("gssapi", Method::GSSAPI),
];

/// The commands, as rules (and `socksgate explain`) name them.
const COMMANDS: &[(&str, Command)] = &[
    ("connect", Command::CONNECT),
    ("bind", Command::BIND),
    ("udp", Command::UDP_ASSOCIATE),
    ("icmp", Command::ICMP_ECHO),
    ("http", Command::HTTP_REQUEST),
];

fn action(
    value: &Spanned<String>,
    field: &str,
    origin: &TextOrigin<'_>,
) -> Result<Action, ConfigError> {
    keyword(value, field, ACTIONS, origin)
}

fn parse_listener(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?}: expected a listener address like \"0.0.0.0:1080\""))
}

fn parse_method(text: &str) -> Result<Method, String> {
    one_of(text, METHODS).map_err(|expected| format!("{text:?}: {expected}"))
}

/// A command as rules (and `socksgate explain`) name it: connect, bind, udp, icmp, or http
/// (an HTTP request forwarded to an `http://` target; HTTP's CONNECT is `connect`).
pub fn parse_command(text: &str) -> Result<Command, String> {
    one_of(text, COMMANDS).map_err(|expected| format!("{text:?}: {expected}"))
}

/// The name rules use for a command (the inverse of [`parse_command`]).
/// A code that is none of the five is named `connect`.
pub fn command_name(command: Command) -> &'static str {
    word_for(&command, COMMANDS).unwrap_or("connect")
}

/// A rule's `interface`, `source_address` and `mark`, when it has any.
fn egress(
    raw: &RawRule,
    field: &dyn Fn(&str) -> String,
    origin: &TextOrigin<'_>,
) -> Result<Option<Arc<Egress>>, ConfigError> {
    let interface = match &raw.interface {
        None => None,
        Some(name) => {
            let text = name.get_ref();
            // IFNAMSIZ is 16 with the terminating NUL.
            let valid = !text.is_empty()
                && text.len() < 16
                && !text.contains(|c: char| c == '/' || c.is_whitespace() || c == '\0');
            if !valid {
                return Err(ConfigError::new(
                    origin,
                    "expected an interface name like \"eth1\" (at most 15 characters)",
                )
                .at(origin, Some(name.span()))
                .field(field("interface")));
            }
            Some(Arc::from(text.as_str()))
        }
    };
    let mut sources: Vec<IpAddr> = Vec::new();
    if let Some(addresses) = &raw.source_address {
        let texts = match addresses.get_ref() {
            RawAddresses::One(text) => std::slice::from_ref(text),
            RawAddresses::Many(texts) => texts.as_slice(),
        };
        let wrong = |message: &str| {
            ConfigError::new(origin, message)
                .at(origin, Some(addresses.span()))
                .field(field("source_address"))
        };
        for text in texts {
            let address: IpAddr = text
                .parse()
                .map_err(|_| wrong(&format!("{text:?} is not an IP address")))?;
            if sources
                .iter()
                .any(|other| other.is_ipv4() == address.is_ipv4())
            {
                return Err(wrong("at most one source address per address family"));
            }
            sources.push(address);
        }
    }
    let mark = raw.mark.as_ref().map(|mark| *mark.get_ref());
    if interface.is_none() && sources.is_empty() && mark.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Egress {
        interface,
        sources: sources.into(),
        mark,
    })))
}

/// An optional rate field (`bandwidth`, …); an error names the field and points at the value.
pub(crate) fn rate_field(
    raw: Option<&Spanned<String>>,
    field: &str,
    origin: &TextOrigin<'_>,
) -> Result<Option<u64>, ConfigError> {
    let Some(text) = raw else {
        return Ok(None);
    };
    let rate = parse_bandwidth(text.get_ref()).ok_or_else(|| {
        ConfigError::new(
            origin,
            "expected a rate like \"10MB/s\", \"512KiB/s\" or \"100mbit\"",
        )
        .at(origin, Some(text.span()))
        .field(field)
    })?;
    Ok(Some(rate))
}

/// `10MB/s`, `512KiB/s`, `100mbit`, `1000` (bytes per second).
pub(crate) fn parse_bandwidth(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_suffix("/s").unwrap_or(text);
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let bytes_per_unit: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kbit" => 125,
        "mbit" => 125_000,
        "gbit" => 125_000_000,
        _ => return None,
    };
    number.checked_mul(bytes_per_unit).filter(|&rate| rate > 0)
}

/// Every `route` rule names a group that exists, and only `route` rules name one; a group
/// with an HTTP proxy in a chain carries only TCP, so its rules list only TCP commands.
pub(crate) fn check_routes(
    policy: &Policy,
    raw: &[Spanned<RawRule>],
    upstreams: &[crate::model::UpstreamGroup],
    origin: &TextOrigin<'_>,
) -> Result<(), ConfigError> {
    for (index, (rule, raw)) in policy.rules.iter().zip(raw).enumerate() {
        let raw = raw.get_ref();
        let field = format!("rule[{index}].route");
        match (rule.action, &raw.route) {
            (Action::Route, None) => {
                return Err(
                    ConfigError::new(origin, "a route rule needs route = \"GROUP\"")
                        .at(origin, Some(raw.action.span()))
                        .field(field),
                )
            }
            (Action::Route, Some(name)) if !upstreams.iter().any(|g| g.name == *name.get_ref()) => {
                return Err(ConfigError::new(
                    origin,
                    format!("no [[upstream]] is named {:?}", name.get_ref()),
                )
                .at(origin, Some(name.span()))
                .field(field))
            }
            (Action::Route, Some(name)) => {
                let Some(group) = upstreams.iter().find(|g| g.name == *name.get_ref()) else {
                    continue;
                };
                let beyond_tcp = [
                    (Command::UDP_ASSOCIATE, "UDP"),
                    (Command::BIND, "BIND"),
                    (Command::ICMP_ECHO, "ICMP"),
                ];
                let asked = beyond_tcp.iter().find(|(command, _)| {
                    rule.commands.is_empty() || rule.commands.contains(command)
                });
                let refusal = asked.and_then(|(_, what)| {
                    group
                        .chains
                        .iter()
                        .find_map(|chain| socksgate_proto::hop::beyond_tcp_refusal(chain, what))
                });
                if let Some(why) = refusal {
                    return Err(ConfigError::new(
                        origin,
                        format!(
                            "upstream {:?}: {why}; give this rule commands = [\"connect\"] \
                             (and \"http\")",
                            group.name
                        ),
                    )
                    .at(origin, Some(name.span()))
                    .field(field));
                }
            }
            (Action::Allow | Action::Deny, Some(name)) => {
                return Err(
                    ConfigError::new(origin, "route = … needs action = \"route\"")
                        .at(origin, Some(name.span()))
                        .field(field),
                )
            }
            _ => {}
        }
    }
    Ok(())
}
