//! Distances an [`Engine`](super::Engine) ranks candidates by.

use crate::error::{Error, Result};
use crate::kernels::{self, F32Kernel, PreparedQuery};
use crate::Metric;

/// A distance between two vectors of the same length; smaller is closer.
///
/// Implement it to rank candidates by your own measure; the crate's metrics
/// come as [`MetricDistance`]. `distance_batch` has a default that calls
/// `distance` once per row; override it when a batch form is faster.
///
/// ```
/// use swann::index::lsh::Distance;
///
/// /// Chebyshev (L-infinity) distance.
/// struct Chebyshev;
/// impl Distance for Chebyshev {
///     fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
///         a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
///     }
/// }
/// assert_eq!(Chebyshev.distance(&[0.0, 3.0], &[1.0, -1.0]), 4.0);
/// ```
pub trait Distance: Send + Sync {
    /// The distance between `a` and `b` (`a.len() == b.len()`).
    fn distance(&self, a: &[f32], b: &[f32]) -> f32;

    /// Distances from `query` to each of the `out.len()` rows packed in
    /// `rows` (row `i` is `rows[i * query.len()..(i + 1) * query.len()]`).
    fn distance_batch(&self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        let dim = query.len();
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim.max(1))) {
            *o = self.distance(query, row);
        }
    }
}

/// One of the crate's [`Metric`]s on the dispatched kernels, reported as a
/// distance (smaller is closer): `L2` squared Euclidean, `Euclidean` its
/// square root, `InnerProduct` `1 - a.b`, `Cosine` `1 - cos`, `Angular`
/// `sqrt(2 - 2 cos)`, `Manhattan` L1, and `Dot` the negated dot product
/// `-a.b` (so the largest dot product ranks first).
#[derive(Clone, Copy, Debug)]
pub struct MetricDistance {
    metric: Metric,
    kernel: F32Kernel,
}

impl MetricDistance {
    /// The distance for `metric` on the [`kernels::active`] table.
    ///
    /// # Errors
    /// [`Error::UnsupportedMetric`] for `Hamming`, which is over bit-packed
    /// vectors, not the `f32` vectors an engine stores.
    pub fn new(metric: Metric) -> Result<Self> {
        let op = metric.f32_op().ok_or(Error::UnsupportedMetric {
            metric,
            index: "the LSH engine",
        })?;
        Ok(MetricDistance {
            metric,
            kernel: kernels::active().f32_kernel(op),
        })
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// `query` prepared for [`MetricDistance::gather`].
    #[inline]
    pub(crate) fn prepare<'q>(&self, query: &'q [f32]) -> PreparedQuery<'q> {
        self.kernel.prepare(query)
    }

    /// `out[i]` = the distance from the prepared query to arena row
    /// `rows[i]` of `vectors` (rows of the query's length, back to back),
    /// equal bit for bit to [`Distance::distance`] on that row.
    #[inline]
    pub(crate) fn gather(
        &self,
        query: &PreparedQuery<'_>,
        vectors: &[f32],
        rows: &[u32],
        out: &mut [f32],
    ) {
        let dim = query.query().len();
        self.kernel.eval_gather(query, vectors, dim, rows, out);
        self.finish_all(out);
    }

    /// [`MetricDistance::finish`] on every raw kernel output in `out`
    /// (nothing to do for the metrics whose distance is the raw output).
    #[inline]
    fn finish_all(&self, out: &mut [f32]) {
        if !matches!(self.metric, Metric::L2 | Metric::Cosine | Metric::Manhattan) {
            for o in out.iter_mut() {
                *o = self.finish(*o);
            }
        }
    }

    /// The distance from the kernel's raw output (monotone in it:
    /// non-decreasing for L2, Euclidean, cosine, angular and Manhattan,
    /// non-increasing for inner product and dot).
    #[inline]
    pub(crate) fn finish(&self, raw: f32) -> f32 {
        match self.metric {
            Metric::Euclidean => raw.max(0.0).sqrt(),
            Metric::InnerProduct => 1.0 - raw,
            Metric::Angular => (2.0 * raw).max(0.0).sqrt(),
            Metric::Dot => -raw,
            Metric::L2 | Metric::Cosine | Metric::Manhattan | Metric::Hamming => raw,
        }
    }
}

impl Distance for MetricDistance {
    #[inline]
    fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        self.finish(self.kernel.eval(a, b))
    }

    #[inline]
    fn distance_batch(&self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        self.kernel.eval_batch(query, rows, query.len(), out);
        self.finish_all(out);
    }
}
