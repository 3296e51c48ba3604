//! A fleet on loopback: HAProxy (with `dist/fleet/haproxy.cfg`, addresses rewritten) in
//! front of three `socksgate serve` nodes on 127.0.0.11–13, sharing limits through Redis.
//! One scenario, in order: fleet-wide session limit, failed logins elsewhere throttling a
//! node, a byte quota across two nodes, UDP through the balancer, a node stopped, Redis
//! stopped and back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::password::Credentials;
use socksgate_proto::{Address, Command as SocksCommand, Reply};
use socksgate_tests::client::{wait_until_listening, HandshakeFailure};
use socksgate_tests::free_port;
use socksgate_tests::haproxy::Haproxy;
use socksgate_tests::interop::tool;
use socksgate_tests::interop::KillOnDrop;
use socksgate_tests::redis::Redis;
use socksgate_tests::{handshake, EchoTarget, UdpEcho};

const QUOTA: u64 = 10_000_000;

struct Fleet {
    dir: PathBuf,
    port: u16,
    admin: u16,
    front: SocketAddr,
    nodes: Vec<Option<KillOnDrop>>,
    _haproxy: Haproxy,
    redis: Redis,
}

fn node_ip(index: usize) -> String {
    format!("127.0.0.{}", 11 + index)
}

impl Fleet {
    fn start() -> Option<Self> {
        let redis = Redis::start()?;
        let dir = socksgate_tests::server::scratch_dir("fleet");
        let users = socksgate_tests::server::password_file(
            "fleet-users",
            &[
                ("alice", "pw"),
                ("bob", "pw"),
                ("carol", "pw"),
                ("dave", "pw"),
                ("erin", "pw"),
                ("frank", "pw"),
                ("grace", "pw"),
            ],
        );
        std::fs::copy(&users, dir.join("users")).unwrap();
        let (port, admin) = (free_port("127.0.0.11"), free_port("127.0.0.11"));
        let mut nodes = Vec::new();
        for index in 0..3 {
            let ip = node_ip(index);
            let config = dir.join(format!("node{index}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[[listen]]\naddress = \"{ip}:{port}\"\nmethods = [\"password\"]\n\
                     proxy_protocol = [\"127.0.0.1/32\"]\n\n\
                     [auth]\npassword_file = \"{users}\"\nthrottle_free_failures = 1000\n\n\
                     [admin]\naddress = \"{ip}:{admin}\"\n\n\
                     [udp]\nadvertise_address = \"{ip}\"\n\n\
                     [log]\nformat = \"json\"\noutput = \"{log}\"\n\n\
                     [policy]\ndeny_private_destinations = false  # targets on loopback\n\n\
                     [[rule]]\naction = \"allow\"\nbandwidth = \"1MB/s\"\n\n\
                     [fleet]\nredis = \"{redis}\"\nnode = \"node{index}\"\n\
                     sync_interval = \"50ms\"\nmax_sessions_per_user = 2\n\
                     quota_per_user = \"{QUOTA}\"\nlogin_failures = 50\nlogin_window = \"10m\"\n\
                     login_delay = \"2s\"\nsessions_on_redis_down = \"closed\"\n\
                     quota_on_redis_down = \"open\"\nlogins_on_redis_down = \"open\"\n",
                    users = dir.join("users").display(),
                    log = dir.join(format!("node{index}.log")).display(),
                    redis = redis.url(),
                ),
            )
            .unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_socksgate"))
                .args(["serve", "-c"])
                .arg(&config)
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            nodes.push(Some(KillOnDrop(child)));
        }
        for index in 0..3 {
            wait_until_listening(format!("{}:{admin}", node_ip(index)), "a node");
        }
        let front: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1"))
            .parse()
            .unwrap();
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/fleet/haproxy.cfg");
        let mut text = std::fs::read_to_string(shipped).unwrap();
        text = text.replace("bind :1080", &format!("bind {front}"));
        for index in 0..3 {
            text = text.replace(
                &format!("10.0.0.{}:1080", 11 + index),
                &format!("{}:{port}", node_ip(index)),
            );
        }
        text = text.replace(
            "check port 9180 inter 2s fall 2 rise 2",
            &format!("check port {admin} inter 100ms fall 1 rise 1"),
        );
        let haproxy = Haproxy::start("fleet.cfg", &text, front)?;
        // Let the first health checks pass.
        std::thread::sleep(Duration::from_millis(500));
        Some(Self {
            dir,
            port,
            admin,
            front,
            nodes,
            _haproxy: haproxy,
            redis,
        })
    }

    /// A connection to node `index` directly, as a balancer would make it (a PROXY header
    /// naming this host as the client).
    fn direct(&self, index: usize) -> TcpStream {
        let mut stream = TcpStream::connect((node_ip(index).as_str(), self.port)).unwrap();
        let header = format!(
            "PROXY TCP4 127.0.0.1 {} 40000 {}\r\n",
            node_ip(index),
            self.port
        );
        stream.write_all(header.as_bytes()).unwrap();
        stream
    }

    fn through_balancer(&self) -> TcpStream {
        TcpStream::connect(self.front).unwrap()
    }

    /// The JSON events of every node's log.
    fn log(&self) -> Vec<serde_json::Value> {
        (0..3)
            .flat_map(|index| {
                let text = std::fs::read_to_string(self.dir.join(format!("node{index}.log")))
                    .unwrap_or_default();
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Whether an event `wanted` is in the nodes' logs within 5 s (a session's event is
    /// written as it ends, which its client may see a moment before).
    fn logged(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.log().iter().any(&wanted) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A SOCKS5 login and `command` over `stream`; the reply on refusal.
fn socks(
    mut stream: TcpStream,
    user: &str,
    password: &str,
    command: SocksCommand,
    target: Address,
) -> Result<(TcpStream, Vec<ClientEvent>), Reply> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let protocol = ClientProtocol::Socks5 {
        credentials: Some(Credentials::new(user.as_bytes(), password.as_bytes()).unwrap()),
        gssapi: false,
    };
    let machine = ClientHandshake::new(protocol, command, target).unwrap();
    match handshake(&mut stream, machine) {
        Ok(events) => Ok((stream, events)),
        Err(HandshakeFailure::Socks(ClientError::Rejected(reply))) => Err(reply),
        Err(HandshakeFailure::Socks(ClientError::AuthenticationFailed)) => Err(Reply::NOT_ALLOWED),
        Err(other) => panic!("{other:?}"),
    }
}

fn connect(stream: TcpStream, user: &str, target: SocketAddr) -> Result<TcpStream, Reply> {
    socks(stream, user, "pw", SocksCommand::CONNECT, target.into()).map(|(stream, _)| stream)
}

/// A UDP association of `user` for `socket`: the control connection and the relay.
fn associate(
    stream: TcpStream,
    user: &str,
    socket: &std::net::UdpSocket,
) -> (TcpStream, SocketAddr) {
    let from = socket.local_addr().unwrap().into();
    let (control, events) = socks(stream, user, "pw", SocksCommand::UDP_ASSOCIATE, from).unwrap();
    let Some(ClientEvent::Granted { bound }) = events.last() else {
        panic!("{events:?}");
    };
    (control, bound.socket_addr().unwrap())
}

fn echoes(stream: &mut TcpStream) {
    stream.write_all(b"fleet").unwrap();
    let mut answer = [0u8; 5];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"fleet");
}

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn a_fleet_behind_haproxy_shares_its_limits_through_redis() {
    let Some(mut fleet) = Fleet::start() else {
        return;
    };
    let echo = EchoTarget::start().addr;

    // Two sessions of alice fleet-wide; a third is refused on every node.
    let mut first = connect(fleet.through_balancer(), "alice", echo).unwrap();
    let second = connect(fleet.through_balancer(), "alice", echo).unwrap();
    echoes(&mut first);
    for index in 0..3 {
        assert_eq!(
            connect(fleet.direct(index), "alice", echo).err(),
            Some(Reply::NOT_ALLOWED),
            "node {index} let a third session of alice in"
        );
    }
    assert!(fleet.logged(|event| event["detail"]
        .as_str()
        .is_some_and(|d| d.contains("fleet.max_sessions_per_user"))));
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        match connect(fleet.direct(2), "alice", echo) {
            Ok(stream) => break stream,
            Err(_) => assert!(Instant::now() < deadline, "the slot was not given back"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    echoes(&mut again);
    drop((first, again));

    // 50 wrong passwords for carol on nodes 0 and 1: node 2, which saw none, holds back its
    // next failure reply for carol; her right password is answered at once all the same
    // (local throttling is off here: 1,000 free failures).
    for attempt in 0..50 {
        let started = Instant::now();
        let refused = socks(
            fleet.direct(attempt % 2),
            "carol",
            "wrong",
            SocksCommand::CONNECT,
            echo.into(),
        );
        assert!(refused.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "attempt {attempt} was slowed"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let refused = socks(
        fleet.direct(2),
        "carol",
        "wrong",
        SocksCommand::CONNECT,
        echo.into(),
    );
    let held = started.elapsed();
    assert!(refused.is_err());
    assert!(
        held >= Duration::from_millis(1900),
        "the 51st failure was answered after only {held:?}"
    );
    let started = Instant::now();
    let mut carol = connect(fleet.direct(2), "carol", echo).unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "carol's right password waited {waited:?}"
    );
    echoes(&mut carol);
    drop(carol);

    // Bob's quota across two nodes at once (1 MB/s each): both sessions are stopped once
    // the fleet has moved the quota, within 5%.
    let source = socksgate_tests::endless_source();
    let readers: Vec<_> = [0, 1]
        .into_iter()
        .map(|index| {
            let mut stream = connect(fleet.direct(index), "bob", source).unwrap();
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut received = 0u64;
                while let Ok(read) = stream.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    received += read as u64;
                }
                received
            })
        })
        .collect();
    let received: u64 = readers
        .into_iter()
        .map(|reader| reader.join().unwrap())
        .sum();
    assert!(
        (QUOTA - QUOTA / 10..=QUOTA + QUOTA / 20).contains(&received),
        "bob received {received} bytes under a quota of {QUOTA}"
    );
    assert_eq!(
        connect(fleet.direct(2), "bob", echo).err(),
        Some(Reply::NOT_ALLOWED)
    );
    assert!(fleet.logged(|event| event["outcome"] == "quota-exceeded"));

    // Issue #23, point 6: a session of a user who goes over the quota elsewhere is stopped
    // at once even while it is idle — not at its next byte. Grace's idle session on node 0
    // ends within moments of her other session (node 1) using up the quota. Before, it
    // stayed open until something moved on it.
    let mut idle = connect(fleet.direct(0), "grace", echo).unwrap();
    echoes(&mut idle);
    let mut pulling = connect(fleet.direct(1), "grace", source).unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    while matches!(pulling.read(&mut buffer), Ok(read) if read > 0) {}
    let pulled_until = Instant::now();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ended = matches!(idle.read(&mut buffer), Ok(0) | Err(_))
        && pulled_until.elapsed() < Duration::from_secs(3);
    assert!(
        ended,
        "grace's idle session outlived her quota by {:?}",
        pulled_until.elapsed()
    );

    // UDP through the balancer: the relay is the node's own address.
    let udp_echo = UdpEcho::start();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (control, relay) = associate(fleet.through_balancer(), "alice", &socket);
    assert!(
        (0..3).any(|index| relay.ip().to_string() == node_ip(index)),
        "{relay}"
    );
    let target = Address::from(SocketAddr::from(([127, 0, 0, 1], udp_echo.port)));
    socksgate_tests::client::send_via(&socket, relay, &target, b"datagram");
    let (_, data) = socksgate_tests::client::recv_via(&socket, Duration::from_secs(5)).unwrap();
    assert_eq!(data, b"datagram");
    drop(control);

    // Datagrams count too: erin's association is ended once the echoes add up to the quota.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut control, relay) = associate(fleet.direct(0), "erin", &socket);
    control
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let payload = vec![5u8; 1400];
    let mut sent = 0u64;
    let ended = loop {
        for _ in 0..50 {
            socksgate_tests::client::send_via(&socket, relay, &target, &payload);
        }
        sent += 50 * payload.len() as u64;
        std::thread::sleep(Duration::from_millis(2));
        match control.read(&mut [0u8; 1]) {
            Ok(0) => break true,
            Err(error)
                if error.kind() != std::io::ErrorKind::WouldBlock
                    && error.kind() != std::io::ErrorKind::TimedOut =>
            {
                break true
            }
            _ if sent > 4 * QUOTA => break false,
            _ => {}
        }
    };
    assert!(ended, "erin's association still runs after {sent} bytes");
    assert!(
        fleet.logged(|event| event["user"] == "erin" && event["outcome"] == "quota-exceeded"),
        "{:?}",
        fleet.log()
    );

    // A node stops: new sessions go on through the others.
    fleet.nodes[2] = None;
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..6 {
        let mut stream = connect(fleet.through_balancer(), "alice", echo).unwrap();
        echoes(&mut stream);
    }

    // Redis hangs: requests to it time out after a second, so a session that needs a new
    // permit is refused (as configured) within a few seconds instead of hanging with it.
    fleet.redis.freeze();
    let started = Instant::now();
    let refused = connect(fleet.direct(0), "frank", echo);
    let waited = started.elapsed();
    fleet.redis.thaw();
    assert_eq!(refused.err(), Some(Reply::NOT_ALLOWED));
    assert!(
        waited < Duration::from_secs(5),
        "a hung Redis held a session {waited:?}"
    );

    // Redis stops: a session that needs a new permit is refused, as configured (dave has
    // none on any node); the nodes keep answering health checks and say so in their metrics.
    fleet.redis.stop();
    let admin = format!("{}:{}", node_ip(0), fleet.admin);
    let refused = connect(fleet.direct(0), "dave", echo);
    assert_eq!(refused.err(), Some(Reply::NOT_ALLOWED));
    assert!(get(&admin, "/health").starts_with("HTTP/1.1 200"));
    assert!(get(&admin, "/metrics").contains("socksgate_fleet_redis_up 0"));
    assert!(fleet.logged(|event| event["detail"]
        .as_str()
        .is_some_and(|d| d.contains("Redis unreachable"))));
    // Back (empty): dave is served again, and the limit holds exactly.
    fleet.redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Ok(stream) = connect(fleet.direct(0), "dave", echo) {
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "sessions never resumed after Redis came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _second = connect(fleet.direct(1), "dave", echo).unwrap();
    assert_eq!(
        connect(fleet.direct(0), "dave", echo).err(),
        Some(Reply::NOT_ALLOWED)
    );
    assert!(get(&admin, "/metrics").contains("socksgate_fleet_redis_up 1"));
    drop(first);
}

/// The deployment material in `dist/fleet/` passes its own tools' checks: HAProxy's config
/// check, `systemd-analyze verify` on an instance of the template unit, `kubernetes-validate
/// --strict` on the manifests, and `socksgate check` on the configuration they carry.
#[test]
fn the_fleet_deployment_material_is_valid() {
    let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/fleet");
    let dir = socksgate_tests::server::scratch_dir("fleet-dist");
    let passes = |program: &Path, args: &[&str], file: &Path| {
        let output = Command::new(program).args(args).arg(file).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{} {}: {said}",
            program.display(),
            file.display()
        );
        said
    };
    if let Some(haproxy) = tool("haproxy") {
        passes(
            &haproxy,
            &["-c", "-f"],
            &Path::new(dist).join("haproxy.cfg"),
        );
    }
    if let Some(analyze) = tool("systemd-analyze") {
        let unit = std::fs::read_to_string(Path::new(dist).join("socksgate@.service")).unwrap();
        let instance = dir.join("socksgate@node1.service");
        let unit = unit.replace("/usr/bin/socksgate", env!("CARGO_BIN_EXE_socksgate"));
        std::fs::write(&instance, unit).unwrap();
        let said = passes(&analyze, &["verify"], &instance);
        // Only warnings about our unit count (verify also warns about other packages' units).
        let ours: Vec<&str> = said
            .lines()
            .filter(|line| line.contains("socksgate"))
            .collect();
        assert!(ours.is_empty(), "{said}");
    }
    let manifests = Path::new(dist).join("kubernetes.yaml");
    if let Some(validate) = tool("kubernetes-validate") {
        passes(&validate, &["--strict"], &manifests);
    }
    // The ConfigMap's configuration: the indented block under `socksgate.toml: |`.
    let text = std::fs::read_to_string(&manifests).unwrap();
    let block: String = text
        .split("socksgate.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .map(|line| format!("{}\n", line.strip_prefix("    ").unwrap_or(line)))
        .collect();
    assert!(block.contains("[fleet]"), "{block}");
    // The Secret's files (mounted at /etc/socksgate/users/), here beside the configuration:
    // `check` reads every file the configuration names.
    std::fs::write(
        dir.join("admin-token"),
        "4f6c2d9a8e1b7c3f5a0d2e4b6c8a1f3e\n",
    )
    .unwrap();
    std::fs::write(dir.join("users"), "# nobody yet\n").unwrap();
    let block = block.replace("/etc/socksgate/users/", &format!("{}/", dir.display()));
    let config = dir.join("kubernetes.toml");
    std::fs::write(&config, block).unwrap();
    let socksgate = PathBuf::from(env!("CARGO_BIN_EXE_socksgate"));
    passes(&socksgate, &["check", "-c"], &config);
}
