//! Shards: `swann build hnsw --shard I/N`, `swann manifest`, and the index
//! files or manifests that `swann query` and `swann bench index` open.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use clap::Args;
use rayon::prelude::*;
use swann::index::api::AnnIndex;
use swann::index::flat::FlatIndex;
use swann::index::forest::Forest;
use swann::index::hnsw::Hnsw;
use swann::index::sharded::{Manifest, ShardedIndex};
use swann::index::Neighbor;
use swann::io::{read_groundtruth, read_vectors};
use swann::prelude::Effort;
use swann::store::{IndexFile, IndexKind, OpenOptions};

use crate::common::{in_pool, print_runs, recall, time_queries, Run};

/// `--shard I/N`: part `I` (from 0) of `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not I/N (e.g. 0/4)"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("{i:?} is not a shard number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "shard {index} of {count}: shards are numbered 0 to N-1"
            ));
        }
        Ok(ShardSpec { index, count })
    }
}

/// `swann manifest`.
#[derive(Args, Debug)]
pub struct ManifestCmd {
    /// Shard files (written by `swann build ... --shard I/N` or any index's `save`), in search order.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Manifest to write (paths inside its folder are recorded relative to it).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn manifest(a: ManifestCmd) -> Result<()> {
    let dir = match a.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let m = Manifest::from_shards(&a.shards, &dir)?;
    m.write(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {}: {} {} shards, {} rows x {} ({}) in all",
        a.out.display(),
        m.shards.len(),
        m.kind,
        m.rows(),
        m.dim,
        m.metric
    );
    for s in &m.shards {
        println!(
            "  {}  {} rows, labels {}..={}, {} bytes, xxh3 {}",
            s.path.display(),
            s.rows,
            s.label_min,
            s.label_max,
            s.bytes,
            s.xxh3
        );
    }
    Ok(())
}

/// `swann info MANIFEST`: the manifest, every shard checked against its
/// checksum, and with `check` every HNSW shard's graph.
pub fn info_manifest(path: &Path, check: bool) -> Result<()> {
    let index = ShardedIndex::open(path, OpenOptions::default())?;
    let m = index.manifest();
    println!("manifest    {}", path.display());
    println!("format      {} version {}", m.format, m.version);
    println!("kind        {}", m.kind);
    println!("metric      {}", m.metric);
    println!("elements    {} x {}", m.elem_type, m.dim);
    println!("shards      {}", m.shards.len());
    println!("rows        {}", m.rows());
    for s in &m.shards {
        println!(
            "  {}  {} rows, labels {}..={}, {} bytes",
            s.path.display(),
            s.rows,
            s.label_min,
            s.label_max,
            s.bytes
        );
    }
    index.verify()?;
    println!("checksums   ok (every shard matches the manifest)");
    if check {
        if m.kind != swann::index::sharded::ShardKind::Hnsw {
            bail!("--check checks HNSW graphs; these are {} shards", m.kind);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut bad = 0;
        for i in 0..m.shards.len() {
            let p = m.shard_path(dir, i);
            let report = Hnsw::open_mmap(&p, OpenOptions::default())?.check();
            if !report.is_ok() {
                bad += 1;
                println!("{}: {report}", p.display());
            }
        }
        if bad > 0 {
            bail!("{bad} shard graphs have problems");
        }
        println!("graphs      ok");
    }
    Ok(())
}

/// Whether `path` holds a shard manifest (JSON) rather than an index file.
pub fn is_manifest(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .read(&mut head)?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}

/// An index file (HNSW, forest or flat) or a shard set, opened for searching.
pub enum Opened {
    Hnsw(Box<Hnsw>),
    Forest(Box<Forest>),
    Flat(Box<FlatIndex>),
    Sharded(ShardedIndex),
}

impl Opened {
    /// Opens `path`: a manifest becomes a [`ShardedIndex`], an index file
    /// the index its header names. Mapped unless `load`.
    pub fn open(path: &Path, load: bool, opts: OpenOptions) -> Result<Self> {
        if is_manifest(path)? {
            return Ok(Opened::Sharded(if load {
                ShardedIndex::load(path)?
            } else {
                ShardedIndex::open(path, opts)?
            }));
        }
        let kind = IndexFile::open_mmap(path, OpenOptions::default())
            .with_context(|| format!("opening {}", path.display()))?
            .header()
            .kind;
        Ok(match kind {
            IndexKind::Hnsw if load => Opened::Hnsw(Box::new(Hnsw::load(path)?)),
            IndexKind::Hnsw => Opened::Hnsw(Box::new(Hnsw::open_mmap(path, opts)?)),
            IndexKind::Forest if load => Opened::Forest(Box::new(Forest::load(path)?)),
            IndexKind::Forest => Opened::Forest(Box::new(Forest::open_mmap(path, opts)?)),
            IndexKind::Flat if load => Opened::Flat(Box::new(FlatIndex::load(path)?)),
            IndexKind::Flat => Opened::Flat(Box::new(FlatIndex::open_mmap(path, opts)?)),
            other => bail!(
                "{}: {other} index files cannot be queried here",
                path.display()
            ),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Opened::Hnsw(h) => format!("an HNSW index of {} vectors", h.len()),
            Opened::Forest(f) => format!(
                "a forest of {} trees over {} items",
                f.n_trees(),
                f.n_present()
            ),
            Opened::Flat(f) => format!("a flat index of {} vectors", f.len()),
            Opened::Sharded(s) => format!(
                "{} {} shards of {} vectors in all",
                s.num_shards(),
                s.kind(),
                s.len()
            ),
        }
    }

    pub fn set_rerank(&self, rerank: usize) {
        if let Opened::Hnsw(h) = self {
            h.set_rerank(rerank);
        }
    }

    fn index(&self) -> Option<&dyn AnnIndex<Elem = f32>> {
        match self {
            Opened::Hnsw(h) => Some(&**h),
            Opened::Forest(f) => Some(&**f),
            Opened::Flat(f) => Some(&**f),
            Opened::Sharded(_) => None,
        }
    }

    /// One query; `ef` is HNSW's ef and the forest's search_k.
    pub fn search(&self, q: &[f32], k: usize, ef: usize) -> swann::Result<Vec<Neighbor>> {
        match (self, self.index()) {
            (Opened::Sharded(s), _) => s.search(q, k, Effort::Candidates(ef)),
            (_, Some(i)) => i.search(q, k, Effort::Candidates(ef)),
            (_, None) => unreachable!("every other kind is one index"),
        }
    }

    pub fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        ef: usize,
    ) -> swann::Result<Vec<Vec<Neighbor>>> {
        match self {
            Opened::Hnsw(h) => h.search_batch(queries, k, ef.max(k)),
            Opened::Sharded(s) => s.search_batch(queries, k, Effort::Candidates(ef)),
            Opened::Flat(f) => f.search_batch(queries, k),
            Opened::Forest(_) => {
                let dim = self.index().map_or(1, |i| i.dim());
                if !queries.len().is_multiple_of(dim) {
                    return Err(swann::Error::RaggedData {
                        what: "query data",
                        len: queries.len(),
                        dim,
                    });
                }
                queries
                    .par_chunks(dim)
                    .map(|q| self.search(q, k, ef))
                    .collect()
            }
        }
    }
}

/// `swann bench index`.
#[derive(Args, Debug)]
pub struct IndexBench {
    /// An index file (HNSW, forest or flat), or a shard manifest (`swann manifest`).
    pub file: PathBuf,
    /// Query vectors (.fvecs, .bvecs, .npy).
    #[arg(long)]
    pub queries: PathBuf,
    /// Ground-truth ids (.ivecs, .npy) of the labels the index holds.
    #[arg(long)]
    pub groundtruth: PathBuf,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Search knob values to sweep (HNSW's ef; a forest shard set's search_k).
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,120,200,400")]
    pub ef: Vec<usize>,
    /// Search threads (a shard set searches its shards on them; one query at a time).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Each shard returns ceil(k * oversample) candidates to the merge.
    #[arg(long, default_value_t = 1.0)]
    pub oversample: f64,
    /// Read the files into memory instead of mapping them.
    #[arg(long)]
    pub load: bool,
    /// Timed passes per sweep point (median taken).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
}

pub fn bench_index(a: IndexBench) -> Result<()> {
    if a.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if a.ef.is_empty() || a.ef.contains(&0) {
        bail!("--ef needs positive values");
    }
    let mut opened = Opened::open(&a.file, a.load, OpenOptions::default())?;
    if let Opened::Sharded(s) = &mut opened {
        s.set_oversample(a.oversample)?;
    } else if a.oversample != 1.0 {
        bail!("--oversample applies to shard manifests");
    }
    let queries = read_vectors(&a.queries)?;
    let gt = read_groundtruth(&a.groundtruth)?;
    if gt.rows() < queries.rows() || gt.dim < a.k {
        bail!(
            "ground truth has {} rows of {} for {} queries at k={}",
            gt.rows(),
            gt.dim,
            queries.rows(),
            a.k
        );
    }
    let truth: Vec<Vec<u32>> = gt
        .iter_rows()
        .take(queries.rows())
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect();
    eprintln!(
        "{}: {}, {} queries, k={}, {} search threads",
        a.file.display(),
        opened.describe(),
        queries.rows(),
        a.k,
        a.threads
    );
    let runs = in_pool(a.threads, || -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for &ef in &a.ef {
            let (results, qps) = time_queries(queries.rows(), a.reps, |i| {
                Ok(opened.search(queries.row(i), a.k, ef)?)
            })?;
            runs.push(Run {
                knob: "ef",
                value: ef as f64,
                recall: recall(&results, &truth, a.k),
                qps,
                threads: a.threads,
                mean_latency_us: 1e6 / qps,
            });
        }
        Ok(runs)
    })??;
    print_runs("ef", &runs);
    Ok(())
}
