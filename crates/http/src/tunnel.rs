//! The client side of CONNECT (RFC 9110 §9.3.6), for an HTTP proxy as a hop of a chain:
//! the request, with Basic credentials (RFC 7617) when the hop's URL has them, and its
//! answer. A 2xx answer starts the tunnel; its head is read exactly, so the target's
//! first bytes stay in the stream.

use base64::Engine;
use socksgate_proto::client::ClientError;
use socksgate_proto::password::Credentials;
use socksgate_proto::{Address, Reply};

use crate::response::{self, ResponseError};

/// The CONNECT request for `target`, with `credentials` when given; refused (why) for a
/// name that is no host name — a SOCKS client may send `inner:22` as a "name", which a
/// lenient proxy would read as another port than the one the rules saw — and for a user
/// name with a colon, which Basic cannot carry (RFC 7617 §2).
pub fn request(target: &Address, credentials: Option<&Credentials>) -> Result<Vec<u8>, String> {
    use socksgate_proto::addr::Host;
    let authority = match &target.host {
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", target.port),
        Host::Ip(_) => target.to_string(),
        Host::Domain(name) => {
            let registered = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            if !name.as_str().bytes().all(registered) {
                return Err(format!(
                    "{:?} is not a host name an HTTP proxy can be asked for",
                    name.as_str()
                ));
            }
            target.to_string()
        }
    };
    if credentials.is_some_and(|credentials| credentials.username().contains(&b':')) {
        return Err("a user name with a colon cannot be sent as Basic credentials".into());
    }
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
    Ok(text.into_bytes())
}

/// The SOCKS answer a proxy's refusal of CONNECT stands for: a chain reports it as it
/// would a SOCKS hop's (407 is a refused login; 403 the hop's rules; 502 and 503 a target
/// it could not reach; 504 one that did not answer in time).
pub fn refusal(status: u16) -> ClientError {
    match status {
        407 => ClientError::AuthenticationFailed,
        403 => ClientError::Rejected(Reply::NOT_ALLOWED),
        502 | 503 => ClientError::Rejected(Reply::HOST_UNREACHABLE),
        504 => ClientError::Rejected(Reply::TTL_EXPIRED),
        _ => ClientError::Rejected(Reply::GENERAL_FAILURE),
    }
}

/// The proxy's answer to CONNECT, once its head is complete: status, reason phrase and the
/// head's length (its body, for a refusal, is not read). `None`: more bytes are needed.
pub fn answer(input: &[u8]) -> Result<Option<(u16, String, usize)>, ResponseError> {
    Ok(response::parse(input, "CONNECT")?.map(|(head, used)| (head.status, head.reason, used)))
}

/// Whether the head of an answer is complete in `input` (it ends with an empty line, its
/// line ends CRLF or LF): a reader that reads byte by byte asks this before parsing.
pub fn head_complete(input: &[u8]) -> bool {
    input.ends_with(b"\n\r\n") || input.ends_with(b"\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_credentials() {
        let target: Address = "[::1]:22".parse().unwrap();
        let credentials = Credentials::new("Aladdin", "open sesame").unwrap();
        let text = String::from_utf8(request(&target, Some(&credentials)).unwrap()).unwrap();
        assert_eq!(
            text,
            "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    #[test]
    fn names_that_are_no_host_names_are_not_sent() {
        let sneaky = Address::domain(
            socksgate_proto::addr::DomainName::new("inner:22").unwrap(),
            443,
        );
        assert!(request(&sneaky, None).is_err());
        let colon = Credentials::new("a:b", "c").unwrap();
        assert!(request(&"example.com:443".parse().unwrap(), Some(&colon)).is_err());
        assert!(head_complete(b"HTTP/1.1 200 OK\n\r\n"));
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
