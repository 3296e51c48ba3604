//! socksgate's RADIUS packets (`socksgate_auth::radius`) against FreeRADIUS: an
//! Access-Request with PAP is accepted with its reply attributes (RFC 2865), a wrong
//! password rejected, an answer without a Message-Authenticator refused (RFC 3579 §3.2,
//! CVE-2024-3596), and an Accounting-Request's counts land in the server's detail file
//! (RFC 2866).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::net::UdpSocket;
use std::time::Duration;

use socksgate_auth::radius::{self, attribute, code, Attribute};
use socksgate_tests::freeradius::FreeRadius;
use socksgate_tests::interop::skip_or_fail;

const SECRET: &str = "testing123-socksgate";
const USERS: &str = "alice Cleartext-Password := \"wonderland\"\n\
                     \tFramed-IP-Address = 10.9.8.7,\n\tClass = \"staff\",\n\tSession-Timeout = 3600\n";

/// Sends `packet` to `port` and returns the answer's bytes.
fn exchange(port: u16, packet: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(packet, ("127.0.0.1", port)).unwrap();
    let mut answer = vec![0u8; radius::MAX_PACKET];
    let (length, _) = socket.recv_from(&mut answer).unwrap();
    answer.truncate(length);
    answer
}

fn login(
    server: &FreeRadius,
    id: u8,
    password: &str,
    require: bool,
) -> Result<radius::Answer, radius::RadiusError> {
    let authenticator: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ id);
    let request = radius::access_request(
        id,
        authenticator,
        SECRET.as_bytes(),
        b"alice",
        password.as_bytes(),
        &[Attribute::new(attribute::NAS_IDENTIFIER, "socksgate-test")],
    )
    .unwrap();
    let answer = exchange(server.auth_port, &request);
    radius::verify_answer(&answer, id, &authenticator, SECRET.as_bytes(), require)
}

#[test]
fn freeradius_accepts_rejects_and_counts_what_socksgate_sends() {
    let Some(server) = FreeRadius::start("codec", SECRET, USERS, true) else {
        return skip_or_fail("freeradius is not installed");
    };
    let accepted = login(&server, 1, "wonderland", true).unwrap();
    assert_eq!(accepted.code, code::ACCESS_ACCEPT);
    assert_eq!(
        accepted.first(attribute::FRAMED_IP_ADDRESS),
        Some(&[10, 9, 8, 7][..])
    );
    assert_eq!(accepted.first(attribute::CLASS), Some(&b"staff"[..]));
    assert_eq!(
        accepted.first(attribute::SESSION_TIMEOUT),
        Some(&3600u32.to_be_bytes()[..])
    );
    let rejected = login(&server, 2, "wrong", true).unwrap();
    assert_eq!(rejected.code, code::ACCESS_REJECT);
    let accounting = radius::accounting_request(
        3,
        SECRET.as_bytes(),
        &[
            Attribute::integer(attribute::ACCT_STATUS_TYPE, 2),
            Attribute::new(attribute::USER_NAME, "alice"),
            Attribute::new(attribute::ACCT_SESSION_ID, "sg-42"),
            Attribute::integer(attribute::ACCT_INPUT_OCTETS, 12345),
            Attribute::integer(attribute::ACCT_OUTPUT_OCTETS, 67890),
        ],
    )
    .unwrap();
    let mut zero = [0u8; 16];
    zero.copy_from_slice(&accounting[4..20]);
    let answer = exchange(server.auth_port + 1, &accounting);
    let response = radius::verify_answer(&answer, 3, &zero, SECRET.as_bytes(), false).unwrap();
    assert_eq!(response.code, code::ACCOUNTING_RESPONSE);
    let detail = std::fs::read_to_string(&server.detail).unwrap();
    for line in [
        "Acct-Session-Id = \"sg-42\"",
        "Acct-Input-Octets = 12345",
        "Acct-Output-Octets = 67890",
    ] {
        assert!(detail.contains(line), "{line} not in {detail}");
    }
}

#[test]
fn an_answer_without_a_message_authenticator_is_not_believed() {
    // Debian 12's freeradius, left to itself, answers without one.
    let Some(server) = FreeRadius::start("unsigned", SECRET, USERS, false) else {
        return skip_or_fail("freeradius is not installed");
    };
    let refused = login(&server, 9, "wonderland", true).unwrap_err();
    assert!(
        refused.to_string().contains("no Message-Authenticator"),
        "{refused}"
    );
    // The same answer passes every other check: only the missing attribute refused it.
    assert_eq!(
        login(&server, 10, "wonderland", false).unwrap().code,
        code::ACCESS_ACCEPT
    );
}
