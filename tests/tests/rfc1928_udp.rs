//! RFC 1928 §7 over real sockets: UDP ASSOCIATE — relaying to IPv4, IPv6 and named targets,
//! anti-spoofing, NAT-like filtering, fragment reassembly, and the association's lifetime.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use socksgate_config::{Fragments, UdpFiltering};
use socksgate_proto::udp::{Frag, UdpHeader};
use socksgate_proto::{Address, Wire};
use socksgate_tests::client::{recv_via, send_via, udp_associate};
use socksgate_tests::{TestServer, UdpEcho};

const WAIT: Duration = Duration::from_secs(3);
const BRIEF: Duration = Duration::from_millis(300);

fn client_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// A client socket on loopback with an association at `server`: the socket, the control
/// connection (the association lives as long as it) and the relay's address.
fn associate(server: &TestServer) -> (UdpSocket, std::net::TcpStream, SocketAddr) {
    let socket = client_socket();
    let (control, relay) = udp_associate(server.addr(), &socket).unwrap();
    (socket, control, relay)
}

fn target(text: &str) -> Address {
    text.parse().unwrap()
}

/// The echo's IPv4 loopback address, as a SOCKS target.
fn at_loopback(echo: &UdpEcho) -> Address {
    target(&format!("127.0.0.1:{}", echo.port))
}

#[test]
fn echo_through_ipv4_ipv6_and_named_targets() {
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let (socket, _control, relay) = associate(&server);
    let mut targets = vec![
        at_loopback(&echo),
        target(&format!("localhost:{}", echo.port)),
    ];
    if UdpSocket::bind("[::1]:0").is_ok() {
        targets.push(target(&format!("[::1]:{}", echo.port)));
    }
    for (index, destination) in targets.iter().enumerate() {
        let payload = format!("datagram {index}");
        send_via(&socket, relay, destination, payload.as_bytes());
        let (source, data) = recv_via(&socket, WAIT).expect("an answer");
        assert_eq!(data, payload.as_bytes(), "via {destination}");
        assert_eq!(source.port, echo.port);
        assert!(
            source.socket_addr().is_some(),
            "the source is reported as an address"
        );
    }
}

#[test]
fn datagrams_from_a_foreign_source_are_dropped() {
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let (socket, control, relay) = associate(&server);
    let destination = at_loopback(&echo);
    send_via(&socket, relay, &destination, b"mine");
    recv_via(&socket, WAIT).expect("the client's own datagram is relayed");

    // Another host, and another port on the client's host: neither may use the relay.
    let mut intruders = vec![UdpSocket::bind("127.0.0.1:0").unwrap()];
    intruders.extend(UdpSocket::bind("127.0.0.2:0").ok());
    for intruder in &intruders {
        send_via(intruder, relay, &destination, b"spoofed");
    }
    // The relay socket takes datagrams in the order they were sent: once the client's
    // next one has come back, the intruders' were handled (no sleep).
    send_via(&socket, relay, &destination, b"after");
    assert_eq!(
        recv_via(&socket, WAIT).expect("relayed").1,
        b"after",
        "the reply to the client's second datagram"
    );
    assert_eq!(
        echo.received(),
        2,
        "nothing but the client's datagrams reached the target"
    );
    drop(control);
    let log = server.wait_for_sessions(1);
    assert_eq!(
        log[0]["dropped_unexpected_source"],
        intruders.len().to_string()
    );
    assert_eq!(log[0]["datagrams_up"], "2");
}

#[test]
fn only_addressed_targets_may_answer_in_strict_mode() {
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let (socket, _control, relay) = associate(&server);
    send_via(&socket, relay, &at_loopback(&echo), b"hello");
    recv_via(&socket, WAIT).unwrap();
    // A host the client never sent to writes to the relay's port directly.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"unsolicited", relay).unwrap();
    assert_eq!(recv_via(&socket, BRIEF), None);
}

#[test]
fn endpoint_independent_filtering_lets_anyone_answer() {
    let mut config = TestServer::loopback_config();
    config.udp.filtering = UdpFiltering::EndpointIndependent;
    let server = TestServer::start_with(config);
    let echo = UdpEcho::start();
    let (socket, _control, relay) = associate(&server);
    send_via(&socket, relay, &at_loopback(&echo), b"hello");
    recv_via(&socket, WAIT).unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"unsolicited", relay).unwrap();
    let (source, data) = recv_via(&socket, WAIT).expect("relayed in this mode");
    assert_eq!(data, b"unsolicited");
    assert_eq!(source.socket_addr(), Some(stranger.local_addr().unwrap()));
}

fn send_fragment(socket: &UdpSocket, relay: SocketAddr, to: &Address, frag: Frag, data: &[u8]) {
    let mut datagram = UdpHeader {
        frag,
        address: to.clone(),
    }
    .to_bytes();
    datagram.extend_from_slice(data);
    socket.send_to(&datagram, relay).unwrap();
}

fn frag(position: u8, last: bool) -> Frag {
    Frag::fragment(position, last).unwrap()
}

#[test]
fn a_fragment_sequence_arrives_as_one_datagram() {
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let (socket, _control, relay) = associate(&server);
    let to = at_loopback(&echo);
    send_fragment(&socket, relay, &to, frag(1, false), b"first ");
    send_fragment(&socket, relay, &to, frag(2, false), b"second ");
    send_fragment(&socket, relay, &to, frag(3, true), b"third");
    let (_, data) = recv_via(&socket, WAIT).expect("the reassembled datagram, echoed");
    assert_eq!(data, b"first second third");
    assert_eq!(echo.received(), 1);
}

#[test]
fn a_lower_frag_than_the_highest_seen_abandons_the_sequence() {
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let (socket, _control, relay) = associate(&server);
    let to = at_loopback(&echo);
    send_fragment(&socket, relay, &to, frag(1, false), b"old-1 ");
    send_fragment(&socket, relay, &to, frag(2, false), b"old-2 ");
    send_fragment(&socket, relay, &to, frag(1, false), b"new-1 ");
    send_fragment(&socket, relay, &to, frag(2, true), b"new-2");
    let (_, data) = recv_via(&socket, WAIT).unwrap();
    assert_eq!(data, b"new-1 new-2");
    assert_eq!(echo.received(), 1);
}

// The reassembly timer (RFC 1928 §7: no less than 5 s) is tested without waiting on the
// wall clock: crates/proto/tests/rfc1928_fragments.rs passes time to the reassembler the
// association feeds (`the_timer_discards_a_sequence_that_takes_too_long`).

#[test]
fn fragments_can_be_switched_off() {
    let mut config = TestServer::loopback_config();
    config.udp.fragments = Fragments::Drop;
    let server = TestServer::start_with(config);
    let echo = UdpEcho::start();
    let (socket, control, relay) = associate(&server);
    let to = at_loopback(&echo);
    send_fragment(&socket, relay, &to, frag(1, true), b"fragment");
    send_via(&socket, relay, &to, b"whole");
    let (_, data) = recv_via(&socket, WAIT).unwrap();
    assert_eq!(data, b"whole");
    drop(control);
    assert_eq!(server.wait_for_sessions(1)[0]["dropped_fragments"], "1");
}

#[test]
fn the_association_ends_within_a_second_of_its_control_connection() {
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let (socket, control, relay) = associate(&server);
    send_via(&socket, relay, &at_loopback(&echo), b"x");
    recv_via(&socket, WAIT).unwrap();
    assert_eq!(server.stats().associations(), 1);
    drop(control);
    let closed = Instant::now();
    while server.stats().associations() > 0 {
        assert!(
            closed.elapsed() < Duration::from_secs(1),
            "still open after 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    send_via(&socket, relay, &at_loopback(&echo), b"after");
    assert_eq!(recv_via(&socket, BRIEF), None, "the relay socket is gone");
}

#[test]
fn ten_thousand_associations_leave_nothing_behind() {
    // Without the access log, whose capture in this process would grow by itself.
    let mut config = TestServer::loopback_config();
    config.log.access = false;
    let server = TestServer::start_with(config);
    let socket = client_socket();
    let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // Warm up: the runtime's own descriptors and buffers exist after the first one.
    drop(udp_associate(server.addr(), &socket).unwrap());
    while server.stats().sessions() > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = open_fds();
    let rss_before = resident_bytes();
    for _ in 0..10_000 {
        let (control, _relay) = udp_associate(server.addr(), &socket).unwrap();
        drop(control);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().sessions() > 0 || server.stats().associations() > 0 {
        assert!(Instant::now() < deadline, "associations still open");
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = open_fds();
    assert!(
        after <= before + 2,
        "descriptors before {before}, after {after}"
    );
    // Each association held a 64 KiB buffer; 10,000 leaked ones would be 640 MiB, and even
    // 400 leaked bytes each would show. (Measured growth here: about 200 KiB.)
    let growth = resident_bytes().saturating_sub(rss_before);
    assert!(growth < 4 << 20, "resident memory grew by {growth} bytes");
    assert_eq!(server.stats().associations(), 0);
}

/// This process's resident memory, from /proc/self/statm (pages × page size).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * rustix::param::page_size()
}

#[test]
fn relay_port_comes_from_the_range_and_the_reply_advertises_the_configured_address() {
    let mut config = TestServer::loopback_config();
    config.udp.ports = Some(41000..=41009);
    config.udp.advertise_address = Some("127.0.0.9".parse().unwrap());
    let server = TestServer::start_with(config);
    let echo = UdpEcho::start();
    let (socket, _control, relay) = associate(&server);
    assert_eq!(relay.ip().to_string(), "127.0.0.9");
    assert!((41000..=41009).contains(&relay.port()), "{relay}");
    // The advertised address works: the relay listens on every address.
    send_via(&socket, relay, &at_loopback(&echo), b"via NAT");
    assert_eq!(recv_via(&socket, WAIT).unwrap().1, b"via NAT");
}

#[test]
fn an_idle_association_ends() {
    let mut config = TestServer::loopback_config();
    config.udp.idle = Duration::from_millis(300);
    let server = TestServer::start_with(config);
    let socket = client_socket();
    let (mut control, _relay) = udp_associate(server.addr(), &socket).unwrap();
    control.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut control, &mut rest).unwrap();
    assert!(rest.is_empty(), "the server closed the control connection");
    assert_eq!(server.wait_for_sessions(1)[0]["outcome"], "idle-timeout");
}

/// Issue #21, finding 8 (idle timer): datagrams the association drops — here a stranger's,
/// sent to the relay port from another address — do not keep it alive; it still ends when
/// its client has been quiet for the idle timeout.
#[test]
fn dropped_datagrams_do_not_keep_an_association_alive() {
    let mut config = TestServer::loopback_config();
    config.udp.idle = Duration::from_millis(500);
    let server = TestServer::start_with(config);
    let socket = client_socket();
    let (mut control, relay) = udp_associate(server.addr(), &socket).unwrap();
    // The client sends once, so its port is known, then falls silent.
    let echo = UdpEcho::start();
    send_via(&socket, relay, &at_loopback(&echo), b"once");
    assert_eq!(recv_via(&socket, WAIT).unwrap().1, b"once");
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spoofer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Bounded: at most 10 s of one datagram every 50 ms.
            for _ in 0..200 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let _ = stranger.send_to(b"\0\0\0\x01\x7f\0\0\x01\0\x07junk", relay);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();
    control
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let ended = std::io::Read::read_to_end(&mut control, &mut rest);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spoofer.join().unwrap();
    assert!(
        ended.is_ok(),
        "still open after 5 s of a stranger's datagrams: {ended:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.wait_for_sessions(1)[0]["outcome"], "idle-timeout");
}
