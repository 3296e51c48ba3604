//! RFC 1928 §7: UDP fragmentation and the reassembly queue and timer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::time::{Duration, Instant};

use proptest::prelude::*;
use socksgate_proto::udp::{fragment, DropReason, Frag, Reassembled, Reassembler, UdpHeader};
use socksgate_proto::Address;

fn address() -> Address {
    "192.0.2.1:53".parse().unwrap()
}

fn frag(position: u8, last: bool) -> Frag {
    Frag::fragment(position, last).unwrap()
}

fn reassembler() -> Reassembler {
    Reassembler::new(Duration::from_secs(5), 64 * 1024)
}

#[test]
fn a_sequence_is_delivered_as_one_datagram() {
    let mut queue = reassembler();
    let now = Instant::now();
    assert_eq!(
        queue.push(now, frag(1, false), &address(), b"one "),
        Reassembled::Queued
    );
    assert_eq!(
        queue.push(now, frag(2, false), &address(), b"two "),
        Reassembled::Queued
    );
    assert_eq!(
        queue.push(now, frag(3, true), &address(), b"three"),
        Reassembled::Complete {
            address: address(),
            data: b"one two three".to_vec()
        }
    );
    assert!(!queue.is_pending());
}

#[test]
fn a_frag_lower_than_the_highest_abandons_the_sequence() {
    let mut queue = reassembler();
    let now = Instant::now();
    queue.push(now, frag(1, false), &address(), b"old-1 ");
    queue.push(now, frag(2, false), &address(), b"old-2 ");
    // Position 1 again: lower than 2, so "old" is abandoned and a new sequence begins.
    assert_eq!(
        queue.push(now, frag(1, false), &address(), b"new-1 "),
        Reassembled::Queued
    );
    assert_eq!(
        queue.push(now, frag(2, true), &address(), b"new-2"),
        Reassembled::Complete {
            address: address(),
            data: b"new-1 new-2".to_vec()
        }
    );
    // A lower position that cannot start a sequence is dropped with the queue.
    queue.push(now, frag(1, false), &address(), b"a");
    queue.push(now, frag(2, false), &address(), b"b");
    queue.push(now, frag(3, false), &address(), b"c");
    assert_eq!(
        queue.push(now, frag(2, true), &address(), b"b"),
        Reassembled::Dropped(DropReason::OutOfOrder)
    );
    assert!(!queue.is_pending());
}

#[test]
fn a_missing_fragment_abandons_the_sequence() {
    let mut queue = reassembler();
    let now = Instant::now();
    queue.push(now, frag(1, false), &address(), b"1");
    assert_eq!(
        queue.push(now, frag(3, true), &address(), b"3"),
        Reassembled::Dropped(DropReason::OutOfOrder)
    );
    assert!(!queue.is_pending());
}

#[test]
fn the_timer_discards_a_sequence_that_takes_too_long() {
    let mut queue = reassembler();
    let start = Instant::now();
    queue.push(start, frag(1, false), &address(), b"1");
    assert!(!queue.expire(start + Duration::from_millis(4900)));
    assert_eq!(
        queue.push(
            start + Duration::from_secs(6),
            frag(2, true),
            &address(),
            b"2"
        ),
        Reassembled::Dropped(DropReason::OutOfOrder),
        "the timer ran out, so position 2 starts nothing"
    );
    queue.push(start, frag(1, false), &address(), b"1");
    assert!(queue.expire(start + Duration::from_secs(5)));
    assert!(!queue.is_pending());
}

#[test]
fn the_timer_is_at_least_five_seconds() {
    let mut queue = Reassembler::new(Duration::from_millis(10), 1024);
    let start = Instant::now();
    queue.push(start, frag(1, false), &address(), b"1");
    assert!(!queue.expire(start + Duration::from_secs(4)));
}

#[test]
fn memory_is_bounded() {
    let mut queue = Reassembler::new(Duration::from_secs(5), 10);
    let now = Instant::now();
    queue.push(now, frag(1, false), &address(), b"123456");
    assert_eq!(
        queue.push(now, frag(2, true), &address(), b"7890x"),
        Reassembled::Dropped(DropReason::TooLarge)
    );
    assert!(!queue.is_pending());
}

#[test]
fn fragments_of_a_sequence_share_one_address() {
    let mut queue = reassembler();
    let now = Instant::now();
    queue.push(now, frag(1, false), &address(), b"1");
    let other: Address = "192.0.2.2:53".parse().unwrap();
    assert_eq!(
        queue.push(now, frag(2, true), &other, b"2"),
        Reassembled::Dropped(DropReason::AddressChanged)
    );
}

#[test]
fn small_data_is_not_fragmented() {
    let datagrams = fragment(&address(), b"small", 512).unwrap();
    assert_eq!(datagrams.len(), 1);
    let (header, data) = UdpHeader::split(&datagrams[0]).unwrap();
    assert!(header.frag.is_standalone());
    assert_eq!(data, b"small");
}

#[test]
fn more_than_127_fragments_is_refused() {
    let header_len = 10;
    assert!(fragment(&address(), &[0; 127 * 10], header_len + 10).is_some());
    assert!(fragment(&address(), &[0; 127 * 10 + 1], header_len + 10).is_none());
    assert!(
        fragment(&address(), &[0; 100], header_len).is_none(),
        "no room for data"
    );
}

proptest! {
    #[test]
    fn fragmenting_then_reassembling_gives_the_data_back(
        data in proptest::collection::vec(any::<u8>(), 1..4000),
        max in 11usize..600,
    ) {
        let Some(datagrams) = fragment(&address(), &data, max) else {
            prop_assume!(false);
            unreachable!()
        };
        let mut queue = reassembler();
        let now = Instant::now();
        let mut delivered = None;
        for datagram in &datagrams {
            prop_assert!(datagram.len() <= max);
            let (header, payload) = UdpHeader::split(datagram).unwrap();
            if header.frag.is_standalone() {
                delivered = Some(payload.to_vec());
                continue;
            }
            match queue.push(now, header.frag, &header.address, payload) {
                Reassembled::Complete { data, .. } => delivered = Some(data),
                Reassembled::Queued => {}
                Reassembled::Dropped(reason) => prop_assert!(false, "dropped: {reason:?}"),
            }
        }
        prop_assert_eq!(delivered, Some(data));
    }
}
