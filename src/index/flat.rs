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

use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::error::{check_vector, Error, Result};
use crate::index::Neighbor;
use crate::kernels::{self, F32Kernel, KernelTable};
use crate::store::{padded_len, AlignedVec};
use crate::Metric;

/// Rows scored per batch-kernel call: large enough to amortize the call,
/// small enough that the distances stay in L1.
const BLOCK: usize = 256;

/// Exact nearest-neighbour search over `f32` vectors.
#[derive(Clone, Debug)]
pub struct FlatIndex {
    dim: usize,
    stride: usize,
    metric: Metric,
    kernel: F32Kernel,
    table: &'static KernelTable,
    data: AlignedVec<f32>,
    labels: Vec<u64>,
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
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        Self::with_kernels(dim, metric, kernels::active())
    }

    /// Like [`FlatIndex::new`], with a given kernel table.
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
            stride: padded_len(dim, 4),
            metric,
            kernel: table.f32_kernel(op),
            table,
            data: AlignedVec::new(),
            labels: Vec::new(),
        })
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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
        &self.labels
    }

    /// Stored vector number `i` (in insertion order; normalized for cosine/angular).
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.data[i * self.stride..i * self.stride + self.dim]
    }

    /// Makes room for `additional` more vectors.
    pub fn reserve(&mut self, additional: usize) {
        self.data.reserve_exact(additional * self.stride);
        self.labels.reserve_exact(additional);
    }

    /// Appends `v` under `label` (labels need not be unique: this is a scan).
    pub fn add(&mut self, label: u64, v: &[f32]) -> Result<()> {
        check_vector(v, self.dim)?;
        let start = self.data.len();
        self.data.extend_from_slice(v);
        self.data.resize_zeroed(start + self.stride);
        if matches!(self.metric, Metric::Cosine | Metric::Angular) {
            self.table
                .normalize(&mut self.data.as_mut_slice()[start..start + self.dim]);
        }
        self.labels.push(label);
        Ok(())
    }

    /// Appends every row of `data` (row-major), labelled `first_label`, `first_label + 1`, ...
    pub fn add_rows(&mut self, first_label: u64, data: &[f32]) -> Result<()> {
        if data.len() % self.dim != 0 {
            return Err(Error::InvalidParameter(format!(
                "data holds {} elements, not a multiple of the dimension {}",
                data.len(),
                self.dim
            )));
        }
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
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.search_with_filter(query, k, |_| true)
    }

    /// The exact `k` nearest labels among those `accept` allows.
    pub fn search_with_filter<F: Fn(u64) -> bool>(
        &self,
        query: &[f32],
        k: usize,
        accept: F,
    ) -> Result<Vec<Neighbor>> {
        if k == 0 {
            return Err(Error::InvalidParameter("k must be at least 1".into()));
        }
        check_vector(query, self.dim)?;
        let mut q = query.to_vec();
        if matches!(self.metric, Metric::Cosine | Metric::Angular) {
            self.table.normalize(&mut q);
        }
        let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
        let mut dist = [0.0f32; BLOCK];
        let n = self.len();
        let mut start = 0;
        while start < n {
            let rows = (n - start).min(BLOCK);
            let base = &self.data[start * self.stride..];
            self.kernel
                .eval_batch(&q, base, self.stride, &mut dist[..rows]);
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

    /// Searches every row of `queries` in parallel.
    pub fn search_batch(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>> {
        if queries.len() % self.dim != 0 {
            return Err(Error::InvalidParameter(format!(
                "query data holds {} elements, not a multiple of the dimension {}",
                queries.len(),
                self.dim
            )));
        }
        queries
            .par_chunks(self.dim)
            .map(|q| self.search(q, k))
            .collect()
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
