//! A target's (or an upstream proxy's) response head, and how its body ends (RFC 9112
//! §6.3). A response whose framing is ambiguous is refused (the client gets 502): a proxy
//! that guessed could hand the client the start of the next response as this one's body.

use crate::fields::{content_length, list_of, owned};
use crate::request::{Framing, MAX_FIELDS, MAX_HEAD};
use crate::Header;

/// Fields kept free under [`MAX_FIELDS`] in a response for those socksgate adds.
const RESERVED_FIELDS: usize = 4;

/// A response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The reason phrase, as sent.
    pub reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Every field, as received.
    pub headers: Vec<Header>,
    /// How the body ends, given the request's method.
    pub body: Framing,
    /// Whether the sender keeps the connection after this response.
    pub persistent: bool,
}

/// Why a response head is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError(pub String);

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResponseError {}

/// Parses a response head at the start of `input`, to a request with `method`: the head
/// and the bytes it took, or `None` when more are needed.
pub fn parse(input: &[u8], method: &str) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut fields);
    let used = match parsed.parse(input) {
        Ok(httparse::Status::Complete(used)) if used <= MAX_HEAD => used,
        Ok(httparse::Status::Partial) if input.len() <= MAX_HEAD => return Ok(None),
        Ok(_) => {
            return Err(ResponseError(format!(
                "response head over {MAX_HEAD} bytes"
            )))
        }
        Err(error) => return Err(ResponseError(format!("malformed response: {error}"))),
    };
    let (Some(minor_version), Some(status)) = (parsed.version, parsed.code) else {
        return Err(ResponseError("malformed status line".into()));
    };
    if !(100..=599).contains(&status) {
        // RFC 9110 §15: a status is three digits, 1xx to 5xx (httparse takes "054").
        return Err(ResponseError(format!(
            "status {status:03} is not 100 to 599"
        )));
    }
    let reason = parsed.reason.unwrap_or("").to_owned();
    if parsed.headers.len() > MAX_FIELDS - RESERVED_FIELDS {
        // Room for what socksgate adds (Via, Connection), so that what it passes on is
        // within the same cap for the client.
        return Err(ResponseError(format!(
            "more than {} header fields",
            MAX_FIELDS - RESERVED_FIELDS
        )));
    }
    let headers = owned(parsed.headers);
    let length = content_length(&headers).map_err(|why| ResponseError(why.into()))?;
    let has_transfer_encoding = headers.iter().any(|header| header.is("transfer-encoding"));
    let codings = list_of(&headers, "transfer-encoding");
    let no_body = method == "HEAD"
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (method == "CONNECT" && (200..300).contains(&status));
    let body = if no_body {
        Framing::Empty
    } else if has_transfer_encoding {
        if length.is_some() {
            return Err(ResponseError(
                "both Content-Length and Transfer-Encoding".into(),
            ));
        }
        // §6.3 item 4: chunked last means chunked; otherwise the body runs to the close.
        if codings.last().map(String::as_str) == Some("chunked") {
            if codings.iter().filter(|coding| *coding == "chunked").count() > 1 {
                return Err(ResponseError("chunked applied twice".into()));
            }
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(length) => Framing::Length(length),
            None => Framing::UntilClose,
        }
    };
    let connection = list_of(&headers, "connection");
    let persistent = body != Framing::UntilClose
        && if minor_version == 1 {
            !connection.iter().any(|token| token == "close")
        } else {
            connection.iter().any(|token| token == "keep-alive")
        };
    Ok(Some((
        ResponseHead {
            status,
            reason,
            minor_version,
            headers,
            body,
            persistent,
        },
        used,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &str) -> Result<ResponseHead, ResponseError> {
        parse(text.as_bytes(), method).map(|parsed| parsed.map(|(head, _)| head).unwrap())
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let body = |text: &str, method: &str| head(text, method).unwrap().body;
        assert_eq!(
            body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET"),
            Framing::Length(5)
        );
        assert_eq!(
            body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"),
            Framing::Empty
        );
        assert_eq!(
            body("HTTP/1.1 204 No Content\r\n\r\n", "GET"),
            Framing::Empty
        );
        assert_eq!(
            body(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                "GET"
            ),
            Framing::Empty
        );
        assert_eq!(
            body("HTTP/1.1 100 Continue\r\n\r\n", "POST"),
            Framing::Empty
        );
        assert_eq!(
            body(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "GET"
            ),
            Framing::Chunked
        );
        assert_eq!(
            body("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET"),
            Framing::UntilClose
        );
        assert_eq!(body("HTTP/1.0 200 OK\r\n\r\n", "GET"), Framing::UntilClose);
        assert!(!head("HTTP/1.0 200 OK\r\n\r\n", "GET").unwrap().persistent);
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET")
                .unwrap()
                .persistent
        );
        assert!(
            !head(
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                "GET"
            )
            .unwrap()
            .persistent
        );
    }

    #[test]
    fn ambiguous_responses_are_refused() {
        assert!(head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET"
        )
        .is_err());
        assert!(head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "GET"
        )
        .is_err());
        assert!(head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "GET"
        )
        .is_err());
        assert!(head("HTTP/1.1 2000 OK\r\n\r\n", "GET").is_err());
        // Found by the http_response fuzz target: three digits that are no status.
        assert!(head("HTTP/1.1 054 x\r\n\r\n", "GET").is_err());
        assert!(head("HTTP/1.1 011\r\n\r\n", "GET").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nX: y\r\n", "GET")
            .unwrap()
            .is_none());
    }
}
