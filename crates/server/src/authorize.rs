//! The policy, applied: at accept (client rules), on each request (request rules, resolving
//! a name only when the decision depends on its address), and per rule the session limits.

use std::net::{IpAddr, SocketAddr};

use socksgate_policy::{Action, Evaluation, Moment, Reason, Request, Rule, RuleOptions, Verdict};
use socksgate_proto::{Command, Host, Method, Reply};

use crate::fleet::Admission;
use crate::limits::{LimitScope, LimitSlot, SERVER_SCOPE};
use crate::relay::Caps;
use crate::session::{Failure, Requested};
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

/// Applies the request rules to a session's request; a denial is answered (0x02 / 0x5B).
pub(crate) async fn authorize(session: &mut Requested<'_>) -> Result<Grant, Failure> {
    let shared = session.shared;
    let policy = &shared.policy;
    let identity = session.record.identity.as_ref();
    let groups = identity.map_or(&[][..], |identity| &identity.groups[..]);
    let method = identity.map_or(Method::NO_AUTH, |identity| identity.method);
    let user = session.record.user.clone();
    let target = session.request.target.clone();
    let request = Request {
        source: session.record.client.ip(),
        listener: session.record.listener,
        user: user.as_deref(),
        groups,
        method,
        command: session.request.command,
        host: &target.host,
        port: target.port,
        address: None,
        moment: (shared.clock)(),
    };
    let (verdict, addresses) = if session.request.command == Command::UDP_ASSOCIATE {
        (policy.decide_association(&request), None)
    } else {
        match policy.decide(&request) {
            Evaluation::Decided(verdict) => (verdict, None),
            Evaluation::NeedsAddress => {
                decide_by_address(shared, &request, &target.host, target.port).await?
            }
        }
    };
    let rule_name = verdict.reason.to_string();
    session.record.rule = Some(rule_name.clone());
    if verdict.action == Action::Deny {
        session.refuse(Reply::NOT_ALLOWED).await;
        return Err(Failure::Denied(rule_name));
    }
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
        Err(limit) => {
            session.refuse(Reply::NOT_ALLOWED).await;
            return Err(Failure::Denied(format!("{rule_name}: {limit}")));
        }
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
            session.refuse(Reply::NOT_ALLOWED).await;
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

/// Whether a datagram to `destination` (an address) may be sent, for an association.
pub(crate) fn datagram_allowed(
    shared: &Shared,
    record: &DatagramSubject<'_>,
    host: &Host,
    destination: SocketAddr,
) -> bool {
    matches!(
        datagram_decision(shared, record, host, destination.port(), Some(destination.ip())),
        Evaluation::Decided(verdict) if verdict.action.serves()
    )
}

/// The rules on one datagram to `host:port`, by its address when known (`NeedsAddress`
/// when a name alone cannot settle it).
pub(crate) fn datagram_decision<'a>(
    shared: &'a Shared,
    record: &DatagramSubject<'_>,
    host: &Host,
    port: u16,
    address: Option<IpAddr>,
) -> Evaluation<'a> {
    let request = Request {
        source: record.source,
        listener: record.listener,
        user: record.user,
        groups: record.groups,
        method: record.method,
        command: Command::UDP_ASSOCIATE,
        host,
        port,
        address,
        moment: (shared.clock)(),
    };
    shared.policy.decide(&request)
}

/// Who sends a datagram, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatagramSubject<'a> {
    pub(crate) source: IpAddr,
    pub(crate) listener: SocketAddr,
    pub(crate) user: Option<&'a str>,
    pub(crate) groups: &'a [String],
    pub(crate) method: Method,
}
