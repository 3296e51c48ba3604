//! TLS listeners: SOCKS inside TLS, client certificates that name the user, refusals that
//! say why, a stock TLS client (stunnel, with curl behind it), and data integrity through the
//! buffered relay a TLS session uses.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use sha2::{Digest, Sha256};
use socksgate_config::{Config, ListenerTls};
use socksgate_tests::free_port;
use socksgate_tests::interop::{run, tool};
use socksgate_tests::pki::{tls_with_certificate, Authority, Pem};
use socksgate_tests::target::EchoTarget;
use socksgate_tests::{HttpTarget, TestServer};
use socksgate_tls::rustls::pki_types::ServerName;
use socksgate_tls::tokio_rustls::{client::TlsStream, TlsConnector};
use socksgate_tls::ClientTls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: &str = "<html><body>hello over TLS</body></html>";

/// A server whose only listener speaks TLS with `server` (and asks for client certificates
/// from `client_ca`, when given).
fn tls_server(server: &Pem, client_ca: Option<&Authority>) -> TestServer {
    let mut config: Config = TestServer::loopback_config();
    config.listeners.truncate(1);
    config.listeners[0].tls = Some(ListenerTls {
        cert: server.cert.clone(),
        key: server.key.clone(),
        client_ca: client_ca.map(|ca| ca.cert.clone()),
    });
    TestServer::start_with(config)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// TLS to `proxy` trusting `ca` (presenting `client`, if any), then a SOCKS5 CONNECT to
/// `target` without authentication. Returns the stream once the reply said success.
async fn socks_over_tls(
    proxy: SocketAddr,
    ca: &Authority,
    client: Option<&Pem>,
    target: SocketAddr,
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let options = ClientTls {
        ca: Some(ca.cert.clone()),
        cert: client.map(|pem| pem.cert.clone()),
        key: client.map(|pem| pem.key.clone()),
        ..ClientTls::default()
    };
    let config = socksgate_tls::client_config(&options).map_err(std::io::Error::other)?;
    let tcp = tokio::net::TcpStream::connect(proxy).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    // RFC 1928 §3 and §4: greeting (no authentication), then CONNECT to an IPv4 address.
    let SocketAddr::V4(v4) = target else {
        panic!("IPv4 targets only")
    };
    let mut request = vec![5, 1, 0, 5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    tls.write_all(&request).await?;
    tls.flush().await?;
    let mut replies = [0u8; 2 + 10];
    tls.read_exact(&mut replies).await?;
    assert_eq!(&replies[..2], &[5, 0], "method selection");
    assert_eq!(replies[3], 0, "CONNECT reply {replies:?}");
    Ok(tls)
}

#[test]
fn socks_inside_tls_relays_and_half_closes_intact() {
    let ca = Authority::new("relay");
    let server = tls_server(&ca.server("server"), None);
    let echo = EchoTarget::start();
    let (sent, received) = runtime().block_on(async {
        let tls = socks_over_tls(server.addr(), &ca, None, echo.addr)
            .await
            .unwrap();
        let (mut reader, mut writer) = tokio::io::split(tls);
        // 8 MiB of counter bytes up, then end of file; the echo comes back whole.
        let writing = tokio::spawn(async move {
            let mut hash = Sha256::new();
            for block in 0..512u32 {
                let chunk: Vec<u8> = (0..16_384u32)
                    .map(|i| (block.wrapping_mul(31) ^ i) as u8)
                    .collect();
                hash.update(&chunk);
                writer.write_all(&chunk).await.unwrap();
            }
            writer.shutdown().await.unwrap();
            hash.finalize().to_vec()
        });
        let mut hash = Sha256::new();
        let mut buffer = vec![0u8; 65_536];
        loop {
            let read = reader.read(&mut buffer).await.unwrap();
            if read == 0 {
                break;
            }
            hash.update(&buffer[..read]);
        }
        (writing.await.unwrap(), hash.finalize().to_vec())
    });
    assert_eq!(sent, received);
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "closed", "{log:#?}");
    assert_eq!(log[0]["bytes_up"], (8u64 << 20).to_string(), "{log:#?}");
}

#[test]
fn plain_socks_on_a_tls_listener_is_refused_and_logged() {
    let ca = Authority::new("plain");
    let server = tls_server(&ca.server("server"), None);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&[5, 1, 0]).unwrap();
    // No SOCKS reply ever comes: the server wanted a TLS ClientHello, and closes.
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(!reply.starts_with(&[5, 0]), "{reply:?}");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "tls-failed", "{log:#?}");
}

#[test]
fn a_client_certificate_names_the_user_and_bad_ones_are_refused_with_the_reason() {
    let ca = Authority::new("clients");
    let stranger = Authority::new("stranger");
    let server = tls_server(&ca.server("server"), Some(&ca));
    let echo = EchoTarget::start();
    let alice = ca.client("alice");
    let expired = ca.expired_client("bob");
    let forged = stranger.client("mallory");
    runtime().block_on(async {
        let mut tls = socks_over_tls(server.addr(), &ca, Some(&alice), echo.addr)
            .await
            .unwrap();
        tls.write_all(b"ping").await.unwrap();
        tls.flush().await.unwrap();
        let mut echoed = [0u8; 4];
        tls.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping");
        drop(tls);
        for (client, who) in [
            (Some(&expired), "expired"),
            (Some(&forged), "other authority"),
            (None, "none"),
        ] {
            let refused = socks_over_tls(server.addr(), &ca, client, echo.addr).await;
            assert!(refused.is_err(), "{who}: accepted");
        }
    });
    let log = server.wait_for_sessions(4);
    let accepted: Vec<_> = log.iter().filter(|e| e["reply"] == "0x00").collect();
    assert_eq!(accepted.len(), 1, "{log:#?}");
    assert_eq!(accepted[0]["user"], "alice", "{log:#?}");
    let reasons: Vec<&str> = log
        .iter()
        .filter(|entry| entry["outcome"] == "tls-failed")
        .map(|entry| entry["detail"].as_str())
        .collect();
    assert_eq!(reasons.len(), 3, "{log:#?}");
    for expected in ["Expired", "UnknownIssuer", "no certificate"] {
        assert!(
            reasons
                .iter()
                .any(|reason| reason.to_lowercase().contains(&expected.to_lowercase())),
            "no refusal saying {expected:?} in {reasons:#?}"
        );
    }
}

#[test]
fn curl_through_stunnel_reaches_its_target_over_the_tls_listener() {
    let (Some(stunnel), Some(curl)) = (tool("stunnel4"), tool("curl")) else {
        return;
    };
    let ca = Authority::new("stunnel");
    let server = tls_server(&ca.server("server"), None);
    let target = HttpTarget::start(BODY);
    // stunnel in client mode: plain SOCKS in on a local port, TLS out to socksgate,
    // checking socksgate's certificate against the test's authority.
    let local = free_port("127.0.0.1");
    let config = ca.dir().join("stunnel.conf");
    std::fs::write(
        &config,
        format!(
            "foreground = yes\npid =\n[socks]\nclient = yes\naccept = 127.0.0.1:{local}\n\
             connect = {}\nCAfile = {}\nverifyChain = yes\ncheckHost = localhost\n",
            server.addr(),
            ca.cert.display()
        ),
    )
    .unwrap();
    let mut tunnel = std::process::Command::new(&stunnel)
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", local)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "stunnel did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let proxy = format!("127.0.0.1:{local}");
    let fetched = run(
        &curl,
        &[
            "-sS",
            "--max-time",
            "15",
            "--socks5-hostname",
            &proxy,
            &target.url("localhost"),
        ],
        &[],
        30,
    );
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    assert!(fetched.success, "curl: {}", fetched.stderr);
    assert_eq!(fetched.stdout, BODY);
    // Probing stunnel's port made it open TLS connections that ended at once; curl's session
    // is the one that says 0x00, logged when stunnel closes it (soon after curl is done).
    let curl_session = |log: &[socksgate_tests::AccessEntry]| {
        log.iter()
            .any(|entry| entry["reply"] == "0x00" && entry["target"].starts_with("localhost:"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut log = server.access_log();
    while !curl_session(&log) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        log = server.access_log();
    }
    assert!(curl_session(&log), "{log:#?}");
}

#[test]
fn tls_configuration_errors_name_the_file() {
    let ca = Authority::new("errors");
    let pem = ca.server("server");
    let mut config: Config = TestServer::loopback_config();
    config.listeners.truncate(1);
    config.listeners[0].tls = Some(ListenerTls {
        cert: pem.cert.clone(),
        key: ca.dir().join("missing.key"),
        client_ca: None,
    });
    let error = runtime()
        .block_on(socksgate_server::Server::bind(config))
        .err()
        .expect("a missing key file is refused");
    assert!(error.to_string().contains("missing.key"), "{error}");
    // The client side names its files the same way.
    let options = ClientTls {
        ca: Some(ca.dir().join("nowhere.pem")),
        ..ClientTls::default()
    };
    let error = socksgate_tls::client_config(&options).unwrap_err();
    assert!(error.to_string().contains("nowhere.pem"), "{error}");
}

mod client_hops {
    use super::*;
    use socksgate_client::{Chain, HopFailure, PublicKeyPin};

    fn chain(urls: &[String]) -> Chain {
        urls.iter().map(|url| url.parse().unwrap()).collect()
    }

    async fn echo_through(
        chain: &Chain,
        echo: SocketAddr,
    ) -> Result<(), socksgate_client::ChainError> {
        let mut stream = chain.connect(&echo.into()).await?;
        stream.write_all(b"through tls").await.unwrap();
        stream.flush().await.unwrap();
        let mut back = [0u8; 11];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"through tls");
        Ok(())
    }

    #[test]
    fn a_tls_hop_presents_a_client_certificate_and_checks_the_proxy() {
        let ca = Authority::new("hops");
        let server = tls_server(&ca.server("server"), Some(&ca));
        let echo = EchoTarget::start();
        let alice = ca.client("alice");
        let url = format!("socks5hs://localhost:{}", server.addr().port());
        let options = ClientTls {
            ca: Some(ca.cert.clone()),
            cert: Some(alice.cert.clone()),
            key: Some(alice.key.clone()),
            ..ClientTls::default()
        };
        let with_certificate = chain(std::slice::from_ref(&url))
            .with_tls(&options)
            .unwrap();
        runtime()
            .block_on(echo_through(&with_certificate, echo.addr))
            .unwrap();
        // Without a certificate the listener refuses; the error names the hop and TLS.
        let anonymous = chain(&[url])
            .with_tls(&ClientTls {
                ca: Some(ca.cert.clone()),
                ..ClientTls::default()
            })
            .unwrap();
        let error = runtime()
            .block_on(echo_through(&anonymous, echo.addr))
            .unwrap_err();
        assert_eq!(error.hop, 1, "{error}");
        let log = server.wait_for_sessions(2);
        assert!(
            log.iter()
                .any(|e| e["user"] == "alice" && e["reply"] == "0x00"),
            "{log:#?}"
        );
    }

    #[test]
    fn a_pinned_key_is_accepted_and_any_other_refused() {
        let ca = Authority::new("pins");
        let pem = ca.server("server");
        let server = tls_server(&pem, None);
        let echo = EchoTarget::start();
        let certificate = &socksgate_tls::load_certificates(&pem.cert).unwrap()[0];
        let pin = PublicKeyPin::of(certificate).unwrap();
        let url = format!("socks5s://127.0.0.1:{}", server.addr().port());
        let pinned = chain(std::slice::from_ref(&url))
            .with_tls(&ClientTls {
                pin: Some(pin),
                ..ClientTls::default()
            })
            .unwrap();
        runtime()
            .block_on(echo_through(&pinned, echo.addr))
            .unwrap();
        // Another key (a certificate the same authority issued) does not match the pin.
        let other = socksgate_tls::load_certificates(&ca.server("other").cert).unwrap();
        let wrong = chain(&[url])
            .with_tls(&ClientTls {
                pin: PublicKeyPin::of(&other[0]),
                ..ClientTls::default()
            })
            .unwrap();
        let error = runtime()
            .block_on(echo_through(&wrong, echo.addr))
            .unwrap_err();
        assert!(matches!(error.failure, HopFailure::Tls(_)), "{error}");
        assert!(
            error.to_string().contains("does not match the pin"),
            "{error}"
        );
        // The pin reads and prints as curl writes it.
        assert_eq!(pin.to_string().parse::<PublicKeyPin>().unwrap(), pin);
    }

    #[test]
    fn tls_at_the_second_hop_of_a_chain() {
        let ca = Authority::new("second");
        let first = TestServer::start();
        let second = tls_server(&ca.server("server"), None);
        let echo = EchoTarget::start();
        let urls = [
            format!("socks5://{}", first.addr()),
            format!("socks5hs://localhost:{}", second.addr().port()),
        ];
        let through = chain(&urls)
            .with_tls(&ClientTls {
                ca: Some(ca.cert.clone()),
                ..ClientTls::default()
            })
            .unwrap();
        runtime()
            .block_on(echo_through(&through, echo.addr))
            .unwrap();
        // The first hop relayed TLS bytes it cannot read; the second saw the request.
        let log = second.wait_for_sessions(1);
        assert_eq!(log[0]["target"], echo.addr.to_string(), "{log:#?}");
        // (socks5:// resolves names on the client: the first hop got an address.)
        let to_second = first.wait_for_sessions(1)[0]["target"].clone();
        assert!(
            to_second.ends_with(&format!(":{}", second.addr().port())),
            "{to_second}"
        );
    }
}

#[test]
fn a_route_reaches_its_upstream_over_tls_with_the_groups_authority() {
    let ca = Authority::new("route");
    let upstream = tls_server(&ca.server("server"), None);
    let toml = format!(
        "[[upstream]]\nname = \"up\"\nchains = [[\"socks5hs://localhost:{}\"]]\n\
         tls = {{ ca = {:?} }}\n[[rule]]\naction = \"route\"\nroute = \"up\"\n",
        upstream.addr().port(),
        ca.cert.display().to_string()
    );
    let mut config = Config::parse(&toml, std::path::Path::new("front.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    let front = TestServer::start_with(config);
    let echo = EchoTarget::start();
    let mut stream = socksgate_tests::socks5_connect(front.addr(), &echo.addr.to_string()).unwrap();
    socksgate_tests::assert_echoes(&mut stream, b"plain in, TLS out");
    drop(stream);
    assert_eq!(
        upstream.wait_for_sessions(1)[0]["target"],
        echo.addr.to_string()
    );
    // The front relayed a plain client to a TLS upstream: the buffered path, bytes counted.
    let log = front.wait_for_sessions(1);
    assert_eq!(log[0]["bytes_up"], "17", "{log:#?}");
}

/// Issue #21, finding 1: a client certificate names the user, and nothing the client says
/// afterwards replaces it. Holding bob's certificate and sending a SOCKS4 request with
/// USERID `alice` (on a listener that even trusts USERIDs), the client is still bob: a rule
/// for alice does not let it through, and the claim is only logged.
#[test]
fn a_socks4_userid_does_not_replace_the_certificates_user() {
    let ca = Authority::new("claims");
    let mut config: Config = Config::parse(
        "[[rule]]\nusers = [\"alice\"]\naction = \"allow\"\n\n[[rule]]\naction = \"deny\"\n",
        std::path::Path::new("claims.toml"),
    )
    .unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.listeners[0].tls = Some(ListenerTls {
        cert: ca.server("server").cert.clone(),
        key: ca.server("server").key.clone(),
        client_ca: Some(ca.cert.clone()),
    });
    config.listeners[0].trust_socks4_userid = true;
    let server = TestServer::start_with(config);
    let echo = EchoTarget::start();
    let bob = ca.client("bob");
    let reply = runtime().block_on(async {
        let mut tls = tls_with_certificate(server.addr(), &ca, &bob).await;
        let SocketAddr::V4(v4) = echo.addr else {
            panic!("IPv4 targets only")
        };
        // SOCKS4 CONNECT with USERID "alice".
        let mut request = vec![4, 1];
        request.extend_from_slice(&v4.port().to_be_bytes());
        request.extend_from_slice(&v4.ip().octets());
        request.extend_from_slice(b"alice\0");
        tls.write_all(&request).await.unwrap();
        tls.flush().await.unwrap();
        let mut reply = [0u8; 8];
        tls.read_exact(&mut reply).await.unwrap();
        reply
    });
    assert_eq!(reply[1], 0x5B, "bob passed as alice: {reply:?}");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["user"], "bob", "{log:#?}");
    assert_eq!(log[0]["claimed_user"], "alice", "{log:#?}");
}

/// Issue #21, finding 1 (the rule for two identities): with bob's client certificate, RFC
/// 1929 credentials for alice are refused (failure status, even with alice's right
/// password); bob's own credentials pass.
#[test]
fn credentials_for_another_user_than_the_certificates_are_refused() {
    let ca = Authority::new("two-identities");
    let mut config: Config = TestServer::loopback_config();
    config.listeners.truncate(1);
    config.listeners[0].methods = vec![socksgate_proto::Method::PASSWORD];
    config.listeners[0].socks4 = false;
    config.listeners[0].tls = Some(ListenerTls {
        cert: ca.server("server").cert.clone(),
        key: ca.server("server").key.clone(),
        client_ca: Some(ca.cert.clone()),
    });
    let users = socksgate_tests::server::password_file(
        "two-identities",
        &[("alice", "alice-pw"), ("bob", "bob-pw")],
    );
    let file = socksgate_auth::PasswordFile::open(&users, None, false).unwrap();
    let server = TestServer::start_with_authenticator(config, Some(std::sync::Arc::new(file)));
    let bob = ca.client("bob");
    let status = |user: &'static str, password: &'static str| {
        runtime().block_on(async {
            let mut tls = tls_with_certificate(server.addr(), &ca, &bob).await;
            // RFC 1928 §3 greeting offering username/password, then RFC 1929 §2.
            let mut request = vec![5, 1, 2, 1, user.len() as u8];
            request.extend_from_slice(user.as_bytes());
            request.push(password.len() as u8);
            request.extend_from_slice(password.as_bytes());
            tls.write_all(&request).await.unwrap();
            tls.flush().await.unwrap();
            let mut replies = [0u8; 4];
            tls.read_exact(&mut replies).await.unwrap();
            assert_eq!(&replies[..2], &[5, 2], "method selection");
            replies[3]
        })
    };
    assert_ne!(
        status("alice", "alice-pw"),
        0,
        "bob's certificate logged in as alice"
    );
    assert_eq!(status("bob", "bob-pw"), 0, "bob's own credentials");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["user"], "bob", "{log:#?}");
    assert_eq!(log[0]["claimed_user"], "alice", "{log:#?}");
}

/// Issue #21 (one subject): the user a client certificate proves is a user like any other —
/// here for the per-user counters, which missed certificate users before.
#[test]
fn a_certificate_user_is_counted_per_user() {
    let ca = Authority::new("counted");
    let mut config = Config::parse(
        "[admin]\naddress = \"127.0.0.1:0\"\nper_user_metrics = 10\n",
        std::path::Path::new("counted.toml"),
    )
    .unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    config.listeners.truncate(1);
    config.listeners[0].tls = Some(ListenerTls {
        cert: ca.server("server").cert.clone(),
        key: ca.server("server").key.clone(),
        client_ca: Some(ca.cert.clone()),
    });
    let server = TestServer::start_with(config);
    let echo = EchoTarget::start();
    let carol = ca.client("carol");
    runtime().block_on(async {
        let mut tls = tls_with_certificate(server.addr(), &ca, &carol).await;
        let SocketAddr::V4(v4) = echo.addr else {
            panic!("IPv4 targets only")
        };
        let mut request = vec![5, 1, 0, 5, 1, 0, 1];
        request.extend_from_slice(&v4.ip().octets());
        request.extend_from_slice(&v4.port().to_be_bytes());
        request.extend_from_slice(b"ping");
        tls.write_all(&request).await.unwrap();
        tls.flush().await.unwrap();
        let mut replies = [0u8; 2 + 10 + 4];
        tls.read_exact(&mut replies).await.unwrap();
        assert_eq!(&replies[12..], b"ping", "{replies:?}");
    });
    server.wait_for_sessions(1);
    let mut admin = TcpStream::connect(server.admin_addr().unwrap()).unwrap();
    admin.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut scrape = String::new();
    admin.read_to_string(&mut scrape).unwrap();
    assert!(
        scrape.contains("socksgate_user_sessions_total{user=\"carol\"} 1"),
        "{scrape}"
    );
}
