//! `socksgate forward`: local ports forwarded to targets through the chain, TCP (`-L`) and
//! UDP (`-U`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use socksgate_client::{Chain, UdpChain};
use socksgate_proto::Address;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Mutex};

use crate::exit;
use crate::proxies::ProxyArgs;

/// One forwarding: a local address and the target behind it.
#[derive(Debug, Clone)]
pub(crate) struct Forwarding {
    local: SocketAddr,
    target: Address,
}

/// `[BIND:]PORT:HOST:PORT`, the local side on 127.0.0.1 unless BIND is given (IPv6 in
/// brackets).
pub(crate) fn parse(spec: &str) -> anyhow::Result<Forwarding> {
    let expected = || {
        crate::exit::usage(format!(
            "{spec:?}: expected [BIND:]PORT:HOST:PORT, like 8080:example.com:80"
        ))
    };
    let (local, target) = split_spec(spec).ok_or_else(expected)?;
    let local: SocketAddr = match local.rsplit_once(':') {
        Some((bind, port)) => format!("{bind}:{port}").parse(),
        None => format!("127.0.0.1:{local}").parse(),
    }
    .map_err(|_| expected())?;
    let target = target
        .parse()
        .map_err(|e| crate::exit::usage(format!("{spec:?}: {e}")))?;
    Ok(Forwarding { local, target })
}

/// Splits at the colon before HOST:PORT (the target is the last two fields).
fn split_spec(spec: &str) -> Option<(&str, &str)> {
    let (rest, port) = spec.rsplit_once(':')?;
    let host_start = if rest.ends_with(']') {
        rest.rfind('[')?
    } else {
        rest.rfind(':')? + 1
    };
    let local = rest.get(..host_start.checked_sub(1)?)?;
    let _ = port;
    Some((local, &spec[host_start..]))
}

pub(crate) fn run(
    proxies: &ProxyArgs,
    tcp: &[String],
    udp: &[String],
    flows: UdpFlows,
) -> ExitCode {
    let result = (|| {
        if tcp.is_empty() && udp.is_empty() {
            return Err(crate::exit::usage("nothing to forward: give -L and/or -U"));
        }
        let chain = Arc::new(match udp.is_empty() {
            true => proxies.chain()?,
            false => proxies.chain_beyond_tcp("UDP")?,
        });
        let tcp: Vec<Forwarding> = tcp.iter().map(|s| parse(s)).collect::<Result<_, _>>()?;
        let udp: Vec<Forwarding> = udp.iter().map(|s| parse(s)).collect::<Result<_, _>>()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for forwarding in tcp {
                let listener = TcpListener::bind(forwarding.local)
                    .await
                    .with_context(|| format!("listening on {}", forwarding.local))?;
                report(&listener.local_addr()?, "tcp", &forwarding.target);
                tasks.spawn(forward_tcp(listener, forwarding.target, chain.clone()));
            }
            for forwarding in udp {
                let socket = UdpSocket::bind(forwarding.local)
                    .await
                    .with_context(|| format!("listening on {} (UDP)", forwarding.local))?;
                report(&socket.local_addr()?, "udp", &forwarding.target);
                tasks.spawn(forward_udp(
                    Arc::new(socket),
                    forwarding.target,
                    chain.clone(),
                    flows,
                ));
            }
            while let Some(done) = tasks.join_next().await {
                done??;
            }
            Ok(())
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "socksgate forward: {error:#}");
            exit::status_of(&error)
        }
    }
}

fn report(local: &SocketAddr, protocol: &str, target: &Address) {
    let _ = writeln!(
        std::io::stderr(),
        "forwarding {protocol} {local} -> {target}"
    );
}

async fn forward_tcp(
    listener: TcpListener,
    target: Address,
    chain: Arc<Chain>,
) -> anyhow::Result<()> {
    loop {
        let (mut client, from) = listener.accept().await?;
        let (target, chain) = (target.clone(), chain.clone());
        tokio::spawn(async move {
            match chain.connect(&target).await {
                Ok(mut upstream) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(error) => {
                    let _ = writeln!(std::io::stderr(), "{from} -> {target}: {error}");
                }
            }
        });
    }
}

/// How `-U` treats its senders: how many associations at once, and when one is idle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpFlows {
    pub(crate) max: usize,
    pub(crate) idle: Duration,
}

/// Datagrams waiting for one sender's association (a slow one drops the excess, as UDP may).
const QUEUED_PER_FLOW: usize = 64;

/// One association through the chain per local sender; replies go back to that sender.
/// The receive loop never waits on the chain: each sender's flow opens its association on
/// its own task, at most `flows.max` at once, and ends after `flows.idle` without a datagram
/// either way — one slow upstream stalls no other sender, and a scan of the port cannot
/// fill memory.
async fn forward_udp(
    socket: Arc<UdpSocket>,
    target: Address,
    chain: Arc<Chain>,
    flows: UdpFlows,
) -> anyhow::Result<()> {
    let senders: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>> = Arc::default();
    let mut buffer = vec![0u8; 65_535];
    let mut said_full = false;
    loop {
        let (len, from) = socket.recv_from(&mut buffer).await?;
        let mut table = senders.lock().await;
        if let Some(flow) = table.get(&from) {
            // Full: this datagram is dropped; the flow is busy or its upstream slow.
            let _ = flow.try_send(buffer[..len].to_vec());
            continue;
        }
        if table.len() >= flows.max {
            if !said_full {
                said_full = true;
                let _ = writeln!(
                    std::io::stderr(),
                    "{target} (UDP): {} senders at once; datagrams of new ones are dropped \
                     until one goes idle (--max-udp-flows)",
                    flows.max
                );
            }
            continue;
        }
        said_full = false;
        let (queue, queued) = mpsc::channel(QUEUED_PER_FLOW);
        let _ = queue.try_send(buffer[..len].to_vec());
        table.insert(from, queue);
        drop(table);
        let flow = Flow {
            socket: socket.clone(),
            sender: from,
            target: target.clone(),
            idle: flows.idle,
        };
        tokio::spawn(flow.run(chain.clone(), queued, senders.clone()));
    }
}

/// One local sender's datagrams through its own association.
struct Flow {
    socket: Arc<UdpSocket>,
    sender: SocketAddr,
    target: Address,
    idle: Duration,
}

impl Flow {
    /// Opens the association, then carries datagrams both ways until it is idle, fails or
    /// the proxy ends it; the sender leaves the table when it ends.
    async fn run(
        self,
        chain: Arc<Chain>,
        mut queued: mpsc::Receiver<Vec<u8>>,
        senders: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
    ) {
        match chain.udp_associate().await {
            Ok(association) => self.carry(&association, &mut queued).await,
            Err(error) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "{} -> {} (UDP): {error}",
                    self.sender,
                    self.target
                );
            }
        }
        senders.lock().await.remove(&self.sender);
    }

    async fn carry(&self, association: &UdpChain, queued: &mut mpsc::Receiver<Vec<u8>>) {
        let mut buffer = vec![0u8; 65_535];
        loop {
            tokio::select! {
                datagram = queued.recv() => match datagram {
                    Some(datagram) => {
                        let _ = association.send_to(&datagram, &self.target).await;
                    }
                    None => return,
                },
                reply = association.recv_from(&mut buffer) => match reply {
                    Ok((len, _source)) => {
                        if self.socket.send_to(&buffer[..len], self.sender).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                // The proxy ended the association: the sender's next datagram opens another.
                () = association.closed() => return,
                () = tokio::time::sleep(self.idle) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let plain = parse("8080:example.com:80").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.local.to_string(), "127.0.0.1:8080");
        assert_eq!(plain.target.to_string(), "example.com:80");
        let bound = parse("0.0.0.0:53:10.0.0.53:53").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bound.local.to_string(), "0.0.0.0:53");
        let v6 = parse("[::1]:8443:[2001:db8::1]:443").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v6.local.to_string(), "[::1]:8443");
        assert_eq!(v6.target.to_string(), "[2001:db8::1]:443");
        assert!(parse("example.com:80").is_err());
    }
}
