//! The connection a chain hands back: plain TCP, or TLS (to a `socks5s://` hop) around the
//! connection beneath it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use socksgate_tls::tokio_rustls::client::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection through a chain. Plain when no hop speaks TLS, so callers can use the TCP
/// socket directly (the server splices it); each TLS hop wraps what came before.
#[derive(Debug)]
pub enum ProxyStream {
    /// TCP to the first hop, carrying every hop's tunnel.
    Tcp(TcpStream),
    /// TLS to a hop, over the connection that reaches it.
    Tls(Box<TlsStream<ProxyStream>>),
}

impl ProxyStream {
    /// The TCP connection underneath every layer.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tcp(stream) => stream,
            Self::Tls(stream) => stream.get_ref().0.tcp(),
        }
    }

    /// The TCP connection itself, when nothing wraps it.
    pub fn into_tcp(self) -> Result<TcpStream, Self> {
        match self {
            Self::Tcp(stream) => Ok(stream),
            wrapped => Err(wrapped),
        }
    }
}

impl From<TcpStream> for ProxyStream {
    fn from(stream: TcpStream) -> Self {
        Self::Tcp(stream)
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
