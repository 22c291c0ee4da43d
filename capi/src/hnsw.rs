//! `SwannHnsw`: the HNSW graph over `f32` vectors (hnswlib's and N2's
//! index).

use std::ffi::c_char;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use swann::index::hnsw::{Hnsw, NeighborSelection};
use swann::index::Neighbor;
use swann::store::OpenOptions;
use swann::Metric;

use crate::{
    check_out, fill_from, guard, handle, knob, metric, opt_slice_mut, put, slice, slice_mut,
    threads, utf8, with_threads, CResult, Failure, Shared, SwannStatus,
};

/// Neighbour selection: the paper's heuristic (N2's `heuristic`; default).
pub const SWANN_SELECTION_HEURISTIC: i32 = 0;
/// Neighbour selection: the nearest candidates (N2's `naive`).
pub const SWANN_SELECTION_SIMPLE: i32 = 1;
/// Neighbour selection: the heuristic, topping lists up with pruned
/// candidates (N2's `heuristic_save_remains`).
pub const SWANN_SELECTION_HEURISTIC_KEEP_PRUNED: i32 = 2;

/// Graph merging (N2's `graph_merging`): none (default).
pub const SWANN_GRAPH_MERGING_SKIP: i32 = 0;
/// Graph merging: N2's `merge_level0`. Accepted for N2 compatibility and
/// recorded in the configuration string, but swann builds one graph, so it
/// changes nothing.
pub const SWANN_GRAPH_MERGING_MERGE_LEVEL0: i32 = 1;

/// The `ef` searches use when given -1, until `swann_hnsw_set_ef`.
pub const SWANN_HNSW_DEFAULT_EF: usize = 64;

/// Parameters of a new HNSW index. Fill with `swann_hnsw_params_init`, then
/// change what you need. The struct is caller-owned; `metric` is borrowed
/// only during `swann_hnsw_new`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SwannHnswParams {
    /// Components per vector (at least 1). No default: must be set.
    pub dim: usize,
    /// Metric name, NUL-terminated: `"l2"` (squared Euclidean), `"ip"`
    /// (`1 - a.b`), `"cosine"` (`1 - cos`; vectors are normalized on
    /// insert) or `"dot"` (ranked as `ip`, distance `1 - a.b`). Case is
    /// ignored. Default `"l2"`. (N2's `"angular"` is `"cosine"` here.)
    pub metric: *const c_char,
    /// Links per node on the upper levels (N2's `m`), 2..=127. Default 16.
    pub m: usize,
    /// Most links per node on level 0 (N2's `max_m0`); 0 means `2 * m`.
    pub m0: usize,
    /// Candidate list size while inserting. Default 200.
    pub ef_construction: usize,
    /// Slots allocated up front (hnswlib's `max_elements`); the index grows
    /// past it unless `swann_hnsw_set_grow(h, 0)`. Default 0.
    pub capacity: usize,
    /// Seed of the level generator. Default 100.
    pub seed: u64,
    /// Level multiplier (N2's `mult`); 0 means `1 / ln(m)`.
    pub level_mult: f64,
    /// One of `SWANN_SELECTION_*`. Default `SWANN_SELECTION_HEURISTIC`.
    pub selection: i32,
    /// One of `SWANN_GRAPH_MERGING_*` (accepted, see the constants).
    pub graph_merging: i32,
}

/// An HNSW index handle. Opaque: create with `swann_hnsw_new`,
/// `swann_hnsw_load` or `swann_hnsw_open_mmap`; release with
/// `swann_hnsw_free`.
pub struct SwannHnsw {
    index: Shared<Hnsw>,
    ef: AtomicUsize,
    grow: AtomicBool,
    graph_merging: i32,
}

impl SwannHnsw {
    fn wrap(index: Hnsw, graph_merging: i32) -> *mut SwannHnsw {
        Box::into_raw(Box::new(SwannHnsw {
            index: Shared::new(index),
            ef: AtomicUsize::new(SWANN_HNSW_DEFAULT_EF),
            grow: AtomicBool::new(true),
            graph_merging,
        }))
    }

    fn ef(&self, requested: i64) -> CResult<usize> {
        Ok(knob(requested, "ef")?.unwrap_or_else(|| self.ef.load(Ordering::Relaxed)))
    }
}

fn selection_of(code: i32) -> CResult<NeighborSelection> {
    match code {
        SWANN_SELECTION_HEURISTIC => Ok(NeighborSelection::Heuristic),
        SWANN_SELECTION_SIMPLE => Ok(NeighborSelection::Simple),
        SWANN_SELECTION_HEURISTIC_KEEP_PRUNED => Ok(NeighborSelection::HeuristicKeepPruned),
        other => Err(Failure::invalid(format!(
            "selection {other} is not one of SWANN_SELECTION_HEURISTIC (0), \
             SWANN_SELECTION_SIMPLE (1), SWANN_SELECTION_HEURISTIC_KEEP_PRUNED (2)"
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

/// Copies `hits` to the front of the outputs and returns how many.
fn write_hits(
    hits: &[Neighbor],
    labels: &mut [std::mem::MaybeUninit<u64>],
    dists: Option<&mut [std::mem::MaybeUninit<f32>]>,
) -> usize {
    fill_from(labels, hits.iter().map(|h| h.label));
    if let Some(d) = dists {
        fill_from(d, hits.iter().map(|h| h.distance));
    }
    hits.len()
}

fn check_dim(index: &Hnsw, dim: usize) -> CResult<()> {
    if dim != index.dim() {
        return Err(Failure::from(swann::Error::DimensionMismatch {
            expected: index.dim(),
            got: dim,
        }));
    }
    Ok(())
}

/// `k` and `ef` cut to what can matter: no search returns more labels than
/// the index holds, or gains from a candidate list longer than that, and
/// the library sizes its buffers by them.
fn bounded(index: &Hnsw, k: usize, ef: usize) -> (usize, usize) {
    let k = k.min(index.len().max(1));
    (k, ef.min(index.len().max(k)))
}

fn check_k(k: usize) -> CResult<()> {
    if k == 0 {
        return Err(Failure::invalid("k must be at least 1"));
    }
    Ok(())
}

/// Fills `params` with the defaults (see `SwannHnswParams`); `dim` is set
/// to 0 and must be changed.
///
/// # Safety
/// `params` is NULL or points to a writable `SwannHnswParams`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_params_init(params: *mut SwannHnswParams) -> SwannStatus {
    guard(|| {
        check_out(params, "params")?;
        let p = SwannHnswParams {
            dim: 0,
            metric: cstr!("l2").as_ptr(),
            m: 16,
            m0: 0,
            ef_construction: 200,
            capacity: 0,
            seed: 100,
            level_mult: 0.0,
            selection: SWANN_SELECTION_HEURISTIC,
            graph_merging: SWANN_GRAPH_MERGING_SKIP,
        };
        // SAFETY: checked non-null and aligned; writable by contract.
        unsafe { put(params, p) };
        Ok(())
    })
}

/// Creates an empty index with `params` and stores its handle in `*out`
/// (caller frees it with `swann_hnsw_free`).
///
/// # Safety
/// `params` is NULL or points to a readable `SwannHnswParams` whose
/// `metric` is NULL or a NUL-terminated string; `out` is NULL or points to
/// a writable `SwannHnsw*`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_new(
    params: *const SwannHnswParams,
    out: *mut *mut SwannHnsw,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        // SAFETY: non-null; readable by contract (the struct is plain data,
        // copied out).
        let p = unsafe { params.read_unaligned() };
        // SAFETY: by contract `metric` is NULL or NUL-terminated.
        let metric = metric(unsafe { utf8(p.metric, "params->metric") }?)?;
        if p.dim == 0 {
            return Err(Failure::invalid("dim must be at least 1"));
        }
        if !matches!(
            metric,
            Metric::L2 | Metric::InnerProduct | Metric::Cosine | Metric::Dot
        ) {
            return Err(Failure::invalid(format!(
                "HNSW supports the metrics l2, ip, cosine and dot, not {metric}"
            )));
        }
        if !matches!(
            p.graph_merging,
            SWANN_GRAPH_MERGING_SKIP | SWANN_GRAPH_MERGING_MERGE_LEVEL0
        ) {
            return Err(Failure::invalid(format!(
                "graph_merging {} is not SWANN_GRAPH_MERGING_SKIP (0) or \
                 SWANN_GRAPH_MERGING_MERGE_LEVEL0 (1)",
                p.graph_merging
            )));
        }
        let mut b = Hnsw::builder(p.dim, metric)
            .m(p.m)
            .ef_construction(p.ef_construction)
            .capacity(p.capacity)
            .seed(p.seed)
            .selection(selection_of(p.selection)?);
        if p.m0 != 0 {
            b = b.m0(p.m0);
        }
        if p.level_mult != 0.0 {
            b = b.level_mult(p.level_mult);
        }
        let index = b.build()?;
        // SAFETY: `out` checked non-null and aligned above.
        unsafe { put(out, SwannHnsw::wrap(index, p.graph_merging)) };
        Ok(())
    })
}

/// Loads an index file (written by `swann_hnsw_save` or `swann build
/// hnsw`) into memory, checking every checksum, and stores a new handle in
/// `*out` (N2's `LoadModel` without mmap).
///
/// # Safety
/// `path` is NULL or NUL-terminated; `out` is NULL or points to a writable
/// `SwannHnsw*`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_load(
    path: *const c_char,
    out: *mut *mut SwannHnsw,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let path = unsafe { crate::path(path, "path") }?;
        let index = Hnsw::load(&path)?;
        // SAFETY: `out` checked above.
        unsafe { put(out, SwannHnsw::wrap(index, SWANN_GRAPH_MERGING_SKIP)) };
        Ok(())
    })
}

/// Maps an index file read-only and searches it in place (N2's
/// `LoadModel`); the first change copies it into memory. With `prefault`
/// non-zero every page is read in at open. The file must not be modified or
/// truncated while the handle is open.
///
/// # Safety
/// As for `swann_hnsw_load`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_open_mmap(
    path: *const c_char,
    prefault: i32,
    out: *mut *mut SwannHnsw,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let path = unsafe { crate::path(path, "path") }?;
        let opts = OpenOptions {
            populate: prefault != 0,
            ..OpenOptions::default()
        };
        let index = Hnsw::open_mmap(&path, opts)?;
        // SAFETY: `out` checked above.
        unsafe { put(out, SwannHnsw::wrap(index, SWANN_GRAPH_MERGING_SKIP)) };
        Ok(())
    })
}

/// Writes the index to `path` atomically (N2's `SaveModel`): a temporary
/// file is written, synced and renamed over `path`.
///
/// # Safety
/// `h` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_save(h: *const SwannHnsw, path: *const c_char) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let path = unsafe { crate::path(path, "path") }?;
        h.index.read()?.save(&path)?;
        Ok(())
    })
}

/// Frees a handle and its index. NULL is accepted and does nothing. No other
/// call may be running or start on the handle.
///
/// # Safety
/// `h` is NULL or a live handle from this library, not used again after.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_free(h: *mut SwannHnsw) -> SwannStatus {
    guard(|| {
        if !h.is_null() {
            // SAFETY: by contract `h` came from `Box::into_raw` in `wrap` and
            // is freed once.
            drop(unsafe { Box::from_raw(h) });
        }
        Ok(())
    })
}

/// Whether adds may grow the index past its capacity (non-zero, the
/// default) or fail with `SWANN_STATUS_INDEX_FULL` (0, hnswlib's way).
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_set_grow(h: *const SwannHnsw, enable: i32) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.grow.store(enable != 0, Ordering::Relaxed);
        Ok(())
    })
}

/// Adds `vector` (`dim` floats, caller-owned, read during the call) under
/// `label`. A label already present has its vector replaced.
///
/// # Safety
/// `h` is NULL or a live handle; `vector` is NULL or points to `dim`
/// readable floats.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_add(
    h: *const SwannHnsw,
    label: u64,
    vector: *const f32,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let v = unsafe { slice(vector, dim, "vector") }?;
        let grow = h.grow.load(Ordering::Relaxed);
        h.index.write(|index| {
            check_dim(index, dim)?;
            if !grow && !index.contains(label) && index.len() >= index.capacity() {
                return Err(full(index.capacity()));
            }
            index.insert(label, v)?;
            Ok(())
        })
    })
}

fn full(capacity: usize) -> Failure {
    Failure::from(swann::Error::CapacityExceeded { capacity })
}

/// Adds `n` vectors: row `i` of `data` (row-major, `n * dim` floats) under
/// `labels[i]`, inserting on `num_threads` threads (-1: every core). Every
/// row is checked before anything is added. Both arrays are caller-owned
/// and read during the call.
///
/// # Safety
/// `h` is NULL or a live handle; `labels` points to `n` readable `uint64_t`
/// and `data` to `n * dim` readable floats (either may be NULL when `n` is
/// 0).
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_add_batch(
    h: *const SwannHnsw,
    labels: *const u64,
    data: *const f32,
    n: usize,
    dim: usize,
    num_threads: i32,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        let threads = threads(num_threads)?;
        // SAFETY: by contract.
        let labels = unsafe { slice(labels, n, "labels") }?;
        let total = n
            .checked_mul(dim)
            .ok_or_else(|| Failure::invalid("n * dim overflows"))?;
        // SAFETY: by contract.
        let data = unsafe { slice(data, total, "data") }?;
        let grow = h.grow.load(Ordering::Relaxed);
        h.index.write(|index| {
            check_dim(index, dim)?;
            if !grow {
                let mut fresh: Vec<u64> = labels
                    .iter()
                    .copied()
                    .filter(|&l| !index.contains(l))
                    .collect();
                fresh.sort_unstable();
                fresh.dedup();
                if index.len() + fresh.len() > index.capacity() {
                    return Err(full(index.capacity()));
                }
            }
            with_threads(threads, || index.insert_batch(labels, data))??;
            Ok(())
        })
    })
}

/// Searches for the `k` nearest labels to `query` (`dim` floats), exploring
/// `ef` candidates (-1: the handle's default, see `swann_hnsw_set_ef`;
/// raised to `k` if smaller). Writes up to `k` labels to `out_labels` and,
/// unless it is NULL, their distances to `out_distances` (both caller-owned
/// arrays of at least `k` elements), nearest first, and the number found
/// to `*out_count` (fewer than `k` only when the index holds fewer live
/// labels). Distances: squared L2 for `l2`, `1 - a.b` for `ip` and `dot`
/// (N2 reports the score `a.b` for dot: `1 - distance`), `1 - cos` for
/// `cosine`.
///
/// # Safety
/// `h` is NULL or a live handle; `query` points to `dim` readable floats;
/// `out_labels` to `k` writable `uint64_t`; `out_distances` is NULL or
/// points to `k` writable floats; `out_count` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_search(
    h: *const SwannHnsw,
    query: *const f32,
    dim: usize,
    k: usize,
    ef: i64,
    out_labels: *mut u64,
    out_distances: *mut f32,
    out_count: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_k(k)?;
        check_out(out_count, "out_count")?;
        // SAFETY: by contract.
        let q = unsafe { slice(query, dim, "query") }?;
        // SAFETY: by contract.
        let labels = unsafe { slice_mut(out_labels, k, "out_labels") }?;
        // SAFETY: by contract.
        let dists = unsafe { opt_slice_mut(out_distances, k, "out_distances") }?;
        let ef = h.ef(ef)?;
        let hits = {
            let index = h.index.read()?;
            check_dim(&index, dim)?;
            let (k, ef) = bounded(&index, k, ef);
            index.search(q, k, ef)?
        };
        let n = write_hits(&hits, labels, dists);
        // SAFETY: checked above.
        unsafe { put(out_count, n) };
        Ok(())
    })
}

/// Searches for the `k` nearest labels to the stored vector of `label`
/// (N2's `SearchById`): the level-0 search starts at the item, so a live
/// label is always among its own results. Outputs as for
/// `swann_hnsw_search`. `SWANN_STATUS_NOT_FOUND` if the index does not hold
/// `label`.
///
/// # Safety
/// As for `swann_hnsw_search`, without `query`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_search_by_label(
    h: *const SwannHnsw,
    label: u64,
    k: usize,
    ef: i64,
    out_labels: *mut u64,
    out_distances: *mut f32,
    out_count: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_k(k)?;
        check_out(out_count, "out_count")?;
        // SAFETY: by contract.
        let labels = unsafe { slice_mut(out_labels, k, "out_labels") }?;
        // SAFETY: by contract.
        let dists = unsafe { opt_slice_mut(out_distances, k, "out_distances") }?;
        let ef = h.ef(ef)?;
        let hits = {
            let index = h.index.read()?;
            let (k, ef) = bounded(&index, k, ef);
            index.search_by_label(label, k, ef)?
        };
        let n = write_hits(&hits, labels, dists);
        // SAFETY: checked above.
        unsafe { put(out_count, n) };
        Ok(())
    })
}

/// Searches `nq` queries (row-major, `nq * dim` floats) on `num_threads`
/// threads (-1: every core; 1: the calling thread). Row `i`'s results go to
/// `out_labels[i*k .. i*k+k]` and `out_distances[...]` (NULL: not wanted);
/// a row with fewer than `k` results is padded with label `UINT64_MAX` and
/// distance `INFINITY`. `out_counts` (NULL: not wanted) receives each row's
/// number of results. All arrays are caller-owned.
///
/// # Safety
/// `h` is NULL or a live handle; `queries` points to `nq * dim` readable
/// floats; `out_labels` to `nq * k` writable `uint64_t`; `out_distances`
/// is NULL or points to `nq * k` writable floats; `out_counts` is NULL or
/// points to `nq` writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_search_batch(
    h: *const SwannHnsw,
    queries: *const f32,
    nq: usize,
    dim: usize,
    k: usize,
    ef: i64,
    num_threads: i32,
    out_labels: *mut u64,
    out_distances: *mut f32,
    out_counts: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_k(k)?;
        let threads = threads(num_threads)?;
        let qlen = nq
            .checked_mul(dim)
            .ok_or_else(|| Failure::invalid("nq * dim overflows"))?;
        let olen = nq
            .checked_mul(k)
            .ok_or_else(|| Failure::invalid("nq * k overflows"))?;
        // SAFETY: by contract.
        let qs = unsafe { slice(queries, qlen, "queries") }?;
        // SAFETY: by contract.
        let labels = unsafe { slice_mut(out_labels, olen, "out_labels") }?;
        // SAFETY: by contract.
        let mut dists = unsafe { opt_slice_mut(out_distances, olen, "out_distances") }?;
        // SAFETY: by contract.
        let mut counts = unsafe { opt_slice_mut(out_counts, nq, "out_counts") }?;
        let ef = h.ef(ef)?;
        let rows = {
            let index = h.index.read()?;
            check_dim(&index, dim)?;
            if nq == 0 {
                return Ok(());
            }
            let (k, ef) = bounded(&index, k, ef);
            if threads == Some(1) {
                qs.chunks(dim)
                    .map(|q| index.search(q, k, ef))
                    .collect::<swann::Result<Vec<_>>>()?
            } else {
                with_threads(threads, || index.search_batch(qs, k, ef))??
            }
        };
        for (i, hits) in rows.iter().enumerate() {
            let row = i * k..(i + 1) * k;
            let n = hits.len();
            fill_from(
                &mut labels[row.clone()],
                hits.iter()
                    .map(|h| h.label)
                    .chain(std::iter::repeat(u64::MAX)),
            );
            if let Some(d) = dists.as_deref_mut() {
                fill_from(
                    &mut d[row],
                    hits.iter()
                        .map(|h| h.distance)
                        .chain(std::iter::repeat(f32::INFINITY)),
                );
            }
            if let Some(c) = counts.as_deref_mut() {
                c[i].write(n);
            }
        }
        Ok(())
    })
}

/// Reads one `size_t` property under the read lock.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or writable.
unsafe fn get_usize(
    h: *const SwannHnsw,
    out: *mut usize,
    f: impl FnOnce(&SwannHnsw, &Hnsw) -> usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let v = f(h, &*h.index.read()?);
        // SAFETY: checked above.
        unsafe { put(out, v) };
        Ok(())
    })
}

/// Stores the number of labels in the index, deleted ones included, in
/// `*out`.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_count(h: *const SwannHnsw, out: *mut usize) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |_, i| i.len()) }
}

/// Stores the number of labels marked deleted in `*out`.
///
/// # Safety
/// As for `swann_hnsw_count`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_deleted_count(
    h: *const SwannHnsw,
    out: *mut usize,
) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |_, i| i.deleted_count()) }
}

/// Stores the number of slots allocated in `*out`.
///
/// # Safety
/// As for `swann_hnsw_count`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_capacity(h: *const SwannHnsw, out: *mut usize) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |_, i| i.capacity()) }
}

/// Stores the vector dimension in `*out`.
///
/// # Safety
/// As for `swann_hnsw_count`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_dim(h: *const SwannHnsw, out: *mut usize) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |_, i| i.dim()) }
}

/// Stores the default `ef` of searches given `ef = -1` in `*out`.
///
/// # Safety
/// As for `swann_hnsw_count`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_get_ef(h: *const SwannHnsw, out: *mut usize) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |h, _| h.ef.load(Ordering::Relaxed)) }
}

/// Sets the default `ef` of searches given `ef = -1` (at least 1; initially
/// `SWANN_HNSW_DEFAULT_EF`).
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_set_ef(h: *const SwannHnsw, ef: usize) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        if ef == 0 {
            return Err(Failure::invalid("ef must be at least 1"));
        }
        h.ef.store(ef, Ordering::Relaxed);
        Ok(())
    })
}

/// Stores the metric's name (`"l2"`, `"ip"`, `"cosine"` or `"dot"`; a
/// static string owned by the library) in `*out`.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// `const char*`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_metric(
    h: *const SwannHnsw,
    out: *mut *const c_char,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let name = metric_cstr(h.index.read()?.metric());
        // SAFETY: checked above.
        unsafe { put(out, name.as_ptr()) };
        Ok(())
    })
}

pub(crate) fn metric_cstr(m: Metric) -> &'static std::ffi::CStr {
    match m {
        Metric::L2 => cstr!("l2"),
        Metric::InnerProduct => cstr!("ip"),
        Metric::Cosine => cstr!("cosine"),
        Metric::Angular => cstr!("angular"),
        Metric::Euclidean => cstr!("euclidean"),
        Metric::Manhattan => cstr!("manhattan"),
        Metric::Hamming => cstr!("hamming"),
        Metric::Dot => cstr!("dot"),
    }
}

/// Copies the stored vector of `label` (normalized, for `cosine`) into
/// `out` (`dim` caller-owned floats). Deleted labels still have their
/// vector; `SWANN_STATUS_NOT_FOUND` for labels never added.
///
/// # Safety
/// `h` is NULL or a live handle; `out` points to `dim` writable floats.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_get_vector(
    h: *const SwannHnsw,
    label: u64,
    out: *mut f32,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let o = unsafe { slice_mut(out, dim, "out") }?;
        let v = {
            let index = h.index.read()?;
            check_dim(&index, dim)?;
            index.get_vector(label)?
        };
        fill_from(o, v);
        Ok(())
    })
}

/// Marks `label` deleted: searches no longer return it, but it still routes
/// them. Runs under the shared lock, beside searches.
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_mark_deleted(h: *const SwannHnsw, label: u64) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.index.read()?.mark_deleted(label)?;
        Ok(())
    })
}

/// Clears the deleted mark of `label`.
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_unmark_deleted(h: *const SwannHnsw, label: u64) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.index.read()?.unmark_deleted(label)?;
        Ok(())
    })
}

/// Stores 1 in `*out` if `label` is marked deleted, else 0;
/// `SWANN_STATUS_NOT_FOUND` if the index does not hold it.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_is_deleted(
    h: *const SwannHnsw,
    label: u64,
    out: *mut i32,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let d = h.index.read()?.is_deleted(label)?;
        // SAFETY: checked above.
        unsafe { put(out, i32::from(d)) };
        Ok(())
    })
}

/// Stores 1 in `*out` if the index holds `label` (deleted or not), else 0.
///
/// # Safety
/// As for `swann_hnsw_is_deleted`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_contains(
    h: *const SwannHnsw,
    label: u64,
    out: *mut i32,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let c = h.index.read()?.contains(label);
        // SAFETY: checked above.
        unsafe { put(out, i32::from(c)) };
        Ok(())
    })
}

/// Sets the capacity to `capacity` slots (hnswlib's `resize_index`); it
/// cannot drop below the number of labels held.
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_resize(h: *const SwannHnsw, capacity: usize) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.index.write(|index| Ok(index.resize(capacity)?))
    })
}

/// Writes the index's configuration (N2's `PrintConfigs`) into `buf` as
/// NUL-terminated `key=value` lines: dim, metric, M, M0, ef_construction,
/// level_mult, selection, graph_merging, seed, capacity, count, deleted,
/// ef, grow, mapped. Buffer handling as for `swann_last_error_copy`: `buf`
/// (`len` bytes, caller-owned) receives a truncated string and the call
/// returns `SWANN_STATUS_BUFFER_TOO_SMALL` when it does not fit; `needed`
/// (may be NULL) receives the bytes the whole text needs.
///
/// # Safety
/// `h` is NULL or a live handle; `buf` points to `len` writable bytes (or is
/// NULL with `len == 0`); `needed` is NULL or points to a writable
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_hnsw_config(
    h: *const SwannHnsw,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        let text = {
            let i = h.index.read()?;
            let mut s = String::new();
            let merging = if h.graph_merging == SWANN_GRAPH_MERGING_MERGE_LEVEL0 {
                "merge_level0 (accepted; swann builds a single graph)"
            } else {
                "skip"
            };
            // Writing to a String cannot fail.
            let _ = write!(
                s,
                "dim={}\nmetric={}\nM={}\nM0={}\nef_construction={}\nlevel_mult={}\n\
                 selection={}\ngraph_merging={}\nseed={}\ncapacity={}\ncount={}\n\
                 deleted={}\nef={}\ngrow={}\nmapped={}\n",
                i.dim(),
                i.metric(),
                i.m(),
                i.m0(),
                i.ef_construction(),
                i.level_mult(),
                selection_name(i.selection()),
                merging,
                i.seed(),
                i.capacity(),
                i.len(),
                i.deleted_count(),
                h.ef.load(Ordering::Relaxed),
                h.grow.load(Ordering::Relaxed),
                i.is_mapped(),
            );
            s
        };
        // SAFETY: forwarded contract.
        unsafe { crate::copy_out(text.as_bytes(), buf, len, needed) }
    })
}
