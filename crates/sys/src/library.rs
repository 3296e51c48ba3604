//! Loading a system library once, on first use, with the file name an operator may override.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::sync::OnceLock;

/// A system library that cannot be loaded, or lacks a function socksgate calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// What needs the library ("GSS-API").
    pub purpose: &'static str,
    /// The file looked for (`libgssapi_krb5.so.2`).
    pub library: String,
    /// The Debian package that provides the usual file.
    pub package: &'static str,
    /// What the dynamic loader said.
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs the system library {}, which cannot be loaded ({}); install it \
             (Debian and Ubuntu: apt-get install {})",
            self.purpose, self.library, self.reason, self.package
        )
    }
}

impl std::error::Error for LoadError {}

/// One system library: which file, and its functions once loaded.
pub(crate) struct Loader<T: 'static> {
    purpose: &'static str,
    usual_file: &'static str,
    package: &'static str,
    chosen_file: OnceLock<OsString>,
    loaded: OnceLock<Result<T, LoadError>>,
}

impl<T: 'static> Loader<T> {
    pub(crate) const fn new(
        purpose: &'static str,
        usual_file: &'static str,
        package: &'static str,
    ) -> Self {
        Self {
            purpose,
            usual_file,
            package,
            chosen_file: OnceLock::new(),
            loaded: OnceLock::new(),
        }
    }

    /// Loads `file` instead of the usual one. Only before the first load: returns false
    /// (and changes nothing) once a file was chosen or loaded.
    pub(crate) fn use_file(&self, file: &OsStr) -> bool {
        self.loaded.get().is_none() && self.chosen_file.set(file.to_owned()).is_ok()
    }

    fn file(&self) -> &OsStr {
        self.chosen_file
            .get()
            .map_or(OsStr::new(self.usual_file), OsString::as_os_str)
    }

    /// The library's functions, loading it on the first call. A failure is remembered for
    /// the life of the process: after installing the library, restart (a reload is not
    /// enough).
    pub(crate) fn get(
        &self,
        bind: fn(libloading::Library) -> Result<T, libloading::Error>,
    ) -> Result<&T, LoadError> {
        // Once the load is decided, no file can be chosen any more.
        let _ = self.chosen_file.set(self.usual_file.into());
        self.loaded
            .get_or_init(|| {
                let file = self.file();
                // SAFETY: loading runs the library's initialisers; these are the system's own
                // GSS-API and PAM libraries, which every login program loads too.
                let library = unsafe { libloading::Library::new(file) };
                library.and_then(bind).map_err(|error| LoadError {
                    purpose: self.purpose,
                    library: file.to_string_lossy().into_owned(),
                    package: self.package,
                    reason: error.to_string(),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Declares a library's function table and the binding that looks each function up.
/// Every signature must be the C declaration of the function in the library's header.
macro_rules! functions {
    ($(#[$meta:meta])* $table:ident { $($name:ident: fn($($arg:ty),* $(,)?) -> $ret:ty;)* }) => {
        $(#[$meta])*
        struct $table {
            // Never unloaded: the table lives in a static.
            _library: libloading::Library,
            $($name: unsafe extern "C" fn($($arg),*) -> $ret,)*
        }

        impl $table {
            fn bind(library: libloading::Library) -> Result<Self, libloading::Error> {
                $(
                    // SAFETY: the type is the function's C declaration (see the table), and
                    // the pointer is only used while the library stays loaded (forever).
                    let $name = unsafe {
                        *library.get::<unsafe extern "C" fn($($arg),*) -> $ret>(
                            concat!(stringify!($name), "\0").as_bytes(),
                        )?
                    };
                )*
                Ok(Self { _library: library, $($name,)* })
            }
        }
    };
}
