//! Real third-party SOCKS clients against the real server, each from Debian's packages:
//! curl, ncat, proxychains4, Dante's socksify and headless Chromium. Every test checks both
//! what the program got and that the session went through socksgate (its access log).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::SocketAddr;

use socksgate_config::Listener;
use socksgate_tests::interop::{run, tool};
use socksgate_tests::scratch_dir;
use socksgate_tests::{HttpTarget, TestServer};

const BODY: &str = "<html><body><p id=\"greeting\">hello through socksgate</p></body></html>";

/// Asserts that exactly the sessions with these (protocol, target) went through `server`.
fn assert_sessions(server: &TestServer, expected: &[(&str, String)]) {
    let log = server.wait_for_sessions(expected.len());
    let seen: Vec<(String, String)> = log
        .iter()
        .map(|entry| (entry["protocol"].clone(), entry["target"].clone()))
        .collect();
    for (protocol, target) in expected {
        assert!(
            seen.contains(&(protocol.to_string(), target.clone())),
            "no {protocol} session to {target} in {log:#?}"
        );
    }
    assert!(log.iter().all(|entry| entry["reply"] == "0x00"), "{log:#?}");
}

mod curl {
    use super::*;

    fn fetch(flag: &str, proxy: SocketAddr, url: &str) -> String {
        let curl = tool("curl").unwrap();
        let proxy = proxy.to_string();
        let result = run(
            &curl,
            &["-sS", "--max-time", "15", flag, &proxy, url],
            &[],
            30,
        );
        assert!(result.success, "curl {flag} {url}: {}", result.stderr);
        result.stdout
    }

    #[test]
    fn every_socks_flavour_with_ipv4_and_name_targets() {
        if tool("curl").is_none() {
            return;
        }
        let target = HttpTarget::start(BODY);
        let server = TestServer::start();
        let proxy = server.addr();
        let by_ip = target.url("127.0.0.1");
        let by_name = target.url("localhost");
        assert_eq!(fetch("--socks4", proxy, &by_ip), BODY);
        assert_eq!(fetch("--socks4a", proxy, &by_name), BODY);
        assert_eq!(fetch("--socks5", proxy, &by_ip), BODY);
        assert_eq!(fetch("--socks5-hostname", proxy, &by_name), BODY);
        let port = target.port;
        assert_sessions(
            &server,
            &[
                ("socks4", format!("127.0.0.1:{port}")),
                ("socks4a", format!("localhost:{port}")),
                ("socks5", format!("127.0.0.1:{port}")),
                ("socks5", format!("localhost:{port}")),
            ],
        );
        assert_eq!(target.requests(), 4);
    }

    #[test]
    fn ipv6_target_and_ipv6_listener() {
        if tool("curl").is_none() {
            return;
        }
        let target = HttpTarget::start(BODY);
        if !target.ipv6 {
            socksgate_tests::interop::skip_or_fail("no IPv6 loopback");
            return;
        }
        let mut config = TestServer::loopback_config();
        config
            .listeners
            .push(Listener::open("[::1]:0".parse().unwrap()));
        let server = TestServer::start_with(config);
        let v6_proxy = server.addrs()[1];
        assert_eq!(fetch("--socks5", server.addr(), &target.url("[::1]")), BODY);
        assert_eq!(
            fetch("--socks5-hostname", v6_proxy, &target.url("[::1]")),
            BODY
        );
        let log = server.wait_for_sessions(2);
        assert!(
            log.iter().any(|e| e["listener"] == v6_proxy.to_string()),
            "{log:#?}"
        );
        assert!(
            log.iter()
                .all(|e| e["target"] == format!("[::1]:{}", target.port)),
            "{log:#?}"
        );
    }
}

mod ncat {
    use super::*;

    fn get(proxy_type: &str) {
        let Some(ncat) = tool("ncat") else { return };
        let target = HttpTarget::start(BODY);
        let server = TestServer::start();
        let proxy = server.addr().to_string();
        let port = target.port.to_string();
        let script = format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | {} --proxy {proxy} --proxy-type {proxy_type} 127.0.0.1 {port}",
            ncat.display()
        );
        let result = run("sh".as_ref(), &["-c", &script], &[], 30);
        assert!(result.success, "ncat: {}", result.stderr);
        assert!(result.stdout.ends_with(BODY), "{}", result.stdout);
        assert_sessions(&server, &[(proxy_type, format!("127.0.0.1:{port}"))]);
    }

    #[test]
    fn socks5() {
        get("socks5");
    }

    #[test]
    fn socks4() {
        get("socks4");
    }
}

mod proxychains {
    use super::*;

    #[test]
    fn runs_curl_through_the_proxy() {
        let (Some(proxychains), Some(curl)) = (tool("proxychains4"), tool("curl")) else {
            return;
        };
        let target = HttpTarget::start(BODY);
        let server = TestServer::start();
        let dir = scratch_dir("proxychains");
        let conf = dir.join("proxychains.conf");
        std::fs::write(
            &conf,
            format!(
                "strict_chain\nquiet_mode\nproxy_dns\ntcp_read_time_out 15000\n\
                 tcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 {}\n",
                server.addr().port()
            ),
        )
        .unwrap();
        let curl = curl.to_string_lossy().into_owned();
        let conf = conf.to_string_lossy().into_owned();
        let url = target.url("127.0.0.1");
        let result = run(
            &proxychains,
            &["-q", "-f", &conf, &curl, "-sS", &url],
            &[],
            30,
        );
        assert!(result.success, "proxychains4: {}", result.stderr);
        assert_eq!(result.stdout, BODY);
        assert_sessions(&server, &[("socks5", format!("127.0.0.1:{}", target.port))]);
        let _ = std::fs::remove_dir_all(dir);
    }
}

mod dante_socksify {
    use super::*;
    use socksgate_tests::NetNs;

    #[test]
    fn runs_curl_through_the_proxy() {
        let (Some(socksify), Some(curl)) = (tool("socksify"), tool("curl")) else {
            return;
        };
        // Dante's client connects directly to loopback and to the networks of local
        // interfaces, so the target is a second host.
        let Some((client_host, target_host)) = NetNs::two_hosts() else {
            return;
        };
        let target = target_host.run(|| HttpTarget::start_at([198, 51, 100, 10].into(), BODY));
        client_host.run(|| {
            let server = TestServer::start();
            let dir = scratch_dir("socksify");
            let conf = dir.join("socks.conf");
            std::fs::write(
                &conf,
                format!(
                    "route {{\n  from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = {}\n  \
                     proxyprotocol: socks_v5\n  method: none\n}}\n",
                    server.addr().port()
                ),
            )
            .unwrap();
            let curl = curl.to_string_lossy().into_owned();
            let url = target.url("198.51.100.10");
            let conf = conf.to_string_lossy().into_owned();
            let result = run(
                &socksify,
                &[&curl, "-sS", &url],
                &[("SOCKS_CONF", &conf)],
                30,
            );
            let _ = std::fs::remove_dir_all(dir);
            assert!(result.success, "socksify: {}", result.stderr);
            assert_eq!(result.stdout, BODY);
            assert_sessions(
                &server,
                &[("socks5", format!("198.51.100.10:{}", target.port))],
            );
        });
    }
}

mod chromium {
    use super::*;

    #[test]
    fn headless_chromium_loads_a_page_through_the_proxy() {
        let Some(chromium) = tool("chromium") else {
            return;
        };
        let target = HttpTarget::start(BODY);
        let server = TestServer::start();
        let profile = std::env::temp_dir().join(format!("sg-chromium-{}", std::process::id()));
        let proxy = format!("--proxy-server=socks5://{}", server.addr());
        let profile_arg = format!("--user-data-dir={}", profile.display());
        let url = target.url("127.0.0.1");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Chromium never proxies loopback unless told to stop bypassing it.
            "--proxy-bypass-list=<-loopback>",
            &proxy,
            &profile_arg,
            "--dump-dom",
            &url,
        ];
        let result = run(&chromium, &args, &[], 90);
        let _ = std::fs::remove_dir_all(&profile);
        assert!(
            result.stdout.contains("hello through socksgate"),
            "chromium printed {:?}; stderr {}",
            result.stdout,
            result.stderr
        );
        let log = server.wait_for_sessions(1);
        let wanted = format!("127.0.0.1:{}", target.port);
        assert!(
            log.iter()
                .any(|e| e["target"] == wanted && e["reply"] == "0x00"),
            "{log:#?}"
        );
    }
}
