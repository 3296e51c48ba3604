//! `socksgate import`: other tools' configurations, converted and then used for real.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use socksgate_proto::Method;
use socksgate_tests::interop::tool;
use socksgate_tests::{EchoTarget, TestServer};

const SOCKSGATE: &str = env!("CARGO_BIN_EXE_socksgate");

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A proxychains strict chain of two proxies (the first with a password that needs
/// escaping in a URL), converted, `eval`ed by bash as documented, carries `socksgate
/// connect` through both.
#[test]
fn a_converted_proxychains_chain_carries_a_connection() {
    let Some(bash) = tool("bash") else {
        return;
    };
    let passwords =
        socksgate_tests::server::password_file("import-users", &[("alice", "s3cr:t@x")]);
    let mut config = TestServer::loopback_config();
    config.listeners[0].methods = vec![Method::PASSWORD];
    let authenticator = socksgate_auth::PasswordFile::open(&passwords, None, false).unwrap();
    let first = TestServer::start_with_authenticator(config, Some(Arc::new(authenticator)));
    let second = TestServer::start();
    let echo = EchoTarget::start();
    let file = scratch(
        "proxychains.conf",
        &format!(
            "# a hand-written configuration\nstrict_chain\nproxy_dns\n\n[ProxyList]\n\
             socks5  127.0.0.1 {} alice s3cr:t@x\nsocks4\t127.0.0.1 {}\n",
            first.addr().port(),
            second.addr().port()
        ),
    );
    let converted = Command::new(SOCKSGATE)
        .args(["import", "proxychains"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        converted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let script = format!(
        "eval \"$({SOCKSGATE} import proxychains '{}')\" && printf chained | {SOCKSGATE} connect 127.0.0.1 {}",
        file.display(),
        echo.addr.port()
    );
    let output = Command::new(bash)
        .arg("-c")
        .arg(script)
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("SOCKS_PROXY")
        .env_remove("SOCKS5_PROXY")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "chained",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(first.wait_for_sessions(1)[0]["user"], "alice");
    // The last hop is SOCKS4(a): an address target goes as plain SOCKS4.
    let last = &second.wait_for_sessions(1)[0];
    assert_eq!(last["protocol"], "socks4");
    assert_eq!(last["target"], echo.addr.to_string());
}

/// Debian's own example (proxychains4's /etc/proxychains4.conf): the chain and the fake
/// range convert; its two timeouts cannot, and are named with their lines (exit 1).
#[test]
fn debians_proxychains_example_converts_with_its_drops_explained() {
    let example = std::path::Path::new("/etc/proxychains4.conf");
    if !example.exists() {
        socksgate_tests::interop::skip_or_fail(
            "/etc/proxychains4.conf (package proxychains4) is missing",
        );
        return;
    }
    let output = Command::new(SOCKSGATE)
        .args(["import", "proxychains"])
        .arg(example)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("export SOCKSGATE_PROXY='socks4a://127.0.0.1:9050'"),
        "{text}"
    );
    assert!(text.contains("--fake-range 224.0.0.0/8"), "{text}");
    assert_eq!(text.matches("has no such timeout").count(), 2, "{text}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 setting(s)"));
}
