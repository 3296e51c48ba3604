#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_proto::proxy_header::ProxyHeader;

// Never panics, never claims more bytes than it was given, and whatever it recognises
// survives a round trip through version 2.
fuzz_target!(|data: &[u8]| {
    if let Ok((header, used)) = ProxyHeader::decode(data) {
        assert!(used > 0 && used <= data.len());
        let mut encoded = Vec::new();
        header.encode_v2(&mut encoded);
        assert_eq!(ProxyHeader::decode(&encoded).map(|(h, _)| h), Ok(header));
    }
});
