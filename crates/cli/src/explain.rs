//! `socksgate explain`: the policy's decision for one request, and the rule behind it.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use socksgate_config::Config;
use socksgate_policy::{Action, Evaluation, Located, Moment, Reason, Request, Verdict};
use socksgate_proto::{Address, Command, Host, Method};

use crate::exit;

// What `explain` was asked (a plain comment: a doc comment would become --help text).
#[derive(Debug, clap::Args)]
pub(crate) struct Question {
    /// The configuration file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// The client's address.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub(crate) from: IpAddr,
    /// The listener the client reaches (default: the first configured).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listener: Option<SocketAddr>,
    /// The user name (authenticated, or a SOCKS4 USERID).
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// A group of the user, in addition to those the configured group file or PAM gives
    /// (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// How the user authenticated: none, password or gssapi (default: password with
    /// --user, none without).
    #[arg(long)]
    pub(crate) method: Option<String>,
    /// When: a day and a time, like "wed 09:30" (default: now).
    #[arg(long, value_name = "DAY HH:MM")]
    pub(crate) at: Option<String>,
    /// The address a named target resolves to (default: ask the system resolver, if
    /// the decision depends on it).
    #[arg(long, value_name = "IP")]
    pub(crate) resolve: Vec<IpAddr>,
    /// connect, bind, udp, icmp or http (a forwarded HTTP request).
    pub(crate) command: String,
    /// The target, HOST:PORT.
    pub(crate) target: String,
}

pub(crate) fn run(question: &Question) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match answer(question, &mut out) {
        Ok(Action::Allow | Action::Route) => ExitCode::SUCCESS,
        Ok(Action::Deny) => ExitCode::from(1),
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            exit::code(exit::CONFIG)
        }
    }
}

fn answer(question: &Question, out: &mut impl Write) -> anyhow::Result<Action> {
    // The question first: a mistyped argument is said before anything is decided.
    let command = socksgate_config::parse_command(&question.command).map_err(anyhow::Error::msg)?;
    let target: Address = question
        .target
        .parse()
        .map_err(|error| anyhow::anyhow!("{:?}: {error}", question.target))?;
    let method = match (question.method.as_deref(), &question.user) {
        (Some("none"), _) | (None, None) => Method::NO_AUTH,
        (Some("password"), _) | (None, Some(_)) => Method::PASSWORD,
        (Some("gssapi"), _) => Method::GSSAPI,
        (Some(other), _) => bail!("{other:?}: expected none, password or gssapi"),
    };
    let moment = moment(question.at.as_deref())?;
    let config = Config::load(&question.config)?;
    let groups = groups(&config, question, method, out)?;
    let policy = &config.policy;
    let listener = match question.listener {
        Some(listener) => listener,
        None => config.listeners[0].address,
    };
    let client = policy.decide_client(question.from, listener);
    writeln!(out, "client stage:  {}", describe(&client))?;
    if client.action == Action::Deny {
        return Ok(Action::Deny);
    }
    let request = Request {
        source: question.from,
        listener,
        user: question.user.as_deref(),
        groups: &groups,
        method,
        command,
        host: &target.host,
        port: target.port,
        address: None,
        moment,
    };
    if command == Command::UDP_ASSOCIATE {
        let verdict = policy.decide_association(&request);
        writeln!(out, "association:   {}", describe(&verdict))?;
        if verdict.action == Action::Deny {
            return Ok(Action::Deny);
        }
    }
    match policy.decide(&request) {
        Evaluation::Decided(verdict) => {
            writeln!(out, "request stage: {}", describe(&verdict))?;
            Ok(verdict.action)
        }
        Evaluation::NeedsAddress => {
            let Host::Domain(name) = &target.host else {
                unreachable!("an address destination never needs resolving");
            };
            let addresses = if question.resolve.is_empty() {
                (name.as_str(), target.port)
                    .to_socket_addrs()
                    .with_context(|| format!("resolving {name} (or give --resolve IP)"))?
                    .map(|address| address.ip())
                    .collect()
            } else {
                question.resolve.clone()
            };
            writeln!(
                out,
                "request stage: depends on the address {name} resolves to:"
            )?;
            let mut any_allowed = false;
            for address in addresses {
                let with_address = Request {
                    address: Some(address),
                    ..request.clone()
                };
                if let Evaluation::Decided(verdict) = policy.decide(&with_address) {
                    any_allowed |= verdict.action.serves();
                    writeln!(out, "  {address}: {}", describe(&verdict))?;
                }
            }
            Ok(if any_allowed {
                Action::Allow
            } else {
                Action::Deny
            })
        }
    }
}

/// The user's groups as the server would see them — from the configured back end (the
/// group file, or the system's groups with PAM) — plus those `--group` adds; says where
/// they came from.
fn groups(
    config: &Config,
    question: &Question,
    method: Method,
    out: &mut impl Write,
) -> anyhow::Result<Vec<String>> {
    let mut groups = Vec::new();
    // Only a password login carries the back end's groups (a certificate, a Kerberos
    // principal or a SOCKS4 name carries none), as on the server.
    if let Some(user) = question
        .user
        .as_ref()
        .filter(|_| method == Method::PASSWORD)
    {
        let authenticator =
            crate::authentication::from_config(&config.auth).map_err(|failure| {
                socksgate_config::ConfigError::about_field(
                    &question.config,
                    failure.field,
                    failure.message,
                )
            })?;
        match authenticator.and_then(|backend| backend.groups_of(user)) {
            Some(found) => {
                let names = if found.groups.is_empty() {
                    "none".to_owned()
                } else {
                    found.groups.join(", ")
                };
                writeln!(out, "groups:        {names} — from {}", found.source)?;
                groups = found.groups;
            }
            None => writeln!(
                out,
                "groups:        none known (no password file or PAM back end)"
            )?,
        }
    }
    if !question.groups.is_empty() {
        writeln!(out, "  with --group: {}", question.groups.join(", "))?;
        groups.extend(question.groups.iter().cloned());
    }
    Ok(groups)
}

fn describe<R: Located + MaybeRoute>(verdict: &Verdict<'_, R>) -> String {
    let action = match verdict.action {
        Action::Allow => "allow".to_owned(),
        Action::Deny => "deny".to_owned(),
        Action::Route => match verdict.rule().and_then(|rule| rule.route()) {
            Some(group) => format!("route through {group}"),
            None => "route".to_owned(),
        },
    };
    let why = match verdict.reason {
        Reason::NoRules => "no rules in this stage: everything is allowed".to_owned(),
        Reason::NoMatch => "no rule matches: denied by default".to_owned(),
        Reason::PrivateDestination => "an internal address (deny_private_destinations)".to_owned(),
        reason => reason.to_string(),
    };
    format!("{action} ({why})")
}

/// The upstream group of a rule, for rules that have one.
trait MaybeRoute {
    fn route(&self) -> Option<&str>;
}

impl MaybeRoute for socksgate_policy::Rule {
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }
}

impl MaybeRoute for socksgate_policy::ClientRule {
    fn route(&self) -> Option<&str> {
        None
    }
}

/// "wed 09:30", or now in local time.
fn moment(at: Option<&str>) -> anyhow::Result<Moment> {
    let Some(at) = at else {
        let now = jiff::Zoned::now();
        return Ok(Moment {
            weekday: u8::try_from(now.weekday().to_monday_zero_offset())?,
            minute: u16::try_from(now.hour())? * 60 + u16::try_from(now.minute())?,
        });
    };
    let (day, clock) = at
        .split_once(' ')
        .with_context(|| format!("{at:?}: expected a day and a time, like \"wed 09:30\""))?;
    let days = socksgate_policy::Days::parse([day]).map_err(anyhow::Error::msg)?;
    let weekday = (0..7).find(|&d| days.contains(d)).unwrap_or(0);
    let (hours, minutes) = clock
        .split_once(':')
        .with_context(|| format!("{clock:?}: expected HH:MM"))?;
    let (hours, minutes): (u16, u16) = (hours.parse()?, minutes.parse()?);
    if hours > 23 || minutes > 59 {
        bail!("{clock:?}: expected HH:MM");
    }
    Ok(Moment {
        weekday,
        minute: hours * 60 + minutes,
    })
}
