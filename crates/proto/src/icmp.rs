//! socksgate's ICMP extension (a private SOCKS5 command, `docs/extensions/icmp.md`): after a
//! success reply to [`Command::ICMP_ECHO`](crate::Command::ICMP_ECHO), the TCP connection
//! carries these messages both ways.
//!
//! ```text
//! +------+--------+----------------+
//! | TYPE |  LEN   |      BODY      |
//! +------+--------+----------------+
//! |  1   |   2    |  LEN octets    |
//! +------+--------+----------------+
//! ```
//!
//! Every number is big-endian. A receiver skips a message whose TYPE it does not know (it
//! decodes as [`IcmpMessage::Unknown`]), so later versions can add types.

use crate::addr::Address;
use crate::wire::{DecodeError, ProtocolError, Reader, Wire};

/// The largest BODY a message can carry.
pub const MAX_BODY: usize = u16::MAX as usize;

const ECHO_REQUEST: u8 = 0x01;
const ECHO_REPLY: u8 = 0x81;
const TIME_EXCEEDED: u8 = 0x82;
const UNREACHABLE: u8 = 0x83;

/// One message of the ICMP extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IcmpMessage {
    /// Client to server: send an echo request to the target.
    /// BODY: SEQ (2), TTL (1; 0 means the server's default), DATA (the rest).
    EchoRequest {
        /// The client's sequence number, echoed in the answer.
        seq: u16,
        /// The IP TTL (IPv6 hop limit) for this probe; 0 for the server's default.
        ttl: u8,
        /// The echo payload.
        data: Vec<u8>,
    },
    /// Server to client: the target answered.
    /// BODY: SEQ (2), TTL (1; the reply's, 0 when unknown), RTT (4, microseconds), DATA.
    EchoReply {
        /// The request's sequence number.
        seq: u16,
        /// The reply's TTL as received, when the server could read it; 0 otherwise.
        ttl: u8,
        /// The round-trip time the server measured, in microseconds.
        rtt_micros: u32,
        /// The payload that came back.
        data: Vec<u8>,
    },
    /// Server to client: a router reported the probe's TTL expired (traceroute's answer).
    /// BODY: SEQ (2), RTT (4), FROM (a SOCKS5 address: ATYP, ADDR, PORT = 0).
    TimeExceeded {
        /// The request's sequence number.
        seq: u16,
        /// Microseconds from the probe to the report.
        rtt_micros: u32,
        /// The router that reported it.
        from: Address,
    },
    /// Server to client: the target or a router reported it unreachable.
    /// BODY: SEQ (2), CODE (1, the ICMP or ICMPv6 code), RTT (4), FROM (a SOCKS5 address).
    Unreachable {
        /// The request's sequence number.
        seq: u16,
        /// The ICMP destination-unreachable code (ICMPv6 codes for IPv6 targets).
        code: u8,
        /// Microseconds from the probe to the report.
        rtt_micros: u32,
        /// Who reported it.
        from: Address,
    },
    /// A message of a type this version does not know; skipped by the receiver.
    Unknown {
        /// Its TYPE.
        kind: u8,
    },
}

impl Wire for IcmpMessage {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut header = Reader::new(input);
        let kind = header.u8()?;
        let len = usize::from(header.u16()?);
        let body = header.take(len)?;
        let used = header.position();
        // The body is whole: running out inside it is malformed, never "need more".
        let message = parse_body(kind, body).map_err(|error| match error {
            DecodeError::Incomplete { .. } => ProtocolError::ShortBody.into(),
            other => other,
        })?;
        Ok((message, used))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        let kind = match self {
            Self::EchoRequest { seq, ttl, data } => {
                body.extend_from_slice(&seq.to_be_bytes());
                body.push(*ttl);
                body.extend_from_slice(data);
                ECHO_REQUEST
            }
            Self::EchoReply {
                seq,
                ttl,
                rtt_micros,
                data,
            } => {
                body.extend_from_slice(&seq.to_be_bytes());
                body.push(*ttl);
                body.extend_from_slice(&rtt_micros.to_be_bytes());
                body.extend_from_slice(data);
                ECHO_REPLY
            }
            Self::TimeExceeded {
                seq,
                rtt_micros,
                from,
            } => {
                body.extend_from_slice(&seq.to_be_bytes());
                body.extend_from_slice(&rtt_micros.to_be_bytes());
                from.encode(&mut body);
                TIME_EXCEEDED
            }
            Self::Unreachable {
                seq,
                code,
                rtt_micros,
                from,
            } => {
                body.extend_from_slice(&seq.to_be_bytes());
                body.push(*code);
                body.extend_from_slice(&rtt_micros.to_be_bytes());
                from.encode(&mut body);
                UNREACHABLE
            }
            Self::Unknown { kind } => *kind,
        };
        // Payloads are bounded by the caller (an ICMP payload is far below 64 KiB); a longer
        // body is cut rather than framed wrongly.
        body.truncate(MAX_BODY);
        out.push(kind);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
}

/// The Internet checksum (RFC 1071) of `bytes`: the ones' complement of their ones'
/// complement sum as 16-bit words. ICMP messages carry it (ICMPv6's also covers a
/// pseudo-header with both addresses, RFC 4443 §2.3); for implementations that build the
/// echo packets this extension stands for.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The message a whole body of type `kind` holds.
fn parse_body(kind: u8, body: &[u8]) -> Result<IcmpMessage, DecodeError> {
    let mut body = Reader::new(body);
    Ok(match kind {
        ECHO_REQUEST => IcmpMessage::EchoRequest {
            seq: body.u16()?,
            ttl: body.u8()?,
            data: rest(&mut body)?,
        },
        ECHO_REPLY => IcmpMessage::EchoReply {
            seq: body.u16()?,
            ttl: body.u8()?,
            rtt_micros: u32::from_be_bytes(body.array()?),
            data: rest(&mut body)?,
        },
        TIME_EXCEEDED => IcmpMessage::TimeExceeded {
            seq: body.u16()?,
            rtt_micros: u32::from_be_bytes(body.array()?),
            from: address(&mut body)?,
        },
        UNREACHABLE => IcmpMessage::Unreachable {
            seq: body.u16()?,
            code: body.u8()?,
            rtt_micros: u32::from_be_bytes(body.array()?),
            from: address(&mut body)?,
        },
        kind => IcmpMessage::Unknown { kind },
    })
}

/// The rest of a body: a message's data.
fn rest(body: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let left = body.remaining();
    Ok(body.take(left)?.to_vec())
}

/// A SOCKS5 address that must fill the rest of the body.
fn address(body: &mut Reader<'_>) -> Result<Address, DecodeError> {
    let left = body.remaining();
    let bytes = body.take(left)?;
    match Address::decode(bytes) {
        Ok((address, used)) if used == bytes.len() => Ok(address),
        Ok(_) => Err(ProtocolError::TrailingBytes.into()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(message: IcmpMessage) {
        let mut wire = Vec::new();
        message.encode(&mut wire);
        let (decoded, used) = IcmpMessage::decode(&wire).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(used, wire.len());
        assert_eq!(decoded, message);
        // Every strict prefix asks for more.
        for cut in 0..wire.len() {
            assert!(matches!(
                IcmpMessage::decode(&wire[..cut]),
                Err(DecodeError::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn every_message_round_trips_and_prefixes_ask_for_more() {
        let router: Address = "192.0.2.1:0".parse().unwrap_or_else(|_| unreachable!());
        round_trip(IcmpMessage::EchoRequest {
            seq: 7,
            ttl: 3,
            data: b"abcdefgh".to_vec(),
        });
        round_trip(IcmpMessage::EchoReply {
            seq: 7,
            ttl: 61,
            rtt_micros: 1234,
            data: b"abcdefgh".to_vec(),
        });
        round_trip(IcmpMessage::TimeExceeded {
            seq: 1,
            rtt_micros: 99,
            from: router.clone(),
        });
        round_trip(IcmpMessage::Unreachable {
            seq: 2,
            code: 1,
            rtt_micros: 5,
            from: "[2001:db8::1]:0".parse().unwrap_or_else(|_| unreachable!()),
        });
    }

    #[test]
    fn an_unknown_type_is_skipped_whole() {
        let wire = [0x7f, 0x00, 0x03, 1, 2, 3, ECHO_REQUEST, 0x00, 0x03, 0, 9, 0];
        let (first, used) = IcmpMessage::decode(&wire).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, IcmpMessage::Unknown { kind: 0x7f });
        assert_eq!(used, 6);
        let (second, _) = IcmpMessage::decode(&wire[used..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            second,
            IcmpMessage::EchoRequest {
                seq: 9,
                ttl: 0,
                data: Vec::new()
            }
        );
    }

    #[test]
    fn a_body_too_short_for_its_type_is_malformed() {
        // An echo reply whose body stops inside RTT.
        let wire = [ECHO_REPLY, 0x00, 0x04, 0, 1, 64, 0];
        assert_eq!(
            IcmpMessage::decode(&wire),
            Err(DecodeError::Invalid(ProtocolError::ShortBody))
        );
    }
}
