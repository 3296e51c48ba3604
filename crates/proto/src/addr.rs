//! Target and bound addresses: IPv4, IPv6 or a domain name, with a port.
//!
//! In SOCKS5 (RFC 1928 §5) an address is an address type byte followed by the address:
//!
//! ```text
//! +------+----------+----------+
//! | ATYP | DST.ADDR | DST.PORT |
//! +------+----------+----------+
//! |  1   | Variable |    2     |
//! +------+----------+----------+
//! ATYP 0x01: 4 bytes IPv4; 0x03: 1 length byte then the name; 0x04: 16 bytes IPv6.
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::wire::{put_short_field, wire_code, DecodeError, ProtocolError, Reader, Wire};

wire_code! {
    /// The SOCKS5 address type byte (ATYP), RFC 1928 §4–5.
    pub struct AddrType(u8) {
        /// A 4-byte IPv4 address.
        IPV4 = 0x01 => "IPv4 address",
        /// A length-prefixed fully-qualified domain name.
        DOMAIN = 0x03 => "domain name",
        /// A 16-byte IPv6 address.
        IPV6 = 0x04 => "IPv6 address",
    }
}

/// A host name as sent in a SOCKS request: 1 to 255 bytes of UTF-8 with no control character,
/// no space and no NUL. Validated once, when it is created.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(Box<str>);

impl DomainName {
    /// The longest name SOCKS5 can carry (one length byte).
    pub const MAX_LEN: usize = 255;

    /// Validates raw bytes from the wire.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ProtocolError::InvalidDomainName)?;
        Self::new(text)
    }

    /// Validates a name given as text.
    pub fn new(name: &str) -> Result<Self, ProtocolError> {
        let acceptable = |c: char| !c.is_control() && !c.is_whitespace();
        if name.is_empty() || name.len() > Self::MAX_LEN || !name.chars().all(acceptable) {
            return Err(ProtocolError::InvalidDomainName);
        }
        Ok(Self(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = ProtocolError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

/// The host part of an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A name for the server (or the next hop) to resolve.
    Domain(DomainName),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Domain(name) => name.fmt(f),
        }
    }
}

/// A host and a port: the target of a request, or an address in a reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// Where.
    pub host: Host,
    /// Which port, in host byte order.
    pub port: u16,
}

impl Address {
    /// An address for a domain name.
    pub fn domain(name: DomainName, port: u16) -> Self {
        Self {
            host: Host::Domain(name),
            port,
        }
    }

    /// `0.0.0.0:0`, the conventional "no address" in replies.
    pub const fn unspecified() -> Self {
        Self {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port: 0,
        }
    }

    /// The socket address, when the host is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Domain(_) => None,
        }
    }

    /// The SOCKS5 address type of this address.
    pub fn addr_type(&self) -> AddrType {
        match self.host {
            Host::Ip(IpAddr::V4(_)) => AddrType::IPV4,
            Host::Ip(IpAddr::V6(_)) => AddrType::IPV6,
            Host::Domain(_) => AddrType::DOMAIN,
        }
    }

    /// The number of bytes of the SOCKS5 wire form (ATYP, address, port).
    pub fn encoded_len(&self) -> usize {
        match &self.host {
            Host::Ip(IpAddr::V4(_)) => 1 + 4 + 2,
            Host::Ip(IpAddr::V6(_)) => 1 + 16 + 2,
            Host::Domain(name) => 1 + 1 + name.as_str().len() + 2,
        }
    }

    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // Each arm first asks for the whole rest of the address, port included, so a caller
        // that reads exactly the missing bytes needs one more read, not two.
        let host = match AddrType(reader.u8()?) {
            AddrType::IPV4 => {
                reader.require(4 + 2)?;
                Host::Ip(IpAddr::V4(Ipv4Addr::from(reader.array::<4>()?)))
            }
            AddrType::IPV6 => {
                reader.require(16 + 2)?;
                Host::Ip(IpAddr::V6(Ipv6Addr::from(reader.array::<16>()?)))
            }
            AddrType::DOMAIN => {
                let len = usize::from(reader.u8()?);
                reader.require(len + 2)?;
                Host::Domain(DomainName::from_bytes(reader.take(len)?)?)
            }
            AddrType(other) => return Err(ProtocolError::UnsupportedAddressType(other).into()),
        };
        let port = reader.u16()?;
        Ok(Self { host, port })
    }
}

impl Wire for Address {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut reader = Reader::new(input);
        let address = Self::read(&mut reader)?;
        Ok((address, reader.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.addr_type().0);
        match &self.host {
            Host::Ip(IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
            Host::Ip(IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
            Host::Domain(name) => put_short_field(out, name.as_str().as_bytes()),
        }
        out.extend_from_slice(&self.port.to_be_bytes());
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Self {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Why a text address does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressParseError {
    /// No `:port` at the end.
    MissingPort,
    /// The port is not a number from 0 to 65535.
    InvalidPort,
    /// The host is neither an IP address nor a valid domain name.
    InvalidHost,
}

impl fmt::Display for AddressParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingPort => "expected HOST:PORT (IPv6 as [ADDR]:PORT)",
            Self::InvalidPort => "port must be a number from 0 to 65535",
            Self::InvalidHost => "host must be an IP address or a domain name",
        })
    }
}

impl std::error::Error for AddressParseError {}

impl FromStr for Address {
    type Err = AddressParseError;

    /// Parses `host:port`, `1.2.3.4:port` or `[v6]:port`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or(AddressParseError::MissingPort)?;
        let port = port.parse().map_err(|_| AddressParseError::InvalidPort)?;
        let host = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Host::Ip(IpAddr::V6(
                inner.parse().map_err(|_| AddressParseError::InvalidHost)?,
            ))
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if host.contains(':') {
            return Err(AddressParseError::InvalidHost);
        } else {
            Host::Domain(DomainName::new(host).map_err(|_| AddressParseError::InvalidHost)?)
        };
        Ok(Self { host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_validated_once() {
        assert!(DomainName::new("example.com").is_ok());
        assert!(DomainName::new(&"a".repeat(255)).is_ok());
        assert!(DomainName::new(&"a".repeat(256)).is_err());
        assert!(DomainName::new("").is_err());
        assert!(DomainName::new("a b").is_err());
        assert!(DomainName::new("a\0b").is_err());
        assert!(DomainName::from_bytes(&[0xff, 0x61]).is_err());
    }

    #[test]
    fn text_addresses_parse_and_print_back() {
        for text in ["127.0.0.1:80", "[::1]:1080", "example.com:443"] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            "::1:80".parse::<Address>(),
            Err(AddressParseError::InvalidHost)
        );
        assert_eq!(
            "host".parse::<Address>(),
            Err(AddressParseError::MissingPort)
        );
        assert_eq!(
            "host:99999".parse::<Address>(),
            Err(AddressParseError::InvalidPort)
        );
    }
}
