//! The user-space TCP/IP stack over the device (ipstack), and what each flow becomes: TCP
//! a CONNECT, UDP datagrams a UDP association, ICMP echo the ICMP extension, and DNS
//! queries to the session's server fake addresses mapped back to names.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ipstack::{
    IpNumber, IpStack, IpStackConfig, IpStackStream, IpStackTcpStream, IpStackUdpStream,
    IpStackUnknownTransport, TcpConfig,
};
use socksgate_client::{Chain, IcmpEcho};
use socksgate_proto::icmp::IcmpMessage;
use socksgate_proto::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::dns::FakeDns;
use crate::icmp::{self, EchoRequest};
use crate::namespace::{DNS_V4, MTU};

/// How long a TCP connection may stay silent (ipstack's default of a minute would cut idle
/// SSH sessions).
const TCP_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// How long a UDP flow lives without a datagram.
const UDP_IDLE: Duration = Duration::from_secs(120);
/// Echo requests waiting for an ICMP session to take them.
const ICMP_QUEUE: usize = 64;

/// An echo request, and the packet it came in (replies are written back through it).
type Echo = (EchoRequest, IpStackUnknownTransport);

/// The state shared by a session's flows.
struct Shared {
    chain: Chain,
    dns: Mutex<FakeDns>,
    /// Echo requests by (program address, destination), to that destination's session.
    icmp: Mutex<HashMap<(IpAddr, IpAddr), mpsc::Sender<Echo>>>,
}

/// Runs the stack over `device` until it fails; every flow goes through `chain`.
pub async fn serve(device: tun::Device, chain: Chain) -> io::Result<()> {
    let device = tun::AsyncDevice::new(device)?;
    let mut config = IpStackConfig::default();
    let mut tcp = TcpConfig::default();
    tcp.timeout = TCP_IDLE;
    config
        .mtu(MTU)
        .map_err(io::Error::other)?
        .udp_timeout(UDP_IDLE)
        .with_tcp_config(tcp);
    let mut stack = IpStack::new(config, device);
    let shared = Arc::new(Shared {
        chain,
        dns: Mutex::new(FakeDns::default()),
        icmp: Mutex::new(HashMap::new()),
    });
    loop {
        let flow = stack.accept().await.map_err(io::Error::other)?;
        let shared = shared.clone();
        match flow {
            IpStackStream::Tcp(stream) => {
                tokio::spawn(async move { tcp_flow(&shared, stream).await });
            }
            IpStackStream::Udp(stream) => {
                tokio::spawn(async move { udp_flow(&shared, stream).await });
            }
            IpStackStream::UnknownTransport(packet) => icmp_packet(&shared, packet),
            IpStackStream::UnknownNetwork(_) => {}
        }
    }
}

impl Shared {
    /// Where a flow's destination really is: a fake address stands for its name.
    fn target(&self, destination: SocketAddr) -> Option<Address> {
        if let IpAddr::V4(ip) = destination.ip() {
            if ip == DNS_V4 {
                return None;
            }
            if FakeDns::is_fake(ip) {
                let dns = self.dns.lock().unwrap_or_else(PoisonError::into_inner);
                let name = dns.name_of(ip)?;
                let name = socksgate_proto::DomainName::new(name).ok()?;
                return Some(Address::domain(name, destination.port()));
            }
        }
        Some(Address::from(destination))
    }
}

async fn tcp_flow(shared: &Shared, mut stream: IpStackTcpStream) {
    let destination = stream.peer_addr();
    let Some(target) = shared.target(destination) else {
        return;
    };
    let mut proxied = match shared.chain.connect(&target).await {
        Ok(proxied) => proxied,
        Err(error) => {
            tracing::info!(%target, %error, "TUN: TCP connection refused");
            return;
        }
    };
    tracing::debug!(%target, "TUN: TCP");
    if let Err(error) = tokio::io::copy_bidirectional(&mut stream, &mut proxied).await {
        tracing::debug!(%target, %error, "TUN: TCP ended");
    }
}

async fn udp_flow(shared: &Shared, mut stream: IpStackUdpStream) {
    let destination = stream.peer_addr();
    if destination == SocketAddr::new(DNS_V4.into(), 53) {
        return dns_flow(shared, stream).await;
    }
    let Some(target) = shared.target(destination) else {
        return;
    };
    let association = match shared.chain.udp_associate().await {
        Ok(association) => association,
        Err(error) => {
            tracing::info!(%target, %error, "TUN: UDP association refused");
            return;
        }
    };
    tracing::debug!(%target, "TUN: UDP");
    let mut outgoing = vec![0u8; usize::from(MTU)];
    let mut incoming = vec![0u8; 65_536];
    loop {
        tokio::select! {
            read = stream.read(&mut outgoing) => match read {
                Ok(0) | Err(_) => return,
                Ok(length) => {
                    if association.send_to(&outgoing[..length], &target).await.is_err() {
                        return;
                    }
                }
            },
            received = association.recv_from(&mut incoming) => match received {
                Ok((length, _from)) => {
                    if stream.write_all(&incoming[..length]).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
        }
    }
}

/// Answers the program's DNS queries: one datagram in, one out.
async fn dns_flow(shared: &Shared, mut stream: IpStackUdpStream) {
    let mut query = vec![0u8; 1500];
    while let Ok(length) = stream.read(&mut query).await {
        if length == 0 {
            return;
        }
        let answer = shared
            .dns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answer(&query[..length]);
        if let Some(answer) = answer {
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}

/// An ICMP or ICMPv6 packet from the program: echo requests go to their destination's
/// ICMP session (started on the first), everything else is dropped.
fn icmp_packet(shared: &Arc<Shared>, packet: IpStackUnknownTransport) {
    let v6 = match packet.ip_protocol() {
        IpNumber::ICMP => false,
        IpNumber::IPV6_ICMP => true,
        _ => return,
    };
    let Some(request) = icmp::parse_echo_request(v6, packet.payload()) else {
        return;
    };
    let key = (packet.src_addr(), packet.dst_addr());
    let mut sessions = shared.icmp.lock().unwrap_or_else(PoisonError::into_inner);
    let sender = sessions.entry(key).or_insert_with(|| {
        let (sender, receiver) = mpsc::channel(ICMP_QUEUE);
        let shared = shared.clone();
        tokio::spawn(async move { icmp_session(&shared, key, receiver).await });
        sender
    });
    if let Err(mpsc::error::TrySendError::Closed(_)) = sender.try_send((request, packet)) {
        sessions.remove(&key);
    }
}

/// One destination's echo requests, sent by the proxy; replies written back as the
/// destination's.
async fn icmp_session(
    shared: &Shared,
    (program, destination): (IpAddr, IpAddr),
    mut requests: mpsc::Receiver<Echo>,
) {
    let ended = |shared: &Shared| {
        shared
            .icmp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(program, destination));
    };
    let Some(target) = shared.target(SocketAddr::new(destination, 0)) else {
        return ended(shared);
    };
    let mut echo: IcmpEcho = match shared.chain.icmp_echo(&target).await {
        Ok(echo) => echo,
        Err(error) => {
            tracing::info!(%target, %error, "TUN: ICMP refused");
            return ended(shared);
        }
    };
    tracing::debug!(%target, "TUN: ICMP");
    // The program's identifier for each sequence number, and the packet to answer through.
    let mut ids: HashMap<u16, u16> = HashMap::new();
    let mut answer_through: Option<IpStackUnknownTransport> = None;
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((request, packet)) = request else { break };
                if ids.len() > 1024 {
                    ids.clear();
                }
                ids.insert(request.seq, request.id);
                answer_through = Some(packet);
                if echo.send(request.seq, 0, &request.data).await.is_err() {
                    break;
                }
            }
            message = echo.recv() => {
                let Ok(IcmpMessage::EchoReply { seq, data, .. }) = message else {
                    if message.is_err() { break }
                    continue;
                };
                let (Some(id), Some(through)) = (ids.remove(&seq), &answer_through) else {
                    continue;
                };
                let reply = icmp::echo_reply(destination, program, id, seq, &data);
                if through.send(reply).is_err() {
                    break;
                }
            }
        }
    }
    ended(shared);
}
