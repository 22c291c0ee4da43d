//! Files written by Annoy 1.17.3 (tests/data/annoy, made by make_fixtures.py
//! there) open and answer as Annoy answered.
#![cfg(feature = "forest")]

use std::path::PathBuf;

use serde_json::Value;
use swann::index::forest::{AnnoyIndex, Hit};
use swann::{Error, Metric};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/annoy")
        .join(name)
}

fn fixture(name: &str) -> (Value, AnnoyIndex) {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(data(&format!("{name}.json"))).unwrap()).unwrap();
    let metric: Metric = doc["metric"].as_str().unwrap().parse().unwrap();
    let dim = doc["dim"].as_u64().unwrap() as usize;
    let idx = AnnoyIndex::open(data(&format!("{name}.ann")), dim, metric).unwrap();
    (doc, idx)
}

fn ids(v: &Value) -> Vec<u32> {
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn dists(v: &Value) -> Vec<f32> {
    v["distances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Distances agree to a relative 1e-4 (Annoy sums with AVX in another
/// order). Angular distances are `sqrt(2 - 2 cos)`: near 0 the square root
/// magnifies the rounding of `cos` (a few ulps of 1, ~1e-7) to ~3e-4, so they
/// are compared squared, to 1e-5 absolute.
fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0) || (a * a - b * b).abs() <= 1e-5
}

/// Compares one result list with Annoy's; returns how many ids match as sets.
fn compare(name: &str, got: &[Hit], want: &Value, exact: bool) -> usize {
    let (wi, wd) = (ids(want), dists(want));
    let gi: Vec<u32> = got.iter().map(|h| h.id).collect();
    let common = gi.iter().filter(|i| wi.contains(i)).count();
    if exact {
        let mut a = gi.clone();
        let mut b = wi.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: neighbour sets differ");
        for (h, (&i, &d)) in got.iter().zip(wi.iter().zip(&wd)) {
            // Same rank, same distance (ids may swap on exact ties only).
            assert!(
                close(h.distance, d),
                "{name}: rank distance {} vs annoy {d} (id {i})",
                h.distance
            );
        }
    }
    for h in got {
        if let Some(p) = wi.iter().position(|&i| i == h.id) {
            assert!(
                close(h.distance, wd[p]),
                "{name}: id {} distance {} vs {}",
                h.id,
                h.distance,
                wd[p]
            );
        }
    }
    common
}

fn check(name: &str) {
    let (doc, idx) = fixture(name);
    assert_eq!(
        idx.n_trees() as u64,
        doc["n_trees"].as_u64().unwrap(),
        "{name}: trees"
    );
    assert_eq!(
        idx.n_items() as u64,
        doc["n_items"].as_u64().unwrap(),
        "{name}: items"
    );
    let k = doc["k"].as_u64().unwrap() as usize;
    let queries: Vec<Vec<f32>> = doc["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    for (case, exact) in [("exhaustive", true), ("default", false)] {
        let sk = doc[case]["search_k"].as_i64().unwrap();
        let sk = (sk > 0).then_some(sk as usize);
        let (mut common, mut total) = (0, 0);
        for (q, want) in queries
            .iter()
            .zip(doc[case]["by_vector"].as_array().unwrap())
        {
            let got = idx.nns_by_vector(q, k, sk).unwrap();
            common += compare(&format!("{name} {case} by_vector"), &got, want, exact);
            total += ids(want).len();
        }
        for want in doc[case]["by_item"].as_array().unwrap() {
            let item = want["item"].as_u64().unwrap() as u32;
            let got = idx.nns_by_item(item, k, sk).unwrap();
            common += compare(&format!("{name} {case} by_item"), &got, want, exact);
            total += ids(want).len();
        }
        // With Annoy's own search_k the walk is the same up to float
        // rounding in the margins, so nearly every id must agree.
        assert!(
            common as f64 >= 0.97 * total as f64,
            "{name} {case}: only {common} of {total} ids agree with Annoy"
        );
    }
    for (id, want) in doc["item_vectors"].as_object().unwrap() {
        let got = idx.item_vector(id.parse().unwrap()).unwrap();
        assert_eq!(got, floats(want), "{name}: item {id} vector");
    }
    for p in doc["item_distances"].as_array().unwrap() {
        let p = p.as_array().unwrap();
        let (a, b) = (p[0].as_u64().unwrap() as u32, p[1].as_u64().unwrap() as u32);
        let d = idx.distance(a, b).unwrap();
        assert!(
            close(d, p[2].as_f64().unwrap() as f32),
            "{name}: distance({a}, {b}) = {d}, annoy {}",
            p[2]
        );
    }
}

#[test]
fn angular_matches_annoy() {
    check("angular");
}

#[test]
fn euclidean_with_missing_ids_matches_annoy() {
    check("euclidean");
    let (doc, idx) = fixture("euclidean");
    let present: Vec<u64> = doc["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let missing = (0..idx.n_items() as u64)
        .find(|i| !present.contains(i))
        .unwrap();
    assert!(matches!(
        idx.item_vector(missing as u32),
        Err(Error::UnknownLabel(_))
    ));
}

#[test]
fn manhattan_matches_annoy() {
    check("manhattan");
}

#[test]
fn dot_matches_annoy() {
    check("dot");
}

#[test]
fn hamming_matches_annoy() {
    check("hamming");
}

#[test]
fn wrong_metric_or_dimension_is_refused() {
    // Angular nodes of dim 16 are 76 bytes; euclidean ones 80: the sizes do
    // not divide, and Annoy's own check catches it.
    let err = AnnoyIndex::open(data("angular.ann"), 16, Metric::Euclidean).unwrap_err();
    assert!(matches!(err, Error::BadDataFile { .. }), "{err}");
    let err = AnnoyIndex::open(data("angular.ann"), 15, Metric::Angular).unwrap_err();
    assert!(matches!(err, Error::BadDataFile { .. }), "{err}");
    let err = AnnoyIndex::open(data("angular.ann"), 16, Metric::L2).unwrap_err();
    assert!(matches!(err, Error::UnsupportedMetric { .. }), "{err}");
}

#[test]
fn bad_queries_are_typed_errors() {
    let (_, idx) = fixture("angular");
    assert!(matches!(
        idx.nns_by_vector(&[0.0; 3], 5, None),
        Err(Error::DimensionMismatch { .. })
    ));
    let mut q = vec![0.5; 16];
    q[3] = f32::NAN;
    assert!(matches!(
        idx.nns_by_vector(&q, 5, None),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        idx.nns_by_item(1_000_000, 5, None),
        Err(Error::UnknownLabel(_))
    ));
    assert!(matches!(idx.nns_by_item(0, 0, None), Err(Error::ZeroK)));
}

#[test]
fn corrupt_annoy_file_gives_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ann");
    let mut bytes = std::fs::read(data("euclidean.ann")).unwrap();
    let node = 80; // euclidean, dim 16: 16 + 64 bytes
    let n_nodes = bytes.len() / node;
    // Point every split node's children at itself (a cycle) or far away.
    for i in 700..n_nodes {
        let nd = i32::from_le_bytes(bytes[i * node..i * node + 4].try_into().unwrap());
        if nd > 18 {
            let c = (i as i32 + (i % 2) as i32 * 1_000_000).to_le_bytes();
            bytes[i * node + 8..i * node + 12].copy_from_slice(&c);
        }
    }
    std::fs::write(&path, &bytes).unwrap();
    let idx = AnnoyIndex::open(&path, 16, Metric::Euclidean).unwrap();
    let err = idx.nns_by_item(0, 10, Some(100_000)).unwrap_err();
    assert!(matches!(err, Error::BadDataFile { .. }), "{err}");
}

/// Annoy's own `test/test.tree` (Apache-2.0, from spotify/annoy), written
/// by an older Annoy that stored split nodes before their children. Annoy's
/// `test_binary_compatibility` expects these neighbours of item 0.
#[test]
fn old_annoy_file_with_split_nodes_first_answers_as_annoy() {
    let idx = AnnoyIndex::open(data("old_split_first.tree"), 10, Metric::Angular).unwrap();
    let got: Vec<u32> = idx
        .nns_by_item(0, 10, None)
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(got, [0, 85, 42, 11, 54, 38, 53, 66, 19, 31]);
}

/// Split nodes that point at each other (a cycle no valid tree has) end the
/// search with an error instead of looping.
#[test]
fn a_cycle_of_split_nodes_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cycle.ann");
    let mut bytes = std::fs::read(data("euclidean.ann")).unwrap();
    let node = 80; // euclidean, dim 16: 16 + 64 bytes
    let n_nodes = bytes.len() / node;
    let nd = |b: &[u8], i: usize| i32::from_le_bytes(b[i * node..i * node + 4].try_into().unwrap());
    let k = 18; // most ids a leaf holds at dim 16
    let splits: Vec<usize> = (0..n_nodes - 1).filter(|&i| nd(&bytes, i) > k).collect();
    let (a, b) = (splits[0], splits[1]);
    let set = |bytes: &mut Vec<u8>, i: usize, c: usize| {
        let c = (c as i32).to_le_bytes();
        bytes[i * node + 8..i * node + 12].copy_from_slice(&c);
        bytes[i * node + 12..i * node + 16].copy_from_slice(&c);
    };
    set(&mut bytes, a, b);
    set(&mut bytes, b, a);
    // Every root leads into the cycle.
    let top = nd(&bytes, n_nodes - 1);
    let roots: Vec<usize> = (0..n_nodes)
        .rev()
        .take_while(|&i| nd(&bytes, i) == top)
        .collect();
    for i in roots {
        set(&mut bytes, i, a);
    }
    std::fs::write(&path, &bytes).unwrap();
    let idx = AnnoyIndex::open(&path, 16, Metric::Euclidean).unwrap();
    let err = idx.nns_by_item(0, 10, Some(100_000)).unwrap_err();
    assert!(err.to_string().contains("cycle"), "{err}");
}

/// Saving an opened Annoy file writes it again, byte for byte, atomically.
#[test]
fn an_annoy_file_saves_as_itself() {
    let idx = AnnoyIndex::open(data("angular.ann"), 16, Metric::Angular).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.ann");
    idx.save(&copy).unwrap();
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(data("angular.ann")).unwrap()
    );
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "a temporary file was left behind");
    assert!(idx.save(dir.path().join("missing/x.ann")).is_err());
}
