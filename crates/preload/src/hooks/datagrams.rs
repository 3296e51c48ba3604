//! The datagram calls: redirected when the socket has (or needs) an association. And
//! `syscall`, which sends libuv's raw `sendmmsg`/`recvmmsg` here and raw descriptor calls
//! (`close`, `close_range`, `dup*`, `fcntl`) to `descriptors`.

use std::net::SocketAddr;

use libc::{
    c_int, c_uint, c_void, iovec, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t, timespec,
};

use crate::address::canonical;
use crate::address::{self, SockAddr};
use crate::sys::set_errno;
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
    match unsafe { crate::hooks::tcp::fast_open(fd, flags, address, address_length) } {
        Some(Ok(())) => {
            // SAFETY: the caller's buffer, now on a connected socket.
            return unsafe { real::send(fd, buffer, length, flags & !libc::MSG_FASTOPEN) };
        }
        Some(Err(())) => return -1,
        None => {}
    }
    // SAFETY: the caller's address.
    match unsafe { destination(fd, address, address_length) } {
        // Larger than any datagram: refused before its bytes are read, as the kernel does.
        Some(_) if length > udp::LARGEST_DATAGRAM => fail(libc::EMSGSIZE),
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
    match unsafe {
        crate::hooks::tcp::fast_open(fd, flags, header.msg_name.cast(), header.msg_namelen)
    } {
        Some(Ok(())) => {
            // The same message, without the address: the socket is connected now.
            let mut connected = *header;
            connected.msg_name = std::ptr::null_mut();
            connected.msg_namelen = 0;
            // SAFETY: the caller's message, its address removed.
            return unsafe { real::sendmsg(fd, &connected, flags & !libc::MSG_FASTOPEN) };
        }
        Some(Err(())) => return -1,
        None => {}
    }
    // SAFETY: the header's address.
    let Some(to) = (unsafe { destination(fd, header.msg_name.cast(), header.msg_namelen) }) else {
        // SAFETY: unchanged.
        return unsafe { real::sendmsg(fd, message, flags) };
    };
    // SAFETY: the header's iovecs.
    if unsafe { null_vectors(header.msg_iov, header.msg_iovlen) } {
        return fail(libc::EFAULT);
    }
    // SAFETY: the header's iovecs.
    if unsafe { room(header.msg_iov, header.msg_iovlen) } > udp::LARGEST_DATAGRAM {
        return fail(libc::EMSGSIZE);
    }
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
    if !redirected || messages.is_null() {
        // SAFETY: unchanged (a null vector is the kernel's EFAULT to give).
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
    // No datagram is larger than this: the bytes beyond are never written.
    let length = length.min(udp::LARGEST_DATAGRAM);
    // SAFETY: the caller's buffer is writable for `length` bytes (fewer than it gave).
    let out = unsafe { crate::memory::bytes_mut(buffer.cast::<u8>(), length) };
    match udp::receive(fd, out, flags) {
        Ok(received) => {
            let source = received.source;
            if !address.is_null() && !address_length.is_null() {
                if let Some(source) = SockAddr::for_socket(fd, source) {
                    // SAFETY: the caller's buffer of `*address_length` bytes.
                    unsafe { source.copy_out(address, address_length) };
                }
            }
            received.length(flags) as ssize_t
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
    // `read` of nothing returns 0 at once, the datagram left queued (unlike `recv`).
    if length > 0 && udp::is_associated(fd) {
        // SAFETY: as recv(2), which the caller's contract covers.
        unsafe { recv_from_association(fd, buffer, length, 0) }
    } else {
        // SAFETY: unchanged.
        unsafe { real::read(fd, buffer, length) }
    }
}

/// Replaces `writev(2)` (for connected, redirected UDP sockets only): as `sendmsg`.
///
/// # Safety
/// As `writev(2)`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, vectors: *const iovec, count: c_int) -> ssize_t {
    // Nothing to send, or more vectors than the kernel takes (its EINVAL): the kernel's.
    if !(1..=libc::UIO_MAXIOV).contains(&count) || udp::peer(fd).is_none() {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real::writev(fd, vectors, count) };
    }
    let message = vectors_message(vectors, count);
    // SAFETY: a message of the caller's iovecs, without an address.
    unsafe { sendmsg(fd, &message, 0) }
}

/// Replaces `readv(2)` (for redirected UDP sockets only): as `recvmsg`.
///
/// # Safety
/// As `readv(2)`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, vectors: *const iovec, count: c_int) -> ssize_t {
    // A read of nothing returns 0 at once and leaves the datagram queued; too many vectors
    // are the kernel's EINVAL.
    // SAFETY: the caller's `count` vectors (checked in range first).
    let empty = (1..=libc::UIO_MAXIOV).contains(&count)
        && unsafe { room(vectors.cast_mut(), count as usize) } == 0;
    if !(1..=libc::UIO_MAXIOV).contains(&count) || empty || !udp::is_associated(fd) {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real::readv(fd, vectors, count) };
    }
    let mut message = vectors_message(vectors, count);
    // SAFETY: a message of the caller's iovecs, without an address.
    unsafe { recvmsg(fd, &mut message, 0) }
}

/// A message header holding only `vectors`.
fn vectors_message(vectors: *const iovec, count: c_int) -> msghdr {
    // SAFETY: all-zero is a valid msghdr (no name, no control).
    let mut message: msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = vectors.cast_mut();
    message.msg_iovlen = count as usize;
    message
}

/// Replaces `__recv_chk`, which programs built with `_FORTIFY_SOURCE` (Debian's packages)
/// call for `recv` when the buffer's size is known: the check, then `recv`.
///
/// # Safety
/// As `recv(2)`, with `size` the buffer's real size.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buffer: *mut c_void,
    length: size_t,
    size: size_t,
    flags: c_int,
) -> ssize_t {
    overflow_check(length, size);
    // SAFETY: as recv, the length within the buffer.
    unsafe { recv(fd, buffer, length, flags) }
}

/// Replaces `__recvfrom_chk` (`recvfrom` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As `recvfrom(2)`, with `size` the buffer's real size.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buffer: *mut c_void,
    length: size_t,
    size: size_t,
    flags: c_int,
    address: *mut sockaddr,
    address_length: *mut socklen_t,
) -> ssize_t {
    overflow_check(length, size);
    // SAFETY: as recvfrom, the length within the buffer.
    unsafe { recvfrom(fd, buffer, length, flags, address, address_length) }
}

/// Replaces `__read_chk` (`read` under `_FORTIFY_SOURCE`).
///
/// # Safety
/// As `read(2)`, with `size` the buffer's real size.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buffer: *mut c_void,
    length: size_t,
    size: size_t,
) -> ssize_t {
    overflow_check(length, size);
    // SAFETY: as read, the length within the buffer.
    unsafe { read(fd, buffer, length) }
}

/// What glibc's `_chk` functions do when a call asks for more than the buffer holds: stop
/// the program (a buffer overflow caught), as `__chk_fail` does.
fn overflow_check(length: size_t, size: size_t) {
    if length > size {
        crate::debug("*** buffer overflow detected ***: terminated");
        std::process::abort();
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
    if unsafe { null_vectors(header.msg_iov, header.msg_iovlen) } {
        return fail(libc::EFAULT);
    }
    // No datagram is larger: room beyond it is never written.
    // SAFETY: the header's iovecs.
    let room = unsafe { room(header.msg_iov, header.msg_iovlen) }.min(udp::LARGEST_DATAGRAM);
    let mut payload = vec![0u8; room];
    match udp::receive(fd, &mut payload, flags) {
        Ok(received) => {
            let (copied, source) = (received.copied, received.source);
            let truncated = received.whole > copied;
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
            received.length(flags) as ssize_t
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

/// Replaces `syscall(2)` for the descriptor calls (`close`, `close_range`, `dup`, `dup2`,
/// `dup3`, `fcntl`) and for `sendmmsg` and `recvmmsg`, which libuv (and so `dig`, Node.js
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
            return libc::c_long::from(unsafe { crate::hooks::descriptors::close(fd) });
        }
        libc::SYS_close_range => {
            // SAFETY: the arguments of close_range(first, last, flags).
            return libc::c_long::from(unsafe {
                crate::hooks::descriptors::close_range(a1 as c_uint, a2 as c_uint, a3 as c_int)
            });
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_dup2 => {
            // SAFETY: the arguments of dup2(old, new).
            return libc::c_long::from(unsafe { crate::hooks::descriptors::dup2(fd, a2 as c_int) });
        }
        libc::SYS_dup => {
            // SAFETY: the arguments of dup(fd).
            return libc::c_long::from(unsafe { crate::hooks::descriptors::dup(fd) });
        }
        libc::SYS_fcntl => {
            // SAFETY: the arguments of fcntl(fd, command, argument).
            return libc::c_long::from(unsafe {
                crate::hooks::descriptors::fcntl(fd, a2 as c_int, a3 as libc::c_ulong)
            });
        }
        libc::SYS_dup3 => {
            // SAFETY: the arguments of dup3(old, new, flags).
            return libc::c_long::from(unsafe {
                crate::hooks::descriptors::dup3(fd, a2 as c_int, a3 as c_int)
            });
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

/// Whether the iovecs name memory at address 0 (a null array of some, or a null buffer of
/// some bytes): the kernel answers `EFAULT`, and so does the shim.
///
/// # Safety
/// As [`iovecs`].
unsafe fn null_vectors(vectors: *mut iovec, count: usize) -> bool {
    (vectors.is_null() && count > 0)
        // SAFETY: per the caller.
        || unsafe { iovecs(vectors, count) }
            .iter()
            .any(|vector| vector.iov_base.is_null() && vector.iov_len > 0)
}

/// How many bytes the iovecs hold in all (saturating: a hostile total is just "too many").
///
/// # Safety
/// As [`iovecs`].
unsafe fn room(vectors: *mut iovec, count: usize) -> usize {
    // SAFETY: per the caller.
    unsafe { iovecs(vectors, count) }
        .iter()
        .fold(0, |total: usize, vector| {
            total.saturating_add(vector.iov_len)
        })
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
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), vector.iov_base.cast::<u8>(), take)
            };
        }
        bytes = &bytes[take..];
    }
}
