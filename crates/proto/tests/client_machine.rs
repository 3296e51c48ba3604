//! The client handshake machine: RFC 1928 §3–6, RFC 1929 §2, RFC 1961 §3, SOCKS4 and SOCKS4a.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use socksgate_proto::client::{ClientError, ClientEvent, ClientHandshake, ClientProtocol};
use socksgate_proto::password::Credentials;
use socksgate_proto::{v4, Address, Command, Method, ProtocolError, Reply, Step};
use support::drive::drive;

fn target(text: &str) -> Address {
    text.parse().unwrap()
}

fn with_password() -> ClientProtocol {
    ClientProtocol::Socks5 {
        credentials: Some(Credentials::new("alice", "pw").unwrap()),
        gssapi: false,
    }
}

const GRANTED_V4_BOUND: [u8; 10] = [0x05, 0x00, 0x00, 0x01, 10, 0, 0, 2, 0x1f, 0x90];

#[test]
fn rfc1928_section_3_greeting_offers_no_auth_then_what_it_has_credentials_for() {
    let handshake = ClientHandshake::new(with_password(), Command::CONNECT, target("h:1")).unwrap();
    assert_eq!(handshake.pending_output(), [0x05, 0x02, 0x00, 0x02]);
    let gss = ClientProtocol::Socks5 {
        credentials: None,
        gssapi: true,
    };
    let handshake = ClientHandshake::new(gss, Command::CONNECT, target("h:1")).unwrap();
    assert_eq!(handshake.pending_output(), [0x05, 0x02, 0x00, 0x01]);
}

#[test]
fn rfc1928_section_4_and_6_connect_by_name_is_granted_and_data_follows() {
    let mut handshake = ClientHandshake::new(
        ClientProtocol::socks5(),
        Command::CONNECT,
        target("example.com:80"),
    )
    .unwrap();
    let mut input = vec![0x05, 0x00];
    input.extend(GRANTED_V4_BOUND);
    input.extend(b"220 banner");
    let transcript = drive(&mut handshake, [&input[..]]);
    assert!(transcript.established);
    assert_eq!(transcript.leftover, b"220 banner");
    assert_eq!(
        transcript.events[1],
        ClientEvent::Granted {
            bound: target("10.0.0.2:8080")
        }
    );
    let mut request = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 11];
    request.extend(b"example.com");
    request.extend([0x00, 0x50]);
    assert_eq!(transcript.output, request);
}

#[test]
fn rfc1928_section_6_every_failure_code_is_reported() {
    for code in 1..=0x08u8 {
        let mut handshake = ClientHandshake::new(
            ClientProtocol::socks5(),
            Command::CONNECT,
            target("[::1]:22"),
        )
        .unwrap();
        handshake.feed(&[0x05, 0x00]).unwrap();
        let reply = [0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        let error = handshake.feed(&reply).unwrap_err();
        assert_eq!(error, ClientError::Rejected(Reply(code)));
        assert!(handshake.is_closed());
        assert!(!error.to_string().contains("unknown"), "{error}");
    }
}

#[test]
fn rfc1928_section_3_no_acceptable_method() {
    let mut handshake =
        ClientHandshake::new(ClientProtocol::socks5(), Command::CONNECT, target("h:1")).unwrap();
    assert_eq!(
        handshake.feed(&[0x05, 0xff]),
        Err(ClientError::NoAcceptableMethod)
    );
}

#[test]
fn rfc1928_section_3_a_method_not_offered_is_a_server_error() {
    let mut handshake =
        ClientHandshake::new(ClientProtocol::socks5(), Command::CONNECT, target("h:1")).unwrap();
    assert_eq!(
        handshake.feed(&[0x05, 0x02]),
        Err(ClientError::UnexpectedMethod(Method::PASSWORD))
    );
}

#[test]
fn rfc1928_section_6_bind_reports_listening_address_then_peer() {
    let mut handshake =
        ClientHandshake::new(ClientProtocol::socks5(), Command::BIND, target("0.0.0.0:0")).unwrap();
    let mut input = vec![0x05, 0x00];
    input.extend(GRANTED_V4_BOUND);
    input.extend([0x05, 0x00, 0x00, 0x01, 198, 51, 100, 7, 0x00, 0x14]);
    let transcript = drive(&mut handshake, input.chunks(1));
    assert!(transcript.established);
    assert_eq!(
        transcript.events[2],
        ClientEvent::PeerConnected {
            peer: target("198.51.100.7:20")
        }
    );
}

#[test]
fn rfc1928_reply_need_more_counts_the_whole_address() {
    let mut handshake =
        ClientHandshake::new(ClientProtocol::socks5(), Command::CONNECT, target("h:1")).unwrap();
    handshake.feed(&[0x05, 0x00]).unwrap();
    assert_eq!(
        handshake.feed(&[0x05, 0x00, 0x00, 0x04]),
        Ok(Step::NeedMore {
            at_least: 18.try_into().unwrap()
        })
    );
}

#[test]
fn rfc1929_section_2_credentials_are_sent_and_success_leads_to_the_request() {
    let mut handshake =
        ClientHandshake::new(with_password(), Command::CONNECT, target("127.0.0.1:80")).unwrap();
    handshake.output_written(4);
    handshake.feed(&[0x05, 0x02]).unwrap();
    assert_eq!(
        handshake.pending_output(),
        [0x01, 5, b'a', b'l', b'i', b'c', b'e', 2, b'p', b'w']
    );
    handshake.output_written(10);
    assert_eq!(
        handshake.feed(&[0x01, 0x00]),
        Ok(Step::Event {
            used: 2,
            event: ClientEvent::Authenticated
        })
    );
    assert_eq!(handshake.pending_output()[..2], [0x05, 0x01]);
}

#[test]
fn rfc1929_section_2_any_nonzero_status_is_failure() {
    let mut handshake =
        ClientHandshake::new(with_password(), Command::CONNECT, target("h:1")).unwrap();
    handshake.feed(&[0x05, 0x02]).unwrap();
    assert_eq!(
        handshake.feed(&[0x01, 0x7f]),
        Err(ClientError::AuthenticationFailed)
    );
}

#[test]
fn rfc1961_section_3_context_exchange_then_request() {
    let gss = ClientProtocol::Socks5 {
        credentials: None,
        gssapi: true,
    };
    let mut handshake = ClientHandshake::new(gss, Command::CONNECT, target("h:1")).unwrap();
    handshake.output_written(4);
    handshake.feed(&[0x05, 0x01]).unwrap();
    assert!(
        handshake.pending_output().is_empty(),
        "the caller sends the first token"
    );
    let token = socksgate_proto::gssapi::Message::new(
        socksgate_proto::gssapi::MessageType::AUTHENTICATION,
        vec![9; 4],
    )
    .unwrap();
    handshake.send_gssapi(&token).unwrap();
    assert_eq!(
        handshake.pending_output(),
        [0x01, 0x01, 0x00, 0x04, 9, 9, 9, 9]
    );
    handshake.output_written(8);
    assert!(matches!(
        handshake.feed(&[0x01, 0x01, 0x00, 0x01, 7]),
        Ok(Step::Event {
            event: ClientEvent::Gssapi(_),
            used: 5
        })
    ));
    handshake.gssapi_established().unwrap();
    assert_eq!(handshake.pending_output()[..2], [0x05, 0x01]);
}

#[test]
fn socks4_request_and_granted_reply() {
    let protocol = ClientProtocol::Socks4 {
        user_id: b"bob".to_vec(),
    };
    let mut handshake =
        ClientHandshake::new(protocol, Command::CONNECT, target("127.0.0.1:80")).unwrap();
    assert_eq!(
        handshake.pending_output(),
        [0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, b'b', b'o', b'b', 0x00]
    );
    let step = handshake
        .feed(&[0x00, 0x5a, 0, 0, 0, 0, 0, 0, b'x'])
        .unwrap();
    assert!(matches!(step, Step::Event { used: 8, .. }));
    assert!(handshake.is_established());
}

#[test]
fn socks4_rejection_is_reported_with_its_code() {
    let protocol = ClientProtocol::Socks4 { user_id: vec![] };
    let mut handshake =
        ClientHandshake::new(protocol, Command::CONNECT, target("127.0.0.1:80")).unwrap();
    assert_eq!(
        handshake.feed(&[0x00, 0x5d, 0, 0, 0, 0, 0, 0]),
        Err(ClientError::RejectedV4(v4::Reply::IDENTD_MISMATCH))
    );
}

#[test]
fn socks4_cannot_carry_names_or_ipv6_but_socks4a_carries_names() {
    let socks4 = ClientProtocol::Socks4 { user_id: vec![] };
    for text in ["example.com:80", "[::1]:80"] {
        assert_eq!(
            ClientHandshake::new(socks4.clone(), Command::CONNECT, target(text)).unwrap_err(),
            ClientError::TargetNotSupported
        );
    }
    let socks4a = ClientProtocol::Socks4a { user_id: vec![] };
    let handshake =
        ClientHandshake::new(socks4a, Command::CONNECT, target("example.com:80")).unwrap();
    assert_eq!(handshake.pending_output()[4..8], [0, 0, 0, 1]);
    assert!(handshake.pending_output().ends_with(b"example.com\0"));
}

#[test]
fn garbage_from_the_server_is_a_protocol_error() {
    let mut handshake =
        ClientHandshake::new(ClientProtocol::socks5(), Command::CONNECT, target("h:1")).unwrap();
    assert_eq!(
        handshake.feed(b"HTTP/1.1 400"),
        Err(ClientError::Protocol(ProtocolError::UnsupportedVersion(
            b'H'
        )))
    );
}

#[test]
fn a_blocking_reader_needs_few_reads_per_message() {
    use socksgate_proto::password::Status;
    use socksgate_proto::v5::{MethodSelection, Response};
    use socksgate_proto::{DecodeError, Wire};
    let needed = |result: Result<(), DecodeError>| match result {
        Err(DecodeError::Incomplete { needed }) => needed.get(),
        other => panic!("{other:?}"),
    };
    assert_eq!(needed(MethodSelection::decode(&[]).map(|_| ())), 2);
    assert_eq!(needed(Status::decode(&[]).map(|_| ())), 2);
    assert_eq!(needed(v4::Response::decode(&[]).map(|_| ())), 8);
    // A SOCKS5 reply: five bytes, then exactly the rest of the address.
    assert_eq!(needed(Response::decode(&[]).map(|_| ())), 5);
    assert_eq!(needed(Response::decode(&[5, 0, 0, 1, 127]).map(|_| ())), 5);
}
