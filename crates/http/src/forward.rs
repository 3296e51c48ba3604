//! The heads socksgate sends on: a request to the origin server in origin-form, a response
//! back to the client; neither carries the fields that concern only one connection
//! (RFC 9110 §7.6.1), and both say the message went through socksgate (`Via`, §7.6.3).

use crate::fields::list_of;
use crate::request::{RequestHead, Target};
use crate::response::ResponseHead;
use crate::Header;

/// The pseudonym socksgate gives itself in `Via`.
pub const PSEUDONYM: &str = "socksgate";

/// Fields that are never passed on: hop-by-hop ones (RFC 9110 §7.6.1), and the proxy's own
/// authentication (§11.7), which is for socksgate, not for the origin.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Fields that stay whatever `Connection` lists: the framing and the host. Dropping them
/// because a client listed them would make socksgate and the next server read the body
/// differently.
const NEVER_DROPPED: &[&str] = &["content-length", "transfer-encoding", "host"];

/// Whether `header` is passed on, given the message's `Connection` list.
fn passed_on(header: &Header, connection: &[String], upgrade: bool) -> bool {
    let name = header.name.to_ascii_lowercase();
    if NEVER_DROPPED.contains(&name.as_str()) {
        return true;
    }
    if upgrade && name == "upgrade" {
        return true;
    }
    !HOP_BY_HOP.contains(&name.as_str()) && !connection.contains(&name)
}

fn push_field(out: &mut Vec<u8>, header: &Header) {
    out.extend_from_slice(header.name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(&header.value);
    out.extend_from_slice(b"\r\n");
}

/// The request head for the origin server: origin-form target, `Host` from the URI
/// (RFC 9112 §3.2.2: a proxy replaces the received one), `Via`, and `Connection: close`
/// when the origin's connection will not be used again. `None` for a CONNECT, which is not
/// forwarded.
pub fn request(head: &RequestHead, close: bool) -> Option<Vec<u8>> {
    let Target::Origin { host, path, .. } = &head.target else {
        return None;
    };
    let connection = list_of(&head.headers, "connection");
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(
        format!("{} {path} HTTP/1.1\r\nHost: {host}\r\n", head.method).as_bytes(),
    );
    let (mut length_sent, mut coding_sent) = (false, false);
    for header in &head.headers {
        if header.is("content-length") {
            // One field with the one length, however the client wrote it ("7, 7", twice):
            // the next server must not have to be as lenient as RFC 9110 §8.6 lets us be.
            if !length_sent {
                let length = match head.body {
                    crate::Framing::Length(length) => length,
                    _ => 0,
                };
                out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
                length_sent = true;
            }
            continue;
        }
        if header.is("transfer-encoding") {
            // Exactly what socksgate read it as (`chunked` alone is accepted), not the
            // client's spelling of it (" ,Chunked\t"), which the next server may not read
            // the same way.
            if !coding_sent {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                coding_sent = true;
            }
            continue;
        }
        if !header.is("host") && passed_on(header, &connection, head.websocket) {
            push_field(&mut out, header);
        }
    }
    out.extend_from_slice(format!("Via: 1.{} {PSEUDONYM}\r\n", head.minor_version).as_bytes());
    if head.websocket {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    } else if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// How a response goes back to the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseShape {
    /// The client's connection ends after this response.
    pub close: bool,
    /// The body goes back with its chunked framing removed (to an HTTP/1.0 client; the
    /// close ends it).
    pub dechunk: bool,
    /// A `101` to a WebSocket upgrade: `Upgrade` passed on, the connection a tunnel next.
    pub upgrade: bool,
    /// The client speaks HTTP/1.0 and keeps the connection: it is told so
    /// (`Connection: keep-alive`), or it would wait for the close to end the response.
    pub keep_alive: bool,
}

/// The response head for the client.
pub fn response(head: &ResponseHead, shape: ResponseShape) -> Vec<u8> {
    let connection = list_of(&head.headers, "connection");
    let mut out = Vec::with_capacity(512);
    let reason = if head.reason.is_empty() {
        crate::status::reason(head.status)
    } else {
        &head.reason
    };
    out.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", head.status).as_bytes());
    for header in &head.headers {
        if shape.dechunk && header.is("transfer-encoding") {
            continue;
        }
        if passed_on(header, &connection, shape.upgrade) {
            push_field(&mut out, header);
        }
    }
    out.extend_from_slice(format!("Via: 1.{} {PSEUDONYM}\r\n", head.minor_version).as_bytes());
    if shape.upgrade {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    } else if shape.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if shape.keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_head(text: &str) -> RequestHead {
        crate::request::parse(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn hop_by_hop_fields_stay_behind() {
        let head = request_head(
            "POST http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: wrong\r\n\
             Connection: keep-alive, X-Secret, Content-Length\r\nX-Secret: s\r\n\
             Keep-Alive: 300\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X\r\n\
             Upgrade: h2c\r\nProxy-Authorization: Basic YTpi\r\nContent-Length: 3\r\n\
             Accept: */*\r\nVia: 1.1 first\r\n\r\n",
        );
        let sent = String::from_utf8(request(&head, false).unwrap()).unwrap();
        assert_eq!(
            sent,
            "POST /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 3\r\n\
             Accept: */*\r\nVia: 1.1 first\r\nVia: 1.1 socksgate\r\n\r\n"
        );
    }

    #[test]
    fn one_content_length_goes_on() {
        let head = request_head(
            "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\n",
        );
        let sent = String::from_utf8(request(&head, false).unwrap()).unwrap();
        assert_eq!(sent.matches("Content-Length").count(), 1, "{sent}");
        assert!(sent.contains("Content-Length: 3\r\n"), "{sent}");
        // The coding as socksgate read it, not as the client spelt it.
        let head = request_head(
            "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,Chunked\t\r\n\r\n",
        );
        let sent = String::from_utf8(request(&head, false).unwrap()).unwrap();
        assert!(
            sent.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{sent}"
        );
        assert_eq!(sent.matches("ransfer-").count(), 1, "{sent}");
    }

    #[test]
    fn a_websocket_upgrade_keeps_its_fields() {
        let head = request_head(
            "GET http://a/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: k\r\n\r\n",
        );
        let sent = String::from_utf8(request(&head, true).unwrap()).unwrap();
        assert!(sent.contains("Upgrade: websocket\r\n"));
        assert!(sent.ends_with("Via: 1.1 socksgate\r\nConnection: Upgrade\r\n\r\n"));
    }

    #[test]
    fn responses_lose_hop_by_hop_fields_and_may_be_dechunked() {
        let (head, _) = crate::response::parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Hop\r\n\
              X-Hop: 1\r\nProxy-Authenticate: Basic\r\nServer: s\r\n\r\n",
            "GET",
        )
        .unwrap()
        .unwrap();
        let shape = ResponseShape {
            close: true,
            dechunk: true,
            ..ResponseShape::default()
        };
        let sent = String::from_utf8(response(&head, shape)).unwrap();
        assert_eq!(
            sent,
            "HTTP/1.1 200 OK\r\nServer: s\r\nVia: 1.1 socksgate\r\nConnection: close\r\n\r\n"
        );
    }
}
