//! Any bytes as a chunked body: the scanner never panics, every piece it names is within
//! the input, and fed whole or a byte at a time it finds the same data and the same end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_http::chunked::{Piece, Scanner};

/// The data and where the body ended (or `None`), reading `input` in pieces of `step`.
fn scan(input: &[u8], step: usize) -> (Vec<u8>, Option<usize>, bool) {
    let mut scanner = Scanner::new();
    let mut data = Vec::new();
    let (mut at, mut window) = (0, step.min(input.len()));
    loop {
        match scanner.next(&input[at..window]) {
            Ok(Piece::Data(n)) => {
                assert!(n > 0 && at + n <= window);
                data.extend_from_slice(&input[at..at + n]);
                at += n;
            }
            Ok(Piece::Framing(n)) => {
                assert!(n > 0 && at + n <= window);
                at += n;
            }
            Ok(Piece::End(n)) => return (data, Some(at + n), false),
            Ok(Piece::NeedMore) if window == input.len() => return (data, None, false),
            Ok(Piece::NeedMore) => window = (window + step).min(input.len()),
            Err(_) => return (data, None, true),
        }
        if at == window && window < input.len() {
            window = (window + step).min(input.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = scan(data, data.len().max(1));
    let bytewise = scan(data, 1);
    assert_eq!(whole, bytewise);
});
