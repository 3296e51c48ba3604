//! Which files of the system's GSS-API and PAM libraries are loaded (at run time, on first
//! use): the usual ones (`libgssapi_krb5.so.2`, `libpam.so.0`) unless the environment names
//! others, for a library installed outside the loader's path.

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
