//! Seeded data for the index benchmarks, shared so every bench generates it
//! the same way.

/// SplitMix64 step.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal sample (Box-Muller).
fn normal(state: &mut u64) -> f32 {
    let u1 = ((splitmix(state) >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
    let u2 = (splitmix(state) >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// How the points of [`Clusters::points`] are drawn.
pub struct Clusters {
    pub dim: usize,
    /// Added to every centre component.
    pub centre_offset: f32,
    /// Standard deviation around a centre.
    pub spread: f32,
    /// Clamp components at zero (non-negative, like SIFT descriptors).
    pub non_negative: bool,
}

impl Clusters {
    /// `n` points of `dim` components around 50 Gaussian centres (the same
    /// centres for every seed), row after row.
    pub fn points(&self, n: usize, seed: u64) -> Vec<f32> {
        let dim = self.dim;
        let mut s = 12345u64;
        let centres: Vec<f32> = (0..50 * dim)
            .map(|_| self.centre_offset + normal(&mut s))
            .collect();
        let mut s = seed;
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let k = (splitmix(&mut s) % 50) as usize;
            for j in 0..dim {
                let x = centres[k * dim + j] + self.spread * normal(&mut s);
                out.push(if self.non_negative { x.max(0.0) } else { x });
            }
        }
        out
    }
}
