//! Issue #30: the newcomer's path — the commands of the README and the guides as a new user
//! types them, and the mistakes every user makes, each with the message and the exit code
//! it must give.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

use socksgate_tests::free_port;

fn socksgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_socksgate"))
}

fn scratch(name: &str, text: &str) -> PathBuf {
    socksgate_tests::server::scratch_file("newcomer", name, text)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Point 1, as the README has it: the example gateway checks, and what `check` accepts
/// starts (`serve --check-only` runs everything starting reads).
#[test]
fn point_1_the_example_gateway_checks_and_starts_as_shipped() {
    // From the repository's root, as the README has it.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let check = socksgate()
        .current_dir(root)
        .args(["check", "-c", "examples/gateway.toml"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .starts_with("# examples/gateway.toml: OK. The effective configuration:"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let start = socksgate()
        .current_dir(root)
        .args(["serve", "--check-only", "-c", "examples/gateway.toml"])
        .output()
        .unwrap();
    assert!(start.status.success(), "{}", stderr(&start));
}

/// Point 1, and the acceptance's agreement test: broken configurations — a missing password
/// file, a mistyped one, a missing group file, a log in a missing directory, an unreadable
/// TLS key, a missing admin token — get the same file:line:column: field error from `check`
/// and from `serve --check-only`, exit status 2, and nothing else on standard error.
#[test]
fn point_1_check_and_serve_agree_on_every_file_a_configuration_names() {
    let users = scratch("agree-users", "# nobody yet\n");
    let users = users.display();
    let garbage = scratch("agree-cert.pem", "not a certificate\n");
    let garbage = garbage.display();
    let authority = socksgate_tests::pki::Authority::new("agree");
    let server = authority.server("agree");
    let cert = server.cert.display();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing password file",
            "[auth]\npassword_file = \"no-such-users\"\n".to_owned(),
            ":2:17: field `auth.password_file`: ",
        ),
        (
            "mistyped password file",
            "[auth]\n# the users\npassword_file = \"agree-usr\"\n".to_owned(),
            ":3:17: field `auth.password_file`: ",
        ),
        (
            "missing group file",
            format!("[auth]\npassword_file = \"{users}\"\ngroup_file = \"no-groups\"\n"),
            ":3:14: field `auth.group_file`: ",
        ),
        (
            "log in a missing directory",
            "[log]\noutput = \"/nonexistent-dir/socksgate.log\"\n".to_owned(),
            ":2:10: field `log.output`: ",
        ),
        (
            "unusable TLS certificate",
            format!(
                "[[listen]]\naddress = \"127.0.0.1:1080\"\n\n[[listen]]\naddress = \"127.0.0.1:1443\"\ntls = {{ cert = \"{garbage}\", key = \"no-key.pem\" }}\n"
            ),
            ":6:16: field `listen[1].tls.cert`: ",
        ),
        (
            "unreadable TLS key",
            format!(
                "[[listen]]\naddress = \"127.0.0.1:1443\"\n[listen.tls]\ncert = \"{cert}\"\nkey = \"no-key.pem\"\n"
            ),
            ":5:7: field `listen[0].tls.key`: ",
        ),
        (
            "no such account to run as",
            "[process]\nuser = \"no-such-user-here\"\n".to_owned(),
            ":2:8: field `process.user`: no such user",
        ),
        (
            "a group without a user",
            "[process]\ngroup = \"nogroup\"\n".to_owned(),
            ":2:9: field `process.group`: a group needs a user too",
        ),
        (
            "a Redis URL the client cannot use",
            "[fleet]\nredis = \"redis://h:notaport\"\n".to_owned(),
            ":2:9: field `fleet.redis`: ",
        ),
        (
            "missing admin token",
            "[admin]\naddress = \"127.0.0.1:9180\"\ntoken_file = \"no-token\"\n".to_owned(),
            ":3:14: field `admin.token_file`: ",
        ),
    ];
    for (what, text, expected) in cases {
        let path = scratch(&format!("agree-{}.toml", what.replace(' ', "-")), &text);
        let check = socksgate()
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let serve = socksgate()
            .args(["serve", "--check-only", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let (check_says, serve_says) = (stderr(&check), stderr(&serve));
        assert_eq!(check.status.code(), Some(2), "{what}: check: {check_says}");
        assert_eq!(serve.status.code(), Some(2), "{what}: serve: {serve_says}");
        let prefix = format!("error: {}{expected}", path.display());
        assert!(
            check_says.starts_with(&prefix),
            "{what}: check said {check_says}"
        );
        assert_eq!(check_says, serve_says, "{what}: check and serve disagree");
        assert_eq!(check_says.lines().count(), 1, "{what}: {check_says}");
        // And the running server would not have started either.
        assert!(
            check.stdout.is_empty(),
            "{what}: check printed a configuration"
        );
    }
}

/// `socksgate serve -c config`, stopped when dropped; ready once its port answers.
struct Served(socksgate_tests::interop::KillOnDrop);

impl Served {
    fn start(config: &std::path::Path, port: u16) -> Self {
        Self::start_logging(config, port, std::process::Stdio::null(), &[])
    }

    /// As `start`, its standard error into `log`, with `env`.
    fn start_logging(
        config: &std::path::Path,
        port: u16,
        log: impl Into<std::process::Stdio>,
        env: &[(&str, &str)],
    ) -> Self {
        let child = socksgate()
            .args(["serve", "-c"])
            .arg(config)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self(socksgate_tests::interop::KillOnDrop(child))
    }
}

/// Point 2: with `groups = ["staff"]` and `staff: alice` in the group file, `explain` says
/// allow for alice, as the running server does, and says where her groups came from;
/// `--group` adds to them; bob, in no group, is denied by both.
#[test]
fn point_2_explain_takes_the_users_groups_from_where_the_server_does() {
    let users = socksgate_tests::server::password_file(
        "explain-users",
        &[("alice", "wonderland"), ("bob", "builder")],
    );
    let groups = scratch("explain-groups", "staff: alice\n");
    let port = free_port("127.0.0.1");
    let config = scratch(
        "explain-groups.toml",
        &format!(
            "[auth]\npassword_file = \"{}\"\ngroup_file = \"{}\"\n\n[[listen]]\naddress = \"127.0.0.1:{port}\"\n\n[[rule]]\ngroups = [\"staff\"]\naction = \"allow\"\n",
            users.display(),
            groups.display()
        ),
    );
    let explain = |args: &[&str]| {
        let output = socksgate()
            .args(["explain", "-c"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, said) = explain(&["--user", "alice", "connect", "127.0.0.1:9"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "groups:        staff — from the group file {}",
            groups.display()
        )),
        "{said}"
    );
    let (code, said) = explain(&["--user", "bob", "connect", "127.0.0.1:9"]);
    assert_eq!(code, Some(1), "{said}");
    // A Kerberos login carries no group-file groups on the server: none here either.
    let (code, said) = explain(&[
        "--user",
        "alice",
        "--method",
        "gssapi",
        "connect",
        "127.0.0.1:9",
    ]);
    assert_eq!(code, Some(1), "{said}");
    let (code, said) = explain(&[
        "--user",
        "bob",
        "--group",
        "staff",
        "connect",
        "127.0.0.1:9",
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("with --group: staff"), "{said}");
    // The server agrees.
    let echo = socksgate_tests::EchoTarget::start();
    let _server = Served::start(&config, port);
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let target = echo.addr.to_string();
    let mut alice =
        socksgate_tests::client::socks5_login(proxy, b"alice", b"wonderland", &target).unwrap();
    socksgate_tests::client::assert_echoes(&mut alice, b"allowed");
    assert!(
        socksgate_tests::client::socks5_login(proxy, b"bob", b"builder", &target).is_err(),
        "bob was let through"
    );
}

/// Point 3: `passwd` into a directory that does not exist names the file and says what to
/// do (not a temporary file); without a terminal it says to use `--stdin`.
#[test]
fn point_3_passwd_says_what_is_wrong_and_what_to_do() {
    let dir = scratch("passwd-here", "").parent().unwrap().to_path_buf();
    let output = socksgate()
        .current_dir(&dir)
        .args(["passwd", "nodir/users", "alice"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: cannot write nodir/users: the directory nodir does not exist (create it first)\n"
    );
    // No terminal: a new session has no controlling one.
    let Some(setsid) = socksgate_tests::interop::tool("setsid") else {
        return;
    };
    let output = Command::new(setsid)
        .arg(env!("CARGO_BIN_EXE_socksgate"))
        .args(["passwd"])
        .arg(dir.join("users-no-tty"))
        .arg("alice")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    assert!(
        said.starts_with("error: no terminal to ask for the password on (")
            && said
                .trim_end()
                .ends_with("): give it on standard input with --stdin"),
        "{said}"
    );
}

/// `socksify` of a small Python program that connects `count` times to `target`; its
/// standard error and exit status.
fn socksify_python(proxy: &str, extra: &[&str], target: &str, count: usize) -> Option<Output> {
    let python = socksgate_tests::interop::tool("python3")?;
    let (host, port) = target.rsplit_once(':').unwrap();
    let script = format!(
        "import socket\nfor _ in range({count}):\n    try:\n        socket.create_connection(('{host}', {port}), timeout=5).close()\n    except OSError as error:\n        print(error)\n"
    );
    let mut args = vec!["socksify", "-x", proxy];
    args.extend(extra);
    args.push("--");
    Some(
        socksgate()
            .args(&args)
            .arg(python)
            .args(["-c", &script])
            .output()
            .unwrap(),
    )
}

/// Point 4: with the proxy down, or a wrong password, socksify says so on standard error —
/// once, not once per connection — as `connect` does; `--debug` tells the proxy's refusal
/// of the target apart and shows loopback connections that go direct; a program that does
/// not exist is named and exits 127, as in a shell.
#[test]
fn point_4_socksify_says_why_the_proxy_failed() {
    let output = socksgate()
        .args(["socksify", "-x", "socks5://127.0.0.1:1080", "--", "curlx"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert_eq!(
        stderr(&output),
        "socksgate socksify: curlx: command not found\n"
    );
    let down = free_port("127.0.0.1");
    let Some(output) =
        socksify_python(&format!("socks5://127.0.0.1:{down}"), &[], "10.1.2.3:80", 3)
    else {
        return;
    };
    let said = stderr(&output);
    let expected =
        format!("socksgate socksify: hop 1 (127.0.0.1:{down}): cannot reach the proxy: ");
    assert_eq!(said.matches(&expected).count(), 1, "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");

    let users = socksgate_tests::server::password_file("socksify-users", &[("alice", "right")]);
    let port = free_port("127.0.0.1");
    let config = scratch(
        "socksify-auth.toml",
        &format!(
            "[auth]\npassword_file = \"{}\"\n\n[[listen]]\naddress = \"127.0.0.1:{port}\"\n",
            users.display()
        ),
    );
    let _server = Served::start(&config, port);
    let echo = socksgate_tests::EchoTarget::start();
    let output = socksify_python(
        &format!("socks5://alice:wrong@127.0.0.1:{port}"),
        &["--include-loopback"],
        &echo.addr.to_string(),
        3,
    )
    .unwrap();
    let said = stderr(&output);
    assert_eq!(
        said,
        format!(
            "socksgate socksify: hop 1 (127.0.0.1:{port}): server refused the username or password\n"
        )
    );

    // --debug: the target's refusal, through the proxy, is the proxy's answer; a loopback
    // connection without --include-loopback goes direct, and says so.
    let closed = free_port("127.0.0.1");
    let output = socksify_python(
        &format!("socks5://alice:right@127.0.0.1:{port}"),
        &["--include-loopback", "--debug"],
        &format!("127.0.0.1:{closed}"),
        1,
    )
    .unwrap();
    let said = stderr(&output);
    assert!(
        said.contains(&format!(
            "connect 127.0.0.1:{closed} through the proxies failed: hop 1 (127.0.0.1:{port}): the proxy answered: connection refused"
        )),
        "{said}"
    );
    let output = socksify_python(
        &format!("socks5://alice:right@127.0.0.1:{port}"),
        &["--debug"],
        &echo.addr.to_string(),
        1,
    )
    .unwrap();
    let said = stderr(&output);
    assert!(
        said.contains(&format!(
            "connect {} directly (a direct network)",
            echo.addr
        )),
        "{said}"
    );
}

/// `socksgate ARGS…` with `env`: exit status and standard error.
fn said(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = socksgate();
    command
        .args(args)
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy");
    for variable in ["SOCKSGATE_PROXY", "SOCKS_PROXY", "SOCKS5_PROXY"] {
        command.env_remove(variable);
    }
    let output = command.envs(env.iter().copied()).output().unwrap();
    (output.status.code(), stderr(&output))
}

/// Point 5: the client commands' usage mistakes exit 2, as `--help` says (2 = bad usage):
/// a bad proxy URL, a bad `-L` spec, nothing to forward, no proxy at all.
#[test]
fn point_5_usage_mistakes_exit_2_as_the_help_says() {
    let help = socksgate().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("2 bad usage or an invalid configuration"),
        "the help no longer documents exit status 2: {help}"
    );
    for (args, message) in [
        (
            &[
                "connect",
                "-x",
                "sock5://127.0.0.1:1080",
                "example.com",
                "80",
            ][..],
            "socksgate connect: -x: \"sock5://127.0.0.1:1080\": the scheme must be",
        ),
        (
            &["forward", "-x", "socks5://127.0.0.1:1080", "-L", "80x"][..],
            "socksgate forward: \"80x\": expected [BIND:]PORT:HOST:PORT, like 8080:example.com:80",
        ),
        (
            &["forward", "-x", "socks5://127.0.0.1:1080"][..],
            "socksgate forward: nothing to forward: give -L and/or -U",
        ),
        (
            &["connect", "example.com", "80"][..],
            "socksgate connect: no proxy: give -x socks5h://HOST:PORT (or set ALL_PROXY)",
        ),
        (
            &["socksify", "-x", "socks5://:x", "--", "true"][..],
            "socksgate socksify: -x: ",
        ),
    ] {
        let (code, text) = said(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.starts_with(message), "{args:?}: {text}");
    }
}

/// Review of #30: a proxy variable that holds no URL (empty, or only commas) is no proxy —
/// never an empty chain, under which socksify's traffic would leave directly.
#[test]
fn a_proxy_variable_with_no_url_is_no_proxy() {
    for value in ["", " , ", ","] {
        for args in [
            &["connect", "example.com", "80"][..],
            &["socksify", "--", "true"][..],
        ] {
            let (code, text) = said(args, &[("ALL_PROXY", value)]);
            assert_eq!(code, Some(2), "ALL_PROXY={value:?} {args:?}: {text}");
            assert!(text.contains("no proxy: give -x"), "{text}");
        }
    }
}

/// Point 6: rough messages made plain — a URL from ALL_PROXY is quoted once, its password
/// hidden, and says where it came from; `--listen` without a port shows the form; `check`
/// without a file reads as "one of the two"; an unknown key keeps its table's path; a port
/// in use is said once.
#[test]
fn point_6_messages_say_it_once_and_say_where() {
    let (code, text) = said(
        &["connect", "example.com", "80"],
        &[("ALL_PROXY", "sock5://alice:secret@127.0.0.1:1080")],
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        text,
        "socksgate connect: the proxy in ALL_PROXY: \"sock5://***@127.0.0.1:1080\": the scheme must be socks4, socks4a, socks5, socks5h, socks5s, socks5hs, http or https\n"
    );
    let (code, text) = said(&["serve", "--listen", "127.0.0.1"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("expected ADDRESS:PORT, like 127.0.0.1:1080 or [::1]:1080"),
        "{text}"
    );
    let (code, text) = said(&["check"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("Usage: socksgate check <--config <FILE>|FILE>"),
        "{text}"
    );
    let typo = scratch("typo-in-auth.toml", "[auth]\npasword_file = \"users\"\n");
    let (code, text) = said(&["check", typo.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(
        text.starts_with(&format!(
            "error: {}:2:1: field `auth.pasword_file`: unknown field `pasword_file`",
            typo.display()
        )),
        "{text}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, text) = said(&["serve", "--listen", &address], &[]);
    assert_eq!(code, Some(1));
    assert_eq!(text.matches("Address already in use").count(), 1, "{text}");
    // explain: an argument error before any stage, said once.
    let config = scratch(
        "explain-plain.toml",
        "[[listen]]\naddress = \"127.0.0.1:1080\"\n",
    );
    let output = socksgate()
        .args(["explain", "-c"])
        .arg(&config)
        .args(["connect", "example.com"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        output.stdout.is_empty(),
        "a stage was printed before the error"
    );
    assert_eq!(
        stderr(&output),
        "error: \"example.com\": expected HOST:PORT (IPv6 as [ADDR]:PORT)\n"
    );
}

/// Point 7: at `[log] level = "debug"` (or `RUST_LOG=socksgate=debug`) a session's every
/// step is in the log — method, login (the name, never the password), request, the
/// policy's decision, resolution, each connect attempt with its address, relay start and
/// end — for a session that works and for refused ones.
#[test]
fn point_7_debug_shows_each_step_of_a_session_and_no_secret() {
    let users = socksgate_tests::server::password_file(
        "debug-users",
        &[("alice", "correct-horse-battery")],
    );
    let echo = socksgate_tests::EchoTarget::start();
    for (name, level, env) in [
        ("file", "debug", &[][..]),
        ("env", "info", &[("RUST_LOG", "socksgate=debug")][..]),
    ] {
        let port = free_port("127.0.0.1");
        let config = scratch(
            &format!("debug-{name}.toml"),
            &format!(
                "[auth]\npassword_file = \"{}\"\n\n[log]\nlevel = \"{level}\"\n\n[[listen]]\naddress = \"127.0.0.1:{port}\"\n",
                users.display()
            ),
        );
        let log = scratch(&format!("debug-{name}.log"), "");
        let server =
            Served::start_logging(&config, port, std::fs::File::create(&log).unwrap(), env);
        let proxy: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let target = format!("localhost:{}", echo.addr.port());
        let mut stream = socksgate_tests::client::socks5_login(
            proxy,
            b"alice",
            b"correct-horse-battery",
            &target,
        )
        .unwrap();
        socksgate_tests::client::assert_echoes(&mut stream, b"step by step");
        drop(stream);
        assert!(
            socksgate_tests::client::socks5_login(proxy, b"alice", b"wrong-guess", &target)
                .is_err()
        );
        // A name that tries to start a line of its own (a forged log entry) stays quoted.
        let forged = b"eve\n2026-01-01T00:00:00Z  INFO forged";
        assert!(socksgate_tests::client::socks5_login(proxy, forged, b"x", &target).is_err());
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(server);
        let text = std::fs::read_to_string(&log).unwrap();
        for step in [
            "method chosen",
            "login attempt user=\"alice\"",
            "login accepted",
            "login refused",
            "request",
            "target=localhost:",
            "policy decided",
            "resolved name=localhost",
            &format!("connecting address=127.0.0.1:{}", echo.addr.port()),
            "connected",
            "relaying",
            "session ended",
        ] {
            assert!(text.contains(step), "{name}: no {step:?} in:\n{text}");
        }
        assert!(
            !text.contains("correct-horse-battery") && !text.contains("wrong-guess"),
            "{name}: a password in the log"
        );
        assert!(
            !text
                .lines()
                .any(|line| line.starts_with("2026-01-01T00:00:00Z")),
            "{name}: a client's name made a log line of its own:\n{text}"
        );
    }
    // In JSON, the access event's fields are its documented schema: no span added to it,
    // while the debug steps carry the session's.
    let port = free_port("127.0.0.1");
    let config = scratch(
        "debug-json.toml",
        &format!(
            "[log]\nformat = \"json\"\nlevel = \"debug\"\n\n[[listen]]\naddress = \"127.0.0.1:{port}\"\n"
        ),
    );
    let log = scratch("debug-json.log", "");
    let server = Served::start_logging(&config, port, std::fs::File::create(&log).unwrap(), &[]);
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut stream =
        socksgate_tests::client::socks5_connect(proxy, &echo.addr.to_string()).unwrap();
    socksgate_tests::client::assert_echoes(&mut stream, b"json");
    drop(stream);
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(server);
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let access = events
        .iter()
        .find(|event| event["message"] == "session")
        .expect("an access event");
    assert!(
        access.get("span").is_none() && access.get("spans").is_none(),
        "{access}"
    );
    let step = events
        .iter()
        .find(|event| event["message"] == "method chosen")
        .expect("a debug step");
    assert_eq!(step["span"]["name"], "session", "{step}");
}

/// Point 8: the help says what the commands do — socksify's UDP and DNS, forward's
/// description and its proxies from the environment, every variable `connect` reads
/// (`all_proxy` too) in its help and in docs/client.md — and the example gateway has the
/// policy and rules the README promises.
#[test]
fn point_8_help_and_docs_say_what_the_commands_do() {
    let help = |command: &str| {
        let output = socksgate().args([command, "--help"]).output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let socksify = help("socksify");
    assert!(
        socksify.contains("TCP connections, UDP datagrams and DNS"),
        "{socksify}"
    );
    let forward = help("forward");
    assert!(
        forward.contains("Each -L listens on a local TCP port"),
        "{forward}"
    );
    let client_guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/client.md"))
            .unwrap();
    for variable in [
        "SOCKSGATE_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "SOCKS_PROXY",
        "SOCKS5_PROXY",
    ] {
        for (what, text) in [
            ("forward --help", &forward),
            ("connect --help", &help("connect")),
        ] {
            assert!(text.contains(variable), "{what} does not name {variable}");
        }
        assert!(
            client_guide.contains(&format!("`{variable}`")),
            "docs/client.md does not name {variable}"
        );
    }
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/gateway.toml"
    ))
    .unwrap();
    assert!(example.contains("\n[policy]\n") && example.contains("\n[[rule]]\n"));
}

/// Review of #30: a server started as root that gave up root and logs to a file still
/// reloads — the reload reads the files the new configuration names, not the log it opened
/// as root (nor changes the keytab under running threads). Before, every reload was
/// refused: "cannot write the log file …: Permission denied".
#[test]
fn a_server_that_gave_up_root_still_reloads() {
    use std::os::unix::fs::PermissionsExt;
    if !rustix::process::geteuid().is_root() {
        socksgate_tests::interop::skip_or_fail("giving up root needs root");
        return;
    }
    let dir = socksgate_tests::server::scratch_dir("newcomer-reload");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port("127.0.0.1");
    let log = dir.join("server.log");
    let config = dir.join("server.toml");
    let text = format!(
        "[process]\nuser = \"nobody\"\n\n[log]\noutput = \"{}\"\n\n[[listen]]\naddress = \"127.0.0.1:{port}\"\n",
        log.display()
    );
    std::fs::write(&config, &text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Served::start(&config, port);
    // Changed (a comment), then SIGHUP.
    std::fs::write(&config, format!("# reloaded\n{text}")).unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.0.id() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains("configuration reloaded") {
            break;
        }
        assert!(
            !said.contains("not reloaded") && std::time::Instant::now() < deadline,
            "{said}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Issue #23, point 9: `check` warns about each file the server must read again after it
/// gives up root (the configuration, the password file…) that the `[process]` account
/// cannot read — and says nothing once it can. Before, reloads after the drop failed
/// silently.
#[test]
fn check_warns_of_files_the_account_cannot_read_after_the_drop() {
    use std::os::unix::fs::PermissionsExt;
    let dir = socksgate_tests::server::scratch_dir("newcomer-drop");
    let users = dir.join("users");
    std::fs::write(&users, "# nobody yet\n").unwrap();
    let config = dir.join("drop.toml");
    std::fs::write(
        &config,
        "[process]\nuser = \"nobody\"\n\n[auth]\npassword_file = \"users\"\n",
    )
    .unwrap();
    let set = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set(&dir, 0o755);
    set(&config, 0o644);
    set(&users, 0o600);
    let (code, text) = said(&["check", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "warning: auth.password_file {}: nobody cannot read it",
            users.display()
        )),
        "{text}"
    );
    assert!(!text.contains("the configuration"), "{text}");
    set(&users, 0o644);
    let (code, text) = said(&["check", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0));
    assert!(!text.contains("cannot read"), "{text}");
}
