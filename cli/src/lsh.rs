//! `swann lsh ...`: the LSH engine (NearPy's method) from the command line.
//!
//! `swann lsh experiment` runs NearPy's recall/precision and distance-ratio
//! experiments over a vector file for one or more engine configurations and
//! prints one table line per configuration (and CSV / JSON on request).
//!
//! A configuration is `KIND[:key=value,...]`:
//!
//! | kind | keys (defaults) |
//! |---|---|
//! | `rbp` random binary projections | `bits` (10), `hashes` (1), `seed` (0), `rng` (`swann`) |
//! | `rdp` random discretized projections | `projections` (4), `bin_width` (1.0), `hashes`, `seed`, `rng` |
//! | `tree` random binary projection tree | `bits` (10), `min` (minimum result size, 10), `hashes`, `seed`, `rng` |
//! | `pcab` PCA binary projections | `bits` (10), `train` (training sample size, 10000) |
//! | `pcad` PCA discretized projections | `projections` (4), `bin_width` (1.0), `train` |
//!
//! With `hashes=H` the engine gets H hashes seeded `seed`, `seed+1`, ...;
//! `rng=numpy` draws their directions as NearPy does (NumPy's
//! `RandomState(seed).randn`), so NearPy's `rand_seed=seed` gives the same
//! buckets. The filter chain is NearPy's default, unique then nearest `k`.

use std::path::PathBuf;

use crate::lsh_experiment::{Experiment, ExperimentResult, QuerySet, StoreMode};
use clap::{Args, Subcommand, ValueEnum};
use swann::index::lsh::{Engine, Filter, LshHash, Storage};
use swann::{Error, Metric, Result};

/// `swann lsh`: locality-sensitive hashing (NearPy's engine).
#[derive(Args, Debug)]
pub struct LshArgs {
    #[command(subcommand)]
    command: LshCommand,
}

#[derive(Subcommand, Debug)]
enum LshCommand {
    /// Recall, precision, distance ratio and speed of engine configurations
    /// against exact search (NearPy's experiments).
    Experiment(ExperimentArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StorageKind {
    /// In process memory.
    Memory,
    /// A Redis server (`--redis-url`; needs the `redis` cargo feature).
    Redis,
}

#[derive(Args, Debug)]
struct ExperimentArgs {
    /// Base vectors (.fvecs, .bvecs or .npy).
    #[arg(long)]
    base: PathBuf,
    /// Use only the first N base vectors.
    #[arg(long)]
    limit: Option<usize>,
    /// Query vectors; without it, `--query-count` base vectors at even
    /// spacing are the queries (NearPy's coverage ratio), each leaving itself out.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Use only the first N query vectors (with `--queries`), or pick N base
    /// vectors as queries (without).
    #[arg(long, default_value_t = 100)]
    query_count: usize,
    /// Engine configuration, e.g. `rbp:bits=10,hashes=3,seed=1`; repeat for
    /// several. Kinds: `rbp` (bits, hashes, seed, rng), `rdp` (projections,
    /// bin_width, hashes, seed, rng), `tree` (bits, min, hashes, seed, rng),
    /// `pcab` (bits, train), `pcad` (projections, bin_width, train). Hash `i`
    /// gets seed `seed + i`; `rng=numpy` draws the directions as NearPy does
    /// (NumPy's `RandomState(seed + i).randn`), to reproduce its buckets.
    #[arg(long = "config", required = true)]
    configs: Vec<String>,
    /// Number of neighbours (exact and returned).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Metric for exact search and for ranking candidates.
    #[arg(long, default_value = "l2")]
    metric: String,
    /// Where the buckets live.
    #[arg(long, value_enum, default_value = "memory")]
    storage: StorageKind,
    /// Redis server for `--storage redis` (default: `$SWANN_REDIS_URL`).
    #[arg(long)]
    redis_url: Option<String>,
    /// Redis key prefix; configuration i uses `NAMESPACE-i`, removed afterwards.
    #[arg(long, default_value = "swann-lsh-experiment")]
    namespace: String,
    /// Store one vector per call (`single`, as NearPy) or in batches
    /// (`batch` = 10000 per call, or `batch:N`).
    #[arg(long, default_value = "single")]
    store: String,
    /// Timed passes (store and query), median kept.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Write the results as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the results (and the setup) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `swann lsh ...`.
pub fn run(args: LshArgs) -> anyhow::Result<()> {
    match args.command {
        LshCommand::Experiment(a) => Ok(experiment(a)?),
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidParameter(msg.into())
}

struct Spec {
    kind: String,
    params: Vec<(String, String)>,
}

impl Spec {
    fn parse(s: &str) -> Result<Spec> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let mut params = Vec::new();
        for kv in rest.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("config {s:?}: {kv:?} is not key=value")))?;
            params.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Spec {
            kind: kind.trim().to_string(),
            params,
        })
    }

    fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.params.iter().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, v)) => v
                .parse()
                .map_err(|_| bad(format!("config {}: bad value {v:?} for {key}", self.kind))),
        }
    }

    fn check_keys(&self, allowed: &[&str]) -> Result<()> {
        for (k, _) in &self.params {
            if !allowed.contains(&k.as_str()) {
                return Err(bad(format!(
                    "config {}: unknown key {k:?} (expected one of {})",
                    self.kind,
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn hashes(&self, dim: usize, base: &[f32]) -> Result<Vec<LshHash>> {
        let count: usize = self.get("hashes", 1)?;
        let seed: u64 = self.get("seed", 0)?;
        let seeds = (0..count as u64).map(|i| seed.wrapping_add(i));
        let name = |i: u64| format!("{}{}", self.kind, i);
        let train = |n: usize| -> &[f32] { &base[..(n * dim).min(base.len())] };
        // rng=numpy: NearPy's directions (NumPy's RandomState(seed)), for
        // side-by-side runs; its seeds are 32-bit.
        let numpy = match self.get("rng", "swann".to_string())?.as_str() {
            "swann" => false,
            "numpy" => true,
            other => {
                return Err(bad(format!(
                    "config {}: rng must be swann or numpy, got {other:?}",
                    self.kind
                )))
            }
        };
        let numpy_seed = |s: u64| {
            u32::try_from(s).map_err(|_| {
                bad(format!(
                    "config {}: with rng=numpy, seeds (seed + hash number) must be below 2^32, got {s}",
                    self.kind
                ))
            })
        };
        match self.kind.as_str() {
            "rbp" => {
                self.check_keys(&["bits", "hashes", "seed", "rng"])?;
                let bits = self.get("bits", 10)?;
                seeds
                    .map(|s| {
                        if numpy {
                            LshHash::random_binary_numpy(&name(s - seed), dim, bits, numpy_seed(s)?)
                        } else {
                            LshHash::random_binary(&name(s - seed), dim, bits, s)
                        }
                    })
                    .collect()
            }
            "rdp" => {
                self.check_keys(&["projections", "bin_width", "hashes", "seed", "rng"])?;
                let (p, w) = (self.get("projections", 4)?, self.get("bin_width", 1.0)?);
                seeds
                    .map(|s| {
                        if numpy {
                            LshHash::random_discretized_numpy(
                                &name(s - seed),
                                dim,
                                p,
                                w,
                                numpy_seed(s)?,
                            )
                        } else {
                            LshHash::random_discretized(&name(s - seed), dim, p, w, s)
                        }
                    })
                    .collect()
            }
            "tree" => {
                self.check_keys(&["bits", "min", "hashes", "seed", "rng"])?;
                let (bits, min) = (self.get("bits", 10)?, self.get("min", 10)?);
                seeds
                    .map(|s| {
                        if numpy {
                            LshHash::random_binary_tree_numpy(
                                &name(s - seed),
                                dim,
                                bits,
                                min,
                                numpy_seed(s)?,
                            )
                        } else {
                            LshHash::random_binary_tree(&name(s - seed), dim, bits, min, s)
                        }
                    })
                    .collect()
            }
            "pcab" => {
                self.check_keys(&["bits", "train"])?;
                let (bits, n) = (self.get("bits", 10)?, self.get("train", 10_000)?);
                Ok(vec![LshHash::pca_binary("pcab", dim, bits, train(n))?])
            }
            "pcad" => {
                self.check_keys(&["projections", "bin_width", "train"])?;
                let (p, w, n) = (
                    self.get("projections", 4)?,
                    self.get("bin_width", 1.0)?,
                    self.get("train", 10_000)?,
                );
                Ok(vec![LshHash::pca_discretized("pcad", dim, p, w, train(n))?])
            }
            other => Err(bad(format!(
                "unknown hash kind {other:?} (expected rbp, rdp, tree, pcab or pcad)"
            ))),
        }
    }
}

fn store_mode(s: &str) -> Result<StoreMode> {
    match s {
        "single" => Ok(StoreMode::Single),
        "batch" => Ok(StoreMode::Batch(10_000)),
        _ => match s.strip_prefix("batch:").map(str::parse::<usize>) {
            Some(Ok(n)) if n > 0 => Ok(StoreMode::Batch(n)),
            _ => Err(bad(format!(
                "--store {s:?}: expected single, batch or batch:N"
            ))),
        },
    }
}

fn experiment(a: ExperimentArgs) -> Result<()> {
    let metric: Metric = a.metric.parse()?;
    let mode = store_mode(&a.store)?;
    let specs: Vec<Spec> = a
        .configs
        .iter()
        .map(|c| Spec::parse(c))
        .collect::<Result<_>>()?;
    let base = swann::io::read_vectors(&a.base)?;
    let dim = base.dim;
    let n = a.limit.unwrap_or(usize::MAX).min(base.rows());
    let mut base_data = base.data;
    base_data.truncate(n * dim);
    let queries = match &a.queries {
        Some(path) => {
            let q = swann::io::read_vectors(path)?;
            if q.dim != dim {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    got: q.dim,
                });
            }
            let m = a.query_count.min(q.rows());
            let mut d = q.data;
            d.truncate(m * dim);
            QuerySet::External(d)
        }
        None => QuerySet::FromBase {
            count: a.query_count,
        },
    };
    eprintln!(
        "swann lsh experiment: {n} base vectors of dimension {dim}, exact search for k = {} ...",
        a.k
    );
    let exp = Experiment::new(base_data.clone(), dim, queries, a.k, metric)?;
    eprintln!(
        "  {} queries, exact search {:.3} ms per query",
        exp.query_count(),
        exp.exact_seconds_per_query() * 1e3
    );
    let mut results = Vec::new();
    for (i, (spec, label)) in specs.iter().zip(&a.configs).enumerate() {
        let builder = Engine::builder(dim)
            .hashes(spec.hashes(dim, &base_data)?)
            .metric(metric)
            .filters([Filter::Unique, Filter::Nearest(a.k)]);
        let r = match a.storage {
            StorageKind::Memory => {
                let mut e = builder.build::<u32>()?;
                run_one(&exp, label, &mut e, mode, a.reps)?
            }
            StorageKind::Redis => redis_run(&a, i, builder, &exp, label, mode)?,
        };
        eprintln!(
            "  {label}: recall {:.4}, {:.0} stores/s, {:.0} queries/s",
            r.recall, r.store_per_second, r.queries_per_second
        );
        results.push(r);
    }
    print!("{}", ExperimentResult::table(&results));
    if let Some(path) = &a.csv {
        let mut s = String::from(ExperimentResult::CSV_HEADER);
        s.push('\n');
        for r in &results {
            s += &r.csv_row();
            s.push('\n');
        }
        std::fs::write(path, s)?;
    }
    if let Some(path) = &a.json {
        let json = serde_json::json!({
            "library": "swann",
            "version": env!("CARGO_PKG_VERSION"),
            "index": "lsh",
            "dataset": {
                "base": a.base,
                "queries": a.queries,
                "n_base": n,
                "n_queries": exp.query_count(),
                "dim": dim,
            },
            "metric": metric.name(),
            "k": a.k,
            "storage": format!("{:?}", a.storage).to_lowercase(),
            "store_mode": a.store,
            "isa": swann::kernels::active().isa().name(),
            "results": results,
        });
        let text = serde_json::to_string_pretty(&json).map_err(|e| bad(e.to_string()))?;
        std::fs::write(path, text)?;
    }
    Ok(())
}

fn run_one<S: Storage<u32>>(
    exp: &Experiment,
    label: &str,
    engine: &mut Engine<u32, S>,
    mode: StoreMode,
    reps: usize,
) -> Result<ExperimentResult> {
    exp.run(label, engine, mode, reps)
}

#[cfg(feature = "redis")]
fn redis_run(
    a: &ExperimentArgs,
    i: usize,
    builder: swann::index::lsh::EngineBuilder,
    exp: &Experiment,
    label: &str,
    mode: StoreMode,
) -> Result<ExperimentResult> {
    use swann::index::lsh::RedisStorage;
    let url = a
        .redis_url
        .clone()
        .or_else(|| std::env::var("SWANN_REDIS_URL").ok())
        .ok_or_else(|| bad("--storage redis needs --redis-url or SWANN_REDIS_URL"))?;
    let storage = RedisStorage::connect(&url, &format!("{}-{i}", a.namespace))?;
    let mut e = builder.build_with_storage::<u32, _>(storage)?;
    let r = run_one(exp, label, &mut e, mode, a.reps);
    e.storage().clear_namespace()?;
    r
}

#[cfg(not(feature = "redis"))]
fn redis_run(
    _: &ExperimentArgs,
    _: usize,
    _: swann::index::lsh::EngineBuilder,
    _: &Experiment,
    _: &str,
    _: StoreMode,
) -> Result<ExperimentResult> {
    Err(bad(
        "--storage redis needs swann built with the `redis` cargo feature",
    ))
}
