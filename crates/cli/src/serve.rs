//! `socksgate serve`: load the configuration, open the listeners (or take those systemd
//! passed), give up root, serve — reloading on SIGHUP or when a watched file changes,
//! reopening the log on SIGUSR1 — until SIGTERM or SIGINT, then drain.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use socksgate_auth::Authenticator;
use socksgate_config::{Config, ConfigError};
use socksgate_server::{ReloadHandle, Server};
use tokio::signal::unix::{signal, SignalKind};

use crate::preflight::Stage;
use crate::{exit, logging};

pub(crate) fn run(path: Option<&Path>, listen: &[SocketAddr], check_only: bool) -> ExitCode {
    let mut config = match load(path, listen) {
        Ok(config) => config,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            return exit::code(exit::CONFIG);
        }
    };
    // Every file and system library starting needs, before anything opens, read as `check`
    // reads them: a failure is a configuration error, said as one (file:line: field) on
    // standard error whatever the log's format.
    let file = path.unwrap_or(Path::new("<embedded>"));
    let stage = Stage::Start {
        start_logging: || logging::init(&config.log),
    };
    let authenticator = match crate::preflight::load(&config, file, stage) {
        Ok(loaded) => loaded.authenticator,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            // And in the log, when it goes elsewhere (a file the operator reads).
            if !matches!(config.log.output, socksgate_config::LogOutput::Stderr) {
                tracing::error!("{error}");
            }
            return exit::code(exit::CONFIG);
        }
    };
    if path.is_none() && listen.is_empty() {
        skip_missing_loopbacks(&mut config);
    }
    if check_only {
        // systemd's ExecStartPre and ExecReload run this, so a bad file never reaches the
        // running server.
        return ExitCode::SUCCESS;
    }
    raise_file_limit(config.limits.max_sessions);
    let runtime = match runtime_builder().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return exit::code(exit::RUNTIME);
        }
    };
    let source = ConfigSource {
        path: path.map(Path::to_path_buf),
        listen: listen.to_vec(),
    };
    match runtime.block_on(serve(config, authenticator, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            exit::code(exit::RUNTIME)
        }
    }
}

/// One scheduler thread per CPU the process may use. With one CPU (a container limit, or
/// `taskset`), the single-threaded scheduler does the same work without the work-stealing
/// machinery: fewer atomics and cross-thread wake-ups per event.
fn runtime_builder() -> tokio::runtime::Builder {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
}

fn load(path: Option<&Path>, listen: &[SocketAddr]) -> Result<Config, ConfigError> {
    let config = match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if listen.is_empty() {
        Ok(config)
    } else {
        config.with_listeners(listen)
    }
}

/// The embedded default listens on both loopbacks; a machine without one of them (IPv6
/// switched off in a container or on the kernel's command line) is served on the other.
/// A listener the configuration names is never skipped: not binding it is an error.
fn skip_missing_loopbacks(config: &mut Config) {
    let missing = |address: &SocketAddr| {
        let probe = std::net::TcpListener::bind(SocketAddr::new(address.ip(), 0));
        probe.is_err_and(|error| {
            error.kind() == std::io::ErrorKind::AddrNotAvailable
                || error.raw_os_error() == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error())
        })
    };
    let (absent, present): (Vec<_>, Vec<_>) = config
        .listeners
        .iter()
        .cloned()
        .partition(|listener| missing(&listener.address));
    if present.is_empty() {
        return;
    }
    for listener in &absent {
        tracing::info!(
            address = %listener.address,
            "this machine has no such loopback address: not listening there"
        );
    }
    config.listeners = present;
}

/// Where the configuration comes from, to load it again on reload.
struct ConfigSource {
    path: Option<PathBuf>,
    listen: Vec<SocketAddr>,
}

async fn serve(
    config: Config,
    authenticator: Option<Arc<dyn Authenticator>>,
    source: ConfigSource,
) -> anyhow::Result<()> {
    let mut watched = watched_files(source.path.as_deref(), &config);
    let process = config.process.clone();
    let fleet = config.fleet.clone();
    let inherited = inherited_listeners()?;
    let mut server = Server::bind_with(config, inherited)
        .await
        .context("starting the server")?;
    if let Some(authenticator) = authenticator {
        server = server.with_authenticator(authenticator);
    }
    if let Some(fleet) = &fleet {
        let fleet = socksgate_fleet::RedisFleet::start(fleet).map_err(anyhow::Error::msg)?;
        server = server.with_fleet(fleet);
    }
    // The listeners are open: root is no longer needed.
    crate::service::drop_privileges(&process)?;
    let reloads = server.reload_handle();
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut rotated = signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;
    tokio::spawn(async move {
        while rotated.recv().await.is_some() {
            logging::reopen();
        }
    });
    tokio::spawn(async move {
        let mut stamps = file_stamps(&watched);
        let mut poll = tokio::time::interval(RELOAD_POLL);
        loop {
            let cause = tokio::select! {
                _ = hangup.recv() => "SIGHUP",
                _ = poll.tick() => {
                    let now = file_stamps(&watched);
                    if now == stamps {
                        continue;
                    }
                    // Let a writer finish: load only once the files have stopped changing.
                    tokio::time::sleep(SETTLE).await;
                    let settled = file_stamps(&watched);
                    if settled != now {
                        continue;
                    }
                    stamps = settled;
                    "a configuration or certificate file changed"
                }
            };
            crate::service::notify("RELOADING=1");
            let reloaded = reload(&reloads, &source, cause);
            crate::service::notify("READY=1");
            if let Some(config) = reloaded {
                watched = watched_files(source.path.as_deref(), &config);
                stamps = file_stamps(&watched);
            }
        }
    });
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let shutdown = async {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        }
        crate::service::notify("STOPPING=1");
    };
    // Ready only now: every signal has its handler (a SIGHUP before would end the process).
    crate::service::notify("READY=1");
    let cut_off = server.run(shutdown).await;
    if cut_off > 0 {
        tracing::warn!(
            sessions = cut_off,
            "shutdown timeout: closing sessions still running"
        );
    }
    Ok(())
}

/// The listening sockets systemd passed (socket activation: `LISTEN_FDS`), if any.
fn inherited_listeners() -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut passed = listenfd::ListenFd::from_env();
    (0..passed.len())
        .filter_map(|index| passed.take_tcp_listener(index).transpose())
        .collect::<std::io::Result<_>>()
        .context("a socket passed by systemd is not a listening TCP socket")
}

/// How often the configuration file is checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How long a changed file must stay unchanged before it is loaded (a writer may be midway).
const SETTLE: Duration = Duration::from_millis(300);

/// The files whose change reloads the configuration: the file itself, the TLS listeners'
/// (and the admin listener's) certificates, keys and client authorities (a renewed
/// certificate is served without a restart), and the admin token (a new one applies at once).
fn watched_files(path: Option<&Path>, config: &Config) -> Vec<PathBuf> {
    let Some(path) = path else {
        return Vec::new();
    };
    let mut files = vec![path.to_path_buf()];
    let admin = config.admin.as_ref();
    let listeners = config.listeners.iter().filter_map(|l| l.tls.as_ref());
    for tls in listeners.chain(admin.and_then(|admin| admin.tls.as_ref())) {
        files.extend([tls.cert.clone(), tls.key.clone()]);
        files.extend(tls.client_ca.clone());
    }
    files.extend(admin.and_then(|admin| admin.token_file.clone()));
    files
}

fn file_stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64, u64)>> {
    files.iter().map(|file| file_stamp(file)).collect()
}

/// What tells one version of a file from the next.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

/// Loads and applies the configuration again; on any error the running one stays. Returns
/// the configuration now in force, when it changed.
fn reload(handle: &ReloadHandle, source: &ConfigSource, cause: &str) -> Option<Config> {
    let Some(path) = &source.path else {
        tracing::info!(
            "{cause}: no configuration file to reload (running on the embedded default)"
        );
        return None;
    };
    let config = match load(Some(path), &source.listen) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "{cause}: configuration not reloaded; the running one stays");
            return None;
        }
    };
    // Every file it names, read as `check` and starting read them (the log and the keytab
    // stay as the server started: they change at the next start).
    let authenticator = match crate::preflight::load(&config, path, Stage::<fn() -> _>::Reload) {
        Ok(loaded) => loaded.authenticator,
        Err(error) => {
            tracing::error!("{cause}: configuration not reloaded; the running one stays: {error}");
            return None;
        }
    };
    let warnings = match handle.reload(&config, authenticator) {
        Ok(warnings) => warnings,
        Err(error) => {
            tracing::error!("{cause}: configuration not reloaded; the running one stays: {error}");
            return None;
        }
    };
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(path = %path.display(), "{cause}: configuration reloaded; new sessions use it");
    Some(config)
}

/// Raises the soft descriptor limit to the hard one, and warns when even that cannot hold
/// `max_sessions` sessions: each holds two sockets, plus pooled pipes and listeners.
fn raise_file_limit(max_sessions: Option<usize>) {
    /// Below this many sessions an unconfigured server says its limit is too small.
    const FEW_SESSIONS: usize = 256;
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "cannot raise the file descriptor limit");
        }
    }
    let current = getrlimit(Resource::Nofile).current;
    // Unconfigured, the cap follows the limit (`session_cap`): a warning only when that
    // leaves very few sessions.
    let Some(max_sessions) = max_sessions else {
        let cap = socksgate_server::session_cap(&socksgate_config::Limits::default());
        if cap < FEW_SESSIONS {
            tracing::warn!(
                limit = current,
                max_sessions = cap,
                "the descriptor limit holds only a few sessions at once (raise LimitNOFILE, \
                 or set limits.max_sessions)"
            );
        }
        return;
    };
    let needed = socksgate_server::descriptors_needed(max_sessions);
    if let Some(current) = current.filter(|&current| current < needed as u64) {
        tracing::warn!(
            limit = current,
            needed,
            "the descriptor limit is below what limits.max_sessions needs; beyond it, accepting \
             backs off (raise LimitNOFILE, or lower limits.max_sessions)"
        );
    }
}
