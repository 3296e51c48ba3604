//! The `socksgate` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn socksgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_socksgate"))
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn open_proxy_on_all_addresses_refuses_to_start() {
    let output = socksgate()
        .args(["serve", "--listen", "0.0.0.0:1080"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("open proxy"), "{stderr}");
    assert!(stderr.contains("danger_allow_open_proxy"), "{stderr}");
}

#[test]
fn config_typo_names_file_line_and_field() {
    let path = temp_file(
        "typo.toml",
        "[[listen]]\naddress = \"127.0.0.1:1080\"\nsock4 = true\n",
    );
    let output = socksgate()
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "error: {}:3:1: field `sock4`: unknown field `sock4`",
        path.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
}

#[test]
fn the_example_gateway_config_checks() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gateway.toml");
    let output = socksgate().args(["check", "-c", example]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("OK") && stdout.contains("0.0.0.0:1080"),
        "{stdout}"
    );
}

#[test]
fn listener_that_cannot_bind_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = socksgate()
        .args(["serve", "--listen", &address])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot listen on"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn serve_proxies_then_stops_on_sigterm() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_port = target.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = target.accept().unwrap();
        stream.write_all(b"from target").unwrap();
    });

    let mut child = socksgate()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port: u16 = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = line.split("address=127.0.0.1:").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .expect("the server logs its address");

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1];
    request.extend(target_port.to_be_bytes());
    client.write_all(&request).unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    assert_eq!(answer[..4], [0x05, 0x00, 0x05, 0x00]);
    assert_eq!(&answer[12..], b"from target");
    // Close our side too, or the drain would wait for this session.
    drop(client);

    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
}

#[test]
fn help_documents_the_exit_codes() {
    let output = socksgate().arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Exit codes"), "{stdout}");
    assert!(
        stdout.contains("serve") && stdout.contains("check"),
        "{stdout}"
    );
}
