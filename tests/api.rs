//! The one API across indexes (`AnnIndex`): the same generic code drives
//! HNSW, the flat index and the forest, and gets what each index's own
//! methods give.
#![cfg(feature = "forest")]

use swann::prelude::*;

fn data(n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
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

fn fill<I: AnnIndex<Elem = f32>>(index: &mut I, rows: &[Vec<f32>]) {
    for (i, r) in rows.iter().enumerate() {
        index.add(1000 + i as u64, r).unwrap();
    }
    assert_eq!(index.len(), rows.len());
    assert!(!index.is_empty());
}

fn recall_against(
    exact: &FlatIndex,
    index: &impl AnnIndex<Elem = f32>,
    queries: &[Vec<f32>],
    effort: Effort,
) -> f64 {
    let mut hits = 0;
    for q in queries {
        let want = exact.search(q, 10).unwrap();
        let got = index.search(q, 10, effort).unwrap();
        assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
        hits += got
            .iter()
            .filter(|g| want.iter().any(|w| w.label == g.label))
            .count();
    }
    hits as f64 / (10 * queries.len()) as f64
}

#[test]
fn one_generic_path_drives_every_index() {
    let rows = data(2000, 16);
    let queries = data(50, 16);
    let mut exact = FlatIndex::new(16, Metric::L2).unwrap();
    fill(&mut exact, &rows);
    let mut hnsw = Hnsw::builder(16, Metric::L2).seed(3).build().unwrap();
    fill(&mut hnsw, &rows);
    let mut forest = Forest::new(16, Metric::Euclidean).unwrap();
    fill(&mut forest, &rows);
    // An unbuilt forest cannot search: an error, not empty results.
    assert!(forest.search(&queries[0], 10, Effort::Default).is_err());
    forest.build(20, Some(1)).unwrap();

    assert_eq!(
        recall_against(&exact, &exact, &queries, Effort::Default),
        1.0
    );
    // The trait's knobs are the indexes' own: a large ef or search_k is
    // exhaustive enough on 2,000 rows to find every true neighbour, and the
    // trait returns what the index's own method does.
    assert!(recall_against(&exact, &hnsw, &queries, Effort::Candidates(400)) > 0.99);
    assert!(recall_against(&exact, &forest, &queries, Effort::Candidates(20_000)) > 0.99);
    for q in &queries[..5] {
        assert_eq!(
            AnnIndex::search(&hnsw, q, 10, Effort::Candidates(50)).unwrap(),
            hnsw.search(q, 10, 50).unwrap()
        );
        let own: Vec<(u64, f32)> = forest
            .nns_by_vector(q, 10, Some(500))
            .unwrap()
            .into_iter()
            .map(|h| (u64::from(h.id), h.distance))
            .collect();
        let via: Vec<(u64, f32)> = AnnIndex::search(&forest, q, 10, Effort::Candidates(500))
            .unwrap()
            .into_iter()
            .map(|n| (n.label, n.distance))
            .collect();
        assert_eq!(own, via);
    }
}

#[test]
fn labels_the_forest_cannot_hold_are_refused() {
    let mut forest = Forest::new(2, Metric::Angular).unwrap();
    let err = forest
        .add(u64::from(u32::MAX) + 1, &[1.0, 0.0])
        .unwrap_err();
    assert!(err.to_string().contains("u32"), "{err}");
    assert_eq!(AnnIndex::len(&forest), 0);
}

#[test]
fn saved_through_the_trait_loads_with_the_index_type() {
    let rows = data(300, 8);
    let dir = tempfile::tempdir().unwrap();
    let mut hnsw = Hnsw::builder(8, Metric::Cosine).build().unwrap();
    fill(&mut hnsw, &rows);
    let path = dir.path().join("h.swann");
    AnnIndex::save(&hnsw, &path).unwrap();
    let back = Hnsw::load(&path).unwrap();
    assert_eq!(AnnIndex::metric(&back), Metric::Cosine);
    assert_eq!(AnnIndex::dim(&back), 8);
    assert_eq!(
        AnnIndex::search(&back, &rows[7], 5, Effort::Default).unwrap(),
        AnnIndex::search(&hnsw, &rows[7], 5, Effort::Default).unwrap()
    );
}

/// The errors a caller branches on are variants of their own, the same on
/// every index behind the trait.
#[test]
fn typed_errors_callers_branch_on() {
    let rows = data(50, 8);
    let mut hnsw = Hnsw::builder(8, Metric::L2).capacity(100).build().unwrap();
    let mut flat = FlatIndex::new(8, Metric::L2).unwrap();
    let mut forest = Forest::new(8, Metric::Euclidean).unwrap();
    fill(&mut hnsw, &rows);
    fill(&mut flat, &rows);
    fill(&mut forest, &rows);
    forest.build(4, Some(1)).unwrap();

    fn zero_k<I: AnnIndex<Elem = f32>>(index: &I, q: &[f32]) {
        let err = index.search(q, 0, Effort::Default).unwrap_err();
        assert!(matches!(err, Error::ZeroK), "{err:?}");
        assert_eq!(err.to_string(), "k must be at least 1");
    }
    zero_k(&hnsw, &rows[0]);
    zero_k(&flat, &rows[0]);
    zero_k(&forest, &rows[0]);

    // Batches that are not whole rows say what they hold.
    let ragged = vec![0.5f32; 8 * 3 + 5];
    for err in [
        hnsw.search_batch(&ragged, 5, 20).unwrap_err(),
        flat.search_batch(&ragged, 5).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::RaggedData {
                    len: 29,
                    dim: 8,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let err = flat.add_rows(5000, &ragged).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RaggedData {
                len: 29,
                dim: 8,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(flat.len(), 50, "a refused batch adds nothing");

    // A resize below what is held is refused and changes nothing.
    let err = hnsw.resize(10).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CapacityTooSmall {
                requested: 10,
                len: 50
            }
        ),
        "{err:?}"
    );
    assert_eq!(hnsw.capacity(), 100);
    hnsw.resize(50).unwrap();

    // Names the crate does not know list the ones it does.
    let err = "l3".parse::<Metric>().unwrap_err();
    match &err {
        Error::UnknownName {
            kind,
            name,
            expected,
        } => {
            assert_eq!((*kind, name.as_str()), ("metric", "l3"));
            assert!(expected.contains("cosine"), "{expected}");
        }
        e => panic!("expected UnknownName, got {e:?}"),
    }
    let err = "pq9".parse::<Quantization>().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::UnknownName {
                kind: "quantization",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sq8"), "{err}");
}
