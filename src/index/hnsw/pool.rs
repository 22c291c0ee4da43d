//! The candidate pool of a best-first search.

use super::graph::Cand;

/// The `ef` best distances (or estimates) a search has seen, nearest first, each marked
/// once expanded (a sorted array, as glass's linear pool): the last is the
/// bound a neighbour must beat, and the next node to expand is the first
/// not expanded. With `ef` in the tens an insertion's shift costs less than
/// the sift-ups of a heap of the best and a heap of the nodes to expand.
///
/// A search of an index with deleted nodes pushes them with
/// [`Pool::push_flagged`]: they are expanded (deleted nodes still route)
/// but only live items count towards `ef` (hnswlib's rule), so a region of
/// deleted nodes cannot crowd the live ones out of the pool.
pub(crate) struct Pool {
    items: Vec<PoolItem>,
    ef: usize,
    /// No item before it is left to expand.
    cursor: usize,
    /// Items that are results (all of them unless `push_flagged` added
    /// others).
    live: usize,
}

#[derive(Clone, Copy)]
struct PoolItem {
    dist: f32,
    slot: u32,
    expanded: bool,
    live: bool,
}

impl Pool {
    pub(crate) fn new(ef: usize) -> Self {
        Pool {
            items: Vec::with_capacity(ef + 1),
            ef,
            cursor: 0,
            live: 0,
        }
    }

    /// Whether the pool holds `ef` live estimates (then [`Pool::bound`]
    /// bounds).
    #[inline(always)]
    pub(crate) fn full(&self) -> bool {
        self.live >= self.ef
    }

    /// The worst estimate kept (infinite until the pool is full; the last
    /// item of a full pool is live).
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

    /// Adds a live node to expand, dropping the worst estimate past `ef`.
    /// Not for a pool [`Pool::push_flagged`] has added to.
    #[inline(always)]
    pub(crate) fn push(&mut self, cand: Cand) {
        debug_assert_eq!(self.live, self.items.len());
        let at = self.items.partition_point(|x| x.dist <= cand.dist);
        if at >= self.ef {
            return;
        }
        if self.items.len() == self.ef {
            self.items.pop();
        } else {
            self.live += 1;
        }
        self.items.insert(
            at,
            PoolItem {
                dist: cand.dist,
                slot: cand.slot,
                expanded: false,
                live: true,
            },
        );
        self.cursor = self.cursor.min(at);
    }

    /// Adds a node to expand that is a result only if `live`. Once `ef`
    /// live items are kept, nothing past the `ef`-th live one is: a live
    /// push drops the worst live item (if `ef` are kept already) and every
    /// non-live item after the new `ef`-th.
    #[inline]
    pub(crate) fn push_flagged(&mut self, cand: Cand, live: bool) {
        let at = self.items.partition_point(|x| x.dist <= cand.dist);
        if self.full() && at == self.items.len() {
            return;
        }
        self.items.insert(
            at,
            PoolItem {
                dist: cand.dist,
                slot: cand.slot,
                expanded: false,
                live,
            },
        );
        self.live += usize::from(live);
        if self.live > self.ef {
            while let Some(x) = self.items.pop() {
                if x.live {
                    self.live -= 1;
                    break;
                }
            }
        }
        if self.live >= self.ef {
            while self.items.last().is_some_and(|x| !x.live) {
                self.items.pop();
            }
        }
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

    /// Pushed with `push_flagged`, only live items count towards `ef`: the
    /// pool holds every push up to and including the `ef`-th live one by
    /// distance, against the same kind of model.
    #[test]
    fn only_live_items_count_towards_ef() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        // (dist, slot, live, expanded) of every push, nearest first; a push
        // goes after earlier ones of the same distance, as in the pool.
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
            // One pool mostly live, one mostly not.
            for dead_in in [4u64, 2, 1] {
                let mut pool = Pool::new(ef);
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
                        let dist = (next() % 1_000_000) as f32 + step as f32 * 1e-3;
                        let live = next() % 5 >= dead_in;
                        let bound = pool.bound();
                        assert_eq!(pool.admits(dist), dist < bound);
                        pool.push_flagged(Cand { dist, slot: step }, live);
                        model.push((dist, step, live, false));
                        let want = cut(&model, ef);
                        let kept: Vec<u32> = pool.items.iter().map(|i| i.slot).collect();
                        let want_slots: Vec<u32> = want.iter().map(|m| m.1).collect();
                        assert_eq!(kept, want_slots, "ef {ef}, step {step}");
                        let live_kept = want.iter().filter(|m| m.2).count();
                        assert_eq!(pool.full(), live_kept >= ef);
                        if pool.full() {
                            assert_eq!(pool.bound(), want.last().unwrap().0);
                        }
                    }
                }
            }
        }
    }
}
