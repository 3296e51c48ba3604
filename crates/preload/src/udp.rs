//! UDP through the proxy's relay (SOCKS5 UDP ASSOCIATE), on the program's own socket.
//!
//! The first datagram a UDP socket sends to a redirected destination opens an association:
//! a TCP control connection to the proxy (the library's own socket), and the relay's
//! address. From then on the library wraps each datagram the program sends in the SOCKS UDP
//! header and sends it to the relay from the program's socket; datagrams that come back
//! from the relay are unwrapped, and their source is the one the header names. A program that
//! `connect`s its UDP socket has it connected to the relay, and `send`/`write` go to the
//! destination it asked for. Only a chain of one proxy is supported for UDP (the relay must
//! be reachable directly).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libc::c_int;
use socksgate_proto::udp::{Frag, UdpHeader};
use socksgate_proto::{Address, Command, Host, Wire};

use crate::address::SockAddr;
use crate::lock::Guarded;
use crate::marks::Marks;
use crate::real;
use crate::settings::settings;
use crate::state::target_of;
use crate::sys::errno;
use crate::tunnel;

pub(crate) struct Association {
    /// The TCP control connection: the association lives as long as it. -1 once the program
    /// took the number (closed it, or put its own descriptor there): the association is
    /// dead, and the next send opens a new one (a connected socket keeps its peer).
    control: c_int,
    /// Where datagrams go.
    relay: SocketAddr,
    /// The destination of a connected socket.
    peer: Option<SocketAddr>,
    /// Which socket the association is for: a program that closed the number where no hook
    /// sees it (`fclose` of an `fdopen`ed socket inside libc, io_uring) and got it again for
    /// another socket or a file must not have its bytes wrapped or dropped as the relay's.
    socket: crate::own::Identity,
}

pub(crate) static ASSOCIATIONS: Guarded<Option<HashMap<c_int, Association>>> = Guarded::new(None);
/// Which sockets have an association: the datagram hooks skip the lock for the others.
static ASSOCIATED: Marks = Marks::new();

/// The largest datagram there is (UDP's length field): larger sends are `EMSGSIZE`, and no
/// receive needs more room.
pub(crate) const LARGEST_DATAGRAM: usize = 65_535;

/// Room for the largest header the relay sends back (an IPv6 source).
const HEADER_ROOM: usize = 3 + 1 + 16 + 2;

/// Whether `fd` may have an association (`false` is certain; no lock taken).
pub(crate) fn may_follow(fd: c_int) -> bool {
    ASSOCIATED.may_hold(fd)
}

/// Whether `fd` has an association (cheap when none exists).
pub(crate) fn is_associated(fd: c_int) -> bool {
    ASSOCIATED.may_hold(fd) && with(fd, |_| ()).is_some()
}

/// Runs `action` on `fd`'s association, if it has one — and only if `fd` is still the
/// socket it was made for (an entry left by a close no hook saw is no association).
fn with<T>(fd: c_int, action: impl FnOnce(&mut Association) -> T) -> Option<T> {
    let socket = crate::own::identity(fd);
    let mut stale = None;
    let result = ASSOCIATIONS.with(|map| {
        let map = map.as_mut()?;
        if Some(map.get(&fd)?.socket) != socket {
            // Left by a close no hook saw: it goes now, with what it held.
            stale = map.remove(&fd);
            ASSOCIATED.unmark(fd);
            return None;
        }
        map.get_mut(&fd).map(action)
    });
    if let Some(old) = stale {
        // The peer `getpeername` named for it, unless the number has another by now.
        if old.peer.is_some() && crate::state::destination(fd) == old.peer {
            crate::state::forget(fd);
        }
        release_control(old.control);
    }
    result
}

/// The relay address for `fd`, opening the association if needed (or again, when the
/// program took its control connection: a connected socket is connected to the new relay).
fn relay_for(fd: c_int) -> Result<SocketAddr, c_int> {
    let known = with(fd, |association| {
        (
            association.relay,
            association.control >= 0,
            association.peer,
        )
    });
    let peer = match known {
        Some((relay, true, _)) => return Ok(relay),
        Some((_, false, peer)) => peer,
        None => None,
    };
    let mut association = open(fd)?;
    association.peer = peer;
    let relay = association.relay;
    let control = association.control;
    // The control is still ours (the program may have closed the number while the
    // handshake ran): only then does the association count.
    let (replaced, kept) = ASSOCIATIONS.with(|map| {
        if !crate::own::holds(control) {
            return (None, false);
        }
        let replaced = map.get_or_insert_with(HashMap::new).insert(fd, association);
        if replaced.is_none() {
            ASSOCIATED.mark(fd);
        }
        (replaced, true)
    });
    if !kept {
        return Err(libc::ECONNABORTED);
    }
    // Another thread opened one for the same socket meanwhile: its control goes (unless a
    // duplicate of the socket still uses it).
    if let Some(other) = replaced {
        release_control(other.control);
    }
    if peer.is_some() {
        let relay = SockAddr::for_socket(fd, relay).ok_or(libc::EAFNOSUPPORT)?;
        // SAFETY: a valid address of the given length.
        if unsafe { real::connect(fd, relay.as_ptr(), relay.len()) } != 0 {
            return Err(errno());
        }
    }
    Ok(relay)
}

fn open(fd: c_int) -> Result<Association, c_int> {
    let chain = &settings().chain;
    let [proxy] = &chain[..] else {
        // The relay of a later hop is not reachable from here.
        return Err(libc::EOPNOTSUPP);
    };
    let local = ensure_bound(fd)?;
    let socket = crate::own::identity(fd).ok_or(libc::ENOTSOCK)?;
    let proxy_address = proxy.address.socket_addr().ok_or(libc::EHOSTUNREACH)?;
    let family = if proxy_address.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket creation.
    let control = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if control < 0 {
        return Err(errno());
    }
    crate::own::opened(control);
    // Never 0, 1 or 2 (a program started with stdout closed would write into it): moved up.
    let control = if control < 3 {
        // SAFETY: F_DUPFD_CLOEXEC with a lowest number; the low one is closed after.
        let moved = unsafe { libc::fcntl(control, libc::F_DUPFD_CLOEXEC, 3) };
        // SAFETY: our own descriptor, just opened.
        unsafe { real::close(control) };
        if moved < 0 {
            return Err(errno());
        }
        moved
    } else {
        control
    };
    // The kernel just gave the shim this number: if the table still names it, the program
    // closed the old control where no hook saw — its association is dead, and the slot
    // goes before the number is adopted again.
    if crate::own::release(control) {
        control_lost(control);
    }
    if !crate::own::adopt(control) {
        // Only if the number is still the socket just opened (another thread of a daemon
        // may have closed it and opened a file there meanwhile).
        crate::own::close_unadopted(control);
        return Err(libc::EMFILE);
    }
    let unspecified = if proxy_address.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    // DST: the port datagrams will come from; the address is the proxy's to see.
    let request = Address::from(SocketAddr::new(unspecified, local.port()));
    let bound = match tunnel::establish(control, chain, Command::UDP_ASSOCIATE, &request) {
        Ok(bound) => bound,
        Err(error) => {
            crate::own::close(control);
            crate::report("a UDP association", &error);
            return Err(error.errno);
        }
    };
    let Some(mut relay) = bound.socket_addr() else {
        // A relay named by a name (or nothing usable): no association, and the control
        // goes — every send would otherwise leave one more open.
        crate::own::close(control);
        return Err(libc::EPROTO);
    };
    if relay.ip().is_unspecified() {
        relay.set_ip(proxy_address.ip());
    }
    if settings().debug {
        crate::debug(&format!("UDP association for socket {fd}: relay {relay}"));
    }
    Ok(Association {
        control,
        relay,
        peer: None,
        socket,
    })
}

/// Binds an unbound socket to a free port (as the first `sendto` would); returns its
/// local address.
fn ensure_bound(fd: c_int) -> Result<SocketAddr, c_int> {
    let local = local_address(fd)?;
    if local.port() != 0 {
        return Ok(local);
    }
    let any = SockAddr::from(SocketAddr::new(local.ip(), 0));
    // SAFETY: a valid address of the given length.
    if unsafe { libc::bind(fd, any.as_ptr(), any.len()) } != 0 {
        return Err(errno());
    }
    local_address(fd)
}

fn local_address(fd: c_int) -> Result<SocketAddr, c_int> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `length` bytes.
    if unsafe { libc::getsockname(fd, (&raw mut storage).cast(), &mut length) } != 0 {
        return Err(errno());
    }
    // SAFETY: the kernel wrote a valid address of `length` bytes.
    unsafe { crate::address::read((&raw const storage).cast(), length) }.ok_or(libc::EAFNOSUPPORT)
}

/// Whether a datagram to `destination` from `fd` goes through the proxy.
pub(crate) fn redirects(fd: c_int, destination: SocketAddr) -> bool {
    let settings = settings();
    !settings.chain.is_empty()
        && (crate::address::is_fake(destination.ip(), settings.fake_base, settings.fake_size)
            || !settings.is_direct(destination.ip()))
        && is_datagram(fd)
}

fn is_datagram(fd: c_int) -> bool {
    crate::sys::socket_type(fd) == Some(libc::SOCK_DGRAM)
}

/// `connect` on a UDP socket: remember the destination, connect to the relay.
pub(crate) fn connect(fd: c_int, destination: SocketAddr) -> Result<(), c_int> {
    let relay = relay_for(fd)?;
    with(fd, |association| association.peer = Some(destination));
    // getpeername answers with the destination, not the relay.
    crate::state::remember(fd, destination);
    let relay = SockAddr::for_socket(fd, relay).ok_or(libc::EAFNOSUPPORT)?;
    // SAFETY: a valid address of the given length.
    if unsafe { real::connect(fd, relay.as_ptr(), relay.len()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// `fd` is connected elsewhere than through the relay, or disconnected: its sends without an
/// address are no longer redirected, and `getpeername` tells the truth.
pub(crate) fn disconnect(fd: c_int) {
    if !ASSOCIATED.may_hold(fd) {
        return;
    }
    if with(fd, |association| association.peer.take())
        .flatten()
        .is_some()
    {
        crate::state::forget(fd);
    }
}

/// The destination of a send without an address, on a connected, associated socket.
pub(crate) fn peer(fd: c_int) -> Option<SocketAddr> {
    if !ASSOCIATED.may_hold(fd) {
        return None;
    }
    with(fd, |association| association.peer).flatten()
}

/// Sends `payload` to `destination` through the relay; the payload's length, or an errno.
pub(crate) fn send(
    fd: c_int,
    payload: &[u8],
    flags: c_int,
    destination: SocketAddr,
) -> Result<usize, c_int> {
    let relay = relay_for(fd)?;
    let mut datagram = UdpHeader::new(target_of(destination)).to_bytes();
    datagram.extend_from_slice(payload);
    let relay = SockAddr::for_socket(fd, relay).ok_or(libc::EAFNOSUPPORT)?;
    // SAFETY: `datagram` and `relay` are valid for their lengths.
    let sent = unsafe {
        real::sendto(
            fd,
            datagram.as_ptr().cast(),
            datagram.len(),
            flags,
            relay.as_ptr(),
            relay.len(),
        )
    };
    if sent < 0 {
        return Err(errno());
    }
    Ok(payload.len())
}

/// Receives one datagram from the relay into `buffer`; its length (truncated to the buffer),
/// whether it was truncated, and its source. Datagrams from elsewhere are dropped.
pub(crate) fn receive(fd: c_int, buffer: &mut [u8], flags: c_int) -> Result<Received, c_int> {
    let Some(relay) = with(fd, |association| association.relay) else {
        // The association went between the caller's look and this one (another thread
        // closed the socket, or put another there): what arrives is the socket's own.
        return receive_plain(fd, buffer, flags);
    };
    // Room for any datagram, so its whole length is known (MSG_TRUNC); not zeroed: the
    // kernel writes what is read, and only that is looked at.
    let mut datagram: Vec<u8> = Vec::with_capacity(LARGEST_DATAGRAM + HEADER_ROOM);
    loop {
        let room = datagram.capacity();
        // SAFETY: `datagram` is writable for its capacity.
        let (received, sender) =
            unsafe { recv_from(fd, datagram.as_mut_ptr(), room, flags & !libc::MSG_TRUNC) }?;
        // SAFETY: without MSG_TRUNC the kernel wrote `received` bytes (at most the capacity)
        // at the start.
        unsafe { datagram.set_len(received) };
        let sender = sender.map(crate::address::canonical);
        let relayed = (sender == Some(relay))
            .then(|| UdpHeader::split(&datagram).ok())
            .flatten()
            // A fragment (RFC 1928 §7) is dropped: the shim reassembles none.
            .filter(|(header, _)| header.frag == Frag::STANDALONE)
            .and_then(|(header, payload)| match header.address.host {
                Host::Ip(ip) => Some((SocketAddr::new(ip, header.address.port), payload)),
                Host::Domain(_) => None,
            });
        let Some((source, payload)) = relayed else {
            // Not the relay's, or not a datagram it would send: dropped. A peek leaves it
            // at the head of the queue, so it is taken off first (or the next peek would
            // find it again, forever).
            if flags & libc::MSG_PEEK != 0 {
                // SAFETY: a zero-length read into no buffer discards one datagram.
                unsafe {
                    real::recvfrom(
                        fd,
                        std::ptr::null_mut(),
                        0,
                        (flags & !libc::MSG_PEEK) | libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
            }
            continue;
        };
        let copied = payload.len().min(buffer.len());
        buffer[..copied].copy_from_slice(&payload[..copied]);
        return Ok(Received {
            copied,
            whole: payload.len(),
            source,
        });
    }
}

/// A datagram received.
pub(crate) struct Received {
    /// The bytes copied into the caller's buffer.
    pub(crate) copied: usize,
    /// The datagram's whole length (more than `copied` when it was truncated).
    pub(crate) whole: usize,
    /// Where it came from (the relay's header says).
    pub(crate) source: SocketAddr,
}

impl Received {
    /// What the receiving call returns: the bytes copied, or with `MSG_TRUNC` the whole
    /// datagram's length, as the kernel says.
    pub(crate) fn length(&self, flags: c_int) -> usize {
        if flags & libc::MSG_TRUNC != 0 {
            self.whole
        } else {
            self.copied
        }
    }
}

/// One datagram of a socket without an association, as `receive` gives it.
fn receive_plain(fd: c_int, buffer: &mut [u8], flags: c_int) -> Result<Received, c_int> {
    // SAFETY: `buffer` is writable for its length.
    let (whole, source) = unsafe {
        recv_from(
            fd,
            buffer.as_mut_ptr(),
            buffer.len(),
            flags | libc::MSG_TRUNC,
        )
    }?;
    let source = source.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    Ok(Received {
        copied: whole.min(buffer.len()),
        whole,
        source,
    })
}

/// One real `recvfrom` of at most `room` bytes into `data`: what the kernel returns (with
/// `MSG_TRUNC`, the datagram's whole length) and the sender, when it names one.
///
/// # Safety
///
/// `data` must be writable for `room` bytes.
unsafe fn recv_from(
    fd: c_int,
    data: *mut u8,
    room: usize,
    flags: c_int,
) -> Result<(usize, Option<SocketAddr>), c_int> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut from_length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `data` is writable for `room` bytes (the caller's promise), `from` for its
    // length.
    let received = unsafe {
        real::recvfrom(
            fd,
            data.cast(),
            room,
            flags,
            (&raw mut from).cast(),
            &mut from_length,
        )
    };
    if received < 0 {
        return Err(errno());
    }
    // SAFETY: the kernel wrote a valid address of `from_length` bytes (or none).
    let sender = unsafe { crate::address::read((&raw const from).cast(), from_length) };
    Ok((received as usize, sender))
}

/// Ends `fd`'s association, if any.
pub(crate) fn forget(fd: c_int) {
    if !ASSOCIATED.may_hold(fd) {
        return;
    }
    let removed = ASSOCIATIONS.with(|map| {
        let removed = map.as_mut().and_then(|map| map.remove(&fd));
        if removed.is_some() {
            ASSOCIATED.unmark(fd);
        }
        removed
    });
    if let Some(association) = removed {
        release_control(association.control);
    }
}

/// `new` is a duplicate of `old` (`dup`, `dup2`, `fcntl(F_DUPFD)`): one socket, so one
/// association — the duplicate's datagrams go through the same relay with the same peer,
/// never around the proxy, and the control lives until the last of them is closed.
pub(crate) fn duplicate(old: c_int, new: c_int) {
    if !ASSOCIATED.may_hold(old) {
        return;
    }
    ASSOCIATIONS.with(|map| {
        let Some(map) = map.as_mut() else {
            return;
        };
        let Some(copy) = map.get(&old).map(|a| Association {
            control: a.control,
            relay: a.relay,
            peer: a.peer,
            socket: a.socket,
        }) else {
            return;
        };
        if map.insert(new, copy).is_none() {
            ASSOCIATED.mark(new);
        }
    });
}

/// Closes `control` once no association uses it any more — and only if the number is still
/// the shim's: a program that closed it, or put its own descriptor there, keeps what it has.
fn release_control(control: c_int) {
    if control < 0 {
        return;
    }
    let shared = ASSOCIATIONS.with(|map| {
        map.iter()
            .flat_map(|map| map.values())
            .any(|association| association.control == control)
    });
    if !shared {
        crate::own::close(control);
    }
}

/// The program took the number `control` (closed it, or put another descriptor there):
/// the association it served is dead; its socket opens a new one on its next send.
pub(crate) fn control_lost(control: c_int) {
    if !ASSOCIATED.any() {
        return;
    }
    ASSOCIATIONS.with(|map| {
        for association in map.iter_mut().flat_map(|map| map.values_mut()) {
            if association.control == control {
                association.control = -1;
            }
        }
    });
}

/// The program's sockets in `first..=last` were closed (`close_range`, `closefrom`): their
/// associations go (their controls are closed with the range, or were the program's).
pub(crate) fn forget_range(first: u32, last: u32) {
    if !ASSOCIATED.any() {
        return;
    }
    let dropped: Vec<Association> = ASSOCIATIONS.with(|map| {
        let Some(map) = map.as_mut() else {
            return Vec::new();
        };
        let gone: Vec<c_int> = map
            .keys()
            .copied()
            .filter(|fd| (first..=last).contains(&(*fd as u32)))
            .collect();
        let dropped: Vec<Association> = gone
            .iter()
            .filter_map(|fd| {
                ASSOCIATED.unmark(*fd);
                map.remove(fd)
            })
            .collect();
        dropped
    });
    for association in dropped {
        // Outside the range, and still ours: closed here, as `close` of the socket would.
        release_control(association.control);
    }
}
