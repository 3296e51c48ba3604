//! Issue #23: a gateway that runs for months — nothing lives forever, and a burst of
//! clients is not dropped at the door. Under real network conditions, in network namespaces
//! the tests create.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socksgate_tests::interop::{run, tool};
use socksgate_tests::{NetNs, TestServer};

/// The kernel's counters of connections dropped at a full accept queue, in this namespace.
fn listen_drops() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap();
    let mut lines = text.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let field = |wanted: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(name, _)| *name == wanted)
            .map_or(0, |(_, value)| value.parse().unwrap())
    };
    (field("ListenDrops"), field("ListenOverflows"))
}

/// Point 10: 5,000 connections opened back to back from one process, each with a 1 s
/// connect timeout, are all accepted with no SYN dropped (the namespace's ListenDrops and
/// ListenOverflows unchanged), and the listener's queue is the kernel's somaxconn (`ss`
/// shows it). Before, the standard library's backlog of 128 held the burst back.
#[test]
fn a_burst_of_five_thousand_clients_is_queued_not_dropped() {
    let Some(ss) = tool("ss") else {
        return;
    };
    let Some(namespace) = NetNs::create(&[]) else {
        return;
    };
    namespace.run(|| {
        // Room for both ends of 5,000 connections in this one process.
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let wanted = limit.maximum.map_or(65_536, |maximum| maximum.min(65_536));
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(wanted),
                maximum: limit.maximum,
            },
        )
        .unwrap();
        let server = TestServer::start();
        let address: SocketAddr = server.addr();
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
        let listed = run(
            &ss,
            &["-Hltn", &format!("sport = :{}", address.port())],
            &[],
            10,
        );
        let backlog = listed.stdout.split_whitespace().nth(2).unwrap_or("");
        assert_eq!(
            backlog,
            somaxconn.trim(),
            "the listener's queue: {}",
            listed.stdout
        );
        let before = listen_drops();
        let mut held = Vec::with_capacity(5_000);
        for index in 0..5_000 {
            match TcpStream::connect_timeout(&address, Duration::from_secs(1)) {
                Ok(stream) => held.push(stream),
                Err(error) => panic!("connection {index}: {error}"),
            }
        }
        assert_eq!(listen_drops(), before, "SYNs dropped at the accept queue");
        assert_eq!(held.len(), 5_000);
        drop(held);
        // A configured queue is the one the listener gets.
        let mut config = TestServer::loopback_config();
        config.limits.listen_backlog = Some(64);
        let small = TestServer::start_with(config);
        let listed = run(
            &ss,
            &["-Hltn", &format!("sport = :{}", small.addr().port())],
            &[],
            10,
        );
        assert_eq!(
            listed.stdout.split_whitespace().nth(2),
            Some("64"),
            "{}",
            listed.stdout
        );
    });
}
