//! The errno and descriptor helpers beneath the shim's modules: errno read and set, a
//! socket's options (family, type), `fcntl`. A leaf: it names no other module here.

use libc::{c_int, c_void};

/// An integer `SOL_SOCKET` option of `fd`.
pub(crate) fn socket_option(fd: c_int, option: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut length = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` is a writable c_int and `length` its size.
    let done = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast::<c_void>(),
            &mut length,
        )
    };
    (done == 0).then_some(value)
}

pub(crate) fn fcntl(fd: c_int, command: c_int, argument: c_int) -> Result<c_int, c_int> {
    // SAFETY: F_GETFL and F_SETFL take an integer argument.
    match unsafe { libc::fcntl(fd, command, argument) } {
        -1 => Err(errno()),
        value => Ok(value),
    }
}

pub(crate) fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

pub(crate) fn set_errno(value: c_int) {
    // SAFETY: `__errno_location` returns this thread's errno.
    unsafe { *libc::__errno_location() = value };
}

/// The address family a socket was created with.
pub(crate) fn family(fd: c_int) -> Option<c_int> {
    socket_option(fd, libc::SO_DOMAIN)
}

/// A socket's type (SOCK_STREAM, SOCK_DGRAM, …).
pub(crate) fn socket_type(fd: c_int) -> Option<c_int> {
    socket_option(fd, libc::SO_TYPE)
}

/// Whether a socket is a stream (TCP) socket.
pub(crate) fn is_stream(fd: c_int) -> bool {
    socket_type(fd) == Some(libc::SOCK_STREAM)
}
