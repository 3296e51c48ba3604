//! RFC 1928 over real sockets: the CONNECT command, every reply code produced by a real
//! situation, and the data path after the reply.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::{Command, Reply};
use socksgate_tests::client::{connect_via, HandshakeFailure};
use socksgate_tests::free_port;
use socksgate_tests::rejected_with;
use socksgate_tests::{
    assert_echoes, handshake, raw_exchange, socks5_connect, EchoTarget, NetNs, TestServer,
};

mod section_4_requests {
    use super::*;

    #[test]
    fn connect_to_ipv4_relays_both_ways() {
        let server = TestServer::start();
        let echo = EchoTarget::start();
        let mut stream = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
        assert_echoes(&mut stream, b"ping");
    }

    #[test]
    fn connect_to_ipv6_target() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            socksgate_tests::interop::skip_or_fail("no IPv6 loopback");
            return;
        };
        let target = listener.local_addr().unwrap();
        let accepting = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(b"v6").unwrap();
        });
        let server = TestServer::start();
        let mut stream = socks5_connect(server.addr(), &target.to_string()).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"v6");
        accepting.join().unwrap();
    }

    #[test]
    fn connect_to_a_name_from_etc_hosts() {
        let server = TestServer::start();
        let echo = EchoTarget::start();
        let mut stream =
            socks5_connect(server.addr(), &format!("localhost:{}", echo.addr.port())).unwrap();
        stream.write_all(b"by name").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"by name");
        let log = server.wait_for_sessions(1);
        assert_eq!(log[0]["target"], format!("localhost:{}", echo.addr.port()));
    }

    #[test]
    fn data_pipelined_after_the_request_is_forwarded_first() {
        let server = TestServer::start();
        let echo = EchoTarget::start();
        let mut bytes = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1];
        bytes.extend(echo.addr.port().to_be_bytes());
        bytes.extend(b"early data");
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(&bytes).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert_eq!(answer[..2], [0x05, 0x00], "method selection");
        assert_eq!(answer[2..4], [0x05, 0x00], "reply: succeeded");
        assert_eq!(&answer[12..], b"early data");
    }
}

mod section_6_replies {
    use super::*;

    #[test]
    fn success_reply_names_the_real_outbound_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let accepting = std::thread::spawn(move || listener.accept().unwrap().1);
        let server = TestServer::start();
        let machine = ClientHandshake::new(
            ClientProtocol::socks5(),
            Command::CONNECT,
            target.to_string().parse().unwrap(),
        )
        .unwrap();
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        let events = handshake(&mut stream, machine).unwrap();
        let Some(ClientEvent::Granted { bound }) = events.last() else {
            panic!("expected a grant: {events:?}");
        };
        let seen_by_target = accepting.join().unwrap();
        assert_eq!(bound.socket_addr(), Some(seen_by_target));
    }

    #[test]
    fn closed_port_is_connection_refused_0x05() {
        let server = TestServer::start();
        let target = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        assert_eq!(
            rejected_with(socks5_connect(server.addr(), &target)),
            Reply::CONNECTION_REFUSED
        );
        let log = server.wait_for_sessions(1);
        assert_eq!(log[0]["reply"], "0x05");
        assert!(log[0]["detail"].contains("refused"), "{:?}", log[0]);
    }

    #[test]
    fn failure_reply_is_followed_by_close() {
        let server = TestServer::start();
        let mut bytes = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1];
        bytes.extend(free_port("127.0.0.1").to_be_bytes());
        let started = Instant::now();
        let answer = raw_exchange(server.addr(), &bytes).unwrap();
        assert_eq!(
            answer,
            [0x05, 0x00, 0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0]
        );
        assert!(started.elapsed() < Duration::from_secs(3), "closed at once");
    }

    #[test]
    fn no_route_is_network_unreachable_0x03() {
        // A namespace with loopback only: no route to anything else.
        let Some(namespace) = NetNs::create(&[]) else {
            return;
        };
        namespace.run(|| {
            let server = TestServer::start();
            let reply = rejected_with(socks5_connect(server.addr(), "198.51.100.7:80"));
            assert_eq!(reply, Reply::NETWORK_UNREACHABLE);
        });
    }

    #[test]
    fn unreachable_route_is_host_unreachable_0x04() {
        let Some(namespace) = NetNs::create(&["route add unreachable 192.0.2.0/24"]) else {
            return;
        };
        namespace.run(|| {
            let server = TestServer::start();
            let reply = rejected_with(socks5_connect(server.addr(), "192.0.2.1:80"));
            assert_eq!(reply, Reply::HOST_UNREACHABLE);
        });
    }

    #[test]
    fn unresolvable_name_is_host_unreachable_0x04() {
        // Inside a namespace no resolver is reachable, so nothing leaves the machine.
        let Some(namespace) = NetNs::create(&[]) else {
            return;
        };
        namespace.run(|| {
            let server = TestServer::start();
            let reply = rejected_with(socks5_connect(server.addr(), "no-such-host.invalid:80"));
            assert_eq!(reply, Reply::HOST_UNREACHABLE);
            let log = server.wait_for_sessions(1);
            assert_eq!(log[0]["outcome"], "unresolved");
        });
    }

    #[test]
    fn silent_target_is_ttl_expired_0x06_after_the_connect_timeout() {
        // SYNs go out one end of a veth pair, to a fixed neighbour address, and arrive at
        // the other end, where nothing owns the target address: the target never answers.
        let Some(namespace) = NetNs::create(&[
            "link add sga type veth peer name sgb",
            "link set sga up",
            "link set sgb up",
            "addr add 203.0.113.1/24 dev sga",
            "neigh add 203.0.113.9 lladdr 02:00:00:00:00:09 dev sga",
        ]) else {
            return;
        };
        namespace.run(|| {
            let mut config = TestServer::loopback_config();
            config.timeouts.connect = Duration::from_millis(700);
            let server = TestServer::start_with(config);
            let started = Instant::now();
            let reply = rejected_with(socks5_connect(server.addr(), "203.0.113.9:80"));
            assert_eq!(reply, Reply::TTL_EXPIRED);
            assert!(started.elapsed() >= Duration::from_millis(700));
            assert!(started.elapsed() < Duration::from_secs(5));
        });
    }

    #[test]
    fn unknown_command_is_command_not_supported_0x07() {
        let server = TestServer::start();
        let answer = raw_exchange(
            server.addr(),
            &[
                0x05, 0x01, 0x00, 0x05, 0x09, 0x00, 0x01, 127, 0, 0, 1, 0, 80,
            ],
        )
        .unwrap();
        assert_eq!(answer[..4], [0x05, 0x00, 0x05, 0x07]);
    }

    // docs/extensions/icmp.md: a server without the ICMP extension enabled answers its
    // private command (0xF8) with 0x07, as any unknown command.
    #[test]
    fn the_icmp_extension_command_is_0x07_where_it_is_not_enabled() {
        let server = TestServer::start();
        let answer = raw_exchange(
            server.addr(),
            &[0x05, 0x01, 0x00, 0x05, 0xf8, 0x00, 0x01, 127, 0, 0, 1, 0, 0],
        )
        .unwrap();
        assert_eq!(answer[..4], [0x05, 0x00, 0x05, 0x07]);
        let log = server.wait_for_sessions(1);
        assert_eq!(log[0]["command"], "icmp echo", "{log:#?}");
    }

    #[test]
    fn unknown_address_type_is_0x08() {
        let server = TestServer::start();
        let answer = raw_exchange(
            server.addr(),
            &[
                0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x02, 127, 0, 0, 1, 0, 80,
            ],
        )
        .unwrap();
        assert_eq!(answer[..4], [0x05, 0x00, 0x05, 0x08]);
    }
}

mod socks4 {
    use super::*;

    #[test]
    fn socks4_connect_and_reject() {
        let server = TestServer::start();
        let echo = EchoTarget::start();
        let protocol = ClientProtocol::Socks4 {
            user_id: b"alice".to_vec(),
        };
        let mut stream =
            connect_via(server.addr(), protocol.clone(), &echo.addr.to_string()).unwrap();
        stream.write_all(b"v4").unwrap();
        let mut answer = [0u8; 2];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"v4");
        drop(stream);
        let refused = connect_via(
            server.addr(),
            protocol,
            &format!("127.0.0.1:{}", free_port("127.0.0.1")),
        );
        assert!(matches!(
            refused,
            Err(HandshakeFailure::Socks(ClientError::RejectedV4(r))) if r.0 == 0x5b
        ));
        // The USERID is what the client says, not a login (issue #21): logged as a claim.
        let log = server.wait_for_sessions(2);
        assert!(
            log.iter()
                .all(|entry| entry["claimed_user"] == "alice" && entry["user"] == "-"),
            "{log:?}"
        );
    }

    #[test]
    fn socks4a_resolves_names_on_the_server() {
        let server = TestServer::start();
        let echo = EchoTarget::start();
        let protocol = ClientProtocol::Socks4a { user_id: vec![] };
        let target = format!("localhost:{}", echo.addr.port());
        let mut stream = connect_via(server.addr(), protocol, &target).unwrap();
        assert_echoes(&mut stream, b"4a");
        drop(stream);
        assert_eq!(server.wait_for_sessions(1)[0]["protocol"], "socks4a");
    }

    #[test]
    fn socks4_can_be_switched_off_per_listener() {
        let mut config = TestServer::loopback_config();
        config.listeners[0].socks4 = false;
        let server = TestServer::start_with(config);
        let answer = raw_exchange(server.addr(), &[0x04, 0x01, 0, 80, 127, 0, 0, 1, 0]).unwrap();
        assert_eq!(answer, [0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
    }
}
