//! The descriptors the shim opened for itself (the control connections of UDP
//! associations), kept apart from the program's.
//!
//! A daemon may close every descriptor from 3 up, or `dup2` over one: then the number is
//! the program's, and the shim must never close or use it again. The registry is a fixed
//! table of atomics, so the `close` hook can ask "is this ours?" without a lock (and so from
//! a signal handler, or in a child right after `fork`).

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use libc::c_int;

use crate::marks::Marks;

/// At most this many of the shim's own descriptors at once (one per UDP association: a
/// program with more UDP sockets through the proxy at once gets `EMFILE` for the next).
const SLOTS: usize = 1024;

static OWN: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// Which numbers a slot holds: `close` of any other asks nothing of the table. One slot
/// per number at most (a stale one is let go before the number is adopted again), so each
/// is marked once.
static OWNED: Marks = Marks::new();

/// The inode of the socket each slot's descriptor was when adopted: what tells the shim's
/// socket from a descriptor of the program's that got the same number after the program
/// closed it by a way no hook sees (a raw `syscall` instruction, io_uring, a libc-internal
/// call).
static INODES: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// The device of each, with the inode: together they name one open socket.
static DEVICES: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

thread_local! {
    /// The socket this thread just opened for the shim, before it is adopted: known by
    /// identity from its first instant, so that nothing closes a number that has become
    /// the program's meanwhile.
    static OPENED: std::cell::Cell<Option<Identity>> = const { std::cell::Cell::new(None) };
}

/// Notes the identity of the socket this thread just opened as `fd`, for `adopt`.
pub(crate) fn opened(fd: c_int) {
    OPENED.with(|opened| opened.set(identity(fd)));
}

/// Registers `fd`, just opened (see [`opened`]), as the shim's; `false` when the table is
/// full, or `fd` is no longer that socket.
pub(crate) fn adopt(fd: c_int) -> bool {
    let Some(Identity { device, inode }) = OPENED.with(std::cell::Cell::get) else {
        return false;
    };
    if identity(fd) != Some(Identity { device, inode }) {
        return false;
    }
    // (The caller has let go of any stale slot for the number first: see `udp::open`.)
    // Marked first: no moment has a slot taken and the bitmap saying "not ours".
    OWNED.mark(fd);
    let slot = OWN.iter().position(|slot| take_slot(slot, -1, fd));
    match slot {
        Some(index) => {
            // Stored before the shim can use the descriptor: `adopt` returns after.
            INODES[index].store(inode, Ordering::Release);
            DEVICES[index].store(device, Ordering::Release);
        }
        None => OWNED.unmark(fd),
    }
    slot.is_some()
}

/// Closes `fd`, which this thread opened and could not adopt — if it is still that socket.
pub(crate) fn close_unadopted(fd: c_int) {
    let opened = OPENED.with(std::cell::Cell::take);
    if opened.is_some() && identity(fd) == opened {
        // SAFETY: the shim's own socket, just opened, never handed to anyone.
        unsafe { crate::real::close(fd) };
    }
}

/// Closes the shim's `fd` and takes it off the table — unless the number now stands for
/// something else (the program closed it unseen and opened another): then it only leaves
/// the table, and the program's descriptor is untouched. Nothing when `fd` is not the
/// shim's.
pub(crate) fn close(fd: c_int) {
    let Some(index) = OWN
        .iter()
        .position(|slot| fd >= 0 && slot.load(Ordering::Acquire) == fd)
    else {
        return;
    };
    let adopted = Identity {
        device: DEVICES[index].load(Ordering::Acquire),
        inode: INODES[index].load(Ordering::Acquire),
    };
    if !take_slot(&OWN[index], fd, -1) {
        return;
    }
    OWNED.unmark(fd);
    if identity(fd) == Some(adopted) {
        // SAFETY: the shim's own socket, the same one it adopted, off the table now.
        unsafe { crate::real::close(fd) };
    }
}

/// Which open socket a descriptor is: the number may be reused, the pair may not while the
/// socket is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    device: u64,
    inode: u64,
}

/// The identity of the socket `fd` is; `None` when `fd` is not an open socket.
pub(crate) fn identity(fd: c_int) -> Option<Identity> {
    let (identity, mode) = file_identity(fd)?;
    (mode & libc::S_IFMT == libc::S_IFSOCK).then_some(identity)
}

/// The identity of whatever `fd` is open on, and its mode; `None` when it is not open.
pub(crate) fn file_identity(fd: c_int) -> Option<(Identity, libc::mode_t)> {
    // SAFETY: all-zero is a valid `stat`.
    let mut status: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `status` is writable.
    let open = unsafe { libc::fstat(fd, &mut status) } == 0;
    open.then_some((
        Identity {
            device: status.st_dev,
            inode: status.st_ino,
        },
        status.st_mode,
    ))
}

/// Whether `fd` is (still) the shim's.
pub(crate) fn holds(fd: c_int) -> bool {
    OWNED.may_hold(fd) && OWN.iter().any(|slot| slot.load(Ordering::Acquire) == fd)
}

/// Takes `fd` off the table: the shim closes it, or the program has taken the number.
/// Whether it was there.
pub(crate) fn release(fd: c_int) -> bool {
    let released = OWNED.may_hold(fd) && OWN.iter().any(|slot| take_slot(slot, fd, -1));
    if released {
        OWNED.unmark(fd);
    }
    released
}

/// Puts `new` in `slot` if it holds `old`. A plain load first: `close` asks this of every
/// slot, and a failed compare-exchange costs a locked instruction each.
fn take_slot(slot: &AtomicI32, old: c_int, new: c_int) -> bool {
    slot.load(Ordering::Relaxed) == old
        && slot
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

/// The shim's descriptors in `first..=last`, each taken off the table.
pub(crate) fn release_range(first: u32, last: u32, mut released: impl FnMut(c_int)) {
    for slot in &OWN {
        let fd = slot.load(Ordering::Acquire);
        if fd >= 0 && (first..=last).contains(&(fd as u32)) && take_slot(slot, fd, -1) {
            OWNED.unmark(fd);
            released(fd);
        }
    }
}
