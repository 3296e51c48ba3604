//! The server handshake machine: RFC 1928 §3–6, RFC 1929 §2, RFC 1961 §3, SOCKS4 and SOCKS4a,
//! driven with byte vectors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use socksgate_proto::server::{ServerError, ServerEvent, ServerHandshake, ServerOptions};
use socksgate_proto::{Address, Command, Method, Methods, ProtocolError, Reply, Step, Version};
use support::drive::drive;

const CONNECT_LOCALHOST_80: [u8; 10] = [0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50];

fn password_only() -> ServerOptions {
    ServerOptions {
        methods: Methods::one(Method::PASSWORD),
        allow_socks4: false,
    }
}

fn bound() -> Address {
    "192.0.2.9:4321".parse().unwrap()
}

/// A machine that has selected "no authentication" for a SOCKS5 greeting, its answer sent:
/// waiting for the request (RFC 1928 §4).
fn past_the_greeting() -> ServerHandshake {
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    handshake.feed(&[0x05, 0x01, 0x00]).unwrap();
    handshake.output_written(2);
    handshake
}

#[test]
fn rfc1928_section_3_first_configured_method_the_client_offers_wins() {
    let options = ServerOptions {
        methods: Methods::new(&[Method::PASSWORD, Method::NO_AUTH]).unwrap(),
        allow_socks4: true,
    };
    let mut handshake = ServerHandshake::new(options);
    let step = handshake.feed(&[0x05, 0x02, 0x00, 0x02]).unwrap();
    assert_eq!(
        step,
        Step::Event {
            used: 4,
            event: ServerEvent::MethodSelected(Method::PASSWORD)
        }
    );
    assert_eq!(handshake.pending_output(), [0x05, 0x02]);
}

#[test]
fn rfc1928_section_3_no_acceptable_method_gets_0xff_and_closes() {
    let mut handshake = ServerHandshake::new(password_only());
    assert_eq!(
        handshake.feed(&[0x05, 0x01, 0x00]),
        Err(ServerError::NoAcceptableMethod)
    );
    assert_eq!(handshake.pending_output(), [0x05, 0xff]);
    assert!(handshake.is_closed());
    assert_eq!(handshake.feed(&CONNECT_LOCALHOST_80), Ok(Step::Idle));
}

#[test]
fn rfc1928_section_4_pipelined_greeting_request_and_data() {
    let mut input = vec![0x05, 0x01, 0x00];
    input.extend(CONNECT_LOCALHOST_80);
    input.extend(b"hello");
    let transcript = drive(
        &mut ServerHandshake::new(ServerOptions::default()),
        [&input[..]],
    );
    assert!(transcript.established);
    assert_eq!(transcript.leftover, b"hello");
    assert_eq!(transcript.events.len(), 2);
    let mut expected = vec![0x05, 0x00];
    expected.extend([0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x0f, 0xa0]);
    assert_eq!(transcript.output, expected);
}

#[test]
fn rfc1928_section_4_request_is_handed_over_and_unknown_commands_pass_through() {
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    handshake.feed(&[0x05, 0x01, 0x00]).unwrap();
    let Ok(Step::Event {
        event: ServerEvent::Request(request),
        ..
    }) = handshake.feed(&[0x05, 0xf8, 0x00, 0x01, 127, 0, 0, 1, 0, 7])
    else {
        panic!("expected a request");
    };
    assert_eq!(
        (request.version, request.command),
        (Version::Socks5, Command(0xf8))
    );
    assert_eq!(
        handshake.feed(b"more"),
        Ok(Step::Idle),
        "waits for the reply"
    );
    handshake
        .reply(Reply::COMMAND_NOT_SUPPORTED, &Address::unspecified())
        .unwrap();
    assert!(handshake.is_closed());
    assert_eq!(
        handshake.pending_output()[2..],
        [0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn rfc1928_section_5_unknown_address_type_gets_reply_0x08() {
    let mut handshake = past_the_greeting();
    assert_eq!(
        handshake.feed(&[0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80]),
        Err(ServerError::Protocol(
            ProtocolError::UnsupportedAddressType(2)
        ))
    );
    assert_eq!(handshake.pending_output()[..2], [0x05, 0x08]);
    assert!(handshake.is_closed());
}

#[test]
fn rfc1928_section_5_invalid_domain_gets_host_unreachable() {
    let mut handshake = past_the_greeting();
    assert!(handshake.feed(&[0x05, 0x01, 0x00, 0x03, 0, 0, 80]).is_err());
    assert_eq!(handshake.pending_output()[..2], [0x05, 0x04]);
}

#[test]
fn rfc1928_section_6_bind_takes_two_replies() {
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    handshake.feed(&[0x05, 0x01, 0x00]).unwrap();
    handshake
        .feed(&[0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
        .unwrap();
    handshake.reply(Reply::SUCCEEDED, &bound()).unwrap();
    assert!(!handshake.is_established(), "waiting for the peer");
    handshake
        .reply(Reply::SUCCEEDED, &"198.51.100.1:20".parse().unwrap())
        .unwrap();
    assert!(handshake.is_established());
    assert!(
        handshake.reply(Reply::SUCCEEDED, &bound()).is_err(),
        "no third reply"
    );
}

#[test]
fn rfc1928_section_6_failure_reply_closes() {
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    handshake.feed(&[0x05, 0x01, 0x00]).unwrap();
    handshake.feed(&CONNECT_LOCALHOST_80).unwrap();
    handshake
        .reply(Reply::CONNECTION_REFUSED, &Address::unspecified())
        .unwrap();
    assert!(handshake.is_closed());
}

#[test]
fn rfc1928_request_of_the_wrong_version_gets_general_failure() {
    let mut handshake = past_the_greeting();
    assert!(handshake
        .feed(&[0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80])
        .is_err());
    assert_eq!(handshake.pending_output()[..2], [0x05, 0x01]);
}

#[test]
fn rfc1929_section_2_accepted_credentials_lead_to_the_request() {
    let mut input = vec![0x05, 0x01, 0x02, 0x01, 1, b'u', 2, b'p', b'w'];
    input.extend(CONNECT_LOCALHOST_80);
    let transcript = drive(&mut ServerHandshake::new(password_only()), [&input[..]]);
    assert!(transcript.established);
    assert!(matches!(&transcript.events[1], ServerEvent::Credentials(c) if c.username() == b"u"));
    assert_eq!(transcript.output[..4], [0x05, 0x02, 0x01, 0x00]);
}

#[test]
fn rfc1929_section_2_refused_credentials_get_failure_status_and_close() {
    let mut handshake = ServerHandshake::new(password_only());
    handshake.feed(&[0x05, 0x01, 0x02]).unwrap();
    handshake.feed(&[0x01, 1, b'u', 1, b'x']).unwrap();
    handshake.authenticated(false).unwrap();
    assert_eq!(handshake.pending_output(), [0x05, 0x02, 0x01, 0x01]);
    assert!(handshake.is_closed());
    assert_eq!(handshake.feed(&CONNECT_LOCALHOST_80), Ok(Step::Idle));
}

#[test]
fn rfc1929_malformed_subnegotiation_gets_failure_status() {
    let mut handshake = ServerHandshake::new(password_only());
    handshake.feed(&[0x05, 0x01, 0x02]).unwrap();
    handshake.output_written(2);
    assert!(handshake.feed(&[0x05, 1, b'u', 1, b'x']).is_err());
    assert_eq!(handshake.pending_output(), [0x01, 0x01]);
}

#[test]
fn rfc1961_section_3_context_tokens_go_to_the_caller() {
    let options = ServerOptions {
        methods: Methods::one(Method::GSSAPI),
        allow_socks4: false,
    };
    let mut handshake = ServerHandshake::new(options);
    handshake.feed(&[0x05, 0x01, 0x01]).unwrap();
    let Ok(Step::Event {
        event: ServerEvent::Gssapi(message),
        used: 7,
    }) = handshake.feed(&[0x01, 0x01, 0x00, 0x03, 1, 2, 3])
    else {
        panic!("expected a GSS-API message");
    };
    assert_eq!(message.token, [1, 2, 3]);
    handshake.authenticated(true).unwrap();
    assert!(matches!(
        handshake.feed(&CONNECT_LOCALHOST_80),
        Ok(Step::Event {
            event: ServerEvent::Request(_),
            ..
        })
    ));
}

#[test]
fn socks4_request_is_served_and_replied_in_eight_bytes() {
    let input = [
        0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, b'b', b'o', b'b', 0x00, b'x',
    ];
    let transcript = drive(
        &mut ServerHandshake::new(ServerOptions::default()),
        [&input[..]],
    );
    assert!(transcript.established);
    assert_eq!(transcript.output, [0x00, 0x5a, 0x0f, 0xa0, 10, 0, 0, 1]);
    assert_eq!(transcript.leftover, b"x");
    let ServerEvent::Request(request) = &transcript.events[0] else {
        panic!("expected a request");
    };
    assert_eq!(
        (request.version, &request.user_id[..]),
        (Version::Socks4, &b"bob"[..])
    );
}

#[test]
fn socks4a_request_carries_the_name() {
    let mut input = vec![0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0x00];
    input.extend(b"localhost\0");
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    let Ok(Step::Event {
        event: ServerEvent::Request(request),
        ..
    }) = handshake.feed(&input)
    else {
        panic!("expected a request");
    };
    assert_eq!(request.version, Version::Socks4a);
    assert_eq!(request.target.to_string(), "localhost:80");
    handshake
        .reply(Reply::HOST_UNREACHABLE, &Address::unspecified())
        .unwrap();
    assert_eq!(handshake.pending_output(), [0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn socks4_on_a_listener_that_requires_authentication_is_rejected() {
    let mut handshake = ServerHandshake::new(password_only());
    assert_eq!(
        handshake.feed(&[0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0x00]),
        Err(ServerError::Socks4NotAllowed)
    );
    assert_eq!(handshake.pending_output(), [0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn unknown_first_byte_closes_without_reply() {
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    assert_eq!(
        handshake.feed(b"GET / HTTP/1.1\r\n"),
        Err(ServerError::Protocol(ProtocolError::UnsupportedVersion(
            b'G'
        )))
    );
    assert!(handshake.pending_output().is_empty());
}

#[test]
fn need_more_says_how_many_bytes() {
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    assert_eq!(
        handshake.feed(&[]),
        Ok(Step::NeedMore {
            at_least: 1.try_into().unwrap()
        })
    );
    assert_eq!(
        handshake.feed(&[0x05, 0x03]),
        Ok(Step::NeedMore {
            at_least: 3.try_into().unwrap()
        })
    );
}

#[test]
fn calls_out_of_order_are_reported_not_panics() {
    let mut handshake = ServerHandshake::new(ServerOptions::default());
    assert!(handshake.reply(Reply::SUCCEEDED, &bound()).is_err());
    assert!(handshake.authenticated(true).is_err());
    assert!(handshake
        .send_gssapi(&socksgate_proto::gssapi::Message::abort())
        .is_err());
}
