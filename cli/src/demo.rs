//! `swann demo`: the whole HNSW pipeline on generated data, no files needed.
//!
//! Writes a clustered Gaussian data set (base and query `.fvecs`) to a
//! directory, then runs `swann bench hnsw` on it: the kernel dispatch this
//! CPU gets, the build time on all cores, and recall@k against exact ground
//! truth with queries per second over a sweep of `ef`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use swann::io::{write_fvecs, Matrix};
use swann::Metric;

use crate::hnsw::{bench_hnsw, DataArgs, HnswBench, QuantArg};

#[derive(Args, Debug)]
pub struct Demo {
    /// Base vectors to generate.
    #[arg(long, default_value_t = 20_000)]
    pub n: usize,
    /// Query vectors to generate (drawn like the base, not taken from it).
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// Dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Gaussian clusters the points are drawn around.
    #[arg(long, default_value_t = 100)]
    pub clusters: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the generated `.fvecs` files go (default: a `swann-demo` folder in the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Links per node on upper levels (2*M on level 0).
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// Candidate list size while building.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// Build threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Search-time ef values to sweep.
    #[arg(long, value_delimiter = ',', default_value = "10,16,32,64,128,256")]
    pub ef: Vec<usize>,
    /// Write the result (ann-compare's schema) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Search on codes of the vectors (`swann bench hnsw --quant`).
    #[arg(long, value_enum, default_value_t = QuantArg::None)]
    pub quant: QuantArg,
}

/// SplitMix64 with Box-Muller normals: self-contained so the data set is the
/// same for a seed on every platform and version.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `rows` points around `centers`, each component the center's plus a normal
/// draw with standard deviation `spread`.
fn draw(g: &mut Gen, centers: &Matrix<f32>, rows: usize, spread: f64) -> Matrix<f32> {
    let dim = centers.dim;
    let mut data = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        let c = centers.row((g.next() % centers.rows() as u64) as usize);
        data.extend(c.iter().map(|&x| (x as f64 + spread * g.normal()) as f32));
    }
    Matrix { dim, data }
}

pub fn demo(a: Demo) -> Result<()> {
    if a.n == 0 || a.queries == 0 || a.dim == 0 || a.clusters == 0 {
        bail!("--n, --queries, --dim and --clusters must be positive");
    }
    let dir = a
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("swann-demo"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut g = Gen(a.seed);
    // Centers uniform in [0, 1)^dim; the spread makes clusters overlap, so a
    // query's neighbours come from several of them.
    let centers = Matrix {
        dim: a.dim,
        data: (0..a.clusters * a.dim)
            .map(|_| g.uniform() as f32)
            .collect(),
    };
    let spread = 0.15;
    let base = draw(&mut g, &centers, a.n, spread);
    let queries = draw(&mut g, &centers, a.queries, spread);
    let base_path = dir.join("demo_base.fvecs");
    let query_path = dir.join("demo_query.fvecs");
    write_fvecs(&base_path, &base).with_context(|| format!("writing {}", base_path.display()))?;
    write_fvecs(&query_path, &queries)
        .with_context(|| format!("writing {}", query_path.display()))?;
    eprintln!(
        "demo: {} base and {} query vectors of dimension {} around {} Gaussian clusters, in {}",
        a.n,
        a.queries,
        a.dim,
        a.clusters,
        dir.display()
    );
    bench_hnsw(HnswBench {
        data: DataArgs {
            base: base_path,
            queries: query_path,
            groundtruth: None,
            metric: Metric::L2,
            k: 10,
            json: a.json,
            reps: 3,
        },
        m: a.m,
        ef_construction: a.ef_construction,
        threads: a.threads,
        seed: 100,
        ef: a.ef,
        insert_order: None,
        quant: a.quant,
        rerank: 0,
    })
}
