//! Seeded test data shared by the integration tests.
#![allow(dead_code)]

use swann::Metric;

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

/// xorshift64 (13, 7, 17): the stream the kernel and quantizer tests draw
/// from, so their data stays what their bounds were measured on. The seed
/// must not be 0.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    /// `n` uniform bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// `n` uniform 4-bit codes, one per byte.
    pub fn codes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 20) as u8 & 0x0f).collect()
    }
}

/// `n` rows around 20 Gaussian clusters whose components have different
/// scales (spread `0.3 + d / dim` in component `d`): data a per-dimension
/// quantizer has to fit.
pub fn clustered_scaled(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut r = XorShift(seed | 1);
    let centers: Vec<f32> = (0..20 * dim).map(|_| r.unit() * 4.0 - 2.0).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = (r.next() % 20) as usize;
        for d in 0..dim {
            let spread = 0.3 + d as f32 / dim as f32;
            out.push(centers[c * dim + d] + spread * r.normal());
        }
    }
    out
}

/// Hits of the true top 10 (`truth`) among the 10 rows with the smallest
/// `est`, and among the 10 nearest by `exact` of the `rerank` rows with the
/// smallest `est`: recall@10 by estimate and after an exact rerank, as
/// counts (`est[i]` is row `i`'s estimate; rows past `n` are ignored).
pub fn hits_by_estimate_and_rerank(
    est: &[f32],
    n: usize,
    truth: &[usize],
    rerank: usize,
    exact: impl Fn(usize) -> f32,
) -> (usize, usize) {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| est[a].total_cmp(&est[b]));
    let by_est = order[..10].iter().filter(|i| truth.contains(i)).count();
    let mut top: Vec<(f32, usize)> = order[..rerank].iter().map(|&i| (exact(i), i)).collect();
    top.sort_by(|a, b| a.0.total_cmp(&b.0));
    let by_rerank = top[..10].iter().filter(|t| truth.contains(&t.1)).count();
    (by_est, by_rerank)
}

/// Every kernel table this CPU runs: each available ISA's table and its
/// sub-feature variants (VNNI, AVX-VNNI, VPOPCNTDQ, dotprod).
pub fn all_kernel_variants() -> Vec<&'static swann::kernels::KernelTable> {
    swann::kernels::Isa::available()
        .iter()
        .flat_map(|&isa| swann::kernels::KernelTable::variants(isa).iter().copied())
        .collect()
}

/// The distance a forest reports between `a` and `b`, in `f64` (for dot,
/// the product, larger nearer).
pub fn forest_distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    match metric {
        Metric::Euclidean => a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum::<f64>()
            .sqrt(),
        Metric::Manhattan => a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).abs())
            .sum(),
        Metric::Angular => {
            let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum();
            let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum();
            (2.0 - 2.0 * dot / (na * nb).sqrt()).max(0.0).sqrt()
        }
        Metric::Dot => dot,
        Metric::Hamming => a
            .iter()
            .zip(b)
            .filter(|(x, y)| (**x > 0.5) != (**y > 0.5))
            .count() as f64,
        _ => unreachable!(),
    }
}

/// Every metric the forest takes.
pub const FOREST_METRICS: [Metric; 5] = [
    Metric::Euclidean,
    Metric::Manhattan,
    Metric::Angular,
    Metric::Dot,
    Metric::Hamming,
];
