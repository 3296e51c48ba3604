//! ICMP echo requests a program sends into the TUN device, and the replies written back to
//! it (RFC 792, RFC 4443): the proxy sends the real probes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use socksgate_proto::icmp::internet_checksum;

const IPV6_HEADER: usize = 40;
/// The TTL replies arrive with (the real one stays at the proxy).
const REPLY_TTL: u8 = 64;

/// An echo request as it arrived: the program's identifier, sequence number and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EchoRequest {
    /// The program's identifier (ping's process-specific number).
    pub(crate) id: u16,
    /// The sequence number.
    pub(crate) seq: u16,
    /// The data.
    pub(crate) data: Vec<u8>,
}

/// An IP packet from the program that carries an ICMP or ICMPv6 echo request: its source,
/// destination and request. `None` for anything else (other ICMP types included).
pub(crate) fn echo_in_packet(packet: &[u8]) -> Option<(IpAddr, IpAddr, EchoRequest)> {
    match packet.first()? >> 4 {
        4 => {
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            let header = packet.get(..header_len.max(20))?;
            let fragment = u16::from_be_bytes([header[6], header[7]]) & 0x3fff;
            if header[9] != 1 || fragment != 0 {
                return None;
            }
            let source = Ipv4Addr::from(<[u8; 4]>::try_from(&header[12..16]).ok()?);
            let destination = Ipv4Addr::from(<[u8; 4]>::try_from(&header[16..20]).ok()?);
            let request = parse_echo_request(false, &packet[header.len()..])?;
            Some((source.into(), destination.into(), request))
        }
        6 => {
            let header = packet.get(..IPV6_HEADER)?;
            if header[6] != 58 {
                return None;
            }
            let source = Ipv6Addr::from(<[u8; 16]>::try_from(&header[8..24]).ok()?);
            let destination = Ipv6Addr::from(<[u8; 16]>::try_from(&header[24..40]).ok()?);
            let request = parse_echo_request(true, &packet[IPV6_HEADER..])?;
            Some((source.into(), destination.into(), request))
        }
        _ => None,
    }
}

/// The whole IP packet of an echo reply from `from` to `to`.
pub(crate) fn echo_reply_packet(
    from: IpAddr,
    to: IpAddr,
    id: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    let message = echo_reply(from, to, id, seq, data);
    let mut packet = Vec::with_capacity(IPV6_HEADER + message.len());
    match (from, to) {
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            packet.extend_from_slice(&[0x60, 0, 0, 0]);
            packet.extend_from_slice(&(message.len() as u16).to_be_bytes());
            packet.extend_from_slice(&[58, REPLY_TTL]);
            packet.extend_from_slice(&from.octets());
            packet.extend_from_slice(&to.octets());
        }
        _ => {
            let octets = |ip: IpAddr| match ip {
                IpAddr::V4(ip) => ip.octets(),
                IpAddr::V6(_) => [0; 4],
            };
            let total = (20 + message.len()) as u16;
            packet.extend_from_slice(&[0x45, 0]);
            packet.extend_from_slice(&total.to_be_bytes());
            packet.extend_from_slice(&[0, 0, 0x40, 0, REPLY_TTL, 1, 0, 0]);
            packet.extend_from_slice(&octets(from));
            packet.extend_from_slice(&octets(to));
            let sum = internet_checksum(&packet);
            packet[10..12].copy_from_slice(&sum.to_be_bytes());
        }
    }
    packet.extend_from_slice(&message);
    packet
}

/// The echo request in an ICMP (or, with `v6`, ICMPv6) message; `None` for anything else.
fn parse_echo_request(v6: bool, message: &[u8]) -> Option<EchoRequest> {
    let header = message.get(..8)?;
    let request = if v6 { 128 } else { 8 };
    (header[0] == request && header[1] == 0).then(|| EchoRequest {
        id: u16::from_be_bytes([header[4], header[5]]),
        seq: u16::from_be_bytes([header[6], header[7]]),
        data: message[8..].to_vec(),
    })
}

/// The echo reply from `from` to `to` for a request, with its checksum (ICMPv6's covers a
/// pseudo-header with both addresses, RFC 4443 §2.3).
fn echo_reply(from: IpAddr, to: IpAddr, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let v6 = from.is_ipv6();
    let mut message = Vec::with_capacity(8 + data.len());
    message.extend_from_slice(&[if v6 { 129 } else { 0 }, 0, 0, 0]);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(data);
    let sum = match (from, to) {
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            let mut pseudo = Vec::with_capacity(40 + message.len());
            pseudo.extend_from_slice(&from.octets());
            pseudo.extend_from_slice(&to.octets());
            pseudo.extend_from_slice(&(message.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 58]);
            pseudo.extend_from_slice(&message);
            internet_checksum(&pseudo)
        }
        _ => internet_checksum(&message),
    };
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_becomes_a_reply_that_checks() {
        let request = [8, 0, 0xf7, 0xfd, 0, 1, 0, 2, b'h', b'i'];
        let parsed = parse_echo_request(false, &request).unwrap();
        assert_eq!(
            (parsed.id, parsed.seq, parsed.data.as_slice()),
            (1, 2, &b"hi"[..])
        );
        assert_eq!(parse_echo_request(true, &request), None, "not ICMPv6");
        let from: IpAddr = "198.18.1.1".parse().unwrap();
        let to: IpAddr = "198.18.0.1".parse().unwrap();
        let reply = echo_reply(from, to, 1, 2, b"hi");
        assert_eq!(reply[0], 0);
        assert_eq!(internet_checksum(&reply), 0);
    }

    #[test]
    fn requests_in_ip_packets_are_found_and_replies_are_whole_packets() {
        let from: IpAddr = "198.18.1.1".parse().unwrap();
        let to: IpAddr = "198.18.0.1".parse().unwrap();
        // A reply packet has the shape of a request packet, addresses swapped.
        let mut packet = echo_reply_packet(to, from, 7, 9, b"ping");
        assert_eq!(internet_checksum(&packet[..20]), 0, "IPv4 header checksum");
        packet[20] = 8;
        packet[22..24].copy_from_slice(&[0, 0]);
        let sum = internet_checksum(&packet[20..]);
        packet[22..24].copy_from_slice(&sum.to_be_bytes());
        let (source, destination, request) = echo_in_packet(&packet).unwrap();
        assert_eq!((source, destination), (to, from));
        assert_eq!(
            (request.id, request.seq, request.data.as_slice()),
            (7, 9, &b"ping"[..])
        );
        let v6_from: IpAddr = "fd00:736f:636b::1".parse().unwrap();
        let v6_to: IpAddr = "fd00::80".parse().unwrap();
        let mut packet6 = echo_reply_packet(v6_to, v6_from, 1, 2, b"x");
        assert_eq!(packet6.len(), 40 + 9);
        packet6[40] = 128;
        let (source, destination, _) = echo_in_packet(&packet6).unwrap();
        assert_eq!((source, destination), (v6_to, v6_from));
        for cut in 0..packet.len() {
            let _ = echo_in_packet(&packet[..cut]);
        }
    }

    #[test]
    fn icmpv6_replies_sum_with_their_pseudo_header() {
        let from: IpAddr = "fd53:6f63:6b73::2".parse().unwrap();
        let to: IpAddr = "fd53:6f63:6b73::1".parse().unwrap();
        let reply = echo_reply(from, to, 9, 3, b"data");
        assert_eq!(reply[0], 129);
        let (IpAddr::V6(a), IpAddr::V6(b)) = (from, to) else {
            unreachable!()
        };
        let mut pseudo = a.octets().to_vec();
        pseudo.extend_from_slice(&b.octets());
        pseudo.extend_from_slice(&(reply.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(&reply);
        assert_eq!(internet_checksum(&pseudo), 0);
    }
}
