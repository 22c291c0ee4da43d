//! `swann.Hnsw`: the HNSW graph index.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use parking_lot::RwLock;
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use swann::index::hnsw::{Filter, FilterStrategy, Hnsw as RsHnsw, NeighborSelection, Quantization};
use swann::store::OpenOptions;
use swann::Metric;

use crate::common::{
    array2, check_finite, filled, matrix, parse_metric, with_threads, IntoPyResult, PyFilter,
};

/// hnswlib's message when an insert would pass `max_elements`.
pub const FULL: &str = "The number of elements exceeds the specified limit";

/// A hierarchical navigable small-world graph over float32 vectors.
///
/// ``Hnsw(dim, metric="l2", *, capacity=0, M=16, ef_construction=200, seed=100)``
///
/// Metrics: ``"l2"`` (squared Euclidean), ``"ip"`` (``1 - a.b``),
/// ``"cosine"`` (``1 - cos``, vectors normalized on insert) and ``"dot"``
/// (ranked as ``ip``; the score is ``1 - distance``).
///
/// ``quantization``: ``"none"`` (exact distances throughout), ``"sq8"``
/// (8-bit codes beside the rows, the best candidates reranked exactly: the
/// recommended scheme, about 1.2x the memory of ``"none"``) or ``"pq4"``
/// (4-bit codes of each node's neighbours in its own record, the fastest on
/// SIFT-like data, about 2.3 KB more per node at 128 dimensions). Results
/// carry exact distances under every scheme.
///
/// Inputs are numpy arrays (or anything ``numpy.asarray`` accepts): a
/// float32 C-contiguous array is read in place, other dtypes are converted
/// once. Builds and searches release the GIL; ``num_threads`` picks the
/// number of threads (``-1``: every core). Searches may run from several
/// Python threads at once; adds wait for running searches to finish.
#[pyclass(module = "swann._swann", name = "Hnsw")]
// Locking rule: the write lock is only taken with the GIL released, and
// nothing holding it calls into Python. Reads use `read_recursive`, which
// does not queue behind a waiting writer, so a thread holding the GIL never
// waits on a search whose filter callback is waiting for the GIL.
pub struct PyHnsw {
    inner: RwLock<RsHnsw>,
    ef: AtomicUsize,
    num_threads: AtomicI64,
}

impl PyHnsw {
    fn wrap(index: RsHnsw) -> Self {
        PyHnsw {
            inner: RwLock::new(index),
            ef: AtomicUsize::new(10),
            num_threads: AtomicI64::new(-1),
        }
    }

    fn threads(&self, requested: i64) -> i64 {
        if requested > 0 {
            requested
        } else {
            self.num_threads.load(Ordering::Relaxed)
        }
    }
}

/// Which labels a search may return, from Python.
enum PyAllowed {
    /// A callable ``filter(label) -> bool``.
    Callable(PyFilter),
    /// An array of allowed labels.
    Labels(Vec<u64>),
}

/// Searches every row of `data` into `out_labels` / `out_dist` (`k` per row,
/// missing results padded with `u64::MAX` / `inf`); returns the fewest
/// results any row got. A filtered batch is planned once (see
/// `HnswIndex::search_batch_filtered`): under a callable the planner may
/// call it once per label and test the resulting set in every query.
#[allow(clippy::too_many_arguments)]
fn search_into(
    index: &RsHnsw,
    data: &[f32],
    dim: usize,
    k: usize,
    ef: usize,
    filter: Option<&PyAllowed>,
    out_labels: &mut [u64],
    out_dist: &mut [f32],
    parallel: bool,
) -> swann::Result<usize> {
    let rows: Vec<Vec<swann::index::Neighbor>> = match filter {
        None if parallel => index.search_batch(data, k, ef)?,
        None => data
            .chunks(dim)
            .map(|q| index.search(q, k, ef))
            .collect::<swann::Result<_>>()?,
        Some(allowed) => {
            let accept = |label: u64| match allowed {
                PyAllowed::Callable(f) => f.accept(label),
                PyAllowed::Labels(_) => unreachable!("sets are searched as sets"),
            };
            let set;
            let filter = match allowed {
                PyAllowed::Callable(_) => Filter::Fn(&accept),
                PyAllowed::Labels(l) => {
                    set = index.label_set(l.iter().copied());
                    Filter::Set(&set)
                }
            };
            index
                .search_batch_filtered(data, k, ef, &filter, FilterStrategy::Auto)?
                .0
        }
    };
    let mut fewest = usize::MAX;
    for ((hits, l), d) in rows
        .iter()
        .zip(out_labels.chunks_mut(k))
        .zip(out_dist.chunks_mut(k))
    {
        for (i, h) in hits.iter().enumerate() {
            l[i] = h.label;
            d[i] = h.distance;
        }
        l[hits.len()..].fill(u64::MAX);
        d[hits.len()..].fill(f32::INFINITY);
        fewest = fewest.min(hits.len());
    }
    Ok(fewest)
}

#[pymethods]
impl PyHnsw {
    #[new]
    #[pyo3(signature = (dim, metric = "l2", *, capacity = 0, M = 16, ef_construction = 200, seed = 100, M0 = None, level_mult = None, selection = "heuristic", quantization = "none"))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn new(
        dim: usize,
        metric: &str,
        capacity: usize,
        M: usize,
        ef_construction: usize,
        seed: u64,
        M0: Option<usize>,
        level_mult: Option<f64>,
        selection: &str,
        quantization: &str,
    ) -> PyResult<Self> {
        let metric = hnsw_metric(metric)?;
        if dim == 0 {
            return Err(PyValueError::new_err("dim must be at least 1"));
        }
        let mut builder = RsHnsw::builder(dim, metric)
            .m(M)
            .ef_construction(ef_construction)
            .capacity(capacity)
            .seed(seed)
            .selection(selection_of(selection)?)
            .quantization(
                quantization
                    .parse::<Quantization>()
                    .map_err(|e| PyValueError::new_err(e.to_string()))?,
            );
        if let Some(m0) = M0 {
            builder = builder.m0(m0);
        }
        if let Some(mult) = level_mult {
            builder = builder.level_mult(mult);
        }
        let index = builder.build().py()?;
        Ok(Self::wrap(index))
    }

    /// Loads an index saved with :meth:`save`. With ``mmap=True`` the file
    /// is memory-mapped and searched in place (read-only; it is copied into
    /// memory on the first change).
    #[staticmethod]
    #[pyo3(signature = (path, mmap = false))]
    fn load(py: Python<'_>, path: std::path::PathBuf, mmap: bool) -> PyResult<Self> {
        let index = py.detach(|| {
            if mmap {
                RsHnsw::open_mmap(&path, OpenOptions::default())
            } else {
                RsHnsw::load(&path)
            }
        });
        Ok(Self::wrap(index.py()?))
    }

    /// Imports a file written by hnswlib's ``save_index`` (hnswlib 0.7/0.8)
    /// for a ``"l2"``, ``"ip"`` or ``"cosine"`` space of dimension ``dim``
    /// (hnswlib files record neither).
    #[staticmethod]
    fn import_hnswlib(
        py: Python<'_>,
        path: std::path::PathBuf,
        metric: &str,
        dim: usize,
    ) -> PyResult<Self> {
        let metric = parse_metric(metric)?;
        let index = py.detach(|| RsHnsw::import_hnswlib(&path, metric, dim));
        Ok(Self::wrap(index.py()?))
    }

    /// Writes the index to ``path`` (atomically: a temporary file, synced, renamed).
    ///
    /// ``pq4_records=True`` (a ``pq4`` index): also store every node's packed
    /// neighbour record, so that ``Hnsw.load(path, mmap=True)`` packs none in
    /// its own memory and every process mapping the file shares them; the
    /// file grows by as much (2.2 KB per node at ``M=16`` and 128 dimensions).
    #[pyo3(signature = (path, pq4_records = false))]
    fn save(&self, py: Python<'_>, path: std::path::PathBuf, pq4_records: bool) -> PyResult<()> {
        let opts = swann::index::hnsw::SaveOptions::default().pq4_records(pq4_records);
        py.detach(|| self.inner.read_recursive().save_with(&path, opts))
            .py()
    }

    /// Size in bytes of the file :meth:`save` would write now.
    fn saved_size(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.inner.read_recursive().saved_size()).py()
    }

    /// Adds the rows of ``data`` (shape ``(n, dim)`` or ``(dim,)``) under
    /// ``labels`` (default: ``len(self)``, ``len(self) + 1``, ...). A label
    /// already present has its vector replaced.
    ///
    /// ``grow=False`` raises ``RuntimeError`` instead of growing past the
    /// capacity (hnswlib's behaviour). ``replace_deleted=True`` reuses the
    /// slots of deleted labels first. Releases the GIL.
    #[pyo3(signature = (data, labels = None, *, num_threads = -1, grow = true, replace_deleted = false))]
    fn add(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        labels: Option<&Bound<'_, PyAny>>,
        num_threads: i64,
        grow: bool,
        replace_deleted: bool,
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
        // Check every row first, so a bad row adds nothing.
        check_finite(rows, dim, "data")?;
        let nrows = m.rows as u64;
        let threads = self.threads(num_threads);
        py.detach(|| -> PyResult<()> {
            let mut index = self.inner.write();
            let ids: Vec<u64> = ids.unwrap_or_else(|| {
                let start = index.len() as u64;
                (start..start + nrows).collect()
            });
            let mut fresh: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|&l| !index.contains(l))
                .collect();
            fresh.sort_unstable();
            fresh.dedup();
            let reusable = if replace_deleted {
                index.deleted_count()
            } else {
                0
            };
            let free = index.capacity() - index.len() + reusable;
            if fresh.len() > free {
                if !grow {
                    return Err(PyRuntimeError::new_err(FULL));
                }
                let need = index.len() + fresh.len() - reusable;
                let target = need.max(index.capacity().saturating_mul(2)).max(1024);
                index.resize(target).py()?;
            }
            if replace_deleted && index.deleted_count() > 0 {
                for (label, row) in ids.iter().zip(rows.chunks(dim)) {
                    index.insert_replacing_deleted(*label, row).py()?;
                }
                return Ok(());
            }
            let index: &mut RsHnsw = &mut index;
            with_threads(threads, || index.insert_batch(&ids, rows))?.py()
        })
    }

    /// The ``k`` nearest labels to each row of ``queries``: a pair of
    /// arrays ``(labels uint64 (n, k), distances float32 (n, k))``, nearest
    /// first. ``ef`` defaults to :attr:`ef` (raised to ``k`` if smaller).
    /// ``filter`` keeps only some labels: a callable ``filter(label) ->
    /// bool``, or an array of the allowed labels (tested with one bit per
    /// node, far cheaper than a call). The search is planned from the share
    /// allowed: a graph walk when most labels pass, an exact scan of the
    /// allowed rows when few do. Rows with fewer than ``k`` results are
    /// padded with label ``2**64 - 1`` and distance ``inf``, or raise
    /// ``RuntimeError`` with ``require_k=True``.
    #[pyo3(signature = (queries, k = 10, *, ef = None, num_threads = -1, filter = None, require_k = false))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        ef: Option<usize>,
        num_threads: i64,
        filter: Option<Py<PyAny>>,
        require_k: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        if k == 0 {
            return Err(PyValueError::new_err("k must be at least 1"));
        }
        let dim = self.inner.read_recursive().dim();
        let m = matrix(queries, dim, "queries")?;
        let ef = ef.unwrap_or_else(|| self.ef.load(Ordering::Relaxed));
        let rows = m.rows;
        let total = rows
            .checked_mul(k)
            .ok_or_else(|| PyValueError::new_err("k too large"))?;
        let mut out_l = filled(total, 0u64)?;
        let mut out_d = filled(total, 0f32)?;
        let threads = self.threads(num_threads);
        let filter = match filter {
            None => None,
            Some(f) if f.bind(py).is_callable() => {
                // Planned here, holding the GIL, where a call costs least:
                // when the batch would call the filter more often than once
                // per label, call it once per label now and search with
                // the set of labels it accepts.
                let f = PyFilter::new(f);
                let index = self.inner.read_recursive();
                let accept = |l: u64| f.accept(l);
                let plan = index.plan_filter_batch(&Filter::Fn(&accept), ef.max(k), rows);
                if let Some(e) = f.take_error() {
                    return Err(e);
                }
                if plan.materialized {
                    let allowed: Vec<u64> = index
                        .labels()
                        .into_iter()
                        .filter(|&l| f.accept(l))
                        .collect();
                    if let Some(e) = f.take_error() {
                        return Err(e);
                    }
                    Some(PyAllowed::Labels(allowed))
                } else {
                    Some(PyAllowed::Callable(f))
                }
            }
            Some(f) => Some(PyAllowed::Labels(
                crate::common::labels(f.bind(py), "filter").map_err(|_| {
                    PyTypeError::new_err(
                        "filter must be a callable filter(label) -> bool or an array of labels",
                    )
                })?,
            )),
        };
        let data = m.data();
        let fewest = py.detach(|| {
            let index = self.inner.read_recursive();
            let parallel = rows > 1 && threads != 1;
            with_threads(threads, || {
                search_into(
                    &index,
                    data,
                    dim,
                    k,
                    ef,
                    filter.as_ref(),
                    &mut out_l,
                    &mut out_d,
                    parallel,
                )
            })
        })?;
        if let Some(PyAllowed::Callable(f)) = &filter {
            if let Some(e) = f.take_error() {
                return Err(e);
            }
        }
        let fewest = fewest.py()?;
        if require_k && rows > 0 && fewest < k {
            return Err(PyRuntimeError::new_err(crate::common::TOO_FEW));
        }
        Ok((array2(py, out_l, rows, k)?, array2(py, out_d, rows, k)?))
    }

    /// The ``k`` nearest labels to the stored vector of each of ``labels``,
    /// the level-0 search starting at the item itself (N2's search by id),
    /// so a live item is always among its own results whatever ``ef``.
    /// Returns ``(labels, distances)`` of shape ``(n, k)``, padded as
    /// :meth:`search` pads. Unknown labels raise ``KeyError``. Releases the
    /// GIL.
    #[pyo3(signature = (labels, k = 10, *, ef = None, num_threads = -1))]
    fn search_by_label<'py>(
        &self,
        py: Python<'py>,
        labels: &Bound<'py, PyAny>,
        k: usize,
        ef: Option<usize>,
        num_threads: i64,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        use rayon::prelude::*;
        if k == 0 {
            return Err(PyValueError::new_err("k must be at least 1"));
        }
        let ids = crate::common::labels(labels, "labels")?;
        let ef = ef.unwrap_or_else(|| self.ef.load(Ordering::Relaxed));
        let rows = ids.len();
        let total = rows
            .checked_mul(k)
            .ok_or_else(|| PyValueError::new_err("k too large"))?;
        let mut out_l = filled(total, u64::MAX)?;
        let mut out_d = filled(total, f32::INFINITY)?;
        let threads = self.threads(num_threads);
        let done = py.detach(|| {
            let index = self.inner.read_recursive();
            with_threads(threads, || {
                out_l
                    .par_chunks_mut(k)
                    .zip(out_d.par_chunks_mut(k))
                    .zip(ids.par_iter())
                    .try_for_each(|((l, d), &id)| {
                        for (i, h) in index.search_by_label(id, k, ef)?.iter().enumerate() {
                            l[i] = h.label;
                            d[i] = h.distance;
                        }
                        Ok::<(), swann::Error>(())
                    })
            })
        })?;
        done.py()?;
        Ok((array2(py, out_l, rows, k)?, array2(py, out_d, rows, k)?))
    }

    /// The stored vectors of ``labels`` as a float32 array ``(n, dim)``
    /// (normalized, for cosine). Unknown labels raise ``KeyError``; so do
    /// deleted ones unless ``include_deleted``.
    #[pyo3(signature = (labels, include_deleted = true))]
    fn get_vectors<'py>(
        &self,
        py: Python<'py>,
        labels: &Bound<'py, PyAny>,
        include_deleted: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = crate::common::labels(labels, "labels")?;
        let index = self.inner.read_recursive();
        let dim = index.dim();
        let mut out = Vec::with_capacity(ids.len() * dim);
        for &l in &ids {
            if !include_deleted && index.is_deleted(l).py()? {
                return Err(PyKeyError::new_err(l));
            }
            out.extend_from_slice(&index.get_vector(l).py()?);
        }
        array2(py, out, ids.len(), dim)
    }

    /// Every label (deleted ones included) as a uint64 array, in slot order.
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let l = self.inner.read_recursive().labels();
        crate::common::array1(py, l)
    }

    /// Marks ``label`` deleted: it is never returned, but still routes searches.
    fn mark_deleted(&self, label: u64) -> PyResult<()> {
        self.inner.read_recursive().mark_deleted(label).py()
    }

    /// Clears the deleted mark of ``label``.
    fn unmark_deleted(&self, label: u64) -> PyResult<()> {
        self.inner.read_recursive().unmark_deleted(label).py()
    }

    /// Whether ``label`` is marked deleted (``KeyError`` if unknown).
    fn is_deleted(&self, label: u64) -> PyResult<bool> {
        self.inner.read_recursive().is_deleted(label).py()
    }

    /// Takes ``labels`` out of the index for good (unlike
    /// :meth:`mark_deleted`): the lists that linked to each are repaired
    /// through its neighbours and its slot is reused by later adds.
    /// ``KeyError`` (nothing removed) if a label is unknown.
    fn remove(&self, py: Python<'_>, labels: &Bound<'_, PyAny>) -> PyResult<()> {
        let ids = crate::common::labels(labels, "labels")?;
        py.detach(|| self.inner.write().remove_batch(&ids)).py()
    }

    /// Rewrites the index without deleted labels and free slots: memory
    /// and the saved file shrink to what a fresh build of the rest takes.
    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.write().compact()).py()
    }

    /// Trains the quantizer's grid anew on up to 20,000 of the index's rows
    /// and recodes every row (the index also does this by itself at 256
    /// rows, at each doubling up to 20,000, and on :meth:`compact`). No-op
    /// for ``quantization="none"``.
    fn train_quantizer(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.write().train_quantizer()).py()
    }

    /// Checks the graph (links, levels, entry point, reachability from the
    /// entry point on every level): a dict with ``ok``, ``nodes``,
    /// ``unreachable`` (level 0), ``problems`` (list of str) and
    /// ``report`` (the full text).
    fn check<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let report = py.detach(|| self.inner.read_recursive().check());
        let d = pyo3::types::PyDict::new(py);
        d.set_item("ok", report.is_ok())?;
        d.set_item("nodes", report.nodes)?;
        d.set_item("unreachable", report.unreachable())?;
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        d.set_item("problems", problems)?;
        d.set_item("report", report.to_string())?;
        Ok(d)
    }

    /// Sets the capacity (it cannot drop below ``len(self)``).
    fn resize(&self, py: Python<'_>, capacity: usize) -> PyResult<()> {
        py.detach(|| self.inner.write().resize(capacity)).py()
    }

    /// Number of labels, deleted ones included.
    fn __len__(&self) -> usize {
        self.inner.read_recursive().len()
    }

    fn __contains__(&self, label: u64) -> bool {
        self.inner.read_recursive().contains(label)
    }

    fn __repr__(&self) -> String {
        let i = self.inner.read_recursive();
        format!(
            "Hnsw(dim={}, metric={:?}, len={}, capacity={}, M={}, ef_construction={})",
            i.dim(),
            i.metric().name(),
            i.len(),
            i.capacity(),
            i.m(),
            i.ef_construction()
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

    /// Links per node on the upper levels.
    #[getter(M)]
    fn m(&self) -> usize {
        self.inner.read_recursive().m()
    }

    /// Most links per node on level 0 (``2 * M`` unless given).
    #[getter(M0)]
    fn m0(&self) -> usize {
        self.inner.read_recursive().m0()
    }

    /// Level multiplier (``1 / ln M`` unless given).
    #[getter]
    fn level_mult(&self) -> f64 {
        self.inner.read_recursive().level_mult()
    }

    /// Neighbour selection: ``"heuristic"``, ``"simple"`` or
    /// ``"heuristic_keep_pruned"``.
    #[getter]
    fn selection(&self) -> &'static str {
        selection_name(self.inner.read_recursive().selection())
    }

    /// Candidate list size while inserting.
    #[getter]
    fn ef_construction(&self) -> usize {
        self.inner.read_recursive().ef_construction()
    }

    /// Seed of the level generator.
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.read_recursive().seed()
    }

    /// Slots allocated.
    #[getter]
    fn capacity(&self) -> usize {
        self.inner.read_recursive().capacity()
    }

    /// Number of labels marked deleted.
    #[getter]
    fn deleted_count(&self) -> usize {
        self.inner.read_recursive().deleted_count()
    }

    /// Whether the index is a read-only view of a memory-mapped file.
    #[getter]
    fn is_mapped(&self) -> bool {
        self.inner.read_recursive().is_mapped()
    }

    /// The quantization scheme: ``"none"``, ``"sq8"`` or ``"pq4"``.
    #[getter]
    fn quantization(&self) -> &'static str {
        self.inner.read_recursive().quantization().name()
    }

    /// Whether searches run on codes now (a scheme is set and its grid is
    /// trained).
    #[getter]
    fn is_quantized(&self) -> bool {
        self.inner.read_recursive().is_quantized()
    }

    /// Candidates reranked exactly per search on codes (``0``: half of
    /// ``ef``, at least ``3 k`` and 20).
    #[getter]
    fn get_rerank(&self) -> usize {
        self.inner.read_recursive().rerank()
    }

    #[setter]
    fn set_rerank(&self, n: usize) {
        self.inner.read_recursive().set_rerank(n);
    }

    /// Default candidate list size of searches (default 10).
    #[getter]
    fn get_ef(&self) -> usize {
        self.ef.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_ef(&self, ef: usize) {
        self.ef.store(ef, Ordering::Relaxed);
    }

    /// Default thread count of adds and searches (``-1``: every core).
    #[getter]
    fn get_num_threads(&self) -> i64 {
        self.num_threads.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_num_threads(&self, n: i64) {
        self.num_threads.store(n, Ordering::Relaxed);
    }
}

/// Metric check shared with the compatibility layer's error messages.
/// A neighbour selection from its name (N2's names are accepted too).
fn selection_of(name: &str) -> PyResult<NeighborSelection> {
    match name.to_ascii_lowercase().as_str() {
        "heuristic" => Ok(NeighborSelection::Heuristic),
        "simple" | "naive" => Ok(NeighborSelection::Simple),
        "heuristic_keep_pruned" | "heuristic_save_remains" => {
            Ok(NeighborSelection::HeuristicKeepPruned)
        }
        _ => Err(PyValueError::new_err(format!(
            "unknown selection {name:?}: expected 'heuristic', 'simple' ('naive') or \
             'heuristic_keep_pruned' ('heuristic_save_remains')"
        ))),
    }
}

fn selection_name(s: NeighborSelection) -> &'static str {
    match s {
        NeighborSelection::Heuristic => "heuristic",
        NeighborSelection::Simple => "simple",
        NeighborSelection::HeuristicKeepPruned => "heuristic_keep_pruned",
    }
}

pub fn hnsw_metric(name: &str) -> PyResult<Metric> {
    let m = parse_metric(name)?;
    match m {
        Metric::L2 | Metric::InnerProduct | Metric::Cosine | Metric::Dot => Ok(m),
        other => Err(PyValueError::new_err(format!(
            "HNSW supports l2, ip, cosine and dot, not {other}"
        ))),
    }
}
