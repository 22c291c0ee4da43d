//! Sharded indexes: the exact merge, manifests, and search over shard files.
#![cfg(feature = "sharded")]

mod common;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use swann::index::sharded::{merge_top_k, shard_rows, Manifest, ShardKind, ShardedIndex};
use swann::prelude::*;
use swann::store::OpenOptions;

fn flat_of(dim: usize, metric: Metric, rows: &[(u64, Vec<f32>)]) -> FlatIndex {
    let mut f = FlatIndex::new(dim, metric).unwrap();
    for (l, v) in rows {
        f.add(*l, v).unwrap();
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Exact per-shard top-k lists merged are the exact global top-k, with
    /// ties (small integer coordinates collide often), empty shards, and
    /// `k` above a shard's size.
    #[test]
    fn merged_exact_shards_equal_one_exact_index(
        coords in prop::collection::vec((0i8..4, 0i8..4), 1..60),
        assign in prop::collection::vec(0usize..5, 60),
        shards in 1usize..6,
        k in 1usize..25,
        query in (0i8..4, 0i8..4),
        metric in prop::sample::select(vec![Metric::L2, Metric::Manhattan, Metric::Euclidean]),
    ) {
        let rows: Vec<(u64, Vec<f32>)> = coords
            .iter()
            .enumerate()
            .map(|(i, &(x, y))| (i as u64 * 3 + 1, vec![x as f32, y as f32]))
            .collect();
        let global = flat_of(2, metric, &rows);
        let parts: Vec<FlatIndex> = (0..shards)
            .map(|s| {
                let mine: Vec<_> = rows
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| assign[*i] % shards == s)
                    .map(|(_, r)| r.clone())
                    .collect();
                flat_of(2, metric, &mine)
            })
            .collect();
        let q = [query.0 as f32, query.1 as f32];
        let want = global.search(&q, k).unwrap();
        let lists: Vec<Vec<Neighbor>> = parts
            .iter()
            .map(|p| if p.is_empty() { Vec::new() } else { p.search(&q, k).unwrap() })
            .collect();
        let got = merge_top_k(lists.iter().map(Vec::as_slice), k, false);
        prop_assert_eq!(got, want);
    }

    /// Larger-is-closer scores (the forest's dot) merge in descending order,
    /// ties by label, each label once.
    #[test]
    fn merge_descending_is_sorted_and_unique(
        lists in prop::collection::vec(prop::collection::vec((0u64..30, 0i8..5), 0..12), 0..5),
        k in 1usize..20,
    ) {
        let lists: Vec<Vec<Neighbor>> = lists
            .iter()
            .map(|l| l.iter().map(|&(label, d)| Neighbor { label, distance: d as f32 }).collect())
            .collect();
        let got = merge_top_k(lists.iter().map(Vec::as_slice), k, true);
        let mut labels: Vec<u64> = got.iter().map(|n| n.label).collect();
        for w in got.windows(2) {
            prop_assert!(
                w[0].distance > w[1].distance
                    || (w[0].distance == w[1].distance && w[0].label < w[1].label)
            );
        }
        labels.sort_unstable();
        labels.dedup();
        prop_assert_eq!(labels.len(), got.len());
        // Each label at its best (largest) score.
        for n in &got {
            let best = lists
                .iter()
                .flatten()
                .filter(|m| m.label == n.label)
                .map(|m| m.distance)
                .fold(f32::NEG_INFINITY, f32::max);
            prop_assert_eq!(n.distance, best);
        }
        let distinct: std::collections::HashSet<u64> =
            lists.iter().flatten().map(|n| n.label).collect();
        prop_assert_eq!(got.len(), k.min(distinct.len()));
    }
}

/// Writes `parts` shards of `data` (row i labelled `i`) built by `build`,
/// and their manifest; returns the manifest's path.
fn write_shards(
    dir: &Path,
    data: &[f32],
    dim: usize,
    parts: usize,
    mut build: impl FnMut(usize, &[u64], &[f32], &Path),
) -> PathBuf {
    let n = data.len() / dim;
    let mut files = Vec::new();
    for s in 0..parts {
        let r = shard_rows(n, parts, s);
        let labels: Vec<u64> = (r.start as u64..r.end as u64).collect();
        let path = dir.join(format!("shard-{s}.swann"));
        build(s, &labels, &data[r.start * dim..r.end * dim], &path);
        files.push(path);
    }
    let manifest = dir.join("index.manifest.json");
    Manifest::from_shards(&files, dir)
        .unwrap()
        .write(&manifest)
        .unwrap();
    manifest
}

fn save_flat(metric: Metric, dim: usize) -> impl FnMut(usize, &[u64], &[f32], &Path) {
    move |_, labels, rows, path| {
        let mut f = FlatIndex::new(dim, metric).unwrap();
        for (l, v) in labels.iter().zip(rows.chunks(dim)) {
            f.add(*l, v).unwrap();
        }
        f.save(path).unwrap();
    }
}

#[test]
fn flat_shards_answer_exactly_as_one_flat_index() {
    let dim = 16;
    let data = common::clustered(3_000, dim, 12, 0.3, 7);
    let queries = common::clustered(60, dim, 12, 0.3, 8);
    for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = write_shards(dir.path(), &data, dim, 4, save_flat(metric, dim));
        let sharded = ShardedIndex::open(&manifest, OpenOptions::default()).unwrap();
        assert_eq!(sharded.num_shards(), 4);
        assert_eq!(sharded.len(), 3_000);
        assert_eq!(sharded.kind(), ShardKind::Flat);
        let mut one = FlatIndex::new(dim, metric).unwrap();
        for (i, v) in data.chunks(dim).enumerate() {
            one.add(i as u64, v).unwrap();
        }
        let batch = sharded.search_batch(&queries, 10, Effort::Default).unwrap();
        for (q, got_batch) in queries.chunks(dim).zip(&batch) {
            let want = one.search(q, 10).unwrap();
            let got = sharded.search(q, 10, Effort::Default).unwrap();
            assert_eq!(got, want, "{metric}");
            assert_eq!(got_batch, &want, "{metric} batch");
        }
        // Loading into memory answers the same.
        let loaded = ShardedIndex::load(&manifest).unwrap();
        assert_eq!(
            loaded.search_batch(&queries, 10, Effort::Default).unwrap(),
            batch
        );
    }
}

fn recall(results: &[Vec<Neighbor>], truth: &[Vec<Neighbor>]) -> f64 {
    let hits: usize = results
        .iter()
        .zip(truth)
        .map(|(r, t)| {
            r.iter()
                .filter(|n| t.iter().any(|x| x.label == n.label))
                .count()
        })
        .sum();
    hits as f64 / truth.iter().map(Vec::len).sum::<usize>() as f64
}

#[test]
fn four_hnsw_shards_recall_as_one_index() {
    let dim = 24;
    let n = 8_000;
    let data = common::clustered(n, dim, 40, 0.35, 21);
    let queries = common::clustered(200, dim, 40, 0.35, 22);
    let build = |labels: &[u64], rows: &[f32]| {
        let mut h = Hnsw::builder(dim, Metric::L2)
            .m(12)
            .ef_construction(100)
            .seed(5)
            .capacity(labels.len())
            .build()
            .unwrap();
        h.insert_batch(labels, rows).unwrap();
        h
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_shards(dir.path(), &data, dim, 4, |_, labels, rows, path| {
        build(labels, rows).save(path).unwrap();
    });
    let sharded = ShardedIndex::open(&manifest, OpenOptions::default()).unwrap();
    let all: Vec<u64> = (0..n as u64).collect();
    let one = build(&all, &data);
    let mut exact = FlatIndex::new(dim, Metric::L2).unwrap();
    exact.add_rows(0, &data).unwrap();
    let truth = exact.search_batch(&queries, 10).unwrap();
    for ef in [10usize, 20, 40, 80] {
        let s = sharded
            .search_batch(&queries, 10, Effort::Candidates(ef))
            .unwrap();
        let o = one.search_batch(&queries, 10, ef).unwrap();
        let (rs, ro) = (recall(&s, &truth), recall(&o, &truth));
        eprintln!("ef {ef}: 4 shards recall@10 {rs:.4}, one index {ro:.4}");
        assert!(
            rs >= ro - 0.02,
            "ef {ef}: 4 shards recall {rs:.4}, one index {ro:.4}"
        );
    }
    // A label is looked up in the shard that holds it.
    let v = sharded.get_vector(6_123).unwrap();
    assert_eq!(v, &data[6_123 * dim..6_124 * dim]);
    let by_label = sharded
        .search_by_label(6_123, 5, Effort::Candidates(64))
        .unwrap();
    assert_eq!(by_label[0].label, 6_123);
    assert!(matches!(
        sharded.get_vector(n as u64 + 5),
        Err(Error::UnknownLabel(_))
    ));
}

#[cfg(feature = "forest")]
#[test]
fn forest_shards_with_dot_merge_largest_first() {
    let dim = 8;
    let data = common::clustered(2_000, dim, 8, 0.5, 31);
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_shards(dir.path(), &data, dim, 3, |_, labels, rows, path| {
        let mut f = Forest::new(dim, Metric::Dot).unwrap();
        for (l, v) in labels.iter().zip(rows.chunks(dim)) {
            f.add_item(*l as u32, v).unwrap();
        }
        f.build(10, Some(1)).unwrap();
        f.save(path).unwrap();
    });
    let sharded = ShardedIndex::open(&manifest, OpenOptions::default()).unwrap();
    assert!(sharded.larger_is_closer());
    assert_eq!(sharded.len(), 2_000);
    let q = &data[..dim];
    // search_k high enough that every shard is scanned whole: exact.
    let got = sharded.search(q, 10, Effort::Candidates(100_000)).unwrap();
    let mut want: Vec<(f32, u64)> = data
        .chunks(dim)
        .enumerate()
        .map(|(i, v)| (q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(), i as u64))
        .collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let got_labels: Vec<u64> = got.iter().map(|n| n.label).collect();
    let want_labels: Vec<u64> = want[..10].iter().map(|w| w.1).collect();
    assert_eq!(got_labels, want_labels);
    for w in got.windows(2) {
        assert!(w[0].distance >= w[1].distance);
    }
    assert_eq!(
        sharded.get_vector(1_500).unwrap(),
        &data[1_500 * dim..1_501 * dim]
    );
}

#[test]
fn manifest_round_trips_and_relative_paths_travel() {
    let dim = 4;
    let data = common::clustered(200, dim, 3, 0.5, 1);
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a");
    std::fs::create_dir(&sub).unwrap();
    let manifest = write_shards(&sub, &data, dim, 2, save_flat(Metric::L2, dim));
    let m = Manifest::read(&manifest).unwrap();
    assert_eq!(m.kind, ShardKind::Flat);
    assert_eq!(m.metric, Metric::L2);
    assert_eq!(m.dim, dim);
    assert_eq!(m.rows(), 200);
    assert_eq!(m.shards[0].path, PathBuf::from("shard-0.swann"));
    assert_eq!((m.shards[0].label_min, m.shards[0].label_max), (0, 99));
    assert_eq!((m.shards[1].label_min, m.shards[1].label_max), (100, 199));
    // No temporary file left beside the manifest.
    let names: Vec<String> = std::fs::read_dir(&sub)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    // The folder moves as a whole and still opens.
    let moved = dir.path().join("b");
    std::fs::rename(&sub, &moved).unwrap();
    let index =
        ShardedIndex::open(moved.join("index.manifest.json"), OpenOptions::default()).unwrap();
    index.verify().unwrap();
    assert_eq!(index.len(), 200);
}

#[test]
fn shards_that_disagree_or_changed_are_refused() {
    let dim = 4;
    let data = common::clustered(100, dim, 3, 0.5, 2);
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_shards(dir.path(), &data, dim, 2, save_flat(Metric::L2, dim));

    // A shard of another metric or dimension cannot join.
    let other = dir.path().join("other.swann");
    save_flat(Metric::Cosine, dim)(0, &[500], &[1.0, 0.0, 0.0, 0.0], &other);
    let s0 = dir.path().join("shard-0.swann");
    let err = Manifest::from_shards(&[s0.clone(), other.clone()], dir.path()).unwrap_err();
    assert!(err.to_string().contains("ranks by cosine"), "{err}");
    match &err {
        swann::Error::IncompatibleFiles { path, .. } => assert!(path.ends_with("other.swann")),
        e => panic!("expected IncompatibleFiles, got {e:?}"),
    }
    save_flat(Metric::L2, dim + 1)(0, &[500], &[1.0; 5], &other);
    let err = Manifest::from_shards(&[s0.clone(), other.clone()], dir.path()).unwrap_err();
    assert!(err.to_string().contains("5-dimensional"), "{err}");
    let empty: [PathBuf; 0] = [];
    assert!(Manifest::from_shards(&empty, dir.path()).is_err());
    let missing = dir.path().join("missing.swann");
    let err = Manifest::from_shards(&[missing], dir.path()).unwrap_err();
    assert!(err.to_string().contains("missing.swann"), "{err}");

    // A shard replaced after the manifest was written (other length).
    let s1 = dir.path().join("shard-1.swann");
    let original = std::fs::read(&s1).unwrap();
    save_flat(Metric::L2, dim)(0, &[7], &[1.0; 4], &s1);
    let err = ShardedIndex::open(&manifest, OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("shard-1.swann"), "{err}");
    assert!(err.to_string().contains("changed after"), "{err}");

    // Same length, other bytes: caught by the checksum.
    let mut changed = original.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0x40;
    std::fs::write(&s1, &changed).unwrap();
    let opened = ShardedIndex::open(&manifest, OpenOptions::default()).unwrap();
    let err = opened.verify().unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    let verify = OpenOptions {
        verify: true,
        ..OpenOptions::default()
    };
    assert!(ShardedIndex::open(&manifest, verify).is_err());
    std::fs::write(&s1, &original).unwrap();
    ShardedIndex::open(&manifest, verify).unwrap();

    // Manifests that are not manifests, or of another version.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"x\"}").unwrap();
    assert!(matches!(
        Manifest::read(&bad),
        Err(Error::BadDataFile { .. })
    ));
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&bad, text.replace("\"version\": 1", "\"version\": 99")).unwrap();
    let err = Manifest::read(&bad).unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");

    // Bad search arguments.
    let index = ShardedIndex::open(&manifest, OpenOptions::default()).unwrap();
    assert!(index.search(&[0.0; 4], 0, Effort::Default).is_err());
    assert!(index.search(&[0.0; 3], 3, Effort::Default).is_err());
    assert!(index.search_batch(&[0.0; 7], 3, Effort::Default).is_err());
    let mut index = index;
    assert!(index.set_oversample(0.5).is_err());
    assert!(index.set_oversample(f64::NAN).is_err());
    index.set_oversample(2.0).unwrap();
    assert_eq!(
        index.search(&[0.0; 4], 3, Effort::Default).unwrap().len(),
        3
    );
}

#[test]
fn an_empty_shard_contributes_nothing() {
    let dim = 3;
    let data = common::clustered(10, dim, 2, 0.5, 3);
    let dir = tempfile::tempdir().unwrap();
    // 3 rows into 5 parts leaves two parts empty.
    let manifest = write_shards(
        dir.path(),
        &data[..3 * dim],
        dim,
        5,
        |_, labels, rows, path| {
            let mut h = Hnsw::builder(dim, Metric::L2).build().unwrap();
            h.insert_batch(labels, rows).unwrap();
            h.save(path).unwrap();
        },
    );
    let index = ShardedIndex::open(&manifest, OpenOptions::default()).unwrap();
    assert_eq!(index.len(), 3);
    let hits = index.search(&data[..dim], 10, Effort::Default).unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].label, 0);
}

/// A shard's entry counts the labels its index answers for (removed ones
/// not, deleted ones as `labels()` lists them), read the same for every
/// quantization scheme (a `pq4` shard's records are not built to count
/// them), with the size and checksum of the file.
#[test]
fn manifest_entries_count_the_live_labels_of_every_scheme() {
    use swann::index::hnsw::Quantization;
    use swann::index::sharded::file_checksum;
    let dim = 16;
    let n = 600u64;
    let data = common::clustered(n as usize, dim, 4, 0.5, 9);
    let dir = tempfile::tempdir().unwrap();
    let mut shards = Vec::new();
    for (i, q) in [Quantization::None, Quantization::Sq8, Quantization::Pq4]
        .into_iter()
        .enumerate()
    {
        let base = 1000 * i as u64;
        let mut h = Hnsw::builder(dim, Metric::L2)
            .quantization(q)
            .build()
            .unwrap();
        let labels: Vec<u64> = (base..base + n).collect();
        h.insert_batch(&labels, &data).unwrap();
        h.remove_batch(&[base, base + n - 1, base + 17, base + 300])
            .unwrap();
        h.mark_deleted(base + 5).unwrap();
        let path = dir.path().join(format!("s{i}.swann"));
        h.save(&path).unwrap();
        let mut live = h.labels();
        live.sort_unstable();
        assert_eq!(live.len(), n as usize - 4);
        shards.push((path, live));
    }
    let files: Vec<&PathBuf> = shards.iter().map(|(p, _)| p).collect();
    let m = Manifest::from_shards(&files, dir.path()).unwrap();
    assert_eq!(m.rows(), 3 * (n - 4));
    for (e, (path, live)) in m.shards.iter().zip(&shards) {
        assert_eq!(e.rows, live.len() as u64, "{}", path.display());
        assert_eq!((e.label_min, e.label_max), (live[0], live[live.len() - 1]));
        assert_eq!(e.bytes, std::fs::metadata(path).unwrap().len());
        assert_eq!(e.xxh3, file_checksum(path).unwrap());
    }
}
