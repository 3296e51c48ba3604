//! The descriptors the shim opened for itself (the control connections of UDP
//! associations), kept apart from the program's.
//!
//! A daemon may close every descriptor from 3 up, or `dup2` over one: then the number is
//! the program's, and the shim must never close or use it again. The registry is a fixed
//! table of atomics, so the `close` hook can ask "is this ours?" without a lock (and so from
//! a signal handler, or in a child right after `fork`).

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use libc::c_int;

/// At most this many of the shim's own descriptors at once (one per UDP association).
const SLOTS: usize = 256;

static OWN: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// How many slots are taken: while none is, `close` asks nothing of the table.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// Registers `fd` as the shim's; `false` when the table is full.
pub(crate) fn adopt(fd: c_int) -> bool {
    // Counted first, so that no moment has a slot taken and the count saying none.
    TAKEN.fetch_add(1, Ordering::AcqRel);
    let adopted = OWN.iter().any(|slot| take_slot(slot, -1, fd));
    if !adopted {
        TAKEN.fetch_sub(1, Ordering::AcqRel);
    }
    adopted
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
