//! The LSH engine: hashes, filters, storage semantics, determinism, errors.
#![cfg(feature = "lsh")]

use swann::index::lsh::{
    BucketKey, Distance, Engine, EngineConfig, Filter, LshHash, MemoryStorage, Neighbour, Storage,
};
use swann::{Error, Metric};

/// Deterministic test data (SplitMix64 to uniform in [-1, 1)).
fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n * dim)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn keys(h: &LshHash, v: &[f32]) -> String {
    h.key(v).unwrap().as_str().to_string()
}

fn ids<D: Clone>(r: &[Neighbour<D>]) -> Vec<D> {
    r.iter().map(|n| n.data.clone()).collect()
}

// ---------------------------------------------------------------- known answers

#[test]
fn binary_projections_known_answer() {
    let h = LshHash::binary_from_matrix("b", 3, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, -1.0])
        .unwrap();
    // Projections (2, -1, 2 - 1 - 0.5 = 0.5).
    assert_eq!(keys(&h, &[2.0, -1.0, 0.5]), "101");
    // Projections (-1, 3, -1 + 3 - 4 = -2).
    assert_eq!(keys(&h, &[-1.0, 3.0, 4.0]), "010");
    // A zero projection is not positive: bit 0, as NearPy's `x > 0.0`.
    assert_eq!(keys(&h, &[0.0, 0.0, 0.0]), "000");
}

#[test]
fn discretized_projections_known_answer() {
    let h =
        LshHash::discretized_from_matrix("d", 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 0.5).unwrap();
    // Projections (1.2, -0.3, 0.9) / 0.5 = (2.4, -0.6, 1.8), floored.
    assert_eq!(keys(&h, &[1.2, -0.3]), "2_-1_1");
    // Exactly on a bin edge: floor(1.0) = 1; negative edge floor(-1.0) = -1.
    assert_eq!(keys(&h, &[0.5, -0.5]), "1_-1_0");
}

#[test]
fn random_projections_are_gaussian_rows_and_keys_are_their_signs() {
    let dim = 16;
    let h = LshHash::random_binary("r", dim, 12, 99).unwrap();
    let m = h.projection_matrix().to_vec();
    assert_eq!(m.len(), 12 * dim);
    let v = data(1, dim, 5);
    let expected: String = m
        .chunks_exact(dim)
        .map(|row| {
            let p: f32 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
            if p > 0.0 {
                '1'
            } else {
                '0'
            }
        })
        .collect();
    assert_eq!(keys(&h, &v), expected);
    // The same matrix given explicitly hashes the same.
    let explicit = LshHash::binary_from_matrix("r", dim, m.clone()).unwrap();
    for i in 0..50 {
        let v = data(1, dim, 100 + i);
        assert_eq!(keys(&explicit, &v), keys(&h, &v));
    }
    let d = LshHash::random_discretized("rd", dim, 6, 0.25, 99).unwrap();
    let v = data(1, dim, 6);
    let expected: Vec<String> = d
        .projection_matrix()
        .chunks_exact(dim)
        .map(|row| {
            let p: f32 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
            ((p / 0.25).floor() as i64).to_string()
        })
        .collect();
    assert_eq!(keys(&d, &v), expected.join("_"));
}

#[test]
fn pca_hashes_known_answer() {
    // Training points on the line y = 2x + 2: mean (1.5, 5), first principal
    // component (1, 2)/sqrt(5), second (2, -1)/sqrt(5) (sign: largest entry positive).
    let training = [0.0f32, 2.0, 1.0, 4.0, 2.0, 6.0, 3.0, 8.0];
    let b = LshHash::pca_binary("pb", 2, 1, &training).unwrap();
    let s5 = 5f32.sqrt();
    let m = b.projection_matrix();
    assert!((m[0] - 1.0 / s5).abs() < 1e-6 && (m[1] - 2.0 / s5).abs() < 1e-6);
    // Centred (0.5, 1) projects to 2.5/sqrt(5) > 0; centred (-0.5, -1) to < 0.
    assert_eq!(keys(&b, &[2.0, 6.0]), "1");
    assert_eq!(keys(&b, &[1.0, 4.0]), "0");
    let d = LshHash::pca_discretized("pd", 2, 2, 1.0, &training).unwrap();
    // (4, 5) centred is (2.5, 0): projections 2.5/sqrt(5) = 1.118 and 5/sqrt(5) = 2.236.
    assert_eq!(keys(&d, &[4.0, 5.0]), "1_2");
    // (0, 0) centred is (-1.5, -5): -11.5/sqrt(5) = -5.14 and 2/sqrt(5) = 0.89.
    assert_eq!(keys(&d, &[0.0, 0.0]), "-6_0");
}

#[test]
fn binary_tree_falls_back_to_nearby_buckets() {
    // Identity projections in 2-d: the key is the signs of (x, y).
    let tree = LshHash::binary_tree_from_matrix("t", 2, vec![1.0, 0.0, 0.0, 1.0], 3).unwrap();
    let mut e = Engine::builder(2)
        .hash(tree)
        .filters([])
        .build::<u32>()
        .unwrap();
    // Bucket "11" gets 3 vectors, "10" gets 1, "00" gets 1.
    for (i, v) in [
        [1.0, 1.0],
        [2.0, 1.0],
        [1.0, 3.0],
        [1.0, -1.0],
        [-1.0, -1.0],
    ]
    .iter()
    .enumerate()
    {
        e.store(v, i as u32).unwrap();
    }
    let qk = |e: &Engine<u32>, v: &[f32]| -> Vec<String> {
        e.hashes()[0]
            .query_keys(v)
            .unwrap()
            .iter()
            .map(|k| k.as_str().to_string())
            .collect()
    };
    // "11" holds 3 >= 3: its own bucket only.
    assert_eq!(qk(&e, &[5.0, 5.0]), ["11"]);
    assert_eq!(e.candidate_count(&[5.0, 5.0]).unwrap(), 3);
    // "10" holds 1 < 3: the subtree "10" and its sibling "11".
    assert_eq!(qk(&e, &[5.0, -5.0]), ["10", "11"]);
    assert_eq!(e.candidate_count(&[5.0, -5.0]).unwrap(), 4);
    // Prefix "0" holds 1 < 3: every bucket under "0", then under "1".
    assert_eq!(qk(&e, &[-5.0, 5.0]), ["00", "10", "11"]);
    let mut got = ids(&e.neighbours(&[-5.0, 5.0]).unwrap());
    got.sort();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    // Deleting shrinks the counts: with "11" down to 2 it borrows from "10".
    assert_eq!(e.delete(&2).unwrap(), 1);
    assert_eq!(qk(&e, &[5.0, 5.0]), ["11", "10"]);
    // The tree travels with the config.
    let cfg: EngineConfig =
        serde_json::from_str(&serde_json::to_string(&e.config()).unwrap()).unwrap();
    let again = Engine::<u32>::builder_from_config(cfg)
        .build::<u32>()
        .unwrap();
    assert_eq!(qk(&again, &[5.0, 5.0]), ["11", "10"]);
}

// ---------------------------------------------------------------- engine behaviour

fn all_hash_kinds(dim: usize, training: &[f32]) -> Vec<LshHash> {
    vec![
        LshHash::random_binary("rbp", dim, 8, 1).unwrap(),
        LshHash::random_discretized("rdp", dim, 4, 0.5, 2).unwrap(),
        LshHash::random_binary_tree("tree", dim, 10, 20, 3).unwrap(),
        LshHash::pca_binary("pcab", dim, 6, training).unwrap(),
        LshHash::pca_discretized("pcad", dim, 3, 0.5, training).unwrap(),
    ]
}

#[test]
fn candidates_always_include_an_exact_duplicate_of_the_query() {
    let (n, dim) = (500, 12);
    let xs = data(n, dim, 11);
    for hash in all_hash_kinds(dim, &xs[..200 * dim]) {
        let name = hash.name().to_string();
        let mut e = Engine::builder(dim)
            .hash(hash)
            .filters([Filter::Unique, Filter::Nearest(5)])
            .build::<usize>()
            .unwrap();
        e.store_batch(&xs, &(0..n).collect::<Vec<_>>()).unwrap();
        for i in (0..n).step_by(7) {
            let q = &xs[i * dim..(i + 1) * dim];
            let r = e.neighbours(q).unwrap();
            assert_eq!(r[0].distance, Some(0.0), "{name}: query {i}");
            assert!(
                ids(&r).contains(&i),
                "{name}: query {i} not among {:?}",
                ids(&r)
            );
            assert_eq!(r.iter().find(|x| x.data == i).unwrap().vector, q);
            assert!(e.candidate_count(q).unwrap() >= 1);
        }
    }
}

#[test]
fn same_seeds_same_engine_and_config_round_trips() {
    let (n, dim) = (400, 10);
    let xs = data(n, dim, 21);
    let training = &xs[..100 * dim];
    let make = |seed_shift: u64| {
        let hashes = vec![
            LshHash::random_binary("a", dim, 6, 10 + seed_shift).unwrap(),
            LshHash::random_discretized("b", dim, 3, 1.0, 20 + seed_shift).unwrap(),
            LshHash::random_binary_tree("c", dim, 8, 10, 30 + seed_shift).unwrap(),
            LshHash::pca_binary("d", dim, 4, training).unwrap(),
        ];
        let mut e = Engine::builder(dim)
            .hashes(hashes)
            .build::<usize>()
            .unwrap();
        for i in 0..n {
            e.store(&xs[i * dim..(i + 1) * dim], i).unwrap();
        }
        e
    };
    let (e1, e2, e3) = (make(0), make(0), make(1));
    let cfg = e1.config();
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(json, serde_json::to_string(&e2.config()).unwrap());
    assert_ne!(json, serde_json::to_string(&e3.config()).unwrap());
    // Rebuild from the serialized config; refill the storage; same answers.
    let mut rebuilt = Engine::<usize>::builder_from_config(serde_json::from_str(&json).unwrap())
        .build_with_storage::<usize, _>(MemoryStorage::new())
        .unwrap();
    let mut diff = 0;
    for i in 0..n {
        let v = &xs[i * dim..(i + 1) * dim];
        for (a, b) in e1.hashes().iter().zip(rebuilt.hashes()) {
            assert_eq!(a.key(v).unwrap(), b.key(v).unwrap());
            assert_eq!(a.query_keys(v).unwrap(), b.query_keys(v).unwrap());
        }
        if e1.hashes()[0].key(v).unwrap() != e3.hashes()[0].key(v).unwrap() {
            diff += 1;
        }
    }
    assert!(
        diff > n / 4,
        "a different seed changed only {diff} of {n} keys"
    );
    // The rebuilt engine's tree already counts e1's vectors, but its storage
    // is empty: clean (which also resets the tree) and refill, then compare.
    rebuilt.clean_all_buckets().unwrap();
    for i in 0..n {
        rebuilt.store(&xs[i * dim..(i + 1) * dim], i).unwrap();
    }
    for i in (0..n).step_by(13) {
        let q = data(1, dim, 1000 + i as u64);
        assert_eq!(e1.neighbours(&q).unwrap(), rebuilt.neighbours(&q).unwrap());
        assert_eq!(e1.neighbours(&q).unwrap(), e2.neighbours(&q).unwrap());
    }
    // Binary (postcard, as Redis storage writes hashes) round trip of a hash
    // keeps it bit for bit.
    #[cfg(feature = "redis")]
    {
        let bytes = postcard::to_stdvec(&e1.hashes()[1]).unwrap();
        let back: LshHash = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.projection_matrix(), e1.hashes()[1].projection_matrix());
    }
}

/// One bit with a positive direction: every positive vector shares bucket "1".
fn one_bucket_engine(filters: Vec<Filter>, hashes: usize) -> Engine<&'static str> {
    let hs = (0..hashes)
        .map(|i| LshHash::binary_from_matrix(&format!("h{i}"), 2, vec![1.0, 1.0]).unwrap());
    let mut e = Engine::builder(2)
        .hashes(hs)
        .metric(Metric::Euclidean)
        .filters(filters)
        .build::<&'static str>()
        .unwrap();
    for (v, d) in [
        ([3.0, 0.0], "c"),
        ([1.0, 0.0], "a"),
        ([2.0, 0.0], "b"),
        ([4.0, 0.0], "d"),
        ([1.0, 0.0], "a2"),
    ] {
        e.store(&v, d).unwrap();
    }
    e
}

#[test]
fn filters_semantics_and_order() {
    let q = [0.0, 0.5];
    let q = [q[0] + 0.0, q[1]]; // query in bucket "1" (0 + 0.5 > 0)
                                // No filter: every candidate, fetch (store) order, with its distance.
    let all = one_bucket_engine(vec![], 1).neighbours(&q).unwrap();
    assert_eq!(ids(&all), ["c", "a", "b", "d", "a2"]);
    let d_c = all[0].distance.unwrap();
    assert!((d_c - (9.0f32 + 0.25).sqrt()).abs() < 1e-6);
    // Nearest: the n smallest, sorted; ties ("a", "a2") in fetch order.
    let near = one_bucket_engine(vec![Filter::Nearest(3)], 1)
        .neighbours(&q)
        .unwrap();
    assert_eq!(ids(&near), ["a", "a2", "b"]);
    assert!(near.windows(2).all(|w| w[0].distance <= w[1].distance));
    assert!(one_bucket_engine(vec![Filter::Nearest(0)], 1)
        .neighbours(&q)
        .unwrap()
        .is_empty());
    // Threshold: strictly below, order kept. dist(b) = sqrt(4.25) = 2.06.
    let t = one_bucket_engine(vec![Filter::DistanceThreshold(2.1)], 1)
        .neighbours(&q)
        .unwrap();
    assert_eq!(ids(&t), ["a", "b", "a2"]);
    let exact = (1.0f32 + 0.25).sqrt();
    let t = one_bucket_engine(vec![Filter::DistanceThreshold(exact)], 1)
        .neighbours(&q)
        .unwrap();
    assert!(t.is_empty(), "threshold must be strict");
    // Order matters: nearest 2 then threshold 1.2 keeps a and a2 (both 1.118);
    // threshold 2.1 then nearest 4 keeps the three under 2.1.
    let e = one_bucket_engine(vec![Filter::Nearest(2), Filter::DistanceThreshold(1.2)], 1);
    assert_eq!(ids(&e.neighbours(&q).unwrap()), ["a", "a2"]);
    let e = one_bucket_engine(vec![Filter::DistanceThreshold(2.1), Filter::Nearest(4)], 1);
    assert_eq!(ids(&e.neighbours(&q).unwrap()), ["a", "a2", "b"]);
    let e = one_bucket_engine(vec![Filter::Nearest(4), Filter::DistanceThreshold(2.1)], 1);
    assert_eq!(ids(&e.neighbours(&q).unwrap()), ["a", "a2", "b"]);
    // Unique: with 3 hashes each vector comes back 3 times without it.
    let e = one_bucket_engine(vec![], 3);
    assert_eq!(e.neighbours(&q).unwrap().len(), 15);
    assert_eq!(e.candidate_count(&q).unwrap(), 15);
    let e = one_bucket_engine(vec![Filter::Unique], 3);
    assert_eq!(ids(&e.neighbours(&q).unwrap()), ["c", "a", "b", "d", "a2"]);
    let e = one_bucket_engine(vec![Filter::Unique, Filter::Nearest(2)], 3);
    assert_eq!(ids(&e.neighbours(&q).unwrap()), ["a", "a2"]);
    // Nearest before Unique sees the duplicates: the 4 nearest are a, a, a, a2.
    let e = one_bucket_engine(vec![Filter::Nearest(4), Filter::Unique], 3);
    assert_eq!(ids(&e.neighbours(&q).unwrap()), ["a", "a2"]);
    // A query in the other bucket finds nothing.
    assert!(one_bucket_engine(vec![], 1)
        .neighbours(&[-1.0, -1.0])
        .unwrap()
        .is_empty());
}

#[test]
fn distances_metrics_custom_and_none() {
    let q = [0.0, 0.5];
    let d_of = |metric: Metric| {
        let h = LshHash::binary_from_matrix("h", 2, vec![1.0, 1.0]).unwrap();
        let mut e = Engine::builder(2)
            .hash(h)
            .metric(metric)
            .filters([])
            .build::<u8>()
            .unwrap();
        e.store(&[3.0, 4.0], 1).unwrap();
        e.neighbours(&q).unwrap()[0].distance.unwrap()
    };
    assert!((d_of(Metric::L2) - (9.0 + 12.25)).abs() < 1e-5);
    assert!((d_of(Metric::Euclidean) - 21.25f32.sqrt()).abs() < 1e-5);
    assert!((d_of(Metric::Manhattan) - 6.5).abs() < 1e-5);
    assert!((d_of(Metric::Dot) + 2.0).abs() < 1e-5);
    assert!((d_of(Metric::InnerProduct) - (1.0 - 2.0)).abs() < 1e-5);
    assert!((d_of(Metric::Cosine) - (1.0 - 0.8)).abs() < 1e-5);
    assert!((d_of(Metric::Angular) - (2.0f32 * 0.2).sqrt()).abs() < 1e-5);

    struct Chebyshev;
    impl Distance for Chebyshev {
        fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        }
    }
    let mut e = Engine::builder(2)
        .hash(LshHash::binary_from_matrix("h", 2, vec![1.0, 1.0]).unwrap())
        .distance(Chebyshev)
        .filters([Filter::Nearest(1)])
        .build::<u8>()
        .unwrap();
    e.store(&[3.0, 4.0], 1).unwrap();
    e.store(&[1.0, 0.0], 2).unwrap();
    let r = e.neighbours(&q).unwrap();
    assert_eq!((r[0].data, r[0].distance), (2, Some(1.0)));

    let mut e = Engine::builder(2)
        .hash(LshHash::binary_from_matrix("h", 2, vec![1.0, 1.0]).unwrap())
        .no_distance()
        .filters([Filter::Unique])
        .build::<u8>()
        .unwrap();
    e.store(&[3.0, 4.0], 1).unwrap();
    assert_eq!(e.neighbours(&q).unwrap()[0].distance, None);
}

#[test]
fn delete_and_clean() {
    let (n, dim) = (300, 8);
    let xs = data(n, dim, 31);
    let mut e = Engine::builder(dim)
        .hash(LshHash::random_binary("a", dim, 4, 1).unwrap())
        .hash(LshHash::random_binary("b", dim, 5, 2).unwrap())
        .filters([Filter::Unique])
        .build::<usize>()
        .unwrap();
    e.store_batch(&xs, &(0..n).collect::<Vec<_>>()).unwrap();
    // Store vector 7's payload a second time with another vector.
    e.store(&xs[8 * dim..9 * dim], 7).unwrap();
    let v7 = &xs[7 * dim..8 * dim];
    assert!(ids(&e.neighbours(v7).unwrap()).contains(&7));
    // Scanning delete: two copies in each of two hashes.
    assert_eq!(e.delete(&7).unwrap(), 4);
    assert!(!ids(&e.neighbours(v7).unwrap()).contains(&7));
    assert_eq!(e.delete(&7).unwrap(), 0);
    // Targeted delete: only the buckets of the given vector.
    let v9 = &xs[9 * dim..10 * dim];
    assert_eq!(e.delete_near(&9, v9).unwrap(), 2);
    assert!(!ids(&e.neighbours(v9).unwrap()).contains(&9));
    // Cleaning one hash leaves the other's buckets.
    let before = e.candidate_count(v9).unwrap();
    e.clean_buckets("a").unwrap();
    assert!(e.storage().bucket_keys("a").unwrap().is_empty());
    assert!(!e.storage().bucket_keys("b").unwrap().is_empty());
    assert!(e.candidate_count(v9).unwrap() < before);
    assert!(matches!(
        e.clean_buckets("zzz"),
        Err(Error::InvalidParameter(_))
    ));
    e.clean_all_buckets().unwrap();
    assert_eq!(e.candidate_count(v9).unwrap(), 0);
    assert!(e.storage().is_empty());
}

#[test]
fn bad_input_is_a_typed_error() {
    let dim = 4;
    let mut e = Engine::builder(dim)
        .hash(LshHash::random_binary("a", dim, 4, 1).unwrap())
        .build::<u32>()
        .unwrap();
    assert!(matches!(
        e.store(&[1.0; 3], 1),
        Err(Error::DimensionMismatch {
            expected: 4,
            got: 3
        })
    ));
    assert!(matches!(
        e.store(&[1.0, f32::NAN, 0.0, 0.0], 1),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        e.neighbours(&[1.0, 2.0, f32::INFINITY, 0.0]),
        Err(Error::NonFinite { index: 2, .. })
    ));
    assert!(matches!(
        e.candidate_count(&[1.0; 5]),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        e.delete_near(&1, &[1.0; 2]),
        Err(Error::DimensionMismatch { .. })
    ));
    // A batch with one bad row stores nothing.
    let mut batch = vec![1.0f32; 3 * dim];
    batch[2 * dim + 1] = f32::NAN;
    assert!(matches!(
        e.store_batch(&batch, &[1, 2, 3]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        e.store_batch(&batch[..dim], &[1, 2]),
        Err(Error::InvalidParameter(_))
    ));
    assert!(e.storage().is_empty());
    assert!(matches!(
        e.hashes()[0].key(&[0.0; 2]),
        Err(Error::DimensionMismatch { .. })
    ));

    // Bad configurations.
    let bad = |r: swann::Result<LshHash>| assert!(matches!(r, Err(Error::InvalidParameter(_))));
    bad(LshHash::random_binary("a", 4, 0, 1));
    bad(LshHash::random_binary("a", 0, 4, 1));
    bad(LshHash::random_binary("a:b", 4, 4, 1));
    bad(LshHash::random_binary("", 4, 4, 1));
    bad(LshHash::random_binary("a*", 4, 4, 1));
    bad(LshHash::random_discretized("a", 4, 4, 0.0, 1));
    bad(LshHash::random_discretized("a", 4, 4, f32::NAN, 1));
    bad(LshHash::binary_from_matrix("a", 2, vec![1.0, f32::NAN]));
    bad(LshHash::binary_from_matrix("a", 2, vec![1.0, 2.0, 3.0]));
    bad(LshHash::pca_binary("a", 2, 1, &[1.0, 2.0]));
    bad(LshHash::pca_binary(
        "a",
        2,
        3,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0],
    ));
    bad(LshHash::pca_binary("a", 2, 1, &[1.0, 2.0, f32::NAN, 4.0]));
    let h = || LshHash::random_binary("a", 4, 4, 1).unwrap();
    let build_err = |b: swann::index::lsh::EngineBuilder| b.build::<u32>().unwrap_err();
    assert!(matches!(
        build_err(Engine::builder(4).hash(h()).hash(h())),
        Error::InvalidParameter(_)
    ));
    assert!(matches!(
        build_err(Engine::builder(5).hash(h())),
        Error::InvalidParameter(_)
    ));
    assert!(matches!(
        build_err(Engine::builder(0)),
        Error::InvalidParameter(_)
    ));
    assert!(matches!(
        build_err(Engine::builder(4).metric(Metric::Hamming)),
        Error::UnsupportedMetric { .. }
    ));
    assert!(matches!(
        build_err(Engine::builder(4).no_distance()),
        Error::InvalidParameter(_)
    ));
    assert!(matches!(
        build_err(Engine::builder(4).filters([Filter::DistanceThreshold(f32::NAN)])),
        Error::InvalidParameter(_)
    ));
    // A tampered config is rejected when the engine is built.
    let mut cfg = serde_json::to_value(
        Engine::builder(4)
            .hash(h())
            .build::<u32>()
            .unwrap()
            .config(),
    )
    .unwrap();
    cfg["hashes"][0]["name"] = "bad:name".into();
    let cfg: EngineConfig = serde_json::from_value(cfg).unwrap();
    assert!(Engine::<u32>::builder_from_config(cfg)
        .build::<u32>()
        .is_err());
}

#[test]
fn default_engine_is_nearpys() {
    let e = Engine::builder(6).build::<u32>().unwrap();
    assert_eq!(e.hashes().len(), 1);
    assert_eq!(e.hashes()[0].name(), "default");
    assert_eq!(e.hashes()[0].projection_count(), 10);
    assert_eq!(e.hashes()[0].kind_name(), "RandomBinaryProjections");
    assert_eq!(e.filters(), [Filter::Unique, Filter::Nearest(10)]);
}

#[test]
fn memory_storage_contract() {
    use swann::index::lsh::{BucketRef, StoreEntry};
    let mut s = MemoryStorage::<u32>::new();
    let k1 = BucketKey::new("01");
    let k2 = BucketKey::new("11");
    let r = |key| BucketRef { hash: "h", key };
    let g = |key| BucketRef { hash: "g", key };
    let one = [r(&k1)];
    let both = [r(&k1), g(&k2)];
    let other = [r(&k2)];
    s.store_batch(&[
        StoreEntry {
            buckets: &one,
            vector: &[1.0, 2.0],
            data: &1,
        },
        StoreEntry {
            buckets: &both,
            vector: &[3.0, 4.0],
            data: &2,
        },
        StoreEntry {
            buckets: &other,
            vector: &[5.0, 6.0],
            data: &1,
        },
    ])
    .unwrap();
    assert_eq!(s.len(), 4);
    let absent = BucketKey::new("00");
    let got = s.get_buckets(&[r(&k1), r(&absent), g(&k2)], 2).unwrap();
    let entries = |b: &swann::index::lsh::BucketContents<'_, u32>| {
        (0..b.len())
            .map(|i| {
                let row = b.row(i);
                (b.vectors[row * 2..row * 2 + 2].to_vec(), b.data[row])
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(entries(&got[0]), [(vec![1.0, 2.0], 1), (vec![3.0, 4.0], 2)]);
    assert!(got[1].is_empty());
    assert_eq!(entries(&got[2]), [(vec![3.0, 4.0], 2)]);
    assert_eq!(s.count(&[r(&k1), r(&k2), g(&k2)]).unwrap(), 4);
    assert_eq!(s.bucket_keys("h").unwrap(), [k1.clone(), k2.clone()]);
    assert_eq!(
        s.delete("h", None, &1, 2).unwrap(),
        [(k1.clone(), 1), (k2.clone(), 1)]
    );
    // The emptied bucket is gone; the survivor is intact.
    assert_eq!(s.bucket_keys("h").unwrap(), std::slice::from_ref(&k1));
    let got = s.get_buckets(&[r(&k1)], 2).unwrap();
    assert_eq!(entries(&got[0]), [(vec![3.0, 4.0], 2)]);
    s.store(StoreEntry {
        buckets: &one,
        vector: &[7.0, 8.0],
        data: &3,
    })
    .unwrap();
    let got = s.get_buckets(&[r(&k1)], 2).unwrap();
    assert_eq!(entries(&got[0]), [(vec![3.0, 4.0], 2), (vec![7.0, 8.0], 3)]);
    assert!(matches!(
        s.store(StoreEntry {
            buckets: &one,
            vector: &[1.0; 3],
            data: &4,
        }),
        Err(Error::DimensionMismatch { .. })
    ));
    // Removing hash "h" leaves what "g" holds.
    s.clean_buckets("h").unwrap();
    assert_eq!(s.len(), 1);
    s.clean_all_buckets().unwrap();
    assert!(s.is_empty() && s.bucket_keys("g").unwrap().is_empty());
    s.shrink_to_fit();
}

/// The in-memory storage keeps one copy of each vector for all its buckets,
/// finds binary buckets by their bits and others by hashing: whatever the
/// key shapes, every bucket reads back what was stored in it, in order,
/// through deletes (which free rows for reuse) and compaction.
#[test]
fn memory_storage_keys_of_every_shape_and_row_reuse() {
    use swann::index::lsh::{BucketRef, StoreEntry};
    let mut s = MemoryStorage::<u32>::new();
    // One hash gets binary keys of its first length (table), of other
    // lengths and longer than the table allows (hashed), and a
    // discretized key that is all zeros and ones but has separators.
    let shapes = [
        "0110",
        "1111",
        "0000",
        "01",
        "1",
        "01100110011001100110",
        "0_1",
        "3_-1",
    ];
    let keys: Vec<BucketKey> = shapes.iter().map(BucketKey::new).collect();
    let mut expect: Vec<Vec<(Vec<f32>, u32)>> = vec![Vec::new(); keys.len()];
    for i in 0..40u32 {
        let a = (i as usize * 3) % keys.len();
        let b = (i as usize * 5 + 1) % keys.len();
        let refs = [
            BucketRef {
                hash: "h",
                key: &keys[a],
            },
            BucketRef {
                hash: "g",
                key: &keys[b],
            },
        ];
        let v = [i as f32, -(i as f32)];
        s.store(StoreEntry {
            buckets: &refs,
            vector: &v,
            data: &(i % 10),
        })
        .unwrap();
        expect[a].push((v.to_vec(), i % 10));
    }
    let read = |s: &MemoryStorage<u32>, key: &BucketKey| {
        let got = s.get_buckets(&[BucketRef { hash: "h", key }], 2).unwrap();
        let b = &got[0];
        (0..b.len())
            .map(|i| {
                let row = b.row(i);
                (b.vectors[row * 2..row * 2 + 2].to_vec(), b.data[row])
            })
            .collect::<Vec<_>>()
    };
    let check = |s: &MemoryStorage<u32>, expect: &[Vec<(Vec<f32>, u32)>]| {
        for (k, want) in keys.iter().zip(expect) {
            assert_eq!(&read(s, k), want, "bucket {k}");
        }
        let mut nonempty: Vec<BucketKey> = keys
            .iter()
            .zip(expect)
            .filter(|(_, e)| !e.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        nonempty.sort();
        assert_eq!(s.bucket_keys("h").unwrap(), nonempty);
    };
    check(&s, &expect);
    assert_eq!(s.len(), 80);
    // A key of the table's length that was never stored reads empty.
    assert!(read(&s, &BucketKey::new("1010")).is_empty());
    // Delete payload 3 under "h" only: "g" still holds its copies.
    let removed: usize = s
        .delete("h", None, &3, 2)
        .unwrap()
        .iter()
        .map(|r| r.1)
        .sum();
    assert_eq!(removed, 4);
    for e in &mut expect {
        e.retain(|(_, d)| *d != 3);
    }
    check(&s, &expect);
    assert_eq!(s.len(), 76);
    // Delete it under "g" too; its rows are free, and new stores reuse them
    // without disturbing any other bucket.
    s.delete("g", None, &3, 2).unwrap();
    for i in 0..4u32 {
        let key = &keys[i as usize];
        s.store(StoreEntry {
            buckets: &[BucketRef { hash: "h", key }],
            vector: &[100.0 + i as f32, 0.5],
            data: &(100 + i),
        })
        .unwrap();
        expect[i as usize].push((vec![100.0 + i as f32, 0.5], 100 + i));
    }
    check(&s, &expect);
    // Compaction keeps every bucket's contents and order.
    s.delete("h", None, &7, 2).unwrap();
    s.delete("g", None, &7, 2).unwrap();
    for e in &mut expect {
        e.retain(|(_, d)| *d != 7);
    }
    s.shrink_to_fit();
    check(&s, &expect);
    // Dropping hash "g" leaves "h" intact.
    s.clean_buckets("g").unwrap();
    check(&s, &expect);
    assert_eq!(s.len(), expect.iter().map(Vec::len).sum::<usize>());
}

#[test]
fn bucket_keys_compare_as_text_inline_or_not() {
    let short = BucketKey::new("0110");
    let long_text = (0..20)
        .map(|i| (i - 10).to_string())
        .collect::<Vec<_>>()
        .join("_");
    assert!(long_text.len() > 30);
    let long = BucketKey::new(&long_text);
    assert_eq!(long.as_str(), long_text);
    assert_eq!(short.as_str(), "0110");
    let json = serde_json::to_string(&[&short, &long]).unwrap();
    assert_eq!(json, format!("[\"0110\",\"{long_text}\"]"));
    let back: Vec<BucketKey> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, [short.clone(), long.clone()]);
    let mut keys = [
        BucketKey::new("b"),
        long.clone(),
        BucketKey::new("-1"),
        short,
    ];
    keys.sort();
    let mut texts: Vec<String> = keys.iter().map(|k| k.as_str().to_string()).collect();
    let sorted = {
        let mut t = texts.clone();
        t.sort();
        t
    };
    assert_eq!(texts, sorted);
    texts.dedup();
    // A discretized hash with many projections makes long keys that still match.
    let h = LshHash::random_discretized("d", 4, 16, 0.01, 3).unwrap();
    let v = [0.3, -0.7, 0.2, 0.9];
    let k = h.key(&v).unwrap();
    assert!(k.as_str().len() > 30, "{k}");
    assert_eq!(k, BucketKey::new(k.as_str()));
    assert_eq!(h.query_keys(&v).unwrap(), [k]);
}

/// Engines are shared across threads (the Python bindings query one from
/// many threads behind a read lock), so they must stay Send + Sync.
#[test]
fn engines_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine<u64>>();
    send_sync::<Engine<String, MemoryStorage<String>>>();
}

/// A storage whose buckets name arena rows past the arena (or values that
/// disagree with the payload count): the engine must refuse the layout with
/// an error, never index out of bounds.
struct BrokenStorage {
    rows: Vec<u32>,
    values: usize,
}

impl Storage<u32> for BrokenStorage {
    fn store_batch(&mut self, _: &[swann::index::lsh::StoreEntry<'_, u32>]) -> swann::Result<()> {
        Ok(())
    }
    fn get_buckets<'s>(
        &'s self,
        buckets: &[swann::index::lsh::BucketRef<'_>],
        dim: usize,
    ) -> swann::Result<Vec<swann::index::lsh::BucketContents<'s, u32>>> {
        Ok(buckets
            .iter()
            .map(|_| swann::index::lsh::BucketContents {
                vectors: vec![0.5; self.values * dim].into(),
                data: vec![7, 8].into(),
                rows: Some(self.rows.clone().into()),
            })
            .collect())
    }
    fn count(&self, buckets: &[swann::index::lsh::BucketRef<'_>]) -> swann::Result<usize> {
        Ok(buckets.len() * self.rows.len())
    }
    fn bucket_keys(&self, _: &str) -> swann::Result<Vec<BucketKey>> {
        Ok(Vec::new())
    }
    fn delete(
        &mut self,
        _: &str,
        _: Option<&[BucketKey]>,
        _: &u32,
        _: usize,
    ) -> swann::Result<Vec<(BucketKey, usize)>> {
        Ok(Vec::new())
    }
    fn clean_buckets(&mut self, _: &str) -> swann::Result<()> {
        Ok(())
    }
    fn clean_all_buckets(&mut self) -> swann::Result<()> {
        Ok(())
    }
}

#[test]
fn inconsistent_bucket_layouts_are_errors() {
    let engine = |rows: Vec<u32>, values: usize| {
        Engine::builder(2)
            .hashes([LshHash::binary_from_matrix("h", 2, vec![1.0, 1.0]).unwrap()])
            .metric(Metric::Euclidean)
            .filters([Filter::Unique, Filter::Nearest(5)])
            .build_with_storage::<u32, _>(BrokenStorage { rows, values })
            .unwrap()
    };
    // A consistent layout ranks: rows 1 and 0 of a two-row arena, at equal
    // distances, so in fetch order.
    let ok = engine(vec![1, 0], 2).neighbours(&[1.0, 0.0]).unwrap();
    assert_eq!(ok.iter().map(|n| n.data).collect::<Vec<_>>(), vec![8, 7]);
    // Row 2 of a two-row arena.
    let err = engine(vec![0, 2], 2).neighbours(&[1.0, 0.0]).unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    // Three rows of values for two payloads.
    let err = engine(vec![0, 1], 3).neighbours(&[1.0, 0.0]).unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
}

/// The in-memory storage's buckets, each handed out as its own packed copy
/// (as a remote storage decodes them), so the engine ranks them on its
/// general path rather than on the shared-arena one.
struct PackedCopies(MemoryStorage<u32>);

impl Storage<u32> for PackedCopies {
    fn store_batch(
        &mut self,
        entries: &[swann::index::lsh::StoreEntry<'_, u32>],
    ) -> swann::Result<()> {
        self.0.store_batch(entries)
    }
    fn get_buckets<'s>(
        &'s self,
        buckets: &[swann::index::lsh::BucketRef<'_>],
        dim: usize,
    ) -> swann::Result<Vec<swann::index::lsh::BucketContents<'s, u32>>> {
        Ok(self
            .0
            .get_buckets(buckets, dim)?
            .into_iter()
            .map(|b| {
                let (mut vectors, mut data) = (Vec::new(), Vec::new());
                for e in 0..b.len() {
                    let r = b.row(e);
                    vectors.extend_from_slice(&b.vectors[r * dim..(r + 1) * dim]);
                    data.push(b.data[r]);
                }
                swann::index::lsh::BucketContents {
                    vectors: vectors.into(),
                    data: data.into(),
                    rows: None,
                }
            })
            .collect())
    }
    fn count(&self, buckets: &[swann::index::lsh::BucketRef<'_>]) -> swann::Result<usize> {
        self.0.count(buckets)
    }
    fn bucket_keys(&self, hash: &str) -> swann::Result<Vec<BucketKey>> {
        self.0.bucket_keys(hash)
    }
    fn delete(
        &mut self,
        hash: &str,
        keys: Option<&[BucketKey]>,
        data: &u32,
        dim: usize,
    ) -> swann::Result<Vec<(BucketKey, usize)>> {
        self.0.delete(hash, keys, data, dim)
    }
    fn clean_buckets(&mut self, hash: &str) -> swann::Result<()> {
        self.0.clean_buckets(hash)
    }
    fn clean_all_buckets(&mut self) -> swann::Result<()> {
        self.0.clean_all_buckets()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// The shared-arena ranking (deduplication fused with the distances)
    /// returns exactly what the general path returns on packed copies of
    /// the same buckets: same entries, order and distances, for every kind
    /// of filter chain, with payloads repeated across rows and hashes, ties,
    /// and rows freed by deletes and reused. Queries run after each change,
    /// so the arena's screening codes (built by the first query) are
    /// brought up to date through appends, deletes and rewritten rows.
    #[test]
    fn shared_arena_ranking_matches_the_general_path(
        n in 1usize..120,
        hashes in 1usize..4,
        bits in 1usize..4,
        payload_mod in 1u32..200,
        seed in 0u64..1000,
        chain in 0usize..7,
        metric in 0usize..6,
        deletes in 0u32..6,
    ) {
        let dim = 5;
        // Coarse values, so exact ties in distance occur.
        let base: Vec<f32> = data(n, dim, seed).iter().map(|x| (x * 2.0).round()).collect();
        let filters = match chain {
            0 => vec![Filter::Unique, Filter::Nearest(10)],
            1 => vec![Filter::Nearest(7)],
            2 => vec![Filter::Unique, Filter::DistanceThreshold(6.0), Filter::Nearest(5)],
            3 => vec![Filter::Unique],
            4 => vec![],
            5 => vec![Filter::Unique, Filter::Unique, Filter::Nearest(3)],
            _ => vec![Filter::DistanceThreshold(4.0), Filter::Unique],
        };
        let metric = [
            Metric::Euclidean,
            Metric::Cosine,
            Metric::InnerProduct,
            Metric::L2,
            Metric::Dot,
            Metric::Angular,
        ][metric];
        let hs: Vec<LshHash> = (0..hashes)
            .map(|h| LshHash::random_binary(&format!("h{h}"), dim, bits, seed + h as u64).unwrap())
            .collect();
        let builder = || Engine::builder(dim).hashes(hs.clone()).metric(metric).filters(filters.clone());
        // Screened from the first row, and with the default threshold (so
        // never, at this size).
        let mut arena = builder()
            .build_with_storage::<u32, _>(MemoryStorage::new().with_screen_threshold(0))
            .unwrap();
        let mut plain = builder().build::<u32>().unwrap();
        let mut packed = builder().build_with_storage::<u32, _>(PackedCopies(MemoryStorage::new())).unwrap();
        let queries: Vec<Vec<f32>> = data(8, dim, seed + 7)
            .chunks_exact(dim)
            .chain(base.chunks_exact(dim).take(4))
            .map(|q| q.iter().map(|x| (x * 2.0).round()).collect())
            .collect();
        let same = |arena: &Engine<u32>, plain: &Engine<u32>, packed: &Engine<u32, PackedCopies>| {
            for q in &queries {
                let p = packed.neighbours(q).unwrap();
                proptest::prop_assert_eq!(&arena.neighbours(q).unwrap(), &p);
                proptest::prop_assert_eq!(&plain.neighbours(q).unwrap(), &p);
            }
            Ok(())
        };
        let half = n / 2;
        for (i, v) in base.chunks_exact(dim).enumerate() {
            let payload = i as u32 % payload_mod;
            arena.store(v, payload).unwrap();
            plain.store(v, payload).unwrap();
            packed.store(v, payload).unwrap();
            if i + 1 == half {
                same(&arena, &plain, &packed)?;
            }
        }
        same(&arena, &plain, &packed)?;
        for d in 0..deletes {
            arena.delete(&d).unwrap();
            plain.delete(&d).unwrap();
            packed.delete(&d).unwrap();
        }
        same(&arena, &plain, &packed)?;
        // Refill freed rows with other vectors.
        for (i, v) in base.chunks_exact(dim).take(deletes as usize).enumerate() {
            let v: Vec<f32> = v.iter().map(|x| 3.0 - x).collect();
            arena.store(&v, 1000 + i as u32).unwrap();
            plain.store(&v, 1000 + i as u32).unwrap();
            packed.store(&v, 1000 + i as u32).unwrap();
        }
        same(&arena, &plain, &packed)?;
    }
}
