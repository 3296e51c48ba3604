//! socksgate's ICMP extension end to end (`docs/extensions/icmp.md`): `socksgate ping` and
//! `socksgate traceroute` through a socksgate server, in namespaces each test creates: the
//! server's host, two routers, and a target host (`NetNs::routed_path`). Nothing changes on
//! the host: `ping_group_range` is widened inside the server's namespace only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use socksgate_config::Config;
use socksgate_proto::client::{ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::icmp::IcmpMessage;
use socksgate_proto::{Address, Wire};
use socksgate_tests::count_where;
use socksgate_tests::netns::RoutedPath;
use socksgate_tests::{handshake, NetNs, TestServer};

const SOCKSGATE: &str = env!("CARGO_BIN_EXE_socksgate");

/// Every group may open ping sockets (the default in a new namespace is none).
const EVERY_GROUP: &str = "0 2147483647";

/// A routed path with a socksgate server on the client host, configured by `toml`.
struct Site {
    server: TestServer,
    path: RoutedPath,
}

impl Site {
    fn new(toml: &str, widen_ping_sockets: bool) -> Option<Self> {
        let path = NetNs::routed_path()?;
        if widen_ping_sockets {
            path.client.sysctl("net.ipv4.ping_group_range", EVERY_GROUP);
        }
        let server = serve(&path.client, toml);
        Some(Self { server, path })
    }

    fn proxy(&self) -> String {
        proxy_url(&self.server)
    }

    /// `socksgate ARGS…` run on the server's host, with the server as its proxy.
    fn run(&self, command: &str, args: &[&str]) -> Outcome {
        let proxy = self.proxy();
        let mut full = vec![command, "-x", &proxy];
        full.extend_from_slice(args);
        socksgate_in(&self.path.client, &full)
    }
}

fn serve(namespace: &NetNs, toml: &str) -> TestServer {
    let mut config = Config::parse(toml, Path::new("icmp.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.timeouts.shutdown = Duration::from_secs(2);
    namespace.run(|| TestServer::start_with(config))
}

fn proxy_url(server: &TestServer) -> String {
    format!("socks5h://{}", server.addr())
}

fn icmp_on(socket: &str) -> String {
    format!("[icmp]\nenabled = true\nsocket = \"{socket}\"\n")
}

/// What a `socksgate` command printed, and its exit code.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn socksgate_in(namespace: &NetNs, args: &[&str]) -> Outcome {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", namespace.name(), SOCKSGATE])
        .args(args)
        .output()
        .unwrap();
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The round-trip time of a `… time=0.123 ms` line, in milliseconds.
fn time_of(line: &str) -> f64 {
    let time = line.split("time=").nth(1).unwrap();
    time.trim_end_matches(" ms").parse().unwrap()
}

#[test]
fn ping_reaches_a_host_two_routers_away_on_both_kinds_of_socket() {
    for socket in ["ping", "raw"] {
        let Some(site) = Site::new(&icmp_on(socket), socket == "ping") else {
            return;
        };
        let ping = site.run("ping", &["-c", "3", "-i", "0.2", "10.3.0.2"]);
        assert_eq!(ping.code, Some(0), "{socket}: {ping:#?}");
        let replies: Vec<&str> = ping
            .stdout
            .lines()
            .filter(|line| line.starts_with("64 bytes from 10.3.0.2"))
            .collect();
        assert_eq!(replies.len(), 3, "{socket}: {}", ping.stdout);
        for (index, reply) in replies.iter().enumerate() {
            // Two routers each take one from the target's TTL of 64.
            let expected = format!("icmp_seq={} ttl=62 time=", index + 1);
            assert!(reply.contains(&expected), "{socket}: {reply}");
            let time = time_of(reply);
            assert!(time > 0.0 && time < 1000.0, "{socket}: {reply}");
        }
        assert!(
            ping.stdout
                .contains("3 packets transmitted, 3 received, 0% packet loss"),
            "{socket}: {}",
            ping.stdout
        );
        assert!(ping.stdout.contains("rtt min/avg/max/mdev = "));
        let log = site.server.wait_for_sessions(1);
        assert_eq!(log[0]["command"], "icmp echo");
        assert_eq!(log[0]["target"], "10.3.0.2:0");
        assert_eq!(log[0]["outcome"], "closed");
        // Three echo requests of 3 + 3 + 56 bytes; three replies of 3 + 7 + 56.
        assert_eq!(log[0]["bytes_up"], "186", "{log:#?}");
        assert_eq!(log[0]["bytes_down"], "198", "{log:#?}");

        // ICMPv6 on the same kind of socket (the server's own ::1), with a TTL and a size.
        let ping6 = site.run("ping", &["-c", "1", "-s", "1000", "-t", "9", "::1"]);
        assert_eq!(ping6.code, Some(0), "{socket}: {ping6:#?}");
        assert!(
            ping6.stdout.contains("1008 bytes from ::1: icmp_seq=1"),
            "{socket}: {}",
            ping6.stdout
        );
        assert!(!ping6.stdout.contains("wrong data"));
    }
}

#[test]
fn traceroute_lists_both_routers_then_the_target_on_both_kinds_of_socket() {
    for socket in ["ping", "raw"] {
        let Some(site) = Site::new(&icmp_on(socket), socket == "ping") else {
            return;
        };
        let trace = site.run("traceroute", &["-w", "2", "10.3.0.2"]);
        assert_eq!(trace.code, Some(0), "{socket}: {trace:#?}");
        let lines: Vec<&str> = trace.stdout.lines().collect();
        assert_eq!(
            lines[0], "traceroute to 10.3.0.2 (10.3.0.2), 30 hops max, 60 byte packets",
            "{socket}"
        );
        let hops = ["10.1.0.2", "10.2.0.2", "10.3.0.2"];
        assert_eq!(lines.len(), 1 + hops.len(), "{socket}: {}", trace.stdout);
        for (index, (line, hop)) in lines[1..].iter().zip(hops).enumerate() {
            let prefix = format!("{:>2}  {hop}  ", index + 1);
            assert!(line.starts_with(&prefix), "{socket}: {line:?}");
            assert_eq!(line.matches(" ms").count(), 3, "{socket}: {line:?}");
            assert!(
                !line.contains('*') && !line.contains('!'),
                "{socket}: {line}"
            );
        }
    }
}

#[test]
fn unreachable_and_silent_hosts_are_reported_as_ping_reports_them() {
    for socket in ["ping", "raw"] {
        let Some(site) = Site::new(&icmp_on(socket), socket == "ping") else {
            return;
        };
        // Router 2 has an `unreachable` route for 10.9.0.0/24.
        let ping = site.run("ping", &["-c", "2", "-i", "0.2", "-W", "2", "10.9.0.9"]);
        assert_eq!(ping.code, Some(1), "{socket}: {ping:#?}");
        for seq in [1, 2] {
            let line = format!("From 10.2.0.2 icmp_seq={seq} Destination Host Unreachable");
            assert!(ping.stdout.contains(&line), "{socket}: {}", ping.stdout);
        }
        assert!(
            ping.stdout
                .contains("2 packets transmitted, 0 received, +2 errors, 100% packet loss"),
            "{socket}: {}",
            ping.stdout
        );
        // The server's own host has no way there: the proxy itself reports it.
        site.path.client.ip("route add unreachable 10.6.0.0/24");
        let ping = site.run("ping", &["-c", "1", "-W", "1", "10.6.0.6"]);
        assert_eq!(ping.code, Some(1), "{socket}: {ping:#?}");
        assert!(
            ping.stdout
                .contains("From the proxy icmp_seq=1 Destination Host Unreachable"),
            "{socket}: {}",
            ping.stdout
        );
        let trace = site.run("traceroute", &["-w", "2", "-q", "1", "10.9.0.9"]);
        assert_eq!(trace.code, Some(0), "{socket}: {trace:#?}");
        let last = trace.stdout.lines().last().unwrap();
        assert!(
            last.starts_with(" 2  10.2.0.2  ") && last.ends_with(" ms !H"),
            "{socket}: {}",
            trace.stdout
        );
    }
    // Router 2 drops 10.8.0.0/24 silently: no answer at all, so loss, as ping says it.
    let Some(site) = Site::new(&icmp_on("raw"), false) else {
        return;
    };
    let ping = site.run("ping", &["-c", "2", "-i", "0.2", "-W", "1", "10.8.0.8"]);
    assert_eq!(ping.code, Some(1), "{ping:#?}");
    assert!(
        ping.stdout
            .contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{}",
        ping.stdout
    );
    assert!(!ping.stdout.contains("From "), "{}", ping.stdout);
}

#[test]
fn a_policy_denial_is_0x02_and_a_server_without_the_switch_says_0x07() {
    let policy = format!(
        "{}\n[[rule]]\naction = \"deny\"\ncommands = [\"icmp\"]\nto = [\"10.3.0.0/24\"]\n\n\
         [[rule]]\naction = \"allow\"\n",
        icmp_on("raw")
    );
    let Some(site) = Site::new(&policy, false) else {
        return;
    };
    let denied = site.run("ping", &["-c", "1", "10.3.0.2"]);
    assert_eq!(denied.code, Some(2), "{denied:#?}");
    assert!(
        denied.stderr.contains("do not allow ICMP") && denied.stderr.contains("0x02"),
        "{}",
        denied.stderr
    );
    let log = site.server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "denied");
    assert_eq!(log[0]["reply"], "0x02");
    assert!(log[0]["rule"].contains("icmp.toml:"), "{log:#?}");
    // The rule names its destinations: the first router may still be pinged.
    let allowed = site.run("ping", &["-c", "1", "10.1.0.2"]);
    assert_eq!(allowed.code, Some(0), "{allowed:#?}");

    let switched_off = serve(&site.path.client, "");
    let proxy = proxy_url(&switched_off);
    let refused = socksgate_in(&site.path.client, &["ping", "-x", &proxy, "10.3.0.2"]);
    assert_eq!(refused.code, Some(2), "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains("does not offer socksgate's ICMP extension")
            && refused.stderr.contains("0x07"),
        "{}",
        refused.stderr
    );
    let trace = socksgate_in(&site.path.client, &["traceroute", "-x", &proxy, "10.3.0.2"]);
    assert_eq!(trace.code, Some(2), "{trace:#?}");
    assert!(trace.stderr.contains("0x07"), "{}", trace.stderr);
}

#[test]
fn ping_sockets_need_ping_group_range_and_auto_falls_back_to_raw() {
    // Not widened: the namespace's default allows no group to open ping sockets.
    let Some(site) = Site::new(&icmp_on("ping"), false) else {
        return;
    };
    let ping = site.run("ping", &["-c", "1", "10.3.0.2"]);
    assert_eq!(ping.code, Some(2), "{ping:#?}");
    assert!(
        ping.stderr.contains("general SOCKS server failure"),
        "{ping:#?}"
    );
    let log = site.server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "setup-failed");
    assert!(log[0]["detail"].contains("ping_group_range"), "{log:#?}");

    let auto = serve(&site.path.client, &icmp_on("auto"));
    let proxy = proxy_url(&auto);
    let ping = socksgate_in(
        &site.path.client,
        &["ping", "-x", &proxy, "-c", "1", "10.3.0.2"],
    );
    assert_eq!(ping.code, Some(0), "{ping:#?}");
}

#[test]
fn chains_and_routes_carry_the_command_to_a_hop_that_serves_it() {
    let Some(site) = Site::new(&icmp_on("raw"), false) else {
        return;
    };
    let plain = serve(&site.path.client, "");
    let (serving, not_serving) = (site.proxy(), proxy_url(&plain));
    // Earlier hops only carry the connection: the last one sends the probes.
    let through = socksgate_in(
        &site.path.client,
        &[
            "ping",
            "-x",
            &not_serving,
            "-x",
            &serving,
            "-c",
            "1",
            "10.3.0.2",
        ],
    );
    assert_eq!(through.code, Some(0), "{through:#?}");
    let last_plain = socksgate_in(
        &site.path.client,
        &[
            "ping",
            "-x",
            &serving,
            "-x",
            &not_serving,
            "-c",
            "1",
            "10.3.0.2",
        ],
    );
    assert_eq!(last_plain.code, Some(2), "{last_plain:#?}");
    assert!(last_plain.stderr.contains("hop 2"), "{}", last_plain.stderr);

    // A server route: the command is forwarded to the upstream group, messages relayed.
    let routed = serve(
        &site.path.client,
        &format!(
            "{}\n[[upstream]]\nname = \"up\"\nchains = [[\"{serving}\"]]\n\n\
             [[rule]]\naction = \"route\"\nroute = \"up\"\n",
            icmp_on("raw")
        ),
    );
    let front = proxy_url(&routed);
    let trace = socksgate_in(
        &site.path.client,
        &["traceroute", "-x", &front, "-w", "2", "10.3.0.2"],
    );
    assert_eq!(trace.code, Some(0), "{trace:#?}");
    assert_eq!(trace.stdout.lines().count(), 4, "{}", trace.stdout);
    let upstream_log = site.server.wait_for_count("command", "icmp echo", 2);
    assert!(
        count_where(&upstream_log, "command", "icmp echo") >= 2,
        "{upstream_log:#?}"
    );
}

/// The wire format itself (docs/extensions/icmp.md, "The messages"): unknown types are
/// skipped, an echo request's data comes back in the reply with its sequence number,
/// oversized data is dropped, and a body too short for its type ends the session.
#[test]
fn messages_of_unknown_types_are_skipped_and_short_bodies_close_the_session() {
    let Some(site) = Site::new(&icmp_on("raw"), false) else {
        return;
    };
    let proxy = site.server.addr();
    site.path.client.run(|| {
        let (mut stream, bound) = icmp_session(proxy, "10.3.0.2:0");
        assert_eq!(bound, "10.3.0.2:0".parse::<Address>().unwrap());
        let mut out = vec![0x7f, 0x00, 0x02, b'?', b'?'];
        IcmpMessage::EchoRequest {
            seq: 7,
            ttl: 0,
            data: b"hello".to_vec(),
        }
        .encode(&mut out);
        stream.write_all(&out).unwrap();
        match read_message(&mut stream) {
            IcmpMessage::EchoReply { seq, data, .. } => {
                assert_eq!((seq, data.as_slice()), (7, &b"hello"[..]));
            }
            other => panic!("expected an echo reply, got {other:?}"),
        }
        // DATA longer than an IPv4 datagram can carry (65,507 bytes) is dropped: the next
        // request's answer is the first to come.
        let mut out = Vec::new();
        let (seq, ttl) = (8, 0);
        IcmpMessage::EchoRequest {
            seq,
            ttl,
            data: vec![0; 65_508],
        }
        .encode(&mut out);
        IcmpMessage::EchoRequest {
            seq: 9,
            ttl,
            data: b"after".to_vec(),
        }
        .encode(&mut out);
        stream.write_all(&out).unwrap();
        match read_message(&mut stream) {
            IcmpMessage::EchoReply { seq, .. } => assert_eq!(seq, 9),
            other => panic!("expected an echo reply, got {other:?}"),
        }
        // An echo request needs at least SEQ and TTL: a 1-byte body is malformed.
        stream.write_all(&[0x01, 0x00, 0x01, 0x00]).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    });
    let log = site.server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "reset", "{log:#?}");
}

/// `rate` echo requests per second (docs/extensions/icmp.md, "How socksgate serves it"):
/// a burst of `rate` goes at once, as many more wait for the rate, the rest are dropped.
#[test]
fn a_session_over_its_rate_is_paced_then_dropped() {
    let Some(site) = Site::new(&format!("{}rate = 2\n", icmp_on("raw")), false) else {
        return;
    };
    let proxy = site.server.addr();
    site.path.client.run(|| {
        let (mut stream, _) = icmp_session(proxy, "10.3.0.2:0");
        let mut out = Vec::new();
        for seq in 1..=6 {
            let data = Vec::new();
            IcmpMessage::EchoRequest { seq, ttl: 0, data }.encode(&mut out);
        }
        let sent = Instant::now();
        stream.write_all(&out).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(2500)))
            .unwrap();
        let mut answered = Vec::new();
        while let Some(message) = try_read_message(&mut stream) {
            let IcmpMessage::EchoReply { seq, .. } = message else {
                panic!("expected echo replies, got {message:?}");
            };
            answered.push((seq, sent.elapsed()));
        }
        let seqs: Vec<u16> = answered.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4], "{answered:?}");
        // Two tokens at once; the third request waits half a second, the fourth a whole one.
        assert!(answered[2].1 >= Duration::from_millis(450), "{answered:?}");
        assert!(answered[3].1 >= Duration::from_millis(950), "{answered:?}");
    });
}

fn icmp_session(proxy: SocketAddr, target: &str) -> (TcpStream, Address) {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let machine = ClientHandshake::new(
        ClientProtocol::socks5(),
        socksgate_proto::Command::ICMP_ECHO,
        target.parse().unwrap(),
    )
    .unwrap();
    let events = handshake(&mut stream, machine).unwrap();
    let bound = events
        .into_iter()
        .find_map(|event| match event {
            ClientEvent::Granted { bound } => Some(bound),
            _ => None,
        })
        .unwrap();
    (stream, bound)
}

fn read_message(stream: &mut TcpStream) -> IcmpMessage {
    try_read_message(stream).expect("a message before the read timeout")
}

/// The next message, or `None` when the read times out (or the stream ends).
fn try_read_message(stream: &mut TcpStream) -> Option<IcmpMessage> {
    let mut header = [0u8; 3];
    stream.read_exact(&mut header).ok()?;
    let length = usize::from(u16::from_be_bytes([header[1], header[2]]));
    let mut message = header.to_vec();
    message.resize(3 + length, 0);
    stream.read_exact(&mut message[3..]).ok()?;
    Some(IcmpMessage::decode_exact(&message).unwrap())
}
