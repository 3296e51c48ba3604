//! RFC 1928 §7 fragment reassembly, and the splitting of a large datagram into fragments.
//!
//! > Each receiver will have a REASSEMBLY QUEUE and a REASSEMBLY TIMER associated with these
//! > fragments. The reassembly queue must be reinitialized and the associated fragments
//! > abandoned whenever the REASSEMBLY TIMER expires, or a new datagram arrives carrying a
//! > FRAG field whose value is less than the highest FRAG value processed for this fragment
//! > sequence. The reassembly timer MUST be no less than 5 seconds.
//!
//! The RFC leaves gaps open; this implementation fills them so that a reassembled datagram is
//! never wrong: a sequence starts at position 1 and every fragment must carry the next
//! position (a gap means a fragment was lost, and the sequence is abandoned); all fragments
//! of a sequence go to the same address; a standalone datagram (FRAG 0) also abandons a
//! pending sequence, since 0 is lower than any position. Time is passed in by the caller.

use std::time::{Duration, Instant};

use crate::addr::Address;
use crate::udp::{Frag, UdpHeader};
use crate::wire::Wire;

/// The shortest reassembly timer RFC 1928 allows.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of a fragment handed to [`Reassembler::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembled {
    /// The last fragment arrived: the whole datagram, for `address`.
    Complete {
        /// Where the datagram goes.
        address: Address,
        /// The fragments' data, in order.
        data: Vec<u8>,
    },
    /// Kept, waiting for the rest of the sequence.
    Queued,
    /// Dropped, and with it whatever was queued.
    Dropped(DropReason),
}

/// Why a fragment was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its position does not follow the last one (lower, equal, or a gap).
    OutOfOrder,
    /// The sequence would exceed the memory limit.
    TooLarge,
    /// It names another address than the sequence's first fragment.
    AddressChanged,
}

#[derive(Debug)]
struct Queue {
    address: Address,
    highest: u8,
    started: Instant,
    data: Vec<u8>,
}

/// One association's reassembly queue and timer.
#[derive(Debug)]
pub struct Reassembler {
    timeout: Duration,
    max_len: usize,
    queue: Option<Queue>,
}

impl Reassembler {
    /// A reassembler that abandons a sequence after `timeout` (raised to the RFC's minimum of
    /// 5 s) and holds at most `max_len` bytes.
    pub fn new(timeout: Duration, max_len: usize) -> Self {
        Self {
            timeout: timeout.max(MIN_TIMEOUT),
            max_len,
            queue: None,
        }
    }

    /// Whether a sequence is waiting for more fragments.
    pub fn is_pending(&self) -> bool {
        self.queue.is_some()
    }

    /// Abandons the queue if its timer has run out at `now`; returns whether it did.
    pub fn expire(&mut self, now: Instant) -> bool {
        let expired = self
            .queue
            .as_ref()
            .is_some_and(|queue| now.saturating_duration_since(queue.started) >= self.timeout);
        if expired {
            self.queue = None;
        }
        expired
    }

    /// Abandons any pending sequence (a standalone datagram arrived: FRAG 0 is lower than any
    /// position).
    pub fn abandon(&mut self) {
        self.queue = None;
    }

    /// Takes one fragment (FRAG 1–127, high bit for the last one) at time `now`.
    pub fn push(
        &mut self,
        now: Instant,
        frag: Frag,
        address: &Address,
        data: &[u8],
    ) -> Reassembled {
        self.expire(now);
        let position = frag.position();
        let expected = self
            .queue
            .as_ref()
            .map_or(1, |queue| queue.highest.saturating_add(1));
        if frag.is_standalone() || position != expected {
            self.queue = None;
            if position != 1 {
                return Reassembled::Dropped(DropReason::OutOfOrder);
            }
        }
        let queue = self.queue.get_or_insert_with(|| Queue {
            address: address.clone(),
            highest: 0,
            started: now,
            data: Vec::new(),
        });
        if queue.address != *address {
            self.queue = None;
            return Reassembled::Dropped(DropReason::AddressChanged);
        }
        if queue.data.len() + data.len() > self.max_len {
            self.queue = None;
            return Reassembled::Dropped(DropReason::TooLarge);
        }
        queue.data.extend_from_slice(data);
        queue.highest = position;
        if !frag.is_last() {
            return Reassembled::Queued;
        }
        match self.queue.take() {
            Some(queue) => Reassembled::Complete {
                address: queue.address,
                data: queue.data,
            },
            None => Reassembled::Queued,
        }
    }
}

/// Splits `data` for `address` into datagrams of at most `max_datagram` bytes each, header
/// included: one standalone datagram if it fits, otherwise fragments 1, 2, … with the high
/// bit on the last. `None` if it would take more than 127 fragments.
pub fn fragment(address: &Address, data: &[u8], max_datagram: usize) -> Option<Vec<Vec<u8>>> {
    let header_len = UdpHeader::new(address.clone()).encoded_len();
    if header_len + data.len() <= max_datagram {
        let mut datagram = UdpHeader::new(address.clone()).to_bytes();
        datagram.extend_from_slice(data);
        return Some(vec![datagram]);
    }
    let room = max_datagram
        .checked_sub(header_len)
        .filter(|&room| room > 0)?;
    let count = data.len().div_ceil(room);
    if count > 0x7f {
        return None;
    }
    let datagrams = data
        .chunks(room)
        .enumerate()
        .map(|(index, chunk)| {
            let position = u8::try_from(index + 1).unwrap_or(0x7f);
            let header = UdpHeader {
                frag: Frag::fragment(position, index + 1 == count).unwrap_or(Frag::STANDALONE),
                address: address.clone(),
            };
            let mut datagram = header.to_bytes();
            datagram.extend_from_slice(chunk);
            datagram
        })
        .collect();
    Some(datagrams)
}
