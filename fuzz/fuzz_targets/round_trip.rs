#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_fuzz::check_round_trip;
use socksgate_proto::password::{Credentials, Status};
use socksgate_proto::udp::UdpHeader;
use socksgate_proto::{gssapi, v4, v5, Address};

// The first byte picks the message type, so the fuzzer can specialise on each.
fuzz_target!(|data: &[u8]| {
    let Some((&kind, data)) = data.split_first() else {
        return;
    };
    match kind % 11 {
        0 => check_round_trip::<Address>(data),
        1 => check_round_trip::<v5::Greeting>(data),
        2 => check_round_trip::<v5::MethodSelection>(data),
        3 => check_round_trip::<v5::Request>(data),
        4 => check_round_trip::<v5::Response>(data),
        5 => check_round_trip::<Credentials>(data),
        6 => check_round_trip::<Status>(data),
        7 => check_round_trip::<gssapi::Message>(data),
        8 => check_round_trip::<UdpHeader>(data),
        9 => check_round_trip::<v4::Request>(data),
        _ => check_round_trip::<v4::Response>(data),
    }
});
