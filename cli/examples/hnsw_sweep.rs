//! Sweeps `ef` over a saved HNSW index, one query at a time on one thread,
//! and prints recall@k and queries per second: the search half of
//! `swann bench hnsw` without paying for a build on every run.
//!
//! ```text
//! cargo run --release --example hnsw_sweep -- INDEX QUERIES GT [EF,EF,...] [REPS]
//! ```
//!
//! `INDEX` is a file written by `swann build hnsw` or `Hnsw::save`; it is
//! loaded into memory (huge pages where the kernel gives them). Time is the
//! thread's CPU time where Linux reports it (a shared machine's waits for a
//! core are left out), wall time elsewhere. Each ef is
//! timed `REPS` times (default 5) in rounds, every round visiting every ef, so
//! a burst of load on a shared machine hits all of them alike; the best and
//! the median round are printed. Two builds of the crate can be compared by
//! running their copies of this example alternately on the same file.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use swann::index::hnsw::Hnsw;
use swann::io::{read_groundtruth, read_vectors};

const K: usize = 10;
const PASSES: usize = 5;

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), so time
/// spent waiting for a core on a shared machine is not counted; falls back
/// to wall time elsewhere.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        bail!("usage: hnsw_sweep INDEX QUERIES GT [EF,EF,...] [REPS]");
    }
    let index = Hnsw::load(&args[0]).with_context(|| format!("loading {}", args[0]))?;
    let queries = read_vectors(&args[1])?;
    let gt = read_groundtruth(&args[2])?;
    if gt.rows() < queries.rows() || gt.dim < K {
        bail!("ground truth has {} rows of {}", gt.rows(), gt.dim);
    }
    let efs: Vec<usize> = match args.get(3) {
        Some(s) => s
            .split(',')
            .map(|x| x.parse().context("ef list"))
            .collect::<Result<_>>()?,
        None => vec![16, 32, 64, 128],
    };
    let reps: usize = match args.get(4) {
        Some(s) => s.parse().context("reps")?,
        None => 5,
    };
    // SWEEP_THREADS=n: time `search_batch` of all queries on n threads
    // (wall time) instead of one query at a time.
    let threads: Option<usize> = std::env::var("SWEEP_THREADS")
        .ok()
        .map(|v| v.parse().context("SWEEP_THREADS"))
        .transpose()?;
    if let Some(n) = threads {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build()?;
        println!("ef\trecall@{K}\tqps_best\tqps_median ({n} threads, batch)");
        for &ef in &efs {
            let mut qps = Vec::new();
            let mut rec = 0.0;
            for _ in 0..reps {
                let t = Instant::now();
                let mut hits = 0usize;
                for _ in 0..PASSES {
                    let res = pool.install(|| index.search_batch(&queries.data, K, ef))?;
                    hits = res
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let truth = &gt.row(i)[..K];
                            r.iter()
                                .filter(|n| truth.contains(&(n.label as i32)))
                                .count()
                        })
                        .sum();
                }
                qps.push((queries.rows() * PASSES) as f64 / t.elapsed().as_secs_f64());
                rec = hits as f64 / (K * queries.rows()) as f64;
            }
            qps.sort_by(|a, b| b.total_cmp(a));
            println!("{ef}\t{rec:.4}\t{:.0}\t{:.0}", qps[0], qps[qps.len() / 2]);
        }
        return Ok(());
    }
    let mut secs = vec![Vec::with_capacity(reps); efs.len()];
    let mut recall = vec![0.0; efs.len()];
    for _ in 0..reps {
        for (j, &ef) in efs.iter().enumerate() {
            let t = Instant::now();
            let c0 = cpu_ns();
            let mut hits = 0usize;
            // Several passes per timing: CPU time is counted in scheduler ticks.
            for _ in 0..PASSES {
                hits = 0;
                for (i, q) in queries.iter_rows().enumerate() {
                    let res = index.search(q, K, ef)?;
                    let truth = &gt.row(i)[..K];
                    hits += res
                        .iter()
                        .filter(|n| truth.contains(&(n.label as i32)))
                        .count();
                }
            }
            let wall = t.elapsed().as_secs_f64();
            secs[j].push(match (c0, cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 * 1e-9,
                _ => wall,
            });
            recall[j] = hits as f64 / (K * queries.rows()) as f64;
        }
    }
    println!("ef\trecall@{K}\tqps_best\tqps_median");
    for (j, &ef) in efs.iter().enumerate() {
        let mut s = secs[j].clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = (queries.rows() * PASSES) as f64;
        println!(
            "{ef}\t{:.4}\t{:.0}\t{:.0}",
            recall[j],
            n / s[0],
            n / s[s.len() / 2]
        );
    }
    Ok(())
}
