//! `swann.Flat`: exact search by scanning every vector.

use parking_lot::RwLock;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rayon::prelude::*;
use swann::index::flat::FlatIndex;
use swann::store::OpenOptions;

use crate::common::{
    array2, check_finite, filled, matrix, parse_metric, with_threads, IntoPyResult, PyFilter,
};

/// Exact (brute-force) nearest-neighbour search over float32 vectors.
///
/// ``Flat(dim, metric="l2")``; metrics as :class:`Hnsw` plus ``"angular"``,
/// ``"euclidean"`` and ``"manhattan"``. Labels need not be unique.
#[pyclass(module = "swann._swann", name = "Flat")]
pub struct PyFlat {
    inner: RwLock<FlatIndex>,
}

#[pymethods]
impl PyFlat {
    #[new]
    #[pyo3(signature = (dim, metric = "l2"))]
    fn new(dim: usize, metric: &str) -> PyResult<Self> {
        let index = FlatIndex::new(dim, parse_metric(metric)?).py()?;
        Ok(PyFlat {
            inner: RwLock::new(index),
        })
    }

    /// Loads an index saved with :meth:`save`. With ``mmap=True`` the file
    /// is memory-mapped and scanned in place (O(1) to open; processes
    /// mapping one file share its pages; the first :meth:`add` copies it
    /// into memory), otherwise read into memory with its checksums checked.
    #[staticmethod]
    #[pyo3(signature = (path, mmap = false))]
    fn load(py: Python<'_>, path: std::path::PathBuf, mmap: bool) -> PyResult<Self> {
        let index = py
            .detach(|| {
                if mmap {
                    FlatIndex::open_mmap(&path, OpenOptions::default())
                } else {
                    FlatIndex::load(&path)
                }
            })
            .py()?;
        Ok(PyFlat {
            inner: RwLock::new(index),
        })
    }

    /// Writes the index to ``path`` (atomically: a temporary file, synced,
    /// renamed); a flat index can be a shard of a :class:`ShardedIndex`.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.read_recursive().save(&path)).py()
    }

    /// Appends the rows of ``data`` under ``labels`` (default: ``len(self)``, ...).
    #[pyo3(signature = (data, labels = None))]
    fn add(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        labels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let dim = self.inner.read_recursive().dim();
        let m = matrix(data, dim, "data")?;
        let ids = match labels {
            Some(obj) => {
                let ids = crate::common::labels(obj, "labels")?;
                if ids.len() != m.rows {
                    return Err(PyValueError::new_err(format!(
                        "{} labels given for {} rows",
                        ids.len(),
                        m.rows
                    )));
                }
                Some(ids)
            }
            None => None,
        };
        let rows = m.data();
        let nrows = m.rows as u64;
        // Check every row first so a bad row adds nothing.
        check_finite(rows, dim, "data")?;
        py.detach(|| {
            let mut index = self.inner.write();
            let start = index.len() as u64;
            let ids = ids.unwrap_or_else(|| (start..start + nrows).collect());
            index.reserve(ids.len());
            for (l, row) in ids.iter().zip(rows.chunks(dim)) {
                index.add(*l, row)?;
            }
            Ok(())
        })
        .py()
    }

    /// Drops every vector stored under one of ``labels``; returns how many
    /// were dropped. O(len): the index is rebuilt without them.
    fn remove(&self, py: Python<'_>, labels: &Bound<'_, PyAny>) -> PyResult<usize> {
        let gone: std::collections::HashSet<u64> = crate::common::labels(labels, "labels")?
            .into_iter()
            .collect();
        py.detach(|| {
            let mut index = self.inner.write();
            let mut kept = FlatIndex::new(index.dim(), index.metric())?;
            kept.reserve(index.len());
            for (i, &l) in index.labels().iter().enumerate() {
                if !gone.contains(&l) {
                    kept.add(l, index.vector(i))?;
                }
            }
            let dropped = index.len() - kept.len();
            *index = kept;
            Ok(dropped)
        })
        .py()
    }

    /// Exact ``k`` nearest labels to each row of ``queries``: ``(labels
    /// uint64 (n, k), distances float32 (n, k))``, padded with ``2**64 - 1``
    /// and ``inf`` when fewer than ``k`` vectors pass.
    #[pyo3(signature = (queries, k = 10, *, num_threads = -1, filter = None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        num_threads: i64,
        filter: Option<Py<PyAny>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        if k == 0 {
            return Err(PyValueError::new_err("k must be at least 1"));
        }
        let dim = self.inner.read_recursive().dim();
        let m = matrix(queries, dim, "queries")?;
        let rows = m.rows;
        let data = m.data();
        let total = rows
            .checked_mul(k)
            .ok_or_else(|| PyValueError::new_err("k too large"))?;
        let mut out_l = filled(total, u64::MAX)?;
        let mut out_d = filled(total, f32::INFINITY)?;
        let filter = filter.map(PyFilter::new);
        let result = py.detach(|| {
            let index = self.inner.read_recursive();
            let one = |q: &[f32], l: &mut [u64], d: &mut [f32]| -> swann::Result<()> {
                let hits = match &filter {
                    None => index.search(q, k)?,
                    Some(f) => index.search_with_filter(q, k, |x| f.accept(x))?,
                };
                for (i, h) in hits.iter().enumerate() {
                    l[i] = h.label;
                    d[i] = h.distance;
                }
                Ok(())
            };
            with_threads(num_threads, || {
                data.par_chunks(dim)
                    .zip(out_l.par_chunks_mut(k))
                    .zip(out_d.par_chunks_mut(k))
                    .try_for_each(|((q, l), d)| one(q, l, d))
            })
        })?;
        if let Some(e) = filter.as_ref().and_then(PyFilter::take_error) {
            return Err(e);
        }
        result.py()?;
        Ok((array2(py, out_l, rows, k)?, array2(py, out_d, rows, k)?))
    }

    /// The labels, in insertion order (uint64).
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let l = self.inner.read_recursive().labels().to_vec();
        crate::common::array1(py, l)
    }

    /// Every stored vector, in insertion order, as float32 ``(len, dim)``
    /// (normalized, for cosine and angular).
    fn vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let index = self.inner.read_recursive();
        let (n, dim) = (index.len(), index.dim());
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            out.extend_from_slice(index.vector(i));
        }
        array2(py, out, n, dim)
    }

    fn __len__(&self) -> usize {
        self.inner.read_recursive().len()
    }

    fn __repr__(&self) -> String {
        let i = self.inner.read_recursive();
        format!(
            "Flat(dim={}, metric={:?}, len={})",
            i.dim(),
            i.metric().name(),
            i.len()
        )
    }

    /// Vector dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.read_recursive().dim()
    }

    /// Metric name.
    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.read_recursive().metric().name()
    }
}
