//! The client's connection: plain TCP or TLS underneath, and, after a GSS-API handshake
//! that negotiated protection, RFC 1961 encapsulation on top (the client library's
//! [`Layered`], which its chains use too).

use socksgate_client::Layered;
use socksgate_tls::tokio_rustls::server::TlsStream;
use socksgate_tls::MaybeTls;
use tokio::net::TcpStream;

/// What a session reads the handshake from and relays with. A plain connection keeps the
/// zero-copy relay; anything wrapped is relayed through buffers.
pub(crate) type ClientStream = Layered<Transport>;

/// The connection as accepted: TCP, or TLS on a TLS listener.
pub(crate) type Transport = MaybeTls<TcpStream, TlsStream<TcpStream>>;

/// The TCP connection underneath a client's stream.
pub(crate) trait ClientTcp {
    /// The TCP connection underneath, for addresses and socket options.
    fn tcp(&self) -> &TcpStream;

    /// The TCP connection itself, when nothing wraps it (the relay can splice it).
    fn bare_tcp(&self) -> Option<&TcpStream>;
}

impl ClientTcp for ClientStream {
    fn tcp(&self) -> &TcpStream {
        match self.get_ref() {
            MaybeTls::Plain(stream) => stream,
            MaybeTls::Tls(stream) => stream.get_ref().0,
        }
    }

    fn bare_tcp(&self) -> Option<&TcpStream> {
        match self.get_ref() {
            MaybeTls::Plain(stream) if !self.is_encapsulated() => Some(stream),
            _ => None,
        }
    }
}
