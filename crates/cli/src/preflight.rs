//! Everything starting reads besides the configuration file itself — password and group
//! files, the PAM library, TLS certificates and keys, keytabs, the admin token, the
//! `[process]` account, the fleet's URL, the log destination — in one sequence that `check`,
//! `serve --check-only`, `serve` and (without the log and the keytab) reloads share, so
//! that what `check` accepts starts, and each failure is reported as the file's own errors
//! are: file:line:column: field.

use std::path::Path;
use std::sync::Arc;

use socksgate_auth::Authenticator;
use socksgate_config::{Config, ConfigError, LogOutput};

use crate::authentication;

/// What starting keeps of it.
pub(crate) struct Loaded {
    /// The authentication back end, when one is configured.
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
}

/// When the files are read.
pub(crate) enum Stage<F> {
    /// `check`, or `serve` about to start: `start_logging` runs once the log destination
    /// is known to be usable and before anything else is read (so that `serve` logs what it
    /// loads; `check` passes a no-op).
    Start { start_logging: F },
    /// A reload in the running server: the log stays as it was opened and the keytab as it
    /// was chosen (both take effect at the next start; the process may have given up root,
    /// and set environment variables under running threads is no option).
    Reload,
}

/// Reads what `config` (from `file`) names.
pub(crate) fn load<F: FnOnce() -> std::io::Result<()>>(
    config: &Config,
    file: &Path,
    stage: Stage<F>,
) -> Result<Loaded, ConfigError> {
    if let Stage::Start { start_logging } = stage {
        log_destination(config, file)?;
        start_logging().map_err(|error| {
            ConfigError::about_field(file, "log.output", format!("cannot open the log: {error}"))
        })?;
        use_keytab(config);
    }
    authentication::check_libraries(&config.auth).map_err(|error| {
        ConfigError::about_field(file, "auth.pam_service", format!("{error:#}"))
    })?;
    let authenticator = authentication::from_config(&config.auth)
        .map_err(|failure| ConfigError::about_field(file, failure.field, failure.message))?;
    socksgate_server::check_tls(config).map_err(|error| about_named_file(config, file, error))?;
    // An account that does not exist is the file's mistake; a lookup that failed (the
    // directory service down at boot) is not, and is met again when the server drops root.
    if let Err(problem) = crate::service::account(&config.process) {
        if !problem.lookup_failed {
            return Err(ConfigError::about_field(
                file,
                problem.field,
                problem.message,
            ));
        }
    }
    if let Some(fleet) = &config.fleet {
        socksgate_fleet::RedisFleet::check_url(fleet)
            .map_err(|error| ConfigError::about_field(file, "fleet.redis", error))?;
    }
    Ok(Loaded { authenticator })
}

/// The GSS-API library finds the service's keys through the environment: point it at the
/// configured keytab. Called while the process has one thread; a changed keytab path takes
/// effect at the next start.
fn use_keytab(config: &Config) {
    if let Some(keytab) = &config.gssapi.keytab {
        std::env::set_var("KRB5_KTNAME", format!("FILE:{}", keytab.display()));
    }
}

/// A log file must be one the server can append to: an existing, writable file, or a new
/// one in an existing directory.
fn log_destination(config: &Config, file: &Path) -> Result<(), ConfigError> {
    let LogOutput::File(path) = &config.log.output else {
        return Ok(());
    };
    let problem = if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .err()
            .map(|error| format!("cannot write the log file {}: {error}", path.display()))
    } else {
        let directory = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !directory.is_dir() {
            Some(format!(
                "cannot create the log file {}: the directory {} does not exist",
                path.display(),
                directory.display()
            ))
        } else {
            // Creating it there is allowed (asked of the kernel, nothing created).
            rustix::fs::access(directory, rustix::fs::Access::WRITE_OK)
                .err()
                .map(|error| {
                    format!(
                        "cannot create the log file {} in {}: {error}",
                        path.display(),
                        directory.display()
                    )
                })
        }
    };
    match problem {
        Some(message) => Err(ConfigError::about_field(file, "log.output", message)),
        None => Ok(()),
    }
}

/// An error about one of the files the configuration names: placed at the field that
/// names it (the first whose path the message quotes).
fn about_named_file(config: &Config, file: &Path, error: impl std::fmt::Display) -> ConfigError {
    let message = error.to_string();
    // The fields naming the file the message names (its path as the message's first
    // word after the listener or group, exactly); several when one file serves two (a PEM
    // with the certificate and the key): the one whose kind the message speaks of.
    let named: Vec<(String, std::path::PathBuf)> = config
        .named_files()
        .into_iter()
        .filter(|(_, path)| {
            let shown = path.display().to_string();
            message
                .split(": ")
                .any(|part| part == shown || part.ends_with(&format!(" {shown}")))
        })
        .collect();
    let field = named
        .iter()
        .find(|(field, _)| {
            let kind = field.rsplit('.').next().unwrap_or("");
            named.len() == 1 || message.contains(if kind == "key" { "key" } else { "certificate" })
        })
        .or(named.first())
        .map(|(field, _)| field.clone());
    match field {
        Some(field) => ConfigError::about_field(file, &field, message),
        None => ConfigError {
            file: file.to_path_buf(),
            position: None,
            field: None,
            message,
        },
    }
}
