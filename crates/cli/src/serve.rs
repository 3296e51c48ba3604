//! `socksgate serve`: load the configuration, open the listeners, serve until SIGTERM or
//! SIGINT, then drain.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use socksgate_auth::Authenticator;
use socksgate_config::{Config, ConfigError};
use socksgate_server::Server;
use tokio::signal::unix::{signal, SignalKind};

use crate::{authentication, exit, logging};

pub(crate) fn run(path: Option<&Path>, listen: &[SocketAddr]) -> ExitCode {
    let config = match load(path, listen) {
        Ok(config) => config,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            return exit::code(exit::CONFIG);
        }
    };
    logging::init(&config.log);
    let authenticator = match authentication::from_config(&config.auth) {
        Ok(authenticator) => authenticator,
        Err(error) => {
            tracing::error!("{error:#}");
            return exit::code(exit::CONFIG);
        }
    };
    raise_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return exit::code(exit::RUNTIME);
        }
    };
    match runtime.block_on(serve(config, authenticator)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            exit::code(exit::RUNTIME)
        }
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

async fn serve(
    config: Config,
    authenticator: Option<Arc<dyn Authenticator>>,
) -> anyhow::Result<()> {
    let mut server = Server::bind(config).await.context("starting the server")?;
    if let Some(authenticator) = authenticator {
        server = server.with_authenticator(authenticator);
    }
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let shutdown = async {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    let cut_off = server.run(shutdown).await;
    if cut_off > 0 {
        tracing::warn!(
            sessions = cut_off,
            "shutdown timeout: closing sessions still running"
        );
    }
    Ok(())
}

/// Each session holds two sockets and two pipes: raise the soft descriptor limit to the hard
/// one, as busy servers do, so the session cap and not the default 1024 is the limit.
fn raise_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "cannot raise the file descriptor limit");
        }
    }
}
