//! The authentication back end the configuration names, ready for the server.

use std::sync::Arc;

use anyhow::Context;
use socksgate_auth::{Authenticator, PasswordFile};
use socksgate_config::{Auth, AuthBackend};

/// `None` when no back end is configured.
pub(crate) fn from_config(auth: &Auth) -> anyhow::Result<Option<Arc<dyn Authenticator>>> {
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
                .context("loading the password file")?;
            tracing::info!(path = %path.display(), users = file.len(), "password file loaded");
            Arc::new(file)
        }
        AuthBackend::Pam { service } => pam(service)?,
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
    socksgate_auth::Pam::library_available().context("auth.pam_service")
}

#[cfg(not(feature = "pam"))]
fn pam_library() -> anyhow::Result<()> {
    anyhow::bail!("auth.pam_service: this socksgate was built without PAM (cargo feature \"pam\")")
}

#[cfg(feature = "pam")]
fn pam(service: &str) -> anyhow::Result<Arc<dyn Authenticator>> {
    let pam = socksgate_auth::Pam::new(service).context("auth.pam_service")?;
    tracing::info!(service, "authenticating with PAM");
    Ok(Arc::new(pam))
}

#[cfg(not(feature = "pam"))]
fn pam(_service: &str) -> anyhow::Result<Arc<dyn Authenticator>> {
    anyhow::bail!("this socksgate was built without PAM (cargo feature \"pam\")")
}
