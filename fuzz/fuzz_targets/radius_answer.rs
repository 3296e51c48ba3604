//! Any bytes as a RADIUS answer: the checks never panic, and an answer a server would make
//! (from the input's attributes) is believed, while the same with one byte changed is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socksgate_auth::radius::{self, Attribute};

const SECRET: &[u8] = b"fuzzing-secret";
const AUTHENTICATOR: [u8; 16] = [7; 16];

fuzz_target!(|data: &[u8]| {
    let _ = radius::verify_answer(data, 1, &AUTHENTICATOR, SECRET, true);
    let _ = radius::verify_answer(data, 1, &AUTHENTICATOR, SECRET, false);
    // Attributes from the input: a kind byte, then up to 253 bytes of value.
    let attributes: Vec<Attribute> = data
        .chunks(40)
        .filter(|chunk| !chunk.is_empty() && chunk[0] != 80)
        .map(|chunk| Attribute::new(chunk[0], &chunk[1..]))
        .collect();
    let Ok(packet) = radius::answer_packet(2, 1, &AUTHENTICATOR, SECRET, &attributes, true) else {
        return;
    };
    let answer = radius::verify_answer(&packet, 1, &AUTHENTICATOR, SECRET, true)
        .unwrap_or_else(|error| panic!("a server's own answer refused: {error}"));
    assert_eq!(answer.attributes.len(), attributes.len() + 1);
    let index = usize::from(data.first().copied().unwrap_or(0)) % packet.len();
    let mut changed = packet.clone();
    changed[index] ^= 0x80;
    assert!(radius::verify_answer(&changed, 1, &AUTHENTICATOR, SECRET, true).is_err());
});
