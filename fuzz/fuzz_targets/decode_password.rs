#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_fuzz::check_decoder;
use socksgate_proto::password::{Credentials, Status};

fuzz_target!(|data: &[u8]| {
    check_decoder::<Credentials>(data);
    check_decoder::<Status>(data);
});
