//! `swann build forest` and `swann bench forest`: the random-projection forest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use swann::index::forest::{Forest, Hit};
use swann::index::Neighbor;
use swann::io::read_vectors;
use swann::store::OpenOptions;
use swann::{kernels, Metric};

use crate::common::*;
use crate::hnsw::{pack_bits, DataArgs};

/// Options of `swann build forest`.
#[derive(Args, Debug)]
pub struct ForestBuild {
    /// Base vectors (.fvecs, .bvecs, .npy); row i gets id i.
    #[arg(long)]
    pub base: PathBuf,
    /// Metric: euclidean (or l2), manhattan, angular (or cosine), dot (or ip), hamming.
    #[arg(long, default_value = "euclidean")]
    pub metric: Metric,
    /// Number of trees.
    #[arg(long, default_value_t = 50)]
    pub trees: usize,
    /// Build threads (-1 or 0: all cores).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub threads: i64,
    /// Seed of the random splits (same seed and data: same file).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Most items per leaf (default: the room of one vector, as Annoy).
    #[arg(long)]
    pub leaf_size: Option<usize>,
    /// Build straight into the output file (memory-mapped) instead of in memory.
    #[arg(long)]
    pub on_disk: bool,
    /// Output index file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `swann bench forest`.
#[derive(Args, Debug)]
pub struct ForestBench {
    #[command(flatten)]
    pub data: DataArgs,
    /// Numbers of trees to build and sweep (one result each).
    #[arg(long, value_delimiter = ',', default_value = "50")]
    pub trees: Vec<usize>,
    /// search_k values to sweep (default: n_trees * k * 1, 2, 4, ... 512, as ann-compare does for Annoy).
    #[arg(long, value_delimiter = ',')]
    pub search_k: Option<Vec<usize>>,
    /// Build threads (-1 or 0: all cores); queries run on one thread.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub threads: i64,
    /// Seed of the random splits.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Most items per leaf (default: the room of one vector, as Annoy).
    #[arg(long)]
    pub leaf_size: Option<usize>,
    /// Time the searches of a saved forest (memory-mapped, prefaulted)
    /// instead of building one; no result file is written then.
    #[arg(long, conflicts_with = "json")]
    pub index: Option<PathBuf>,
}

/// The forest metric for a command-line metric: the squared and plain forms
/// of a distance rank alike, so l2 runs as euclidean, cosine as angular and
/// ip as dot (Annoy's names for them).
fn forest_metric(m: Metric) -> Metric {
    match m {
        Metric::L2 => Metric::Euclidean,
        Metric::Cosine => Metric::Angular,
        Metric::InnerProduct => Metric::Dot,
        m => m,
    }
}

fn threads_of(t: i64) -> Option<usize> {
    (t > 0).then_some(t as usize)
}

/// Vectors as the forest takes them: rows of floats, or packed bits for Hamming.
enum Rows {
    F32(swann::io::Matrix<f32>),
    Bits { bits: usize, words: Vec<u64> },
}

impl Rows {
    fn new(m: swann::io::Matrix<f32>, metric: Metric) -> Result<Rows> {
        Ok(if metric == Metric::Hamming {
            let (bits, words) = pack_bits(&m)?;
            Rows::Bits { bits, words }
        } else {
            Rows::F32(m)
        })
    }

    fn dim(&self) -> usize {
        match self {
            Rows::F32(m) => m.dim,
            Rows::Bits { bits, .. } => *bits,
        }
    }

    fn len(&self) -> usize {
        match self {
            Rows::F32(m) => m.rows(),
            Rows::Bits { bits, words } => words.len() / bits.div_ceil(64),
        }
    }
}

/// Adds every row and builds: what `build.seconds` times.
fn make_forest(
    rows: &Rows,
    metric: Metric,
    trees: usize,
    threads: Option<usize>,
    seed: u64,
    leaf_size: Option<usize>,
    on_disk: Option<&Path>,
) -> Result<Forest> {
    let mut f = Forest::new(rows.dim(), metric)?;
    f.set_seed(seed);
    if let Some(l) = leaf_size {
        f.set_leaf_size(l)?;
    }
    if let Some(p) = on_disk {
        f.on_disk_build(p)?;
    }
    f.reserve(rows.len())?;
    match rows {
        Rows::F32(m) => {
            for (i, r) in m.iter_rows().enumerate() {
                f.add_item(i as u32, r)?;
            }
        }
        Rows::Bits { bits, words } => {
            for (i, r) in words.chunks_exact(bits.div_ceil(64)).enumerate() {
                f.add_item_bits(i as u32, r)?;
            }
        }
    }
    f.build(trees, threads)?;
    Ok(f)
}

pub fn build_forest(args: ForestBuild) -> Result<()> {
    let metric = forest_metric(args.metric);
    let m = read_vectors(&args.base).with_context(|| format!("reading {}", args.base.display()))?;
    let rows = Rows::new(m, metric)?;
    let threads = threads_of(args.threads);
    let started = Instant::now();
    let on_disk = args.on_disk.then_some(args.out.as_path());
    let f = make_forest(
        &rows,
        metric,
        args.trees,
        threads,
        args.seed,
        args.leaf_size,
        on_disk,
    )?;
    let secs = started.elapsed().as_secs_f64();
    f.save(&args.out)?;
    eprintln!(
        "forest: {} items, dim {}, {metric}, {} trees built in {secs:.2} s ({} threads, kernels {}); wrote {} ({:.1} MiB)",
        f.n_items(),
        f.dim(),
        f.n_trees(),
        threads.map_or("all".into(), |t| t.to_string()),
        kernels::active().isa(),
        args.out.display(),
        f.image_bytes() as f64 / 1048576.0
    );
    Ok(())
}

pub fn bench_forest(args: ForestBench) -> Result<()> {
    let d = &args.data;
    let metric = forest_metric(d.metric);
    let data = Dataset::load(&d.base, &d.queries, d.groundtruth.as_deref(), d.metric, d.k)?;
    let rows = Rows::new(data.base.clone(), metric)?;
    let queries = Rows::new(data.queries.clone(), metric)?;
    let threads = threads_of(args.threads);
    let n_threads = threads.unwrap_or_else(rayon::current_num_threads);
    if args.trees.is_empty() || args.trees.contains(&0) {
        bail!("--trees needs positive values");
    }
    for &trees in &args.trees {
        eprintln!(
            "forest: {} x {} base, {} queries, {metric} (asked {}), {trees} trees, {n_threads} build threads, kernels {}",
            rows.len(),
            rows.dim(),
            queries.len(),
            d.metric,
            kernels::active().isa()
        );
        let started = Instant::now();
        let (f, peak) = match &args.index {
            Some(p) => {
                let opts = OpenOptions {
                    populate: true,
                    ..OpenOptions::default()
                };
                (Forest::open_mmap(p, opts)?, None)
            }
            None => with_peak_rss(|| {
                make_forest(
                    &rows,
                    metric,
                    trees,
                    threads,
                    args.seed,
                    args.leaf_size,
                    None,
                )
            })?,
        };
        let secs = started.elapsed().as_secs_f64();
        let tmp = std::env::temp_dir().join(format!("swann-forest-{}.swf", std::process::id()));
        f.save(&tmp)?;
        let index_bytes = std::fs::metadata(&tmp)?.len();
        std::fs::remove_file(&tmp)?;
        eprintln!(
            "built in {secs:.2} s, index {:.1} MiB",
            index_bytes as f64 / 1048576.0
        );
        let knobs = args
            .search_k
            .clone()
            .unwrap_or_else(|| (0..10).map(|e| trees * d.k * (1 << e)).collect());
        let nq = queries.len();
        let mut runs = Vec::new();
        let mut above = 0;
        let mut buf: Vec<Hit> = Vec::with_capacity(d.k);
        for &sk in &knobs {
            let (results, qps) = time_queries(nq, d.reps, |i| {
                match &queries {
                    Rows::F32(m) => f.nns_by_vector_into(m.row(i), d.k, Some(sk), &mut buf)?,
                    Rows::Bits { bits, words } => {
                        let w = bits.div_ceil(64);
                        buf = f.nns_by_bits(&words[i * w..(i + 1) * w], d.k, Some(sk))?;
                    }
                }
                Ok(buf
                    .iter()
                    .map(|h| Neighbor {
                        label: h.id as u64,
                        distance: h.distance,
                    })
                    .collect())
            })?;
            let r = recall(&results, &data.groundtruth, d.k);
            eprintln!("search_k {sk:>7}: recall {r:.4}, {qps:.0} qps");
            runs.push(Run {
                knob: "search_k",
                value: sk as f64,
                recall: r,
                qps,
                threads: 1,
                mean_latency_us: 1e6 / qps,
            });
            if r >= 0.999 {
                above += 1;
                if above >= 3 {
                    break;
                }
            }
        }
        print_runs("search_k", &runs);
        println!(
            "build {secs:.2} s on {n_threads} threads, peak RSS growth {}, index {:.1} MiB",
            peak.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            index_bytes as f64 / 1048576.0
        );
        if let Some(path) = &d.json {
            let path = if args.trees.len() == 1 {
                path.clone()
            } else {
                // One file per forest size: OUT-t50.json, OUT-t100.json, ...
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let ext = path
                    .extension()
                    .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()));
                path.with_file_name(format!("{stem}-t{trees}{ext}"))
            };
            BenchResult {
                library: "swann",
                version: env!("CARGO_PKG_VERSION"),
                index: "forest",
                dataset: DatasetInfo::of(&data),
                metric: d.metric.name().to_string(),
                k: d.k,
                params: serde_json::json!({"n_trees": trees}),
                build: BuildInfo {
                    threads: n_threads,
                    seconds: secs,
                    peak_rss_bytes: peak,
                    index_bytes: Some(index_bytes),
                },
                runs,
                isa: kernels::active().isa().to_string(),
            }
            .write(&path)?;
        }
    }
    Ok(())
}
