//! Epoch-tagged visited sets, pooled so a query never clears memory.

use parking_lot::Mutex;

/// Marks which slots a search has seen. Instead of clearing, each search
/// bumps the epoch; a slot is visited when its tag equals the epoch. The
/// tags are cleared only when the 16-bit epoch wraps (once per 65,535 searches).
pub(crate) struct VisitedSet {
    tags: Vec<u16>,
    epoch: u16,
}

impl VisitedSet {
    fn new(n: usize) -> Self {
        VisitedSet {
            tags: vec![0; n],
            epoch: 0,
        }
    }

    /// Starts a new search over `n` slots.
    fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `slot`; returns whether it was already marked.
    #[inline(always)]
    pub(crate) fn check_and_mark(&mut self, slot: u32) -> bool {
        let t = &mut self.tags[slot as usize];
        let seen = *t == self.epoch;
        *t = self.epoch;
        seen
    }
}

/// A pool of visited sets shared by all searches of one index.
#[derive(Default)]
pub(crate) struct VisitedPool {
    free: Mutex<Vec<VisitedSet>>,
}

impl VisitedPool {
    /// A set ready for a search over `n` slots.
    pub(crate) fn get(&self, n: usize) -> PooledVisited<'_> {
        let mut set = self.free.lock().pop().unwrap_or_else(|| VisitedSet::new(n));
        set.reset(n);
        PooledVisited {
            pool: self,
            set: Some(set),
        }
    }
}

/// A visited set on loan; returns to the pool when dropped.
pub(crate) struct PooledVisited<'a> {
    pool: &'a VisitedPool,
    set: Option<VisitedSet>,
}

impl std::ops::Deref for PooledVisited<'_> {
    type Target = VisitedSet;
    fn deref(&self) -> &VisitedSet {
        self.set.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for PooledVisited<'_> {
    fn deref_mut(&mut self) -> &mut VisitedSet {
        self.set.as_mut().expect("present until drop")
    }
}

impl Drop for PooledVisited<'_> {
    fn drop(&mut self) {
        if let Some(set) = self.set.take() {
            self.pool.free.lock().push(set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_isolate_searches_and_survive_wrap() {
        let pool = VisitedPool::default();
        for round in 0..70_000u32 {
            let mut v = pool.get(8);
            assert!(!v.check_and_mark(round % 8), "round {round}");
            assert!(v.check_and_mark(round % 8));
        }
    }
}
