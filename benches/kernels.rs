//! Kernel benchmarks: one criterion group per kernel, one line per ISA this
//! CPU runs and per dimension, plus two baselines in the same group:
//!
//! - `iter`: the obvious iterator code (`a.iter().zip(b).map(..).sum()`),
//!   compiled for the default target (no `-C target-cpu`), i.e. what a user
//!   gets without SIMD kernels;
//! - `simsimd` (x86-64 only): the `simsimd` crate's kernel for the same
//!   distance, with its own run-time dispatch (it picks its best ISA for this
//!   CPU, which may be AVX-512 where swann's line is AVX2: read the
//!   `simsimd uses ...` line printed at start).
//!
//! Inputs are small and reused, so they stay in L1: this measures the
//! kernels, not memory. The 8-bit integer groups (`dot_u8i8`, `l2sq_u8`)
//! have one line per variant (`avx512+vnni`, `avx2+avxvnni`, ...), since
//! those differ within an ISA; simsimd's line there is its `i8 x i8` kernel,
//! the nearest it has. They start on a 64-byte boundary, as rows of the
//! index store do (a 32-byte load that straddles two cache lines costs about
//! twice as much on current x86 cores, for every implementation alike). The
//! `fastscan_u4` group has one line per ISA and the plain loop over
//! unpacked codes as its baseline; `pq4_encode` (a 4-bit product
//! quantizer's encoder) has the encoder's loop over the centroids. `cargo bench --bench kernels -- --test` runs every
//! line once as a smoke test.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swann::kernels::{fastscan, F32Op, Isa, KernelTable};

const DIMS: [usize; 7] = [96, 128, 256, 384, 768, 1024, 1536];
const HAMMING_BITS: [usize; 4] = [256, 1024, 4096, 8192];

fn tables() -> Vec<&'static KernelTable> {
    Isa::available()
        .iter()
        .filter_map(|&isa| KernelTable::for_isa(isa))
        .collect()
}

/// `n` values starting on a 64-byte boundary, made by `gen`.
struct Aligned<T> {
    buf: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy + Default> Aligned<T> {
    fn new(n: usize, mut gen: impl FnMut() -> T) -> Self {
        let mut buf = vec![T::default(); n + 64 / std::mem::size_of::<T>()];
        let start = buf.as_ptr().align_offset(64);
        for x in &mut buf[start..start + n] {
            *x = gen();
        }
        Aligned { buf, start, len: n }
    }

    fn get(&self) -> &[T] {
        &self.buf[self.start..self.start + self.len]
    }
}

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Deterministic values in [-1, 1), 64-byte aligned.
fn vector(n: usize, seed: u64) -> Aligned<f32> {
    let mut r = xorshift(seed);
    Aligned::new(n, || ((r() >> 40) as f32 / (1u64 << 23) as f32) - 1.0)
}

/// Deterministic random words, 64-byte aligned.
fn words(n: usize, seed: u64) -> Aligned<u64> {
    Aligned::new(n, xorshift(seed))
}

fn iter_dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

fn iter_l2sq(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>()
}

fn iter_cosine(a: &[f32], b: &[f32]) -> f32 {
    let ab = iter_dot(a, b);
    let aa = iter_dot(a, a);
    let bb = iter_dot(b, b);
    1.0 - ab / (aa.sqrt() * bb.sqrt())
}

fn iter_manhattan(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>()
}

fn iter_hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x ^ y).count_ones())
        .sum::<u32>()
}

type TableFn = fn(&KernelTable, &[f32], &[f32]) -> f32;
type PlainFn = fn(&[f32], &[f32]) -> f32;

#[cfg(target_arch = "x86_64")]
mod simsimd_baseline {
    use simsimd::SpatialSimilarity;

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        f32::dot(a, b).expect("same length") as f32
    }
    pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
        f32::sqeuclidean(a, b).expect("same length") as f32
    }
    pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
        <f32 as SpatialSimilarity>::cos(a, b).expect("same length") as f32
    }
    pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
        use simsimd::BinarySimilarity;
        let (a, b): (&[u8], &[u8]) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
        u8::hamming(a, b).expect("same length") as u32
    }

    /// simsimd's `i8 x i8` dot product: its nearest kernel to `dot_u8i8`
    /// (it has no `u8 x i8` one), reading the same bytes.
    pub fn dot_i8(a: &[i8], b: &[i8]) -> f64 {
        i8::dot(a, b).expect("same length")
    }
    /// simsimd's `i8` squared L2: its nearest kernel to `l2sq_u8`.
    pub fn l2sq_i8(a: &[i8], b: &[i8]) -> f64 {
        i8::l2sq(a, b).expect("same length")
    }

    /// Which of its back-ends simsimd dispatches to on this CPU.
    pub fn describe() -> String {
        use simsimd::capabilities as c;
        let names = [
            ("sapphire", c::uses_sapphire()),
            ("genoa", c::uses_genoa()),
            ("ice", c::uses_ice()),
            ("skylake (AVX-512)", c::uses_skylake()),
            ("haswell (AVX2)", c::uses_haswell()),
        ];
        let on: Vec<&str> = names.iter().filter(|n| n.1).map(|n| n.0).collect();
        format!("simsimd uses: {}", on.join(", "))
    }
}

fn f32_group(
    c: &mut Criterion,
    name: &str,
    kernel: TableFn,
    plain: PlainFn,
    simd: Option<PlainFn>,
) {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(20);
    for dim in DIMS {
        let (a, b) = (vector(dim, 1), vector(dim, 2));
        let (a, b) = (a.get(), b.get());
        g.throughput(Throughput::Elements(dim as u64));
        for t in tables() {
            g.bench_with_input(BenchmarkId::new(t.isa().name(), dim), &dim, |bench, _| {
                bench.iter(|| kernel(t, black_box(a), black_box(b)))
            });
        }
        g.bench_with_input(BenchmarkId::new("iter", dim), &dim, |bench, _| {
            bench.iter(|| plain(black_box(a), black_box(b)))
        });
        if let Some(s) = simd {
            g.bench_with_input(BenchmarkId::new("simsimd", dim), &dim, |bench, _| {
                bench.iter(|| s(black_box(a), black_box(b)))
            });
        }
    }
    g.finish();
}

#[cfg(target_arch = "x86_64")]
fn simsimd_for(name: &str) -> Option<PlainFn> {
    match name {
        "dot" => Some(simsimd_baseline::dot),
        "l2sq" => Some(simsimd_baseline::l2sq),
        "cosine" => Some(simsimd_baseline::cosine),
        _ => None,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn simsimd_for(_: &str) -> Option<PlainFn> {
    None
}

fn bench_f32(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    eprintln!("{}", simsimd_baseline::describe());
    eprintln!(
        "swann ISAs here: {:?}",
        Isa::available()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
    );
    f32_group(
        c,
        "dot",
        |t, a, b| t.dot(a, b),
        iter_dot,
        simsimd_for("dot"),
    );
    f32_group(
        c,
        "l2sq",
        |t, a, b| t.l2sq(a, b),
        iter_l2sq,
        simsimd_for("l2sq"),
    );
    f32_group(
        c,
        "cosine",
        |t, a, b| t.cosine(a, b),
        iter_cosine,
        simsimd_for("cosine"),
    );
    f32_group(
        c,
        "manhattan",
        |t, a, b| t.manhattan(a, b),
        iter_manhattan,
        None,
    );
}

fn bench_hamming(c: &mut Criterion) {
    let mut g = c.benchmark_group("hamming");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(20);
    for bits in HAMMING_BITS {
        let n = bits / 64;
        let (a, b) = (words(n, 3), words(n, 4));
        let (a, b) = (a.get(), b.get());
        g.throughput(Throughput::Elements(bits as u64));
        for t in tables() {
            g.bench_with_input(BenchmarkId::new(t.isa().name(), bits), &bits, |bench, _| {
                bench.iter(|| t.hamming(black_box(a), black_box(b)))
            });
        }
        g.bench_with_input(BenchmarkId::new("iter", bits), &bits, |bench, _| {
            bench.iter(|| iter_hamming(black_box(a), black_box(b)))
        });
        #[cfg(target_arch = "x86_64")]
        g.bench_with_input(BenchmarkId::new("simsimd", bits), &bits, |bench, _| {
            bench.iter(|| simsimd_baseline::hamming(black_box(a), black_box(b)))
        });
    }
    g.finish();
}

fn bench_normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .sample_size(20);
    for dim in [128, 768, 1536] {
        let mut v = vector(dim, 5);
        let v = &mut v.buf[v.start..v.start + dim];
        g.throughput(Throughput::Elements(dim as u64));
        for t in tables() {
            g.bench_with_input(BenchmarkId::new(t.isa().name(), dim), &dim, |bench, _| {
                // Normalizing a unit vector again keeps the values stable
                // across iterations while doing the full work each time.
                bench.iter(|| t.normalize(black_box(&mut *v)))
            });
        }
    }
    g.finish();
}

/// One query against 256 rows resident in L2 (dim 128: 128 KiB), the shape
/// of a flat scan or of an HNSW neighbour list.
fn bench_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dot_batch");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(20);
    let rows = 256;
    for dim in [128, 768] {
        let q = vector(dim, 6);
        let data = vector(dim * rows, 7);
        let (q, data) = (q.get(), data.get());
        let mut out = vec![0.0f32; rows];
        g.throughput(Throughput::Elements((dim * rows) as u64));
        for t in tables() {
            g.bench_with_input(BenchmarkId::new(t.isa().name(), dim), &dim, |bench, _| {
                bench.iter(|| t.dot_batch(black_box(q), black_box(data), dim, &mut out))
            });
            g.bench_with_input(
                BenchmarkId::new(format!("{}-per-row", t.isa().name()), dim),
                &dim,
                |bench, _| {
                    bench.iter(|| {
                        for (o, row) in out.iter_mut().zip(data.chunks_exact(dim)) {
                            *o = t.dot(black_box(q), row);
                        }
                    })
                },
            );
        }
    }
    g.finish();
}

/// Cosine from one query to 256 rows picked at random from a 4,096-row
/// arena (dim 128: 2 MiB), the shape of an LSH engine's candidates: the
/// gather kernel (query prepared once, rows four at a time where the ISA
/// has that form) against the single kernel called per row.
fn bench_gather(c: &mut Criterion) {
    let mut g = c.benchmark_group("cosine_gather");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(20);
    let (arena_rows, picked, dim) = (4096, 256, 128);
    let q = vector(dim, 8);
    let data = vector(dim * arena_rows, 9);
    let (q, data) = (q.get(), data.get());
    let mut next = xorshift(10);
    let rows: Vec<u32> = (0..picked)
        .map(|_| (next() % arena_rows as u64) as u32)
        .collect();
    let mut out = vec![0.0f32; picked];
    g.throughput(Throughput::Elements((dim * picked) as u64));
    for t in tables() {
        let k = t.f32_kernel(F32Op::Cosine);
        g.bench_with_input(BenchmarkId::new(t.isa().name(), dim), &dim, |bench, _| {
            bench.iter(|| {
                let prepared = k.prepare(black_box(q));
                k.eval_gather(&prepared, black_box(data), dim, &rows, &mut out)
            })
        });
        g.bench_with_input(
            BenchmarkId::new(format!("{}-per-row", t.isa().name()), dim),
            &dim,
            |bench, _| {
                bench.iter(|| {
                    for (o, &r) in out.iter_mut().zip(&rows) {
                        let r = r as usize;
                        *o = k.eval(black_box(q), &data[r * dim..(r + 1) * dim]);
                    }
                })
            },
        );
    }
    g.finish();
}

/// The 8-bit integer kernels, one line per variant of every ISA this CPU
/// runs (VNNI, AVX-VNNI and dotprod variants beside the base tables), with
/// the plain iterator code and simsimd's `i8` kernels as baselines.
fn bench_int8(c: &mut Criterion) {
    let variants: Vec<&'static KernelTable> = Isa::available()
        .iter()
        .flat_map(|&isa| KernelTable::variants(isa).iter().copied())
        .collect();
    for op in ["dot_u8i8", "l2sq_u8"] {
        let mut g = c.benchmark_group(op);
        g.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500))
            .sample_size(20);
        for dim in DIMS {
            let mut r = xorshift(dim as u64);
            let a = Aligned::new(dim, || r() as u8);
            let b = Aligned::new(dim, || r() as u8);
            let (a, b) = (a.get(), b.get());
            let q: Vec<i8> = b.iter().map(|&x| x as i8).collect();
            #[cfg(target_arch = "x86_64")]
            let ai: Vec<i8> = a.iter().map(|&x| (x >> 1) as i8).collect();
            g.throughput(Throughput::Bytes(dim as u64));
            for t in &variants {
                g.bench_with_input(BenchmarkId::new(t.variant(), dim), &dim, |bench, _| {
                    if op == "dot_u8i8" {
                        bench.iter(|| t.dot_u8i8(black_box(&q), black_box(a)))
                    } else {
                        bench.iter(|| t.l2sq_u8(black_box(a), black_box(b)) as i32)
                    }
                });
            }
            g.bench_with_input(BenchmarkId::new("iter", dim), &dim, |bench, _| {
                if op == "dot_u8i8" {
                    bench.iter(|| {
                        black_box(&q)
                            .iter()
                            .zip(black_box(a))
                            .map(|(&x, &y)| i32::from(x) * i32::from(y))
                            .sum::<i32>()
                    })
                } else {
                    bench.iter(|| {
                        black_box(a)
                            .iter()
                            .zip(black_box(b))
                            .map(|(&x, &y)| {
                                let d = i32::from(x) - i32::from(y);
                                d * d
                            })
                            .sum::<i32>()
                    })
                }
            });
            #[cfg(target_arch = "x86_64")]
            g.bench_with_input(BenchmarkId::new("simsimd-i8", dim), &dim, |bench, _| {
                if op == "dot_u8i8" {
                    bench.iter(|| simsimd_baseline::dot_i8(black_box(&ai), black_box(&q)))
                } else {
                    bench.iter(|| simsimd_baseline::l2sq_i8(black_box(&ai), black_box(&q)))
                }
            });
        }
        g.finish();
    }
}

/// The 4-bit FastScan kernel, one line per ISA this CPU runs (every variant
/// of an ISA shares it), at `m` = 32, 64 and 96 sub-spaces over one block
/// (a node's 32 neighbours) and eight consecutive blocks; throughput in
/// vectors. The baseline `iter` is the plain loop over unpacked codes
/// (`sum over j of lut[j * 16 + code_j]`, one row of `m` bytes per vector).
fn bench_fastscan(c: &mut Criterion) {
    let mut g = c.benchmark_group("fastscan_u4");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .sample_size(20);
    for m in [32usize, 64, 96] {
        for blocks in [1usize, 8] {
            let mut r = xorshift((m * 100 + blocks) as u64);
            let lut = Aligned::new(m * 16, || r() as u8);
            let codes: Vec<u8> = (0..blocks * 32 * m).map(|_| r() as u8 & 15).collect();
            let mut packed = Vec::new();
            fastscan::pack_blocks(&codes, m, &mut packed).expect("4-bit codes");
            let packed = Aligned::new(packed.len(), {
                let mut it = packed.into_iter();
                move || it.next().unwrap_or(0)
            });
            let (lut, packed) = (lut.get(), packed.get());
            let mut out = vec![0u32; blocks * 32];
            let id = format!("m{m}x{blocks}");
            g.throughput(Throughput::Elements((blocks * 32) as u64));
            for t in tables() {
                g.bench_with_input(BenchmarkId::new(t.isa().name(), &id), &m, |bench, _| {
                    bench.iter(|| {
                        t.fastscan_u4(black_box(lut), black_box(packed), m, &mut out);
                        black_box(&out);
                    })
                });
            }
            g.bench_with_input(BenchmarkId::new("iter", &id), &m, |bench, _| {
                bench.iter(|| {
                    for (o, row) in out.iter_mut().zip(black_box(&codes).chunks_exact(m)) {
                        *o = row
                            .iter()
                            .enumerate()
                            .map(|(j, &c)| u32::from(lut[j * 16 + usize::from(c)]))
                            .sum();
                    }
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

/// Coding one vector with a 4-bit product quantizer (`pq4_encode`): per
/// sub-space the nearest of 16 centroids. Baseline `iter`: the loop over
/// the centroids a quantizer's encoder would write (the same codes).
fn bench_pq4_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("pq4_encode");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .sample_size(20);
    for (dim, width) in [(128usize, 1usize), (384, 2), (768, 4), (384, 3)] {
        let mut r = xorshift((dim * 10 + width) as u64);
        let v: Vec<f32> = (0..dim).map(|_| (r() % 1000) as f32 * 0.01).collect();
        let cent_t: Vec<f32> = (0..16 * dim).map(|_| (r() % 1000) as f32 * 0.01).collect();
        // The centroids sub-space by sub-space, each centroid's components
        // together, as an encoder loop reads them.
        let m = dim.div_ceil(width);
        let mut by_centroid = Vec::with_capacity(16 * dim);
        for j in 0..m {
            let range = j * width..((j + 1) * width).min(dim);
            for k in 0..16 {
                by_centroid.extend(range.clone().map(|d| cent_t[d * 16 + k]));
            }
        }
        let cent_e = swann::kernels::pq4_encode_layout(&cent_t, width);
        let mut codes = vec![0u8; m];
        let id = format!("d{dim}w{width}");
        g.throughput(Throughput::Elements(1));
        for t in tables() {
            g.bench_with_input(BenchmarkId::new(t.isa().name(), &id), &dim, |bench, _| {
                bench.iter(|| {
                    t.pq4_encode(black_box(&v), black_box(&cent_e), width, &mut codes);
                    black_box(&codes);
                })
            });
        }
        g.bench_with_input(BenchmarkId::new("iter", &id), &dim, |bench, _| {
            bench.iter(|| {
                let v = black_box(&v);
                for (j, code) in codes.iter_mut().enumerate() {
                    let range = j * width..((j + 1) * width).min(dim);
                    let w = range.len();
                    let cents = &black_box(&by_centroid)[16 * j * width..][..16 * w];
                    let mut best = (0u8, f32::INFINITY);
                    for (k, cent) in cents.chunks_exact(w).enumerate() {
                        let d: f32 = v[range.clone()]
                            .iter()
                            .zip(cent)
                            .map(|(&x, &y)| (x - y) * (x - y))
                            .sum();
                        if d < best.1 {
                            best = (k as u8, d);
                        }
                    }
                    *code = best.0;
                }
                black_box(&codes);
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_int8,
    bench_fastscan,
    bench_pq4_encode,
    bench_f32,
    bench_hamming,
    bench_normalize,
    bench_batch,
    bench_gather
);
criterion_main!(benches);
