//! The user-space TCP/IP stack over the device (smoltcp, through netstack-smoltcp), and
//! what each flow becomes: a TCP connection a CONNECT, a UDP flow (one source, one
//! destination) a UDP association, ICMP echo the ICMP extension, and DNS queries to the
//! session's server fake addresses that stand for names.
//!
//! Memory is bounded: every queue between the device, the stack and the flows is a bounded
//! channel, each TCP connection has fixed windows (a program that does not read stops its
//! peer, through the proxy, by TCP's own flow control), and flows are counted.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use netstack_smoltcp::{StackBuilder, TcpStream};
use socksgate_client::Chain;
use socksgate_proto::icmp::IcmpMessage;
use socksgate_proto::{Address, DomainName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

use crate::dns::FakeDns;
use crate::icmp::{self, EchoRequest};
use crate::namespace::{DNS_V4, MTU};

/// A UDP flow ends after this long without a datagram either way.
const UDP_IDLE: Duration = Duration::from_secs(120);
/// An ICMP destination's session ends after this long without a request.
const ICMP_IDLE: Duration = Duration::from_secs(30);
/// Flows at once, by kind; beyond them new ones are refused (TCP reset by the stack, UDP
/// datagrams and echo requests dropped), so a runaway program cannot exhaust the proxy.
const MAX_TCP: usize = 4096;
const MAX_UDP: usize = 1024;
const MAX_ICMP: usize = 64;
/// Datagrams or requests waiting for one flow, and packets waiting for the device.
const FLOW_QUEUE: usize = 64;
const DEVICE_QUEUE: usize = 1024;
/// Each TCP connection's windows (smoltcp's buffers), each way.
const TCP_WINDOW: u32 = 1 << 20;

/// A UDP datagram: payload, source, destination (as the stack's UDP socket has them).
type Datagram = (Vec<u8>, SocketAddr, SocketAddr);

/// The state shared by a session's flows.
struct Shared {
    chain: Chain,
    dns: Mutex<FakeDns>,
    tcp: Arc<Semaphore>,
    /// UDP flows, by (program address, destination).
    udp: Flows<(SocketAddr, SocketAddr), Vec<u8>>,
    /// ICMP sessions, by (program address, destination).
    icmp: Flows<(IpAddr, IpAddr), EchoRequest>,
    /// Datagrams for the program, to the stack's UDP socket.
    to_program: mpsc::Sender<Datagram>,
    /// Whole IP packets for the device (ICMP replies, made here).
    to_device: mpsc::Sender<Vec<u8>>,
}

/// Runs the stack over `device` until the device or the stack fails; every flow goes
/// through `chain`.
pub async fn serve(device: tun::Device, chain: Chain) -> io::Result<()> {
    let (mut device_writer, mut device_reader) = tun::AsyncDevice::new(device)?.split()?;
    let (stack, runner, udp, tcp) = StackBuilder::default()
        .enable_tcp(true)
        .enable_udp(true)
        .mtu(usize::from(MTU))
        .tcp_recv_buffer_size(TCP_WINDOW)
        .tcp_send_buffer_size(TCP_WINDOW)
        .build()?;
    let (Some(runner), Some(udp), Some(mut tcp)) = (runner, udp, tcp) else {
        return Err(io::Error::other("the stack has no TCP or UDP"));
    };
    let (mut stack_sink, mut stack_stream) = stack.split();
    let (mut udp_reader, mut udp_writer) = udp.split();
    let (to_program, mut datagrams_out) = mpsc::channel::<Datagram>(DEVICE_QUEUE);
    let (to_device, mut packets_out) = mpsc::channel::<Vec<u8>>(DEVICE_QUEUE);
    let shared = Arc::new(Shared {
        chain,
        dns: Mutex::new(FakeDns::default()),
        tcp: Arc::new(Semaphore::new(MAX_TCP)),
        udp: Flows::new(MAX_UDP),
        icmp: Flows::new(MAX_ICMP),
        to_program,
        to_device,
    });
    tokio::spawn(runner);

    // The device into the stack; echo requests are taken out on the way.
    let inbound = {
        let shared = shared.clone();
        async move {
            let mut packet = vec![0u8; usize::from(MTU) + 64];
            loop {
                let length = device_reader.read(&mut packet).await?;
                if length == 0 {
                    return Ok::<_, io::Error>(());
                }
                let packet = &packet[..length];
                if let Some((program, destination, request)) = icmp::echo_in_packet(packet) {
                    icmp_request(&shared, program, destination, request);
                    continue;
                }
                // A packet the stack cannot parse is the program's problem, not the session's.
                if let Err(error) = stack_sink.send(packet.to_vec()).await {
                    tracing::debug!(%error, "TUN: packet dropped");
                }
            }
        }
    };
    // The stack, and packets made here, out to the device.
    let outbound = async move {
        loop {
            let packet = tokio::select! {
                packet = stack_stream.next() => match packet {
                    Some(packet) => packet?,
                    None => return Ok::<_, io::Error>(()),
                },
                Some(packet) = packets_out.recv() => packet,
            };
            device_writer.write_all(&packet).await?;
        }
    };
    let accept_tcp = {
        let shared = shared.clone();
        async move {
            while let Some((stream, _program, destination)) = tcp.next().await {
                let Ok(slot) = shared.tcp.clone().try_acquire_owned() else {
                    tracing::warn!("TUN: too many TCP connections; one refused");
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    tcp_flow(&shared, stream, destination).await;
                    drop(slot);
                });
            }
            Ok::<_, io::Error>(())
        }
    };
    let receive_udp = {
        let shared = shared.clone();
        async move {
            while let Some((payload, program, destination)) = udp_reader.next().await {
                udp_datagram(&shared, payload, program, destination);
            }
            Ok::<_, io::Error>(())
        }
    };
    let send_udp = async move {
        while let Some(datagram) = datagrams_out.recv().await {
            udp_writer.send(datagram).await?;
        }
        Ok::<_, io::Error>(())
    };
    tokio::try_join!(inbound, outbound, accept_tcp, receive_udp, send_udp)?;
    Ok(())
}

/// Flows by key, each a task fed by a bounded queue, at most `limit` of them at once.
struct Flows<K, T> {
    queues: Arc<Mutex<HashMap<K, mpsc::Sender<T>>>>,
    limit: usize,
}

impl<K, T> Flows<K, T>
where
    K: Copy + Eq + Hash + Send + 'static,
    T: Send + 'static,
{
    fn new(limit: usize) -> Self {
        Self {
            queues: Arc::default(),
            limit,
        }
    }

    /// Gives `item` to the flow of `key`, started as `run(shared, key, queue)` when there is
    /// none (and room for one). An item that finds no room, or a full queue, is dropped, as
    /// a congested network drops a datagram.
    fn deliver<Flow>(
        &self,
        shared: &Arc<Shared>,
        key: K,
        item: T,
        run: fn(Arc<Shared>, K, mpsc::Receiver<T>) -> Flow,
    ) where
        Flow: Future<Output = ()> + Send + 'static,
    {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if !queues.contains_key(&key) {
            if queues.len() >= self.limit {
                tracing::warn!("TUN: too many flows; a packet dropped");
                return;
            }
            let (sender, receiver) = mpsc::channel(FLOW_QUEUE);
            let flow = run(shared.clone(), key, receiver);
            let all = self.queues.clone();
            tokio::spawn(async move {
                flow.await;
                all.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
            });
            queues.insert(key, sender);
        }
        if let Some(queue) = queues.get(&key) {
            let _ = queue.try_send(item);
        }
    }
}

impl Shared {
    /// Where a flow's destination really is: a fake address stands for its name; the
    /// session's DNS server is not a destination.
    fn target(&self, destination: SocketAddr) -> Option<Address> {
        if let IpAddr::V4(ip) = destination.ip() {
            if ip == DNS_V4 {
                return None;
            }
            if FakeDns::is_fake(ip) {
                let dns = self.dns.lock().unwrap_or_else(PoisonError::into_inner);
                let name = DomainName::new(dns.name_of(ip)?).ok()?;
                return Some(Address::domain(name, destination.port()));
            }
        }
        Some(Address::from(destination))
    }
}

async fn tcp_flow(shared: &Shared, mut stream: TcpStream, destination: SocketAddr) {
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
    // Each end-of-file is passed on as a half-close, as the server's relay does.
    if let Err(error) = tokio::io::copy_bidirectional(&mut stream, &mut proxied).await {
        tracing::debug!(%target, %error, "TUN: TCP ended");
    }
}

/// A datagram from the program: a DNS query is answered here; anything else goes to its
/// flow (started on the first datagram).
fn udp_datagram(
    shared: &Arc<Shared>,
    payload: Vec<u8>,
    program: SocketAddr,
    destination: SocketAddr,
) {
    if destination == SocketAddr::new(DNS_V4.into(), 53) {
        let answer = shared
            .dns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answer(&payload);
        if let Some(answer) = answer {
            let _ = shared.to_program.try_send((answer, destination, program));
        }
        return;
    }
    shared
        .udp
        .deliver(shared, (program, destination), payload, udp_flow);
}

/// One UDP flow through its own association; replies go back as the destination's.
async fn udp_flow(
    shared: Arc<Shared>,
    (program, destination): (SocketAddr, SocketAddr),
    mut datagrams: mpsc::Receiver<Vec<u8>>,
) {
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
    let mut incoming = vec![0u8; 65_536];
    loop {
        tokio::select! {
            datagram = datagrams.recv() => {
                let Some(datagram) = datagram else { return };
                if association.send_to(&datagram, &target).await.is_err() {
                    return;
                }
            }
            received = association.recv_from(&mut incoming) => {
                let Ok((length, _)) = received else { return };
                let reply = (incoming[..length].to_vec(), destination, program);
                if shared.to_program.send(reply).await.is_err() {
                    return;
                }
            }
            // The proxy ended the association: the program's next datagram opens another.
            () = association.closed() => return,
            () = tokio::time::sleep(UDP_IDLE) => return,
        }
    }
}

/// An echo request from the program: to its destination's ICMP session (started on the
/// first request).
fn icmp_request(shared: &Arc<Shared>, program: IpAddr, destination: IpAddr, request: EchoRequest) {
    shared
        .icmp
        .deliver(shared, (program, destination), request, icmp_session);
}

/// One destination's echo requests, sent by the proxy; replies written to the device as
/// the destination's.
async fn icmp_session(
    shared: Arc<Shared>,
    (program, destination): (IpAddr, IpAddr),
    mut requests: mpsc::Receiver<EchoRequest>,
) {
    let Some(target) = shared.target(SocketAddr::new(destination, 0)) else {
        return;
    };
    let mut echo = match shared.chain.icmp_echo(&target).await {
        Ok(echo) => echo,
        Err(error) => {
            tracing::info!(%target, %error, "TUN: ICMP refused");
            return;
        }
    };
    tracing::debug!(%target, "TUN: ICMP");
    // The program's identifier for each sequence number in flight.
    let mut ids: HashMap<u16, u16> = HashMap::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return };
                if ids.len() >= 1024 {
                    ids.clear();
                }
                ids.insert(request.seq, request.id);
                if echo.send(request.seq, 0, &request.data).await.is_err() {
                    return;
                }
            }
            message = echo.recv() => {
                let Ok(message) = message else { return };
                let IcmpMessage::EchoReply { seq, data, .. } = message else { continue };
                let Some(id) = ids.remove(&seq) else { continue };
                let reply = icmp::echo_reply_packet(destination, program, id, seq, &data);
                if shared.to_device.send(reply).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(ICMP_IDLE) => return,
        }
    }
}
