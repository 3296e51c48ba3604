//! Issue #22: the socksify shim under programs that use C's latitude — small C programs,
//! compiled here with the system's compiler, run under `socksgate socksify` through a real
//! server. Each is a regression test for a defect of the shim.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};

use socksgate_tests::count_where;
use socksgate_tests::interop::{run, tool, Run};
use socksgate_tests::{TestServer, UdpEcho};

const BIN: &str = env!("CARGO_BIN_EXE_socksgate");

/// `tests/shim/NAME.c` compiled into the test's scratch directory; `None` (after the
/// skip-or-fail rule) without a C compiler.
fn compiled(name: &str) -> Option<PathBuf> {
    let gcc = tool("gcc")?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/shim/{name}.c"));
    let dir = socksgate_tests::server::scratch_file("shim", &format!("{name}.keep"), "")
        .parent()
        .unwrap()
        .to_path_buf();
    // A path of its own per call: tests run at once, and one must not run a program
    // another is still writing.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let program = dir.join(format!("{name}-{call}"));
    let source = source.to_str().unwrap().to_owned();
    let out = program.to_str().unwrap().to_owned();
    let built = run(
        &gcc,
        &["-O1", "-g", "-Wall", "-o", &out, &source, "-lpthread"],
        &[],
        60,
    );
    assert!(built.success, "gcc {name}: {}", built.stderr);
    Some(program)
}

/// `program args…` under socksify through `server`, loopback included.
fn socksified(server: &TestServer, program: &Path, args: &[&str]) -> Run {
    let url = format!("socks5h://{}", server.addr());
    let mut full = vec!["socksify", "-x", &url, "--include-loopback", "--"];
    full.push(program.to_str().unwrap());
    full.extend(args);
    run(Path::new(BIN), &full, &[], 60)
}

/// That the program succeeded and printed exactly `expected`.
fn assert_says(result: &Run, expected: &str) {
    assert!(
        result.success && result.stdout.trim() == expected,
        "{} {}",
        result.stdout,
        result.stderr
    );
}

/// Finding 1: a null buffer of length 0, a sockaddr at an odd offset and an address shorter
/// than its family, through a redirected UDP socket. Before, the shim built slices from the
/// null pointers and references to the unaligned address (undefined behaviour; a debug build
/// aborts on it).
#[test]
fn finding_1_null_empty_buffers_and_unaligned_addresses_are_handled() {
    let Some(program) = compiled("empty_buffers") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let port = echo.port.to_string();
    let result = socksified(&server, &program, &["127.0.0.1", &port]);
    assert_says(&result, "ok");
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["command"], "udp associate", "{log:#?}");
}

/// Finding 6: `getnameinfo` (and `gethostbyaddr`) of a fake address answers the name it
/// stands for, and asks no DNS server. In a private network namespace whose resolv.conf points at a DNS server the
/// test runs on its loopback (port 53), which counts the questions it gets: none. Before,
/// the reverse lookup went to the resolver (one question here; out of the host elsewhere)
/// and `NI_NAMEREQD` failed.
#[test]
fn finding_6_getnameinfo_of_a_fake_address_asks_no_dns_server() {
    let (Some(python), Some(unshare)) = (tool("python3"), tool("unshare")) else {
        return;
    };
    let Some(host) = socksgate_tests::NetNs::create(&[]) else {
        return;
    };
    let resolv =
        socksgate_tests::server::scratch_file("shim", "resolv.conf", "nameserver 127.0.0.1\n");
    host.run(|| {
        let dns = socksgate_tests::DnsResponder::start_on("127.0.0.1:53".parse().unwrap());
        let server = TestServer::start();
        let script = r#"
import socket
fake = socket.gethostbyname("intranet.socksify.test")
host, service = socket.getnameinfo((fake, 80), socket.NI_NAMEREQD)
named, _, addresses = socket.gethostbyaddr(fake)
assert named == host and addresses == [fake], (named, addresses)
# The same address IPv4-mapped, as an IPv6 program asks: named here too.
assert socket.gethostbyaddr("::ffff:" + fake)[0] == host
# One of the block this process never handed out: numeric, and no resolver asked.
stranger = fake.rsplit(".", 1)[0] + ".254"
assert socket.getnameinfo((stranger, 80), socket.NI_NUMERICSERV)[0] == stranger
try:
    socket.getnameinfo((stranger, 80), socket.NI_NAMEREQD)
    raise SystemExit("a name for an address never handed out")
except socket.gaierror:
    pass
print(fake, host, service)
"#;
        let url = format!("socks5h://{}", server.addr());
        let command = format!(
            "mount --bind {} /etc/resolv.conf && exec {BIN} socksify -x {url} --include-loopback -- {} -c '{}'",
            resolv.display(),
            python.display(),
            script
        );
        let result = run(&unshare, &["--mount", "sh", "-c", &command], &[], 60);
        assert!(result.success, "{} {}", result.stdout, result.stderr);
        let words: Vec<&str> = result.stdout.split_whitespace().collect();
        assert!(
            words.len() == 3
                && words[0].parse::<std::net::Ipv4Addr>().is_ok()
                && words[1] == "intranet.socksify.test",
            "{}",
            result.stdout
        );
        assert_eq!(dns.queries(), 0, "the resolver was asked about a fake address");
    });
}

/// Finding 4: 64 threads making the process's first `syscall(2)` calls at once, in 150 runs.
/// Before, a thread waiting for another to find the real `syscall` recursed through the
/// hook until its stack overflowed: 8 runs of 200 died of SIGSEGV here.
#[test]
fn finding_4_threads_racing_to_the_first_syscall_do_not_recurse() {
    let Some(program) = compiled("first_syscall_race") else {
        return;
    };
    let server = TestServer::start();
    for attempt in 0..150 {
        let result = socksified(&server, &program, &[]);
        assert!(
            result.success && result.stdout.trim() == "ok",
            "run {attempt}: {} {}",
            result.stdout,
            result.stderr
        );
    }
}

/// Finding 7: `recvfrom(MSG_PEEK)` on a redirected UDP socket whose queue starts with a
/// stranger's datagram shows the relay's next one. Before, it peeked at the stranger's
/// datagram forever (the program's alarm ended it).
#[test]
fn finding_7_a_peek_skips_a_strangers_datagram_instead_of_spinning() {
    let Some(program) = compiled("peek_past_strangers") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let result = socksified(&server, &program, &[&echo.port.to_string()]);
    assert_says(&result, "ok");
}

/// Finding 5: connects interrupted by a 1 kHz `SIGALRM` (no `SA_RESTART`) complete through
/// the proxy and carry data, and the program's own `SO_RCVTIMEO`/`SO_SNDTIMEO` survive the
/// handshake. Before, the shim reset both to 0 after every handshake, and a connect to the
/// proxy interrupted by a signal left the program a socket that never finished its SOCKS
/// handshake.
#[test]
fn finding_5_interrupted_connects_complete_and_the_programs_timeouts_survive() {
    let Some(program) = compiled("interrupted_connect") else {
        return;
    };
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let port = echo.addr.port().to_string();
    let result = socksified(&server, &program, &["127.0.0.1", &port, "50"]);
    assert!(result.success, "{} {}", result.stdout, result.stderr);
    assert_eq!(result.stdout.trim(), "ok 50", "{}", result.stderr);
    // And they went through the proxy.
    let log = server.wait_for_sessions(50);
    let carried = count_where(&log, "target", &echo.addr.to_string());
    assert_eq!(carried, 50, "connects the proxy carried");
}

/// Finding 2: a daemon closes every descriptor but its UDP sockets (the shim's control
/// connections among them), `dup2`s over others and calls `close_range` and `closefrom`,
/// sending between each; its datagrams — a connected socket's too — keep reaching the echo
/// through new associations, and when it closes a socket the shim closes none of the
/// program's descriptors. Before, the shim kept
/// using the dead association and then closed the number, by then one of the program's.
#[test]
fn finding_2_a_daemon_closing_descriptors_keeps_its_own_and_its_udp() {
    let Some(program) = compiled("daemon_closes_everything") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let result = socksified(&server, &program, &[&echo.port.to_string()]);
    assert_says(&result, "ok");
    let log = server.wait_for_sessions(4);
    let associations = count_where(&log, "command", "udp associate");
    assert!(
        associations >= 2,
        "the association was not opened again: {log:#?}"
    );
}

/// Runs `program ECHO_PORT FORKS CHILDREN_PORT` socksified: its threads connect to one echo
/// while it forks `forks` children that each connect to another; it must say `says`, and
/// every child's connect must have gone through the proxy (the children's echo is reached
/// by nobody else).
fn forks_all_go_through(program: &str, forks: usize, says: &str) {
    let Some(program) = compiled(program) else {
        return;
    };
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let children = socksgate_tests::EchoTarget::start();
    let (echo_port, children_port) = (
        echo.addr.port().to_string(),
        children.addr.port().to_string(),
    );
    let forks_text = forks.to_string();
    let result = socksified(
        &server,
        &program,
        &[&echo_port, &forks_text, &children_port],
    );
    assert_says(&result, says);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let through = loop {
        let through = count_where(&server.access_log(), "target", &children.addr.to_string());
        if through >= forks || std::time::Instant::now() > deadline {
            break through;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        through, forks,
        "children whose connect went through the proxy"
    );
}

/// Finding 3 (fork): 1,000 forks of a program whose four threads keep connecting through
/// the proxy; every child connects through it too. Before, a child could start with one of
/// the shim's locks held by a thread it did not have, and hang.
#[test]
fn finding_3_forks_of_a_multithreaded_program_never_hang() {
    forks_all_go_through("fork_while_connecting", 1000, "ok");
}

/// Finding 3 (signals): a 1 kHz `SIGALRM` handler closes proxied sockets while the program
/// connects new ones. Before, the handler could wait forever on a lock the thread it
/// interrupted held.
#[test]
fn finding_3_close_from_a_signal_handler_never_deadlocks() {
    let Some(program) = compiled("close_in_signal_handler") else {
        return;
    };
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let result = socksified(&server, &program, &[&echo.addr.port().to_string(), "2000"]);
    assert_says(&result, "ok 2000");
    let log = server.wait_for_sessions(2000);
    let carried = count_where(&log, "target", &echo.addr.to_string());
    assert_eq!(carried, 2000, "connects the proxy carried");
}

/// Every program above, smaller, under valgrind's memcheck (Debian's valgrind): no error
/// is reported, in the shim's frames or anywhere (`--error-exitcode`).
#[test]
fn the_shim_programs_run_clean_under_valgrind() {
    let Some(valgrind) = tool("valgrind") else {
        return;
    };
    let server = TestServer::start();
    let udp_echo = UdpEcho::start();
    let tcp_echo = socksgate_tests::EchoTarget::start();
    let udp = udp_echo.port.to_string();
    let tcp = tcp_echo.addr.port().to_string();
    let programs: [(&str, Vec<&str>); 17] = [
        ("empty_buffers", vec!["127.0.0.1", &udp]),
        ("first_syscall_race", vec![]),
        ("peek_past_strangers", vec![&udp]),
        ("interrupted_connect", vec!["127.0.0.1", &tcp, "5"]),
        ("daemon_closes_everything", vec![&udp]),
        ("fork_while_connecting", vec![&tcp, "10", &tcp]),
        ("close_in_signal_handler", vec![&tcp, "50"]),
        ("fork_with_signals", vec![&tcp, "5", &tcp]),
        ("duplicated_udp", vec![&udp]),
        ("refused_connect", vec![&tcp]),
        ("unseen_close", vec![&udp]),
        ("connect_twice", vec![&tcp]),
        ("closed_unseen", vec![&udp, &tcp]),
        ("duplicated_udp64", vec![&udp]),
        ("fortified_udp", vec![&udp, "64"]),
        ("fast_open", vec![&tcp]),
        ("edge_calls", vec![&udp, &tcp]),
    ];
    for (name, args) in programs {
        if matches!(name, "unseen_close" | "closed_unseen") && !cfg!(target_arch = "x86_64") {
            continue;
        }
        let Some(program) = compiled(name) else {
            return;
        };
        let mut full = vec![
            "--error-exitcode=42",
            "--leak-check=no",
            "--quiet",
            program.to_str().unwrap(),
        ];
        full.extend(args);
        let before = server.access_log().len();
        let result = socksified(&server, &valgrind, &full);
        assert!(
            result.success && result.stdout.trim().starts_with("ok"),
            "{name} under valgrind: {} {}",
            result.stdout,
            result.stderr
        );
        // The shim was there under valgrind: the program's traffic went through the proxy.
        if name != "first_syscall_race" {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while server.access_log().len() == before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name}: nothing went through the proxy"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// Review of #22: a UDP socket connected through the relay and then disconnected
/// (`AF_UNSPEC`) is the program's again: a send without an address fails with
/// `EDESTADDRREQ`, `getpeername` with `ENOTCONN`. Before, both still went to and named the
/// old destination.
#[test]
fn a_disconnected_udp_socket_is_no_longer_redirected() {
    let Some(program) = compiled("udp_reconnect") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let result = socksified(&server, &program, &[&echo.port.to_string()]);
    assert_says(&result, "ok");
}

/// Issue #22 (Build: `fcntl(F_DUPFD…)`): a duplicate of a proxied connection made with
/// `fcntl` names the target, like one made with `dup`. Before, it named the proxy.
#[test]
fn a_duplicate_made_with_fcntl_names_the_target() {
    let Some(program) = compiled("fcntl_duplicate") else {
        return;
    };
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let result = socksified(&server, &program, &[&echo.addr.port().to_string()]);
    assert_says(&result, "ok");
}

/// Review of #22 (vfork): a UDP socket's association survives the program starting a
/// subprocess (CPython's `subprocess` uses vfork, and the child closes descriptors with
/// `close_range` in the parent's memory): the next datagram goes through the same
/// association. Before, the child's close took the parent's association away (one more per
/// subprocess, the old control connection leaked).
#[test]
fn a_vfork_child_closing_descriptors_leaves_the_parents_state_alone() {
    let Some(python) = tool("python3") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let script = format!(
        r#"
import socket, subprocess
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for round in range(3):
    s.sendto(b"round", ("127.0.0.1", {port}))
    assert s.recvfrom(64)[0] == b"round"
    subprocess.run(["true"], close_fds=True, check=True)
print("ok")
"#,
        port = echo.port
    );
    let result = socksified(&server, &python, &["-c", &script]);
    assert_says(&result, "ok");
    let log = server.wait_for_sessions(1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let associations = count_where(&server.access_log(), "command", "udp associate");
    assert_eq!(associations, 1, "{log:#?}");
}

/// Finding 5 (the bound): the program's `SO_SNDTIMEO` bounds the whole handshake, not each
/// read: against a proxy that trickles its answer (a byte every 0.6 s), a connect with a
/// 1 s bound fails with `ETIMEDOUT` within 2 s. Before, each read had the whole second and
/// the trickle went on past it.
#[test]
fn finding_5_the_programs_timeout_bounds_the_whole_handshake() {
    let (Some(program), Some(python)) = (compiled("handshake_deadline"), tool("python3")) else {
        return;
    };
    let port = socksgate_tests::free_port("127.0.0.1");
    // A SOCKS5 proxy that answers one byte every 0.6 s, for 10 s at most.
    let trickle = format!(
        r#"
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port})); s.listen(1); s.settimeout(20)
while True:
    c, _ = s.accept()
    if c.recv(16):  # the readiness probe sends nothing
        break
    c.close()
for byte in b"\x05\x00" + bytes([5, 0, 0, 1, 192, 0, 2, 1, 0, 80]):
    time.sleep(0.6)
    try: c.send(bytes([byte]))
    except OSError: break
"#
    );
    let mut proxy = std::process::Command::new(&python)
        .args(["-c", &trickle])
        .spawn()
        .unwrap();
    socksgate_tests::client::wait_until_listening(format!("127.0.0.1:{port}"), "the trickle");
    let url = format!("socks5://127.0.0.1:{port}");
    let full = [
        "socksify",
        "-x",
        &url,
        "--",
        program.to_str().unwrap(),
        "80",
    ];
    let result = run(Path::new(BIN), &full, &[], 30);
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(result.success, "{} {}", result.stdout, result.stderr);
    let seconds: f64 = result
        .stdout
        .trim()
        .trim_start_matches("ok ")
        .parse()
        .unwrap();
    // The bound is 1 s; before, a trickle of 1 byte a second made it 7 s. Room for two busy
    // cores, none for a per-read timeout.
    assert!(seconds < 4.0, "the handshake took {seconds} s");
}

/// Review of #22 (duplicates): copies of a connected UDP socket made with `dup`, `dup2`,
/// `fcntl(F_DUPFD_CLOEXEC)` and `syscall(SYS_dup)` send through the same association as
/// the original, also once it is closed — exactly one association for them all — and the
/// last close takes the shim's control connection with it. Before, a copy's datagrams went
/// to the relay without a SOCKS header and nothing came back.
#[test]
fn duplicates_of_a_udp_socket_share_its_association() {
    let Some(program) = compiled("duplicated_udp") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let result = socksified(&server, &program, &[&echo.port.to_string()]);
    assert_says(&result, "ok");
    let log = server.wait_for_sessions(1);
    let associations: Vec<_> = log
        .iter()
        .filter(|e| e["command"] == "udp associate")
        .collect();
    assert_eq!(associations.len(), 1, "{log:#?}");
}

/// Issue #22 (Build: never a half-handshaked socket): a connect the proxy refuses fails with
/// `ECONNREFUSED` and leaves the socket unconnected — `getpeername` says `ENOTCONN` and the
/// same socket connects again, through the proxy, and carries data. Before, it stayed
/// connected to the proxy half way through the handshake.
#[test]
fn a_refused_connect_leaves_the_socket_unconnected() {
    let Some(program) = compiled("refused_connect") else {
        return;
    };
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let result = socksified(&server, &program, &[&echo.addr.port().to_string()]);
    assert_says(&result, "ok");
    let log = server.wait_for_sessions(2);
    let carried = count_where(&log, "target", &echo.addr.to_string());
    assert_eq!(carried, 1, "{log:#?}");
}

/// Review of #22 (descriptors closed unseen): a program closes the shim's control
/// connection with a raw `syscall` instruction — no hook sees it — and opens a file that
/// gets the number; closing its UDP socket then leaves that file alone (the shim knows its
/// socket by inode, not by number). Before, the shim closed the program's file.
#[test]
fn a_control_closed_unseen_is_not_mistaken_for_the_programs_next_file() {
    // Closes with the x86-64 `syscall` instruction: nothing to run elsewhere.
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let Some(program) = compiled("unseen_close") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let result = socksified(&server, &program, &[&echo.port.to_string()]);
    assert_says(&result, "ok");
}

/// Findings 2 and 3 together: a program whose 1 kHz `SIGALRM` handler closes proxied
/// sockets and writes on a UDP socket connected through the relay, while another thread
/// connects through the proxy and the main thread forks 300 times: every child connects
/// through the proxy and gets its echo, and nothing hangs.
#[test]
fn forks_amid_signal_handlers_that_close_and_write_never_hang() {
    forks_all_go_through("fork_with_signals", 300, "ok 300");
}

/// Second review of #22: a second `connect` on a connected socket is `EISCONN` and leaves
/// the connection working. Before, the shim undid "its" failed attempt by cutting the
/// program's connection.
#[test]
fn a_second_connect_leaves_the_connection_alone() {
    let Some(program) = compiled("connect_twice") else {
        return;
    };
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let result = socksified(&server, &program, &[&echo.addr.port().to_string()]);
    assert_says(&result, "ok");
    // And the program's own mistake is not blamed on the proxy.
    assert!(result.stderr.is_empty(), "{}", result.stderr);
}

/// Second review of #22 (closes no hook sees): a UDP socket with an association closed by
/// `fclose` of its `fdopen` stream, then one closed by a raw system call; the number comes
/// back as a TCP connection through the proxy, whose bytes are its own. Before, `write`
/// sent them as a datagram of the dead association.
#[test]
fn a_number_closed_unseen_is_not_taken_for_its_old_association() {
    // Closes with the x86-64 `syscall` instruction: nothing to run elsewhere.
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let Some(program) = compiled("closed_unseen") else {
        return;
    };
    let server = TestServer::start();
    let udp = UdpEcho::start();
    let tcp = socksgate_tests::EchoTarget::start();
    let result = socksified(
        &server,
        &program,
        &[&udp.port.to_string(), &tcp.addr.port().to_string()],
    );
    assert_says(&result, "ok");
}

/// Second review of #22 (`fcntl64`): the duplicates test built with
/// `-D_FILE_OFFSET_BITS=64`, where `fcntl` is the symbol `fcntl64`. Before, that copy was
/// not followed and its datagrams reached the relay without a header.
#[test]
fn duplicates_made_with_fcntl64_share_the_association() {
    let Some(program) = compiled("duplicated_udp64") else {
        return;
    };
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let result = socksified(&server, &program, &[&echo.port.to_string()]);
    assert_says(&result, "ok");
}

/// Second review of #22 (a hostile proxy): every UDP ASSOCIATE is answered with a relay
/// named by a domain name; 300 sends fail and leave no descriptor behind. Before, each left
/// its control connection open (and 256 of them filled the shim's table).
#[test]
fn a_relay_named_by_a_name_leaves_no_descriptor_behind() {
    use std::io::{Read, Write};
    let Some(program) = compiled("udp_relay_by_name") else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(400) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut greeting = [0u8; 3];
            let mut request = [0u8; 10]; // an IPv4 UDP ASSOCIATE request
            if stream.read_exact(&mut greeting).is_err()
                || stream.write_all(&[5, 0]).is_err()
                || stream.read_exact(&mut request).is_err()
            {
                continue;
            }
            let mut reply = vec![5, 0, 0, 3, 13];
            reply.extend_from_slice(b"relay.example");
            reply.extend_from_slice(&[0x30, 0x39]);
            let _ = stream.write_all(&reply);
        }
    });
    let url = format!("socks5://{proxy}");
    let result = run(
        Path::new(BIN),
        &["socksify", "-x", &url, "--", program.to_str().unwrap()],
        &[],
        60,
    );
    assert_says(&result, "ok");
}

/// Second review of #22 (TCP Fast Open): `sendto` and `sendmsg` with `MSG_FASTOPEN` go
/// through the proxy — both connections are in its log. Before, they went straight to the
/// target.
#[test]
fn tcp_fast_open_goes_through_the_proxy() {
    let Some(program) = compiled("fast_open") else {
        return;
    };
    let server = TestServer::start();
    let echo = socksgate_tests::EchoTarget::start();
    let result = socksified(&server, &program, &[&echo.addr.port().to_string()]);
    assert_says(&result, "ok");
    let log = server.wait_for_sessions(2);
    let carried = count_where(&log, "target", &echo.addr.to_string());
    assert_eq!(carried, 2, "{log:#?}");
}

/// Second review of #22 (_FORTIFY_SOURCE, readv/writev): a program built with
/// `_FORTIFY_SOURCE=2` (its `recv`, `recvfrom`, `read` are `__recv_chk` and the like) and
/// using `writev`/`readv` on a UDP socket through the relay gets each datagram whole,
/// without the relay's header. Before, those calls went around the shim.
#[test]
fn fortified_and_vectored_calls_go_through_the_relay() {
    let Some(program) = compiled("fortified_udp") else {
        return;
    };
    // The build did make the checked calls (or the test would test plain recv).
    let binary = std::fs::read(&program).unwrap();
    for symbol in ["__recv_chk", "__recvfrom_chk", "__read_chk"] {
        assert!(
            binary.windows(symbol.len()).any(|w| w == symbol.as_bytes()),
            "the program does not call {symbol}"
        );
    }
    let server = TestServer::start();
    let echo = UdpEcho::start();
    let result = socksified(&server, &program, &[&echo.port.to_string(), "64"]);
    assert_says(&result, "ok");
}

/// Third review of #22: a daemon whose descriptor 2 is now a data file gets none of the
/// shim's messages in it (the shim writes to standard error only while it is the one the
/// program started with). Before, a failed connect's message landed in the file.
#[test]
fn the_shims_messages_never_land_in_a_reused_descriptor_2() {
    let Some(program) = compiled("stderr_reused") else {
        return;
    };
    let data = socksgate_tests::server::scratch_file("shim", "stderr-reused.data", "");
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("socks5://{down}");
    let result = run(
        Path::new(BIN),
        &[
            "socksify",
            "-x",
            &url,
            "--",
            program.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        &[],
        60,
    );
    assert_says(&result, "ok");
}

/// Third review of #22: `read` of nothing leaves the datagram queued, and a Fast Open send
/// with an `AF_UNSPEC` address fails as the kernel's does without cutting the connection.
#[test]
fn calls_at_the_kernels_edges_behave_as_the_kernels() {
    let Some(program) = compiled("edge_calls") else {
        return;
    };
    let server = TestServer::start();
    let udp = UdpEcho::start();
    let tcp = socksgate_tests::EchoTarget::start();
    let result = socksified(
        &server,
        &program,
        &[&udp.port.to_string(), &tcp.addr.port().to_string()],
    );
    assert_says(&result, "ok");
}

/// Third review of #22: the shim's message about a proxy that is down, written to a
/// standard error whose reader is gone (`… 2>&1 | head`), does not kill the program with
/// SIGPIPE. Before, the program died of the library's write.
#[test]
fn a_message_to_a_closed_pipe_does_not_kill_the_program() {
    let Some(program) = compiled("stderr_reused") else {
        return;
    };
    let data = socksgate_tests::server::scratch_file("shim", "stderr-pipe.data", "");
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("socks5://{down}");
    // The program keeps descriptor 2: a pipe whose reader is closed before it runs.
    let mut child = std::process::Command::new(BIN)
        .args([
            "socksify",
            "-x",
            &url,
            "--",
            program.to_str().unwrap(),
            data.to_str().unwrap(),
            "keep",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok",
        "{:?} {}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
}
