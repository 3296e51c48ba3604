//! A session's byte counts, and the word to stop it: read by the relay and the association
//! that count, by the access record that reports them, and by the session table that lists
//! them. A leaf: it names no other module of the server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Bytes moved each way, counted as they move so an error does not lose them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Client to target.
    pub(crate) up: AtomicU64,
    /// Target to client.
    pub(crate) down: AtomicU64,
}

impl Counters {
    /// Counts `bytes` sent by the client.
    pub(crate) fn add_up(&self, bytes: usize) {
        self.up.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts `bytes` sent to the client.
    pub(crate) fn add_down(&self, bytes: usize) {
        self.down.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Both ways together.
    pub(crate) fn total(&self) -> u64 {
        self.up.load(Ordering::Relaxed) + self.down.load(Ordering::Relaxed)
    }
}

/// The counts of a session listed in the session table, shared by the session and the
/// table, with the table's word to stop.
#[derive(Debug, Default)]
pub(crate) struct SharedCounters {
    pub(crate) counters: Counters,
    halted: AtomicBool,
    /// The relay's task, woken when the session is halted: an idle relay would otherwise
    /// notice only at its next byte.
    waker: Mutex<Option<Waker>>,
}

impl SharedCounters {
    /// Tells the session to stop, and wakes its relay.
    pub(crate) fn halt(&self) {
        self.halted.store(true, Ordering::Relaxed);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the session was told to stop; `task` is remembered first, to be woken when
    /// it is told (registered before the flag is read, so that no halt falls between the
    /// two unseen).
    fn halted(&self, task: &Context<'_>) -> bool {
        let mut waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if !waker
            .as_ref()
            .is_some_and(|known| known.will_wake(task.waker()))
        {
            *waker = Some(task.waker().clone());
        }
        drop(waker);
        self.halted.load(Ordering::Relaxed)
    }
}

/// Where a session's byte counts live: its own, or, once it is listed in the session table,
/// shared with it (behind an `Arc`: most servers list nothing, and their sessions stay
/// small).
#[derive(Debug)]
pub(crate) enum Tally {
    Own(Counters),
    Shared(Arc<SharedCounters>),
}

impl Tally {
    /// Whether the session was told to stop (its user is over the fleet's quota); never,
    /// for one that is not listed.
    pub(crate) fn halted(&self, task: &Context<'_>) -> bool {
        match self {
            Self::Own(_) => false,
            Self::Shared(shared) => shared.halted(task),
        }
    }

    /// Ready once the session is told to stop.
    pub(crate) fn halt_requested(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|task| {
            if self.halted(task) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// From now on the counts are shared: what was counted so far is carried over, and the
    /// shared counts are returned for the table.
    pub(crate) fn share(&mut self) -> Arc<SharedCounters> {
        if let Self::Shared(shared) = self {
            return shared.clone();
        }
        let shared = Arc::new(SharedCounters::default());
        shared
            .counters
            .add_up(self.up.load(Ordering::Relaxed) as usize);
        shared
            .counters
            .add_down(self.down.load(Ordering::Relaxed) as usize);
        *self = Self::Shared(shared.clone());
        shared
    }
}

impl Default for Tally {
    fn default() -> Self {
        Self::Own(Counters::default())
    }
}

impl std::ops::Deref for Tally {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        match self {
            Self::Own(counters) => counters,
            Self::Shared(shared) => &shared.counters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_carries_the_counts_so_far_over() {
        let mut tally = Tally::default();
        tally.add_up(3);
        tally.add_down(4);
        let shared = tally.share();
        tally.add_up(10);
        assert_eq!(shared.counters.up.load(Ordering::Relaxed), 13);
        assert_eq!(shared.counters.down.load(Ordering::Relaxed), 4);
        assert!(Arc::ptr_eq(&shared, &tally.share()));
    }
}
