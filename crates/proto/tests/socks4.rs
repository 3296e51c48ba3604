//! SOCKS4 (SOCKS4.protocol) and its SOCKS4a extension (SOCKS4A.protocol).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::net::Ipv4Addr;

use socksgate_proto::v4::{Destination, Reply, Request, Response, MAX_USER_ID_LEN};
use socksgate_proto::{Command, DecodeError, DomainName, ProtocolError, Wire};
use support::{assert_wire, needed};

mod socks4_connect {
    use super::*;

    #[test]
    fn request_with_userid() {
        let bytes = [0x04, 0x01, 0x00, 0x50, 192, 0, 2, 7, b'b', b'o', b'b', 0x00];
        let request = Request {
            command: Command::CONNECT,
            port: 80,
            destination: Destination::Ip(Ipv4Addr::new(192, 0, 2, 7)),
            user_id: b"bob".to_vec(),
        };
        assert_wire(&bytes, &request);
        assert!(!request.is_socks4a());
        assert_eq!(request.target().to_string(), "192.0.2.7:80");
    }

    #[test]
    fn request_with_empty_userid() {
        let bytes = [0x04, 0x02, 0x00, 0x15, 10, 0, 0, 1, 0x00];
        let request = Request {
            command: Command::BIND,
            port: 21,
            destination: Destination::Ip(Ipv4Addr::new(10, 0, 0, 1)),
            user_id: vec![],
        };
        assert_wire(&bytes, &request);
    }

    #[test]
    fn every_command_value_decodes() {
        for value in 0..=255u8 {
            let (request, _) = Request::decode(&[0x04, value, 0, 1, 1, 2, 3, 4, 0]).unwrap();
            assert_eq!(request.command, Command(value));
        }
    }

    #[test]
    fn userid_without_nul_is_incomplete_then_too_long() {
        let mut bytes = vec![0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4];
        bytes.extend(vec![b'u'; MAX_USER_ID_LEN]);
        assert_eq!(Request::decode(&bytes), Err(needed(1)));
        bytes.push(b'u');
        assert_eq!(
            Request::decode(&bytes),
            Err(DecodeError::Invalid(ProtocolError::FieldTooLong("USERID")))
        );
    }

    #[test]
    fn request_stops_at_its_nul() {
        let bytes = [0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4, 0x00, b'G', b'E', b'T'];
        assert_eq!(Request::decode(&bytes).unwrap().1, 9);
    }
}

mod socks4_reply {
    use super::*;

    #[test]
    fn reply_codes_90_to_93() {
        assert_eq!(Reply::GRANTED.0, 90);
        assert_eq!(Reply::REJECTED.0, 91);
        assert_eq!(Reply::NO_IDENTD.0, 92);
        assert_eq!(Reply::IDENTD_MISMATCH.0, 93);
        for value in 0..=255u8 {
            let response = Response {
                reply: Reply(value),
                port: 0x1234,
                ip: Ipv4Addr::new(127, 0, 0, 1),
            };
            assert_wire(&[0x00, value, 0x12, 0x34, 127, 0, 0, 1], &response);
            assert_eq!(response.reply.is_success(), value == 90);
        }
    }

    #[test]
    fn reply_is_eight_bytes_exactly() {
        assert_eq!(
            Response::decode_exact(&[0x00, 90, 0, 0, 0, 0, 0, 0, 0xff]),
            Err(DecodeError::Invalid(ProtocolError::TrailingBytes))
        );
    }

    #[test]
    fn reply_version_four_is_tolerated() {
        let (response, used) = Response::decode(&[0x04, 90, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!((response.reply, used), (Reply::GRANTED, 8));
        assert_eq!(
            Response::decode(&[0x05, 90, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::Invalid(ProtocolError::UnsupportedVersion(5)))
        );
    }
}

mod socks4a {
    use super::*;

    #[test]
    fn domain_follows_userid_when_dstip_is_0_0_0_x() {
        let mut bytes = vec![0x04, 0x01, 0x01, 0xbb, 0, 0, 0, 1, b'u', 0x00];
        bytes.extend(b"example.org\0");
        let request = Request {
            command: Command::CONNECT,
            port: 443,
            destination: Destination::Domain(DomainName::new("example.org").unwrap()),
            user_id: b"u".to_vec(),
        };
        assert_wire(&bytes, &request);
        assert!(request.is_socks4a());
        assert_eq!(request.target().to_string(), "example.org:443");
    }

    #[test]
    fn any_nonzero_last_octet_means_socks4a() {
        let mut bytes = vec![0x04, 0x01, 0x00, 0x50, 0, 0, 0, 0xff, 0x00];
        bytes.extend(b"h\0");
        let (request, used) = Request::decode(&bytes).unwrap();
        assert!(request.is_socks4a());
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn zero_address_is_plain_socks4() {
        let (request, _) = Request::decode(&[0x04, 0x01, 0, 80, 0, 0, 0, 0, 0x00]).unwrap();
        assert_eq!(request.destination, Destination::Ip(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn empty_or_overlong_domain_is_invalid() {
        assert_eq!(
            Request::decode(&[0x04, 0x01, 0, 80, 0, 0, 0, 1, 0x00, 0x00]),
            Err(DecodeError::Invalid(ProtocolError::MissingDomainName))
        );
        let mut bytes = vec![0x04, 0x01, 0, 80, 0, 0, 0, 1, 0x00];
        bytes.extend(vec![b'a'; 256]);
        assert_eq!(
            Request::decode(&bytes),
            Err(DecodeError::Invalid(ProtocolError::FieldTooLong(
                "SOCKS4a host name"
            )))
        );
    }

    #[test]
    fn domain_without_nul_yet_is_incomplete() {
        assert_eq!(
            Request::decode(&[0x04, 0x01, 0, 80, 0, 0, 0, 1, 0x00, b'a', b'b']),
            Err(needed(1))
        );
    }
}
