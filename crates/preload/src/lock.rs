//! The shim's shared state, safe under `fork` and signals.
//!
//! The hooks run in programs nobody here wrote: one thread may `fork` while another holds a
//! lock, and a signal handler may call `close` on the very thread that holds one. So:
//!
//! - every lock is held with all signals blocked on its thread, so no handler runs (and
//!   re-enters a hook) while it is held;
//! - a `pthread_atfork` handler blocks the forking thread's signals and takes every lock
//!   before `fork`, and lets them go (and the signals) after it, in the parent and in the
//!   child: the child never starts with a lock a thread it does not have was holding, nor
//!   with state half updated. Meanwhile a hook on the forking thread itself (another
//!   library's fork handler closing a file) goes ahead: that thread holds every lock.
//!
//! The locks are spin locks over an atomic flag (the sections are a few map operations, and
//! std's `Mutex` cannot be held across the two halves of `fork`); no I/O happens under one.

use std::cell::{Cell, UnsafeCell};
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

    /// Runs `action` on the value, the lock held and this thread's signals blocked. On the
    /// thread that is forking (it holds every lock already, see [`hold_all`]), at once: a
    /// hook called by another library's fork handler must not wait for itself.
    pub(crate) fn with<R>(&self, action: impl FnOnce(&mut T) -> R) -> R {
        if FORKING.with(Cell::get) {
            // SAFETY: this thread holds every lock (taken by `hold_all`): nobody else can
            // reach the value until `release_all`.
            return action(unsafe { &mut *self.value.get() });
        }
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

thread_local! {
    /// Whether this thread holds every lock for a `fork` under way.
    static FORKING: Cell<bool> = const { Cell::new(false) };
}

/// The signal mask the forking thread had, while [`hold_all`] has them all blocked.
struct SavedMask(UnsafeCell<Option<libc::sigset_t>>);

// SAFETY: written by `hold_all` and read by `release_all`, both on the forking thread while
// it holds every lock: never two threads at once.
unsafe impl Sync for SavedMask {}

static SAVED_MASK: SavedMask = SavedMask(UnsafeCell::new(None));

/// Before `fork`: blocks this thread's signals (no handler may run while the locks are
/// held, for the whole `fork`), then takes every lock.
pub(crate) fn hold_all(locks: &[&dyn ForkLock]) {
    // SAFETY: sigfillset and pthread_sigmask fill and read valid sigset_t values.
    let before = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut before);
        before
    };
    for lock in locks {
        lock.lock();
    }
    // SAFETY: every lock is held by this thread (see `SavedMask`).
    unsafe { *SAVED_MASK.0.get() = Some(before) };
    FORKING.with(|forking| forking.set(true));
}

/// After `fork`, in the parent and in the child: lets every lock go and puts the signal
/// mask back.
pub(crate) fn release_all(locks: &[&dyn ForkLock]) {
    FORKING.with(|forking| forking.set(false));
    // SAFETY: every lock is still held by this thread (see `SavedMask`).
    let before = unsafe { (*SAVED_MASK.0.get()).take() };
    for lock in locks.iter().rev() {
        lock.unlock();
    }
    if let Some(before) = before {
        // SAFETY: puts back the mask `hold_all` read.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
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

/// The process the shim's state belongs to: set when the library loads and in a child after
/// `fork`. A `vfork` child (CPython's `subprocess`, `posix_spawn`) shares the parent's
/// memory but not its descriptors: what it closes must not change the parent's state.
static OWNER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Records this process as the state's owner (at load, and in a `fork` child).
pub(crate) fn own_process() {
    // SAFETY: getpid has no preconditions.
    OWNER.store(unsafe { libc::getpid() }, Ordering::Relaxed);
}

/// Whether this process owns the shim's state (`false` in a `vfork` child).
pub(crate) fn in_own_process() -> bool {
    // SAFETY: getpid has no preconditions.
    OWNER.load(Ordering::Relaxed) == unsafe { libc::getpid() }
}
