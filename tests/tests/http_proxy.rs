//! HTTP proxy clients on the SOCKS port (issue #25): real clients (curl, wget, Python's
//! requests, git) against a real origin (CPython's http.server, tests/http/origin.py),
//! CONNECT (RFC 9110 §9.3.6), forwarding (RFC 9112 §3.2.2), Basic authentication (RFC 7617),
//! hop-by-hop fields (RFC 9110 §7.6.1), and every malformed request refused with its status
//! (RFC 9112 §6.3, §11.2) while the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use socksgate_auth::PasswordFile;
use socksgate_config::{Config, ListenerTls};
use socksgate_proto::Method;
use socksgate_tests::interop::{run, skip_or_fail, tool, KillOnDrop};
use socksgate_tests::server::password_file;
use socksgate_tests::{count_where, fresh_scratch_dir, TestServer};

/// The origin server, on loopback: its port, and its process (killed when dropped).
struct Origin {
    port: u16,
    process: KillOnDrop,
}

impl Origin {
    /// Starts tests/http/origin.py (HTTPS with `tls`), or `None` without python3.
    fn start(tls: Option<&socksgate_tests::pki::Pem>) -> Option<Self> {
        let Some(python) = tool("python3") else {
            skip_or_fail("python3 is not installed");
            return None;
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("http/origin.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(pem) = tls {
            command.arg(&pem.cert).arg(&pem.key);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("origin said {line:?}"));
        Some(Self {
            port,
            process: KillOnDrop(child),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The connections it accepted so far (it reports each on stderr; read once it ended).
    fn connections(mut self) -> usize {
        let _ = self.process.0.kill();
        let mut text = String::new();
        self.process
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with("connection "))
            .count()
    }
}

/// The origin, when curl is installed too (a test of curl's skips, or fails in CI, without).
fn curl_and_origin() -> Option<Origin> {
    if tool("curl").is_none() {
        skip_or_fail("curl is not installed");
        return None;
    }
    Origin::start(None)
}

fn curl(args: &[&str]) -> socksgate_tests::interop::Run {
    let curl = tool("curl").unwrap();
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    run(&curl, &all, &[], 40)
}

fn proxy_url(server: &TestServer) -> String {
    format!("http://{}", server.addr())
}

#[test]
fn curl_gets_posts_and_uploads_through_the_socks_port() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let server = TestServer::start();
    let proxy = proxy_url(&server);
    // A plain GET, forwarded in absolute form.
    let got = curl(&["-x", &proxy, &origin.url("/")]);
    assert!(got.success, "{}", got.stderr);
    assert_eq!(got.stdout, "hello from the origin");
    // A POST with a Content-Length body, and a chunked upload, both bigger than one read.
    let dir = fresh_scratch_dir("http-upload");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.join("payload");
    std::fs::write(&file, &payload).unwrap();
    let digest = sha256_hex(&payload);
    let data = format!("@{}", file.display());
    let posted = curl(&["-x", &proxy, "--data-binary", &data, &origin.url("/post")]);
    assert!(posted.success, "{}", posted.stderr);
    assert!(posted.stdout.contains(&digest), "{}", posted.stdout);
    let chunked = curl(&[
        "-x",
        &proxy,
        "-H",
        "Transfer-Encoding: chunked",
        "-T",
        &file.display().to_string(),
        &origin.url("/put"),
    ]);
    assert!(chunked.success, "{}", chunked.stderr);
    assert!(chunked.stdout.contains(&digest), "{}", chunked.stdout);
    assert!(
        chunked.stdout.contains("\"length\": 300000"),
        "{}",
        chunked.stdout
    );
    // A chunked response is relayed whole.
    let streamed = curl(&["-x", &proxy, &origin.url("/chunked")]);
    assert_eq!(streamed.stdout, "chunked body from the origin");
    // SOCKS5 on the same port, in the same run.
    let socks = curl(&[
        "--socks5-hostname",
        &server.addr().to_string(),
        &origin.url("/"),
    ]);
    assert_eq!(socks.stdout, "hello from the origin");
    let log = server.wait_for_sessions(5);
    assert_eq!(count_where(&log, "protocol", "http"), 4, "{log:#?}");
    assert_eq!(count_where(&log, "protocol", "socks5"), 1, "{log:#?}");
    assert_eq!(count_where(&log, "command", "http"), 4, "{log:#?}");
    assert!(log
        .iter()
        .any(|entry| entry["method"] == "PUT" && entry["status"] == "200"));
}

#[test]
fn several_urls_share_one_client_connection_and_one_origin_connection() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let server = TestServer::start();
    let proxy = proxy_url(&server);
    let urls = [origin.url("/a"), origin.url("/b"), origin.url("/c")];
    let got = curl(&["-v", "-x", &proxy, &urls[0], &urls[1], &urls[2]]);
    assert!(got.success, "{}", got.stderr);
    assert_eq!(got.stdout, "hello from the origin".repeat(3));
    assert!(
        got.stderr.contains("Re-using existing connection"),
        "{}",
        got.stderr
    );
    let log = server.wait_for_sessions(3);
    // Three requests, each logged, all from one client connection.
    let clients: std::collections::HashSet<&String> =
        log.iter().map(|entry| &entry["client"]).collect();
    assert_eq!(clients.len(), 1, "{log:#?}");
    drop(server);
    assert_eq!(
        origin.connections(),
        1,
        "the origin connection was not reused"
    );
}

#[test]
fn hop_by_hop_fields_stay_behind_and_via_is_added() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let server = TestServer::start();
    let got = curl(&[
        "-x",
        &proxy_url(&server),
        "-H",
        "Connection: X-Secret",
        "-H",
        "X-Secret: for the proxy only",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "TE: trailers",
        "-H",
        "X-Kept: end to end",
        &origin.url("/headers?x=1"),
    ]);
    assert!(got.success, "{}", got.stderr);
    let fields = &got.stdout;
    assert!(fields.contains("\"x-kept\": \"end to end\""), "{fields}");
    assert!(fields.contains("\"via\": \"1.1 socksgate\""), "{fields}");
    assert!(
        fields.contains("\"request-line\": \"GET /headers?x=1 HTTP/1.1\""),
        "{fields}"
    );
    assert!(
        fields.contains(&format!("\"host\": \"127.0.0.1:{}\"", origin.port)),
        "{fields}"
    );
    for gone in ["x-secret", "keep-alive", "\"te\"", "proxy-connection"] {
        assert!(!fields.contains(gone), "{gone} passed on: {fields}");
    }
}

#[test]
fn https_targets_are_reached_with_connect() {
    if tool("curl").is_none() {
        return skip_or_fail("curl is not installed");
    }
    let authority = socksgate_tests::pki::Authority::new("http-origin");
    let pem = authority.server("origin");
    let Some(origin) = Origin::start(Some(&pem)) else {
        return;
    };
    let server = TestServer::start();
    let url = format!("https://localhost:{}/", origin.port);
    let cacert = authority.cert.display().to_string();
    let got = curl(&["-x", &proxy_url(&server), "--cacert", &cacert, &url]);
    assert!(got.success, "{}", got.stderr);
    assert_eq!(got.stdout, "hello from the origin");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["protocol"], "http");
    assert_eq!(log[0]["method"], "CONNECT");
    assert_eq!(log[0]["command"], "connect");
    assert_eq!(log[0]["status"], "200");
    assert_eq!(log[0]["target"], format!("localhost:{}", origin.port));
}

fn password_server(users: &[(&str, &str)], name: &str) -> TestServer {
    let mut config: Config = TestServer::loopback_config();
    config.listeners[0].methods = vec![Method::PASSWORD];
    config.listeners[0].socks4 = false;
    let path = password_file(name, users);
    let file = PasswordFile::open(&path, None, false).unwrap();
    TestServer::start_with_authenticator(config, Some(Arc::new(file)))
}

#[test]
fn basic_credentials_are_checked_like_rfc_1929() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let server = password_server(&[("alice", "s3cret")], "http-basic");
    let proxy = proxy_url(&server);
    let url = origin.url("/");
    let status = |extra: &[&str]| {
        let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}", "-x", &proxy];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args).stdout
    };
    assert_eq!(status(&[]), "407");
    assert_eq!(status(&["--proxy-user", "alice:wrong"]), "407");
    assert_eq!(status(&["--proxy-user", "alice:s3cret"]), "200");
    // The challenge names the scheme and realm (RFC 7617 §2).
    let challenge = curl(&["-i", "-x", &proxy, &url]);
    assert!(
        challenge
            .stdout
            .contains("Proxy-Authenticate: Basic realm=\"socksgate\""),
        "{}",
        challenge.stdout
    );
    // The same users for SOCKS5 on the same port.
    let socks = curl(&[
        "--socks5",
        &server.addr().to_string(),
        "--proxy-user",
        "alice:s3cret",
        &url,
    ]);
    assert_eq!(socks.stdout, "hello from the origin");
    let log = server.wait_for_sessions(5);
    assert_eq!(count_where(&log, "outcome", "auth-required"), 2, "{log:#?}");
    assert_eq!(count_where(&log, "outcome", "auth-failed"), 1, "{log:#?}");
    // The failed login names the user it tried, as a SOCKS one does.
    assert_eq!(count_where(&log, "user", "alice"), 3, "{log:#?}");
    assert!(
        !format!("{log:?}").contains("s3cret"),
        "a password was logged"
    );
}

#[test]
fn a_tls_listener_is_an_https_proxy() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let authority = socksgate_tests::pki::Authority::new("https-proxy");
    let pem = authority.server("proxy");
    let config = tls_listener(&pem, None);
    let server = TestServer::start_with(config);
    let proxy = format!("https://localhost:{}", server.addr().port());
    let cacert = authority.cert.display().to_string();
    let got = curl(&["-x", &proxy, "--proxy-cacert", &cacert, &origin.url("/")]);
    assert!(got.success, "{}", got.stderr);
    assert_eq!(got.stdout, "hello from the origin");
    let tunnelled = curl(&[
        "-p",
        "-x",
        &proxy,
        "--proxy-cacert",
        &cacert,
        &origin.url("/"),
    ]);
    assert_eq!(
        tunnelled.stdout, "hello from the origin",
        "{}",
        tunnelled.stderr
    );
    let log = server.wait_for_sessions(2);
    assert_eq!(count_where(&log, "protocol", "http"), 2, "{log:#?}");
    assert_eq!(count_where(&log, "method", "CONNECT"), 1, "{log:#?}");
}

/// `GET /` on a connection `chain` opened to `target`: the whole answer.
async fn get_through(chain: &socksgate_client::Chain, target: &socksgate_proto::Address) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = chain.connect(target).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The loopback configuration with its listener in TLS on `pem`, asking for client
/// certificates from `clients` when given.
fn tls_listener(
    pem: &socksgate_tests::pki::Pem,
    clients: Option<&socksgate_tests::pki::Authority>,
) -> Config {
    let mut config = TestServer::loopback_config();
    config.listeners[0].tls = Some(ListenerTls {
        cert: pem.cert.clone(),
        key: pem.key.clone(),
        client_ca: clients.map(|authority| authority.cert.clone()),
    });
    config
}

/// Sends `request` as one write and reads the answer to the close (5 s at most).
fn exchange(proxy: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let closed = match stream.read_to_end(&mut answer) {
        Ok(_) => true,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[test]
fn malformed_and_smuggling_requests_get_their_status_and_the_connection_closes() {
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let server = TestServer::start();
    let target = format!("127.0.0.1:{}", origin.port);
    let cases: Vec<(String, &str)> = vec![
        // RFC 9112 §6.3 item 3 / §11.2: both framings.
        (
            format!(
                "POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nContent-Length: 4\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            "400",
        ),
        // Differing Content-Length values (§6.3 item 5).
        (
            format!(
                "POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nContent-Length: 4\r\n\
                 Content-Length: 5\r\n\r\nabcde"
            ),
            "400",
        ),
        // A Content-Length that is not a decimal number.
        (
            format!("POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nContent-Length: +4\r\n\r\nabcd"),
            "400",
        ),
        // obs-fold (§5.2).
        (
            format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nX-A: 1\r\n folded\r\n\r\n"),
            "400",
        ),
        // An invalid field name, a space before the colon (§5.1), a NUL in a value.
        (format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nX(A): 1\r\n\r\n"), "400"),
        (format!("GET http://{target}/ HTTP/1.1\r\nHost : {target}\r\n\r\n"), "400"),
        (format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nX: a\0b\r\n\r\n"), "400"),
        // A transfer coding other than chunked, and chunked not last.
        (
            format!("POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            "501",
        ),
        (
            format!("POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            "400",
        ),
        // A broken chunked body: the target sees nothing of a request it could misread.
        (
            format!(
                "POST http://{target}/ HTTP/1.1\r\nHost: {target}\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\nhello\r\n0\r\n\r\n"
            ),
            "-",
        ),
        // No Host in HTTP/1.1, two Hosts (RFC 9112 §3.2).
        (format!("GET http://{target}/ HTTP/1.1\r\n\r\n"), "400"),
        (format!("GET http://{target}/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), "400"),
        // Origin-form to a proxy; https:// forwarded; a version socksgate does not speak.
        (format!("GET / HTTP/1.1\r\nHost: {target}\r\n\r\n"), "400"),
        (format!("GET https://{target}/ HTTP/1.1\r\nHost: {target}\r\n\r\n"), "400"),
        (format!("GET http://{target}/ HTTP/2.0\r\nHost: {target}\r\n\r\n"), "505"),
        // Over-long request line and head.
        (format!("GET http://{target}/{} HTTP/1.1\r\n\r\n", "a".repeat(9000)), "414"),
        (
            format!(
                "GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n{}\r\n",
                "X-Filler: 0123456789012345678901234567890123456789\r\n".repeat(800)
            ),
            "431",
        ),
        // CONNECT without a port.
        ("CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n".to_owned(), "400"),
    ];
    for (request, status) in &cases {
        let (answer, closed) = exchange(server.addr(), request.as_bytes());
        assert!(closed, "not closed after {request:?}");
        if *status == "-" {
            // Refused mid-body: after the head went on, so the client sees only the close
            // (no second response on a connection whose request was half-sent).
            assert!(
                !answer.contains("hello from the origin") && !answer.contains("sha256"),
                "{request:?} → {answer:?}"
            );
            continue;
        }
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} → {answer:?}"
        );
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        assert_eq!(body.lines().count(), 1, "{answer:?}");
    }
    // The server kept serving through all of it.
    let (answer, _) = exchange(
        server.addr(),
        format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(answer.ends_with("hello from the origin"), "{answer:?}");
    let log = server.wait_for_sessions(cases.len() + 1);
    assert_eq!(
        count_where(&log, "outcome", "bad-request"),
        cases.len(),
        "{log:#?}"
    );
}

#[test]
fn rules_tell_forwarded_requests_from_tunnels() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let mut config = Config::parse(
        "[[rule]]\ncommands = [\"http\"]\naction = \"deny\"\n\n[[rule]]\naction = \"allow\"\n",
        std::path::Path::new("http-rules.toml"),
    )
    .unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    let server = TestServer::start_with(config);
    let proxy = proxy_url(&server);
    let denied = curl(&["-i", "-x", &proxy, &origin.url("/")]);
    assert!(
        denied.stdout.starts_with("HTTP/1.1 403 "),
        "{}",
        denied.stdout
    );
    let tunnelled = curl(&["-p", "-x", &proxy, &origin.url("/")]);
    assert_eq!(tunnelled.stdout, "hello from the origin");
    let log = server.wait_for_sessions(2);
    let refusal = log
        .iter()
        .find(|entry| entry["outcome"] == "denied")
        .unwrap();
    assert_eq!(refusal["rule"], "rule http-rules.toml:1");
    assert_eq!(refusal["status"], "403");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn squid_or_skip(name: &str, extra: &str) -> Option<socksgate_tests::squid::Squid> {
    let squid = socksgate_tests::squid::Squid::start(name, extra);
    if squid.is_none() {
        skip_or_fail("squid is not installed");
    }
    squid
}

#[test]
fn a_route_goes_through_squid_as_an_http_hop() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let Some(squid) = squid_or_skip("hop", "") else {
        return;
    };
    let text = format!(
        "[[upstream]]\nname = \"corp\"\nchains = [[\"http://127.0.0.1:{}\"]]\n\n\
         [[rule]]\ncommands = [\"connect\", \"http\"]\naction = \"route\"\nroute = \"corp\"\n",
        squid.port
    );
    let mut config = Config::parse(&text, std::path::Path::new("squid-route.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    let server = TestServer::start_with(config);
    // A SOCKS5 client and an HTTP client of socksgate, both carried by squid's CONNECT.
    let socks = curl(&["--socks5", &server.addr().to_string(), &origin.url("/")]);
    assert_eq!(socks.stdout, "hello from the origin", "{}", socks.stderr);
    let http = curl(&["-x", &proxy_url(&server), &origin.url("/")]);
    assert_eq!(http.stdout, "hello from the origin", "{}", http.stderr);
    let lines = squid.access_log("CONNECT", 2);
    let tunnels = lines
        .iter()
        .filter(|line| line.contains(&format!("CONNECT 127.0.0.1:{}", origin.port)))
        .count();
    assert_eq!(tunnels, 2, "{lines:#?}");
    let log = server.wait_for_sessions(2);
    assert!(
        log.iter().all(|entry| entry["rule"].ends_with("via corp")),
        "{log:#?}"
    );
}

#[test]
fn a_route_through_an_http_hop_cannot_carry_udp() {
    let text = "[[upstream]]\nname = \"corp\"\nchains = [[\"http://127.0.0.1:3128\"]]\n\n\
                [[rule]]\naction = \"route\"\nroute = \"corp\"\n";
    let error = Config::parse(text, std::path::Path::new("udp-route.toml")).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("udp-route.toml:7"), "{message}");
    assert!(
        message.contains(
            "UDP cannot pass hop 1 (http://127.0.0.1:3128): an HTTP proxy carries only TCP"
        ),
        "{message}"
    );
}

#[test]
fn squid_uses_socksgate_as_its_parent() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let server = TestServer::start();
    let parent = format!(
        "cache_peer 127.0.0.1 parent {} 0 no-query no-digest default\nnever_direct allow all\n",
        server.addr().port()
    );
    let Some(squid) = squid_or_skip("child", &parent) else {
        return;
    };
    let squid_url = format!("http://127.0.0.1:{}", squid.port);
    let got = curl(&["-x", &squid_url, &origin.url("/")]);
    assert_eq!(got.stdout, "hello from the origin", "{}", got.stderr);
    let tunnelled = curl(&["-p", "-x", &squid_url, &origin.url("/")]);
    assert_eq!(
        tunnelled.stdout, "hello from the origin",
        "{}",
        tunnelled.stderr
    );
    // (Squid also opens and closes connections to probe its parent: sessions of no request.)
    let log = server.wait_for_count("protocol", "http", 2);
    assert!(log.iter().any(|entry| entry["method"] == "GET"), "{log:#?}");
    assert!(
        log.iter().any(|entry| entry["method"] == "CONNECT"),
        "{log:#?}"
    );
    let lines = squid.access_log("PARENT/", 2);
    assert!(
        lines.iter().any(|line| line.contains("PARENT/127.0.0.1")),
        "{lines:#?}"
    );
}

#[test]
fn the_client_library_chains_through_an_http_hop_with_credentials() {
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let server = password_server(&[("alice", "p@ss:word")], "http-hop");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://alice:p%40ss%3Aword@{}", server.addr());
    let hop: socksgate_proto::hop::Hop = url.parse().unwrap();
    let chain: socksgate_client::Chain = std::iter::once(hop).collect();
    let target: socksgate_proto::Address = format!("127.0.0.1:{}", origin.port).parse().unwrap();
    let answer = runtime.block_on(get_through(&chain, &target));
    assert!(answer.ends_with("hello from the origin"), "{answer}");
    // Wrong credentials: the hop's 407 is an authentication failure, naming the hop.
    let wrong_hop: socksgate_proto::hop::Hop = format!("http://alice:nope@{}", server.addr())
        .parse()
        .unwrap();
    let wrong: socksgate_client::Chain = std::iter::once(wrong_hop).collect();
    let error = runtime.block_on(wrong.connect(&target)).unwrap_err();
    assert_eq!(error.hop, 1);
    assert!(
        error
            .to_string()
            .contains("refused the username or password"),
        "{error}"
    );
    // UDP is refused before anything is sent.
    let refusal = runtime.block_on(chain.udp_associate()).unwrap_err();
    assert!(
        refusal.to_string().contains("carries only TCP"),
        "{refusal}"
    );
    let log = server.wait_for_sessions(2);
    assert_eq!(count_where(&log, "outcome", "closed"), 1, "{log:#?}");
    assert_eq!(count_where(&log, "outcome", "auth-failed"), 1, "{log:#?}");
    assert_eq!(count_where(&log, "user", "alice"), 2, "{log:#?}");
}

/// The origin over HTTPS with its authority's certificate file, or `None` without python3.
fn tls_origin(name: &str) -> Option<(Origin, socksgate_tests::pki::Authority)> {
    let authority = socksgate_tests::pki::Authority::new(name);
    let pem = authority.server("origin");
    Some((Origin::start(Some(&pem))?, authority))
}

#[test]
fn wget_follows_http_proxy_and_https_proxy() {
    let Some(wget) = tool("wget") else {
        return skip_or_fail("wget is not installed");
    };
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let Some((secure, authority)) = tls_origin("wget-origin") else {
        return;
    };
    let server = TestServer::start();
    let proxy = proxy_url(&server);
    let env = [
        ("http_proxy", proxy.as_str()),
        ("https_proxy", proxy.as_str()),
    ];
    let plain = run(&wget, &["-q", "-O", "-", &origin.url("/")], &env, 30);
    assert_eq!(plain.stdout, "hello from the origin", "{}", plain.stderr);
    let ca = format!("--ca-certificate={}", authority.cert.display());
    let url = format!("https://localhost:{}/", secure.port);
    let tunnelled = run(&wget, &["-q", "-O", "-", &ca, &url], &env, 30);
    assert_eq!(
        tunnelled.stdout, "hello from the origin",
        "{}",
        tunnelled.stderr
    );
    let log = server.wait_for_count("protocol", "http", 2);
    assert_eq!(count_where(&log, "method", "GET"), 1, "{log:#?}");
    assert_eq!(count_where(&log, "method", "CONNECT"), 1, "{log:#?}");
}

#[test]
fn python_requests_uses_socksgate_for_http_and_https() {
    // Debian's python3-requests, with the system's python3.
    let Some(python) = socksgate_tests::interop::tool_at("/usr/bin/python3") else {
        return skip_or_fail("/usr/bin/python3 is not installed");
    };
    let probe = run(&python, &["-c", "import requests"], &[], 20);
    if !probe.success {
        return skip_or_fail("python3-requests is not installed");
    }
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let Some((secure, authority)) = tls_origin("requests-origin") else {
        return;
    };
    let server = TestServer::start();
    let script = format!(
        "import requests\n\
         proxies = {{'http': '{proxy}', 'https': '{proxy}'}}\n\
         with requests.Session() as session:\n\
         \x20   for _ in range(3):\n\
         \x20       print(session.get('{plain}', proxies=proxies, timeout=10).text)\n\
         \x20   print(session.post('{post}', data=b'x' * 100000, proxies=proxies, timeout=10).json()['length'])\n\
         \x20   print(session.get('https://localhost:{secure_port}/', proxies=proxies, verify='{ca}', timeout=10).text)\n",
        proxy = proxy_url(&server),
        plain = origin.url("/"),
        post = origin.url("/post"),
        secure_port = secure.port,
        ca = authority.cert.display(),
    );
    let result = run(&python, &["-c", &script], &[], 60);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(
        result.stdout,
        "hello from the origin\n".repeat(3) + "100000\nhello from the origin\n"
    );
    let log = server.wait_for_count("protocol", "http", 5);
    assert_eq!(count_where(&log, "method", "POST"), 1, "{log:#?}");
    assert_eq!(count_where(&log, "method", "CONNECT"), 1, "{log:#?}");
    // The session's GETs and POST shared one connection to socksgate.
    let forwarded: std::collections::HashSet<&String> = log
        .iter()
        .filter(|entry| entry["command"] == "http")
        .map(|entry| &entry["client"])
        .collect();
    assert_eq!(forwarded.len(), 1, "{log:#?}");
}

#[test]
fn git_clones_over_http_through_http_proxy() {
    let (Some(git), Some(python)) = (tool("git"), tool("python3")) else {
        return skip_or_fail("git or python3 is not installed");
    };
    let dir = fresh_scratch_dir("http-git");
    let git_in = |cwd: &std::path::Path, args: &[&str]| {
        let output = Command::new(&git)
            .current_dir(cwd)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git_in(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), "cloned through socksgate\n").unwrap();
    git_in(&work, &["add", "README"]);
    git_in(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "first",
        ],
    );
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    git_in(&dir, &["clone", "-q", "--bare", "work", "served/repo.git"]);
    // The dumb HTTP protocol: files a plain web server serves.
    git_in(&served.join("repo.git"), &["update-server-info"]);
    let port = socksgate_tests::free_port("127.0.0.1");
    let web = Command::new(python)
        .current_dir(&served)
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _web = KillOnDrop(web);
    socksgate_tests::client::wait_until_listening(("127.0.0.1", port), "http.server");
    let server = TestServer::start();
    let proxy = format!("http.proxy={}", proxy_url(&server));
    let url = format!("http://127.0.0.1:{port}/repo.git");
    git_in(&dir, &["-c", &proxy, "clone", "-q", &url, "clone"]);
    let readme = std::fs::read_to_string(dir.join("clone/README")).unwrap();
    assert_eq!(readme, "cloned through socksgate\n");
    let log = server.wait_for_count("protocol", "http", 3);
    assert!(
        log.iter().any(|entry| entry["target"] == format!("127.0.0.1:{port}")
            && entry["status"] == "200"),
        "{log:#?}"
    );
}

#[test]
fn chromium_loads_a_page_through_the_http_proxy_and_saves_a_screenshot() {
    let Some(chromium) = tool("chromium") else {
        return skip_or_fail("chromium is not installed");
    };
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let server = TestServer::start();
    let dir = fresh_scratch_dir("http-chromium");
    let shot = dir.join("http-proxy-page.png");
    let profile = format!("--user-data-dir={}", dir.join("profile").display());
    let proxy = format!("--proxy-server=http://{}", server.addr());
    let screenshot = format!("--screenshot={}", shot.display());
    let url = origin.url("/page");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // Chromium never proxies loopback unless told to stop bypassing it.
        "--proxy-bypass-list=<-loopback>",
        &proxy,
        &profile,
    ];
    let mut dump = common.to_vec();
    dump.extend(["--dump-dom", &url]);
    let dom = run(&chromium, &dump, &[], 90);
    assert!(
        dom.stdout.contains("hello through socksgate's HTTP proxy"),
        "chromium printed {:?}; stderr {}",
        dom.stdout,
        dom.stderr
    );
    let mut pictured = common.to_vec();
    pictured.extend(["--window-size=800,300", &screenshot, &url]);
    let _ = run(&chromium, &pictured, &[], 90);
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "no screenshot at {}",
        shot.display()
    );
    // Kept for the docs: the page as Chromium drew it through the proxy.
    let kept = std::env::temp_dir().join("socksgate-http-proxy-chromium.png");
    let _ = std::fs::copy(&shot, kept);
    let log = server.wait_for_count("protocol", "http", 2);
    assert!(
        log.iter()
            .any(|entry| entry["method"] == "GET" && entry["status"] == "200"),
        "{log:#?}"
    );
}

/// An HTTP CONNECT through `proxy` as `user`: the tunnel, or the status that refused it.
fn http_connect(
    proxy: SocketAddr,
    user: &str,
    password: &str,
    target: &str,
) -> Result<TcpStream, String> {
    use base64::Engine;
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 200 ") {
        Ok(stream)
    } else {
        Err(head.lines().next().unwrap_or("").to_owned())
    }
}

/// One user is one user whichever protocol she speaks: the rules, her session cap and her
/// bandwidth cap count her SOCKS5 and HTTP sessions together.
#[test]
fn rules_limits_and_bandwidth_are_shared_by_a_users_socks_and_http_sessions() {
    let target = socksgate_tests::endless_source().to_string();
    let mut config = Config::parse(
        "[limits]\nmax_sessions_per_user = 2\nbandwidth_per_user = \"1MB/s\"\n\n\
         [[rule]]\nusers = [\"bob\"]\naction = \"deny\"\n\n[[rule]]\naction = \"allow\"\n",
        std::path::Path::new("shared.toml"),
    )
    .unwrap();
    let listeners = TestServer::loopback_config().listeners;
    config.listeners = listeners;
    config.listeners[0].methods = vec![Method::PASSWORD];
    config.listeners[0].socks4 = false;
    let path = password_file("http-shared", &[("alice", "pw"), ("bob", "pw")]);
    let file = PasswordFile::open(&path, None, false).unwrap();
    let server = TestServer::start_with_authenticator(config, Some(Arc::new(file)));
    // The rules: bob is refused in both protocols.
    assert_eq!(
        http_connect(server.addr(), "bob", "pw", &target)
            .err()
            .as_deref(),
        Some("HTTP/1.1 403 Forbidden")
    );
    assert!(socksgate_tests::client::socks5_login(server.addr(), b"bob", b"pw", &target).is_err());
    // The session cap: alice's SOCKS5 session and HTTP tunnel fill it; a third, in either
    // protocol, is refused.
    let socks =
        socksgate_tests::client::socks5_login(server.addr(), b"alice", b"pw", &target).unwrap();
    let tunnel = http_connect(server.addr(), "alice", "pw", &target).unwrap();
    assert_eq!(
        http_connect(server.addr(), "alice", "pw", &target)
            .err()
            .as_deref(),
        Some("HTTP/1.1 403 Forbidden")
    );
    assert!(
        socksgate_tests::client::socks5_login(server.addr(), b"alice", b"pw", &target).is_err()
    );
    // The bandwidth cap: both sessions together move 1 MB/s, each a share of it.
    let rates = socksgate_tests::download_rates(vec![socks, tunnel]);
    let together: f64 = rates.iter().sum();
    assert!(
        (together - 1_000_000.0).abs() <= 100_000.0,
        "alice's two sessions together: {together:.0} B/s through 1 MB/s ({rates:?})"
    );
    // (How the one cap is shared between them is the token bucket's; both must move.)
    assert!(
        rates.iter().all(|&rate| rate > 50_000.0),
        "both move: {rates:?}"
    );
    let log = server.wait_for_sessions(4);
    let limited = log
        .iter()
        .filter(|entry| entry["detail"].contains("max_sessions_per_user"))
        .count();
    assert!(limited >= 1, "{log:#?}");
}

/// An origin that accepts one WebSocket upgrade and then echoes: what it received in the
/// upgrade request's head comes back through the channel.
fn websocket_origin() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (heads, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
        stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
            )
            .unwrap();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => stream.write_all(&buffer[..n]).unwrap(),
            }
        }
    });
    (address, received)
}

#[test]
fn a_websocket_upgrade_becomes_a_tunnel() {
    let (origin, heads) = websocket_origin();
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET http://{origin}/chat HTTP/1.1\r\nHost: {origin}\r\nConnection: keep-alive, Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\nframe-sent-with-the-request"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Upgrade: websocket\r\n") && head.contains("Connection: Upgrade\r\n"),
        "{head}"
    );
    let forwarded = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        forwarded.starts_with("GET /chat HTTP/1.1\r\n"),
        "{forwarded}"
    );
    assert!(forwarded.contains("Upgrade: websocket\r\n"), "{forwarded}");
    assert!(forwarded.contains("Connection: Upgrade\r\n"), "{forwarded}");
    // The bytes the client sent with its request, then more: both echoed through.
    let mut echoed = vec![0u8; "frame-sent-with-the-request".len()];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(echoed, b"frame-sent-with-the-request");
    stream.write_all(b"second frame").unwrap();
    let mut echoed = [0u8; 12];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"second frame");
    drop(stream);
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["status"], "101", "{log:#?}");
}

#[test]
fn a_chain_reaches_an_https_proxy_hop() {
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let authority = socksgate_tests::pki::Authority::new("https-hop");
    let pem = authority.server("hop");
    let config = tls_listener(&pem, None);
    let server = TestServer::start_with(config);
    let hop: socksgate_proto::hop::Hop = format!("https://localhost:{}", server.addr().port())
        .parse()
        .unwrap();
    let tls = socksgate_tls::ClientTls {
        ca: Some(authority.cert.clone()),
        ..socksgate_tls::ClientTls::default()
    };
    let chain = std::iter::once(hop)
        .collect::<socksgate_client::Chain>()
        .with_tls(&tls)
        .unwrap();
    let target: socksgate_proto::Address = format!("127.0.0.1:{}", origin.port).parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(get_through(&chain, &target));
    assert!(answer.ends_with("hello from the origin"), "{answer}");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["method"], "CONNECT", "{log:#?}");
}

/// A target that answers every request on a connection with `answer` (read to the end of
/// each request head first), then closes the connection after `idle` without another
/// request. Counts its connections.
fn scripted_origin(
    answer: &'static [u8],
    idle: Duration,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(idle));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                loop {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                    if head.ends_with(b"\r\n\r\n") {
                        head.clear();
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (address, connections)
}

/// Sends `requests` (one write) on one connection and reads until the proxy closes it.
fn on_one_connection(proxy: SocketAddr, requests: &str) -> String {
    exchange(proxy, requests.as_bytes()).0
}

#[test]
fn a_hostile_target_gets_the_client_a_502_and_nothing_of_its_own() {
    let server = TestServer::start();
    for (answer, why) in [
        (&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..], "both framings"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "two lengths"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "a 101 nobody asked for"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not HTTP"),
        (b"HTTP/1.1 054 Odd\r\n\r\n", "no status"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n",
            "endless interim responses",
        ),
    ] {
        let (origin, _) = scripted_origin(answer, Duration::from_secs(5));
        let answer = on_one_connection(
            server.addr(),
            &format!("GET http://{origin}/ HTTP/1.0\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 502 "), "{why}: {answer:?}");
        assert!(!answer.contains("Continue") && !answer.contains("SSH"), "{why}: {answer:?}");
    }
    let log = server.wait_for_sessions(6);
    assert_eq!(count_where(&log, "outcome", "bad-response"), 6, "{log:#?}");
    assert_eq!(count_where(&log, "status", "502"), 6, "{log:#?}");
}

#[test]
fn a_kept_target_connection_the_target_closed_is_not_reused() {
    // The origin closes a kept-alive connection after 300 ms without a request (Apache
    // does after 5 s): the client's second request, a second later, goes on a new one.
    let (origin, connections) = scripted_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_millis(300),
    );
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n\r\n");
    let mut answers = String::new();
    for _ in 0..2 {
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\nok") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "{answer:?}");
            answer.push(byte[0]);
        }
        answers.push_str(&String::from_utf8_lossy(&answer));
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn each_request_on_a_connection_stands_on_its_own_credentials() {
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let server = password_server(&[("alice", "s3cret"), ("bob", "pw")], "http-each");
    let target = format!("127.0.0.1:{}", origin.port);
    let alice = "Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"; // alice:s3cret
    let wrong = "Proxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\n"; // alice:wrong
    let bob = "Proxy-Authorization: Basic Ym9iOnB3\r\n"; // bob:pw
    let get = |credentials: &str| {
        format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\n{credentials}\r\n")
    };
    // Pipelined in one write: alice, alice again (not checked again), bob (checked: a
    // user of his own), then one without credentials, which is asked for them.
    let answer = on_one_connection(
        server.addr(),
        &[get(alice), get(alice), get(bob), get("")].concat(),
    );
    assert_eq!(
        answer.matches("hello from the origin").count(),
        3,
        "{answer}"
    );
    assert!(
        answer.ends_with(
            "407 Proxy Authentication Required: the proxy needs a user name and password\n"
        ),
        "{answer}"
    );
    // A wrong password after a right one is a failed login, not alice.
    let answer = on_one_connection(server.addr(), &[get(alice), get(wrong)].concat());
    assert_eq!(
        answer.matches("hello from the origin").count(),
        1,
        "{answer}"
    );
    assert!(answer.contains("HTTP/1.1 407 "), "{answer}");
    let log = server.wait_for_sessions(7);
    let users: Vec<(&str, &str)> = log
        .iter()
        .map(|entry| (entry["user"].as_str(), entry["outcome"].as_str()))
        .collect();
    assert_eq!(
        count_where(&log, "outcome", "auth-required"),
        1,
        "{users:?}"
    );
    assert_eq!(count_where(&log, "outcome", "auth-failed"), 1, "{users:?}");
    assert!(users.contains(&("bob", "closed")), "{users:?}");
    assert_eq!(
        users
            .iter()
            .filter(|(user, outcome)| *user == "alice" && *outcome == "closed")
            .count(),
        3,
        "{users:?}"
    );
}

#[test]
fn rules_about_connect_and_methods_hold_for_forwarded_requests() {
    let Some(origin) = Origin::start(None) else {
        return;
    };
    // A gateway written before HTTP clients: a deny for connect to one network, and a rule
    // for password users only.
    let text = format!(
        "[[rule]]\ncommands = [\"connect\"]\nto = [\"127.0.0.1/32\"]\nports = [\"{port}\"]\n\
         methods = [\"none\"]\naction = \"deny\"\n\n[[rule]]\nmethods = [\"password\"]\naction = \"allow\"\n",
        port = origin.port
    );
    let mut config = Config::parse(&text, std::path::Path::new("old-rules.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.listeners[0].methods = vec![Method::NO_AUTH, Method::PASSWORD];
    config.listeners[0].socks4 = false;
    let path = password_file("http-methods", &[("alice", "pw")]);
    let file = PasswordFile::open(&path, None, false).unwrap();
    let server = TestServer::start_with_authenticator(config, Some(Arc::new(file)));
    let target = format!("127.0.0.1:{}", origin.port);
    let get = format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n");
    let anonymous = on_one_connection(server.addr(), &format!("{get}\r\n"));
    // The connect rule refused it; an anonymous client that could log in is asked to.
    assert!(anonymous.starts_with("HTTP/1.1 407 "), "{anonymous}");
    let logged_in = on_one_connection(
        server.addr(),
        &format!("{get}Proxy-Authorization: Basic YWxpY2U6cHc=\r\n\r\n"),
    );
    assert!(logged_in.ends_with("hello from the origin"), "{logged_in}");
    let log = server.wait_for_sessions(2);
    assert!(
        log.iter()
            .any(|entry| entry["rule"] == "rule old-rules.toml:1"),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|entry| entry["rule"] == "rule old-rules.toml:8"),
        "{log:#?}"
    );
}

#[test]
fn an_http_1_0_client_gets_a_chunked_response_as_data_and_no_interim_responses() {
    let Some(origin) = Origin::start(None) else {
        return;
    };
    let server = TestServer::start();
    let target = format!("127.0.0.1:{}", origin.port);
    let answer = on_one_connection(
        server.addr(),
        &format!("GET http://{target}/chunked HTTP/1.0\r\n\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(!answer.contains("Transfer-Encoding"), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nchunked body from the origin"),
        "{answer}"
    );
    // An HTTP/1.0 client that keeps its connection is told it is kept, and its next
    // request answered on it.
    let keep = format!("GET http://{target}/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let answer = on_one_connection(
        server.addr(),
        &format!("{keep}GET http://{target}/b HTTP/1.0\r\n\r\n"),
    );
    assert_eq!(
        answer.matches("hello from the origin").count(),
        2,
        "{answer}"
    );
    assert!(answer.contains("Connection: keep-alive\r\n"), "{answer}");
    // Two pipelined HTTP/1.1 requests: both answered, in order.
    let answer = on_one_connection(
        server.addr(),
        &format!(
            "GET http://{target}/a HTTP/1.1\r\nHost: {target}\r\n\r\n\
             GET http://{target}/chunked HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        ),
    );
    let first = answer.find("hello from the origin").unwrap();
    let second = answer.find("Transfer-Encoding: chunked").unwrap();
    assert!(first < second, "{answer}");
    assert!(answer.ends_with("0\r\n\r\n"), "{answer}");
}

/// On an HTTPS listener that asks for client certificates, the certificate names the user
/// of an HTTP client as of a SOCKS one: curl's --proxy-cert; without one, no session.
#[test]
fn a_client_certificate_names_the_https_proxy_user() {
    let Some(origin) = curl_and_origin() else {
        return;
    };
    let authority = socksgate_tests::pki::Authority::new("https-proxy-users");
    let pem = authority.server("proxy");
    let carol = authority.client("carol");
    let mut config = tls_listener(&pem, Some(&authority));
    config.listeners[0].methods = vec![Method::NO_AUTH];
    let server = TestServer::start_with(config);
    let proxy = format!("https://localhost:{}", server.addr().port());
    let cacert = authority.cert.display().to_string();
    let (cert, key) = (
        carol.cert.display().to_string(),
        carol.key.display().to_string(),
    );
    let with_certificate = curl(&[
        "-x",
        &proxy,
        "--proxy-cacert",
        &cacert,
        "--proxy-cert",
        &cert,
        "--proxy-key",
        &key,
        &origin.url("/"),
    ]);
    assert_eq!(
        with_certificate.stdout, "hello from the origin",
        "{}",
        with_certificate.stderr
    );
    let without = curl(&["-x", &proxy, "--proxy-cacert", &cacert, &origin.url("/")]);
    assert!(!without.success, "{}", without.stdout);
    let log = server.wait_for_sessions(2);
    assert!(
        log.iter().any(|entry| entry["user"] == "carol"
            && entry["protocol"] == "http"
            && entry["status"] == "200"),
        "{log:#?}"
    );
    assert_eq!(count_where(&log, "outcome", "tls-failed"), 1, "{log:#?}");
}
