#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_fuzz::check_decoder;
use socksgate_proto::{v5, Address};

fuzz_target!(|data: &[u8]| {
    check_decoder::<Address>(data);
    check_decoder::<v5::Greeting>(data);
    check_decoder::<v5::MethodSelection>(data);
    check_decoder::<v5::Request>(data);
    check_decoder::<v5::Response>(data);
});
