//! The policy, applied to a session's [`Subject`]: on each request (request rules, resolving
//! a name only when the decision depends on its address), then the session limits, server-wide
//! and the deciding rule's, and the fleet's; and on each UDP datagram. It decides and answers
//! nothing: the session sends the reply a decision calls for.

use std::net::{IpAddr, SocketAddr};

use socksgate_policy::{Action, Evaluation, Moment, Reason, Request, Rule, RuleOptions, Verdict};
use socksgate_proto::server::Request as SocksRequest;
use socksgate_proto::{Command, Host};

use crate::failure::Failure;
use crate::fleet::Admission;
use crate::limits::{LimitScope, LimitSlot, SERVER_SCOPE};
use crate::relay::Caps;
use crate::subject::Subject;
use crate::Shared;
use socksgate_client::Outbound;

/// What the policy granted a request.
#[derive(Debug)]
pub(crate) struct Grant {
    /// The options of the rule that allowed it (defaults when no rule did).
    pub(crate) options: RuleOptions,
    /// The addresses of a named destination that the policy checked and allowed; `None`
    /// when it did not need them (the command resolves as usual).
    pub(crate) addresses: Option<Vec<SocketAddr>>,
    /// The upstream group to go through, for a `route` rule.
    pub(crate) route: Option<std::sync::Arc<str>>,
    /// Holds the rule's session-limit slots for as long as the session lives.
    pub(crate) _slots: Vec<LimitSlot>,
    /// The bandwidth caps its relay obeys.
    pub(crate) caps: Caps,
    /// How its connections leave the host (the rule's interface, source address, mark).
    pub(crate) outbound: Outbound,
}

/// The current moment in the server's local time zone.
pub(crate) fn local_moment() -> Moment {
    let now = jiff::Zoned::now();
    Moment {
        weekday: u8::try_from(now.weekday().to_monday_zero_offset()).unwrap_or(0),
        minute: u16::try_from(now.hour()).unwrap_or(0) * 60
            + u16::try_from(now.minute()).unwrap_or(0),
    }
}

/// What the policy said of a request.
pub(crate) struct Decision {
    /// The rule that decided (`file:line`), or why none did; `None` when nothing could be
    /// decided (the name to judge did not resolve).
    pub(crate) rule: Option<String>,
    /// The grant, or why not (the session answers it: `reply::for_refusal`).
    pub(crate) result: Result<Grant, Failure>,
}

/// Applies the request rules, then the session limits, to `subject`'s `request`.
pub(crate) async fn authorize(
    shared: &Shared,
    subject: &Subject,
    request: &SocksRequest,
) -> Decision {
    let policy = &shared.policy;
    let target = &request.target;
    let asked = subject.request(request.command, &target.host, target.port, (shared.clock)());
    let decided = if request.command == Command::UDP_ASSOCIATE {
        Ok((policy.decide_association(&asked), None))
    } else {
        match policy.decide(&asked) {
            Evaluation::Decided(verdict) => Ok((verdict, None)),
            Evaluation::NeedsAddress => {
                decide_by_address(shared, &asked, &target.host, target.port).await
            }
        }
    };
    let (verdict, addresses) = match decided {
        Ok(decided) => decided,
        Err(failure) => {
            return Decision {
                rule: None,
                result: Err(failure),
            }
        }
    };
    let rule_name = verdict.reason.to_string();
    let result = if verdict.action == Action::Deny {
        Err(Failure::Denied(rule_name.clone()))
    } else {
        grant(shared, &asked, verdict, addresses, &rule_name).await
    };
    Decision {
        rule: Some(rule_name),
        result,
    }
}

/// Takes the session-limit slots an allowed request needs and makes its grant.
async fn grant(
    shared: &Shared,
    request: &Request<'_>,
    verdict: Verdict<'_, Rule>,
    addresses: Option<Vec<SocketAddr>>,
    rule_name: &str,
) -> Result<Grant, Failure> {
    // Server-wide limits first, then the deciding rule's own.
    let caps = &shared.session_caps;
    let scopes = [
        Some(LimitScope {
            id: SERVER_SCOPE,
            per_user: caps.max_sessions_per_user,
            per_source: caps.max_sessions_per_source,
        }),
        verdict.rule().map(|rule| LimitScope {
            // A rule is identified by where it was written: unique within one configuration.
            id: rule.origin.line,
            per_user: rule.options.max_sessions_per_user,
            per_source: rule.options.max_sessions_per_source,
        }),
    ];
    // Limits count sources as groups (an IPv6 /64); rules judge the address itself.
    let source = shared.source_group(request.source);
    let mut slots = match shared
        .limits
        .sessions
        .acquire(&scopes, source, request.user)
    {
        Ok(slots) => slots,
        Err(limit) => return Err(Failure::Denied(format!("{rule_name}: {limit}"))),
    };
    // Then the fleet's: the byte quota and the session limits.
    if let Some(fleet) = &shared.fleet {
        let refused = match fleet.admit(request.user, source).await {
            Admission::Admitted(slot) => {
                slots.extend(slot.map(LimitSlot::Fleet));
                None
            }
            Admission::Refused(limit) => Some(limit),
        };
        if let Some(limit) = refused {
            return Err(Failure::Denied(format!("{rule_name}: {limit}")));
        }
    }
    let caps = bandwidth_caps(shared, verdict.rule(), request.user);
    let Some(rule) = verdict.rule() else {
        return Ok(Grant {
            options: RuleOptions::default(),
            addresses,
            route: None,
            _slots: slots,
            caps,
            outbound: Outbound::default(),
        });
    };
    Ok(Grant {
        options: rule.options,
        // A routed name is resolved by the upstream, not here.
        addresses: if rule.route.is_some() {
            None
        } else {
            addresses
        },
        route: rule.route.clone(),
        _slots: slots,
        caps,
        outbound: rule
            .egress
            .as_deref()
            .map_or_else(Outbound::default, |egress| Outbound {
                mark: egress.mark,
                interface: egress.interface.clone(),
                sources: egress.sources.clone(),
            }),
    })
}

/// The session's own cap (the rule's `bandwidth`), and the caps it shares with the user's
/// other sessions: server-wide and the rule's `bandwidth_per_user`.
fn bandwidth_caps(shared: &Shared, rule: Option<&Rule>, user: Option<&str>) -> Caps {
    let mut caps = Caps {
        session: rule.and_then(|rule| rule.options.bandwidth),
        shared: Vec::new(),
    };
    let Some(user) = user else {
        return caps;
    };
    let server = (SERVER_SCOPE, shared.session_caps.bandwidth_per_user);
    let rule = rule.map(|rule| (rule.origin.line, rule.options.bandwidth_per_user));
    for (scope, rate) in std::iter::once(server).chain(rule) {
        if let Some(rate) = rate {
            caps.shared
                .push(shared.limits.bandwidth.get(scope, user, rate));
        }
    }
    caps
}

/// Resolves the destination name and decides for each address; the allowed ones are kept.
async fn decide_by_address<'p>(
    shared: &'p Shared,
    request: &Request<'_>,
    host: &Host,
    port: u16,
) -> Result<(Verdict<'p, Rule>, Option<Vec<SocketAddr>>), Failure> {
    let Host::Domain(name) = host else {
        unreachable!("an address destination never needs resolving");
    };
    let resolved =
        tokio::time::timeout(shared.timeouts.connect, shared.resolver.resolve(name, port))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            .map_err(|error| Failure::Connect(crate::ConnectError::Resolve(error)))?;
    let mut allowed = Vec::new();
    let mut first: Option<Verdict<'p, Rule>> = None;
    for address in resolved {
        let with_address = Request {
            address: Some(address.ip().to_canonical()),
            ..request.clone()
        };
        let Evaluation::Decided(verdict) = shared.policy.decide(&with_address) else {
            continue;
        };
        if verdict.action.serves() {
            if first.is_none_or(|f| f.action == Action::Deny) {
                first = Some(verdict);
            }
            allowed.push(address);
        } else if first.is_none() {
            first = Some(verdict);
        }
    }
    let verdict = first.unwrap_or(Verdict {
        action: Action::Deny,
        reason: Reason::NoMatch,
    });
    Ok((verdict, Some(allowed)))
}

/// How an association sends a datagram the rules let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// From the relay socket, to the destination itself.
    Direct,
    /// Through the association's upstream group.
    Upstream,
}

/// How a datagram to `destination` (an address) goes out, for an association routed through
/// the group `route` (or not routed), if the rules let it.
pub(crate) fn datagram_way(
    shared: &Shared,
    subject: &Subject,
    host: &Host,
    destination: SocketAddr,
    route: Option<&str>,
) -> Option<Way> {
    match datagram_decision(
        shared,
        subject,
        host,
        destination.port(),
        Some(destination.ip()),
    ) {
        Evaluation::Decided(verdict) => way_out(&verdict, route),
        Evaluation::NeedsAddress => None,
    }
}

/// How a datagram the rules decided `verdict` on goes out: directly when they allow it,
/// through the upstream when they route it through the association's own group. (The
/// association's own rule is chosen without destinations, so a datagram's rule may differ;
/// one a `route` rule takes never leaves directly, and a direct association has no group
/// to send it through: `None`.)
pub(crate) fn way_out(verdict: &Verdict<'_, Rule>, route: Option<&str>) -> Option<Way> {
    match verdict.action {
        Action::Allow => Some(Way::Direct),
        Action::Route => {
            let group = verdict.rule().and_then(|rule| rule.route.as_deref());
            (group.is_some() && group == route).then_some(Way::Upstream)
        }
        Action::Deny => None,
    }
}

/// The rules on one datagram to `host:port`, by its address when known (`NeedsAddress`
/// when a name alone cannot settle it).
pub(crate) fn datagram_decision<'a>(
    shared: &'a Shared,
    subject: &Subject,
    host: &Host,
    port: u16,
    address: Option<IpAddr>,
) -> Evaluation<'a> {
    let request = Request {
        address,
        ..subject.request(Command::UDP_ASSOCIATE, host, port, (shared.clock)())
    };
    shared.policy.decide(&request)
}
