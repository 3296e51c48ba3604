//! The functions this library replaces, as the next library in the search order (libc)
//! provides them: found with `dlsym(RTLD_NEXT, …)` when the library loads (or, for a hook
//! called before that, on its first use).
//!
//! The address is kept in a plain atomic, not a `OnceLock`: a thread that waits for another
//! to initialize a `OnceLock` waits on a futex through `syscall(2)` — which this library
//! replaces, and whose hook needs the real `syscall` first: the waiting thread would recurse
//! until its stack overflowed. Two threads that look the same symbol up at once both store
//! the same address, which is harmless.

use std::ffi::CStr;
use std::sync::atomic::Ordering;

use libc::{
    addrinfo, c_char, c_int, c_uint, c_void, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t,
    timespec,
};

/// Looks a symbol up in the libraries after this one.
fn next(name: &CStr) -> usize {
    // SAFETY: `dlsym` with RTLD_NEXT and a NUL-terminated name has no other precondition.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
}

macro_rules! real {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        /// The addresses of the real functions, one slot each (0: not looked up yet).
        mod addresses {
            use std::sync::atomic::AtomicUsize;
            $(
                #[allow(non_upper_case_globals)]
                pub(super) static $name: AtomicUsize = AtomicUsize::new(0);
            )*
        }

        /// Looks every real function up (when the library loads): the hooks then never call
        /// `dlsym` — which is not async-signal-safe — from a signal handler.
        pub(crate) fn resolve_all() {
            $(
                addresses::$name.store(
                    next(
                        CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes())
                            .unwrap_or(c"abort"),
                    ),
                    Ordering::Relaxed,
                );
            )*
        }

        $(
            /// Calls the real function of the same name.
            ///
            /// # Safety
            /// The same as calling the libc function.
            #[allow(clippy::too_many_arguments, reason = "the C function's signature")]
            pub(crate) unsafe fn $name($($arg: $ty),*) -> $ret {
                let slot = &addresses::$name;
                let mut address = slot.load(Ordering::Relaxed);
                if address == 0 {
                    address = next(
                        CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes())
                            .unwrap_or(c"abort"),
                    );
                    slot.store(address, Ordering::Relaxed);
                }
                if address == 0 {
                    // Without libc's function there is nothing sensible to do.
                    std::process::abort();
                }
                type Function = unsafe extern "C" fn($($ty),*) -> $ret;
                // SAFETY: `address` is the libc function with this signature (`syscall` is
                // variadic: integer arguments travel as for a fixed signature on x86-64 and
                // AArch64 Linux, see the hook).
                let function = unsafe { std::mem::transmute::<usize, Function>(address) };
                // SAFETY: the caller upholds the libc function's contract.
                unsafe { function($($arg),*) }
            }
        )*
    };
}

real! {
    fn connect(fd: c_int, address: *const sockaddr, length: socklen_t) -> c_int;
    fn getpeername(fd: c_int, address: *mut sockaddr, length: *mut socklen_t) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn closefrom(lowest: c_int) -> ();
    fn dup(fd: c_int) -> c_int;
    fn fcntl(fd: c_int, command: c_int, argument: libc::c_ulong) -> c_int;
    fn fcntl64(fd: c_int, command: c_int, argument: libc::c_ulong) -> c_int;
    fn fclose(stream: *mut libc::FILE) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, result: *mut *mut addrinfo) -> c_int;
    fn freeaddrinfo(list: *mut addrinfo) -> ();
    fn send(fd: c_int, buffer: *const c_void, length: size_t, flags: c_int) -> ssize_t;
    fn sendto(fd: c_int, buffer: *const c_void, length: size_t, flags: c_int, address: *const sockaddr, address_length: socklen_t) -> ssize_t;
    fn sendmsg(fd: c_int, message: *const msghdr, flags: c_int) -> ssize_t;
    fn sendmmsg(fd: c_int, messages: *mut mmsghdr, count: c_uint, flags: c_int) -> c_int;
    fn write(fd: c_int, buffer: *const c_void, length: size_t) -> ssize_t;
    fn recv(fd: c_int, buffer: *mut c_void, length: size_t, flags: c_int) -> ssize_t;
    fn recvfrom(fd: c_int, buffer: *mut c_void, length: size_t, flags: c_int, address: *mut sockaddr, address_length: *mut socklen_t) -> ssize_t;
    fn recvmsg(fd: c_int, message: *mut msghdr, flags: c_int) -> ssize_t;
    fn recvmmsg(fd: c_int, messages: *mut mmsghdr, count: c_uint, flags: c_int, timeout: *mut timespec) -> c_int;
    fn read(fd: c_int, buffer: *mut c_void, length: size_t) -> ssize_t;
    fn readv(fd: c_int, vectors: *const libc::iovec, count: c_int) -> ssize_t;
    fn writev(fd: c_int, vectors: *const libc::iovec, count: c_int) -> ssize_t;
    fn syscall(number: libc::c_long, a1: libc::c_long, a2: libc::c_long, a3: libc::c_long, a4: libc::c_long, a5: libc::c_long, a6: libc::c_long) -> libc::c_long;
    fn gethostbyname2(name: *const c_char, family: c_int) -> *mut libc::hostent;
    fn gethostbyaddr(address: *const c_void, length: socklen_t, family: c_int) -> *mut libc::hostent;
    fn gethostbyaddr_r(address: *const c_void, length: socklen_t, family: c_int, entry: *mut libc::hostent, buffer: *mut c_char, buffer_length: size_t, result: *mut *mut libc::hostent, h_errno: *mut c_int) -> c_int;
    fn gethostbyname2_r(name: *const c_char, family: c_int, entry: *mut libc::hostent, buffer: *mut c_char, length: size_t, result: *mut *mut libc::hostent, h_errno: *mut c_int) -> c_int;
    fn getnameinfo(address: *const sockaddr, length: socklen_t, host: *mut c_char, host_length: socklen_t, service: *mut c_char, service_length: socklen_t, flags: c_int) -> c_int;
}
