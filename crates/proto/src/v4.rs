//! SOCKS4 and its SOCKS4a extension (see `SOCKS4.protocol` and `SOCKS4A.protocol`).

use std::net::Ipv4Addr;

use crate::addr::{Address, DomainName, Host};
use crate::v5::Command;
use crate::wire::{wire_code, DecodeError, ProtocolError, Reader, Wire};

/// The version byte of a SOCKS4 request.
pub const VERSION: u8 = 0x04;

/// The longest USERID accepted before its NUL. The protocol sets no limit; a server must, so a
/// client cannot make it buffer without end.
pub const MAX_USER_ID_LEN: usize = 255;

wire_code! {
    /// The CD field of a SOCKS4 reply.
    pub struct Reply(u8) {
        /// Request granted.
        GRANTED = 0x5a => "request granted",
        /// Request rejected or failed.
        REJECTED = 0x5b => "request rejected or failed",
        /// Rejected because the server cannot reach the client's identd.
        NO_IDENTD = 0x5c => "rejected: cannot connect to identd on the client",
        /// Rejected because identd reported a different user id.
        IDENTD_MISMATCH = 0x5d => "rejected: identd reports a different user id",
    }
}

impl Reply {
    /// Whether this reply grants the request.
    pub const fn is_success(self) -> bool {
        self.0 == Self::GRANTED.0
    }
}

/// Where a SOCKS4 request goes: an IPv4 address, or (SOCKS4a) a name for the server to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// SOCKS4: DSTIP.
    Ip(Ipv4Addr),
    /// SOCKS4a: DSTIP is 0.0.0.x (x ≠ 0) and the name follows USERID.
    Domain(DomainName),
}

/// A SOCKS4 or SOCKS4a request.
///
/// ```text
/// +----+----+----+----+----+----+----+----+----+----+....+----+
/// | VN | CD | DSTPORT |      DSTIP        | USERID       |NULL|
/// +----+----+----+----+----+----+----+----+----+----+....+----+
///    1    1      2              4           variable       1
/// ```
///
/// SOCKS4a appends the host name and another NUL when DSTIP is 0.0.0.x with x ≠ 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// CONNECT (1) or BIND (2); other values decode so the server can reject them.
    pub command: Command,
    /// DSTPORT.
    pub port: u16,
    /// DSTIP, or the SOCKS4a host name.
    pub destination: Destination,
    /// USERID, without its NUL; at most [`MAX_USER_ID_LEN`] bytes.
    pub user_id: Vec<u8>,
}

impl Request {
    /// The target as an [`Address`].
    pub fn target(&self) -> Address {
        let host = match &self.destination {
            Destination::Ip(ip) => Host::Ip((*ip).into()),
            Destination::Domain(name) => Host::Domain(name.clone()),
        };
        Address {
            host,
            port: self.port,
        }
    }

    /// Whether the request uses the SOCKS4a extension.
    pub fn is_socks4a(&self) -> bool {
        matches!(self.destination, Destination::Domain(_))
    }
}

/// The DSTIP a SOCKS4a client sends with a name: 0.0.0.1.
const SOCKS4A_MARKER: Ipv4Addr = Ipv4Addr::new(0, 0, 0, 1);

impl Wire for Request {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut reader = Reader::new(input);
        reader.version(VERSION)?;
        let command = Command(reader.u8()?);
        let port = reader.u16()?;
        let ip = Ipv4Addr::from(reader.array::<4>()?);
        let user_id = reader.nul_terminated(MAX_USER_ID_LEN, "USERID")?.to_vec();
        let [a, b, c, d] = ip.octets();
        let destination = if a == 0 && b == 0 && c == 0 && d != 0 {
            let name = reader.nul_terminated(DomainName::MAX_LEN, "SOCKS4a host name")?;
            if name.is_empty() {
                return Err(ProtocolError::MissingDomainName.into());
            }
            Destination::Domain(DomainName::from_bytes(name)?)
        } else {
            Destination::Ip(ip)
        };
        let request = Self {
            command,
            port,
            destination,
            user_id,
        };
        Ok((request, reader.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let ip = match self.destination {
            Destination::Ip(ip) => ip,
            Destination::Domain(_) => SOCKS4A_MARKER,
        };
        out.extend_from_slice(&[VERSION, self.command.0]);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&ip.octets());
        let user_id = &self.user_id[..self.user_id.len().min(MAX_USER_ID_LEN)];
        out.extend(user_id.iter().filter(|&&b| b != 0));
        out.push(0);
        if let Destination::Domain(name) = &self.destination {
            out.extend_from_slice(name.as_str().as_bytes());
            out.push(0);
        }
    }
}

/// A SOCKS4 reply: always 8 bytes.
///
/// ```text
/// +----+----+----+----+----+----+----+----+
/// | VN | CD | DSTPORT |      DSTIP        |
/// +----+----+----+----+----+----+----+----+
///    1    1      2              4
/// ```
///
/// VN is 0. Some old servers send 4 there; the decoder accepts both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The outcome.
    pub reply: Reply,
    /// DSTPORT: meaningful for BIND (where to connect), otherwise ignored by clients.
    pub port: u16,
    /// DSTIP: as `port`.
    pub ip: Ipv4Addr,
}

impl Response {
    /// The reply version byte.
    pub const VERSION: u8 = 0x00;
}

impl Wire for Response {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut reader = Reader::new(input);
        if input
            .first()
            .is_none_or(|&v| v == Self::VERSION || v == VERSION)
        {
            reader.require(8)?;
        }
        match reader.u8()? {
            Self::VERSION | VERSION => {}
            other => return Err(ProtocolError::UnsupportedVersion(other).into()),
        }
        let reply = Reply(reader.u8()?);
        let port = reader.u16()?;
        let ip = Ipv4Addr::from(reader.array::<4>()?);
        Ok((Self { reply, port, ip }, reader.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[Self::VERSION, self.reply.0]);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&self.ip.octets());
    }
}
