//! Filters applied, in order, to an engine's candidates.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

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

/// A fast hasher for the per-query unique-payload set: multiply-rotate over
/// 64-bit words (FxHash's mixing) from a per-process random seed. SipHash,
/// std's default, costs as much per candidate as a 128-d distance. The set
/// lives for one query and holds only that query's candidates, so the
/// weaker flooding resistance bounds the damage to one slow query; the
/// random seed keeps collisions from being precomputed.
#[derive(Clone, Copy)]
struct QuickState(u64);

impl QuickState {
    fn get() -> QuickState {
        static SEED: OnceLock<u64> = OnceLock::new();
        QuickState(*SEED.get_or_init(|| {
            std::collections::hash_map::RandomState::new().hash_one(0x5157_414e_u64) | 1
        }))
    }
}

impl BuildHasher for QuickState {
    type Hasher = QuickHasher;
    fn build_hasher(&self) -> QuickHasher {
        QuickHasher(self.0)
    }
}

struct QuickHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for QuickHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(26) ^ x).wrapping_mul(K);
    }
    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket index from the
        // low bits and its tag from the top 7.
        self.0 ^ (self.0 >> 29)
    }
}
