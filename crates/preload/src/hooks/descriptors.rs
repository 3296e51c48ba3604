//! `close`, `close_range`, `closefrom`, `fclose`, `dup`, `dup2`, `dup3`, `fcntl`/`fcntl64`
//! (`F_DUPFD…`): the shim follows the program's descriptors, and keeps its own apart (`own`).

use libc::c_int;

use crate::{own, real, state, udp};

/// Replaces `close(2)`.
///
/// # Safety
/// As `close(2)`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    closing(fd);
    // SAFETY: the caller's argument, unchanged.
    unsafe { real::close(fd) }
}

/// Replaces `fclose(3)`: the stream's descriptor is closed inside libc, where the `close`
/// hook does not see it (a program that `fdopen`s a socket and closes it as a stream).
///
/// # Safety
/// As `fclose(3)`.
#[no_mangle]
pub unsafe extern "C" fn fclose(stream: *mut libc::FILE) -> c_int {
    if !stream.is_null() {
        // SAFETY: the caller's open stream.
        closing(unsafe { libc::fileno(stream) });
    }
    // SAFETY: the caller's argument, unchanged.
    unsafe { real::fclose(stream) }
}

/// `fd` is about to be closed by the program. Nothing to do for a descriptor the shim
/// neither holds nor follows (most of them), nor in a vfork child: its closes are its own,
/// the state is its parent's.
fn closing(fd: c_int) {
    if fd < 0 || !(own::holds(fd) || followed(fd)) || !crate::lock::in_own_process() {
        return;
    }
    // The program closes a number the shim holds (a daemon closing everything): the
    // association it served is dead, and the program gets the close it asked for. Whatever
    // the shim kept for the number as the program's goes too (a slot left stale by a close
    // no hook saw can name a number the program uses by now).
    if own::release(fd) {
        udp::control_lost(fd);
    }
    state::forget(fd);
    udp::forget(fd);
}

/// Whether the shim may have state for the program's descriptor `fd` (a redirected
/// socket's peer, a UDP association): without a lock, and so cheap for every call.
fn followed(fd: c_int) -> bool {
    state::may_follow(fd) || udp::may_follow(fd)
}

/// Replaces `close_range(2)`: the shim's descriptors in the range are the program's to
/// close (their associations are dead), and the program's own sockets in it are forgotten.
///
/// # Safety
/// As `close_range(2)`.
#[no_mangle]
pub unsafe extern "C" fn close_range(
    first: libc::c_uint,
    last: libc::c_uint,
    flags: c_int,
) -> c_int {
    // The system call itself, not libc's wrapper: glibc before 2.34 has none, and a
    // program reaches this hook through `syscall(SYS_close_range, …)` there too.
    // SAFETY: the caller's arguments, unchanged, to the kernel's close_range.
    let result = unsafe {
        real::syscall(
            libc::SYS_close_range,
            libc::c_long::from(first),
            libc::c_long::from(last),
            libc::c_long::from(flags),
            0,
            0,
            0,
        )
    } as c_int;
    // Only marked close-on-exec: nothing was closed now.
    if result == 0 && flags as libc::c_uint & libc::CLOSE_RANGE_CLOEXEC == 0 {
        closed_range(first, last);
    }
    result
}

/// Replaces `closefrom(3)` (OpenSSH, sudo and postfix close this way; glibc's does not
/// call `close_range` where a hook would see it).
///
/// # Safety
/// As `closefrom(3)`.
#[no_mangle]
pub unsafe extern "C" fn closefrom(lowest: c_int) {
    // SAFETY: the caller's argument, unchanged.
    unsafe { real::closefrom(lowest) };
    closed_range(lowest.max(0) as u32, u32::MAX);
}

/// What the shim does once `first..=last` are closed: its own there are the program's
/// numbers now (their associations dead), the program's sockets there are forgotten.
fn closed_range(first: u32, last: u32) {
    if !crate::lock::in_own_process() {
        return;
    }
    own::release_range(first, last, udp::control_lost);
    state::forget_range(first, last);
    udp::forget_range(first, last);
}

/// `dup2`/`dup3` put `old` at `new`, closing what was there: if it was the shim's, the
/// shim lets go; if it was a socket of the program's the shim followed, it forgets it.
fn taken_over(old: c_int, new: c_int) {
    if old == new
        || !(own::holds(new) || followed(old) || followed(new))
        || !crate::lock::in_own_process()
    {
        return;
    }
    if own::release(new) {
        udp::control_lost(new);
    }
    udp::forget(new);
    duplicated(old, new);
}

/// `new` is a fresh duplicate of `old`: it is followed as `old` is (its redirected peer, its
/// UDP association).
fn duplicated(old: c_int, new: c_int) {
    if !(followed(old) || followed(new)) || !crate::lock::in_own_process() {
        return;
    }
    state::duplicate(old, new);
    udp::duplicate(old, new);
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
        duplicated(fd, new);
    }
    new
}

/// Replaces `fcntl(2)`: a duplicate made with `F_DUPFD`/`F_DUPFD_CLOEXEC` is followed as
/// `dup`'s is; every other command passes unchanged.
///
/// `fcntl` is variadic in C; its one optional argument (an integer or a pointer) travels
/// like a fixed one on x86-64 and AArch64 Linux, so taking it as an unsigned long reads what
/// the caller passed (or a harmless leftover the command ignores).
///
/// # Safety
/// As `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, command: c_int, argument: libc::c_ulong) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let result = unsafe { real::fcntl(fd, command, argument) };
    fcntl_done(fd, command, result)
}

/// After `fcntl`: a duplicate is followed.
fn fcntl_done(fd: c_int, command: c_int, result: c_int) -> c_int {
    if result >= 0 && matches!(command, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) {
        duplicated(fd, result);
    }
    result
}

/// Replaces `fcntl64`, which programs built with `-D_FILE_OFFSET_BITS=64` call for
/// `fcntl` (glibc's header renames it): the same as [`fcntl`].
///
/// # Safety
/// As `fcntl(2)`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, command: c_int, argument: libc::c_ulong) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let result = unsafe { real::fcntl64(fd, command, argument) };
    fcntl_done(fd, command, result)
}

/// Replaces `dup2(2)`.
///
/// # Safety
/// As `dup2(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let result = unsafe { real::dup2(old, new) };
    if result >= 0 {
        taken_over(old, new);
    }
    result
}

/// Replaces `dup3(2)`.
///
/// # Safety
/// As `dup3(2)`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let result = unsafe { real::dup3(old, new, flags) };
    if result >= 0 {
        taken_over(old, new);
    }
    result
}
