//! socksgate's own answers: a status line, a one-line text body saying why, and the
//! connection closed after it (an answer of the proxy's own ends the client's connection,
//! so nothing the client sent after a bad request can be read as a new one).

use std::fmt;

/// A request that gets an answer of the proxy's own: the status and why (the body's line,
/// and the access log's detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status code to answer with.
    pub status: u16,
    /// Why, in one line (never the client's bytes unquoted).
    pub detail: String,
}

impl HttpError {
    /// An error answered with `status`.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// `400 Bad Request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, detail)
    }

    /// The whole answer: see [`answer`].
    pub fn answer(&self) -> Vec<u8> {
        answer(self.status, &self.detail, &[])
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            reason(self.status),
            self.detail
        )
    }
}

impl std::error::Error for HttpError {}

/// The reason phrase socksgate sends with `status` (RFC 9110 §15).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// An answer of socksgate's own: `status`, the `extra` header lines (each without its
/// CRLF), `Connection: close`, and `text` as a one-line plain-text body.
pub fn answer(status: u16, text: &str, extra: &[&str]) -> Vec<u8> {
    // One line: a detail never breaks the body into lines of its own.
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let body = format!("{status} {}: {line}\n", reason(status));
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for field in extra {
        head.push_str(field);
        head.push_str("\r\n");
    }
    head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// `407`, asking for Basic credentials in `realm` (RFC 7617 §2; RFC 9110 §11.7.1).
pub fn authentication_required(realm: &str, text: &str) -> Vec<u8> {
    let realm: String = realm
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    let challenge = format!("Proxy-Authenticate: Basic realm=\"{realm}\", charset=\"UTF-8\"");
    answer(407, text, &[&challenge])
}

/// The success answer to CONNECT (RFC 9110 §9.3.6): the tunnel starts after it.
pub const CONNECTED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_one_line_of_text_and_closes() {
        let bytes = answer(403, "denied by rules.toml:3\r\nX-Injected: 1", &[]);
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(head.contains("Connection: close"));
        assert!(!head.contains("X-Injected"));
        assert_eq!(
            body,
            "403 Forbidden: denied by rules.toml:3  X-Injected: 1\n"
        );
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn the_challenge_names_a_clean_realm() {
        let text = String::from_utf8(authentication_required("a\"b\r\nc", "who?")).unwrap();
        assert!(text.contains("Proxy-Authenticate: Basic realm=\"abc\", charset=\"UTF-8\"\r\n"));
        assert!(text.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"));
    }
}
