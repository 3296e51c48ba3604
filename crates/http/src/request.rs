//! A client's request head: parsed by `httparse`, then held to what an intermediary must
//! insist on so that it and the server behind it never disagree on where a request ends
//! (RFC 9112 §6.3, §11.2).
//!
//! Refused, with the status RFC 9110/9112 give: a request line over [`MAX_REQUEST_LINE`]
//! (414), a head over [`MAX_HEAD`] or with more than [`MAX_FIELDS`] fields (431), anything
//! `httparse` refuses — obs-fold (§5.2), a bare CR, invalid name or value bytes, a space
//! before the colon (§5.1) — (400), both `Content-Length` and `Transfer-Encoding` (400),
//! `Content-Length` values that differ or are not decimal (400), a transfer coding other
//! than `chunked` (501), `Transfer-Encoding` in HTTP/1.0 (400), no or several `Host`
//! fields in HTTP/1.1 (400, §3.2), a version other than 1.0 and 1.1 (505).

use std::net::IpAddr;

use base64::Engine;
use socksgate_proto::addr::{DomainName, Host};
use socksgate_proto::password::Credentials;
use socksgate_proto::Address;

use crate::fields::{content_length, list_of, owned};
use crate::{Header, HttpError};

/// The longest request line accepted (the target included).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The longest request head accepted: request line and fields.
pub const MAX_HEAD: usize = 32 * 1024;
/// The most header fields a request may have.
pub const MAX_FIELDS: usize = 100;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// CONNECT's authority-form `host:port` (RFC 9112 §3.2.3): a tunnel.
    Tunnel(Address),
    /// An absolute-form `http://` URI (§3.2.2), forwarded: where it goes, the `Host`
    /// field for it, and the origin-form target the origin server gets.
    Origin {
        /// The host and port to connect to (80 when the URI names none).
        address: Address,
        /// The URI's authority as the `Host` field (the port only when not 80).
        host: String,
        /// Path and query, `/` at least.
        path: String,
    },
}

impl Target {
    /// The host and port to reach.
    pub fn address(&self) -> &Address {
        match self {
            Self::Tunnel(address) | Self::Origin { address, .. } => address,
        }
    }
}

/// How a message's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding, up to its last chunk and trailer section.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// A request head that passed every check.
#[derive(Debug)]
pub struct RequestHead {
    /// The method, as sent (case-sensitive, RFC 9110 §9.1).
    pub method: String,
    /// The target.
    pub target: Target,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Every field, as received.
    pub headers: Vec<Header>,
    /// How the request's body ends.
    pub body: Framing,
    /// Whether the client keeps the connection for another request (RFC 9112 §9.3).
    pub persistent: bool,
    /// A WebSocket upgrade (RFC 6455 §4.1): `Upgrade: websocket` and `Connection: upgrade`
    /// on a GET, relayed as such.
    pub websocket: bool,
    /// `Proxy-Authorization: Basic` credentials, when the client sent them.
    pub credentials: Option<Credentials>,
}

impl RequestHead {
    /// Whether the request is a CONNECT.
    pub fn is_connect(&self) -> bool {
        matches!(self.target, Target::Tunnel(_))
    }
}

/// Parses a request head at the start of `input`: the head and the bytes it took, `None`
/// when more bytes are needed, or the error to answer with.
pub fn parse(input: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    // Empty lines before the request line are ignored (RFC 9112 §2.2), so the request
    // line is measured from the first other byte.
    let start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(input.len());
    let line_end = input[start..].iter().position(|&b| b == b'\n');
    if line_end.map_or(input.len() - start, |end| end) > MAX_REQUEST_LINE {
        return Err(HttpError::new(
            414,
            format!("request line longer than {MAX_REQUEST_LINE} bytes"),
        ));
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut fields);
    let used = match parsed.parse(input) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if input.len() > MAX_HEAD => {
            return Err(too_large());
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(
                431,
                format!("more than {MAX_FIELDS} header fields"),
            ))
        }
        Err(httparse::Error::Version) if names_another_version(&input[start..]) => {
            return Err(HttpError::new(505, "only HTTP/1.0 and HTTP/1.1 are served"))
        }
        Err(error) => {
            return Err(HttpError::bad_request(format!(
                "malformed request: {error}"
            )))
        }
    };
    if used > MAX_HEAD {
        return Err(too_large());
    }
    let (Some(method), Some(uri), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HttpError::bad_request("malformed request line"));
    };
    let headers = owned(parsed.headers);
    let head = check(method, uri, minor_version, headers)?;
    Ok(Some((head, used)))
}

/// Whether a request line that `httparse` found no HTTP/1.x version in ends with another
/// well-formed version (`HTTP/2.0`), rather than being malformed (a space in its target).
fn names_another_version(input: &[u8]) -> bool {
    let line = input.split(|&b| b == b'\n').next().unwrap_or(input);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    matches!(parts.as_slice(), [_, _, version]
        if version.len() == 8
            && version.starts_with(b"HTTP/")
            && version[5].is_ascii_digit()
            && version[6] == b'.'
            && version[7].is_ascii_digit())
}

fn too_large() -> HttpError {
    HttpError::new(431, format!("request head longer than {MAX_HEAD} bytes"))
}

fn check(
    method: &str,
    uri: &str,
    minor_version: u8,
    headers: Vec<Header>,
) -> Result<RequestHead, HttpError> {
    let hosts = headers.iter().filter(|header| header.is("host")).count();
    if hosts > 1 || (minor_version == 1 && hosts == 0) {
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
        return Err(HttpError::bad_request(
            "an HTTP/1.1 request has exactly one Host field",
        ));
    }
    let body = framing(&headers, minor_version)?;
    let target = if method == "CONNECT" {
        if body != Framing::Empty {
            return Err(HttpError::bad_request("a CONNECT request has no body"));
        }
        Target::Tunnel(authority(uri)?)
    } else {
        origin(uri)?
    };
    let connection = list_of(&headers, "connection");
    let proxy_connection = list_of(&headers, "proxy-connection");
    let says = |token: &str| {
        connection
            .iter()
            .chain(&proxy_connection)
            .any(|t| t == token)
    };
    let persistent = if minor_version == 1 {
        !says("close")
    } else {
        says("keep-alive") && !says("close")
    };
    // Only a GET without a body, in HTTP/1.1 (RFC 6455 §4.1): the tunnel starts where the
    // head ends.
    let websocket = method == "GET"
        && minor_version == 1
        && body == Framing::Empty
        && connection.iter().any(|token| token == "upgrade")
        && list_of(&headers, "upgrade")
            .iter()
            .any(|protocol| protocol == "websocket");
    let credentials = basic_credentials(&headers)?;
    Ok(RequestHead {
        method: method.to_owned(),
        target,
        minor_version,
        headers,
        body,
        persistent,
        websocket,
        credentials,
    })
}

/// How the request's body ends: RFC 9112 §6.3 with everything ambiguous refused.
fn framing(headers: &[Header], minor_version: u8) -> Result<Framing, HttpError> {
    let length = content_length(headers).map_err(HttpError::bad_request)?;
    let codings = list_of(headers, "transfer-encoding");
    let has_transfer_encoding = headers.iter().any(|header| header.is("transfer-encoding"));
    if !has_transfer_encoding {
        return Ok(match length {
            None | Some(0) => Framing::Empty,
            Some(length) => Framing::Length(length),
        });
    }
    if length.is_some() {
        // §6.3 item 3: a classic smuggling vector; §11.2 lets a server refuse it.
        return Err(HttpError::bad_request(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if minor_version == 0 {
        // §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
        return Err(HttpError::bad_request(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    match codings.as_slice() {
        [only] if only == "chunked" => Ok(Framing::Chunked),
        codings if codings.last().map(String::as_str) != Some("chunked") => Err(
            HttpError::bad_request("Transfer-Encoding does not end with chunked"),
        ),
        _ => Err(HttpError::new(
            501,
            "no transfer coding but chunked is accepted",
        )),
    }
}

/// CONNECT's `host:port` (RFC 9112 §3.2.3; RFC 9110 §9.3.6: the port is required).
fn authority(uri: &str) -> Result<Address, HttpError> {
    let address = host_and_port(uri, None)?;
    if address.port == 0 {
        return Err(HttpError::bad_request("CONNECT to port 0"));
    }
    Ok(address)
}

/// An absolute-form `http://` target, split into where it goes and what the origin gets.
fn origin(uri: &str) -> Result<Target, HttpError> {
    let Some(scheme_end) = uri.find("://") else {
        return Err(HttpError::bad_request(
            "a proxy request names an absolute http:// URI (or is a CONNECT)",
        ));
    };
    let scheme = &uri[..scheme_end];
    if scheme.eq_ignore_ascii_case("https") {
        return Err(HttpError::bad_request(
            "https:// is reached with CONNECT, not forwarded",
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(HttpError::bad_request("only http:// URIs are forwarded"));
    }
    let rest = &uri[scheme_end + 3..];
    if rest.contains('#') {
        return Err(HttpError::bad_request("a fragment in the request target"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        // RFC 9110 §4.2.4: userinfo in an http URI is deprecated and a phishing vector.
        return Err(HttpError::bad_request("user information in the URI"));
    }
    let address = host_and_port(authority, Some(80))?;
    if address.port == 0 {
        return Err(HttpError::bad_request("a request to port 0"));
    }
    let path = match path.strip_prefix('?') {
        Some(_) => format!("/{path}"),
        None if path.is_empty() => "/".to_owned(),
        None => path.to_owned(),
    };
    let host = if address.port == 80 {
        host_field(&address.host)
    } else {
        format!("{}:{}", host_field(&address.host), address.port)
    };
    Ok(Target::Origin {
        address,
        host,
        path,
    })
}

fn host_field(host: &Host) -> String {
    match host {
        Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        other => other.to_string(),
    }
}

/// `host[:port]` with an IPv6 literal in brackets; the host a registered name of
/// letters, digits, `-`, `.` and `_` (RFC 3986 §3.2.2, without percent-encoding).
fn host_and_port(text: &str, default_port: Option<u16>) -> Result<Address, HttpError> {
    let invalid = || HttpError::bad_request("the target is not HOST:PORT");
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (literal, after) = bracketed.split_once(']').ok_or_else(invalid)?;
        let ip: std::net::Ipv6Addr = literal.parse().map_err(|_| invalid())?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or_else(invalid)?),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        };
        let registered = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if name.is_empty() || !name.bytes().all(registered) {
            return Err(invalid());
        }
        let host = match name.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) => Host::Domain(DomainName::new(name).map_err(|_| invalid())?),
        };
        (host, port)
    };
    let port = match (port, default_port) {
        // "host:" means the default port (RFC 3986 §3.2.3).
        (Some(""), Some(default)) | (None, Some(default)) => default,
        (Some(digits), _) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().map_err(|_| invalid())?
        }
        _ => return Err(invalid()),
    };
    Ok(Address { host, port })
}

/// `Proxy-Authorization: Basic` credentials (RFC 7617 §2); another scheme counts as none.
fn basic_credentials(headers: &[Header]) -> Result<Option<Credentials>, HttpError> {
    let mut fields = headers
        .iter()
        .filter(|header| header.is("proxy-authorization"));
    let Some(field) = fields.next() else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Err(HttpError::bad_request("several Proxy-Authorization fields"));
    }
    let malformed = || HttpError::bad_request("malformed Basic credentials");
    let text = field.text().ok_or_else(malformed)?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(token.trim_matches(' '))
            .map_err(|_| malformed())?,
    );
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(malformed)?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    // RFC 7617 §2: the user-id cannot contain a colon or control characters.
    if user.iter().any(u8::is_ascii_control) {
        return Err(malformed());
    }
    Credentials::new(user, password)
        .map(Some)
        .map_err(|_| HttpError::bad_request("credentials longer than 255 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<RequestHead, HttpError> {
        match parse(text.as_bytes()) {
            Ok(Some((head, used))) => {
                assert_eq!(used, text.len(), "{text:?}");
                Ok(head)
            }
            Ok(None) => panic!("incomplete: {text:?}"),
            Err(error) => Err(error),
        }
    }

    fn status_of(text: &str) -> u16 {
        match parsed(text) {
            Ok(head) => panic!("accepted {text:?}: {head:?}"),
            Err(error) => error.status,
        }
    }

    #[test]
    fn connect_names_an_authority() {
        let head =
            parsed("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").unwrap();
        assert_eq!(
            head.target,
            Target::Tunnel("example.com:443".parse().unwrap())
        );
        assert!(head.persistent);
        let head = parsed("CONNECT [::1]:22 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(head.target, Target::Tunnel("[::1]:22".parse().unwrap()));
        for bad in [
            "example.com",
            "example.com:0",
            "a b:1",
            "[::1]",
            "x:-1",
            "x:65536",
        ] {
            let text = format!("CONNECT {bad} HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(status_of(&text), 400, "{bad}");
        }
    }

    #[test]
    fn absolute_form_gives_address_host_and_path() {
        let head = parsed("GET http://Example.com/a?b HTTP/1.1\r\nHost: other\r\n\r\n").unwrap();
        assert_eq!(
            head.target,
            Target::Origin {
                address: "Example.com:80".parse().unwrap(),
                host: "Example.com".into(),
                path: "/a?b".into(),
            }
        );
        let head = parsed("GET http://[::1]:8080?q HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            head.target,
            Target::Origin {
                address: "[::1]:8080".parse().unwrap(),
                host: "[::1]:8080".into(),
                path: "/?q".into(),
            }
        );
        for bad in [
            "/origin-form",
            "*",
            "https://example.com/",
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "http://example.com/#frag",
            "http:///path",
            "http://exa%6dple.com/",
        ] {
            let text = format!("GET {bad} HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(status_of(&text), 400, "{bad}");
        }
    }

    #[test]
    fn framing_is_never_ambiguous() {
        // RFC 9112 §6.3 item 3, §11.2: both framings → 400.
        assert_eq!(
            status_of(
                "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of(
                "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of(
                "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of(
                "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            ),
            501
        );
        assert_eq!(
            status_of("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        let head =
            parsed("POST http://a/ HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n")
                .unwrap();
        assert_eq!(head.body, Framing::Chunked);
        let head =
            parsed("PUT http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(head.body, Framing::Length(12));
        let head = parsed("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(head.body, Framing::Empty);
    }

    #[test]
    fn malformed_heads_are_refused() {
        // obs-fold (RFC 9112 §5.2), a space before the colon (§5.1), bad bytes.
        for bad in [
            "GET http://a/ HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\nX\x01Y: 1\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n",
            "GET  http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert_eq!(status_of(bad), 400, "{bad:?}");
        }
        assert_eq!(status_of("GET http://a/ HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    }

    #[test]
    fn long_lines_and_heads_have_their_statuses() {
        let long_target = format!("GET http://a/{} HTTP/1.1\r\n", "x".repeat(MAX_REQUEST_LINE));
        assert_eq!(parse(long_target.as_bytes()).unwrap_err().status, 414);
        // Before the line ends, too: a client that never ends it is refused at the cap.
        let endless = format!("GET http://a/{}", "x".repeat(MAX_REQUEST_LINE));
        assert_eq!(parse(endless.as_bytes()).unwrap_err().status, 414);
        let big = format!(
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n{}",
            "X-Filler: 0123456789012345678901234567890123456789\r\n".repeat(800)
        );
        assert_eq!(parse(big.as_bytes()).unwrap_err().status, 431);
        let many: String = (0..=MAX_FIELDS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let text = format!("GET http://a/ HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(parse(text.as_bytes()).unwrap_err().status, 431);
        assert!(parse(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn persistence_follows_the_version_and_connection() {
        let persistent = |text: &str| parsed(text).unwrap().persistent;
        assert!(persistent("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!persistent(
            "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!persistent("GET http://a/ HTTP/1.0\r\n\r\n"));
        assert!(persistent(
            "GET http://a/ HTTP/1.0\r\nProxy-Connection: Keep-Alive\r\n\r\n"
        ));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // RFC 7617 §2's example: Aladdin / open sesame.
        let head = parsed(
            "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n",
        )
        .unwrap();
        let credentials = head.credentials.unwrap();
        assert_eq!(credentials.username(), b"Aladdin");
        assert_eq!(credentials.password(), b"open sesame");
        let head =
            parsed("CONNECT a:1 HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Negotiate abc\r\n\r\n")
                .unwrap();
        assert!(head.credentials.is_none());
        for bad in ["Basic !!!", "Basic YWxhZGRpbg==", "Basic"] {
            let text =
                format!("CONNECT a:1 HTTP/1.1\r\nHost: a\r\nProxy-Authorization: {bad}\r\n\r\n");
            assert_eq!(status_of(&text), 400, "{bad}");
        }
    }

    #[test]
    fn websocket_upgrades_are_recognised() {
        let head = parsed(
            "GET http://a/chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\
             Upgrade: websocket\r\n\r\n",
        )
        .unwrap();
        assert!(head.websocket);
        let head = parsed(
            "GET http://a/ HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
        )
        .unwrap();
        assert!(!head.websocket);
        // A body, or HTTP/1.0: no tunnel could start where the head ends.
        for text in [
            "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n",
            "GET http://a/ HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert!(!parsed(text).unwrap().websocket, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_a_head_more_to_read_or_an_error(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&input);
        }
    }
}
