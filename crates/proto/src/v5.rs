//! SOCKS Protocol Version 5 messages (RFC 1928).

use crate::addr::Address;
use crate::wire::{wire_code, DecodeError, ProtocolError, Reader, Wire};

/// The version byte of every SOCKS5 message.
pub const VERSION: u8 = 0x05;

wire_code! {
    /// An authentication method (RFC 1928 §3). Values 0x80–0xFE are reserved for private methods.
    pub struct Method(u8) {
        /// No authentication required.
        NO_AUTH = 0x00 => "no authentication",
        /// GSS-API (RFC 1961).
        GSSAPI = 0x01 => "GSS-API",
        /// Username/password (RFC 1929).
        PASSWORD = 0x02 => "username/password",
        /// Sent by a server when none of the offered methods is acceptable.
        NO_ACCEPTABLE = 0xff => "no acceptable methods",
    }
}

wire_code! {
    /// A request's command (RFC 1928 §4). SOCKS4 uses the same values for CONNECT and BIND.
    pub struct Command(u8) {
        /// Open a TCP connection to the target.
        CONNECT = 0x01 => "connect",
        /// Accept one inbound TCP connection on the client's behalf.
        BIND = 0x02 => "bind",
        /// Relay UDP datagrams.
        UDP_ASSOCIATE = 0x03 => "udp associate",
        /// socksgate's ICMP extension: echo requests to the target, answers back
        /// (`docs/extensions/icmp.md`; a private code that Tor and gost do not use).
        ICMP_ECHO = 0xf8 => "icmp echo",
        /// Never on the SOCKS wire (a SOCKS request with it is refused, 0x07): the command
        /// an HTTP request forwarded to an `http://` target is decided and logged as, so
        /// that rules can tell it from a tunnel (HTTP's CONNECT is [`Command::CONNECT`]).
        HTTP_REQUEST = 0xf9 => "http",
    }
}

wire_code! {
    /// The REP field of a reply (RFC 1928 §6).
    pub struct Reply(u8) {
        /// The request was granted.
        SUCCEEDED = 0x00 => "succeeded",
        /// An error that no other code describes.
        GENERAL_FAILURE = 0x01 => "general SOCKS server failure",
        /// The server's rules forbid this request.
        NOT_ALLOWED = 0x02 => "connection not allowed by ruleset",
        /// No route to the target's network.
        NETWORK_UNREACHABLE = 0x03 => "network unreachable",
        /// The target host cannot be reached or its name does not resolve.
        HOST_UNREACHABLE = 0x04 => "host unreachable",
        /// The target refused the connection.
        CONNECTION_REFUSED = 0x05 => "connection refused",
        /// The target did not answer in time.
        TTL_EXPIRED = 0x06 => "TTL expired",
        /// The server does not support the command.
        COMMAND_NOT_SUPPORTED = 0x07 => "command not supported",
        /// The server does not support the address type.
        ADDRESS_TYPE_NOT_SUPPORTED = 0x08 => "address type not supported",
    }
}

impl Reply {
    /// Whether this reply grants the request.
    pub const fn is_success(self) -> bool {
        self.0 == Self::SUCCEEDED.0
    }
}

/// The client's greeting: the methods it supports (RFC 1928 §3).
///
/// ```text
/// +----+----------+----------+
/// |VER | NMETHODS | METHODS  |
/// +----+----------+----------+
/// | 1  |    1     | 1 to 255 |
/// +----+----------+----------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The methods, in the client's order; 1 to 255 of them.
    pub methods: Vec<Method>,
}

impl Wire for Greeting {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut reader = Reader::new(input);
        reader.version(VERSION)?;
        let count = reader.u8()?;
        if count == 0 {
            return Err(ProtocolError::NoMethodsOffered.into());
        }
        let methods = reader.take(usize::from(count))?.iter().map(|&m| Method(m));
        Ok((
            Self {
                methods: methods.collect(),
            },
            reader.position(),
        ))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let methods = &self.methods[..self.methods.len().min(255)];
        out.extend_from_slice(&[VERSION, methods.len() as u8]);
        out.extend(methods.iter().map(|m| m.0));
    }
}

/// The server's choice of method (RFC 1928 §3).
///
/// ```text
/// +----+--------+
/// |VER | METHOD |
/// +----+--------+
/// | 1  |   1    |
/// +----+--------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSelection {
    /// The chosen method, or [`Method::NO_ACCEPTABLE`].
    pub method: Method,
}

impl Wire for MethodSelection {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let (method, used) = Reader::version_then_byte(input, VERSION)?;
        Ok((
            Self {
                method: Method(method),
            },
            used,
        ))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, self.method.0]);
    }
}

/// A client's request (RFC 1928 §4).
///
/// ```text
/// +----+-----+-------+------+----------+----------+
/// |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
/// +----+-----+-------+------+----------+----------+
/// | 1  |  1  | X'00' |  1   | Variable |    2     |
/// +----+-----+-------+------+----------+----------+
/// ```
///
/// RSV is ignored when decoding (some clients send garbage there) and sent as zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the client asks for; unknown commands decode, so the server can answer 0x07.
    pub command: Command,
    /// The target (DST.ADDR, DST.PORT).
    pub target: Address,
}

impl Wire for Request {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let (command, target, used) = decode_framed_address(input)?;
        Ok((
            Self {
                command: Command(command),
                target,
            },
            used,
        ))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_framed_address(out, self.command.0, &self.target);
    }
}

/// A server's reply to a request (RFC 1928 §6).
///
/// ```text
/// +----+-----+-------+------+----------+----------+
/// |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
/// +----+-----+-------+------+----------+----------+
/// | 1  |  1  | X'00' |  1   | Variable |    2     |
/// +----+-----+-------+------+----------+----------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The outcome.
    pub reply: Reply,
    /// BND.ADDR and BND.PORT: the server's outbound address for CONNECT, the listening
    /// address (first reply) or the peer's address (second reply) for BIND, the relay
    /// address for UDP ASSOCIATE.
    pub bound: Address,
}

impl Wire for Response {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let (reply, bound, used) = decode_framed_address(input)?;
        Ok((
            Self {
                reply: Reply(reply),
                bound,
            },
            used,
        ))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_framed_address(out, self.reply.0, &self.bound);
    }
}

/// Requests and replies share one layout: VER, a code, RSV, then an address.
fn decode_framed_address(input: &[u8]) -> Result<(u8, Address, usize), DecodeError> {
    let mut reader = Reader::new(input);
    // VER, the code, RSV, ATYP and the first byte of the address: one read for a blocking
    // reader, then one more for the rest of the address.
    if input.len() < 4 && input.first().is_none_or(|&v| v == VERSION) {
        reader.require(5)?;
    }
    reader.version(VERSION)?;
    let code = reader.u8()?;
    let _reserved = reader.u8()?;
    let address = Address::read(&mut reader)?;
    Ok((code, address, reader.position()))
}

fn encode_framed_address(out: &mut Vec<u8>, code: u8, address: &Address) {
    out.reserve(3 + address.encoded_len());
    out.extend_from_slice(&[VERSION, code, 0x00]);
    address.encode(out);
}
