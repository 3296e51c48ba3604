//! The authentication back end the configuration names, ready for the server.

use std::sync::Arc;

use anyhow::Context;
use socksgate_auth::{Authenticator, PasswordFile};
use socksgate_config::{Auth, AuthBackend};

/// Why a back end cannot be used: the configuration field at fault, and what is wrong.
pub(crate) struct Failure {
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

/// `None` when no back end is configured.
pub(crate) fn from_config(auth: &Auth) -> Result<Option<Arc<dyn Authenticator>>, Failure> {
    let Some(backend) = &auth.backend else {
        return Ok(None);
    };
    let authenticator: Arc<dyn Authenticator> = match backend {
        AuthBackend::PasswordFile {
            path,
            groups,
            danger_plaintext_passwords,
        } => {
            let file = PasswordFile::open(path, groups.as_deref(), *danger_plaintext_passwords)
                .map_err(|error| Failure {
                    field: if groups.as_deref() == Some(error.path.as_path()) {
                        "auth.group_file"
                    } else {
                        "auth.password_file"
                    },
                    message: error.to_string(),
                })?;
            tracing::info!(path = %path.display(), users = file.len(), "password file loaded");
            Arc::new(file)
        }
        AuthBackend::Pam { service } => pam(service).map_err(|error| Failure {
            field: "auth.pam_service",
            message: format!("{error:#}"),
        })?,
    };
    Ok(Some(authenticator))
}

/// Loads what the back end needs from the system (the PAM library) without opening anything
/// else, so that `check` names a missing library and its package as starting would.
pub(crate) fn check_libraries(auth: &Auth) -> anyhow::Result<()> {
    match auth.backend {
        Some(AuthBackend::Pam { .. }) => pam_library(),
        _ => Ok(()),
    }
}

#[cfg(feature = "pam")]
fn pam_library() -> anyhow::Result<()> {
    socksgate_auth::Pam::library_available().context("the PAM library")
}

#[cfg(not(feature = "pam"))]
fn pam_library() -> anyhow::Result<()> {
    anyhow::bail!("this socksgate was built without PAM (cargo feature \"pam\")")
}

#[cfg(feature = "pam")]
fn pam(service: &str) -> anyhow::Result<Arc<dyn Authenticator>> {
    let pam = socksgate_auth::Pam::new(service)?;
    tracing::info!(service, "authenticating with PAM");
    Ok(Arc::new(pam))
}

#[cfg(not(feature = "pam"))]
fn pam(_service: &str) -> anyhow::Result<Arc<dyn Authenticator>> {
    anyhow::bail!("this socksgate was built without PAM (cargo feature \"pam\")")
}
