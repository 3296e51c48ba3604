//! The system's C libraries that socksgate loads when a configuration first needs them
//! rather than at link time: `libgssapi_krb5.so.2` (GSS-API, MIT Kerberos) and `libpam.so.0`
//! (Linux-PAM). A build therefore needs no development package and no libclang, and one
//! binary runs on machines with or without them; a configuration that needs a missing
//! library is refused with the library's name and the package that provides it
//! ([`LoadError`]). Chromium and Firefox load GSS-API the same way.
//!
//! Each C call is wrapped in a safe function whose types own what the library allocated
//! (names, credentials, contexts, buffers, PAM handles) and release it when dropped. With
//! the LD_PRELOAD shim, this is the only crate of socksgate with `unsafe` code.

#[macro_use]
mod library;
pub mod gssapi;
pub mod pam;

pub use library::LoadError;
