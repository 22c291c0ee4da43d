//! Seeded test data shared by the integration tests.
#![allow(dead_code)]

/// SplitMix64 stream: deterministic across platforms and crate versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = (self.uniform() as f64).max(1e-12);
        let u2 = self.uniform() as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// `n` points in `dim` dimensions around `clusters` Gaussian centres
/// (centres spread with sd 1, points with sd `spread`), row-major.
pub fn clustered(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal()).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = (rng.next_u64() % clusters as u64) as usize;
        for j in 0..dim {
            out.push(centres[c * dim + j] + spread * rng.normal());
        }
    }
    out
}

/// `n` random bit vectors of `words` u64 words, drawn around `clusters`
/// centres by flipping each bit with probability `flip`.
pub fn clustered_bits(n: usize, words: usize, clusters: usize, flip: f32, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    let centres: Vec<u64> = (0..clusters * words).map(|_| rng.next_u64()).collect();
    let mut out = Vec::with_capacity(n * words);
    for _ in 0..n {
        let c = (rng.next_u64() % clusters as u64) as usize;
        for w in 0..words {
            let mut mask = 0u64;
            for b in 0..64 {
                if rng.uniform() < flip {
                    mask |= 1 << b;
                }
            }
            out.push(centres[c * words + w] ^ mask);
        }
    }
    out
}
