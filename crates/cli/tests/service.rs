//! socksgate as a system service: the unit file in `dist/`, readiness and reload
//! notifications to systemd, giving up root after binding, and `serve --check-only`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use socksgate_tests::interop::KillOnDrop;
use socksgate_tests::interop::{skip_or_fail, tool};

const SOCKSGATE: &str = env!("CARGO_BIN_EXE_socksgate");

fn scratch(name: &str) -> PathBuf {
    socksgate_tests::server::scratch_dir(&format!("service-{name}"))
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/socksgate.service");
    let text = std::fs::read_to_string(unit).unwrap();
    assert!(text.contains("Type=notify") && text.contains("NoNewPrivileges=yes"));
    // verify checks that the programs exist: point it at this build.
    let dir = scratch("unit");
    let copy = dir.join("socksgate.service");
    std::fs::write(&copy, text.replace("/usr/bin/socksgate", SOCKSGATE)).unwrap();
    let output = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{complaints}");
    // Unknown or malformed settings are only warned about: none may be, in our unit. (verify
    // also warns about units of other packages that it loads, such as freeradius's.)
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|line| line.contains("socksgate"))
        .collect();
    assert!(ours.is_empty(), "{complaints}");

    // The socket unit (socket activation) goes with the service of the same name.
    let socket = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/socksgate.socket");
    std::fs::copy(socket, dir.join("socksgate.socket")).unwrap();
    let output = Command::new(tool("systemd-analyze").unwrap())
        .arg("verify")
        .arg(dir.join("socksgate.socket"))
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{complaints}");
    assert!(
        !complaints.lines().any(|line| line.contains("socksgate")),
        "{complaints}"
    );
}

/// Started as root with `[process] user = "nobody"`: systemd hears READY=1 once the
/// listener is open, the process then runs as nobody (read from /proc/PID/status), a
/// SIGHUP reloads (RELOADING=1, READY=1) and SIGTERM stops it (STOPPING=1).
#[test]
fn root_is_dropped_after_binding_and_systemd_is_told_each_state() {
    if !rustix::process::geteuid().is_root() {
        skip_or_fail("dropping privileges needs root");
        return;
    }
    let dir = scratch("notify");
    let config = dir.join("socksgate.toml");
    std::fs::write(
        &config,
        "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[process]\nuser = \"nobody\"\n",
    )
    .unwrap();
    let socket_path = dir.join("notify.sock");
    let notifications = UnixDatagram::bind(&socket_path).unwrap();
    // systemd's socket is writable by the service, whoever it runs as.
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    notifications
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let next = || {
        let mut buffer = [0u8; 256];
        let length = notifications.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..length]).into_owned()
    };
    let mut server = KillOnDrop(
        Command::new(SOCKSGATE)
            .args(["serve", "-c"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .spawn()
            .unwrap(),
    );
    assert_eq!(next(), "READY=1");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Groups:"), ["65534"], "{status}");
    assert_eq!(field("CapEff:"), ["0000000000000000"], "{status}");

    let pid = rustix::process::Pid::from_raw(server.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(next(), "STOPPING=1");
    assert!(server.0.wait().unwrap().success());
}

#[test]
fn check_only_checks_without_opening_anything() {
    // The port is taken: a server could not start, a check still passes (it binds nothing).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = Command::new(SOCKSGATE)
        .args(["serve", "--check-only", "--listen", &address])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let dir = scratch("check");
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = { cert = \"missing.pem\", key = \"missing.key\" }\n",
    )
    .unwrap();
    let output = Command::new(SOCKSGATE)
        .args(["serve", "--check-only", "-c"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("missing.pem"),
        "{output:?}"
    );
}

/// The fields docs/operations.md lists for access events of `kind` (its table's columns:
/// field, session, association, meaning), and the three every event has.
fn documented_fields(kind: usize) -> Vec<String> {
    let guide = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
    let text = std::fs::read_to_string(guide).unwrap();
    let table = text.split("### JSON fields").nth(1).unwrap();
    let mut fields: Vec<String> = ["timestamp", "level", "message"].map(String::from).into();
    for row in table.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells[1 + kind] == "✓" {
            fields.extend(
                cells[1]
                    .split(", ")
                    .map(|name| name.trim_matches('`').to_owned()),
            );
        }
    }
    fields
}

/// The JSON events of a log file, waiting until one satisfies `wanted`.
fn events_until(
    path: &std::path::Path,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect();
        if events.iter().any(&wanted) {
            return events;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A CONNECT through the server on `port` that echoes a few bytes.
fn one_session(port: u16, echo: &socksgate_tests::EchoTarget) {
    let proxy = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = socksgate_tests::socks5_connect(proxy, &echo.addr.to_string()).unwrap();
    socksgate_tests::assert_echoes(&mut stream, b"logged");
}

/// `[log] output` to a file, in JSON: every documented field of an access event is there,
/// each key once; after the file is moved away (rotation), SIGUSR1 opens a new one.
#[test]
fn json_access_events_go_to_a_log_file_that_sigusr1_reopens() {
    let dir = scratch("log-file");
    let log = dir.join("socksgate.log");
    let config = dir.join("socksgate.toml");
    let port = socksgate_tests::free_port("127.0.0.1");
    std::fs::write(
        &config,
        format!(
            "[[listen]]\naddress = \"127.0.0.1:{port}\"\n\n[log]\nformat = \"json\"\n\
             output = \"{}\"\n",
            log.display()
        ),
    )
    .unwrap();
    let server = KillOnDrop(
        Command::new(SOCKSGATE)
            .args(["serve", "-c"])
            .arg(&config)
            .spawn()
            .unwrap(),
    );
    events_until(&log, |event| event["message"] == "listening");
    let echo = socksgate_tests::EchoTarget::start();
    one_session(port, &echo);
    let events = events_until(&log, |event| event["message"] == "session");
    let session = events
        .iter()
        .find(|event| event["message"] == "session")
        .unwrap();
    let documented = documented_fields(1);
    assert!(documented.len() >= 19, "{documented:?}");
    for field in &documented {
        assert!(session.get(field).is_some(), "{field} missing: {session}");
    }
    // And nothing undocumented.
    for key in session.as_object().unwrap().keys() {
        assert!(
            documented.contains(key),
            "{key} is not in docs/operations.md"
        );
    }
    assert_eq!(session["target"], echo.addr.to_string());
    let raw = std::fs::read_to_string(&log).unwrap();
    let line = raw
        .lines()
        .find(|line| line.contains("\"session\""))
        .unwrap();
    assert_eq!(line.matches("\"target\":").count(), 1, "{line}");

    // Rotation: move the file away, signal, and the next events go to a new file.
    let rotated = dir.join("socksgate.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let pid = rustix::process::Pid::from_raw(server.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::USR1).unwrap();
    events_until(&log, |event| event["message"] == "log file reopened");
    one_session(port, &echo);
    events_until(&log, |event| event["message"] == "session");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.matches("\"message\":\"session\"").count(), 1, "{old}");
}

/// `[log] output = "stdout"`, for a journal that reads standard output.
#[test]
fn logs_can_go_to_standard_output() {
    let dir = scratch("log-stdout");
    let config = dir.join("socksgate.toml");
    std::fs::write(
        &config,
        "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[log]\noutput = \"stdout\"\n",
    )
    .unwrap();
    let mut server = KillOnDrop(
        Command::new(SOCKSGATE)
            .args(["serve", "-c"])
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = std::io::BufReader::new(server.0.stdout.take().unwrap());
    let mut lines = std::io::BufRead::lines(stdout).map_while(Result::ok);
    assert!(
        lines.any(|line| line.contains("listening")),
        "no listening line on stdout"
    );
    let pid = rustix::process::Pid::from_raw(server.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("listening"), "{stderr}");
}

/// A connection to `port` once something listens there.
fn first_connection(port: u16) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return stream,
            Err(error) => assert!(std::time::Instant::now() < deadline, "port {port}: {error}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Socket activation: systemd-socket-activate (systemd's own tool) opens the listening
/// socket and starts socksgate on the first connection; socksgate serves on that socket.
/// A passed socket that is no configured listener stops the start, naming it.
#[test]
fn socket_activation_serves_on_the_socket_systemd_passes() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let dir = scratch("activation");
    let port = socksgate_tests::free_port("127.0.0.1");
    let config = dir.join("socksgate.toml");
    std::fs::write(
        &config,
        format!("[[listen]]\naddress = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let log = dir.join("activation.log");
    let mut activator = KillOnDrop(
        Command::new(&activate)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .args([SOCKSGATE, "serve", "-c"])
            .arg(&config)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // The first connection starts socksgate, which accepts it from the passed socket.
    drop(first_connection(port));
    let echo = socksgate_tests::EchoTarget::start();
    one_session(port, &echo);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("using the listening socket systemd passed"),
        "{text}"
    );
    let _ = activator.0.kill();

    // A socket for another port than the configuration's.
    let other = socksgate_tests::free_port("127.0.0.1");
    let mut mismatched = KillOnDrop(
        Command::new(&activate)
            .arg(format!("--listen=127.0.0.1:{other}"))
            .args([SOCKSGATE, "serve", "-c"])
            .arg(&config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let _waiting = first_connection(other);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut mismatched.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("is no configured listener"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{other}")), "{stderr}");
}
