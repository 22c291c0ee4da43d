//! The random-projection forest: recall against exact search, determinism,
//! file round trips, corrupt files, and input errors.
#![cfg(feature = "forest")]

mod common;

use swann::index::forest::{Forest, Hit};
use swann::store::OpenOptions;
use swann::{Error, Metric};

/// A small deterministic generator (tests must not depend on a rand crate's version).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        // Irwin-Hall: sum of 4 uniforms, centred; close enough to Gaussian here.
        (0..4).map(|_| self.next()).sum::<f32>() - 2.0
    }
}

/// `n` points around 20 centres, dimension `dim`.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = Lcg(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dim).map(|_| 4.0 * r.normal()).collect())
        .collect();
    (0..n)
        .map(|i| centres[i % 20].iter().map(|c| c + r.normal()).collect())
        .collect()
}

fn bits(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    // Clustered binary vectors: each point flips ~10% of its centre's bits.
    let mut r = Lcg(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dim).map(|_| (r.next() < 0.5) as u8 as f32).collect())
        .collect();
    (0..n)
        .map(|i| {
            centres[i % 20]
                .iter()
                .map(|&c| if r.next() < 0.1 { 1.0 - c } else { c })
                .collect()
        })
        .collect()
}

/// Exact distance as the forest reports it.
fn truth(metric: Metric, data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<u32> {
    let mut d: Vec<(f64, u32)> = data
        .iter()
        .enumerate()
        .map(|(i, x)| {
            // Nearest first: for dot, the largest product.
            let d = common::forest_distance(metric, q, x);
            (if metric == Metric::Dot { -d } else { d }, i as u32)
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.truncate(k);
    d.into_iter().map(|x| x.1).collect()
}

fn build(metric: Metric, data: &[Vec<f32>], trees: usize, threads: usize) -> Forest {
    let mut f = Forest::new(data[0].len(), metric).unwrap();
    f.set_seed(7);
    for (i, x) in data.iter().enumerate() {
        f.add_item(i as u32, x).unwrap();
    }
    f.build(trees, Some(threads)).unwrap();
    f
}

/// recall@k of the forest at `search_k` over `queries`, checking the
/// reported distances against exact ones on the way.
fn recall(
    f: &Forest,
    metric: Metric,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    k: usize,
    search_k: usize,
) -> f64 {
    let mut hit = 0;
    for q in queries {
        let want = truth(metric, data, q, k);
        let got = f.nns_by_vector(q, k, Some(search_k)).unwrap();
        assert_eq!(got.len(), k);
        for w in got.windows(2) {
            let (a, b) = (w[0].distance, w[1].distance);
            assert!(
                if metric == Metric::Dot {
                    a >= b
                } else {
                    a <= b
                },
                "not sorted: {got:?}"
            );
        }
        for h in &got {
            let e = common::forest_distance(metric, q, &data[h.id as usize]);
            assert!(
                (h.distance as f64 - e).abs() <= 1e-3 * e.abs().max(1.0),
                "{metric}: id {} distance {} exact {e}",
                h.id,
                h.distance
            );
        }
        hit += got.iter().filter(|h| want.contains(&h.id)).count();
    }
    hit as f64 / (k * queries.len()) as f64
}

fn recall_case(metric: Metric, dim: usize, search_k: usize, floor: f64) {
    let all = if metric == Metric::Hamming {
        bits(5100, dim, 11)
    } else {
        clustered(5100, dim, 11)
    };
    let (data, queries) = all.split_at(5000);
    let f = build(metric, data, 20, 2);
    assert_eq!(f.n_trees(), 20);
    assert_eq!(f.n_items(), 5000);
    let r = recall(&f, metric, data, queries, 10, search_k);
    let low = recall(&f, metric, data, queries, 10, 10);
    println!("{metric}: recall@10 {r:.3} at search_k {search_k}, {low:.3} at 10");
    assert!(r >= floor, "{metric}: recall {r:.3} below {floor}");
    // A much smaller search budget must find fewer: the knob works.
    assert!(
        low < r,
        "{metric}: recall does not grow with search_k ({low} vs {r})"
    );
}

// Floors: the recall measured with these seeds (in brackets) minus a
// margin; the trees are seeded, so the numbers move only if the algorithm
// does. 5,000 clustered points, 20 trees, search_k well under 10% of the data.
#[test]
fn recall_euclidean() {
    recall_case(Metric::Euclidean, 32, 400, 0.92); // [0.962]
}

#[test]
fn recall_manhattan() {
    recall_case(Metric::Manhattan, 32, 400, 0.90); // [0.947]
}

#[test]
fn recall_angular() {
    recall_case(Metric::Angular, 32, 400, 0.93); // [0.970]
}

#[test]
fn recall_dot() {
    recall_case(Metric::Dot, 32, 100, 0.93); // [0.978]
}

#[test]
fn recall_hamming() {
    recall_case(Metric::Hamming, 128, 800, 0.92); // [0.964]
}

fn sample(metric: Metric) -> Vec<Vec<f32>> {
    if metric == Metric::Hamming {
        bits(1500, 70, 3)
    } else {
        clustered(1500, 24, 3)
    }
}

fn answers(f: &Forest, queries: &[Vec<f32>]) -> Vec<Vec<Hit>> {
    let mut out: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| f.nns_by_vector(q, 10, None).unwrap())
        .collect();
    out.extend((0..20).map(|i| f.nns_by_item(i, 10, Some(300)).unwrap()));
    out
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    for metric in common::FOREST_METRICS {
        let data = sample(metric);
        let a = dir.path().join("a.swf");
        let b = dir.path().join("b.swf");
        build(metric, &data, 9, 1).save(&a).unwrap();
        build(metric, &data, 9, 3).save(&b).unwrap();
        let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(x == y, "{metric}: same seed, different bytes");
        let mut f = Forest::new(data[0].len(), metric).unwrap();
        f.set_seed(8);
        for (i, v) in data.iter().enumerate() {
            f.add_item(i as u32, v).unwrap();
        }
        f.build(9, Some(2)).unwrap();
        f.save(&b).unwrap();
        assert!(
            std::fs::read(&b).unwrap() != x,
            "{metric}: another seed gave the same trees"
        );
    }
}

/// Above a few thousand items the top of the trees is built for several
/// trees per pass, grouped by thread count: the grouping must not show.
#[test]
fn large_builds_do_not_depend_on_thread_grouping() {
    let data = clustered(12_000, 8, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for threads in [1, 2, 3] {
        let p = dir.path().join(format!("t{threads}.swf"));
        build(Metric::Euclidean, &data, 7, threads)
            .save(&p)
            .unwrap();
        files.push(std::fs::read(&p).unwrap());
    }
    assert!(
        files[0] == files[1] && files[1] == files[2],
        "bytes depend on the thread count"
    );
    let f = build(Metric::Angular, &data, 5, 2);
    let r = recall(&f, Metric::Angular, &data, &data[..30], 10, 600);
    assert!(r >= 0.8, "recall {r}");
}

#[test]
fn memory_saved_mapped_and_on_disk_forests_agree() {
    let dir = tempfile::tempdir().unwrap();
    for metric in common::FOREST_METRICS {
        let data = sample(metric);
        let queries = &data[..15];
        let mem = build(metric, &data, 7, 2);
        let path = dir.path().join(format!("{metric}.swf"));
        mem.save(&path).unwrap();
        let loaded = Forest::load(&path).unwrap();
        let mapped = Forest::open_mmap(&path, OpenOptions::default()).unwrap();
        let prefaulted = Forest::open_mmap(
            &path,
            OpenOptions {
                populate: true,
                verify: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        let disk_path = dir.path().join(format!("{metric}-disk.swf"));
        let mut disk = Forest::new(data[0].len(), metric).unwrap();
        disk.set_seed(7);
        disk.on_disk_build(&disk_path).unwrap();
        for (i, x) in data.iter().enumerate() {
            disk.add_item(i as u32, x).unwrap();
        }
        disk.build(7, Some(2)).unwrap();
        disk.save(&disk_path).unwrap(); // a no-op: already there
        let want = answers(&mem, queries);
        for (name, f) in [
            ("loaded", &loaded),
            ("mapped", &mapped),
            ("prefaulted", &prefaulted),
            ("on-disk", &disk),
        ] {
            assert_eq!(answers(f, queries), want, "{metric}: {name} differs");
            assert_eq!(f.n_items(), mem.n_items());
            assert_eq!(f.n_trees(), 7);
            assert_eq!(f.item_vector(3).unwrap(), mem.item_vector(3).unwrap());
            assert_eq!(f.distance(3, 4).unwrap(), mem.distance(3, 4).unwrap());
        }
        // The on-disk file is complete and identical to the saved one.
        drop(disk);
        assert!(
            std::fs::read(&disk_path).unwrap() == std::fs::read(&path).unwrap(),
            "{metric}: on-disk bytes differ"
        );
        assert_eq!(
            answers(
                &Forest::open_mmap(&disk_path, OpenOptions::default()).unwrap(),
                queries
            ),
            want
        );
    }
}

#[test]
fn items_round_trip_and_distances_match() {
    for metric in common::FOREST_METRICS {
        let data = sample(metric);
        let f = build(metric, &data, 3, 1);
        for i in [0u32, 7, 1499] {
            assert_eq!(f.item_vector(i).unwrap(), data[i as usize], "{metric}");
            let d = f.distance(i, 11).unwrap() as f64;
            let e = common::forest_distance(metric, &data[i as usize], &data[11]);
            assert!(
                (d - e).abs() <= 1e-3 * e.abs().max(1.0),
                "{metric}: {d} vs {e}"
            );
        }
        // An item is its own nearest neighbour (dot: not necessarily).
        if metric != Metric::Dot {
            let hits = f.nns_by_item(5, 3, None).unwrap();
            assert_eq!(hits[0].id, 5, "{metric}");
            assert!(
                hits[0].distance.abs() < 1e-3,
                "{metric}: {}",
                hits[0].distance
            );
        }
    }
}

#[test]
fn sparse_ids_take_room_but_are_absent() {
    let mut f = Forest::new(4, Metric::Euclidean).unwrap();
    f.add_item(3, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    f.add_item(10, &[0.0, 1.0, 0.0, 0.0]).unwrap();
    assert_eq!(f.n_items(), 11);
    f.build(2, Some(1)).unwrap();
    let hits = f.nns_by_vector(&[0.0; 4], 5, None).unwrap();
    let mut ids: Vec<u32> = hits.iter().map(|h| h.id).collect();
    ids.sort();
    assert_eq!(ids, [3, 10]);
    assert!(matches!(f.item_vector(4), Err(Error::UnknownLabel(4))));
    assert!(matches!(
        f.nns_by_item(0, 1, None),
        Err(Error::UnknownLabel(0))
    ));
}

#[test]
fn add_after_build_is_refused_until_unbuild() {
    let data = sample(Metric::Angular);
    let mut f = build(Metric::Angular, &data[..200], 4, 1);
    assert!(matches!(
        f.add_item(200, &data[200]),
        Err(Error::AlreadyBuilt)
    ));
    assert!(matches!(f.build(4, None), Err(Error::AlreadyBuilt)));
    f.unbuild().unwrap();
    assert_eq!(f.n_trees(), 0);
    assert!(matches!(f.nns_by_item(0, 3, None), Err(Error::NotBuilt)));
    f.add_item(200, &data[200]).unwrap();
    f.build(5, None).unwrap();
    assert_eq!((f.n_items(), f.n_trees()), (201, 5));
    assert_eq!(f.nns_by_item(200, 1, None).unwrap()[0].id, 200);
    // A mapped forest is read-only.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.swf");
    f.save(&p).unwrap();
    let mut m = Forest::open_mmap(&p, OpenOptions::default()).unwrap();
    assert!(m.add_item(0, &data[0]).is_err());
    assert!(m.unbuild().is_err());
    // Saving before building is refused.
    let g = Forest::new(3, Metric::Euclidean).unwrap();
    assert!(matches!(
        g.save(dir.path().join("g.swf")),
        Err(Error::NotBuilt)
    ));
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(
        Forest::new(4, Metric::L2),
        Err(Error::UnsupportedMetric { .. })
    ));
    assert!(matches!(
        Forest::new(0, Metric::Euclidean),
        Err(Error::InvalidParameter(_))
    ));
    let mut f = Forest::new(4, Metric::Euclidean).unwrap();
    assert!(matches!(
        f.add_item(0, &[1.0; 3]),
        Err(Error::DimensionMismatch {
            expected: 4,
            got: 3
        })
    ));
    assert!(matches!(
        f.add_item(0, &[1.0, f32::NAN, 0.0, 0.0]),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        f.add_item(0, &[1.0, f32::INFINITY, 0.0, 0.0]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        f.add_item_bits(0, &[1]),
        Err(Error::InvalidParameter(_))
    ));
    for i in 0..50 {
        f.add_item(i, &[i as f32, 1.0, 2.0, 3.0]).unwrap();
    }
    assert!(matches!(f.build(0, None), Err(Error::InvalidParameter(_))));
    assert!(matches!(
        f.build(3, Some(0)),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        f.set_leaf_size(1),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        f.nns_by_vector(&[0.0; 4], 3, None),
        Err(Error::NotBuilt)
    ));
    f.build(3, None).unwrap();
    assert!(matches!(
        f.nns_by_vector(&[0.0; 5], 3, None),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        f.nns_by_vector(&[0.0, f32::NAN, 0.0, 0.0], 3, None),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        f.nns_by_vector(&[0.0; 4], 0, None),
        Err(Error::ZeroK)
    ));
    assert!(matches!(
        f.nns_by_item(50, 3, None),
        Err(Error::UnknownLabel(50))
    ));
    assert!(matches!(f.distance(0, 99), Err(Error::UnknownLabel(99))));
    // More than there are: all of them.
    assert_eq!(
        f.nns_by_vector(&[0.0; 4], 500, Some(10_000)).unwrap().len(),
        50
    );
    let mut h = Forest::new(70, Metric::Hamming).unwrap();
    assert!(matches!(
        h.add_item_bits(0, &[0, 1 << 10]),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        h.add_item_bits(0, &[0]),
        Err(Error::DimensionMismatch { .. })
    ));
    h.add_item_bits(0, &[u64::MAX, (1 << 6) - 1]).unwrap();
    assert_eq!(h.item_vector(0).unwrap(), vec![1.0; 70]);
}

/// Flips bytes in a saved file and checks that every open path reports a
/// typed error (or, for damage only a checksum can see, that `load` and a
/// verifying map do).
#[test]
fn corrupt_files_give_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(Metric::Euclidean);
    let f = build(Metric::Euclidean, &data, 5, 1);
    let good = dir.path().join("good.swf");
    f.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("bad.swf");
    let open_all = |b: &[u8]| -> Vec<Result<Forest, Error>> {
        std::fs::write(&bad, b).unwrap();
        vec![
            Forest::load(&bad),
            Forest::open_mmap(&bad, OpenOptions::default()),
            Forest::open_mmap(
                &bad,
                OpenOptions {
                    verify: true,
                    ..OpenOptions::default()
                },
            ),
        ]
    };
    let is_bad =
        |r: &Result<Forest, Error>| matches!(r, Err(Error::BadDataFile { .. } | Error::Format(_)));
    // The store's layout: a 192-byte header, then 32-byte section entries
    // (id, pad, offset, len, checksum); the trees are the fourth section.
    const TREES_ENTRY: usize = 192 + 3 * 32;
    // Header damage: magic, version, dimension, a section offset, truncation, empty.
    for (at, what) in [
        (0usize, "magic"),
        (8, "version"),
        (32, "dim"),
        (TREES_ENTRY + 8, "trees offset"),
    ] {
        let mut b = bytes.clone();
        b[at] ^= 0x5a;
        assert!(open_all(&b).iter().all(is_bad), "{what} damage not caught");
    }
    assert!(
        open_all(&bytes[..bytes.len() - 64]).iter().all(is_bad),
        "truncation not caught"
    );
    assert!(
        open_all(&bytes[..100]).iter().all(is_bad),
        "short file not caught"
    );
    assert!(open_all(&[]).iter().all(is_bad), "empty file not caught");
    // Payload damage: one flipped bit in the vectors.
    let mut b = bytes.clone();
    b[384 + 100] ^= 1; // inside the vectors, the first section
    let r = open_all(&b);
    assert!(
        is_bad(&r[0]) && is_bad(&r[2]),
        "payload damage not caught by load / verify"
    );
    // Tree damage in an unverified map: searches fail cleanly, never panic or spin.
    let mut b = bytes.clone();
    let at = TREES_ENTRY;
    assert_eq!(
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap()),
        4,
        "trees section id"
    );
    let trees_start = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap()) as usize;
    let trees_len = u64::from_le_bytes(b[at + 16..at + 24].try_into().unwrap()) as usize;
    for w in b[trees_start..trees_start + trees_len].chunks_exact_mut(4) {
        let x = u32::from_le_bytes(w.try_into().unwrap());
        if x < 64 {
            w.copy_from_slice(&0u32.to_le_bytes()); // children point at the root: a cycle
        } else if x & 0x8000_0000 != 0 {
            w.copy_from_slice(&(x | 0x0fff_0000).to_le_bytes()); // leaves far away
        }
    }
    std::fs::write(&bad, &b).unwrap();
    let m = Forest::open_mmap(&bad, OpenOptions::default()).unwrap();
    for q in &data[..20] {
        match m.nns_by_vector(q, 10, Some(1000)) {
            Err(Error::BadDataFile { .. }) | Ok(_) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(
        data[..20]
            .iter()
            .any(|q| m.nns_by_vector(q, 10, Some(1000)).is_err()),
        "tree damage never noticed"
    );
}
/// How the recall floors above were measured: `cargo test --release --test
/// forest sweep -- --ignored --nocapture`.
#[test]
#[ignore]
fn sweep() {
    for metric in [
        Metric::Euclidean,
        Metric::Manhattan,
        Metric::Angular,
        Metric::Dot,
        Metric::Hamming,
    ] {
        let dim = if metric == Metric::Hamming { 128 } else { 32 };
        let all = if metric == Metric::Hamming {
            bits(5100, dim, 11)
        } else {
            clustered(5100, dim, 11)
        };
        let (data, queries) = all.split_at(5000);
        let f = build(metric, data, 20, 2);
        for sk in [50, 100, 200, 400, 800] {
            println!(
                "{metric} sk {sk}: {:.3}",
                recall(&f, metric, data, queries, 10, sk)
            );
        }
    }
}

#[test]
fn build_auto_builds_until_the_trees_nodes_number_the_items() {
    let data = clustered(3000, 40, 9);
    let make = || {
        let mut f = Forest::new(40, Metric::Angular).unwrap();
        f.set_seed(5);
        for (i, v) in data.iter().enumerate() {
            f.add_item(i as u32, v).unwrap();
        }
        f
    };
    let mut f = make();
    let n = f.build_auto(Some(2)).unwrap();
    assert_eq!(f.n_trees(), n);
    // A leaf holds up to 42 items here: a tree has 2 * 3000 / 42 nodes or
    // more, so about 21 trees or fewer (Annoy: 15 on data like this).
    assert!((5..=40).contains(&n), "{n}");
    // The count depends on the seed and items only, not on the threads.
    let mut g = make();
    assert_eq!(g.build_auto(Some(1)).unwrap(), n);
    assert_eq!(answers(&f, &data[..20]), answers(&g, &data[..20]));
    // A forest of one item still gets a tree.
    let mut one = Forest::new(4, Metric::Euclidean).unwrap();
    one.add_item(0, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(one.build_auto(None).unwrap(), 1);
    let mut zero = make();
    assert!(matches!(
        zero.build(0, None),
        Err(Error::InvalidParameter(_))
    ));
}
