//! RFC 1961, GSS-API Authentication Method for SOCKS Version 5: message framing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use socksgate_proto::gssapi::{Message, MessageType, ProtectionLevel, MAX_TOKEN_LEN};
use socksgate_proto::{DecodeError, ProtocolError, Wire};
use support::{assert_wire, needed};

fn message(kind: MessageType, token: &[u8]) -> Message {
    Message::new(kind, token.to_vec()).unwrap()
}

#[test]
fn section_3_4_client_initial_token() {
    assert_wire(
        &[0x01, 0x01, 0x00, 0x03, 0xaa, 0xbb, 0xcc],
        &message(MessageType::AUTHENTICATION, &[0xaa, 0xbb, 0xcc]),
    );
}

#[test]
fn section_3_7_abort_is_two_bytes() {
    assert_wire(&[0x01, 0xff], &Message::abort());
    assert_eq!(Message::new(MessageType::ABORT, vec![]), None);
}

#[test]
fn section_4_3_protection_level_message() {
    assert_wire(
        &[0x01, 0x02, 0x00, 0x02, 0x10, 0x20],
        &message(MessageType::PROTECTION, &[0x10, 0x20]),
    );
    assert_eq!(ProtectionLevel::INTEGRITY.0, 1);
    assert_eq!(ProtectionLevel::CONFIDENTIALITY.0, 2);
    assert_eq!(ProtectionLevel::SELECTIVE.0, 3);
    assert_eq!(ProtectionLevel(9).name(), None);
}

#[test]
fn section_5_encapsulated_user_data() {
    assert_wire(
        &[0x01, 0x03, 0x00, 0x00],
        &message(MessageType::ENCAPSULATED, &[]),
    );
}

#[test]
fn longest_token_is_65535_bytes() {
    let token = vec![0x5a; MAX_TOKEN_LEN];
    let mut bytes = vec![0x01, 0x03, 0xff, 0xff];
    bytes.extend(&token);
    assert_wire(&bytes, &message(MessageType::ENCAPSULATED, &token));
    assert_eq!(
        Message::new(MessageType::ENCAPSULATED, vec![0; MAX_TOKEN_LEN + 1]),
        None
    );
}

#[test]
fn unknown_message_types_and_versions_are_invalid() {
    for mtyp in (0..=255u8).filter(|t| ![0x01, 0x02, 0x03, 0xff].contains(t)) {
        assert_eq!(
            Message::decode(&[0x01, mtyp, 0x00, 0x00]),
            Err(DecodeError::Invalid(ProtocolError::UnsupportedMessageType(
                mtyp
            )))
        );
    }
    assert_eq!(
        Message::decode(&[0x05, 0x01, 0x00, 0x00]),
        Err(DecodeError::Invalid(ProtocolError::UnsupportedVersion(5)))
    );
}

#[test]
fn truncated_token_reports_the_missing_bytes() {
    assert_eq!(
        Message::decode(&[0x01, 0x01, 0x01, 0x00, 0xaa]),
        Err(needed(255))
    );
}

#[test]
fn debug_shows_token_length_not_key_material() {
    let shown = format!("{:?}", message(MessageType::AUTHENTICATION, b"KEYMATERIAL"));
    assert!(
        !shown.contains("75") && shown.contains("token_len: 11"),
        "{shown}"
    );
}
