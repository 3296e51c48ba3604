//! Dante's server (danted) in a chain with socksgate: socksgate as Dante's upstream (a
//! `route` in sockd.conf), and Dante as an upstream of socksgate (a route rule).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::SocketAddr;
use std::path::Path;

use socksgate_config::Config;
use socksgate_tests::dante::Danted;
use socksgate_tests::interop::{run, tool};
use socksgate_tests::{HttpTarget, TestServer};

const BODY: &str = "through dante and socksgate";

fn curl_through(proxy: SocketAddr, url: &str) -> String {
    let curl = tool("curl").unwrap();
    let result = run(
        &curl,
        &[
            "-sS",
            "--max-time",
            "15",
            "--socks5",
            &proxy.to_string(),
            url,
        ],
        &[],
        30,
    );
    assert!(result.success, "curl: {}", result.stderr);
    result.stdout
}

#[test]
fn socksgate_as_dantes_upstream() {
    if tool("curl").is_none() {
        return;
    }
    let socksgate = TestServer::start();
    let route = format!(
        "route {{ from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = {}\n\
         proxyprotocol: socks_v5\nmethod: none\n}}\n",
        socksgate.addr().port()
    );
    let Some(dante) = Danted::start(&route) else {
        return;
    };
    let target = HttpTarget::start(BODY);
    assert_eq!(curl_through(dante.address, &target.url("127.0.0.1")), BODY);
    let log = socksgate.wait_for_sessions(1);
    assert_eq!(
        log[0]["target"],
        format!("127.0.0.1:{}", target.port),
        "Dante went through socksgate"
    );
}

#[test]
fn dante_as_an_upstream_of_socksgate() {
    if tool("curl").is_none() {
        return;
    }
    let Some(dante) = Danted::start("") else {
        return;
    };
    let text = format!(
        "[[upstream]]\nname = \"dante\"\nchains = [[\"socks5://{}\"]]\n\
         [[rule]]\naction = \"route\"\nroute = \"dante\"\n",
        dante.address
    );
    let mut config = Config::parse(&text, Path::new("via-dante.toml")).unwrap();
    config.listeners = TestServer::loopback_config().listeners;
    let socksgate = TestServer::start_with(config);
    let target = HttpTarget::start(BODY);
    assert_eq!(
        curl_through(socksgate.addr(), &target.url("127.0.0.1")),
        BODY
    );
    let log = socksgate.wait_for_sessions(1);
    assert!(log[0]["rule"].ends_with("via dante"), "{log:#?}");
}
