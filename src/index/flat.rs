//! Exact search by scanning every vector with the batch kernels: the ground
//! truth for tests and the baseline in benchmarks.
//!
//! ```
//! use swann::index::flat::FlatIndex;
//! use swann::Metric;
//!
//! let mut index = FlatIndex::new(2, Metric::L2)?;
//! index.add(7, &[0.0, 0.0])?;
//! index.add(8, &[3.0, 4.0])?;
//! let hits = index.search(&[2.9, 4.1], 1)?;
//! assert_eq!(hits[0].label, 8);
//! # Ok::<(), swann::Error>(())
//! ```
//!
//! Rows are stored padded to whole cache lines in a [`RowArena`], the same
//! layout on disk, so [`FlatIndex::open_mmap`] scans a file in place.

use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{check_k, check_rows, check_vector, Error, Result};
use crate::index::Neighbor;
use crate::kernels::{self, F32Kernel, KernelTable};
use crate::store::{
    ElemType, FileWriter, FormatError, Header, IndexFile, IndexKind, OpenOptions, RowArena, Slab,
};
use crate::Metric;

/// Section ids of a flat index file.
pub mod section {
    /// Vector rows, `n_items` rows of `dim` `f32` padded to whole 64-byte lines
    /// (normalized for cosine and angular).
    pub const VECTORS: u32 = 1;
    /// Label of each row, `u64`.
    pub const LABELS: u32 = 2;
}

/// Largest dimension a flat file may declare.
const MAX_DIM: u64 = 1 << 24;

/// Rows scored per batch-kernel call: large enough to amortize the call,
/// small enough that the distances stay in L1.
const BLOCK: usize = 256;

/// Exact nearest-neighbour search over `f32` vectors.
pub struct FlatIndex {
    dim: usize,
    metric: Metric,
    kernel: F32Kernel,
    table: &'static KernelTable,
    rows: RowArena<f32>,
    labels: Slab<u64>,
    len: usize,
    /// The file a mapped index views (kept for `verify`).
    source: Option<Arc<IndexFile>>,
}

impl Clone for FlatIndex {
    fn clone(&self) -> Self {
        let mut c = FlatIndex::with_kernels(self.dim, self.metric, self.table)
            .expect("parameters were valid");
        c.rows.resize(self.len);
        for i in 0..self.len {
            c.rows.row_mut(i).copy_from_slice(self.rows.row(i));
        }
        c.labels = Slab::from_vec(self.labels.to_vec());
        c.len = self.len;
        c
    }
}

impl std::fmt::Debug for FlatIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatIndex")
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("len", &self.len)
            .field("mapped", &self.source.is_some())
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq)]
struct Hit(f32, u64);
impl Eq for Hit {}
impl Ord for Hit {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}
impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl FlatIndex {
    /// An empty index of `dim`-dimensional vectors under `metric` (every
    /// metric except Hamming).
    ///
    /// # Errors
    /// As [`with_kernels`](Self::with_kernels).
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        Self::with_kernels(dim, metric, kernels::active())
    }

    /// Like [`FlatIndex::new`], with a given kernel table.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero dimension;
    /// [`Error::UnsupportedMetric`] for Hamming.
    pub fn with_kernels(dim: usize, metric: Metric, table: &'static KernelTable) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidParameter(
                "dimension must be at least 1".into(),
            ));
        }
        let op = metric.f32_op().ok_or(Error::UnsupportedMetric {
            metric,
            index: "flat index over f32 vectors",
        })?;
        Ok(FlatIndex {
            dim,
            metric,
            kernel: table.f32_kernel(op),
            table,
            rows: RowArena::new(dim, 0),
            labels: Slab::default(),
            len: 0,
            source: None,
        })
    }

    /// Floats between row starts.
    fn stride(&self) -> usize {
        self.rows.row_bytes() / 4
    }

    /// The first `len` rows as one slice (rows `stride()` floats apart).
    fn all_rows(&self) -> &[f32] {
        let bytes = &self.rows.as_bytes()[..self.len * self.rows.row_bytes()];
        bytemuck::cast_slice(bytes)
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The labels, in insertion order.
    pub fn labels(&self) -> &[u64] {
        &self.labels[..self.len]
    }

    /// Stored vector number `i` (in insertion order; normalized for cosine/angular).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn vector(&self, i: usize) -> &[f32] {
        assert!(i < self.len, "row {i} of {}", self.len);
        self.rows.row(i)
    }

    /// Makes room for `additional` more vectors.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len + additional;
        if need > self.rows.rows() {
            self.rows.resize(need);
        }
        self.labels
            .with_vec(|v| v.reserve(need.saturating_sub(v.len())));
    }

    /// Appends `v` under `label` (labels need not be unique: this is a scan).
    /// An index opened with [`FlatIndex::open_mmap`] is copied into memory first.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for a vector of the wrong length;
    /// [`Error::NonFinite`] for NaN or infinite components. The index is
    /// unchanged.
    pub fn add(&mut self, label: u64, v: &[f32]) -> Result<()> {
        check_vector(v, self.dim)?;
        if self.rows.is_mapped() {
            self.rows.make_owned();
            self.labels.make_owned();
            self.source = None;
        }
        let i = self.len;
        if i >= self.rows.rows() {
            self.rows.resize(i + 1);
        }
        let row = self.rows.row_mut(i);
        row.copy_from_slice(v);
        if matches!(self.metric, Metric::Cosine | Metric::Angular) {
            self.table.normalize(row);
        }
        self.labels.with_vec(|l| {
            l.truncate(i);
            l.push(label)
        });
        self.len += 1;
        Ok(())
    }

    /// Appends every row of `data` (row-major), labelled `first_label`, `first_label + 1`, ...
    ///
    /// # Errors
    /// [`Error::RaggedData`] when `data` is not a whole number of rows;
    /// [`Error::NonFinite`] for a row with NaN or infinite components, in which
    /// case the rows before it stay added.
    pub fn add_rows(&mut self, first_label: u64, data: &[f32]) -> Result<()> {
        check_rows("data", data.len(), self.dim)?;
        let n = data.len() / self.dim;
        self.reserve(n);
        for (i, row) in data.chunks_exact(self.dim).enumerate() {
            self.add(first_label + i as u64, row)?;
        }
        Ok(())
    }

    fn convert(&self, raw: f32) -> f32 {
        match self.metric {
            Metric::InnerProduct | Metric::Dot => 1.0 - raw,
            Metric::Euclidean => raw.max(0.0).sqrt(),
            // Annoy's angular distance: sqrt(2 - 2 cos) = sqrt(2 * cosine distance).
            Metric::Angular => (2.0 * raw).max(0.0).sqrt(),
            _ => raw,
        }
    }

    /// The exact `k` nearest labels to `query`, nearest first (ties broken
    /// by label). An empty index gives no results.
    ///
    /// # Errors
    /// As [`search_with_filter`](Self::search_with_filter).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.search_with_filter(query, k, |_| true)
    }

    /// The exact `k` nearest labels among those `accept` allows.
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `k == 0`; [`Error::DimensionMismatch`]
    /// for a query of the wrong length; [`Error::NonFinite`] for NaN or
    /// infinite components.
    pub fn search_with_filter<F: Fn(u64) -> bool>(
        &self,
        query: &[f32],
        k: usize,
        accept: F,
    ) -> Result<Vec<Neighbor>> {
        check_k(k)?;
        check_vector(query, self.dim)?;
        let mut q = query.to_vec();
        if matches!(self.metric, Metric::Cosine | Metric::Angular) {
            self.table.normalize(&mut q);
        }
        let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
        let mut dist = [0.0f32; BLOCK];
        let n = self.len();
        let stride = self.stride();
        let all = self.all_rows();
        let mut start = 0;
        while start < n {
            let rows = (n - start).min(BLOCK);
            let base = &all[start * stride..];
            self.kernel.eval_batch(&q, base, stride, &mut dist[..rows]);
            for (i, &d) in dist[..rows].iter().enumerate() {
                let label = self.labels[start + i];
                let hit = Hit(self.convert(d), label);
                if heap.len() < k || hit < *heap.peek().expect("non-empty") {
                    if !accept(label) {
                        continue;
                    }
                    heap.push(hit);
                    if heap.len() > k {
                        heap.pop();
                    }
                }
            }
            start += rows;
        }
        Ok(heap
            .into_sorted_vec()
            .into_iter()
            .map(|Hit(distance, label)| Neighbor { label, distance })
            .collect())
    }

    /// The exact `k` nearest labels to `query` under a distance of the
    /// caller's (hnswlib's custom spaces, for the brute-force index):
    /// `distance(query, row)` for every stored row, smaller is closer, ties
    /// broken by label. Rows are as stored (normalized under cosine and
    /// angular); the index's own metric is not used.
    ///
    /// ```
    /// use swann::index::flat::FlatIndex;
    /// use swann::Metric;
    ///
    /// let mut index = FlatIndex::new(2, Metric::Manhattan)?;
    /// index.add(1, &[5.0, 0.0])?;
    /// index.add(2, &[0.0, 1.0])?;
    /// index.add(3, &[3.0, 0.0])?;
    /// // L1 with the second component weighted ten times the first.
    /// let weights = [1.0f32, 10.0];
    /// let weighted_l1 = |a: &[f32], b: &[f32]| -> f32 {
    ///     weights.iter().zip(a.iter().zip(b)).map(|(w, (x, y))| w * (x - y).abs()).sum()
    /// };
    /// let hits = index.search_by(&[0.0, 0.0], 3, weighted_l1)?;
    /// let labels: Vec<u64> = hits.iter().map(|h| h.label).collect();
    /// assert_eq!(labels, [3, 1, 2]);
    /// assert_eq!(hits[2].distance, 10.0);
    /// # Ok::<(), swann::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ZeroK`] for `k == 0`; [`Error::InvalidParameter`] when
    /// `distance` returns NaN; the query's own errors (length, non-finite
    /// values).
    pub fn search_by<D: Fn(&[f32], &[f32]) -> f32>(
        &self,
        query: &[f32],
        k: usize,
        distance: D,
    ) -> Result<Vec<Neighbor>> {
        check_k(k)?;
        check_vector(query, self.dim)?;
        let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
        for i in 0..self.len() {
            let d = distance(query, &self.rows.row(i)[..self.dim]);
            let label = self.labels[i];
            if d.is_nan() {
                return Err(Error::InvalidParameter(format!(
                    "the distance to label {label} is NaN"
                )));
            }
            let hit = Hit(d, label);
            if heap.len() < k || hit < *heap.peek().expect("non-empty") {
                heap.push(hit);
                if heap.len() > k {
                    heap.pop();
                }
            }
        }
        Ok(heap
            .into_sorted_vec()
            .into_iter()
            .map(|Hit(distance, label)| Neighbor { label, distance })
            .collect())
    }

    /// Searches every row of `queries` in parallel.
    ///
    /// # Errors
    /// [`Error::RaggedData`] when `queries` is not a whole number of
    /// rows, [`Error::ZeroK`] for `k == 0` (with at least one query); [`Error::NonFinite`]
    /// for a query with NaN or infinite components.
    pub fn search_batch(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>> {
        check_rows("query data", queries.len(), self.dim)?;
        queries
            .par_chunks(self.dim)
            .map(|q| self.search(q, k))
            .collect()
    }
}

impl FlatIndex {
    /// Writes the index to `path` atomically (temporary file, fsync, rename;
    /// the format is in `docs/FORMAT.md`, sections in [`section`]).
    ///
    /// # Errors
    /// As [`FileWriter::write_atomic`]: [`Error::Io`] when the file cannot be
    /// written or renamed into place, [`Error::InvalidParameter`] for a `path`
    /// with no file name.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut h = Header::new(IndexKind::Flat, self.metric, ElemType::F32, self.dim as u64);
        h.n_items = self.len as u64;
        h.capacity = self.len as u64;
        let mut w = FileWriter::new(h);
        w.add_section(
            section::VECTORS,
            &self.rows.as_bytes()[..self.len * self.rows.row_bytes()],
        )?;
        w.add_pod_section(section::LABELS, self.labels())?;
        w.write_atomic(path)
    }

    /// Reads a saved index into memory, checking every checksum; the result
    /// takes new vectors.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Format`] for a file
    /// that fails [`IndexFile::load`]'s checks (header, table, checksums) or is
    /// not a flat index of `f32` vectors with consistent sizes, as in
    /// [`from_index_file`](Self::from_index_file); [`Error::UnsupportedMetric`]
    /// for a file whose metric is Hamming.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let file = Arc::new(IndexFile::load(path)?);
        let mut index = Self::from_index_file(file, kernels::active())?;
        index.rows.make_owned();
        index.labels.make_owned();
        index.source = None;
        Ok(index)
    }

    /// Maps a saved index and scans it in place: no copy, O(1) to open (only
    /// the header, section table and section sizes are checked; call
    /// [`FlatIndex::verify`] to check the checksums). Several processes
    /// mapping one file share its pages. Adding to it copies it into memory.
    ///
    /// # Errors
    /// As [`load`](Self::load), except that section checksums are checked only
    /// with `opts.verify` (errors from [`IndexFile::open_mmap`]).
    pub fn open_mmap(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Self> {
        let file = Arc::new(IndexFile::open_mmap(path, opts)?);
        Self::from_index_file(file, kernels::active())
    }

    /// Opens an index from an already-validated [`IndexFile`], viewing its sections. O(1).
    ///
    /// # Errors
    /// [`Error::Format`]: [`FormatError::WrongKind`] for another kind of index,
    /// [`FormatError::WrongElemType`] for vectors that are not `f32`,
    /// [`FormatError::BadCounts`] for a dimension outside `1..=2^24` or
    /// `u32::MAX` items or more, [`FormatError::MissingSection`] or
    /// [`FormatError::SectionLength`] for vector or label sections that do not
    /// match the header; [`Error::UnsupportedMetric`] for Hamming.
    pub fn from_index_file(file: Arc<IndexFile>, table: &'static KernelTable) -> Result<Self> {
        file.expect_kind(IndexKind::Flat)?;
        let h = file.header().clone();
        if h.elem_type != ElemType::F32 {
            return Err(FormatError::WrongElemType {
                expected: ElemType::F32,
                found: h.elem_type,
            }
            .into());
        }
        if h.dim == 0 || h.dim > MAX_DIM {
            return Err(FormatError::BadCounts(format!("dimension {}", h.dim)).into());
        }
        if h.n_items >= u64::from(u32::MAX) {
            return Err(FormatError::BadCounts(format!("{} items", h.n_items)).into());
        }
        let mut index = FlatIndex::with_kernels(h.dim as usize, h.metric, table)?;
        index.rows = RowArena::from_file(&file, section::VECTORS, h.dim as usize, h.n_items)?;
        index.labels = Slab::from_file(&file, section::LABELS, h.n_items)?;
        index.len = h.n_items as usize;
        index.source = Some(file);
        Ok(index)
    }

    /// Verifies the checksums of the file a mapped index views (a no-op for
    /// an index in memory).
    ///
    /// # Errors
    /// [`Error::Format`] ([`FormatError::ChecksumMismatch`] or
    /// [`FormatError::NonZeroPadding`]) when the mapped file's bytes do not
    /// match its checksums.
    pub fn verify(&self) -> Result<()> {
        if let Some(file) = &self.source {
            file.verify()?;
        }
        Ok(())
    }

    /// Whether the index views a mapped file.
    pub fn is_mapped(&self) -> bool {
        self.rows.is_mapped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_order_and_metrics() {
        let mut f = FlatIndex::new(2, Metric::L2).unwrap();
        f.add_rows(0, &[0.0, 0.0, 1.0, 0.0, 0.0, 3.0]).unwrap();
        let r = f.search(&[0.9, 0.0], 3).unwrap();
        assert_eq!(r.iter().map(|n| n.label).collect::<Vec<_>>(), vec![1, 0, 2]);
        assert!((r[0].distance - 0.01).abs() < 1e-6);
        let r = f.search_with_filter(&[0.9, 0.0], 2, |l| l != 1).unwrap();
        assert_eq!(r.iter().map(|n| n.label).collect::<Vec<_>>(), vec![0, 2]);
        assert!(f.search(&[0.0], 1).is_err());
        assert!(f.search(&[0.0, f32::NAN], 1).is_err());
        assert!(f.search(&[0.0, 0.0], 0).is_err());
        let mut ip = FlatIndex::new(2, Metric::InnerProduct).unwrap();
        ip.add_rows(0, &[1.0, 0.0, 2.0, 0.0]).unwrap();
        assert_eq!(ip.search(&[1.0, 0.0], 1).unwrap()[0].label, 1);
        assert!(FlatIndex::new(2, Metric::Hamming).is_err());
    }
}
