//! The chunked transfer coding (RFC 9112 §7.1), scanned: where each chunk's data is and
//! where the body ends, so a body can be passed on unchanged (or its data alone, to an
//! HTTP/1.0 client) without the proxy and the next server disagreeing on its end.
//!
//! Strict where leniency has been used for smuggling: lines end in CRLF only (a bare LF
//! or CR is an error), a chunk size is 1 to 16 hex digits with nothing before it, and
//! chunk extensions and the trailer section are bounded ([`MAX_LINE`], [`MAX_TRAILERS`]).

/// The longest chunk-size line (size and extensions) accepted.
pub const MAX_LINE: usize = 4 * 1024;
/// The largest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// One step of a scan: a prefix of the input and what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// This many bytes of chunk data.
    Data(usize),
    /// This many bytes of framing (sizes, extensions, line ends, trailers).
    Framing(usize),
    /// This many bytes of framing, the last of the body.
    End(usize),
    /// Nothing can be decided without more bytes.
    NeedMore,
}

/// Where a chunked body is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: digits so far, line length so far, whether past the digits.
    Size {
        value: u64,
        digits: u8,
        length: usize,
        extension: bool,
    },
    /// After the size line's CR.
    SizeLf {
        value: u64,
    },
    /// In chunk data: bytes left.
    Data(u64),
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// In the trailer section: bytes so far, whether at a line's start, whether after CR.
    Trailers {
        length: usize,
        line_start: bool,
        cr: bool,
    },
    Done,
}

/// Scans one chunked body.
#[derive(Debug, Clone)]
pub struct Scanner {
    state: State,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
                length: 0,
                extension: false,
            },
        }
    }
}

impl Scanner {
    /// A scanner at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next piece off the front of `input`. Call again with the rest.
    pub fn next(&mut self, input: &[u8]) -> Result<Piece, ChunkError> {
        if input.is_empty() {
            return Ok(if self.is_done() {
                Piece::End(0)
            } else {
                Piece::NeedMore
            });
        }
        if let State::Data(left) = self.state {
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
            let left = left - take as u64;
            self.state = if left == 0 {
                State::DataCr
            } else {
                State::Data(left)
            };
            return Ok(Piece::Data(take));
        }
        // Framing: consumed byte by byte until data begins or the body ends.
        let mut used = 0;
        for &byte in input {
            used += 1;
            self.state = match self.state {
                State::Size {
                    value,
                    digits,
                    length,
                    extension,
                } => {
                    if length + 1 > MAX_LINE {
                        return Err(ChunkError("chunk-size line too long"));
                    }
                    let length = length + 1;
                    match byte {
                        b'\r' if digits > 0 => State::SizeLf { value },
                        b';' if digits > 0 => State::Size {
                            value,
                            digits,
                            length,
                            extension: true,
                        },
                        _ if extension => {
                            if byte.is_ascii_control() && byte != b'\t' {
                                return Err(ChunkError("control byte in a chunk extension"));
                            }
                            State::Size {
                                value,
                                digits,
                                length,
                                extension,
                            }
                        }
                        _ => {
                            let digit = (byte as char)
                                .to_digit(16)
                                .ok_or(ChunkError("chunk size is not hexadecimal"))?;
                            if digits == 16 {
                                return Err(ChunkError("chunk size too large"));
                            }
                            State::Size {
                                value: value << 4 | u64::from(digit),
                                digits: digits + 1,
                                length,
                                extension,
                            }
                        }
                    }
                }
                State::SizeLf { value } => {
                    if byte != b'\n' {
                        return Err(ChunkError("chunk-size line not ended by CRLF"));
                    }
                    if value == 0 {
                        State::Trailers {
                            length: 0,
                            line_start: true,
                            cr: false,
                        }
                    } else {
                        self.state = State::Data(value);
                        return Ok(Piece::Framing(used));
                    }
                }
                State::DataCr => {
                    if byte != b'\r' {
                        return Err(ChunkError("chunk data longer than its size"));
                    }
                    State::DataLf
                }
                State::DataLf => {
                    if byte != b'\n' {
                        return Err(ChunkError("chunk data not ended by CRLF"));
                    }
                    State::Size {
                        value: 0,
                        digits: 0,
                        length: 0,
                        extension: false,
                    }
                }
                State::Trailers {
                    length,
                    line_start,
                    cr,
                } => {
                    if length + 1 > MAX_TRAILERS {
                        return Err(ChunkError("trailer section too large"));
                    }
                    let length = length + 1;
                    match (byte, cr) {
                        (b'\n', true) if line_start => {
                            self.state = State::Done;
                            return Ok(Piece::End(used));
                        }
                        (b'\n', true) => State::Trailers {
                            length,
                            line_start: true,
                            cr: false,
                        },
                        (b'\n', false) => return Err(ChunkError("bare LF in the trailer section")),
                        (_, true) => return Err(ChunkError("bare CR in the trailer section")),
                        (b'\r', false) => State::Trailers {
                            length,
                            line_start,
                            cr: true,
                        },
                        (byte, false) if byte.is_ascii_control() && byte != b'\t' => {
                            return Err(ChunkError("control byte in a trailer field"))
                        }
                        // A trailer line's first byte: an obs-fold would begin with white space.
                        (b' ' | b'\t', false) if line_start => {
                            return Err(ChunkError("obs-fold in the trailer section"))
                        }
                        (_, false) => State::Trailers {
                            length,
                            line_start: false,
                            cr: false,
                        },
                    }
                }
                State::Data(_) | State::Done => {
                    return Err(ChunkError("bytes after the last chunk"));
                }
            };
        }
        Ok(Piece::Framing(used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `body` fed in pieces of `step` bytes: its data, and where it ended.
    fn scan(body: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut scanner = Scanner::new();
        let mut data = Vec::new();
        let mut at = 0;
        let mut window = step.min(body.len());
        loop {
            match scanner.next(&body[at..window])? {
                Piece::Data(n) => {
                    data.extend_from_slice(&body[at..at + n]);
                    at += n;
                }
                Piece::Framing(n) => at += n,
                Piece::End(n) => return Ok((data, at + n)),
                Piece::NeedMore => {
                    assert!(window < body.len(), "ran out");
                    window = (window + step).min(body.len());
                }
            }
            if at == window && window < body.len() {
                window = (window + step).min(body.len());
            }
        }
    }

    #[test]
    fn data_and_end_are_found_whatever_the_reads() {
        let body =
            b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 64] {
            let (data, end) = scan(body, step).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz");
            assert_eq!(&body[end..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn smuggling_shapes_are_errors() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..], // bare LF after the size
            b"5\r\nhello\n0\r\n\r\n",      // bare LF after the data
            b"5\r\nhelloX\r\n0\r\n\r\n",   // data longer than its size
            b" 5\r\nhello\r\n0\r\n\r\n",   // white space before the size
            b"5 \r\nhello\r\n0\r\n\r\n",   // white space after it
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"\r\n",                         // no size at all
            b"10000000000000000\r\n",        // 17 digits
            b"0\r\nX: 1\n\r\n",              // bare LF in a trailer
            b"0\r\nX: 1\r\n folded\r\n\r\n", // obs-fold in a trailer
        ] {
            assert!(scan(bad, 1).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lines_and_trailers_are_bounded() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE));
        assert_eq!(
            Scanner::new().next(&long),
            Err(ChunkError("chunk-size line too long"))
        );
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b'x', MAX_TRAILERS + 1));
        let mut scanner = Scanner::new();
        assert!(scanner.next(&trailers).is_err());
    }

    #[test]
    fn the_largest_size_fits() {
        let mut scanner = Scanner::new();
        assert_eq!(
            scanner.next(b"ffffffffffffffff\r\n"),
            Ok(Piece::Framing(18))
        );
        assert_eq!(scanner.next(b"abc"), Ok(Piece::Data(3)));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_scan_without_panic(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let mut scanner = Scanner::new();
            let mut at = 0;
            while at < input.len() {
                match scanner.next(&input[at..]) {
                    Ok(Piece::Data(n) | Piece::Framing(n)) => { proptest::prop_assert!(n > 0); at += n }
                    Ok(Piece::End(_)) | Ok(Piece::NeedMore) | Err(_) => break,
                }
            }
        }
    }
}
