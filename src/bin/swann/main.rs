//! `swann`: build, benchmark and inspect indexes from standard vector files.

mod common;
mod forest;
mod hnsw;

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
    /// Build an index, sweep its search knob and report recall, QPS, build time and memory.
    #[command(subcommand)]
    Bench(Bench),
    /// Build an index from a vector file and save it.
    #[command(subcommand)]
    Build(Build),
}

#[derive(Subcommand, Debug)]
enum Build {
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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(Bench::Hnsw(a)) => hnsw::bench_hnsw(a),
        Command::Bench(Bench::Flat(a)) => hnsw::bench_flat(a),
        Command::Bench(Bench::Forest(a)) => forest::bench_forest(a),
        Command::Build(Build::Forest(a)) => forest::build_forest(a),
    }
}
