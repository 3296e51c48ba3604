//! A blocking SOCKS client on `socksgate-proto`'s client machine, and raw byte exchanges.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::{Address, Command, Step};

/// A handshake that did not complete.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// The socket failed or closed.
    Io(io::Error),
    /// The server refused or broke the protocol.
    Socks(ClientError),
}

/// Runs `machine` over `stream` until the relay may start. Reads exactly the bytes the
/// machine asks for, so nothing after the final reply is consumed.
pub fn handshake(
    stream: &mut TcpStream,
    mut machine: ClientHandshake,
) -> Result<Vec<ClientEvent>, HandshakeFailure> {
    let mut events = Vec::new();
    let mut input = Vec::new();
    loop {
        let pending = machine.pending_output().to_vec();
        if !pending.is_empty() {
            stream.write_all(&pending).map_err(HandshakeFailure::Io)?;
            machine.output_written(pending.len());
        }
        if machine.is_established() {
            return Ok(events);
        }
        match machine.feed(&input).map_err(HandshakeFailure::Socks)? {
            Step::Event { used, event } => {
                input.drain(..used);
                events.push(event);
            }
            Step::NeedMore { at_least } => {
                let start = input.len();
                input.resize(start + at_least.get(), 0);
                stream
                    .read_exact(&mut input[start..])
                    .map_err(HandshakeFailure::Io)?;
            }
            Step::Idle => return Ok(events),
        }
    }
}

/// Connects through a SOCKS5 proxy (no authentication) to `target` (`host:port`).
pub fn socks5_connect(proxy: SocketAddr, target: &str) -> Result<TcpStream, HandshakeFailure> {
    connect_via(proxy, ClientProtocol::socks5(), target)
}

/// Connects through a proxy with the given protocol.
pub fn connect_via(
    proxy: SocketAddr,
    protocol: ClientProtocol,
    target: &str,
) -> Result<TcpStream, HandshakeFailure> {
    let target: Address = target.parse().expect("a valid target");
    let machine = ClientHandshake::new(protocol, Command::CONNECT, target)
        .map_err(HandshakeFailure::Socks)?;
    let mut stream = TcpStream::connect(proxy).map_err(HandshakeFailure::Io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(HandshakeFailure::Io)?;
    handshake(&mut stream, machine)?;
    Ok(stream)
}

/// Sends `bytes` to `proxy` and returns everything it answers until it closes (or 5 s pass).
pub fn raw_exchange(proxy: SocketAddr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(proxy)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(bytes)?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Ok(answer),
        Err(error) if error.kind() == io::ErrorKind::ConnectionReset => Ok(answer),
        Err(error) => Err(error),
    }
}

/// Writes `payload` and asserts the same bytes come back (through an echo target).
pub fn assert_echoes(stream: &mut TcpStream, payload: &[u8]) {
    stream.write_all(payload).unwrap();
    let mut answer = vec![0u8; payload.len()];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(answer, payload);
}
