//! `swann.ShardedIndex` and the manifest helpers: one index over the shard
//! files a manifest names, and the functions the distributed module shares
//! with it (`write_manifest`, `read_manifest`, `shard_rows`, `merge_top_k`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use parking_lot::RwLock;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use swann::index::api::Effort;
use swann::index::sharded::{
    file_checksum as rs_checksum, merge_top_k as rs_merge, shard_rows as rs_shard_rows, Manifest,
    ShardedIndex,
};
use swann::index::Neighbor;
use swann::store::OpenOptions;
use swann::Error;

use crate::common::{array1, array2, filled, matrix, with_threads, IntoPyResult};

/// The label that pads result rows holding fewer than ``k`` neighbours.
const PAD: u64 = u64::MAX;

/// One logical index over the shard files (HNSW, forest or flat) that a
/// manifest names, searched shard by shard and merged exactly.
///
/// ``ShardedIndex(manifest, *, mmap=True, verify=False)`` (or
/// :meth:`open`): with ``mmap`` every shard is memory-mapped (O(1) per
/// file; every process mapping a shard shares its pages), otherwise read
/// into memory with every section checksum checked. ``verify`` also
/// checks each file against the checksum the manifest recorded.
///
/// Searches release the GIL. Each shard is asked for ``ceil(k *
/// oversample)`` results at the given effort (``ef`` for HNSW shards,
/// ``search_k`` for forest shards; flat shards are exact) and the lists are
/// merged by distance, ties by label, each label once.
#[pyclass(module = "swann._swann", name = "ShardedIndex")]
// Locking rule as for `Hnsw`: the write lock (only `oversample`'s setter
// takes it) is taken with the GIL released, and nothing under a lock calls
// into Python.
pub struct PyShardedIndex {
    inner: RwLock<ShardedIndex>,
    path: PathBuf,
}

/// The effort of a search from its two spellings.
fn effort(ef: Option<usize>, search_k: Option<usize>) -> PyResult<Effort> {
    match (ef, search_k) {
        (Some(_), Some(_)) => Err(PyValueError::new_err(
            "give ef (HNSW shards) or search_k (forest shards), not both",
        )),
        (Some(n), None) | (None, Some(n)) => Ok(Effort::Candidates(n)),
        (None, None) => Ok(Effort::Default),
    }
}

/// Copies `rows` (one result list per query) into padded `(n, k)` arrays.
fn fill(rows: &[Vec<Neighbor>], k: usize, out_l: &mut [u64], out_d: &mut [f32]) {
    for ((hits, l), d) in rows
        .iter()
        .zip(out_l.chunks_mut(k))
        .zip(out_d.chunks_mut(k))
    {
        for (i, h) in hits.iter().take(k).enumerate() {
            l[i] = h.label;
            d[i] = h.distance;
        }
    }
}

fn open_index(path: &Path, mmap: bool, verify: bool) -> swann::Result<ShardedIndex> {
    if mmap {
        ShardedIndex::open(
            path,
            OpenOptions {
                verify,
                ..OpenOptions::default()
            },
        )
    } else {
        let index = ShardedIndex::load(path)?;
        if verify {
            index.verify()?;
        }
        Ok(index)
    }
}

/// Opens some of a manifest's shards (`shards`: their positions), or all of
/// them from other files (`paths`: one per shard opened, e.g. copies in a
/// node-local cache). The shards' entries, paths made absolute or
/// replaced, go to a one-off manifest in the temporary folder, which the
/// index is opened from and which is removed again.
fn open_subset(
    path: &Path,
    shards: Option<Vec<usize>>,
    paths: Option<Vec<PathBuf>>,
    mmap: bool,
    verify: bool,
) -> swann::Result<ShardedIndex> {
    if shards.is_none() && paths.is_none() {
        return open_index(path, mmap, verify);
    }
    let full = Manifest::read(path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let picked = shards.unwrap_or_else(|| (0..full.shards.len()).collect());
    if picked.is_empty() {
        return Err(Error::InvalidParameter("shards names no shard".into()));
    }
    if let Some(&bad) = picked.iter().find(|&&i| i >= full.shards.len()) {
        return Err(Error::InvalidParameter(format!(
            "shard {bad} does not exist: the manifest names {} shards",
            full.shards.len()
        )));
    }
    if let Some(p) = &paths {
        if p.len() != picked.len() {
            return Err(Error::InvalidParameter(format!(
                "{} paths given for {} shards",
                p.len(),
                picked.len()
            )));
        }
    }
    let mut sub = full.clone();
    sub.shards = picked
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            let mut e = full.shards[i].clone();
            let file = match &paths {
                Some(p) => p[j].clone(),
                None => full.shard_path(&dir, i),
            };
            e.path = std::path::absolute(&file)?;
            Ok(e)
        })
        .collect::<swann::Result<_>>()?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = std::env::temp_dir().join(format!(
        "swann-subset-{}-{}.manifest.json",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    sub.write(&tmp)?;
    let opened = open_index(&tmp, mmap, verify);
    let _ = std::fs::remove_file(&tmp);
    opened
}

#[pymethods]
impl PyShardedIndex {
    #[new]
    #[pyo3(signature = (manifest, *, mmap = true, verify = false, shards = None, paths = None))]
    fn new(
        py: Python<'_>,
        manifest: PathBuf,
        mmap: bool,
        verify: bool,
        shards: Option<Vec<usize>>,
        paths: Option<Vec<PathBuf>>,
    ) -> PyResult<Self> {
        let index = py
            .detach(|| open_subset(&manifest, shards, paths, mmap, verify))
            .py()?;
        Ok(PyShardedIndex {
            inner: RwLock::new(index),
            path: manifest,
        })
    }

    /// Opens the manifest at ``manifest`` (the same as the constructor).
    #[staticmethod]
    #[pyo3(signature = (manifest, *, mmap = true, verify = false, shards = None, paths = None))]
    fn open(
        py: Python<'_>,
        manifest: PathBuf,
        mmap: bool,
        verify: bool,
        shards: Option<Vec<usize>>,
        paths: Option<Vec<PathBuf>>,
    ) -> PyResult<Self> {
        Self::new(py, manifest, mmap, verify, shards, paths)
    }

    /// The ``k`` nearest labels to each row of ``queries`` over every
    /// shard: ``(labels uint64 (n, k), distances float32 (n, k))``, nearest
    /// first; rows with fewer than ``k`` results are padded with label
    /// ``2**64 - 1`` and distance ``inf``. ``ef`` (HNSW shards) or
    /// ``search_k`` (forest shards) sets each shard's effort; neither: the
    /// shard's default. One query searches its shards in parallel; a batch
    /// searches its queries in parallel. Releases the GIL.
    #[pyo3(signature = (queries, k = 10, *, ef = None, search_k = None, num_threads = -1))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        ef: Option<usize>,
        search_k: Option<usize>,
        num_threads: i64,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        if k == 0 {
            return Err(PyValueError::new_err("k must be at least 1"));
        }
        let effort = effort(ef, search_k)?;
        let dim = self.inner.read_recursive().dim();
        let m = matrix(queries, dim, "queries")?;
        let rows = m.rows;
        let total = rows
            .checked_mul(k)
            .ok_or_else(|| PyValueError::new_err("k too large"))?;
        let mut out_l = filled(total, PAD)?;
        let mut out_d = filled(total, f32::INFINITY)?;
        let data = m.data();
        let found = py.detach(|| {
            let index = self.inner.read_recursive();
            with_threads(num_threads, || {
                if rows == 1 {
                    index.search(data, k, effort).map(|r| vec![r])
                } else {
                    index.search_batch(data, k, effort)
                }
            })
        })?;
        fill(&found.py()?, k, &mut out_l, &mut out_d);
        Ok((array2(py, out_l, rows, k)?, array2(py, out_d, rows, k)?))
    }

    /// hnswlib's spelling of :meth:`search`: ``knn_query(data, k=1, *,
    /// ef=None, num_threads=-1)``.
    #[pyo3(signature = (data, k = 1, *, ef = None, num_threads = -1))]
    fn knn_query<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        k: usize,
        ef: Option<usize>,
        num_threads: i64,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        self.search(py, data, k, ef, None, num_threads)
    }

    /// The ``k`` nearest labels to the stored vector of each of ``labels``
    /// (each item is among its own results when the search finds it):
    /// ``(labels, distances)`` of shape ``(n, k)``, padded as
    /// :meth:`search` pads. Unknown labels raise ``KeyError``.
    #[pyo3(signature = (labels, k = 10, *, ef = None, search_k = None, num_threads = -1))]
    fn search_by_label<'py>(
        &self,
        py: Python<'py>,
        labels: &Bound<'py, PyAny>,
        k: usize,
        ef: Option<usize>,
        search_k: Option<usize>,
        num_threads: i64,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        use rayon::prelude::*;
        if k == 0 {
            return Err(PyValueError::new_err("k must be at least 1"));
        }
        let effort = effort(ef, search_k)?;
        let ids = crate::common::labels(labels, "labels")?;
        let rows = ids.len();
        let total = rows
            .checked_mul(k)
            .ok_or_else(|| PyValueError::new_err("k too large"))?;
        let mut out_l = filled(total, PAD)?;
        let mut out_d = filled(total, f32::INFINITY)?;
        let found = py.detach(|| {
            let index = self.inner.read_recursive();
            with_threads(num_threads, || {
                ids.par_iter()
                    .map(|&id| index.search_by_label(id, k, effort))
                    .collect::<swann::Result<Vec<_>>>()
            })
        })?;
        fill(&found.py()?, k, &mut out_l, &mut out_d);
        Ok((array2(py, out_l, rows, k)?, array2(py, out_d, rows, k)?))
    }

    /// The vector stored under ``label`` as float32 ``(dim,)`` (as stored:
    /// normalized under cosine and angular). ``KeyError`` when no shard
    /// holds it.
    fn get_vector<'py>(&self, py: Python<'py>, label: u64) -> PyResult<Bound<'py, PyAny>> {
        let v = py
            .detach(|| self.inner.read_recursive().get_vector(label))
            .py()?;
        array1(py, v)
    }

    /// Checks every shard file against the checksum the manifest recorded
    /// (reads every byte) and each index's own checks; ``ValueError``
    /// naming the first shard that fails.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.read_recursive().verify()).py()
    }

    /// Vectors in all shards.
    fn __len__(&self) -> usize {
        self.inner.read_recursive().len()
    }

    fn __repr__(&self) -> String {
        let i = self.inner.read_recursive();
        format!(
            "ShardedIndex({:?}, kind={:?}, metric={:?}, dim={}, shards={}, len={})",
            self.path.display().to_string(),
            i.kind().name(),
            i.metric().name(),
            i.dim(),
            i.num_shards(),
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

    /// The index kind of every shard: ``"hnsw"``, ``"forest"`` or ``"flat"``.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.read_recursive().kind().name()
    }

    /// Number of shard files.
    #[getter]
    fn num_shards(&self) -> usize {
        self.inner.read_recursive().num_shards()
    }

    /// Whether larger distances are nearer (forest shards under ``"dot"``);
    /// the value :func:`merge_top_k` needs for these results.
    #[getter]
    fn larger_is_closer(&self) -> bool {
        self.inner.read_recursive().larger_is_closer()
    }

    /// The manifest's path, as given.
    #[getter]
    fn manifest_path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Each shard is asked for ``ceil(k * oversample)`` results (default
    /// 1.0; at least 1). Approximate shards find the global top ``k`` more
    /// often with a few more each.
    #[getter]
    fn get_oversample(&self) -> f64 {
        self.inner.read_recursive().oversample()
    }

    #[setter]
    fn set_oversample(&self, py: Python<'_>, factor: f64) -> PyResult<()> {
        py.detach(|| self.inner.write().set_oversample(factor)).py()
    }
}

/// The manifest as a dict: the JSON file's fields, the metric by the name
/// the index classes use, shard paths as recorded (relative to the
/// manifest's folder unless absolute).
fn manifest_dict<'py>(py: Python<'py>, m: &Manifest) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("format", &m.format)?;
    d.set_item("version", m.version)?;
    d.set_item("kind", m.kind.name())?;
    d.set_item("metric", m.metric.name())?;
    d.set_item("dim", m.dim)?;
    d.set_item("elem_type", &m.elem_type)?;
    let shards = PyList::empty(py);
    for s in &m.shards {
        let e = PyDict::new(py);
        e.set_item("path", s.path.to_string_lossy().into_owned())?;
        e.set_item("rows", s.rows)?;
        e.set_item("label_min", s.label_min)?;
        e.set_item("label_max", s.label_max)?;
        e.set_item("bytes", s.bytes)?;
        e.set_item("xxh3", &s.xxh3)?;
        shards.append(e)?;
    }
    d.set_item("shards", shards)?;
    Ok(d)
}

/// Writes the manifest of ``shard_paths`` (index files written by ``save``,
/// all of one kind, metric and dimension) to ``out_path``, atomically (a
/// temporary file, synced, renamed). Shards inside ``out_path``'s folder
/// are recorded relative to it, so the folder can move as a whole. Reads
/// every shard once for its checksum. Returns the manifest as
/// :func:`read_manifest` does.
#[pyfunction]
pub fn write_manifest<'py>(
    py: Python<'py>,
    shard_paths: Vec<PathBuf>,
    out_path: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let m = py
        .detach(|| {
            let dir = match out_path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let m = Manifest::from_shards(&shard_paths, &dir)?;
            m.write(&out_path)?;
            Ok::<_, swann::Error>(m)
        })
        .py()?;
    manifest_dict(py, &m)
}

/// Reads and validates the manifest at ``path`` (not the shard files) as a
/// dict: ``format``, ``version``, ``kind``, ``metric``, ``dim``,
/// ``elem_type`` and ``shards`` (each ``path``, ``rows``, ``label_min``,
/// ``label_max``, ``bytes``, ``xxh3``).
#[pyfunction]
pub fn read_manifest<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let m = py.detach(|| Manifest::read(&path)).py()?;
    manifest_dict(py, &m)
}

/// The rows ``(start, end)`` of part ``i`` of ``n`` rows split into
/// ``parts`` contiguous ranges of equal size (+-1), as the command-line
/// tool splits: part ``i`` starts at ``i * n // parts``.
#[pyfunction]
pub fn shard_rows(n: usize, parts: usize, i: usize) -> PyResult<(usize, usize)> {
    if parts == 0 {
        return Err(PyValueError::new_err("parts must be at least 1"));
    }
    if i >= parts {
        return Err(PyValueError::new_err(format!(
            "part {i} does not exist: parts are numbered 0 to {}",
            parts - 1
        )));
    }
    let r = rs_shard_rows(n, parts, i);
    Ok((r.start, r.end))
}

/// XXH3-64 of the whole file at ``path`` as 16 lowercase hex digits: the
/// checksum a manifest records for each shard. Releases the GIL.
#[pyfunction]
pub fn file_checksum(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| rs_checksum(&path)).py()
}

/// A `u64` array of any shape from labels given as an array or sequence of
/// non-negative integers.
fn label_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, u64>> {
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'py, u64>>() {
        return Ok(a);
    }
    let np = obj.py().import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    let size: usize = arr.getattr("size")?.extract()?;
    match kind.as_str() {
        "u" => {}
        "i" => {
            if size > 0 && arr.call_method0("min")?.lt(0)? {
                return Err(PyValueError::new_err(
                    "labels must be non-negative integers",
                ));
            }
        }
        // An empty list is read as float64 by numpy.
        "f" if size == 0 => {}
        _ => {
            return Err(PyTypeError::new_err(format!(
                "labels must be integers, got an array of dtype {}",
                arr.getattr("dtype")?.str()?
            )))
        }
    }
    arr.call_method1("astype", ("uint64",))?
        .extract::<PyReadonlyArrayDyn<'py, u64>>()
}

fn distance_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'py, f32>>() {
        return Ok(a);
    }
    let np = obj.py().import("numpy")?;
    np.call_method1("asarray", (obj, "float32"))
        .map_err(|e| PyTypeError::new_err(format!("distances must be numbers: {e}")))?
        .extract::<PyReadonlyArrayDyn<'py, f32>>()
}

/// Merges per-shard results into the ``k`` best, exactly as
/// :class:`ShardedIndex` does: ordered by distance (descending where
/// ``larger_is_closer``), ties broken by the smaller label, a label found
/// in several lists reported once at its best distance. Padding (label
/// ``2**64 - 1``) is skipped.
///
/// ``lists`` is a sequence of ``(labels, distances)`` pairs, either 1-D
/// (one query: returns 1-D arrays of at most ``k`` results) or 2-D of shape
/// ``(n, k_i)`` with one row per query, as :meth:`ShardedIndex.search`
/// returns them (returns ``(n, k)`` arrays, padded as a search pads).
#[pyfunction]
#[pyo3(signature = (lists, k, larger_is_closer = false))]
pub fn merge_top_k<'py>(
    py: Python<'py>,
    lists: &Bound<'py, PyAny>,
    k: usize,
    larger_is_closer: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if k == 0 {
        return Err(PyValueError::new_err("k must be at least 1"));
    }
    let mut pairs = Vec::new();
    for (i, item) in lists.try_iter()?.enumerate() {
        let item = item?;
        let (l, d): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item.extract().map_err(|_| {
            PyTypeError::new_err(format!("lists[{i}] must be a (labels, distances) pair"))
        })?;
        let (l, d) = (label_array(&l)?, distance_array(&d)?);
        if l.shape() != d.shape() {
            return Err(PyValueError::new_err(format!(
                "lists[{i}]: labels of shape {:?} but distances of shape {:?}",
                l.shape(),
                d.shape()
            )));
        }
        pairs.push((l, d));
    }
    let ndim = pairs.first().map_or(1, |(l, _)| l.ndim());
    // (queries, per-list row width) of every list, checked to agree.
    let mut queries = None;
    let mut shaped = Vec::with_capacity(pairs.len());
    for (i, (l, d)) in pairs.iter().enumerate() {
        let (rows, width) = match (ndim, l.shape()) {
            (1, [w]) => (1, *w),
            (2, [r, w]) => (*r, *w),
            (_, s) => {
                return Err(PyValueError::new_err(format!(
                    "lists[{i}] has shape {s:?}: every list must be 1-D (one query) \
                     or every list 2-D (one row per query)"
                )))
            }
        };
        if *queries.get_or_insert(rows) != rows {
            return Err(PyValueError::new_err(format!(
                "lists[{i}] holds {rows} rows, lists[0] {}",
                queries.unwrap_or(0)
            )));
        }
        let labels = l.as_array().iter().copied().collect::<Vec<u64>>();
        let dists = d.as_array().iter().copied().collect::<Vec<f32>>();
        shaped.push((labels, dists, width));
    }
    let queries = queries.unwrap_or(if ndim == 1 { 1 } else { 0 });
    let merged = py.detach(|| {
        (0..queries)
            .map(|q| {
                let rows: Vec<Vec<Neighbor>> = shaped
                    .iter()
                    .map(|(l, d, w)| {
                        let r = q * w..(q + 1) * w;
                        l[r.clone()]
                            .iter()
                            .zip(&d[r])
                            .filter(|(&label, _)| label != PAD)
                            .map(|(&label, &distance)| Neighbor { label, distance })
                            .collect()
                    })
                    .collect();
                rs_merge(rows.iter().map(Vec::as_slice), k, larger_is_closer)
            })
            .collect::<Vec<_>>()
    });
    if ndim == 1 {
        let top = merged.into_iter().next().unwrap_or_default();
        let labels = top.iter().map(|n| n.label).collect();
        let dists = top.iter().map(|n| n.distance).collect();
        return Ok((array1(py, labels)?, array1(py, dists)?));
    }
    let total = queries
        .checked_mul(k)
        .ok_or_else(|| PyValueError::new_err("k too large"))?;
    let mut out_l = filled(total, PAD)?;
    let mut out_d = filled(total, f32::INFINITY)?;
    fill(&merged, k, &mut out_l, &mut out_d);
    Ok((
        array2(py, out_l, queries, k)?,
        array2(py, out_d, queries, k)?,
    ))
}
