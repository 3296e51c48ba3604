//! The PROXY protocol header (HAProxy's specification, versions 1 and 2) that a load
//! balancer puts in front of a connection to say who the client really is.
//!
//! ```text
//! v1: "PROXY TCP4 192.0.2.1 198.51.100.2 51000 1080\r\n"   (at most 107 bytes)
//! v2: \r\n\r\n\0\r\nQUIT\n | ver/cmd | family/proto | length (2) | addresses | TLVs
//! ```
//!
//! [`ProxyHeader::decode`] follows the crate's decoder rules: it never reads past the
//! header, so the SOCKS handshake that follows is left in place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::{DecodeError, ProtocolError};

/// The v2 signature, also what tells v2 from v1.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included.
const V1_MAX: usize = 107;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied connection: the client's address and the address it connected to.
    Proxied {
        /// The client, as the balancer saw it.
        source: SocketAddr,
        /// Where the client connected (the balancer's address).
        destination: SocketAddr,
    },
    /// The balancer's own connection (v2 LOCAL, a health check) or one it could not
    /// describe (v1 UNKNOWN, v2 UNSPEC): the connection's own addresses apply.
    Local,
}

impl ProxyHeader {
    /// Recognises one header at the start of `input`; returns it and its length.
    pub fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let prefix = input.len().min(SIGNATURE.len());
        if input[..prefix] == SIGNATURE[..prefix] {
            if prefix < SIGNATURE.len() {
                return Err(DecodeError::incomplete(SIGNATURE.len() - prefix));
            }
            return decode_v2(input);
        }
        let v1 = b"PROXY ";
        let prefix = input.len().min(v1.len());
        if input[..prefix] != v1[..prefix] {
            return Err(ProtocolError::NotProxyHeader.into());
        }
        decode_v1(input)
    }

    /// The v2 header for a proxied TCP connection (what socksgate sends to an upstream that
    /// wants one).
    pub fn encode_v2(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&SIGNATURE);
        match *self {
            Self::Local => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
            Self::Proxied {
                source,
                destination,
            } => {
                let (source, destination) = (canonical(source), canonical(destination));
                match (source.ip(), destination.ip()) {
                    (IpAddr::V4(from), IpAddr::V4(to)) => {
                        out.extend_from_slice(&[0x21, 0x11, 0, 12]);
                        out.extend_from_slice(&from.octets());
                        out.extend_from_slice(&to.octets());
                    }
                    (from, to) => {
                        out.extend_from_slice(&[0x21, 0x21, 0, 36]);
                        out.extend_from_slice(&as_v6(from).octets());
                        out.extend_from_slice(&as_v6(to).octets());
                    }
                }
                out.extend_from_slice(&source.port().to_be_bytes());
                out.extend_from_slice(&destination.port().to_be_bytes());
            }
        }
    }
}

fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

fn decode_v2(input: &[u8]) -> Result<(ProxyHeader, usize), DecodeError> {
    let Some(fixed) = input.get(..16) else {
        return Err(DecodeError::incomplete(16 - input.len()));
    };
    let (version_command, family, length) = (
        fixed[12],
        fixed[13],
        usize::from(u16::from_be_bytes([fixed[14], fixed[15]])),
    );
    if version_command >> 4 != 2 {
        return Err(ProtocolError::UnsupportedVersion(version_command >> 4).into());
    }
    let total = 16 + length;
    let Some(body) = input.get(16..total) else {
        return Err(DecodeError::incomplete(total - input.len()));
    };
    match version_command & 0x0f {
        0x0 => return Ok((ProxyHeader::Local, total)),
        0x1 => {}
        _ => return Err(ProtocolError::NotProxyHeader.into()),
    }
    // The transport does not matter here (TCP or UDP alike name the client); the address
    // family decides the layout; anything else (UNSPEC, unix sockets) is "local".
    let header = match family >> 4 {
        0x1 => {
            let addresses = body.get(..12).ok_or(ProtocolError::ShortBody)?;
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    addresses[at],
                    addresses[at + 1],
                    addresses[at + 2],
                    addresses[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        0x2 => {
            let addresses = body.get(..36).ok_or(ProtocolError::ShortBody)?;
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&addresses[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets)).to_canonical()
            };
            let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => ProxyHeader::Local,
    };
    Ok((header, total))
}

fn decode_v1(input: &[u8]) -> Result<(ProxyHeader, usize), DecodeError> {
    let Some(end) = input.iter().take(V1_MAX).position(|&byte| byte == b'\n') else {
        if input.len() >= V1_MAX {
            return Err(ProtocolError::FieldTooLong("PROXY line").into());
        }
        return Err(DecodeError::incomplete(1));
    };
    let line = input[..end]
        .strip_suffix(b"\r")
        .ok_or(ProtocolError::NotProxyHeader)?;
    let line = std::str::from_utf8(line).map_err(|_| ProtocolError::NotProxyHeader)?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => ProxyHeader::Local,
        ["PROXY", family @ ("TCP4" | "TCP6"), source, destination, source_port, destination_port] =>
        {
            let ip = |text: &str| -> Result<IpAddr, ProtocolError> {
                let ip: IpAddr = text.parse().map_err(|_| ProtocolError::NotProxyHeader)?;
                if ip.is_ipv4() == (*family == "TCP4") {
                    Ok(ip.to_canonical())
                } else {
                    Err(ProtocolError::NotProxyHeader)
                }
            };
            let port = |text: &str| -> Result<u16, ProtocolError> {
                // The specification forbids leading zeros; "0" itself is allowed.
                if text.len() > 1 && text.starts_with('0') {
                    return Err(ProtocolError::NotProxyHeader);
                }
                text.parse().map_err(|_| ProtocolError::NotProxyHeader)
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(source)?, port(source_port)?),
                destination: SocketAddr::new(ip(destination)?, port(destination_port)?),
            }
        }
        _ => return Err(ProtocolError::NotProxyHeader.into()),
    };
    Ok((header, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn version_1_lines_name_the_client() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 1080\r\n\x05\x01\x00";
        let (header, used) = ProxyHeader::decode(line).unwrap();
        assert_eq!(used, line.len() - 3, "the SOCKS greeting is left in place");
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: address("192.0.2.1:51000"),
                destination: address("198.51.100.2:1080"),
            }
        );
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 1080\r\n";
        let (header, _) = ProxyHeader::decode(v6).unwrap();
        assert!(
            matches!(header, ProxyHeader::Proxied { source, .. } if source == address("[2001:db8::1]:4000"))
        );
        assert_eq!(
            ProxyHeader::decode(b"PROXY UNKNOWN\r\n").unwrap(),
            (ProxyHeader::Local, 15)
        );
    }

    #[test]
    fn malformed_version_1_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 1080\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 051000 1080\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 70000 1080\r\n",
            b"PROXY TCP5 a b 1 2\r\n",
            b"GET / HTTP/1.1\r\n",
            b"\x05\x01\x00",
        ] {
            assert!(
                matches!(ProxyHeader::decode(bad), Err(DecodeError::Invalid(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b'P', b'R', b'O', b'X', b'Y', b' '].repeat(20);
        assert!(matches!(
            ProxyHeader::decode(&endless),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            ProxyHeader::decode(b"PROXY TCP4 192.0"),
            Err(DecodeError::Incomplete { .. })
        ));
    }

    #[test]
    fn version_2_round_trips_and_is_read_to_its_length() {
        for (source, destination) in [
            ("192.0.2.1:51000", "198.51.100.2:1080"),
            ("[2001:db8::1]:4000", "[2001:db8::2]:1080"),
        ] {
            let header = ProxyHeader::Proxied {
                source: address(source),
                destination: address(destination),
            };
            let mut bytes = Vec::new();
            header.encode_v2(&mut bytes);
            let length = bytes.len();
            bytes.extend_from_slice(&[0x05, 0x01, 0x00]);
            assert_eq!(ProxyHeader::decode(&bytes).unwrap(), (header, length));
            for cut in 0..length {
                assert!(
                    matches!(
                        ProxyHeader::decode(&bytes[..cut]),
                        Err(DecodeError::Incomplete { .. })
                    ),
                    "cut at {cut}"
                );
            }
        }
        let mut local = Vec::new();
        ProxyHeader::Local.encode_v2(&mut local);
        assert_eq!(
            ProxyHeader::decode(&local).unwrap(),
            (ProxyHeader::Local, 16)
        );
    }

    #[test]
    fn version_2_skips_tlvs_and_refuses_other_versions() {
        // HAProxy's send-proxy-v2 may add TLVs after the addresses: the length covers them.
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0, 12 + 7]);
        bytes.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 2, 0xc7, 0x38, 0x04, 0x38]);
        bytes.extend_from_slice(&[0x04, 0x00, 0x04, 1, 2, 3, 4]); // a NOOP TLV
        let (header, used) = ProxyHeader::decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert!(
            matches!(header, ProxyHeader::Proxied { source, .. } if source == address("192.0.2.1:51000"))
        );
        bytes[12] = 0x31;
        assert!(matches!(
            ProxyHeader::decode(&bytes),
            Err(DecodeError::Invalid(_))
        ));
        // Addresses shorter than their family needs.
        let mut short = SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(
            ProxyHeader::decode(&short),
            Err(DecodeError::Invalid(_))
        ));
    }
}
