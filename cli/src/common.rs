//! Pieces every `swann` subcommand shares: data loading, exact ground truth,
//! recall, timing, memory measurement and the result file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use swann::index::flat::FlatIndex;
use swann::index::Neighbor;
use swann::io::{read_groundtruth, read_vectors, Matrix};
use swann::Metric;

/// Base vectors, queries and (possibly computed) ground truth.
pub struct Dataset {
    pub base_path: PathBuf,
    pub queries_path: PathBuf,
    pub groundtruth_path: Option<PathBuf>,
    pub base: Matrix<f32>,
    pub queries: Matrix<f32>,
    /// Ids of the true nearest neighbours, at least `k` per query.
    pub groundtruth: Vec<Vec<u32>>,
}

impl Dataset {
    /// Loads the files; computes exact ground truth with the flat index when
    /// `groundtruth` is `None` (or when it is computed for another metric).
    pub fn load(
        base: &Path,
        queries: &Path,
        groundtruth: Option<&Path>,
        metric: Metric,
        k: usize,
    ) -> Result<Dataset> {
        let base_m = read_vectors(base).with_context(|| format!("reading {}", base.display()))?;
        let queries_m =
            read_vectors(queries).with_context(|| format!("reading {}", queries.display()))?;
        if base_m.rows() == 0 || queries_m.rows() == 0 {
            bail!("base and query files must hold at least one vector");
        }
        if base_m.dim != queries_m.dim {
            bail!(
                "base vectors have dimension {}, queries {}",
                base_m.dim,
                queries_m.dim
            );
        }
        let gt = match groundtruth {
            Some(p) => {
                let g = read_groundtruth(p).with_context(|| format!("reading {}", p.display()))?;
                if g.rows() != queries_m.rows() {
                    bail!(
                        "ground truth has {} rows for {} queries",
                        g.rows(),
                        queries_m.rows()
                    );
                }
                if g.dim < k {
                    bail!(
                        "ground truth holds {} neighbours per query, k is {k}",
                        g.dim
                    );
                }
                g.iter_rows()
                    .map(|r| r.iter().map(|&x| x as u32).collect())
                    .collect()
            }
            None => exact_groundtruth(&base_m, &queries_m, metric, k)?,
        };
        Ok(Dataset {
            base_path: base.to_path_buf(),
            queries_path: queries.to_path_buf(),
            groundtruth_path: groundtruth.map(Path::to_path_buf),
            base: base_m,
            queries: queries_m,
            groundtruth: gt,
        })
    }
}

/// Exact k nearest ids by brute force (the flat index, all cores).
pub fn exact_groundtruth(
    base: &Matrix<f32>,
    queries: &Matrix<f32>,
    metric: Metric,
    k: usize,
) -> Result<Vec<Vec<u32>>> {
    let metric = match metric {
        // Hamming data is ranked by the flat index on the unpacked bits (L2 on
        // 0/1 values counts differing bits).
        Metric::Hamming => Metric::L2,
        m => m,
    };
    eprintln!("computing exact ground truth ({metric}, k={k})...");
    let mut flat = FlatIndex::new(base.dim, metric)?;
    flat.add_rows(0, &base.data)?;
    let res = flat.search_batch(&queries.data, k)?;
    Ok(res
        .into_iter()
        .map(|r| r.into_iter().map(|n| n.label as u32).collect())
        .collect())
}

/// Mean recall@k of `results` against `gt`.
pub fn recall(results: &[Vec<Neighbor>], gt: &[Vec<u32>], k: usize) -> f64 {
    let mut hits = 0usize;
    for (r, g) in results.iter().zip(gt) {
        let truth = &g[..k.min(g.len())];
        hits += r
            .iter()
            .take(k)
            .filter(|n| truth.contains(&(n.label as u32)))
            .count();
    }
    hits as f64 / (k * results.len()) as f64
}

/// Runs `search` over every query, one call per query on this thread:
/// 50 warm-up queries, then `reps` timed passes (each repeating the query set
/// until it lasts at least 0.1 s); returns the results of the last pass and
/// queries per second from the median pass.
pub fn time_queries<F>(nq: usize, reps: usize, mut search: F) -> Result<(Vec<Vec<Neighbor>>, f64)>
where
    F: FnMut(usize) -> Result<Vec<Neighbor>>,
{
    for i in 0..50.min(nq) {
        std::hint::black_box(search(i)?);
    }
    let mut results = Vec::with_capacity(nq);
    let mut per_query = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        let mut done = 0usize;
        loop {
            results.clear();
            for i in 0..nq {
                results.push(search(i)?);
            }
            done += nq;
            if start.elapsed() >= Duration::from_millis(100) {
                break;
            }
        }
        per_query.push(start.elapsed().as_secs_f64() / done as f64);
    }
    per_query.sort_by(f64::total_cmp);
    let median = per_query[per_query.len() / 2];
    Ok((results, 1.0 / median))
}

/// Resident-set figures of this process from `/proc/self/status`, in bytes.
pub fn rss_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Measures the peak RSS growth of `f`: resets the high-water mark
/// (`/proc/self/clear_refs` = 5), runs `f`, returns `VmHWM - VmRSS(before)`.
pub fn with_peak_rss<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Option<u64>)> {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = rss_bytes("VmRSS:");
    let out = f()?;
    let peak = match (reset, before, rss_bytes("VmHWM:")) {
        (true, Some(b), Some(h)) => Some(h.saturating_sub(b)),
        _ => None,
    };
    Ok((out, peak))
}

/// A spinner/progress bar that only appears when the job takes over a second.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::hidden();
    pb.set_length(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    pb.set_message(what.to_string());
    pb
}

/// Shows `pb` once `started` is more than a second ago.
pub fn reveal_after_a_second(pb: &ProgressBar, started: Instant) {
    if pb.is_hidden() && started.elapsed() > Duration::from_secs(1) {
        pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
}

/// The result file schema shared with `ann-compare`.
#[derive(Serialize)]
pub struct BenchResult {
    pub library: &'static str,
    pub version: &'static str,
    pub index: &'static str,
    pub dataset: DatasetInfo,
    pub metric: String,
    pub k: usize,
    pub params: serde_json::Value,
    pub build: BuildInfo,
    pub runs: Vec<Run>,
    pub isa: String,
}

#[derive(Serialize)]
pub struct DatasetInfo {
    pub base: String,
    pub queries: String,
    pub groundtruth: Option<String>,
    pub n_base: usize,
    pub n_queries: usize,
    pub dim: usize,
}

impl DatasetInfo {
    pub fn of(d: &Dataset) -> Self {
        let abs = |p: &Path| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        DatasetInfo {
            base: abs(&d.base_path),
            queries: abs(&d.queries_path),
            groundtruth: d.groundtruth_path.as_deref().map(abs),
            n_base: d.base.rows(),
            n_queries: d.queries.rows(),
            dim: d.base.dim,
        }
    }
}

#[derive(Serialize)]
pub struct BuildInfo {
    pub threads: usize,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub index_bytes: Option<u64>,
}

#[derive(Serialize, Clone)]
pub struct Run {
    pub knob: &'static str,
    pub value: f64,
    pub recall: f64,
    pub qps: f64,
    pub threads: usize,
    pub mean_latency_us: f64,
}

impl BenchResult {
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok(())
    }
}

/// Prints the sweep table.
pub fn print_runs(knob: &str, runs: &[Run]) {
    let threads = runs.first().map_or(1, |r| r.threads);
    println!(
        "{:>10} {:>10} {:>12} {:>14}",
        knob,
        "recall",
        format!("qps({threads} thr)"),
        "latency(us)"
    );
    for r in runs {
        println!(
            "{:>10} {:>10.4} {:>12.0} {:>14.1}",
            r.value, r.recall, r.qps, r.mean_latency_us
        );
    }
}

/// Runs `f` on a rayon pool of `threads` threads (0 = all cores).
pub fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("building the thread pool")?;
    Ok(pool.install(f))
}
