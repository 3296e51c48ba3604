#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_fuzz::check_decoder;
use socksgate_proto::udp::UdpHeader;

fuzz_target!(|data: &[u8]| {
    check_decoder::<UdpHeader>(data);
    if let Ok((header, payload)) = UdpHeader::split(data) {
        assert_eq!(header.encoded_len() + payload.len(), data.len());
    }
});
