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
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Mutex;

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

pub(crate) fn run(proxies: &ProxyArgs, tcp: &[String], udp: &[String]) -> ExitCode {
    let result = (|| {
        if tcp.is_empty() && udp.is_empty() {
            return Err(crate::exit::usage("nothing to forward: give -L and/or -U"));
        }
        let chain = Arc::new(proxies.chain()?);
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

/// One association through the chain per local sender; replies go back to that sender.
async fn forward_udp(
    socket: Arc<UdpSocket>,
    target: Address,
    chain: Arc<Chain>,
) -> anyhow::Result<()> {
    let associations: Arc<Mutex<HashMap<SocketAddr, Arc<UdpChain>>>> = Arc::default();
    let mut buffer = vec![0u8; 65_535];
    loop {
        let (len, from) = socket.recv_from(&mut buffer).await?;
        let existing = associations.lock().await.get(&from).cloned();
        let association = match existing {
            Some(association) => association,
            None => {
                let association = match chain.udp_associate().await {
                    Ok(association) => Arc::new(association),
                    Err(error) => {
                        let _ = writeln!(std::io::stderr(), "{from} -> {target} (UDP): {error}");
                        continue;
                    }
                };
                associations.lock().await.insert(from, association.clone());
                tokio::spawn(replies(
                    socket.clone(),
                    association.clone(),
                    from,
                    associations.clone(),
                ));
                association
            }
        };
        let _ = association.send_to(&buffer[..len], &target).await;
    }
}

/// Passes the chain's answers back to the local sender until the association fails.
async fn replies(
    socket: Arc<UdpSocket>,
    association: Arc<UdpChain>,
    sender: SocketAddr,
    associations: Arc<Mutex<HashMap<SocketAddr, Arc<UdpChain>>>>,
) {
    let mut buffer = vec![0u8; 65_535];
    while let Ok((len, _source)) = association.recv_from(&mut buffer).await {
        if socket.send_to(&buffer[..len], sender).await.is_err() {
            break;
        }
    }
    associations.lock().await.remove(&sender);
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
