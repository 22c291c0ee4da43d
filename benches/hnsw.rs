//! Index benchmarks on generated data: HNSW build and search, with the flat
//! (exact) index as the baseline in the same groups.
//!
//! Data: 20,000 points in 64 dimensions around 50 Gaussian centres, 200
//! queries from the same distribution (seeded, so every run sees the same set).

mod common;

use common::Clusters;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swann::index::flat::FlatIndex;
use swann::index::hnsw::Hnsw;
use swann::Metric;

const DIM: usize = 64;
const N: usize = 20_000;
const NQ: usize = 200;

const DATA: Clusters = Clusters {
    dim: DIM,
    centre_offset: 0.0,
    spread: 0.4,
    non_negative: false,
};

fn build_index(base: &[f32]) -> Hnsw {
    let mut index = Hnsw::builder(DIM, Metric::L2)
        .m(16)
        .ef_construction(100)
        .capacity(N)
        .build()
        .expect("valid parameters");
    let labels: Vec<u64> = (0..N as u64).collect();
    index.insert_batch(&labels, base).expect("valid data");
    index
}

fn bench_build(c: &mut Criterion) {
    let base = DATA.points(N, 1);
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("hnsw", "M16-efc100"), |b| {
        b.iter(|| build_index(&base))
    });
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
    let index = build_index(&base);
    let mut flat = FlatIndex::new(DIM, Metric::L2).expect("valid");
    flat.add_rows(0, &base).expect("valid");
    let mut g = c.benchmark_group("search_k10");
    g.throughput(Throughput::Elements(NQ as u64));
    for ef in [16, 64, 256] {
        g.bench_with_input(
            BenchmarkId::new("hnsw", format!("ef{ef}")),
            &ef,
            |b, &ef| {
                b.iter(|| {
                    for q in queries.chunks(DIM) {
                        std::hint::black_box(index.search(q, 10, ef).expect("valid"));
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
