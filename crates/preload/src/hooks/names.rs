//! Names the proxy resolves: `getaddrinfo`, `gethostbyname*` hand out fake addresses,
//! `getnameinfo` maps them back (without asking any resolver).

use std::ffi::{CStr, CString};
use std::net::{IpAddr, SocketAddr};

use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};
use socksgate_proto::DomainName;

use crate::address::canonical;
use crate::address::SockAddr;
use crate::settings::settings;
use crate::{address, debug, lock, real, state};

/// The addrinfo blocks this library allocated (freed by its `freeaddrinfo`).
pub(crate) static OURS: lock::Guarded<Vec<usize>> = lock::Guarded::new(Vec::new());

/// Replaces `getaddrinfo(3)`: with a name-resolving last proxy, a name gets a fake address.
///
/// # Safety
/// As `getaddrinfo(3)`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    result: *mut *mut addrinfo,
) -> c_int {
    // SAFETY: the caller's arguments are valid per getaddrinfo's contract.
    match unsafe { fake_answer(node, service, hints) } {
        Some(answer) if !result.is_null() => {
            // SAFETY: `result` is a valid out-pointer.
            unsafe { *result = answer };
            0
        }
        // SAFETY: the caller's arguments, unchanged.
        _ => unsafe { real::getaddrinfo(node, service, hints, result) },
    }
}

/// A one-entry addrinfo list with the fake address for `node`, or `None` to let libc answer
/// (no proxies resolving names, no name, a numeric host, localhost, or a flag that forbids it).
///
/// # Safety
/// `node`, `service` and `hints` as for getaddrinfo.
unsafe fn fake_answer(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
) -> Option<*mut addrinfo> {
    let settings = settings();
    if !settings.remote_names || settings.chain.is_empty() || node.is_null() {
        return None;
    }
    // SAFETY: `node` is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(node) }.to_str().ok()?;
    // SAFETY: `hints` is null or a valid addrinfo.
    let hints = unsafe { hints.as_ref() };
    let flags = hints.map_or(0, |h| h.ai_flags);
    let family = hints.map_or(libc::AF_UNSPEC, |h| h.ai_family);
    if name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || flags & libc::AI_NUMERICHOST != 0
        || DomainName::new(name).is_err()
        || !matches!(family, libc::AF_UNSPEC | libc::AF_INET | libc::AF_INET6)
    {
        return None;
    }
    // SAFETY: `service` is null or a NUL-terminated string.
    let port = unsafe { service_port(service, hints) }?;
    let fake = state::fake_address(name);
    let address = SocketAddr::new(
        if family == libc::AF_INET6 {
            IpAddr::V6(fake.to_ipv6_mapped())
        } else {
            IpAddr::V4(fake)
        },
        port,
    );
    let socket_type = hints.map_or(0, |h| h.ai_socktype);
    let socket_type = if socket_type == 0 {
        libc::SOCK_STREAM
    } else {
        socket_type
    };
    let protocol = match hints.map_or(0, |h| h.ai_protocol) {
        0 if socket_type == libc::SOCK_DGRAM => libc::IPPROTO_UDP,
        0 => libc::IPPROTO_TCP,
        given => given,
    };
    let canonical = (flags & libc::AI_CANONNAME != 0)
        .then(|| CString::new(name).ok())
        .flatten();
    let entry = allocate(address, socket_type, protocol, canonical)?;
    OURS.with(|ours| ours.push(entry as usize));
    if settings.debug {
        debug(&format!(
            "resolve {name} by the proxy (fake address {fake})"
        ));
    }
    Some(entry)
}

/// The port a service string names: a number, or a name libc knows (http, ssh, …).
///
/// # Safety
/// `service` is null or a NUL-terminated string; `hints` as for getaddrinfo.
unsafe fn service_port(service: *const c_char, hints: Option<&addrinfo>) -> Option<u16> {
    if service.is_null() {
        return Some(0);
    }
    // SAFETY: NUL-terminated per the contract.
    let text = unsafe { CStr::from_ptr(service) }.to_str().ok()?;
    if let Ok(port) = text.parse() {
        return Some(port);
    }
    // Ask libc for the service alone, with a numeric host: no name lookup happens.
    // SAFETY: all-zero is a valid addrinfo hints value.
    let mut numeric: addrinfo = unsafe { std::mem::zeroed() };
    numeric.ai_family = libc::AF_INET;
    numeric.ai_socktype = hints.map_or(libc::SOCK_STREAM, |h| h.ai_socktype);
    numeric.ai_flags = libc::AI_NUMERICHOST;
    let mut list: *mut addrinfo = std::ptr::null_mut();
    // SAFETY: valid strings, hints and out-pointer.
    if unsafe { real::getaddrinfo(c"127.0.0.1".as_ptr(), service, &numeric, &mut list) } != 0
        || list.is_null()
    {
        return None;
    }
    // SAFETY: libc returned a valid list.
    let port = unsafe { address::read((*list).ai_addr, (*list).ai_addrlen) }.map(|a| a.port());
    // SAFETY: the list came from the real getaddrinfo.
    unsafe { real::freeaddrinfo(list) };
    port
}

/// One addrinfo and its socket address in one malloc'd block.
fn allocate(
    address: SocketAddr,
    socket_type: c_int,
    protocol: c_int,
    canonical: Option<CString>,
) -> Option<*mut addrinfo> {
    let raw = SockAddr::from(address);
    let size = std::mem::size_of::<addrinfo>() + std::mem::size_of::<libc::sockaddr_storage>();
    // SAFETY: calloc returns zeroed memory or null.
    let block = unsafe { libc::calloc(1, size) }.cast::<addrinfo>();
    if block.is_null() {
        return None;
    }
    // SAFETY: `block` has room for an addrinfo followed by a sockaddr_storage.
    unsafe {
        let storage = block.add(1).cast::<sockaddr>();
        std::ptr::copy_nonoverlapping(
            raw.as_ptr().cast::<u8>(),
            storage.cast::<u8>(),
            raw.len() as usize,
        );
        let entry = &mut *block;
        entry.ai_family = i32::from((*storage).sa_family);
        entry.ai_socktype = socket_type;
        entry.ai_protocol = protocol;
        entry.ai_addrlen = raw.len();
        entry.ai_addr = storage;
        entry.ai_canonname =
            canonical.map_or(std::ptr::null_mut(), |name| libc::strdup(name.as_ptr()));
        entry.ai_next = std::ptr::null_mut();
    }
    Some(block)
}

/// Replaces `freeaddrinfo(3)`: frees this library's lists itself, passes others to libc.
///
/// # Safety
/// As `freeaddrinfo(3)`.
#[no_mangle]
pub unsafe extern "C" fn freeaddrinfo(list: *mut addrinfo) {
    let ours = OURS.with(|ours| match ours.iter().position(|&p| p == list as usize) {
        Some(index) => {
            ours.swap_remove(index);
            true
        }
        None => false,
    });
    if ours {
        // SAFETY: `list` is one block from `allocate`; its name came from strdup.
        unsafe {
            libc::free((*list).ai_canonname.cast());
            libc::free(list.cast());
        }
    } else {
        // SAFETY: a list from the real getaddrinfo.
        unsafe { real::freeaddrinfo(list) }
    }
}

thread_local! {
    /// The storage `gethostbyname` answers point into (one per thread, as glibc's does per
    /// process: the API hands out static storage).
    static HOST_ENTRY: std::cell::RefCell<HostEntry> = std::cell::RefCell::new(HostEntry::default());
}

#[derive(Default)]
struct HostEntry {
    entry: Option<libc::hostent>,
    name: CString,
    address: [u8; 16],
    addresses: [*mut c_char; 2],
    aliases: [*mut c_char; 1],
}

/// Replaces `gethostbyname(3)`: with a name-resolving last proxy, a name gets a fake address.
///
/// # Safety
/// As `gethostbyname(3)`; the answer is valid until this thread's next call.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut libc::hostent {
    // SAFETY: as gethostbyname2 for IPv4.
    unsafe { gethostbyname2(name, libc::AF_INET) }
}

/// Replaces `gethostbyname2(3)`.
///
/// # Safety
/// As `gethostbyname2(3)`; the answer is valid until this thread's next call.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2(name: *const c_char, family: c_int) -> *mut libc::hostent {
    // SAFETY: `name` is null or NUL-terminated.
    let Some(text) = (unsafe { name_to_fake(name, family) }) else {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real::gethostbyname2(name, family) };
    };
    let address = state::fake_address(&text);
    if settings().debug {
        debug(&format!(
            "resolve {text} by the proxy (fake address {address})"
        ));
    }
    host_entry(&text, address, family)
}

/// This thread's `hostent` (valid until its next call), naming `address` `name`, in
/// `family` (IPv6: the IPv4-mapped address).
fn host_entry(name: &str, address: std::net::Ipv4Addr, family: c_int) -> *mut libc::hostent {
    HOST_ENTRY.with(|cell| {
        let mut host = cell.borrow_mut();
        let host = &mut *host;
        host.name = CString::new(name).unwrap_or_default();
        let length = if family == libc::AF_INET6 {
            host.address = address.to_ipv6_mapped().octets();
            16
        } else {
            host.address[..4].copy_from_slice(&address.octets());
            4
        };
        host.addresses = [host.address.as_mut_ptr().cast(), std::ptr::null_mut()];
        host.aliases = [std::ptr::null_mut()];
        host.entry = Some(libc::hostent {
            h_name: host.name.as_ptr().cast_mut(),
            h_aliases: host.aliases.as_mut_ptr(),
            h_addrtype: family,
            h_length: length,
            h_addr_list: host.addresses.as_mut_ptr(),
        });
        host.entry
            .as_mut()
            .map_or(std::ptr::null_mut(), |entry| entry as *mut libc::hostent)
    })
}

/// Replaces `gethostbyaddr(3)`: a fake address is named by the name it stands for, here —
/// no reverse lookup of it leaves the host.
///
/// # Safety
/// As `gethostbyaddr(3)`; the answer is valid until this thread's next call.
#[no_mangle]
pub unsafe extern "C" fn gethostbyaddr(
    address: *const libc::c_void,
    length: socklen_t,
    family: c_int,
) -> *mut libc::hostent {
    // SAFETY: `address` is readable for `length` bytes.
    match unsafe { fake_name_of(address, length, family) } {
        // In the family asked about (an IPv4-mapped address for AF_INET6).
        Some((ip, Some(name))) => host_entry(&name, ip, family),
        // A fake address not handed out here: not found, and nobody asked.
        Some((_, None)) => std::ptr::null_mut(),
        // SAFETY: the caller's arguments, unchanged.
        None => unsafe { real::gethostbyaddr(address, length, family) },
    }
}

/// Replaces `gethostbyname_r(3)`.
///
/// # Safety
/// As `gethostbyname_r(3)`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    entry: *mut libc::hostent,
    buffer: *mut c_char,
    length: libc::size_t,
    result: *mut *mut libc::hostent,
    h_errno: *mut c_int,
) -> c_int {
    // SAFETY: as gethostbyname2_r for IPv4.
    unsafe { gethostbyname2_r(name, libc::AF_INET, entry, buffer, length, result, h_errno) }
}

/// Replaces `gethostbyname2_r(3)`: the answer is built in the caller's buffer.
///
/// # Safety
/// As `gethostbyname2_r(3)`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    family: c_int,
    entry: *mut libc::hostent,
    buffer: *mut c_char,
    length: libc::size_t,
    result: *mut *mut libc::hostent,
    h_errno: *mut c_int,
) -> c_int {
    // SAFETY: `name` is null or NUL-terminated.
    let Some(text) = (unsafe { name_to_fake(name, family) }) else {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe {
            real::gethostbyname2_r(name, family, entry, buffer, length, result, h_errno)
        };
    };
    let address = state::fake_address(&text);
    if settings().debug {
        debug(&format!(
            "resolve {text} by the proxy (fake address {address})"
        ));
    }
    // SAFETY: the caller's buffers, as gethostbyname2_r takes them.
    unsafe { host_entry_in(&text, address, family, entry, buffer, length, result) }
}

/// Builds, in the caller's `buffer`, a `hostent` naming `address` `name` (IPv6 family: the
/// IPv4-mapped address); 0, or `ERANGE` when the buffer is too small.
///
/// # Safety
/// `entry` and `result` are null or writable; `buffer` is null or writable for `length`
/// bytes.
unsafe fn host_entry_in(
    text: &str,
    address: std::net::Ipv4Addr,
    family: c_int,
    entry: *mut libc::hostent,
    buffer: *mut c_char,
    length: libc::size_t,
    result: *mut *mut libc::hostent,
) -> c_int {
    let (bytes, address_length) = if family == libc::AF_INET6 {
        (address.to_ipv6_mapped().octets().to_vec(), 16)
    } else {
        (address.octets().to_vec(), 4)
    };
    // The buffer holds: three pointers (address list, its end, the empty alias list),
    // the address, the name and its NUL.
    let pointers = 3 * std::mem::size_of::<*mut c_char>();
    let align = buffer.align_offset(std::mem::align_of::<*mut c_char>());
    let needed = align + pointers + bytes.len() + text.len() + 1;
    if entry.is_null() || buffer.is_null() || result.is_null() || length < needed {
        return libc::ERANGE;
    }
    // SAFETY: `buffer` has room for `needed` bytes (checked), aligned at `align`.
    unsafe {
        let base = buffer.add(align);
        let list = base.cast::<*mut c_char>();
        let address_bytes = base.add(pointers);
        let name_bytes = address_bytes.add(bytes.len());
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), address_bytes.cast::<u8>(), bytes.len());
        std::ptr::copy_nonoverlapping(text.as_ptr(), name_bytes.cast::<u8>(), text.len());
        *name_bytes.add(text.len()) = 0;
        *list = address_bytes;
        *list.add(1) = std::ptr::null_mut();
        *list.add(2) = std::ptr::null_mut();
        *entry = libc::hostent {
            h_name: name_bytes,
            h_aliases: list.add(2),
            h_addrtype: family,
            h_length: address_length,
            h_addr_list: list,
        };
        *result = entry;
    }
    0
}

/// Replaces `gethostbyaddr_r(3)` (what Python's `socket.gethostbyaddr` calls): a fake
/// address is named here, as by [`gethostbyaddr`].
///
/// # Safety
/// As `gethostbyaddr_r(3)`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyaddr_r(
    address: *const libc::c_void,
    length: socklen_t,
    family: c_int,
    entry: *mut libc::hostent,
    buffer: *mut c_char,
    buffer_length: libc::size_t,
    result: *mut *mut libc::hostent,
    h_errno: *mut c_int,
) -> c_int {
    // SAFETY: `address` is readable for `length` bytes.
    match unsafe { fake_name_of(address, length, family) } {
        // SAFETY: the caller's buffers, as gethostbyaddr_r takes them.
        Some((ip, Some(name))) => unsafe {
            host_entry_in(&name, ip, family, entry, buffer, buffer_length, result)
        },
        // A fake address not handed out here: not found (HOST_NOT_FOUND), nobody asked.
        Some((_, None)) => {
            // SAFETY: the caller's result and h_errno pointers (null ones are skipped).
            unsafe {
                if !result.is_null() {
                    *result = std::ptr::null_mut();
                }
                if !h_errno.is_null() {
                    *h_errno = 1;
                }
            }
            libc::ENOENT
        }
        // SAFETY: the caller's arguments, unchanged.
        None => unsafe {
            real::gethostbyaddr_r(
                address,
                length,
                family,
                entry,
                buffer,
                buffer_length,
                result,
                h_errno,
            )
        },
    }
}

/// The fake IPv4 address at `address` and the name it stands for, if it is one.
///
/// # Safety
/// `address` is null or readable for `length` bytes.
unsafe fn fake_name_of(
    address: *const libc::c_void,
    length: socklen_t,
    family: c_int,
) -> Option<(std::net::Ipv4Addr, Option<String>)> {
    if address.is_null() {
        return None;
    }
    let ip = match (family, length) {
        (libc::AF_INET, 4) => {
            // SAFETY: four readable bytes (an in_addr, checked by length); copied unaligned.
            let octets = unsafe { std::ptr::read_unaligned(address.cast::<[u8; 4]>()) };
            std::net::Ipv4Addr::from(octets)
        }
        // An IPv4-mapped IPv6 address (::ffff:240.0.0.1) is the same fake address.
        (libc::AF_INET6, 16) => {
            // SAFETY: sixteen readable bytes (an in6_addr, checked by length); unaligned.
            let octets = unsafe { std::ptr::read_unaligned(address.cast::<[u8; 16]>()) };
            std::net::Ipv6Addr::from(octets).to_ipv4_mapped()?
        }
        _ => return None,
    };
    // One of the fake block this process did not hand out is no resolver's to look up.
    in_fake_block(IpAddr::V4(ip)).then(|| (ip, state::name_of(ip)))
}

/// Whether `ip` is in the block fake addresses come from.
fn in_fake_block(ip: IpAddr) -> bool {
    let settings = settings();
    !settings.chain.is_empty()
        && crate::address::is_fake(ip, settings.fake_base, settings.fake_size)
}

/// The name to give a fake address to, if `name` is one (per the same rules as
/// `getaddrinfo`).
///
/// # Safety
/// `name` is null or NUL-terminated.
unsafe fn name_to_fake(name: *const c_char, family: c_int) -> Option<String> {
    let settings = settings();
    if name.is_null() || !settings.remote_names || settings.chain.is_empty() {
        return None;
    }
    // SAFETY: per the caller.
    let text = unsafe { CStr::from_ptr(name) }.to_str().ok()?;
    let fake = text.parse::<IpAddr>().is_err()
        && !text.eq_ignore_ascii_case("localhost")
        && !text.to_ascii_lowercase().ends_with(".localhost")
        && DomainName::new(text).is_ok()
        && matches!(family, libc::AF_INET | libc::AF_INET6);
    fake.then(|| text.to_owned())
}

/// Replaces `getnameinfo(3)`: a fake address is named by the name it stands for, here —
/// the system's resolver is never asked about it (a reverse lookup of an address that means
/// nothing outside this program would leave the host, and fail `NI_NAMEREQD`). The service
/// part, if asked for, is the system's answer as usual.
///
/// # Safety
/// As `getnameinfo(3)`.
#[no_mangle]
pub unsafe extern "C" fn getnameinfo(
    address: *const sockaddr,
    length: socklen_t,
    host: *mut c_char,
    host_length: socklen_t,
    service: *mut c_char,
    service_length: socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's address is valid for `length` bytes.
    let read = unsafe { address::read(address, length) }.map(canonical);
    let name = read.and_then(|a| match a.ip() {
        IpAddr::V4(v4) if flags & libc::NI_NUMERICHOST == 0 => state::name_of(v4),
        _ => None,
    });
    // An address of the fake block this process did not hand out (one passed on from
    // another process, or forgotten): no resolver is asked about it either.
    let unknown_fake = name.is_none() && read.is_some_and(|a| in_fake_block(a.ip()));
    if unknown_fake && flags & libc::NI_NAMEREQD != 0 && flags & libc::NI_NUMERICHOST == 0 {
        return libc::EAI_NONAME;
    }
    let Some(name) = name else {
        let flags = if unknown_fake {
            flags | libc::NI_NUMERICHOST
        } else {
            flags
        };
        // SAFETY: the caller's arguments (the host asked for numerically when it is a fake
        // address never handed out).
        return unsafe {
            real::getnameinfo(
                address,
                length,
                host,
                host_length,
                service,
                service_length,
                flags,
            )
        };
    };
    if !host.is_null() && host_length > 0 {
        if name.len() >= host_length as usize {
            return libc::EAI_OVERFLOW;
        }
        // SAFETY: `host` has room for the name and its NUL (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(name.as_ptr(), host.cast::<u8>(), name.len());
            *host.add(name.len()) = 0;
        }
    }
    if service.is_null() || service_length == 0 {
        return 0;
    }
    // The service alone: no host buffer, so no host lookup.
    // SAFETY: the caller's address and service buffer; no host buffer.
    unsafe {
        real::getnameinfo(
            address,
            length,
            std::ptr::null_mut(),
            0,
            service,
            service_length,
            flags & !libc::NI_NAMEREQD,
        )
    }
}
