//! Why a session ended before or instead of relaying: each cause, the word the access log
//! and the metrics give it, and its detail (the reply a refusal gets is
//! `reply::for_refusal`'s).

use std::io;

use socksgate_auth::Refusal;
use socksgate_proto::server::ServerError;

use crate::outbound::ConnectError;

/// Why a session ended before or instead of relaying.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The client broke the protocol or offered nothing acceptable.
    Handshake(ServerError),
    /// The client did not complete the handshake in time.
    HandshakeTimeout,
    /// The client sent too much without completing a message.
    HandshakeTooLong,
    /// The client closed or reset the connection before the relay began.
    ClientGone(io::Error),
    /// The TLS handshake failed (a certificate refused, not TLS at all, …).
    Tls(io::Error),
    /// The other side failed while taking the bytes the client sent with its request.
    Reset(io::Error),
    /// The request names a command this server does not serve.
    UnsupportedCommand,
    /// The credentials were refused.
    Authentication(Refusal),
    /// The GSS-API context or protection level was refused (why).
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    Gssapi(String),
    /// The target could not be reached.
    Connect(ConnectError),
    /// No listening (BIND) or relay (UDP) socket could be opened.
    Setup(io::Error),
    /// No peer connected to a BIND socket in time.
    BindTimeout,
    /// The client rules refused the connection.
    ClientDenied(String),
    /// The request rules refused the request (which rule, or why).
    Denied(String),
    /// The upstream group could not carry the request.
    Upstream(String),
    /// A load balancer's PROXY protocol header was missing or malformed (why).
    ProxyHeader(String),
    /// A source not trusted as a load balancer sent a PROXY protocol header.
    UntrustedProxyHeader,
    /// The source opened connections faster than `limits.connection_rate_per_source`.
    RateLimited,
    /// An HTTP request broke the protocol (answered with its status, then closed).
    BadRequest(socksgate_http::HttpError),
    /// An HTTP request came without the credentials the listener or the rules need
    /// (answered 407): not a failed login, the client is asked for one.
    CredentialsNeeded,
    /// The target's HTTP response was not usable (the client got 502).
    BadResponse(String),
    /// The target did not answer an HTTP request in time (the client got 504).
    ResponseTimeout,
    /// The fleet stopped the session: its user is over the byte quota.
    QuotaExceeded,
    /// The listener does not serve the protocol the client spoke (which).
    ProtocolNotServed(&'static str),
}

impl Failure {
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Handshake(_) | Self::HandshakeTooLong => "bad-handshake",
            Self::HandshakeTimeout => "handshake-timeout",
            Self::ClientGone(_) => "client-gone",
            Self::Tls(_) => "tls-failed",
            Self::Reset(_) => "reset",
            Self::UnsupportedCommand => "unsupported-command",
            Self::Authentication(_) | Self::Gssapi(_) => "auth-failed",
            Self::Connect(ConnectError::TimedOut) => "connect-timeout",
            Self::Connect(ConnectError::Resolve(_)) => "unresolved",
            Self::Connect(_) => "connect-failed",
            Self::Setup(_) => "setup-failed",
            Self::BindTimeout => "bind-timeout",
            Self::ClientDenied(_) => "client-denied",
            Self::Denied(_) => "denied",
            Self::Upstream(_) => "upstream-failed",
            Self::ProxyHeader(_) => "bad-proxy-header",
            Self::UntrustedProxyHeader => "untrusted-proxy-header",
            Self::RateLimited => "rate-limited",
            Self::BadRequest(_) => "bad-request",
            Self::CredentialsNeeded => "auth-required",
            Self::BadResponse(_) => "bad-response",
            Self::ResponseTimeout => "response-timeout",
            Self::ProtocolNotServed(_) => "protocol-not-served",
            Self::QuotaExceeded => "quota-exceeded",
        }
    }

    pub(crate) fn detail(&self) -> Option<String> {
        match self {
            Self::Handshake(error) => Some(error.to_string()),
            Self::ClientGone(error)
            | Self::Tls(error)
            | Self::Reset(error)
            | Self::Setup(error) => Some(error.to_string()),
            Self::Connect(error) => Some(error.to_string()),
            Self::Authentication(refusal) => Some(refusal.to_string()),
            Self::ClientDenied(why)
            | Self::Denied(why)
            | Self::Upstream(why)
            | Self::ProxyHeader(why)
            | Self::Gssapi(why) => Some(why.clone()),
            Self::RateLimited => Some("limits.connection_rate_per_source".to_owned()),
            Self::BadRequest(error) => Some(error.to_string()),
            Self::BadResponse(why) => Some(why.clone()),
            Self::ProtocolNotServed(protocol) => Some(format!("{protocol} is not served here")),
            Self::QuotaExceeded => Some("fleet.quota_per_user".to_owned()),
            _ => None,
        }
    }
}
