//! Any bytes as an HTTP proxy request head: parsing never panics, never claims more bytes
//! than it was given, and a head it accepts is forwarded as a head that parses again (as
//! origin-form, by httparse) with the same method, body framing and no hop-by-hop field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_http::request;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, used))) = request::parse(data) else {
        return;
    };
    assert!(used <= data.len());
    let Some(forwarded) = socksgate_http::forward::request(&head, !head.persistent) else {
        assert!(head.is_connect());
        return;
    };
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut again = httparse::Request::new(&mut fields);
    let status = again.parse(&forwarded).expect("a forwarded head parses");
    assert!(status.is_complete());
    assert_eq!(again.method, Some(head.method.as_str()));
    let names: Vec<String> = again
        .headers
        .iter()
        .map(|field| field.name.to_ascii_lowercase())
        .collect();
    assert!(!names.iter().any(|name| name == "proxy-authorization"));
    assert_eq!(names.iter().filter(|name| *name == "host").count(), 1);
    let lengths = names.iter().filter(|name| *name == "content-length").count();
    let codings = names.iter().filter(|name| *name == "transfer-encoding").count();
    assert!(lengths == 0 || codings == 0, "both framings forwarded");
});
