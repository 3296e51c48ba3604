//! Any bytes as a target's response head, and as an HTTP proxy's answer to CONNECT: no
//! panic, never more bytes claimed than given, and a head that parses is passed on as one
//! that parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_http::forward::{self, ResponseShape};
use socksgate_http::{response, tunnel};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, _, used))) = tunnel::answer(data) {
        assert!(used <= data.len());
    }
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let method = ["GET", "HEAD", "POST", "CONNECT"][usize::from(selector % 4)];
    let Ok(Some((head, used))) = response::parse(input, method) else {
        return;
    };
    assert!(used <= input.len());
    let shape = ResponseShape {
        close: selector & 0x10 != 0,
        dechunk: selector & 0x20 != 0,
        upgrade: selector & 0x40 != 0,
        keep_alive: selector & 0x80 != 0,
    };
    let passed_on = forward::response(&head, shape);
    // Read as a client would (httparse, room for what socksgate added).
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut again = httparse::Response::new(&mut fields);
    let status = again
        .parse(&passed_on)
        .unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(&passed_on)));
    assert!(status.is_complete());
    assert_eq!(again.code, Some(head.status));
});
