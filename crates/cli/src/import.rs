//! `socksgate import`: other tools' configurations as socksgate's. What cannot be mapped
//! exactly is said in a comment where it was, and makes the exit code 1.

mod dante;
mod proxychains;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit;

/// What `import` converts.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Import {
    /// A Dante sockd.conf: prints the socksgate configuration (TOML), with a comment at
    /// every place it cannot map exactly.
    Dante {
        /// The sockd.conf (danted.conf) file.
        file: PathBuf,
    },
    /// A proxychains(-ng) configuration: prints `export SOCKSGATE_PROXY=…` (the chain that
    /// `connect`, `forward` and `socksify` read) and the socksify flags for the rest.
    ///
    /// Use it as `eval "$(socksgate import proxychains /etc/proxychains4.conf)"`.
    Proxychains {
        /// The proxychains.conf file.
        file: PathBuf,
    },
}

/// A converted configuration.
pub(crate) struct Conversion {
    /// The result, with comments where something could not be mapped exactly.
    pub(crate) output: String,
    /// How many settings or rules were dropped.
    pub(crate) dropped: usize,
}

pub(crate) fn run(import: &Import) -> ExitCode {
    let converted = match import {
        Import::Dante { file } => {
            read(file).map(|text| dante::convert(&text, &file.display().to_string()))
        }
        Import::Proxychains { file } => {
            read(file).map(|text| proxychains::convert(&text, &file.display().to_string()))
        }
    };
    finish(converted)
}

fn read(file: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(file).map_err(|error| {
        let _ = writeln!(std::io::stderr(), "error: {}: {error}", file.display());
        exit::code(exit::CONFIG)
    })
}

/// Prints the result; exit 0 when everything was mapped, 1 when something was dropped.
fn finish(converted: Result<Conversion, ExitCode>) -> ExitCode {
    let converted = match converted {
        Ok(converted) => converted,
        Err(code) => return code,
    };
    let _ = std::io::stdout().write_all(converted.output.as_bytes());
    if converted.dropped == 0 {
        return ExitCode::SUCCESS;
    }
    let _ = writeln!(
        std::io::stderr(),
        "warning: {} setting(s) could not be converted exactly; see the comments",
        converted.dropped
    );
    exit::code(exit::RUNTIME)
}
