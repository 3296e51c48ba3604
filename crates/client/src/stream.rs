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

/// A connection through a chain. Bare TCP when no hop wraps it, so callers can use the
/// socket directly (the server splices it).
pub struct ProxyStream {
    transport: Transport,
    /// RFC 1961 §5 encapsulation with the last hop, once negotiated.
    #[cfg(feature = "gssapi")]
    gss: Option<Box<socksgate_gssapi::GssLayer>>,
}

/// TCP to the first hop carrying every hop's tunnel, or TLS to a hop over the connection
/// that reaches it.
type Transport = MaybeTls<TcpStream, TlsStream<ProxyStream>>;

impl fmt::Debug for ProxyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match (&self.transport, self.is_encapsulated()) {
            (_, true) => "GSS-API",
            (MaybeTls::Plain(_), false) => "TCP",
            (MaybeTls::Tls(_), false) => "TLS",
        };
        write!(f, "ProxyStream({kind})")
    }
}

impl ProxyStream {
    pub(crate) fn tls(stream: TlsStream<ProxyStream>) -> Self {
        Self::from_transport(MaybeTls::Tls(Box::new(stream)))
    }

    fn from_transport(transport: Transport) -> Self {
        Self {
            transport,
            #[cfg(feature = "gssapi")]
            gss: None,
        }
    }

    fn is_encapsulated(&self) -> bool {
        #[cfg(feature = "gssapi")]
        if self.gss.is_some() {
            return true;
        }
        false
    }

    /// The TCP connection underneath every layer.
    pub fn tcp(&self) -> &TcpStream {
        match &self.transport {
            MaybeTls::Plain(stream) => stream,
            MaybeTls::Tls(stream) => stream.get_ref().0.tcp(),
        }
    }

    /// The TCP connection itself, when nothing wraps it.
    pub fn into_tcp(self) -> Result<TcpStream, Self> {
        if self.is_encapsulated() {
            return Err(self);
        }
        match self.transport {
            MaybeTls::Plain(stream) => Ok(stream),
            transport => Err(Self::from_transport(transport)),
        }
    }

    /// Whether nothing wraps the TCP connection.
    pub fn is_bare(&self) -> bool {
        !self.is_encapsulated() && matches!(self.transport, MaybeTls::Plain(_))
    }

    /// From now on, bytes are encapsulated per RFC 1961 §5.
    #[cfg(feature = "gssapi")]
    pub(crate) fn encapsulate(&mut self, layer: socksgate_gssapi::GssLayer) {
        self.gss = Some(Box::new(layer));
    }

    /// Takes the RFC 1961 layer, for a UDP association's datagrams (its control connection
    /// carries nothing more).
    #[cfg(feature = "gssapi")]
    pub(crate) fn take_encapsulation(&mut self) -> Option<Box<socksgate_gssapi::GssLayer>> {
        self.gss.take()
    }
}

impl From<TcpStream> for ProxyStream {
    fn from(stream: TcpStream) -> Self {
        Self::from_transport(MaybeTls::Plain(stream))
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_read(&mut this.transport, cx, buf);
        }
        Pin::new(&mut this.transport).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_write(&mut this.transport, cx, buf);
        }
        Pin::new(&mut this.transport).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_flush(&mut this.transport, cx);
        }
        Pin::new(&mut this.transport).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_shutdown(&mut this.transport, cx);
        }
        Pin::new(&mut this.transport).poll_shutdown(cx)
    }
}
