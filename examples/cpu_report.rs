//! What swann's kernels see on this machine, and what they cost.
//!
//! ```text
//! cargo run --release --example cpu_report
//! cargo run --release --example cpu_report -- --compare
//! ```
//!
//! Prints the ISA dispatch picked, which ISAs are compiled into this build,
//! the CPU features the run-time detection reads, and for every kernel and
//! every ISA this CPU runs the time per call at a few dimensions, measured on
//! generated data with `std::time::Instant` (best of several rounds, each long
//! enough to dwarf the timer's resolution). Takes a few seconds.
//!
//! `--compare` adds dot, squared L2, cosine and Hamming against two
//! baselines, the plain iterator code and (on x86-64) the `simsimd` crate,
//! measured interleaved (every candidate once per round, best of many short
//! rounds), which keeps ratios meaningful on a busy machine; and an estimate
//! of the core clock (from dependent `imul` and `add` chains, reported only
//! when the two agree), from which it derives how close `dot` at dimension
//! 384 comes to the two-loads-per-cycle limit.

use std::hint::black_box;
use std::time::{Duration, Instant};

use swann::kernels::{self, Isa, KernelTable};

const DIMS: [usize; 3] = [128, 768, 1536];
/// Each timed round runs at least this long.
const ROUND: Duration = Duration::from_millis(5);
const ROUNDS: usize = 5;

fn main() {
    println!("swann {} kernel report", env!("CARGO_PKG_VERSION"));
    println!();
    println!("active ISA        : {}", kernels::active().isa());
    println!("detected ISA      : {}", Isa::detected());
    if let Ok(v) = std::env::var("SWANN_ISA") {
        println!("SWANN_ISA         : {v:?}");
    }
    let compiled: Vec<&str> = Isa::ALL
        .iter()
        .filter(|i| i.is_compiled())
        .map(|i| i.name())
        .collect();
    println!("compiled in       : {}", compiled.join(", "));
    let available: Vec<&str> = Isa::available().iter().map(|i| i.name()).collect();
    println!("available here    : {}", available.join(", "));
    println!("CPU reports       : {}", cpu_features());
    println!();

    let tables: Vec<&'static KernelTable> = Isa::available()
        .iter()
        .filter_map(|&i| KernelTable::for_isa(i))
        .collect();

    print!("{:<12}{:>7}", "kernel", "dim");
    for t in &tables {
        print!("{:>12}", format!("{} ns", t.isa()));
    }
    if tables.len() > 1 {
        print!("{:>14}", "best/scalar");
    }
    println!();

    let started = Instant::now();
    for kernel in [
        "dot",
        "l2sq",
        "cosine",
        "manhattan",
        "normalize",
        "widen_u8",
        "hamming",
    ] {
        for dim in DIMS {
            let label = if kernel == "hamming" {
                format!("{}b", dim * 8)
            } else {
                dim.to_string()
            };
            print!("{kernel:<12}{label:>7}");
            let mut times = Vec::new();
            for t in &tables {
                let ns = time_kernel(t, kernel, dim);
                times.push(ns);
                print!("{ns:>12.1}");
            }
            if tables.len() > 1 {
                let best = times.iter().copied().fold(f64::INFINITY, f64::min);
                print!("{:>13.1}x", times[0] / best);
            }
            println!();
        }
    }
    println!();
    println!(
        "hamming rows are bit-packed vectors of dim x 8 bits ({} u64 words for dim {}).",
        DIMS[0] / 8,
        DIMS[0]
    );

    // The integer kernels differ between variants of one ISA (VNNI,
    // AVX-VNNI, dotprod), so they get a column per variant.
    let variants: Vec<&'static KernelTable> = Isa::available()
        .iter()
        .flat_map(|&i| KernelTable::variants(i).iter().copied())
        .collect();
    println!();
    println!("8-bit integer kernels, every variant this CPU runs (ns per call):");
    print!("{:<12}{:>7}", "kernel", "dim");
    for t in &variants {
        print!("{:>w$}", t.variant(), w = t.variant().len().max(8) + 2);
    }
    println!();
    for kernel in ["dot_u8i8", "l2sq_u8"] {
        for dim in DIMS {
            print!("{kernel:<12}{dim:>7}");
            for t in &variants {
                let ns = time_kernel(t, kernel, dim);
                print!("{ns:>w$.1}", w = t.variant().len().max(8) + 2);
            }
            println!();
        }
    }

    // The 4-bit FastScan kernel is the same in every variant of an ISA.
    println!();
    println!("4-bit FastScan, 32 vectors per block (ns per block):");
    print!("{:<12}{:>7}{:>7}", "kernel", "m", "blocks");
    for t in &tables {
        print!("{:>12}", format!("{} ns", t.isa()));
    }
    if tables.len() > 1 {
        print!("{:>14}", "best/scalar");
    }
    println!();
    for m in [32, 64, 96] {
        for blocks in [1, 8] {
            print!("{:<12}{m:>7}{blocks:>7}", "fastscan_u4");
            let times: Vec<f64> = tables
                .iter()
                .map(|t| time_fastscan(t, m, blocks) / blocks as f64)
                .collect();
            for ns in &times {
                print!("{ns:>12.1}");
            }
            if tables.len() > 1 {
                let best = times.iter().copied().fold(f64::INFINITY, f64::min);
                print!("{:>13.1}x", times[0] / best);
            }
            println!();
        }
    }
    println!();
    println!("measured in {:.1} s", started.elapsed().as_secs_f64());

    if std::env::args().any(|a| a == "--compare") {
        compare(&tables);
    }
}

/// Best nanoseconds per call of each candidate, measured interleaved: each
/// round runs every candidate `calls` times in turn, so a burst of load from
/// elsewhere hits them alike, and the best round is kept.
fn interleaved(
    cands: &mut [Box<dyn FnMut() -> f32 + '_>],
    rounds: usize,
    calls: usize,
) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; cands.len()];
    for _ in 0..rounds {
        for (k, f) in cands.iter_mut().enumerate() {
            let t0 = Instant::now();
            for _ in 0..calls {
                black_box(f());
            }
            best[k] = best[k].min(t0.elapsed().as_nanos() as f64 / calls as f64);
        }
    }
    best
}

fn iter_kernel(kernel: &str, a: &[f32], b: &[f32]) -> f32 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
    match kernel {
        "dot" => dot(a, b),
        "l2sq" => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>(),
        _ => 1.0 - dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt()),
    }
}

#[cfg(target_arch = "x86_64")]
fn simsimd_kernel(kernel: &str, a: &[f32], b: &[f32]) -> Option<f32> {
    use simsimd::SpatialSimilarity;
    let d = match kernel {
        "dot" => f32::dot(a, b),
        "l2sq" => f32::sqeuclidean(a, b),
        _ => <f32 as SpatialSimilarity>::cos(a, b),
    };
    d.map(|x| x as f32)
}

#[cfg(not(target_arch = "x86_64"))]
fn simsimd_kernel(_: &str, _: &[f32], _: &[f32]) -> Option<f32> {
    None
}

#[cfg(target_arch = "x86_64")]
fn simsimd_hamming(a: &[u64], b: &[u64]) -> Option<u32> {
    use simsimd::BinarySimilarity;
    let (a, b): (&[u8], &[u8]) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
    u8::hamming(a, b).map(|x| x as u32)
}

#[cfg(not(target_arch = "x86_64"))]
fn simsimd_hamming(_: &[u64], _: &[u64]) -> Option<u32> {
    None
}

/// 64-byte aligned copy of `v` (rows of the index store are aligned so).
fn aligned<T: Copy + Default>(v: &[T]) -> (Vec<T>, usize) {
    let mut buf = vec![T::default(); v.len() + 64];
    let start = buf.as_ptr().align_offset(64);
    buf[start..start + v.len()].copy_from_slice(v);
    (buf, start)
}

fn compare(tables: &[&'static KernelTable]) {
    const ROUNDS: usize = 150;
    println!();
    println!("baselines: iter = plain iterator code for the default target; simsimd = the simsimd crate (its own dispatch)");
    println!("inputs 64-byte aligned; ns per call, best of {ROUNDS} interleaved rounds; ratio = baseline time / swann time");
    let has_simsimd = cfg!(target_arch = "x86_64");
    let mut dot384_ns = None;
    for kernel in ["dot", "l2sq", "cosine", "hamming"] {
        println!();
        print!(
            "{kernel:<8}{:>7}",
            if kernel == "hamming" { "bits" } else { "dim" }
        );
        for t in tables {
            print!("{:>10}", t.isa().name());
        }
        print!("{:>10}{:>10}", "iter", "simsimd");
        for t in tables.iter().filter(|t| t.isa() != Isa::Scalar) {
            print!("{:>13}", format!("{}/iter", t.isa().name()));
            if has_simsimd {
                print!("{:>15}", format!("{}/simsimd", t.isa().name()));
            }
        }
        println!();
        let sizes: &[usize] = if kernel == "hamming" {
            &[256, 1024, 4096, 8192]
        } else {
            &[96, 128, 256, 384, 768, 1024, 1536]
        };
        for &size in sizes {
            let results = if kernel == "hamming" {
                let n = size / 64;
                let wa: Vec<u64> = (0..n as u64)
                    .map(|i| (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .collect();
                let wb: Vec<u64> = (0..n as u64)
                    .map(|i| (i + 7).wrapping_mul(0x85eb_ca6b_27d4_eb4f))
                    .collect();
                let ((ba, sa), (bb, sb)) = (aligned(&wa), aligned(&wb));
                let (a, b) = (&ba[sa..sa + n], &bb[sb..sb + n]);
                let mut cands: Vec<Box<dyn FnMut() -> f32 + '_>> = Vec::new();
                for &t in tables {
                    cands.push(Box::new(move || {
                        t.hamming(black_box(a), black_box(b)) as f32
                    }));
                }
                cands.push(Box::new(move || {
                    let (a, b) = (black_box(a), black_box(b));
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| (x ^ y).count_ones())
                        .sum::<u32>() as f32
                }));
                cands.push(Box::new(move || {
                    simsimd_hamming(black_box(a), black_box(b)).unwrap_or(0) as f32
                }));
                interleaved(&mut cands, ROUNDS, 1000)
            } else {
                let ((ba, sa), (bb, sb)) = (aligned(&vector(size, 1)), aligned(&vector(size, 2)));
                let (a, b) = (&ba[sa..sa + size], &bb[sb..sb + size]);
                let mut cands: Vec<Box<dyn FnMut() -> f32 + '_>> = Vec::new();
                for &t in tables {
                    cands.push(Box::new(move || {
                        let (a, b) = (black_box(a), black_box(b));
                        match kernel {
                            "dot" => t.dot(a, b),
                            "l2sq" => t.l2sq(a, b),
                            _ => t.cosine(a, b),
                        }
                    }));
                }
                cands.push(Box::new(move || {
                    iter_kernel(kernel, black_box(a), black_box(b))
                }));
                cands.push(Box::new(move || {
                    simsimd_kernel(kernel, black_box(a), black_box(b)).unwrap_or(0.0)
                }));
                interleaved(&mut cands, ROUNDS, 500)
            };
            let (iter_ns, simsimd_ns) = (results[tables.len()], results[tables.len() + 1]);
            print!("{:<8}{size:>7}", "");
            for ns in &results[..tables.len()] {
                print!("{ns:>10.2}");
            }
            print!("{iter_ns:>10.2}");
            if has_simsimd {
                print!("{simsimd_ns:>10.2}");
            } else {
                print!("{:>10}", "-");
            }
            for (t, ns) in tables
                .iter()
                .zip(&results)
                .filter(|(t, _)| t.isa() != Isa::Scalar)
            {
                print!("{:>12.2}x", iter_ns / ns);
                if has_simsimd {
                    print!("{:>14.2}x", simsimd_ns / ns);
                }
                if kernel == "dot" && size == 384 && t.isa() == Isa::Avx2 {
                    dot384_ns = Some(*ns);
                }
            }
            println!();
        }
    }

    println!();
    match (clock_ghz(), dot384_ns) {
        (Some(ghz), Some(ns)) => {
            let cycles = ns * ghz;
            // 384 floats per input, two inputs, 8 floats per 32-byte load: 96
            // loads; at two loads per cycle no implementation can take fewer
            // than 48 cycles.
            println!(
                "core clock ~{ghz:.2} GHz (dependent imul and add chains agree); avx2 dot at dim 384: {ns:.2} ns = {cycles:.0} cycles; \
                 load limit 48 cycles (96 x 32-byte loads at 2/cycle): {:.0}% of the limit",
                100.0 * 48.0 / cycles
            );
        }
        (Some(ghz), None) => {
            println!("core clock ~{ghz:.2} GHz (dependent imul and add chains agree)")
        }
        (None, Some(ns)) => println!(
            "core clock unknown (the imul and add chains disagree, or no estimate on this architecture); \
             avx2 dot at dim 384 reads 3,072 bytes in {ns:.2} ns: {:.0} GB/s from L1",
            3072.0 / ns
        ),
        (None, None) => {}
    }
}

/// Operations per nanosecond of a dependent chain of one instruction
/// (eight per loop iteration): the best of many short runs.
#[cfg(target_arch = "x86_64")]
fn chain_rate(imul: bool) -> f64 {
    const ITERS: u64 = 200_000;
    let mut best = f64::INFINITY;
    for _ in 0..300 {
        let t0 = Instant::now();
        let (mut x, mut n, y): (u64, u64, u64) = (3, ITERS, black_box(1));
        // SAFETY: register-only arithmetic and a local loop; touches no
        // memory and no stack, and leaves every other register alone.
        unsafe {
            if imul {
                std::arch::asm!(
                    "2:",
                    "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}",
                    "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}",
                    "dec {n}",
                    "jnz 2b",
                    x = inout(reg) x,
                    n = inout(reg) n,
                    options(nostack, nomem),
                );
            } else {
                std::arch::asm!(
                    "2:",
                    "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                    "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                    "dec {n}",
                    "jnz 2b",
                    x = inout(reg) x,
                    n = inout(reg) n,
                    y = in(reg) y,
                    options(nostack, nomem),
                );
            }
        }
        black_box((x, n));
        best = best.min(t0.elapsed().as_nanos() as f64);
    }
    (ITERS * 8) as f64 / best
}

/// The core clock, from two dependent chains whose latencies are the same on
/// every x86-64 core of the last fifteen years: 64-bit `imul` (3 cycles) and
/// register-register `add` (1 cycle). Chains of `add` with an immediate are
/// not used: newer cores (Intel Golden Cove and later) fold those at rename
/// and run several per cycle, which read as a 5.8 GHz "clock" on a 3 GHz
/// Xeon. When the two estimates disagree by more than 15% neither is
/// trusted and no clock is reported.
#[cfg(target_arch = "x86_64")]
fn clock_ghz() -> Option<f64> {
    let by_imul = 3.0 * chain_rate(true);
    let by_add = chain_rate(false);
    let (lo, hi) = (by_imul.min(by_add), by_imul.max(by_add));
    (hi <= 1.15 * lo).then_some(by_imul)
}

#[cfg(not(target_arch = "x86_64"))]
fn clock_ghz() -> Option<f64> {
    None
}

/// Nanoseconds per call of `kernel` on `t` at `dim` (see [`best_ns`]).
fn time_kernel(t: &KernelTable, kernel: &str, dim: usize) -> f64 {
    let a = vector(dim, 1);
    let b = vector(dim, 2);
    let mut scratch = a.clone();
    let bytes: Vec<u8> = (0..dim).map(|i| (i * 7) as u8).collect();
    let bytes2: Vec<u8> = (0..dim).map(|i| (i * 13 + 5) as u8).collect();
    let signed: Vec<i8> = bytes2.iter().map(|&b| b as i8).collect();
    // For Hamming, `dim` bytes of bits, i.e. dim / 8 words.
    let wa: Vec<u64> = a
        .iter()
        .step_by(8)
        .map(|x| x.to_bits() as u64 * 0x9e37_79b9)
        .collect();
    let wb: Vec<u64> = b
        .iter()
        .step_by(8)
        .map(|x| x.to_bits() as u64 * 0x85eb_ca6b)
        .collect();
    let mut call = || match kernel {
        "dot" => black_box(t.dot(black_box(&a), black_box(&b))),
        "l2sq" => black_box(t.l2sq(black_box(&a), black_box(&b))),
        "cosine" => black_box(t.cosine(black_box(&a), black_box(&b))),
        "manhattan" => black_box(t.manhattan(black_box(&a), black_box(&b))),
        "normalize" => black_box(t.normalize(black_box(&mut scratch))),
        "widen_u8" => {
            t.widen_u8(black_box(&bytes), black_box(&mut scratch));
            0.0
        }
        "hamming" => black_box(t.hamming(black_box(&wa), black_box(&wb))) as f32,
        "dot_u8i8" => black_box(t.dot_u8i8(black_box(&signed), black_box(&bytes))) as f32,
        "l2sq_u8" => black_box(t.l2sq_u8(black_box(&bytes2), black_box(&bytes))) as f32,
        _ => unreachable!("unknown kernel {kernel}"),
    };
    best_ns(|| {
        call();
    })
}

/// Nanoseconds per [`KernelTable::fastscan_u4`] call over `blocks`
/// consecutive blocks of `m` sub-spaces, timed as [`time_kernel`] times.
fn time_fastscan(t: &KernelTable, m: usize, blocks: usize) -> f64 {
    let lut: Vec<u8> = (0..m * 16).map(|i| (i * 37 + 11) as u8).collect();
    let codes: Vec<u8> = (0..blocks * 32 * m)
        .map(|i| ((i * 7) >> 2) as u8 & 15)
        .collect();
    let mut packed = Vec::new();
    kernels::fastscan::pack_blocks(&codes, m, &mut packed).expect("4-bit codes");
    let mut out = vec![0u32; blocks * 32];
    best_ns(|| {
        t.fastscan_u4(black_box(&lut), black_box(&packed), m, black_box(&mut out));
    })
}

/// The best of `ROUNDS` rounds of nanoseconds per `call`, each round
/// repeating it until it has run for `ROUND`.
fn best_ns(mut call: impl FnMut()) -> f64 {
    // Calibrate: double the batch until one batch takes a quarter round.
    let mut reps = 1u64;
    loop {
        let t0 = Instant::now();
        for _ in 0..reps {
            call();
        }
        if t0.elapsed() >= ROUND / 4 {
            break;
        }
        reps *= 2;
    }
    let reps = reps * 4;
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        for _ in 0..reps {
            call();
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / reps as f64);
    }
    best
}

fn vector(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
fn cpu_features() -> String {
    let checks = [
        ("sse4.2", is_x86_feature_detected!("sse4.2")),
        ("popcnt", is_x86_feature_detected!("popcnt")),
        ("avx", is_x86_feature_detected!("avx")),
        ("avx2", is_x86_feature_detected!("avx2")),
        ("fma", is_x86_feature_detected!("fma")),
        ("avx512f", is_x86_feature_detected!("avx512f")),
        ("avx512bw", is_x86_feature_detected!("avx512bw")),
        ("avx512cd", is_x86_feature_detected!("avx512cd")),
        ("avx512dq", is_x86_feature_detected!("avx512dq")),
        ("avx512vl", is_x86_feature_detected!("avx512vl")),
        (
            "avx512vpopcntdq",
            is_x86_feature_detected!("avx512vpopcntdq"),
        ),
    ];
    render(&checks)
}

#[cfg(target_arch = "aarch64")]
fn cpu_features() -> String {
    use std::arch::is_aarch64_feature_detected as has;
    let checks = [
        ("neon", has!("neon")),
        ("fp16", has!("fp16")),
        ("dotprod", has!("dotprod")),
        ("sve", has!("sve")),
        ("sve2", has!("sve2")),
    ];
    render(&checks)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn cpu_features() -> String {
    "(no SIMD ISA swann knows on this architecture)".to_string()
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn render(checks: &[(&str, bool)]) -> String {
    checks
        .iter()
        .map(|(name, on)| format!("{}{name}", if *on { "+" } else { "-" }))
        .collect::<Vec<_>>()
        .join(" ")
}
