//! The header of every UDP datagram relayed for a UDP ASSOCIATE (RFC 1928 §7).
//!
//! ```text
//! +----+------+------+----------+----------+----------+
//! |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
//! +----+------+------+----------+----------+----------+
//! | 2  |  1   |  1   | Variable |    2     | Variable |
//! +----+------+------+----------+----------+----------+
//! ```
//!
//! A datagram is always whole, so an incomplete header is reported as
//! [`crate::DecodeError::Incomplete`] and simply means a truncated datagram.

mod reassembly;

pub use reassembly::{fragment, DropReason, Reassembled, Reassembler, MIN_TIMEOUT};

use crate::addr::Address;
use crate::wire::{DecodeError, Reader, Wire};

/// The FRAG byte: 0 for a whole datagram; otherwise the position (1–127) of a fragment in its
/// sequence, with the high bit set on the last fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frag(pub u8);

impl Frag {
    /// A datagram that is not fragmented.
    pub const STANDALONE: Self = Self(0);
    const END_OF_SEQUENCE: u8 = 0x80;

    /// A fragment at `position` (1–127); `last` marks the end of the sequence.
    pub const fn fragment(position: u8, last: bool) -> Option<Self> {
        if position == 0 || position > 0x7f {
            return None;
        }
        Some(Self(
            position | if last { Self::END_OF_SEQUENCE } else { 0 },
        ))
    }

    /// Whether the datagram stands alone.
    pub const fn is_standalone(self) -> bool {
        self.0 == 0
    }

    /// The position of a fragment in its sequence (1–127), 0 for a standalone datagram.
    pub const fn position(self) -> u8 {
        self.0 & !Self::END_OF_SEQUENCE
    }

    /// Whether this fragment ends its sequence.
    pub const fn is_last(self) -> bool {
        self.0 & Self::END_OF_SEQUENCE != 0
    }
}

/// The header in front of the data of a relayed datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpHeader {
    /// The fragment number.
    pub frag: Frag,
    /// Towards the relay: the destination. From the relay: the source.
    pub address: Address,
}

impl UdpHeader {
    /// A header for a whole datagram.
    pub fn new(address: Address) -> Self {
        Self {
            frag: Frag::STANDALONE,
            address,
        }
    }

    /// Splits a datagram into its header and its data.
    pub fn split(datagram: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let (header, used) = Self::decode(datagram)?;
        Ok((header, &datagram[used..]))
    }

    /// The number of bytes the header takes on the wire.
    pub fn encoded_len(&self) -> usize {
        3 + self.address.encoded_len()
    }
}

impl Wire for UdpHeader {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut reader = Reader::new(input);
        let _reserved = reader.u16()?;
        let frag = Frag(reader.u8()?);
        let address = Address::read(&mut reader)?;
        Ok((Self { frag, address }, reader.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&[0x00, 0x00, self.frag.0]);
        self.address.encode(out);
    }
}
