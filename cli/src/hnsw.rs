//! `swann bench hnsw` and `swann bench flat`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use swann::index::flat::FlatIndex;
use swann::index::hnsw::{BinaryHnsw, Hnsw, InsertOrder, Quantization};
use swann::kernels;
use swann::Metric;

use crate::common::*;

/// Data options shared by the bench commands.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Base vectors (.fvecs, .bvecs, .npy).
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors (.fvecs, .bvecs, .npy).
    #[arg(long)]
    pub queries: PathBuf,
    /// Ground-truth ids (.ivecs, .npy); computed exactly when absent.
    #[arg(long)]
    pub groundtruth: Option<PathBuf>,
    /// Distance metric: l2, ip, cosine, hamming (hnsw); also manhattan, euclidean, angular, dot (flat).
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Write the result (ann-compare's schema) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Timed passes per sweep point (median taken).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
}

#[derive(Args, Debug)]
pub struct HnswBench {
    #[command(flatten)]
    pub data: DataArgs,
    /// Links per node on upper levels (2*M on level 0).
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// Candidate list size while building.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// Build threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Level-generator seed.
    #[arg(long, default_value_t = 100)]
    pub seed: u64,
    /// Search-time ef values to sweep.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,16,24,32,48,64,96,128,192,256,384,512"
    )]
    pub ef: Vec<usize>,
    /// Order of inserts: nearby rows together, or as in the file (hnswlib's). Default: locality, except given under ip.
    #[arg(long, value_enum)]
    pub insert_order: Option<InsertOrderArg>,
    /// Search on codes of the vectors, with exact distances in the results (f32 metrics only).
    #[arg(long, value_enum, default_value_t = QuantArg::None)]
    pub quant: QuantArg,
    /// Candidates reranked exactly per query with --quant sq8 (0: the default, ef/2 and at least 3k and 20; pq4 takes the exact distance of every node it expands).
    #[arg(long, default_value_t = 0)]
    pub rerank: usize,
}

/// `--quant`: `none`, then the schemes, the recommended one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QuantArg {
    /// Exact f32 distances everywhere.
    None,
    /// 8-bit scalar codes (a quarter of the f32 rows), integer distance estimates, exact rerank.
    Sq8,
    /// 4-bit codes of each node's neighbours inside its level-0 record (FastScan), exact distances of expanded nodes: the fastest on SIFT-like data, at about 4x hnswlib's memory (2.3 KB more per node at 128-d).
    Pq4,
}

impl From<QuantArg> for Quantization {
    fn from(a: QuantArg) -> Self {
        match a {
            QuantArg::None => Quantization::None,
            QuantArg::Sq8 => Quantization::Sq8,
            QuantArg::Pq4 => Quantization::Pq4,
        }
    }
}

/// `--insert-order`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InsertOrderArg {
    /// Nearby rows one after another (`InsertOrder::Locality`).
    Locality,
    /// The order of the input file (`InsertOrder::AsGiven`).
    Given,
}

impl From<InsertOrderArg> for InsertOrder {
    fn from(a: InsertOrderArg) -> Self {
        match a {
            InsertOrderArg::Locality => InsertOrder::Locality,
            InsertOrderArg::Given => InsertOrder::AsGiven,
        }
    }
}

#[derive(Args, Debug)]
pub struct FlatBench {
    #[command(flatten)]
    pub data: DataArgs,
    /// Threads used to add vectors (0 = all cores); queries run on one thread.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

fn threads_of(t: usize) -> usize {
    if t == 0 {
        rayon::current_num_threads()
    } else {
        t
    }
}

/// Packs rows for Hamming: rows of 0/1 values become one bit per component;
/// other byte-valued rows are taken as already packed bits, 8 per component.
pub fn pack_bits(rows: &swann::io::Matrix<f32>) -> Result<(usize, Vec<u64>)> {
    let binary = rows.data.iter().all(|&x| x == 0.0 || x == 1.0);
    let bytes_ok = rows
        .data
        .iter()
        .all(|&x| (0.0..=255.0).contains(&x) && x.fract() == 0.0);
    if !binary && !bytes_ok {
        bail!("hamming data must hold 0/1 values (one per bit) or bytes 0..=255 (packed bits)");
    }
    let bits = if binary { rows.dim } else { rows.dim * 8 };
    let words = bits.div_ceil(64);
    let mut out = vec![0u64; rows.rows() * words];
    for (r, row) in rows.iter_rows().enumerate() {
        let w = &mut out[r * words..(r + 1) * words];
        for (i, &x) in row.iter().enumerate() {
            if binary {
                if x == 1.0 {
                    w[i / 64] |= 1 << (i % 64);
                }
            } else {
                let b = x as u64;
                w[(i * 8) / 64] |= b << ((i * 8) % 64);
            }
        }
    }
    Ok((bits, out))
}

pub fn bench_hnsw(args: HnswBench) -> Result<()> {
    let d = &args.data;
    let data = Dataset::load(&d.base, &d.queries, d.groundtruth.as_deref(), d.metric, d.k)?;
    let threads = threads_of(args.threads);
    let n = data.base.rows();
    eprintln!(
        "hnsw: {n} x {} base, {} queries, metric {}, M={}, ef_construction={}, {threads} build threads, kernels {}",
        data.base.dim,
        data.queries.rows(),
        d.metric,
        args.m,
        args.ef_construction,
        kernels::active().isa()
    );
    let runs = if d.metric == Metric::Hamming {
        if args.quant != QuantArg::None {
            bail!("--quant applies to f32 metrics, not hamming");
        }
        let (bits, base) = pack_bits(&data.base)?;
        let (_, queries) = pack_bits(&data.queries)?;
        let words = bits.div_ceil(64);
        let builder = BinaryHnsw::builder(bits)
            .m(args.m)
            .ef_construction(args.ef_construction)
            .seed(args.seed)
            .capacity(n);
        let make = || {
            builder.build().map(|mut i| {
                if let Some(o) = args.insert_order {
                    i.set_insert_order(o.into());
                }
                i
            })
        };
        let (index, secs, peak) = build(n, threads, make, &base, words)?;
        let runs = sweep(&args, &data, |i, ef| {
            Ok(index.search(&queries[i * words..(i + 1) * words], d.k, ef)?)
        })?;
        finish(
            &args,
            &data,
            runs,
            threads,
            secs,
            peak,
            saved_size(|p| index.save(p))?,
        )
    } else {
        let builder = Hnsw::builder(data.base.dim, d.metric)
            .m(args.m)
            .ef_construction(args.ef_construction)
            .seed(args.seed)
            .quantization(args.quant.into())
            .capacity(n);
        let (index, secs, peak) = build(
            n,
            threads,
            || {
                builder.build().map(|mut i| {
                    if let Some(o) = args.insert_order {
                        i.set_insert_order(o.into());
                    }
                    i
                })
            },
            &data.base.data,
            data.base.dim,
        )?;
        index.set_rerank(args.rerank);
        let runs = sweep(&args, &data, |i, ef| {
            Ok(index.search(data.queries.row(i), d.k, ef)?)
        })?;
        finish(
            &args,
            &data,
            runs,
            threads,
            secs,
            peak,
            saved_size(|p| index.save(p))?,
        )
    };
    runs
}

/// Builds the index (allocation included in the time and the memory figure).
fn build<S: swann::index::hnsw::Space>(
    n: usize,
    threads: usize,
    make: impl FnOnce() -> swann::Result<swann::index::hnsw::HnswIndex<S>> + Send,
    rows: &[S::Elem],
    dim: usize,
) -> Result<(swann::index::hnsw::HnswIndex<S>, f64, Option<u64>)> {
    let pb = progress(n as u64, "building");
    let started = Instant::now();
    let (index, peak) = with_peak_rss(|| {
        in_pool(threads, || -> Result<_> {
            let mut index = make()?;
            // One batch (so its insert order can group nearby rows), with
            // the progress bar moved from the workers.
            let labels: Vec<u64> = (0..n as u64).collect();
            index.insert_batch_with_progress(&labels, &rows[..n * dim], |done| {
                if done % 1024 == 0 {
                    pb.set_position(done as u64);
                    reveal_after_a_second(&pb, started);
                }
            })?;
            Ok(index)
        })?
    })?;
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let st = index.stats();
    eprintln!(
        "built in {secs:.2} s ({} node levels needed a second anchoring, {} join-order moves, \
         {} weakly linked nodes linked from where their own search ended)",
        st.stranded_levels, st.order_moves, st.reinforced
    );
    Ok((index, secs, peak))
}

fn sweep(
    args: &HnswBench,
    data: &Dataset,
    search: impl Fn(usize, usize) -> Result<Vec<swann::index::Neighbor>>,
) -> Result<Vec<Run>> {
    let nq = data.queries.rows();
    let mut runs = Vec::new();
    let mut above = 0;
    for &ef in &args.ef {
        let (results, qps) = time_queries(nq, args.data.reps, |i| search(i, ef))?;
        let r = recall(&results, &data.groundtruth, args.data.k);
        runs.push(Run {
            knob: "ef",
            value: ef as f64,
            recall: r,
            qps,
            threads: 1,
            mean_latency_us: 1e6 / qps,
        });
        eprintln!("ef {ef:>4}: recall {r:.4}, {qps:.0} qps");
        if r >= 0.999 {
            above += 1;
            if above >= 3 {
                break;
            }
        }
    }
    Ok(runs)
}

fn finish(
    args: &HnswBench,
    data: &Dataset,
    runs: Vec<Run>,
    threads: usize,
    secs: f64,
    peak: Option<u64>,
    index_bytes: u64,
) -> Result<()> {
    print_runs("ef", &runs);
    println!(
        "build {secs:.2} s on {threads} threads, peak RSS growth {}, index file {:.1} MiB",
        peak.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
        index_bytes as f64 / 1048576.0
    );
    if let Some(path) = &args.data.json {
        BenchResult {
            library: "swann",
            version: env!("CARGO_PKG_VERSION"),
            index: "hnsw",
            dataset: DatasetInfo::of(data),
            metric: args.data.metric.name().to_string(),
            k: args.data.k,
            params: serde_json::json!({
                "M": args.m,
                "ef_construction": args.ef_construction,
                "insert_order": match args
                    .insert_order
                    .map_or(InsertOrder::default_for(args.data.metric), InsertOrder::from)
                {
                    InsertOrder::Locality => "locality",
                    InsertOrder::AsGiven => "given",
                },
                "quant": Quantization::from(args.quant).name(),
                "rerank": args.rerank,
            }),
            build: BuildInfo {
                threads,
                seconds: secs,
                peak_rss_bytes: peak,
                index_bytes: Some(index_bytes),
            },
            runs,
            isa: kernels::active().isa().to_string(),
        }
        .write(path)?;
    }
    Ok(())
}

/// Saves the index to a temporary file (after the measurements) and returns its size.
fn saved_size(save: impl FnOnce(&std::path::Path) -> swann::Result<()>) -> Result<u64> {
    let path = std::env::temp_dir().join(format!("swann-bench-{}.swann", std::process::id()));
    let res = save(&path)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(std::fs::metadata(&path)?.len()));
    let _ = std::fs::remove_file(&path);
    res
}

pub fn bench_flat(args: FlatBench) -> Result<()> {
    let d = &args.data;
    let data = Dataset::load(&d.base, &d.queries, d.groundtruth.as_deref(), d.metric, d.k)?;
    let threads = threads_of(args.threads);
    let started = Instant::now();
    let (index, peak) = with_peak_rss(|| {
        let mut f = FlatIndex::new(data.base.dim, d.metric)?;
        f.add_rows(0, &data.base.data)?;
        Ok(f)
    })?;
    let secs = started.elapsed().as_secs_f64();
    let nq = data.queries.rows();
    let (results, qps) = time_queries(nq, d.reps, |i| Ok(index.search(data.queries.row(i), d.k)?))?;
    let r = recall(&results, &data.groundtruth, d.k);
    let batch_start = Instant::now();
    let batch = in_pool(threads, || index.search_batch(&data.queries.data, d.k))??;
    let batch_qps = nq as f64 / batch_start.elapsed().as_secs_f64();
    std::hint::black_box(batch.par_iter().count());
    let runs = vec![
        Run {
            knob: "exact",
            value: 0.0,
            recall: r,
            qps,
            threads: 1,
            mean_latency_us: 1e6 / qps,
        },
        Run {
            knob: "exact",
            value: 0.0,
            recall: r,
            qps: batch_qps,
            threads,
            mean_latency_us: 1e6 / batch_qps,
        },
    ];
    print_runs("exact", &runs);
    let index_bytes = saved_size(|p| index.save(p))?;
    if let Some(path) = &d.json {
        BenchResult {
            library: "swann",
            version: env!("CARGO_PKG_VERSION"),
            index: "flat",
            dataset: DatasetInfo::of(&data),
            metric: d.metric.name().to_string(),
            k: d.k,
            params: serde_json::json!({}),
            build: BuildInfo {
                threads,
                seconds: secs,
                peak_rss_bytes: peak,
                index_bytes: Some(index_bytes),
            },
            runs,
            isa: kernels::active().isa().to_string(),
        }
        .write(path)?;
    }
    Ok(())
}

/// `swann bench churn`: removal and compaction against fresh builds.
#[derive(Args, Debug)]
pub struct ChurnBench {
    /// Base vectors (.fvecs, .bvecs, .npy). The first `rows / (1 + F)`
    /// are built; F of those are removed and the rest of the file inserted.
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors (.fvecs, .bvecs, .npy).
    #[arg(long)]
    pub queries: PathBuf,
    /// Metric: l2, ip, cosine.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Share of the index removed, then refilled with new rows.
    #[arg(long, default_value_t = 0.3)]
    pub fraction: f64,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
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
    #[arg(long, value_delimiter = ',', default_value = "10,16,32,64,128")]
    pub ef: Vec<usize>,
    /// Removals one label at a time (`remove`) instead of one batch.
    #[arg(long)]
    pub one_by_one: bool,
}

/// Builds `rows` (labels as given) on `threads` threads.
fn build_rows(
    a: &ChurnBench,
    dim: usize,
    labels: &[u64],
    rows: &[f32],
    threads: usize,
) -> Result<Hnsw> {
    in_pool(threads, || -> Result<Hnsw> {
        let mut index = Hnsw::builder(dim, a.metric)
            .m(a.m)
            .ef_construction(a.ef_construction)
            .capacity(labels.len())
            .build()?;
        index.insert_batch(labels, rows)?;
        Ok(index)
    })?
}

pub fn bench_churn(a: ChurnBench) -> Result<()> {
    if !(a.fraction > 0.0 && a.fraction < 1.0) {
        bail!("--fraction must be in (0, 1), got {}", a.fraction);
    }
    let base = swann::io::read_vectors(&a.base)?;
    let queries = swann::io::read_vectors(&a.queries)?;
    if base.dim != queries.dim {
        bail!(
            "base vectors have dimension {}, queries {}",
            base.dim,
            queries.dim
        );
    }
    let (n, dim) = (base.rows(), base.dim);
    let m = (n as f64 / (1.0 + a.fraction)) as usize;
    let removed_n = ((m as f64 * a.fraction) as usize).min(n - m);
    if removed_n == 0 || m < 2 {
        bail!("{n} rows are too few for --fraction {}", a.fraction);
    }
    let threads = threads_of(a.threads);
    eprintln!(
        "churn: {m} rows built, {removed_n} removed, {removed_n} new inserted (of {n} x {dim}), metric {}, M={}, ef_construction={}, {threads} threads",
        a.metric, a.m, a.ef_construction
    );
    let row = |i: usize| &base.data[i * dim..(i + 1) * dim];
    let labels: Vec<u64> = (0..m as u64).collect();
    let mut index = build_rows(&a, dim, &labels, &base.data[..m * dim], threads)?;
    // Which labels go: a fixed pseudo-random choice, spread over the index.
    let mut order: Vec<u64> = labels.clone();
    order.sort_by_key(|&l| l.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut gone = order[..removed_n].to_vec();
    gone.sort_unstable();
    let t = Instant::now();
    if a.one_by_one {
        for &l in &gone {
            index.remove(l)?;
        }
    } else {
        index.remove_batch(&gone)?;
    }
    let remove_secs = t.elapsed().as_secs_f64();
    let report = index.check();
    if !report.is_ok() {
        bail!("graph check after the removals failed:\n{report}");
    }
    // Compaction, measured on a copy, against a fresh build of what is left.
    let dir = std::env::temp_dir().join(format!("swann-churn-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let holes = dir.join("holes.swann");
    index.save(&holes)?;
    let holes_bytes = std::fs::metadata(&holes)?.len();
    let holes_mem = index.memory_bytes();
    let mut copy = Hnsw::load(&holes)?;
    let t = Instant::now();
    copy.compact()?;
    let compact_secs = t.elapsed().as_secs_f64();
    let compacted = dir.join("compacted.swann");
    copy.save(&compacted)?;
    let kept: Vec<u64> = labels
        .iter()
        .copied()
        .filter(|l| gone.binary_search(l).is_err())
        .collect();
    let kept_rows: Vec<f32> = kept
        .iter()
        .flat_map(|&l| row(l as usize).iter().copied())
        .collect();
    let fresh_kept = build_rows(&a, dim, &kept, &kept_rows, threads)?;
    let fresh_kept_path = dir.join("fresh.swann");
    fresh_kept.save(&fresh_kept_path)?;
    let sizes = (
        std::fs::metadata(&compacted)?.len(),
        std::fs::metadata(&fresh_kept_path)?.len(),
    );
    let mems = (copy.memory_bytes(), fresh_kept.memory_bytes());
    drop((copy, fresh_kept));
    std::fs::remove_dir_all(&dir).ok();
    // Refill with new rows, then compare with a fresh build of the final set.
    let new_labels: Vec<u64> = (m as u64..(m + removed_n) as u64).collect();
    let t = Instant::now();
    in_pool(threads, || {
        index.insert_batch(&new_labels, &base.data[m * dim..(m + removed_n) * dim])
    })??;
    let refill_secs = t.elapsed().as_secs_f64();
    let report = index.check();
    if !report.is_ok() {
        bail!("graph check after the refill failed:\n{report}");
    }
    let final_labels: Vec<u64> = kept
        .iter()
        .copied()
        .chain(new_labels.iter().copied())
        .collect();
    let final_rows: Vec<f32> = final_labels
        .iter()
        .flat_map(|&l| row(l as usize).iter().copied())
        .collect();
    let fresh = build_rows(&a, dim, &final_labels, &final_rows, threads)?;
    let mut flat = FlatIndex::new(dim, a.metric)?;
    for (&l, r) in final_labels.iter().zip(final_rows.chunks(dim)) {
        flat.add(l, r)?;
    }
    let truth = in_pool(threads, || flat.search_batch(&queries.data, a.k))??;
    let truth_ids: Vec<Vec<u32>> = truth
        .iter()
        .map(|t| t.iter().map(|n| n.label as u32).collect())
        .collect();
    let nq = queries.rows();
    println!("removed {removed_n} in {remove_secs:.2} s ({}), refilled in {refill_secs:.2} s, checker clean after each", if a.one_by_one { "one at a time" } else { "one batch" });
    println!(
        "{:>6} {:>12} {:>12} {:>10} {:>12} {:>12}",
        "ef", "recall", "fresh", "diff", "qps", "fresh qps"
    );
    for &ef in &a.ef {
        let (got, qps) = time_queries(nq, 3, |i| Ok(index.search(queries.row(i), a.k, ef)?))?;
        let (want, fresh_qps) =
            time_queries(nq, 3, |i| Ok(fresh.search(queries.row(i), a.k, ef)?))?;
        let (r, rf) = (
            recall(&got, &truth_ids, a.k),
            recall(&want, &truth_ids, a.k),
        );
        println!(
            "{ef:>6} {r:>12.4} {rf:>12.4} {:>+10.4} {qps:>12.0} {fresh_qps:>12.0}",
            r - rf
        );
    }
    let pct = |x: u64, y: u64| 100.0 * (x as f64 / y as f64 - 1.0);
    println!(
        "after removal: file {:.1} MiB, memory {:.1} MiB; compact() in {compact_secs:.2} s: file {:.1} MiB ({:+.1}% against a fresh build's {:.1} MiB), memory {:.1} MiB ({:+.1}% against {:.1} MiB)",
        holes_bytes as f64 / 1048576.0,
        holes_mem as f64 / 1048576.0,
        sizes.0 as f64 / 1048576.0,
        pct(sizes.0, sizes.1),
        sizes.1 as f64 / 1048576.0,
        mems.0 as f64 / 1048576.0,
        pct(mems.0 as u64, mems.1 as u64),
        mems.1 as f64 / 1048576.0,
    );
    Ok(())
}
