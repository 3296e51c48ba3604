//! The shim's shared state, safe under `fork` and signals.
//!
//! The hooks run in programs nobody here wrote: one thread may `fork` while another holds a
//! lock, and a signal handler may call `close` on the very thread that holds one. So:
//!
//! - every lock is held with all signals blocked on its thread, so no handler runs (and
//!   re-enters a hook) while it is held;
//! - a `pthread_atfork` handler takes every lock before `fork` and lets them go after it, in
//!   the parent and in the child: the child never starts with a lock a thread it does not
//!   have was holding, nor with state half updated.
//!
//! The locks are spin locks over an atomic flag (the sections are a few map operations, and
//! std's `Mutex` cannot be held across the two halves of `fork`); no I/O happens under one.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// A value behind a fork- and signal-safe lock.
pub(crate) struct Guarded<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through `with`, which holds the lock: one thread at a
// time, so `T: Send` suffices.
unsafe impl<T: Send> Sync for Guarded<T> {}

impl<T: Send> Guarded<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `action` on the value, the lock held and this thread's signals blocked.
    pub(crate) fn with<R>(&self, action: impl FnOnce(&mut T) -> R) -> R {
        let _blocked = SignalsBlocked::new();
        self.lock();
        let _unlock = Unlock(&self.locked);
        // SAFETY: the lock is held (released by `_unlock`, also on unwinding): no other
        // reference to the value exists meanwhile.
        action(unsafe { &mut *self.value.get() })
    }
}

/// What `fork` needs of a lock: to take it before, and to let it go after.
pub(crate) trait ForkLock: Sync {
    fn lock(&self);
    fn unlock(&self);
}

impl<T: Send> ForkLock for Guarded<T> {
    fn lock(&self) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }

    fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

struct Unlock<'a>(&'a AtomicBool);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Every signal blocked on this thread until dropped (the mask it had is put back).
struct SignalsBlocked(libc::sigset_t);

impl SignalsBlocked {
    fn new() -> Self {
        // SAFETY: sigfillset and pthread_sigmask fill and read valid sigset_t values.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut before: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut before);
            Self(before)
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: puts back the mask `new` read.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
