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
    /// The control connections: an association lives as long as its connection (watched
    /// by [`UdpChain::closed`], the only reader).
    controls: std::sync::Mutex<Vec<ProxyStream>>,
    /// Per hop, the GSS-API layer its datagrams are sealed with (RFC 1961 §5), when that
    /// hop agreed on protection.
    #[cfg(feature = "gssapi")]
    seals: Vec<Option<std::sync::Mutex<Box<socksgate_gssapi::GssLayer>>>>,
}

impl Chain {
    /// Opens a UDP association through every hop.
    pub async fn udp_associate(&self) -> Result<UdpChain, ChainError> {
        self.beyond_tcp("UDP")?;
        let mut relays = Vec::with_capacity(self.hops().len());
        let mut controls = Vec::with_capacity(self.hops().len());
        #[cfg(feature = "gssapi")]
        let mut seals = Vec::with_capacity(self.hops().len());
        for index in 0..self.hops().len() {
            let prefix = self.prefix(index);
            // The prefix's hops are numbered as in the whole chain.
            #[cfg_attr(not(feature = "gssapi"), allow(unused_mut))]
            let (mut control, relay) = prefix.associate_at_last().await?;
            #[cfg(feature = "gssapi")]
            seals.push(
                control
                    .layered()
                    .take_encapsulation()
                    .map(std::sync::Mutex::new),
            );
            relays.push(relay);
            controls.push(control);
        }
        let first = relays.first().copied().ok_or_else(|| ChainError {
            hop: 0,
            proxy: "-".to_owned(),
            failure: HopFailure::Io(io::Error::other("the chain is empty")),
        })?;
        let outbound = self.outbound();
        let local: IpAddr = outbound.source_for(first.ip()).unwrap_or(match first.ip() {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        });
        let failed = |error| ChainError {
            hop: 1,
            proxy: self.hops()[0].to_string(),
            failure: HopFailure::Io(error),
        };
        let socket = UdpSocket::bind((local, 0)).await.map_err(failed)?;
        outbound.apply(&socket).map_err(failed)?;
        // Not connected: on a connected socket an ICMP error for one datagram (a port
        // briefly closed, a packet too big) would fail the next send or receive and end
        // the association. Strangers' datagrams are read and dropped instead (counted).
        Ok(UdpChain {
            socket,
            relays,
            controls: std::sync::Mutex::new(controls),
            #[cfg(feature = "gssapi")]
            seals,
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
        if relay.ip().is_unspecified() && self.hops().len() == 1 {
            // "Send to me", from the first hop: the address the connection reached (a name
            // resolved again could give another of its addresses).
            if let Ok(proxy) = stream.tcp().peer_addr() {
                relay.set_ip(proxy.ip().to_canonical());
            }
        }
        if relay.ip().is_unspecified() {
            // "Send to me", from a later hop: the proxy's own address.
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
        // From the innermost layer out: what the last hop relays is the target's header and
        // the payload; each hop before it relays the next hop's header and what that hop
        // receives. A hop that agreed on GSS-API protection gets its datagram sealed.
        let mut datagram = Vec::with_capacity(self.relays.len() * 22 + payload.len());
        UdpHeader::new(target.clone()).encode(&mut datagram);
        datagram.extend_from_slice(payload);
        for index in (0..self.relays.len()).rev() {
            datagram = self.seal(index, datagram)?;
            if index > 0 {
                let mut outer = Vec::with_capacity(22 + datagram.len());
                UdpHeader::new(Address::from(self.relays[index])).encode(&mut outer);
                outer.extend_from_slice(&datagram);
                datagram = outer;
            }
        }
        self.socket.send_to(&datagram, self.relays[0]).await?;
        Ok(())
    }

    /// Seals what hop `index` receives, when that hop agreed on protection.
    fn seal(&self, index: usize, datagram: Vec<u8>) -> io::Result<Vec<u8>> {
        #[cfg(feature = "gssapi")]
        if let Some(Some(layer)) = self.seals.get(index) {
            let mut layer = layer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return layer.seal_datagram(&datagram).map_err(io::Error::other);
        }
        let _ = index;
        Ok(datagram)
    }

    /// Whether hop `index` agreed on protection (its datagrams are sealed).
    fn seals_at(&self, index: usize) -> bool {
        #[cfg(feature = "gssapi")]
        if let Some(Some(_)) = self.seals.get(index) {
            return true;
        }
        let _ = index;
        false
    }

    /// Opens what hop `index` sent back (a hop for which [`Self::seals_at`] holds).
    fn open(&self, index: usize, datagram: &[u8]) -> Option<Vec<u8>> {
        #[cfg(feature = "gssapi")]
        if let Some(Some(layer)) = self.seals.get(index) {
            let mut layer = layer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return layer.open_datagram(datagram).ok();
        }
        let _ = (index, datagram);
        None
    }

    /// Receives the next datagram that came back through the chain: its source and data.
    /// Datagrams that are not wrapped once per hop are skipped.
    pub async fn recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, Address)> {
        loop {
            let (len, from) = self.socket.recv_from(buffer).await?;
            if let Some(received) = self.take_data(from, &mut buffer[..len]) {
                return Ok(received);
            }
        }
    }

    /// Without waiting: appends the data of the next datagram that came back through the
    /// chain to `buffer` (into its spare capacity, so a caller's buffer need never be
    /// zeroed) and returns its length and source; `Ok(None)` for a datagram read and
    /// dropped (not wrapped once per hop), so that a caller counts it in its batch;
    /// `WouldBlock` when none is waiting.
    pub fn try_recv_buf_from(&self, buffer: &mut Vec<u8>) -> io::Result<Option<(usize, Address)>> {
        let start = buffer.len();
        // Room for the largest datagram (a no-op when the caller made it).
        buffer.reserve(usize::from(u16::MAX));
        let (_, from) = self.socket.try_recv_buf_from(buffer)?;
        let received = self.take_data(from, &mut buffer[start..]);
        buffer.truncate(start + received.as_ref().map_or(0, |(len, _)| *len));
        Ok(received)
    }

    /// For a datagram from `from`: moves its data to the front of `datagram` and returns its
    /// length and innermost source, or `None` when it did not come wrapped once per hop
    /// from the first hop's relay.
    fn take_data(&self, from: SocketAddr, datagram: &mut [u8]) -> Option<(usize, Address)> {
        if from != self.relays[0] {
            return None;
        }
        match self.unwrap(datagram)? {
            (source, Unwrapped::At(start)) => {
                datagram.copy_within(start.., 0);
                Some((datagram.len() - start, source))
            }
            (source, Unwrapped::Opened(data, start)) => {
                // An opened datagram is shorter than the sealed one it came in.
                let data = &data[start..];
                let len = data.len().min(datagram.len());
                datagram[..len].copy_from_slice(&data[..len]);
                Some((len, source))
            }
        }
    }

    /// Completes when a hop has ended the association: one of the control connections
    /// closed or failed (RFC 1928 §7: an association ends with the TCP connection its
    /// request came on). Whatever a hop sends on them meanwhile is read and ignored. One
    /// caller at a time: of two concurrent ones, only the last to poll is woken.
    pub async fn closed(&self) {
        std::future::poll_fn(|context| self.poll_closed(context)).await;
    }

    fn poll_closed(&self, context: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // Locked only within a poll, never across one: the future holds nothing but `self`.
        let mut controls = self
            .controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if controls
            .iter_mut()
            .any(|control| crate::poll_ended(control, context).is_ready())
        {
            return std::task::Poll::Ready(());
        }
        std::task::Poll::Pending
    }

    /// Calls `visit` with the TCP connection under each hop's control connection (to set
    /// keepalive on them, say: an association is only as alive as they are).
    pub fn each_control(&self, mut visit: impl FnMut(&tokio::net::TcpStream)) {
        let controls = self
            .controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for control in controls.iter() {
            visit(control.tcp());
        }
    }

    /// Waits until a datagram may be waiting, for [`Self::try_recv_buf_from`].
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// The local address of the client's UDP socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Where the data of an unwrapped datagram is.
enum Unwrapped {
    /// In the received datagram, from this offset (no hop sealed it: nothing copied).
    At(usize),
    /// In a datagram a hop's seal was opened into, from this offset.
    Opened(Vec<u8>, usize),
}

impl UdpChain {
    /// Opens (where sealed) and strips one layer per hop; returns the innermost source and
    /// where the data is.
    fn unwrap(&self, datagram: &[u8]) -> Option<(Address, Unwrapped)> {
        let mut opened: Option<Vec<u8>> = None;
        let mut start = 0;
        let mut source = None;
        for index in 0..self.relays.len() {
            if self.seals_at(index) {
                let current = opened.as_deref().unwrap_or(datagram);
                opened = Some(self.open(index, &current[start..])?);
                start = 0;
            }
            let current = opened.as_deref().unwrap_or(datagram);
            let (header, used) = UdpHeader::decode(&current[start..]).ok()?;
            if !header.frag.is_standalone() {
                return None;
            }
            start += used;
            source = Some(header.address);
        }
        let data = match opened {
            Some(opened) => Unwrapped::Opened(opened, start),
            None => Unwrapped::At(start),
        };
        Some((source?, data))
    }
}
