//! `socksgate socksify --tun`: programs that LD_PRELOAD cannot catch (a statically linked C
//! program, a Go program) reach their target only through socksgate, with `dig` over UDP
//! and `ping` in the same session.
//!
//! Everything runs inside a namespace the test creates (`site`): the target address
//! 203.0.113.80 is on its loopback, with an HTTP server, a DNS responder and a socksgate
//! server beside it. `socksify --tun` makes its own namespace inside that one for the
//! program, whose only way out is the TUN device; so whatever reaches the target went
//! through the proxy, and the proxy's access log says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socksgate_tests::fresh_scratch_dir;
use socksgate_tests::interop::tool;
use socksgate_tests::server::StaticResolver;
use socksgate_tests::{DnsResponder, HttpTarget, NetNs, TestServer};

const SOCKSGATE: &str = env!("CARGO_BIN_EXE_socksgate");
const TARGET: &str = "203.0.113.80";
/// The target's IPv6 address.
const TARGET_V6: &str = "fd00:db8::80";
/// A name only the proxy knows (its resolver maps it to `TARGET`).
const TARGET_NAME: &str = "target.test";

/// A fresh, empty directory for one test: emptied first, since an earlier process with the
/// same pid (pids wrap at 32,768 here) may have left its files, and a stale `ready` file
/// would make a test signal a session before it started.
fn scratch(name: &str) -> PathBuf {
    fresh_scratch_dir(&format!("tun-{name}"))
}

/// A C program that fetches `http://ADDRESS:PORT/` with plain sockets and prints the reply.
const STATIC_CLIENT: &str = r#"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 1; }
    const char *request = "GET / HTTP/1.0\r\n\r\n";
    write(s, request, strlen(request));
    char buffer[4096];
    ssize_t n;
    while ((n = read(s, buffer, sizeof buffer)) > 0) fwrite(buffer, 1, n, stdout);
    return 0;
}
"#;

/// A Go program that fetches a URL with net/http (Go's own resolver and sockets).
const GO_CLIENT: &str = r#"
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	response, err := http.Get(os.Args[1])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	body, _ := io.ReadAll(response.Body)
	fmt.Print(string(body))
}
"#;

fn build_static_client(dir: &Path) -> Option<PathBuf> {
    let gcc = tool("gcc")?;
    let source = dir.join("static-get.c");
    std::fs::write(&source, STATIC_CLIENT).unwrap();
    let binary = dir.join("static-get");
    let output = Command::new(gcc)
        .args(["-static", "-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    // Statically linked: no interpreter, so no LD_PRELOAD.
    let ldd = Command::new("ldd").arg(&binary).output().unwrap();
    let said = String::from_utf8_lossy(&ldd.stdout) + String::from_utf8_lossy(&ldd.stderr);
    assert!(said.contains("not a dynamic executable"), "{said}");
    Some(binary)
}

fn build_go_client(dir: &Path) -> Option<PathBuf> {
    let go = tool("go")?;
    let source = dir.join("get.go");
    std::fs::write(&source, GO_CLIENT).unwrap();
    let binary = dir.join("go-get");
    let output = Command::new(go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(&source)
        .current_dir(dir)
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("go-cache"))
        .env("GOPATH", dir.join("go-path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "off")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    Some(binary)
}

/// The namespace with the target, its DNS responder and a socksgate server that serves
/// the ICMP extension and knows `TARGET_NAME`.
struct Site {
    namespace: NetNs,
    server: TestServer,
    http: HttpTarget,
    http6: HttpTarget,
    dns: DnsResponder,
}

fn site() -> Option<Site> {
    site_with(|_| {})
}

/// [`site`] with its server's configuration adjusted by `adjust`.
fn site_with(adjust: impl FnOnce(&mut socksgate_config::Config) + Send) -> Option<Site> {
    let namespace = NetNs::create(&[
        &format!("addr add {TARGET}/32 dev lo"),
        // nodad: usable at once (a tentative address cannot be bound yet).
        &format!("addr add {TARGET_V6}/128 dev lo nodad"),
    ])?;
    let target: IpAddr = TARGET.parse().unwrap();
    let target6: IpAddr = TARGET_V6.parse().unwrap();
    let (server, http, http6, dns) = namespace.run(|| {
        let mut config = TestServer::loopback_config();
        config.icmp.enabled = true;
        adjust(&mut config);
        let names = [(TARGET_NAME.to_owned(), target)];
        let resolver = Arc::new(StaticResolver(names.into_iter().collect()));
        let server = TestServer::start_with_resolver(config, resolver);
        (
            server,
            HttpTarget::start_at(target, "through the tunnel"),
            HttpTarget::start_at(target6, "through the tunnel, IPv6"),
            DnsResponder::start_at(target),
        )
    });
    Some(Site {
        namespace,
        server,
        http,
        http6,
        dns,
    })
}

impl Site {
    fn proxy(&self) -> String {
        format!("socks5h://{}", self.server.addr())
    }

    /// `socksgate socksify --tun -x PROXY -- PROGRAM…` inside the site's namespace.
    fn socksify_tun(&self, program: &[&str]) -> Output {
        let proxy = self.proxy();
        let mut args = vec!["socksify", "--tun", "-x", &proxy, "--"];
        args.extend_from_slice(program);
        self.socksgate(&args)
    }

    /// `socksgate ARGS…` inside the site's namespace, under timeout(1).
    fn socksgate(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args([
                "120",
                "ip",
                "netns",
                "exec",
                self.namespace.name(),
                SOCKSGATE,
            ])
            .args(args)
            .output()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn static_and_go_programs_dig_and_ping_go_through_the_proxy() {
    let dir = scratch("programs");
    let (Some(static_get), Some(go_get)) = (build_static_client(&dir), build_go_client(&dir))
    else {
        return;
    };
    let (Some(_), Some(_)) = (tool("dig"), tool("ping")) else {
        return;
    };
    let Some(site) = site() else {
        return;
    };
    let port = site.http.port.to_string();
    let script = format!(
        "set -e\n\
         echo static:; {static_get} {TARGET} {port}\n\
         echo; echo go:; {go_get} http://{TARGET_NAME}:{port}/\n\
         echo; echo dig:; dig @{TARGET} -p {dns} +short +time=3 +tries=2 example.test\n\
         echo ping:; ping -n -c 2 -i 0.3 -W 3 {TARGET}\n\
         echo ipv6:; curl -sS -g -m 10 http://[{TARGET_V6}]:{port6}/\n",
        static_get = static_get.display(),
        go_get = go_get.display(),
        dns = site.dns.port,
        port6 = site.http6.port,
    );
    let proxy = site.proxy();
    let output = site.socksgate(&["socksify", "--tun", "-x", &proxy, "--", "sh", "-c", &script]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}\n{stdout}");
    assert!(
        stdout.contains("static:\nHTTP/1.1 200 OK") && stdout.contains("through the tunnel"),
        "{stdout}"
    );
    assert!(stdout.contains("go:\nthrough the tunnel"), "{stdout}");
    assert!(stdout.contains("dig:\n192.0.2.53\n"), "{stdout}");
    assert!(
        stdout.contains("2 packets transmitted, 2 received"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ipv6:\nthrough the tunnel, IPv6"),
        "{stdout}"
    );
    assert_eq!(site.http.requests(), 2);
    assert_eq!(site.http6.requests(), 1);
    assert_eq!(site.dns.queries(), 1);

    // The proxy's access log has each of them: the static program by address, the Go one
    // by the name the proxy resolved, dig's association, ping's ICMP session.
    let log = site.server.wait_for_sessions(5);
    let has = |command: &str, target: &str| {
        log.iter()
            .any(|entry| entry["command"] == command && entry["target"] == target)
    };
    assert!(has("connect", &format!("{TARGET}:{port}")), "{log:#?}");
    assert!(has("connect", &format!("{TARGET_NAME}:{port}")), "{log:#?}");
    assert!(has("icmp echo", &format!("{TARGET}:0")), "{log:#?}");
    let port6 = site.http6.port;
    assert!(
        has("connect", &format!("[{TARGET_V6}]:{port6}")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|entry| entry["command"] == "udp associate"),
        "{log:#?}"
    );

    // LD_PRELOAD cannot do this: under plain socksify the static program goes straight to
    // the target (it is reachable from here), and the proxy never hears of it.
    let sessions = site.server.access_log().len();
    let output = site.socksgate(&[
        "socksify",
        "-x",
        &proxy,
        "--",
        &static_get.display().to_string(),
        TARGET,
        &port,
    ]);
    assert!(
        text(&output.stdout).contains("through the tunnel"),
        "{output:?}"
    );
    assert_eq!(site.http.requests(), 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        site.server.access_log().len(),
        sessions,
        "a static program was proxied"
    );
}

/// Sends 256 MiB of random bytes to an echo server, half-closes, reads the echo to its end
/// and hashes both ways (the program is Debian's Python, reading and writing at once): the
/// echo still flows after the program's FIN, so half-close holds through the stack.
const BULK_CLIENT: &str = r#"
import hashlib, os, socket, sys, threading
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
connection = socket.create_connection((host, port))
sent, received = hashlib.sha256(), hashlib.sha256()
def send():
    left = total
    while left:
        block = os.urandom(min(left, 1 << 16))
        connection.sendall(block)
        sent.update(block)
        left -= len(block)
    connection.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
count = 0
while True:
    data = connection.recv(1 << 18)
    if not data:
        break
    received.update(data)
    count += len(data)
sender.join()
print(count, sent.hexdigest() == received.hexdigest())
"#;

/// 256 MiB each way through TUN mode arrive whole and in order. (Its speed is measured in
/// the benchmark, docs/performance.md, not here.)
#[test]
fn two_hundred_fifty_six_mib_each_way_arrive_intact() {
    const TOTAL: usize = 256 << 20;
    let Some(python) = socksgate_tests::interop::tool_at("/usr/bin/python3") else {
        return;
    };
    let Some(site) = site() else {
        return;
    };
    let port = site.namespace.run(|| {
        let listener = std::net::TcpListener::bind((TARGET, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (connection, _) = listener.accept().unwrap();
            let mut reader = connection.try_clone().unwrap();
            let mut writer = connection;
            std::io::copy(&mut reader, &mut writer).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        port
    });
    let dir = scratch("bulk");
    let script = dir.join("bulk.py");
    std::fs::write(&script, BULK_CLIENT).unwrap();
    let output = site.socksify_tun(&[
        &python.display().to_string(),
        &script.display().to_string(),
        TARGET,
        &port.to_string(),
        &TOTAL.to_string(),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        format!("{TOTAL} True\n"),
        "{output:?}"
    );
}

/// Without root, the session makes a user namespace first (as `unshare -r`). Run as
/// `nobody`, with a /dev/net/tun open to everyone as udev makes it — in a private mount
/// namespace, so the host's device node keeps its mode.
#[test]
fn an_unprivileged_user_gets_a_session_in_a_user_namespace() {
    let (Some(_), Some(_), Some(curl)) = (tool("unshare"), tool("setpriv"), tool("curl")) else {
        return;
    };
    let Some(site) = site() else {
        return;
    };
    let dir = scratch("unprivileged");
    let url = format!("http://{TARGET}:{}/", site.http.port);
    let script = format!(
        "set -e\n\
         mount -t tmpfs none {dir}\n\
         mknod -m 666 {dir}/tun c 10 200\n\
         mount --bind {dir}/tun /dev/net/tun\n\
         exec setpriv --reuid=65534 --regid=65534 --clear-groups env XDG_RUNTIME_DIR= \
         {SOCKSGATE} socksify --tun -x {proxy} -- sh -c 'id -u; {curl} -sS -m 10 {url}'\n",
        dir = dir.display(),
        proxy = site.proxy(),
        curl = curl.display(),
    );
    let output = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", site.namespace.name()])
        .args(["unshare", "--mount", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    // Root of its user namespace, nobody outside it.
    assert!(stdout.starts_with("0\n"), "{stdout}");
    assert!(stdout.contains("through the tunnel"), "{stdout}");
    let log = site.server.wait_for_sessions(1);
    assert_eq!(log[0]["target"], format!("{TARGET}:{}", site.http.port));
}

#[test]
fn a_killed_session_leaves_no_program_or_device_behind() {
    let Some(site) = site() else {
        return;
    };
    // A sleep no other process has: its argument is unique to this test run.
    let marker = format!("60.{}", std::process::id());
    let proxy = site.proxy();
    let mut session = Command::new("ip")
        .args(["netns", "exec", site.namespace.name(), SOCKSGATE])
        .args(["socksify", "--tun", "-x", &proxy, "--", "sleep", &marker])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while running(&marker).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The device lives in the program's namespace, not the site's.
    let links = Command::new("ip")
        .args(["-n", site.namespace.name(), "link"])
        .output()
        .unwrap();
    assert!(
        !text(&links.stdout).contains("sgtun"),
        "{}",
        text(&links.stdout)
    );
    session.kill().unwrap();
    session.wait().unwrap();
    let killed = Instant::now();
    while !running(&marker).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the program outlived its session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Under `nohup` (SIGHUP ignored when the session starts) the program inherits SIGHUP
/// ignored, as it would without socksify, and a SIGHUP to the session does not end it.
#[test]
fn a_signal_ignored_at_start_stays_ignored_for_the_program() {
    let Some(site) = site() else {
        return;
    };
    let proxy = site.proxy();
    let dir = scratch("nohup");
    let (ready, mask) = (dir.join("ready"), dir.join("mask"));
    let script = format!(
        "grep SigIgn /proc/self/status > {mask}; touch {ready}; sleep 2; exit 5",
        mask = mask.display(),
        ready = ready.display()
    );
    let mut session = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' HUP; exec "$@""#)
        .arg("nohup-like")
        .args(["ip", "netns", "exec", site.namespace.name(), SOCKSGATE])
        .args(["socksify", "--tun", "-x", &proxy, "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    wait_for_file(&ready);
    let pid = rustix::process::Pid::from_raw(session.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let status = session.wait().unwrap();
    assert_eq!(status.code(), Some(5), "the HUP ended the session");
    let mask = std::fs::read_to_string(&mask).unwrap();
    let bits = u64::from_str_radix(mask.trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_ne!(bits & 1, 0, "SIGHUP is not ignored in the program: {mask}");
}

/// Waits (up to 10 s) for the file a session's program makes once it is ready.
fn wait_for_file(ready: &Path) {
    let started = Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < Duration::from_secs(10), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `sleep ARGUMENT` processes.
fn running(argument: &str) -> Vec<u32> {
    let wanted = format!("sleep\0{argument}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let command = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (command == wanted.as_bytes()).then_some(pid)
        })
        .collect()
}

/// `socksgate tun` captures a whole namespace: a host whose only way to the target is the
/// proxy (the test's two hosts, the direct route removed) reaches it through the device,
/// while its connection to the proxy itself goes around it (marked); on SIGTERM its rules,
/// routes and device are gone, and when it is killed its watchdog removes them.
#[test]
fn socksgate_tun_captures_a_namespace_and_undoes_it_on_sigterm() {
    let Some(curl) = tool("curl") else {
        return;
    };
    let Some((client_host, target_host)) = NetNs::two_hosts() else {
        return;
    };
    // Only through the proxy from now on.
    client_host.ip("route del 198.51.100.10/32");
    let (server, http) = target_host.run(|| {
        let mut config = TestServer::loopback_config();
        config.listeners[0].address = "192.0.2.2:0".parse().unwrap();
        config.danger_allow_open_proxy = true;
        (
            TestServer::start_with(config),
            HttpTarget::start_at("198.51.100.10".parse().unwrap(), "captured"),
        )
    });
    let rules_before = ip_out(&client_host, &["rule"]);
    let proxy = format!("socks5h://{}", server.addr());
    let mut capture = Command::new("ip")
        .args([
            "netns",
            "exec",
            client_host.name(),
            SOCKSGATE,
            "tun",
            "-x",
            &proxy,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ip_out(&client_host, &["rule"]).contains("lookup 5347") {
        assert!(started.elapsed() < Duration::from_secs(10), "no capture");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = http.url("198.51.100.10");
    let fetched = Command::new("timeout")
        .args(["30", "ip", "netns", "exec", client_host.name()])
        .arg(&curl)
        .args(["-sS", "-m", "20", &url])
        .output()
        .unwrap();
    assert_eq!(text(&fetched.stdout), "captured", "{fetched:?}");
    let log = server.wait_for_sessions(1);
    assert_eq!(
        log[0]["target"],
        "198.51.100.10:".to_owned() + &http.port.to_string()
    );

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(capture.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = capture.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(ip_out(&client_host, &["rule"]), rules_before);
    assert_eq!(
        ip_out(&client_host, &["-6", "rule"])
            .matches("5347")
            .count(),
        0
    );
    assert_eq!(
        ip_out(&client_host, &["route", "show", "table", "5347"]),
        ""
    );
    assert!(!ip_out(&client_host, &["link"]).contains("sgtun"));
}

fn ip_out(namespace: &NetNs, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["-n", namespace.name()])
        .args(args)
        .output()
        .unwrap();
    text(&output.stdout)
}

/// The session's exit code is the program's, and SIGTERM and SIGHUP sent to socksgate reach
/// the program (which may clean up and choose its exit code).
#[test]
fn the_program_gets_forwarded_signals_and_its_exit_code_is_the_sessions() {
    let Some(site) = site() else {
        return;
    };
    let proxy = site.proxy();
    let exited = site.socksgate(&[
        "socksify", "--tun", "-x", &proxy, "--", "sh", "-c", "exit 7",
    ]);
    assert_eq!(exited.status.code(), Some(7), "{exited:?}");
    for (signal, code) in [
        (rustix::process::Signal::TERM, "42"),
        (rustix::process::Signal::HUP, "43"),
    ] {
        let dir = scratch(&format!("signal-{code}"));
        let ready = dir.join("ready");
        let script = format!(
            "trap 'exit {code}' TERM HUP; touch {ready}; sleep 30 & wait",
            ready = ready.display()
        );
        let mut session = Command::new("ip")
            .args(["netns", "exec", site.namespace.name(), SOCKSGATE])
            .args(["socksify", "--tun", "-x", &proxy, "--", "sh", "-c", &script])
            .spawn()
            .unwrap();
        wait_for_file(&ready);
        let pid = rustix::process::Pid::from_raw(session.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let status = session.wait().unwrap();
        assert_eq!(
            status.code().map(|c| c.to_string()).as_deref(),
            Some(code),
            "{status:?}"
        );
    }
}

/// A program's connection through a proxy that accepts and then never answers ends after
/// the chain's handshake deadline (10 s by default), not after the program's own patience:
/// every TUN flow is bounded. (With an hour's deadline instead, curl's own 60 s ended it.)
#[test]
fn a_flow_through_a_silent_proxy_ends_at_the_handshake_deadline() {
    let Some(curl) = tool("curl") else {
        return;
    };
    let Some(site) = site() else {
        return;
    };
    // Accepts, reads nothing, answers nothing, until the test ends.
    let silent = site.namespace.run(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (held, holding) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            while let Ok((connection, _)) = listener.accept() {
                if held.send(connection).is_err() {
                    break;
                }
            }
        });
        (address, holding)
    });
    let url = format!("http://{TARGET}:{}/", site.http.port);
    let started = Instant::now();
    let output = site.socksgate(&[
        "socksify",
        "--tun",
        "-x",
        &format!("socks5h://{}", silent.0),
        "--",
        &curl.display().to_string(),
        "-sS",
        "-m",
        "60",
        &url,
    ]);
    let took = started.elapsed();
    assert!(!output.status.success(), "{output:?}");
    assert!(
        silent.1.try_recv().is_ok(),
        "the flow never reached the silent proxy: {output:?}"
    );
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(30)).contains(&took),
        "the flow ended after {took:?}: {output:?}"
    );
}

/// A program's UDP flow whose association the proxy ends (here the proxy's UDP idle
/// timeout of 1 s) ends with it, and the program's next datagram gets a new association.
/// Before, the flow went on sending into the ended association, and the program never
/// heard back.
#[test]
fn a_udp_flow_whose_association_the_proxy_ends_gets_a_new_one() {
    let Some(python) = socksgate_tests::interop::tool_at("/usr/bin/python3") else {
        return;
    };
    let Some(site) = site_with(|config| config.udp.idle = Duration::from_secs(1)) else {
        return;
    };
    let echo = site.namespace.run(socksgate_tests::UdpEcho::start);
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(3)\n\
         for word in (b'first', b'second'):\n\
         \x20   s.sendto(word, ('{TARGET}', {port}))\n\
         \x20   print(s.recvfrom(64)[0].decode(), flush=True)\n\
         \x20   time.sleep(2.5)\n",
        port = echo.port
    );
    let output = site.socksify_tun(&[&python.display().to_string(), "-c", &script]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout), "first\nsecond\n", "{output:?}");
}

/// TUN mode through an HTTP proxy hop (the site's socksgate, on its HTTP side): a program's
/// TCP goes through CONNECT, its name resolved by the proxy; socksify says at once that
/// only TCP will pass.
#[test]
fn tun_mode_reaches_a_target_through_an_http_proxy_hop() {
    let Some(curl) = tool("curl") else {
        return;
    };
    let Some(site) = site() else {
        return;
    };
    let proxy = format!("http://{}", site.server.addr());
    let url = format!("http://{TARGET_NAME}:{}/", site.http.port);
    let output = site.socksgate(&[
        "socksify",
        "--tun",
        "-x",
        &proxy,
        "--",
        curl.to_str().unwrap(),
        "-sS",
        "-m",
        "10",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout, "through the tunnel", "{stderr}");
    assert!(stderr.contains("only TCP will pass"), "{stderr}");
    let log = site.server.wait_for_sessions(1);
    assert!(
        log.iter().any(|entry| entry["method"] == "CONNECT"
            && entry["target"] == format!("{TARGET_NAME}:{}", site.http.port)),
        "{log:#?}"
    );
}
