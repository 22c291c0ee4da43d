//! The Rust half of `bench/run.sh`: the same single-threaded search loop
//! as `bench_capi.c`, calling `swann::index::hnsw` directly, so the cost of
//! the C ABI shows as the ratio of the two rates.
//!
//! ```text
//! bench_rust search INDEX QUERIES K EF PASSES   # prints one result line
//! bench_rust gen OUT.fvecs ROWS DIM SEED        # random data for smoke runs
//! ```
//!
//! QUERIES is an `.fvecs` or `.bvecs` file. The result line holds the best
//! pass's queries per second by the wall clock (`qps`) and by the thread's
//! CPU clock (`cpu_qps`, steadier on a busy machine), and a checksum of
//! every label returned (the C side prints the same checksum when it did
//! the same work).

use std::process::ExitCode;
use std::time::Instant;

use swann::index::hnsw::Hnsw;
use swann::io::{read_bvecs, read_fvecs, write_fvecs, Matrix};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i)
        .ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("{what} {:?} is not valid", args[i]))
}

fn read_queries(path: &str) -> Result<Matrix<f32>, String> {
    let m = if path.ends_with(".bvecs") {
        read_bvecs(path)
    } else if path.ends_with(".fvecs") {
        read_fvecs(path)
    } else {
        return Err(format!("{path}: expected an .fvecs or .bvecs file"));
    };
    m.map_err(|e| format!("{path}: {e}"))
}

fn search(args: &[String]) -> Result<(), String> {
    let index_path: String = arg(args, 2, "INDEX")?;
    let queries = read_queries(&arg::<String>(args, 3, "QUERIES")?)?;
    let k: usize = arg(args, 4, "K")?;
    let ef: usize = arg(args, 5, "EF")?;
    let passes: usize = arg(args, 6, "PASSES")?;
    let index = Hnsw::load(&index_path).map_err(|e| format!("{index_path}: {e}"))?;
    if queries.dim != index.dim() {
        return Err(format!(
            "queries have dimension {}, the index {}",
            queries.dim,
            index.dim()
        ));
    }
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut checksum = 0u64;
    for _ in 0..passes.max(1) {
        checksum = 0;
        let start = Instant::now();
        let cpu_start = thread_cpu_seconds();
        for q in queries.iter_rows() {
            let hits = index.search(q, k, ef).map_err(|e| e.to_string())?;
            for h in &hits {
                checksum = checksum.wrapping_mul(31).wrapping_add(h.label);
            }
        }
        best_cpu = best_cpu.min(thread_cpu_seconds() - cpu_start);
        best = best.min(start.elapsed().as_secs_f64());
    }
    let n = queries.rows() as f64;
    println!(
        "rust queries={} k={k} ef={ef} qps={:.1} cpu_qps={:.1} checksum={checksum}",
        queries.rows(),
        n / best,
        n / best_cpu
    );
    Ok(())
}

/// CPU time this thread has used, in seconds: unlike wall time, it does not
/// count the time other processes hold the core.
fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec, and CLOCK_THREAD_CPUTIME_ID
    // is a clock every Linux and macOS libc provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn gen(args: &[String]) -> Result<(), String> {
    let out: String = arg(args, 2, "OUT")?;
    let rows: usize = arg(args, 3, "ROWS")?;
    let dim: usize = arg(args, 4, "DIM")?;
    let mut s: u64 = arg(args, 5, "SEED")?;
    s |= 1;
    let data = (0..rows * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    write_fvecs(&out, &Matrix { dim, data }).map_err(|e| format!("{out}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("search") => search(&args),
        Some("gen") => gen(&args),
        _ => {
            Err("usage: bench_rust search INDEX QUERIES K EF PASSES | gen OUT ROWS DIM SEED".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_rust: {e}");
            ExitCode::FAILURE
        }
    }
}
