//! RFC 1929, Username/Password Authentication for SOCKS V5.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use socksgate_proto::password::{Credentials, Status};
use socksgate_proto::{DecodeError, ProtocolError, Wire};
use support::{assert_wire, needed};

mod section_2_initial_negotiation {
    use super::*;

    #[test]
    fn request_carries_length_prefixed_username_and_password() {
        let bytes = [
            0x01, 5, b'a', b'l', b'i', b'c', b'e', 7, b'h', b'u', b'n', b't', b'e', b'r', b'2',
        ];
        assert_wire(&bytes, &Credentials::new("alice", "hunter2").unwrap());
    }

    #[test]
    fn longest_username_and_password() {
        let (user, pass) = ("u".repeat(255), "p".repeat(255));
        let mut bytes = vec![0x01, 255];
        bytes.extend(user.as_bytes());
        bytes.push(255);
        bytes.extend(pass.as_bytes());
        assert_wire(&bytes, &Credentials::new(&user, &pass).unwrap());
    }

    #[test]
    fn empty_fields_decode_for_the_authenticator_to_refuse() {
        let credentials = Credentials::decode_exact(&[0x01, 0, 0]).unwrap();
        assert!(credentials.username().is_empty() && credentials.password().is_empty());
    }

    #[test]
    fn wrong_subnegotiation_version_is_invalid() {
        assert_eq!(
            Credentials::decode(&[0x05, 1, b'a', 1, b'b']),
            Err(DecodeError::Invalid(ProtocolError::UnsupportedVersion(5)))
        );
    }

    #[test]
    fn truncated_request_reports_the_missing_bytes() {
        assert_eq!(Credentials::decode(&[0x01, 5, b'a']), Err(needed(4)));
        assert_eq!(Credentials::decode(&[0x01, 1, b'a', 3]), Err(needed(3)));
    }

    #[test]
    fn status_zero_is_success_and_anything_else_failure() {
        assert_wire(&[0x01, 0x00], &Status::SUCCESS);
        assert_wire(&[0x01, 0x01], &Status::FAILURE);
        for value in 0..=255u8 {
            let status = Status(value);
            assert_wire(&[0x01, value], &status);
            assert_eq!(status.is_success(), value == 0);
        }
        assert_eq!(
            Status::decode_exact(&[0x01, 0x00, 0x00]),
            Err(DecodeError::Invalid(ProtocolError::TrailingBytes))
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let credentials =
            Credentials::decode_exact(&[0x01, 1, b'u', 6, b's', b'e', b'c', b'r', b'e', b't'])
                .unwrap();
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
