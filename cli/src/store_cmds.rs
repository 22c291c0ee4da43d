//! `swann build`, `swann query`, `swann info`: index files on disk.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use swann::index::hnsw::{BinaryHnsw, Hnsw};
use swann::io::{read_groundtruth, read_vectors};
use swann::store::{IndexFile, IndexKind, OpenOptions};
use swann::Metric;

use swann::index::sharded::shard_rows;

use crate::common::rss_bytes;
use crate::shard_cmds::Opened;

/// Index kinds `swann build` writes.
#[derive(Subcommand, Debug)]
pub enum Build {
    /// HNSW graph index.
    Hnsw(BuildHnsw),
}

/// `swann build hnsw`.
#[derive(Args, Debug)]
pub struct BuildHnsw {
    /// Base vectors (.fvecs, .bvecs or .npy); row i gets label i.
    #[arg(long)]
    pub data: PathBuf,
    /// Metric: l2, ip, cosine.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Links per node.
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// Candidate list size while building.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// Level generator seed.
    #[arg(long, default_value_t = 100)]
    pub seed: u64,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// Order of inserts: nearby rows together, or as in the file (hnswlib's). Default: locality, except given under ip.
    #[arg(long, value_enum)]
    pub insert_order: Option<crate::hnsw::InsertOrderArg>,
    /// Search on codes of the vectors, reranking the best candidates exactly (saved in the file).
    #[arg(long, value_enum, default_value_t = crate::hnsw::QuantArg::None)]
    pub quant: crate::hnsw::QuantArg,
    /// With --quant pq4: also store every node's packed neighbour record in
    /// the file, so that mapping it (`swann query` without --load) packs none
    /// in memory; the file grows by the records (2.2 KB per node at M=16 and
    /// 128 dimensions, 3.2 KB at 384).
    #[arg(long)]
    pub pq4_records: bool,
    /// Build only shard I of N (from 0): the I-th of N contiguous row ranges of
    /// the file, labels kept as the rows' global numbers. Then `swann manifest`.
    #[arg(long)]
    pub shard: Option<crate::shard_cmds::ShardSpec>,
}

/// `swann query`.
#[derive(Args, Debug)]
pub struct Query {
    /// Index file written by `swann build` or any index's `save` (HNSW, forest, flat), or a shard manifest (`swann manifest`).
    pub file: PathBuf,
    /// Query vectors.
    #[arg(long)]
    pub queries: PathBuf,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Search candidate list size (HNSW's ef; a forest's search_k; the flat index ignores it).
    #[arg(long, default_value_t = 64)]
    pub ef: usize,
    /// Write every query's neighbours to this file: one line per query,
    /// `label:distance` pairs separated by spaces, nearest first (distances
    /// with 9 significant digits, which identify an f32 exactly).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Ground truth (.ivecs) to report recall@k against.
    #[arg(long)]
    pub groundtruth: Option<PathBuf>,
    /// Read the whole file into memory (checking every checksum) instead of mapping it.
    #[arg(long)]
    pub load: bool,
    /// Candidates reranked exactly per query when the index searches on codes (0: the default, ef/2 and at least 3k and 20).
    #[arg(long, default_value_t = 0)]
    pub rerank: usize,
    /// Timed passes over the queries (the fastest is reported).
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    /// Map with MADV_RANDOM (no read-ahead): only the pages searches touch become resident.
    #[arg(long)]
    pub random: bool,
}

/// `swann info`.
#[derive(Args, Debug)]
pub struct Info {
    /// Index file.
    pub file: PathBuf,
    /// Also check an HNSW graph (`Hnsw::check`): links out of range or to
    /// free slots, self-links, duplicates, degrees, levels, the entry point,
    /// and nodes not reachable from the entry point on each level. Exits
    /// non-zero if it finds a problem.
    #[arg(long)]
    pub check: bool,
}

pub fn build(cmd: Build) -> Result<()> {
    let Build::Hnsw(a) = cmd;
    if a.pq4_records && a.quant != crate::hnsw::QuantArg::Pq4 {
        bail!("--pq4-records applies to --quant pq4");
    }
    let data = read_vectors(&a.data).with_context(|| format!("reading {}", a.data.display()))?;
    let rows = match a.shard {
        Some(s) => shard_rows(data.rows(), s.count, s.index),
        None => 0..data.rows(),
    };
    let n = rows.len();
    let t = Instant::now();
    let mut index = Hnsw::builder(data.dim, a.metric)
        .m(a.m)
        .ef_construction(a.ef_construction)
        .seed(a.seed)
        .quantization(a.quant.into())
        .capacity(n)
        .build()?;
    if let Some(o) = a.insert_order {
        index.set_insert_order(o.into());
    }
    let labels: Vec<u64> = (rows.start as u64..rows.end as u64).collect();
    index.insert_batch(
        &labels,
        &data.data[rows.start * data.dim..rows.end * data.dim],
    )?;
    let built = t.elapsed().as_secs_f64();
    index.save_with(
        &a.out,
        swann::index::hnsw::SaveOptions::default().pq4_records(a.pq4_records),
    )?;
    let part = match a.shard {
        Some(s) => format!(
            " (shard {} of {}: rows {}..{})",
            s.index, s.count, rows.start, rows.end
        ),
        None => String::new(),
    };
    println!(
        "built {} vectors x {}{part} in {built:.1} s, wrote {} ({} bytes)",
        n,
        data.dim,
        a.out.display(),
        std::fs::metadata(&a.out)?.len()
    );
    Ok(())
}

pub fn query(a: Query) -> Result<()> {
    let t = Instant::now();
    let index = Opened::open(
        &a.file,
        a.load,
        OpenOptions {
            advise_random: a.random,
            ..OpenOptions::default()
        },
    )?;
    let opened = t.elapsed();
    if a.passes == 0 {
        bail!("--passes must be at least 1");
    }
    index.set_rerank(a.rerank);
    let queries = read_vectors(&a.queries)?;
    let mut secs = f64::INFINITY;
    let mut results = Vec::new();
    for _ in 0..a.passes {
        let t = Instant::now();
        results = index.search_batch(&queries.data, a.k, a.ef)?;
        secs = secs.min(t.elapsed().as_secs_f64());
    }
    println!(
        "opened {} in {:.3} ms ({}), {} queries in {secs:.3} s ({:.0} QPS)",
        index.describe(),
        opened.as_secs_f64() * 1e3,
        if a.load { "loaded" } else { "mapped" },
        results.len(),
        results.len() as f64 / secs
    );
    // What stayed resident: the process's own memory, and the pages of the
    // file the searches touched (clean, shared, dropped under pressure).
    if let (Some(anon), Some(file)) = (rss_bytes("RssAnon:"), rss_bytes("RssFile:")) {
        println!(
            "resident after the queries: {:.1} MiB anonymous, {:.1} MiB of mapped files",
            anon as f64 / 1048576.0,
            file as f64 / 1048576.0
        );
    }
    if let Some(path) = &a.results {
        let mut text = String::new();
        for r in &results {
            let line: Vec<String> = r
                .iter()
                .map(|n| format!("{}:{}", n.label, fmt_g9(n.distance)))
                .collect();
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(gt) = a.groundtruth {
        let gt = read_groundtruth(&gt)?;
        if gt.rows() < results.len() || gt.dim < a.k {
            bail!("ground truth has {} rows of {}", gt.rows(), gt.dim);
        }
        let hits: usize = results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let t = &gt.row(i)[..a.k];
                r.iter().filter(|n| t.contains(&(n.label as i32))).count()
            })
            .sum();
        println!(
            "recall@{} = {:.4}",
            a.k,
            hits as f64 / (a.k * results.len()) as f64
        );
    } else {
        for r in results.iter().take(5) {
            let labels: Vec<String> = r.iter().map(|n| n.label.to_string()).collect();
            println!("{}", labels.join(" "));
        }
    }
    Ok(())
}

/// `x` as C's `printf("%.9g")` writes it (9 significant digits, trailing
/// zeros dropped, an exponent outside 1e-5..1e9), so other languages'
/// results can be compared as text.
pub fn fmt_g9(x: f32) -> String {
    let x = f64::from(x);
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    // Round to 9 significant digits first: the exponent is the rounded one's.
    let sci = format!("{x:.8e}");
    let (mantissa, exp) = sci.split_once('e').expect("scientific notation");
    let exp: i32 = exp.parse().expect("an exponent");
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..9).contains(&exp) {
        let m = trim(mantissa.to_string());
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (8 - exp).max(0) as usize;
        trim(format!("{x:.decimals$}"))
    }
}

pub fn info(a: Info) -> Result<()> {
    if crate::shard_cmds::is_manifest(&a.file)? {
        return crate::shard_cmds::info_manifest(&a.file, a.check);
    }
    let file = IndexFile::open_mmap(&a.file, OpenOptions::default())?;
    let h = file.header().clone();
    println!("file        {}", a.file.display());
    println!("size        {} bytes", file.file_len());
    println!("kind        {}", h.kind);
    println!("metric      {}", h.metric);
    println!("elements    {}", h.elem_type);
    println!("dimension   {}", h.dim);
    println!("items       {} (capacity {})", h.n_items, h.capacity);
    if h.kind == IndexKind::Hnsw {
        println!("M           {} (level 0: {})", h.m, h.params[2]);
        println!("ef_constr.  {}", h.ef_construction);
        println!("seed        {}", h.seed);
        println!("entry       slot {} at level {}", h.params[0], h.params[1]);
        println!("deleted     {}", h.params[4]);
        let quant = h.params[7];
        match quant & 0xff {
            0 => println!("quantized   no"),
            1 if quant >> 8 == 0 => println!("quantized   sq8 (not trained yet)"),
            1 => println!("quantized   sq8 (grid trained on {} rows)", quant >> 8),
            2 if (quant >> 8) & 0xffff_ffff == 0 => println!("quantized   pq4 (not trained yet)"),
            2 => println!(
                "quantized   pq4 ({} components per code, centroids trained on {} rows; {})",
                (quant >> 40) & 0xff,
                (quant >> 8) & 0xffff_ffff,
                match file.has_section(swann::index::hnsw::section::PQ4_PACKED) {
                    true => "packed records in the file",
                    false => "records packed when opened",
                }
            ),
            other => println!("quantized   unknown scheme {other}"),
        }
    } else {
        println!(
            "params      m={} ef_construction={} seed={} {:?}",
            h.m, h.ef_construction, h.seed, h.params
        );
    }
    println!("sections");
    for s in file.sections() {
        println!(
            "  id {:>2}  offset {:>12}  length {:>12}  xxh3 {:016x}",
            s.id, s.offset, s.len, s.checksum
        );
    }
    match file.verify() {
        Ok(()) => println!(
            "checksums   ok (header and all {} sections)",
            file.sections().len()
        ),
        Err(e) => {
            println!("checksums   FAILED: {e}");
            bail!("{}: {e}", a.file.display());
        }
    }
    if h.kind == IndexKind::Hnsw && h.elem_type == swann::store::ElemType::F32 {
        match Hnsw::open_mmap(&a.file, OpenOptions::default()).and_then(|i| i.verify()) {
            Ok(()) => println!("structure   ok"),
            Err(e) => {
                println!("structure   FAILED: {e}");
                bail!("{}: {e}", a.file.display());
            }
        }
    }
    if a.check {
        if h.kind != IndexKind::Hnsw {
            bail!("--check checks HNSW graphs; this is a {} index", h.kind);
        }
        let report = match h.elem_type {
            swann::store::ElemType::U64Bits => {
                BinaryHnsw::open_mmap(&a.file, OpenOptions::default())?.check()
            }
            _ => Hnsw::open_mmap(&a.file, OpenOptions::default())?.check(),
        };
        println!(
            "graph       {}",
            report.to_string().replace('\n', "\n            ")
        );
        if !report.is_ok() {
            bail!(
                "{}: the graph check found {} problems",
                a.file.display(),
                report.problems.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fmt_g9;

    #[test]
    fn fmt_g9_writes_what_printf_writes() {
        // Pairs from C's printf("%.9g", (double)(float)x).
        let cases: [(f32, &str); 17] = [
            (0.1, "0.100000001"),
            (1_234_567.9, "1234567.88"),
            (1e-5, "9.99999975e-06"),
            (123456789.0, "123456792"),
            (1e10, "1e+10"),
            (0.0001, "9.99999975e-05"),
            (2.5, "2.5"),
            (-3.75, "-3.75"),
            (1.0, "1"),
            (100.0, "100"),
            (0.0005, "0.000500000024"),
            (987_654.3, "987654.312"),
            (3.4e38, "3.39999995e+38"),
            (1e-40, "9.9999461e-41"),
            (99999999.5, "100000000"),
            (0.0, "0"),
            (f32::INFINITY, "inf"),
        ];
        for (x, want) in cases {
            assert_eq!(fmt_g9(x), want, "{x:e}");
        }
    }
}
