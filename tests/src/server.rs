//! The real server, in this process, on a port of its own, with its access log captured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socksgate_config::{Config, Listener};
use socksgate_server::{Server, Stats};
use tokio::sync::oneshot;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// One access-log event: field name → value as text.
pub type AccessEntry = BTreeMap<String, String>;

static ACCESS_LOG: Mutex<Vec<AccessEntry>> = Mutex::new(Vec::new());

/// Records every `socksgate::access` event of this test process.
struct AccessCapture;

struct Fields<'a>(&'a mut AccessEntry);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for AccessCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "socksgate::access" {
            let mut entry = AccessEntry::new();
            event.record(&mut Fields(&mut entry));
            ACCESS_LOG.lock().unwrap().push(entry);
        }
    }
}

fn capture_access_log() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::registry()
            .with(AccessCapture)
            .try_init();
    });
}

/// A running server; stopped (gracefully) when dropped.
pub struct TestServer {
    addrs: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    stats: std::sync::Arc<Stats>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// The embedded default, but on 127.0.0.1 with a free port.
    pub fn start() -> Self {
        Self::start_with(Self::loopback_config())
    }

    /// The default configuration listening on 127.0.0.1:0, to adjust before starting.
    pub fn loopback_config() -> Config {
        let mut config = Config {
            listeners: vec![Listener::open(SocketAddr::from(([127, 0, 0, 1], 0)))],
            ..Config::default()
        };
        config.timeouts.shutdown = Duration::from_secs(2);
        config
    }

    /// Starts a server on `config`'s listeners, on a thread (and runtime) of its own.
    pub fn start_with(config: Config) -> Self {
        Self::start_with_authenticator(config, None)
    }

    /// As [`TestServer::start_with`], checking passwords with `authenticator`.
    pub fn start_with_authenticator(
        config: Config,
        authenticator: Option<std::sync::Arc<dyn socksgate_auth::Authenticator>>,
    ) -> Self {
        Self::start_full(config, authenticator, None)
    }

    /// As [`TestServer::start_with`], resolving names with `resolver`.
    pub fn start_with_resolver(
        config: Config,
        resolver: std::sync::Arc<dyn socksgate_server::Resolver>,
    ) -> Self {
        Self::start_inner(config, None, None, Some(resolver))
    }

    /// As [`TestServer::start_with`], with the policy's clock given.
    pub fn start_with_clock(config: Config, clock: socksgate_server::Clock) -> Self {
        Self::start_full(config, None, Some(clock))
    }

    fn start_full(
        config: Config,
        authenticator: Option<std::sync::Arc<dyn socksgate_auth::Authenticator>>,
        clock: Option<socksgate_server::Clock>,
    ) -> Self {
        Self::start_inner(config, authenticator, clock, None)
    }

    fn start_inner(
        config: Config,
        authenticator: Option<std::sync::Arc<dyn socksgate_auth::Authenticator>>,
        clock: Option<socksgate_server::Clock>,
        resolver: Option<std::sync::Arc<dyn socksgate_server::Resolver>>,
    ) -> Self {
        capture_access_log();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut server = Server::bind(config).await.unwrap();
                if let Some(authenticator) = authenticator {
                    server = server.with_authenticator(authenticator);
                }
                if let Some(clock) = clock {
                    server = server.with_clock(clock);
                }
                if let Some(resolver) = resolver {
                    server = server.with_resolver(resolver);
                }
                ready_tx
                    .send((server.local_addrs(), server.admin_addr(), server.stats()))
                    .unwrap();
                server
                    .run(async {
                        let _ = shutdown_rx.await;
                    })
                    .await;
            });
        });
        let (addrs, admin, stats) = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        Self {
            addrs,
            admin,
            stats,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The admin listener's address (`[admin] address` in the configuration).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Live counts (sessions, associations).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Every listener's address.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Access-log entries of this server's sessions so far.
    pub fn access_log(&self) -> Vec<AccessEntry> {
        let mine: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        ACCESS_LOG
            .lock()
            .unwrap()
            .iter()
            .filter(|entry| entry.get("listener").is_some_and(|l| mine.contains(l)))
            .cloned()
            .collect()
    }

    /// Waits (up to 10 s) until at least `count` sessions are logged; returns them.
    pub fn wait_for_sessions(&self, count: usize) -> Vec<AccessEntry> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let entries = self.access_log();
            if entries.len() >= count || Instant::now() > deadline {
                return entries;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl TestServer {
    /// The access log once at least `count` events have `field` equal to `value` (sessions
    /// are logged as they end, which may be after the client is done), or after 10 s.
    pub fn wait_for_count(&self, field: &str, value: &str, count: usize) -> Vec<AccessEntry> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let entries = self.access_log();
            if count_where(&entries, field, value) >= count || Instant::now() > deadline {
                return entries;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a graceful shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Whether the server has finished (its drain is over).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A resolver that knows a few names and nothing else — the proxy-side "hosts file" of a
/// test, so that no name ever reaches the machine's real resolver.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver(pub std::collections::HashMap<String, std::net::IpAddr>);

impl socksgate_server::Resolver for StaticResolver {
    fn resolve<'a>(
        &'a self,
        name: &'a socksgate_proto::DomainName,
        port: u16,
    ) -> socksgate_server::ResolveFuture<'a> {
        let found = self
            .0
            .get(name.as_str())
            .map(|ip| vec![SocketAddr::new(*ip, port)]);
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown name"))
        })
    }
}

/// How many events of `log` have `field` equal to `value` (an event without the field has
/// not).
pub fn count_where(log: &[AccessEntry], field: &str, value: &str) -> usize {
    log.iter()
        .filter(|event| event.get(field).is_some_and(|found| found == value))
        .count()
}

/// A directory of this test process for `group`'s files (`$TMPDIR/sg-GROUP-PID`).
pub fn scratch_dir(group: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-{group}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// [`scratch_dir`], emptied first: for a test that must not find an earlier run's files.
pub fn fresh_scratch_dir(group: &str) -> std::path::PathBuf {
    let _ = std::fs::remove_dir_all(scratch_dir(group));
    scratch_dir(group)
}

/// Writes `text` to `name` in `group`'s scratch directory; its path.
pub fn scratch_file(group: &str, name: &str, text: &str) -> std::path::PathBuf {
    let path = scratch_dir(group).join(name);
    std::fs::write(&path, text).expect("a scratch file written");
    path
}

/// A password file (bcrypt, cheap cost) of `users` and their passwords, in a directory of this
/// test process; `name` keeps the files of one process apart.
pub fn password_file(name: &str, users: &[(&str, &str)]) -> std::path::PathBuf {
    let lines: String = users
        .iter()
        .map(|(user, password)| {
            let hash = socksgate_auth::hash_password(password.as_bytes(), 4).expect("a hash");
            format!("{user}:{hash}\n")
        })
        .collect();
    scratch_file("auth", name, &lines)
}
