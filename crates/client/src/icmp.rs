//! ICMP echo through a chain (socksgate's extension, `docs/extensions/icmp.md`): the last
//! hop sends the echo requests and reports what answers them.

use std::io;

use socksgate_proto::icmp::IcmpMessage;
use socksgate_proto::{Address, DecodeError, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ProxyStream;

/// An ICMP echo session with the chain's last hop.
#[derive(Debug)]
pub struct IcmpEcho {
    stream: ProxyStream,
    target: Address,
    input: Vec<u8>,
}

impl IcmpEcho {
    pub(crate) fn new(stream: ProxyStream, target: Address) -> Self {
        Self {
            stream,
            target,
            input: Vec::new(),
        }
    }

    /// The address the proxy sends the echo requests to (a name resolved by the proxy).
    pub fn target(&self) -> &Address {
        &self.target
    }

    /// Asks the proxy to send one echo request; `ttl` 0 for the proxy's default.
    pub async fn send(&mut self, seq: u16, ttl: u8, data: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(6 + data.len());
        IcmpMessage::EchoRequest {
            seq,
            ttl,
            data: data.to_vec(),
        }
        .encode(&mut out);
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// The next report from the proxy (messages of unknown types are skipped). Cancel-safe:
    /// a partly read message stays buffered for the next call.
    pub async fn recv(&mut self) -> io::Result<IcmpMessage> {
        loop {
            match IcmpMessage::decode(&self.input) {
                Ok((message, used)) => {
                    self.input.drain(..used);
                    if !matches!(message, IcmpMessage::Unknown { .. }) {
                        return Ok(message);
                    }
                }
                Err(DecodeError::Incomplete { .. }) => {
                    if self.stream.read_buf(&mut self.input).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(DecodeError::Invalid(error)) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error))
                }
            }
        }
    }

    /// The connection itself (a proxy forwarding the extension relays it as bytes), with
    /// anything already read from it.
    pub fn into_parts(self) -> (ProxyStream, Vec<u8>) {
        (self.stream, self.input)
    }
}
