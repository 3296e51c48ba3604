//! socksgate's policy: rules are data, and [`Policy::decide`] is a pure function of a
//! request and the time (passed in), returning the decision and the rule behind it.
//!
//! Two stages, each evaluated first match wins, in file order:
//!
//! * **client rules**, when a connection is accepted: source address and listener;
//! * **request rules**, once the client has authenticated and asked: source, listener, user,
//!   groups, authentication method, command, destination (address block, exact name or
//!   `*.suffix`), port, day of the week and time of day.
//!
//! A stage with no rules allows everything (the embedded default); a stage with rules denies
//! what none of them allows. `deny_private_destinations` refuses loopback, private,
//! link-local (cloud metadata) and other internal addresses whatever the rules say — checked
//! on the address a name resolves to, so DNS cannot be used to get around it. A name a
//! `route` rule sends upstream is the upstream's to resolve: it is not resolved here (only a
//! private address given as such, or a local name such as `localhost`, is refused).
//!
//! A destination given as a name can match a name pattern at once, but an address block
//! only once the name is resolved: when evaluation reaches such a rule (or must apply
//! `deny_private_destinations`) without the address, it answers
//! [`Evaluation::NeedsAddress`], and the caller resolves and asks again for each address.
//! Names are thus only resolved when the decision depends on their address.

mod matchers;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use matchers::{is_local_name, numeric_address};
pub use matchers::{
    is_private_destination, source_group, Cidr, Days, HostPattern, Hours, PortRange,
};
use socksgate_proto::{Command, Host, Method};

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The configuration file.
    pub file: Arc<str>,
    /// The 1-based line where the rule starts.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// What a rule does with what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Serve the request.
    Allow,
    /// Refuse it (SOCKS5 reply 0x02, SOCKS4 0x5B).
    Deny,
    /// Serve it through the rule's upstream group ([`Rule::route`]).
    Route,
}

impl Action {
    /// Whether the request is served (directly or through upstreams).
    pub fn serves(self) -> bool {
        self != Self::Deny
    }
}

/// The level of a matched request's access-log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogLevel {
    /// Not logged.
    Off,
    /// Logged at debug level.
    Debug,
    /// Logged at info level (the default).
    #[default]
    Info,
    /// Logged at warn level.
    Warn,
}

/// Per-rule options for the requests a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleOptions {
    /// The access-log level.
    pub log: LogLevel,
    /// Sessions one user may hold at once under this rule.
    pub max_sessions_per_user: Option<u32>,
    /// Sessions one source address may hold at once under this rule.
    pub max_sessions_per_source: Option<u32>,
    /// Bytes per second each way, per session.
    pub bandwidth: Option<u64>,
    /// Bytes per second each way, shared by all of one user's sessions under this rule.
    pub bandwidth_per_user: Option<u64>,
}

/// A client (connection-stage) rule. Empty lists match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRule {
    /// Where it was written.
    pub origin: Origin,
    /// Source address blocks.
    pub from: Vec<Cidr>,
    /// Listener addresses.
    pub listeners: Vec<SocketAddr>,
    /// Allow or deny.
    pub action: Action,
}

/// A request rule. Empty lists (and `None`) match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where it was written.
    pub origin: Origin,
    /// Source address blocks.
    pub from: Vec<Cidr>,
    /// Listener addresses.
    pub listeners: Vec<SocketAddr>,
    /// User names (authenticated, or the SOCKS4 USERID).
    pub users: Vec<String>,
    /// Groups; the user must belong to one of them.
    pub groups: Vec<String>,
    /// Authentication methods.
    pub methods: Vec<Method>,
    /// Commands.
    pub commands: Vec<Command>,
    /// Destinations.
    pub to: Vec<HostPattern>,
    /// Destination ports.
    pub ports: Vec<PortRange>,
    /// Days of the week (local time of the caller's clock).
    pub days: Option<Days>,
    /// Times of day.
    pub hours: Option<Hours>,
    /// Allow, deny or route.
    pub action: Action,
    /// The upstream group for [`Action::Route`].
    pub route: Option<Arc<str>>,
    /// Options for what it allows.
    pub options: RuleOptions,
    /// How the connections it allows leave the host, when the rule says.
    pub egress: Option<Arc<Egress>>,
}

/// How a rule's outgoing connections leave the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Egress {
    /// The interface (`SO_BINDTODEVICE`).
    pub interface: Option<Arc<str>>,
    /// Source addresses, at most one per family.
    pub sources: Arc<[std::net::IpAddr]>,
    /// The firewall mark (`SO_MARK`).
    pub mark: Option<u32>,
}

/// A whole policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Connection-stage rules.
    pub client_rules: Vec<ClientRule>,
    /// Request-stage rules.
    pub rules: Vec<Rule>,
    /// Refuse internal destinations whatever the rules say.
    pub deny_private_destinations: bool,
}

/// A moment in the caller's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    /// Minutes since midnight, 0–1439.
    pub minute: u16,
}

/// Everything a request rule can look at.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The client's address.
    pub source: IpAddr,
    /// The listener the client reached.
    pub listener: SocketAddr,
    /// The user name, if any.
    pub user: Option<&'a str>,
    /// The user's groups.
    pub groups: &'a [String],
    /// How the client authenticated ([`Method::NO_AUTH`] for none and SOCKS4).
    pub method: Method,
    /// The command.
    pub command: Command,
    /// The destination host as requested.
    pub host: &'a Host,
    /// The destination port.
    pub port: u16,
    /// The address a named host resolved to, when known.
    pub address: Option<IpAddr>,
    /// When.
    pub moment: Moment,
}

impl Request<'_> {
    /// The destination's address: the requested IP, the resolved one, or the address a
    /// name spells (`"10.0.0.5"`, or `"127.1"` as `inet_aton` reads it: what a resolver, here
    /// or upstream, makes of it without asking anyone).
    fn destination_ip(&self) -> Option<IpAddr> {
        match self.host {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(name) => self.address.or_else(|| numeric_address(name.as_str())),
        }
    }
}

/// Why a decision was made.
#[derive(Debug, PartialEq, Eq)]
pub enum Reason<'p, R> {
    /// This rule matched.
    Rule(&'p R),
    /// The stage has no rules: everything is allowed.
    NoRules,
    /// No rule matched: denied.
    NoMatch,
    /// The destination is internal and `deny_private_destinations` is on.
    PrivateDestination,
}

/// A decision and its reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict<'p, R> {
    /// Allow or deny.
    pub action: Action,
    /// Why.
    pub reason: Reason<'p, R>,
}

/// A rule that knows where it was written.
pub trait Located {
    /// Where the rule was written.
    fn origin(&self) -> &Origin;
}

impl Located for Rule {
    fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl Located for ClientRule {
    fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl<R: Located> fmt::Display for Reason<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rule(rule) => write!(f, "rule {}", rule.origin()),
            Self::NoRules => f.write_str("no rules"),
            Self::NoMatch => f.write_str("no rule matched"),
            Self::PrivateDestination => f.write_str("private destination"),
        }
    }
}

// Copy without requiring `R: Copy`: only a reference to the rule is held.
impl<R> Clone for Reason<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Reason<'_, R> {}
impl<R> Clone for Verdict<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Verdict<'_, R> {}

impl<'p, R> Verdict<'p, R> {
    /// No rules at all: everything is allowed.
    const NO_RULES: Self = Self {
        action: Action::Allow,
        reason: Reason::NoRules,
    };

    /// The first matching rule decides; when none matched, the request is denied.
    fn first_match(rule: Option<&'p R>, action_of: fn(&R) -> Action) -> Self {
        match rule {
            Some(rule) => Self {
                action: action_of(rule),
                reason: Reason::Rule(rule),
            },
            None => Self {
                action: Action::Deny,
                reason: Reason::NoMatch,
            },
        }
    }

    /// The rule that decided, if one did.
    pub fn rule(&self) -> Option<&'p R> {
        match self.reason {
            Reason::Rule(rule) => Some(rule),
            _ => None,
        }
    }
}

/// The outcome of evaluating a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation<'p> {
    /// Decided.
    Decided(Verdict<'p, Rule>),
    /// The decision depends on the address the destination name resolves to: resolve it and
    /// evaluate again with [`Request::address`] set, for each address.
    NeedsAddress,
}

/// Three-valued matching: a name-only request cannot yet say whether an address block holds
/// its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    Unknown,
}

impl Match {
    fn from_bool(value: bool) -> Self {
        if value {
            Self::Yes
        } else {
            Self::No
        }
    }

    fn and(self, other: impl FnOnce() -> Match) -> Match {
        match self {
            Self::No => Self::No,
            Self::Yes => other(),
            Self::Unknown => match other() {
                Self::No => Self::No,
                _ => Self::Unknown,
            },
        }
    }
}

/// An empty list matches anything; otherwise some item must match.
fn any_of<T>(items: &[T], matches: impl Fn(&T) -> bool) -> bool {
    items.is_empty() || items.iter().any(matches)
}

impl ClientRule {
    /// Whether the rule matches a connection from `source` on `listener`.
    pub fn matches(&self, source: IpAddr, listener: SocketAddr) -> bool {
        any_of(&self.from, |block| block.contains(source))
            && any_of(&self.listeners, |l| *l == listener)
    }
}

/// Which conditions a decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// All of them.
    Everything,
    /// All but the destination and port: a UDP association is judged before it has any
    /// destination; each datagram is judged on its own destination later.
    NoDestination,
}

impl Rule {
    fn matches(&self, request: &Request<'_>, scope: Scope) -> Match {
        let simple = any_of(&self.from, |block| block.contains(request.source))
            && any_of(&self.listeners, |l| *l == request.listener)
            && any_of(&self.users, |user| Some(user.as_str()) == request.user)
            && any_of(&self.groups, |group| request.groups.contains(group))
            && any_of(&self.methods, |method| *method == request.method)
            && any_of(&self.commands, |command| {
                command_covers(*command, request.command)
            })
            && (scope == Scope::NoDestination
                || any_of(&self.ports, |range| range.contains(request.port)))
            && self
                .days
                .is_none_or(|days| days.contains(request.moment.weekday))
            && self
                .hours
                .is_none_or(|hours| hours.contains(request.moment.minute));
        match scope {
            Scope::Everything => Match::from_bool(simple).and(|| self.matches_destination(request)),
            Scope::NoDestination => Match::from_bool(simple),
        }
    }

    fn matches_destination(&self, request: &Request<'_>) -> Match {
        if self.to.is_empty() {
            return Match::Yes;
        }
        let mut unknown = false;
        for pattern in &self.to {
            let found = match (pattern, request.host) {
                (HostPattern::Block(block), _) => match request.destination_ip() {
                    Some(ip) => Match::from_bool(block.contains(ip)),
                    None => Match::Unknown,
                },
                (_, Host::Domain(name)) => Match::from_bool(pattern.matches_name(name.as_str())),
                (_, Host::Ip(_)) => Match::No,
            };
            match found {
                Match::Yes => return Match::Yes,
                Match::Unknown => unknown = true,
                Match::No => {}
            }
        }
        if unknown {
            Match::Unknown
        } else {
            Match::No
        }
    }

    /// Whether every request this rule matches is also matched by `earlier` (which then
    /// makes this rule unreachable). Conservative: `false` when in doubt.
    pub fn is_shadowed_by(&self, earlier: &Rule) -> bool {
        fn covered<T>(earlier: &[T], later: &[T], covers: impl Fn(&T, &T) -> bool) -> bool {
            earlier.is_empty()
                || (!later.is_empty() && later.iter().all(|l| earlier.iter().any(|e| covers(e, l))))
        }
        fn optional<T>(
            earlier: Option<T>,
            later: Option<T>,
            covers: impl Fn(&T, &T) -> bool,
        ) -> bool {
            match (earlier, later) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(e), Some(l)) => covers(&e, &l),
            }
        }
        covered(&earlier.from, &self.from, Cidr::covers)
            && covered(&earlier.listeners, &self.listeners, PartialEq::eq)
            && covered(&earlier.users, &self.users, PartialEq::eq)
            && covered(&earlier.groups, &self.groups, PartialEq::eq)
            && covered(&earlier.methods, &self.methods, PartialEq::eq)
            && covered(&earlier.commands, &self.commands, |e, l| {
                command_covers(*e, *l)
            })
            && covered(&earlier.to, &self.to, HostPattern::covers)
            && covered(&earlier.ports, &self.ports, PortRange::covers)
            && optional(earlier.days, self.days, Days::covers)
            && optional(earlier.hours, self.hours, Hours::covers)
    }
}

impl Policy {
    /// The connection stage: may `source` use `listener` at all?
    pub fn decide_client(&self, source: IpAddr, listener: SocketAddr) -> Verdict<'_, ClientRule> {
        if self.client_rules.is_empty() {
            return Verdict::NO_RULES;
        }
        let first = self
            .client_rules
            .iter()
            .find(|rule| rule.matches(source, listener));
        Verdict::first_match(first, |rule| rule.action)
    }

    /// The request stage.
    pub fn decide(&self, request: &Request<'_>) -> Evaluation<'_> {
        let verdict = if self.rules.is_empty() {
            Verdict::NO_RULES
        } else {
            let mut first = None;
            for rule in &self.rules {
                match rule.matches(request, Scope::Everything) {
                    Match::Yes => {
                        first = Some(rule);
                        break;
                    }
                    Match::Unknown => return Evaluation::NeedsAddress,
                    Match::No => {}
                }
            }
            Verdict::first_match(first, |rule| rule.action)
        };
        if self.deny_private_destinations && verdict.action.serves() {
            // BIND's destination is the peer it waits for, and 0.0.0.0 there means "any":
            // nothing is reached on the client's behalf.
            let any_peer =
                |ip: std::net::IpAddr| request.command == Command::BIND && ip.is_unspecified();
            match request.destination_ip() {
                // A private address is refused, routed or not: an upstream on this host or
                // beside it would reach our own network.
                Some(ip) if is_private_destination(ip) && !any_peer(ip) => {
                    return Evaluation::Decided(Verdict {
                        action: Action::Deny,
                        reason: Reason::PrivateDestination,
                    });
                }
                // An allowed name still has to prove its address is not internal. A routed
                // name is the upstream's to resolve (a `.onion` name, say): resolving it here
                // would leak the lookup, or fail — but `localhost` needs no lookup.
                None if verdict.action == Action::Allow => return Evaluation::NeedsAddress,
                None if is_local_name(request.host) => {
                    return Evaluation::Decided(Verdict {
                        action: Action::Deny,
                        reason: Reason::PrivateDestination,
                    });
                }
                _ => {}
            }
        }
        Evaluation::Decided(verdict)
    }

    /// Whether a UDP association may be opened at all: the rules are evaluated without their
    /// destination and port conditions (the first rule that could apply decides); each
    /// datagram is then judged by [`Policy::decide`] with its own destination.
    pub fn decide_association(&self, request: &Request<'_>) -> Verdict<'_, Rule> {
        if self.rules.is_empty() {
            return Verdict::NO_RULES;
        }
        let first = self.rules.iter().find(|rule| {
            rule.matches(request, Scope::NoDestination) == Match::Yes
                && (rule.action.serves() || (rule.to.is_empty() && rule.ports.is_empty()))
        });
        Verdict::first_match(first, |rule| rule.action)
    }

    /// Whether any rule or switch looks at destinations (if not, datagrams need no check).
    pub fn judges_destinations(&self) -> bool {
        self.deny_private_destinations || !self.rules.is_empty()
    }

    /// Pairs (rule, one of its destination blocks) where an `allow` or `route` rule names
    /// private space the guard refuses whatever the rule says, for `socksgate check`.
    pub fn guarded_rules(&self) -> Vec<(&Rule, &Cidr)> {
        if !self.deny_private_destinations {
            return Vec::new();
        }
        self.rules
            .iter()
            .filter(|rule| rule.action.serves())
            .filter_map(|rule| {
                rule.to.iter().find_map(|pattern| match pattern {
                    HostPattern::Block(block) if block.is_private() => Some((rule, block)),
                    _ => None,
                })
            })
            .collect()
    }

    /// Pairs (a rule that routes UDP, an earlier rule that allows UDP): an association the
    /// earlier one grants goes out directly and drops the datagrams the later one would
    /// route, for `socksgate check`.
    pub fn udp_routes_behind_allows(&self) -> Vec<(&Rule, &Rule)> {
        let udp = |rule: &Rule| {
            rule.commands.is_empty() || rule.commands.contains(&Command::UDP_ASSOCIATE)
        };
        let mut found = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.action != Action::Route || !udp(rule) {
                continue;
            }
            if let Some(earlier) = self.rules[..index]
                .iter()
                .find(|earlier| earlier.action == Action::Allow && udp(earlier))
            {
                found.push((rule, earlier));
            }
        }
        found
    }

    /// Pairs (unreachable rule, the earlier rule that shadows it), for `socksgate check`.
    pub fn shadowed_rules(&self) -> Vec<(&Rule, &Rule)> {
        let mut shadowed = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if let Some(earlier) = self.rules[..index].iter().find(|e| rule.is_shadowed_by(e)) {
                shadowed.push((rule, earlier));
            }
        }
        shadowed
    }
}

/// Whether a rule's command matches a request's: the same command, or `connect` for an
/// HTTP request forwarded to its target — the proxy connects there on the client's behalf
/// all the same, so a rule about `connect` (a deny for a network, say) holds for HTTP
/// clients too, and `http` alone names forwarded requests only.
pub fn command_covers(rule: Command, request: Command) -> bool {
    rule == request || (rule == Command::CONNECT && request == Command::HTTP_REQUEST)
}
