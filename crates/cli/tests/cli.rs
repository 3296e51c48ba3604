//! The `socksgate` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn socksgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_socksgate"))
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    socksgate_tests::server::scratch_file("cli", name, text)
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
    let output = check_config(&path, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "error: {}:3:1: field `listen[0].sock4`: unknown field `sock4`",
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
    // socksify carries more than TCP, and says so where a user looks first.
    assert!(
        stdout.contains("TCP connections, UDP datagrams and DNS"),
        "{stdout}"
    );
}

/// Starts `socksgate serve` with `args` and extra environment; returns the child and the
/// port it logged.
fn start_serving(
    args: &[&str],
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStderr>,
    u16,
) {
    let mut child = socksgate()
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let port = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited");
        if let Some(rest) = line.split("address=127.0.0.1:").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    (child, stderr, port)
}

/// What a server started with a piped stderr logged up to its first listener; then it is
/// stopped.
fn lines_until_listening(child: &mut std::process::Child) -> Vec<String> {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let listening = line.contains("listening");
        seen.push(line);
        if listening {
            break;
        }
    }
    stop(child);
    seen
}

fn stop(child: &mut std::process::Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SOCKS5 login attempt (CONNECT to a closed port); returns the RFC 1929 status byte.
fn login_status(port: u16, user: &str, password: &str) -> u8 {
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = vec![0x05, 0x01, 0x02, 0x01, user.len() as u8];
    request.extend(user.as_bytes());
    request.push(password.len() as u8);
    request.extend(password.as_bytes());
    client.write_all(&request).unwrap();
    let mut answer = [0u8; 4];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(answer[..2], [0x05, 0x02]);
    answer[3]
}

fn passwd(file: &str, user: &str, password: Option<&str>, extra: &[&str]) -> std::process::Output {
    let mut child = socksgate()
        .args(["passwd", file, user])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(password) = password {
        let mut stdin = child.stdin.take().unwrap();
        // A child that fails early closes its input: its exit status and stderr (checked by
        // the caller) say why, not a broken pipe here.
        let _ = writeln!(stdin, "{password}");
    }
    child.wait_with_output().unwrap()
}

#[test]
fn passwd_adds_changes_and_removes_users_in_htpasswd_format() {
    let file = temp_file("passwd-users", "");
    std::fs::remove_file(&file).unwrap();
    let path = file.to_str().unwrap();
    for (user, password) in [("alice", "first"), ("bob", "second"), ("alice", "changed")] {
        let output = passwd(path, user, Some(password), &["--stdin", "--cost", "4"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with("alice:$2"), "{text}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Apache's own tool agrees with the hashes.
    if let Ok(status) = Command::new("htpasswd")
        .args(["-vb", path, "alice", "changed"])
        .output()
    {
        assert!(
            status.status.success(),
            "htpasswd -v: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    } else {
        assert!(
            std::env::var("SOCKSGATE_REQUIRE_INTEROP").is_err(),
            "htpasswd is missing"
        );
    }
    let output = passwd(path, "bob", None, &["--delete"]);
    assert!(output.status.success());
    assert!(!std::fs::read_to_string(&file).unwrap().contains("bob:"));
    let output = passwd(path, "bad:name", Some("x"), &["--stdin"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn passwords_never_reach_the_logs_even_at_trace_level() {
    const RIGHT: &str = "Pw-Right-7f3a9";
    const WRONG: &str = "Pw-Wrong-c41d2";
    let users = temp_file("secret-users", "");
    std::fs::remove_file(&users).unwrap();
    let output = passwd(
        users.to_str().unwrap(),
        "alice",
        Some(RIGHT),
        &["--stdin", "--cost", "4"],
    );
    assert!(output.status.success());
    let config = temp_file(
        "secret.toml",
        &format!(
            "[auth]\npassword_file = {:?}\n[[listen]]\naddress = \"127.0.0.1:0\"\n",
            users.to_str().unwrap()
        ),
    );
    let (mut child, mut stderr, port) =
        start_serving(&["-c", config.to_str().unwrap()], &[("RUST_LOG", "trace")]);
    assert_eq!(login_status(port, "alice", RIGHT), 0x00);
    assert_eq!(login_status(port, "alice", WRONG), 0x01);
    assert_eq!(login_status(port, "nobody", WRONG), 0x01);
    stop(&mut child);
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(
        log.contains("auth-failed"),
        "the attempts were logged: {log}"
    );
    for secret in [RIGHT, WRONG] {
        let as_bytes: Vec<String> = secret.bytes().map(|b| b.to_string()).collect();
        assert!(!log.contains(secret), "{secret} appears in the log");
        assert!(
            !log.contains(&as_bytes.join(", ")),
            "{secret} appears as bytes in the log"
        );
    }
}

const OFFICE: &str = r#"[[client_rule]]
from = ["10.0.0.0/8"]
action = "allow"

[[rule]]
to = ["*.social.example"]
action = "deny"

[[rule]]
groups = ["staff"]
to = ["10.20.0.0/16"]
action = "allow"

[[rule]]
groups = ["staff"]
to = ["10.20.30.0/24"]
action = "allow"
"#;

fn explain(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let output = socksgate()
        .args(["explain", "-c", config.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn explain_names_the_deciding_rule() {
    let config = temp_file("office.toml", OFFICE);
    let file = config.display().to_string();
    let (code, text) = explain(
        &config,
        &["--from", "192.0.2.1", "connect", "example.com:443"],
    );
    assert_eq!(code, Some(1));
    assert!(
        text.contains("client stage:  deny (no rule matches: denied by default)"),
        "{text}"
    );

    let (code, text) = explain(
        &config,
        &["--from", "10.1.1.1", "connect", "www.social.example:443"],
    );
    assert_eq!(code, Some(1));
    assert!(
        text.contains(&format!("request stage: deny (rule {file}:5)")),
        "{text}"
    );

    let staff = ["--from", "10.1.1.1", "--user", "alice", "--group", "staff"];
    let (code, text) = explain(
        &config,
        &[&staff[..], &["connect", "10.20.1.1:22"]].concat(),
    );
    assert_eq!(code, Some(0));
    assert!(
        text.contains(&format!("request stage: allow (rule {file}:9)")),
        "{text}"
    );

    // A name: the decision depends on its address, given here.
    let args = [
        &staff[..],
        &["--resolve", "10.20.9.9", "connect", "intranet.corp:443"],
    ]
    .concat();
    let (code, text) = explain(&config, &args);
    assert_eq!(code, Some(0));
    assert!(
        text.contains(&format!("10.20.9.9: allow (rule {file}:9)")),
        "{text}"
    );
}

#[test]
fn check_reports_rules_that_can_never_match() {
    let config = temp_file("shadowed.toml", OFFICE);
    let output = check_config(&config, &[]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = config.display();
    assert!(
        stderr.contains(&format!(
            "warning: rule {file}:14 can never match: rule {file}:9 above it"
        )),
        "{stderr}"
    );
}

/// A rule allowing private space on a gateway whose guard is on (here by default: the
/// listener is public) can never serve it: `check` says so, and how to mean it.
#[test]
fn check_warns_of_rules_the_private_destination_guard_overrides() {
    let text = "[[listen]]\naddress = \"0.0.0.0:1080\"\nmethods = [\"password\"]\n\n\
                [auth]\npam_service = \"login\"\n\n\
                [[rule]]\nto = [\"10.1.0.0/16\"]\naction = \"allow\"\n\n\
                [[rule]]\nto = [\"0.0.0.0/0\"]\naction = \"allow\"\n";
    let config = temp_file("guarded.toml", text);
    let output = check_config(&config, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let file = config.display();
    assert!(
        stderr.contains(&format!(
            "warning: rule {file}:8 allows 10.1.0.0/16, which deny_private_destinations refuses"
        )),
        "{stderr}"
    );
    // 0.0.0.0/0 is mostly public: no warning for it.
    assert_eq!(
        stderr.matches("deny_private_destinations refuses").count(),
        1,
        "{stderr}"
    );
    let opened = temp_file(
        "unguarded.toml",
        &format!("{text}\n[policy]\ndeny_private_destinations = false\n"),
    );
    let output = check_config(&opened, &[]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("refuses"));
}

/// A UDP association takes its way out from its first rule: a `route` rule for UDP below an
/// `allow` rule for UDP routes none of an association the allow rule grants. `check` says so.
#[test]
fn check_warns_of_udp_routes_below_udp_allows() {
    let text = "[[upstream]]\nname = \"hq\"\nchains = [[\"socks5://127.0.0.1:1081\"]]\n\n\
                [[rule]]\ncommands = [\"connect\"]\naction = \"allow\"\n\n\
                [[rule]]\nto = [\"10.0.0.0/8\"]\naction = \"allow\"\n\n\
                [[rule]]\nto = [\"*.hq.example\"]\naction = \"route\"\nroute = \"hq\"\n";
    let config = temp_file("udp-order.toml", text);
    let output = check_config(&config, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let file = config.display();
    assert!(
        stderr.contains(&format!(
            "warning: rule {file}:13 routes UDP, but rule {file}:9 above it allows UDP"
        )),
        "{stderr}"
    );
}

/// Collects a child's standard error lines on a thread, to wait for one.
struct LogLines(std::sync::mpsc::Receiver<String>);

impl LogLines {
    fn follow(stderr: BufReader<std::process::ChildStderr>) -> Self {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self(receiver)
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    }
}

/// The first reply code of a SOCKS5 CONNECT to `target`, and the connection.
fn connect_reply(port: u16, target: SocketAddr) -> (u8, TcpStream) {
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1];
    request.extend(target.port().to_be_bytes());
    client.write_all(&request).unwrap();
    let mut answer = [0u8; 12];
    client.read_exact(&mut answer).unwrap();
    (answer[3], client)
}

fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    address
}

fn echoes(stream: &mut TcpStream, payload: &[u8]) -> bool {
    let mut answer = vec![0u8; payload.len()];
    stream.write_all(payload).is_ok() && stream.read_exact(&mut answer).is_ok() && answer == payload
}

#[test]
fn reload_applies_to_new_sessions_keeps_running_ones_and_refuses_broken_configs() {
    let echo = echo_server();
    // The admin listener's metrics must survive the reloads.
    let admin = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listen =
        format!("[admin]\naddress = \"{admin}\"\n\n[[listen]]\naddress = \"127.0.0.1:0\"\n");
    let listen = listen.as_str();
    let config = temp_file("reloaded.toml", listen);
    let (mut child, stderr, port) = start_serving(&["-c", config.to_str().unwrap()], &[]);
    let log = LogLines::follow(stderr);
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    let hangup = || rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();

    let (reply, mut before) = connect_reply(port, echo);
    assert_eq!(reply, 0x00);
    assert!(echoes(&mut before, b"before"));

    // Deny everything from now on; SIGHUP.
    std::fs::write(&config, format!("{listen}[[rule]]\naction = \"deny\"\n")).unwrap();
    hangup();
    log.wait_for("SIGHUP: configuration reloaded");
    assert_eq!(
        connect_reply(port, echo).0,
        0x02,
        "a new session is judged by the new rules"
    );
    assert!(
        echoes(&mut before, b"still flowing"),
        "the running session keeps going"
    );

    // A broken file is refused; the deny-all configuration stays in force.
    std::fs::write(&config, format!("{listen}[[rule]]\nactoin = \"allow\"\n")).unwrap();
    hangup();
    let refused = log.wait_for("SIGHUP: configuration not reloaded");
    assert!(refused.contains("actoin"), "{refused}");
    assert_eq!(connect_reply(port, echo).0, 0x02);

    // A change of the file alone is noticed too.
    std::fs::write(
        &config,
        format!("{listen}[[rule]]\naction = \"allow\"\n# changed\n"),
    )
    .unwrap();
    log.wait_for("a configuration or certificate file changed: configuration reloaded");
    let (reply, mut after) = connect_reply(port, echo);
    assert_eq!(reply, 0x00);
    assert!(echoes(&mut after, b"after"));
    // Both denials, under two reloaded configurations, are in the counters.
    let denied = "socksgate_sessions_total{command=\"connect\",outcome=\"denied\"} 2";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !scrape(admin).contains(denied) {
        assert!(Instant::now() < deadline, "{}", scrape(admin));
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((before, after));
    stop(&mut child);
}

/// The admin listener's `/metrics`.
fn scrape(admin: SocketAddr) -> String {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `socksgate check -c PATH` with extra environment.
fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    socksgate()
        .args(["check", "-c"])
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The TOML examples of a document, in order.
fn toml_blocks(document: &str) -> Vec<String> {
    let text = std::fs::read_to_string(document).unwrap();
    text.split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

/// Where and how the examples of a document are checked.
#[derive(Default)]
struct Examples<'a> {
    /// The directory the example files are written to (the temporary one by default).
    dir: Option<&'a std::path::Path>,
    env: &'a [(&'a str, &'a str)],
    /// Turns the example's text into what is checked (paths of this machine, say).
    adapt: Option<&'a dyn Fn(&str) -> String>,
}

/// Runs `socksgate check` on every TOML example of `document` (under the repository), at
/// least `at_least` of them; each must pass. Returns each example (as checked) with what
/// check printed of it.
fn checked_examples(document: &str, at_least: usize, how: &Examples<'_>) -> Vec<(String, String)> {
    let path = format!("{}/../../{document}", env!("CARGO_MANIFEST_DIR"));
    let blocks = toml_blocks(&path);
    assert!(
        blocks.len() >= at_least,
        "{document}: {} examples",
        blocks.len()
    );
    let stem = document.replace(['/', '.'], "-");
    // `check` reads every file an example names, as starting would: the files the guides
    // name exist beside the examples, and the paths of an installed system point there.
    let beside = guide_files();
    let on_this_machine = |block: &str| {
        block
            .replace("/etc/socksgate/", &beside)
            .replace("/var/log/socksgate/", &beside)
            // The account the Debian package creates; `nobody` is on every machine.
            .replace("user = \"socksgate\"", "user = \"nobody\"")
    };
    blocks
        .iter()
        .enumerate()
        .map(|(index, block)| {
            let block = how
                .adapt
                .map_or_else(|| on_this_machine(block), |adapt| adapt(block));
            let name = format!("{stem}-{index}.toml");
            let path = match how.dir {
                Some(dir) => {
                    let path = dir.join(name);
                    std::fs::write(&path, &block).unwrap();
                    path
                }
                None => temp_file(&name, &block),
            };
            let output = check_config(&path, how.env);
            assert!(
                output.status.success(),
                "{document}, example {index}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            (block, String::from_utf8_lossy(&output.stdout).into_owned())
        })
        .collect()
}

/// The files the guides' examples name (a password file, a group file, an admin token),
/// written into the scratch directory; returns it, with a trailing slash.
fn guide_files() -> String {
    let users = "# nobody yet\n";
    temp_file("users", users);
    temp_file("users.htpasswd", users);
    temp_file("groups", "staff: alice bob carol\n");
    let token = temp_file("admin-token", "4f6c2d9a8e1b7c3f5a0d2e4b6c8a1f3e\n");
    format!("{}/", token.parent().unwrap().display())
}

#[test]
fn the_policy_guide_examples_are_valid_and_say_what_the_guide_says() {
    let blocks: Vec<String> = checked_examples("docs/policy.md", 5, &Examples::default())
        .into_iter()
        .map(|(block, _)| block)
        .collect();
    let office = blocks
        .iter()
        .find(|b| b.contains("users = [\"backup\"]"))
        .unwrap();
    let office = temp_file("guide-office.toml", office);
    let alice = ["--from", "10.1.1.1", "--user", "alice", "--group", "staff"];
    let (code, text) = explain(
        &office,
        &[
            &alice[..],
            &["--at", "sat 10:00", "connect", "example.com:443"],
        ]
        .concat(),
    );
    assert_eq!(code, Some(1));
    assert!(
        text.contains("deny (no rule matches: denied by default)"),
        "{text}"
    );
    let (code, text) = explain(
        &office,
        &[
            &alice[..],
            &["--at", "wed 10:00", "connect", "example.com:443"],
        ]
        .concat(),
    );
    assert_eq!(code, Some(0), "{text}");
}

/// Every TOML example of the user guide (the pages docs/SUMMARY.md lists) passes `socksgate
/// check` and loses no key on the way; the TLS and Kerberos pages need their certificates
/// and keys, and are checked with them by the tests below.
#[test]
fn every_example_of_the_user_guide_is_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let summary = std::fs::read_to_string(format!("{root}/docs/SUMMARY.md")).unwrap();
    let pages: Vec<&str> = summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    assert!(pages.len() >= 15, "{pages:?}");
    let mut examples = 0;
    for page in pages {
        if matches!(page, "tls.md" | "kerberos.md") {
            continue;
        }
        for (block, understood) in
            checked_examples(&format!("docs/{page}"), 0, &Examples::default())
        {
            examples += 1;
            // `check` prints the configuration as it understood it: nothing was dropped.
            for line in block
                .lines()
                .filter(|line| line.contains(" = ") && !line.starts_with('#'))
            {
                let key = line.split(" = ").next().unwrap().trim();
                assert!(
                    understood.contains(&format!("{key} = ")),
                    "{page}: {key} lost:\n{understood}"
                );
            }
        }
    }
    assert!(examples >= 15, "only {examples} examples");
}

/// `socksgate connect` through a TLS listener, trusting `ca`: what came back for `payload`.
fn echo_over_tls(port: u16, ca: &std::path::Path, echo: SocketAddr) -> std::process::Output {
    let mut child = socksgate()
        .args(["connect", "-x", &format!("socks5hs://localhost:{port}")])
        .arg("--proxy-cacert")
        .arg(ca)
        .args(["127.0.0.1", &echo.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"renewed?\n");
    child.wait_with_output().unwrap()
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    use socksgate_tests::pki::Authority;
    let (old, new) = (Authority::new("old"), Authority::new("new"));
    let (old_pem, new_pem) = (old.server("server"), new.server("server"));
    let cert = temp_file(
        "renewed.pem",
        &std::fs::read_to_string(&old_pem.cert).unwrap(),
    );
    let key = temp_file(
        "renewed.key",
        &std::fs::read_to_string(&old_pem.key).unwrap(),
    );
    let config = temp_file(
        "renewed.toml",
        &format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let echo = echo_server();
    let (mut child, stderr, port) = start_serving(&["-c", config.to_str().unwrap()], &[]);
    let log = LogLines::follow(stderr);
    let before = echo_over_tls(port, &old.cert, echo);
    assert_eq!(
        before.stdout,
        b"renewed?\n",
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    // Renew: the new key and certificate replace the old files (each renamed into place).
    for (from, to) in [(&new_pem.key, &key), (&new_pem.cert, &cert)] {
        let staged = to.with_extension("staged");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    log.wait_for("a configuration or certificate file changed: configuration reloaded");
    let after = echo_over_tls(port, &new.cert, echo);
    assert_eq!(
        after.stdout,
        b"renewed?\n",
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    let stale = echo_over_tls(port, &old.cert, echo);
    assert!(!stale.status.success());
    let why = String::from_utf8_lossy(&stale.stderr);
    assert!(
        why.contains("TLS") && why.contains("UnknownIssuer"),
        "{why}"
    );
    stop(&mut child);
}

#[test]
fn the_tls_guide_examples_are_valid() {
    use socksgate_tests::pki::Authority;
    // check reads the files the examples name: make them, beside the examples.
    let ca = Authority::new("guide");
    let gateway = ca.server("issued-gateway");
    let branch = ca.client("issued-branch");
    for (name, from) in [
        ("gateway.pem", &gateway.cert),
        ("gateway.key", &gateway.key),
        ("clients-ca.pem", &ca.cert),
        ("hq-ca.pem", &ca.cert),
        ("branch.pem", &branch.cert),
        ("branch.key", &branch.key),
    ] {
        std::fs::copy(from, ca.dir().join(name)).unwrap();
    }
    let how = Examples {
        dir: Some(ca.dir()),
        ..Examples::default()
    };
    for (index, (_, shown)) in checked_examples("docs/tls.md", 3, &how).iter().enumerate() {
        assert!(
            shown.contains("tls = {"),
            "example {index} lost its TLS settings: {shown}"
        );
    }
    // A missing file is named, and check fails as a bad configuration does.
    std::fs::remove_file(ca.dir().join("gateway.key")).unwrap();
    let broken = ca.dir().join("docs-tls-md-0.toml");
    let output = check_config(&broken, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gateway.key"), "{stderr}");
}

#[test]
fn the_kerberos_guide_examples_are_valid() {
    let Some(kdc) = socksgate_tests::kdc::Kdc::start() else {
        return;
    };
    let keytab = kdc.keytab.display().to_string();
    let env = kdc.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The guide's keytab is the test realm's; check acquires the service's keys from it.
    let adapt = |block: &str| block.replace("/etc/socksgate/socksgate.keytab", &keytab);
    let how = Examples {
        env: &env,
        adapt: Some(&adapt),
        ..Examples::default()
    };
    checked_examples("docs/kerberos.md", 3, &how);
    // A keytab without the service's keys is refused, with the reason.
    let path = temp_file(
        "kerberos-missing.toml",
        "[[listen]]\naddress = \"127.0.0.1:1080\"\nmethods = [\"gssapi\"]\n\
         [gssapi]\nkeytab = \"/nonexistent/socksgate.keytab\"\n",
    );
    let output = check_config(&path, &env);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GSS-API"), "{stderr}");
}

#[test]
fn connect_authenticates_with_kerberos_and_the_server_logs_the_principal() {
    let Some(kdc) = socksgate_tests::kdc::Kdc::start() else {
        return;
    };
    let env = kdc.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = temp_file(
        "kerberized.toml",
        "[[listen]]\naddress = \"127.0.0.1:0\"\nmethods = [\"gssapi\"]\n",
    );
    let (mut server, stderr, port) = start_serving(&["-c", config.to_str().unwrap()], &env);
    let log = LogLines::follow(stderr);
    let echo = echo_server();
    let mut child = socksgate()
        .args([
            "connect",
            "--socks5-gssapi",
            "-x",
            &format!("socks5h://localhost:{port}"),
        ])
        .args(["127.0.0.1", &echo.port().to_string()])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"sealed\n");
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"sealed\n");
    let line = log.wait_for("outcome=\"closed\"");
    assert!(line.contains("user=\"alice@SOCKSGATE.TEST\""), "{line}");
    stop(&mut server);
}

#[test]
fn the_icmp_extension_example_is_valid_and_explain_knows_the_command() {
    let examples = checked_examples("docs/extensions/icmp.md", 1, &Examples::default());
    assert_eq!(examples.len(), 1);
    let (block, shown) = &examples[0];
    let path = temp_file("icmp-extension.toml", block);
    assert!(
        shown.contains("[icmp]\nenabled = true\nsocket = \"auto\"\nrate = 10"),
        "{shown}"
    );
    assert!(shown.contains("commands = [\"icmp\"]"), "{shown}");
    let (code, text) = explain(&path, &["--from", "127.0.0.1", "icmp", "10.1.2.3:0"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("icmp-extension.toml:"), "{text}");
    let (code, text) = explain(&path, &["--from", "127.0.0.1", "connect", "10.1.2.3:80"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no rule matches"), "{text}");
}

/// A session cap the descriptor limit cannot hold is warned about at start (each session is
/// two sockets), and the server runs all the same.
#[test]
fn a_descriptor_limit_below_the_session_cap_is_warned_about() {
    let config = temp_file(
        "many-sessions.toml",
        "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[limits]\nmax_sessions = 100000000\n",
    );
    let mut child = socksgate()
        .args(["serve", "-c"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = lines_until_listening(&mut child);
    assert!(
        seen.iter()
            .any(|line| line
                .contains("the descriptor limit is below what limits.max_sessions needs")),
        "{seen:#?}"
    );
}

/// With no configuration the session cap follows the descriptor limit the process has, so a
/// machine with a small limit (here 1,024, soft and hard) starts the embedded default
/// without a warning.
#[test]
fn the_default_session_cap_fits_a_small_descriptor_limit_without_a_warning() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec {} serve --listen 127.0.0.1:0",
            env!("CARGO_BIN_EXE_socksgate")
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = lines_until_listening(&mut child);
    assert!(
        seen.iter().any(|line| line.contains("listening")),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|line| line.contains("WARN")), "{seen:#?}");
    // What 1,024 descriptors hold: a quarter kept, two a session (not one, not 10,000).
    assert!(
        seen.iter().any(|line| line.contains("max_sessions=384")),
        "{seen:#?}"
    );
}

/// GSS-API and PAM are loaded at run time: a configuration that needs one on a machine
/// without it is refused by `check` and by `serve`, naming the library and the package to
/// install. (The library is made unavailable by naming a file that does not exist.)
#[test]
fn a_missing_gssapi_or_pam_library_is_named_with_its_package() {
    let gssapi = temp_file(
        "needs-gssapi.toml",
        "[[listen]]\naddress = \"127.0.0.1:0\"\nmethods = [\"gssapi\"]\n",
    );
    let pam = temp_file(
        "needs-pam.toml",
        "[auth]\npam_service = \"socksgate\"\n\n[[listen]]\naddress = \"127.0.0.1:0\"\n",
    );
    let cases = [
        (&gssapi, "SOCKSGATE_GSSAPI_LIBRARY", "libgssapi-krb5-2"),
        (&pam, "SOCKSGATE_PAM_LIBRARY", "libpam0g"),
    ];
    for (config, variable, package) in cases {
        let missing = "libsocksgate-test-missing.so.0";
        for command in [&["check"][..], &["serve", "-c"][..]] {
            let output = socksgate()
                .args(command)
                .arg(config)
                .env(variable, missing)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{command:?} {stderr}");
            assert!(stderr.contains(missing), "{command:?} {stderr}");
            assert!(
                stderr.contains(&format!("apt-get install {package}")),
                "{command:?} {stderr}"
            );
        }
    }
}

/// Issue #21, finding 6: a proxy URL that does not parse is named without its password by
/// `check` (an upstream chain) and by the client commands (`-x`).
#[test]
fn a_proxy_url_that_fails_to_parse_is_echoed_without_its_password() {
    let config = temp_file(
        "bad-upstream-url.toml",
        "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"up\"\n\
         chains = [[\"socks5h://alice:hunter2@bad host:1080\"]]\n",
    );
    let checked = socksgate().arg("check").arg(&config).output().unwrap();
    let connected = socksgate()
        .args([
            "connect",
            "-x",
            "socks5h://alice:hunter2@proxy:port",
            "example.com",
            "80",
        ])
        .output()
        .unwrap();
    for output in [checked, connected] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("***@"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// Issue #21, finding 9: the log file socksgate creates (client addresses, users, targets)
/// is not readable by others, whatever the umask.
#[test]
fn the_access_log_file_is_created_readable_by_owner_and_group_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = socksgate_tests::server::scratch_dir("cli-log-mode");
    let log = dir.join("access.log");
    let _ = std::fs::remove_file(&log);
    let config = temp_file(
        "log-to-file.toml",
        &format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[log]\noutput = \"{}\"\n",
            log.display()
        ),
    );
    // The usual umask, which leaves new files world-readable.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec {} serve -c {}",
            env!("CARGO_BIN_EXE_socksgate"),
            config.display()
        ))
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|text| text.contains("listening")) {
        assert!(started.elapsed() < Duration::from_secs(10), "never logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(&mut child);
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "the log is open to others: {mode:o}");
    assert_eq!(mode, 0o640, "{mode:o}");
}

/// Issue #21, finding 7: a client-chosen name (here a SOCKS4 USERID) with a newline, an
/// escape sequence and a planted field cannot forge a line or a field of the human-format
/// log, nor reach the terminal raw.
#[test]
fn client_controlled_strings_cannot_forge_a_human_log_line() {
    let (mut child, stderr, port) = start_serving(&["--listen", "127.0.0.1:0"], &[]);
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // SOCKS4 CONNECT 127.0.0.1:1 (closed), USERID with a forged second line.
    let mut request = vec![4, 1, 0, 1, 127, 0, 0, 1];
    request.extend_from_slice(b"x\nFORGED INFO socksgate::access: outcome=\"ok\"\x1b[2J");
    request.push(0);
    client.write_all(&request).unwrap();
    let mut reply = [0u8; 8];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], 0x5B, "{reply:?}");
    drop(client);
    let mut lines = Vec::new();
    // Up to the end of the access event (its last field), however many lines it took.
    for line in stderr.lines().map_while(Result::ok) {
        let end = line.contains("duration_ms=");
        lines.push(line);
        if end {
            break;
        }
    }
    stop(&mut child);
    let all = lines.join("\n");
    assert!(
        !lines.iter().any(|line| line.starts_with("FORGED")),
        "{all}"
    );
    assert!(!all.contains('\x1b'), "{all:?}");
    // Quoted and escaped, so that neither the newline nor the planted `outcome=` counts.
    assert!(
        all.contains(r#"claimed_user="x\nFORGED INFO socksgate::access: outcome=\"ok\"\u{1b}[2J""#),
        "{all}"
    );
}

/// The README's first command on a machine without IPv6 (a container, `ipv6.disable=1`):
/// the embedded default serves 127.0.0.1:1080 alone instead of failing on [::1]:1080. Run
/// in a private network namespace whose loopback has IPv6 switched off.
#[test]
fn the_embedded_default_serves_ipv4_alone_where_there_is_no_ipv6() {
    use socksgate_tests::interop::{run, skip_or_fail, tool};
    if !rustix::process::geteuid().is_root() {
        skip_or_fail("a network namespace needs root here");
        return;
    }
    let Some(unshare) = tool("unshare") else {
        return;
    };
    let script = format!(
        "ip link set lo up && echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6 && \
         timeout -s TERM 3 {} serve; echo rc=$?",
        env!("CARGO_BIN_EXE_socksgate")
    );
    let served = run(&unshare, &["--net", "sh", "-c", &script], &[], 20);
    let all = format!("{}{}", served.stdout, served.stderr);
    // Still serving when timeout(1) stopped it (124), not exited at once on [::1].
    assert!(all.contains("rc=124"), "{all}");
    assert!(all.contains("listening address=127.0.0.1:1080"), "{all}");
    assert!(
        all.contains("address=[::1]:1080") && all.contains("no such loopback"),
        "{all}"
    );
}

#[test]
fn the_http_proxy_examples_are_valid_and_explain_knows_the_http_command() {
    let examples = checked_examples("docs/http-proxy.md", 3, &Examples::default());
    let (listener, shown) = &examples[0];
    assert!(
        listener.contains("protocols = [\"socks5\", \"http\"]"),
        "{listener}"
    );
    assert!(
        shown.contains("protocols = [\"socks5\", \"http\"]"),
        "{shown}"
    );
    let rules = examples
        .iter()
        .find(|(block, _)| block.contains("commands = [\"http\"]"))
        .unwrap();
    let path = temp_file("http-rules.toml", &rules.0);
    let (code, text) = explain(&path, &["--from", "10.1.2.3", "http", "93.184.215.14:80"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("http-rules.toml:"), "{text}");
    let (code, text) = explain(
        &path,
        &["--from", "10.1.2.3", "connect", "93.184.215.14:443"],
    );
    assert_eq!(code, Some(0), "{text}");
}

/// UDP and ICMP through an HTTP proxy are refused when the URL is read, naming the hop,
/// before anything is sent (exit 2, as for any unusable proxy URL).
#[test]
fn udp_and_icmp_through_an_http_hop_are_refused_at_once() {
    for args in [
        &[
            "forward",
            "-x",
            "http://127.0.0.1:9",
            "-U",
            "5353:10.0.0.53:53",
        ][..],
        &[
            "ping",
            "-x",
            "socks5://127.0.0.1:9",
            "-x",
            "http://127.0.0.1:9",
            "-c",
            "1",
            "127.0.0.1",
        ],
        &["traceroute", "-x", "https://127.0.0.1:9", "127.0.0.1"],
    ] {
        let output = socksgate().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot pass hop") && stderr.contains("an HTTP proxy carries only TCP"),
            "{args:?}: {stderr}"
        );
    }
}
