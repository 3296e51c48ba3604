//! The client's connection: plain TCP or TLS underneath, and, after a GSS-API handshake
//! that negotiated protection, RFC 1961 encapsulation on top.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use socksgate_tls::tokio_rustls::server::TlsStream;
use socksgate_tls::MaybeTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What a session reads the handshake from and relays with. A plain connection keeps the
/// zero-copy relay; anything wrapped is relayed through buffers.
pub(crate) struct ClientStream {
    transport: Transport,
    /// RFC 1961 §5 encapsulation, once negotiated (boxed: most sessions have none).
    #[cfg(feature = "gssapi")]
    gss: Option<Box<socksgate_gssapi::GssLayer>>,
}

/// The connection as accepted: TCP, or TLS on a TLS listener.
pub(crate) type Transport = MaybeTls<TcpStream, TlsStream<TcpStream>>;

impl ClientStream {
    pub(crate) fn plain(stream: TcpStream) -> Self {
        Self::from(MaybeTls::Plain(stream))
    }

    /// The TCP connection underneath, for addresses and socket options.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match &self.transport {
            MaybeTls::Plain(stream) => stream,
            MaybeTls::Tls(stream) => stream.get_ref().0,
        }
    }

    /// The TCP connection itself, when nothing wraps it (the relay can splice it).
    pub(crate) fn bare_tcp(&self) -> Option<&TcpStream> {
        #[cfg(feature = "gssapi")]
        if self.gss.is_some() {
            return None;
        }
        match &self.transport {
            MaybeTls::Plain(stream) => Some(stream),
            MaybeTls::Tls(_) => None,
        }
    }

    /// Takes the accepted transport back (to wrap it in TLS), if nothing was layered on it.
    pub(crate) fn into_transport(self) -> Transport {
        self.transport
    }

    /// From now on, bytes are encapsulated per RFC 1961 §5.
    #[cfg(feature = "gssapi")]
    pub(crate) fn encapsulate(&mut self, layer: socksgate_gssapi::GssLayer) {
        self.gss = Some(Box::new(layer));
    }

    /// Takes the RFC 1961 layer (for a UDP association's datagrams; nothing more is
    /// expected on the control connection but its end).
    #[cfg(feature = "gssapi")]
    pub(crate) fn take_encapsulation(&mut self) -> Option<Box<socksgate_gssapi::GssLayer>> {
        self.gss.take()
    }
}

impl From<Transport> for ClientStream {
    fn from(transport: Transport) -> Self {
        Self {
            transport,
            #[cfg(feature = "gssapi")]
            gss: None,
        }
    }
}

impl AsyncRead for ClientStream {
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

impl AsyncWrite for ClientStream {
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
