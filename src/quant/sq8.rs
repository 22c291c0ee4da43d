//! Scalar 8-bit quantization with integer distance estimates.
//!
//! Component `d` of a vector is coded on an even grid of 256 steps from
//! `lo[d]` to `hi[d]`: `c[d] = round((clamp(x[d]) - lo[d]) / s[d])`, with
//! `s[d] = (hi[d] - lo[d]) / 255`, and decodes to `x^[d] = lo[d] + s[d] c[d]`.
//!
//! A query `q` estimates `q . x^` without decoding: `q . x^ = q . lo +
//! sum((q[d] s[d]) c[d])`. The weights `w[d] = q[d] s[d]` are quantized once
//! per query to `i8` with one scale `a` (`w[d] ~ a qi[d]`), so each row costs
//! one exact integer dot product `sum(qi[d] c[d])` and two multiply-adds:
//!
//! - inner product: `q . x ~ q . lo + a * dot(qi, c)`;
//! - squared L2: `|q - x|^2 ~ |q|^2 - 2 (q . x^) + |x^|^2`, with `|x^|^2`
//!   stored per row when it is coded.
//!
//! Cosine is the inner product of normalized vectors (normalize before
//! coding and before preparing the query).

use crate::kernels::KernelTable;
use crate::{Error, Metric, Result};

/// How an [`Sq8`] is trained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sq8Options {
    /// Rows of the training data used (evenly spaced; all when fewer).
    pub sample: usize,
    /// The share of a dimension's sampled values left outside its grid at
    /// each end (0 keeps the full range; 0.001 clips the lowest and highest
    /// 0.1%, which are then coded as the grid's ends).
    pub clip: f64,
}

impl Default for Sq8Options {
    fn default() -> Self {
        Sq8Options {
            sample: 20_000,
            clip: 0.0,
        }
    }
}

/// A trained scalar 8-bit quantizer (per-dimension grids).
#[derive(Clone, Debug, PartialEq)]
pub struct Sq8 {
    lo: Vec<f32>,
    step: Vec<f32>,
}

/// A query prepared for [`Sq8`] estimates (see the module documentation).
#[derive(Clone, Debug)]
pub struct Sq8Query {
    qi: Vec<i8>,
    /// `w[d] ~ scale * qi[d]`.
    scale: f32,
    /// `q . lo`.
    offset: f32,
    /// `|q|^2`.
    norm_sq: f32,
    /// Squared L2 (`true`) or `1 - q . x`.
    l2: bool,
}

impl Sq8Query {
    /// The query's weights quantized to `i8` (the integer kernel's input).
    pub fn codes(&self) -> &[i8] {
        &self.qi
    }
}

impl Sq8 {
    /// Trains the grids on `data` (rows of `dim` components).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero dimension, data that is not a
    /// whole number of rows or holds no row, a zero sample or a clip share
    /// outside `0..0.5`; [`Error::NonFinite`] for NaN or infinite values.
    pub fn train(data: &[f32], dim: usize, opts: Sq8Options) -> Result<Sq8> {
        if dim == 0 || data.is_empty() || !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidParameter(format!(
                "training data of {} values is not a whole, non-empty number of rows of dimension {dim}",
                data.len()
            )));
        }
        if opts.sample == 0 {
            return Err(Error::InvalidParameter(
                "the sample must hold at least one row".into(),
            ));
        }
        if !(0.0..0.5).contains(&opts.clip) {
            return Err(Error::InvalidParameter(format!(
                "the clip share must be in [0, 0.5), got {}",
                opts.clip
            )));
        }
        if let Some((index, value)) = crate::error::first_non_finite(data) {
            return Err(Error::NonFinite { index, value });
        }
        let rows = data.len() / dim;
        let take = rows.min(opts.sample);
        // Evenly spaced rows: the sample covers the whole file, not its head.
        let picked: Vec<usize> = (0..take).map(|i| i * rows / take).collect();
        let mut lo = vec![0.0f32; dim];
        let mut step = vec![0.0f32; dim];
        let mut column = Vec::with_capacity(take);
        for d in 0..dim {
            column.clear();
            column.extend(picked.iter().map(|&r| data[r * dim + d]));
            let (a, b) = if opts.clip > 0.0 {
                column.sort_unstable_by(f32::total_cmp);
                let k = ((take as f64) * opts.clip).floor() as usize;
                (
                    column[k.min(take - 1)],
                    column[(take - 1).saturating_sub(k)],
                )
            } else {
                column
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                        (a.min(x), b.max(x))
                    })
            };
            lo[d] = a;
            step[d] = (b - a) / 255.0;
        }
        Ok(Sq8 { lo, step })
    }

    /// A quantizer with the given grids (as [`Sq8::grids`] returns them,
    /// e.g. read back from a file).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the lengths differ or are zero, a
    /// value is not finite, or a step is negative.
    pub fn from_grids(lo: Vec<f32>, step: Vec<f32>) -> Result<Sq8> {
        if lo.is_empty() || lo.len() != step.len() {
            return Err(Error::InvalidParameter(format!(
                "grids of {} low ends and {} steps",
                lo.len(),
                step.len()
            )));
        }
        if let Some(d) =
            (0..lo.len()).find(|&d| !lo[d].is_finite() || !step[d].is_finite() || step[d] < 0.0)
        {
            return Err(Error::InvalidParameter(format!(
                "grid {d}: low end {}, step {}",
                lo[d], step[d]
            )));
        }
        Ok(Sq8 { lo, step })
    }

    /// Every dimension's low end, then every dimension's step.
    pub fn grids(&self) -> (&[f32], &[f32]) {
        (&self.lo, &self.step)
    }

    /// Components per vector.
    pub fn dim(&self) -> usize {
        self.lo.len()
    }

    /// The grid of dimension `d`: its low end and its step.
    pub fn grid(&self, d: usize) -> (f32, f32) {
        (self.lo[d], self.step[d])
    }

    /// Codes `v` into `out` and returns `|x^|^2`, the squared norm of the
    /// decoded vector (the per-row term squared-L2 estimates need). Values
    /// outside a grid are coded as its nearer end.
    ///
    /// # Panics
    /// If `v` or `out` is not [`Sq8::dim`] long.
    pub fn encode(&self, v: &[f32], out: &mut [u8]) -> f32 {
        assert_eq!(v.len(), self.dim(), "vector length");
        assert_eq!(out.len(), self.dim(), "code length");
        let mut norm = 0.0f32;
        for (((c, &x), &lo), &s) in out.iter_mut().zip(v).zip(&self.lo).zip(&self.step) {
            let code = if s > 0.0 {
                ((x - lo) / s).round().clamp(0.0, 255.0)
            } else {
                0.0
            };
            *c = code as u8;
            let back = lo + s * code;
            norm += back * back;
        }
        norm
    }

    /// The decoded vector of `codes`.
    ///
    /// # Panics
    /// If `codes` is not [`Sq8::dim`] long.
    pub fn decode(&self, codes: &[u8]) -> Vec<f32> {
        assert_eq!(codes.len(), self.dim(), "code length");
        codes
            .iter()
            .zip(&self.lo)
            .zip(&self.step)
            .map(|((&c, &lo), &s)| lo + s * f32::from(c))
            .collect()
    }

    /// Prepares `q` for estimates under `metric` (squared L2, or `1 - q . x`
    /// for inner product, dot and cosine, as the HNSW index reports them)
    /// against codes of this quantizer.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for a query of another length,
    /// [`Error::NonFinite`] for NaN or infinite components,
    /// [`Error::UnsupportedMetric`] for other metrics.
    pub fn prepare(&self, q: &[f32], metric: Metric) -> Result<Sq8Query> {
        let l2 = match metric {
            Metric::L2 => true,
            Metric::InnerProduct | Metric::Dot | Metric::Cosine => false,
            other => {
                return Err(Error::UnsupportedMetric {
                    metric: other,
                    index: "8-bit scalar quantization",
                })
            }
        };
        if q.len() != self.dim() {
            return Err(Error::DimensionMismatch {
                expected: self.dim(),
                got: q.len(),
            });
        }
        if let Some((index, value)) = crate::error::first_non_finite(q) {
            return Err(Error::NonFinite { index, value });
        }
        let w: Vec<f32> = q.iter().zip(&self.step).map(|(&x, &s)| x * s).collect();
        let peak = w.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
        let scale = if peak > 0.0 { peak / 127.0 } else { 1.0 };
        let qi = w
            .iter()
            .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Ok(Sq8Query {
            qi,
            scale,
            offset: q.iter().zip(&self.lo).map(|(&x, &l)| x * l).sum(),
            norm_sq: q.iter().map(|&x| x * x).sum(),
            l2,
        })
    }

    /// Estimates `q . x` from the integer dot product `dot` of the query's
    /// codes with a row's codes (what the kernels return).
    #[inline]
    pub fn estimate_dot(&self, q: &Sq8Query, dot: i32) -> f32 {
        q.offset + q.scale * dot as f32
    }

    /// Estimates the distance the query was prepared for from the integer
    /// dot product and the row's `|x^|^2` from [`Sq8::encode`].
    #[inline]
    pub fn estimate(&self, q: &Sq8Query, dot: i32, row_norm_sq: f32) -> f32 {
        let qx = self.estimate_dot(q, dot);
        if q.l2 {
            q.norm_sq - 2.0 * qx + row_norm_sq
        } else {
            1.0 - qx
        }
    }

    /// Estimated distances from `q` to `out.len()` coded rows (`codes`,
    /// `stride` bytes apart, with their `norms`), through `table`'s batch
    /// integer kernel.
    ///
    /// # Panics
    /// If `stride` is below [`Sq8::dim`], `codes` is too short for the rows,
    /// or `norms` is shorter than `out`.
    pub fn estimate_batch(
        &self,
        table: &KernelTable,
        q: &Sq8Query,
        codes: &[u8],
        stride: usize,
        norms: &[f32],
        out: &mut [f32],
    ) {
        assert!(norms.len() >= out.len(), "one norm per row");
        // The integer dot products land in `out` itself (same size), then
        // each is replaced by its estimate: no allocation per call.
        table.dot_u8i8_batch(&q.qi, codes, stride, bytemuck::cast_slice_mut(out));
        for (o, &n) in out.iter_mut().zip(norms) {
            let dot = o.to_bits() as i32;
            *o = self.estimate(q, dot, n);
        }
    }
}
