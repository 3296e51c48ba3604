//! Properties of the rule engine: first match wins, a deny above an allow always wins,
//! address blocks and name suffixes agree with simple reference implementations, and
//! evaluation never panics and always ends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use proptest::prelude::*;
use socksgate_policy::{
    Action, Cidr, Days, Evaluation, HostPattern, Hours, Moment, Origin, Policy, PortRange, Reason,
    Request, Rule, RuleOptions,
};
use socksgate_proto::{Command, DomainName, Host, Method};

/// Reference: compare the leading `prefix` bits, computed in a wider integer.
fn reference_contains(network: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let shift = 32 - u32::from(prefix);
            (u64::from(u32::from(n)) >> shift) == (u64::from(u32::from(i)) >> shift)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let (n, i) = (u128::from(n), u128::from(i));
            (0..u32::from(prefix)).all(|bit| (n >> (127 - bit)) & 1 == (i >> (127 - bit)) & 1)
        }
        _ => false,
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        // Near-misses: addresses that share long prefixes.
        (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10, a, b, 1))),
    ]
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("example"),
        Just("ex"),
        Just("com")
    ]
    .prop_map(String::from)
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(label(), 1..4).prop_map(|labels| labels.join("."))
}

fn small_ip() -> impl Strategy<Value = IpAddr> {
    (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10, 0, a, b)))
}

fn rule() -> impl Strategy<Value = Rule> {
    let from = proptest::collection::vec(
        (small_ip(), prop_oneof![Just(16u8), Just(30), Just(32)])
            .prop_map(|(ip, prefix)| Cidr::new(ip, prefix).unwrap()),
        0..2,
    );
    let users = proptest::collection::vec(
        prop_oneof![Just("alice"), Just("bob")].prop_map(String::from),
        0..2,
    );
    let commands = proptest::collection::vec((1u8..=3).prop_map(Command), 0..2);
    let to = proptest::collection::vec(
        prop_oneof![
            name().prop_map(HostPattern::Name),
            name().prop_map(HostPattern::Suffix),
            (small_ip(), prop_oneof![Just(24u8), Just(32)])
                .prop_map(|(ip, p)| HostPattern::Block(Cidr::new(ip, p).unwrap())),
        ],
        0..3,
    );
    let ports = proptest::collection::vec(
        (0u16..4, 0u16..4).prop_map(|(a, b)| PortRange {
            first: 80 + a.min(b),
            last: 80 + a.max(b),
        }),
        0..2,
    );
    let days = proptest::option::of(
        prop_oneof![Just("mon-fri"), Just("sat"), Just("fri-mon")]
            .prop_map(|d| Days::parse([d]).unwrap()),
    );
    let hours = proptest::option::of(
        prop_oneof![Just("08:00-18:00"), Just("22:00-06:00")]
            .prop_map(|h| h.parse::<Hours>().unwrap()),
    );
    (
        from,
        users,
        commands,
        to,
        ports,
        days,
        hours,
        any::<bool>(),
        1usize..1000,
    )
        .prop_map(
            |(from, users, commands, to, ports, days, hours, allow, line)| Rule {
                origin: Origin {
                    file: Arc::from("policy.toml"),
                    line,
                },
                from,
                listeners: vec![],
                users,
                groups: vec![],
                methods: vec![],
                commands,
                to,
                ports,
                days,
                hours,
                action: if allow { Action::Allow } else { Action::Deny },
                route: None,
                options: RuleOptions::default(),
                egress: None,
            },
        )
}

/// A request whose destination is an address (so every rule can decide).
#[derive(Debug, Clone)]
struct Case {
    source: IpAddr,
    user: Option<String>,
    command: Command,
    host: Host,
    port: u16,
    moment: Moment,
}

fn case() -> impl Strategy<Value = Case> {
    let host = prop_oneof![
        small_ip().prop_map(Host::Ip),
        name().prop_map(|n| Host::Domain(DomainName::new(&n).unwrap())),
    ];
    (
        small_ip(),
        proptest::option::of(
            prop_oneof![Just("alice"), Just("bob"), Just("carol")].prop_map(String::from),
        ),
        (1u8..=3).prop_map(Command),
        host,
        78u16..86,
        (0u8..7, 0u16..1440).prop_map(|(weekday, minute)| Moment { weekday, minute }),
    )
        .prop_map(|(source, user, command, host, port, moment)| Case {
            source,
            user,
            command,
            host,
            port,
            moment,
        })
}

fn request<'a>(case: &'a Case, address: Option<IpAddr>) -> Request<'a> {
    Request {
        source: case.source,
        listener: SocketAddr::from(([127, 0, 0, 1], 1080)),
        user: case.user.as_deref(),
        groups: &[],
        method: Method::NO_AUTH,
        command: case.command,
        host: &case.host,
        port: case.port,
        address,
        moment: case.moment,
    }
}

/// Reference matcher: every condition written out plainly, for a known destination address.
fn reference_matches(rule: &Rule, case: &Case, address: Option<IpAddr>) -> bool {
    let any = |empty: bool, found: bool| empty || found;
    let destination_ip = match &case.host {
        Host::Ip(ip) => Some(*ip),
        Host::Domain(_) => address,
    };
    let destination = rule.to.is_empty()
        || rule.to.iter().any(|pattern| match (pattern, &case.host) {
            (HostPattern::Block(block), _) => destination_ip.is_some_and(|ip| block.contains(ip)),
            (HostPattern::Name(exact), Host::Domain(name)) => name.as_str() == exact,
            (HostPattern::Suffix(suffix), Host::Domain(name)) => {
                name.as_str().ends_with(&format!(".{suffix}"))
            }
            _ => false,
        });
    any(
        rule.from.is_empty(),
        rule.from.iter().any(|b| b.contains(case.source)),
    ) && any(
        rule.users.is_empty(),
        rule.users.iter().any(|u| Some(u) == case.user.as_ref()),
    ) && any(
        rule.commands.is_empty(),
        rule.commands.contains(&case.command),
    ) && any(
        rule.ports.is_empty(),
        rule.ports
            .iter()
            .any(|r| r.first <= case.port && case.port <= r.last),
    ) && rule.days.is_none_or(|d| d.contains(case.moment.weekday))
        && rule.hours.is_none_or(|h| h.contains(case.moment.minute))
        && destination
}

/// Evaluates, resolving a name to `address` when the engine asks for it.
fn decide<'p>(policy: &'p Policy, case: &Case, address: IpAddr) -> (Action, Option<&'p Rule>) {
    let evaluation = match policy.decide(&request(case, None)) {
        Evaluation::NeedsAddress => policy.decide(&request(case, Some(address))),
        decided => decided,
    };
    let Evaluation::Decided(verdict) = evaluation else {
        panic!("an address must settle the evaluation");
    };
    (verdict.action, verdict.rule())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn cidr_agrees_with_the_reference(network in ip(), prefix in 0u8..=128, probe in ip()) {
        let prefix = if network.is_ipv4() { prefix % 33 } else { prefix };
        let block = Cidr::new(network, prefix).unwrap();
        prop_assert_eq!(block.contains(probe), reference_contains(network, prefix, probe));
    }

    #[test]
    fn suffix_agrees_with_the_reference(suffix in name(), candidate in name(), upper in any::<bool>()) {
        let pattern: HostPattern = format!("*.{suffix}").parse().unwrap();
        let shown = if upper { candidate.to_uppercase() } else { candidate.clone() };
        let expected = candidate.to_lowercase().ends_with(&format!(".{}", suffix.to_lowercase()));
        prop_assert_eq!(pattern.matches_name(&shown), expected);
    }

    #[test]
    fn first_match_wins(rules in proptest::collection::vec(rule(), 1..8), case in case(), address in small_ip()) {
        let policy = Policy { rules, ..Policy::default() };
        let (action, rule) = decide(&policy, &case, address);
        let first = policy.rules.iter().find(|r| reference_matches(r, &case, Some(address)));
        match first {
            Some(expected) => {
                prop_assert_eq!(rule, Some(expected));
                prop_assert_eq!(action, expected.action);
            }
            None => {
                prop_assert_eq!(rule, None);
                prop_assert_eq!(action, Action::Deny);
            }
        }
    }

    #[test]
    fn a_deny_above_an_allow_always_wins(
        allow in rule(),
        rest in proptest::collection::vec(rule(), 0..4),
        case in case(),
        address in small_ip(),
    ) {
        let allow = Rule { action: Action::Allow, ..allow };
        let deny = Rule { action: Action::Deny, ..allow.clone() };
        let mut rules = vec![deny, allow.clone()];
        rules.extend(rest);
        let policy = Policy { rules, ..Policy::default() };
        if reference_matches(&allow, &case, Some(address)) {
            prop_assert_eq!(decide(&policy, &case, address).0, Action::Deny);
        }
        // A shadowed allow is reported as such.
        prop_assert!(policy.shadowed_rules().iter().any(|(later, _)| **later == allow));
    }

    #[test]
    fn shadowed_rules_really_never_decide(
        rules in proptest::collection::vec(rule(), 1..6),
        cases in proptest::collection::vec((case(), small_ip()), 1..30),
    ) {
        let policy = Policy { rules, ..Policy::default() };
        let shadowed: Vec<*const Rule> = policy.shadowed_rules().iter().map(|(r, _)| *r as *const Rule).collect();
        for (case, address) in &cases {
            if let (_, Some(rule)) = decide(&policy, case, *address) {
                prop_assert!(!shadowed.contains(&(rule as *const Rule)), "a rule reported unreachable decided");
            }
        }
    }

    #[test]
    fn private_destinations_are_denied_whatever_the_rules(
        rules in proptest::collection::vec(rule(), 0..4),
        case in case(),
    ) {
        let policy = Policy { rules, deny_private_destinations: true, ..Policy::default() };
        // small_ip() addresses are all in 10.0.0.0/8.
        let (action, _) = decide(&policy, &case, IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)));
        prop_assert_eq!(action, Action::Deny);
    }

    // Issue #21 (routed names): a name a `route` rule takes is the upstream's to resolve —
    // decided without its address — while a private address given as such is refused,
    // routed or not (an upstream on this host would reach our network).
    #[test]
    fn routed_names_are_the_upstreams_to_resolve_and_private_addresses_still_refused(
        rules in proptest::collection::vec(rule(), 0..4),
        case in case(),
    ) {
        let mut routed = rules.clone();
        routed.insert(0, Rule { action: Action::Route, route: Some("up".into()), ..allow_all() });
        let policy = Policy { rules: routed, deny_private_destinations: true, ..Policy::default() };
        if matches!(case.host, Host::Domain(_)) {
            match policy.decide(&request(&case, None)) {
                Evaluation::Decided(verdict) => prop_assert_eq!(verdict.action, Action::Route),
                Evaluation::NeedsAddress => prop_assert!(false, "a routed name was to be resolved here"),
            }
        }
        let internal = Case { host: Host::Ip("10.9.9.9".parse().unwrap()), ..case.clone() };
        let (action, _) = decide(&policy, &internal, IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)));
        prop_assert_eq!(action, Action::Deny);
    }
}

#[test]
fn a_block_is_private_when_all_of_it_is() {
    let private = |block: &str| block.parse::<Cidr>().unwrap().is_private();
    for block in [
        "10.0.0.0/8",
        "10.1.2.0/24",
        "192.168.0.0/16",
        "169.254.169.254/32",
        "fd00::/8",
        "::1/128",
    ] {
        assert!(private(block), "{block}");
    }
    for block in [
        "10.0.0.0/7",
        "0.0.0.0/0",
        "8.8.8.0/24",
        "::/0",
        "2001:db8::/32",
    ] {
        assert!(!private(block), "{block}");
    }
}

proptest! {
    // The ranges `is_private` knows are the ones the guard refuses: an address of a block
    // it calls private is private.
    #[test]
    fn an_address_of_a_private_block_is_a_private_destination(ip in ip(), prefix in 0u8..=128) {
        let prefix = if ip.is_ipv4() { prefix % 33 } else { prefix };
        let block = Cidr::new(ip, prefix).unwrap();
        if block.is_private() {
            prop_assert!(socksgate_policy::is_private_destination(ip), "{ip} in {block}");
        }
    }
}

#[test]
fn no_rules_allow_everything_and_some_rules_deny_the_rest() {
    let case = Case {
        source: "10.0.0.1".parse().unwrap(),
        user: None,
        command: Command::CONNECT,
        host: Host::Ip("192.0.2.1".parse().unwrap()),
        port: 80,
        moment: Moment {
            weekday: 0,
            minute: 0,
        },
    };
    let open = Policy::default();
    let verdict = match open.decide(&request(&case, None)) {
        Evaluation::Decided(verdict) => verdict,
        Evaluation::NeedsAddress => unreachable!(),
    };
    assert_eq!(
        (verdict.action, verdict.reason),
        (Action::Allow, Reason::NoRules)
    );
    let only_bob = Rule {
        users: vec!["bob".to_owned()],
        ..allow_all()
    };
    let closed = Policy {
        rules: vec![only_bob],
        ..Policy::default()
    };
    assert_eq!(
        decide(&closed, &case, "10.0.0.1".parse().unwrap()),
        (Action::Deny, None)
    );
}

#[test]
fn names_are_only_resolved_when_an_address_rule_is_reached() {
    let by_name = Rule {
        to: vec!["*.example.com".parse().unwrap()],
        action: Action::Deny,
        ..allow_all()
    };
    let by_block = Rule {
        to: vec!["192.0.2.0/24".parse().unwrap()],
        ..allow_all()
    };
    let policy = Policy {
        rules: vec![by_name, by_block],
        ..Policy::default()
    };
    let named = |name: &str| Case {
        source: "10.0.0.1".parse().unwrap(),
        user: None,
        command: Command::CONNECT,
        host: Host::Domain(DomainName::new(name).unwrap()),
        port: 443,
        moment: Moment {
            weekday: 0,
            minute: 0,
        },
    };
    // Decided by the name rule without resolving.
    let case = named("www.example.com");
    assert!(
        matches!(policy.decide(&request(&case, None)), Evaluation::Decided(v) if v.action == Action::Deny)
    );
    // Another name reaches the block rule: its address decides.
    let case = named("www.example.org");
    assert_eq!(
        policy.decide(&request(&case, None)),
        Evaluation::NeedsAddress
    );
    assert_eq!(
        decide(&policy, &case, "192.0.2.7".parse().unwrap()).0,
        Action::Allow
    );
    assert_eq!(
        decide(&policy, &case, "198.51.100.7".parse().unwrap()).0,
        Action::Deny
    );
}

#[test]
fn internal_addresses_are_recognised() {
    use socksgate_policy::is_private_destination as private;
    for internal in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        // Issue #21, finding 10: local-use NAT64 (RFC 8215), whatever it embeds.
        "64:ff9b:1::808:808",
        "64:ff9b:1:ffff::1",
        "224.0.0.1",
        "255.255.255.255",
    ] {
        assert!(private(internal.parse().unwrap()), "{internal}");
    }
    for public in [
        "192.0.2.1",
        "8.8.8.8",
        "2001:db8::1",
        "172.32.0.1",
        "100.128.0.1",
        "64:ff9b::808:808",
    ] {
        assert!(!private(public.parse().unwrap()), "{public}");
    }
}

/// A rule without conditions, allowing.
fn allow_all() -> Rule {
    Rule {
        origin: Origin {
            file: Arc::from("t.toml"),
            line: 1,
        },
        from: vec![],
        listeners: vec![],
        users: vec![],
        groups: vec![],
        methods: vec![],
        commands: vec![],
        to: vec![],
        ports: vec![],
        days: None,
        hours: None,
        action: Action::Allow,
        route: None,
        options: RuleOptions::default(),
        egress: None,
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC{0,40}", also in "[0-9a-f:./*-]{0,30}") {
        for input in [&text, &also] {
            let _ = input.parse::<Cidr>();
            let _ = input.parse::<HostPattern>();
            let _ = input.parse::<PortRange>();
            let _ = input.parse::<Hours>();
            let _ = Days::parse([input.as_str()]);
        }
    }

    #[test]
    fn evaluation_never_panics_on_any_address_or_moment(
        rules in proptest::collection::vec(rule(), 0..6),
        source in ip(),
        destination in ip(),
        weekday in any::<u8>(),
        minute in any::<u16>(),
        port in any::<u16>(),
        private in any::<bool>(),
    ) {
        let policy = Policy { rules, deny_private_destinations: private, ..Policy::default() };
        let host = Host::Ip(destination);
        let request = Request {
            source,
            listener: SocketAddr::from(([127, 0, 0, 1], 1080)),
            user: None,
            groups: &[],
            method: Method::NO_AUTH,
            command: Command(weekday),
            host: &host,
            port,
            address: None,
            moment: Moment { weekday, minute },
        };
        prop_assert!(matches!(policy.decide(&request), Evaluation::Decided(_)), "an address always settles it");
        let _ = policy.decide_association(&request);
        let _ = policy.decide_client(source, request.listener);
    }
}

// Issue #21, finding 3: an IPv6 client counts per prefix (default /64), IPv4 per address.
#[test]
fn sources_are_grouped_by_their_ipv6_prefix() {
    use socksgate_policy::source_group;
    let group = |ip: &str, bits| source_group(ip.parse().unwrap(), bits).to_string();
    assert_eq!(group("2001:db8:5::2", 64), "2001:db8:5::");
    assert_eq!(group("2001:db8:5:0:ffff:1:2:3", 64), "2001:db8:5::");
    assert_eq!(group("2001:db8:5:1::2", 64), "2001:db8:5:1::");
    assert_eq!(group("2001:db8:5::2", 128), "2001:db8:5::2");
    assert_eq!(group("2001:db8:5:ff::2", 48), "2001:db8:5::");
    assert_eq!(group("192.0.2.7", 64), "192.0.2.7");
    assert_eq!(group("::ffff:192.0.2.7", 64), "192.0.2.7");
}

// The private-destination guard refuses 0.0.0.0 as a target, but a BIND for "any peer"
// (DST 0.0.0.0, as FTP clients send it) reaches nothing on the client's behalf: allowed.
#[test]
fn a_bind_for_any_peer_passes_the_private_destination_guard() {
    let policy = Policy {
        deny_private_destinations: true,
        ..Policy::default()
    };
    let any = Host::Ip("0.0.0.0".parse().unwrap());
    let request = |command| Request {
        source: "192.0.2.1".parse().unwrap(),
        listener: SocketAddr::from(([192, 0, 2, 2], 1080)),
        user: None,
        groups: &[],
        method: Method::NO_AUTH,
        command,
        host: &any,
        port: 0,
        address: None,
        moment: Moment {
            weekday: 0,
            minute: 0,
        },
    };
    let action = |command| match policy.decide(&request(command)) {
        Evaluation::Decided(verdict) => verdict.action,
        Evaluation::NeedsAddress => panic!("an address settles it"),
    };
    assert_eq!(action(Command::BIND), Action::Allow);
    assert_eq!(action(Command::CONNECT), Action::Deny);
}

// Second review of #21: a private address written as a name — dotted, or in the forms
// inet_aton reads — or `localhost` is refused by the guard when routed, as its address is;
// other routed names are still the upstream's.
#[test]
fn a_private_address_written_as_a_name_is_refused_when_routed() {
    let policy = Policy {
        rules: vec![Rule {
            action: Action::Route,
            route: Some("up".into()),
            ..allow_all()
        }],
        deny_private_destinations: true,
        ..Policy::default()
    };
    let verdict = |name: &str| {
        let host = Host::Domain(name.parse().unwrap());
        let request = Request {
            source: "192.0.2.1".parse().unwrap(),
            listener: SocketAddr::from(([192, 0, 2, 2], 1080)),
            user: None,
            groups: &[],
            method: Method::NO_AUTH,
            command: Command::CONNECT,
            host: &host,
            port: 80,
            address: None,
            moment: Moment {
                weekday: 0,
                minute: 0,
            },
        };
        match policy.decide(&request) {
            Evaluation::Decided(verdict) => verdict.action,
            Evaluation::NeedsAddress => panic!("{name} was to be resolved here"),
        }
    };
    for name in [
        "169.254.169.254",
        "127.1",
        "0x7f000001",
        "2130706433",
        "017700000001",
        "10.0.0.5",
        "::1",
        "localhost",
        "db.localhost.",
    ] {
        assert_eq!(verdict(name), Action::Deny, "{name}");
    }
    for name in [
        "example.com",
        "8.8.8.8",
        "abc.onion",
        "1.2.3.4.5",
        "0x1g",
        "+10.0.0.5",
        "0+10",
        "0x+8080808",
    ] {
        assert_eq!(verdict(name), Action::Route, "{name}");
    }
}
