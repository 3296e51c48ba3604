//! The client side of CONNECT (RFC 9110 §9.3.6), for an HTTP proxy as a hop of a chain:
//! the request, with Basic credentials (RFC 7617) when the hop's URL has them, and its
//! answer. A 2xx answer starts the tunnel; its head is read exactly, so the target's
//! first bytes stay in the stream.

use base64::Engine;
use socksgate_proto::password::Credentials;
use socksgate_proto::Address;

use crate::response::{self, ResponseError};

/// The CONNECT request for `target`, with `credentials` when given.
pub fn request(target: &Address, credentials: Option<&Credentials>) -> Vec<u8> {
    let authority = match target.host {
        socksgate_proto::addr::Host::Ip(std::net::IpAddr::V6(ip)) => {
            format!("[{ip}]:{}", target.port)
        }
        _ => target.to_string(),
    };
    let mut text = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(credentials) = credentials {
        let mut pair = zeroize::Zeroizing::new(credentials.username().to_vec());
        pair.push(b':');
        pair.extend_from_slice(credentials.password());
        let token =
            zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
        text.push_str(&format!("Proxy-Authorization: Basic {}\r\n", &*token));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// The proxy's answer to CONNECT, once its head is complete: status, reason phrase and the
/// head's length (its body, for a refusal, is not read). `None`: more bytes are needed.
pub fn answer(input: &[u8]) -> Result<Option<(u16, String, usize)>, ResponseError> {
    Ok(response::parse(input, "CONNECT")?.map(|(head, used)| (head.status, head.reason, used)))
}

/// Whether the head of an answer is complete in `input` (it ends with an empty line): a
/// reader that reads byte by byte asks this before parsing.
pub fn head_complete(input: &[u8]) -> bool {
    input.ends_with(b"\r\n\r\n") || input.ends_with(b"\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_credentials() {
        let target: Address = "[::1]:22".parse().unwrap();
        let credentials = Credentials::new("Aladdin", "open sesame").unwrap();
        let text = String::from_utf8(request(&target, Some(&credentials))).unwrap();
        assert_eq!(
            text,
            "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    #[test]
    fn answers_are_read_to_the_end_of_their_head() {
        let input = b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-x";
        let (status, _, used) = answer(input).unwrap().unwrap();
        assert_eq!((status, &input[used..]), (200, &b"SSH-2.0-x"[..]));
        let (status, reason, _) = answer(b"HTTP/1.1 407 Who\r\nContent-Length: 9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((status, reason.as_str()), (407, "Who"));
        assert!(answer(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
        assert!(answer(b"SSH-2.0-x\r\n\r\n").is_err());
    }
}
