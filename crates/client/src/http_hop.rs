//! An HTTP proxy as a hop: CONNECT to the next hop or the target (RFC 9110 §9.3.6), with
//! Basic credentials from the hop's URL (RFC 7617). The answer's head is read byte by byte
//! so that nothing after it (the target's first bytes) is taken from the tunnel; its
//! status becomes the reply a SOCKS proxy would have given.

use socksgate_http::tunnel;
use socksgate_proto::client::ClientError;
use socksgate_proto::hop::Hop;
use socksgate_proto::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ProxyStream;

/// Why CONNECT through an HTTP hop failed (the chain makes it a `HopFailure`).
#[derive(Debug)]
pub(crate) enum HttpHopError {
    /// The connection broke.
    Io(std::io::Error),
    /// The proxy refused: its status as the SOCKS answer it stands for.
    Refused(ClientError),
    /// What answered is not an HTTP proxy, or the request cannot be put to one (why).
    NotHttp(String),
}

/// CONNECTs through `hop` (reached over `stream`) to `target`.
pub(crate) async fn connect(
    stream: &mut ProxyStream,
    hop: &Hop,
    target: &Address,
) -> Result<(), HttpHopError> {
    let request =
        tunnel::request(target, hop.credentials.as_ref()).map_err(HttpHopError::NotHttp)?;
    stream.write_all(&request).await.map_err(HttpHopError::Io)?;
    stream.flush().await.map_err(HttpHopError::Io)?;
    let mut head = Vec::with_capacity(128);
    while !tunnel::head_complete(&head) {
        if head.len() >= socksgate_http::request::MAX_HEAD {
            return Err(broken("an answer head longer than 32 KiB"));
        }
        let byte = stream.read_u8().await.map_err(HttpHopError::Io)?;
        head.push(byte);
    }
    let (status, _reason, _) = match tunnel::answer(&head) {
        Ok(Some(answer)) => answer,
        Ok(None) => return Err(broken("an incomplete answer")),
        Err(error) => return Err(broken(&error.to_string())),
    };
    if (200..300).contains(&status) {
        return Ok(());
    }
    Err(HttpHopError::Refused(tunnel::refusal(status)))
}

fn broken(why: &str) -> HttpHopError {
    HttpHopError::NotHttp(why.to_owned())
}
