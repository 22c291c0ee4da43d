//! `swann.Forest`: the random-projection forest (Annoy's method), and
//! read-only access to files written by Annoy 1.17.

use parking_lot::RwLock;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use rayon::prelude::*;
use swann::index::forest::{AnnoyIndex, Forest as RsForest, Hit};
use swann::store::OpenOptions;
use swann::Metric;

use crate::common::{
    array2, check_finite, filled, matrix, parse_metric, with_threads, IntoPyResult,
};

/// What a `Forest` object holds: swann's own forest, or a mapped Annoy file.
// One per Python object, so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Own(RsForest),
    Annoy(AnnoyIndex),
}

impl Inner {
    fn dim(&self) -> usize {
        match self {
            Inner::Own(f) => f.dim(),
            Inner::Annoy(a) => a.dim(),
        }
    }

    fn metric(&self) -> Metric {
        match self {
            Inner::Own(f) => f.metric(),
            Inner::Annoy(a) => a.metric(),
        }
    }

    fn n_items(&self) -> usize {
        match self {
            Inner::Own(f) => f.n_items(),
            Inner::Annoy(a) => a.n_items(),
        }
    }

    fn n_trees(&self) -> usize {
        match self {
            Inner::Own(f) => f.n_trees(),
            Inner::Annoy(a) => a.n_trees(),
        }
    }

    fn by_vector(&self, v: &[f32], n: usize, search_k: Option<usize>) -> swann::Result<Vec<Hit>> {
        match self {
            Inner::Own(f) => f.nns_by_vector(v, n, search_k),
            Inner::Annoy(a) => a.nns_by_vector(v, n, search_k),
        }
    }

    fn by_item(&self, id: u32, n: usize, search_k: Option<usize>) -> swann::Result<Vec<Hit>> {
        match self {
            Inner::Own(f) => f.nns_by_item(id, n, search_k),
            Inner::Annoy(a) => a.nns_by_item(id, n, search_k),
        }
    }

    fn own_mut(&mut self) -> PyResult<&mut RsForest> {
        match self {
            Inner::Own(f) => Ok(f),
            Inner::Annoy(_) => Err(PyRuntimeError::new_err(
                "this index is a read-only Annoy file; build a new one to change it",
            )),
        }
    }
}

fn search_k(k: i64) -> Option<usize> {
    (k >= 0).then_some(k as usize)
}

fn split(hits: Vec<Hit>) -> (Vec<u32>, Vec<f32>) {
    hits.into_iter().map(|h| (h.id, h.distance)).unzip()
}

/// Reads one vector: a list or tuple of floats directly (the common case
/// in Annoy code, and cheaper than a numpy round trip), anything else
/// through [`matrix`].
fn vector(obj: &Bound<'_, PyAny>, dim: usize) -> PyResult<Vec<f32>> {
    let is_seq = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    if let Some(v) = is_seq.then(|| obj.extract::<Vec<f32>>().ok()).flatten() {
        if v.len() != dim {
            return Err(PyValueError::new_err(format!(
                "vector has dimension {}, the index expects {dim}",
                v.len()
            )));
        }
        return Ok(v);
    }
    let m = matrix(obj, dim, "vector")?;
    if m.rows != 1 {
        return Err(PyValueError::new_err(format!(
            "expected one vector of dimension {dim}, got {} rows",
            m.rows
        )));
    }
    Ok(m.data().to_vec())
}

/// A random-projection forest (Annoy's index) over float32 vectors.
///
/// ``Forest(dim, metric="angular")``; metrics ``"angular"`` (reported as
/// ``sqrt(2 - 2 cos)``), ``"euclidean"``, ``"manhattan"``, ``"dot"`` (the
/// dot product; larger is nearer) and ``"hamming"`` (one value per bit, set
/// when above 0.5). Items have dense integer ids: adding item ``i`` reserves
/// room for ``0..=i``. Add items, :meth:`build`, then search; adding again
/// needs :meth:`unbuild`. Builds and searches release the GIL.
#[pyclass(module = "swann._swann", name = "Forest")]
pub struct PyForest {
    inner: RwLock<Inner>,
}

#[pymethods]
impl PyForest {
    #[new]
    #[pyo3(signature = (dim, metric = "angular"))]
    fn new(dim: usize, metric: &str) -> PyResult<Self> {
        let f = RsForest::new(dim, parse_metric(metric)?).py()?;
        Ok(PyForest {
            inner: RwLock::new(Inner::Own(f)),
        })
    }

    /// Loads a forest saved with :meth:`save`; with ``mmap=True`` the file
    /// is mapped read-only (``prefault`` reads every page in at open).
    #[staticmethod]
    #[pyo3(signature = (path, mmap = false, prefault = false))]
    fn load(
        py: Python<'_>,
        path: std::path::PathBuf,
        mmap: bool,
        prefault: bool,
    ) -> PyResult<Self> {
        let f = py
            .detach(|| {
                if mmap {
                    RsForest::open_mmap(
                        &path,
                        OpenOptions {
                            populate: prefault,
                            ..OpenOptions::default()
                        },
                    )
                } else {
                    RsForest::load(&path)
                }
            })
            .py()?;
        Ok(PyForest {
            inner: RwLock::new(Inner::Own(f)),
        })
    }

    /// Maps a file written by Annoy 1.17, built with dimension ``dim`` and
    /// ``metric`` (Annoy's files record neither). Read-only.
    #[staticmethod]
    #[pyo3(signature = (path, dim, metric, prefault = false))]
    fn open_annoy(
        py: Python<'_>,
        path: std::path::PathBuf,
        dim: usize,
        metric: &str,
        prefault: bool,
    ) -> PyResult<Self> {
        let metric = parse_metric(metric)?;
        let a = py
            .detach(|| AnnoyIndex::open_with(&path, dim, metric, prefault))
            .py()?;
        Ok(PyForest {
            inner: RwLock::new(Inner::Annoy(a)),
        })
    }

    /// Adds (or replaces) item ``id`` with ``vector``.
    fn add_item(&self, id: u32, vector: &Bound<'_, PyAny>) -> PyResult<()> {
        let dim = self.inner.read_recursive().dim();
        let v = self::vector(vector, dim)?;
        self.inner.write().own_mut()?.add_item(id, &v).py()
    }

    /// Adds the rows of ``data`` as items ``ids`` (default ``n_items``, ...).
    #[pyo3(signature = (data, ids = None))]
    fn add_items(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let dim = self.inner.read_recursive().dim();
        let m = matrix(data, dim, "data")?;
        let rows = m.data();
        check_finite(rows, dim, "data")?;
        let ids: Option<Vec<u32>> = match ids {
            None => None,
            Some(obj) => {
                let ids = crate::common::labels(obj, "ids")?;
                if ids.len() != m.rows {
                    return Err(PyValueError::new_err(format!(
                        "{} ids given for {} rows",
                        ids.len(),
                        m.rows
                    )));
                }
                Some(
                    ids.into_iter()
                        .map(|i| {
                            u32::try_from(i).map_err(|_| {
                                PyValueError::new_err(format!("item id {i} above 2**32 - 1"))
                            })
                        })
                        .collect::<PyResult<_>>()?,
                )
            }
        };
        let nrows = m.rows;
        py.detach(|| -> PyResult<()> {
            let mut inner = self.inner.write();
            let f = inner.own_mut()?;
            let start = f.n_items();
            if ids.is_none() && start + nrows > u32::MAX as usize {
                return Err(PyValueError::new_err("item ids would pass 2**32 - 1"));
            }
            for (i, row) in rows.chunks(dim).enumerate() {
                let id = ids.as_ref().map_or((start + i) as u32, |v| v[i]);
                f.add_item(id, row).py()?;
            }
            Ok(())
        })
    }

    /// Builds ``n_trees`` trees on ``num_threads`` threads (``-1``: all
    /// cores). ``n_trees=-1`` builds as many trees as it takes for their
    /// nodes to number at least the items (Annoy's ``build(-1)``). Returns
    /// the number of trees built.
    #[pyo3(signature = (n_trees, num_threads = -1))]
    fn build(&self, py: Python<'_>, n_trees: i64, num_threads: i64) -> PyResult<usize> {
        let threads = (num_threads > 0).then_some(num_threads as usize);
        let n_trees = match n_trees {
            -1 => None,
            n if n >= 1 => Some(
                usize::try_from(n)
                    .map_err(|_| PyValueError::new_err(format!("n_trees {n} is too large")))?,
            ),
            n => {
                return Err(PyValueError::new_err(format!(
                    "n_trees must be at least 1, or -1 to choose by the item count; got {n}"
                )))
            }
        };
        py.detach(|| -> PyResult<usize> {
            let mut inner = self.inner.write();
            let forest = inner.own_mut()?;
            match n_trees {
                Some(n) => forest.build(n, threads).py().map(|()| n),
                None => forest.build_auto(threads).py(),
            }
        })
    }

    /// Drops the trees so items can be added again.
    fn unbuild(&self) -> PyResult<()> {
        self.inner.write().own_mut()?.unbuild().py()
    }

    /// Sets the seed of the next build.
    fn set_seed(&self, seed: u64) -> PyResult<()> {
        self.inner.write().own_mut()?.set_seed(seed);
        Ok(())
    }

    /// Sets the most items a leaf holds (before adding items).
    fn set_leaf_size(&self, leaf_size: usize) -> PyResult<()> {
        self.inner.write().own_mut()?.set_leaf_size(leaf_size).py()
    }

    /// Builds into the file at ``path`` (created or truncated) instead of memory.
    fn on_disk_build(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| -> PyResult<()> { self.inner.write().own_mut()?.on_disk_build(&path).py() })
    }

    /// Writes the built forest to ``path``.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| match &*self.inner.read_recursive() {
            Inner::Own(f) => f.save(&path).py(),
            Inner::Annoy(_) => Err(PyRuntimeError::new_err(
                "an Annoy file is already on disk; copy the file instead",
            )),
        })
    }

    /// The ``n`` nearest items to ``vector``: ``(ids, distances)`` as lists,
    /// looking at about ``search_k`` candidates (``-1``: ``n * n_trees``).
    #[pyo3(signature = (vector, n, search_k = -1))]
    fn nns_by_vector(
        &self,
        py: Python<'_>,
        vector: &Bound<'_, PyAny>,
        n: usize,
        search_k: i64,
    ) -> PyResult<(Vec<u32>, Vec<f32>)> {
        let dim = self.inner.read_recursive().dim();
        let v = self::vector(vector, dim)?;
        let hits = py.detach(|| {
            self.inner
                .read_recursive()
                .by_vector(&v, n, self::search_k(search_k))
        });
        Ok(split(hits.py()?))
    }

    /// The ``n`` nearest items to item ``id`` (itself first): ``(ids, distances)``.
    #[pyo3(signature = (id, n, search_k = -1))]
    fn nns_by_item(
        &self,
        py: Python<'_>,
        id: u32,
        n: usize,
        search_k: i64,
    ) -> PyResult<(Vec<u32>, Vec<f32>)> {
        let hits = py.detach(|| {
            self.inner
                .read_recursive()
                .by_item(id, n, self::search_k(search_k))
        });
        Ok(split(hits.py()?))
    }

    /// Batch search: ``(ids int64 (n, k), distances float32 (n, k))`` for
    /// every row of ``queries``, padded with ``-1`` / ``nan`` where fewer
    /// than ``k`` items were found.
    #[pyo3(signature = (queries, k = 10, *, search_k = -1, num_threads = -1))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        search_k: i64,
        num_threads: i64,
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
        let mut ids = filled(total, -1i64)?;
        let mut dist = filled(total, f32::NAN)?;
        let sk = self::search_k(search_k);
        py.detach(|| {
            let inner = self.inner.read_recursive();
            let inner: &Inner = &inner;
            with_threads(num_threads, || {
                data.par_chunks(dim)
                    .zip(ids.par_chunks_mut(k))
                    .zip(dist.par_chunks_mut(k))
                    .try_for_each(|((q, i), d)| -> swann::Result<()> {
                        for (j, h) in inner.by_vector(q, k, sk)?.into_iter().enumerate() {
                            i[j] = i64::from(h.id);
                            d[j] = h.distance;
                        }
                        Ok(())
                    })
            })
        })?
        .py()?;
        Ok((array2(py, ids, rows, k)?, array2(py, dist, rows, k)?))
    }

    /// Item ``id``'s vector as a list of floats.
    fn item_vector(&self, id: u32) -> PyResult<Vec<f32>> {
        match &*self.inner.read_recursive() {
            Inner::Own(f) => f.item_vector(id),
            Inner::Annoy(a) => a.item_vector(id),
        }
        .py()
    }

    /// The distance between items ``i`` and ``j``, as searches report it.
    fn distance(&self, i: u32, j: u32) -> PyResult<f32> {
        match &*self.inner.read_recursive() {
            Inner::Own(f) => f.distance(i, j),
            Inner::Annoy(a) => a.distance(i, j),
        }
        .py()
    }

    /// One more than the largest item id added.
    #[getter]
    fn n_items(&self) -> usize {
        self.inner.read_recursive().n_items()
    }

    /// Number of trees (0 before :meth:`build`).
    #[getter]
    fn n_trees(&self) -> usize {
        self.inner.read_recursive().n_trees()
    }

    /// Whether the forest is built (searchable, closed to adds).
    #[getter]
    fn is_built(&self) -> bool {
        match &*self.inner.read_recursive() {
            Inner::Own(f) => f.is_built(),
            Inner::Annoy(_) => true,
        }
    }

    /// Vector dimension (bits, for Hamming).
    #[getter]
    fn dim(&self) -> usize {
        self.inner.read_recursive().dim()
    }

    /// Metric name.
    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.read_recursive().metric().name()
    }

    fn __len__(&self) -> usize {
        self.inner.read_recursive().n_items()
    }

    fn __repr__(&self) -> String {
        let i = self.inner.read_recursive();
        format!(
            "Forest(dim={}, metric={:?}, n_items={}, n_trees={})",
            i.dim(),
            i.metric().name(),
            i.n_items(),
            i.n_trees()
        )
    }
}
