//! One session's ICMP socket: a ping socket (`SOCK_DGRAM`, allowed to the groups in
//! `net.ipv4.ping_group_range`) or a raw socket (`CAP_NET_RAW`), sending echo requests to
//! one target and telling which answers are the session's.
//!
//! The two kinds differ in how answers arrive. A ping socket gets only its own echo
//! replies (the kernel owns the identifier), without the IP header, and the errors that
//! quote its probes through the error queue (`IP_RECVERR`). A raw socket sees every ICMP
//! message reaching the host, IPv4 ones with their IP header, so it filters by target and
//! by an identifier this process gives each session.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockProtocol, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage,
};
use socksgate_config::IcmpSocket;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::packet::{self, Answer, Filter};

/// The largest echo payload: an IPv4 datagram of 65,535 bytes less its IP and ICMP headers.
pub(crate) const MAX_PAYLOAD: usize = 65_535 - 20 - 8;

/// Where the kernel says an error-queue entry came from (`SO_EE_ORIGIN_ICMP`, `…_ICMP6`).
const ORIGIN_ICMP: u8 = 2;
const ORIGIN_ICMP6: u8 = 3;

/// Consecutive socket errors tolerated while reading: each reports one ICMP error once
/// (`sk_err`), so a run this long means the socket itself is broken.
const MAX_ERROR_RUN: usize = 64;

/// The kind of socket a prober ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ping,
    Raw,
}

/// Sends one session's echo requests to its target and reads back what answers them.
pub(crate) struct Prober {
    /// The ICMP socket, in tokio's datagram-socket clothes for its readiness tracking
    /// (every call on it goes through `nix`: `recvmsg` with control messages).
    socket: UdpSocket,
    kind: Kind,
    filter: Filter,
    /// The identifier in the session's requests (a ping socket replaces it with its own).
    id: u16,
}

impl Prober {
    /// Opens a socket of the kind `preference` asks for; `Auto` tries a ping socket first
    /// and falls back to a raw one when the ping socket is not allowed.
    pub(crate) fn open(target: IpAddr, preference: IcmpSocket) -> io::Result<Self> {
        let ping_hint = |error: io::Error| {
            io::Error::new(
                error.kind(),
                format!(
                    "ping socket: {error} (is the server's group in net.ipv4.ping_group_range?)"
                ),
            )
        };
        let fd = match preference {
            IcmpSocket::Ping => (
                open_socket(target, Kind::Ping).map_err(ping_hint)?,
                Kind::Ping,
            ),
            IcmpSocket::Raw => (open_socket(target, Kind::Raw)?, Kind::Raw),
            IcmpSocket::Auto => match open_socket(target, Kind::Ping) {
                Ok(fd) => (fd, Kind::Ping),
                Err(ping) => match open_socket(target, Kind::Raw) {
                    Ok(fd) => (fd, Kind::Raw),
                    Err(raw) => {
                        return Err(io::Error::new(
                            raw.kind(),
                            format!(
                                "no ICMP socket: ping socket: {ping} (see \
                                 net.ipv4.ping_group_range); raw socket: {raw}"
                            ),
                        ))
                    }
                },
            },
        };
        let (fd, kind) = fd;
        static NEXT_ID: AtomicU16 = AtomicU16::new(0);
        // Distinct per session in this process, and unlikely to match another process's.
        let id = (std::process::id() as u16).wrapping_add(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        Ok(Self {
            socket: UdpSocket::from_std(std::net::UdpSocket::from(fd))?,
            kind,
            filter: Filter {
                target,
                id: (kind == Kind::Raw).then_some(id),
            },
            id,
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn target(&self) -> IpAddr {
        self.filter.target
    }

    /// Sends one echo request; `ttl` 0 leaves the socket's default TTL (hop limit).
    pub(crate) async fn send(&self, seq: u16, ttl: u8, data: &[u8]) -> io::Result<()> {
        let v6 = self.filter.target.is_ipv6();
        let message = packet::echo_request(v6, self.id, seq, data);
        let ttl = libc::c_int::from(ttl);
        let control = match (ttl, v6) {
            (0, _) => None,
            (_, false) => Some(ControlMessage::Ipv4Ttl(&ttl)),
            (_, true) => Some(ControlMessage::Ipv6HopLimit(&ttl)),
        };
        let control = control.as_slice();
        let iov = [IoSlice::new(&message)];
        let flags = MsgFlags::empty();
        let fd = self.socket.as_raw_fd();
        let attempt = || {
            self.socket.async_io(Interest::WRITABLE, || {
                let sent = match self.filter.target {
                    IpAddr::V4(ip) => {
                        let to = SockaddrIn::from(std::net::SocketAddrV4::new(ip, 0));
                        socket::sendmsg(fd, &iov, control, flags, Some(&to))
                    }
                    IpAddr::V6(ip) => {
                        let to = SockaddrIn6::from(std::net::SocketAddrV6::new(ip, 0, 0, 0));
                        socket::sendmsg(fd, &iov, control, flags, Some(&to))
                    }
                };
                sent.map(drop).map_err(io::Error::from)
            })
        };
        // An ICMP error about an earlier probe stays pending on the socket (`sk_err`), and
        // the next send fails with it once (and clears it): the error itself is reported
        // from the error queue or as a received packet, so this probe is simply sent again.
        match attempt().await {
            Err(error) if error.raw_os_error().is_some() => attempt().await,
            sent => sent,
        }
    }

    /// Waits for the next answer to one of this session's probes, reading into `buffer`
    /// (which must hold the largest probe sent, plus 128 bytes for headers).
    pub(crate) async fn recv(&self, buffer: &mut [u8]) -> io::Result<Answer> {
        loop {
            // An ICMP error wakes a ping socket as an error (EPOLLERR), not as readable.
            self.socket
                .ready(Interest::READABLE | Interest::ERROR)
                .await?;
            // One interest per attempt: tokio clears only the readiness it was asked about
            // (and a combined interest matches none), and only when the read found nothing.
            for interest in [Interest::READABLE, Interest::ERROR] {
                match self.socket.try_io(interest, || self.read_any(buffer)) {
                    Ok(answer) => return Ok(answer),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
        }
    }

    /// The next answer already queued; `WouldBlock` when none is (so the readiness is
    /// cleared only when both queues are empty).
    fn read_any(&self, buffer: &mut [u8]) -> io::Result<Answer> {
        let mut error_run = 0;
        loop {
            let mut empty = true;
            if self.kind == Kind::Ping {
                match self.read_error_queue(buffer) {
                    Ok(Some(answer)) => return Ok(answer),
                    Ok(None) => empty = false,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
            match self.read_packet(buffer) {
                Ok(Some(answer)) => return Ok(answer),
                Ok(None) => empty = false,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // A ping socket also reports each ICMP error once on the next read (its
                // details are in the error queue, read above).
                Err(error) if error_run < MAX_ERROR_RUN && error.raw_os_error().is_some() => {
                    empty = false;
                    error_run += 1;
                }
                Err(error) => return Err(error),
            }
            if empty {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }

    /// One arriving message; `None` when it is someone else's.
    fn read_packet(&self, buffer: &mut [u8]) -> io::Result<Option<Answer>> {
        let v6 = self.filter.target.is_ipv6();
        let mut control = nix::cmsg_space!(libc::c_int);
        let mut iov = [IoSliceMut::new(buffer)];
        let received = socket::recvmsg::<SockaddrStorage>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let mut ttl = 0u8;
        if let Ok(messages) = received.cmsgs() {
            for message in messages {
                if let ControlMessageOwned::Ipv4Ttl(value)
                | ControlMessageOwned::Ipv6HopLimit(value) = message
                {
                    ttl = u8::try_from(value).unwrap_or(0);
                }
            }
        }
        let Some(source) = received.address.as_ref().and_then(ip_of) else {
            return Ok(None);
        };
        let length = received.bytes;
        let message = &buffer[..length];
        Ok(match (self.kind, v6) {
            (Kind::Raw, false) => packet::parse_raw_v4(message, &self.filter),
            _ => packet::parse_message(v6, message, source, ttl, &self.filter),
        })
    }

    /// One entry of a ping socket's error queue; `None` when it is not an ICMP report.
    fn read_error_queue(&self, buffer: &mut [u8]) -> io::Result<Option<Answer>> {
        let v6 = self.filter.target.is_ipv6();
        let mut control = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
        let mut iov = [IoSliceMut::new(buffer)];
        let received = socket::recvmsg::<SockaddrStorage>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(|errno| match errno {
            // An empty error queue reads as EAGAIN.
            Errno::EAGAIN => io::ErrorKind::WouldBlock.into(),
            other => io::Error::from(other),
        })?;
        let mut report = None;
        for message in received.cmsgs().map_err(io::Error::from)? {
            report = match message {
                ControlMessageOwned::Ipv4RecvErr(error, Some(from)) => Some((
                    error,
                    IpAddr::from(std::net::Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr))),
                )),
                ControlMessageOwned::Ipv6RecvErr(error, Some(from)) => Some((
                    error,
                    IpAddr::from(std::net::Ipv6Addr::from(from.sin6_addr.s6_addr)),
                )),
                _ => continue,
            };
        }
        let length = received.bytes;
        let Some((error, from)) = report else {
            return Ok(None);
        };
        if error.ee_origin != ORIGIN_ICMP && error.ee_origin != ORIGIN_ICMP6 {
            return Ok(None);
        }
        Ok(packet::queued_error(
            v6,
            error.ee_type,
            error.ee_code,
            from.to_canonical(),
            &buffer[..length],
        ))
    }
}

fn ip_of(address: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// A non-blocking ICMP socket of `kind` for `target`'s family, asking for the reply TTL
/// (and, on a ping socket, for errors in the error queue).
fn open_socket(target: IpAddr, kind: Kind) -> io::Result<OwnedFd> {
    let (family, protocol) = match target {
        IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp),
        IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6),
    };
    let style = match kind {
        Kind::Ping => SockType::Datagram,
        Kind::Raw => SockType::Raw,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(family, style, flags, protocol)?;
    match (target, kind) {
        (IpAddr::V4(_), Kind::Ping) => {
            socket::setsockopt(&fd, sockopt::Ipv4RecvErr, &true)?;
            socket::setsockopt(&fd, sockopt::Ipv4RecvTtl, &true)?;
        }
        // A raw IPv4 socket reads the IP header, TTL included.
        (IpAddr::V4(_), Kind::Raw) => {}
        (IpAddr::V6(_), kind) => {
            if kind == Kind::Ping {
                socket::setsockopt(&fd, sockopt::Ipv6RecvErr, &true)?;
            }
            socket::setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)?;
        }
    }
    Ok(fd)
}
