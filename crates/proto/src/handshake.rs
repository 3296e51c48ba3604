//! What the server and client machines have in common: the shape of a step, the list of
//! methods, the protocol version of a session, and the output buffer.

use std::fmt;
use std::num::NonZeroUsize;

use crate::v5::Method;

/// What one call to `feed` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<E> {
    /// The input is the beginning of the next message: call again with at least `at_least`
    /// more bytes appended. Nothing was used.
    NeedMore {
        /// The minimum number of additional bytes; reading exactly this many never reads past
        /// the message.
        at_least: NonZeroUsize,
    },
    /// One message was recognised in the first `used` bytes of the input, which the caller
    /// drops before the next call.
    Event {
        /// Bytes of input used.
        used: usize,
        /// What the message meant.
        event: E,
    },
    /// The machine reads nothing now: it waits for the caller to answer the last event, or
    /// the handshake is over (what is left of the input is application data).
    Idle,
}

/// Evaluates to the whole message a decoder recognised; otherwise returns from the calling
/// handler: `Ok(Step::NeedMore)` for a prefix, `Err(on_invalid)` for invalid bytes.
macro_rules! whole_or_return {
    ($decoded:expr, |$error:ident| $on_invalid:expr) => {
        match $decoded {
            Ok(message) => message,
            Err($crate::DecodeError::Incomplete { needed }) => {
                return Ok($crate::Step::NeedMore { at_least: needed })
            }
            Err($crate::DecodeError::Invalid($error)) => return Err($on_invalid),
        }
    };
}

pub(crate) use whole_or_return;

/// The protocol a session speaks, decided by the first byte the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// SOCKS4: IPv4 targets only.
    Socks4,
    /// SOCKS4 with the 4a extension: the server resolves a host name.
    Socks4a,
    /// SOCKS5.
    Socks5,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Socks4 => "socks4",
            Self::Socks4a => "socks4a",
            Self::Socks5 => "socks5",
        })
    }
}

/// An ordered list of up to eight authentication methods, stored inline so a machine can be
/// created per session without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    slots: [Method; Self::CAPACITY],
    len: u8,
}

impl Methods {
    /// How many methods the list holds at most.
    pub const CAPACITY: usize = 8;

    /// The list of `methods` in order, without repeats; `None` if there are more than eight
    /// distinct methods or the list names [`Method::NO_ACCEPTABLE`].
    pub fn new(methods: &[Method]) -> Option<Self> {
        let mut list = Self {
            slots: [Method::NO_ACCEPTABLE; Self::CAPACITY],
            len: 0,
        };
        for &method in methods {
            if method == Method::NO_ACCEPTABLE {
                return None;
            }
            if !list.contains(method) {
                *list.slots.get_mut(usize::from(list.len))? = method;
                list.len += 1;
            }
        }
        Some(list)
    }

    /// A list with one method.
    pub const fn one(method: Method) -> Self {
        let mut slots = [Method::NO_ACCEPTABLE; Self::CAPACITY];
        slots[0] = method;
        Self { slots, len: 1 }
    }

    /// The methods, in order of preference.
    pub fn as_slice(&self) -> &[Method] {
        &self.slots[..usize::from(self.len)]
    }

    /// Whether `method` is in the list.
    pub fn contains(&self, method: Method) -> bool {
        self.as_slice().contains(&method)
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Bytes a machine wants sent, kept until the caller says they were written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Output(Vec<u8>);

impl Output {
    pub(crate) fn queue(&mut self, message: &impl crate::Wire) {
        message.encode(&mut self.0);
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn advance(&mut self, written: usize) {
        let written = written.min(self.0.len());
        self.0.drain(..written);
    }
}
