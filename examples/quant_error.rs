//! How far the quantizers' distance estimates are from the truth on real
//! data, and what that costs in recall.
//!
//! ```text
//! cargo run --release --example quant_error [-- DATA_DIR]
//! ```
//!
//! Reads `sift-real_base.bvecs`, `sift-real_query.bvecs` and
//! `sift-real_groundtruth.ivecs` (200,000 real SIFT descriptors, 1,000
//! held-out queries, their exact top 100 by squared L2) from `DATA_DIR`,
//! by default `../shared/data` beside the crate; without them it says so
//! and exits successfully. For [`Pq4`] with two and four components per
//! 4-bit code, for [`Sq8`] and for [`RaBitQ`] (1 bit per dimension; the
//! bytes per vector count its 12 bytes of factors), it trains on a sample of the base, codes
//! every base vector and, for every query, estimates the squared L2
//! distance to all 200,000 codes, then prints:
//!
//! - the mean relative error `|estimate - exact| / exact` of the squared L2
//!   estimate over each query's true top 100 (1,000 x 100 pairs), and over
//!   as many rows spread evenly over the base, for scale (near neighbours
//!   are much nearer than most rows, so the same absolute error is a
//!   larger share of their distance);
//! - recall@10 of ranking by estimate alone, and after reranking the best
//!   100 or 200 estimates with exact distances;
//! - bytes per coded vector, training time, and the estimate pass's CPU
//!   time per query (table preparation and all 200,000 estimates).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use swann::io::{read_bvecs, read_ivecs, Matrix};
use swann::kernels;
use swann::quant::{Pq4, Pq4Options, RaBitQ, RaBitQEstimate, RaBitQOptions, Sq8, Sq8Options};
use swann::Metric;

/// What one quantizer scored over every query.
struct Row {
    name: String,
    bytes: usize,
    train: Duration,
    per_query: Duration,
    rel_err: f64,
    rel_err_random: f64,
    recall_est: f64,
    recall_rr100: f64,
    recall_rr200: f64,
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The ids of the `k` smallest of `est` (the first `n`), smallest first.
fn best(est: &[f32], n: usize, k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..n as u32).collect();
    let by = |a: &u32, b: &u32| est[*a as usize].total_cmp(&est[*b as usize]);
    ids.select_nth_unstable_by(k - 1, by);
    ids.truncate(k);
    ids.sort_unstable_by(by);
    ids
}

/// Per-query scores summed over queries.
#[derive(Default)]
struct Sums {
    cpu: Duration,
    rel_err: f64,
    pairs: usize,
    rel_err_random: f64,
    random_pairs: usize,
    hits_est: usize,
    hits_rr100: usize,
    hits_rr200: usize,
}

impl Sums {
    fn add(mut self, o: Sums) -> Sums {
        self.cpu += o.cpu;
        self.rel_err += o.rel_err;
        self.pairs += o.pairs;
        self.rel_err_random += o.rel_err_random;
        self.random_pairs += o.random_pairs;
        self.hits_est += o.hits_est;
        self.hits_rr100 += o.hits_rr100;
        self.hits_rr200 += o.hits_rr200;
        self
    }
}

/// Scores a quantizer given as `estimate(query index, out)`, which fills
/// `out` (at least `n` long) with estimates and returns how long that took.
fn score(
    base: &Matrix<f32>,
    queries: &Matrix<f32>,
    truth: &Matrix<i32>,
    out_len: usize,
    estimate: impl Fn(usize, &mut [f32]) -> Duration + Sync,
) -> Sums {
    let n = base.rows();
    (0..queries.rows())
        .into_par_iter()
        .map_init(
            || vec![0.0f32; out_len],
            |est, qi| {
                let q = queries.row(qi);
                let cpu = estimate(qi, est);
                let gt = truth.row(qi);
                let mut s = Sums {
                    cpu,
                    ..Sums::default()
                };
                for &id in gt {
                    let exact = l2(q, base.row(id as usize));
                    if exact > 0.0 {
                        s.rel_err += f64::from((est[id as usize] - exact).abs() / exact);
                        s.pairs += 1;
                    }
                }
                // As many rows spread over the base, for scale.
                for k in 0..gt.len() {
                    let id = (qi * 7919 + k * 1999) % n;
                    let exact = l2(q, base.row(id));
                    if exact > 0.0 {
                        s.rel_err_random += f64::from((est[id] - exact).abs() / exact);
                        s.random_pairs += 1;
                    }
                }
                let top10 = &gt[..10];
                let hits =
                    |ids: &[u32]| ids.iter().filter(|&&i| top10.contains(&(i as i32))).count();
                let candidates = best(est, n, 200);
                s.hits_est += hits(&candidates[..10]);
                for (rerank, hits_rr) in [(100, &mut s.hits_rr100), (200, &mut s.hits_rr200)] {
                    let mut exact: Vec<(f32, u32)> = candidates[..rerank]
                        .iter()
                        .map(|&i| (l2(q, base.row(i as usize)), i))
                        .collect();
                    exact.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                    let ids: Vec<u32> = exact[..10].iter().map(|e| e.1).collect();
                    *hits_rr += hits(&ids);
                }
                s
            },
        )
        .reduce(Sums::default, Sums::add)
}

fn row(name: String, bytes: usize, train: Duration, s: Sums, queries: usize) -> Row {
    let total = (queries * 10) as f64;
    Row {
        name,
        bytes,
        train,
        per_query: s.cpu / queries as u32,
        rel_err: s.rel_err / s.pairs as f64,
        rel_err_random: s.rel_err_random / s.random_pairs as f64,
        recall_est: s.hits_est as f64 / total,
        recall_rr100: s.hits_rr100 as f64 / total,
        recall_rr200: s.hits_rr200 as f64 / total,
    }
}

fn pq4(base: &Matrix<f32>, queries: &Matrix<f32>, truth: &Matrix<i32>, sd: usize) -> Row {
    let dim = base.dim;
    let start = Instant::now();
    let opts = Pq4Options {
        subspace_dims: sd,
        ..Pq4Options::default()
    };
    let pq = Pq4::train(&base.data, dim, opts).expect("train");
    let train = start.elapsed();
    let mut blocks = Vec::new();
    pq.encode_blocks(&base.data, &mut blocks).expect("encode");
    let table = kernels::active();
    let out_len = base.rows().div_ceil(32) * 32;
    let s = score(base, queries, truth, out_len, |qi, est| {
        let t = Instant::now();
        let lut = pq.lut(queries.row(qi), Metric::L2).expect("query");
        lut.scan(table, &blocks, est);
        t.elapsed()
    });
    let name = format!("pq4, {sd} dims per code");
    row(name, pq.subspaces().div_ceil(2), train, s, queries.rows())
}

fn sq8(base: &Matrix<f32>, queries: &Matrix<f32>, truth: &Matrix<i32>) -> Row {
    let dim = base.dim;
    let start = Instant::now();
    let sq = Sq8::train(&base.data, dim, Sq8Options::default()).expect("train");
    let train = start.elapsed();
    let mut codes = vec![0u8; base.data.len()];
    let norms: Vec<f32> = codes
        .par_chunks_mut(dim)
        .zip(base.data.par_chunks(dim))
        .map(|(c, v)| sq.encode(v, c))
        .collect();
    let table = kernels::active();
    let s = score(base, queries, truth, base.rows(), |qi, est| {
        let t = Instant::now();
        let q = sq.prepare(queries.row(qi), Metric::L2).expect("query");
        sq.estimate_batch(table, &q, &codes, dim, &norms, est);
        t.elapsed()
    });
    row("sq8".into(), dim, train, s, queries.rows())
}

fn rabitq(base: &Matrix<f32>, queries: &Matrix<f32>, truth: &Matrix<i32>) -> Row {
    thread_local! {
        // Each thread's estimates with their bounds, kept between queries.
        static OUT: RefCell<Vec<RaBitQEstimate>> = const { RefCell::new(Vec::new()) };
    }
    let dim = base.dim;
    let start = Instant::now();
    let rq = RaBitQ::train(&base.data, dim, RaBitQOptions::default()).expect("train");
    let train = start.elapsed();
    let codes = rq.encode_batch(&base.data).expect("encode");
    let table = kernels::active();
    let s = score(base, queries, truth, base.rows(), |qi, est| {
        let t = Instant::now();
        let q = rq.query(queries.row(qi), Metric::L2).expect("query");
        OUT.with_borrow_mut(|out| {
            out.resize(codes.len(), RaBitQEstimate::default());
            q.estimate_batch(table, &codes, out);
            for (e, o) in est.iter_mut().zip(out.iter()) {
                *e = o.distance;
            }
        });
        t.elapsed()
    });
    // The code, then |o - c| and <x_bar, u> (f32) and the popcount (u32).
    let bytes = rq.words() * 8 + 12;
    row(
        "rabitq, 1 bit per dim".into(),
        bytes,
        train,
        s,
        queries.rows(),
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() -> swann::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let files = [
        "sift-real_base.bvecs",
        "sift-real_query.bvecs",
        "sift-real_groundtruth.ivecs",
    ]
    .map(|f| dir.join(f));
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        println!(
            "{} is not there: this example measures the quantizers on the sift-real \
             files (base, queries, ground truth); pass their folder as the first argument.",
            missing.display()
        );
        return Ok(());
    }
    let base = read_bvecs(&files[0])?;
    let queries = read_bvecs(&files[1])?;
    let truth = read_ivecs(&files[2])?;
    assert_eq!(
        base.dim, queries.dim,
        "base and queries differ in dimension"
    );
    assert_eq!(
        truth.rows(),
        queries.rows(),
        "one ground-truth row per query"
    );
    assert!(
        truth.dim >= 10,
        "the ground truth holds the top 10 at least"
    );

    println!(
        "sift-real: {} base vectors x {}, {} queries, true top {} (squared L2)",
        base.rows(),
        base.dim,
        queries.rows(),
        truth.dim
    );
    println!(
        "CPU: {}, {} threads; kernels: {}",
        cpu_model(),
        rayon::current_num_threads(),
        kernels::active().variant()
    );
    println!(
        "training sample: {} rows (Pq4: k-means, {} Lloyd iterations; Sq8: min/max grids; \
         RaBitQ: the centroid of {} rows and a random rotation)",
        Pq4Options::default().sample,
        Pq4Options::default().iterations,
        RaBitQOptions::default().sample
    );
    println!();

    let rows = [
        pq4(&base, &queries, &truth, 2),
        pq4(&base, &queries, &truth, 4),
        sq8(&base, &queries, &truth),
        rabitq(&base, &queries, &truth),
    ];
    println!(
        "{:<22} {:>9} {:>8} {:>9} {:>12} {:>12} {:>9} {:>11} {:>11}",
        "quantizer",
        "bytes/vec",
        "train s",
        "ms/query",
        "rel.err top",
        "rel.err rand",
        "R@10 est",
        "R@10 rr100",
        "R@10 rr200"
    );
    for r in &rows {
        println!(
            "{:<22} {:>9} {:>8.2} {:>9.2} {:>12.4} {:>12.4} {:>9.3} {:>11.3} {:>11.3}",
            r.name,
            r.bytes,
            r.train.as_secs_f64(),
            r.per_query.as_secs_f64() * 1e3,
            r.rel_err,
            r.rel_err_random,
            r.recall_est,
            r.recall_rr100,
            r.recall_rr200
        );
    }
    println!();
    println!(
        "rel.err top: mean |estimate - exact| / exact of the squared L2 distance over every \
         query's true top {} (rand: as many rows spread over the base); R@10 est: recall@10 ranking all {} rows by estimate; rr100 / \
         rr200: after reranking the best 100 / 200 estimates exactly; ms/query: CPU time of \
         the query's table and all its estimates (one thread).",
        truth.dim,
        base.rows()
    );
    Ok(())
}
