//! The client library through chains of socksgate servers: CONNECT, BIND and UDP end to end
//! over three hops, and errors that name the hop that failed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::Path;
use std::time::Duration;

use socksgate_client::{Chain, HopFailure};
use socksgate_config::Config;
use socksgate_proto::client::ClientError;
use socksgate_proto::{Address, Reply};
use socksgate_tests::target::background;
use socksgate_tests::{EchoTarget, TestServer, UdpEcho};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn chain_of(servers: &[&TestServer], flavours: &[&str]) -> Chain {
    servers
        .iter()
        .zip(flavours)
        .map(|(server, flavour)| format!("{flavour}://{}", server.addr()).parse().unwrap())
        .collect()
}

fn three_servers() -> [TestServer; 3] {
    [
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    ]
}

#[test]
fn connect_through_three_hops() {
    let hops = three_servers();
    let echo = EchoTarget::start();
    let chain = chain_of(
        &[&hops[0], &hops[1], &hops[2]],
        &["socks5h", "socks4a", "socks5"],
    );
    background().block_on(async {
        let mut stream = chain.connect(&echo.addr.into()).await.unwrap();
        stream.write_all(b"three hops").await.unwrap();
        let mut answer = [0u8; 10];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"three hops");
    });
    // Each hop connected to the next one, the last to the target.
    let targets: Vec<String> = hops
        .iter()
        .map(|hop| hop.wait_for_sessions(1)[0]["target"].clone())
        .collect();
    assert_eq!(
        targets,
        [
            hops[1].addr().to_string(),
            hops[2].addr().to_string(),
            echo.addr.to_string()
        ]
    );
}

#[test]
fn bind_through_three_hops() {
    let hops = three_servers();
    let chain = chain_of(
        &[&hops[0], &hops[1], &hops[2]],
        &["socks5", "socks5", "socks5"],
    );
    background().block_on(async {
        let listener = chain.bind(&"127.0.0.1:0".parse().unwrap()).await.unwrap();
        let bound = listener.bound().socket_addr().unwrap();
        let mut peer = tokio::net::TcpStream::connect(bound).await.unwrap();
        let peer_addr = peer.local_addr().unwrap();
        let (mut stream, named) = listener.accept().await.unwrap();
        assert_eq!(named.socket_addr(), Some(peer_addr));
        peer.write_all(b"called back").await.unwrap();
        let mut answer = [0u8; 11];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"called back");
    });
}

#[test]
fn udp_through_three_hops() {
    let hops = three_servers();
    let echo = UdpEcho::start();
    let chain = chain_of(
        &[&hops[0], &hops[1], &hops[2]],
        &["socks5", "socks5h", "socks5"],
    );
    let target: Address = format!("127.0.0.1:{}", echo.port).parse().unwrap();
    background().block_on(async {
        let association = chain.udp_associate().await.unwrap();
        let mut buffer = vec![0u8; 2048];
        for round in 0..3 {
            let payload = format!("datagram {round}");
            association
                .send_to(payload.as_bytes(), &target)
                .await
                .unwrap();
            let (len, source) =
                tokio::time::timeout(Duration::from_secs(3), association.recv_from(&mut buffer))
                    .await
                    .expect("an answer")
                    .unwrap();
            assert_eq!(&buffer[..len], payload.as_bytes());
            assert_eq!(source, target);
        }
    });
    assert_eq!(echo.received(), 3);
}

#[test]
fn a_middle_hop_that_is_down_is_named() {
    let first = TestServer::start();
    let last = TestServer::start();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let chain: Chain = [
        format!("socks5://{}", first.addr()),
        format!("socks5://{down}"),
        format!("socks5://{}", last.addr()),
    ]
    .iter()
    .map(|url| url.parse().unwrap())
    .collect();
    let error = background()
        .block_on(chain.connect(&"127.0.0.1:9".parse().unwrap()))
        .unwrap_err();
    assert_eq!(error.hop, 2, "{error}");
    assert!(matches!(
        error.failure,
        HopFailure::UnreachableVia(ClientError::Rejected(Reply::CONNECTION_REFUSED))
    ));
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("hop 2 (socks5://{down})")),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
}

#[test]
fn a_middle_hop_that_refuses_is_named_with_its_reply() {
    let first = TestServer::start();
    let mut deny_all =
        Config::parse("[[rule]]\naction = \"deny\"\n", Path::new("deny.toml")).unwrap();
    deny_all.listeners = TestServer::loopback_config().listeners;
    let middle = TestServer::start_with(deny_all);
    let last = TestServer::start();
    let chain = chain_of(&[&first, &middle, &last], &["socks5", "socks5", "socks5"]);
    let error = background()
        .block_on(chain.connect(&"127.0.0.1:9".parse().unwrap()))
        .unwrap_err();
    assert_eq!(error.hop, 2, "{error}");
    assert!(
        matches!(
            error.failure,
            HopFailure::Refused(ClientError::Rejected(Reply::NOT_ALLOWED))
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("connection not allowed by ruleset"),
        "{error}"
    );
}
