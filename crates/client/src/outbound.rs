//! How a socket leaves this host: a firewall mark, an interface, a source address. Used by a
//! chain for its own sockets, and by the server for the connections it makes for clients.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpSocket, TcpStream};

/// Socket options for outgoing connections; the default sets none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbound {
    /// `SO_MARK` (needs `CAP_NET_ADMIN`), for policy routing and firewall rules.
    pub mark: Option<u32>,
    /// `SO_BINDTODEVICE` (needs `CAP_NET_RAW` before Linux 5.7): only this interface's
    /// routes are used.
    pub interface: Option<Arc<str>>,
    /// Source addresses, at most one per family; with any, a target of a family that has
    /// none is not tried.
    pub sources: Arc<[IpAddr]>,
}

impl Outbound {
    /// Connects to `address` with these options.
    pub async fn connect(&self, address: SocketAddr) -> io::Result<TcpStream> {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        self.apply(&socket)?;
        if !self.sources.is_empty() {
            let source = self.source_for(address.ip()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("no source address for {address}'s family"),
                )
            })?;
            socket.bind(SocketAddr::new(source, 0))?;
        }
        socket.connect(address).await
    }

    /// The source address for a peer of `peer`'s family, if one is configured.
    pub fn source_for(&self, peer: IpAddr) -> Option<IpAddr> {
        self.sources
            .iter()
            .copied()
            .find(|source| source.is_ipv4() == peer.is_ipv4())
    }

    /// Sets the mark and the interface on any socket, TCP or UDP.
    pub fn apply(&self, socket: &impl std::os::fd::AsFd) -> io::Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        let failed = |option: &str, errno: nix::errno::Errno| {
            io::Error::new(io::Error::from(errno).kind(), format!("{option}: {errno}"))
        };
        if let Some(mark) = self.mark {
            setsockopt(socket, sockopt::Mark, &mark)
                .map_err(|errno| failed(&format!("SO_MARK {mark:#x}"), errno))?;
        }
        if let Some(interface) = &self.interface {
            let name = std::ffi::OsString::from(&**interface);
            setsockopt(socket, sockopt::BindToDevice, &name)
                .map_err(|errno| failed(&format!("SO_BINDTODEVICE {interface}"), errno))?;
        }
        Ok(())
    }
}
