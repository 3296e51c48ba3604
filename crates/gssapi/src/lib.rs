//! GSS-API (Kerberos) for socksgate, over the system's GSS-API library (MIT Kerberos):
//! RFC 1961 context establishment (§3), the protection-level sub-negotiation (§4), and the
//! per-message encapsulation of everything that follows (§5) as an async stream.
//!
//! The acceptor's keytab is the GSS-API library's: `KRB5_KTNAME` (the binary sets it from the
//! configuration), else the system's default.

use std::fmt;

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext, ServerCtx};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name;
use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};

mod level;
mod stream;

pub use level::{choose_level, Level};
pub use stream::{GssLayer, GssStream};

/// A GSS-API failure, with the library's major and minor status in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssError(pub String);

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GssError {}

impl From<libgssapi::error::Error> for GssError {
    fn from(error: libgssapi::error::Error) -> Self {
        Self(error.to_string())
    }
}

fn krb5_only() -> Result<OidSet, GssError> {
    let mut mechanisms = OidSet::new()?;
    mechanisms.add(&GSS_MECH_KRB5)?;
    Ok(mechanisms)
}

/// The server's credentials for one service name (`rcmd`, as Dante and curl expect, by
/// default): the keys of `service/HOST@REALM` from the keytab.
pub struct Acceptor {
    credentials: Cred,
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
        let name = match service {
            Some(service) => Some(Name::new(
                service.as_bytes(),
                Some(&GSS_NT_HOSTBASED_SERVICE),
            )?),
            None => None,
        };
        let credentials =
            Cred::acquire(name.as_ref(), None, CredUsage::Accept, Some(&krb5_only()?))
                .map_err(|error| GssError(format!("acceptor credentials: {error}")))?;
        Ok(Self { credentials })
    }

    /// A context for one client.
    pub fn context(&self) -> ServerContext {
        ServerContext {
            context: ServerCtx::new(Some(self.credentials.clone())),
        }
    }
}

/// A security context of either side, for wrapping and unwrapping.
pub trait Context: Send + Sync {
    /// Wraps `data`; encrypted when `encrypt`, integrity-protected in any case.
    fn wrap(&mut self, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, GssError>;
    /// Checks (and decrypts) a wrapped token.
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError>;
}

/// The server side of one client's context.
pub struct ServerContext {
    context: ServerCtx,
}

impl ServerContext {
    /// Takes the client's token; returns the token to send back, if any.
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, GssError> {
        Ok(self.context.step(token)?.map(|reply| reply.to_vec()))
    }

    /// Whether the context is established.
    pub fn is_complete(&self) -> bool {
        self.context.is_complete()
    }

    /// The client's principal (`alice@EXAMPLE.ORG`).
    pub fn client_name(&mut self) -> Result<String, GssError> {
        let name = self.context.source_name()?;
        Ok(name.to_string())
    }
}

impl Context for ServerContext {
    fn wrap(&mut self, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(self.context.wrap(encrypt, data)?.to_vec())
    }

    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(self.context.unwrap(token)?.to_vec())
    }
}

/// The client side of a context with a proxy's service.
pub struct ClientContext {
    context: ClientCtx,
}

impl ClientContext {
    /// A context with `service@host` (hostbased, e.g. `rcmd@gateway.example`), using the
    /// default credentials (the ticket cache).
    pub fn new(service: &str, host: &str) -> Result<Self, GssError> {
        let target = Name::new(
            format!("{service}@{host}").as_bytes(),
            Some(&GSS_NT_HOSTBASED_SERVICE),
        )?;
        let flags =
            CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_INTEG_FLAG | CtxFlags::GSS_C_CONF_FLAG;
        Ok(Self {
            context: ClientCtx::new(None, target, flags, Some(&GSS_MECH_KRB5)),
        })
    }

    /// Takes the server's token (none at first); returns the token to send, if any.
    pub fn step(&mut self, token: Option<&[u8]>) -> Result<Option<Vec<u8>>, GssError> {
        Ok(self.context.step(token, None)?.map(|out| out.to_vec()))
    }

    /// Whether the context is established.
    pub fn is_complete(&self) -> bool {
        self.context.is_complete()
    }
}

impl Context for ClientContext {
    fn wrap(&mut self, encrypt: bool, data: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(self.context.wrap(encrypt, data)?.to_vec())
    }

    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(self.context.unwrap(token)?.to_vec())
    }
}
