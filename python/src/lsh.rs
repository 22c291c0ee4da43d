//! `swann.Lsh`: NearPy's locality-sensitive hashing engine.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use swann::index::lsh::{Engine, Filter, LshHash};

use crate::common::{check_finite, matrix, parse_metric, IntoPyResult};

/// A locality-sensitive hashing engine (NearPy's method) over float32
/// vectors with integer labels.
///
/// ``Lsh(dim, *, bits=10, tables=1, metric="cosine", n_nearest=10,
/// bin_width=None, seed=0)``: ``tables`` hashes of ``bits`` random
/// projections each (binary projections, or discretized ones of width
/// ``bin_width``), the hash of table ``t`` seeded with ``seed + t``.
/// Candidates sharing a bucket with the query are ranked by ``metric``
/// (``"none"``: unranked) and the ``n_nearest`` best returned, each label once.
#[pyclass(module = "swann._swann", name = "Lsh")]
pub struct PyLsh {
    inner: RwLock<Engine<u64>>,
    next: AtomicU64,
}

#[pymethods]
impl PyLsh {
    #[new]
    #[pyo3(signature = (dim, *, bits = 10, tables = 1, metric = "cosine", n_nearest = 10, bin_width = None, seed = 0))]
    fn new(
        dim: usize,
        bits: usize,
        tables: usize,
        metric: &str,
        n_nearest: usize,
        bin_width: Option<f32>,
        seed: u64,
    ) -> PyResult<Self> {
        if tables == 0 {
            return Err(PyValueError::new_err("tables must be at least 1"));
        }
        let hashes = (0..tables as u64)
            .map(|t| match bin_width {
                None => LshHash::random_binary(&format!("rbp{t}"), dim, bits, seed + t),
                Some(w) => LshHash::random_discretized(&format!("rdp{t}"), dim, bits, w, seed + t),
            })
            .collect::<swann::Result<Vec<_>>>()
            .py()?;
        let builder = Engine::builder(dim).hashes(hashes);
        let engine = if metric.eq_ignore_ascii_case("none") {
            builder.no_distance().filters([Filter::Unique]).build()
        } else {
            builder
                .metric(parse_metric(metric)?)
                .filters([Filter::Unique, Filter::Nearest(n_nearest)])
                .build()
        }
        .py()?;
        Ok(PyLsh {
            inner: RwLock::new(engine),
            next: AtomicU64::new(0),
        })
    }

    /// Stores the rows of ``data`` under ``labels`` (default: a running
    /// count, 0, 1, ...). Releases the GIL.
    #[pyo3(signature = (data, labels = None))]
    fn store(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        labels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let dim = self.inner.read_recursive().dim();
        let m = matrix(data, dim, "data")?;
        let rows = m.data();
        check_finite(rows, dim, "data")?;
        let labels = match labels {
            Some(obj) => {
                let l = crate::common::labels(obj, "labels")?;
                if l.len() != m.rows {
                    return Err(PyValueError::new_err(format!(
                        "{} labels given for {} rows",
                        l.len(),
                        m.rows
                    )));
                }
                l
            }
            None => {
                let start = self.next.fetch_add(m.rows as u64, Ordering::Relaxed);
                (start..start + m.rows as u64).collect()
            }
        };
        py.detach(|| self.inner.write().store_batch(rows, &labels))
            .py()
    }

    /// The stored labels near ``query``, best first: ``(labels, distances)``
    /// as lists (distances are ``None`` with ``metric="none"``).
    fn neighbours(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<u64>, Vec<Option<f32>>)> {
        let dim = self.inner.read_recursive().dim();
        let m = matrix(query, dim, "query")?;
        if m.rows != 1 {
            return Err(PyValueError::new_err("query must be one vector"));
        }
        let q = m.data();
        let hits = py
            .detach(|| self.inner.read_recursive().neighbours(q))
            .py()?;
        Ok(hits.into_iter().map(|n| (n.data, n.distance)).unzip())
    }

    /// How many stored entries share a bucket with ``query`` (before filters).
    fn candidate_count(&self, query: &Bound<'_, PyAny>) -> PyResult<usize> {
        let dim = self.inner.read_recursive().dim();
        let m = matrix(query, dim, "query")?;
        self.inner.read_recursive().candidate_count(m.data()).py()
    }

    /// Removes every entry stored under ``label``; returns how many.
    fn delete(&self, py: Python<'_>, label: u64) -> PyResult<usize> {
        py.detach(|| self.inner.write().delete(&label)).py()
    }

    /// Vector dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.read_recursive().dim()
    }

    fn __repr__(&self) -> String {
        let e = self.inner.read_recursive();
        format!("Lsh(dim={}, tables={})", e.dim(), e.hashes().len())
    }
}
