//! `swann`: build, benchmark and inspect indexes from standard vector files.

mod common;
mod demo;
mod forest;
mod hnsw;
mod lsh;
mod lsh_experiment;
mod plot;
mod shard_cmds;
mod store_cmds;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Approximate nearest-neighbour search on runtime-dispatched SIMD kernels.
#[derive(Parser, Debug)]
#[command(name = "swann", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a clustered data set and benchmark HNSW on it: kernel
    /// dispatch, build time, recall@10 and queries per second.
    Demo(demo::Demo),
    /// Build an index, sweep its search knob and report recall, QPS, build time and memory.
    #[command(subcommand)]
    Bench(Bench),
    /// Draw recall against queries per second for result files (SVG).
    Plot(plot::PlotArgs),
    /// Build an index and save it to a file.
    #[command(subcommand)]
    Build(BuildCmd),
    /// Search an index file or a shard manifest (memory-mapped) with query vectors.
    Query(store_cmds::Query),
    /// Write the manifest of a set of shard files (for `query`, `bench index` and `ShardedIndex`).
    Manifest(shard_cmds::ManifestCmd),
    /// Print an index file's header and sections and check its checksums.
    Info(store_cmds::Info),
    /// Locality-sensitive hashing (NearPy's engine): experiments.
    Lsh(lsh::LshArgs),
}

#[derive(Subcommand, Debug)]
enum BuildCmd {
    #[command(flatten)]
    Store(store_cmds::Build),
    /// Random-projection forest (Annoy's method).
    Forest(forest::ForestBuild),
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// HNSW graph index.
    Hnsw(hnsw::HnswBench),
    /// Exact brute-force scan (the baseline).
    Flat(hnsw::FlatBench),
    /// Random-projection forest (Annoy's method).
    Forest(forest::ForestBench),
    /// HNSW removal: remove a share of an index, refill it, and compare
    /// recall, memory and file size with fresh builds (and `compact`).
    Churn(hnsw::ChurnBench),
    /// An index file or shard manifest already built: sweep ef, report recall and QPS.
    Index(shard_cmds::IndexBench),
}

/// Gives SIGPIPE back its default action, so that `swann query ... | head`
/// ends quietly when the reader closes the pipe, as other Unix tools do
/// (Rust's runtime ignores the signal, and a write to the closed pipe would
/// then panic inside `println!`).
#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: `signal` with `SIG_DFL` installs no handler code; it runs
    // first in `main`, before any other thread exists, so nothing races it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> Result<()> {
    #[cfg(unix)]
    default_sigpipe();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(a) => demo::demo(a),
        Command::Bench(Bench::Hnsw(a)) => hnsw::bench_hnsw(a),
        Command::Bench(Bench::Flat(a)) => hnsw::bench_flat(a),
        Command::Bench(Bench::Forest(a)) => forest::bench_forest(a),
        Command::Bench(Bench::Churn(a)) => hnsw::bench_churn(a),
        Command::Bench(Bench::Index(a)) => shard_cmds::bench_index(a),
        Command::Plot(a) => plot::plot(a),
        Command::Build(BuildCmd::Store(c)) => store_cmds::build(c),
        Command::Build(BuildCmd::Forest(a)) => forest::build_forest(a),
        Command::Query(a) => store_cmds::query(a),
        Command::Manifest(a) => shard_cmds::manifest(a),
        Command::Info(a) => store_cmds::info(a),
        Command::Lsh(a) => lsh::run(a),
    }
}
