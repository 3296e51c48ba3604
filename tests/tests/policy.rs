//! The policy over real sockets: denials with the right reply and the rule in the log,
//! client rules, time windows on an injected clock, the private-destination guard (names
//! included), session limits, bandwidth caps, and per-datagram UDP checks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socksgate_config::Config;
use socksgate_policy::Moment;
use socksgate_proto::client::{ClientError, ClientProtocol};
use socksgate_proto::Reply;
use socksgate_tests::client::{
    connect_from, connect_via, recv_via, send_via, udp_associate, HandshakeFailure,
};
use socksgate_tests::rejected_with;
use socksgate_tests::{
    assert_echoes, raw_exchange, socks5_connect, EchoTarget, TestServer, UdpEcho,
};

/// A loopback test server whose configuration also holds `policy` (TOML).
fn config_with(policy: &str) -> Config {
    let mut config = Config::parse(policy, Path::new("policy.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    config
}

/// `config` with its listener taking SOCKS4 USERIDs as user names (`trust_socks4_userid`):
/// the tests of per-user rules and limits name their users that way.
fn trusting_userids(mut config: Config) -> Config {
    for listener in &mut config.listeners {
        listener.trust_socks4_userid = true;
    }
    config
}

#[test]
fn a_denied_connect_gets_0x02_and_the_log_names_the_rule() {
    let echo = EchoTarget::start();
    let policy = format!(
        "[[rule]]\nto = [\"127.0.0.1\"]\nports = [{port}]\naction = \"allow\"\n\n\
         [[rule]]\nports = [\"1-1023\"]\naction = \"deny\"\n",
        port = echo.addr.port()
    );
    let server = TestServer::start_with(config_with(&policy));
    let mut allowed = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
    assert_echoes(&mut allowed, b"allowed");
    drop(allowed);
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), "127.0.0.1:22")),
        Reply::NOT_ALLOWED
    );
    // Nothing matches port 60000: the default with rules present is deny.
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), "127.0.0.1:60000")),
        Reply::NOT_ALLOWED
    );
    let log = server.wait_for_sessions(3);
    let rule_of = |target: &str| {
        log.iter()
            .find(|e| e["target"] == target)
            .map(|e| e["rule"].clone())
            .unwrap()
    };
    assert_eq!(rule_of(&echo.addr.to_string()), "rule policy.toml:1");
    assert_eq!(rule_of("127.0.0.1:22"), "rule policy.toml:6");
    assert_eq!(rule_of("127.0.0.1:60000"), "no rule matched");
    assert!(log
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .all(|e| e["reply"] == "0x02"));
}

#[test]
fn socks4_denials_are_0x5b() {
    let server = TestServer::start_with(config_with("[[rule]]\nports = [1]\naction = \"allow\"\n"));
    let answer = raw_exchange(server.addr(), &[0x04, 0x01, 0, 80, 127, 0, 0, 1, 0]).unwrap();
    assert_eq!(answer, [0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
    assert_eq!(server.wait_for_sessions(1)[0]["outcome"], "denied");
}

#[test]
fn users_and_names_are_matched_and_names_need_no_lookup_when_a_name_rule_decides() {
    let echo = EchoTarget::start();
    let policy = "[[rule]]\nto = [\"*.blocked.test\"]\naction = \"deny\"\n\n\
                  [[rule]]\nusers = [\"alice\"]\naction = \"allow\"\n";
    let server = TestServer::start_with(trusting_userids(config_with(policy)));
    let alice = ClientProtocol::Socks4a {
        user_id: b"alice".to_vec(),
    };
    // A name nobody can resolve, denied by its name alone.
    let refused = connect_via(server.addr(), alice.clone(), "www.blocked.test:80");
    assert!(matches!(
        refused,
        Err(HandshakeFailure::Socks(ClientError::RejectedV4(_)))
    ));
    let mut stream = connect_via(server.addr(), alice, &echo.addr.to_string()).unwrap();
    assert_echoes(&mut stream, b"alice");
    let bob = ClientProtocol::Socks4a {
        user_id: b"bob".to_vec(),
    };
    assert!(connect_via(server.addr(), bob, &echo.addr.to_string()).is_err());
    drop(stream);
    let log = server.wait_for_sessions(3);
    let blocked = log
        .iter()
        .find(|e| e["target"] == "www.blocked.test:80")
        .unwrap();
    assert_eq!(blocked["rule"], "rule policy.toml:1");
    assert_eq!(
        blocked["outcome"], "denied",
        "denied, not unresolved: no lookup was made"
    );
}

#[test]
fn client_rules_close_other_sources_at_once() {
    let echo = EchoTarget::start();
    let server = TestServer::start_with(config_with(
        "[[client_rule]]\nfrom = [\"127.0.0.1/32\"]\naction = \"allow\"\n",
    ));
    let mut allowed = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
    assert_echoes(&mut allowed, b"local");
    let outsider = connect_from([127, 0, 0, 2].into(), server.addr());
    let mut outsider = outsider.unwrap();
    outsider
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = outsider.write_all(&[0x05, 0x01, 0x00]);
    let mut answer = Vec::new();
    let _ = outsider.read_to_end(&mut answer);
    assert!(answer.is_empty(), "closed without a word: {answer:?}");
    drop(allowed);
    let log = server.wait_for_sessions(2);
    assert!(log
        .iter()
        .any(|e| e["outcome"] == "client-denied" && e["rule"] == "no rule matched"));
}

#[test]
fn time_windows_follow_the_injected_clock() {
    let echo = EchoTarget::start();
    let policy = "[[rule]]\ndays = [\"mon-fri\"]\nhours = \"08:00-18:00\"\naction = \"allow\"\n";
    let now = Arc::new(AtomicU16::new(0)); // (weekday << 11) | minute
    let clock_state = now.clone();
    let clock: socksgate_server::Clock = Arc::new(move || {
        let value = clock_state.load(Ordering::SeqCst);
        Moment {
            weekday: (value >> 11) as u8,
            minute: value & 0x7ff,
        }
    });
    let server = TestServer::start_with_clock(config_with(policy), clock);
    let at = |weekday: u16, hour: u16, minute: u16| {
        now.store((weekday << 11) | (hour * 60 + minute), Ordering::SeqCst)
    };
    let target = echo.addr.to_string();
    at(2, 9, 30); // Wednesday 09:30
    assert!(socks5_connect(server.addr(), &target).is_ok());
    at(2, 18, 0); // Wednesday 18:00: the window has closed
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), &target)),
        Reply::NOT_ALLOWED
    );
    at(5, 10, 0); // Saturday 10:00
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), &target)),
        Reply::NOT_ALLOWED
    );
    at(4, 17, 59); // Friday 17:59
    assert!(socks5_connect(server.addr(), &target).is_ok());
}

#[test]
fn private_destinations_are_denied_by_address_and_by_name() {
    let echo = EchoTarget::start();
    let server =
        TestServer::start_with(config_with("[policy]\ndeny_private_destinations = true\n"));
    let port = echo.addr.port();
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), &format!("127.0.0.1:{port}"))),
        Reply::NOT_ALLOWED
    );
    // "localhost" resolves (through /etc/hosts) to loopback: the name does not get around it.
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), &format!("localhost:{port}"))),
        Reply::NOT_ALLOWED
    );
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), "169.254.169.254:80")),
        Reply::NOT_ALLOWED
    );
    let log = server.wait_for_sessions(3);
    assert!(
        log.iter().all(|e| e["rule"] == "private destination"),
        "{log:#?}"
    );
}

#[test]
fn a_rule_limits_sessions_per_source() {
    let echo = EchoTarget::start();
    let server = TestServer::start_with(config_with(
        "[[rule]]\naction = \"allow\"\nmax_sessions_per_source = 2\n",
    ));
    let target = echo.addr.to_string();
    let first = socks5_connect(server.addr(), &target).unwrap();
    let mut second = socks5_connect(server.addr(), &target).unwrap();
    assert_echoes(&mut second, b"two");
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), &target)),
        Reply::NOT_ALLOWED
    );
    drop(first);
    // The slot comes back when a session ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    while socks5_connect(server.addr(), &target).is_err() {
        assert!(Instant::now() < deadline, "the slot was not released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn server_wide_limits_refuse_the_next_session_per_source_and_per_user() {
    let echo = EchoTarget::start();
    let server = TestServer::start_with(trusting_userids(config_with(
        "[limits]\nmax_sessions_per_source = 2\nmax_sessions_per_user = 1\n",
    )));
    let target = echo.addr.to_string();
    // Two from 127.0.0.1; the third from there is refused with 0x02 (RFC 1928 §6).
    let _first = socks5_connect(server.addr(), &target).unwrap();
    let _second = socks5_connect(server.addr(), &target).unwrap();
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), &target)),
        Reply::NOT_ALLOWED
    );
    let log = server.wait_for_sessions(1);
    assert!(
        log[0]["detail"].contains("limits.max_sessions_per_source"),
        "{log:#?}"
    );
    // Another address is counted on its own.
    echo_from_another_address(server.addr(), &target);

    // One session per user: a SOCKS4 USERID names the user here (the listener trusts it).
    let as_user = |user: &str| {
        let protocol = ClientProtocol::Socks4 {
            user_id: user.as_bytes().to_vec(),
        };
        connect_via(server.addr(), protocol, &target)
    };
    drop(_first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let _alice = loop {
        match as_user("alice") {
            Ok(stream) => break stream,
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the source's slot was not released"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert!(matches!(
        as_user("alice"),
        Err(HandshakeFailure::Socks(ClientError::RejectedV4(_)))
    ));
}

fn assert_within_ten_percent(rate: f64, cap: f64, what: &str) {
    assert!(
        (rate - cap).abs() <= cap * 0.10,
        "{what}: {rate:.0} B/s through a cap of {cap:.0} B/s"
    );
}

/// A cap holds within 10% over 5 seconds (the first second, with its burst, not counted).
#[test]
fn a_rule_bandwidth_cap_holds_within_ten_percent_over_five_seconds() {
    let target = socksgate_tests::endless_source().to_string();
    let server = TestServer::start_with(config_with(
        "[[rule]]\naction = \"allow\"\nbandwidth = \"1MB/s\"\n",
    ));
    let stream = socks5_connect(server.addr(), &target).unwrap();
    let rates = socksgate_tests::download_rates(vec![stream]);
    assert_within_ten_percent(rates[0], 1_000_000.0, "one session");
}

/// A user's cap is shared by all of the user's sessions (each session still moving), and
/// each user has their own: three sessions of alice together, and bob's one, each within 10%
/// of the cap over 5 s.
#[test]
fn a_per_user_bandwidth_cap_is_shared_by_the_users_sessions() {
    let target = socksgate_tests::endless_source().to_string();
    let server = TestServer::start_with(trusting_userids(config_with(
        "[limits]\nbandwidth_per_user = \"1MB/s\"\n",
    )));
    // SOCKS4 USERIDs name the users here.
    let as_user = |user: &str| {
        let protocol = ClientProtocol::Socks4 {
            user_id: user.as_bytes().to_vec(),
        };
        connect_via(server.addr(), protocol, &target).unwrap()
    };
    let streams = vec![
        as_user("alice"),
        as_user("alice"),
        as_user("alice"),
        as_user("bob"),
    ];
    let rates = socksgate_tests::download_rates(streams);
    let alice: f64 = rates[..3].iter().sum();
    assert_within_ten_percent(alice, 1_000_000.0, "alice's three sessions together");
    assert!(
        rates[..3].iter().all(|&rate| rate > 100_000.0),
        "every session of alice moves: {rates:?}"
    );
    assert_within_ten_percent(rates[3], 1_000_000.0, "bob's session");
}

#[test]
fn a_rule_caps_bandwidth() {
    // 1 MiB through a 1 MB/s cap cannot take less than about 0.75 s (a 250 KB burst first).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(&vec![7u8; 1 << 20]).unwrap();
    });
    let server = TestServer::start_with(config_with(
        "[[rule]]\naction = \"allow\"\nbandwidth = \"1MB/s\"\n",
    ));
    let mut stream = socks5_connect(server.addr(), &target.to_string()).unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    assert_eq!(received.len(), 1 << 20);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "took only {:?}",
        started.elapsed()
    );
}

#[test]
fn udp_datagrams_are_judged_one_destination_at_a_time() {
    let allowed = UdpEcho::start();
    let other = UdpEcho::start();
    let policy = format!(
        "[[rule]]\ncommands = [\"udp\"]\nto = [\"127.0.0.1\"]\nports = [{}]\naction = \"allow\"\n",
        allowed.port
    );
    let server = TestServer::start_with(config_with(&policy));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = udp_associate(server.addr(), &socket).unwrap();
    let to = |port: u16| format!("127.0.0.1:{port}").parse().unwrap();
    send_via(&socket, relay, &to(other.port), b"not allowed");
    send_via(&socket, relay, &to(allowed.port), b"allowed");
    assert_eq!(
        recv_via(&socket, Duration::from_secs(3)).unwrap().1,
        b"allowed"
    );
    assert_eq!(other.received(), 0);
    drop(control);
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["dropped_denied"], "1");
    // The total counts every reason, denials too.
    assert_eq!(log[0]["dropped"], "1", "{log:#?}");
    // A CONNECT matches no rule here.
    assert_eq!(
        rejected_with(socks5_connect(server.addr(), &to(allowed.port).to_string())),
        Reply::NOT_ALLOWED
    );
}

/// `limits.connection_rate_per_source`: beyond the burst, a source's connections are closed
/// before a byte is read (logged as rate-limited); another source is not affected.
#[test]
fn connections_beyond_the_rate_per_source_are_closed() {
    let echo = EchoTarget::start();
    let target = echo.addr.to_string();
    let server = TestServer::start_with(config_with("[limits]\nconnection_rate_per_source = 3\n"));
    let started = Instant::now();
    let attempts: Vec<_> = (0..10)
        .map(|_| socks5_connect(server.addr(), &target))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = attempts.iter().filter(|attempt| attempt.is_ok()).count();
    // A burst of 3, plus what refilled (3 per second) while the attempts were made.
    let most = 3 + (elapsed * 3.0).ceil() as usize;
    assert!(
        (3..=most).contains(&admitted),
        "{admitted} of 10 admitted in {elapsed:.2} s"
    );
    let refused = 10 - admitted;
    let log = server.wait_for_sessions(refused);
    let limited: Vec<_> = log
        .iter()
        .filter(|event| event["outcome"] == "rate-limited")
        .collect();
    assert_eq!(limited.len(), refused, "{log:#?}");
    assert_eq!(limited[0]["detail"], "limits.connection_rate_per_source");
    // Another address has its own allowance.
    echo_from_another_address(server.addr(), &target);
}

/// A CONNECT to `target` from 127.0.0.2, and an echo through it.
fn echo_from_another_address(proxy: std::net::SocketAddr, target: &str) {
    let mut other = connect_from([127, 0, 0, 2].into(), proxy).unwrap();
    let machine = socksgate_proto::client::ClientHandshake::new(
        ClientProtocol::socks5(),
        socksgate_proto::Command::CONNECT,
        target.parse().unwrap(),
    )
    .unwrap();
    socksgate_tests::handshake(&mut other, machine).unwrap();
    assert_echoes(&mut other, b"another address");
}

/// Issue #21, finding 3: IPv6 sources are counted per /64 (a client with a /64 has every
/// address in it): the per-source session limit and the connection rate treat two addresses
/// of one /64 as one source, and an address of another /64 as another.
#[test]
fn ipv6_sources_in_one_64_are_one_source() {
    let Some(host) = socksgate_tests::NetNs::create(&[
        "-6 addr add 2001:db8:5::1/64 dev lo nodad",
        "-6 addr add 2001:db8:5::2/64 dev lo nodad",
        "-6 addr add 2001:db8:5::3/64 dev lo nodad",
        "-6 addr add 2001:db8:6::3/64 dev lo nodad",
    ]) else {
        return;
    };
    host.run(|| {
        let echo = EchoTarget::start();
        let target = echo.addr.to_string();
        let mut config =
            config_with("[limits]\nmax_sessions_per_source = 1\nconnection_rate_per_source = 3\n");
        config.listeners = vec![socksgate_config::Listener::open(
            "[2001:db8:5::1]:0".parse().unwrap(),
        )];
        let server = TestServer::start_with(config);
        let session_from = |source: &str| {
            let mut stream = connect_from(source.parse().unwrap(), server.addr()).unwrap();
            let machine = socksgate_proto::client::ClientHandshake::new(
                ClientProtocol::socks5(),
                socksgate_proto::Command::CONNECT,
                target.parse().unwrap(),
            )
            .unwrap();
            socksgate_tests::handshake(&mut stream, machine).map(|_| stream)
        };
        let first = session_from("2001:db8:5::2").unwrap();
        // Another address of the same /64: the same source, over its one session.
        let second = session_from("2001:db8:5::3");
        assert!(second.is_err(), "a second session from the same /64");
        // Another /64 is another source.
        let other = session_from("2001:db8:6::3");
        assert!(other.is_ok(), "{other:?}");
        drop(first);
        // Three connections a second from the /64, whichever address they come from: of ten
        // more in a row, some are closed at once (unless the machine took seconds for them).
        let mut refused = false;
        for source in ["2001:db8:5::2", "2001:db8:5::3"].repeat(5) {
            let mut stream = connect_from(source.parse().unwrap(), server.addr()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let _ = stream.write_all(&[5, 1, 0]);
            let mut reply = [0u8; 2];
            refused |= stream.read_exact(&mut reply).is_err();
        }
        assert!(refused, "the /64 got more than 3 connections a second");
    });
}

/// Issue #21, finding 1: a SOCKS4 USERID is a claim, not a login. On a `methods = ["none"]`
/// listener whose rules allow only alice, a SOCKS4 request claiming to be alice is refused
/// (0x5B) and takes none of alice's sessions; the claim is logged as `claimed_user`.
#[test]
fn a_claimed_socks4_userid_is_not_an_authenticated_user() {
    let echo = EchoTarget::start();
    let server = TestServer::start_with(config_with(
        "[limits]\nmax_sessions_per_user = 1\n\n\
         [[rule]]\nusers = [\"alice\"]\naction = \"allow\"\n\n[[rule]]\naction = \"deny\"\n",
    ));
    let target = echo.addr.to_string();
    let claiming = |user: &str| {
        let protocol = ClientProtocol::Socks4 {
            user_id: user.as_bytes().to_vec(),
        };
        connect_via(server.addr(), protocol, &target)
    };
    let refused = claiming("alice");
    assert!(
        matches!(
            refused,
            Err(HandshakeFailure::Socks(ClientError::RejectedV4(
                socksgate_proto::v4::Reply::REJECTED
            )))
        ),
        "{refused:?}"
    );
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["claimed_user"], "alice", "{log:#?}");
    assert_eq!(log[0]["user"], "-", "{log:#?}");
}

/// Issue #21, finding 1 (limits): a claimed USERID keys no per-user limit. With one session
/// per user allowed, two sessions at once that both claim to be alice are both served
/// (each is nobody in particular), where a trusted USERID would have been refused.
#[test]
fn a_claimed_socks4_userid_takes_no_per_user_slot() {
    let echo = EchoTarget::start();
    let policy = "[limits]\nmax_sessions_per_user = 1\n";
    let target = echo.addr.to_string();
    let claim = |server: &TestServer| {
        let protocol = ClientProtocol::Socks4 {
            user_id: b"alice".to_vec(),
        };
        connect_via(server.addr(), protocol, &target)
    };
    let server = TestServer::start_with(config_with(policy));
    let first = claim(&server).unwrap();
    let second = claim(&server);
    assert!(second.is_ok(), "a claim took alice's slot: {second:?}");
    drop((first, second));
    // The same two where the listener trusts USERIDs: the second is refused.
    let trusting = TestServer::start_with(trusting_userids(config_with(policy)));
    let _first = claim(&trusting).unwrap();
    assert!(
        claim(&trusting).is_err(),
        "a trusted USERID is limited per user"
    );
}

/// A name the rules must resolve to judge (an address rule), which does not resolve: the
/// request is answered 0x04 host unreachable (RFC 1928 §6), as a CONNECT that fails to
/// resolve it is, and logged `unresolved` — the client is not left with a bare close.
#[test]
fn a_name_the_rules_cannot_resolve_gets_0x04_not_a_bare_close() {
    let policy = "[[rule]]\nto = [\"10.0.0.0/8\"]\naction = \"deny\"\n\n\
                  [[rule]]\naction = \"allow\"\n";
    let knows_nothing = socksgate_tests::server::StaticResolver(Default::default());
    let server = TestServer::start_with_resolver(config_with(policy), Arc::new(knows_nothing));
    let reply = rejected_with(socks5_connect(server.addr(), "nowhere.example:80"));
    assert_eq!(reply, Reply::HOST_UNREACHABLE);
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "unresolved", "{log:?}");
    assert_eq!(log[0]["reply"], "0x04", "{log:?}");
}
