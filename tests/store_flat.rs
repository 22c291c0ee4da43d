//! Flat index files: save, load and open_mmap give the same answers as the
//! index in memory; damaged or foreign files are errors.

mod common;

use common::clustered;
use swann::index::flat::FlatIndex;
use swann::index::hnsw::Hnsw;
use swann::store::OpenOptions;
use swann::{Error, Metric};

const DIM: usize = 20;

fn build(metric: Metric) -> (FlatIndex, Vec<f32>) {
    let base = clustered(1500, DIM, 10, 0.3, 1);
    let mut f = FlatIndex::new(DIM, metric).unwrap();
    for (i, row) in base.chunks(DIM).enumerate() {
        f.add(1000 + 3 * i as u64, row).unwrap();
    }
    (f, clustered(50, DIM, 10, 0.3, 2))
}

#[test]
fn round_trips_for_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    for metric in [
        Metric::L2,
        Metric::InnerProduct,
        Metric::Cosine,
        Metric::Angular,
        Metric::Euclidean,
        Metric::Manhattan,
        Metric::Dot,
    ] {
        let (index, queries) = build(metric);
        let path = dir.path().join(format!("{metric}.swann"));
        index.save(&path).unwrap();
        let want = index.search_batch(&queries, 10).unwrap();
        let loaded = FlatIndex::load(&path).unwrap();
        let mapped = FlatIndex::open_mmap(&path, OpenOptions::default()).unwrap();
        assert!(mapped.is_mapped() && !loaded.is_mapped());
        mapped.verify().unwrap();
        for other in [&loaded, &mapped] {
            assert_eq!(other.len(), index.len());
            assert_eq!(other.metric(), metric);
            assert_eq!(other.labels(), index.labels());
            assert_eq!(other.search_batch(&queries, 10).unwrap(), want, "{metric}");
        }
        // A mapped index takes new rows after copying itself into memory.
        let mut grown = mapped;
        grown.add(1, &queries[..DIM]).unwrap();
        assert!(!grown.is_mapped());
        assert_eq!(grown.search(&queries[..DIM], 1).unwrap()[0].label, 1);
        assert_eq!(grown.len(), index.len() + 1);
    }
}

#[test]
fn damaged_and_foreign_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = build(Metric::L2);
    let path = dir.path().join("flat.swann");
    index.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    // Truncated anywhere: an error from either open.
    for cut in (0..good.len()).step_by(997).chain([good.len() - 1]) {
        let p = dir.path().join("cut.swann");
        std::fs::write(&p, &good[..cut]).unwrap();
        assert!(
            FlatIndex::open_mmap(&p, OpenOptions::default()).is_err(),
            "cut {cut}"
        );
        assert!(FlatIndex::load(&p).is_err(), "cut {cut}");
    }
    // A flipped byte in a vector row: mapping is O(1) and does not see it,
    // verify() and load() do.
    let mut bad = good.clone();
    let last = bad.len() - 200;
    bad[last] ^= 0x55;
    let p = dir.path().join("flip.swann");
    std::fs::write(&p, &bad).unwrap();
    assert!(FlatIndex::load(&p).is_err());
    let mapped = FlatIndex::open_mmap(&p, OpenOptions::default()).unwrap();
    assert!(matches!(mapped.verify(), Err(Error::Format(_))));

    // An HNSW file is not a flat file, and the reverse.
    let mut h = Hnsw::builder(DIM, Metric::L2).build().unwrap();
    h.insert(1, &[0.5; DIM]).unwrap();
    let hp = dir.path().join("hnsw.swann");
    h.save(&hp).unwrap();
    assert!(matches!(FlatIndex::load(&hp), Err(Error::Format(_))));
    assert!(matches!(
        FlatIndex::open_mmap(&hp, OpenOptions::default()),
        Err(Error::Format(_))
    ));
    assert!(Hnsw::open_mmap(&path, OpenOptions::default()).is_err());
}

#[test]
fn empty_index_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let f = FlatIndex::new(3, Metric::Cosine).unwrap();
    let p = dir.path().join("empty.swann");
    f.save(&p).unwrap();
    let m = FlatIndex::open_mmap(&p, OpenOptions::default()).unwrap();
    assert!(m.is_empty());
    assert!(m.search(&[1.0, 0.0, 0.0], 3).unwrap().is_empty());
}
