//! GSS-API (Kerberos) for socksgate, over the system's GSS-API library (MIT Kerberos,
//! loaded at run time by `socksgate-sys`): RFC 1961 context establishment (§3), the
//! protection-level sub-negotiation (§4), and the per-message encapsulation of everything
//! that follows (§5) as an async stream.
//!
//! The acceptor's keytab is the GSS-API library's: `KRB5_KTNAME` (the binary sets it from the
//! configuration), else the system's default.

use std::fmt;
use std::sync::Arc;

use socksgate_sys::gssapi::{
    Credential, GssapiError, Name, SecurityContext, CONFIDENTIALITY, INTEGRITY, MUTUAL,
    REPLAY_DETECTION, SEQUENCE_DETECTION,
};

pub use socksgate_sys::gssapi::{Delivery, Opened};

mod level;
mod stream;

pub use level::{choose_level, Level};
pub use stream::{GssLayer, GssStream};

/// A GSS-API failure, with the library's major and minor status in words (or the library
/// that is missing, and how to install it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssError(pub String);

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GssError {}

impl From<GssapiError> for GssError {
    fn from(error: GssapiError) -> Self {
        Self(error.to_string())
    }
}

/// Whether the system's GSS-API library can be loaded; the error names it and its package.
pub fn available() -> Result<(), GssError> {
    socksgate_sys::gssapi::load().map_err(|error| GssError(error.to_string()))
}

/// Loads `file` instead of the usual `libgssapi_krb5.so.2`; false once the library is in use.
pub fn use_library(file: &std::ffi::OsStr) -> bool {
    socksgate_sys::gssapi::use_library(file)
}

/// The server's credentials for one service name (`rcmd`, as Dante and curl expect, by
/// default): the keys of `service/HOST@REALM` from the keytab.
pub struct Acceptor {
    credentials: Arc<Credential>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Acceptor")
    }
}

impl Acceptor {
    /// Acquires acceptor credentials for `service` (any host name in the keytab), or for
    /// every service in the keytab when `service` is `None`.
    pub fn new(service: Option<&str>) -> Result<Self, GssError> {
        let name = service.map(Name::hostbased_service).transpose()?;
        let credentials = Credential::acceptor(name.as_ref()).map_err(|error| match error {
            GssapiError::Load(_) => GssError(error.to_string()),
            GssapiError::Call { .. } => GssError(format!("acceptor credentials: {error}")),
        })?;
        Ok(Self {
            credentials: Arc::new(credentials),
        })
    }

    /// A context for one client.
    pub fn context(&self) -> Result<ServerContext, GssError> {
        Ok(ServerContext {
            context: SecurityContext::new()?,
            credentials: self.credentials.clone(),
        })
    }
}

/// A security context of either side, for wrapping and unwrapping.
pub trait Context: Send + Sync {
    /// Wraps `data`; encrypted when `encrypt`, integrity-protected in any case.
    fn wrap(&mut self, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, GssError>;
    /// Checks (and decrypts) a wrapped token that arrived as `delivery` says.
    fn unwrap(&mut self, token: &[u8], delivery: Delivery) -> Result<Opened, GssError>;
}

/// The server side of one client's context.
pub struct ServerContext {
    context: SecurityContext,
    credentials: Arc<Credential>,
}

impl ServerContext {
    /// Takes the client's token; returns the token to send back, if any.
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, GssError> {
        Ok(self.context.accept(&self.credentials, token)?)
    }

    /// Whether the context is established.
    pub fn is_complete(&self) -> bool {
        self.context.is_established()
    }

    /// The client's principal (`alice@EXAMPLE.ORG`).
    pub fn client_name(&mut self) -> Result<String, GssError> {
        match self.context.peer() {
            Some(name) => Ok(name.display()?),
            None => Err(GssError("the context names no client".to_owned())),
        }
    }
}

impl Context for ServerContext {
    fn wrap(&mut self, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(self.context.wrap(encrypt, data)?)
    }

    fn unwrap(&mut self, token: &[u8], delivery: Delivery) -> Result<Opened, GssError> {
        Ok(self.context.unwrap(token, delivery)?)
    }
}

/// The client side of a context with a proxy's service.
pub struct ClientContext {
    context: SecurityContext,
    target: Name,
}

impl ClientContext {
    /// A context with `service@host` (hostbased, e.g. `rcmd@gateway.example`), using the
    /// default credentials (the ticket cache).
    pub fn new(service: &str, host: &str) -> Result<Self, GssError> {
        Ok(Self {
            target: Name::hostbased_service(&format!("{service}@{host}"))?,
            context: SecurityContext::new()?,
        })
    }

    /// Takes the server's token (none at first); returns the token to send, if any.
    pub fn step(&mut self, token: Option<&[u8]>) -> Result<Option<Vec<u8>>, GssError> {
        // Replay and sequence detection too: a message replayed, reordered or removed on
        // the way is refused, not delivered.
        let flags = MUTUAL | INTEGRITY | CONFIDENTIALITY | REPLAY_DETECTION | SEQUENCE_DETECTION;
        Ok(self.context.initiate(&self.target, flags, token)?)
    }

    /// Whether the context is established.
    pub fn is_complete(&self) -> bool {
        self.context.is_established()
    }
}

impl Context for ClientContext {
    fn wrap(&mut self, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(self.context.wrap(encrypt, data)?)
    }

    fn unwrap(&mut self, token: &[u8], delivery: Delivery) -> Result<Opened, GssError> {
        Ok(self.context.unwrap(token, delivery)?)
    }
}
