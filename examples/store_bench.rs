//! Measures what the file format buys on a real data set: how long
//! `Hnsw::open_mmap` and `Hnsw::load` take, and whether a mapped index
//! searches as fast as an in-memory one once its pages are resident.
//!
//! ```text
//! cargo run --release --example store_bench -- BASE.bvecs QUERY.bvecs GT.ivecs OUT_DIR
//! ```
//!
//! Builds an HNSW index (M=16, ef_construction=200, squared L2) unless
//! `OUT_DIR/index.swann` exists, then prints one `key=value` line per
//! measurement. `scripts/store_bench.py` runs it beside hnswlib.

use std::time::Instant;

use swann::index::hnsw::Hnsw;
use swann::io::{read_bvecs, read_ivecs};
use swann::store::OpenOptions;
use swann::Metric;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Queries per second (one thread) and recall@10 at ef=64.
fn qps(index: &Hnsw, queries: &swann::io::Matrix<f32>, gt: &swann::io::Matrix<i32>) -> (f64, f64) {
    let t = Instant::now();
    let mut hits = 0usize;
    for (i, q) in queries.iter_rows().enumerate() {
        let res = index.search(q, 10, 64).unwrap();
        let truth = &gt.row(i)[..10];
        hits += res
            .iter()
            .filter(|n| truth.contains(&(n.label as i32)))
            .count();
    }
    let secs = t.elapsed().as_secs_f64();
    (
        queries.rows() as f64 / secs,
        hits as f64 / (10 * queries.rows()) as f64,
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, queries, gt, out] = &args[..] else {
        return Err("usage: store_bench BASE.bvecs QUERY.bvecs GT.ivecs OUT_DIR".into());
    };
    let queries = read_bvecs(queries)?;
    let gt = read_ivecs(gt)?;
    std::fs::create_dir_all(out)?;
    let path = std::path::Path::new(out).join("index.swann");
    if !path.exists() {
        let base = read_bvecs(base)?;
        let n = base.rows();
        let t = Instant::now();
        let mut index = Hnsw::builder(base.dim, Metric::L2)
            .m(16)
            .ef_construction(200)
            .capacity(n)
            .build()?;
        let labels: Vec<u64> = (0..n as u64).collect();
        index.insert_batch(&labels, &base.data)?;
        println!("build_secs={:.1}", t.elapsed().as_secs_f64());
        index.save(&path)?;
    }
    println!("file_bytes={}", std::fs::metadata(&path)?.len());

    // Open: many mapped opens (each maps, checks header and table, drops).
    let mut opens = Vec::new();
    for _ in 0..501 {
        let t = Instant::now();
        let idx = Hnsw::open_mmap(&path, OpenOptions::default())?;
        opens.push(t.elapsed().as_secs_f64());
        drop(idx);
    }
    println!("open_mmap_median_us={:.1}", median(opens) * 1e6);
    let mut loads = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let idx = Hnsw::load(&path)?;
        loads.push(t.elapsed().as_secs_f64());
        drop(idx);
    }
    println!("load_median_ms={:.1}", median(loads) * 1e3);

    // Search: the same graph in memory and mapped, pages made resident by
    // a warm-up pass; rounds alternate so drift hits both alike.
    let owned = Hnsw::load(&path)?;
    let mapped = Hnsw::open_mmap(&path, OpenOptions::default())?;
    qps(&owned, &queries, &gt);
    qps(&mapped, &queries, &gt);
    let (mut q_owned, mut q_mapped) = (Vec::new(), Vec::new());
    let mut recall = (0.0, 0.0);
    for _ in 0..7 {
        let (q, r) = qps(&owned, &queries, &gt);
        q_owned.push(q);
        recall.0 = r;
        let (q, r) = qps(&mapped, &queries, &gt);
        q_mapped.push(q);
        recall.1 = r;
    }
    let (a, b) = (median(q_owned), median(q_mapped));
    println!("qps_in_memory={a:.0} recall={:.4}", recall.0);
    println!("qps_mapped={b:.0} recall={:.4}", recall.1);
    println!("qps_mapped_over_in_memory={:.3}", b / a);
    Ok(())
}
