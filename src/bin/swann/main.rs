//! The `swann` command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod lsh;

#[derive(Parser, Debug)]
#[command(
    name = "swann",
    version,
    about = "Approximate nearest-neighbour search on runtime-dispatched SIMD kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Locality-sensitive hashing (NearPy's engine).
    Lsh(lsh::LshArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Lsh(args) => lsh::run(args),
    }
}
