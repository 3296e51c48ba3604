//! `socksgate socksify` running real programs; the server's access log proves their traffic
//! went through it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use socksgate_tests::count_where;
use socksgate_tests::interop::{run, skip_or_fail, tool, Run};
use socksgate_tests::scratch_dir;
use socksgate_tests::sshd::Sshd;
use socksgate_tests::{HttpTarget, StaticResolver, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_socksgate");
const BODY: &str = "socksified page";
/// A name only the proxy knows (through the test's resolver); the program cannot resolve it.
const PROXY_ONLY_NAME: &str = "intranet.socksify.test";
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// A server that resolves [`PROXY_ONLY_NAME`] to 127.0.0.1, and nothing else.
fn server() -> TestServer {
    let names = HashMap::from([(PROXY_ONLY_NAME.to_owned(), [127, 0, 0, 1].into())]);
    TestServer::start_with_resolver(
        TestServer::loopback_config(),
        Arc::new(StaticResolver(names)),
    )
}

/// Runs `program args…` under socksify through `server`, loopback included.
fn socksified(server: &TestServer, program: &Path, args: &[&str]) -> Run {
    socksified_via(&format!("socks5h://{}", server.addr()), program, args)
}

/// Runs `program args…` under socksify through the proxy at `url`, loopback included.
fn socksified_via(url: &str, program: &Path, args: &[&str]) -> Run {
    let mut full = vec![
        "socksify",
        "-x",
        url,
        "--include-loopback",
        "--",
        program.to_str().unwrap(),
    ];
    full.extend(args);
    run(Path::new(BIN), &full, &[], 60)
}

fn targets(server: &TestServer, count: usize) -> Vec<String> {
    server
        .wait_for_sessions(count)
        .iter()
        .map(|e| e["target"].clone())
        .collect()
}

fn python() -> Option<PathBuf> {
    let path = PathBuf::from(DEBIAN_PYTHON);
    if path.is_file() {
        Some(path)
    } else {
        skip_or_fail("Debian's python3 is missing");
        None
    }
}

#[test]
fn curl_by_address_and_by_a_name_only_the_proxy_knows() {
    let Some(curl) = tool("curl") else { return };
    let web = HttpTarget::start(BODY);
    let server = server();
    let by_address = socksified(&server, &curl, &["-sS", &web.url("127.0.0.1")]);
    assert_eq!(by_address.stdout, BODY, "{}", by_address.stderr);
    let by_name = socksified(&server, &curl, &["-sS", &web.url(PROXY_ONLY_NAME)]);
    assert_eq!(by_name.stdout, BODY, "{}", by_name.stderr);
    let seen = targets(&server, 2);
    assert!(
        seen.contains(&format!("127.0.0.1:{}", web.port)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&format!("{PROXY_ONLY_NAME}:{}", web.port)),
        "the proxy resolved it: {seen:?}"
    );
}

#[test]
fn wget_goes_through_the_proxy() {
    let Some(wget) = tool("wget") else { return };
    let web = HttpTarget::start(BODY);
    let server = server();
    let result = socksified(
        &server,
        &wget,
        &["-q", "-O", "-", &web.url(PROXY_ONLY_NAME)],
    );
    assert_eq!(result.stdout, BODY, "{}", result.stderr);
    assert_eq!(
        targets(&server, 1),
        [format!("{PROXY_ONLY_NAME}:{}", web.port)]
    );
}

#[test]
fn python_urllib_asyncio_and_getpeername() {
    let Some(python) = python() else { return };
    let web = HttpTarget::start(BODY);
    let server = server();
    let script = format!(
        r#"
import asyncio, socket, urllib.request
url = "http://{name}:{port}/"
assert urllib.request.urlopen(url).read().decode() == "{BODY}"

async def fetch():
    reader, writer = await asyncio.open_connection("127.0.0.1", {port})
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.decode()
assert asyncio.run(fetch()).endswith("{BODY}")

s = socket.create_connection(("127.0.0.1", {port}))
print(s.getpeername()[1])
"#,
        name = PROXY_ONLY_NAME,
        port = web.port
    );
    let result = socksified(&server, &python, &["-c", &script]);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(
        result.stdout.trim(),
        web.port.to_string(),
        "getpeername names the real destination"
    );
    let seen = targets(&server, 3);
    assert_eq!(
        seen.iter()
            .filter(|t| t.ends_with(&format!(":{}", web.port)))
            .count(),
        3,
        "{seen:?}"
    );
}

#[test]
fn a_forked_and_a_multithreaded_program() {
    let Some(python) = python() else { return };
    let web = HttpTarget::start(BODY);
    let server = server();
    let script = format!(
        r#"
import os, threading, urllib.request
url = "http://127.0.0.1:{port}/"
def fetch():
    assert urllib.request.urlopen(url).read().decode() == "{BODY}"
threads = [threading.Thread(target=fetch) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
pid = os.fork()
if pid == 0:
    fetch()
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
fetch()
print("ok")
"#,
        port = web.port
    );
    let result = socksified(&server, &python, &["-c", &script]);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(result.stdout.trim(), "ok");
    assert_eq!(
        targets(&server, 10).len(),
        10,
        "8 threads, the child and the parent"
    );
}

#[test]
fn ssh_to_a_local_sshd() {
    let Some(ssh) = tool("ssh") else { return };
    let dir = scratch_dir("socksify-ssh");
    let Some(sshd) = Sshd::start(&dir) else {
        return;
    };
    let server = server();
    let args = sshd.ssh_args(&[], &["echo", "socksified-ssh"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = socksified(&server, &ssh, &args);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(result.stdout.trim(), "socksified-ssh");
    assert_eq!(targets(&server, 1), [format!("127.0.0.1:{}", sshd.port)]);
}

#[test]
fn loopback_goes_direct_unless_asked() {
    let Some(curl) = tool("curl") else { return };
    let web = HttpTarget::start(BODY);
    let server = server();
    let proxy = format!("socks5h://{}", server.addr());
    let url = web.url("127.0.0.1");
    let args = [
        "socksify",
        "-x",
        &proxy,
        "--",
        curl.to_str().unwrap(),
        "-sS",
        &url,
    ];
    let result = run(Path::new(BIN), &args, &[], 30);
    assert_eq!(result.stdout, BODY, "{}", result.stderr);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(server.access_log().is_empty(), "loopback went direct");
    assert_eq!(web.requests(), 1);
}

#[test]
fn the_same_programs_work_against_dantes_server() {
    let (Some(curl), Some(python)) = (tool("curl"), python()) else {
        return;
    };
    let Some(dante) = socksgate_tests::dante::Danted::start("") else {
        return;
    };
    let web = HttpTarget::start(BODY);
    let proxy = format!("socks5h://{}", dante.address);
    let under_dante = |program: &Path, args: &[&str]| socksified_via(&proxy, program, args);
    let fetched = under_dante(&curl, &["-sS", &web.url("127.0.0.1")]);
    assert_eq!(fetched.stdout, BODY, "{}", fetched.stderr);
    let script = format!(
        r#"
import asyncio, urllib.request
print(urllib.request.urlopen('http://127.0.0.1:{port}/').read().decode())
async def fetch():
    reader, writer = await asyncio.open_connection("127.0.0.1", {port})
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.decode()
assert asyncio.run(fetch()).endswith("{BODY}")
"#,
        port = web.port
    );
    let fetched = under_dante(&python, &["-c", &script]);
    assert_eq!(fetched.stdout.trim(), BODY, "{}", fetched.stderr);
    if let Some(wget) = tool("wget") {
        let fetched = under_dante(&wget, &["-q", "-O", "-", &web.url("127.0.0.1")]);
        assert_eq!(fetched.stdout, BODY, "{}", fetched.stderr);
    }
    let log = dante.log();
    let through_dante = log
        .lines()
        .filter(|line| line.contains("pass") && line.contains(&format!("127.0.0.1.{}", web.port)))
        .count();
    assert!(through_dante >= 4, "Dante served all four: {log}");

    if let Some(ssh) = tool("ssh") {
        let dir = scratch_dir("dante-ssh");
        if let Some(sshd) = Sshd::start(&dir) {
            let args = sshd.ssh_args(&[], &["echo", "ssh-through-dante"]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let result = under_dante(&ssh, &args);
            assert_eq!(
                result.stdout.trim(),
                "ssh-through-dante",
                "{}",
                result.stderr
            );
            assert!(
                dante.log().contains(&format!("127.0.0.1.{}", sshd.port)),
                "through Dante"
            );
        }
    }

    // UDP: dig through Dante's relay.
    if let Some(dig) = tool("dig") {
        let dns = socksgate_tests::DnsResponder::start_at([127, 0, 0, 1].into());
        let port = dns.port.to_string();
        let args = [
            "@127.0.0.1",
            "-p",
            &port,
            "+notcp",
            "+tries=1",
            "+time=5",
            "+short",
            "www.example.test",
            "A",
        ];
        let answered = under_dante(&dig, &args);
        assert_eq!(
            answered.stdout.trim(),
            dns.answer.to_string(),
            "{}",
            answered.stderr
        );
        assert_eq!(dns.queries(), 1);
        let log = dante.log();
        assert!(log.contains("udp"), "Dante relayed the query: {log}");
    }
}

/// The README's comparison with proxychains4, checked: the same script under both tools.
#[test]
fn compared_with_proxychains_getpeername_tells_the_truth() {
    let (Some(proxychains), Some(python)) = (tool("proxychains4"), python()) else {
        return;
    };
    let web = HttpTarget::start(BODY);
    let server = server();
    let script = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {}))\nprint(s.getpeername()[1])",
        web.port
    );
    let ours = socksified(&server, &python, &["-c", &script]);
    assert_eq!(ours.stdout.trim(), web.port.to_string(), "{}", ours.stderr);

    let dir = scratch_dir("compare");
    let conf = dir.join("proxychains.conf");
    // Python under proxychains4, its config with `options` before the proxy list.
    let under_proxychains = |options: &str, script: &str| {
        let proxy = server.addr().port();
        let text =
            format!("strict_chain\nquiet_mode\n{options}[ProxyList]\nsocks5 127.0.0.1 {proxy}\n");
        std::fs::write(&conf, text).unwrap();
        let args = [
            "-q",
            "-f",
            conf.to_str().unwrap(),
            python.to_str().unwrap(),
            "-c",
            script,
        ];
        run(&proxychains, &args, &[], 30)
    };
    let theirs = under_proxychains("", &script);
    assert!(theirs.success, "{}", theirs.stderr);
    assert_eq!(
        theirs.stdout.trim(),
        server.addr().port().to_string(),
        "proxychains4 reports the proxy as the peer"
    );
    assert_eq!(targets(&server, 2).len(), 2, "both went through the proxy");

    // Names by the proxy: proxychains' proxy_dns passes the name on too.
    let named = format!(
        "import urllib.request\nprint(urllib.request.urlopen('http://{PROXY_ONLY_NAME}:{}/').read().decode())",
        web.port
    );
    let theirs = under_proxychains("proxy_dns\n", &named);
    assert_eq!(theirs.stdout.trim(), BODY, "{}", theirs.stderr);
    assert!(targets(&server, 3).contains(&format!("{PROXY_ONLY_NAME}:{}", web.port)));

    // UDP: proxychains sends datagrams directly; socksify through the proxy.
    let dns = socksgate_tests::DnsResponder::start_at([127, 0, 0, 1].into());
    let udp = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\n\
         q = bytes([1, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]) + b'a' + bytes([0, 0, 1, 0, 1])\n\
         s.sendto(q, ('127.0.0.1', {}))\nprint(len(s.recvfrom(512)[0]))",
        dns.port
    );
    let associations =
        |server: &TestServer| count_where(&server.access_log(), "command", "udp associate");
    let theirs = under_proxychains("proxy_dns\n", &udp);
    assert!(theirs.success, "{}", theirs.stderr);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(associations(&server), 0, "proxychains does not proxy UDP");
    let ours = socksified(&server, &python, &["-c", &udp]);
    assert!(ours.success, "{}", ours.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while associations(&server) == 0 {
        assert!(std::time::Instant::now() < deadline, "socksify proxies UDP");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn udp_dns_with_dig_and_python_through_the_relay() {
    let Some(python) = python() else { return };
    let dns = socksgate_tests::DnsResponder::start_at([127, 0, 0, 1].into());
    let server = server();
    let script = format!(
        r#"
import socket
query = bytes([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3]) + b"www" + bytes([4]) + b"test" + bytes([0, 0, 1, 0, 1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, ("127.0.0.1", {port}))
answer, source = s.recvfrom(512)
assert answer[:2] == b"\x12\x34" and source == ("127.0.0.1", {port}), (answer, source)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(5)
c.connect(("127.0.0.1", {port}))
c.send(query)
assert c.recv(512)[:2] == b"\x12\x34"
print(c.getpeername()[1])
"#,
        port = dns.port
    );
    let result = socksified(&server, &python, &["-c", &script]);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(result.stdout.trim(), dns.port.to_string());

    let Some(dig) = tool("dig") else { return };
    let port = dns.port.to_string();
    let result = socksified(
        &server,
        &dig,
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+notcp",
            "+tries=1",
            "+time=5",
            "+short",
            "www.example.test",
            "A",
        ],
    );
    assert!(result.success, "dig: {} {}", result.stdout, result.stderr);
    assert_eq!(result.stdout.trim(), dns.answer.to_string());
    let log = server.wait_for_sessions(3);
    let associations = count_where(&log, "command", "udp associate");
    assert_eq!(associations, 3, "python's two sockets and dig's: {log:#?}");
    assert_eq!(dns.queries(), 3);
}

#[test]
fn gethostbyname_names_are_resolved_by_the_proxy() {
    let Some(perl) = tool("perl") else { return };
    let web = HttpTarget::start(BODY);
    let server = server();
    // Old-style resolution and connect, as many older programs do it.
    let script = format!(
        r#"use Socket;
my $packed = gethostbyname("{PROXY_ONLY_NAME}") or die "no address";
socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
connect($s, sockaddr_in({port}, $packed)) or die "connect: $!";
syswrite($s, "GET / HTTP/1.0\r\n\r\n");
local $/; my $answer = <$s>; print $answer;"#,
        port = web.port
    );
    let result = socksified(&server, &perl, &["-e", &script]);
    assert!(
        result.stdout.ends_with(BODY),
        "{} {}",
        result.stdout,
        result.stderr
    );
    assert_eq!(
        targets(&server, 1),
        [format!("{PROXY_ONLY_NAME}:{}", web.port)]
    );
}

#[test]
fn plain_gethostbyname_too() {
    let Some(cc) = tool("cc") else { return };
    let dir = scratch_dir("ghbn");
    let source = dir.join("ghbn.c");
    std::fs::write(
        &source,
        "#include <netdb.h>\n#include <stdio.h>\n#include <arpa/inet.h>\n\
         int main(int argc, char **argv) {\n\
           struct hostent *h = gethostbyname(argv[1]);\n\
           if (!h) return 1;\n\
           printf(\"%s %s\\n\", h->h_name, inet_ntoa(*(struct in_addr *)h->h_addr_list[0]));\n\
           return 0;\n}\n",
    )
    .unwrap();
    let program = dir.join("ghbn");
    let built = run(
        &cc,
        &["-o", program.to_str().unwrap(), source.to_str().unwrap()],
        &[],
        60,
    );
    assert!(built.success, "{}", built.stderr);
    let server = server();
    let result = socksified(&server, &program, &[PROXY_ONLY_NAME]);
    assert!(result.success, "{}", result.stderr);
    let (name, address) = result.stdout.trim().split_once(' ').unwrap();
    assert_eq!(name, PROXY_ONLY_NAME);
    assert!(address.starts_with("240."), "a fake address: {address}");
}

#[test]
fn fake_addresses_map_back_to_their_names() {
    let Some(python) = python() else { return };
    let server = server();
    let script = format!(
        r#"
import socket
address = socket.getaddrinfo("{PROXY_ONLY_NAME}", 443, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
assert address.startswith("240."), address
assert socket.getnameinfo((address, 443), 0)[0] == "{PROXY_ONLY_NAME}"
assert socket.getaddrinfo("{PROXY_ONLY_NAME}", 80)[0][4][0] == address, "the same name, the same address"
print(address)
"#
    );
    let result = socksified(&server, &python, &["-c", &script]);
    assert!(result.success, "{}", result.stderr);
    assert!(
        server.access_log().is_empty(),
        "resolving alone sends nothing to the proxy"
    );
}

/// An HTTP proxy as the hop (socksgate's own HTTP port here): TCP goes through CONNECT,
/// names are the proxy's to resolve, and socksify says at once that only TCP will pass.
#[test]
fn curl_through_an_http_proxy_hop() {
    let Some(curl) = tool("curl") else { return };
    let web = HttpTarget::start(BODY);
    let server = server();
    let url = format!("http://{}", server.addr());
    let result = socksified_via(&url, &curl, &["-sS", &web.url(PROXY_ONLY_NAME)]);
    assert_eq!(result.stdout, BODY, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("only TCP will pass: UDP or ICMP cannot pass hop 1"),
        "{}",
        result.stderr
    );
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["protocol"], "http", "{log:#?}");
    assert_eq!(log[0]["method"], "CONNECT", "{log:#?}");
    assert_eq!(log[0]["target"], format!("{PROXY_ONLY_NAME}:{}", web.port));
}
