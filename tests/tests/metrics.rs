//! The admin listener: `/metrics` after known traffic, counter by counter, and `/health`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use socksgate_config::Config;
use socksgate_tests::client::HandshakeFailure;
use socksgate_tests::{assert_echoes, socks5_connect, EchoTarget, TestServer};

/// A GET to the admin listener: status line and body.
fn get(admin: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of one sample line (`name{labels} value`) of a scrape.
fn sample(scrape: &str, series: &str) -> Option<String> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.to_owned())
    })
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let text = "[admin]\naddress = \"127.0.0.1:0\"\n\n\
                [[rule]]\naction = \"deny\"\nports = [\"9\"]\n\n\
                [[rule]]\naction = \"allow\"\n";
    let mut config = Config::parse(text, Path::new("metrics.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    let server = TestServer::start_with(config);
    let admin = server.admin_addr().unwrap();
    let echo = EchoTarget::start();

    // Two CONNECTs, 5 bytes each way each; one request denied by the rule on line 4.
    for _ in 0..2 {
        let mut stream = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
        assert_echoes(&mut stream, b"hello");
    }
    let denied = socks5_connect(server.addr(), "127.0.0.1:9");
    assert!(
        matches!(denied, Err(HandshakeFailure::Socks(_))),
        "{denied:?}"
    );
    server.wait_for_sessions(3);

    let (status, scrape) = get(admin, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let expect = |series: &str, value: &str| {
        assert_eq!(
            sample(&scrape, series).as_deref(),
            Some(value),
            "{series}\n{scrape}"
        );
    };
    expect(
        "socksgate_sessions_total{command=\"connect\",outcome=\"closed\"}",
        "2",
    );
    expect(
        "socksgate_sessions_total{command=\"connect\",outcome=\"denied\"}",
        "1",
    );
    expect("socksgate_bytes_total{direction=\"up\"}", "10");
    expect("socksgate_bytes_total{direction=\"down\"}", "10");
    // Labelled as the access log names the deciding rule.
    expect(
        "socksgate_policy_denials_total{rule=\"rule metrics.toml:4\"}",
        "1",
    );
    expect("socksgate_auth_failures_total", "0");
    expect("socksgate_sessions_live", "0");
    // Three requests completed their handshake; two CONNECTs reached their target.
    expect("socksgate_handshake_seconds_count", "3");
    expect("socksgate_connect_seconds_count", "2");
    assert!(
        scrape.contains("# TYPE socksgate_sessions_total counter"),
        "{scrape}"
    );

    assert_eq!(
        get(admin, "/health"),
        ("HTTP/1.1 200 OK".to_owned(), "ok\n".to_owned())
    );
    assert_eq!(get(admin, "/nothing").0, "HTTP/1.1 404 Not Found");
}

/// The sessions listed by `GET /sessions` (id order).
fn sessions(admin: SocketAddr) -> Vec<serde_json::Value> {
    let (status, body) = get(admin, "/sessions");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    parsed["sessions"].as_array().unwrap().clone()
}

/// Polls `/sessions` until `done` holds of the list (a session leaves when its task ends).
fn sessions_until(
    admin: SocketAddr,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = sessions(admin);
        if done(&listed) {
            return listed;
        }
        assert!(std::time::Instant::now() < deadline, "{listed:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sessions_lists_the_sessions_in_progress_with_their_bytes() {
    use socksgate_proto::client::ClientProtocol;
    use socksgate_tests::client::{connect_via, recv_via, send_via, udp_associate};
    let text = "[admin]\naddress = \"127.0.0.1:0\"\n\n[[rule]]\naction = \"allow\"\n";
    let mut config = Config::parse(text, Path::new("sessions.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    // SOCKS4 USERIDs name users here: the listener trusts them.
    config.listeners[0].trust_socks4_userid = true;
    config.timeouts.shutdown = Duration::from_secs(2);
    let server = TestServer::start_with(config);
    let admin = server.admin_addr().unwrap();
    assert!(sessions(admin).is_empty());

    // A CONNECT by "alice" (a SOCKS4 USERID) that echoed 5 bytes each way.
    let echo = EchoTarget::start();
    let alice = ClientProtocol::Socks4 {
        user_id: b"alice".to_vec(),
    };
    let mut stream = connect_via(server.addr(), alice, &echo.addr.to_string()).unwrap();
    assert_echoes(&mut stream, b"hello");
    // A UDP association that carried one 4-byte datagram each way.
    let udp_echo = socksgate_tests::UdpEcho::start();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = udp_associate(server.addr(), &socket).unwrap();
    let udp_target =
        socksgate_proto::Address::from(SocketAddr::from(([127, 0, 0, 1], udp_echo.port)));
    send_via(&socket, relay, &udp_target, b"ping");
    recv_via(&socket, Duration::from_secs(5)).unwrap();

    let listed = sessions_until(admin, |listed| {
        listed.len() == 2 && listed[1]["bytes_down"] == 4
    });
    let connect = &listed[0];
    assert_eq!(connect["command"], "connect");
    assert_eq!(connect["user"], "alice");
    assert_eq!(connect["target"], echo.addr.to_string());
    assert_eq!(connect["client"], stream.local_addr().unwrap().to_string());
    assert_eq!(connect["rule"], "rule sessions.toml:4");
    assert_eq!(
        (connect["bytes_up"].as_u64(), connect["bytes_down"].as_u64()),
        (Some(5), Some(5))
    );
    assert!(connect["via"].is_null());
    assert!(
        connect["started"].as_str().unwrap().starts_with("20"),
        "{connect}"
    );
    let association = &listed[1];
    assert_eq!(association["command"], "udp");
    assert!(association["user"].is_null());
    assert_eq!(association["bytes_up"], 4);
    assert!(connect["id"].as_u64() < association["id"].as_u64());

    // A session leaves the list when it ends.
    drop(stream);
    let listed = sessions_until(admin, |listed| listed.len() == 1);
    assert_eq!(listed[0]["command"], "udp");
    drop(control);
    sessions_until(admin, <[_]>::is_empty);
}

/// A server whose configuration is `text` (the loopback listeners replace any it names).
fn server_with(text: &str, name: &str) -> (TestServer, SocketAddr) {
    let mut config = Config::parse(text, Path::new(name)).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    let server = TestServer::start_with(config);
    let admin = server.admin_addr().unwrap();
    (server, admin)
}

/// Opt-in per-user counters: sessions and bytes per authenticated user, the users beyond
/// the bound counted together as "(other)", failed logins under no user.
#[test]
fn per_user_counters_are_bounded_and_count_authenticated_users_only() {
    use socksgate_tests::client::socks5_login;
    let file = socksgate_tests::server::password_file(
        &format!("per-user-{}", line!()),
        &[("alice", "pw"), ("bob", "pw"), ("carol", "pw")],
    );
    let text = "[admin]\naddress = \"127.0.0.1:0\"\nper_user_metrics = 2\n";
    let mut config = Config::parse(text, Path::new("users.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.listeners[0].methods = vec![socksgate_proto::Method::PASSWORD];
    config.timeouts.shutdown = Duration::from_secs(2);
    let passwords = socksgate_auth::PasswordFile::open(&file, None, false).unwrap();
    let server = TestServer::start_with_authenticator(config, Some(std::sync::Arc::new(passwords)));
    let admin = server.admin_addr().unwrap();
    let echo = EchoTarget::start().addr.to_string();
    for user in ["alice", "alice", "bob", "carol"] {
        let mut stream = socks5_login(server.addr(), user.as_bytes(), b"pw", &echo).unwrap();
        assert_echoes(&mut stream, b"hello");
    }
    assert!(socks5_login(server.addr(), b"mallory", b"guess", &echo).is_err());
    server.wait_for_sessions(5);
    let (_, scrape) = get(admin, "/metrics");
    let value =
        |series: &str| sample(&scrape, series).unwrap_or_else(|| panic!("{series} in\n{scrape}"));
    assert_eq!(value("socksgate_user_sessions_total{user=\"alice\"}"), "2");
    assert_eq!(value("socksgate_user_sessions_total{user=\"bob\"}"), "1");
    assert_eq!(
        value("socksgate_user_sessions_total{user=\"(other)\"}"),
        "1"
    );
    assert_eq!(
        value("socksgate_user_bytes_total{user=\"alice\",direction=\"up\"}"),
        "10"
    );
    assert_eq!(
        value("socksgate_user_bytes_total{user=\"(other)\",direction=\"down\"}"),
        "5"
    );
    assert!(
        !scrape.contains("carol") && !scrape.contains("mallory"),
        "{scrape}"
    );

    // Off by default: no per-user series at all.
    let (_plain, plain_admin) = server_with("[admin]\naddress = \"127.0.0.1:0\"\n", "plain.toml");
    assert!(!get(plain_admin, "/metrics").1.contains("socksgate_user_"));
}

/// Upstream health: a chain that fails is set aside (up 0) and its failures counted; the one
/// that carried the request is up and counted as carrying.
#[test]
fn upstream_health_shows_each_chain_in_or_out_of_service() {
    let upstream = TestServer::start();
    // A port with nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"up\"\n\
         chains = [[\"socks5://{dead}\"], [\"socks5://user@{good}\"]]\nmax_failures = 1\n\
         retry_after = \"1h\"\n\n[[rule]]\naction = \"route\"\nroute = \"up\"\n",
        good = upstream.addr()
    );
    let (front, admin) = server_with(&text, "routes.toml");
    let (_, scrape) = get(admin, "/metrics");
    let dead_chain = format!("group=\"up\",chain=\"socks5://{dead}\"");
    let good_chain = format!("group=\"up\",chain=\"socks5://user@{}\"", upstream.addr());
    assert_eq!(
        sample(&scrape, &format!("socksgate_upstream_up{{{dead_chain}}}")).as_deref(),
        Some("1")
    );

    let echo = EchoTarget::start();
    let mut stream = socks5_connect(front.addr(), &echo.addr.to_string()).unwrap();
    assert_echoes(&mut stream, b"routed");
    let (_, scrape) = get(admin, "/metrics");
    let value = |series: String| {
        sample(&scrape, &series).unwrap_or_else(|| panic!("{series} in\n{scrape}"))
    };
    assert_eq!(value(format!("socksgate_upstream_up{{{dead_chain}}}")), "0");
    assert_eq!(value(format!("socksgate_upstream_up{{{good_chain}}}")), "1");
    assert_eq!(
        value(format!(
            "socksgate_upstream_attempts_total{{{dead_chain},result=\"failed\"}}"
        )),
        "1"
    );
    assert_eq!(
        value(format!(
            "socksgate_upstream_attempts_total{{{good_chain},result=\"carried\"}}"
        )),
        "1"
    );
}

/// HTTP clients are counted by protocol, and their requests by method and status class.
#[test]
fn http_requests_are_counted_by_protocol_method_and_status() {
    let text = "[admin]\naddress = \"127.0.0.1:0\"\n\n\
                [[rule]]\naction = \"deny\"\nports = [\"9\"]\n\n\
                [[rule]]\naction = \"allow\"\n";
    let mut config = Config::parse(text, Path::new("http-metrics.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    let server = TestServer::start_with(config);
    let admin = server.admin_addr().unwrap();
    let echo = EchoTarget::start();
    let http = |request: String| {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        (stream, String::from_utf8_lossy(&head).into_owned())
    };
    // A tunnel (200), a forwarded request refused by the rules (403), a malformed one (400).
    let (mut tunnel, status) = http(format!(
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n",
        echo.addr
    ));
    assert_eq!(status, "HTTP/1.1 200");
    let mut rest = [0u8; 27];
    tunnel.read_exact(&mut rest).unwrap(); // " Connection established\r\n\r\n"
    assert_echoes(&mut tunnel, b"hello");
    drop(tunnel);
    assert_eq!(
        http("GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: x\r\n\r\n".to_owned()).1,
        "HTTP/1.1 403"
    );
    assert_eq!(
        http("GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned()).1,
        "HTTP/1.1 400"
    );
    server.wait_for_sessions(3);
    let (_, scrape) = get(admin, "/metrics");
    for (series, value) in [
        (
            "socksgate_sessions_by_protocol_total{protocol=\"http\"}",
            "3",
        ),
        (
            "socksgate_http_requests_total{method=\"CONNECT\",status=\"2xx\"}",
            "1",
        ),
        (
            "socksgate_http_requests_total{method=\"GET\",status=\"4xx\"}",
            "1",
        ),
        (
            "socksgate_http_requests_total{method=\"-\",status=\"4xx\"}",
            "1",
        ),
        (
            "socksgate_sessions_total{command=\"http\",outcome=\"denied\"}",
            "1",
        ),
        (
            "socksgate_sessions_total{command=\"-\",outcome=\"bad-request\"}",
            "1",
        ),
    ] {
        assert_eq!(
            sample(&scrape, series).as_deref(),
            Some(value),
            "{series}\n{scrape}"
        );
    }
}
