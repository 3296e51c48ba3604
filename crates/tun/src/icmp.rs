//! ICMP echo requests a program sends into the TUN device, and the replies written back to
//! it (RFC 792, RFC 4443): the proxy sends the real probes.

use std::net::IpAddr;

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

/// The echo request in an ICMP (or, with `v6`, ICMPv6) message; `None` for anything else.
pub(crate) fn parse_echo_request(v6: bool, message: &[u8]) -> Option<EchoRequest> {
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
pub(crate) fn echo_reply(from: IpAddr, to: IpAddr, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
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
            checksum(&pseudo)
        }
        _ => checksum(&message),
    };
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    message
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
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
        assert_eq!(checksum(&reply), 0);
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
        assert_eq!(checksum(&pseudo), 0);
    }
}
