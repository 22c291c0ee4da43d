//! A small seeded generator for tree building.
//!
//! Each tree gets its own stream, seeded from the forest's seed and the
//! tree's index, so the trees do not depend on which thread builds them or
//! in which order. The generator is xoshiro256++ seeded through SplitMix64:
//! fast, well tested, and fully specified here so files stay reproducible
//! across versions of any dependency.

/// xoshiro256++.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream for tree `tree` of a forest seeded with `seed`.
    pub(crate) fn for_tree(seed: u64, tree: u64) -> Self {
        let mut st = seed ^ tree.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Rng { s }
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-shift
    /// (the bias is below 2^-32 for every `n` an index can hold).
    #[inline]
    pub(crate) fn index(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A fair coin.
    #[inline]
    pub(crate) fn flip(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_per_tree_and_repeat_per_seed() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_tree(7, 0).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::for_tree(7, 0);
        let mut y = Rng::for_tree(7, 1);
        assert_ne!(x.next_u64(), y.next_u64());
        let mut r = Rng::for_tree(1, 2);
        let mut seen = [0usize; 10];
        for _ in 0..10_000 {
            seen[r.index(10)] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }
}
