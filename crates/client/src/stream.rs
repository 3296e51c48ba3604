//! The connection a chain hands back: TCP to the first hop, TLS (to a `socks5s://` hop)
//! around the connection beneath it, and RFC 1961 encapsulation after a GSS-API handshake
//! that agreed on protection.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use socksgate_tls::tokio_rustls::client::TlsStream;
use socksgate_tls::MaybeTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::Layered;

/// A connection through a chain. Bare TCP when no hop wraps it, so callers can use the
/// socket directly (the server splices it).
pub struct ProxyStream(Layered<Transport>);

/// TCP to the first hop carrying every hop's tunnel, or TLS to a hop over the connection
/// that reaches it.
type Transport = MaybeTls<TcpStream, TlsStream<ProxyStream>>;

impl fmt::Debug for ProxyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match (self.0.get_ref(), self.0.is_encapsulated()) {
            (_, true) => "GSS-API",
            (MaybeTls::Plain(_), false) => "TCP",
            (MaybeTls::Tls(_), false) => "TLS",
        };
        write!(f, "ProxyStream({kind})")
    }
}

impl ProxyStream {
    pub(crate) fn tls(stream: TlsStream<ProxyStream>) -> Self {
        Self(Layered::new(MaybeTls::Tls(Box::new(stream))))
    }

    /// The TCP connection underneath every layer.
    pub fn tcp(&self) -> &TcpStream {
        match self.0.get_ref() {
            MaybeTls::Plain(stream) => stream,
            MaybeTls::Tls(stream) => stream.get_ref().0.tcp(),
        }
    }

    /// The TCP connection itself, when nothing wraps it.
    pub fn into_tcp(self) -> Result<TcpStream, Self> {
        match self.0.into_inner() {
            Ok(MaybeTls::Plain(stream)) => Ok(stream),
            Ok(transport) => Err(Self(Layered::new(transport))),
            Err(layered) => Err(Self(layered)),
        }
    }

    /// Whether nothing wraps the TCP connection.
    pub fn is_bare(&self) -> bool {
        !self.0.is_encapsulated() && matches!(self.0.get_ref(), MaybeTls::Plain(_))
    }

    /// The RFC 1961 layer over this connection.
    #[cfg(feature = "gssapi")]
    pub(crate) fn layered(&mut self) -> &mut Layered<Transport> {
        &mut self.0
    }
}

impl From<TcpStream> for ProxyStream {
    fn from(stream: TcpStream) -> Self {
        Self(Layered::new(MaybeTls::Plain(stream)))
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
