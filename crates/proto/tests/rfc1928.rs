//! RFC 1928, SOCKS Protocol Version 5: every message, by section, with byte vectors laid out
//! as in the RFC's diagrams.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::{Ipv4Addr, Ipv6Addr};

mod support;

use socksgate_proto::udp::{Frag, UdpHeader};
use socksgate_proto::v5::{Greeting, MethodSelection, Request, Response};
use socksgate_proto::{
    AddrType, Address, Command, DecodeError, DomainName, Host, Method, ProtocolError, Reply, Wire,
};
use support::{assert_wire, needed};

fn v4(a: [u8; 4], port: u16) -> Address {
    Address {
        host: Host::Ip(Ipv4Addr::from(a).into()),
        port,
    }
}

mod section_3_procedure_for_tcp_based_clients {
    use super::*;

    #[test]
    fn greeting_lists_methods_in_order() {
        let greeting = Greeting {
            methods: vec![Method::NO_AUTH, Method::GSSAPI, Method::PASSWORD],
        };
        assert_wire(&[0x05, 0x03, 0x00, 0x01, 0x02], &greeting);
    }

    #[test]
    fn greeting_with_unknown_and_private_methods_round_trips() {
        let greeting = Greeting {
            methods: vec![Method(0x03), Method(0x80), Method(0xfe)],
        };
        assert_wire(&[0x05, 0x03, 0x03, 0x80, 0xfe], &greeting);
    }

    #[test]
    fn greeting_with_255_methods_round_trips() {
        let methods: Vec<Method> = (0..=254).map(Method).collect();
        let mut bytes = vec![0x05, 0xff];
        bytes.extend(0..=254u8);
        assert_wire(&bytes, &Greeting { methods });
    }

    #[test]
    fn greeting_with_no_methods_is_invalid() {
        assert_eq!(
            Greeting::decode(&[0x05, 0x00]),
            Err(DecodeError::Invalid(ProtocolError::NoMethodsOffered))
        );
    }

    #[test]
    fn greeting_reports_missing_method_bytes() {
        assert_eq!(Greeting::decode(&[0x05, 0x03, 0x00]), Err(needed(2)));
    }

    #[test]
    fn greeting_of_another_version_is_invalid() {
        assert_eq!(
            Greeting::decode(&[0x04, 0x01, 0x00]),
            Err(DecodeError::Invalid(ProtocolError::UnsupportedVersion(4)))
        );
    }

    #[test]
    fn method_selection_is_two_bytes() {
        assert_wire(
            &[0x05, 0x02],
            &MethodSelection {
                method: Method::PASSWORD,
            },
        );
        assert_wire(
            &[0x05, 0xff],
            &MethodSelection {
                method: Method::NO_ACCEPTABLE,
            },
        );
        assert_eq!(
            MethodSelection::decode_exact(&[0x05, 0x00, 0x00]),
            Err(DecodeError::Invalid(ProtocolError::TrailingBytes))
        );
    }

    #[test]
    fn every_method_value_round_trips() {
        for value in 0..=255u8 {
            let selection = MethodSelection {
                method: Method(value),
            };
            assert_wire(&[0x05, value], &selection);
        }
        assert_eq!(Method::NO_AUTH.0, 0x00);
        assert_eq!(Method::GSSAPI.0, 0x01);
        assert_eq!(Method::PASSWORD.0, 0x02);
        assert_eq!(Method::NO_ACCEPTABLE.0, 0xff);
        assert_eq!(format!("{:?}", Method(0x80)), "Method(0x80)");
        assert_eq!(format!("{:?}", Method::GSSAPI), "Method::GSSAPI");
    }
}

mod section_4_requests {
    use super::*;

    #[test]
    fn connect_to_ipv4() {
        let request = Request {
            command: Command::CONNECT,
            target: v4([192, 0, 2, 1], 80),
        };
        assert_wire(
            &[0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x00, 0x50],
            &request,
        );
    }

    #[test]
    fn bind_and_udp_associate_commands() {
        assert_eq!(Command::CONNECT.0, 0x01);
        assert_eq!(Command::BIND.0, 0x02);
        assert_eq!(Command::UDP_ASSOCIATE.0, 0x03);
        let request = Request {
            command: Command::UDP_ASSOCIATE,
            target: Address::unspecified(),
        };
        assert_wire(&[0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0], &request);
    }

    #[test]
    fn every_command_value_round_trips() {
        for value in 0..=255u8 {
            let request = Request {
                command: Command(value),
                target: v4([127, 0, 0, 1], 1),
            };
            assert_wire(&[0x05, value, 0x00, 0x01, 127, 0, 0, 1, 0, 1], &request);
        }
    }

    #[test]
    fn reserved_byte_is_ignored_on_decode() {
        let (request, used) =
            Request::decode(&[0x05, 0x01, 0xaa, 0x01, 127, 0, 0, 1, 0, 80]).unwrap();
        assert_eq!(used, 10);
        assert_eq!(request.target, v4([127, 0, 0, 1], 80));
    }

    #[test]
    fn request_stops_at_its_end() {
        let bytes = [
            0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 80, b'G', b'E', b'T',
        ];
        assert_eq!(Request::decode(&bytes).unwrap().1, 10);
    }
}

mod section_5_addressing {
    use super::*;

    #[test]
    fn ipv4_address() {
        assert_wire(&[0x01, 10, 0, 0, 1, 0x1f, 0x90], &v4([10, 0, 0, 1], 8080));
    }

    #[test]
    fn ipv6_address() {
        let mut bytes = vec![0x04];
        bytes.extend(Ipv6Addr::LOCALHOST.octets());
        bytes.extend([0x01, 0xbb]);
        let address = Address {
            host: Host::Ip(Ipv6Addr::LOCALHOST.into()),
            port: 443,
        };
        assert_wire(&bytes, &address);
    }

    #[test]
    fn domain_name_has_a_length_byte_and_no_nul() {
        let mut bytes = vec![0x03, 11];
        bytes.extend(b"example.com");
        bytes.extend([0x00, 0x50]);
        let address = Address::domain(DomainName::new("example.com").unwrap(), 80);
        assert_wire(&bytes, &address);
    }

    #[test]
    fn longest_domain_name_is_255_bytes() {
        let name = "a".repeat(255);
        let mut bytes = vec![0x03, 255];
        bytes.extend(name.as_bytes());
        bytes.extend([0x00, 0x01]);
        assert_wire(&bytes, &Address::domain(DomainName::new(&name).unwrap(), 1));
    }

    #[test]
    fn empty_domain_name_is_invalid() {
        assert_eq!(
            Address::decode(&[0x03, 0x00, 0x00, 0x50]),
            Err(DecodeError::Invalid(ProtocolError::InvalidDomainName))
        );
    }

    #[test]
    fn domain_name_with_control_bytes_is_invalid() {
        assert_eq!(
            Address::decode(&[0x03, 0x03, b'a', 0x00, b'b', 0x00, 0x50]),
            Err(DecodeError::Invalid(ProtocolError::InvalidDomainName))
        );
    }

    #[test]
    fn unknown_address_types_are_invalid() {
        for atyp in (0..=255u8).filter(|t| ![0x01, 0x03, 0x04].contains(t)) {
            assert_eq!(
                Address::decode(&[atyp, 0, 0, 0, 0, 0, 0]),
                Err(DecodeError::Invalid(ProtocolError::UnsupportedAddressType(
                    atyp
                )))
            );
        }
        assert_eq!(
            AddrType::KNOWN,
            [AddrType::IPV4, AddrType::DOMAIN, AddrType::IPV6]
        );
    }
}

mod section_6_replies {
    use super::*;

    #[test]
    fn every_reply_code_round_trips() {
        let named = [
            (Reply::SUCCEEDED, 0x00),
            (Reply::GENERAL_FAILURE, 0x01),
            (Reply::NOT_ALLOWED, 0x02),
            (Reply::NETWORK_UNREACHABLE, 0x03),
            (Reply::HOST_UNREACHABLE, 0x04),
            (Reply::CONNECTION_REFUSED, 0x05),
            (Reply::TTL_EXPIRED, 0x06),
            (Reply::COMMAND_NOT_SUPPORTED, 0x07),
            (Reply::ADDRESS_TYPE_NOT_SUPPORTED, 0x08),
        ];
        for (reply, value) in named {
            assert_eq!(reply.0, value);
            assert!(reply.name().is_some());
        }
        for value in 0..=255u8 {
            let response = Response {
                reply: Reply(value),
                bound: v4([127, 0, 0, 1], 1080),
            };
            assert_wire(
                &[0x05, value, 0x00, 0x01, 127, 0, 0, 1, 0x04, 0x38],
                &response,
            );
        }
        assert_eq!(Reply(0x09).to_string(), "unknown (0x09)");
        assert_eq!(Reply::CONNECTION_REFUSED.to_string(), "connection refused");
    }

    #[test]
    fn reply_with_domain_bound_address() {
        let mut bytes = vec![0x05, 0x00, 0x00, 0x03, 4];
        bytes.extend(b"host");
        bytes.extend([0x00, 0x15]);
        let response = Response {
            reply: Reply::SUCCEEDED,
            bound: Address::domain(DomainName::new("host").unwrap(), 21),
        };
        assert_wire(&bytes, &response);
    }

    #[test]
    fn reply_reports_exactly_the_missing_bytes() {
        // After ATYP=IPv6 the decoder knows 16 + 2 bytes follow.
        assert_eq!(Response::decode(&[0x05, 0x00, 0x00, 0x04]), Err(needed(18)));
        assert_eq!(Response::decode(&[0x05, 0x00, 0x00, 0x03]), Err(needed(1)));
        assert_eq!(
            Response::decode(&[0x05, 0x00, 0x00, 0x03, 5]),
            Err(needed(7))
        );
    }
}

mod section_7_udp {
    use super::*;

    #[test]
    fn header_precedes_the_data() {
        let mut datagram = vec![0x00, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x35];
        datagram.extend(b"query");
        let (header, data) = UdpHeader::split(&datagram).unwrap();
        assert_eq!(header, UdpHeader::new(v4([127, 0, 0, 1], 53)));
        assert_eq!(data, b"query");
        assert_eq!(header.to_bytes(), datagram[..10]);
        assert_eq!(header.encoded_len(), 10);
    }

    #[test]
    fn frag_numbers_and_end_of_sequence() {
        assert!(Frag::STANDALONE.is_standalone());
        let middle = Frag::fragment(3, false).unwrap();
        assert_eq!(
            (middle.0, middle.position(), middle.is_last()),
            (0x03, 3, false)
        );
        let last = Frag::fragment(4, true).unwrap();
        assert_eq!((last.0, last.position(), last.is_last()), (0x84, 4, true));
        assert_eq!(Frag::fragment(0, true), None);
        assert_eq!(Frag::fragment(128, false), None);
        for value in 0..=255u8 {
            let header = UdpHeader {
                frag: Frag(value),
                address: v4([10, 1, 2, 3], 9),
            };
            assert_wire(&[0x00, 0x00, value, 0x01, 10, 1, 2, 3, 0x00, 0x09], &header);
        }
    }

    #[test]
    fn truncated_header_is_incomplete() {
        assert_eq!(
            UdpHeader::split(&[0x00, 0x00, 0x00, 0x01, 1]),
            Err(needed(5))
        );
    }
}
