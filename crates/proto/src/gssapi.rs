//! GSS-API method framing for SOCKS5 (RFC 1961). Framing only: producing and checking the
//! tokens is the GSS-API library's job, in `socksgate-gssapi` (over `socksgate-sys`).
//!
//! Every message but the abort has the same shape (RFC 1961 §3.4, §4.3, §5):
//!
//! ```text
//! +------+------+------+.......................+
//! + ver  | mtyp | len  |       token           |
//! +------+------+------+.......................+
//! + 0x01 | 0x01 | 0x02 | up to 2^16 - 1 octets |
//! +------+------+------+.......................+
//! ```
//!
//! The abort (RFC 1961 §3.7) is two bytes: `0x01 0xff`.

use crate::wire::{wire_code, DecodeError, ProtocolError, Reader, Wire};

/// The version byte of every RFC 1961 message.
pub const VERSION: u8 = 0x01;

/// The longest token a message can carry (a 16-bit length).
pub const MAX_TOKEN_LEN: usize = u16::MAX as usize;

wire_code! {
    /// The `mtyp` byte.
    pub struct MessageType(u8) {
        /// A context-establishment token (§3.4, §3.7).
        AUTHENTICATION = 0x01 => "authentication",
        /// The wrapped protection level (§4.3).
        PROTECTION = 0x02 => "protection-level negotiation",
        /// Wrapped user data (§5).
        ENCAPSULATED = 0x03 => "encapsulated user data",
        /// Context establishment failed; the connection is closed (§3.7).
        ABORT = 0xff => "abort",
    }
}

wire_code! {
    /// The protection level octet, sent wrapped in a [`MessageType::PROTECTION`] message (§4.2).
    pub struct ProtectionLevel(u8) {
        /// Per-message integrity.
        INTEGRITY = 0x01 => "integrity",
        /// Per-message integrity and confidentiality.
        CONFIDENTIALITY = 0x02 => "integrity and confidentiality",
        /// Integrity or confidentiality chosen per message.
        SELECTIVE = 0x03 => "selective",
    }
}

/// One RFC 1961 message.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// What the token is.
    pub kind: MessageType,
    /// The opaque token; always empty for an abort, at most [`MAX_TOKEN_LEN`] bytes otherwise.
    pub token: Vec<u8>,
}

impl Message {
    /// A message of `kind` carrying `token`, or `None` if the token is longer than 65535 bytes
    /// or `kind` is an abort (which carries no token; use [`Message::abort`]).
    pub fn new(kind: MessageType, token: Vec<u8>) -> Option<Self> {
        (token.len() <= MAX_TOKEN_LEN && kind != MessageType::ABORT).then_some(Self { kind, token })
    }

    /// The abort message.
    pub fn abort() -> Self {
        Self {
            kind: MessageType::ABORT,
            token: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Message {
    // Tokens are key material: show their length only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("token_len", &self.token.len())
            .finish()
    }
}

impl Wire for Message {
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut reader = Reader::new(input);
        reader.version(VERSION)?;
        let kind = MessageType(reader.u8()?);
        if kind == MessageType::ABORT {
            return Ok((Self::abort(), reader.position()));
        }
        if MessageType::KNOWN.binary_search(&kind).is_err() {
            return Err(ProtocolError::UnsupportedMessageType(kind.0).into());
        }
        let len = reader.u16()?;
        let token = reader.take(usize::from(len))?.to_vec();
        Ok((Self { kind, token }, reader.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, self.kind.0]);
        if self.kind != MessageType::ABORT {
            let len = self.token.len().min(MAX_TOKEN_LEN);
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend_from_slice(&self.token[..len]);
        }
    }
}
