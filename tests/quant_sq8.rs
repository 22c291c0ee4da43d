//! Scalar 8-bit quantization: codes round-trip within half a step, the
//! integer estimates match the decoded vectors up to the query's own
//! quantization, every kernel variant gives the same estimates, and
//! estimates plus an exact rerank of a few candidates find the true
//! neighbours.

mod common;

use common::clustered_scaled as clustered;
use swann::kernels::{Isa, KernelTable};
use swann::quant::{Sq8, Sq8Options};
use swann::{Error, Metric};

fn exact(metric: Metric, q: &[f32], x: &[f32]) -> f32 {
    match metric {
        Metric::L2 => q.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum(),
        _ => 1.0 - q.iter().zip(x).map(|(a, b)| a * b).sum::<f32>(),
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

#[test]
fn codes_round_trip_within_half_a_step() {
    let dim = 24;
    let data = clustered(3000, dim, 3);
    let sq = Sq8::train(&data, dim, Sq8Options::default()).unwrap();
    let mut codes = vec![0u8; dim];
    for row in data.chunks_exact(dim) {
        let norm = sq.encode(row, &mut codes);
        let back = sq.decode(&codes);
        for d in 0..dim {
            let (_, step) = sq.grid(d);
            assert!((back[d] - row[d]).abs() <= step * 0.5 + 1e-5, "dim {d}");
        }
        let want: f32 = back.iter().map(|x| x * x).sum();
        assert!((norm - want).abs() <= 1e-4 * want.max(1.0));
    }
    // Values past a grid code as its ends.
    let far: Vec<f32> = (0..dim)
        .map(|d| if d % 2 == 0 { 1e6 } else { -1e6 })
        .collect();
    sq.encode(&far, &mut codes);
    assert!(codes
        .iter()
        .enumerate()
        .all(|(d, &c)| c == if d % 2 == 0 { 255 } else { 0 }));
}

#[test]
fn clipping_narrows_the_grid_to_the_bulk() {
    let dim = 4;
    let mut data = clustered(2000, dim, 5);
    data[7 * dim] = 1e4; // one outlier in dimension 0
    let full = Sq8::train(&data, dim, Sq8Options::default()).unwrap();
    let clipped = Sq8::train(
        &data,
        dim,
        Sq8Options {
            clip: 0.001,
            ..Sq8Options::default()
        },
    )
    .unwrap();
    assert!(clipped.grid(0).1 * 100.0 < full.grid(0).1);
}

#[test]
fn estimates_match_the_decoded_vectors_up_to_the_query_rounding() {
    let dim = 48;
    let data = clustered(500, dim, 7);
    let sq = Sq8::train(&data, dim, Sq8Options::default()).unwrap();
    let table = swann::kernels::active();
    let queries = clustered(20, dim, 8);
    let (mut sum, mut sum_sq, mut count) = (0.0f64, 0.0f64, 0.0f64);
    for q in queries.chunks_exact(dim) {
        let prepared = sq.prepare(q, Metric::InnerProduct).unwrap();
        for row in data.chunks_exact(dim).take(50) {
            let mut codes = vec![0u8; dim];
            sq.encode(row, &mut codes);
            let decoded = sq.decode(&codes);
            let want: f64 = q
                .iter()
                .zip(&decoded)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let got = sq.estimate_dot(&prepared, table.dot_u8i8(prepared.codes(), &codes));
            // Each weight is rounded to half a query step: at most
            // scale / 2 * 255 per component, and far less on average.
            let (peak, _) = (0..dim).fold((0.0f32, 0), |(m, _), d| {
                (m.max((q[d] * sq.grid(d).1).abs()), 0)
            });
            let bound = f64::from(peak / 127.0) * 0.5 * 255.0 * dim as f64;
            assert!(
                (f64::from(got) - want).abs() <= bound + 1e-3,
                "{got} vs {want}"
            );
            let err = f64::from(got) - want;
            sum += err;
            sum_sq += err * err;
            count += 1.0;
        }
    }
    // Rounding the query's weights is unbiased: over 1,000 estimates the
    // mean error is a small fraction of their spread (a wrong offset or
    // scale would shift it by whole units).
    let (mean, rms) = (sum / count, (sum_sq / count).sqrt());
    assert!(mean.abs() <= 0.2 * rms, "mean error {mean}, rms {rms}");
}

#[test]
fn every_kernel_variant_gives_the_same_estimates() {
    let dim = 100;
    let data = clustered(64, dim, 9);
    let sq = Sq8::train(&data, dim, Sq8Options::default()).unwrap();
    let mut codes = vec![0u8; 64 * dim];
    let mut norms = vec![0.0f32; 64];
    for (i, row) in data.chunks_exact(dim).enumerate() {
        norms[i] = sq.encode(row, &mut codes[i * dim..(i + 1) * dim]);
    }
    let q = sq.prepare(&clustered(1, dim, 10), Metric::L2).unwrap();
    let scalar = KernelTable::for_isa(Isa::Scalar).unwrap();
    let mut want = vec![0.0f32; 64];
    sq.estimate_batch(scalar, &q, &codes, dim, &norms, &mut want);
    for &isa in Isa::available() {
        for t in KernelTable::variants(isa) {
            let mut got = vec![0.0f32; 64];
            sq.estimate_batch(t, &q, &codes, dim, &norms, &mut got);
            assert_eq!(got, want, "{}", t.variant());
        }
    }
}

/// recall@10 of: estimates over every row, then the best `rerank` reranked
/// exactly.
fn recall(metric: Metric, rerank: usize) -> (f64, f64) {
    let (dim, n) = (64, 5000);
    let mut data = clustered(n, dim, 11);
    let mut queries = clustered(100, dim, 12);
    if metric == Metric::Cosine {
        data.chunks_exact_mut(dim).for_each(normalize);
        queries.chunks_exact_mut(dim).for_each(normalize);
    }
    let sq = Sq8::train(&data, dim, Sq8Options::default()).unwrap();
    let mut codes = vec![0u8; n * dim];
    let norms: Vec<f32> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, row)| sq.encode(row, &mut codes[i * dim..(i + 1) * dim]))
        .collect();
    let table = swann::kernels::active();
    let (mut hits_est, mut hits_rr) = (0usize, 0usize);
    for q in queries.chunks_exact(dim) {
        let mut truth: Vec<(f32, usize)> = data
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, x)| (exact(metric, q, x), i))
            .collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: Vec<usize> = truth[..10].iter().map(|t| t.1).collect();

        let prepared = sq.prepare(q, metric).unwrap();
        let mut est = vec![0.0f32; n];
        sq.estimate_batch(table, &prepared, &codes, dim, &norms, &mut est);
        let (e, r) = common::hits_by_estimate_and_rerank(&est, n, &truth, rerank, |i| {
            exact(metric, q, &data[i * dim..(i + 1) * dim])
        });
        hits_est += e;
        hits_rr += r;
    }
    (hits_est as f64 / 1000.0, hits_rr as f64 / 1000.0)
}

#[test]
fn estimates_and_a_small_rerank_find_the_true_neighbours() {
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let (est, rr) = recall(metric, 40);
        eprintln!("{metric}: recall@10 from codes {est:.3}, after reranking 40 {rr:.3}");
        assert!(est >= 0.95, "{metric}: recall@10 from codes alone {est}");
        assert!(rr >= 0.99, "{metric}: recall@10 after reranking 40 {rr}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    assert!(matches!(
        Sq8::train(&[1.0, 2.0, 3.0], 2, Sq8Options::default()),
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        Sq8::train(&[1.0, f32::NAN], 2, Sq8Options::default()),
        Err(Error::NonFinite { index: 1, .. })
    ));
    let bad_clip = Sq8Options {
        clip: 0.5,
        ..Sq8Options::default()
    };
    assert!(Sq8::train(&[1.0, 2.0], 2, bad_clip).is_err());
    let sq = Sq8::train(&[1.0, 2.0, 3.0, 4.0], 2, Sq8Options::default()).unwrap();
    assert!(matches!(
        sq.prepare(&[1.0], Metric::L2),
        Err(Error::DimensionMismatch {
            expected: 2,
            got: 1
        })
    ));
    assert!(matches!(
        sq.prepare(&[1.0, f32::INFINITY], Metric::L2),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        sq.prepare(&[1.0, 1.0], Metric::Hamming),
        Err(Error::UnsupportedMetric { .. })
    ));
}
