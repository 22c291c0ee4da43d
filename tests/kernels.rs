//! Every kernel of every ISA this machine runs, against a reference computed
//! in `f64`.
//!
//! # Tolerances
//!
//! All bounds come from the standard forward error analysis of floating-point
//! sums (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3-4),
//! with unit roundoff `u = 2^-24` for `f32` and `gamma(k) = k u / (1 - k u)`:
//!
//! - A dot product of length `n`, summed in any order (lanes, unrolled
//!   accumulators, a final horizontal add) and with or without FMA, is off by
//!   at most `gamma(n) * sum |a_i b_i|`: each term passes through at most
//!   `n - 1` additions plus its own product's rounding. Adding the zeros of
//!   masked lanes is exact and does not count.
//! - Squared L2 adds one rounding for `a_i - b_i`, which is squared:
//!   `gamma(n + 2) * sum (a_i - b_i)^2`.
//! - Manhattan: one rounding for the difference, `n - 1` additions:
//!   `gamma(n + 1) * sum |a_i - b_i|`.
//! - Cosine distance `1 - ab / (sqrt(aa) sqrt(bb))`: the error of `ab` relative
//!   to `|a||b|` is at most `gamma(n)` (Cauchy-Schwarz bounds
//!   `sum |a_i b_i| <= |a||b|`); `aa` and `bb` carry a relative `gamma(n)`
//!   each, halved by the square roots; two square roots, one product, one
//!   division and the final subtraction add one `u` each. Together at most
//!   `2 gamma(n) + 6u` (first order, whose neglected terms are below
//!   `gamma(n)^2`; we allow `8u` for them).
//! - Normalize: the norm is off by `gamma(n) / 2 + u` relatively; each output
//!   `x_i * (1 / norm)` adds a division and a product: every element is within
//!   `(gamma(n) + 4u) |x_i| / |x|` of `x_i / |x|`.
//!
//! The `f64` reference is itself off by about `n 2^-53` relatively, some
//! 10^-9 of the `f32` bound; the check adds `gamma_f64(n)` for it anyway.
//! These bounds assume no underflow: the generator draws every value from a
//! few binades around a scale chosen so that all products and partial sums
//! stay normal (the tiny scale's products stay above `f32::MIN_POSITIVE`) and
//! below `f32::MAX` (the large scale shrinks with the length). Hamming and
//! widening are exact, and compared with `==`.

use approx::abs_diff_eq;
use proptest::prelude::*;
use swann::kernels::{F32Op, Isa, KernelTable};

const U32: f64 = f32::EPSILON as f64 / 2.0;
const U64: f64 = f64::EPSILON / 2.0;

/// Longest of the "every length" runs. Under Miri, which interprets every
/// load, the same tests check the unsafe pointer handling on short lengths.
const SHORT: usize = if cfg!(miri) { 20 } else { 300 };
/// The same for the batch and gather forms' dimensions: up to `max`.
fn small(max: usize) -> usize {
    if cfg!(miri) {
        max.min(12)
    } else {
        max
    }
}

/// Long lengths, left out under Miri.
fn long(lens: &'static [usize]) -> &'static [usize] {
    if cfg!(miri) {
        &[]
    } else {
        lens
    }
}

fn gamma(k: usize) -> f64 {
    let ku = k as f64 * U32;
    ku / (1.0 - ku)
}

fn gamma64(k: usize) -> f64 {
    let ku = k as f64 * U64;
    ku / (1.0 - ku)
}

fn tables() -> Vec<&'static KernelTable> {
    let avail = Isa::available();
    assert_eq!(avail[0], Isa::Scalar, "scalar is always available, first");
    avail
        .iter()
        .map(|&isa| KernelTable::for_isa(isa).expect("available ISA has a table"))
        .collect()
}

/// Deterministic xorshift64* generator: tests must reproduce exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `+-scale * 2^-e * (1 + f)` with `e` in `0..binades`, `f` in [0, 1):
    /// mixed signs and magnitudes spread over `binades` binades, so the
    /// summation order changes the rounding, and never zero.
    fn value(&mut self, scale: f64, binades: u32) -> f32 {
        let sign = if self.next() & 1 == 0 { 1.0 } else { -1.0 };
        let e = (self.next() % u64::from(binades)) as i32;
        (sign * scale * 2f64.powi(-e) * (1.0 + self.unit())) as f32
    }
}

/// The magnitudes every kernel is checked at, for vectors of length `n`.
/// Each is `(name, scale, binades)`; values lie in `[scale 2^-(binades-1), 2 scale)`.
fn scales(n: usize) -> [(&'static str, f64, u32); 3] {
    // Large: |a_i|, |b_i| < 2s, so every (a_i - b_i)^2 < 16 s^2, and the sum
    // of n of them stays below f32::MAX / 2 with s = sqrt(f32::MAX / (32 n)):
    // about 3e18 for n = 1, 2e17 at n = 300, 2e16 at n = 4099.
    let large = (f64::from(f32::MAX) / (32.0 * n.max(1) as f64)).sqrt();
    [
        ("unit", 1.0, 12),
        ("large", large, 4),
        // Tiny: values in [0.5e-18, 2e-18), products >= 2.5e-37, well above
        // f32::MIN_POSITIVE (1.2e-38): no product underflows.
        ("tiny", 1e-18, 2),
    ]
}

/// A buffer whose element `start` sits on a 64-byte boundary, so that
/// `&buf[start + off..]` is misaligned by exactly `off` floats.
struct Buf {
    data: Vec<f32>,
    start: usize,
}

impl Buf {
    fn new(len: usize, mut gen: impl FnMut() -> f32) -> Buf {
        let mut data: Vec<f32> = Vec::with_capacity(len + 16);
        data.resize(len + 16, 0.0);
        let start = data.as_ptr().align_offset(64);
        assert!(start < 16);
        for x in &mut data[start..start + len] {
            *x = gen();
        }
        Buf { data, start }
    }

    fn at(&self, off: usize, n: usize) -> &[f32] {
        &self.data[self.start + off..self.start + off + n]
    }
}

fn check(isa: Isa, what: &str, n: usize, got: f32, want: f64, tol: f64) {
    assert!(
        abs_diff_eq!(f64::from(got), want, epsilon = tol),
        "{isa} {what} n={n}: got {got:e}, want {want:e}, |diff| {:e} > tol {tol:e}",
        (f64::from(got) - want).abs()
    );
}

// ---- f64 references with their error bounds ---------------------------------

fn ref_dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut s, mut abs) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let p = f64::from(x) * f64::from(y);
        s += p;
        abs += p.abs();
    }
    let n = a.len();
    (s, (gamma(n) + gamma64(n)) * abs)
}

fn ref_l2sq(a: &[f32], b: &[f32]) -> (f64, f64) {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let n = a.len();
    (s, (gamma(n + 2) + gamma64(n + 2)) * s)
}

fn ref_manhattan(a: &[f32], b: &[f32]) -> (f64, f64) {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .sum();
    let n = a.len();
    (s, (gamma(n + 1) + gamma64(n + 1)) * s)
}

fn ref_cosine(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (ab, _) = ref_dot(a, b);
    let (aa, _) = ref_dot(a, a);
    let (bb, _) = ref_dot(b, b);
    let n = a.len();
    let tol = 2.0 * (gamma(n) + gamma64(n)) + 8.0 * U32;
    if aa == 0.0 && bb == 0.0 {
        return (0.0, 0.0);
    }
    if aa == 0.0 || bb == 0.0 {
        return (1.0, 0.0);
    }
    ((1.0 - ab / (aa.sqrt() * bb.sqrt())).clamp(0.0, 2.0), tol)
}

// ---- the checks, per table --------------------------------------------------

fn check_pair(t: &KernelTable, a: &[f32], b: &[f32], tag: &str) {
    let (isa, n) = (t.isa(), a.len());
    let (want, tol) = ref_dot(a, b);
    check(isa, &format!("dot {tag}"), n, t.dot(a, b), want, tol);
    let (want, tol) = ref_l2sq(a, b);
    check(isa, &format!("l2sq {tag}"), n, t.l2sq(a, b), want, tol);
    let (want, tol) = ref_manhattan(a, b);
    check(
        isa,
        &format!("manhattan {tag}"),
        n,
        t.manhattan(a, b),
        want,
        tol,
    );
    let (want, tol) = ref_cosine(a, b);
    check(isa, &format!("cosine {tag}"), n, t.cosine(a, b), want, tol);
    let (want, tol) = ref_dot(a, a);
    check(isa, &format!("norm_sq {tag}"), n, t.norm_sq(a), want, tol);
    // norm = sqrt(norm_sq): relative error gamma(n) / 2 + u (the square root).
    check(
        isa,
        &format!("norm {tag}"),
        n,
        t.norm(a),
        want.sqrt(),
        (gamma(n) / 2.0 + 2.0 * U32) * want.sqrt(),
    );
    check_normalize(t, a, tag);
}

fn check_normalize(t: &KernelTable, a: &[f32], tag: &str) {
    let (isa, n) = (t.isa(), a.len());
    let mut v = a.to_vec();
    let norm = t.normalize(&mut v);
    let exact = ref_dot(a, a).0.sqrt();
    check(
        isa,
        &format!("normalize's norm {tag}"),
        n,
        norm,
        exact,
        (gamma(n) / 2.0 + 2.0 * U32) * exact,
    );
    for (i, (&x, &y)) in a.iter().zip(&v).enumerate() {
        let want = f64::from(x) / exact;
        let tol = (gamma(n) + 4.0 * U32) * want.abs();
        check(isa, &format!("normalize[{i}] {tag}"), n, y, want, tol);
    }
}

/// Lengths 0..=300 at every alignment offset 0..8 and three magnitudes.
#[test]
fn f32_kernels_all_short_lengths_offsets_and_scales() {
    for t in tables() {
        for n in 0..=SHORT {
            for (name, scale, binades) in scales(n) {
                let mut rng = Rng(0x5eed ^ (n as u64) << 8);
                let a = Buf::new(n + 8, || rng.value(scale, binades));
                let b = Buf::new(n + 8, || rng.value(scale, binades));
                for off in 0..8 {
                    // b's offset differs from a's, so the two inputs are
                    // misaligned differently.
                    let tag = format!("{name} off={off}");
                    check_pair(t, a.at(off, n), b.at((off * 3) % 8, n), &tag);
                }
            }
        }
    }
}

/// Odd lengths past 1000, where several unrolled iterations, the single-vector
/// loop and the tail all run.
#[test]
fn f32_kernels_long_odd_lengths() {
    for t in tables() {
        for &n in long(&[1000, 1023, 1024, 1537, 4099]) {
            for (name, scale, binades) in scales(n) {
                let mut rng = Rng(0xabcd ^ n as u64);
                let a = Buf::new(n + 8, || rng.value(scale, binades));
                let b = Buf::new(n + 8, || rng.value(scale, binades));
                for off in [0, 1, 3, 7] {
                    check_pair(
                        t,
                        a.at(off, n),
                        b.at(7 - off, n),
                        &format!("{name} off={off}"),
                    );
                }
            }
        }
    }
}

#[test]
fn results_are_finite_at_the_large_scale() {
    // The large scale is chosen to come near, not past, f32::MAX.
    for t in tables() {
        let n = 4099;
        let (_, scale, binades) = scales(n)[1];
        let mut rng = Rng(77);
        let a: Vec<f32> = (0..n).map(|_| rng.value(scale, binades)).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.value(scale, binades)).collect();
        assert!(t.l2sq(&a, &b).is_finite(), "{}", t.isa());
        assert!(t.norm_sq(&a).is_finite(), "{}", t.isa());
        assert!(t.l2sq(&a, &b) > 1e35, "{}", t.isa());
    }
}

#[test]
fn batch_kernels_match_the_reference() {
    for t in tables() {
        let isa = t.isa();
        let dims = (0..=small(70)).chain(long(&[96, 128, 255, 300, 1023]).iter().copied());
        for dim in dims {
            for pad in [0, 1, 3] {
                let stride = dim + pad;
                for nrows in [0, 1, 2, 5] {
                    for off in [0, 1, 5] {
                        let mut rng = Rng(0xba7c ^ (dim * 31 + pad) as u64);
                        let q = Buf::new(dim + 8, || rng.value(1.0, 12));
                        let rows = Buf::new(nrows * stride + 8, || rng.value(1.0, 12));
                        let q = q.at(off, dim);
                        let rows_len = if nrows == 0 {
                            0
                        } else {
                            (nrows - 1) * stride + dim
                        };
                        let rows = rows.at(7 - off, rows_len);
                        let row = |i: usize| &rows[i * stride..i * stride + dim];
                        let tag = |k: &str, i: usize| format!("{k}_batch row {i} stride {stride}");

                        let mut out = vec![f32::NAN; nrows];
                        t.dot_batch(q, rows, stride, &mut out);
                        for (i, &o) in out.iter().enumerate() {
                            let (w, tol) = ref_dot(q, row(i));
                            check(isa, &tag("dot", i), dim, o, w, tol);
                        }
                        t.l2sq_batch(q, rows, stride, &mut out);
                        for (i, &o) in out.iter().enumerate() {
                            let (w, tol) = ref_l2sq(q, row(i));
                            check(isa, &tag("l2sq", i), dim, o, w, tol);
                        }
                        t.cosine_batch(q, rows, stride, &mut out);
                        for (i, &o) in out.iter().enumerate() {
                            let (w, tol) = ref_cosine(q, row(i));
                            check(isa, &tag("cosine", i), dim, o, w, tol);
                        }
                        t.manhattan_batch(q, rows, stride, &mut out);
                        for (i, &o) in out.iter().enumerate() {
                            let (w, tol) = ref_manhattan(q, row(i));
                            check(isa, &tag("manhattan", i), dim, o, w, tol);
                        }
                        // The resolved single kernels agree with the table's.
                        for op in [F32Op::Dot, F32Op::L2sq, F32Op::Cosine, F32Op::Manhattan] {
                            let k = t.f32_kernel(op);
                            assert_eq!(k.isa(), isa);
                            let mut out2 = vec![f32::NAN; nrows];
                            k.eval_batch(q, rows, stride, &mut out2);
                            for (i, &o) in out2.iter().enumerate() {
                                let single = k.eval(q, row(i));
                                let (w, tol) = match op {
                                    F32Op::Dot => ref_dot(q, row(i)),
                                    F32Op::L2sq => ref_l2sq(q, row(i)),
                                    F32Op::Cosine => ref_cosine(q, row(i)),
                                    F32Op::Manhattan => ref_manhattan(q, row(i)),
                                };
                                check(isa, &format!("{op:?} eval_batch"), dim, o, w, tol);
                                check(isa, &format!("{op:?} eval"), dim, single, w, tol);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn popcount_ref(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[test]
fn hamming_exact_on_all_lengths_and_offsets() {
    let mut rng = Rng(0x4a11);
    let words: Vec<u64> = (0..2 * 4200).map(|_| rng.next()).collect();
    let (x, y) = words.split_at(4200);
    for t in tables() {
        let lens = (0..=SHORT).chain(long(&[1000, 1023, 1537, 4099]).iter().copied());
        for n in lens {
            for off in 0..8 {
                let (a, b) = (&x[off..off + n], &y[(off * 5) % 8..(off * 5) % 8 + n]);
                assert_eq!(
                    t.hamming(a, b),
                    popcount_ref(a, b),
                    "{} n={n} off={off}",
                    t.isa()
                );
            }
        }
        // All bits differ / none differ.
        let ones = vec![u64::MAX; 77];
        let zeros = vec![0u64; 77];
        assert_eq!(t.hamming(&ones, &zeros), 77 * 64);
        assert_eq!(t.hamming(&ones, &ones), 0);
    }
}

#[test]
fn hamming_batch_exact() {
    let mut rng = Rng(0xb17);
    for t in tables() {
        for words in (0..=small(40)).chain(long(&[64, 100, 129]).iter().copied()) {
            for pad in [0, 1, 3] {
                let stride = words + pad;
                for nrows in [0, 1, 3, 6] {
                    let q: Vec<u64> = (0..words + 1).map(|_| rng.next()).collect();
                    let q = &q[1..];
                    let len = if nrows == 0 {
                        0
                    } else {
                        (nrows - 1) * stride + words
                    };
                    let rows: Vec<u64> = (0..len).map(|_| rng.next()).collect();
                    let mut out = vec![u32::MAX; nrows];
                    t.hamming_batch(q, &rows, stride, &mut out);
                    for (i, &o) in out.iter().enumerate() {
                        let want = popcount_ref(q, &rows[i * stride..i * stride + words]);
                        assert_eq!(o, want, "{} words={words} row {i}", t.isa());
                    }
                }
            }
        }
    }
}

#[test]
fn widen_u8_exact() {
    let bytes: Vec<u8> = (0..1100u32).map(|i| (i * 37 % 256) as u8).collect();
    for t in tables() {
        for n in (0..=SHORT).chain(long(&[1023, 1090]).iter().copied()) {
            for off in 0..8 {
                let src = &bytes[off..off + n];
                let mut dst = vec![f32::NAN; n + 8];
                t.widen_u8(src, &mut dst[off..off + n]);
                for (i, (&s, &d)) in src.iter().zip(&dst[off..off + n]).enumerate() {
                    assert_eq!(d, f32::from(s), "{} n={n} i={i}", t.isa());
                }
                // Nothing outside the destination was written.
                assert!(dst[..off].iter().all(|x| x.is_nan()));
                assert!(dst[off + n..].iter().all(|x| x.is_nan()));
            }
        }
    }
}

/// The byte dot product of every ISA is within `gamma(n) * sum |q_i c_i|`
/// of the exact value (what screening assumes), for every length and tail.
#[test]
fn dot_u8_within_the_sum_bound() {
    let codes: Vec<u8> = (0..700u32).map(|i| (i * 91 % 256) as u8).collect();
    let q: Vec<f32> = (0..700u32)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.0137)
        .collect();
    for t in tables() {
        for n in (0..=130).chain([255, 256, 257, 699]) {
            let got = f64::from(t.dot_u8(&q[..n], &codes[..n]));
            let exact: f64 = q[..n]
                .iter()
                .zip(&codes[..n])
                .map(|(&a, &c)| f64::from(a) * f64::from(c))
                .sum();
            let mag: f64 = q[..n]
                .iter()
                .zip(&codes[..n])
                .map(|(&a, &c)| (f64::from(a) * f64::from(c)).abs())
                .sum();
            let tol = gamma(n) * mag + gamma64(n) * mag;
            assert!(
                (got - exact).abs() <= tol,
                "{} n={n}: {got} vs {exact} (tolerance {tol})",
                t.isa()
            );
        }
    }
}

/// Byte quantization gives the same codes and sums on every ISA, and the
/// codes reconstruct each value within half a step (plus rounding).
#[test]
fn quantize_u8_agrees_across_isas_and_reconstructs() {
    let x: Vec<f32> = (0..300u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 7) % 10_000) as f32 * 0.01 - 37.0)
        .collect();
    let scalar = KernelTable::for_isa(Isa::Scalar).unwrap();
    for n in [1, 2, 15, 16, 31, 32, 33, 64, 128, 129, 300] {
        let mut want = vec![0u8; n];
        let w = scalar.quantize_u8(&x[..n], &mut want);
        let lo = x[..n].iter().copied().fold(f32::INFINITY, f32::min);
        let hi = x[..n].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((w.lo, w.hi), (lo, hi), "n={n}");
        for (i, (&v, &c)) in x[..n].iter().zip(&want).enumerate() {
            let back = f64::from(w.lo) + f64::from(w.scale) * f64::from(c);
            let step = f64::from(w.scale);
            assert!(
                (back - f64::from(v)).abs() <= 0.5 * step + 1e-4,
                "n={n} i={i}: {v} coded as {c} -> {back}"
            );
        }
        for t in tables() {
            let mut got = vec![0u8; n];
            let g = t.quantize_u8(&x[..n], &mut got);
            assert_eq!(got, want, "{} n={n}", t.isa());
            assert_eq!(g, w, "{} n={n}", t.isa());
        }
    }
}

#[test]
fn zero_vectors() {
    for t in tables() {
        for n in [0, 1, 7, 8, 16, 33, 300] {
            let z = vec![0.0f32; n];
            let one: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
            assert_eq!(t.cosine(&z, &z), 0.0, "{} n={n}: both zero", t.isa());
            if n > 0 {
                assert_eq!(t.cosine(&z, &one), 1.0, "{} n={n}: one zero", t.isa());
                assert_eq!(t.cosine(&one, &z), 1.0, "{} n={n}: one zero", t.isa());
            }
            let mut v = z.clone();
            assert_eq!(t.normalize(&mut v), 0.0, "{}", t.isa());
            assert!(v.iter().all(|&x| x == 0.0 && x.is_sign_positive()));
            assert_eq!(t.norm(&z), 0.0);
            assert_eq!(t.dot(&z, &one), 0.0);
            // The batch form agrees on the zero cases.
            let mut out = [f32::NAN; 2];
            let rows: Vec<f32> = z.iter().chain(&one).copied().collect();
            t.cosine_batch(&z, &rows, n, &mut out);
            assert_eq!(out[0], 0.0, "{}", t.isa());
            if n > 0 {
                assert_eq!(out[1], 1.0, "{}", t.isa());
            }
        }
    }
}

#[test]
fn cosine_stays_in_range_for_parallel_and_opposite_vectors() {
    for t in tables() {
        for n in [1, 3, 8, 100, 1023] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() + 0.01).collect();
            let neg: Vec<f32> = a.iter().map(|x| -x).collect();
            let d_same = t.cosine(&a, &a);
            let d_opp = t.cosine(&a, &neg);
            // Exactly 0 and 2 up to the cosine bound; never outside [0, 2].
            let tol = (2.0 * gamma(n) + 8.0 * U32) as f32;
            assert!((0.0..=tol).contains(&d_same), "{} {d_same}", t.isa());
            assert!((2.0 - tol..=2.0).contains(&d_opp), "{} {d_opp}", t.isa());
        }
    }
}

#[test]
fn detection_offers_what_the_cpu_has() {
    let avail = Isa::available();
    assert_eq!(Isa::detected(), *avail.last().unwrap());
    for isa in Isa::ALL {
        assert_eq!(isa.is_available(), avail.contains(&isa), "{isa}");
        if !isa.is_compiled() {
            assert!(KernelTable::for_isa(isa).is_none(), "{isa}");
        }
        if let Some(t) = KernelTable::for_isa(isa) {
            assert_eq!(t.isa(), isa);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        assert_eq!(Isa::Avx2.is_available(), Isa::Avx2.is_compiled() && avx2);
        let avx512 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512cd")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl");
        assert_eq!(
            Isa::Avx512.is_available(),
            Isa::Avx512.is_compiled() && avx512
        );
        assert!(!Isa::Neon.is_available());
    }
    #[cfg(target_arch = "aarch64")]
    {
        let neon = std::arch::is_aarch64_feature_detected!("neon");
        assert_eq!(Isa::Neon.is_available(), Isa::Neon.is_compiled() && neon);
        assert!(!Isa::Avx2.is_available() && !Isa::Avx512.is_available());
    }
}

// ---- length checks in the safe API ------------------------------------------

#[test]
#[should_panic(expected = "vector lengths differ")]
fn dot_length_mismatch_panics() {
    let t = KernelTable::for_isa(Isa::detected()).unwrap();
    t.dot(&[1.0, 2.0], &[1.0]);
}

#[test]
#[should_panic(expected = "vector lengths differ")]
fn cosine_length_mismatch_panics_on_every_isa() {
    // Check each ISA without panicking, then panic on the last one.
    let ts = tables();
    for t in &ts[..ts.len() - 1] {
        let r = std::panic::catch_unwind(|| t.cosine(&[1.0; 9], &[1.0; 8]));
        assert!(r.is_err(), "{} accepted mismatched lengths", t.isa());
    }
    ts[ts.len() - 1].cosine(&[1.0; 9], &[1.0; 8]);
}

#[test]
#[should_panic(expected = "vector lengths differ")]
fn hamming_length_mismatch_panics() {
    swann::kernels::hamming(&[1, 2, 3], &[1, 2]);
}

#[test]
#[should_panic(expected = "vector lengths differ")]
fn f32_kernel_eval_length_mismatch_panics() {
    let k = swann::kernels::active().f32_kernel(F32Op::L2sq);
    k.eval(&[1.0; 3], &[1.0; 4]);
}

#[test]
#[should_panic(expected = "rows hold")]
fn batch_with_short_rows_panics() {
    let t = KernelTable::for_isa(Isa::detected()).unwrap();
    let q = [1.0f32; 8];
    // Three rows of stride 8 need 2 * 8 + 8 = 24 floats; 23 given.
    let rows = [1.0f32; 23];
    let mut out = [0.0f32; 3];
    t.dot_batch(&q, &rows, 8, &mut out);
}

#[test]
#[should_panic(expected = "rows hold")]
fn hamming_batch_with_short_rows_panics() {
    let t = KernelTable::for_isa(Isa::detected()).unwrap();
    let mut out = [0u32; 2];
    t.hamming_batch(&[0u64; 4], &[0u64; 7], 4, &mut out);
}

#[test]
#[should_panic(expected = "shorter than the vector length")]
fn batch_with_stride_below_dim_panics() {
    let t = KernelTable::for_isa(Isa::detected()).unwrap();
    let mut out = [0.0f32; 2];
    t.l2sq_batch(&[0.0; 8], &[0.0; 64], 7, &mut out);
}

#[test]
#[should_panic(expected = "source and destination lengths differ")]
fn widen_length_mismatch_panics() {
    let t = KernelTable::for_isa(Isa::detected()).unwrap();
    t.widen_u8(&[1, 2, 3], &mut [0.0; 2]);
}

// ---- random property ---------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random lengths and values (mixed signs, spread over 2^-20..2^20) on
    /// every ISA, same bounds as above.
    #[test]
    fn random_vectors_within_bounds(
        pairs in prop::collection::vec(
            (-20i32..20, -20i32..20, 1.0f32..2.0, 1.0f32..2.0, any::<bool>(), any::<bool>()),
            0..1200,
        ),
        off in 0usize..8,
    ) {
        let mk = |e: i32, m: f32, neg: bool| if neg { -m * 2f32.powi(e) } else { m * 2f32.powi(e) };
        let mut a = vec![0.0f32; off];
        let mut b = vec![0.0f32; off];
        for &(ea, eb, ma, mb, na, nb) in &pairs {
            a.push(mk(ea, ma, na));
            b.push(mk(eb, mb, nb));
        }
        for t in tables() {
            check_pair(t, &a[off..], &b[off..], "proptest");
        }
    }
}

/// The gather form returns, bit for bit, what the single kernel returns for
/// each row it names, on every ISA and metric: lengths across every tail,
/// row strides with padding, index lists of every length around the
/// four-row groups (repeats and out-of-order rows included), zero rows and
/// a zero query (cosine's special cases), and values over many binades.
#[test]
fn gather_kernels_equal_the_single_ones() {
    const ROWS: usize = 13;
    for t in tables() {
        let isa = t.isa();
        for dim in (0..=small(70)).chain(long(&[96, 127, 128, 255, 300]).iter().copied()) {
            for pad in [0, 3] {
                let stride = dim + pad;
                let mut rng = Rng(0x9a7e ^ (dim * 131 + pad) as u64);
                let mut base: Vec<f32> = (0..ROWS * stride).map(|_| rng.value(1.0, 12)).collect();
                // Rows 3 and 11 are zero.
                for r in [3, 11] {
                    base[r * stride..r * stride + dim].fill(0.0);
                }
                let q: Vec<f32> = (0..dim).map(|_| rng.value(1.0, 12)).collect();
                let zero_q = vec![0.0f32; dim];
                for op in [F32Op::Dot, F32Op::L2sq, F32Op::Cosine, F32Op::Manhattan] {
                    let k = t.f32_kernel(op);
                    for query in [&q, &zero_q] {
                        let prepared = k.prepare(query);
                        for n in 0..=10 {
                            let rows: Vec<u32> =
                                (0..n).map(|_| (rng.next() % ROWS as u64) as u32).collect();
                            let mut out = vec![f32::NAN; n];
                            k.eval_gather(&prepared, &base, stride, &rows, &mut out);
                            for (&r, &o) in rows.iter().zip(&out) {
                                let r = r as usize;
                                let want = k.eval(query, &base[r * stride..r * stride + dim]);
                                assert_eq!(
                                    o.to_bits(),
                                    want.to_bits(),
                                    "{isa} {op:?} dim {dim} stride {stride} row {r} of {n}: \
                                     gather {o:e}, single {want:e}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "past the")]
fn gather_with_a_row_past_the_end_panics() {
    let k = KernelTable::for_isa(Isa::detected())
        .unwrap()
        .f32_kernel(F32Op::Cosine);
    let q = [1.0f32; 8];
    let base = [1.0f32; 24];
    let mut out = [0.0f32; 2];
    // Row 2 of stride 8 ends at 24 (fine); row 3 at 32.
    k.eval_gather(&k.prepare(&q), &base, 8, &[2, 3], &mut out);
}

#[test]
#[should_panic(expected = "prepared by a")]
fn gather_with_a_query_prepared_for_another_metric_panics() {
    let t = KernelTable::for_isa(Isa::detected()).unwrap();
    let q = [1.0f32; 8];
    let prepared = t.f32_kernel(F32Op::Dot).prepare(&q);
    let mut out = [0.0f32; 1];
    t.f32_kernel(F32Op::Cosine)
        .eval_gather(&prepared, &[1.0; 8], 8, &[0], &mut out);
}
