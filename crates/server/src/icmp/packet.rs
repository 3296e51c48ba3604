//! ICMP (RFC 792) and ICMPv6 (RFC 4443) echo messages as they leave and arrive, and the
//! error messages that quote a probe. Pure: bytes in, answers out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use socksgate_proto::icmp::internet_checksum;

/// What came back for one of a session's probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The target answered the echo request.
    Echo {
        seq: u16,
        /// The reply's TTL (hop limit), 0 when the socket did not tell.
        ttl: u8,
        data: Vec<u8>,
    },
    /// A router dropped the probe when its TTL ran out.
    TimeExceeded { seq: u16, from: IpAddr },
    /// The target or a router reported the destination unreachable (`code` as received).
    Unreachable { seq: u16, code: u8, from: IpAddr },
}

/// The message types of one IP version.
struct Types {
    echo_request: u8,
    echo_reply: u8,
    unreachable: u8,
    time_exceeded: u8,
}

const V4: Types = Types {
    echo_request: 8,
    echo_reply: 0,
    unreachable: 3,
    time_exceeded: 11,
};

const V6: Types = Types {
    echo_request: 128,
    echo_reply: 129,
    unreachable: 1,
    time_exceeded: 3,
};

fn types(v6: bool) -> &'static Types {
    if v6 {
        &V6
    } else {
        &V4
    }
}

/// The IPv6 next-header number of ICMPv6, and IPv4's protocol number of ICMP.
const NEXT_HEADER_ICMPV6: u8 = 58;
const PROTOCOL_ICMP: u8 = 1;
const IPV6_HEADER: usize = 40;

/// An echo request. The checksum is filled in for ICMP; for ICMPv6 the kernel computes it
/// (it covers a pseudo-header with the source address, which only the kernel knows), and a
/// ping socket replaces `id` with its own.
pub(crate) fn echo_request(v6: bool, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(8 + data.len());
    message.extend_from_slice(&[types(v6).echo_request, 0, 0, 0]);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(data);
    if !v6 {
        let sum = internet_checksum(&message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    message
}

/// Which arriving messages belong to a session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filter {
    pub(crate) target: IpAddr,
    /// The echo identifier the session's probes carry; `None` on a ping socket, where the
    /// kernel delivers only the socket's own replies.
    pub(crate) id: Option<u16>,
}

impl Filter {
    fn is_ours(&self, id: u16) -> bool {
        self.id.is_none_or(|ours| ours == id)
    }
}

/// A packet from a raw IPv4 socket: the IP header, then the ICMP message.
pub(crate) fn parse_raw_v4(packet: &[u8], filter: &Filter) -> Option<Answer> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    if header_len < 20 || packet.len() < header_len {
        return None;
    }
    let ttl = packet[8];
    let source = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).ok()?);
    parse_message(false, &packet[header_len..], source.into(), ttl, filter)
}

/// An ICMP or ICMPv6 message (no IP header) from `source`, which arrived with `ttl`.
pub(crate) fn parse_message(
    v6: bool,
    message: &[u8],
    source: IpAddr,
    ttl: u8,
    filter: &Filter,
) -> Option<Answer> {
    let types = types(v6);
    let (&kind, rest) = message.split_first()?;
    let code = *rest.first()?;
    if kind == types.echo_reply {
        let (id, seq) = id_and_seq(message)?;
        if source != filter.target || !filter.is_ours(id) {
            return None;
        }
        let data = message[8..].to_vec();
        return Some(Answer::Echo { seq, ttl, data });
    }
    if kind != types.time_exceeded && kind != types.unreachable {
        return None;
    }
    // Errors quote the probe: its IP header, then at least the first 8 bytes of its ICMP
    // message (RFC 792; RFC 4443 §2.4 quotes as much as fits).
    let quoted = message.get(8..)?;
    let probe = quoted_probe(v6, quoted, filter.target)?;
    if probe.first() != Some(&types.echo_request) {
        return None;
    }
    let (id, seq) = id_and_seq(probe)?;
    if !filter.is_ours(id) {
        return None;
    }
    Some(if kind == types.time_exceeded {
        Answer::TimeExceeded { seq, from: source }
    } else {
        Answer::Unreachable {
            seq,
            code,
            from: source,
        }
    })
}

/// The ICMP message of a quoted probe, when the quoted packet went to `target` and is ICMP.
fn quoted_probe(v6: bool, quoted: &[u8], target: IpAddr) -> Option<&[u8]> {
    if v6 {
        let header = quoted.get(..IPV6_HEADER)?;
        let destination = Ipv6Addr::from(<[u8; 16]>::try_from(&header[24..40]).ok()?);
        (header[6] == NEXT_HEADER_ICMPV6 && IpAddr::from(destination) == target)
            .then(|| &quoted[IPV6_HEADER..])
    } else {
        let header_len = usize::from(quoted.first()? & 0x0f) * 4;
        let header = quoted.get(..header_len.max(20))?;
        let destination = Ipv4Addr::from(<[u8; 4]>::try_from(&header[16..20]).ok()?);
        (header[9] == PROTOCOL_ICMP && IpAddr::from(destination) == target)
            .then(|| &quoted[header.len()..])
    }
}

/// An error a ping socket queued for one of its probes (`IP_RECVERR`/`IPV6_RECVERR`): the
/// ICMP type and code, the reporting node, and the probe's own ICMP message as quoted.
pub(crate) fn queued_error(
    v6: bool,
    kind: u8,
    code: u8,
    from: IpAddr,
    probe: &[u8],
) -> Option<Answer> {
    let types = types(v6);
    let (_, seq) = id_and_seq(probe)?;
    if kind == types.time_exceeded {
        Some(Answer::TimeExceeded { seq, from })
    } else if kind == types.unreachable {
        Some(Answer::Unreachable { seq, code, from })
    } else {
        None
    }
}

fn id_and_seq(message: &[u8]) -> Option<(u16, u16)> {
    let header = message.get(..8)?;
    Some((
        u16::from_be_bytes([header[4], header[5]]),
        u16::from_be_bytes([header[6], header[7]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 2);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

    fn filter(id: Option<u16>) -> Filter {
        Filter {
            target: TARGET.into(),
            id,
        }
    }

    /// An IPv4 header from `source` to `destination` carrying `protocol`.
    fn ipv4(source: Ipv4Addr, destination: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, PROTOCOL_ICMP, 0, 0];
        packet.extend_from_slice(&source.octets());
        packet.extend_from_slice(&destination.octets());
        packet.extend_from_slice(payload);
        packet
    }

    #[test]
    fn rfc_1071_checksum_of_an_echo_request_verifies_to_zero() {
        let request = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(&request[..2], &[8, 0]);
        assert_eq!(
            internet_checksum(&request),
            0,
            "a message with its checksum sums to 0"
        );
        // RFC 1071 §3's worked example: 0x0001 f203 f4f5 f6f7 sums to 0xddf2.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn icmpv6_echo_requests_leave_the_checksum_to_the_kernel() {
        let request = echo_request(true, 1, 2, b"x");
        assert_eq!(request, [128, 0, 0, 0, 0, 1, 0, 2, b'x']);
    }

    #[test]
    fn an_echo_reply_from_the_target_with_our_id_is_ours() {
        let mut reply = echo_request(false, 0x1234, 7, b"payload");
        reply[0] = 0;
        let packet = ipv4(TARGET, ROUTER, 61, &reply);
        assert_eq!(
            parse_raw_v4(&packet, &filter(Some(0x1234))),
            Some(Answer::Echo {
                seq: 7,
                ttl: 61,
                data: b"payload".to_vec()
            })
        );
        assert_eq!(
            parse_raw_v4(&packet, &filter(Some(0x4321))),
            None,
            "other id"
        );
        let elsewhere = ipv4(ROUTER, ROUTER, 61, &reply);
        assert_eq!(
            parse_raw_v4(&elsewhere, &filter(None)),
            None,
            "other source"
        );
    }

    #[test]
    fn time_exceeded_quoting_our_probe_names_the_router() {
        let probe = echo_request(false, 0x1234, 3, b"data");
        let quoted = ipv4(ROUTER, TARGET, 1, &probe[..8]);
        let mut error = vec![11, 0, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&quoted);
        let packet = ipv4(ROUTER, ROUTER, 64, &error);
        assert_eq!(
            parse_raw_v4(&packet, &filter(Some(0x1234))),
            Some(Answer::TimeExceeded {
                seq: 3,
                from: ROUTER.into()
            })
        );
        error[0] = 3;
        error[1] = 1;
        let packet = ipv4(ROUTER, ROUTER, 64, &error);
        assert_eq!(
            parse_raw_v4(&packet, &filter(Some(0x1234))),
            Some(Answer::Unreachable {
                seq: 3,
                code: 1,
                from: ROUTER.into()
            })
        );
        assert_eq!(parse_raw_v4(&packet, &filter(Some(1))), None, "other id");
    }

    #[test]
    fn errors_about_other_destinations_or_truncated_quotes_are_not_ours() {
        let probe = echo_request(false, 0x1234, 3, b"");
        let quoted = ipv4(ROUTER, ROUTER, 1, &probe);
        let mut error = vec![11, 0, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&quoted);
        assert_eq!(
            parse_raw_v4(&ipv4(ROUTER, ROUTER, 64, &error), &filter(None)),
            None
        );
        for cut in 0..error.len() {
            // Any truncation is simply not an answer (no panic).
            let packet = ipv4(ROUTER, ROUTER, 64, &error[..cut]);
            assert_eq!(parse_raw_v4(&packet, &filter(None)), None);
        }
        assert_eq!(parse_raw_v4(&[0x4f], &filter(None)), None);
    }

    #[test]
    fn icmpv6_time_exceeded_quotes_an_ipv6_header() {
        let target: Ipv6Addr = "fd00::2".parse().unwrap();
        let router: Ipv6Addr = "fd00::1".parse().unwrap();
        let mut quoted = vec![0x60, 0, 0, 0, 0, 8, NEXT_HEADER_ICMPV6, 1];
        quoted.extend_from_slice(&router.octets());
        quoted.extend_from_slice(&target.octets());
        quoted.extend_from_slice(&echo_request(true, 9, 5, b""));
        let mut error = vec![3, 0, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&quoted);
        let filter = Filter {
            target: target.into(),
            id: Some(9),
        };
        assert_eq!(
            parse_message(true, &error, router.into(), 64, &filter),
            Some(Answer::TimeExceeded {
                seq: 5,
                from: router.into()
            })
        );
    }

    proptest::proptest! {
        /// Whatever reaches a raw socket (anyone can send ICMP to the host), parsing never
        /// panics, and nothing but an echo reply from the target is an echo answer.
        #[test]
        fn arbitrary_packets_never_panic(
            packet in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            v6 in proptest::prelude::any::<bool>(),
        ) {
            let filter = filter(Some(0x1234));
            if let Some(Answer::Echo { .. }) = parse_raw_v4(&packet, &filter) {
                proptest::prop_assert_eq!(&packet[12..16], &TARGET.octets()[..]);
            }
            let _ = parse_message(v6, &packet, ROUTER.into(), 1, &filter);
            let _ = queued_error(v6, packet.first().copied().unwrap_or(0), 0, ROUTER.into(), &packet);
        }
    }

    #[test]
    fn queued_errors_carry_the_probe_header() {
        let probe = echo_request(false, 77, 12, b"");
        assert_eq!(
            queued_error(false, 3, 13, ROUTER.into(), &probe),
            Some(Answer::Unreachable {
                seq: 12,
                code: 13,
                from: ROUTER.into()
            })
        );
        assert_eq!(queued_error(false, 5, 0, ROUTER.into(), &probe), None);
        assert_eq!(queued_error(false, 11, 0, ROUTER.into(), &probe[..7]), None);
    }
}
