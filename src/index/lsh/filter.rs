//! Filters applied, in order, to an engine's candidates.

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash};

use super::quickhash::QuickState;
use crate::kernels::prefetch::prefetch_read;

/// Largest `n` for which [`Filter::Nearest`] keeps a sorted list of the best
/// `n` while scanning, rather than selecting among all candidates.
pub(crate) const SCAN_TOP_MAX: usize = 64;

use serde::{Deserialize, Serialize};

/// One step of an engine's filter chain (NearPy's vector filters). The chain
/// runs in the order given; each step sees what the previous one kept.
///
/// Candidates reach the chain in fetch order (hash by hash, bucket by
/// bucket); every step keeps the relative order of what it keeps, except
/// `Nearest`, which sorts by distance (ties in fetch order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// Keep the `n` candidates with the smallest distance, nearest first
    /// (NearPy's `NearestFilter`). Needs a distance.
    Nearest(usize),
    /// Keep candidates whose distance is strictly below the threshold
    /// (NearPy's `DistanceThresholdFilter`). Needs a distance.
    DistanceThreshold(f32),
    /// Keep the first candidate for each payload (NearPy's `UniqueFilter`):
    /// with several hashes the same stored vector comes back once per hash.
    Unique,
}

impl Filter {
    /// Whether the step ranks or cuts by distance.
    pub fn needs_distance(&self) -> bool {
        matches!(self, Filter::Nearest(_) | Filter::DistanceThreshold(_))
    }

    /// Applies the step to `order` (positions into the candidate list).
    /// `distance(i)` and `data(i)` read candidate `i`; `table` is scratch
    /// space, reused across calls so a query allocates nothing here.
    pub(crate) fn apply<'a, D: Eq + Hash + 'a>(
        &self,
        order: &mut Vec<u32>,
        distance: impl Fn(u32) -> f32,
        data: impl Fn(u32) -> &'a D,
        table: &mut Vec<u32>,
    ) {
        match *self {
            Filter::Nearest(n) => {
                let cmp = |a: &u32, b: &u32| distance(*a).total_cmp(&distance(*b)).then(a.cmp(b));
                if order.len() > n {
                    if n == 0 {
                        order.clear();
                        return;
                    }
                    if n <= SCAN_TOP_MAX && order.len() >= 2 * n {
                        // One pass keeping the n best in a sorted list: a
                        // candidate no better than the n-th costs one
                        // comparison, against a selection's partitioning
                        // passes over every candidate.
                        table.clear();
                        for &i in order.iter() {
                            if table.len() == n {
                                if cmp(&i, &table[n - 1]) != Ordering::Less {
                                    continue;
                                }
                                table.pop();
                            }
                            let at = table.partition_point(|j| cmp(j, &i) == Ordering::Less);
                            table.insert(at, i);
                        }
                        order.clear();
                        order.extend_from_slice(table);
                        return;
                    }
                    order.select_nth_unstable_by(n - 1, cmp);
                    order.truncate(n);
                }
                order.sort_unstable_by(cmp);
            }
            Filter::DistanceThreshold(t) => order.retain(|&i| distance(i) < t),
            Filter::Unique => {
                let mut seen = UniqueSet::new(table, order.len());
                // Payloads sit wherever their entries were stored: each is
                // requested `AHEAD` candidates before it is hashed, so the
                // misses overlap.
                const AHEAD: usize = 8;
                let mut kept = 0;
                for k in 0..order.len() {
                    if let Some(&next) = order.get(k + AHEAD) {
                        prefetch_read((data(next) as *const D).cast());
                    }
                    let i = order[k];
                    if seen.first(i, &data) {
                        order[kept] = i;
                        kept += 1;
                    }
                }
                order.truncate(kept);
            }
        }
    }
}

/// The set behind [`Filter::Unique`]: which payloads the candidates seen so
/// far carry. An open-addressing table of candidate positions (linear
/// probing, at most half full), in scratch space cleared per query. Each
/// slot is a (position, hash fingerprint) pair of words, so a probe reads a
/// stored payload only when the fingerprints agree: a payload costs one
/// hash and, for a duplicate, one comparison; nothing is allocated once the
/// table has grown.
pub(crate) struct UniqueSet<'t> {
    table: &'t mut Vec<u32>,
    mask: usize,
    state: QuickState,
}

impl<'t> UniqueSet<'t> {
    const EMPTY: u32 = u32::MAX;

    /// An empty set for up to `n` candidates, in `table`.
    pub(crate) fn new(table: &'t mut Vec<u32>, n: usize) -> Self {
        let size = (2 * n).next_power_of_two().max(16);
        table.clear();
        table.resize(2 * size, Self::EMPTY);
        UniqueSet {
            table,
            mask: size - 1,
            state: QuickState::get(),
        }
    }

    /// Adds candidate `i` (position `< u32::MAX`), whose payload is
    /// `data(i)`; whether no candidate added before carries an equal payload.
    #[inline]
    pub(crate) fn first<'a, D: Eq + Hash + 'a>(
        &mut self,
        i: u32,
        data: &impl Fn(u32) -> &'a D,
    ) -> bool {
        let d = data(i);
        let h = self.state.hash_one(d);
        let fp = (h >> 32) as u32;
        let mut slot = h as usize & self.mask;
        loop {
            match self.table[2 * slot] {
                Self::EMPTY => {
                    self.table[2 * slot] = i;
                    self.table[2 * slot + 1] = fp;
                    return true;
                }
                j if self.table[2 * slot + 1] == fp && data(j) == d => return false,
                _ => slot = (slot + 1) & self.mask,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The n nearest by (distance, position), as a plain sort gives them.
    fn reference_nearest(order: &[u32], dist: &[f32], n: usize) -> Vec<u32> {
        let mut v = order.to_vec();
        v.sort_by(|a, b| {
            dist[*a as usize]
                .total_cmp(&dist[*b as usize])
                .then(a.cmp(b))
        });
        v.truncate(n);
        v
    }

    proptest! {
        /// Both ways of taking the n nearest (the scan for small n, the
        /// selection otherwise) agree with a full sort, ties and NaN included.
        #[test]
        fn nearest_matches_a_full_sort(
            dist in prop::collection::vec(
                prop_oneof![8 => (0u8..20).prop_map(f32::from), 1 => Just(f32::NAN)],
                0..300,
            ),
            n in 0usize..80,
            skip in 0usize..4,
        ) {
            // Positions increase along `order`, as the chain hands them on,
            // with some dropped as an earlier filter would.
            let order: Vec<u32> = (0..dist.len() as u32).filter(|i| *i as usize % 4 != skip).collect();
            let ids: Vec<u32> = (0..dist.len() as u32).collect();
            let mut got = order.clone();
            let mut table = Vec::new();
            Filter::Nearest(n).apply(&mut got, |i| dist[i as usize], |i| &ids[i as usize], &mut table);
            prop_assert_eq!(got, reference_nearest(&order, &dist, n));
        }

        /// Unique keeps the first candidate of each payload, in order.
        #[test]
        fn unique_keeps_first_of_each_payload(payloads in prop::collection::vec(0u8..40, 0..300)) {
            let mut got: Vec<u32> = (0..payloads.len() as u32).collect();
            let mut table = Vec::new();
            Filter::Unique.apply(&mut got, |_| f32::NAN, |i| &payloads[i as usize], &mut table);
            let mut seen = std::collections::HashSet::new();
            let want: Vec<u32> = (0..payloads.len() as u32).filter(|&i| seen.insert(payloads[i as usize])).collect();
            prop_assert_eq!(got, want);
        }
    }
}
