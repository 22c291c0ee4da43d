//! Screening candidates by a lower bound on their distance, read from a
//! compact byte copy of each arena row.
//!
//! A query that keeps only its `n` nearest candidates reads every candidate
//! row in full (512 bytes for 128 dimensions) although almost all of them
//! end up farther than the `n`-th best. Here each arena row also has a byte
//! code, `x[i] ~ lo + scale * code[i]`, and a bound `slack` on what the
//! coding error and the rounding of the screening arithmetic can change in
//! a dot product with a unit query. From the code alone a candidate gets a
//! lower bound on the distance the engine's kernel would return for it;
//! when that bound is above the `n`-th best distance found so far, the
//! candidate cannot be among the `n` nearest and its row is never read.
//!
//! The bounds are exact, not statistical: they cover the coding error
//! (Cauchy-Schwarz on the residual), every `f32` rounding of the coding, of
//! the code dot product and of the distance kernels (as `gamma(n)` bounds,
//! which hold for any summation order, with or without fused
//! multiply-adds), and the final rounding to `f32` (round to nearest is
//! monotone). So the screened ranking returns exactly what the full one
//! returns. Rows or queries whose norms are so small or large that `f32`
//! products could underflow or overflow are never screened.

use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};
use parking_lot::Mutex;

use crate::kernels::{self, U8Code};
use crate::store::{Line, Slab};
use crate::Metric;

/// The unit roundoff of `f32`, `2^-24`.
const U: f64 = f32::EPSILON as f64 / 2.0;
/// Bytes of [`RowParams`] at the start of a coded row.
const PARAMS: usize = std::mem::size_of::<RowParams>();
/// Norms screened: within these, no `f32` product or sum of squares of the
/// kernels underflows below the bounds' relative slop or overflows.
const NORM_MIN: f64 = 1.0 / (1u64 << 20) as f64;
const NORM_MAX: f64 = (1u64 << 50) as f64;
/// Relative slop for the `f64` arithmetic of a bound (whose own rounding is
/// below `1e-15` relative).
const SLOP: f64 = 1e-12;

/// `gamma(n) = n u / (1 - n u)`: the relative error bound of an `n`-term
/// `f32` sum or dot product, in any order.
fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// What a coded row holds besides its codes.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct RowParams {
    /// The value of code 0.
    lo: f32,
    /// The step between codes.
    scale: f32,
    /// The row's norm from its `f32` sum of squares; the true norm is
    /// within a factor `1 +- 2 gamma(dim + 8)` of it.
    norm: f32,
    /// For a query `q`, `|q.x - (lo sum(q) + scale t)| <= |q| slack`, where
    /// `t` is the code dot product as [`kernels::KernelTable::dot_u8`]
    /// rounds it; infinite when the row is not screened.
    slack: f32,
    /// `1 / norm` rounded: the true inverse norm is within a factor
    /// `1 +- 2 gamma(dim + 8)` of it.
    inv_norm: f32,
    _pad: [f32; 3],
}

impl RowParams {
    /// The parameters of a row coded as `c`, with `n` values.
    fn new(c: U8Code, n: usize) -> Self {
        let unscreened = RowParams {
            lo: c.lo,
            scale: c.scale,
            norm: c.norm_sq.max(0.0).sqrt(),
            slack: f32::INFINITY,
            inv_norm: 0.0,
            _pad: [0.0; 3],
        };
        let (lo, hi) = (f64::from(c.lo), f64::from(c.hi));
        let (xx, ee) = (f64::from(c.norm_sq), f64::from(c.err_sq));
        if ![lo, hi, xx, ee, f64::from(c.scale)]
            .iter()
            .all(|v| v.is_finite())
        {
            return unscreened;
        }
        let norm = xx.sqrt();
        if !(NORM_MIN..=NORM_MAX).contains(&norm) {
            return unscreened;
        }
        let g = gamma(n + 2);
        let root_n = (n as f64).sqrt();
        // Each rounded residual `e~[i]` is within `2.01 u (hi - lo) + u |e~[i]|`
        // of the true `x[i] - lo - scale code[i]` (two roundings of terms of
        // size at most `hi - lo`, one of the difference); their sum of
        // squares rounds down by at most `gamma`, and squares below 2^-120
        // may flush (2^-60 per element covers them).
        let resid = (ee / (1.0 - g)).sqrt() * (1.0 + 2.0 * U)
            + root_n * (2.01 * U * (hi - lo) + 2f64.powi(-60));
        // `sum(|q[i]| * (|lo| + scale code[i])) <= |q| * terms`, which bounds
        // the rounding of the code dot product and of `lo * sum(q)`.
        let norm_up = norm * (1.0 + 2.0 * g);
        let terms = 2.0 * lo.abs() * root_n + norm_up + resid;
        let slack = (resid + gamma(n + 3) * terms) * (1.0 + 4.0 * U);
        let mut slack32 = slack as f32;
        if f64::from(slack32) < slack {
            slack32 = slack32.next_up();
        }
        RowParams {
            norm: norm as f32,
            slack: slack32,
            inv_norm: (1.0 / norm) as f32,
            ..unscreened
        }
    }

    /// Whether the row's bound may be used.
    #[inline(always)]
    pub(crate) fn screened(&self) -> bool {
        self.slack < f32::INFINITY
    }
}

/// Byte codes of a storage's arena rows, for screening candidates by a
/// lower bound on their distance (see [`Storage::screen`]).
///
/// Built by [`MemoryStorage`] when a query first needs them; not
/// constructible outside the crate.
///
/// [`Storage::screen`]: super::Storage::screen
/// [`MemoryStorage`]: super::MemoryStorage
pub struct ScreenCodes {
    dim: usize,
    /// Cache lines per coded row (parameters, then `dim` codes).
    stride: usize,
    /// Rows coded; those in `dirty` were rewritten since.
    rows: usize,
    lines: Slab<Line>,
    dirty: Vec<u32>,
}

impl std::fmt::Debug for ScreenCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenCodes")
            .field("dim", &self.dim)
            .field("rows", &self.rows)
            .finish()
    }
}

impl ScreenCodes {
    fn new(dim: usize) -> Self {
        ScreenCodes {
            dim,
            stride: (PARAMS + dim).div_ceil(std::mem::size_of::<Line>()),
            rows: 0,
            lines: Slab::default(),
            dirty: Vec::new(),
        }
    }

    /// The dimension of the rows coded.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows coded.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The bytes of row `r`.
    #[inline(always)]
    fn bytes(&self, r: usize) -> &[u8] {
        bytemuck::cast_slice(&self.lines[r * self.stride..(r + 1) * self.stride])
    }

    /// Row `r`'s parameters and codes.
    #[inline(always)]
    pub(crate) fn row(&self, r: u32) -> (RowParams, &[u8]) {
        let b = self.bytes(r as usize);
        (
            bytemuck::pod_read_unaligned(&b[..PARAMS]),
            &b[PARAMS..PARAMS + self.dim],
        )
    }

    /// Requests row `r`'s lines into L2.
    #[inline(always)]
    pub(crate) fn prefetch(&self, r: u32) {
        let r = r as usize;
        for l in &self.lines[r * self.stride..(r + 1) * self.stride] {
            kernels::prefetch::prefetch_read_l2((l as *const Line).cast());
        }
    }

    /// Codes `x` as row `r` (which exists).
    fn code(&mut self, r: usize, x: &[f32]) {
        let stride = self.stride;
        let b: &mut [u8] = bytemuck::cast_slice_mut(&mut self.lines[r * stride..(r + 1) * stride]);
        let (head, codes) = b.split_at_mut(PARAMS);
        let c = kernels::active().quantize_u8(x, &mut codes[..x.len()]);
        head.copy_from_slice(bytemuck::bytes_of(&RowParams::new(c, x.len())));
    }

    /// Brings the codes up to date with `vectors` (rows of `dim` values):
    /// recodes rewritten rows and codes new ones.
    fn update(&mut self, vectors: &[f32]) {
        let dim = self.dim;
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        if n < self.rows {
            self.rows = n;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for r in dirty.drain(..) {
            let r = r as usize;
            if r < self.rows {
                self.code(r, &vectors[r * dim..(r + 1) * dim]);
            }
        }
        self.dirty = dirty;
        if n > self.rows {
            self.lines.resize_zeroed(n * self.stride);
            for r in self.rows..n {
                self.code(r, &vectors[r * dim..(r + 1) * dim]);
            }
            self.rows = n;
        }
    }
}

/// [`ScreenCodes`] built when a query first asks for them, after the
/// storage's last change: a storage changes through `&mut` and queries run
/// through `&`, so the codes are published once per change (a `OnceLock`)
/// and kept, when a change comes, in `pending` to be brought up to date
/// rather than rebuilt.
#[derive(Default)]
pub(crate) struct LazyScreen {
    ready: OnceLock<ScreenCodes>,
    pending: Mutex<Option<ScreenCodes>>,
}

impl Clone for LazyScreen {
    /// A clone codes its rows again when first asked.
    fn clone(&self) -> Self {
        LazyScreen::default()
    }
}

impl std::fmt::Debug for LazyScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyScreen")
            .field("ready", &self.ready.get().is_some())
            .finish()
    }
}

impl LazyScreen {
    /// The codes, to change: unpublished first.
    fn pending_mut(&mut self) -> &mut Option<ScreenCodes> {
        if let Some(c) = self.ready.take() {
            *self.pending.get_mut() = Some(c);
        }
        self.pending.get_mut()
    }

    /// Rows were appended to the arena (the next query codes them).
    #[inline(always)]
    pub(crate) fn appended(&mut self) {
        if self.ready.get().is_some() {
            self.pending_mut();
        }
    }

    /// Arena row `r` was overwritten.
    #[inline]
    pub(crate) fn rewritten(&mut self, r: u32) {
        if let Some(c) = self.pending_mut() {
            if (r as usize) < c.rows {
                c.dirty.push(r);
            }
        }
    }

    /// The arena's rows moved or were dropped: code everything afresh.
    pub(crate) fn reset(&mut self) {
        self.ready.take();
        *self.pending.get_mut() = None;
    }

    /// The codes of `vectors` (rows of `dim` values), brought up to date
    /// first if the arena changed since they were last asked for.
    pub(crate) fn get(&self, vectors: &[f32], dim: usize) -> &ScreenCodes {
        self.ready.get_or_init(|| {
            let mut c = self
                .pending
                .lock()
                .take()
                .filter(|c| c.dim == dim)
                .unwrap_or_else(|| ScreenCodes::new(dim));
            c.update(vectors);
            c
        })
    }
}

/// Which kernel output a bound is for.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Squared Euclidean: a lower bound.
    L2,
    /// Dot product: an upper bound (the distances decrease with it).
    Dot,
    /// Cosine distance: a lower bound.
    Cosine,
}

/// A query's part of the bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueryBound {
    kind: Kind,
    /// `sum(q)`, `|q|^2` and bounds on `|q|`, in `f64`.
    sum: f64,
    qq: f64,
    qn_up: f64,
    /// Factors that, times the row's `inv_norm`, bound `1 / (|q| |x|)` as
    /// the cosine kernel computes it from above and below, widened by the
    /// kernel's last roundings.
    inv_up: f64,
    inv_lo: f64,
    /// `gamma(dim + 8)`: covers every `dim`-term `f32` sum of the kernels.
    g: f64,
}

impl QueryBound {
    /// The kind of bound `metric` takes, if any.
    fn kind(metric: Metric) -> Option<Kind> {
        match metric {
            Metric::L2 | Metric::Euclidean => Some(Kind::L2),
            Metric::Dot | Metric::InnerProduct => Some(Kind::Dot),
            Metric::Cosine | Metric::Angular => Some(Kind::Cosine),
            Metric::Manhattan | Metric::Hamming => None,
        }
    }

    /// Whether distances under `metric` can be bounded from codes (all
    /// but Manhattan and Hamming).
    pub(crate) fn supports(metric: Metric) -> bool {
        Self::kind(metric).is_some()
    }

    /// The bound for `query` under `metric`, when its distances can be
    /// bounded from codes: not for Manhattan or Hamming, nor for queries
    /// whose norm is outside the screened range.
    pub(crate) fn new(metric: Metric, query: &[f32]) -> Option<Self> {
        let kind = Self::kind(metric)?;
        let g = gamma(query.len() + 8);
        if query.is_empty() || !(g > 0.0 && g < 1e-2) {
            return None;
        }
        let (sum, qq) = query.iter().fold((0.0f64, 0.0f64), |(s, qq), &v| {
            let v = f64::from(v);
            (s + v, qq + v * v)
        });
        let qn = qq.sqrt();
        if !(NORM_MIN..=NORM_MAX).contains(&qn) {
            return None;
        }
        Some(QueryBound {
            kind,
            sum,
            qq,
            qn_up: qn * (1.0 + SLOP),
            // The kernel's denominator is within a factor 1 +- 2g of
            // |q| |x|, and 1 / |x| within 1 +- 2g of `inv_norm`.
            // ... and the kernel's four roundings after its sums (8u), with
            // the slop of this arithmetic, widen the ratio by a factor.
            inv_up: (1.0 + SLOP) / qn * (1.0 + 6.0 * g) * (1.0 + 8.0 * U + SLOP),
            inv_lo: (1.0 - SLOP) / qn * (1.0 - 4.0 * g) * (1.0 - 8.0 * U - SLOP),
            g,
        })
    }

    /// A bound on the raw kernel output (before `MetricDistance::finish`)
    /// for the row `p` whose code dot product with the query is `t`, such
    /// that `finish(low(..)) <= distance`: a lower bound for squared L2 and
    /// cosine, an upper bound for the dot product (whose distances decrease
    /// with it). Rounded to `f32` to nearest, which keeps it a bound on the
    /// kernel's `f32` result. Only for rows that are
    /// [`screened`](RowParams::screened).
    #[inline(always)]
    pub(crate) fn low(&self, p: RowParams, t: f32) -> f32 {
        let b = self.terms(p, t);
        match self.kind {
            Kind::L2 => {
                let lo = self.qq * (1.0 - SLOP) + b.xn_lo * b.xn_lo - 2.0 * (b.approx + b.err);
                let lo = if lo > 0.0 { lo * (1.0 - 2.0 * b.g) } else { lo };
                (lo - b.l2_slop(self.qq)) as f32
            }
            Kind::Dot => (b.approx + b.err + b.dot_slop()) as f32,
            Kind::Cosine => {
                // The kernel's dot product is at most `num`; over its
                // denominator, at most `ratio` (rounded, plus SLOP).
                let num = b.approx + b.err;
                let inv = if num >= 0.0 { self.inv_up } else { self.inv_lo };
                let ratio = num * f64::from(p.inv_norm) * inv;
                ((1.0 - SLOP) - ratio).min(2.0) as f32
            }
        }
    }

    /// The other side of [`QueryBound::low`]: `distance <= finish(high(..))`.
    #[inline(always)]
    pub(crate) fn high(&self, p: RowParams, t: f32) -> f32 {
        let b = self.terms(p, t);
        match self.kind {
            Kind::L2 => {
                let hi = self.qq * (1.0 + SLOP) + b.xn_up * b.xn_up - 2.0 * (b.approx - b.err);
                (hi * (1.0 + 2.0 * b.g) + b.l2_slop(self.qq)) as f32
            }
            Kind::Dot => (b.approx - b.err - b.dot_slop()) as f32,
            Kind::Cosine => {
                let num = b.approx - b.err;
                let inv = if num >= 0.0 { self.inv_lo } else { self.inv_up };
                let ratio = num * f64::from(p.inv_norm) * inv;
                ((1.0 + SLOP) - ratio).max(0.0) as f32
            }
        }
    }

    #[inline(always)]
    fn terms(&self, p: RowParams, t: f32) -> Terms {
        let g = self.g;
        let xn = f64::from(p.norm);
        let xn_up = xn * (1.0 + 2.0 * g);
        Terms {
            g,
            approx: f64::from(p.lo) * self.sum + f64::from(p.scale) * f64::from(t),
            err: self.qn_up * (f64::from(p.slack) + g * xn_up),
            xn_lo: xn * (1.0 - 2.0 * g),
            xn_up,
        }
    }
}

/// The pieces every bound is made of.
struct Terms {
    g: f64,
    /// `lo sum(q) + scale t`: `q.x` and the kernels' dot products are
    /// within `err` of it (the coding's `|q| slack`, the kernels' rounding
    /// `g |q| |x|`).
    approx: f64,
    err: f64,
    /// Bounds on `|x|`.
    xn_lo: f64,
    xn_up: f64,
}

impl Terms {
    /// Slop for the `f64` arithmetic of an L2 bound: the squared L2
    /// distance is `|q|^2 + |x|^2 - 2 q.x`, and the kernel's sum of squared
    /// differences is within a factor `1 +- 2g` of it.
    #[inline(always)]
    fn l2_slop(&self, qq: f64) -> f64 {
        SLOP * (qq + self.xn_up * self.xn_up + 2.0 * (self.approx.abs() + self.err))
    }

    #[inline(always)]
    fn dot_slop(&self) -> f64 {
        SLOP * (self.approx.abs() + self.err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::lsh::Distance;
    use crate::index::lsh::MetricDistance;
    use proptest::prelude::*;

    const METRICS: [Metric; 6] = [
        Metric::L2,
        Metric::Euclidean,
        Metric::Dot,
        Metric::InnerProduct,
        Metric::Cosine,
        Metric::Angular,
    ];

    /// The screened bounds on `metric`'s distance from `q` to `x`, or
    /// `None` when the pair is not screened.
    fn bounds(metric: Metric, q: &[f32], x: &[f32]) -> Option<(f32, f32)> {
        let mut codes = ScreenCodes::new(x.len());
        codes.update(x);
        let (p, c) = codes.row(0);
        let qb = QueryBound::new(metric, q)?;
        if !p.screened() {
            return None;
        }
        let t = kernels::active().dot_u8(q, c);
        let m = MetricDistance::new(metric).unwrap();
        Some((m.finish(qb.low(p, t)), m.finish(qb.high(p, t))))
    }

    fn lower_bound(metric: Metric, q: &[f32], x: &[f32]) -> Option<f32> {
        bounds(metric, q, x).map(|b| b.0)
    }

    /// Vectors of `dim` values around `offset`, with a spread of `scale`.
    fn vector(dim: usize) -> impl Strategy<Value = Vec<f32>> {
        (
            prop::collection::vec(-1.0f32..1.0, dim),
            prop::sample::select(vec![1e-6f32, 1e-3, 1.0, 100.0, 1e6]),
            prop::sample::select(vec![0.0f32, 1.0, -3.0, 1000.0]),
        )
            .prop_map(|(v, scale, offset)| v.iter().map(|x| x * scale + offset * scale).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The bounds always bracket the kernel's distance, including for a
        /// query that is the row itself or a tiny perturbation of it
        /// (where squared L2 cancels), and for every dimension tail.
        #[test]
        fn bounds_never_exceed_the_kernel_distance(
            dim in 1usize..70,
            seed in any::<u64>(),
            x in vector(69),
            q in vector(69),
            nudge in prop::sample::select(vec![0.0f32, 1e-7, 1e-3]),
        ) {
            let x = &x[..dim];
            let near: Vec<f32> = x.iter().enumerate()
                .map(|(i, v)| v * (1.0 + nudge * ((seed >> (i % 64)) & 1) as f32))
                .collect();
            for q in [&q[..dim], x, &near[..]] {
                for m in METRICS {
                    let d = MetricDistance::new(m).unwrap().distance(q, x);
                    if let Some((lb, ub)) = bounds(m, q, x) {
                        prop_assert!(lb <= d, "{m:?}: bound {lb} > distance {d} (dim {dim})");
                        prop_assert!(d <= ub, "{m:?}: bound {ub} < distance {d} (dim {dim})");
                    }
                }
            }
        }
    }

    #[test]
    fn sift_like_rows_are_screened_tightly() {
        // Non-negative integer-valued rows like SIFT's: the bound is within
        // a few hundredths of the cosine distance.
        let x: Vec<f32> = (0..128).map(|i| ((i * 37) % 150) as f32).collect();
        let q: Vec<f32> = (0..128).map(|i| ((i * 53) % 140) as f32).collect();
        let d = MetricDistance::new(Metric::Cosine)
            .unwrap()
            .distance(&q, &x);
        let (lb, ub) = bounds(Metric::Cosine, &q, &x).expect("screened");
        assert!(lb <= d && d - lb < 0.02, "bound {lb}, distance {d}");
        assert!(ub >= d && ub - d < 0.02, "bound {ub}, distance {d}");
    }

    #[test]
    fn extreme_norms_are_not_screened() {
        let tiny = vec![1e-30f32; 16];
        let huge = vec![1e30f32; 16];
        let plain = vec![1.0f32; 16];
        assert!(lower_bound(Metric::L2, &plain, &tiny).is_none());
        assert!(lower_bound(Metric::L2, &plain, &huge).is_none());
        assert!(lower_bound(Metric::L2, &tiny, &plain).is_none());
        assert!(lower_bound(Metric::Manhattan, &plain, &plain).is_none());
        assert!(lower_bound(Metric::L2, &plain, &plain).is_some());
    }

    #[test]
    fn rewritten_and_appended_rows_are_recoded() {
        let dim = 4;
        let mut lazy = LazyScreen::default();
        let mut v = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(lazy.get(&v, dim).rows(), 2);
        v[4..].copy_from_slice(&[-1.0, 0.0, 9.0, 2.0]);
        lazy.rewritten(1);
        v.extend_from_slice(&[0.5, 0.5, 0.5, 0.25]);
        lazy.appended();
        let codes = lazy.get(&v, dim);
        assert_eq!(codes.rows(), 3);
        let mut fresh = ScreenCodes::new(dim);
        fresh.update(&v);
        for r in 0..3 {
            assert_eq!(codes.row(r).1, fresh.row(r).1, "row {r}");
            assert_eq!(
                bytemuck::bytes_of(&codes.row(r).0),
                bytemuck::bytes_of(&fresh.row(r).0)
            );
        }
    }
}
