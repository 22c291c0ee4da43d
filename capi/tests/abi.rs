//! The exported functions called as C would call them: raw pointers, status
//! codes, the per-thread message.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use swann_capi::flat::*;
use swann_capi::forest::*;
use swann_capi::hnsw::*;
use swann_capi::*;

fn message() -> String {
    // SAFETY: the library returns a valid NUL-terminated string, alive until
    // this thread's next call; it is copied at once.
    unsafe { CStr::from_ptr(swann_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn rows(n: usize, dim: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn hnsw(dim: usize, metric: &CStr) -> *mut SwannHnsw {
    let mut p = std::mem::MaybeUninit::<SwannHnswParams>::uninit();
    // SAFETY: `p` is writable; init fills every field.
    assert_eq!(
        unsafe { swann_hnsw_params_init(p.as_mut_ptr()) },
        SwannStatus::Ok
    );
    // SAFETY: initialized by the call above.
    let mut p = unsafe { p.assume_init() };
    p.dim = dim;
    p.metric = metric.as_ptr();
    p.m = 8;
    p.ef_construction = 64;
    let mut h = ptr::null_mut();
    // SAFETY: valid params and out-pointer.
    assert_eq!(unsafe { swann_hnsw_new(&p, &mut h) }, SwannStatus::Ok);
    assert!(!h.is_null());
    h
}

#[test]
fn errors_map_to_statuses() {
    use swann::Error as E;
    assert_eq!(
        status_of(&E::DimensionMismatch {
            expected: 1,
            got: 2
        }),
        SwannStatus::InvalidArgument
    );
    assert_eq!(
        status_of(&E::NonFinite {
            index: 0,
            value: f32::NAN
        }),
        SwannStatus::InvalidArgument
    );
    assert_eq!(
        status_of(&E::InvalidParameter("x".into())),
        SwannStatus::InvalidArgument
    );
    assert_eq!(status_of(&E::UnknownLabel(3)), SwannStatus::NotFound);
    assert_eq!(
        status_of(&E::CapacityExceeded { capacity: 1 }),
        SwannStatus::IndexFull
    );
    assert_eq!(status_of(&E::NotBuilt), SwannStatus::State);
    assert_eq!(status_of(&E::AlreadyBuilt), SwannStatus::State);
    assert_eq!(status_of(&E::InvalidState("x".into())), SwannStatus::State);
    assert_eq!(
        status_of(&E::BadDataFile {
            path: "p".into(),
            reason: "r".into()
        }),
        SwannStatus::Format
    );
    assert_eq!(
        status_of(&E::Io(std::io::Error::other("x"))),
        SwannStatus::Io
    );
    assert_eq!(
        status_of(&E::Storage {
            backend: "memory",
            message: "m".into()
        }),
        SwannStatus::Other
    );
}

#[test]
fn hnsw_round_trip_and_errors() {
    let dim = 6;
    let data = rows(300, dim);
    let labels: Vec<u64> = (0..300).map(|i| i * 10).collect();
    let h = hnsw(dim, c"cosine");
    // SAFETY (this block and below): every pointer passed is valid for the
    // length given, or deliberately NULL to test the checks.
    unsafe {
        assert_eq!(
            swann_hnsw_add_batch(h, labels.as_ptr(), data.as_ptr(), 300, dim, 2),
            SwannStatus::Ok
        );
        assert_eq!(message(), "");
        let mut out = [0u64; 4];
        let mut dist = [0f32; 4];
        let mut n = 0usize;
        assert_eq!(
            swann_hnsw_search(
                h,
                data[dim * 17..].as_ptr(),
                dim,
                4,
                -1,
                out.as_mut_ptr(),
                dist.as_mut_ptr(),
                &mut n
            ),
            SwannStatus::Ok
        );
        assert_eq!((n, out[0]), (4, 170));
        assert!(dist[0].abs() < 1e-6, "{dist:?}");
        // Wrong dimension, NULL query, NULL handle.
        assert_eq!(
            swann_hnsw_search(
                h,
                data.as_ptr(),
                dim + 1,
                4,
                -1,
                out.as_mut_ptr(),
                ptr::null_mut(),
                &mut n
            ),
            SwannStatus::InvalidArgument
        );
        assert!(message().contains("dimension 7"), "{}", message());
        assert_eq!(
            swann_hnsw_search(
                h,
                ptr::null(),
                dim,
                4,
                -1,
                out.as_mut_ptr(),
                ptr::null_mut(),
                &mut n
            ),
            SwannStatus::NullPointer
        );
        assert_eq!(
            swann_hnsw_search(
                ptr::null(),
                data.as_ptr(),
                dim,
                4,
                -1,
                out.as_mut_ptr(),
                ptr::null_mut(),
                &mut n
            ),
            SwannStatus::NullPointer
        );
        assert!(message().contains("index is NULL"));
        // Stored vectors are normalized under cosine.
        let mut v = vec![0f32; dim];
        assert_eq!(
            swann_hnsw_get_vector(h, 170, v.as_mut_ptr(), dim),
            SwannStatus::Ok
        );
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(
            swann_hnsw_get_vector(h, 171, v.as_mut_ptr(), dim),
            SwannStatus::NotFound
        );

        let dir = tempfile::tempdir().unwrap();
        let file = CString::new(dir.path().join("i.hnsw").to_str().unwrap()).unwrap();
        assert_eq!(swann_hnsw_save(h, file.as_ptr()), SwannStatus::Ok);
        let mut g = ptr::null_mut();
        assert_eq!(
            swann_hnsw_open_mmap(file.as_ptr(), 1, &mut g),
            SwannStatus::Ok
        );
        let mut count = 0;
        assert_eq!(swann_hnsw_count(g, &mut count), SwannStatus::Ok);
        assert_eq!(count, 300);
        let mut name: *const c_char = ptr::null();
        assert_eq!(swann_hnsw_metric(g, &mut name), SwannStatus::Ok);
        assert_eq!(CStr::from_ptr(name), c"cosine");
        assert_eq!(swann_hnsw_free(g), SwannStatus::Ok);
        assert_eq!(swann_hnsw_free(h), SwannStatus::Ok);
    }
}

#[test]
fn panics_are_caught_per_thread() {
    let h = hnsw(3, c"l2");
    let hp = h as usize;
    // Armed on another thread: this thread's calls are unaffected.
    std::thread::spawn(move || {
        swann_debug_panic_next_call(1);
        let mut n = 0;
        // SAFETY: live handle, valid out-pointer.
        let st = unsafe { swann_hnsw_count(hp as *const SwannHnsw, &mut n) };
        assert_eq!(st, SwannStatus::Panic);
        assert!(message().starts_with("panic: "), "{}", message());
    })
    .join()
    .unwrap();
    let mut n = 1;
    // SAFETY: live handle, valid out-pointer.
    unsafe {
        assert_eq!(swann_hnsw_count(h, &mut n), SwannStatus::Ok);
        assert_eq!(n, 0);
        swann_debug_panic_next_call(1);
        let v = [1.0f32, 2.0, 3.0];
        assert_eq!(swann_hnsw_add(h, 1, v.as_ptr(), 3), SwannStatus::Panic);
        // The forced panic comes before any work: nothing was added, and
        // the handle is still usable.
        assert_eq!(swann_hnsw_count(h, &mut n), SwannStatus::Ok);
        assert_eq!(n, 0);
        assert_eq!(swann_hnsw_add(h, 1, v.as_ptr(), 3), SwannStatus::Ok);
        assert_eq!(swann_hnsw_free(h), SwannStatus::Ok);
    }
}

#[test]
fn concurrent_searches_and_adds_on_one_handle() {
    let dim = 4;
    let data = rows(400, dim);
    let labels: Vec<u64> = (0..400).collect();
    let h = hnsw(dim, c"l2");
    // SAFETY: valid arrays of the lengths given.
    unsafe {
        assert_eq!(
            swann_hnsw_add_batch(h, labels.as_ptr(), data.as_ptr(), 400, dim, -1),
            SwannStatus::Ok
        );
    }
    let hp = h as usize;
    std::thread::scope(|s| {
        for t in 0..3 {
            let data = &data;
            s.spawn(move || {
                for i in (t..400).step_by(3) {
                    let mut out = [0u64; 3];
                    let mut n = 0;
                    // SAFETY: live handle (freed after the scope), valid
                    // buffers.
                    let st = unsafe {
                        swann_hnsw_search(
                            hp as *const SwannHnsw,
                            data[i * dim..].as_ptr(),
                            dim,
                            3,
                            64,
                            out.as_mut_ptr(),
                            ptr::null_mut(),
                            &mut n,
                        )
                    };
                    assert_eq!(st, SwannStatus::Ok);
                    assert_eq!(out[0], i as u64);
                }
            });
        }
        s.spawn(move || {
            for i in 0..200u64 {
                let v = [50.0 + i as f32, 50.0, 50.0, 50.0];
                // SAFETY: live handle, valid vector.
                let st = unsafe { swann_hnsw_add(hp as *const SwannHnsw, 1000 + i, v.as_ptr(), 4) };
                assert_eq!(st, SwannStatus::Ok);
            }
        });
    });
    let mut n = 0;
    // SAFETY: live handle; no other thread uses it now.
    unsafe {
        assert_eq!(swann_hnsw_count(h, &mut n), SwannStatus::Ok);
        assert_eq!(n, 600);
        assert_eq!(swann_hnsw_free(h), SwannStatus::Ok);
    }
}

#[test]
fn forest_lifecycle() {
    let dim = 5;
    let data = rows(200, dim);
    let ids: Vec<u64> = (0..200).collect();
    let mut f = ptr::null_mut();
    // SAFETY: valid strings, arrays and out-pointers throughout.
    unsafe {
        assert_eq!(
            swann_forest_new(dim, c"manhattan".as_ptr(), &mut f),
            SwannStatus::Ok
        );
        assert_eq!(
            swann_forest_add_items(f, ids.as_ptr(), data.as_ptr(), 200, dim),
            SwannStatus::Ok
        );
        let mut out = [0u64; 3];
        let mut n = 0;
        assert_eq!(
            swann_forest_nns_by_item(f, 1, 3, -1, out.as_mut_ptr(), ptr::null_mut(), &mut n),
            SwannStatus::State
        );
        assert!(message().contains("not built"), "{}", message());
        let mut trees = 0;
        assert_eq!(swann_forest_build(f, 7, 1, &mut trees), SwannStatus::Ok);
        assert_eq!(trees, 7);
        let mut dist = [0f32; 3];
        assert_eq!(
            swann_forest_nns_by_item(f, 12, 3, -1, out.as_mut_ptr(), dist.as_mut_ptr(), &mut n),
            SwannStatus::Ok
        );
        assert_eq!((n, out[0], dist[0]), (3, 12, 0.0));
        let mut d = 0f32;
        assert_eq!(swann_forest_get_distance(f, 0, 1, &mut d), SwannStatus::Ok);
        let l1: f32 = (0..dim).map(|j| (data[j] - data[dim + j]).abs()).sum();
        assert!((d - l1).abs() < 1e-5, "{d} vs {l1}");
        assert_eq!(swann_forest_unload(f), SwannStatus::Ok);
        let mut items = 1;
        assert_eq!(swann_forest_n_items(f, &mut items), SwannStatus::Ok);
        assert_eq!(items, 0);
        assert_eq!(swann_forest_free(f), SwannStatus::Ok);
    }
}

#[test]
fn flat_is_exact() {
    let dim = 3;
    let data = rows(100, dim);
    let labels: Vec<u64> = (500..600).collect();
    let mut f = ptr::null_mut();
    // SAFETY: valid strings, arrays and out-pointers throughout.
    unsafe {
        assert_eq!(swann_flat_new(dim, c"l2".as_ptr(), &mut f), SwannStatus::Ok);
        assert_eq!(
            swann_flat_add_batch(f, labels.as_ptr(), data.as_ptr(), 100, dim),
            SwannStatus::Ok
        );
        let q = [0.5f32, 0.5, 0.5];
        let best = (0..100)
            .min_by(|&a, &b| {
                let d = |i: usize| -> f32 {
                    (0..dim).map(|j| (data[i * dim + j] - q[j]).powi(2)).sum()
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        let mut out = [0u64; 2];
        let mut n = 0;
        assert_eq!(
            swann_flat_search(
                f,
                q.as_ptr(),
                dim,
                2,
                out.as_mut_ptr(),
                ptr::null_mut(),
                &mut n
            ),
            SwannStatus::Ok
        );
        assert_eq!((n, out[0]), (2, 500 + best as u64));
        assert_eq!(swann_flat_free(f), SwannStatus::Ok);
    }
}

#[test]
fn error_copy_and_status_names() {
    // SAFETY: valid buffers and lengths.
    unsafe {
        assert_eq!(swann_hnsw_set_ef(ptr::null(), 3), SwannStatus::NullPointer);
        let full = message();
        let mut buf = [0x55 as c_char; 6];
        let mut needed = 0usize;
        assert_eq!(
            swann_last_error_copy(buf.as_mut_ptr(), buf.len(), &mut needed),
            SwannStatus::BufferTooSmall
        );
        assert_eq!(needed, full.len() + 1);
        assert_eq!(
            CStr::from_ptr(buf.as_ptr()).to_bytes(),
            &full.as_bytes()[..5]
        );
        assert_eq!(message(), full);
        assert_eq!(CStr::from_ptr(swann_status_name(5)), c"not found");
        assert_eq!(CStr::from_ptr(swann_status_name(42)), c"unknown status");
        assert_eq!(
            CStr::from_ptr(swann_version()).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
    }
}

/// Files written by Annoy itself (tests/data/annoy, Annoy 1.17.3) open
/// through Annoy's `load` on an existing handle, answer as the library's
/// own reader does, and refuse every change.
#[test]
fn annoy_files_open_through_reload_and_are_read_only() {
    use swann::formats::annoy::AnnoyIndex;
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/annoy");
    // The fixtures' dimensions (Annoy's files do not record them).
    for (name, metric, dim) in [
        ("angular", swann::Metric::Angular, 16usize),
        ("euclidean", swann::Metric::Euclidean, 16),
        ("manhattan", swann::Metric::Manhattan, 12),
        ("dot", swann::Metric::Dot, 16),
    ] {
        let path = data.join(format!("{name}.ann"));
        let reference = AnnoyIndex::open(&path, dim, metric).unwrap();
        let cname = CString::new(name).unwrap();
        let cpath = CString::new(path.to_str().unwrap()).unwrap();
        let mut h = ptr::null_mut();
        // SAFETY: valid strings and out-pointer.
        assert_eq!(
            unsafe { swann_forest_new(dim, cname.as_ptr(), &mut h) },
            SwannStatus::Ok
        );
        // SAFETY: a live handle and a valid path.
        assert_eq!(
            unsafe { swann_forest_reload(h, cpath.as_ptr(), 1, 0) },
            SwannStatus::Ok,
            "{name}: {}",
            message()
        );
        let (mut n_items, mut n_trees, mut built) = (0usize, 0usize, 0i32);
        // SAFETY: a live handle and writable outputs.
        unsafe {
            assert_eq!(swann_forest_n_items(h, &mut n_items), SwannStatus::Ok);
            assert_eq!(swann_forest_n_trees(h, &mut n_trees), SwannStatus::Ok);
            assert_eq!(swann_forest_is_built(h, &mut built), SwannStatus::Ok);
        }
        assert_eq!(
            (n_items, n_trees, built),
            (reference.n_items(), reference.n_trees(), 1)
        );
        let queries = rows(20, dim);
        for q in queries.chunks(dim) {
            let (mut ids, mut dists, mut count) = ([0u64; 10], [0f32; 10], 0usize);
            // SAFETY: `q` holds 16 floats; the outputs hold 10 each.
            let st = unsafe {
                swann_forest_nns_by_vector(
                    h,
                    q.as_ptr(),
                    dim,
                    10,
                    -1,
                    ids.as_mut_ptr(),
                    dists.as_mut_ptr(),
                    &mut count,
                )
            };
            assert_eq!(st, SwannStatus::Ok, "{name}: {}", message());
            let want = reference.nns_by_vector(q, 10, None).unwrap();
            let got: Vec<(u64, f32)> = ids[..count].iter().copied().zip(dists).collect();
            let want: Vec<(u64, f32)> =
                want.iter().map(|h| (u64::from(h.id), h.distance)).collect();
            assert_eq!(got, want, "{name}");
        }
        let mut v = vec![0f32; dim];
        // SAFETY: `v` holds `dim` writable floats.
        assert_eq!(
            unsafe { swann_forest_get_item_vector(h, 3, v.as_mut_ptr(), dim) },
            SwannStatus::Ok
        );
        assert_eq!(v, reference.item_vector(3).unwrap());
        // Saving writes the Annoy file again, which reloads as it was.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.ann");
        let ccopy = CString::new(copy.to_str().unwrap()).unwrap();
        // SAFETY: a live handle and a valid path.
        unsafe {
            assert_eq!(swann_forest_save(h, ccopy.as_ptr()), SwannStatus::Ok);
            assert_eq!(
                swann_forest_reload(h, ccopy.as_ptr(), 1, 0),
                SwannStatus::Ok
            );
        }
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&path).unwrap());
        // Read-only: adds, builds and seeds are refused, saying why.
        // SAFETY: a live handle, `dim` readable floats, valid strings.
        unsafe {
            assert_eq!(
                swann_forest_add_item(h, 0, v.as_ptr(), dim),
                SwannStatus::State
            );
            assert!(message().contains("written by Annoy"), "{}", message());
            assert_eq!(
                swann_forest_build(h, 3, 1, ptr::null_mut()),
                SwannStatus::State
            );
            assert_eq!(swann_forest_set_seed(h, 7), SwannStatus::State);
            // Unload leaves an empty forest that takes items again.
            assert_eq!(swann_forest_unload(h), SwannStatus::Ok);
            assert_eq!(
                swann_forest_add_item(h, 0, v.as_ptr(), dim),
                SwannStatus::Ok
            );
            assert_eq!(swann_forest_free(h), SwannStatus::Ok);
        }
        // Annoy's files do not record their dimension: a handle of another
        // dimension takes the file exactly when the library's reader finds
        // it consistent with that dimension (the angular file is not).
        let reader_ok = AnnoyIndex::open(&path, dim - 1, metric).is_ok();
        if name == "angular" {
            assert!(!reader_ok);
        }
        let mut h = ptr::null_mut();
        // SAFETY: valid strings and out-pointer; then a live handle.
        unsafe {
            assert_eq!(
                swann_forest_new(dim - 1, cname.as_ptr(), &mut h),
                SwannStatus::Ok
            );
            let st = swann_forest_reload(h, cpath.as_ptr(), 1, 0);
            assert_eq!(st == SwannStatus::Ok, reader_ok, "{name}: {st:?}");
            assert_eq!(swann_forest_free(h), SwannStatus::Ok);
        }
    }
}
