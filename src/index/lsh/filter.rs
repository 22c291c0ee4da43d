//! Filters applied, in order, to an engine's candidates.

use std::hash::{BuildHasher, Hash};

use super::quickhash::QuickState;

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
                    order.select_nth_unstable_by(n - 1, cmp);
                    order.truncate(n);
                }
                order.sort_unstable_by(cmp);
            }
            Filter::DistanceThreshold(t) => order.retain(|&i| distance(i) < t),
            Filter::Unique => {
                // An open-addressing set of candidate positions (linear
                // probing, at most half full), cleared per call: a payload
                // costs one hash and, on a slot match, one comparison, and
                // nothing is allocated once the table has grown.
                const EMPTY: u32 = u32::MAX;
                let size = (2 * order.len()).next_power_of_two().max(16);
                let mask = size - 1;
                table.clear();
                table.resize(size, EMPTY);
                let state = QuickState::get();
                order.retain(|&i| {
                    let d = data(i);
                    let mut slot = state.hash_one(d) as usize & mask;
                    loop {
                        match table[slot] {
                            EMPTY => {
                                table[slot] = i;
                                return true;
                            }
                            j if data(j) == d => return false,
                            _ => slot = (slot + 1) & mask,
                        }
                    }
                });
            }
        }
    }
}
