//! RaBitQ: one bit per dimension after a random rotation, with per-vector
//! correction terms and an error bound on every estimate (Gao and Long,
//! "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error
//! Bound for Approximate Nearest Neighbor Search", SIGMOD 2024).
//!
//! Training picks a centroid `c` (the mean of a sample) and a random
//! rotation of `D'` dimensions, `D'` being the dimension rounded up to a
//! multiple of 64 (vectors are zero-padded). A vector `o` is coded by the
//! signs of `u = P^T (o - c) / |o - c|`: bit `i` is `u_i > 0`, packed in
//! `D' / 64` words. Beside the code it keeps [`RaBitQFactors`]: `|o - c|`,
//! `<x_bar, u> = sum |u_i| / sqrt(D')` (how well the code's unit vector
//! `x_bar = (2 x_b - 1) / sqrt(D')` points along `u`; in `(0, 1]`) and the
//! number of set bits.
//!
//! A query `q` is rotated the same way (`q' = P^T (q - c) / |q - c|`) and
//! quantized to 4 bits per dimension on one uniform grid (`lo`, `delta`).
//! `<x_b, q_u>` is summed from the popcounts of the code AND each of the 4
//! bit planes, and `popcount(a AND b) = (popcount(a) + popcount(b) -
//! popcount(a XOR b)) / 2` turns that into Hamming distances, which
//! [`KernelTable::hamming`] and [`KernelTable::hamming_batch`] count with
//! the CPU's popcount instructions. Then
//!
//! - `<x_bar, q'> ~ (delta (2 <x_b, q_u> - sum q_u) + lo (2 popcount(x_b) - D')) / sqrt(D')`,
//! - `cos(o - c, q - c) ~ <x_bar, q'> / <x_bar, u>` (the unbiased estimator),
//! - `|o - q|^2 ~ |o - c|^2 + |q - c|^2 - 2 |o - c| |q - c| cos`.
//!
//! The paper bounds the cosine estimate's error, with high probability,
//! by `eps0 sqrt((1 - <x_bar, u>^2) / <x_bar, u>^2) / sqrt(D' - 1)`, with
//! `eps0` = [`RaBitQ::EPS0`] = 1.9 (the paper's setting, for which the
//! bound held in nearly all of its experiments); [`RaBitQEstimate::bound`]
//! is that bound in distance units, so a caller can rerank every row whose
//! `distance - bound` is below its current threshold.
//!
//! Only squared L2 is estimated ([`Metric::L2`]): inner products would need
//! another per-vector term (`<o, c>`), which this code does not keep.
//!
//! Memory and time: the rotation is kept as a `D' x dim` matrix of `f32`
//! (the columns of `P` that a zero-padded vector meets), 64 MiB at the
//! largest dimension accepted ([`RaBitQ::MAX_DIM`] = 4096); training
//! orthonormalizes `dim` Gaussian vectors of `D'` components in `f64`
//! (`O(dim^2 D')`), and rotating a vector costs `D' x dim` multiply-adds.

use rayon::prelude::*;

use crate::error::{check_rows, check_vector};
use crate::kernels::{self, KernelTable};
use crate::rng::Rng;
use crate::{Error, Metric, Result};

/// How a [`RaBitQ`] is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaBitQOptions {
    /// Rows of the training data whose mean is the centroid (evenly
    /// spaced; all when fewer).
    pub sample: usize,
    /// The seed of the random rotation: the same seed and dimension give
    /// the same rotation on every platform.
    pub seed: u64,
}

impl Default for RaBitQOptions {
    fn default() -> Self {
        RaBitQOptions {
            sample: 20_000,
            seed: 0x5241_4269_7451,
        }
    }
}

/// The per-vector terms stored beside a [`RaBitQ`] code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaBitQFactors {
    /// `|o - c|`, the vector's distance to the centroid.
    pub norm: f32,
    /// `<x_bar, u>`: the cosine between the code's unit vector and the
    /// rotated unit residual, in `(0, 1]` (1 for a vector at the centroid).
    pub ip: f32,
    /// The number of set bits in the code.
    pub popcount: u32,
}

/// One estimate: the squared L2 distance and its error bound (see the
/// module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RaBitQEstimate {
    /// The estimated squared L2 distance.
    pub distance: f32,
    /// `2 |o - c| |q - c|` times the paper's bound on the cosine estimate's
    /// error: the true distance is within `distance +- bound` with high
    /// probability. 0 when the vector or the query is at the centroid
    /// (the estimate is then exact).
    pub bound: f32,
}

impl RaBitQEstimate {
    /// `distance - bound`: rows whose lower bound is below a search's
    /// current threshold are worth an exact distance.
    pub fn lower(&self) -> f32 {
        self.distance - self.bound
    }
}

/// Codes and factors of many vectors, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct RaBitQCodes {
    words: usize,
    codes: Vec<u64>,
    factors: Vec<RaBitQFactors>,
}

impl RaBitQCodes {
    /// Codes of `words` words each (row after row) and one factor set per
    /// row, e.g. read back from a file.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `words` is zero, `codes` is not
    /// `words` per factor set, or a factor is not finite (or `ip` is not
    /// in `(0, 1]` within rounding, or `norm` is negative).
    pub fn from_parts(
        words: usize,
        codes: Vec<u64>,
        factors: Vec<RaBitQFactors>,
    ) -> Result<RaBitQCodes> {
        if words == 0 || codes.len() != words * factors.len() {
            return Err(Error::InvalidParameter(format!(
                "{} code words for {} rows of {words} words",
                codes.len(),
                factors.len()
            )));
        }
        if let Some(i) = factors.iter().position(|f| !factors_valid(f)) {
            return Err(Error::InvalidParameter(format!(
                "row {i}: factors {:?}",
                factors[i]
            )));
        }
        Ok(RaBitQCodes {
            words,
            codes,
            factors,
        })
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.factors.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.factors.is_empty()
    }

    /// Words per code.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Every code, row after row.
    pub fn codes(&self) -> &[u64] {
        &self.codes
    }

    /// Every row's factors.
    pub fn factors(&self) -> &[RaBitQFactors] {
        &self.factors
    }

    /// The code of row `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn code(&self, i: usize) -> &[u64] {
        &self.codes[i * self.words..][..self.words]
    }
}

fn factors_valid(f: &RaBitQFactors) -> bool {
    f.norm.is_finite() && f.norm >= 0.0 && f.ip.is_finite() && f.ip > 0.0 && f.ip <= 1.0 + 1e-4
}

/// A trained RaBitQ quantizer: a centroid and a random rotation.
///
/// ```
/// use swann::kernels;
/// use swann::quant::{RaBitQ, RaBitQEstimate, RaBitQOptions};
/// use swann::Metric;
///
/// let dim = 16;
/// let data: Vec<f32> = (0..100 * dim).map(|i| ((i * 37) % 101) as f32).collect();
/// let rq = RaBitQ::train(&data, dim, RaBitQOptions::default())?;
/// let codes = rq.encode_batch(&data)?;
/// assert_eq!((rq.padded_dim(), codes.words()), (64, 1));
/// let q = rq.query(&data[..dim], Metric::L2)?;
/// let mut est = vec![RaBitQEstimate::default(); codes.len()];
/// q.estimate_batch(kernels::active(), &codes, &mut est);
/// // Rows whose lower bound beats the threshold get an exact distance.
/// let threshold = 1000.0;
/// let doubtful = est.iter().filter(|e| e.lower() < threshold).count();
/// assert!(doubtful >= 1);
/// # Ok::<(), swann::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RaBitQ {
    dim: usize,
    padded: usize,
    centroid: Vec<f32>,
    /// `padded` rows of `dim`: row `i` is the `i`-th rotated axis over the
    /// vector's components, so `u_i = <row_i, o - c>`.
    rotation: Vec<f32>,
}

/// A query prepared for [`RaBitQ`] estimates.
#[derive(Clone, Debug)]
pub struct RaBitQQuery {
    words: usize,
    /// Bit plane `j` of the 4-bit codes at `planes[j * words..]`.
    planes: Vec<u64>,
    /// `sum_j 2^j popcount(plane_j)`.
    plane_weight: u32,
    /// `sum_i q_u[i]`.
    sum_codes: u32,
    lo: f32,
    delta: f32,
    norm: f32,
    padded: f32,
    inv_sqrt_padded: f32,
    /// `2 |q - c| eps0 / sqrt(D' - 1)`.
    bound_scale: f32,
}

impl RaBitQ {
    /// The largest dimension accepted (the rotation holds `D' x dim`
    /// floats: 64 MiB at 4096).
    pub const MAX_DIM: usize = 4096;

    /// The constant `eps0` of the paper's error bound (its default; it
    /// makes the bound hold with high probability, not always).
    pub const EPS0: f32 = 1.9;

    /// Trains on `data` (rows of `dim` components): the centroid is the
    /// mean of `opts.sample` evenly spaced rows, the rotation is drawn from
    /// `opts.seed`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero `dim` or one above
    /// [`RaBitQ::MAX_DIM`], data without a row, or a zero sample;
    /// [`Error::RaggedData`] when `data` is not a whole number of rows;
    /// [`Error::NonFinite`] for the first NaN or infinite value (its
    /// `index` counts from the start of `data`).
    pub fn train(data: &[f32], dim: usize, opts: RaBitQOptions) -> Result<RaBitQ> {
        check_dim(dim)?;
        check_rows("training data", data.len(), dim)?;
        if data.is_empty() {
            return Err(Error::InvalidParameter(
                "the training data holds no row".into(),
            ));
        }
        if opts.sample == 0 {
            return Err(Error::InvalidParameter(
                "the sample must hold at least one row".into(),
            ));
        }
        if let Some((index, value)) = crate::error::first_non_finite(data) {
            return Err(Error::NonFinite { index, value });
        }
        let rows = data.len() / dim;
        let take = rows.min(opts.sample);
        let mut sum = vec![0.0f64; dim];
        for i in 0..take {
            let row = &data[i * rows / take * dim..][..dim];
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += f64::from(x);
            }
        }
        let centroid = sum.iter().map(|&s| (s / take as f64) as f32).collect();
        Ok(RaBitQ {
            dim,
            padded: padded_dim(dim),
            centroid,
            rotation: rotation(dim, opts.seed),
        })
    }

    /// A quantizer with the given centroid and rotation (as
    /// [`RaBitQ::centroid`] and [`RaBitQ::rotation`] return them, e.g.
    /// read back from a file).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the centroid is empty or longer
    /// than [`RaBitQ::MAX_DIM`], the rotation is not
    /// [`RaBitQ::padded_dim`] rows of the centroid's length, or a value is
    /// not finite, or a column of the rotation is not of unit length
    /// (within 1e-3; orthogonality is not checked).
    pub fn from_parts(centroid: Vec<f32>, rotation: Vec<f32>) -> Result<RaBitQ> {
        let dim = centroid.len();
        check_dim(dim)?;
        let padded = padded_dim(dim);
        if rotation.len() != padded * dim {
            return Err(Error::InvalidParameter(format!(
                "a rotation of {} values for dimension {dim} (expected {padded} x {dim})",
                rotation.len()
            )));
        }
        if centroid.iter().chain(&rotation).any(|x| !x.is_finite()) {
            return Err(Error::InvalidParameter(
                "the centroid or the rotation holds a value that is not finite".into(),
            ));
        }
        for j in 0..dim {
            let n: f64 = (0..padded)
                .map(|i| f64::from(rotation[i * dim + j]).powi(2))
                .sum();
            if (n - 1.0).abs() > 1e-3 {
                return Err(Error::InvalidParameter(format!(
                    "column {j} of the rotation has squared length {n}, not 1"
                )));
            }
        }
        Ok(RaBitQ {
            dim,
            padded,
            centroid,
            rotation,
        })
    }

    /// Components per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `D'`: the dimension rounded up to a multiple of 64, the bits per
    /// code.
    pub fn padded_dim(&self) -> usize {
        self.padded
    }

    /// `u64` words per code (`D' / 64`).
    pub fn words(&self) -> usize {
        self.padded / 64
    }

    /// The centroid the vectors are coded relative to.
    pub fn centroid(&self) -> &[f32] {
        &self.centroid
    }

    /// The rotation: [`RaBitQ::padded_dim`] rows of [`RaBitQ::dim`]
    /// values, with orthonormal columns; row `i` gives the `i`-th rotated
    /// component, `u_i = <row_i, v - c>` (the first `dim` columns of
    /// `P^T`, the only ones a zero-padded vector meets).
    pub fn rotation(&self) -> &[f32] {
        &self.rotation
    }

    /// `P^T (v - c)` into `out` (`D'` long); returns `|v - c|`.
    fn rotate(&self, table: &KernelTable, v: &[f32], out: &mut [f32]) -> f32 {
        let r: Vec<f32> = v.iter().zip(&self.centroid).map(|(x, c)| x - c).collect();
        let norm = r
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        for (o, row) in out.iter_mut().zip(self.rotation.chunks_exact(self.dim)) {
            *o = table.dot(row, &r);
        }
        norm as f32
    }

    fn encode_unchecked(&self, table: &KernelTable, v: &[f32], out: &mut [u64]) -> RaBitQFactors {
        let mut u = vec![0.0f32; self.padded];
        let norm = self.rotate(table, v, &mut u);
        if norm == 0.0 {
            out.fill(u64::MAX);
            return RaBitQFactors {
                norm: 0.0,
                ip: 1.0,
                popcount: self.padded as u32,
            };
        }
        out.fill(0);
        let mut abs_sum = 0.0f64;
        let mut len_sq = 0.0f64;
        for (i, &x) in u.iter().enumerate() {
            if x > 0.0 {
                out[i / 64] |= 1 << (i % 64);
            }
            abs_sum += f64::from(x.abs());
            len_sq += f64::from(x) * f64::from(x);
        }
        // `u` is rotated before it is normalized: divide by its own length
        // (equal to `norm` up to rounding) so that `ip` stays in (0, 1].
        let ip = (abs_sum / (len_sq.sqrt() * (self.padded as f64).sqrt())).min(1.0);
        RaBitQFactors {
            norm,
            ip: ip as f32,
            popcount: out.iter().map(|w| w.count_ones()).sum(),
        }
    }

    /// Codes `v` into `out` ([`RaBitQ::words`] words) and returns its
    /// factors. A vector at the centroid gets a code of all ones and
    /// factors `norm = 0`, `ip = 1`, so its estimates are exact.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `v` is not [`RaBitQ::dim`] long,
    /// [`Error::NonFinite`] for its first NaN or infinite component, and
    /// [`Error::InvalidParameter`] when `out` is not [`RaBitQ::words`]
    /// long.
    pub fn encode(&self, v: &[f32], out: &mut [u64]) -> Result<RaBitQFactors> {
        check_vector(v, self.dim)?;
        if out.len() != self.words() {
            return Err(Error::InvalidParameter(format!(
                "the code buffer holds {} words, expected {}",
                out.len(),
                self.words()
            )));
        }
        Ok(self.encode_unchecked(kernels::active(), v, out))
    }

    /// Codes every row of `rows` ([`RaBitQ::dim`] components each), in
    /// parallel.
    ///
    /// # Errors
    /// [`Error::RaggedData`] when `rows` is not a whole number of rows and
    /// [`Error::NonFinite`] for the first NaN or infinite value (its
    /// `index` counts from the start of `rows`).
    pub fn encode_batch(&self, rows: &[f32]) -> Result<RaBitQCodes> {
        check_rows("rows to encode", rows.len(), self.dim)?;
        if let Some((index, value)) = crate::error::first_non_finite(rows) {
            return Err(Error::NonFinite { index, value });
        }
        let words = self.words();
        let n = rows.len() / self.dim;
        let mut codes = vec![0u64; n * words];
        let table = kernels::active();
        let factors = codes
            .par_chunks_mut(words)
            .zip(rows.par_chunks(self.dim))
            .with_min_len(64)
            .map(|(c, v)| self.encode_unchecked(table, v, c))
            .collect();
        Ok(RaBitQCodes {
            words,
            codes,
            factors,
        })
    }

    /// Prepares `q` for squared L2 estimates: rotates it and quantizes it
    /// to 4 bits per dimension.
    ///
    /// # Errors
    /// [`Error::UnsupportedMetric`] for any metric but [`Metric::L2`],
    /// [`Error::DimensionMismatch`] for a query of another length,
    /// [`Error::NonFinite`] for its first NaN or infinite component.
    pub fn query(&self, q: &[f32], metric: Metric) -> Result<RaBitQQuery> {
        if metric != Metric::L2 {
            return Err(Error::UnsupportedMetric {
                metric,
                index: "RaBitQ quantization",
            });
        }
        check_vector(q, self.dim)?;
        let words = self.words();
        let mut u = vec![0.0f32; self.padded];
        let norm = self.rotate(kernels::active(), q, &mut u);
        let mut planes = vec![0u64; 4 * words];
        let (mut lo, mut delta, mut sum_codes) = (0.0f32, 0.0f32, 0u32);
        if norm > 0.0 {
            let inv = 1.0 / norm;
            let (min, max) = u
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x * inv), b.max(x * inv))
                });
            lo = min;
            delta = (max - min) / 15.0;
            if delta > 0.0 {
                for (i, &x) in u.iter().enumerate() {
                    let c = ((x * inv - lo) / delta).round().clamp(0.0, 15.0) as u32;
                    sum_codes += c;
                    for j in 0..4 {
                        if c >> j & 1 == 1 {
                            planes[j * words + i / 64] |= 1 << (i % 64);
                        }
                    }
                }
            }
        }
        let plane_weight = planes
            .chunks_exact(words)
            .enumerate()
            .map(|(j, p)| p.iter().map(|w| w.count_ones()).sum::<u32>() << j)
            .sum();
        let d = self.padded as f32;
        Ok(RaBitQQuery {
            words,
            planes,
            plane_weight,
            sum_codes,
            lo,
            delta,
            norm,
            padded: d,
            inv_sqrt_padded: 1.0 / d.sqrt(),
            bound_scale: 2.0 * norm * RaBitQ::EPS0 / (d - 1.0).sqrt(),
        })
    }
}

impl RaBitQQuery {
    /// `|q - c|`.
    pub fn norm(&self) -> f32 {
        self.norm
    }

    /// The 4-bit grid of the rotated unit query: its low end and step
    /// (component `i` is coded as `round((q'_i - lo) / delta)`; both 0 for
    /// a query at the centroid).
    pub fn grid(&self) -> (f32, f32) {
        (self.lo, self.delta)
    }

    /// The 4 bit planes of the query's 4-bit codes, [`RaBitQ::words`]
    /// words each, least significant plane first.
    pub fn planes(&self) -> &[u64] {
        &self.planes
    }

    /// The estimate from `h`, `sum_j 2^j hamming(code, plane_j)`.
    #[inline]
    fn finish(&self, h: u32, f: &RaBitQFactors) -> RaBitQEstimate {
        // 2 <x_b, q_u> = 15 popcount(x_b) + sum_j 2^j popcount(plane_j) - h.
        let twice = (15 * f.popcount + self.plane_weight) as i64 - i64::from(h);
        let ip = (self.delta * (twice - i64::from(self.sum_codes)) as f32
            + self.lo * (2.0 * f.popcount as f32 - self.padded))
            * self.inv_sqrt_padded;
        // One division and one square root per row.
        let inv_ip = 1.0 / f.ip;
        let cos = ip * inv_ip;
        let distance = f.norm * f.norm + self.norm * self.norm - 2.0 * f.norm * self.norm * cos;
        let bound = self.bound_scale * f.norm * (1.0 - f.ip * f.ip).max(0.0).sqrt() * inv_ip;
        RaBitQEstimate { distance, bound }
    }

    /// Estimates the squared L2 distance to the vector coded as `code` with
    /// `factors`, counting bits with `table`'s popcount kernel.
    ///
    /// # Panics
    /// If `code` is not [`RaBitQ::words`] long.
    pub fn estimate(
        &self,
        table: &KernelTable,
        code: &[u64],
        factors: &RaBitQFactors,
    ) -> RaBitQEstimate {
        let h = self
            .planes
            .chunks_exact(self.words)
            .enumerate()
            .map(|(j, p)| table.hamming(code, p) << j)
            .sum();
        self.finish(h, factors)
    }

    /// Estimates for the first `out.len()` rows of `codes`, through
    /// `table`'s batch popcount kernel.
    ///
    /// # Panics
    /// If `out` is longer than `codes`, or the codes are not
    /// [`RaBitQ::words`] words each.
    pub fn estimate_batch(
        &self,
        table: &KernelTable,
        codes: &RaBitQCodes,
        out: &mut [RaBitQEstimate],
    ) {
        const CHUNK: usize = 256;
        assert!(out.len() <= codes.len(), "more estimates than rows");
        assert_eq!(codes.words, self.words, "code length");
        let w = self.words;
        let mut h = [[0u32; CHUNK]; 4];
        for (start, chunk) in (0..).step_by(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let m = chunk.len();
            let rows = &codes.codes[start * w..(start + m) * w];
            for (j, hj) in h.iter_mut().enumerate() {
                table.hamming_batch(&self.planes[j * w..][..w], rows, w, &mut hj[..m]);
            }
            for (i, (o, f)) in chunk
                .iter_mut()
                .zip(&codes.factors[start..start + m])
                .enumerate()
            {
                let sum = h[0][i] + (h[1][i] << 1) + (h[2][i] << 2) + (h[3][i] << 3);
                *o = self.finish(sum, f);
            }
        }
    }
}

fn check_dim(dim: usize) -> Result<()> {
    if dim == 0 || dim > RaBitQ::MAX_DIM {
        return Err(Error::InvalidParameter(format!(
            "dimension {dim}: RaBitQ takes 1 to {}",
            RaBitQ::MAX_DIM
        )));
    }
    Ok(())
}

fn padded_dim(dim: usize) -> usize {
    dim.div_ceil(64) * 64
}

/// `padded_dim(dim)` rows of `dim`: the first `dim` rows of a random
/// orthogonal `D' x D'` matrix, transposed. Those rows are `dim`
/// orthonormal vectors of `D'` components drawn uniformly: Gaussian vectors
/// orthonormalized by modified Gram-Schmidt in `f64`, twice (one pass
/// leaves errors that grow with the dimension; two bring them to rounding).
fn rotation(dim: usize, seed: u64) -> Vec<f32> {
    let padded = padded_dim(dim);
    let mut rng = Rng::new(seed);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(dim);
    for _ in 0..dim {
        let mut v: Vec<f64> = (0..padded).map(|_| rng.normal()).collect();
        for _ in 0..2 {
            for b in &basis {
                let p: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
                for (x, y) in v.iter_mut().zip(b) {
                    *x -= p * y;
                }
            }
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            for x in &mut v {
                *x /= n;
            }
        }
        basis.push(v);
    }
    let mut out = vec![0.0f32; padded * dim];
    for (j, b) in basis.iter().enumerate() {
        for (i, &x) in b.iter().enumerate() {
            out[i * dim + j] = x as f32;
        }
    }
    out
}
