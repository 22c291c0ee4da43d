//! 4-bit product quantization, scanned by the FastScan kernel
//! (the method, its error and the query side: [`Pq4`]).

use std::collections::HashSet;
use std::ops::Range;

use rayon::prelude::*;

use crate::error::{check_rows, check_vector};
use crate::kernels::fastscan::{self, MAX_SUBSPACES};
use crate::kernels::KernelTable;
use crate::rng::{splitmix64, Rng};
use crate::{Error, Metric, Result};

/// Centroids per sub-space: one per 4-bit code.
const CENTROIDS: usize = 16;

/// How a [`Pq4`] is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pq4Options {
    /// Components per sub-space (the last sub-space takes what is left).
    /// Two components per 4-bit code, the default, is a quarter of a byte
    /// per component; four halves the codes again at a visible cost. On
    /// 200,000 real SIFT descriptors (`examples/quant_error.rs`) the mean
    /// relative error of the squared L2 estimate over each query's true top
    /// 100 is 0.17 with two and 0.46 with four, and recall@10 after an
    /// exact rerank of the best 100 estimates 0.998 and 0.959.
    pub subspace_dims: usize,
    /// Rows of the training data the centroids are trained on (drawn at
    /// random, by `seed`, when there are more; all of them otherwise).
    pub sample: usize,
    /// Lloyd iterations of k-means per sub-space (fewer when the
    /// assignment stops changing).
    pub iterations: usize,
    /// Seeds the sample and the k-means++ seeding: the same data, options
    /// and seed train the same centroids.
    pub seed: u64,
}

impl Default for Pq4Options {
    fn default() -> Self {
        Pq4Options {
            subspace_dims: 2,
            sample: 20_000,
            iterations: 20,
            seed: 0,
        }
    }
}

/// A trained 4-bit product quantizer: 16 centroids per sub-space.
///
/// The `dim` components are split into `m = ceil(dim / subspace_dims)`
/// contiguous sub-spaces (the last one shorter when `subspace_dims` does not
/// divide `dim`). Each sub-space has 16 centroids, trained with k-means
/// (k-means++ seeding, then Lloyd iterations) on a sample of the data; a
/// vector's code is, per sub-space, the index (`0..16`) of the centroid
/// nearest to its slice, and it decodes to those centroids side by side.
///
/// A query `q` gives a table of `m x 16` partial distances, one per
/// sub-space and centroid ([`Pq4::table`]):
///
/// - squared L2: `|q_j - c|^2`, whose sum over the sub-spaces is exactly
///   `|q - x^|^2` for the decoded vector `x^`;
/// - inner product: `-q_j . c`, plus 1 once, so that the sum is `1 - q . x^`
///   (the crate's [`Metric::InnerProduct`] distance: smaller is nearer).
///
/// Cosine is the inner product of normalized vectors: normalize the data
/// before training and coding, and the query before building its table, and
/// ask for [`Metric::InnerProduct`]; other metrics are refused.
///
/// # The byte table FastScan sums
///
/// The FastScan kernel ([`KernelTable::fastscan_u4`]) adds one byte per
/// sub-space, so the `f32` table is quantized once per query
/// ([`Pq4Table::quantize`]): each sub-space's 16 values are shifted down by
/// their minimum (the minima add up to the estimate's `bias`), and all are
/// coded on one even grid of 256 steps from 0 to `r`, the widest range of
/// a sub-space's values (`step = r / 255`, each value rounded to the
/// nearest step). The grid has to be shared because the kernel adds the
/// bytes of different sub-spaces as they are. A row's estimate is
/// `bias + sum * step` ([`Pq4Lut::estimate`]); each byte is off by at most
/// half a step (and a rounding of the `f32` arithmetic), so the estimate
/// is within `m * 0.5 * (1 + 2^-10) * step` ([`Pq4Lut::rounding_bound`])
/// of the `f32` table's sum ([`Pq4Table::distance_to_codes`]). The table is
/// built by the kernels ([`Pq4::lut`], [`Pq4::lut_into`]): the same bytes on
/// every CPU.
///
/// The estimate ranks candidates; an index reranks the best of them with
/// exact distances.
///
/// ```
/// use swann::kernels::{self, fastscan};
/// use swann::quant::{Pq4, Pq4Options};
/// use swann::Metric;
///
/// let dim = 8;
/// let data: Vec<f32> = (0..100 * dim).map(|i| ((i * 37) % 101) as f32).collect();
/// let pq = Pq4::train(&data, dim, Pq4Options::default())?;
/// let mut blocks = Vec::new();
/// pq.encode_blocks(&data, &mut blocks)?; // 100 rows: 4 blocks of 32
///
/// let query = &data[..dim];
/// let table = pq.table(query, Metric::L2)?; // f32
/// let lut = table.quantize(); // bytes, as pq.lut(query, Metric::L2) gives
/// let mut estimates = vec![0.0f32; 4 * fastscan::BLOCK];
/// lut.scan(kernels::active(), &blocks, &mut estimates);
///
/// let mut codes = vec![0u8; pq.subspaces()];
/// pq.encode(&data[5 * dim..6 * dim], &mut codes)?;
/// let exact = table.distance_to_codes(&codes);
/// assert!((estimates[5] - exact).abs() <= lut.rounding_bound() * 1.001);
/// # Ok::<(), swann::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Pq4 {
    dim: usize,
    subspace_dims: usize,
    /// Sub-space after sub-space; in sub-space `j` (components `a..b`), the
    /// 16 centroids of `b - a` components each, from `16 * a`.
    centroids: Vec<f32>,
    /// The same by component: `cent_t[d * 16 + c]` is component `d` (of
    /// the sub-space holding it) of centroid `c`, so a query's table is
    /// built sixteen centroids at a time ([`KernelTable::pq4_table`]).
    cent_t: Vec<f32>,
    /// The same in [`crate::kernels::pq4_encode_layout`]'s order, which codes
    /// several sub-spaces side by side ([`KernelTable::pq4_encode`]).
    cent_e: Vec<f32>,
}

/// A query's `f32` distance table (see [`Pq4`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Pq4Table {
    /// `values[j * 16 + c]`: the partial distance of centroid `c` of
    /// sub-space `j`.
    values: Vec<f32>,
    /// Added once to every distance (1 for the inner product).
    offset: f32,
}

/// A query's table quantized to bytes for FastScan (see
/// [the byte table](Pq4#the-byte-table-fastscan-sums)). The default is an
/// empty table, to be filled by [`Pq4::lut_into`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pq4Lut {
    bytes: Vec<u8>,
    /// Distance per unit of sum.
    step: f32,
    bias: f32,
}

#[inline]
fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| (x - y) * (x - y)).sum()
}

/// The centroid of `centroids` (16 of `w` components) nearest to `p`, and
/// its squared distance; the lowest index on ties.
#[cfg(test)]
fn nearest(centroids: &[f32], w: usize, p: &[f32]) -> (u8, f32) {
    let mut best = (0u8, f32::INFINITY);
    for (c, centroid) in centroids.chunks_exact(w).enumerate() {
        let d = dist2(p, centroid);
        if d < best.1 {
            best = (c as u8, d);
        }
    }
    best
}

/// Points per [`Nearest`] kernel call: whole lane groups.
const CHUNK: usize = 8 * crate::kernels::PQ4_ENCODE_LANES;

/// Each point's nearest centroid by the encoder's kernel
/// ([`KernelTable::pq4_encode`]): `CHUNK` points at a time, as one vector of
/// `CHUNK` sub-spaces that all have the same 16 centroids, so that the
/// points sit one per lane. The index `nearest` gives (the encoder's
/// definition), at a fraction of the time.
struct Nearest {
    kernels: &'static KernelTable,
    w: usize,
    /// The centroids repeated for each of `CHUNK` sub-spaces, by component.
    rep_t: Vec<f32>,
    /// The last, partial chunk of points, padded with zeros.
    pad: Vec<f32>,
}

impl Nearest {
    fn new(w: usize) -> Nearest {
        Nearest {
            kernels: crate::kernels::active(),
            w,
            rep_t: vec![0.0; CENTROIDS * CHUNK * w],
            pad: vec![0.0; CHUNK * w],
        }
    }

    /// Writes each point's (rows of `w` components) nearest centroid of
    /// `centroids` (16 of `w` components) into `assign`; returns whether
    /// any changed.
    fn assign(&mut self, centroids: &[f32], points: &[f32], assign: &mut [u8]) -> bool {
        let w = self.w;
        for (d, rep) in self.rep_t.chunks_exact_mut(CENTROIDS).enumerate() {
            for (c, x) in rep.iter_mut().enumerate() {
                *x = centroids[c * w + d % w];
            }
        }
        let cent_e = crate::kernels::pq4_encode_layout(&self.rep_t, w);
        let mut codes = [0u8; CHUNK];
        let mut changed = false;
        for (pts, assigned) in points.chunks(CHUNK * w).zip(assign.chunks_mut(CHUNK)) {
            let v = if pts.len() == CHUNK * w {
                pts
            } else {
                self.pad[..pts.len()].copy_from_slice(pts);
                &self.pad[..]
            };
            self.kernels.pq4_encode(v, &cent_e, w, &mut codes);
            for (a, &c) in assigned.iter_mut().zip(&codes) {
                changed |= *a != c;
                *a = c;
            }
        }
        changed
    }
}

/// A uniform draw in `[0, 1)` with 53 random bits.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// k-means of `points` (rows of `w` components, at least one) into 16
/// centroids: k-means++ seeding, then up to `iterations` Lloyd steps. A
/// centroid left without points is moved onto the point farthest from its
/// own centroid (splitting the cluster that fits worst).
fn kmeans(points: &[f32], w: usize, iterations: usize, rng: &mut Rng) -> Vec<f32> {
    let n = points.len() / w;
    let point = |i: usize| &points[i * w..(i + 1) * w];
    let mut centroids = vec![0.0f32; CENTROIDS * w];

    // k-means++: each next centroid is a point drawn with probability
    // proportional to its squared distance to the nearest centroid so far.
    let first = rng.index(n);
    centroids[..w].copy_from_slice(point(first));
    let mut near: Vec<f32> = (0..n).map(|i| dist2(point(i), &centroids[..w])).collect();
    for c in 1..CENTROIDS {
        let total: f64 = near.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 && total.is_finite() {
            let mut target = unit(rng) * total;
            // Rounding can leave `target` just above the last weight: the
            // last point with a positive weight takes it.
            let mut pick = near.iter().rposition(|&d| d > 0.0).unwrap_or(0);
            for (i, &d) in near.iter().enumerate() {
                target -= f64::from(d);
                if target < 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        } else {
            // Fewer than 16 distinct points: repeat one; Lloyd leaves the
            // copies empty.
            rng.index(n)
        };
        centroids[c * w..(c + 1) * w].copy_from_slice(point(pick));
        let centroid = &centroids[c * w..(c + 1) * w];
        for (i, d) in near.iter_mut().enumerate() {
            *d = d.min(dist2(point(i), centroid));
        }
    }

    let mut nearest = Nearest::new(w);
    let mut assign = vec![u8::MAX; n];
    let mut dist = vec![0.0f32; n];
    let mut sums = vec![0.0f64; CENTROIDS * w];
    for _ in 0..iterations {
        let changed = nearest.assign(&centroids, points, &mut assign);
        if !changed {
            break;
        }
        sums.iter_mut().for_each(|s| *s = 0.0);
        let mut counts = [0usize; CENTROIDS];
        for (&a, p) in assign.iter().zip(points.chunks_exact(w)) {
            let c = usize::from(a);
            counts[c] += 1;
            for (s, &x) in sums[c * w..(c + 1) * w].iter_mut().zip(p) {
                *s += f64::from(x);
            }
        }
        if counts.contains(&0) {
            // An empty centroid moves to the worst-fitting point: the
            // points' distances to their centroids before this update.
            for ((d, &a), p) in dist.iter_mut().zip(&assign).zip(points.chunks_exact(w)) {
                let c = usize::from(a);
                *d = dist2(p, &centroids[c * w..(c + 1) * w]);
            }
        }
        for c in 0..CENTROIDS {
            if counts[c] > 0 {
                for (x, &s) in centroids[c * w..(c + 1) * w]
                    .iter_mut()
                    .zip(&sums[c * w..(c + 1) * w])
                {
                    *x = (s / counts[c] as f64) as f32;
                }
            } else {
                // The worst-fitting point (the first of equals) seeds it,
                // and cannot seed another empty centroid this step.
                let (far, &d) = dist.iter().enumerate().fold((0, &0.0f32), |best, (i, d)| {
                    if *d > *best.1 {
                        (i, d)
                    } else {
                        best
                    }
                });
                if d > 0.0 {
                    centroids[c * w..(c + 1) * w].copy_from_slice(point(far));
                    dist[far] = 0.0;
                }
            }
        }
    }
    centroids
}

/// Refuses a code buffer of the wrong length.
fn check_len(what: &str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(Error::InvalidParameter(format!(
            "{what} holds {got} elements, expected {expected}"
        )));
    }
    Ok(())
}

impl Pq4 {
    /// Centroids per sub-space: one per 4-bit code.
    pub const CENTROIDS: usize = CENTROIDS;

    /// Trains 16 centroids per sub-space on `data` (rows of `dim`
    /// components), as `opts` says.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero `dim`, data without a row,
    /// zero `subspace_dims`, `sample` or `iterations`, or more than
    /// [`MAX_SUBSPACES`] sub-spaces; [`Error::RaggedData`] when `data` is
    /// not a whole number of rows; [`Error::NonFinite`] for the first NaN or
    /// infinite value (its `index` counts from the start of `data`).
    pub fn train(data: &[f32], dim: usize, opts: Pq4Options) -> Result<Pq4> {
        if dim == 0 {
            return Err(Error::InvalidParameter("dimension 0".into()));
        }
        check_rows("training data", data.len(), dim)?;
        if data.is_empty() {
            return Err(Error::InvalidParameter(
                "the training data holds no row".into(),
            ));
        }
        for (name, value) in [
            ("subspace_dims", opts.subspace_dims),
            ("sample", opts.sample),
            ("iterations", opts.iterations),
        ] {
            if value == 0 {
                return Err(Error::InvalidParameter(format!("{name} must be positive")));
            }
        }
        let m = dim.div_ceil(opts.subspace_dims);
        if m > MAX_SUBSPACES {
            return Err(Error::InvalidParameter(format!(
                "{m} sub-spaces; FastScan takes at most {MAX_SUBSPACES}"
            )));
        }
        if let Some((index, value)) = crate::error::first_non_finite(data) {
            return Err(Error::NonFinite { index, value });
        }
        let rows = data.len() / dim;
        let picked: Vec<usize> = if rows <= opts.sample {
            (0..rows).collect()
        } else {
            // Floyd's sampling without replacement: `sample` draws, memory
            // for the sample only; sorted so that reads go forward.
            let mut rng = Rng::new(opts.seed);
            let mut set = HashSet::with_capacity(opts.sample);
            for j in rows - opts.sample..rows {
                let t = rng.index(j + 1);
                if !set.insert(t) {
                    set.insert(j);
                }
            }
            let mut picked: Vec<usize> = set.into_iter().collect();
            picked.sort_unstable();
            picked
        };
        let mut pq = Pq4 {
            dim,
            subspace_dims: opts.subspace_dims,
            centroids: Vec::new(),
            cent_t: Vec::new(),
            cent_e: Vec::new(),
        };
        let per_subspace: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|j| {
                let range = pq.range(j);
                let w = range.len();
                let mut points = Vec::with_capacity(picked.len() * w);
                for &r in &picked {
                    points.extend_from_slice(&data[r * dim..][range.clone()]);
                }
                // Each sub-space its own stream: the result does not depend
                // on the order rayon runs them in.
                let mut rng = Rng::new(opts.seed ^ splitmix64(j as u64 + 1));
                kmeans(&points, w, opts.iterations, &mut rng)
            })
            .collect();
        pq.centroids = per_subspace.concat();
        pq.cent_t = pq.by_component();
        pq.cent_e = crate::kernels::pq4_encode_layout(&pq.cent_t, pq.subspace_dims);
        Ok(pq)
    }

    /// A quantizer with the given centroids (as [`Pq4::centroids`] returns
    /// them, e.g. read back from a file).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero `dim` or `subspace_dims`, more
    /// than [`MAX_SUBSPACES`] sub-spaces, or `centroids` not `16 * dim`
    /// long; [`Error::NonFinite`] for the first NaN or infinite centroid
    /// value.
    pub fn from_centroids(dim: usize, subspace_dims: usize, centroids: Vec<f32>) -> Result<Pq4> {
        if dim == 0 || subspace_dims == 0 {
            return Err(Error::InvalidParameter(format!(
                "dimension {dim} with {subspace_dims} components per sub-space"
            )));
        }
        if dim.div_ceil(subspace_dims) > MAX_SUBSPACES {
            return Err(Error::InvalidParameter(format!(
                "{} sub-spaces; FastScan takes at most {MAX_SUBSPACES}",
                dim.div_ceil(subspace_dims)
            )));
        }
        check_len("the centroids", centroids.len(), CENTROIDS * dim)?;
        if let Some((index, value)) = crate::error::first_non_finite(&centroids) {
            return Err(Error::NonFinite { index, value });
        }
        let mut pq = Pq4 {
            dim,
            subspace_dims,
            centroids,
            cent_t: Vec::new(),
            cent_e: Vec::new(),
        };
        pq.cent_t = pq.by_component();
        pq.cent_e = crate::kernels::pq4_encode_layout(&pq.cent_t, pq.subspace_dims);
        Ok(pq)
    }

    /// The centroids by component (the layout of `cent_t`).
    fn by_component(&self) -> Vec<f32> {
        let mut cent_t = vec![0.0f32; self.dim * CENTROIDS];
        for j in 0..self.subspaces() {
            let range = self.range(j);
            for c in 0..CENTROIDS {
                for (i, d) in range.clone().enumerate() {
                    cent_t[d * CENTROIDS + c] = self.centroid(j, c)[i];
                }
            }
        }
        cent_t
    }

    /// Components per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Components per sub-space (the last one may have fewer).
    pub fn subspace_dims(&self) -> usize {
        self.subspace_dims
    }

    /// Sub-spaces `m`: 4-bit codes per vector.
    pub fn subspaces(&self) -> usize {
        self.dim.div_ceil(self.subspace_dims)
    }

    /// The components of sub-space `j`.
    ///
    /// # Panics
    /// If `j >= self.subspaces()`.
    pub fn range(&self, j: usize) -> Range<usize> {
        assert!(
            j < self.subspaces(),
            "sub-space {j} of {}",
            self.subspaces()
        );
        let start = j * self.subspace_dims;
        start..(start + self.subspace_dims).min(self.dim)
    }

    /// Every centroid: sub-space after sub-space, each sub-space's 16
    /// centroids one after the other (`16 * dim` values in all). With
    /// [`Pq4::dim`] and [`Pq4::subspace_dims`], what
    /// [`Pq4::from_centroids`] restores.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// Centroid `c` of sub-space `j` (as many components as the sub-space).
    ///
    /// # Panics
    /// If `j >= self.subspaces()` or `c >= 16`.
    pub fn centroid(&self, j: usize, c: usize) -> &[f32] {
        assert!(c < CENTROIDS, "centroid {c} of {CENTROIDS}");
        let range = self.range(j);
        let w = range.len();
        &self.centroids[CENTROIDS * range.start + c * w..][..w]
    }

    /// The 16 centroids of sub-space `j` and their width.
    #[inline]
    fn subspace(&self, j: usize) -> (&[f32], Range<usize>) {
        let start = j * self.subspace_dims;
        let range = start..(start + self.subspace_dims).min(self.dim);
        (
            &self.centroids[CENTROIDS * range.start..CENTROIDS * range.end],
            range,
        )
    }

    /// Codes checked rows: no validation.
    fn encode_unchecked(&self, v: &[f32], out: &mut [u8]) {
        crate::kernels::active().pq4_encode(v, &self.cent_e, self.subspace_dims, out);
    }

    /// Codes `v` into `out`: per sub-space, the index (`0..16`) of the
    /// nearest centroid (the lowest on ties), one per byte.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `v` is not [`Pq4::dim`] long,
    /// [`Error::NonFinite`] for its first NaN or infinite component, and
    /// [`Error::InvalidParameter`] when `out` is not [`Pq4::subspaces`]
    /// long.
    pub fn encode(&self, v: &[f32], out: &mut [u8]) -> Result<()> {
        check_vector(v, self.dim)?;
        check_len("the code buffer", out.len(), self.subspaces())?;
        self.encode_unchecked(v, out);
        Ok(())
    }

    /// Codes every row of `rows` ([`Pq4::dim`] components each) into `out`
    /// ([`Pq4::subspaces`] bytes per row, row after row), in parallel.
    ///
    /// # Errors
    /// [`Error::RaggedData`] when `rows` is not a whole number of rows,
    /// [`Error::NonFinite`] for the first NaN or infinite value (its `index`
    /// counts from the start of `rows`), and [`Error::InvalidParameter`]
    /// when `out` is not [`Pq4::subspaces`] bytes per row. Nothing is
    /// written on error.
    pub fn encode_batch(&self, rows: &[f32], out: &mut [u8]) -> Result<()> {
        check_rows("rows to encode", rows.len(), self.dim)?;
        let m = self.subspaces();
        check_len("the code buffer", out.len(), rows.len() / self.dim * m)?;
        if let Some((index, value)) = crate::error::first_non_finite(rows) {
            return Err(Error::NonFinite { index, value });
        }
        out.par_chunks_mut(m)
            .zip(rows.par_chunks(self.dim))
            .with_min_len(64)
            .for_each(|(codes, v)| self.encode_unchecked(v, codes));
        Ok(())
    }

    /// Codes every row of `rows` and appends them to `out` as FastScan
    /// blocks of 32 ([`fastscan::pack_blocks`]: the last block padded with
    /// codes 0), ready for [`Pq4Lut::scan`].
    ///
    /// # Errors
    /// As [`Pq4::encode_batch`], and nothing is appended on error.
    pub fn encode_blocks(&self, rows: &[f32], out: &mut Vec<u8>) -> Result<()> {
        check_rows("rows to encode", rows.len(), self.dim)?;
        let mut codes = vec![0u8; rows.len() / self.dim * self.subspaces()];
        self.encode_batch(rows, &mut codes)?;
        fastscan::pack_blocks(&codes, self.subspaces(), out)
            .map_err(|e| Error::InvalidParameter(e.to_string()))
    }

    /// The vector `codes` stand for: each sub-space's centroid, side by
    /// side, into `out`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `codes` is not [`Pq4::subspaces`]
    /// long, holds a code of 16 or more, or `out` is not [`Pq4::dim`] long.
    pub fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        check_len("the codes", codes.len(), self.subspaces())?;
        check_len("the output vector", out.len(), self.dim)?;
        if let Some(j) = codes.iter().position(|&c| usize::from(c) >= CENTROIDS) {
            return Err(Error::InvalidParameter(format!(
                "sub-space {j}: code {} does not fit 4 bits",
                codes[j]
            )));
        }
        for (j, &c) in codes.iter().enumerate() {
            let (centroids, range) = self.subspace(j);
            let w = range.len();
            out[range].copy_from_slice(&centroids[usize::from(c) * w..][..w]);
        }
        Ok(())
    }

    /// The `f32` table of `query`'s partial distances under `metric`:
    /// squared L2 (`|q_j - c|^2`) or inner product (`-q_j . c`, and 1 once:
    /// `1 - q . x^` in all). For cosine, normalize the data and the query
    /// and ask for [`Metric::InnerProduct`].
    ///
    /// # Errors
    /// [`Error::UnsupportedMetric`] for metrics other than
    /// [`Metric::L2`] and [`Metric::InnerProduct`],
    /// [`Error::DimensionMismatch`] for a query that is not [`Pq4::dim`]
    /// long, [`Error::NonFinite`] for its first NaN or infinite component,
    /// and [`Error::InvalidParameter`] when a partial distance overflows
    /// `f32`.
    pub fn table(&self, query: &[f32], metric: Metric) -> Result<Pq4Table> {
        let l2 = table_is_l2(metric)?;
        check_vector(query, self.dim)?;
        let m = self.subspaces();
        let mut values = Vec::with_capacity(m * CENTROIDS);
        for j in 0..m {
            let (centroids, range) = self.subspace(j);
            let q = &query[range.clone()];
            values.extend(centroids.chunks_exact(range.len()).map(|c| {
                if l2 {
                    dist2(q, c)
                } else {
                    -q.iter().zip(c).map(|(&a, &b)| a * b).sum::<f32>()
                }
            }));
        }
        if let Some(at) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidParameter(format!(
                "the partial distance of sub-space {}, centroid {} overflows f32",
                at / CENTROIDS,
                at % CENTROIDS
            )));
        }
        Ok(Pq4Table {
            values,
            offset: if l2 { 0.0 } else { 1.0 },
        })
    }

    /// The byte table FastScan scans for `query` under `metric`: the same
    /// bytes as [`Pq4::table`] [quantized](Pq4Table::quantize), built by
    /// the active kernels without the `f32` table in between (see
    /// [`Pq4::lut_into`]).
    ///
    /// # Errors
    /// As [`Pq4::table`].
    pub fn lut(&self, query: &[f32], metric: Metric) -> Result<Pq4Lut> {
        let mut lut = Pq4Lut::default();
        self.lut_into(
            crate::kernels::active(),
            query,
            metric,
            &mut Vec::new(),
            &mut lut,
        )?;
        Ok(lut)
    }

    /// [`Pq4::lut`] into `lut`, reusing its memory, with `kernels`'
    /// [`pq4_table`](KernelTable::pq4_table) (`values` is scratch): what a
    /// search does once per query. Every kernel table gives the same
    /// bytes.
    ///
    /// # Errors
    /// As [`Pq4::table`]; `lut` is then unspecified.
    pub fn lut_into(
        &self,
        kernels: &KernelTable,
        query: &[f32],
        metric: Metric,
        values: &mut Vec<f32>,
        lut: &mut Pq4Lut,
    ) -> Result<()> {
        self.lut_into_near(kernels, query, metric, &[], 0.0, values, lut)
    }

    /// [`Pq4::lut_into`] for a query with rows known to lie near it, given
    /// by their codes (`near`, [`Pq4::subspaces`] bytes each): each row's
    /// margin is its table distance above the table's floor (the sum of the
    /// sub-spaces' minima that every estimate starts from,
    /// [`Pq4Lut::bias`]), and every partial distance more than `span` times
    /// the largest margin above its sub-space's minimum is coded as that
    /// cap. The grid's 256 steps then span at most the cap instead of the
    /// widest sub-space's range.
    ///
    /// Where a few centroids lie far out (heavy-tailed components: a
    /// centroid for the rare huge values), their partial distances set the
    /// widest range, and the even grid is then so coarse that the small
    /// differences that separate close rows all round to the same byte.
    /// Capped, every row whose partial distances are within the cap keeps
    /// [`Pq4Lut::rounding_bound`] on the finer step, the near rows among
    /// them; a row with a partial distance past the cap is estimated below
    /// the `f32` table's sum, but at least `bias + cap`: with `span > 1`,
    /// behind every near row. Without a cap (no near rows, all of them at
    /// the floor, a `span` that is not positive, or a cap not below the
    /// widest range) the table is [`Pq4::lut_into`]'s.
    ///
    /// # Errors
    /// As [`Pq4::table`]; [`Error::InvalidParameter`] if a near row is not
    /// [`Pq4::subspaces`] codes below 16. `lut` is then unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn lut_into_near(
        &self,
        kernels: &KernelTable,
        query: &[f32],
        metric: Metric,
        near: &[&[u8]],
        span: f32,
        values: &mut Vec<f32>,
        lut: &mut Pq4Lut,
    ) -> Result<()> {
        let m = self.subspaces();
        if let Some((i, c)) = near
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() != m || c.iter().any(|&x| x >= 16))
        {
            return Err(Error::InvalidParameter(format!(
                "near row {i}: {} codes up to {}, not {m} codes below 16",
                c.len(),
                c.iter().max().copied().unwrap_or(0)
            )));
        }
        let l2 = table_is_l2(metric)?;
        if query.len() != self.dim {
            check_vector(query, self.dim)?;
        }
        let m = self.subspaces();
        values.clear();
        values.resize(m * CENTROIDS, 0.0);
        let minima = kernels.pq4_table(query, &self.cent_t, self.subspace_dims, l2, values);
        let bias = if l2 { 0.0 } else { 1.0 } + minima;
        if !bias.is_finite() {
            // A non-finite query component, or a partial distance (or a
            // sub-space's range) past f32.
            check_vector(query, self.dim)?;
            return Err(Error::InvalidParameter(
                "a partial distance of the query's table overflows f32".into(),
            ));
        }
        // Every value is its sub-space's partial distance above the
        // minimum: a row's margin is the sum of its codes' values.
        let margin = near
            .iter()
            .map(|c| {
                let parts = c.iter().enumerate();
                parts
                    .map(|(j, &x)| values[j * CENTROIDS + usize::from(x)])
                    .sum::<f32>()
            })
            .fold(0.0f32, f32::max);
        let cap = span * margin;
        if cap > 0.0 && cap.is_finite() {
            // Each sub-space's values start at 0 (its minimum is in the
            // bias), so the grid runs from 0 to at most `cap`.
            // A select, not `f32::min` (whose NaN rule keeps LLVM from
            // vectorizing the loop): the values are finite here.
            for v in values.iter_mut() {
                *v = if *v > cap { cap } else { *v };
            }
        }
        lut.bytes.resize(values.len(), 0);
        let code = kernels.quantize_u8(values, &mut lut.bytes);
        lut.step = code.scale;
        lut.bias = bias + code.lo * m as f32;
        Ok(())
    }
}

/// Whether a table under `metric` holds squared L2 (else inner product)
/// partial distances; other metrics are refused.
fn table_is_l2(metric: Metric) -> Result<bool> {
    match metric {
        Metric::L2 => Ok(true),
        Metric::InnerProduct => Ok(false),
        other => Err(Error::UnsupportedMetric {
            metric: other,
            index: "4-bit product quantization",
        }),
    }
}

impl Pq4Table {
    /// `values()[j * 16 + c]`: the partial distance of centroid `c` of
    /// sub-space `j`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Sub-spaces `m`.
    pub fn subspaces(&self) -> usize {
        self.values.len() / CENTROIDS
    }

    /// The distance to the vector `codes` decode to, from the `f32` table:
    /// the reference the byte estimates approximate.
    ///
    /// # Panics
    /// If `codes` is not [`Pq4Table::subspaces`] long or holds a code of 16
    /// or more.
    pub fn distance_to_codes(&self, codes: &[u8]) -> f32 {
        assert_eq!(codes.len(), self.subspaces(), "one code per sub-space");
        self.offset
            + codes
                .iter()
                .zip(self.values.chunks_exact(CENTROIDS))
                .map(|(&c, t)| t[usize::from(c)])
                .sum::<f32>()
    }

    /// The table in bytes for FastScan: each sub-space's values shifted
    /// down by its minimum, then all coded on one even grid of 256 steps
    /// from 0 to the widest sub-space range `r` (step `r / 255`, rounded to
    /// the nearest step, half up), as
    /// [`KernelTable::quantize_u8`] codes them. The bias is the minima
    /// summed in sub-space order, plus 1 for the inner product: the bytes
    /// and the estimates of [`Pq4::lut`] exactly. A range past `f32` (values
    /// near `f32::MAX` apart, which [`Pq4::lut`] refuses) gives a step of
    /// infinity.
    pub fn quantize(&self) -> Pq4Lut {
        let mut minima = 0.0f32;
        let mut shifted = Vec::with_capacity(self.values.len());
        for t in self.values.chunks_exact(CENTROIDS) {
            let lo = t
                .iter()
                .fold(f32::INFINITY, |lo, &x| if x < lo { x } else { lo });
            minima += lo;
            shifted.extend(t.iter().map(|&x| x - lo));
        }
        let mut bytes = vec![0u8; shifted.len()];
        let code = crate::kernels::active().quantize_u8(&shifted, &mut bytes);
        Pq4Lut {
            bytes,
            step: code.scale,
            bias: (self.offset + minima) + code.lo * self.subspaces() as f32,
        }
    }
}

impl Pq4Lut {
    /// The `m x 16` bytes the FastScan kernel looks up, sub-space after
    /// sub-space.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes per unit of distance: `1 / step` (infinite for a flat
    /// table, whose step is 0).
    pub fn scale(&self) -> f32 {
        1.0 / self.step
    }

    /// Distance per unit of sum: the grid's step.
    pub fn step(&self) -> f32 {
        self.step
    }

    /// The distance a sum of 0 stands for (the sub-spaces' minima, plus 1
    /// for the inner product).
    pub fn bias(&self) -> f32 {
        self.bias
    }

    /// Sub-spaces `m`.
    pub fn subspaces(&self) -> usize {
        self.bytes.len() / CENTROIDS
    }

    /// The distance estimated from a FastScan sum: `bias + sum * step`.
    #[inline]
    pub fn estimate(&self, sum: u32) -> f32 {
        self.bias + sum as f32 * self.step
    }

    /// How far an estimate can be from the `f32` table's distance
    /// ([`Pq4Table::distance_to_codes`]) by the rounding of the bytes:
    /// half a step per sub-space, and `2^-10` of that for the `f32`
    /// arithmetic of the grid (a byte is `round(x * (1 / step))`, and
    /// `1 / step` is rounded): `m * 0.5 * (1 + 2^-10) * step`.
    pub fn rounding_bound(&self) -> f32 {
        self.subspaces() as f32 * 0.5 * (1.0 + 1.0 / 1024.0) * self.step
    }

    /// Estimated distances to every vector of `blocks` (FastScan blocks of
    /// this quantizer's codes, as [`Pq4::encode_blocks`] writes them), 32
    /// per block, through `table`'s FastScan kernel. The padding vectors of
    /// a last, partial block get estimates too: ignore them.
    ///
    /// # Panics
    /// If `blocks` is not a whole number of blocks of [`Pq4Lut::subspaces`]
    /// sub-spaces or `out` is not 32 per block.
    pub fn scan(&self, table: &KernelTable, blocks: &[u8], out: &mut [f32]) {
        // The sums land in `out` itself (same size), then each is replaced
        // by its estimate: no allocation per call.
        table.fastscan_u4(
            &self.bytes,
            blocks,
            self.subspaces(),
            bytemuck::cast_slice_mut(out),
        );
        for o in out.iter_mut() {
            *o = self.estimate(o.to_bits());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's assignment is `nearest`'s, point for point, for every
    /// width a sub-space takes, with ties (centroids on a coarse grid,
    /// repeated centroids) and a partial last chunk.
    #[test]
    fn kernel_assignment_is_nearest() {
        let mut rng = Rng::new(7);
        let mut value = |coarse: bool| {
            let x = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0;
            if coarse {
                x.round()
            } else {
                x
            }
        };
        for w in [1usize, 2, 3, 4, 5, 8] {
            for coarse in [false, true] {
                for n in [1usize, CHUNK - 1, CHUNK, 3 * CHUNK + 5] {
                    let mut centroids: Vec<f32> =
                        (0..CENTROIDS * w).map(|_| value(coarse)).collect();
                    // Centroid 9 repeats centroid 2: exact ties.
                    let two = centroids[2 * w..3 * w].to_vec();
                    centroids[9 * w..10 * w].copy_from_slice(&two);
                    let points: Vec<f32> = (0..n * w).map(|_| value(coarse)).collect();
                    let mut assign = vec![u8::MAX; n];
                    assert!(Nearest::new(w).assign(&centroids, &points, &mut assign));
                    for (i, p) in points.chunks_exact(w).enumerate() {
                        assert_eq!(assign[i], nearest(&centroids, w, p).0, "w {w} point {i}");
                    }
                    let again = assign.clone();
                    assert!(!Nearest::new(w).assign(&centroids, &points, &mut assign));
                    assert_eq!(assign, again);
                }
            }
        }
    }
}
