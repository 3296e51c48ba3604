//! `connect` (a TCP socket through the chain; a datagram socket to its association) and
//! `getpeername`, and TCP Fast Open's first send (`fast_open`).

use std::net::SocketAddr;

use libc::{c_int, sockaddr, socklen_t};
use socksgate_proto::Command;

use crate::address::SockAddr;
use crate::address::{canonical, is_fake};
use crate::settings::settings;
use crate::state::target_of;
use crate::sys::{is_stream, set_errno};
use crate::{address, debug, real, state, tunnel, udp};

/// Replaces `connect(2)`.
///
/// # Safety
/// As `connect(2)`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, address: *const sockaddr, length: socklen_t) -> c_int {
    // SAFETY: the caller passes a socket address valid for `length` bytes.
    let destination = unsafe { address::read(address, length) }.map(canonical);
    if let Some(destination) = destination.filter(|d| udp::redirects(fd, *d)) {
        return match udp::connect(fd, destination) {
            Ok(()) => 0,
            Err(errno) => {
                set_errno(errno);
                -1
            }
        };
    }
    let settings = settings();
    let redirect = destination.filter(|d| goes_through_the_proxies(*d) && is_stream(fd));
    let Some(destination) = redirect else {
        // A UDP socket connected through the relay before, now connected elsewhere (a
        // direct address) or disconnected (AF_UNSPEC): its sends are its own again.
        udp::disconnect(fd);
        if settings.debug && is_stream(fd) {
            if let Some(destination) = destination {
                debug(&format!(
                    "connect {destination} directly (a direct network)"
                ));
            }
        }
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real::connect(fd, address, length) };
    };
    let target = target_of(destination);
    match tunnel::establish(fd, &settings.chain, Command::CONNECT, &target) {
        Ok(_) => {
            state::remember(fd, destination);
            if settings.debug {
                debug(&format!("connect {target} through the proxies"));
            }
            0
        }
        Err(failure) => {
            crate::report(&format!("connect {target}"), &failure);
            set_errno(failure.errno);
            -1
        }
    }
}

/// Whether a connection to `destination` goes through the proxies (outside the direct
/// blocks, or a fake address standing for a name).
fn goes_through_the_proxies(destination: SocketAddr) -> bool {
    let settings = settings();
    !settings.chain.is_empty()
        && (is_fake(destination.ip(), settings.fake_base, settings.fake_size)
            || !settings.is_direct(destination.ip()))
}

/// Replaces `getpeername(2)`: a redirected socket's peer is its real destination.
///
/// # Safety
/// As `getpeername(2)`.
#[no_mangle]
pub unsafe extern "C" fn getpeername(
    fd: c_int,
    address: *mut sockaddr,
    length: *mut socklen_t,
) -> c_int {
    let Some(destination) = state::destination(fd) else {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real::getpeername(fd, address, length) };
    };
    match SockAddr::for_socket(fd, destination) {
        Some(peer) if !address.is_null() && !length.is_null() => {
            // SAFETY: the caller provides a buffer of `*length` bytes.
            unsafe { peer.copy_out(address, length) };
            0
        }
        // SAFETY: the caller's arguments, unchanged.
        _ => unsafe { real::getpeername(fd, address, length) },
    }
}

/// TCP Fast Open (`sendto`/`sendmsg` with `MSG_FASTOPEN` and an address) connects as it
/// sends — around the `connect` hook, so straight to the target. To a destination that goes
/// through the proxies it is a `connect` (this library's) and then a plain send. `None`
/// when the call is not that (another flag, family or socket, or a direct destination,
/// which keeps the kernel's own Fast Open); otherwise whether to go on sending (`Err`: the
/// call fails, errno set as `connect` left it — EISCONN on a connected socket, as the
/// kernel says).
///
/// # Safety
/// `address` is null or valid for `length` bytes.
pub(crate) unsafe fn fast_open(
    fd: c_int,
    flags: c_int,
    address: *const sockaddr,
    length: socklen_t,
) -> Option<Result<(), ()>> {
    if flags & libc::MSG_FASTOPEN == 0 || address.is_null() {
        return None;
    }
    // SAFETY: per the caller (only AF_INET and AF_INET6 addresses are read as one).
    let destination = unsafe { address::read(address, length) }.map(canonical)?;
    if !goes_through_the_proxies(destination) || !is_stream(fd) {
        return None;
    }
    // SAFETY: per the caller.
    Some(if unsafe { connect(fd, address, length) } == 0 {
        Ok(())
    } else {
        Err(())
    })
}
