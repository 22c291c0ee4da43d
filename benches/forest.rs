//! Index benchmarks on generated data: random-projection forest build and
//! search, with the flat (exact) index as the baseline in the same groups.
//!
//! Data: 20,000 points in 64 dimensions around 50 Gaussian centres, 200
//! queries from the same distribution (seeded, so every run sees the same
//! set), as in `benches/hnsw.rs`.

mod common;

use common::Clusters;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swann::index::flat::FlatIndex;
use swann::index::forest::Forest;
use swann::Metric;

const DIM: usize = 64;
const N: usize = 20_000;
const NQ: usize = 200;
const TREES: usize = 20;

const DATA: Clusters = Clusters {
    dim: DIM,
    centre_offset: 0.0,
    spread: 0.4,
    non_negative: false,
};

/// Adds every row and builds `trees` trees with `threads` threads.
fn build_forest(base: &[f32], trees: usize, threads: usize) -> Forest {
    let mut forest = Forest::new(DIM, Metric::Euclidean).expect("valid parameters");
    forest.set_seed(7);
    forest.reserve(N).expect("not built");
    for (i, row) in base.chunks(DIM).enumerate() {
        forest.add_item(i as u32, row).expect("valid data");
    }
    forest
        .build(trees, Some(threads))
        .expect("valid parameters");
    forest
}

fn bench_build(c: &mut Criterion) {
    let base = DATA.points(N, 1);
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    for threads in [1, 2] {
        g.bench_function(
            BenchmarkId::new("forest", format!("trees{TREES}-threads{threads}")),
            |b| b.iter(|| build_forest(&base, TREES, threads)),
        );
    }
    g.bench_function(BenchmarkId::new("flat", "copy"), |b| {
        b.iter(|| {
            let mut f = FlatIndex::new(DIM, Metric::L2).expect("valid");
            f.add_rows(0, &base).expect("valid");
            f
        })
    });
    g.finish();
}

fn bench_search(c: &mut Criterion) {
    let base = DATA.points(N, 1);
    let queries = DATA.points(NQ, 2);
    let forest = build_forest(&base, TREES, 2);
    let mut flat = FlatIndex::new(DIM, Metric::L2).expect("valid");
    flat.add_rows(0, &base).expect("valid");
    let mut g = c.benchmark_group("search_k10");
    g.throughput(Throughput::Elements(NQ as u64));
    // search_k = n_trees * k * {1, 4, 16}: Annoy's default and two more.
    for mult in [1, 4, 16] {
        let search_k = TREES * 10 * mult;
        g.bench_with_input(
            BenchmarkId::new("forest", format!("trees{TREES}-search_k{search_k}")),
            &search_k,
            |b, &search_k| {
                let mut out = Vec::with_capacity(10);
                b.iter(|| {
                    for q in queries.chunks(DIM) {
                        forest
                            .nns_by_vector_into(q, 10, Some(search_k), &mut out)
                            .expect("valid");
                        std::hint::black_box(&out);
                    }
                })
            },
        );
    }
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("flat", "exact"), |b| {
        b.iter(|| {
            for q in queries.chunks(DIM) {
                std::hint::black_box(flat.search(q, 10).expect("valid"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_build, bench_search);
criterion_main!(benches);
