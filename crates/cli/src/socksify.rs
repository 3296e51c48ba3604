//! `socksgate socksify`: runs a program with its connections sent through the proxies, by
//! preloading `libsocksgate_preload.so`.

use std::ffi::OsString;
use std::io::Write;
use std::net::ToSocketAddrs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use socksgate_client::Hop;
use socksgate_proto::{Address, Host};

use crate::{exit, proxies};

// What `socksify` was asked (a plain comment: a doc comment would become --help text).
#[derive(Debug, clap::Args)]
pub(crate) struct Socksify {
    /// A proxy URL (repeat for a chain); defaults as for `connect`.
    #[arg(short = 'x', long = "proxy", value_name = "URL")]
    pub(crate) proxies: Vec<String>,
    /// Send connections to loopback addresses through the proxies too.
    #[arg(long)]
    pub(crate) include_loopback: bool,
    /// An address block to reach directly (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub(crate) direct: Vec<String>,
    /// The IPv4 block for the fake addresses that stand for names (default 240.0.0.0/8).
    #[arg(long, value_name = "CIDR")]
    pub(crate) fake_range: Option<String>,
    /// Log each redirected connection and name on standard error.
    #[arg(long)]
    pub(crate) debug: bool,
    /// Run the program in a network namespace whose only way out is a TUN device read by
    /// socksgate: catches statically linked programs and Go binaries too (needs root, or
    /// unprivileged user namespaces). Every chain the client supports, TLS hops included.
    #[arg(long, conflicts_with_all = ["include_loopback", "direct", "fake_range"])]
    pub(crate) tun: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub(crate) command: Vec<OsString>,
}

/// Runs the program with the preload library (`--tun` is `tun::socksify`'s, dispatched by
/// `main`).
pub(crate) fn run(request: &Socksify) -> ExitCode {
    let error = match prepare(request) {
        // `exec` only returns on failure: said, and the exit status, as a shell would.
        Ok(mut command) => {
            let error = command.exec();
            let program = command.get_program().to_string_lossy().into_owned();
            let (what, status) = match error.kind() {
                std::io::ErrorKind::NotFound => ("command not found".to_owned(), 127),
                std::io::ErrorKind::PermissionDenied => (error.to_string(), 126),
                _ => (error.to_string(), 126),
            };
            let _ = writeln!(std::io::stderr(), "socksgate socksify: {program}: {what}");
            return ExitCode::from(status);
        }
        Err(error) => error,
    };
    let _ = writeln!(std::io::stderr(), "socksgate socksify: {error:#}");
    exit::status_of(&error)
}

fn prepare(request: &Socksify) -> anyhow::Result<std::process::Command> {
    let Some((program, arguments)) = request.command.split_first() else {
        return Err(exit::usage(
            "nothing to run: socksgate socksify [-x URL]… -- PROGRAM [ARGUMENTS]…",
        ));
    };
    let chain = proxies::chain(&request.proxies)?;
    proxies::note_tcp_only(&chain, "socksify");
    if let Some(hop) = chain.hops().iter().find(|hop| hop.tls) {
        bail!(
            "{hop}: socksify speaks plain SOCKS to its proxies; for a TLS proxy, run a \
             local `socksgate serve` whose route goes through it, and socksify through that"
        );
    }
    // The library never resolves names itself: proxies are handed over as addresses.
    let urls: Vec<String> = chain
        .hops()
        .iter()
        .map(resolved)
        .collect::<anyhow::Result<_>>()?;
    let library = library()?;
    let mut direct: Vec<String> = if request.include_loopback {
        Vec::new()
    } else {
        vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
    };
    direct.extend(request.direct.iter().cloned());
    let mut command = std::process::Command::new(program);
    command.args(arguments);
    let preload = match std::env::var_os("LD_PRELOAD") {
        Some(existing) if !existing.is_empty() => {
            let mut joined = library.into_os_string();
            joined.push(":");
            joined.push(existing);
            joined
        }
        _ => library.into_os_string(),
    };
    command
        .env("LD_PRELOAD", preload)
        .env("SOCKSGATE_SOCKSIFY_PROXIES", urls.join(","))
        .env("SOCKSGATE_SOCKSIFY_DIRECT", direct.join(","));
    if let Some(range) = &request.fake_range {
        command.env("SOCKSGATE_SOCKSIFY_FAKE_RANGE", range);
    }
    if request.debug {
        command.env("SOCKSGATE_SOCKSIFY_DEBUG", "1");
    }
    Ok(command)
}

/// The hop's URL with its host resolved to an address (credentials kept).
fn resolved(hop: &Hop) -> anyhow::Result<String> {
    let mut hop = hop.clone();
    if let Host::Domain(name) = &hop.address.host {
        let address = (name.as_str(), hop.address.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving the proxy {name}"))?
            .next()
            .with_context(|| format!("the proxy {name} has no address"))?;
        hop.address = Address::from(address);
    }
    Ok(hop.url_with_password())
}

/// The preload library, built with this binary and carried inside it (see build.rs).
const EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libsocksgate_preload.so"));

/// The preload library: $SOCKSGATE_PRELOAD, an installed one in ../lib/socksgate/, or the
/// embedded one written out once to a private directory.
fn library() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SOCKSGATE_PRELOAD") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating socksgate")?;
    if let Some(installed) = exe
        .parent()
        .map(|dir| dir.join("../lib/socksgate/libsocksgate_preload.so"))
        .filter(|path| path.is_file())
    {
        return Ok(installed);
    }
    write_embedded()
}

/// Writes the embedded library to the private directory, named by its content, so every
/// build finds its own and each is written once.
fn write_embedded() -> anyhow::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::OpenOptionsExt;
    let dir = crate::private_dir::of_this_user()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    EMBEDDED.hash(&mut hasher);
    let path = dir.join(format!("libsocksgate_preload-{:016x}.so", hasher.finish()));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == EMBEDDED.len() as u64) {
        return Ok(path);
    }
    let partial = dir.join(format!("preload.{}.partial", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&partial)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::io::Write::write_all(&mut file, EMBEDDED)?;
    drop(file);
    std::fs::rename(&partial, &path)?;
    Ok(path)
}
