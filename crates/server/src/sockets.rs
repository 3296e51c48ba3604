//! Socket helpers: listeners with the kernel's full accept queue; TCP keepalive on the
//! connections that last (a relay, a UDP association's control connection); for BIND and UDP
//! ASSOCIATE, dual-stack binding, address normalisation, and finding the local address
//! that routes to a peer.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket as StdUdpSocket};

/// A listener on `address` whose accept queue holds `backlog` connections, or as many as
/// the kernel allows (`net.core.somaxconn`): a burst of clients waits in the queue rather
/// than having its SYNs dropped (the standard library's 128 dropped one after ~230).
pub(crate) fn listen_on(
    address: SocketAddr,
    backlog: Option<u32>,
) -> io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog.unwrap_or_else(kernel_backlog))
}

/// TCP keepalive on a relayed connection: probes after `idle` without traffic, every
/// quarter of it (at least 1 s), and four unanswered ones end it. A peer whose network
/// vanished is noticed, and its session slot freed, instead of held until the server
/// restarts. No `TCP_USER_TIMEOUT`: Linux then ends a keepalive-probed connection by that
/// timeout instead of the probes, and counts a peer that keeps its window shut (a paused
/// download) as unacknowledged — either a slow notice of dead peers or reset live ones.
/// Data a dead peer never acknowledges is bounded by the kernel's retransmissions
/// (`net.ipv4.tcp_retries2`, about 15 minutes). Best effort: an option the socket refuses
/// changes nothing else.
pub(crate) fn keep_alive(socket: &tokio::net::TcpStream, idle: std::time::Duration) {
    use rustix::net::sockopt;
    let interval = (idle / 4).max(std::time::Duration::from_secs(1));
    let _ = sockopt::set_socket_keepalive(socket, true);
    let _ = sockopt::set_tcp_keepidle(socket, idle);
    let _ = sockopt::set_tcp_keepintvl(socket, interval);
    let _ = sockopt::set_tcp_keepcnt(socket, 4);
}

/// The kernel's cap on accept queues (`net.core.somaxconn`); 4,096 (its default since
/// Linux 5.4) when it cannot be read.
fn kernel_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4_096)
}

/// `addr` with an IPv4-mapped IPv6 address (as a dual-stack socket reports IPv4 peers)
/// turned back into IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Where to bind when the configuration names no address: every IPv6 and IPv4 address
/// (one dual-stack socket), or every IPv4 address on a host without IPv6.
pub(crate) fn wildcard_candidates() -> [IpAddr; 2] {
    [
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    ]
}

/// Whether a bind failure means "this address family is not available here".
pub(crate) fn is_family_unavailable(error: &io::Error) -> bool {
    // EAFNOSUPPORT, EADDRNOTAVAIL
    matches!(error.raw_os_error(), Some(97 | 99))
}

/// `target` in the form a socket bound to `local` can send to: an IPv4 target is written as
/// an IPv4-mapped IPv6 address for a dual-stack (IPv6) socket. `None` if the socket cannot
/// reach it (an IPv6 target from an IPv4 socket).
pub(crate) fn reachable_from(local: SocketAddr, target: SocketAddr) -> Option<SocketAddr> {
    match (local, target) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => Some(SocketAddr::V6(SocketAddrV6::new(
            v4.ip().to_ipv6_mapped(),
            v4.port(),
            0,
            0,
        ))),
        (SocketAddr::V4(_), SocketAddr::V6(v6)) => v6
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(IpAddr::V4(ip), v6.port())),
        _ => Some(target),
    }
}

/// The local address the kernel would use to reach `peer` (connecting a UDP socket sends
/// nothing; it only chooses a route).
pub(crate) fn route_source(peer: IpAddr) -> Option<IpAddr> {
    let unspecified = match peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let probe = StdUdpSocket::bind((unspecified, 0)).ok()?;
    probe.connect((peer, 9)).ok()?;
    Some(probe.local_addr().ok()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:53"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(canonical(mapped).to_string(), "127.0.0.1:53");
    }

    #[test]
    fn targets_are_written_for_the_socket_family() {
        let dual: SocketAddr = "[::]:1".parse().unwrap_or_else(|_| unreachable!());
        let v4_only: SocketAddr = "0.0.0.0:1".parse().unwrap_or_else(|_| unreachable!());
        let v4_target: SocketAddr = "192.0.2.1:53".parse().unwrap_or_else(|_| unreachable!());
        let v6_target: SocketAddr = "[2001:db8::1]:53"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            reachable_from(dual, v4_target).map(|a| a.to_string()),
            Some("[::ffff:192.0.2.1]:53".to_owned())
        );
        assert_eq!(reachable_from(v4_only, v6_target), None);
        assert_eq!(reachable_from(v4_only, v4_target), Some(v4_target));
    }

    #[test]
    fn loopback_routes_from_loopback() {
        assert_eq!(
            route_source(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }
}
