//! Which files of the system's GSS-API and PAM libraries are loaded (at run time, on first
//! use): the usual ones (`libgssapi_krb5.so.2`, `libpam.so.0`) unless the environment names
//! others, for a library installed outside the loader's path.

use anyhow::Context;

/// Names the GSS-API library file to load instead of `libgssapi_krb5.so.2`.
pub(crate) const GSSAPI_LIBRARY: &str = "SOCKSGATE_GSSAPI_LIBRARY";
/// Names the PAM library file to load instead of `libpam.so.0`.
pub(crate) const PAM_LIBRARY: &str = "SOCKSGATE_PAM_LIBRARY";

/// Applies the environment's choices (an empty variable is unset: `dlopen("")` would be the
/// program itself); before anything loads a library.
pub(crate) fn choose_from_environment() {
    let chosen = |variable| std::env::var_os(variable).filter(|file| !file.is_empty());
    #[cfg(feature = "gssapi")]
    if let Some(file) = chosen(GSSAPI_LIBRARY) {
        socksgate_gssapi::use_library(&file);
    }
    #[cfg(feature = "pam")]
    if let Some(file) = chosen(PAM_LIBRARY) {
        socksgate_auth::Pam::use_library(&file);
    }
}

/// Loads the libraries `config` needs (PAM for its back end, GSS-API for a listener or an
/// upstream group that uses it), so that a machine without one is told before anything
/// starts, with the package to install.
pub(crate) fn check(config: &socksgate_config::Config) -> anyhow::Result<()> {
    if let Some(socksgate_config::AuthBackend::Pam { .. }) = &config.auth.backend {
        #[cfg(feature = "pam")]
        socksgate_auth::Pam::library_available().context("auth.pam_service")?;
        #[cfg(not(feature = "pam"))]
        anyhow::bail!("auth.pam_service: this socksgate was built without PAM (cargo feature pam)");
    }
    let listeners = config
        .listeners
        .iter()
        .filter(|listener| listener.methods.contains(&socksgate_proto::Method::GSSAPI))
        .map(|listener| format!("listener {}", listener.address));
    let upstreams = config
        .upstreams
        .iter()
        .filter(|group| group.gssapi.is_some())
        .map(|group| format!("upstream {:?}", group.name));
    let Some(user) = listeners.chain(upstreams).next() else {
        return Ok(());
    };
    #[cfg(feature = "gssapi")]
    return socksgate_gssapi::available().map_err(|error| anyhow::anyhow!("{user}: {error}"));
    #[cfg(not(feature = "gssapi"))]
    anyhow::bail!("{user}: this build has no GSS-API support (cargo feature gssapi)")
}
