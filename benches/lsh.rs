//! LSH engine benchmarks on generated data: storing a data set and querying
//! it, with one and with four random binary projection hashes of 10 bits
//! (NearPy's default hash, and the several-hash configuration compared with
//! NearPy in the README), unique + nearest-10 filters, cosine distance.
//!
//! Data: 20,000 points in 128 dimensions around 50 Gaussian centres, shifted
//! to be non-negative like SIFT descriptors, and 200 queries from the same
//! distribution (seeded, so every run sees the same set).
//!
//! `lsh_query_screened` stores 100,000 such points (51 MB, past most
//! last-level caches) and queries them with and without screening (byte
//! codes that bound each candidate's distance, so only rows that can make
//! the nearest 10 are read), after a first query has coded the arena.
//!
//! `cargo bench --bench lsh -- --test` runs each benchmark once, as a check.

mod common;

use common::Clusters;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swann::index::lsh::{Engine, Filter, LshHash, MemoryStorage};
use swann::Metric;

const DIM: usize = 128;
const N: usize = 20_000;
const NQ: usize = 200;
const BITS: usize = 10;

const DATA: Clusters = Clusters {
    dim: DIM,
    centre_offset: 3.0,
    spread: 0.6,
    non_negative: true,
};

fn engine(hashes: usize) -> Engine<u32> {
    engine_with(hashes, MemoryStorage::new())
}

fn engine_with(hashes: usize, storage: MemoryStorage<u32>) -> Engine<u32> {
    Engine::builder(DIM)
        .hashes((0..hashes).map(|i| {
            LshHash::random_binary(&format!("rbp{i}"), DIM, BITS, 1000 + i as u64)
                .expect("valid hash")
        }))
        .metric(Metric::Cosine)
        .filters([Filter::Unique, Filter::Nearest(10)])
        .build_with_storage::<u32, _>(storage)
        .expect("valid engine")
}

/// Runs every query once; the number of results found.
fn query_all(e: &Engine<u32>, queries: &[f32]) -> usize {
    queries
        .chunks_exact(DIM)
        .map(|q| e.neighbours(q).expect("valid query").len())
        .sum()
}

fn bench_store(c: &mut Criterion) {
    let base = DATA.points(N, 1);
    let mut g = c.benchmark_group("lsh_store");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    for hashes in [1usize, 4] {
        let mut e = engine(hashes);
        g.bench_with_input(
            BenchmarkId::new("one_call_per_vector", format!("{hashes}_hashes")),
            &hashes,
            |b, _| {
                b.iter(|| {
                    e.clean_all_buckets().expect("memory storage");
                    for (i, v) in base.chunks_exact(DIM).enumerate() {
                        e.store(v, i as u32).expect("valid vector");
                    }
                })
            },
        );
    }
    g.finish();
}

fn bench_query(c: &mut Criterion) {
    let base = DATA.points(N, 1);
    let queries = DATA.points(NQ, 2);
    let mut g = c.benchmark_group("lsh_query");
    g.sample_size(10);
    g.throughput(Throughput::Elements(NQ as u64));
    for hashes in [1usize, 4] {
        let mut e = engine(hashes);
        for (i, v) in base.chunks_exact(DIM).enumerate() {
            e.store(v, i as u32).expect("valid vector");
        }
        g.bench_with_input(
            BenchmarkId::new("neighbours", format!("{hashes}_hashes")),
            &hashes,
            |b, _| b.iter(|| query_all(&e, &queries)),
        );
    }
    g.finish();
}

fn bench_query_screened(c: &mut Criterion) {
    const BIG: usize = 100_000;
    let base = DATA.points(BIG, 3);
    let queries = DATA.points(NQ, 2);
    let mut g = c.benchmark_group("lsh_query_screened");
    g.sample_size(10);
    g.throughput(Throughput::Elements(NQ as u64));
    for (name, threshold) in [("screened", 0), ("every_row_read", usize::MAX)] {
        let mut e = engine_with(4, MemoryStorage::new().with_screen_threshold(threshold));
        for (i, v) in base.chunks_exact(DIM).enumerate() {
            e.store(v, i as u32).expect("valid vector");
        }
        e.neighbours(&queries[..DIM]).expect("valid query");
        g.bench_function(BenchmarkId::new(name, "4_hashes_100k"), |b| {
            b.iter(|| query_all(&e, &queries))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_store, bench_query, bench_query_screened);
criterion_main!(benches);
