//! The random-projection forest against a plain model, on random inputs:
//! items with sparse ids (some added twice, the second vector winning),
//! small integer coordinates (so ties and duplicate points are common),
//! every metric, a few trees, more items after `unbuild`, and the saved,
//! loaded and mapped copies. A search whose `search_k` covers every node of
//! every tree sees every item, so it must give the exact nearest distances
//! (Annoy's `search_k = n_trees * n` contract), each hit's distance must be
//! its exact one, and an absent id must never come back.
#![cfg(feature = "forest")]

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use swann::index::forest::{Forest, Hit};
use swann::store::OpenOptions;
use swann::Metric;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 * a.abs().max(b.abs()).max(1.0)
}

/// A point from small integers: 0/1 for Hamming, never all zeros (an
/// angular distance to the origin is undefined).
fn point(metric: Metric, raw: &[i8]) -> Vec<f32> {
    let mut v: Vec<f32> = raw
        .iter()
        .map(|&x| match metric {
            Metric::Hamming => (x & 1) as f32,
            _ => x as f32,
        })
        .collect();
    if v.iter().all(|&x| x == 0.0) {
        v[0] = 1.0;
    }
    v
}

/// The forest's answers for `q` against the model's items.
fn check_answers(
    f: &Forest,
    metric: Metric,
    items: &BTreeMap<u32, Vec<f32>>,
    q: &[f32],
    k: usize,
    hits: &[Hit],
) -> Result<(), TestCaseError> {
    let nearer = |a: f64, b: f64| match metric {
        Metric::Dot => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    };
    let mut want: Vec<f64> = items
        .values()
        .map(|v| common::forest_distance(metric, q, v))
        .collect();
    want.sort_by(|a, b| nearer(*a, *b));
    want.truncate(k);
    prop_assert_eq!(hits.len(), want.len(), "hits {:?} want {:?}", hits, want);
    let mut seen = std::collections::HashSet::new();
    for (h, w) in hits.iter().zip(&want) {
        prop_assert!(seen.insert(h.id), "id {} twice in {:?}", h.id, hits);
        let v = items
            .get(&h.id)
            .ok_or_else(|| TestCaseError::fail(format!("id {} was never added", h.id)))?;
        let e = common::forest_distance(metric, q, v);
        prop_assert!(
            close(h.distance as f64, e),
            "{}: id {} distance {} exact {}",
            metric,
            h.id,
            h.distance,
            e
        );
        prop_assert!(
            close(h.distance as f64, *w),
            "{}: hits {:?} against the exact {:?}",
            metric,
            hits,
            want
        );
        prop_assert_eq!(f.item_vector(h.id).unwrap(), v.clone());
    }
    Ok(())
}

fn check_forest(
    f: &Forest,
    metric: Metric,
    items: &BTreeMap<u32, Vec<f32>>,
    queries: &[Vec<f32>],
    k: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(f.n_present(), items.len());
    prop_assert_eq!(
        f.n_items(),
        items.keys().next_back().map_or(0, |&m| m as usize + 1)
    );
    // Every node of every tree: a few per item per tree at most.
    let all = 4 * (f.n_trees() + 1) * (items.len() + 8);
    for q in queries {
        let hits = f.nns_by_vector(q, k, Some(all)).unwrap();
        check_answers(f, metric, items, q, k, &hits)?;
    }
    for (&id, v) in items.iter().take(3) {
        let hits = f.nns_by_item(id, k, Some(all)).unwrap();
        check_answers(f, metric, items, v, k, &hits)?;
    }
    Ok(())
}

fn run(
    metric: Metric,
    dim: usize,
    first: &[(u32, Vec<i8>)],
    later: &[(u32, Vec<i8>)],
    queries: &[Vec<i8>],
    trees: usize,
    k: usize,
) -> Result<(), TestCaseError> {
    let mut f = Forest::new(dim, metric).unwrap();
    f.set_seed(11);
    let mut items = BTreeMap::new();
    for (id, raw) in first {
        let v = point(metric, &raw[..dim]);
        f.add_item(*id, &v).unwrap();
        items.insert(*id, v);
    }
    let queries: Vec<Vec<f32>> = queries.iter().map(|r| point(metric, &r[..dim])).collect();
    f.build(trees, Some(2)).unwrap();
    check_forest(&f, metric, &items, &queries, k)?;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forest.ann");
    f.save(&path).unwrap();
    let loaded = Forest::load(&path).unwrap();
    let mapped = Forest::open_mmap(&path, OpenOptions::default()).unwrap();
    for copy in [&loaded, &mapped] {
        check_forest(copy, metric, &items, &queries, k)?;
        for q in &queries {
            prop_assert_eq!(
                copy.nns_by_vector(q, k, None).unwrap(),
                f.nns_by_vector(q, k, None).unwrap()
            );
        }
    }
    drop((loaded, mapped));

    // More items (some replacing vectors) after unbuilding, built again.
    f.unbuild().unwrap();
    for (id, raw) in later {
        let v = point(metric, &raw[..dim]);
        f.add_item(*id, &v).unwrap();
        items.insert(*id, v);
    }
    f.build(trees, Some(1)).unwrap();
    check_forest(&f, metric, &items, &queries, k)
}

fn rows(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<(u32, Vec<i8>)>> {
    prop::collection::vec((0u32..400, prop::collection::vec(-3i8..4, 6)), n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn exhaustive_searches_are_exact_under_every_metric(
        metric in 0usize..5,
        dim in 1usize..7,
        first in rows(1..120),
        later in rows(0..40),
        queries in prop::collection::vec(prop::collection::vec(-3i8..4, 6), 1..4),
        trees in 1usize..5,
        k in 1usize..15,
    ) {
        run(common::FOREST_METRICS[metric], dim, &first, &later, &queries, trees, k)?;
    }
}
