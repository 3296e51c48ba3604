//! BIND: listen for one inbound connection on the client's behalf (RFC 1928 §4, SOCKS4).
//!
//! The first reply names where the peer must connect; the second names the peer once it
//! has. When the request names a peer (DST.ADDR), only a connection from that host is
//! accepted — others are closed and counted — as RFC 1928 lets the server "use DST.ADDR
//! and DST.PORT in evaluating the BIND request". The peer's port is not checked: an
//! application's callback (FTP's data connection, say) comes from a port of its own.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socksgate_proto::{Address, Host, Reply};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::{established, through_route, Established};
use crate::authorize::Grant;
use crate::failure::Failure;
use crate::outbound::ConnectError;
use crate::requested::Requested;
use crate::sockets::{canonical, is_family_unavailable, route_source, wildcard_candidates};
use crate::stream::ClientTcp;

/// Bytes a client may send while waiting for its peer; they are delivered to the peer.
const MAX_EARLY_DATA: usize = 64 * 1024;

pub(crate) async fn bind(mut session: Requested<'_>, grant: Grant) -> Result<Established, Failure> {
    let shared = session.shared;
    if let Some(route) = grant.route.clone() {
        return crate::boxed(bind_through(session, &route, grant)).await;
    }
    let expected = match expected_peer(&session, &grant).await {
        Ok(expected) => expected,
        Err(error) => {
            // Not "any peer": a name that does not resolve names nobody.
            session.refuse(Reply::HOST_UNREACHABLE).await;
            return Err(Failure::Connect(error));
        }
    };
    let listener = match listen(shared.bind.address).await {
        Ok(listener) => listener,
        Err(error) => {
            session.refuse(Reply::GENERAL_FAILURE).await;
            return Err(Failure::Setup(error));
        }
    };
    let port = listener.local_addr().map_err(Failure::Setup)?.port();
    let advertised = advertised_address(&session, &listener, expected.as_ref());
    session
        .reply(
            Reply::SUCCEEDED,
            &Address::from(SocketAddr::new(advertised, port)),
        )
        .await
        .map_err(Failure::ClientGone)?;

    let waited = tokio::time::timeout(
        shared.bind.timeout,
        wait_for_peer(&mut session, &listener, expected),
    )
    .await;
    let (peer, peer_addr) = match waited {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(error)) => return Err(Failure::ClientGone(error)),
        Err(_) => {
            session.refuse(Reply::TTL_EXPIRED).await;
            return Err(Failure::BindTimeout);
        }
    };
    drop(listener);
    let _ = peer.set_nodelay(true);
    session.record.peer = Some(Box::new(peer_addr));
    session
        .reply(Reply::SUCCEEDED, &Address::from(peer_addr))
        .await
        .map_err(Failure::ClientGone)?;
    established(&mut session, peer, grant).await
}

/// The peers the request names: the addresses the policy checked and allowed, else the
/// host's own (a name resolved under `timeouts.connect`); `None` for any peer (0.0.0.0).
async fn expected_peer(
    session: &Requested<'_>,
    grant: &Grant,
) -> Result<Option<Vec<IpAddr>>, ConnectError> {
    if let Some(allowed) = &grant.addresses {
        return Ok(Some(
            allowed.iter().map(|a| a.ip().to_canonical()).collect(),
        ));
    }
    match &session.request.target.host {
        Host::Ip(ip) if ip.is_unspecified() => Ok(None),
        Host::Ip(ip) => Ok(Some(vec![ip.to_canonical()])),
        Host::Domain(name) => {
            let limit = session.shared.timeouts.connect;
            let resolved = tokio::time::timeout(limit, session.shared.resolver.resolve(name, 0))
                .await
                .map_err(|_| ConnectError::TimedOut)?
                .map_err(ConnectError::Resolve)?;
            if resolved.is_empty() {
                return Err(ConnectError::Resolve(io::ErrorKind::NotFound.into()));
            }
            Ok(Some(
                resolved.iter().map(|a| a.ip().to_canonical()).collect(),
            ))
        }
    }
}

/// Listens on the configured address, or on every address (dual stack where possible).
async fn listen(address: Option<IpAddr>) -> io::Result<TcpListener> {
    if let Some(ip) = address {
        return TcpListener::bind((ip, 0)).await;
    }
    let [dual, v4] = wildcard_candidates();
    match TcpListener::bind((dual, 0)).await {
        Err(error) if is_family_unavailable(&error) => TcpListener::bind((v4, 0)).await,
        other => other,
    }
}

/// The address for the first reply: configured, or the listening address, or the one that
/// routes to the expected peer, or the one the client reached us on.
fn advertised_address(
    session: &Requested<'_>,
    listener: &TcpListener,
    expected: Option<&Vec<IpAddr>>,
) -> IpAddr {
    if let Some(ip) = session.shared.bind.advertise_address {
        return ip;
    }
    if let Ok(local) = listener.local_addr() {
        if !local.ip().is_unspecified() {
            return local.ip();
        }
    }
    let control = session
        .client
        .tcp()
        .local_addr()
        .map(|a| a.ip().to_canonical())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    expected
        .and_then(|peers| peers.first())
        .and_then(|&peer| route_source(peer))
        .map_or(control, |ip| ip.to_canonical())
}

/// Accepts until the expected peer connects, keeping whatever the client sends meanwhile;
/// fails if the client closes its connection.
async fn wait_for_peer(
    session: &mut Requested<'_>,
    listener: &TcpListener,
    expected: Option<Vec<IpAddr>>,
) -> io::Result<(TcpStream, SocketAddr)> {
    let mut chunk = [0u8; 2048];
    loop {
        let reading = session.pipelined.len() < MAX_EARLY_DATA;
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, from) = accepted?;
                let from = canonical(from);
                match &expected {
                    Some(peers) if !peers.contains(&from.ip()) => {
                        session.record.rejected_peers += 1;
                        tracing::debug!(%from, "BIND: connection from an unexpected peer closed");
                    }
                    _ => return Ok((stream, from)),
                }
            }
            read = session.client.read(&mut chunk), if reading => match read? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => session.pipelined.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

/// BIND at the last hop of an upstream group: its listening address is the first reply, the
/// peer it reports the second.
async fn bind_through(
    mut session: Requested<'_>,
    route: &str,
    grant: Grant,
) -> Result<Established, Failure> {
    let shared = session.shared;
    let peer = session.request.target.clone();
    let listener = through_route(&mut session, route, &grant.outbound, |chain| {
        let peer = peer.clone();
        async move { chain.bind(&peer).await }
    })
    .await?;
    let bound = listener.bound().clone();
    session
        .reply(Reply::SUCCEEDED, &bound)
        .await
        .map_err(Failure::ClientGone)?;
    let (upstream, peer) = match tokio::time::timeout(shared.bind.timeout, listener.accept()).await
    {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(error)) => {
            session.refuse(Reply::GENERAL_FAILURE).await;
            return Err(Failure::Upstream(format!("via {route}: {error}")));
        }
        Err(_) => {
            session.refuse(Reply::TTL_EXPIRED).await;
            return Err(Failure::BindTimeout);
        }
    };
    session.record.peer = peer.socket_addr().map(Box::new);
    session
        .reply(Reply::SUCCEEDED, &peer)
        .await
        .map_err(Failure::ClientGone)?;
    established(&mut session, upstream, grant).await
}
