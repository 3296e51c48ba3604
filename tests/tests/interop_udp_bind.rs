//! Third-party clients of UDP ASSOCIATE and BIND: Python's PySocks, Dante's socksify running
//! a DNS client (`drill`), and a program that listens under Dante's socksify.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use socksgate_tests::interop::{run, tool, tool_at};
use socksgate_tests::scratch_dir;
use socksgate_tests::{DnsResponder, NetNs, TestServer, UdpEcho};

/// Debian's Python, which has Debian's python3-socks (the PATH may hold another Python).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

#[test]
fn pysocks_udp_socket_through_the_relay() {
    let Some(python) = tool_at(DEBIAN_PYTHON) else {
        return;
    };
    let has_pysocks = run(&python, &["-c", "import socks"], &[], 10).success;
    if !has_pysocks {
        socksgate_tests::interop::skip_or_fail("python3-socks is not installed");
        return;
    }
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let script = format!(
        "import socket, socks\n\
         s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.set_proxy(socks.SOCKS5, '127.0.0.1', {proxy})\n\
         s.settimeout(5)\n\
         for i in range(3):\n\
         \x20   s.sendto(b'pysocks %d' % i, ('127.0.0.1', {echo}))\n\
         \x20   data, source = s.recvfrom(65535)\n\
         \x20   print(data.decode(), source[1])\n",
        proxy = server.addr().port(),
        echo = echo.port
    );
    let result = run(&python, &["-c", &script], &[], 30);
    assert!(result.success, "PySocks: {}", result.stderr);
    let expected: String = (0..3)
        .map(|i| format!("pysocks {i} {}\n", echo.port))
        .collect();
    assert_eq!(result.stdout, expected);
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["command"], "udp associate");
    assert_eq!(log[0]["datagrams_up"], "3");
    assert_eq!(log[0]["datagrams_down"], "3");
}

#[test]
fn dante_socksify_runs_a_dns_client_over_udp() {
    // drill (ldnsutils) rather than dig: dig's libuv sends with calls Dante's shim does not
    // intercept, so its queries would bypass the shim whatever the server.
    let (Some(socksify), Some(drill)) = (tool("socksify"), tool("drill")) else {
        return;
    };
    let Some((client_host, target_host)) = NetNs::two_hosts() else {
        return;
    };
    let dns = target_host.run(|| DnsResponder::start_at([198, 51, 100, 10].into()));
    client_host.run(|| {
        let server = TestServer::start();
        let conf = socks_conf(server.addr().port());
        let port = dns.port.to_string();
        let args = [
            drill.to_str().unwrap(),
            "-p",
            &port,
            "www.example.test",
            "@198.51.100.10",
            "A",
        ];
        let result = run(
            &socksify,
            &args,
            &[("SOCKS_CONF", conf.to_str().unwrap())],
            30,
        );
        assert!(
            result.success,
            "drill: {} {}\n{:#?}",
            result.stdout,
            result.stderr,
            server.access_log()
        );
        let answer = format!("IN\tA\t{}", dns.answer);
        assert!(result.stdout.contains(&answer), "{}", result.stdout);
        assert_eq!(dns.queries(), 1);
        let log = server.wait_for_sessions(1);
        assert!(
            log.iter()
                .any(|e| e["command"] == "udp associate" && e["datagrams_up"] == "1"),
            "{log:#?}"
        );
    });
}

/// Dante's client configuration: everything through socksgate on `port`.
fn socks_conf(port: u16) -> std::path::PathBuf {
    // SG_DANTE_DEBUG=1 makes Dante's client explain itself on standard error.
    let debug = match std::env::var("SG_DANTE_DEBUG") {
        Ok(_) => "debug: 1\nlogoutput: stderr\n",
        Err(_) => "",
    };
    let dir = scratch_dir(&format!("dante-{port}"));
    let conf = dir.join("socks.conf");
    std::fs::write(
        &conf,
        format!(
            "{debug}route {{\n  from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = {port}\n  \
             proxyprotocol: socks_v5\n  method: none\n}}\n"
        ),
    )
    .unwrap();
    conf
}

#[test]
fn dante_socksify_runs_a_listening_program_through_bind() {
    use std::io::{BufRead, BufReader, Read};
    let (Some(socksify), Some(socat)) = (tool("socksify"), tool("socat")) else {
        return;
    };
    let server = TestServer::start();
    let conf = socks_conf(server.addr().port());
    // socat listens, reports where (getsockname, answered by the shim with the proxy's BIND
    // address), and greets whoever connects.
    let mut child = std::process::Command::new("timeout")
        .args([
            "20",
            socksify.to_str().unwrap(),
            socat.to_str().unwrap(),
            "-d",
            "-d",
        ])
        .args(["TCP-LISTEN:0", "SYSTEM:echo hello through bind"])
        .env("SOCKS_CONF", &conf)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let listening: std::net::SocketAddr = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split("listening on AF=2 ").nth(1).map(str::to_owned))
        .expect("socat says where it listens")
        .parse()
        .unwrap();
    let mut peer = std::net::TcpStream::connect(listening).unwrap();
    let mut greeting = String::new();
    peer.read_to_string(&mut greeting).unwrap();
    assert_eq!(greeting, "hello through bind\n");
    let peer_addr = peer.local_addr().unwrap();
    drop(peer);
    let _ = child.wait();
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["command"], "bind");
    assert_eq!(log[0]["peer"], peer_addr.to_string());
    assert_eq!(log[0]["bytes_up"], greeting.len().to_string());
}
