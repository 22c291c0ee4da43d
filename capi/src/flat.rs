//! `SwannFlat`: the exact index (a scan of every vector), for ground truth
//! and small collections.

use std::ffi::c_char;

use swann::index::flat::FlatIndex;
use swann::store::OpenOptions;

use crate::hnsw::metric_cstr;
use crate::{
    check_out, fill_from, guard, handle, opt_slice_mut, put, slice, slice_mut, utf8, CResult,
    Failure, Shared, SwannStatus,
};

/// A flat index handle. Opaque: create with `swann_flat_new`,
/// `swann_flat_load` or `swann_flat_open_mmap`; release with
/// `swann_flat_free`.
pub struct SwannFlat {
    index: Shared<FlatIndex>,
}

impl SwannFlat {
    fn wrap(f: FlatIndex) -> *mut SwannFlat {
        Box::into_raw(Box::new(SwannFlat {
            index: Shared::new(f),
        }))
    }
}

fn check_dim(f: &FlatIndex, dim: usize) -> CResult<()> {
    if dim != f.dim() {
        return Err(Failure::from(swann::Error::DimensionMismatch {
            expected: f.dim(),
            got: dim,
        }));
    }
    Ok(())
}

/// Creates an empty flat index of `dim`-dimensional vectors under `metric`
/// (`"l2"`, `"ip"`, `"cosine"`, `"dot"`, `"angular"`, `"euclidean"` or
/// `"manhattan"`) and stores its handle in `*out` (free with
/// `swann_flat_free`).
///
/// # Safety
/// `metric` is NULL or NUL-terminated; `out` is NULL or points to a
/// writable `SwannFlat*`.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_new(
    dim: usize,
    metric: *const c_char,
    out: *mut *mut SwannFlat,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let m = crate::metric(unsafe { utf8(metric, "metric") }?)?;
        if dim == 0 {
            return Err(Failure::invalid("dim must be at least 1"));
        }
        let f = FlatIndex::new(dim, m)?;
        // SAFETY: checked above.
        unsafe { put(out, SwannFlat::wrap(f)) };
        Ok(())
    })
}

/// Reads a flat index file (written by `swann_flat_save`) into memory and
/// stores a new handle in `*out`.
///
/// # Safety
/// `path` is NULL or NUL-terminated; `out` is NULL or points to a writable
/// `SwannFlat*`.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_load(
    path: *const c_char,
    out: *mut *mut SwannFlat,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        let f = FlatIndex::load(&p)?;
        // SAFETY: checked above.
        unsafe { put(out, SwannFlat::wrap(f)) };
        Ok(())
    })
}

/// Maps a flat index file read-only (copied into memory on the first add);
/// `prefault` non-zero reads every page in at open. The file must not be
/// modified or truncated while the handle is open.
///
/// # Safety
/// As for `swann_flat_load`.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_open_mmap(
    path: *const c_char,
    prefault: i32,
    out: *mut *mut SwannFlat,
) -> SwannStatus {
    guard(|| {
        check_out(out, "out")?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        let opts = OpenOptions {
            populate: prefault != 0,
            ..OpenOptions::default()
        };
        let f = FlatIndex::open_mmap(&p, opts)?;
        // SAFETY: checked above.
        unsafe { put(out, SwannFlat::wrap(f)) };
        Ok(())
    })
}

/// Writes the index to `path` atomically.
///
/// # Safety
/// `h` is NULL or a live handle; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_save(h: *const SwannFlat, path: *const c_char) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let p = unsafe { crate::path(path, "path") }?;
        h.index.read()?.save(&p)?;
        Ok(())
    })
}

/// Frees a handle and its index. NULL is accepted and does nothing. No
/// other call may be running or start on the handle.
///
/// # Safety
/// `h` is NULL or a live handle from this library, not used again after.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_free(h: *mut SwannFlat) -> SwannStatus {
    guard(|| {
        if !h.is_null() {
            // SAFETY: by contract `h` came from `Box::into_raw` in `wrap` and
            // is freed once.
            drop(unsafe { Box::from_raw(h) });
        }
        Ok(())
    })
}

/// Appends `vector` (`dim` caller-owned floats) under `label`. Labels need
/// not be unique: the index is a scan.
///
/// # Safety
/// `h` is NULL or a live handle; `vector` points to `dim` readable floats.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_add(
    h: *const SwannFlat,
    label: u64,
    vector: *const f32,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let v = unsafe { slice(vector, dim, "vector") }?;
        h.index.write(|f| {
            check_dim(f, dim)?;
            Ok(f.add(label, v)?)
        })
    })
}

/// Appends `n` vectors: row `i` of `data` (row-major, `n * dim` floats)
/// under `labels[i]`. Every row is checked before anything is added. Both
/// arrays are caller-owned.
///
/// # Safety
/// `h` is NULL or a live handle; `labels` points to `n` readable
/// `uint64_t` and `data` to `n * dim` readable floats (NULL allowed when
/// `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn swann_flat_add_batch(
    h: *const SwannFlat,
    labels: *const u64,
    data: *const f32,
    n: usize,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let labels = unsafe { slice(labels, n, "labels") }?;
        let total = n
            .checked_mul(dim)
            .ok_or_else(|| Failure::invalid("n * dim overflows"))?;
        // SAFETY: by contract.
        let data = unsafe { slice(data, total, "data") }?;
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
            f.reserve(n);
            for (&l, row) in labels.iter().zip(data.chunks_exact(dim.max(1))) {
                f.add(l, row)?;
            }
            Ok(())
        })
    })
}

/// The exact `k` nearest labels to `query` (`dim` floats), nearest first
/// (ties broken by label). Writes up to `k` labels to `out_labels`, their
/// distances to `out_distances` unless it is NULL (both caller-owned, at
/// least `k` elements), and the number found to `*out_count`.
///
/// # Safety
/// `h` is NULL or a live handle; `query` points to `dim` readable floats;
/// `out_labels` to `k` writable `uint64_t`; `out_distances` is NULL or
/// points to `k` writable floats; `out_count` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_search(
    h: *const SwannFlat,
    query: *const f32,
    dim: usize,
    k: usize,
    out_labels: *mut u64,
    out_distances: *mut f32,
    out_count: *mut usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        if k == 0 {
            return Err(Failure::invalid("k must be at least 1"));
        }
        check_out(out_count, "out_count")?;
        // SAFETY: by contract.
        let q = unsafe { slice(query, dim, "query") }?;
        // SAFETY: by contract.
        let labels = unsafe { slice_mut(out_labels, k, "out_labels") }?;
        // SAFETY: by contract.
        let dists = unsafe { opt_slice_mut(out_distances, k, "out_distances") }?;
        let hits = {
            let f = h.index.read()?;
            check_dim(&f, dim)?;
            // No search returns more labels than the index holds, and the
            // library sizes its buffers by `k`.
            f.search(q, k.min(f.len().max(1)))?
        };
        fill_from(labels, hits.iter().map(|h| h.label));
        if let Some(d) = dists {
            fill_from(d, hits.iter().map(|h| h.distance));
        }
        // SAFETY: checked above.
        unsafe { put(out_count, hits.len()) };
        Ok(())
    })
}

/// Copies the vector stored under `label` (the first one, if the label was
/// added more than once; normalized for cosine and angular) into `out`
/// (`dim` caller-owned floats). A linear scan of the labels.
/// `SWANN_STATUS_NOT_FOUND` if no vector has that label.
///
/// # Safety
/// `h` is NULL or a live handle; `out` points to `dim` writable floats.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_get_vector(
    h: *const SwannFlat,
    label: u64,
    out: *mut f32,
    dim: usize,
) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        // SAFETY: by contract.
        let o = unsafe { slice_mut(out, dim, "out") }?;
        let f = h.index.read()?;
        check_dim(&f, dim)?;
        let i = f
            .labels()
            .iter()
            .position(|&l| l == label)
            .ok_or(Failure::from(swann::Error::UnknownLabel(label)))?;
        fill_from(o, f.vector(i).iter().copied());
        Ok(())
    })
}

/// Stores the number of vectors in `*out`.
///
/// # Safety
/// `h` is NULL or a live handle; `out` is NULL or points to a writable
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_count(h: *const SwannFlat, out: *mut usize) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let n = h.index.read()?.len();
        // SAFETY: checked above.
        unsafe { put(out, n) };
        Ok(())
    })
}

/// Stores the vector dimension in `*out`.
///
/// # Safety
/// As for `swann_flat_count`.
#[no_mangle]
pub unsafe extern "C" fn swann_flat_dim(h: *const SwannFlat, out: *mut usize) -> SwannStatus {
    guard(|| {
        // SAFETY: by contract.
        let h = unsafe { handle(h, "index") }?;
        check_out(out, "out")?;
        let n = h.index.read()?.dim();
        // SAFETY: checked above.
        unsafe { put(out, n) };
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
pub unsafe extern "C" fn swann_flat_metric(
    h: *const SwannFlat,
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
