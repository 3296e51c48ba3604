//! Server routes: `route` rules send CONNECT, BIND and UDP through upstream groups of
//! socksgate chains, with failover and retry after the backoff.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use socksgate_config::{Config, Listener};
use socksgate_proto::Reply;
use socksgate_tests::client::{recv_via, send_via, udp_associate};
use socksgate_tests::rejected_with;
use socksgate_tests::{assert_echoes, socks5_connect, EchoTarget, TestServer, UdpEcho};

/// A front server whose every request is routed through `group` (TOML for [[upstream]]).
fn front(group: &str) -> TestServer {
    let text = format!("{group}\n[[rule]]\naction = \"route\"\nroute = \"up\"\n");
    front_of(&text, "front.toml")
}

/// A loopback server with the configuration `text` (as the file `name`).
fn front_of(text: &str, name: &str) -> TestServer {
    let mut config = Config::parse(text, Path::new(name)).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    TestServer::start_with(config)
}

fn group(chains: &[&[String]], extra: &str) -> String {
    let chains: Vec<String> = chains
        .iter()
        .map(|chain| {
            let urls: Vec<String> = chain.iter().map(|url| format!("{url:?}")).collect();
            format!("[{}]", urls.join(", "))
        })
        .collect();
    format!(
        "[[upstream]]\nname = \"up\"\nchains = [{}]\n{extra}",
        chains.join(", ")
    )
}

#[test]
fn connect_bind_and_udp_go_through_the_upstream_chain() {
    let (a, b) = (TestServer::start(), TestServer::start());
    let chain = [
        format!("socks5://{}", a.addr()),
        format!("socks5h://{}", b.addr()),
    ];
    let front = front(&group(&[&chain], ""));

    let echo = EchoTarget::start();
    let mut stream = socks5_connect(front.addr(), &echo.addr.to_string()).unwrap();
    assert_echoes(&mut stream, b"routed");
    drop(stream);
    let front_log = front.wait_for_sessions(1);
    assert!(front_log[0]["rule"].ends_with("via up"), "{front_log:#?}");
    assert_eq!(b.wait_for_sessions(1)[0]["target"], echo.addr.to_string());

    // UDP: datagrams re-wrapped at each hop.
    let udp_echo = UdpEcho::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = udp_associate(front.addr(), &socket).unwrap();
    let target = format!("127.0.0.1:{}", udp_echo.port).parse().unwrap();
    send_via(&socket, relay, &target, b"routed datagram");
    let (source, data) = recv_via(&socket, Duration::from_secs(3)).expect("an answer");
    assert_eq!(data, b"routed datagram");
    assert_eq!(source, target);
    drop(control);

    // BIND: the last hop listens; the peer connects there.
    let machine = socksgate_proto::client::ClientHandshake::new(
        socksgate_proto::client::ClientProtocol::socks5(),
        socksgate_proto::Command::BIND,
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let mut control = TcpStream::connect(front.addr()).unwrap();
    let bound = first_bind_reply(&mut control, machine);
    let mut peer = TcpStream::connect(bound).unwrap();
    let mut second = [0u8; 10];
    control.read_exact(&mut second).unwrap();
    assert_eq!(second[1], 0x00, "second reply: the peer connected");
    peer.write_all(b"callback").unwrap();
    let mut answer = [0u8; 8];
    control.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"callback");
}

/// Runs a BIND handshake up to the first reply; returns where the peer must connect.
fn first_bind_reply(
    control: &mut TcpStream,
    machine: socksgate_proto::client::ClientHandshake,
) -> std::net::SocketAddr {
    let mut machine = machine;
    let greeting = machine.pending_output().to_vec();
    control.write_all(&greeting).unwrap();
    machine.output_written(greeting.len());
    let mut selection = [0u8; 2];
    control.read_exact(&mut selection).unwrap();
    machine.feed(&selection).unwrap();
    let request = machine.pending_output().to_vec();
    control.write_all(&request).unwrap();
    let mut reply = [0u8; 10];
    control.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], 0x00, "first reply: listening");
    std::net::SocketAddr::from((
        [reply[4], reply[5], reply[6], reply[7]],
        u16::from_be_bytes([reply[8], reply[9]]),
    ))
}

#[test]
fn a_dead_member_fails_over_and_is_retried_after_its_backoff() {
    let spare = TcpListener::bind("127.0.0.1:0").unwrap();
    let down_address = spare.local_addr().unwrap();
    drop(spare);
    let up = TestServer::start();
    let members = [
        vec![format!("socks5://{down_address}")],
        vec![format!("socks5://{}", up.addr())],
    ];
    let front = front(&group(
        &[&members[0], &members[1]],
        "selection = \"failover\"\nmax_failures = 1\nretry_after = \"1s\"\n",
    ));
    let echo = EchoTarget::start();
    let target = echo.addr.to_string();

    // The first member is down: the session goes through the second.
    let before_set_aside = Instant::now();
    drop(socks5_connect(front.addr(), &target).unwrap());
    // The member was set aside before this.
    let set_aside_by = Instant::now();
    assert_eq!(up.wait_for_sessions(1).len(), 1);

    // The first member comes back, but it is set aside until its backoff ends.
    let mut config = TestServer::loopback_config();
    config.listeners = vec![Listener::open(down_address)];
    let revived = TestServer::start_with(config);
    // When the latest session still sent through the second member started.
    let mut still_aside_at = Instant::now();
    drop(socks5_connect(front.addr(), &target).unwrap());
    assert_eq!(up.wait_for_sessions(2).len(), 2);
    assert!(revived.access_log().is_empty(), "still set aside");

    // Until its backoff (1 s) ends, sessions go on through the second member; polled, not
    // slept for. Each session is logged by the member that carried it.
    let mut through_up = 2;
    loop {
        assert!(
            before_set_aside.elapsed() < Duration::from_secs(10),
            "never retried"
        );
        let started = Instant::now();
        drop(socks5_connect(front.addr(), &target).unwrap());
        let logged = Instant::now() + Duration::from_secs(5);
        while up.access_log().len() + revived.access_log().len() < through_up + 1 {
            assert!(Instant::now() < logged, "the session was never logged");
            std::thread::sleep(Duration::from_millis(5));
        }
        if !revived.access_log().is_empty() {
            break;
        }
        through_up += 1;
        still_aside_at = started;
        std::thread::sleep(Duration::from_millis(50));
    }
    // A session that started at least 0.5 s after the member was set aside still went
    // round it, so the backoff lasted that long (whatever the load: each bound is taken on
    // the safe side; polled every ~50 ms, the last such session starts close to 1 s).
    assert!(
        still_aside_at.duration_since(set_aside_by) >= Duration::from_millis(500),
        "retried before half its backoff had passed"
    );
    assert_eq!(revived.access_log().len(), 1);
    assert_eq!(up.access_log().len(), through_up);
}

#[test]
fn replies_say_whether_the_target_or_the_upstream_failed() {
    let up = TestServer::start();
    let front_ok = front(&group(&[&[format!("socks5://{}", up.addr())]], ""));
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // The target refuses: the upstream's 0x05 is passed on.
    let refused = socks5_connect(front_ok.addr(), &closed.to_string());
    assert_eq!(rejected_with(refused), Reply::CONNECTION_REFUSED);
    // No member works: general failure.
    let front_dead = front(&group(&[&[format!("socks5://{closed}")]], ""));
    let failed = socks5_connect(front_dead.addr(), "127.0.0.1:9");
    assert_eq!(rejected_with(failed), Reply::GENERAL_FAILURE);
    assert_eq!(
        front_dead.wait_for_sessions(1)[0]["outcome"],
        "upstream-failed"
    );
}

/// Issue #21, finding 8 (routed UDP): a datagram routed to an upstream and addressed by name
/// is judged by the rules like a direct one: a name the rules deny is dropped (and counted),
/// an allowed one goes through the chain, whose last hop resolves it.
#[test]
fn routed_datagrams_addressed_by_name_are_judged_by_the_rules() {
    let names = [
        ("echo.allowed.test".to_owned(), "127.0.0.1".parse().unwrap()),
        ("echo.blocked.test".to_owned(), "127.0.0.1".parse().unwrap()),
    ];
    let resolver =
        std::sync::Arc::new(socksgate_tests::StaticResolver(names.into_iter().collect()));
    let upstream = TestServer::start_with_resolver(TestServer::loopback_config(), resolver);
    let text = format!(
        "{}\n[[rule]]\nto = [\"*.blocked.test\"]\naction = \"deny\"\n\n\
         [[rule]]\naction = \"route\"\nroute = \"up\"\n",
        group(&[&[format!("socks5h://{}", upstream.addr())]], "")
    );
    let front = front_of(&text, "front.toml");
    let udp_echo = UdpEcho::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = udp_associate(front.addr(), &socket).unwrap();
    let blocked = format!("echo.blocked.test:{}", udp_echo.port)
        .parse()
        .unwrap();
    let allowed = format!("echo.allowed.test:{}", udp_echo.port)
        .parse()
        .unwrap();
    send_via(&socket, relay, &blocked, b"denied by name");
    send_via(&socket, relay, &allowed, b"allowed by name");
    let (_, data) = recv_via(&socket, Duration::from_secs(3)).expect("an answer");
    assert_eq!(
        data, b"allowed by name",
        "the denied name went through first"
    );
    assert!(
        recv_via(&socket, Duration::from_millis(500)).is_none(),
        "the denied name went through"
    );
    drop(control);
    let log = front.wait_for_sessions(1);
    assert_eq!(log[0]["dropped_denied"], "1", "{log:#?}");
    assert_eq!(log[0]["dropped"], "1", "{log:#?}");
}

/// The private-destination guard is about what this host reaches: a routed request is the
/// upstream's to resolve and to reach. With the guard on at the front, a CONNECT routed by
/// name to a name only the upstream knows (`intranet.test`, an address on loopback there)
/// is served: the front resolves nothing (a `.onion` name to Tor works the same way).
/// Before, the front resolved the name to apply the guard, failed, and answered 0x04.
#[test]
fn a_routed_name_is_resolved_by_the_upstream_even_under_the_private_guard() {
    use socksgate_tests::server::StaticResolver;
    let echo = EchoTarget::start();
    let knows_intranet = StaticResolver(
        [("intranet.test".to_owned(), echo.addr.ip())]
            .into_iter()
            .collect(),
    );
    let upstream = TestServer::start_with_resolver(
        TestServer::loopback_config(),
        std::sync::Arc::new(knows_intranet),
    );
    let text = format!(
        "{}\n[policy]\ndeny_private_destinations = true\n\n\
         [[rule]]\nto = [\"intranet.test\"]\naction = \"route\"\nroute = \"up\"\n",
        group(&[&[format!("socks5h://{}", upstream.addr())]], "")
    );
    let mut config = Config::parse(&text, Path::new("guarded.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    let knows_nothing = StaticResolver(Default::default());
    let front = TestServer::start_with_resolver(config, std::sync::Arc::new(knows_nothing));
    let target = format!("intranet.test:{}", echo.addr.port());
    let mut stream = socks5_connect(front.addr(), &target).unwrap();
    assert_echoes(&mut stream, b"resolved over there");
    drop(stream);
    assert_eq!(upstream.wait_for_sessions(1)[0]["target"], target);
    let front_log = front.wait_for_sessions(1);
    assert!(front_log[0]["rule"].ends_with("via up"), "{front_log:#?}");
}

/// A UDP association goes out one way, chosen by its own rule (destinations aside): a
/// datagram whose own rule routes it must not leave directly from this host. Here the
/// association is direct (its rule allows 127.0.0.9), and a datagram to the echo on
/// 127.0.0.1, which a `route` rule sends upstream, is dropped as denied — it went out
/// directly, past the rule and the private-destination guard, before.
#[test]
fn a_direct_association_does_not_send_what_a_route_rule_takes() {
    let upstream = TestServer::start();
    let text = format!(
        "{}\n[[rule]]\nto = [\"127.0.0.9\"]\naction = \"allow\"\n\n\
         [[rule]]\nto = [\"127.0.0.1\"]\naction = \"route\"\nroute = \"up\"\n",
        group(&[&[format!("socks5://{}", upstream.addr())]], "")
    );
    let front = front_of(&text, "mixed.toml");
    let echo = UdpEcho::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = udp_associate(front.addr(), &socket).unwrap();
    let target = format!("127.0.0.1:{}", echo.port).parse().unwrap();
    send_via(&socket, relay, &target, b"routed elsewhere");
    assert!(
        recv_via(&socket, Duration::from_millis(500)).is_none(),
        "a datagram a route rule takes left directly"
    );
    drop(control);
    let log = front.wait_for_sessions(1);
    assert_eq!(log[0]["dropped_denied"], "1", "{log:#?}");
    assert_eq!(log[0]["dropped"], "1", "{log:#?}");
}

/// The other way round: an association routed upstream (its rule routes 127.0.0.9) still
/// carries what the rules allow rather than route — directly, as a direct association
/// would: the echo on 127.0.0.1 answers, and the upstream relays nothing.
#[test]
fn a_routed_association_sends_what_the_rules_allow_directly() {
    let upstream = TestServer::start();
    let text = format!(
        "{}\n[[rule]]\nto = [\"127.0.0.9\"]\naction = \"route\"\nroute = \"up\"\n\n\
         [[rule]]\naction = \"allow\"\n",
        group(&[&[format!("socks5://{}", upstream.addr())]], "")
    );
    let front = front_of(&text, "mixed-routed.toml");
    let echo = UdpEcho::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = udp_associate(front.addr(), &socket).unwrap();
    let target = format!("127.0.0.1:{}", echo.port).parse().unwrap();
    send_via(&socket, relay, &target, b"allowed, not routed");
    let answer = recv_via(&socket, Duration::from_secs(3));
    assert_eq!(
        answer.map(|(_, data)| data),
        Some(b"allowed, not routed".to_vec())
    );
    drop(control);
    let log = front.wait_for_sessions(1);
    assert_eq!(
        log[0]["rule"], "rule mixed-routed.toml:5",
        "the routed rule: {log:#?}"
    );
    let relayed = upstream.wait_for_sessions(1);
    assert_eq!(relayed[0]["datagrams_up"], "0", "{relayed:#?}");
}

/// Issue #23: a routed association ends when its upstream ends its part (here the
/// upstream's own UDP idle timeout of 1 s; a restart would do the same): the front logs
/// `upstream-closed` and closes the client's control connection, so that the client knows
/// to open another (RFC 1928 §7). Before, the front went on relaying into the ended
/// association, and a client that kept sending never heard back.
#[test]
fn a_routed_association_ends_when_its_upstream_does() {
    let mut config = TestServer::loopback_config();
    config.udp.idle = Duration::from_secs(1);
    let upstream = TestServer::start_with(config);
    let front = front(&group(&[&[format!("socks5://{}", upstream.addr())]], ""));
    let echo = UdpEcho::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut control, relay) = udp_associate(front.addr(), &socket).unwrap();
    let target = format!("127.0.0.1:{}", echo.port).parse().unwrap();
    send_via(&socket, relay, &target, b"routed");
    let answer = recv_via(&socket, Duration::from_secs(3)).map(|(_, data)| data);
    assert_eq!(answer, Some(b"routed".to_vec()));
    let ended = upstream.wait_for_sessions(1);
    assert_eq!(ended[0]["outcome"], "idle-timeout", "{ended:#?}");
    let log = front.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "upstream-closed", "{log:#?}");
    control
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = control.read(&mut byte);
    assert!(
        matches!(read, Ok(0))
            || read.is_err_and(|error| error.kind() != std::io::ErrorKind::WouldBlock),
        "the client's control connection is still open"
    );
}

/// A hostile upstream: a SOCKS5 server for one UDP association that answers each datagram
/// with `junk` malformed datagrams from its relay before the real echo. Returns its address
/// and, once the first datagram came, where the front's datagrams come from.
fn junk_spraying_upstream(
    junk: usize,
) -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<std::net::SocketAddr>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (sender_seen, senders) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut control, _) = listener.accept().unwrap();
        let mut head = [0u8; 2];
        control.read_exact(&mut head).unwrap();
        let mut methods = vec![0u8; usize::from(head[1])];
        control.read_exact(&mut methods).unwrap();
        control.write_all(&[5, 0]).unwrap();
        let mut request = [0u8; 4];
        control.read_exact(&mut request).unwrap();
        let rest = match request[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            _ => {
                let mut length = [0u8; 1];
                control.read_exact(&mut length).unwrap();
                usize::from(length[0]) + 2
            }
        };
        control.read_exact(&mut vec![0u8; rest]).unwrap();
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(bound) = relay.local_addr().unwrap() else {
            unreachable!()
        };
        let mut reply = vec![5, 0, 0, 1];
        reply.extend_from_slice(&bound.ip().octets());
        reply.extend_from_slice(&bound.port().to_be_bytes());
        control.write_all(&reply).unwrap();
        let mut datagram = [0u8; 2048];
        while let Ok((len, from)) = relay.recv_from(&mut datagram) {
            let _ = sender_seen.send(from);
            for index in 0..junk {
                // Too short for a header, a fragment, an unknown address type: all dropped.
                let junk: &[u8] = match index % 3 {
                    0 => &[0, 0],
                    1 => &[0, 0, 1, 1, 127, 0, 0, 1, 0, 7, b'x'],
                    _ => &[0, 0, 0, 9, 1, 2, 3],
                };
                relay.send_to(junk, from).unwrap();
            }
            // The echo, as from the target the datagram named (same header).
            relay.send_to(&datagram[..len], from).unwrap();
        }
        drop(control);
    });
    (address, senders)
}

/// Issue #23 (review): a routed association whose upstream sprays malformed datagrams
/// from its relay, and a stranger who sprays the chain's socket, drops them all (counted as
/// malformed) and still relays the real replies.
#[test]
fn junk_from_the_upstream_or_a_stranger_does_not_disturb_a_routed_association() {
    // Within what the socket buffer holds at once (the kernel would drop the rest).
    const JUNK: usize = 100;
    let (upstream, front_senders) = junk_spraying_upstream(JUNK);
    let front = front(&group(&[&[format!("socks5://{upstream}")]], ""));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = udp_associate(front.addr(), &socket).unwrap();
    let target = "127.0.0.1:9999".parse().unwrap();
    for round in 0..3u8 {
        let payload = [b'r', b'0' + round];
        send_via(&socket, relay, &target, &payload);
        let answer = recv_via(&socket, Duration::from_secs(3)).map(|(_, data)| data);
        assert_eq!(answer, Some(payload.to_vec()), "round {round}");
        // A stranger who found the front's chain socket sprays it too.
        let chain_socket = front_senders.recv().unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..JUNK {
            stranger
                .send_to(&[0, 0, 0, 1, 127, 0, 0, 1, 0, 7, b's'], chain_socket)
                .unwrap();
        }
    }
    drop(control);
    let log = front.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "closed", "{log:#?}");
    let dropped: usize = log[0]["dropped_malformed"].parse().unwrap();
    // The upstream's junk, and the stranger's that arrived before the control closed.
    assert!(dropped >= 3 * JUNK, "{log:#?}");
}
