//! `socksgate`: the command-line entry point.
//!
//! Exit codes: 0 success; 1 a failure while running (the server: a listener could not be
//! opened, …; a client command), or a negative answer (`explain` denied, `ping` without a
//! reply, `import` not exact); 2 bad usage or an invalid configuration.

// Doc comments here are --help text, where [OPTIONAL] parts are the convention, not links.
#![allow(rustdoc::broken_intra_doc_links)]

mod authentication;
mod check;
mod connect;
mod explain;
mod forward;
mod icmp;
mod import;
mod logging;
mod manual;
mod passwd;
mod ping;
mod preflight;
mod private_dir;
mod proxies;
mod serve;
mod service;
mod socksify;
mod system_libraries;
mod traceroute;
mod tun;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `socksgate --version`: the version, and what this build is (commit, compiler, features).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SOCKSGATE_BUILD"),
    ")"
);

/// A complete SOCKS system: a SOCKS5, SOCKS4 and SOCKS4a server, and client tools.
#[derive(Debug, Parser)]
#[command(
    version = VERSION,
    about,
    propagate_version = true,
    after_help = "Exit codes: 0 success; 1 the server failed while running (e.g. a listener \
                  could not be opened); 2 bad usage or an invalid configuration."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the SOCKS server.
    ///
    /// Without a configuration file socksgate listens on port 1080 of 127.0.0.1 and ::1, asks
    /// for no authentication and allows every request: a proxy for this machine only.
    Serve {
        /// The configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen on ADDR:PORT instead of the configured listeners (repeatable).
        #[arg(short, long, value_name = "ADDR:PORT", value_parser = listen_address)]
        listen: Vec<SocketAddr>,
        /// Check the configuration as starting would (authentication back end, TLS files,
        /// Kerberos keys), then exit: 0 when it would start, 2 when not. Opens nothing.
        #[arg(long)]
        check_only: bool,
    },
    /// Check a configuration file and print the configuration it gives.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["config", "file"]))]
    Check {
        /// The configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The configuration file, given without -c.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Show how the policy decides a request, and which rule (file:line) decides it.
    ///
    /// Exit code 0 when the request would be allowed, 1 when denied, 2 for a bad
    /// configuration or arguments.
    Explain(explain::Question),
    /// Connect standard input and output to HOST PORT through the proxies (OpenSSH's
    /// ProxyCommand: `ssh -o ProxyCommand='socksgate connect -x socks5h://gw:1080 %h %p'`).
    ///
    /// Without -x, the proxies come from the first of SOCKSGATE_PROXY, ALL_PROXY, all_proxy,
    /// SOCKS_PROXY or SOCKS5_PROXY that is set (one URL, or several separated by commas for
    /// a chain).
    Connect {
        #[command(flatten)]
        proxies: proxies::ProxyArgs,
        /// The target host.
        host: String,
        /// The target port.
        port: u16,
    },
    /// Forward local ports to targets through the proxies.
    ///
    /// Each -L listens on a local TCP port and carries every connection to its target; each
    /// -U listens on a local UDP port and relays every sender's datagrams through an
    /// association of its own (`-L 8080:intranet.example:80 -U 5353:10.0.0.53:53`).
    ///
    /// Without -x, the proxies come from the first of SOCKSGATE_PROXY, ALL_PROXY, all_proxy,
    /// SOCKS_PROXY or SOCKS5_PROXY that is set (one URL, or several separated by commas for
    /// a chain).
    Forward {
        #[command(flatten)]
        proxies: proxies::ProxyArgs,
        /// TCP: [BIND:]PORT:HOST:PORT (BIND defaults to 127.0.0.1).
        #[arg(short = 'L', value_name = "SPEC")]
        tcp: Vec<String>,
        /// UDP: [BIND:]PORT:HOST:PORT, each local sender getting its own association.
        #[arg(short = 'U', value_name = "SPEC")]
        udp: Vec<String>,
        /// UDP: at most this many senders' associations at once per -U (more senders'
        /// datagrams are dropped until one ends).
        #[arg(long = "max-udp-flows", value_name = "N", default_value = "256")]
        max_udp_flows: usize,
        /// UDP: a sender's association ends after this many seconds with no datagram either
        /// way.
        #[arg(long = "udp-idle", value_name = "SECONDS", default_value = "60")]
        udp_idle: u64,
    },
    /// Send ICMP echo requests to HOST from the last proxy, as ping does (socksgate's ICMP
    /// extension). Exit code 0 when a reply came back, 1 when none did, 2 for errors.
    Ping(ping::Ping),
    /// Print the route from the last proxy to HOST, as `traceroute -I` does (socksgate's ICMP
    /// extension).
    Traceroute(traceroute::Traceroute),
    /// Run a program with its TCP connections, UDP datagrams and DNS sent through the
    /// proxies (LD_PRELOAD, or a TUN device with --tun).
    ///
    /// Names are resolved by the last proxy when it is socks5h or socks4a; loopback is reached
    /// directly unless --include-loopback. Statically linked programs (and Go binaries)
    /// ignore LD_PRELOAD, and so do setuid programs: --tun catches them too.
    Socksify(socksify::Socksify),
    /// Capture this network namespace's traffic (a host, or a container's) with a TUN device
    /// and send it through the proxies (needs root).
    Tun(tun::Tun),
    /// The watchdog of `socksgate tun`: undoes its routing when it is killed.
    #[command(name = "__tun-watch", hide = true)]
    TunWatch { capturer: u32 },
    /// Inside a TUN session's namespace: set up the program's names, then run it.
    #[command(name = "__tun-exec", hide = true)]
    TunExec {
        resolv_conf: PathBuf,
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Convert another tool's configuration (exit 1 when something could not be mapped
    /// exactly: the output says what, where).
    #[command(subcommand)]
    Import(import::Import),
    /// Write the completion script for SHELL to standard output.
    ///
    /// bash: `socksgate completions bash > /etc/bash_completion.d/socksgate`;
    /// zsh: into a directory of $fpath as `_socksgate`; fish: into
    /// ~/.config/fish/completions/socksgate.fish.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (socksgate(1), a page per command, socksgate.toml(5)) into DIR.
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
    /// Add a user to a password file, or change their password (bcrypt, as `htpasswd -B`).
    ///
    /// The password is asked twice without echo, or read as one line from standard input with
    /// --stdin. The file is created if needed (mode 0600) and replaced atomically.
    Passwd {
        /// The password file (htpasswd format).
        file: PathBuf,
        /// The user name.
        user: String,
        /// Read the password from standard input instead of asking.
        #[arg(long)]
        stdin: bool,
        /// bcrypt cost: each step doubles the work of every check (4–31).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
        /// Remove the user instead.
        #[arg(long, conflicts_with_all = ["stdin"])]
        delete: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    system_libraries::choose_from_environment();
    match cli.command {
        Command::Serve {
            config,
            listen,
            check_only,
        } => serve::run(config.as_deref(), &listen, check_only),
        Command::Check { config, file } => match config.or(file) {
            Some(config) => check::run(&config),
            None => exit::code(exit::CONFIG),
        },
        Command::Connect {
            proxies,
            host,
            port,
        } => connect::run(&proxies, &host, port),
        Command::Forward {
            proxies,
            tcp,
            udp,
            max_udp_flows,
            udp_idle,
        } => {
            let flows = forward::UdpFlows {
                max: max_udp_flows.max(1),
                idle: std::time::Duration::from_secs(udp_idle.max(1)),
            };
            forward::run(&proxies, &tcp, &udp, flows)
        }
        Command::Ping(request) => ping::run(&request),
        Command::Traceroute(request) => traceroute::run(&request),
        Command::Socksify(request) if request.tun => tun::socksify(&request),
        Command::Socksify(request) => socksify::run(&request),
        Command::Tun(request) => tun::capture(&request),
        Command::TunWatch { capturer } => tun::watch(capturer),
        Command::TunExec {
            resolv_conf,
            command,
        } => tun::exec(&resolv_conf, &command),
        Command::Explain(question) => explain::run(&question),
        Command::Completions { shell } => manual::completions(shell),
        Command::Import(import) => import::run(&import),
        Command::Man { dir } => manual::man(&dir),
        Command::Passwd {
            file,
            user,
            stdin,
            cost,
            delete,
        } => passwd::run(&file, &user, stdin, cost, delete),
    }
}

/// `--listen`'s value, with the form it takes when it is not one.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "expected ADDRESS:PORT, like 127.0.0.1:1080 or [::1]:1080 (a port is required)".to_owned()
    })
}

/// Exit codes, as documented in `--help` and the README.
pub(crate) mod exit {
    use std::process::ExitCode;

    /// The server failed while running.
    pub(crate) const RUNTIME: u8 = 1;
    /// Bad usage or an invalid configuration.
    pub(crate) const CONFIG: u8 = 2;

    pub(crate) fn code(code: u8) -> ExitCode {
        ExitCode::from(code)
    }

    /// A mistake in how a command was called (a proxy URL, a `-L` spec, a missing
    /// argument): exit status 2, as for the usage errors the parser finds itself.
    #[derive(Debug)]
    pub(crate) struct Usage(pub(crate) String);

    impl std::fmt::Display for Usage {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Usage {}

    /// A usage mistake, as an error.
    pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Usage(message.into()))
    }

    /// The exit status of a command that failed with `error`: 2 when it was called wrong,
    /// 1 when it failed while running.
    pub(crate) fn status_of(error: &anyhow::Error) -> ExitCode {
        if error.chain().any(|cause| cause.is::<Usage>()) {
            code(CONFIG)
        } else {
            code(RUNTIME)
        }
    }
}
