//! Decoding and encoding primitives shared by every message.
//!
//! Every decoder works on a byte slice that may hold less than one message, exactly one, or one
//! message followed by more bytes. It answers one of three things:
//!
//! * `Ok((message, used))`: a whole message was recognised in the first `used` bytes;
//! * `Err(DecodeError::Incomplete { needed })`: the slice is a valid prefix, and at least
//!   `needed` more bytes are required before anything can be decided. A caller reading from a
//!   socket can read exactly that many bytes and never read past the end of the message;
//! * `Err(DecodeError::Invalid(_))`: no continuation of these bytes is a valid message.
//!
//! A decoder never reads past the message it recognises and never panics.

use std::fmt;
use std::num::NonZeroUsize;

/// Why a sequence of bytes is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The version byte is not one this message accepts.
    UnsupportedVersion(u8),
    /// A SOCKS5 address type other than IPv4 (0x01), domain name (0x03) or IPv6 (0x04).
    UnsupportedAddressType(u8),
    /// A domain name that is empty, longer than 255 bytes, or holds bytes a host name cannot hold.
    InvalidDomainName,
    /// A variable-length field (SOCKS4 USERID, SOCKS4a host name) has no terminating NUL within
    /// its maximum length.
    FieldTooLong(&'static str),
    /// A message whose length is fixed by its header was followed by more bytes.
    TrailingBytes,
    /// A SOCKS5 greeting that offers no method at all.
    NoMethodsOffered,
    /// An RFC 1961 message type other than 0x01, 0x02, 0x03 or 0xff.
    UnsupportedMessageType(u8),
    /// A SOCKS4a request whose host name is absent (0.0.0.x destination without a name).
    MissingDomainName,
    /// A length-prefixed message whose body is too short for its type (ICMP extension).
    ShortBody,
    /// A connection that should begin with a PROXY protocol header begins otherwise.
    NotProxyHeader,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v:#04x}"),
            Self::UnsupportedAddressType(t) => write!(f, "unsupported address type {t:#04x}"),
            Self::InvalidDomainName => f.write_str("invalid domain name"),
            Self::FieldTooLong(field) => write!(f, "{field} is too long or not terminated"),
            Self::TrailingBytes => f.write_str("unexpected bytes after a fixed-length message"),
            Self::NoMethodsOffered => f.write_str("greeting offers no authentication method"),
            Self::UnsupportedMessageType(t) => write!(f, "unsupported message type {t:#04x}"),
            Self::MissingDomainName => f.write_str("SOCKS4a request without a host name"),
            Self::ShortBody => f.write_str("message body too short for its type"),
            Self::NotProxyHeader => f.write_str("not a PROXY protocol header"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The outcome of a decoder that could not produce a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes so far are a valid prefix; at least `needed` more are required.
    Incomplete {
        /// The minimum number of additional bytes before the decoder can decide.
        needed: NonZeroUsize,
    },
    /// The bytes can never form a valid message.
    Invalid(ProtocolError),
}

impl DecodeError {
    pub(crate) fn incomplete(needed: usize) -> Self {
        Self::Incomplete {
            needed: NonZeroUsize::new(needed).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

impl From<ProtocolError> for DecodeError {
    fn from(error: ProtocolError) -> Self {
        Self::Invalid(error)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete { needed } => write!(f, "incomplete message: {needed} more bytes"),
            Self::Invalid(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A message with a wire form.
///
/// `decode(encode(m)) == (m, encode(m).len())` holds for every message (tested by property).
pub trait Wire: Sized {
    /// Recognises one message at the start of `input`; returns it and the bytes it used.
    fn decode(input: &[u8]) -> Result<(Self, usize), DecodeError>;

    /// Appends the wire form of the message to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes a message that must fill `input` exactly (a datagram, or a fixed-length reply).
    fn decode_exact(input: &[u8]) -> Result<Self, DecodeError> {
        let (message, used) = Self::decode(input)?;
        if used == input.len() {
            Ok(message)
        } else {
            Err(ProtocolError::TrailingBytes.into())
        }
    }

    /// The wire form of the message as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A cursor over input that reports how many bytes are missing instead of failing.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Fails with the exact shortfall unless `n` more bytes are available; consumes nothing.
    pub(crate) fn require(&self, n: usize) -> Result<(), DecodeError> {
        let available = self.input.len() - self.pos;
        if available < n {
            return Err(DecodeError::incomplete(n - available));
        }
        Ok(())
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.require(n)?;
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A version byte that must equal `expected`.
    pub(crate) fn version(&mut self, expected: u8) -> Result<(), DecodeError> {
        match self.u8()? {
            version if version == expected => Ok(()),
            other => Err(ProtocolError::UnsupportedVersion(other).into()),
        }
    }

    /// A two-byte reply, a version that must equal `version` and one byte (a method
    /// selection, a login status), as the byte and the length used. The whole reply is asked
    /// for at once (unless the version byte is wrong already): a blocking reader then needs
    /// one read.
    pub(crate) fn version_then_byte(
        input: &'a [u8],
        version: u8,
    ) -> Result<(u8, usize), DecodeError> {
        let mut reader = Self::new(input);
        if input.first().is_none_or(|&first| first == version) {
            reader.require(2)?;
        }
        reader.version(version)?;
        let byte = reader.u8()?;
        Ok((byte, reader.position()))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// A NUL-terminated field of at most `max` bytes before the NUL; the NUL is consumed.
    pub(crate) fn nul_terminated(
        &mut self,
        max: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let rest = &self.input[self.pos..];
        let window = &rest[..rest.len().min(max + 1)];
        match window.iter().position(|&b| b == 0) {
            Some(len) => {
                let bytes = &rest[..len];
                self.pos += len + 1;
                Ok(bytes)
            }
            None if window.len() > max => Err(ProtocolError::FieldTooLong(field).into()),
            None => Err(DecodeError::incomplete(1)),
        }
    }
}

/// Appends a length-prefixed field (one length byte). The caller guarantees `bytes.len() <= 255`.
pub(crate) fn put_short_field(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(bytes.len() <= usize::from(u8::MAX));
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// Defines an open newtype over a wire byte with named constants and a readable `Debug`.
macro_rules! wire_code {
    (
        $(#[$meta:meta])*
        pub struct $name:ident(u8) {
            $( $(#[$cmeta:meta])* $constant:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $( $(#[$cmeta])* pub const $constant: Self = Self($value); )*

            /// Every value with a name, in numeric order of declaration.
            pub const KNOWN: &'static [Self] = &[$(Self::$constant),*];

            /// The constant's name, or `None` for a value this crate does not know.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($constant)), )*
                    _ => None,
                }
            }

            /// A short English description, suitable for logs and error messages.
            pub const fn description(self) -> &'static str {
                match self.0 {
                    $( $value => $text, )*
                    _ => "unknown",
                }
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}::{}", stringify!($name), name),
                    None => write!(f, "{}({:#04x})", stringify!($name), self.0),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(_) => f.write_str(self.description()),
                    None => write!(f, "unknown ({:#04x})", self.0),
                }
            }
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value.0
            }
        }
    };
}

pub(crate) use wire_code;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_exact_shortfall() {
        let mut reader = Reader::new(&[1, 2]);
        assert_eq!(reader.take(5), Err(DecodeError::incomplete(3)));
        assert_eq!(reader.position(), 0);
        assert_eq!(reader.u16(), Ok(0x0102));
        assert_eq!(reader.u8(), Err(DecodeError::incomplete(1)));
    }

    #[test]
    fn nul_terminated_limits_its_search() {
        let field = "USERID";
        assert_eq!(
            Reader::new(b"ab\0cd").nul_terminated(2, field),
            Ok(&b"ab"[..])
        );
        assert_eq!(
            Reader::new(b"abc\0").nul_terminated(2, field),
            Err(ProtocolError::FieldTooLong(field).into())
        );
        assert_eq!(
            Reader::new(b"ab").nul_terminated(2, field),
            Err(DecodeError::incomplete(1))
        );
    }
}
