//! Checks shared by the fuzz targets.

use socksgate_proto::{DecodeError, Wire};

/// Decoding arbitrary bytes must not panic, must use no more than it was given, and a
/// recognised message must survive encode → decode unchanged.
pub fn check_decoder<T: Wire + PartialEq + std::fmt::Debug>(data: &[u8]) {
    match T::decode(data) {
        Ok((message, used)) => {
            assert!(used <= data.len());
            assert_eq!(T::decode_exact(&message.to_bytes()), Ok(message));
        }
        Err(DecodeError::Incomplete { needed }) => assert!(needed.get() >= 1),
        Err(DecodeError::Invalid(_)) => {}
    }
    let _ = T::decode_exact(data);
}

/// Decode → encode → decode gives the same message, and encoding is canonical: the second
/// encoding equals the first.
pub fn check_round_trip<T: Wire + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok((message, _)) = T::decode(data) {
        let first = message.to_bytes();
        let again = T::decode_exact(&first).expect("an encoded message decodes");
        assert_eq!(again, message);
        assert_eq!(again.to_bytes(), first);
    }
}
