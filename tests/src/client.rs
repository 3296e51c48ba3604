//! A blocking SOCKS client on `socksgate-proto`'s client machine, and raw byte exchanges.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::{Address, Command, Step, Wire};

/// A handshake that did not complete.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// The socket failed or closed.
    Io(io::Error),
    /// The server refused or broke the protocol.
    Socks(ClientError),
}

/// The reply code a refused handshake got; a panic naming what happened instead (a
/// granted request, a broken connection, a protocol error).
pub fn rejected_with<T: std::fmt::Debug>(
    result: Result<T, HandshakeFailure>,
) -> socksgate_proto::Reply {
    match result {
        Err(HandshakeFailure::Socks(ClientError::Rejected(reply))) => reply,
        other => panic!("expected a failure reply, got {other:?}"),
    }
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

/// Connects through a SOCKS5 proxy with a username and password (RFC 1929).
pub fn socks5_login(
    proxy: SocketAddr,
    user: &[u8],
    password: &[u8],
    target: &str,
) -> Result<TcpStream, HandshakeFailure> {
    let credentials = socksgate_proto::password::Credentials::new(user, password)
        .map_err(|e| HandshakeFailure::Socks(ClientError::Protocol(e)))?;
    let protocol = ClientProtocol::Socks5 {
        credentials: Some(credentials),
        gssapi: false,
    };
    connect_via(proxy, protocol, target)
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

/// Opens a UDP association (SOCKS5, no authentication) for `client`, a UDP socket on
/// loopback. Returns the control connection (the association lives as long as it does) and
/// the relay's address.
pub fn udp_associate(
    proxy: SocketAddr,
    client: &std::net::UdpSocket,
) -> Result<(TcpStream, SocketAddr), HandshakeFailure> {
    let client_address = Address::from(client.local_addr().map_err(HandshakeFailure::Io)?);
    let mut control = TcpStream::connect(proxy).map_err(HandshakeFailure::Io)?;
    let relay = udp_associate_on(&mut control, client_address)?;
    Ok((control, relay))
}

/// Opens a UDP association (SOCKS5, no authentication) on a control connection already open
/// (after a PROXY header, from a chosen address), for datagrams from `client`; the relay's
/// address.
pub fn udp_associate_on(
    control: &mut TcpStream,
    client: Address,
) -> Result<SocketAddr, HandshakeFailure> {
    let machine = ClientHandshake::new(ClientProtocol::socks5(), Command::UDP_ASSOCIATE, client)
        .map_err(HandshakeFailure::Socks)?;
    let events = handshake(control, machine)?;
    let Some(ClientEvent::Granted { bound }) = events.last() else {
        panic!("no grant in {events:?}");
    };
    Ok(bound.socket_addr().expect("the relay is an IP address"))
}

/// Sends `payload` for `target` through the relay, as one standalone datagram.
pub fn send_via(socket: &std::net::UdpSocket, relay: SocketAddr, target: &Address, payload: &[u8]) {
    let mut datagram = socksgate_proto::udp::UdpHeader::new(target.clone()).to_bytes();
    datagram.extend_from_slice(payload);
    socket.send_to(&datagram, relay).unwrap();
}

/// Receives one datagram from the relay within `timeout`: the source it names and the data.
pub fn recv_via(socket: &std::net::UdpSocket, timeout: Duration) -> Option<(Address, Vec<u8>)> {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buffer = vec![0u8; 65536];
    let (len, _) = socket.recv_from(&mut buffer).ok()?;
    let (header, data) = socksgate_proto::udp::UdpHeader::split(&buffer[..len]).unwrap();
    assert!(
        header.frag.is_standalone(),
        "the relay sends whole datagrams"
    );
    Some((header.address, data.to_vec()))
}

/// A TCP connection to `to` from the local address `ip` (any port): another "host" on
/// loopback, such as 127.0.0.2.
pub fn connect_from(ip: std::net::IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let family = if ip.is_ipv4() {
        rustix::net::AddressFamily::INET
    } else {
        rustix::net::AddressFamily::INET6
    };
    let socket = rustix::net::socket(family, rustix::net::SocketType::STREAM, None)?;
    rustix::net::bind(&socket, &SocketAddr::new(ip, 0))?;
    rustix::net::connect(&socket, &to)?;
    Ok(TcpStream::from(socket))
}

/// Waits (up to ten seconds) until something accepts connections at `address`; panics
/// naming `what` otherwise. For servers started as other processes.
pub fn wait_until_listening(address: impl std::net::ToSocketAddrs + std::fmt::Debug, what: &str) {
    let started = std::time::Instant::now();
    while TcpStream::connect(&address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} never listened on {address:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes the proxy variables the client commands read, so a test's own setting is the
/// only one.
pub fn without_proxy_environment(
    command: &mut std::process::Command,
) -> &mut std::process::Command {
    for variable in [
        "SOCKSGATE_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "SOCKS_PROXY",
        "SOCKS5_PROXY",
    ] {
        command.env_remove(variable);
    }
    command
}
