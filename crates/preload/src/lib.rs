//! `socksgate socksify`'s LD_PRELOAD library: an unmodified, dynamically linked program's TCP
//! connections go through a chain of SOCKS proxies.
//!
//! What it replaces:
//!
//! * `connect` on a TCP socket to an address outside the direct blocks (loopback by
//!   default): the socket is connected to the first proxy and the SOCKS handshake with each hop
//!   runs on it (blocking calls, through `socksgate-proto`'s client machine) before `connect`
//!   returns; non-blocking sockets get their handshake done at once and `connect` returns 0.
//! * `getaddrinfo`/`freeaddrinfo`/`gethostbyname*`, `getnameinfo`/`gethostbyaddr*`: when the
//!   last proxy resolves names (socks5h, socks4a), a name gets a fake IPv4 address from a
//!   reserved block, mapped back to the name when the program connects to it or asks for its
//!   name — so names are resolved by the proxy, not here, and fake addresses by nobody.
//! * `getpeername`: the destination the program asked for, not the proxy.
//! * `close`, `close_range`, `closefrom`, `fclose`, `dup`, `dup2`, `dup3`, `fcntl`/`fcntl64`
//!   (`F_DUPFD`): bookkeeping of redirected sockets, and of the shim's own descriptors
//!   (`own`), which a program that closes or overwrites them takes back without the shim
//!   ever touching its descriptor again.
//! * `syscall`: libuv's raw `sendmmsg`/`recvmmsg` and raw `close`/`close_range`/`dup*`/`fcntl`
//!   go where their libc wrappers go.
//!
//! The hooks, by family, are in `hooks` (`tcp`, `descriptors`, `names`, `datagrams`): each
//! file one unsafe boundary. Shared state is behind fork- and signal-safe locks (`lock`);
//! buffers become slices only in `memory`; the real functions are found without locks
//! (`real`); errno and descriptor helpers sit beneath every module (`sys`). The handshake
//! through the chain is `tunnel`'s; remembered destinations and fake names are `state`'s,
//! each table with a lock-free bitmap beside it (`marks`); the environment `socksify` set is
//! read in `settings`; socket addresses cross between Rust and C in `address`.
//!
//! Unsafe code lives here (the C ABI programs call) and in `socksgate-sys` (the C ABI of the
//! system's libraries), nowhere else in socksgate. A panic never unwinds
//! into the program: unwinding out of an `extern "C"` function aborts.
//!
//! Limits: statically linked programs and Go binaries do not load the library; setuid
//! programs ignore LD_PRELOAD.
//!
//! UDP (`udp`): datagram calls (`sendto`, `sendmsg`, `sendmmsg`, `send`, `write`, `writev`,
//! `recvfrom`, `recvmsg`, `recvmmsg`, `recv`, `read`, `readv` and the `_chk` variants, and
//! `connect` on a datagram socket) go through a UDP association with the proxy when the
//! destination is redirected.

mod address;
mod lock;
mod marks;
mod memory;
mod own;
mod real;
mod settings;
mod state;
mod sys;
mod tunnel;
mod udp;

pub mod hooks;

/// Every lock of the shim, in the order `fork` takes them.
fn locks() -> [&'static dyn lock::ForkLock; 4] {
    [
        &state::DESTINATIONS,
        &state::NAMES,
        &udp::ASSOCIATIONS,
        &hooks::names::OURS,
    ]
}

extern "C" fn before_fork() {
    lock::hold_all(&locks());
}

extern "C" fn after_fork_in_parent() {
    lock::release_all(&locks());
}

extern "C" fn after_fork_in_child() {
    lock::own_process();
    lock::release_all(&locks());
}

/// When the library is loaded, before the program runs (one thread, no fork yet): reads the
/// settings — a lazy first read could be under way in one thread when another forks, and
/// the child would wait for it forever — looks the real functions up, and registers the
/// fork handlers.
extern "C" fn at_load() {
    let _ = settings::settings();
    remember_stderr();
    real::resolve_all();
    lock::own_process();
    // SAFETY: three handlers with the signature pthread_atfork wants, valid for the
    // process's life (this library is never unloaded: it is preloaded).
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        )
    };
}

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

/// What descriptor 2 was when the program started: the library writes its messages there
/// only while it still is. A daemon that closed it and got the number for a socket or a data
/// file must not find the library's words in its bytes.
/// Written once, when the library loads (one thread); read without a lock after.
static STDERR: std::sync::OnceLock<Option<own::Identity>> = std::sync::OnceLock::new();

fn remember_stderr() {
    let _ = STDERR.set(own::file_identity(2).map(|(identity, _)| identity));
}

pub(crate) fn debug(message: &str) {
    let now = own::file_identity(2).map(|(identity, _)| identity);
    if now.is_none() || STDERR.get().copied().flatten() != now {
        return;
    }
    write_to_stderr(format!("socksgate socksify: {message}\n").as_bytes());
}

/// One `write` to descriptor 2, with SIGPIPE held off this thread meanwhile: a program
/// whose standard error is a pipe nobody reads any more (`… 2>&1 | head`) must not die of
/// the library's message. (No std `Stderr`: its lock could be held across a `fork`.)
fn write_to_stderr(line: &[u8]) {
    // SAFETY: signal sets filled by sigemptyset/sigaddset/sigpending and passed by
    // reference; `line` is valid for its length; the mask is put back as it was.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut before);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let pending_before = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let written = real::write(2, line.as_ptr().cast(), line.len());
        if written < 0 && sys::errno() == libc::EPIPE && !pending_before {
            // The write's own SIGPIPE, pending now: taken, so it never reaches the program.
            let now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
    }
}

/// Says why `what` (a connection, an association) failed through the proxies: with
/// `--debug` every time; otherwise only when the proxies are at fault — down, silent,
/// refusing the credentials, not speaking SOCKS, gone mid-handshake — and once per cause,
/// as the program's own message ("Couldn't connect to server") cannot tell the proxy from
/// the target. A target's refusal is the program's to report.
pub(crate) fn report(what: &str, failure: &tunnel::Failure) {
    use std::sync::atomic::{AtomicU8, Ordering};
    /// The causes said already (one bit each).
    static SAID: AtomicU8 = AtomicU8::new(0);
    let settings = settings::settings();
    let message = failure.describe(&settings.chain);
    if settings.debug {
        debug(&format!("{what} through the proxies failed: {message}"));
        return;
    }
    let bit = match failure.cause {
        tunnel::Cause::Unreachable => 1,
        tunnel::Cause::Credentials(_) => 2,
        tunnel::Cause::TimedOut if failure.hop > 0 => 4,
        tunnel::Cause::Lost if failure.hop > 0 => 8,
        tunnel::Cause::Broken(_) => 16,
        _ => return,
    };
    if SAID.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        debug(&message);
    }
}
