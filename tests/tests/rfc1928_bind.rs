//! RFC 1928 §4/§6 and SOCKS4: the BIND command over real sockets — two replies, the
//! expected peer only, data both ways, the wait's timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socksgate_proto::client::{ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::{Address, Command, Reply};
use socksgate_tests::client::{connect_from, HandshakeFailure};
use socksgate_tests::rejected_with;
use socksgate_tests::{handshake, TestServer};

/// Sends a BIND request and returns the control connection, the machine (waiting for the
/// second reply) and where the peer must connect.
fn bind(
    proxy: SocketAddr,
    protocol: ClientProtocol,
    expected_peer: &str,
) -> (TcpStream, ClientHandshake, SocketAddr) {
    let mut machine =
        ClientHandshake::new(protocol, Command::BIND, expected_peer.parse().unwrap()).unwrap();
    let mut control = TcpStream::connect(proxy).unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Drive the machine up to the first reply only.
    let mut events = Vec::new();
    let mut input = Vec::new();
    while !events
        .iter()
        .any(|e| matches!(e, ClientEvent::Granted { .. }))
    {
        let pending = machine.pending_output().to_vec();
        control.write_all(&pending).unwrap();
        machine.output_written(pending.len());
        match machine.feed(&input).unwrap() {
            socksgate_proto::Step::Event { used, event } => {
                input.drain(..used);
                events.push(event);
            }
            socksgate_proto::Step::NeedMore { at_least } => {
                let start = input.len();
                input.resize(start + at_least.get(), 0);
                control.read_exact(&mut input[start..]).unwrap();
            }
            socksgate_proto::Step::Idle => panic!("idle before the first reply"),
        }
    }
    let Some(ClientEvent::Granted { bound }) = events.pop() else {
        unreachable!()
    };
    let mut listening = bound.socket_addr().unwrap();
    if listening.ip().is_unspecified() {
        // SOCKS4: 0.0.0.0 means "the proxy's own address".
        listening.set_ip(proxy.ip());
    }
    (control, machine, listening)
}

/// Completes the handshake (the second reply) and returns the peer address it names.
fn second_reply(
    control: &mut TcpStream,
    machine: ClientHandshake,
) -> Result<Address, HandshakeFailure> {
    let events = handshake(control, machine)?;
    match events.last() {
        Some(ClientEvent::PeerConnected { peer }) => Ok(peer.clone()),
        other => panic!("expected the second reply, got {other:?}"),
    }
}

#[test]
fn socks5_bind_two_replies_then_data_both_ways() {
    let server = TestServer::start();
    let (mut control, machine, listening) =
        bind(server.addr(), ClientProtocol::socks5(), "127.0.0.1:0");
    assert_eq!(
        listening.ip().to_string(),
        "127.0.0.1",
        "routes to the expected peer"
    );
    let mut peer = TcpStream::connect(listening).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let named = second_reply(&mut control, machine).unwrap();
    assert_eq!(named.socket_addr(), Some(peer_addr));

    assert_eq!(peer.write(b"from peer").unwrap(), 9);
    let mut answer = [0u8; 9];
    control.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"from peer");
    control.write_all(b"from client").unwrap();
    let mut answer = [0u8; 11];
    peer.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"from client");
    drop((control, peer));
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["command"], "bind");
    assert_eq!(log[0]["peer"], peer_addr.to_string());
}

#[test]
fn socks4_bind() {
    let server = TestServer::start();
    let protocol = ClientProtocol::Socks4 {
        user_id: b"ftp".to_vec(),
    };
    let (mut control, machine, listening) = bind(server.addr(), protocol, "127.0.0.1:21");
    let mut peer = TcpStream::connect(listening).unwrap();
    let named = second_reply(&mut control, machine).unwrap();
    assert_eq!(named.socket_addr(), Some(peer.local_addr().unwrap()));
    peer.write_all(b"220 data").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    control.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"220 data");
}

#[test]
fn a_peer_other_than_the_expected_one_is_turned_away() {
    let server = TestServer::start();
    let (mut control, machine, listening) =
        bind(server.addr(), ClientProtocol::socks5(), "127.0.0.1:0");
    // 127.0.0.2 is another host as far as the server can tell.
    let mut intruder = connect_from([127, 0, 0, 2].into(), listening).unwrap();
    intruder
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0u8; 1];
    let closed = matches!(intruder.read(&mut buffer), Ok(0) | Err(_));
    assert!(closed, "the intruder's connection is closed");
    let mut peer = TcpStream::connect(listening).unwrap();
    second_reply(&mut control, machine).unwrap();
    assert_echo_pair(&mut control, &mut peer);
    drop((control, peer));
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["rejected_peers"], "1");
}

#[test]
fn the_wait_for_a_peer_times_out_with_ttl_expired() {
    let mut config = TestServer::loopback_config();
    config.bind.timeout = Duration::from_millis(400);
    let server = TestServer::start_with(config);
    let (mut control, machine, _) = bind(server.addr(), ClientProtocol::socks5(), "127.0.0.1:0");
    let result = second_reply(&mut control, machine);
    assert_eq!(rejected_with(result), Reply::TTL_EXPIRED);
}

#[test]
fn data_sent_before_the_peer_arrives_is_delivered_to_it() {
    let server = TestServer::start();
    let (mut control, machine, listening) =
        bind(server.addr(), ClientProtocol::socks5(), "127.0.0.1:0");
    control.write_all(b"early").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut peer = TcpStream::connect(listening).unwrap();
    second_reply(&mut control, machine).unwrap();
    let mut answer = [0u8; 5];
    peer.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"early");
}

#[test]
fn udp_associate_over_socks4_is_not_a_command() {
    let server = TestServer::start();
    let answer =
        socksgate_tests::raw_exchange(server.addr(), &[0x04, 0x03, 0, 80, 127, 0, 0, 1, 0])
            .unwrap();
    assert_eq!(answer, [0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
}

/// The peer's data reaches the client, and the client's the peer.
fn assert_echo_pair(control: &mut TcpStream, peer: &mut TcpStream) {
    peer.write_all(b"ping").unwrap();
    let mut answer = [0u8; 4];
    control.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"ping");
    control.write_all(b"pong").unwrap();
    peer.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"pong");
}

/// Issue #21, finding 8 (BIND): a BIND whose expected peer is a name that does not resolve
/// is refused (0x04), instead of listening for any peer at all.
#[test]
fn a_bind_whose_peer_name_does_not_resolve_is_refused() {
    let mut config = TestServer::loopback_config();
    config.timeouts.connect = Duration::from_secs(2);
    let resolver = std::sync::Arc::new(socksgate_tests::StaticResolver(Default::default()));
    let server = TestServer::start_with_resolver(config, resolver);
    let machine = ClientHandshake::new(
        ClientProtocol::socks5(),
        Command::BIND,
        "nowhere.invalid:21".parse().unwrap(),
    )
    .unwrap();
    let mut control = TcpStream::connect(server.addr()).unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let refused = handshake(&mut control, machine);
    assert_eq!(rejected_with(refused), Reply::HOST_UNREACHABLE);
    assert_eq!(server.wait_for_sessions(1)[0]["outcome"], "unresolved");
}
