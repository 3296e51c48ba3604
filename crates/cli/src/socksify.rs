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

/// What `socksify` was asked.
pub(crate) struct Socksify {
    pub(crate) proxies: Vec<String>,
    pub(crate) include_loopback: bool,
    pub(crate) direct: Vec<String>,
    pub(crate) fake_range: Option<String>,
    pub(crate) debug: bool,
    pub(crate) command: Vec<OsString>,
}

pub(crate) fn run(request: &Socksify) -> ExitCode {
    let error = match prepare(request) {
        // `exec` only returns on failure.
        Ok(mut command) => anyhow::Error::from(command.exec()).context("starting the program"),
        Err(error) => error,
    };
    let _ = writeln!(std::io::stderr(), "socksgate socksify: {error:#}");
    exit::code(exit::RUNTIME)
}

fn prepare(request: &Socksify) -> anyhow::Result<std::process::Command> {
    let Some((program, arguments)) = request.command.split_first() else {
        bail!("nothing to run: socksgate socksify [-x URL]… -- PROGRAM [ARGUMENTS]…");
    };
    let chain = proxies::chain(&request.proxies)?;
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

/// The preload library: $SOCKSGATE_PRELOAD, next to this program, or in ../lib/socksgate/.
fn library() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SOCKSGATE_PRELOAD") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating socksgate")?;
    let dir = exe.parent().context("locating socksgate")?;
    let candidates = [
        dir.join("libsocksgate_preload.so"),
        dir.join("../lib/socksgate/libsocksgate_preload.so"),
        // `cargo test` runs binaries from target/debug/deps.
        dir.join("../libsocksgate_preload.so"),
    ];
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .map(|path| path.canonicalize().unwrap_or(path))
        .context(
            "libsocksgate_preload.so not found (build the workspace, or set SOCKSGATE_PRELOAD)",
        )
}
