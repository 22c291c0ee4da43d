//! NumPy's legacy `RandomState` normal draws, bit for bit.
//!
//! NearPy's random hashes draw their directions with
//! `numpy.random.RandomState(seed).randn(projections, dim)`. Drawing the
//! same numbers here lets an engine reproduce a NearPy configuration
//! exactly, seed for seed: the same directions, hence the same buckets and
//! the same results, which is what a side-by-side comparison of the two
//! needs (with different generators, each seed gives each library other
//! buckets of other sizes, and only averages over many seeds compare).
//!
//! What NumPy does (`numpy/random/_mt19937.pyx`, `src/legacy/legacy-distributions.c`):
//! an integer seed initializes MT19937 with Matsumoto and Nishimura's
//! `init_genrand`; a double is `(a >> 5) * 2^26 + (b >> 6)` over `2^53`
//! from two 32-bit outputs; `randn` is the Marsaglia polar method, which
//! returns the second value of each accepted pair first and keeps the first
//! for the next call. Only IEEE operations and `ln`/`sqrt` are involved, so
//! the draws match NumPy's to the last bit (checked against values NumPy
//! printed, below).

const N: usize = 624;
const M: usize = 397;

/// MT19937 with NumPy's legacy Gaussian on top.
pub(crate) struct NumpyRandomState {
    mt: [u32; N],
    pos: usize,
    gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `numpy.random.RandomState(seed)` for an integer seed.
    pub(crate) fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        NumpyRandomState {
            mt,
            pos: N,
            gauss: None,
        }
    }

    fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        if self.pos >= N {
            for i in 0..N {
                let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % N] & LOWER);
                let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
                self.mt[i] = self.mt[(i + M) % N] ^ (y >> 1) ^ mag;
            }
            self.pos = 0;
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn next_double(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (a as f64 * 67_108_864.0 + b as f64) / 9_007_199_254_740_992.0
    }

    /// One `randn()` draw.
    pub(crate) fn gauss(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.next_double() - 1.0;
            let x2 = 2.0 * self.next_double() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NumpyRandomState;

    fn hex(s: &str) -> f64 {
        // "[-]0x1.<13 hex digits>p<exp>", as Python's float.hex prints.
        let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
        let s = s.strip_prefix("0x1.").expect("normal number");
        let (mant, exp) = s.split_once('p').expect("exponent");
        let mant = u64::from_str_radix(mant, 16).expect("hex mantissa");
        let exp: i32 = exp.parse().expect("exponent");
        let v = (1.0 + mant as f64 / (1u64 << 52) as f64) * 2f64.powi(exp);
        if neg {
            -v
        } else {
            v
        }
    }

    /// `numpy.random.RandomState(seed).randn(3, 4)` as NumPy 1.26 prints it
    /// (`float.hex`): the first five values and the last.
    #[test]
    fn matches_numpy_bit_for_bit() {
        let cases: [(u32, [&str; 5], &str); 4] = [
            (
                0,
                [
                    "0x1.c398ef3e5cfa5p+0",
                    "0x1.99c2cfacc8953p-2",
                    "0x1.f51d25222c9abp-1",
                    "0x1.1ed5969e3314ep+1",
                    "0x1.de1847cb13ddap+0",
                ],
                "0x1.744b44bfd85f7p+0",
            ),
            (
                1,
                [
                    "0x1.9fd5190657c50p+0",
                    "-0x1.393822fb7d9adp-1",
                    "-0x1.0e6c872548fd2p-1",
                    "-0x1.12ae1255cb80cp+0",
                    "0x1.bb16b5735117dp-1",
                ],
                "-0x1.07b2b0d639af4p+1",
            ),
            (
                1000,
                [
                    "-0x1.9be1f57144f4cp-1",
                    "0x1.48a2478c05c17p-2",
                    "-0x1.a182f28f113d1p-6",
                    "0x1.49e4d01640dcbp-1",
                    "-0x1.34040b0176a5ap-2",
                ],
                "-0x1.9cbb2f6f4a6cbp-1",
            ),
            (
                u32::MAX,
                [
                    "0x1.4bfc38c486d8ap-1",
                    "0x1.56b192e507eeep-1",
                    "-0x1.149e836f192fdp+0",
                    "0x1.23543dec5a0fcp-2",
                    "0x1.d27bf27c6aaafp-4",
                ],
                "0x1.011ed02431336p+0",
            ),
        ];
        for (seed, first, last) in cases {
            let mut r = NumpyRandomState::new(seed);
            let draws: Vec<f64> = (0..12).map(|_| r.gauss()).collect();
            for (i, want) in first.iter().enumerate() {
                assert_eq!(
                    draws[i].to_bits(),
                    hex(want).to_bits(),
                    "seed {seed}, draw {i}"
                );
            }
            assert_eq!(
                draws[11].to_bits(),
                hex(last).to_bits(),
                "seed {seed}, draw 11"
            );
        }
        // Past the first 624-word block: randn(10, 128) with seed 7, last value.
        let mut r = NumpyRandomState::new(7);
        let draws: Vec<f64> = (0..1280).map(|_| r.gauss()).collect();
        assert_eq!(draws[1279].to_bits(), hex("0x1.3902de12cfb1dp-2").to_bits());
    }
}
