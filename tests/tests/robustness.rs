//! Bad clients close only their own session: garbage, truncated and stalled handshakes get
//! the right answer (or none) and the server keeps serving everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use socksgate_tests::count_where;
use socksgate_tests::{assert_echoes, raw_exchange, socks5_connect, EchoTarget, TestServer};

/// The server still completes a normal session.
fn still_serves(server: &TestServer, echo: &EchoTarget) {
    let mut stream = socks5_connect(server.addr(), &echo.addr.to_string()).unwrap();
    assert_echoes(&mut stream, b"alive");
}

#[test]
fn garbage_first_byte_is_closed_without_reply() {
    let server = TestServer::start();
    let echo = EchoTarget::start();
    assert_eq!(raw_exchange(server.addr(), &[0x00; 64]).unwrap(), b"");
    // A TLS ClientHello on a plain listener is neither SOCKS nor HTTP.
    assert_eq!(
        raw_exchange(server.addr(), &[0x16, 0x03, 0x01, 0x00]).unwrap(),
        b""
    );
    // A letter starts an HTTP request (the listener serves HTTP too): a request in
    // origin-form is no proxy request, and gets a 400 (RFC 9112 §3.2).
    let answer = raw_exchange(server.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 400 "), "{answer:?}");
    still_serves(&server, &echo);
    let log = server.wait_for_sessions(4);
    assert_eq!(count_where(&log, "outcome", "bad-handshake"), 2);
    assert_eq!(count_where(&log, "outcome", "bad-request"), 1);
}

#[test]
fn a_listener_without_http_closes_an_http_client_without_reply() {
    let mut config = TestServer::loopback_config();
    config.listeners[0].http = false;
    let server = TestServer::start_with(config);
    let echo = EchoTarget::start();
    let request = b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(raw_exchange(server.addr(), request).unwrap(), b"");
    still_serves(&server, &echo);
    let log = server.wait_for_sessions(2);
    assert_eq!(count_where(&log, "outcome", "protocol-not-served"), 1);
}

#[test]
fn greeting_without_methods_gets_no_acceptable_methods() {
    let server = TestServer::start();
    assert_eq!(
        raw_exchange(server.addr(), &[0x05, 0x00]).unwrap(),
        [0x05, 0xff]
    );
}

#[test]
fn greeting_without_an_acceptable_method_gets_0xff() {
    let server = TestServer::start();
    assert_eq!(
        raw_exchange(server.addr(), &[0x05, 0x01, 0x02]).unwrap(),
        [0x05, 0xff]
    );
}

#[test]
fn truncated_handshakes_close_only_their_session() {
    let server = TestServer::start();
    let echo = EchoTarget::start();
    let truncated: [&[u8]; 5] = [
        &[0x05],
        &[0x05, 0x02, 0x00],
        &[0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 20, b'a'],
        &[0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x04, 0, 0],
        &[0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, b'u', b's'],
    ];
    // What each gets before the close: nothing, or the method selection its complete
    // greeting earned (RFC 1928 §3), never a reply to a request it did not finish.
    let answers: [&[u8]; 5] = [b"", b"", &[0x05, 0x00], &[0x05, 0x00], b""];
    for (bytes, answer) in truncated.into_iter().zip(answers) {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(bytes).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, answer, "after {bytes:?}");
    }
    still_serves(&server, &echo);
    let log = server.wait_for_sessions(6);
    assert_eq!(count_where(&log, "outcome", "client-gone"), 5);
}

#[test]
fn stalled_clients_do_not_block_others_and_time_out() {
    let mut config = TestServer::loopback_config();
    config.timeouts.handshake = Duration::from_millis(600);
    let server = TestServer::start_with(config);
    let echo = EchoTarget::start();
    let mut stalled: Vec<(TcpStream, &[u8])> = (0..20)
        .map(|i| {
            let mut stream = TcpStream::connect(server.addr()).unwrap();
            // Half a handshake, then silence.
            let partial: &[u8] = if i % 2 == 0 {
                &[0x05]
            } else {
                &[0x05, 0x01, 0x00, 0x05]
            };
            stream.write_all(partial).unwrap();
            // The complete greeting is answered; the half request is not.
            let answer: &[u8] = if i % 2 == 0 { b"" } else { &[0x05, 0x00] };
            (stream, answer)
        })
        .collect();
    still_serves(&server, &echo);
    let started = Instant::now();
    for (stream, answer) in &mut stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, *answer);
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed by the handshake timeout"
    );
    let log = server.wait_for_sessions(21);
    assert_eq!(count_where(&log, "outcome", "handshake-timeout"), 20);
}

#[test]
fn endless_handshake_bytes_are_cut_off() {
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    // A SOCKS4 USERID that never ends.
    stream
        .write_all(&[0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1])
        .unwrap();
    let junk = vec![b'x'; 4096];
    let _ = stream.write_all(&junk);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert_eq!(rest, [0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
    let log = server.wait_for_sessions(1);
    assert_eq!(log[0]["outcome"], "bad-handshake", "{log:#?}");
}

#[test]
fn many_bad_sessions_then_good_ones() {
    // 200 hostile sessions of five kinds, each answered as its kind must be and closed,
    // then 20 good ones.
    let server = TestServer::start();
    let echo = EchoTarget::start();
    let greeted = [0x05, 0x01, 0x00];
    for i in 0..200u32 {
        let (bytes, answer): (Vec<u8>, Vec<u8>) = match i % 5 {
            // Garbage (a first byte neither 4 nor 5): closed without a word.
            0 => (i.to_be_bytes().repeat(i as usize % 7 + 1), vec![]),
            // A greeting that offers no method (RFC 1928 §3).
            1 => (vec![0x05, 0x00], vec![0x05, 0xff]),
            // An unknown command: reply 07 (RFC 1928 §6).
            2 => (
                [&greeted[..], &[0x05, 0x09, 0x00, 0x01, 127, 0, 0, 1, 0, 80]].concat(),
                vec![0x05, 0x00, 0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0],
            ),
            // An unknown address type: reply 08 (RFC 1928 §6).
            3 => (
                [&greeted[..], &[0x05, 0x01, 0x00, 0x07, 127, 0, 0, 1, 0, 80]].concat(),
                vec![0x05, 0x00, 0x05, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0],
            ),
            // SOCKS4 with an unknown command: request rejected, 91 (SOCKS4).
            _ => (
                vec![0x04, 0x09, 0x00, 0x50, 127, 0, 0, 1, b'u', 0],
                vec![0x00, 0x5b, 0, 0, 0, 0, 0, 0],
            ),
        };
        assert_eq!(
            raw_exchange(server.addr(), &bytes).unwrap(),
            answer,
            "session {i}: {bytes:?}"
        );
    }
    for _ in 0..20 {
        still_serves(&server, &echo);
    }
    let log = server.wait_for_sessions(220);
    let closed = |outcome: &str| count_where(&log, "outcome", outcome);
    assert_eq!(closed("closed"), 20, "the good sessions");
    // An unknown command, in SOCKS5 and in SOCKS4.
    assert_eq!(closed("unsupported-command"), 80, "{log:#?}");
    // Garbage, no method, an unknown address type.
    assert_eq!(closed("bad-handshake"), 120, "{log:#?}");
    assert_eq!(log.len(), 220, "one event each, no more");
}
