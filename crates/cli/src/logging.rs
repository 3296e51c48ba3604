//! Logs on standard error: human-readable lines or JSON, filtered by the config's level or
//! `RUST_LOG`.

use std::io::IsTerminal;

use socksgate_config::{Log, LogFormat};
use tracing_subscriber::EnvFilter;

pub(crate) fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match log.format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
