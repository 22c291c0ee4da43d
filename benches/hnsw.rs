//! Index benchmarks on generated data: HNSW build and search, with the flat
//! (exact) index as the baseline in the same groups, and searches of an
//! index most of whose labels are deleted.
//!
//! Data: 20,000 points in 64 dimensions around 50 Gaussian centres, 200
//! queries from the same distribution (seeded, so every run sees the same set).

mod common;

use common::Clusters;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swann::index::flat::FlatIndex;
use swann::index::hnsw::{Hnsw, Quantization};
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
    build_quantized(base, Quantization::None)
}

fn build_quantized(base: &[f32], quant: Quantization) -> Hnsw {
    let mut index = Hnsw::builder(DIM, Metric::L2)
        .quantization(quant)
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

/// Searches among deleted labels: only live nodes count towards `ef`
/// (hnswlib's rule), so the fewer are live, the more a search expands
/// before it holds `ef` of them. The pq4 search (on neighbour records,
/// [`Quantization::Pq4`]) against the search on the vectors a filter
/// takes (two heaps, as hnswlib's) on the same index, as ever more labels
/// are deleted (each share deletes more of the same labels).
fn bench_search_deleted(c: &mut Criterion) {
    let base = DATA.points(N, 1);
    let queries = DATA.points(NQ, 2);
    let index = build_quantized(&base, Quantization::Pq4);
    let mut g = c.benchmark_group("search_deleted_k10_ef16");
    g.throughput(Throughput::Elements(NQ as u64));
    g.sample_size(10);
    let mut kept = 1;
    for keep in [2usize, 10, 100, 1000] {
        // Labels deleted at a higher live share are deleted already.
        for label in (0..N).filter(|l| l % kept == 0 && l % keep != 0) {
            index.mark_deleted(label as u64).expect("a live label");
        }
        kept = keep;
        let live = format!("1-in-{keep}-live");
        g.bench_function(BenchmarkId::new("pq4-records", &live), |b| {
            b.iter(|| {
                for q in queries.chunks(DIM) {
                    std::hint::black_box(index.search(q, 10, 16).expect("valid"));
                }
            })
        });
        g.bench_function(BenchmarkId::new("vectors-two-heaps", &live), |b| {
            b.iter(|| {
                for q in queries.chunks(DIM) {
                    let found = index.search_with_filter(q, 10, 16, |_| true);
                    std::hint::black_box(found.expect("valid"));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_build, bench_search, bench_search_deleted);
criterion_main!(benches);
