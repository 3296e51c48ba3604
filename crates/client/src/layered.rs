//! A connection with, once a GSS-API handshake agreed on protection, RFC 1961 §5
//! encapsulation on top. The client's chains and the server's sessions both use it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `S`, read and written through an RFC 1961 layer once one is set (in place, mid-handshake).
pub struct Layered<S> {
    inner: S,
    /// Boxed: most connections never have one.
    #[cfg(feature = "gssapi")]
    gss: Option<Box<socksgate_gssapi::GssLayer>>,
}

impl<S> Layered<S> {
    /// `inner` with no layer yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            #[cfg(feature = "gssapi")]
            gss: None,
        }
    }

    /// The connection underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether an RFC 1961 layer wraps the connection.
    pub fn is_encapsulated(&self) -> bool {
        #[cfg(feature = "gssapi")]
        if self.gss.is_some() {
            return true;
        }
        false
    }

    /// The connection underneath, when no layer wraps it.
    pub fn into_inner(self) -> Result<S, Self> {
        if self.is_encapsulated() {
            return Err(self);
        }
        Ok(self.inner)
    }

    /// From now on, bytes are encapsulated per RFC 1961 §5.
    #[cfg(feature = "gssapi")]
    pub fn encapsulate(&mut self, layer: socksgate_gssapi::GssLayer) {
        self.gss = Some(Box::new(layer));
    }

    /// Takes the layer, for a UDP association's datagrams (its control connection carries
    /// nothing more).
    #[cfg(feature = "gssapi")]
    pub fn take_encapsulation(&mut self) -> Option<Box<socksgate_gssapi::GssLayer>> {
        self.gss.take()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Layered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_read(&mut this.inner, cx, buf);
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Layered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_write(&mut this.inner, cx, buf);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_flush(&mut this.inner, cx);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(feature = "gssapi")]
        if let Some(gss) = &mut this.gss {
            return gss.poll_shutdown(&mut this.inner, cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
