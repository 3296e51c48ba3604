//! `close`, `close_range`, `dup`, `dup2`, `dup3`: the shim follows the program's
//! descriptors, and keeps its own apart (`own`).

use libc::c_int;

use crate::{own, real, state, udp};

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
