//! Issue #21, finding 5: the admin listener (`/metrics`, `/sessions`: client addresses, user
//! names, targets) off loopback asks who is reading — a bearer token, or a TLS client
//! certificate — and `check` refuses it without either. Real `curl` against a real
//! `socksgate serve`, its admin listener on 0.0.0.0 (reached here over 127.0.0.1).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socksgate_tests::client::wait_until_listening;
use socksgate_tests::free_port;
use socksgate_tests::interop::{run, tool};

const TOKEN: &str = "4f6c2d9a8e1b7c3f5a0d2e4b6c8a1f3e";

fn socksgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_socksgate"))
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    socksgate_tests::server::scratch_file("admin", name, text)
}

/// `socksgate serve -c CONFIG`, once its admin listener accepts.
struct Serving {
    _process: socksgate_tests::interop::KillOnDrop,
}

impl Serving {
    fn start(config: &Path, admin: u16) -> Self {
        let child = socksgate()
            .args(["serve", "-c"])
            .arg(config)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_listening(format!("127.0.0.1:{admin}"), "the admin listener");
        Self {
            _process: socksgate_tests::interop::KillOnDrop(child),
        }
    }
}

/// `curl -s -o /dev/null -w %{http_code}` with `args`: the status, or 0 when no response came.
fn status(curl: &Path, args: &[&str]) -> u16 {
    let mut all = vec![
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--noproxy",
        "*",
    ];
    all.extend_from_slice(args);
    let done = run(curl, &all, &[], 10);
    done.stdout.trim().parse().unwrap_or(0)
}

/// `socksgate check -c CONFIG`: its exit code and what it wrote to standard error.
fn check(config: &Path) -> (Option<i32>, String) {
    let checked = socksgate()
        .args(["check", "-c"])
        .arg(config)
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&checked.stderr).into_owned();
    (checked.status.code(), why)
}

#[test]
fn finding_5_check_refuses_an_admin_listener_off_loopback_without_authentication() {
    let config = temp_file(
        "open-admin.toml",
        "[[listen]]\naddress = \"127.0.0.1:1080\"\n\n[admin]\naddress = \"0.0.0.0:9180\"\n",
    );
    let (code, why) = check(&config);
    assert_eq!(code, Some(2), "{why}");
    assert!(
        why.contains("admin.address") && why.contains("token_file") && why.contains("toml:5:"),
        "{why}"
    );
    // `serve` refuses it likewise, before opening anything.
    let served = socksgate()
        .args(["serve", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(served.status.code(), Some(2));

    // A token file too short to be a secret is refused, naming the file.
    let token = temp_file("short-token", "secret\n");
    let config = temp_file(
        "short-token.toml",
        &format!(
            "[[listen]]\naddress = \"127.0.0.1:1080\"\n\n[admin]\naddress = \"0.0.0.0:9180\"\n\
             token_file = {:?}\n",
            token.display().to_string()
        ),
    );
    let (code, why) = check(&config);
    assert_eq!(code, Some(2), "{why}");
    assert!(
        why.contains("short-token") && why.contains("at least 16"),
        "{why}"
    );
}

#[test]
fn finding_5_the_admin_listener_off_loopback_wants_the_token() {
    let Some(curl) = tool("curl") else { return };
    let token = temp_file("token", &format!("{TOKEN}\n"));
    let admin = free_port("0.0.0.0");
    let config = temp_file(
        "token-admin.toml",
        &format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"0.0.0.0:{admin}\"\n\
             token_file = {:?}\n",
            token.display().to_string()
        ),
    );
    let _server = Serving::start(&config, admin);
    let url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let wrong = format!("Authorization: Bearer {}", TOKEN.replace('4', "5"));

    assert_eq!(status(&curl, &[&url("/metrics")]), 401);
    assert_eq!(status(&curl, &[&url("/sessions")]), 401);
    assert_eq!(status(&curl, &["-H", &wrong, &url("/metrics")]), 401);
    assert_eq!(status(&curl, &["-H", &bearer, &url("/metrics")]), 200);
    assert_eq!(status(&curl, &["-H", &bearer, &url("/sessions")]), 200);
    // Balancers and probes check health without the secret; it tells nothing else.
    assert_eq!(status(&curl, &[&url("/health")]), 200);
    let challenge = run(
        &curl,
        &["-s", "-i", "--noproxy", "*", &url("/metrics")],
        &[],
        10,
    );
    assert!(
        challenge.stdout.contains("WWW-Authenticate: Bearer"),
        "{}",
        challenge.stdout
    );
}

#[test]
fn finding_5_the_admin_listener_can_want_a_client_certificate_instead() {
    use socksgate_tests::pki::Authority;
    let Some(curl) = tool("curl") else { return };
    let ca = Authority::new("admin");
    let server = ca.server("admin-server");
    let operator = ca.client("operator");
    let stranger = Authority::new("stranger").client("stranger");
    let admin = free_port("0.0.0.0");
    let config = temp_file(
        "tls-admin.toml",
        &format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"0.0.0.0:{admin}\"\n\
             tls = {{ cert = {:?}, key = {:?}, client_ca = {:?} }}\n",
            server.cert.display().to_string(),
            server.key.display().to_string(),
            ca.cert.display().to_string()
        ),
    );
    let _server = Serving::start(&config, admin);
    let url = format!("https://127.0.0.1:{admin}/metrics");
    let cacert = ca.cert.display().to_string();
    let with = |pem: &socksgate_tests::pki::Pem| {
        status(
            &curl,
            &[
                "--cacert",
                &cacert,
                "--cert",
                &pem.cert.display().to_string(),
                "--key",
                &pem.key.display().to_string(),
                &url,
            ],
        )
    };
    assert_eq!(with(&operator), 200);
    // No certificate, or one from another authority: the TLS handshake fails, no response.
    assert_eq!(status(&curl, &["--cacert", &cacert, &url]), 0);
    assert_eq!(with(&stranger), 0);
}

/// The admin listener serves a bounded number of connections at once, and once half are
/// taken few per address:
/// idle connections beyond the cap are closed at once, another host's health check is
/// answered meanwhile, and the held ones time out (2 s to send a request).
#[test]
fn finding_5_idle_connections_cannot_hold_the_admin_listener() {
    use std::io::{Read, Write};
    let admin = free_port("0.0.0.0");
    let config = temp_file(
        "capped-admin.toml",
        &format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"127.0.0.1:{admin}\"\n"
        ),
    );
    let _server = Serving::start(&config, admin);
    let address: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    // Far more silent connections than the cap (32); the excess is closed by the server.
    let idle: Vec<_> = (0..100)
        .map(|_| std::net::TcpStream::connect(address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let closed = idle
        .iter()
        .filter(|stream| {
            let mut stream: &std::net::TcpStream = stream;
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            matches!(stream.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(
        closed >= 80,
        "only {closed} of 100 idle connections were closed"
    );
    let health = |from: [u8; 4]| {
        let mut stream = socksgate_tests::client::connect_from(from.into(), address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    };
    assert!(
        health([127, 0, 0, 2]).starts_with("HTTP/1.1 200"),
        "another host was shut out"
    );
    // The held ones time out: then 127.0.0.1 is answered again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if health([127, 0, 0, 1]).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the admin listener stayed full");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
}
