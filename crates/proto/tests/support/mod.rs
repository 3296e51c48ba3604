//! Helpers shared by the conformance tests.

#![allow(dead_code)]

pub(crate) mod drive;

use socksgate_proto::{DecodeError, Wire};

/// The error for "at least `n` more bytes".
pub(crate) fn needed(n: usize) -> DecodeError {
    DecodeError::Incomplete {
        needed: n.try_into().unwrap(),
    }
}

/// `bytes` decodes to exactly `expected`, using every byte; `expected` encodes to `bytes`;
/// and every proper prefix of `bytes` is reported incomplete, never invalid.
pub(crate) fn assert_wire<T: Wire + PartialEq + std::fmt::Debug>(bytes: &[u8], expected: &T) {
    let (decoded, used) = T::decode(bytes).unwrap();
    assert_eq!(&decoded, expected);
    assert_eq!(used, bytes.len(), "decoder must use the whole message");
    assert_eq!(expected.to_bytes(), bytes);
    for cut in 0..bytes.len() {
        assert!(
            matches!(
                T::decode(&bytes[..cut]),
                Err(DecodeError::Incomplete { .. })
            ),
            "a prefix of {cut} bytes must be incomplete"
        );
    }
}
