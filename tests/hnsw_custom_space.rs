//! HNSW over a user-defined space: a distance the crate does not ship
//! builds a graph the checker accepts, searches it as well as a built-in
//! space does, and supports removal and filters.

use swann::index::flat::FlatIndex;
use swann::index::hnsw::{Filter, FilterStrategy, HnswIndex, Space};
use swann::Metric;

/// Squared L2 with a weight per component, written as a user would.
#[derive(Clone, Debug)]
struct WeightedL2 {
    weights: Vec<f32>,
}

impl Space for WeightedL2 {
    type Elem = f32;
    fn vector_len(&self) -> usize {
        self.weights.len()
    }
    fn metric(&self) -> Metric {
        Metric::L2
    }
    fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        self.weights
            .iter()
            .zip(a.iter().zip(b))
            .map(|(w, (x, y))| w * (x - y) * (x - y))
            .sum()
    }
    fn prepare(&self, v: &[f32], out: &mut Vec<f32>) -> swann::Result<()> {
        if v.len() != self.weights.len() {
            return Err(swann::Error::DimensionMismatch {
                expected: self.weights.len(),
                got: v.len(),
            });
        }
        out.clear();
        out.extend_from_slice(v);
        Ok(())
    }
}

fn rows(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
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
fn a_user_space_builds_a_sound_graph_and_finds_true_neighbours() {
    let dim = 12;
    let data = rows(3000, dim, 1);
    let queries = rows(100, dim, 2);
    // Weights 1..=12: uniform in the first components, steep in the last.
    let weights: Vec<f32> = (1..=dim).map(|i| i as f32).collect();
    let space = WeightedL2 {
        weights: weights.clone(),
    };
    let mut index = HnswIndex::builder_with_space(space)
        .seed(5)
        .build()
        .unwrap();
    for (i, r) in data.iter().enumerate() {
        index.insert(i as u64, r).unwrap();
    }
    assert!(index.check().is_ok(), "{}", index.check());
    // Exact answers under the weighted distance: scale each component by the
    // square root of its weight and use plain squared L2.
    let scale =
        |v: &[f32]| -> Vec<f32> { v.iter().zip(&weights).map(|(x, w)| x * w.sqrt()).collect() };
    let mut exact = FlatIndex::new(dim, Metric::L2).unwrap();
    for (i, r) in data.iter().enumerate() {
        exact.add(i as u64, &scale(r)).unwrap();
    }
    let mut hits = 0;
    for q in &queries {
        let want = exact.search(&scale(q), 10).unwrap();
        let got = index.search(q, 10, 100).unwrap();
        for g in &got {
            let d = WeightedL2 {
                weights: weights.clone(),
            }
            .distance(q, &data[g.label as usize]);
            assert!((g.distance - d).abs() <= 1e-5 * d.max(1.0));
        }
        hits += got
            .iter()
            .filter(|g| want.iter().any(|w| w.label == g.label))
            .count();
    }
    let recall = hits as f64 / 1000.0;
    assert!(recall >= 0.97, "recall@10 at ef 100: {recall}");

    // Removal and filters work on it as on the built-in spaces.
    for l in (0..3000).step_by(3) {
        index.remove(l).unwrap();
    }
    assert!(index.check().is_ok(), "{}", index.check());
    let res = index.search(&queries[0], 10, 100).unwrap();
    assert_eq!(res.len(), 10);
    assert!(res.iter().all(|n| n.label % 3 != 0));
    let is_even = |l: u64| l.is_multiple_of(2);
    let (even, _plan) = index
        .search_filtered(
            &queries[1],
            5,
            100,
            &Filter::Fn(&is_even),
            FilterStrategy::Auto,
        )
        .unwrap();
    assert_eq!(even.len(), 5);
    assert!(even
        .iter()
        .all(|n| n.label.is_multiple_of(2) && n.label % 3 != 0));
}

#[test]
fn a_user_space_checks_its_own_input() {
    let space = WeightedL2 {
        weights: vec![1.0; 4],
    };
    let mut index = HnswIndex::builder_with_space(space).build().unwrap();
    assert!(index.insert(0, &[1.0, 2.0]).is_err());
    assert!(index.is_empty());
    // Builder parameters are still validated.
    let space = WeightedL2 {
        weights: vec![1.0; 4],
    };
    assert!(HnswIndex::builder_with_space(space).m(1).build().is_err());
}

#[test]
fn the_flat_index_searches_by_a_callers_distance() {
    let dim = 8;
    let data = rows(500, dim, 4);
    let mut index = FlatIndex::new(dim, Metric::L2).unwrap();
    for (i, r) in data.iter().enumerate() {
        index.add(i as u64, r).unwrap();
    }
    // The caller's squared L2 ranks as the built-in one does.
    let l2 =
        |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    for q in rows(20, dim, 6) {
        let own: Vec<u64> = index
            .search(&q, 10)
            .unwrap()
            .iter()
            .map(|n| n.label)
            .collect();
        let by: Vec<u64> = index
            .search_by(&q, 10, l2)
            .unwrap()
            .iter()
            .map(|n| n.label)
            .collect();
        assert_eq!(own, by);
    }
    // A weighted distance changes the answer the way it should.
    let first_only = |a: &[f32], b: &[f32]| (a[0] - b[0]).abs();
    let hits = index.search_by(&data[3], 1, first_only).unwrap();
    assert_eq!(hits[0].distance, 0.0);
    // NaN distances and bad queries are errors.
    assert!(index.search_by(&data[0], 3, |_, _| f32::NAN).is_err());
    assert!(index.search_by(&data[0][..3], 3, l2).is_err());
    assert!(index.search_by(&data[0], 0, l2).is_err());
}
