//! The candidate pools of a best-first search.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::graph::Cand;

/// What a best-first search over estimates asks of its candidates: the
/// bound an estimate must beat, where a candidate goes, which node to
/// expand next.
pub(crate) trait Beam {
    /// Whether some nodes pushed may not be results (deleted ones): a
    /// search then says of each push whether it is one.
    const MIXED: bool;

    /// An empty pool that keeps `ef` results.
    fn with_ef(ef: usize) -> Self;

    /// The estimate a candidate must beat to be kept (infinite until `ef`
    /// results are kept).
    fn bound(&self) -> f32;

    /// Whether `ef` results are kept (then [`Beam::bound`] bounds).
    fn full(&self) -> bool;

    /// Whether an estimate would be kept.
    #[inline(always)]
    fn admits(&self, est: f32) -> bool {
        est < self.bound()
    }

    /// Adds a node to expand, a result only if `live`.
    fn offer(&mut self, cand: Cand, live: bool);

    /// The nearest node left to expand (now expanded), or `None` when no
    /// kept one is left.
    fn pop(&mut self) -> Option<u32>;

    /// Nodes [`Beam::pop`] is likely to return next, nearest first (to load
    /// ahead).
    fn upcoming(&self) -> impl Iterator<Item = u32> + '_;
}

/// The `ef` best distances (or estimates) a search has seen, nearest first, each marked
/// once expanded (a sorted array, as glass's linear pool): the last is the
/// bound a neighbour must beat, and the next node to expand is the first
/// not expanded. With `ef` in the tens an insertion's shift costs less than
/// the sift-ups of a heap of the best and a heap of the nodes to expand.
/// Every node pushed is a result: a search among deleted nodes uses
/// [`LivePool`].
pub(crate) struct Pool {
    items: Vec<PoolItem>,
    ef: usize,
    /// No item before it is left to expand.
    cursor: usize,
}

#[derive(Clone, Copy)]
struct PoolItem {
    dist: f32,
    slot: u32,
    expanded: bool,
}

impl Pool {
    pub(crate) fn new(ef: usize) -> Self {
        Pool {
            items: Vec::with_capacity(ef + 1),
            ef,
            cursor: 0,
        }
    }

    /// Whether the pool holds `ef` estimates (then [`Pool::bound`] bounds).
    #[inline(always)]
    pub(crate) fn full(&self) -> bool {
        self.items.len() >= self.ef
    }

    /// The worst estimate kept (infinite until the pool is full).
    #[inline(always)]
    pub(crate) fn bound(&self) -> f32 {
        match self.full() {
            true => self.items[self.items.len() - 1].dist,
            false => f32::INFINITY,
        }
    }

    /// Whether an estimate would enter the best `ef`.
    #[inline(always)]
    pub(crate) fn admits(&self, est: f32) -> bool {
        est < self.bound()
    }

    /// Adds a node to expand, dropping the worst estimate past `ef`.
    #[inline(always)]
    pub(crate) fn push(&mut self, cand: Cand) {
        let at = self.items.partition_point(|x| x.dist <= cand.dist);
        if at >= self.ef {
            return;
        }
        if self.items.len() == self.ef {
            self.items.pop();
        }
        self.items.insert(
            at,
            PoolItem {
                dist: cand.dist,
                slot: cand.slot,
                expanded: false,
            },
        );
        self.cursor = self.cursor.min(at);
    }

    /// The nearest node not expanded yet, now marked expanded.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<u32> {
        while let Some(item) = self.items.get_mut(self.cursor) {
            self.cursor += 1;
            if !item.expanded {
                item.expanded = true;
                return Some(item.slot);
            }
        }
        None
    }

    /// The kept candidates, nearest first.
    pub(crate) fn into_sorted(self) -> Vec<Cand> {
        self.items
            .into_iter()
            .map(|i| Cand {
                dist: i.dist,
                slot: i.slot,
            })
            .collect()
    }

    /// The next nodes [`Pool::pop`] would return, nearest first.
    #[inline(always)]
    pub(crate) fn upcoming(&self) -> impl Iterator<Item = u32> + '_ {
        self.items[self.cursor.min(self.items.len())..]
            .iter()
            .filter(|x| !x.expanded)
            .map(|x| x.slot)
    }
}

impl Beam for Pool {
    const MIXED: bool = false;

    #[inline(always)]
    fn with_ef(ef: usize) -> Self {
        Pool::new(ef)
    }

    #[inline(always)]
    fn bound(&self) -> f32 {
        Pool::bound(self)
    }

    #[inline(always)]
    fn full(&self) -> bool {
        Pool::full(self)
    }

    #[inline(always)]
    fn offer(&mut self, cand: Cand, live: bool) {
        debug_assert!(live, "a Pool holds results only");
        self.push(cand);
    }

    #[inline(always)]
    fn pop(&mut self) -> Option<u32> {
        Pool::pop(self)
    }

    #[inline(always)]
    fn upcoming(&self) -> impl Iterator<Item = u32> + '_ {
        Pool::upcoming(self)
    }
}

/// The pool of a search among nodes that are not all results (deleted
/// ones): those are expanded, as deleted nodes still route, but only live
/// nodes count towards `ef` (hnswlib's rule), so a region of deleted nodes
/// cannot crowd the live ones out of the results. Until `ef` live nodes
/// are found every node pushed has to be kept, which among many deleted
/// nodes is thousands: so a heap of the nodes to expand and a heap of the
/// best `ef` live ones, as hnswlib keeps them, instead of [`Pool`]'s
/// sorted array that every push shifts. A node to expand past the bound is
/// dropped when it comes up.
pub(crate) struct LivePool {
    ef: usize,
    /// Nodes to expand, nearest on top.
    todo: BinaryHeap<Reverse<Cand>>,
    /// The best `ef` live estimates, worst on top.
    best: BinaryHeap<Cand>,
}

impl Beam for LivePool {
    const MIXED: bool = true;

    fn with_ef(ef: usize) -> Self {
        LivePool {
            ef,
            todo: BinaryHeap::with_capacity(4 * ef + 64),
            best: BinaryHeap::with_capacity(ef + 1),
        }
    }

    #[inline]
    fn bound(&self) -> f32 {
        match self.best.peek() {
            Some(worst) if self.full() => worst.dist,
            _ => f32::INFINITY,
        }
    }

    #[inline]
    fn full(&self) -> bool {
        self.best.len() >= self.ef
    }

    #[inline]
    fn offer(&mut self, cand: Cand, live: bool) {
        if live {
            self.best.push(cand);
            if self.best.len() > self.ef {
                self.best.pop();
            }
        }
        self.todo.push(Reverse(cand));
    }

    #[inline]
    fn pop(&mut self) -> Option<u32> {
        let Reverse(c) = self.todo.pop()?;
        // The nearest left is past the `ef`-th live estimate: so is every
        // other.
        if c.dist > self.bound() {
            self.todo.clear();
            return None;
        }
        Some(c.slot)
    }

    #[inline]
    fn upcoming(&self) -> impl Iterator<Item = u32> + '_ {
        // The top of the heap, then the nearer of its two children.
        let heap = self.todo.as_slice();
        let second = match (heap.get(1), heap.get(2)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        heap.first().into_iter().chain(second).map(|r| r.0.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An xorshift generator started at `x`.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// The pool keeps the `ef` best estimates pushed, nearest first, and
    /// hands out the nearest one not expanded yet, against a plain model:
    /// every push kept, sorted on demand.
    #[test]
    fn the_pool_expands_the_nearest_of_the_best_ef() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for ef in [1usize, 2, 5, 24] {
            let mut pool = Pool::new(ef);
            // (dist, slot, expanded) of every push.
            let mut model: Vec<(f32, u32, bool)> = Vec::new();
            for step in 0..3000u32 {
                if next().is_multiple_of(3) {
                    let got = pool.pop();
                    // The model's best `ef` (ties keep the earlier push first).
                    let mut best = model.clone();
                    best.sort_by(|a, b| a.0.total_cmp(&b.0));
                    best.truncate(ef);
                    let want = best.iter().find(|m| !m.2).map(|m| m.1);
                    assert_eq!(got, want, "ef {ef}, step {step}");
                    if let Some(slot) = got {
                        model.iter_mut().find(|m| m.1 == slot).unwrap().2 = true;
                    }
                } else {
                    // Distances rounded to f32 tie now and then: both the
                    // pool and the model keep the earlier push first.
                    let dist = (next() % 1_000_000) as f32 + step as f32 * 1e-3;
                    let bound = pool.bound();
                    assert_eq!(pool.admits(dist), dist < bound);
                    pool.push(Cand { dist, slot: step });
                    model.push((dist, step, false));
                    let mut best = model.clone();
                    best.sort_by(|a, b| a.0.total_cmp(&b.0));
                    best.truncate(ef);
                    let kept: Vec<u32> = pool.items.iter().map(|i| i.slot).collect();
                    let want: Vec<u32> = best.iter().map(|m| m.1).collect();
                    assert_eq!(kept, want, "ef {ef}, step {step}");
                    assert_eq!(pool.full(), model.len() >= ef);
                }
            }
        }
    }

    /// A [`LivePool`] expands the nearest pushed node not expanded yet
    /// among those up to and including the `ef`-th live one by distance,
    /// and bounds by that one's distance, against a model that keeps every
    /// push and sorts on demand.
    #[test]
    fn only_live_items_count_towards_ef() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        // (dist, slot, live, expanded) of every push, nearest first, cut
        // after the `ef`-th live one.
        let cut = |model: &[(f32, u32, bool, bool)], ef: usize| -> Vec<(f32, u32, bool, bool)> {
            let mut sorted = model.to_vec();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut live = 0;
            let end = sorted
                .iter()
                .position(|m| {
                    live += usize::from(m.2);
                    live == ef
                })
                .map_or(sorted.len(), |i| i + 1);
            sorted.truncate(end);
            sorted
        };
        for ef in [1usize, 2, 5, 24] {
            // One pool mostly live, one mostly not, one with 1 in 50 live.
            for live_in in [5u64, 3, 1, 0] {
                let mut pool = LivePool::with_ef(ef);
                let mut model: Vec<(f32, u32, bool, bool)> = Vec::new();
                for step in 0..3000u32 {
                    if next().is_multiple_of(3) {
                        let got = pool.pop();
                        let want = cut(&model, ef).iter().find(|m| !m.3).map(|m| m.1);
                        assert_eq!(got, want, "ef {ef}, step {step}");
                        if let Some(slot) = got {
                            model.iter_mut().find(|m| m.1 == slot).unwrap().3 = true;
                        }
                    } else {
                        // Distinct distances, exact in f32 (below 2^24).
                        let dist = (((next() % 4096) << 12) | u64::from(step)) as f32;
                        let live = match live_in {
                            0 => next().is_multiple_of(50),
                            n => next() % 5 < n,
                        };
                        let bound = pool.bound();
                        let want = cut(&model, ef);
                        let live_kept = want.iter().filter(|m| m.2).count();
                        assert_eq!(pool.full(), live_kept >= ef);
                        match pool.full() {
                            true => assert_eq!(bound, want.last().unwrap().0),
                            false => assert_eq!(bound, f32::INFINITY),
                        }
                        assert_eq!(pool.admits(dist), dist < bound);
                        // A search pushes only what the pool admits.
                        if pool.admits(dist) {
                            pool.offer(Cand { dist, slot: step }, live);
                            model.push((dist, step, live, false));
                        }
                    }
                }
            }
        }
    }

    /// `upcoming` names the node `pop` returns next, then another left to
    /// expand.
    #[test]
    fn a_live_pool_names_what_comes_next() {
        let mut next = xorshift(0x6a09_e667_f3bc_c909);
        let mut pool = LivePool::with_ef(8);
        for step in 0..500u32 {
            let dist = (((next() % 4096) << 12) | u64::from(step)) as f32;
            if pool.admits(dist) {
                pool.offer(Cand { dist, slot: step }, next().is_multiple_of(4));
            }
            if next().is_multiple_of(3) {
                let ahead: Vec<u32> = pool.upcoming().collect();
                let left: Vec<u32> = pool.todo.iter().map(|r| r.0.slot).collect();
                assert!(ahead.iter().all(|s| left.contains(s)));
                assert_eq!(ahead.len(), left.len().min(2));
                let got = pool.pop();
                if got.is_some() {
                    assert_eq!(got, ahead.first().copied());
                }
            }
        }
    }
}
