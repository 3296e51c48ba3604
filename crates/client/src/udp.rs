//! UDP ASSOCIATE through a chain: one association per hop, datagrams wrapped once per hop.
//!
//! The client opens an association at every hop (reaching hop *i* through hops 0…*i*−1). A
//! datagram for the target carries one SOCKS UDP header per hop: the outermost names hop 1's
//! relay, the next hop 2's, …, the innermost the target. Each hop's relay strips its header
//! and sends the rest on, to the next relay; replies come back wrapped once per hop in the
//! same way, and are unwrapped here.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socksgate_proto::udp::UdpHeader;
use socksgate_proto::{Address, Command, Wire};
use tokio::net::UdpSocket;

use crate::chain::{resolve, Chain, ChainError, HopFailure};
use crate::ProxyStream;

/// A UDP association through every hop of a chain.
#[derive(Debug)]
pub struct UdpChain {
    socket: UdpSocket,
    /// Each hop's relay address; datagrams go to the first.
    relays: Vec<SocketAddr>,
    /// The control connections: an association lives as long as its connection.
    _controls: Vec<ProxyStream>,
}

impl Chain {
    /// Opens a UDP association through every hop.
    pub async fn udp_associate(&self) -> Result<UdpChain, ChainError> {
        let mut relays = Vec::with_capacity(self.hops().len());
        let mut controls = Vec::with_capacity(self.hops().len());
        for index in 0..self.hops().len() {
            let prefix = self.prefix(index);
            // The prefix's hops are numbered as in the whole chain.
            let (control, relay) = prefix.associate_at_last().await?;
            relays.push(relay);
            controls.push(control);
        }
        let first = relays.first().copied().ok_or_else(|| ChainError {
            hop: 0,
            proxy: "-".to_owned(),
            failure: HopFailure::Io(io::Error::other("the chain is empty")),
        })?;
        let local: IpAddr = match first.ip() {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind((local, 0))
            .await
            .map_err(|error| ChainError {
                hop: 1,
                proxy: self.hops()[0].to_string(),
                failure: HopFailure::Io(error),
            })?;
        Ok(UdpChain {
            socket,
            relays,
            _controls: controls,
        })
    }

    /// UDP ASSOCIATE at the last hop (reached through the others); returns the control
    /// connection and the relay address.
    async fn associate_at_last(&self) -> Result<(ProxyStream, SocketAddr), ChainError> {
        let unknown = Address::unspecified();
        let (stream, bound) = self
            .request_with_reply(Command::UDP_ASSOCIATE, &unknown)
            .await?;
        let last = &self.hops()[self.hops().len() - 1];
        let mut relay = match bound.socket_addr() {
            Some(relay) => relay,
            None => *resolve(&bound)
                .await
                .ok()
                .and_then(|a| a.first().copied())
                .as_ref()
                .ok_or_else(|| ChainError {
                    hop: self.hops().len(),
                    proxy: last.to_string(),
                    failure: HopFailure::Resolve(io::Error::other(
                        "relay address does not resolve",
                    )),
                })?,
        };
        if relay.ip().is_unspecified() {
            // "Send to me": the proxy's own address.
            if let Some(proxy) = resolve(&last.address)
                .await
                .ok()
                .and_then(|a| a.first().copied())
            {
                relay.set_ip(proxy.ip());
            }
        }
        Ok((stream, relay))
    }
}

impl UdpChain {
    /// Sends `payload` to `target` through the chain.
    pub async fn send_to(&self, payload: &[u8], target: &Address) -> io::Result<()> {
        let mut headers = Vec::with_capacity(self.relays.len() * 22);
        for relay in &self.relays[1..] {
            UdpHeader::new(Address::from(*relay)).encode(&mut headers);
        }
        UdpHeader::new(target.clone()).encode(&mut headers);
        headers.extend_from_slice(payload);
        self.socket.send_to(&headers, self.relays[0]).await?;
        Ok(())
    }

    /// Receives the next datagram that came back through the chain: its source and data.
    /// Datagrams that are not wrapped once per hop are skipped.
    pub async fn recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, Address)> {
        loop {
            let (len, from) = self.socket.recv_from(buffer).await?;
            if from != self.relays[0] {
                continue;
            }
            if let Some((source, start)) = unwrap(&buffer[..len], self.relays.len()) {
                buffer.copy_within(start..len, 0);
                return Ok((len - start, source));
            }
        }
    }

    /// The local address of the client's UDP socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Strips `layers` headers; returns the innermost source and where the data starts.
fn unwrap(datagram: &[u8], layers: usize) -> Option<(Address, usize)> {
    let mut start = 0;
    let mut source = None;
    for _ in 0..layers {
        let (header, used) = UdpHeader::decode(&datagram[start..]).ok()?;
        if !header.frag.is_standalone() {
            return None;
        }
        start += used;
        source = Some(header.address);
    }
    Some((source?, start))
}
