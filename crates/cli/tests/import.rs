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
    socksgate_tests::server::scratch_file("import", name, text)
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
    let mut command = Command::new(bash);
    let output = socksgate_tests::client::without_proxy_environment(&mut command)
        .arg("-c")
        .arg(script)
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

/// Dante's example files, as Debian ships them with dante-server, with their commented
/// settings and rules switched on (they are templates).
fn dante_examples() -> Vec<(String, String)> {
    let dir = std::path::Path::new("/usr/share/doc/dante-server/examples");
    ["danted-basic.conf", "danted-chaining.conf", "danted.conf"]
        .iter()
        .filter_map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).ok()?;
            let active: String = text
                .lines()
                .map(|line| {
                    // `#keyword: …`, `#socks pass {`, `#  from: …`, `#}`: the template's lines;
                    // prose comments start with `# ` or `##`.
                    let uncommented = line.strip_prefix('#').unwrap_or(line);
                    let looks_like_config = uncommented.contains(':')
                        || uncommented.contains('{')
                        || uncommented.trim() == "}";
                    let is_template = line.starts_with('#')
                        && !line.starts_with("##")
                        && !line.starts_with("# ")
                        && looks_like_config;
                    format!("{}\n", if is_template { uncommented } else { line })
                })
                .collect();
            Some((name.to_string(), active))
        })
        .collect()
}

/// Each example converts into a configuration `socksgate check` accepts, and every setting
/// or rule it drops is named in a comment with its line (as many as the warning counts).
#[test]
fn dantes_example_configs_convert_with_every_drop_explained() {
    let examples = dante_examples();
    if examples.len() < 3 {
        socksgate_tests::interop::skip_or_fail(
            "Dante's examples (package dante-server) are missing",
        );
        return;
    }
    for (name, text) in examples {
        let file = scratch(&format!("{name}.active"), &text);
        let output = Command::new(SOCKSGATE)
            .args(["import", "dante"])
            .arg(&file)
            .output()
            .unwrap();
        let converted = String::from_utf8_lossy(&output.stdout);
        let warning = String::from_utf8_lossy(&output.stderr);
        let explained = converted
            .lines()
            .filter(|line| line.starts_with("# line ") && line.contains(": `"))
            .count();
        match output.status.code() {
            Some(0) => assert_eq!(explained, 0, "{name}:\n{converted}"),
            Some(1) => assert!(
                warning.contains(&format!("{explained} setting(s)")),
                "{name}: {warning}\n{converted}"
            ),
            other => panic!("{name}: exit {other:?}: {warning}"),
        }
        // `check` reads the account [process] names, as starting does: Dante's (sockd) is
        // not on this machine, `nobody` is.
        let mut in_process = false;
        let converted: String = converted
            .lines()
            .map(|line| {
                if line.starts_with('[') {
                    in_process = line == "[process]";
                }
                if in_process && line.starts_with("user = ") {
                    "user = \"nobody\"\n".to_owned()
                } else if in_process && line.starts_with("group = ") {
                    // nobody's own group, whatever the distribution calls it.
                    String::new()
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        let toml = scratch(&format!("{name}.toml"), &converted);
        let check = Command::new(SOCKSGATE)
            .args(["check", "-c"])
            .arg(&toml)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{name}: {}\n{converted}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

/// A hand-written sockd.conf, served by Dante and, converted, by socksgate: the same
/// requests get the same decisions.
#[test]
fn a_converted_dante_config_decides_like_dante() {
    let Some(danted) = tool("danted") else {
        return;
    };
    let mut ports: Vec<(EchoTarget, u16)> = (0..3)
        .map(|_| {
            let echo = EchoTarget::start();
            let port = echo.addr.port();
            (echo, port)
        })
        .collect();
    ports.sort_by_key(|(_, port)| *port);
    let (low, middle, high) = (ports[0].1, ports[1].1, ports[2].1);
    // `high` is blocked by name; `middle` passes (port ge middle); `low` falls to the end.
    let template = format!(
        "logoutput: {{log}}\ninternal: 127.0.0.1 port = {{port}}\nexternal: 127.0.0.1\n\
         socksmethod: none\nclientmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
         client pass {{ from: 127.0.0.0/8 to: 0/0 log: error }}\n\
         socks block {{ from: 0/0 to: 127.0.0.1/32 port = {high} log: connect }}\n\
         socks pass {{\n  from: 127.0.0.0/8 to: 127.0.0.1/32 port ge {middle}\n  command: connect\n  log: connect\n}}\n\
         socks block {{ from: 0/0 to: 0/0 log: connect }}\n"
    );
    let Some(dante) = socksgate_tests::dante::Danted::start_config(&danted, &template) else {
        return;
    };
    let requests = [high, middle, low];
    let decisions = |proxy: std::net::SocketAddr| -> Vec<bool> {
        requests
            .iter()
            .map(|port| {
                socksgate_tests::socks5_connect(proxy, &format!("127.0.0.1:{port}")).is_ok()
            })
            .collect()
    };
    let by_dante = decisions(dante.address);
    assert_eq!(by_dante, [false, true, false], "Dante's own decisions");

    let sockd = scratch(
        "decide.sockd.conf",
        &template
            .replace("{port}", &dante.address.port().to_string())
            .replace("{log}", "stderr"),
    );
    let converted = Command::new(SOCKSGATE)
        .args(["import", "dante"])
        .arg(&sockd)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&converted.stdout).into_owned();
    assert_eq!(converted.status.code(), Some(0), "{text}");
    // Its own port (Dante holds the converted one).
    let port = socksgate_tests::free_port("127.0.0.1");
    let text = text.replace(
        &format!("127.0.0.1:{}", dante.address.port()),
        &format!("127.0.0.1:{port}"),
    );
    let config = scratch("decide.toml", &text);
    let mut server = Command::new(SOCKSGATE)
        .args(["serve", "-c"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socksgate_tests::client::wait_until_listening(proxy, "socksgate serve (converted)");
    let by_socksgate = decisions(proxy);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(by_socksgate, by_dante, "converted:\n{text}");
}
