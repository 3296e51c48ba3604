#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_fuzz::check_decoder;
use socksgate_proto::icmp::IcmpMessage;

fuzz_target!(|data: &[u8]| check_decoder::<IcmpMessage>(data));
