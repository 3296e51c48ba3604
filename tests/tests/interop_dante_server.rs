//! Dante's server (danted) in a chain with socksgate: socksgate as Dante's upstream (a
//! `route` in sockd.conf), and Dante as an upstream of socksgate (a route rule).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use socksgate_config::Config;
use socksgate_tests::interop::{run, skip_or_fail, tool};
use socksgate_tests::{HttpTarget, TestServer};

const BODY: &str = "through dante and socksgate";

/// danted on a loopback port, with `extra` appended to its configuration.
struct Danted {
    child: Child,
    address: SocketAddr,
}

impl Drop for Danted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Danted {
    fn start(extra: &str) -> Option<Self> {
        let danted = tool("danted")?;
        if !rustix::process::geteuid().is_root() {
            skip_or_fail("danted needs root here (user.privileged)");
            return None;
        }
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "sg-danted-{}-{}",
            std::process::id(),
            address.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sockd.conf");
        std::fs::write(
            &conf,
            format!(
                "logoutput: stderr\ninternal: 127.0.0.1 port = {}\nexternal: 127.0.0.1\n\
                 socksmethod: none\nclientmethod: none\nuser.privileged: root\n\
                 user.unprivileged: nobody\n\
                 client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n\
                 socks pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 }}\n{extra}",
                address.port()
            ),
        )
        .unwrap();
        let child = Command::new(danted)
            .args(["-f", conf.to_str().unwrap()])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "danted did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, address })
    }
}

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
