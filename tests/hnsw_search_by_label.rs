//! Search by label (N2's search by id): the level-0 search starts at the
//! item, so every live item is among its own results even with a poor graph
//! and the smallest ef, where a search by its vector from the entry point
//! can miss it.

use swann::index::hnsw::Hnsw;
use swann::store::OpenOptions;
use swann::{Error, Metric};

fn uniform(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_item_finds_itself_with_the_smallest_ef() {
    // A deliberately poor graph: uniform 64-d data, M 4, ef_construction 8.
    let data = uniform(3000, 64, 1);
    let mut index = Hnsw::builder(64, Metric::L2)
        .m(4)
        .ef_construction(8)
        .seed(2)
        .build()
        .unwrap();
    for (i, v) in data.iter().enumerate() {
        index.insert(i as u64, v).unwrap();
    }
    let mut by_vector_misses = 0;
    for (i, v) in data.iter().enumerate() {
        let hits = index.search_by_label(i as u64, 1, 1).unwrap();
        assert_eq!(hits[0].label, i as u64, "label {i}");
        assert_eq!(hits[0].distance, 0.0);
        if index.search(v, 1, 1).unwrap()[0].label != i as u64 {
            by_vector_misses += 1;
        }
    }
    // The contrast the method exists for (not a property of swann's graph,
    // but of any greedy search started elsewhere on such data).
    eprintln!("search by vector at ef 1 missed {by_vector_misses} of 3000");

    // k results, nearest first, the item first.
    let hits = index.search_by_label(17, 10, 200).unwrap();
    assert_eq!(hits.len(), 10);
    assert_eq!(hits[0].label, 17);
    assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
}

#[test]
fn on_a_sound_graph_the_neighbours_are_the_true_ones() {
    let data = uniform(2000, 16, 4);
    let mut index = Hnsw::builder(16, Metric::L2).seed(5).build().unwrap();
    for (i, v) in data.iter().enumerate() {
        index.insert(i as u64, v).unwrap();
    }
    let l2 =
        |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    for item in (0..2000).step_by(97) {
        let mut truth: Vec<(f32, u64)> = data
            .iter()
            .enumerate()
            .map(|(j, v)| (l2(&data[item], v), j as u64))
            .collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let want: Vec<u64> = truth[..10].iter().map(|t| t.1).collect();
        let got: Vec<u64> = index
            .search_by_label(item as u64, 10, 100)
            .unwrap()
            .iter()
            .map(|h| h.label)
            .collect();
        assert_eq!(got, want, "item {item}");
    }
}

#[test]
fn deleted_unknown_and_mapped() {
    let data = uniform(500, 8, 3);
    let mut index = Hnsw::builder(8, Metric::Cosine).m(8).build().unwrap();
    for (i, v) in data.iter().enumerate() {
        index.insert(i as u64, v).unwrap();
    }
    index.mark_deleted(5).unwrap();
    // A deleted item is not a result, not even of its own search.
    let hits = index.search_by_label(5, 5, 50).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.label != 5));
    assert!(matches!(
        index.search_by_label(10_000, 1, 10),
        Err(Error::UnknownLabel(10_000))
    ));
    assert!(index.search_by_label(1, 0, 10).is_err());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.swann");
    index.save(&path).unwrap();
    let mapped = Hnsw::open_mmap(&path, OpenOptions::default()).unwrap();
    for label in [0u64, 7, 499] {
        assert_eq!(
            mapped.search_by_label(label, 4, 20).unwrap(),
            index.search_by_label(label, 4, 20).unwrap()
        );
        assert_eq!(mapped.search_by_label(label, 1, 1).unwrap()[0].label, label);
    }
}
