//! Random sequences of operations on quantized HNSW indexes (8-bit codes and
//! 4-bit neighbour records, the residual ones of more than 128 dimensions
//! too, under every metric), checked after every step
//! against a plain model of what the index holds: inserts and in-place
//! replacements, deletes and undeletes, removals, slot reuse, compaction,
//! resizing, and save/load or mapping followed by more changes. A search
//! whose `ef` covers every node must give the exact top `k` of the live
//! vectors with their exact distances, so codes, records and links that
//! fall out of step with the vectors show up as a wrong answer, and the
//! graph report must stay clean. Under inner product the graph rightly
//! leaves nodes inside the hull of the others unreachable (see
//! `Space::guards_reachability`), so there every hit must be live, distinct
//! and carry its exact distance, in order, but need not be the exact top.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use swann::index::hnsw::{
    F32Space, Filter, FilterStrategy, Hnsw, HnswIndex, Quantization, SaveOptions,
};
use swann::index::Neighbor;
use swann::store::OpenOptions;
use swann::Metric;

const DIM: usize = 8;
/// Above 128 components `pq4` records hold residual codes.
const RESIDUAL_DIM: usize = 136;
/// Rows inserted before the operations: enough for every scheme to train.
const START: u64 = 320;
/// Labels the operations draw from (some new, most present).
const LABELS: u64 = 400;

#[derive(Clone, Debug)]
enum Op {
    /// Insert a new label or replace the vector of a present one.
    Insert(u64, u64),
    MarkDeleted(u64),
    UnmarkDeleted(u64),
    Remove(u64),
    /// Insert a new label into the slot of a deleted one.
    ReplaceDeleted(u64, u64),
    Compact,
    Grow(usize),
    /// Save (with the `pq4` records in the file: second field), then go on
    /// with the loaded (false) or mapped (true) index.
    Reopen(bool, bool),
    Search(u64, usize),
    /// A search for labels divisible by the modulus, with one of the
    /// strategies, as a predicate (false) or a label set (true).
    Filtered(u64, usize, u64, usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..LABELS, any::<u64>()).prop_map(|(l, s)| Op::Insert(l, s)),
        3 => (0..LABELS).prop_map(Op::MarkDeleted),
        1 => (0..LABELS).prop_map(Op::UnmarkDeleted),
        2 => (0..LABELS).prop_map(Op::Remove),
        2 => (LABELS..LABELS + 50, any::<u64>()).prop_map(|(l, s)| Op::ReplaceDeleted(l, s)),
        1 => Just(Op::Compact),
        1 => (1usize..300).prop_map(Op::Grow),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(m, r)| Op::Reopen(m, r)),
        4 => (any::<u64>(), 1usize..12).prop_map(|(s, k)| Op::Search(s, k)),
        3 => (any::<u64>(), 1usize..12, 1u64..40, 0usize..4, any::<bool>())
            .prop_map(|(s, k, m, st, set)| Op::Filtered(s, k, m, st, set)),
    ]
}

/// A vector of `dim` components drawn from `seed`: around one of 6
/// centres, so codes matter and near ties are rare.
fn vector_of(dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = common::Rng::new(seed);
    let c = (rng.next_u64() % 6) as f32;
    (0..dim)
        .map(|i| (c * (i as f32 + 1.0)).sin() * 2.0 + 0.4 * rng.normal())
        .collect()
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// The vector as the index stores it (normalized for cosine).
fn stored(metric: Metric, v: &[f32]) -> Vec<f32> {
    match metric {
        Metric::Cosine => normalized(v),
        _ => v.to_vec(),
    }
}

fn distance(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    match metric {
        Metric::L2 => q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum(),
        Metric::InnerProduct => 1.0 - dot(q, v),
        Metric::Cosine => 1.0 - dot(&normalized(q), &normalized(v)),
        other => unreachable!("{other:?}"),
    }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-3 * (1.0 + a.abs().max(b.abs()))
}

/// What the index should hold: each label's vector and deleted mark.
type Model = BTreeMap<u64, (Vec<f32>, bool)>;

/// `hits` (a search for `q`'s `k` nearest that `accept`s) against the model.
fn check_hits(
    hits: &[Neighbor],
    model: &Model,
    metric: Metric,
    q: &[f32],
    k: usize,
    accept: &dyn Fn(u64) -> bool,
) -> Result<(), TestCaseError> {
    let mut want: Vec<(f32, u64)> = model
        .iter()
        .filter(|(&l, (_, deleted))| !deleted && accept(l))
        .map(|(&l, (v, _))| (distance(metric, q, v), l))
        .collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0));
    want.truncate(k);
    let exact_top = metric != Metric::InnerProduct;
    // (Under inner product an allowed node may be one the graph leaves
    // unreachable, so fewer may come back.)
    prop_assert!(
        hits.len() == want.len() || (!exact_top && hits.len() < want.len()),
        "hits {:?} want {:?}",
        hits,
        want
    );
    prop_assert!(
        hits.windows(2).all(|w| w[0].distance <= w[1].distance),
        "hits out of order: {:?}",
        hits
    );
    let mut seen = std::collections::HashSet::new();
    for (h, w) in hits.iter().zip(&want) {
        prop_assert!(seen.insert(h.label), "label {} twice", h.label);
        let (v, deleted) = model
            .get(&h.label)
            .ok_or_else(|| TestCaseError::fail(format!("label {} not held", h.label)))?;
        prop_assert!(!deleted, "deleted label {} returned", h.label);
        let exact = distance(metric, q, v);
        prop_assert!(
            close(h.distance, exact),
            "label {}: distance {} against exact {}",
            h.label,
            h.distance,
            exact
        );
        prop_assert!(
            !exact_top || close(h.distance, w.0),
            "hits {:?} against the exact top {:?}",
            hits,
            want
        );
    }
    Ok(())
}

fn check_state(
    index: &HnswIndex<F32Space>,
    model: &Model,
    metric: Metric,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(index.len(), model.len());
    prop_assert_eq!(
        index.deleted_count(),
        model.values().filter(|(_, d)| *d).count()
    );
    for l in 0..LABELS + 50 {
        match model.get(&l) {
            Some((v, deleted)) => {
                prop_assert!(index.contains(l), "label {} lost", l);
                prop_assert_eq!(index.is_deleted(l).unwrap(), *deleted, "label {}", l);
                let got = index.get_vector(l).unwrap();
                let want = stored(metric, v);
                prop_assert!(
                    got.iter().zip(&want).all(|(a, b)| close(*a, *b)),
                    "label {}: vector {:?} against {:?}",
                    l,
                    got,
                    want
                );
            }
            None => prop_assert!(!index.contains(l), "label {} should be gone", l),
        }
    }
    if metric != Metric::InnerProduct {
        let report = index.check();
        prop_assert!(report.is_ok(), "{:?}", report);
    }
    Ok(())
}

fn run(scheme: Quantization, metric: Metric, ops: &[Op]) -> Result<(), TestCaseError> {
    run_dim(DIM, scheme, metric, ops)
}

fn run_dim(
    dim: usize,
    scheme: Quantization,
    metric: Metric,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let vector = |seed: u64| vector_of(dim, seed);
    let mut index = Hnsw::builder(dim, metric)
        .m(6)
        .ef_construction(40)
        .quantization(scheme)
        .build()
        .unwrap();
    index.set_rerank(100_000);
    let mut model = Model::new();
    let labels: Vec<u64> = (0..START).collect();
    let rows: Vec<f32> = labels.iter().flat_map(|&l| vector(l)).collect();
    index.insert_batch(&labels, &rows).unwrap();
    for &l in &labels {
        model.insert(l, (vector(l), false));
    }
    prop_assert_eq!(index.is_quantized(), scheme != Quantization::None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.swann");
    // A mapped index is read-only until a `&mut` method copies it.
    let mut mapped = false;
    for op in ops {
        // (A removal that fails for an unknown label leaves it as it is.)
        if !matches!(
            op,
            Op::MarkDeleted(_)
                | Op::UnmarkDeleted(_)
                | Op::Reopen(..)
                | Op::Search(..)
                | Op::Filtered(..)
        ) && !matches!(op, Op::Remove(l) if !model.contains_key(l))
        {
            mapped = false;
        }
        match *op {
            Op::Insert(l, s) => {
                let v = vector(s);
                index.insert(l, &v).unwrap();
                let deleted = model.get(&l).is_some_and(|(_, d)| *d);
                model.insert(l, (v, deleted));
            }
            Op::MarkDeleted(l) => {
                let r = index.mark_deleted(l);
                match model.get_mut(&l) {
                    Some((_, d)) if !*d && !mapped => {
                        r.unwrap();
                        *d = true;
                    }
                    _ => prop_assert!(r.is_err()),
                }
            }
            Op::UnmarkDeleted(l) => {
                let r = index.unmark_deleted(l);
                match model.get_mut(&l) {
                    Some((_, d)) if *d && !mapped => {
                        r.unwrap();
                        *d = false;
                    }
                    _ => prop_assert!(r.is_err()),
                }
            }
            Op::Remove(l) => {
                let r = index.remove(l);
                match model.remove(&l) {
                    Some(_) => r.unwrap(),
                    None => prop_assert!(r.is_err()),
                }
            }
            Op::ReplaceDeleted(l, s) => {
                let v = vector(s);
                let before: Vec<u64> = model
                    .iter()
                    .filter(|(_, (_, d))| *d)
                    .map(|(&l, _)| l)
                    .collect();
                let present = model.contains_key(&l);
                index.insert_replacing_deleted(l, &v).unwrap();
                if !present {
                    // One deleted label (any) gives up its slot, if any was.
                    let gone: Vec<u64> = before
                        .iter()
                        .copied()
                        .filter(|&d| !index.contains(d))
                        .collect();
                    prop_assert!(gone.len() == before.len().min(1), "gone {:?}", gone);
                    for d in gone {
                        model.remove(&d);
                    }
                }
                let deleted = model.get(&l).is_some_and(|(_, d)| *d);
                model.insert(l, (v, deleted));
            }
            Op::Compact => {
                index.compact().unwrap();
                model.retain(|_, (_, d)| !*d);
                prop_assert_eq!(index.capacity(), model.len());
            }
            Op::Grow(n) => index.resize(index.capacity() + n).unwrap(),
            Op::Reopen(map, records) => {
                index
                    .save_with(&path, SaveOptions::default().pq4_records(records))
                    .unwrap();
                mapped = map;
                index = match map {
                    true => Hnsw::open_mmap(&path, OpenOptions::default()).unwrap(),
                    false => Hnsw::load(&path).unwrap(),
                };
                index.verify().unwrap();
                prop_assert_eq!(index.quantization(), scheme);
                index.set_rerank(100_000);
            }
            // `ef` above every slot: the search sees every reachable node,
            // and the rerank covers every candidate, so the answer must be
            // exact.
            Op::Search(s, k) => {
                let q = vector(s);
                let hits = index.search(&q, k, index.capacity() + 16).unwrap();
                check_hits(&hits, &model, metric, &q, k, &|_| true)?;
            }
            Op::Filtered(s, k, m, strategy, as_set) => {
                let q = vector(s);
                let accept = |l: u64| l.is_multiple_of(m);
                let strategy = [
                    FilterStrategy::Auto,
                    FilterStrategy::Walk,
                    FilterStrategy::TwoHop,
                    FilterStrategy::Scan,
                ][strategy];
                let set = index.label_set(model.keys().copied().filter(|&l| accept(l)));
                let filter = match as_set {
                    true => Filter::Set(&set),
                    false => Filter::Fn(&accept),
                };
                let ef = index.capacity() + 16;
                let (hits, plan) = index.search_filtered(&q, k, ef, &filter, strategy).unwrap();
                check_hits(&hits, &model, metric, &q, k, &accept)
                    .map_err(|e| TestCaseError::fail(format!("{plan:?}: {e}")))?;
            }
        }
        check_state(&index, &model, metric)?;
    }
    // Every label still finds itself (a replaced vector by its new value).
    for (&l, (v, deleted)) in &model {
        if !deleted && metric != Metric::InnerProduct {
            let hit = &index.search(v, 1, index.capacity() + 16).unwrap()[0];
            prop_assert!(
                close(hit.distance, distance(metric, v, v)),
                "label {}: nearest {:?}",
                l,
                hit
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn exact_index_follows_its_model(ops in prop::collection::vec(op(), 1..80), metric in 0usize..3) {
        let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][metric];
        run(Quantization::None, metric, &ops)?;
    }

    #[test]
    fn sq8_follows_its_model(ops in prop::collection::vec(op(), 1..80), metric in 0usize..3) {
        let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][metric];
        run(Quantization::Sq8, metric, &ops)?;
    }

    #[test]
    fn pq4_follows_its_model(ops in prop::collection::vec(op(), 1..80), metric in 0usize..3) {
        let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][metric];
        run(Quantization::Pq4, metric, &ops)?;
    }
}

proptest! {
    // Each case codes every record's 32 residuals at 136 dimensions.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn pq4_residual_records_follow_their_model(
        ops in prop::collection::vec(op(), 1..60),
        metric in 0usize..3,
    ) {
        let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][metric];
        run_dim(RESIDUAL_DIM, Quantization::Pq4, metric, &ops)?;
    }
}
