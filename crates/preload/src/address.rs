//! Socket addresses between Rust and C.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libc::{c_int, sockaddr, sockaddr_in, sockaddr_in6, sockaddr_storage, socklen_t};

use crate::sys::family;

/// A C socket address, owned.
pub(crate) struct SockAddr {
    storage: sockaddr_storage,
    length: socklen_t,
}

impl SockAddr {
    /// `address` in the form a socket `fd` can use: IPv4 as IPv4-mapped IPv6 for an IPv6
    /// socket. `None` for an IPv6 address and an IPv4 socket.
    pub(crate) fn for_socket(fd: c_int, address: SocketAddr) -> Option<Self> {
        let address = match (family(fd)?, address) {
            (libc::AF_INET6, SocketAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            (libc::AF_INET, SocketAddr::V6(v6)) => {
                SocketAddr::new(IpAddr::V4(v6.ip().to_ipv4_mapped()?), v6.port())
            }
            (_, address) => address,
        };
        Some(Self::from(address))
    }

    pub(crate) fn as_ptr(&self) -> *const sockaddr {
        (&raw const self.storage).cast()
    }

    pub(crate) fn len(&self) -> socklen_t {
        self.length
    }

    /// Copies into a caller's buffer of `*length` bytes, truncating as the C calls do, and
    /// sets `*length` to the full size.
    ///
    /// # Safety
    /// `out` must be writable for `*length` bytes; `length` must be valid.
    pub(crate) unsafe fn copy_out(&self, out: *mut sockaddr, length: *mut socklen_t) {
        // SAFETY: the caller guarantees both pointers.
        unsafe {
            let room = (*length as usize).min(self.length as usize);
            std::ptr::copy_nonoverlapping(
                (&raw const self.storage).cast::<u8>(),
                out.cast::<u8>(),
                room,
            );
            *length = self.length;
        }
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(address: SocketAddr) -> Self {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: sockaddr_storage = unsafe { std::mem::zeroed() };
        let length = match address {
            SocketAddr::V4(v4) => {
                let raw = sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*v4.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write((&raw mut storage).cast::<sockaddr_in>(), raw) };
                std::mem::size_of::<sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let raw = sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write((&raw mut storage).cast::<sockaddr_in6>(), raw) };
                std::mem::size_of::<sockaddr_in6>()
            }
        };
        Self {
            storage,
            length: length as socklen_t,
        }
    }
}

/// Reads a C socket address; `None` for anything but IPv4 and IPv6, or one shorter than its
/// family needs. The caller's memory is copied, never referenced: it need not be aligned
/// for the C structures (a program may pass a `sockaddr` at any offset of a buffer).
///
/// # Safety
/// `address` must be valid for `length` bytes (or null).
pub(crate) unsafe fn read(address: *const sockaddr, length: socklen_t) -> Option<SocketAddr> {
    if address.is_null() || (length as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: readable for `length` bytes, at least the family's (checked); unaligned reads.
    let family = unsafe { std::ptr::read_unaligned(address.cast::<libc::sa_family_t>()) };
    match i32::from(family) {
        libc::AF_INET if length as usize >= std::mem::size_of::<sockaddr_in>() => {
            // SAFETY: readable for a whole sockaddr_in (checked); copied unaligned.
            let raw = unsafe { std::ptr::read_unaligned(address.cast::<sockaddr_in>()) };
            Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr))),
                u16::from_be(raw.sin_port),
            ))
        }
        libc::AF_INET6 if length as usize >= std::mem::size_of::<sockaddr_in6>() => {
            // SAFETY: readable for a whole sockaddr_in6 (checked); copied unaligned.
            let raw = unsafe { std::ptr::read_unaligned(address.cast::<sockaddr_in6>()) };
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(raw.sin6_addr.s6_addr)),
                u16::from_be(raw.sin6_port),
            ))
        }
        _ => None,
    }
}

/// A destination as the policy of this library sees it.
pub(crate) fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// Whether `ip` is in the fake-address block.
pub(crate) fn is_fake(ip: IpAddr, base: u32, size: u32) -> bool {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).wrapping_sub(base) < size,
        IpAddr::V6(_) => false,
    }
}
