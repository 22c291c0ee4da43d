//! `SwannForest`: the random-projection forest (Annoy's method), with the
//! calls Annoy's API has.

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use swann::formats::annoy::AnnoyIndex;
use swann::index::forest::{Forest, Hit};
use swann::store::OpenOptions;
use swann::Metric;

use crate::hnsw::metric_cstr;
use crate::{
    check_out, fill_from, guard, handle, knob, opt_slice_mut, put, slice, slice_mut, threads, utf8,
    CResult, Failure, Shared, SwannStatus,
};

/// A forest handle. Opaque: create with `swann_forest_new`,
/// `swann_forest_load` or `swann_forest_open_mmap`; release with
/// `swann_forest_free`.
pub struct SwannForest {
    index: Shared<Inner>,
    verbose: AtomicBool,
}

impl SwannForest {
    fn wrap(f: Inner) -> *mut SwannForest {
        Box::into_raw(Box::new(SwannForest {
            index: Shared::new(f),
            verbose: AtomicBool::new(false),
        }))
    }
}

/// What a handle holds: swann's own forest, or a file written by Annoy
/// itself, mapped read-only and searched as Annoy searches it.
pub(crate) enum Inner {
    Swann(Box<Forest>),
    Annoy(Box<AnnoyIndex>),
}

impl Inner {
    fn swann_mut(&mut self) -> CResult<&mut Forest> {
        match self {
            Inner::Swann(f) => Ok(f),
            Inner::Annoy(_) => Err(annoy_read_only()),
        }
    }

    fn dim(&self) -> usize {
        match self {
            Inner::Swann(f) => f.dim(),
            Inner::Annoy(a) => a.dim(),
        }
    }

    fn metric(&self) -> Metric {
        match self {
            Inner::Swann(f) => f.metric(),
            Inner::Annoy(a) => a.metric(),
        }
    }

    fn n_items(&self) -> usize {
        match self {
            Inner::Swann(f) => f.n_items(),
            Inner::Annoy(a) => a.n_items(),
        }
    }

    fn n_trees(&self) -> usize {
        match self {
            Inner::Swann(f) => f.n_trees(),
            Inner::Annoy(a) => a.n_trees(),
        }
    }

    fn is_built(&self) -> bool {
        match self {
            Inner::Swann(f) => f.is_built(),
            Inner::Annoy(_) => true,
        }
    }

    fn nns_by_item(&self, id: u32, n: usize, search_k: Option<usize>) -> swann::Result<Vec<Hit>> {
        match self {
            Inner::Swann(f) => f.nns_by_item(id, n, search_k),
            Inner::Annoy(a) => a.nns_by_item(id, n, search_k),
        }
    }

    fn nns_by_vector(
        &self,
        v: &[f32],
        n: usize,
        search_k: Option<usize>,
    ) -> swann::Result<Vec<Hit>> {
        match self {
            Inner::Swann(f) => f.nns_by_vector(v, n, search_k),
            Inner::Annoy(a) => a.nns_by_vector(v, n, search_k),
        }
    }

    fn item_vector(&self, id: u32) -> swann::Result<Vec<f32>> {
        match self {
            Inner::Swann(f) => f.item_vector(id),
            Inner::Annoy(a) => a.item_vector(id),
        }
    }

    fn distance(&self, i: u32, j: u32) -> swann::Result<f32> {
        match self {
            Inner::Swann(f) => f.distance(i, j),
            Inner::Annoy(a) => a.distance(i, j),
        }
    }
}

fn annoy_read_only() -> Failure {
    Failure::from(swann::Error::InvalidState(
        "this index is a file written by Annoy, mapped read-only; add its items to a new forest to change it"
            .into(),
    ))
}

/// An item id: the forest's ids are `uint32_t`.
fn item(id: u64) -> CResult<u32> {
    u32::try_from(id).map_err(|_| {
        Failure::invalid(format!(
            "item id {id} is out of range: the forest's ids are at most {}",
            u32::MAX
        ))
    })
}

/// `n` cut to the number of item ids: no search returns more, and the
/// library sizes its buffers by it.
fn bounded(f: &Inner, n: usize) -> usize {
    n.min(f.n_items().max(1))
}

fn check_dim(f: &Inner, dim: usize) -> CResult<()> {
    if dim != f.dim() {
        return Err(Failure::from(swann::Error::DimensionMismatch {
            expected: f.dim(),
            got: dim,
        }));
    }
    Ok(())
}

/// Whether `path` starts as swann's own index files do.
fn is_swann_file(path: &std::path::Path) -> CResult<bool> {
    use std::io::Read;
    let mut magic = [0u8; 8];
    let mut f = std::fs::File::open(path).map_err(swann::Error::from)?;
    let n = f.read(&mut magic).map_err(swann::Error::from)?;
    Ok(n == magic.len() && magic == swann::store::format::MAGIC)
}

fn open(path: &std::path::Path, mmap: bool, prefault: bool) -> CResult<Forest> {
    Ok(if mmap {
        Forest::open_mmap(
            path,
            OpenOptions {
                populate: prefault,
                ..OpenOptions::default()
            },
        )?
    } else {
        Forest::load(path)?
    })
}

/// Creates an empty forest of `dim`-dimensional items (for `hamming`,
/// `dim` bits) under `metric` (`"angular"`, `"euclidean"`, `"manhattan"`,
/// `"hamming"` or `"dot"`) and stores its handle in `*out` (free with
/// `swann_forest_free`).
///
/// # Safety
/// `metric` is NULL or NUL-terminated; `out` is NULL or points to a
/// writable `SwannForest*`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_new(
    dim: usize,
    metric: *const c_char,
    out: *mut *mut SwannForest,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let m = crate::metric(unsafe { utf8(metric, "metric") }?)?;
        if dim == 0 {
            return Err(Failure::invalid("dim must be at least 1"));
        }
        let f = Forest::new(dim, m)?;
        // SAFETY: checked above.
        unsafe { put(out, SwannForest::wrap(Inner::Swann(Box::new(f)))) };
        Ok(())
    })
}

/// Reads a forest file (written by `swann_forest_save`, or built with
/// `swann_forest_on_disk_build`) into memory, checking every checksum, and
/// stores a new handle in `*out`.
///
/// # Safety
/// `path` is NULL or NUL-terminated; `out` is NULL or points to a writable
/// `SwannForest*`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_load(
    path: *const c_char,
    out: *mut *mut SwannForest,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        let f = open(&p, false, false)?;
        // SAFETY: checked above.
        unsafe { put(out, SwannForest::wrap(Inner::Swann(Box::new(f)))) };
        Ok(())
    })
}

/// Maps a forest file read-only (Annoy's `load`); with `prefault` non-zero
/// every page is read in at open. The file must not be modified or
/// truncated while the handle is open.
///
/// # Safety
/// As for `swann_forest_load`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_open_mmap(
    path: *const c_char,
    prefault: i32,
    out: *mut *mut SwannForest,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        let f = open(&p, true, prefault != 0)?;
        // SAFETY: checked above.
        unsafe { put(out, SwannForest::wrap(Inner::Swann(Box::new(f)))) };
        Ok(())
    })
}

/// Replaces the forest held by `h` with the file at `path` (Annoy's
/// `load` on an existing index): mapped when `mmap` is non-zero (read in at
/// open with `prefault`), else read into memory. The file's dimension and
/// metric must be the handle's (`SWANN_STATUS_INVALID_ARGUMENT`
/// otherwise, and the handle keeps its forest).
///
/// Files written by Annoy 1.17 itself are accepted too: they record
/// neither dimension nor metric, so the handle's are taken (as Annoy's
/// `load` takes them), the file is always mapped, and it is checked as it
/// is searched (`SWANN_STATUS_FORMAT` for a file that does not fit them).
/// Such a handle is read-only: adds, builds, `unbuild`, `set_seed` and
/// `on_disk_build` give `SWANN_STATUS_STATE` until `swann_forest_unload`.
///
/// # Safety
/// `h` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_reload(
    h: *const SwannForest,
    path: *const c_char,
    mmap: i32,
    prefault: i32,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        let (dim, metric) = {
            let cur = h.index.read()?;
            (cur.dim(), cur.metric())
        };
        // Annoy's own files record neither dimension nor metric: the
        // handle's are taken, as Annoy's `load` does.
        let f = if is_swann_file(&p)? {
            Inner::Swann(Box::new(open(&p, mmap != 0, prefault != 0)?))
        } else {
            Inner::Annoy(Box::new(AnnoyIndex::open_with(
                &p,
                dim,
                metric,
                prefault != 0,
            )?))
        };
        h.index.write(|cur| {
            if (f.dim(), f.metric()) != (cur.dim(), cur.metric()) {
                return Err(Failure::invalid(format!(
                    "{} holds a {}-dimensional {} forest; this index is {}-dimensional {}",
                    p.display(),
                    f.dim(),
                    f.metric(),
                    cur.dim(),
                    cur.metric()
                )));
            }
            *cur = f;
            Ok(())
        })
    })
}

/// Drops the forest's items and trees and unmaps its file, if any (Annoy's
/// `unload`): the handle is left empty, with its dimension and metric, and
/// takes items again.
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_unload(h: *const SwannForest) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.index.write(|cur| {
            *cur = Inner::Swann(Box::new(Forest::new(cur.dim(), cur.metric())?));
            Ok(())
        })
    })
}

/// Writes the built forest to `path` (through a temporary file, synced and
/// renamed). `SWANN_STATUS_STATE` if it is not built. A handle holding a
/// file written by Annoy writes that file's bytes again (Annoy's format). Unlike Annoy's
/// `save`, the handle keeps its forest in memory; follow with
/// `swann_forest_reload(h, path, 1, prefault)` for Annoy's behaviour.
///
/// # Safety
/// `h` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_save(
    h: *const SwannForest,
    path: *const c_char,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        match &*h.index.read()? {
            Inner::Swann(f) => f.save(&p)?,
            Inner::Annoy(a) => a.save(&p)?,
        }
        Ok(())
    })
}

/// Frees a handle and its forest. NULL is accepted and does nothing. No
/// other call may be running or start on the handle.
///
/// # Safety
/// `h` is NULL or a live handle from this library, not used again after.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_free(h: *mut SwannForest) -> SwannStatus {
    guard(|| {
        if !h.is_null() {
            // SAFETY: by contract `h` came from `Box::into_raw` in `wrap` and
            // is freed once.
            drop(unsafe { Box::from_raw(h) });
        }
        Ok(())
    })
}

/// Sets the seed of the next build: the same seed, items and parameters give
/// the same trees, whatever the thread count.
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_set_seed(h: *const SwannForest, seed: u64) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.index.write(|f| {
            f.swann_mut()?.set_seed(seed);
            Ok(())
        })
    })
}

/// With `verbose` non-zero, `swann_forest_build` prints one line to stderr
/// saying how many trees it built over how many items, and how long it
/// took (Annoy's `verbose`).
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_set_verbose(
    h: *const SwannForest,
    verbose: i32,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.verbose.store(verbose != 0, Ordering::Relaxed);
        Ok(())
    })
}

/// Moves the forest into the file at `path` (created or truncated) and
/// builds there (Annoy's `on_disk_build`): items added from now on and the
/// trees are written into a growing memory map of the file, which is a
/// complete forest file once `swann_forest_build` returns. Call it before
/// adding items.
///
/// # Safety
/// `h` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_on_disk_build(
    h: *const SwannForest,
    path: *const c_char,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        h.index.write(|f| Ok(f.swann_mut()?.on_disk_build(&p)?))
    })
}

/// Adds (or replaces) item `id` (at most `UINT32_MAX`) with `vector` (`dim`
/// caller-owned floats; for `hamming`, one value per bit, set when above
/// 0.5). Ids are dense: adding item `i` makes room for `0..=i`.
/// `SWANN_STATUS_STATE` once built (see `swann_forest_unbuild`) and for a
/// forest read from a file.
///
/// # Safety
/// `h` is NULL or a live handle; `vector` points to `dim` readable floats.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_add_item(
    h: *const SwannForest,
    id: u64,
    vector: *const f32,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        let id = item(id)?;
        // SAFETY: by contract.
        let v = unsafe { slice(vector, dim, "vector") }?;
        h.index.write(|f| {
            check_dim(f, dim)?;
            Ok(f.swann_mut()?.add_item(id, v)?)
        })
    })
}

/// Adds `n` items: row `i` of `data` (row-major, `n * dim` floats) as item
/// `ids[i]`. Every id and row is checked before anything is added. Both
/// arrays are caller-owned.
///
/// # Safety
/// `h` is NULL or a live handle; `ids` points to `n` readable `uint64_t`
/// and `data` to `n * dim` readable floats (NULL allowed when `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn swann_forest_add_items(
    h: *const SwannForest,
    ids: *const u64,
    data: *const f32,
    n: usize,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let ids = unsafe { slice(ids, n, "ids") }?;
        let total = n
            .checked_mul(dim)
            .ok_or_else(|| Failure::invalid("n * dim overflows"))?;
        // SAFETY: by contract.
        let data = unsafe { slice(data, total, "data") }?;
        let ids: Vec<u32> = ids.iter().map(|&i| item(i)).collect::<CResult<_>>()?;
        if let Some(at) = data.iter().position(|x| !x.is_finite()) {
            return Err(Failure::invalid(format!(
                "data row {} component {} is {}, not a finite number",
                at / dim,
                at % dim,
                data[at]
            )));
        }
        h.index.write(|f| {
            check_dim(f, dim)?;
            let f = f.swann_mut()?;
            if n > 0 && f.is_built() {
                return Err(Failure::from(swann::Error::AlreadyBuilt));
            }
            for (&id, row) in ids.iter().zip(data.chunks_exact(dim.max(1))) {
                f.add_item(id, row)?;
            }
            Ok(())
        })
    })
}

/// Builds `n_trees` trees (-1: as many as it takes for their nodes to
/// number at least the items, Annoy's `build(-1)`) on `n_threads` threads
/// (-1: every core; Annoy's `n_jobs`), and stores the number of trees
/// built in `*out_n_trees` (may be NULL). Items can no longer be added
/// until `swann_forest_unbuild`.
///
/// # Safety
/// `h` is NULL or a live handle; `out_n_trees` is NULL or points to a
/// writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_build(
    h: *const SwannForest,
    n_trees: i64,
    n_threads: i32,
    out_n_trees: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        if !out_n_trees.is_null() {
            check_out(out_n_trees, "out_n_trees")?;
        }
        let threads = threads(n_threads)?;
        let n_trees = match n_trees {
            -1 => None,
            n if n >= 1 => Some(
                usize::try_from(n)
                    .map_err(|_| Failure::invalid(format!("n_trees {n} is too large")))?,
            ),
            n => {
                return Err(Failure::invalid(format!(
                    "n_trees must be at least 1, or -1 to choose by the item count; got {n}"
                )))
            }
        };
        let start = Instant::now();
        let (built, items) = h.index.write(|f| {
            let f = f.swann_mut()?;
            let built = match n_trees {
                Some(n) => f.build(n, threads).map(|()| n)?,
                None => f.build_auto(threads)?,
            };
            Ok((built, f.n_items()))
        })?;
        if h.verbose.load(Ordering::Relaxed) {
            eprintln!(
                "swann: built {built} trees over {items} items in {:.3} s",
                start.elapsed().as_secs_f64()
            );
        }
        if !out_n_trees.is_null() {
            // SAFETY: checked non-null and aligned above.
            unsafe { put(out_n_trees, built) };
        }
        Ok(())
    })
}

/// Drops the trees so items can be added again. `SWANN_STATUS_STATE` for a
/// forest read from a file (loaded or mapped), which is read-only: add its
/// items to a new forest to change them.
///
/// # Safety
/// `h` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_unbuild(h: *const SwannForest) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        h.index.write(|f| Ok(f.swann_mut()?.unbuild()?))
    })
}

fn write_hits(
    hits: &[Hit],
    ids: &mut [std::mem::MaybeUninit<u64>],
    dists: Option<&mut [std::mem::MaybeUninit<f32>]>,
) -> usize {
    fill_from(ids, hits.iter().map(|h| u64::from(h.id)));
    if let Some(d) = dists {
        fill_from(d, hits.iter().map(|h| h.distance));
    }
    hits.len()
}

/// The `n` nearest items to item `id`, itself first (Annoy's
/// `get_nns_by_item`), looking at about `search_k` candidates (-1: `n *
/// n_trees`). Writes up to `n` ids to `out_ids`, their distances to
/// `out_distances` unless it is NULL (both caller-owned, at least `n`
/// elements), and the number found to `*out_count`. Distances: `sqrt(2 -
/// 2 cos)` for angular, Euclidean, Manhattan, the number of differing bits
/// for hamming, and for dot the dot product (larger is nearer).
/// `SWANN_STATUS_STATE` if the forest is not built.
///
/// # Safety
/// `h` is NULL or a live handle; `out_ids` points to `n` writable
/// `uint64_t`; `out_distances` is NULL or points to `n` writable floats;
/// `out_count` points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_nns_by_item(
    h: *const SwannForest,
    id: u64,
    n: usize,
    search_k: i64,
    out_ids: *mut u64,
    out_distances: *mut f32,
    out_count: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        let id = item(id)?;
        if n == 0 {
            return Err(Failure::invalid("n must be at least 1"));
        }
        let sk = knob(search_k, "search_k")?;
        check_out(out_count, "out_count")?;
        // SAFETY: by contract.
        let ids = unsafe { slice_mut(out_ids, n, "out_ids") }?;
        // SAFETY: by contract.
        let dists = unsafe { opt_slice_mut(out_distances, n, "out_distances") }?;
        let hits = {
            let f = h.index.read()?;
            f.nns_by_item(id, bounded(&f, n), sk)?
        };
        let c = write_hits(&hits, ids, dists);
        // SAFETY: checked above.
        unsafe { put(out_count, c) };
        Ok(())
    })
}

/// The `n` nearest items to `vector` (`dim` floats; Annoy's
/// `get_nns_by_vector`). Otherwise as `swann_forest_nns_by_item`.
///
/// # Safety
/// As for `swann_forest_nns_by_item`, and `vector` points to `dim`
/// readable floats.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_nns_by_vector(
    h: *const SwannForest,
    vector: *const f32,
    dim: usize,
    n: usize,
    search_k: i64,
    out_ids: *mut u64,
    out_distances: *mut f32,
    out_count: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        if n == 0 {
            return Err(Failure::invalid("n must be at least 1"));
        }
        let sk = knob(search_k, "search_k")?;
        check_out(out_count, "out_count")?;
        // SAFETY: by contract.
        let v = unsafe { slice(vector, dim, "vector") }?;
        // SAFETY: by contract.
        let ids = unsafe { slice_mut(out_ids, n, "out_ids") }?;
        // SAFETY: by contract.
        let dists = unsafe { opt_slice_mut(out_distances, n, "out_distances") }?;
        let hits = {
            let f = h.index.read()?;
            check_dim(&f, dim)?;
            f.nns_by_vector(v, bounded(&f, n), sk)?
        };
        let c = write_hits(&hits, ids, dists);
        // SAFETY: checked above.
        unsafe { put(out_count, c) };
        Ok(())
    })
}

/// Copies item `id`'s vector into `out` (`dim` caller-owned floats; for
/// hamming one 0.0/1.0 per bit). Annoy's `get_item_vector`.
///
/// # Safety
/// `h` is NULL or a live handle; `out` points to `dim` writable floats.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_get_item_vector(
    h: *const SwannForest,
    id: u64,
    out: *mut f32,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        let id = item(id)?;
        // SAFETY: by contract.
        let o = unsafe { slice_mut(out, dim, "out") }?;
        let v = {
            let f = h.index.read()?;
            check_dim(&f, dim)?;
            f.item_vector(id)?
        };
        fill_from(o, v);
        Ok(())
    })
}

/// Stores the distance between items `i` and `j`, as searches report it,
/// in `*out` (Annoy's `get_distance`).
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// float.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_get_distance(
    h: *const SwannForest,
    i: u64,
    j: u64,
    out: *mut f32,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let (i, j) = (item(i)?, item(j)?);
        let d = h.index.read()?.distance(i, j)?;
        // SAFETY: checked above.
        unsafe { put(out, d) };
        Ok(())
    })
}

/// Reads one `size_t` property under the read lock.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or writable.
unsafe fn get_usize(
    h: *const SwannForest,
    out: *mut usize,
    f: impl FnOnce(&Inner) -> usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let v = f(&*h.index.read()?);
        // SAFETY: checked above.
        unsafe { put(out, v) };
        Ok(())
    })
}

/// Stores one more than the largest item id added in `*out` (Annoy's
/// `get_n_items`).
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_n_items(
    h: *const SwannForest,
    out: *mut usize,
) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |f| f.n_items()) }
}

/// Stores the number of trees (0 before a build) in `*out` (Annoy's
/// `get_n_trees`).
///
/// # Safety
/// As for `swann_forest_n_items`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_n_trees(
    h: *const SwannForest,
    out: *mut usize,
) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |f| f.n_trees()) }
}

/// Stores the dimension (bits, for hamming) in `*out`.
///
/// # Safety
/// As for `swann_forest_n_items`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_dim(h: *const SwannForest, out: *mut usize) -> SwannStatus {
    // SAFETY: forwarded contract.
    unsafe { get_usize(h, out, |f| f.dim()) }
}

/// Stores 1 in `*out` if the forest is built (searchable, closed to adds),
/// else 0.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_is_built(
    h: *const SwannForest,
    out: *mut i32,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let b = h.index.read()?.is_built();
        // SAFETY: checked above.
        unsafe { put(out, i32::from(b)) };
        Ok(())
    })
}

/// Stores the metric's name (a static string owned by the library) in
/// `*out`.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// `const char*`.
#[no_mangle]
pub unsafe extern "C" fn swann_forest_metric(
    h: *const SwannForest,
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
