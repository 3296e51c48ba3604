//! The PROXY protocol on a listener behind a load balancer: HAProxy (`send-proxy-v2`) in
//! front of socksgate, the rules deciding on the real client's address, and sources that
//! are not trusted balancers refused when they send a header.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use socksgate_config::Config;
use socksgate_proto::client::{ClientHandshake, ClientProtocol};
use socksgate_proto::Command as SocksCommand;
use socksgate_tests::client::connect_from;
use socksgate_tests::haproxy::Haproxy;
use socksgate_tests::rejected_with;
use socksgate_tests::{assert_echoes, handshake, EchoTarget, TestServer};

/// A server whose listener trusts 127.0.0.1 (where HAProxy connects from) to send PROXY
/// headers, and whose client rules refuse 127.0.0.2.
fn server_behind_balancer() -> TestServer {
    let text = "[[client_rule]]\naction = \"deny\"\nfrom = [\"127.0.0.2\"]\n\n\
                [[client_rule]]\naction = \"allow\"\n";
    let mut config = Config::parse(text, Path::new("balanced.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.listeners[0].proxy_protocol = vec!["127.0.0.1/32".parse().unwrap()];
    config.timeouts.shutdown = Duration::from_secs(2);
    TestServer::start_with(config)
}

/// A CONNECT to `target` over `stream`, then an echo through it.
fn connect_and_echo(mut stream: TcpStream, target: SocketAddr) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let machine = ClientHandshake::new(
        ClientProtocol::socks5(),
        SocksCommand::CONNECT,
        target.into(),
    )
    .unwrap();
    handshake(&mut stream, machine).map_err(|error| format!("{error:?}"))?;
    assert_echoes(&mut stream, b"through the balancer");
    Ok(())
}

/// HAProxy in TCP mode on a free loopback port, sending PROXY v2 headers to `backend`.
fn haproxy(backend: SocketAddr) -> Option<Haproxy> {
    let front = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  \
         timeout server 30s\n\
         frontend socks\n  bind {front}\n  default_backend socksgate\n\
         backend socksgate\n  server gate {backend} send-proxy-v2\n"
    );
    Haproxy::start("balanced.cfg", &config, front)
}

#[test]
fn behind_haproxy_the_rules_see_the_real_client() {
    let server = server_behind_balancer();
    let Some(balancer) = haproxy(server.addr()) else {
        return;
    };
    let target = EchoTarget::start();
    let allowed: IpAddr = "127.0.0.3".parse().unwrap();
    let refused: IpAddr = "127.0.0.2".parse().unwrap();

    // HAProxy's readiness probe (a bare connection through it) is a session too.
    let before = server.wait_for_sessions(1).len();
    connect_and_echo(connect_from(allowed, balancer.front).unwrap(), target.addr).unwrap();
    let log = server.wait_for_sessions(before + 1);
    let served = log.iter().find(|entry| entry["outcome"] == "closed");
    let served = served.unwrap_or_else(|| panic!("{log:#?}"));
    assert!(served["client"].starts_with("127.0.0.3:"), "{log:#?}");
    assert!(served["via"].starts_with("127.0.0.1:"), "{log:#?}");

    // The rule on 127.0.0.2 applies to the client behind the balancer, not to HAProxy.
    let result = connect_and_echo(connect_from(refused, balancer.front).unwrap(), target.addr);
    assert!(result.is_err(), "a denied client was served");
    let log = server.wait_for_sessions(before + 2);
    let denied = log.iter().find(|entry| entry["outcome"] == "client-denied");
    let denied = denied.unwrap_or_else(|| panic!("{log:#?}"));
    assert!(denied["client"].starts_with("127.0.0.2:"), "{log:#?}");
}

#[test]
fn a_version_1_header_from_a_trusted_source_names_the_client() {
    let server = server_behind_balancer();
    let target = EchoTarget::start();
    let port = server.addr().port();
    // From 127.0.0.1 (trusted), claiming to relay 127.0.0.2, whom the rules refuse.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(stream, "PROXY TCP4 127.0.0.2 127.0.0.1 40000 {port}\r\n").unwrap();
    assert!(connect_and_echo(stream, target.addr).is_err());
    // And relaying 127.0.0.3, who may.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(stream, "PROXY TCP4 127.0.0.3 127.0.0.1 40001 {port}\r\n").unwrap();
    connect_and_echo(stream, target.addr).unwrap();
    let log = server.wait_for_sessions(2);
    let served = log
        .iter()
        .find(|entry| entry["outcome"] == "closed")
        .unwrap();
    assert_eq!(served["client"], "127.0.0.3:40001");
}

#[test]
fn untrusted_sources_sending_headers_and_trusted_ones_without_are_refused() {
    let server = server_behind_balancer();
    let target = EchoTarget::start();
    // 127.0.0.4 is not a trusted balancer: it may not claim to be someone else.
    let mut forged = connect_from("127.0.0.4".parse().unwrap(), server.addr()).unwrap();
    forged
        .write_all(b"PROXY TCP4 10.9.9.9 127.0.0.1 1234 1080\r\n")
        .unwrap();
    forged
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = forged.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    // It may still use the proxy as itself.
    let direct = connect_from("127.0.0.4".parse().unwrap(), server.addr()).unwrap();
    connect_and_echo(direct, target.addr).unwrap();
    // The trusted balancer's address must send a header.
    let bare = TcpStream::connect(server.addr()).unwrap();
    assert!(connect_and_echo(bare, target.addr).is_err());

    let log = server.wait_for_sessions(3);
    let outcomes: Vec<&str> = log.iter().map(|entry| entry["outcome"].as_str()).collect();
    assert!(outcomes.contains(&"untrusted-proxy-header"), "{log:#?}");
    assert!(outcomes.contains(&"bad-proxy-header"), "{log:#?}");
    assert!(outcomes.contains(&"closed"), "{log:#?}");
}

/// A front socksgate whose upstream group sends PROXY headers: the upstream (trusting the
/// front's address) sees the real client, 127.0.0.3, and the front as `via`; the upstream's
/// client rule on the real address decides.
#[test]
fn a_group_that_sends_proxy_headers_names_the_client_to_its_upstream() {
    let upstream = server_behind_balancer();
    let text = format!(
        "[[upstream]]\nname = \"up\"\nchains = [[\"socks5://{}\"]]\nsend_proxy_protocol = true\n\n\
         [[rule]]\naction = \"route\"\nroute = \"up\"\n",
        upstream.addr()
    );
    let mut config = Config::parse(&text, Path::new("front.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    let front = TestServer::start_with(config);
    let echo = EchoTarget::start();

    let client = connect_from(IpAddr::from([127, 0, 0, 3]), front.addr()).unwrap();
    let client_port = client.local_addr().unwrap().port();
    connect_and_echo(client, echo.addr).unwrap();
    let log = upstream.wait_for_sessions(1);
    assert_eq!(
        log[0]["client"],
        format!("127.0.0.3:{client_port}"),
        "{log:?}"
    );
    assert_eq!(
        log[0]["via"].split(':').next(),
        Some("127.0.0.1"),
        "{log:?}"
    );

    // 127.0.0.2 is refused by the upstream's client rule, though the front allows it.
    let refused = connect_from(IpAddr::from([127, 0, 0, 2]), front.addr()).unwrap();
    assert!(connect_and_echo(refused, echo.addr).is_err());
    let log = upstream.wait_for_sessions(2);
    assert_eq!(log[1]["outcome"], "client-denied", "{log:?}");
}

/// Issue #21, finding 2: behind a trusted balancer, a UDP association belongs to the client
/// the PROXY header names, not to the balancer: the client's datagrams (from 127.0.0.3) are
/// relayed, and the balancer's host (127.0.0.1) cannot use the relay.
#[test]
fn udp_behind_a_balancer_belongs_to_the_real_client() {
    use socksgate_tests::client::{recv_via, send_via, udp_associate_on};
    let server = server_behind_balancer();
    let echo = socksgate_tests::UdpEcho::start();
    let port = server.addr().port();
    let mut control = TcpStream::connect(server.addr()).unwrap();
    write!(control, "PROXY TCP4 127.0.0.3 127.0.0.1 40002 {port}\r\n").unwrap();
    let relay = udp_associate_on(&mut control, "0.0.0.0:0".parse().unwrap()).unwrap();
    let target = format!("127.0.0.1:{}", echo.port).parse().unwrap();
    let balancer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    send_via(&balancer, relay, &target, b"from the balancer");
    assert!(
        recv_via(&balancer, Duration::from_millis(500)).is_none(),
        "the balancer's host used the client's relay"
    );
    let client = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    send_via(&client, relay, &target, b"from the client");
    let answer = recv_via(&client, Duration::from_secs(3));
    assert_eq!(
        answer.map(|(_, data)| data),
        Some(b"from the client".to_vec())
    );
    drop(control);
}

/// Issue #21, finding 2, as a balancer really sends it: UDP ASSOCIATE through HAProxy
/// (`send-proxy-v2`, connecting from 127.0.0.1) for a client on 127.0.0.2. The client's
/// datagrams are relayed, datagrams from HAProxy's address to the same relay are dropped,
/// and the `from` rule that allows UDP to 127.0.0.2 alone decides: the same request from
/// 127.0.0.3, through the same balancer, is refused.
#[test]
fn udp_through_haproxy_belongs_to_the_client_and_its_from_rule_decides() {
    use socksgate_tests::client::{recv_via, send_via, udp_associate_on};
    let text = "[[rule]]\naction = \"allow\"\nfrom = [\"127.0.0.2\"]\ncommands = [\"udp\"]\n\n\
                [[rule]]\naction = \"deny\"\n";
    let mut config = Config::parse(text, Path::new("balanced-udp.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.listeners[0].proxy_protocol = vec!["127.0.0.1/32".parse().unwrap()];
    let server = TestServer::start_with(config);
    let Some(balancer) = haproxy(server.addr()) else {
        return;
    };
    let echo = socksgate_tests::UdpEcho::start();
    let target = format!("127.0.0.1:{}", echo.port).parse().unwrap();
    let associate = |from: [u8; 4]| {
        let mut control = connect_from(IpAddr::from(from), balancer.front).unwrap();
        control
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        udp_associate_on(&mut control, "0.0.0.0:0".parse().unwrap()).map(|relay| (control, relay))
    };

    let (control, relay) = associate([127, 0, 0, 2]).unwrap();
    let from_balancer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    send_via(
        &from_balancer,
        relay,
        &target,
        b"from the balancer's address",
    );
    assert!(
        recv_via(&from_balancer, Duration::from_millis(500)).is_none(),
        "HAProxy's address used the client's relay"
    );
    let client = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    send_via(&client, relay, &target, b"from the client");
    let answer = recv_via(&client, Duration::from_secs(3));
    assert_eq!(
        answer.map(|(_, data)| data),
        Some(b"from the client".to_vec())
    );

    let refused = associate([127, 0, 0, 3]);
    assert_eq!(rejected_with(refused), socksgate_proto::Reply::NOT_ALLOWED);
    drop(control);
    let log = server.wait_for_sessions(2);
    let denied = log.iter().find(|entry| entry["outcome"] == "denied");
    let denied = denied.unwrap_or_else(|| panic!("{log:#?}"));
    assert!(denied["client"].starts_with("127.0.0.3:"), "{log:#?}");
    assert!(denied["via"].starts_with("127.0.0.1:"), "{log:#?}");
}
