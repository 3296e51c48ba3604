//! `socksgate socksify`'s LD_PRELOAD library: an unmodified, dynamically linked program's TCP
//! connections go through a chain of SOCKS proxies.
//!
//! What it replaces:
//!
//! * `connect` on a TCP socket to an address outside the direct blocks (loopback by
//!   default): the socket is connected to the first proxy and the SOCKS handshake with each hop
//!   runs on it (blocking calls, through `socksgate-proto`'s client machine) before `connect`
//!   returns; non-blocking sockets get their handshake done at once and `connect` returns 0.
//! * `getaddrinfo`/`freeaddrinfo`/`getnameinfo`: when the last proxy resolves names (socks5h,
//!   socks4a), a name gets a fake IPv4 address from a reserved block, mapped back to the name
//!   when the program connects to it — so names are resolved by the proxy, not here.
//! * `getpeername`: the destination the program asked for, not the proxy.
//! * `close`, `dup`, `dup2`, `dup3`: bookkeeping of redirected sockets.
//!
//! Unsafe code lives here (the C ABI programs call) and in `socksgate-sys` (the C ABI of the
//! system's libraries), nowhere else in socksgate. A panic never unwinds
//! into the program: unwinding out of an `extern "C"` function aborts.
//!
//! Limits: statically linked programs and Go binaries do not load the library; setuid
//! programs ignore LD_PRELOAD.
//!
//! UDP (`udp`): datagram calls (`sendto`, `sendmsg`, `sendmmsg`, `send`, `write`,
//! `recvfrom`, `recvmsg`, `recvmmsg`, `recv`, `read`, and `connect` on a datagram socket) go
//! through a UDP association with the proxy when the destination is redirected.

mod address;
mod lock;
mod memory;
mod own;
mod real;
mod settings;
mod state;
mod tunnel;
mod udp;

use std::ffi::{CStr, CString};
use std::net::{IpAddr, SocketAddr};

use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};
use socksgate_proto::{Address, Command, DomainName};

use crate::address::SockAddr;
use crate::settings::settings;
use crate::tunnel::{canonical, is_fake, is_stream, set_errno};

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
    let redirect = destination.filter(|d| {
        !settings.chain.is_empty()
            && (is_fake(d.ip(), settings.fake_base, settings.fake_size)
                || !settings.is_direct(d.ip()))
            && is_stream(fd)
    });
    let Some(destination) = redirect else {
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
        Err(errno) => {
            if settings.debug {
                debug(&format!(
                    "connect {target} through the proxies failed: {}",
                    std::io::Error::from_raw_os_error(errno)
                ));
            }
            set_errno(errno);
            -1
        }
    }
}

/// The target to ask the proxies for: the name behind a fake address, or the address.
fn target_of(destination: SocketAddr) -> Address {
    if let IpAddr::V4(v4) = destination.ip() {
        let settings = settings();
        if is_fake(destination.ip(), settings.fake_base, settings.fake_size) {
            if let Some(name) = state::name_of(v4).and_then(|n| DomainName::new(&n).ok()) {
                return Address::domain(name, destination.port());
            }
        }
    }
    Address::from(destination)
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

/// Replaces `close(2)`.
///
/// # Safety
/// As `close(2)`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // The program closes a number the shim holds (a daemon closing everything): the
    // shim's state for it goes, and the program gets the close it asked for.
    if own::release(fd) {
        udp::control_lost(fd);
    } else {
        state::forget(fd);
        udp::forget(fd);
    }
    // SAFETY: the caller's argument, unchanged.
    unsafe { real::close(fd) }
}

/// Replaces `close_range(2)`: the shim's descriptors in the range are the program's to
/// close (their associations are dropped), as are the program's own sockets' states.
///
/// # Safety
/// As `close_range(2)`.
#[no_mangle]
pub unsafe extern "C" fn close_range(
    first: libc::c_uint,
    last: libc::c_uint,
    flags: c_int,
) -> c_int {
    // Only marked close-on-exec: nothing is closed now.
    if flags as libc::c_uint & libc::CLOSE_RANGE_CLOEXEC == 0 {
        own::release_range(first, last, udp::control_lost);
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { real::close_range(first, last, flags) }
}

/// `dup2`/`dup3` onto `new` closes what is there: if it is the shim's, the shim lets go.
fn taken_over(old: c_int, new: c_int) {
    if old != new && own::release(new) {
        udp::control_lost(new);
    }
}

/// Replaces `dup(2)`.
///
/// # Safety
/// As `dup(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's argument, unchanged.
    let new = unsafe { real::dup(fd) };
    if new >= 0 {
        state::duplicate(fd, new);
    }
    new
}

/// Replaces `dup2(2)`.
///
/// # Safety
/// As `dup2(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    taken_over(old, new);
    // SAFETY: the caller's arguments, unchanged.
    let result = unsafe { real::dup2(old, new) };
    if result >= 0 && old != new {
        state::duplicate(old, new);
    }
    result
}

/// Replaces `dup3(2)`.
///
/// # Safety
/// As `dup3(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    taken_over(old, new);
    // SAFETY: the caller's arguments, unchanged.
    let result = unsafe { real::dup3(old, new, flags) };
    if result >= 0 {
        state::duplicate(old, new);
    }
    result
}

/// The addrinfo blocks this library allocated (freed by its `freeaddrinfo`).
static OURS: lock::Guarded<Vec<usize>> = lock::Guarded::new(Vec::new());

/// Every lock of the shim, in the order `fork` takes them.
fn locks() -> [&'static dyn lock::ForkLock; 4] {
    [
        &state::DESTINATIONS,
        &state::NAMES,
        &udp::ASSOCIATIONS,
        &OURS,
    ]
}

extern "C" fn before_fork() {
    for lock in locks() {
        lock.lock();
    }
}

extern "C" fn after_fork() {
    for lock in locks().iter().rev() {
        lock.unlock();
    }
}

/// Registers the fork handlers when the library is loaded, before the program runs.
extern "C" fn at_load() {
    // SAFETY: three handlers with the signature pthread_atfork wants, valid for the
    // process's life (this library is never unloaded: it is preloaded).
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
}

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

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
    HOST_ENTRY.with(|cell| {
        let mut host = cell.borrow_mut();
        let host = &mut *host;
        host.name = CString::new(text.as_str()).unwrap_or_default();
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
    if settings().debug {
        debug(&format!(
            "resolve {text} by the proxy (fake address {address})"
        ));
    }
    0
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
    let name = unsafe { address::read(address, length) }
        .map(canonical)
        .and_then(|a| match a.ip() {
            IpAddr::V4(v4) if flags & libc::NI_NUMERICHOST == 0 => state::name_of(v4),
            _ => None,
        });
    let Some(name) = name else {
        // SAFETY: the caller's arguments, unchanged.
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

pub(crate) fn debug(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "socksgate socksify: {message}");
}

// ---- UDP -----------------------------------------------------------------------------

pub mod udp_hooks {
    //! The datagram calls: redirected when the socket has (or needs) an association.

    use std::net::SocketAddr;

    use libc::{
        c_int, c_uint, c_void, iovec, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t,
        timespec,
    };

    use crate::address::{self, SockAddr};
    use crate::tunnel::{canonical, set_errno};
    use crate::{real, udp};

    fn fail(errno: c_int) -> ssize_t {
        set_errno(errno);
        -1
    }

    /// Where a send goes: the given address if redirected, or the connected peer.
    ///
    /// # Safety
    /// `address` is null or valid for `length` bytes.
    unsafe fn destination(
        fd: c_int,
        address: *const sockaddr,
        length: socklen_t,
    ) -> Option<SocketAddr> {
        // SAFETY: per the caller.
        match unsafe { address::read(address, length) }.map(canonical) {
            Some(destination) if udp::redirects(fd, destination) => Some(destination),
            Some(_) => None,
            None if address.is_null() => udp::peer(fd),
            None => None,
        }
    }

    /// Replaces `sendto(2)`.
    ///
    /// # Safety
    /// As `sendto(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn sendto(
        fd: c_int,
        buffer: *const c_void,
        length: size_t,
        flags: c_int,
        address: *const sockaddr,
        address_length: socklen_t,
    ) -> ssize_t {
        // SAFETY: the caller's address.
        match unsafe { destination(fd, address, address_length) } {
            Some(to) if !buffer.is_null() || length == 0 => {
                // SAFETY: the caller's buffer is valid for `length` bytes.
                let payload = unsafe { crate::memory::bytes(buffer.cast::<u8>(), length) };
                udp::send(fd, payload, flags, to).map_or_else(fail, |n| n as ssize_t)
            }
            // SAFETY: the caller's arguments, unchanged.
            _ => unsafe { real::sendto(fd, buffer, length, flags, address, address_length) },
        }
    }

    /// Replaces `send(2)`.
    ///
    /// # Safety
    /// As `send(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn send(
        fd: c_int,
        buffer: *const c_void,
        length: size_t,
        flags: c_int,
    ) -> ssize_t {
        match udp::peer(fd) {
            // SAFETY: as sendto without an address.
            Some(_) => unsafe { sendto(fd, buffer, length, flags, std::ptr::null(), 0) },
            // SAFETY: the caller's arguments, unchanged.
            None => unsafe { real::send(fd, buffer, length, flags) },
        }
    }

    /// Replaces `write(2)` (for connected, redirected UDP sockets only).
    ///
    /// # Safety
    /// As `write(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn write(fd: c_int, buffer: *const c_void, length: size_t) -> ssize_t {
        match udp::peer(fd) {
            // SAFETY: as sendto without an address.
            Some(_) => unsafe { sendto(fd, buffer, length, 0, std::ptr::null(), 0) },
            // SAFETY: the caller's arguments, unchanged.
            None => unsafe { real::write(fd, buffer, length) },
        }
    }

    /// Replaces `sendmsg(2)`: the iovecs are gathered into one wrapped datagram.
    ///
    /// # Safety
    /// As `sendmsg(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn sendmsg(fd: c_int, message: *const msghdr, flags: c_int) -> ssize_t {
        // SAFETY: the caller's message header.
        let Some(header) = (unsafe { message.as_ref() }) else {
            // SAFETY: unchanged.
            return unsafe { real::sendmsg(fd, message, flags) };
        };
        // SAFETY: the header's address.
        let Some(to) = (unsafe { destination(fd, header.msg_name.cast(), header.msg_namelen) })
        else {
            // SAFETY: unchanged.
            return unsafe { real::sendmsg(fd, message, flags) };
        };
        // SAFETY: the header's iovecs.
        let payload = unsafe { gather(header.msg_iov, header.msg_iovlen) };
        udp::send(fd, &payload, flags, to).map_or_else(fail, |n| n as ssize_t)
    }

    /// Replaces `sendmmsg(2)`.
    ///
    /// # Safety
    /// As `sendmmsg(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn sendmmsg(
        fd: c_int,
        messages: *mut mmsghdr,
        count: c_uint,
        flags: c_int,
    ) -> c_int {
        let redirected = udp::is_associated(fd)
            || (count > 0 && !messages.is_null() && {
                // SAFETY: the first message of the caller's vector.
                let first = unsafe { &(*messages).msg_hdr };
                // SAFETY: its address.
                unsafe { destination(fd, first.msg_name.cast(), first.msg_namelen) }.is_some()
            });
        if !redirected {
            // SAFETY: unchanged.
            return unsafe { real::sendmmsg(fd, messages, count, flags) };
        }
        let send_one = |entry: &mut mmsghdr, _| {
            // SAFETY: a valid message header.
            unsafe { sendmsg(fd, &entry.msg_hdr, flags) }
        };
        // SAFETY: the caller's vector of `count` messages.
        unsafe { each_message(messages, count, send_one) }
    }

    /// Replaces `recvfrom(2)`.
    ///
    /// # Safety
    /// As `recvfrom(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn recvfrom(
        fd: c_int,
        buffer: *mut c_void,
        length: size_t,
        flags: c_int,
        address: *mut sockaddr,
        address_length: *mut socklen_t,
    ) -> ssize_t {
        if !udp::is_associated(fd) || (buffer.is_null() && length > 0) {
            // SAFETY: unchanged.
            return unsafe { real::recvfrom(fd, buffer, length, flags, address, address_length) };
        }
        // SAFETY: the caller's buffer is writable for `length` bytes.
        let out = unsafe { crate::memory::bytes_mut(buffer.cast::<u8>(), length) };
        match udp::receive(fd, out, flags) {
            Ok((copied, _, source)) => {
                if !address.is_null() && !address_length.is_null() {
                    if let Some(source) = SockAddr::for_socket(fd, source) {
                        // SAFETY: the caller's buffer of `*address_length` bytes.
                        unsafe { source.copy_out(address, address_length) };
                    }
                }
                copied as ssize_t
            }
            Err(errno) => fail(errno),
        }
    }

    /// A redirected UDP socket's next datagram, without its source (`recv`, `read`).
    ///
    /// # Safety
    /// As `recv(2)`.
    unsafe fn recv_from_association(
        fd: c_int,
        buffer: *mut c_void,
        length: size_t,
        flags: c_int,
    ) -> ssize_t {
        let (no_address, no_length) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: as recvfrom with no address buffer, which it accepts.
        unsafe { recvfrom(fd, buffer, length, flags, no_address, no_length) }
    }

    /// Replaces `recv(2)`.
    ///
    /// # Safety
    /// As `recv(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn recv(
        fd: c_int,
        buffer: *mut c_void,
        length: size_t,
        flags: c_int,
    ) -> ssize_t {
        if udp::is_associated(fd) {
            // SAFETY: as recv(2), which the caller's contract covers.
            unsafe { recv_from_association(fd, buffer, length, flags) }
        } else {
            // SAFETY: unchanged.
            unsafe { real::recv(fd, buffer, length, flags) }
        }
    }

    /// Replaces `read(2)` (for redirected UDP sockets only).
    ///
    /// # Safety
    /// As `read(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn read(fd: c_int, buffer: *mut c_void, length: size_t) -> ssize_t {
        if udp::is_associated(fd) {
            // SAFETY: as recv(2), which the caller's contract covers.
            unsafe { recv_from_association(fd, buffer, length, 0) }
        } else {
            // SAFETY: unchanged.
            unsafe { real::read(fd, buffer, length) }
        }
    }

    /// Replaces `recvmsg(2)`: the payload is scattered into the caller's iovecs.
    ///
    /// # Safety
    /// As `recvmsg(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn recvmsg(fd: c_int, message: *mut msghdr, flags: c_int) -> ssize_t {
        // SAFETY: the caller's message header.
        let header = match unsafe { message.as_mut() } {
            Some(header) if udp::is_associated(fd) => header,
            // SAFETY: unchanged.
            _ => return unsafe { real::recvmsg(fd, message, flags) },
        };
        // SAFETY: the header's iovecs.
        let room: usize = unsafe { iovecs(header.msg_iov, header.msg_iovlen) }
            .iter()
            .map(|v| v.iov_len)
            .sum();
        let mut payload = vec![0u8; room];
        match udp::receive(fd, &mut payload, flags) {
            Ok((copied, truncated, source)) => {
                // SAFETY: the header's iovecs are writable.
                unsafe { scatter(header.msg_iov, header.msg_iovlen, &payload[..copied]) };
                if !header.msg_name.is_null() {
                    if let Some(source) = SockAddr::for_socket(fd, source) {
                        // SAFETY: the caller's name buffer of msg_namelen bytes.
                        unsafe { source.copy_out(header.msg_name.cast(), &mut header.msg_namelen) };
                    }
                }
                header.msg_controllen = 0;
                header.msg_flags = if truncated { libc::MSG_TRUNC } else { 0 };
                copied as ssize_t
            }
            Err(errno) => fail(errno),
        }
    }

    /// Replaces `recvmmsg(2)`: the first datagram as asked, the rest while more are waiting.
    ///
    /// # Safety
    /// As `recvmmsg(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn recvmmsg(
        fd: c_int,
        messages: *mut mmsghdr,
        count: c_uint,
        flags: c_int,
        timeout: *mut timespec,
    ) -> c_int {
        if !udp::is_associated(fd) || messages.is_null() {
            // SAFETY: unchanged.
            return unsafe { real::recvmmsg(fd, messages, count, flags, timeout) };
        }
        let receive_one = |entry: &mut mmsghdr, index: usize| {
            // The first datagram as asked; the rest only if already waiting.
            let these = if index == 0 {
                flags
            } else {
                flags | libc::MSG_DONTWAIT
            };
            // SAFETY: a valid message header.
            unsafe { recvmsg(fd, &mut entry.msg_hdr, these & !libc::MSG_WAITFORONE) }
        };
        // SAFETY: the caller's vector of `count` messages.
        unsafe { each_message(messages, count, receive_one) }
    }

    /// Runs `one` on each message in turn, recording its result as the message's length;
    /// returns how many succeeded, or -1 (errno set) when the first one failed.
    ///
    /// # Safety
    /// `messages` is valid for `count` entries.
    unsafe fn each_message(
        messages: *mut mmsghdr,
        count: c_uint,
        mut one: impl FnMut(&mut mmsghdr, usize) -> ssize_t,
    ) -> c_int {
        let mut done = 0;
        for index in 0..count as usize {
            // SAFETY: `index` < `count` entries, per the caller.
            let entry = unsafe { &mut *messages.add(index) };
            let result = one(entry, index);
            if result < 0 {
                return if done > 0 { done } else { -1 };
            }
            entry.msg_len = result as c_uint;
            done += 1;
        }
        done
    }

    /// Replaces `syscall(2)` for `sendmmsg` and `recvmmsg`, which libuv (and so `dig`, Node.js
    /// and others) calls through `syscall` rather than through libc's wrappers; every other
    /// call goes to libc unchanged.
    ///
    /// `syscall` is variadic in C. Integer arguments of a variadic call travel exactly like
    /// those of a fixed one on x86-64 and AArch64 Linux, so taking six `long`s reads what the
    /// caller passed (and harmless leftovers beyond it, which the kernel ignores).
    ///
    /// # Safety
    /// As `syscall(2)`.
    #[no_mangle]
    pub unsafe extern "C" fn syscall(
        number: libc::c_long,
        a1: libc::c_long,
        a2: libc::c_long,
        a3: libc::c_long,
        a4: libc::c_long,
        a5: libc::c_long,
        a6: libc::c_long,
    ) -> libc::c_long {
        let fd = a1 as c_int;
        // The descriptor calls a program may make this way (a daemon's close_range, say)
        // keep the shim's own descriptors apart, as their libc functions do.
        match number {
            libc::SYS_close => {
                // SAFETY: the arguments of close(fd).
                return libc::c_long::from(unsafe { crate::close(fd) });
            }
            libc::SYS_close_range => {
                // SAFETY: the arguments of close_range(first, last, flags).
                return libc::c_long::from(unsafe {
                    crate::close_range(a1 as c_uint, a2 as c_uint, a3 as c_int)
                });
            }
            libc::SYS_dup3 => {
                // SAFETY: the arguments of dup3(old, new, flags).
                return libc::c_long::from(unsafe { crate::dup3(fd, a2 as c_int, a3 as c_int) });
            }
            _ => {}
        }
        if number == libc::SYS_sendmmsg && udp::is_associated(fd) {
            // SAFETY: the arguments of sendmmsg(fd, messages, count, flags).
            return libc::c_long::from(unsafe {
                sendmmsg(fd, a2 as *mut mmsghdr, a3 as c_uint, a4 as c_int)
            });
        }
        if number == libc::SYS_recvmmsg && udp::is_associated(fd) {
            // SAFETY: the arguments of recvmmsg(fd, messages, count, flags, timeout).
            return libc::c_long::from(unsafe {
                recvmmsg(
                    fd,
                    a2 as *mut mmsghdr,
                    a3 as c_uint,
                    a4 as c_int,
                    a5 as *mut timespec,
                )
            });
        }
        // SAFETY: the caller's arguments, passed on to libc's syscall.
        unsafe { real::syscall(number, a1, a2, a3, a4, a5, a6) }
    }

    /// The iovecs as a slice.
    ///
    /// # Safety
    /// `vectors` is valid for `count` entries (or null with 0).
    unsafe fn iovecs<'a>(vectors: *mut iovec, count: usize) -> &'a [iovec] {
        // SAFETY: per the caller.
        unsafe { crate::memory::entries(vectors.cast_const(), count) }
    }

    /// # Safety
    /// As [`iovecs`], each readable for its length.
    unsafe fn gather(vectors: *mut iovec, count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        // SAFETY: per the caller.
        for vector in unsafe { iovecs(vectors, count) } {
            // SAFETY: readable for iov_len bytes (or null / empty, which gives nothing).
            bytes.extend_from_slice(unsafe {
                crate::memory::bytes(vector.iov_base.cast::<u8>(), vector.iov_len)
            });
        }
        bytes
    }

    /// # Safety
    /// As [`iovecs`], each writable for its length.
    unsafe fn scatter(vectors: *mut iovec, count: usize, mut bytes: &[u8]) {
        // SAFETY: per the caller.
        for vector in unsafe { iovecs(vectors, count) } {
            let take = bytes.len().min(vector.iov_len);
            if take > 0 && !vector.iov_base.is_null() {
                // SAFETY: writable for iov_len ≥ take bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        vector.iov_base.cast::<u8>(),
                        take,
                    )
                };
            }
            bytes = &bytes[take..];
        }
    }
}
