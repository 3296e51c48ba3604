//! Which descriptors a table of the shim's holds, readable without its lock.
//!
//! Every `send`, `recv`, `read`, `write` and `close` of the program asks "is this one
//! redirected?". Taking a lock for the answer costs two `sigprocmask` calls (see `lock`),
//! so each table keeps a bitmap beside it: a clear bit answers "no" with one atomic load,
//! and only a set bit takes the lock. A bit is set once per entry by whoever put the entry
//! there, and cleared by whoever took it out (under the table's lock, or for the own
//! table, by the compare-exchange that won the slot).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use libc::c_int;

/// Descriptors below this (the kernel's default nr_open) have a bit; those above share one
/// count. 128 KiB of zeroed memory, touched only where descriptors are followed.
const LIMIT: usize = 1 << 20;
const WORDS: usize = LIMIT / 64;

pub(crate) struct Marks {
    bits: [AtomicU64; WORDS],
    /// How many marked descriptors are at or above `LIMIT`.
    beyond: AtomicUsize,
    /// How many are marked in all.
    total: AtomicUsize,
}

impl Marks {
    pub(crate) const fn new() -> Self {
        Self {
            bits: [const { AtomicU64::new(0) }; WORDS],
            beyond: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        }
    }

    /// `fd` entered the table (once per entry, by whoever put it there).
    pub(crate) fn mark(&self, fd: c_int) {
        match Self::bit(fd) {
            Some((word, bit)) => {
                self.bits[word].fetch_or(bit, Ordering::Release);
            }
            None => {
                self.beyond.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// `fd` left the table (once per entry that was marked, by whoever took it out).
    pub(crate) fn unmark(&self, fd: c_int) {
        match Self::bit(fd) {
            Some((word, bit)) => {
                self.bits[word].fetch_and(!bit, Ordering::Release);
            }
            None => {
                self.beyond.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether the table may hold `fd`: `false` is certain (as of this instant), `true`
    /// means "ask the table".
    pub(crate) fn may_hold(&self, fd: c_int) -> bool {
        match Self::bit(fd) {
            Some((word, bit)) => self.bits[word].load(Ordering::Acquire) & bit != 0,
            None => fd >= 0 && self.beyond.load(Ordering::Relaxed) > 0,
        }
    }

    /// Whether the table holds anything.
    pub(crate) fn any(&self) -> bool {
        self.total.load(Ordering::Relaxed) > 0
    }

    /// `fd`'s word and bit, for a descriptor below `LIMIT`.
    fn bit(fd: c_int) -> Option<(usize, u64)> {
        let fd = usize::try_from(fd).ok().filter(|fd| *fd < LIMIT)?;
        Some((fd / 64, 1 << (fd % 64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_answer_for_each_descriptor_and_above_the_bitmap() {
        let marks = Marks::new();
        assert!(!marks.any() && !marks.may_hold(5) && !marks.may_hold(-1));
        marks.mark(5);
        marks.mark(2_000_000);
        assert!(marks.may_hold(5) && !marks.may_hold(6) && !marks.may_hold(69));
        // Above the bitmap, every descriptor may be held while one is.
        assert!(marks.may_hold(2_000_000) && marks.may_hold(3_000_000) && !marks.may_hold(-1));
        marks.unmark(2_000_000);
        assert!(!marks.may_hold(3_000_000) && marks.any());
        marks.unmark(5);
        assert!(!marks.any() && !marks.may_hold(5));
    }
}
