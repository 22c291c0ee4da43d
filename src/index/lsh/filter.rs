//! Filters applied, in order, to an engine's candidates.

use std::collections::HashSet;
use std::hash::Hash;

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
    /// `distance(i)` and `data(i)` read candidate `i`.
    pub(crate) fn apply<'a, D: Eq + Hash + 'a>(
        &self,
        order: &mut Vec<u32>,
        distance: impl Fn(u32) -> f32,
        data: impl Fn(u32) -> &'a D,
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
                let mut seen = HashSet::with_capacity_and_hasher(order.len(), QuickState::get());
                order.retain(|&i| seen.insert(data(i)));
            }
        }
    }
}
