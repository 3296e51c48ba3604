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
    };
    let passed_on = forward::response(&head, shape);
    let again = response::parse(&passed_on, method).expect("a passed-on head parses");
    assert!(again.is_some());
});
