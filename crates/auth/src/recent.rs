//! A map of bounded size that forgets the entry seen least recently when it is full.
//!
//! The throttle keys it by client-controlled values (user names, source addresses), so
//! its size must be bounded whatever clients send, and a full table must still track the
//! newcomer: a flood of junk keys then pushes out only keys nobody has used for longer.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

#[derive(Debug)]
pub(crate) struct Recent<K, V> {
    entries: HashMap<K, (V, u64)>,
    /// The entries' keys by when they were last seen (a counter, never repeated).
    by_age: BTreeMap<u64, K>,
    next_stamp: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            next_stamp: 0,
            capacity: capacity.max(1),
        }
    }

    /// The entry for `key`, made with `make` (after forgetting the oldest entry, when
    /// full) if there is none; either way it becomes the most recently seen.
    pub(crate) fn touch(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            if let Some((_, oldest)) = self.by_age.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        let entry = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| (make(), stamp));
        if entry.1 != stamp {
            self.by_age.remove(&entry.1);
            entry.1 = stamp;
        }
        self.by_age.insert(stamp, key.clone());
        &mut entry.0
    }

    /// The entry for `key`, if it is still tracked (without making it more recent).
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn a_full_map_forgets_the_least_recently_seen_and_keeps_the_newcomer() {
        let mut recent = Recent::new(3);
        for key in ["a", "b", "c"] {
            *recent.touch(&key, || 0) += 1;
        }
        // "a" is seen again, so "b" is now the oldest.
        *recent.touch(&"a", || 0) += 1;
        *recent.touch(&"d", || 0) += 1;
        assert_eq!(recent.len(), 3);
        assert!(recent.get_mut(&"b").is_none());
        assert_eq!(recent.get_mut(&"a").copied(), Some(2));
        assert_eq!(recent.get_mut(&"d").copied(), Some(1));
    }

    #[test]
    fn a_flood_of_new_keys_never_grows_the_map() {
        let mut recent = Recent::new(100);
        for key in 0..10_000u32 {
            recent.touch(&key, || ());
        }
        assert_eq!(recent.len(), 100);
        assert!(recent.get_mut(&9_999).is_some());
        assert!(recent.get_mut(&0).is_none());
    }
}
