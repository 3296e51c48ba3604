//! A rule chooses how its connections leave a gateway with two uplinks: a source address,
//! an interface (`SO_BINDTODEVICE`) or a firewall mark (`SO_MARK`, steered by policy
//! routing). The target host reports the address each connection came from.
//!
//! ```text
//! gateway 10.61.0.1 ─ uplink 1 ─ 10.61.0.2 target (198.51.100.20)
//!         10.62.0.1 ─ uplink 2 ─ 10.62.0.2
//! ```
//! The gateway's main table reaches the target through uplink 1 (uplink 2 only by a worse
//! metric); table 62, chosen by mark 0x62, through uplink 2.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use socksgate_config::{Config, Listener};
use socksgate_tests::{socks5_connect, NetNs, TestServer};

const TARGET: &str = "198.51.100.20";

/// The gateway and target namespaces, joined by two veth pairs.
fn two_uplinks() -> Option<(NetNs, NetNs)> {
    let target = NetNs::create(&[&format!("addr add {TARGET}/32 dev lo")])?;
    let gateway = NetNs::create(&[])?;
    for uplink in [1, 2] {
        gateway.veth(
            &format!("up{uplink}"),
            &format!("10.6{uplink}.0.1/24"),
            &target,
            &format!("down{uplink}"),
            &format!("10.6{uplink}.0.2/24"),
        );
    }
    gateway.ip(&format!("route add {TARGET}/32 via 10.61.0.2 dev up1"));
    gateway.ip(&format!(
        "route add {TARGET}/32 via 10.62.0.2 dev up2 metric 100"
    ));
    gateway.ip(&format!(
        "route add {TARGET}/32 via 10.62.0.2 dev up2 table 62"
    ));
    gateway.ip("rule add fwmark 0x62 table 62");
    Some((gateway, target))
}

/// A service on the target host at `port` that answers each connection with the address it
/// came from.
fn reporter(target: &NetNs, port: u16) {
    let listener = target.run(|| TcpListener::bind((TARGET, port)).unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let peer = stream.peer_addr().unwrap().ip().to_string();
            let _ = stream.write_all(peer.as_bytes());
        }
    });
}

/// Rules by port: 81 a source address, 82 an interface, 83 a mark, 84 an IPv6 source only,
/// 85 routed through an upstream on the target host with the mark; the rest plain.
const RULES: &str =
    "[[rule]]\nports = [81]\naction = \"allow\"\nsource_address = \"10.62.0.1\"\n\n\
                     [[rule]]\nports = [82]\naction = \"allow\"\ninterface = \"up2\"\n\n\
                     [[rule]]\nports = [83]\naction = \"allow\"\nmark = 0x62\n\n\
                     [[rule]]\nports = [84]\naction = \"allow\"\nsource_address = \"fd00::1\"\n\n\
                     [[rule]]\nports = [85]\naction = \"route\"\nroute = \"far\"\nmark = 0x62\n\n\
                     [[rule]]\naction = \"allow\"\n";

#[test]
fn a_rule_chooses_source_address_interface_or_mark() {
    let Some((gateway, target)) = two_uplinks() else {
        return;
    };
    for port in [80, 81, 82, 83, 85] {
        reporter(&target, port);
    }
    // An upstream proxy on the target host: the connection to it leaves by the routing
    // rule's mark too (its access log shows where from).
    let mut upstream_config = TestServer::loopback_config();
    upstream_config.listeners = vec![Listener::open(format!("{TARGET}:0").parse().unwrap())];
    upstream_config.danger_allow_open_proxy = true;
    let upstream = target.run(|| TestServer::start_with(upstream_config));
    let text = format!(
        "[[upstream]]\nname = \"far\"\nchains = [[\"socks5://{}\"]]\n\n{RULES}",
        upstream.addr()
    );
    let mut config = Config::parse(&text, Path::new("egress.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    gateway.run(|| {
        let server = TestServer::start_with(config);
        let came_from = |port: u16| {
            let mut stream = socks5_connect(server.addr(), &format!("{TARGET}:{port}")).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut peer = String::new();
            stream.read_to_string(&mut peer).unwrap();
            peer
        };
        assert_eq!(came_from(80), "10.61.0.1", "the main table: uplink 1");
        assert_eq!(came_from(81), "10.62.0.1", "source_address");
        assert_eq!(came_from(82), "10.62.0.1", "interface = up2");
        assert_eq!(came_from(83), "10.62.0.1", "mark 0x62 → table 62");
        // An IPv6 source only: an IPv4 target cannot be reached from it.
        let refused = socks5_connect(server.addr(), &format!("{TARGET}:84"));
        assert!(refused.is_err(), "{refused:?}");
        let log = server.wait_for_sessions(5);
        let failed = log
            .iter()
            .find(|event| event["outcome"] == "connect-failed")
            .unwrap();
        assert!(failed["detail"].contains("no source address"), "{failed:?}");
        // Routed: the upstream reaches the target from its own address; the gateway reached
        // the upstream by uplink 2.
        assert_eq!(came_from(85), TARGET);
        let upstream_log = upstream.wait_for_sessions(1);
        assert!(
            upstream_log[0]["client"].starts_with("10.62.0.1:"),
            "{upstream_log:?}"
        );
    });
}
