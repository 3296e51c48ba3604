//! Properties that hold for every input: encode → decode round trips for every message,
//! decoders that never panic and never claim bytes they did not use, and machines whose
//! result does not depend on how the input is split.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use socksgate_proto::client::{ClientHandshake, ClientProtocol};
use socksgate_proto::gssapi::{self, MessageType};
use socksgate_proto::password::{Credentials, Status};
use socksgate_proto::server::{ServerHandshake, ServerOptions};
use socksgate_proto::udp::{Frag, UdpHeader};
use socksgate_proto::{
    v4, v5, Address, Command, DecodeError, DomainName, Host, Method, Methods, Reply, Wire,
};
use support::drive::drive;

/// Any value of a wire-code newtype, known or not.
fn code<T: From<u8> + std::fmt::Debug>() -> impl Strategy<Value = T> {
    any::<u8>().prop_map(T::from)
}

fn domain() -> impl Strategy<Value = DomainName> {
    "[a-z0-9.-]{1,255}".prop_map(|name| DomainName::new(&name).unwrap())
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Host::Ip(IpAddr::V4(Ipv4Addr::from(o)))),
        any::<[u8; 16]>().prop_map(|o| Host::Ip(IpAddr::V6(Ipv6Addr::from(o)))),
        domain().prop_map(Host::Domain),
    ]
}

fn address() -> impl Strategy<Value = Address> {
    (host(), any::<u16>()).prop_map(|(host, port)| Address { host, port })
}

fn credentials() -> impl Strategy<Value = Credentials> {
    (
        proptest::collection::vec(any::<u8>(), 0..=255),
        proptest::collection::vec(any::<u8>(), 0..=255),
    )
        .prop_map(|(user, pass)| Credentials::new(user, pass).unwrap())
}

fn gssapi_message() -> impl Strategy<Value = gssapi::Message> {
    prop_oneof![
        Just(gssapi::Message::abort()),
        (1..=3u8, proptest::collection::vec(any::<u8>(), 0..2048))
            .prop_map(|(kind, token)| gssapi::Message::new(MessageType(kind), token).unwrap()),
    ]
}

fn user_id() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1..=255u8, 0..=v4::MAX_USER_ID_LEN)
}

fn v4_request() -> impl Strategy<Value = v4::Request> {
    let destination = prop_oneof![
        any::<[u8; 4]>()
            .prop_filter("0.0.0.x means SOCKS4a", |o| o[..3] != [0, 0, 0]
                || o[3] == 0)
            .prop_map(|o| v4::Destination::Ip(Ipv4Addr::from(o))),
        domain().prop_map(v4::Destination::Domain),
    ];
    (any::<u8>(), any::<u16>(), destination, user_id()).prop_map(
        |(command, port, destination, user_id)| v4::Request {
            command: Command(command),
            port,
            destination,
            user_id,
        },
    )
}

fn round_trips<T: Wire + PartialEq + std::fmt::Debug>(message: &T) -> Result<(), TestCaseError> {
    let bytes = message.to_bytes();
    let (decoded, used) = T::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, message);
    prop_assert_eq!(used, bytes.len());
    let mut followed = bytes.clone();
    followed.extend_from_slice(b"trailing");
    prop_assert_eq!(T::decode(&followed).map(|(_, used)| used), Ok(bytes.len()));
    Ok(())
}

/// Whatever a decoder makes of arbitrary bytes, it does not panic, uses no more than it was
/// given, and what it recognised encodes to exactly the bytes it used... or to an equivalent
/// message (fields the encoder normalises, such as RSV).
fn decodes_sanely<T: Wire + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    match T::decode(bytes) {
        Ok((message, used)) => {
            prop_assert!(used <= bytes.len());
            let again = T::decode_exact(&message.to_bytes());
            prop_assert_eq!(again, Ok(message));
        }
        Err(DecodeError::Incomplete { needed }) => {
            // Asking for fewer bytes than are missing is fine; never for bytes already there.
            prop_assert!(needed.get() >= 1);
        }
        Err(DecodeError::Invalid(_)) => {}
    }
    let _ = T::decode_exact(bytes);
    Ok(())
}

/// A plausible client stream: pieces of valid messages and junk, so the machine goes deep.
fn client_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::collection::vec(code::<Method>(), 1..4)
            .prop_map(|methods| v5::Greeting { methods }.to_bytes()),
        credentials().prop_map(|c| c.to_bytes()),
        (code::<Command>(), address()).prop_map(|(command, target)| v5::Request {
            command,
            target
        }
        .to_bytes()),
        v4_request().prop_map(|r| r.to_bytes()),
        gssapi_message().prop_map(|m| m.to_bytes()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// A plausible server stream, likewise.
fn server_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        code::<Method>().prop_map(|method| v5::MethodSelection { method }.to_bytes()),
        (0..3u8).prop_map(|s| Status(s).to_bytes()),
        (0..3u8, address()).prop_map(|(r, bound)| v5::Response {
            reply: Reply(r),
            bound
        }
        .to_bytes()),
        (0x5a..0x5cu8, any::<u16>(), any::<[u8; 4]>()).prop_map(|(r, port, ip)| v4::Response {
            reply: v4::Reply(r),
            port,
            ip: ip.into()
        }
        .to_bytes()),
        gssapi_message().prop_map(|m| m.to_bytes()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

fn server_options() -> impl Strategy<Value = ServerOptions> {
    (proptest::collection::vec(0..3u8, 1..4), any::<bool>()).prop_map(|(methods, socks4)| {
        let methods: Vec<Method> = methods.into_iter().map(Method).collect();
        ServerOptions {
            methods: Methods::new(&methods).unwrap(),
            allow_socks4: socks4,
        }
    })
}

fn client_protocol() -> impl Strategy<Value = ClientProtocol> {
    prop_oneof![
        user_id().prop_map(|user_id| ClientProtocol::Socks4 { user_id }),
        user_id().prop_map(|user_id| ClientProtocol::Socks4a { user_id }),
        (proptest::option::of(credentials()), any::<bool>()).prop_map(|(credentials, gssapi)| {
            ClientProtocol::Socks5 {
                credentials,
                gssapi,
            }
        }),
    ]
}

/// Splits `bytes` at the given points (taken modulo the length).
fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts {
        pieces.push(&bytes[start..cut]);
        start = cut;
    }
    pieces.push(&bytes[start..]);
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn address_round_trips(a in address()) { round_trips(&a)?; }

    #[test]
    fn greeting_round_trips(methods in proptest::collection::vec(code::<Method>(), 1..=255)) {
        round_trips(&v5::Greeting { methods })?;
    }

    #[test]
    fn method_selection_round_trips(method in code::<Method>()) {
        round_trips(&v5::MethodSelection { method })?;
    }

    #[test]
    fn request_round_trips(command in code::<Command>(), target in address()) {
        round_trips(&v5::Request { command, target })?;
    }

    #[test]
    fn response_round_trips(reply in code::<Reply>(), bound in address()) {
        round_trips(&v5::Response { reply, bound })?;
    }

    #[test]
    fn credentials_round_trip(c in credentials()) { round_trips(&c)?; }

    #[test]
    fn status_round_trips(s in any::<u8>()) { round_trips(&Status(s))?; }

    #[test]
    fn gssapi_message_round_trips(m in gssapi_message()) { round_trips(&m)?; }

    #[test]
    fn udp_header_round_trips(frag in any::<u8>(), address in address()) {
        round_trips(&UdpHeader { frag: Frag(frag), address })?;
    }

    #[test]
    fn v4_request_round_trips(r in v4_request()) { round_trips(&r)?; }

    #[test]
    fn v4_response_round_trips(reply in any::<u8>(), port in any::<u16>(), ip in any::<[u8; 4]>()) {
        round_trips(&v4::Response { reply: v4::Reply(reply), port, ip: ip.into() })?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decodes_sanely::<Address>(&bytes)?;
        decodes_sanely::<v5::Greeting>(&bytes)?;
        decodes_sanely::<v5::MethodSelection>(&bytes)?;
        decodes_sanely::<v5::Request>(&bytes)?;
        decodes_sanely::<v5::Response>(&bytes)?;
        decodes_sanely::<Credentials>(&bytes)?;
        decodes_sanely::<Status>(&bytes)?;
        decodes_sanely::<gssapi::Message>(&bytes)?;
        decodes_sanely::<UdpHeader>(&bytes)?;
        decodes_sanely::<v4::Request>(&bytes)?;
        decodes_sanely::<v4::Response>(&bytes)?;
    }

    #[test]
    fn server_machine_gives_the_same_result_however_input_is_split(
        options in server_options(),
        input in prop_oneof![client_stream(), proptest::collection::vec(any::<u8>(), 0..64)],
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = drive(&mut ServerHandshake::new(options), [&input[..]]);
        let bytewise = drive(&mut ServerHandshake::new(options), input.chunks(1));
        let split = drive(&mut ServerHandshake::new(options), split_at(&input, &cuts));
        prop_assert_eq!(&whole, &bytewise);
        prop_assert_eq!(&whole, &split);
    }

    #[test]
    fn client_machine_gives_the_same_result_however_input_is_split(
        protocol in client_protocol(),
        command in 1..=3u8,
        target in address(),
        input in prop_oneof![server_stream(), proptest::collection::vec(any::<u8>(), 0..64)],
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let Ok(machine) = ClientHandshake::new(protocol, Command(command), target) else {
            return Ok(());
        };
        let whole = drive(&mut machine.clone(), [&input[..]]);
        let bytewise = drive(&mut machine.clone(), input.chunks(1));
        let split = drive(&mut machine.clone(), split_at(&input, &cuts));
        prop_assert_eq!(&whole, &bytewise);
        prop_assert_eq!(&whole, &split);
    }
}

#[test]
fn the_stream_strategies_reach_established_sessions() {
    // Guards the properties above against strategies that only ever produce failures.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut established = 0;
    for _ in 0..2000 {
        let input = client_stream().new_tree(&mut runner).unwrap().current();
        let transcript = drive(
            &mut ServerHandshake::new(ServerOptions::default()),
            [&input[..]],
        );
        established += usize::from(transcript.established);
    }
    assert!(
        established > 20,
        "only {established} of 2000 streams got through"
    );
}
