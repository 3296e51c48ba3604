#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_fuzz::check_decoder;
use socksgate_proto::v4;

fuzz_target!(|data: &[u8]| {
    check_decoder::<v4::Request>(data);
    check_decoder::<v4::Response>(data);
});
