//! `socksgate connect` as OpenSSH's ProxyCommand, and `socksgate forward` for TCP and UDP,
//! through real socksgate servers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use socksgate_tests::count_where;
use socksgate_tests::fresh_scratch_dir;
use socksgate_tests::interop::KillOnDrop;
use socksgate_tests::interop::{run, tool};
use socksgate_tests::sshd::Sshd;
use socksgate_tests::{DnsResponder, HttpTarget, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_socksgate");

fn scratch(name: &str) -> PathBuf {
    fresh_scratch_dir(&format!("client-{name}"))
}

/// Runs `command` with `input` on its standard input (then end of file); its output.
fn fed(command: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn ssh_reaches_a_local_sshd_through_socksgate_connect() {
    let Some(ssh) = tool("ssh") else { return };
    let dir = scratch("ssh");
    let Some(sshd) = Sshd::start(&dir) else {
        return;
    };
    let server = TestServer::start();
    let proxy_command = format!("{BIN} connect -x socks5h://{} %h %p", server.addr());
    let extra = ["-o".to_owned(), format!("ProxyCommand={proxy_command}")];
    let args = sshd.ssh_args(&extra, &["echo", "through-socksgate"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = run(&ssh, &args, &[], 60);
    assert!(result.success, "ssh: {}", result.stderr);
    assert_eq!(result.stdout.trim(), "through-socksgate");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["target"], format!("localhost:{}", sshd.port));
}

/// Starts `socksgate forward` with `args`; returns it and the local addresses it reports.
fn forward(args: &[&str], count: usize) -> (KillOnDrop, Vec<SocketAddr>) {
    let mut child = Command::new(BIN)
        .arg("forward")
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut locals = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        // "forwarding tcp 127.0.0.1:PORT -> TARGET"
        if let Some(local) = line.split_whitespace().nth(2) {
            locals.push(local.parse().unwrap());
        }
        if locals.len() == count {
            break;
        }
    }
    (KillOnDrop(child), locals)
}

#[test]
fn forward_carries_http_over_tcp_and_dns_over_udp_through_a_chain() {
    let first = TestServer::start();
    let second = TestServer::start();
    let web = HttpTarget::start("forwarded page");
    let dns = DnsResponder::start_at([127, 0, 0, 1].into());
    let tcp = format!("127.0.0.1:0:127.0.0.1:{}", web.port);
    let udp = format!("127.0.0.1:0:127.0.0.1:{}", dns.port);
    let hop1 = format!("socks5://{}", first.addr());
    let hop2 = format!("socks5h://{}", second.addr());
    let (child, locals) = forward(&["-x", &hop1, "-x", &hop2, "-L", &tcp, "-U", &udp], 2);

    let mut http = TcpStream::connect(locals[0]).unwrap();
    http.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(page.ends_with("forwarded page"), "{page}");

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // A query for www.example.test, type A.
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["www", "example", "test"] {
        query.push(label.len() as u8);
        query.extend(label.as_bytes());
    }
    query.extend([0, 0, 1, 0, 1]);
    socket.send_to(&query, locals[1]).unwrap();
    let mut answer = [0u8; 512];
    let (len, _) = socket.recv_from(&mut answer).unwrap();
    assert_eq!(answer[..2], [0x12, 0x34], "the answer to our query");
    assert!(
        answer[..len].ends_with(&dns.answer.octets()),
        "the A record"
    );

    drop(http);
    drop(child);
    // Both went through the chain: the first hop saw a CONNECT (to the second hop) and,
    // for UDP, CONNECTs to reach the second hop's association plus its own association.
    let first_log = first.wait_for_sessions(3);
    let commands: Vec<&str> = first_log.iter().map(|e| e["command"].as_str()).collect();
    assert!(
        commands.contains(&"connect") && commands.contains(&"udp associate"),
        "{commands:?}"
    );
}

#[test]
fn connect_takes_its_proxy_from_the_environment() {
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    for (variable, value) in [
        ("SOCKS_PROXY", server.addr().to_string()),
        ("ALL_PROXY", format!("socks5h://{}", server.addr())),
    ] {
        let mut command = Command::new(BIN);
        socksgate_tests::client::without_proxy_environment(&mut command)
            .args(["connect", "127.0.0.1", &echo.addr.port().to_string()])
            .env(variable, value);
        let output = fed(&mut command, b"ping through env");
        assert!(
            output.status.success(),
            "{variable}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout, b"ping through env", "{variable}");
    }
    assert_eq!(server.wait_for_sessions(2).len(), 2);
    let none = socksgate_tests::client::without_proxy_environment(&mut Command::new(BIN))
        .args(["connect", "127.0.0.1", "9"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&none.stderr).contains("no proxy"));
}

#[test]
fn connect_presents_a_client_certificate_to_a_tls_listener() {
    use socksgate_tests::pki::Authority;
    let ca = Authority::new("cli");
    let pem = ca.server("server");
    let mut config = TestServer::loopback_config();
    config.listeners.truncate(1);
    config.listeners[0].tls = Some(socksgate_config::ListenerTls {
        cert: pem.cert.clone(),
        key: pem.key.clone(),
        client_ca: Some(ca.cert.clone()),
    });
    let server = TestServer::start_with(config);
    let echo = socksgate_tests::EchoTarget::start();
    let alice = ca.client("alice");
    let proxy = format!("socks5hs://localhost:{}", server.addr().port());
    let mut command = Command::new(BIN);
    command
        .args(["connect", "-x", &proxy, "--proxy-cacert"])
        .arg(&ca.cert)
        .arg("--proxy-cert")
        .arg(&alice.cert)
        .arg("--proxy-key")
        .arg(&alice.key)
        .args(["127.0.0.1", &echo.addr.port().to_string()]);
    let output = fed(&mut command, b"hello over tls\n");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"hello over tls\n");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["user"], "alice", "{log:#?}");
}

/// Issue #23, point 3: `connect --connect-timeout 1` to a proxy whose SYNs are black-holed
/// (two routers away, in namespaces the test makes) gives up after about a second, naming
/// the hop, instead of waiting out the kernel's SYN retries.
#[test]
fn connect_gives_up_on_a_black_holed_proxy_after_its_connect_timeout() {
    let Some(path) = socksgate_tests::NetNs::routed_path() else {
        return;
    };
    let (took, output) = path.client.run(|| {
        let started = std::time::Instant::now();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_socksgate"))
            .args([
                "connect",
                "--connect-timeout",
                "1",
                "-x",
                "socks5://10.8.0.5:1080",
                "10.3.0.2",
                "80",
            ])
            .output()
            .unwrap();
        (started.elapsed(), output)
    });
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "hop 1 (socks5://10.8.0.5:1080): cannot reach the proxy: no answer within 1s"
        ),
        "{said}"
    );
    assert!(
        took < std::time::Duration::from_secs(5),
        "gave up after {took:?}"
    );
}

/// Issue #23, point 4: `forward -U` caps its senders and closes idle ones. Twenty senders
/// (a scan) against `--max-udp-flows 5` get at most five associations; a sender's
/// association ends after `--udp-idle 1` second of silence (the proxy logs it ended), and
/// a sender after that gets a new one. Before, every sender got an association for ever.
#[test]
fn forward_udp_caps_its_senders_and_ends_idle_associations() {
    let server = TestServer::start();
    let echo = socksgate_tests::UdpEcho::start();
    let udp = format!("127.0.0.1:0:127.0.0.1:{}", echo.port);
    let proxy = format!("socks5://{}", server.addr());
    let (child, locals) = forward(
        &[
            "-x",
            &proxy,
            "-U",
            &udp,
            "--max-udp-flows",
            "5",
            "--udp-idle",
            "1",
        ],
        1,
    );
    let senders: Vec<UdpSocket> = (0..20)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            socket.send_to(b"knock", locals[0]).unwrap();
            socket
        })
        .collect();
    let answered = senders
        .iter()
        .filter(|socket| socket.recv_from(&mut [0u8; 16]).is_ok())
        .count();
    assert_eq!(answered, 5, "senders answered under a cap of 5");
    // All idle now: their associations end within the idle second (and a little).
    let ended = server.wait_for_sessions(5);
    assert!(
        count_where(&ended, "command", "udp associate") >= 5,
        "{ended:#?}"
    );
    // A sender that was turned away gets an association now.
    let late = &senders[19];
    late.send_to(b"again", locals[0]).unwrap();
    let mut reply = [0u8; 16];
    let (len, _) = late.recv_from(&mut reply).unwrap();
    assert_eq!(&reply[..len], b"again");
    drop(child);
    let associations = count_where(&server.access_log(), "command", "udp associate");
    assert!(associations <= 6, "{associations} associations for 6 flows");
}

/// Issue #23: a `forward -U` flow whose association the proxy ends (here the proxy's own
/// UDP idle timeout of 1 s; a restart or a reset would do the same) ends with it, and the
/// sender's next datagram gets a new association. Before, the flow went on sending into the
/// dead association, and a sender that kept sending never heard back again.
#[test]
fn forward_udp_opens_a_new_association_when_the_proxy_ends_one() {
    let mut config = TestServer::loopback_config();
    config.udp.idle = Duration::from_secs(1);
    let server = TestServer::start_with(config);
    let echo = socksgate_tests::UdpEcho::start();
    let udp = format!("127.0.0.1:0:127.0.0.1:{}", echo.port);
    let proxy = format!("socks5://{}", server.addr());
    let (child, locals) = forward(&["-x", &proxy, "-U", &udp, "--udp-idle", "60"], 1);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut reply = [0u8; 16];
    sender.send_to(b"first", locals[0]).unwrap();
    let (len, _) = sender.recv_from(&mut reply).unwrap();
    assert_eq!(&reply[..len], b"first");
    // The proxy ends the association after its idle second.
    let ended = server.wait_for_sessions(1);
    assert_eq!(ended[0]["outcome"], "idle-timeout", "{ended:#?}");
    std::thread::sleep(Duration::from_millis(300));
    sender.send_to(b"second", locals[0]).unwrap();
    let (len, _) = sender
        .recv_from(&mut reply)
        .expect("no answer: the flow still used the ended association");
    assert_eq!(&reply[..len], b"second");
    drop(child);
}

/// An HTTP proxy as a hop of a chain (the first server's HTTP side, then a SOCKS5 hop):
/// `connect` and `forward -L` go through CONNECT to the next hop.
#[test]
fn connect_and_forward_pass_an_http_proxy_hop() {
    let first = TestServer::start();
    let second = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let web = HttpTarget::start("forwarded through an HTTP hop");
    let hop1 = format!("http://{}", first.addr());
    let hop2 = format!("socks5h://{}", second.addr());
    let mut command = Command::new(BIN);
    socksgate_tests::client::without_proxy_environment(&mut command).args([
        "connect",
        "-x",
        &hop1,
        "-x",
        &hop2,
        "127.0.0.1",
        &echo.addr.port().to_string(),
    ]);
    let output = fed(&mut command, b"ping through an http hop");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"ping through an http hop");
    let tcp = format!("127.0.0.1:0:127.0.0.1:{}", web.port);
    let (child, locals) = forward(&["-x", &hop1, "-x", &hop2, "-L", &tcp], 1);
    let mut http = TcpStream::connect(locals[0]).unwrap();
    http.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(page.ends_with("forwarded through an HTTP hop"), "{page}");
    drop(child);
    let first_log = first.wait_for_sessions(2);
    assert_eq!(
        count_where(&first_log, "method", "CONNECT"),
        2,
        "{first_log:#?}"
    );
    assert_eq!(
        count_where(&first_log, "target", &second.addr().to_string()),
        2
    );
    assert_eq!(second.wait_for_sessions(2).len(), 2);
}
