//! Any sequence of fragments, times and addresses: the RFC 1928 §7 reassembler never panics,
//! never holds more than its limit, and only completes sequences that started at position 1
//! and ran without a gap.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use socksgate_proto::udp::{Frag, Reassembled, Reassembler};
use socksgate_proto::Address;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let addresses: [Address; 2] = [
        "192.0.2.1:53".parse().expect("valid"),
        "192.0.2.2:53".parse().expect("valid"),
    ];
    let mut reassembler = Reassembler::new(Duration::from_secs(5), LIMIT);
    let start = Instant::now();
    let mut now = start;
    // Each step: FRAG byte, address and time choice, payload length. `queued` models the
    // bytes the current sequence holds.
    let mut queued = 0usize;
    for step in data.chunks_exact(3) {
        let frag = Frag(step[0]);
        let address = &addresses[usize::from(step[1] & 1)];
        now += Duration::from_millis(u64::from(step[1] >> 1) * 100);
        let payload = vec![0x5a; usize::from(step[2]) * 8];
        if frag.is_standalone() {
            reassembler.abandon();
            queued = 0;
            continue;
        }
        if frag.position() == 1 {
            // Position 1 always starts a sequence afresh.
            queued = 0;
        }
        match reassembler.push(now, frag, address, &payload) {
            Reassembled::Complete { data, .. } => {
                assert!(data.len() <= LIMIT);
                assert!(frag.is_last());
                assert!(!reassembler.is_pending());
                assert_eq!(data.len(), queued + payload.len());
                queued = 0;
            }
            Reassembled::Queued => {
                assert!(reassembler.is_pending());
                queued += payload.len();
            }
            Reassembled::Dropped(_) => {
                assert!(!reassembler.is_pending());
                queued = 0;
            }
        }
    }
});
