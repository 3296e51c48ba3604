//! RFC 1961 §5: after the protection-level negotiation every byte travels in
//! `ver 0x01, mtyp 0x03, len, token` messages whose token is the wrapped data.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};

use socksgate_proto::gssapi::{Message, MessageType};
use socksgate_proto::Wire;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Context, Delivery, Level, Opened};

/// Plaintext per message: small enough that the wrapped token stays under 64 KiB.
const CHUNK: usize = 16 * 1024;

/// A stream whose bytes are wrapped per RFC 1961 §5 over `inner`.
pub struct GssStream<S> {
    inner: S,
    layer: GssLayer,
}

impl<S> GssStream<S> {
    /// Encapsulates at `level` (integrity or confidentiality) over `inner`. `already_read`
    /// holds bytes of `inner` the caller read past the negotiation (pipelined messages).
    pub fn new(inner: S, context: Box<dyn Context>, level: Level, already_read: Vec<u8>) -> Self {
        Self {
            inner,
            layer: GssLayer::new(context, level, already_read),
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GssStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.layer.poll_read(&mut this.inner, cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GssStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.layer.poll_write(&mut this.inner, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.layer.poll_flush(&mut this.inner, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.layer.poll_shutdown(&mut this.inner, cx)
    }
}

/// The state of RFC 1961 §5 encapsulation, applied to a stream handed in at each call: a
/// connection can gain it in place once the negotiation is over.
pub struct GssLayer {
    context: Box<dyn Context>,
    encrypt: bool,
    /// Raw bytes read from `inner`, not yet a whole message.
    raw: Vec<u8>,
    /// Unwrapped bytes not yet read by the caller: `plain[plain_start..]`.
    plain: Vec<u8>,
    plain_start: usize,
    /// A framed message not yet written to `inner`: `pending[pending_start..]`.
    pending: Vec<u8>,
    pending_start: usize,
}

impl std::fmt::Debug for GssLayer {
    // The context and buffers are key material and traffic: show the protection only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GssLayer")
            .field("encrypt", &self.encrypt)
            .finish_non_exhaustive()
    }
}

impl GssLayer {
    /// Encapsulation at `level` (integrity or confidentiality); `already_read` holds bytes
    /// read past the negotiation (pipelined messages).
    pub fn new(context: Box<dyn Context>, level: Level, already_read: Vec<u8>) -> Self {
        Self {
            context,
            encrypt: level == Level::Confidentiality,
            raw: already_read,
            plain: Vec::new(),
            plain_start: 0,
            pending: Vec::new(),
            pending_start: 0,
        }
    }

    /// RFC 1961 §5 for UDP: a whole SOCKS UDP datagram wrapped as one message.
    pub fn seal_datagram(&mut self, datagram: &[u8]) -> Result<Vec<u8>, crate::GssError> {
        let token = self.context.wrap(self.encrypt, datagram)?;
        let message = Message::new(MessageType::ENCAPSULATED, token)
            .ok_or_else(|| crate::GssError("a sealed datagram over 64 KiB".to_owned()))?;
        let mut out = Vec::new();
        message.encode(&mut out);
        Ok(out)
    }

    /// The SOCKS UDP datagram inside one RFC 1961 §5 message.
    pub fn open_datagram(&mut self, datagram: &[u8]) -> Result<Vec<u8>, crate::GssError> {
        let message = Message::decode_exact(datagram)
            .map_err(|error| crate::GssError(format!("not an RFC 1961 message: {error}")))?;
        if message.kind != MessageType::ENCAPSULATED {
            return Err(crate::GssError(format!(
                "unexpected {} message",
                message.kind
            )));
        }
        let opened = self
            .context
            .unwrap(&message.token, Delivery::Datagram)
            .map_err(|error| crate::GssError(error.to_string()))?;
        self.plaintext(opened).map_err(crate::GssError)
    }

    /// The data of an opened token, which must have been encrypted at the confidentiality
    /// level: a peer (or anyone on the way) cannot downgrade a message to integrity only.
    fn plaintext(&self, opened: Opened) -> Result<Vec<u8>, String> {
        if self.encrypt && !opened.encrypted {
            return Err("an unencrypted message at the confidentiality level".to_owned());
        }
        Ok(opened.data)
    }

    /// Unwraps the first whole message of `raw`, if there is one.
    fn decode_message(&mut self) -> io::Result<bool> {
        let (message, used) = match Message::decode(&self.raw) {
            Ok(decoded) => decoded,
            Err(socksgate_proto::DecodeError::Incomplete { .. }) => return Ok(false),
            Err(error) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    error.to_string(),
                ))
            }
        };
        self.raw.drain(..used);
        match message.kind {
            MessageType::ENCAPSULATED => {
                let opened = self
                    .context
                    .unwrap(&message.token, Delivery::InOrder)
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
                let data = self
                    .plaintext(opened)
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
                self.plain = data;
                self.plain_start = 0;
                Ok(true)
            }
            MessageType::ABORT => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer aborted the GSS-API session",
            )),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected GSS-API message: {other}"),
            )),
        }
    }
}

impl GssLayer {
    /// Writes out the framed message in progress.
    fn poll_pending<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut TaskContext<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending_start < self.pending.len() {
            let written =
                ready!(Pin::new(&mut *inner).poll_write(cx, &self.pending[self.pending_start..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_start += written;
        }
        self.pending.clear();
        self.pending_start = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads unwrapped bytes, reading and unwrapping messages from `inner` as needed.
    pub fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.plain_start < self.plain.len() {
                let available = &self.plain[self.plain_start..];
                let take = available.len().min(buf.remaining());
                buf.put_slice(&available[..take]);
                self.plain_start += take;
                return Poll::Ready(Ok(()));
            }
            if self.decode_message()? {
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut *inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                if self.raw.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.raw.extend_from_slice(read.filled());
        }
    }

    /// Wraps (up to a chunk of) `buf` into one message for `inner`.
    pub fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(inner, cx))?;
        let take = buf.len().min(CHUNK);
        let token = self
            .context
            .wrap(self.encrypt, &buf[..take])
            .map_err(io::Error::other)?;
        let message = Message::new(MessageType::ENCAPSULATED, token)
            .ok_or_else(|| io::Error::other("a wrapped message over 64 KiB"))?;
        message.encode(&mut self.pending);
        // The message is ours now: send what the socket takes, the rest on the next call.
        if let Poll::Ready(Err(error)) = self.poll_pending(inner, cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(take))
    }

    /// Writes out what is pending, then flushes `inner`.
    pub fn poll_flush<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut TaskContext<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(inner, cx))?;
        Pin::new(inner).poll_flush(cx)
    }

    /// Writes out what is pending, then shuts `inner` down for writing.
    pub fn poll_shutdown<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut TaskContext<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(inner, cx))?;
        Pin::new(inner).poll_shutdown(cx)
    }
}
