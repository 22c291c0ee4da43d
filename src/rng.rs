//! The crate's one seeded generator, for everything an index draws at
//! random: HNSW levels, forest splits, LSH projections.
//!
//! xoshiro256++ seeded through SplitMix64, as its authors recommend, fully
//! specified here rather than taken from a crate so that a seed names the
//! same graph, trees and hyperplanes forever: a dependency upgrade that
//! changed its stream would silently change what a saved seed rebuilds.
//! The tests pin the streams.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function on `x + golden ratio`: a fixed,
/// stateless 64-bit mixer (one step of SplitMix64 from state `x`).
#[inline]
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++.
#[derive(Clone, Debug)]
#[cfg_attr(not(any(feature = "forest", feature = "lsh")), allow(dead_code))]
pub(crate) struct Rng {
    s: [u64; 4],
}

#[cfg_attr(not(any(feature = "forest", feature = "lsh")), allow(dead_code))]
impl Rng {
    /// The stream for `seed`: its state is four SplitMix64 steps from it.
    pub(crate) fn new(seed: u64) -> Self {
        let mut state = seed;
        let mut next = || {
            let r = splitmix64(state);
            state = state.wrapping_add(GOLDEN);
            r
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
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
    #[cfg_attr(not(feature = "forest"), allow(dead_code))]
    pub(crate) fn index(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A fair coin.
    #[inline]
    #[cfg_attr(not(feature = "forest"), allow(dead_code))]
    pub(crate) fn flip(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Uniform in the open interval (0, 1): 53 random bits, never exactly 0.
    #[cfg_attr(not(feature = "lsh"), allow(dead_code))]
    fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box-Muller; the second value is discarded so
    /// that each draw depends only on the stream position, not on parity).
    #[cfg_attr(not(feature = "lsh"), allow(dead_code))]
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.open01();
        let u2 = self.open01();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saved seeds must rebuild the same indexes: these are the streams
    /// every released version has drawn.
    #[test]
    fn streams_are_pinned() {
        let mut r = Rng::new(7 ^ 3u64.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                10229484029273802464,
                15261453702452615325,
                5716405964415720764
            ]
        );
        let mut r = Rng::new(11);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                15860195524371628672,
                14876693124945980565,
                17786422396842450233
            ]
        );
        assert_eq!(r.normal(), -0.07806970161399811);
    }

    #[test]
    fn same_seed_same_stream_and_seeds_differ() {
        let stream = |seed| {
            let mut r = Rng::new(seed);
            (0..8).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(stream(7), stream(7));
        assert_ne!(stream(7), stream(8));
    }

    #[test]
    fn index_is_uniform() {
        let mut r = Rng::new(1);
        let mut seen = [0usize; 10];
        for _ in 0..10_000 {
            seen[r.index(10)] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        // Standard error of the mean is 1/sqrt(n) ~ 0.0022; of the variance ~ sqrt(2/n) ~ 0.0032.
        assert!(mean.abs() < 0.011, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "variance {var}");
    }
}
