//! The descriptors the shim opened for itself (the control connections of UDP
//! associations), kept apart from the program's.
//!
//! A daemon may close every descriptor from 3 up, or `dup2` over one: then the number is
//! the program's, and the shim must never close or use it again. The registry is a fixed
//! table of atomics, so the `close` hook can ask "is this ours?" without a lock (and so from
//! a signal handler, or in a child right after `fork`).

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

use libc::c_int;

/// At most this many of the shim's own descriptors at once (one per UDP association).
const SLOTS: usize = 256;

static OWN: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// How many slots are taken: while none is, `close` asks nothing of the table.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// The inode of the socket each slot's descriptor was when adopted: what tells the shim's
/// socket from a descriptor of the program's that got the same number after the program
/// closed it by a way no hook sees (a raw `syscall` instruction, io_uring, a libc-internal
/// call).
static INODES: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// Registers `fd` as the shim's; `false` when the table is full (or `fd` is not open).
pub(crate) fn adopt(fd: c_int) -> bool {
    let Some(inode) = inode(fd) else {
        return false;
    };
    // Counted first, so that no moment has a slot taken and the count saying none.
    TAKEN.fetch_add(1, Ordering::AcqRel);
    let slot = OWN.iter().position(|slot| take_slot(slot, -1, fd));
    match slot {
        // Stored before the shim can use the descriptor: `adopt` returns after.
        Some(index) => INODES[index].store(inode, Ordering::Release),
        None => {
            TAKEN.fetch_sub(1, Ordering::AcqRel);
        }
    }
    slot.is_some()
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
    let adopted = INODES[index].load(Ordering::Acquire);
    if !take_slot(&OWN[index], fd, -1) {
        return;
    }
    TAKEN.fetch_sub(1, Ordering::AcqRel);
    if inode(fd) == Some(adopted) {
        // SAFETY: the shim's own socket, the same one it adopted, off the table now.
        unsafe { crate::real::close(fd) };
    }
}

/// The inode of the open file `fd` (sockets have one each, unique while open).
fn inode(fd: c_int) -> Option<u64> {
    // SAFETY: all-zero is a valid `stat`.
    let mut status: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `status` is writable.
    (unsafe { libc::fstat(fd, &mut status) } == 0).then_some(status.st_ino)
}

/// Whether `fd` is (still) the shim's.
pub(crate) fn holds(fd: c_int) -> bool {
    fd >= 0 && any() && OWN.iter().any(|slot| slot.load(Ordering::Acquire) == fd)
}

fn any() -> bool {
    TAKEN.load(Ordering::Acquire) > 0
}

/// Takes `fd` off the table: the shim closes it, or the program has taken the number.
/// Whether it was there.
pub(crate) fn release(fd: c_int) -> bool {
    let released = fd >= 0 && any() && OWN.iter().any(|slot| take_slot(slot, fd, -1));
    if released {
        TAKEN.fetch_sub(1, Ordering::AcqRel);
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
            TAKEN.fetch_sub(1, Ordering::AcqRel);
            released(fd);
        }
    }
}
