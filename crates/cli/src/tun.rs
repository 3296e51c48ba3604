//! TUN mode from the command line. `socksgate socksify --tun`: the program runs in a network
//! namespace of its own whose only way out is a TUN device read by socksgate's user-space
//! stack (`socksgate-tun`), so every connection it makes goes through the proxies, whatever
//! the program is made of. `socksgate tun`: the namespace socksgate runs in (a host, a
//! container) is captured by policy routing, with a watchdog process (`__tun-watch`) that
//! removes the rules and routes if socksgate dies; `__tun-exec` sets up the program's names
//! inside its namespace, then runs it.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

use anyhow::Context;
use rustix::process::{kill_process, Pid, Signal};
use socksgate_tun::namespace;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use crate::socksify::Socksify;
use crate::{exit, proxies};

/// The hidden subcommand the program is started through, inside the namespace.
pub(crate) const EXEC: &str = "__tun-exec";
/// The hidden subcommand of `socksgate tun`'s watchdog.
const WATCH: &str = "__tun-watch";

pub(crate) fn socksify(request: &Socksify) -> ExitCode {
    match session(request) {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "socksgate socksify --tun: {error:#}");
            exit::status_of(&error)
        }
    }
}

fn session(request: &Socksify) -> anyhow::Result<ExitCode> {
    let chain = proxies::chain(&request.proxies)?;
    proxies::note_tcp_only(&chain, "socksify --tun");
    let resolv_conf = resolv_conf()?;
    // Before the runtime starts a thread: a user namespace needs a single-threaded process.
    namespace::enter_user_namespace_unless_root()?;
    let mut program = Command::new(std::env::current_exe().context("finding this program")?);
    program
        .arg(EXEC)
        .arg(&resolv_conf)
        .arg("--")
        .args(&request.command);
    let status = stack_runtime()?.block_on(async move {
        // Before the program exists: a signal that comes while it starts is kept, and
        // passed on once its pid is known, instead of ending us or being lost.
        let signals = ForwardedSignals::install()?;
        let (device_sender, device) = oneshot::channel();
        let (pid_sender, pid) = oneshot::channel();
        let (status_sender, status) = oneshot::channel();
        std::thread::Builder::new()
            .name("tun-namespace".to_owned())
            .spawn(move || keep_namespace(program, device_sender, pid_sender, status_sender))?;
        let device = device
            .await
            .context("the namespace thread ended")?
            .context("setting up the namespace and its TUN device")?;
        let stack = tokio::spawn(socksgate_tun::serve(device, chain));
        let pid = pid
            .await
            .context("the namespace thread ended")?
            .context("starting the program")?;
        let status = signals.forward_until(pid, status).await;
        stack.abort();
        status
    })?;
    Ok(exit_code(status))
}

/// The runtime of a TUN stack: two workers, the device and the flows on both.
fn stack_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// The namespace thread: makes the namespace and the device, hands the device over, starts
/// the program from inside and waits for it. The namespace lives as long as this thread and
/// the program (and its children) do.
fn keep_namespace(
    mut program: Command,
    device: oneshot::Sender<std::io::Result<socksgate_tun::Device>>,
    pid: oneshot::Sender<std::io::Result<u32>>,
    status: oneshot::Sender<std::io::Result<ExitStatus>>,
) {
    match namespace::isolate_thread() {
        Ok(made) => {
            let _ = device.send(Ok(made));
        }
        Err(error) => {
            let _ = device.send(Err(error));
            return;
        }
    }
    let mut child = match program.spawn() {
        Ok(child) => child,
        Err(error) => {
            let _ = pid.send(Err(error));
            return;
        }
    };
    let _ = pid.send(Ok(child.id()));
    let _ = status.send(child.wait());
}

/// The signals a session passes on to its program: SIGTERM and SIGHUP; SIGINT is left to
/// it (the terminal sends it to the program too) and only kept from ending us. A signal that
/// was ignored when we started (`nohup`) is left alone, so the program inherits it ignored.
struct ForwardedSignals {
    terminate: Option<tokio::signal::unix::Signal>,
    hang_up: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ForwardedSignals {
    /// Takes the signals over from now on; each one that arrives is remembered until
    /// `forward_until` passes it on.
    fn install() -> std::io::Result<Self> {
        let ignored = ignored_signals();
        let take = |kind: SignalKind| -> std::io::Result<_> {
            let number = u32::try_from(kind.as_raw_value()).unwrap_or(0);
            let is_ignored = (1..=64).contains(&number) && ignored & (1 << (number - 1)) != 0;
            if is_ignored {
                return Ok(None);
            }
            signal(kind).map(Some)
        };
        Ok(Self {
            terminate: take(SignalKind::terminate())?,
            hang_up: take(SignalKind::hangup())?,
            interrupt: take(SignalKind::interrupt())?,
        })
    }

    /// Passes signals on to `pid` (those that came before included) until the program ends.
    async fn forward_until(
        mut self,
        pid: u32,
        mut status: oneshot::Receiver<std::io::Result<ExitStatus>>,
    ) -> anyhow::Result<ExitStatus> {
        let pid = i32::try_from(pid).ok().and_then(Pid::from_raw);
        loop {
            let forward = tokio::select! {
                // Signals first: one that came before the program ended still reaches it.
                biased;
                () = arrival(&mut self.terminate) => Signal::TERM,
                () = arrival(&mut self.hang_up) => Signal::HUP,
                () = arrival(&mut self.interrupt) => continue,
                ended = &mut status => return Ok(ended.context("the namespace thread ended")??),
            };
            if let Some(pid) = pid {
                let _ = kill_process(pid, forward);
            }
        }
    }
}

/// The next arrival of a signal we took over; never, for one we left alone.
async fn arrival(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// The signals this process ignores (the kernel's `SigIgn` mask: bit N-1 for signal N).
fn ignored_signals() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("SigIgn:"))?;
            u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).ok()
        })
        .unwrap_or(0)
}

/// The program's exit code, or 128 + the signal that ended it (as shells report it).
fn exit_code(status: ExitStatus) -> ExitCode {
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Capture the traffic of this network namespace (a host, or a container) with a TUN
/// device and send it through the proxies: TCP, UDP and ICMP echo, IPv4 and IPv6.
///
/// Policy routing (rules 5346 and 5347, table 5347) sends everything but the proxies' own
/// connections (marked 0x5347) to the device, while more specific routes, such as the local
/// network, keep working. Needs root (CAP_NET_ADMIN). The first proxy's name is resolved
/// before the capture starts; later hops should be addresses or resolve names themselves
/// (socks5h). Stops on SIGINT or SIGTERM, removing its rules and routes.
#[derive(Debug, clap::Args)]
pub(crate) struct Tun {
    #[command(flatten)]
    proxies: proxies::ProxyArgs,
}

pub(crate) fn capture(request: &Tun) -> ExitCode {
    let outcome = stack_runtime()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(capture_until_stopped(request)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "socksgate tun: {error:#}");
            exit::status_of(&error)
        }
    }
}

async fn capture_until_stopped(request: &Tun) -> anyhow::Result<()> {
    let chain = request.proxies.chain()?;
    proxies::note_tcp_only(&chain, "tun");
    let chain = chain
        .with_mark(socksgate_tun::routing::MARK)
        .resolve_first_hop()
        .await?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    // Started first: if this process is killed, the watchdog undoes the capture. In a process
    // group of its own, so that Ctrl-C at the terminal never reaches it, not even before its
    // handlers are in place.
    let mut watchdog = Command::new(std::env::current_exe().context("finding this program")?)
        .arg(WATCH)
        .arg(std::process::id().to_string())
        .process_group(0)
        .spawn()
        .context("starting the watchdog")?;
    let (device, capture) = socksgate_tun::routing::capture()?;
    let _ = writeln!(
        std::io::stderr(),
        "socksgate tun: this namespace's traffic goes through {} (device {}); SIGINT or \
         SIGTERM to stop",
        chain
            .hops()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        namespace::DEVICE
    );
    let outcome = tokio::select! {
        served = socksgate_tun::serve(device, chain) => served.map_err(anyhow::Error::from),
        _ = terminate.recv() => Ok(()),
        _ = interrupt.recv() => Ok(()),
    };
    drop(capture);
    let _ = watchdog.kill();
    let _ = watchdog.wait();
    outcome
}

/// `socksgate __tun-watch PID`: the watchdog of `socksgate tun` (process PID).
pub(crate) fn watch(capturer: u32) -> ExitCode {
    // It must outlive the capturer: its own process group keeps the terminal's Ctrl-C away,
    // and these handlers anything else sent to SIGINT or SIGHUP. (The handlers tokio
    // installs stay installed; nothing reads them.)
    let ignored = crate::icmp::runtime().and_then(|runtime| {
        runtime.block_on(async {
            let _interrupt = signal(SignalKind::interrupt())?;
            let _hang_up = signal(SignalKind::hangup())?;
            Ok::<_, std::io::Error>(())
        })
    });
    if let Err(error) = ignored {
        let _ = writeln!(std::io::stderr(), "socksgate tun watchdog: {error}");
    }
    socksgate_tun::routing::watch_over(capturer);
    ExitCode::SUCCESS
}

/// A `resolv.conf` naming the session's DNS server, in this user's private directory.
fn resolv_conf() -> anyhow::Result<PathBuf> {
    let path = crate::private_dir::of_this_user()?.join("tun-resolv.conf");
    std::fs::write(&path, namespace::resolv_conf())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `socksgate __tun-exec RESOLV_CONF -- PROGRAM…`: inside the namespace, the program's
/// own names setup, then the program itself.
pub(crate) fn exec(resolv_conf: &Path, command: &[OsString]) -> ExitCode {
    let Some((program, arguments)) = command.split_first() else {
        return exit::code(exit::CONFIG);
    };
    let error = match namespace::private_resolver(resolv_conf) {
        Ok(()) => Command::new(program).args(arguments).exec(),
        Err(error) => error,
    };
    let _ = writeln!(
        std::io::stderr(),
        "socksgate socksify --tun: {}: {error}",
        program.to_string_lossy()
    );
    ExitCode::from(127)
}
