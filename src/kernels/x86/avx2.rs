//! AVX2 + FMA kernels (256-bit vectors, eight `f32` lanes).
//!
//! Every function here is reachable only through [`TABLE`], which
//! `super::avx2_table` hands out only after run-time detection found AVX2,
//! FMA and the rest of x86-64-v3 (pulp's `V3`). That detection is the check
//! behind every `#[target_feature]` call below; pointer validity is the
//! caller's contract from the raw kernel types in `kernels/mod.rs`.
//!
//! Layout of the hot loops: four independent accumulators over 32 floats
//! per iteration (FMA latency 4 x two FMA pipes wants at least four chains
//! in flight; the loop is then bound by the two loads per cycle), then one
//! 8-float step at a time, then a single masked load (`vmaskmovps`) for the
//! last 1..=7 floats, so no scalar tail loop runs on any length.

use core::arch::x86_64::*;

use pulp::x86::V3;

use super::cosine_from_sums4;
use crate::kernels::scalar::cosine_from_sums;
use crate::kernels::scalar::{quant_step, U8Code};
use crate::kernels::{Isa, KernelTable};

/// Lane mask for `_mm256_maskload_ps`: lanes `0..rem` set (`rem` in `1..8`).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tail_mask(rem: usize) -> __m256i {
    // Lane j is set when j < rem; `rem < 8` fits an i32.
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(rem as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Applies `step(acc, x, y)` over `n` floats of `a` and `b` with eight
/// accumulators over 64 floats, then four over 32, then one 8-float step at
/// a time, then one masked step for the last 1..=7 floats (masked lanes load
/// as 0.0 in both inputs; `step` must map two zeros to no change).
///
/// Eight chains rather than four: with a load-bound loop (two loads per FMA)
/// four chains would just cover the 4-cycle FMA latency, so any stall shows;
/// at dimension 384 the eight-chain loop is about 10% faster on Zen 4.
///
/// # Safety
/// AVX2+FMA available; `a` and `b` valid for `n` reads.
#[inline(always)]
unsafe fn fold8(
    a: *const f32,
    b: *const f32,
    n: usize,
    step: impl Fn(__m256, __m256, __m256) -> __m256,
) -> __m256 {
    // SAFETY: (whole function) every unmasked load below reads floats
    // `i..i + 8` with `i + 8 <= n`, and the masked load reads only lanes
    // `i..n`; all lie within the caller's `n` readable floats. The intrinsics
    // need AVX2+FMA, which the caller guarantees (this function is inlined
    // into `#[target_feature(enable = "avx2,fma")]` functions only).
    unsafe {
        let z = _mm256_setzero_ps();
        let mut acc = [z; 8];
        let ld = |p: *const f32, i: usize| _mm256_loadu_ps(p.add(i));
        let mut i = 0;
        while i + 64 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = step(*acc, ld(a, i + 8 * k), ld(b, i + 8 * k));
            }
            i += 64;
        }
        if i + 32 <= n {
            for (k, acc) in acc.iter_mut().take(4).enumerate() {
                *acc = step(*acc, ld(a, i + 8 * k), ld(b, i + 8 * k));
            }
            i += 32;
        }
        // At most three 8-float steps remain; fixed indices keep `acc` in
        // registers.
        if i + 8 <= n {
            acc[4] = step(acc[4], ld(a, i), ld(b, i));
            i += 8;
        }
        if i + 8 <= n {
            acc[5] = step(acc[5], ld(a, i), ld(b, i));
            i += 8;
        }
        if i + 8 <= n {
            acc[6] = step(acc[6], ld(a, i), ld(b, i));
            i += 8;
        }
        if i < n {
            let m = tail_mask(n - i);
            let x = _mm256_maskload_ps(a.add(i), m);
            let y = _mm256_maskload_ps(b.add(i), m);
            acc[7] = step(acc[7], x, y);
        }
        let s0 = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let s1 = _mm256_add_ps(_mm256_add_ps(acc[4], acc[5]), _mm256_add_ps(acc[6], acc[7]));
        _mm256_add_ps(s0, s1)
    }
}

/// # Safety
/// AVX2+FMA available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_body(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: forwarded: AVX2+FMA enabled here, `n` readable floats each.
    let acc = unsafe { fold8(a, b, n, |acc, x, y| _mm256_fmadd_ps(x, y, acc)) };
    hsum(acc)
}

/// # Safety
/// AVX2+FMA available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn l2sq_body(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: forwarded: AVX2+FMA enabled here, `n` readable floats each.
    let acc = unsafe {
        fold8(a, b, n, |acc, x, y| {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        })
    };
    hsum(acc)
}

/// `a.a`, four accumulators, one load per FMA.
///
/// # Safety
/// AVX2+FMA available; `a` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn norm_sq_body(a: *const f32, n: usize) -> f32 {
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n.
        unsafe {
            let x0 = _mm256_loadu_ps(a.add(i));
            let x1 = _mm256_loadu_ps(a.add(i + 8));
            let x2 = _mm256_loadu_ps(a.add(i + 16));
            let x3 = _mm256_loadu_ps(a.add(i + 24));
            acc0 = _mm256_fmadd_ps(x0, x0, acc0);
            acc1 = _mm256_fmadd_ps(x1, x1, acc1);
            acc2 = _mm256_fmadd_ps(x2, x2, acc2);
            acc3 = _mm256_fmadd_ps(x3, x3, acc3);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe {
            let x = _mm256_loadu_ps(a.add(i));
            acc0 = _mm256_fmadd_ps(x, x, acc0);
        }
        i += 8;
    }
    if i < n {
        // SAFETY: maskload reads only floats i..n.
        unsafe {
            let x = _mm256_maskload_ps(a.add(i), tail_mask(n - i));
            acc1 = _mm256_fmadd_ps(x, x, acc1);
        }
    }
    hsum(_mm256_add_ps(
        _mm256_add_ps(acc0, acc1),
        _mm256_add_ps(acc2, acc3),
    ))
}

/// The three sums of cosine, `(a.b, a.a, b.b)`, in one pass: 4 x 3
/// accumulators over 32 floats (12 FMAs per 8 loads, so the loop is FMA-bound
/// at six cycles per 32 floats, with each chain's four-cycle latency hidden).
///
/// # Safety
/// AVX2+FMA available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn cosine_sums(a: *const f32, b: *const f32, n: usize) -> (f32, f32, f32) {
    // SAFETY: forwarded to the caller.
    let (ab, aa, bb) = unsafe { cosine_vecs(a, b, n) };
    (hsum(ab), hsum(aa), hsum(bb))
}

/// The 8-lane partial sums of `(a.b, a.a, b.b)` that [`cosine_sums`]
/// reduces with [`hsum`]: the four accumulators of each sum added as
/// `(0 + 1) + (2 + 3)`.
///
/// # Safety
/// AVX2+FMA available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn cosine_vecs(a: *const f32, b: *const f32, n: usize) -> (__m256, __m256, __m256) {
    let z = _mm256_setzero_ps();
    let (mut ab0, mut ab1, mut ab2, mut ab3) = (z, z, z, z);
    let (mut aa0, mut aa1, mut aa2, mut aa3) = (z, z, z, z);
    let (mut bb0, mut bb1, mut bb2, mut bb3) = (z, z, z, z);
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n, so floats i..i + 32 of both inputs are readable.
        unsafe {
            let (x, y) = (_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
            ab0 = _mm256_fmadd_ps(x, y, ab0);
            aa0 = _mm256_fmadd_ps(x, x, aa0);
            bb0 = _mm256_fmadd_ps(y, y, bb0);
            let (x, y) = (_mm256_loadu_ps(a.add(i + 8)), _mm256_loadu_ps(b.add(i + 8)));
            ab1 = _mm256_fmadd_ps(x, y, ab1);
            aa1 = _mm256_fmadd_ps(x, x, aa1);
            bb1 = _mm256_fmadd_ps(y, y, bb1);
            let (x, y) = (
                _mm256_loadu_ps(a.add(i + 16)),
                _mm256_loadu_ps(b.add(i + 16)),
            );
            ab2 = _mm256_fmadd_ps(x, y, ab2);
            aa2 = _mm256_fmadd_ps(x, x, aa2);
            bb2 = _mm256_fmadd_ps(y, y, bb2);
            let (x, y) = (
                _mm256_loadu_ps(a.add(i + 24)),
                _mm256_loadu_ps(b.add(i + 24)),
            );
            ab3 = _mm256_fmadd_ps(x, y, ab3);
            aa3 = _mm256_fmadd_ps(x, x, aa3);
            bb3 = _mm256_fmadd_ps(y, y, bb3);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe {
            let (x, y) = (_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
            ab0 = _mm256_fmadd_ps(x, y, ab0);
            aa0 = _mm256_fmadd_ps(x, x, aa0);
            bb0 = _mm256_fmadd_ps(y, y, bb0);
        }
        i += 8;
    }
    if i < n {
        let m = tail_mask(n - i);
        // SAFETY: maskload reads only floats i..n (lanes set in `m`).
        unsafe {
            let (x, y) = (
                _mm256_maskload_ps(a.add(i), m),
                _mm256_maskload_ps(b.add(i), m),
            );
            ab1 = _mm256_fmadd_ps(x, y, ab1);
            aa1 = _mm256_fmadd_ps(x, x, aa1);
            bb1 = _mm256_fmadd_ps(y, y, bb1);
        }
    }
    let sum4 = |p: __m256, q: __m256, r: __m256, s: __m256| {
        _mm256_add_ps(_mm256_add_ps(p, q), _mm256_add_ps(r, s))
    };
    (
        sum4(ab0, ab1, ab2, ab3),
        sum4(aa0, aa1, aa2, aa3),
        sum4(bb0, bb1, bb2, bb3),
    )
}

/// Bits set in `a ^ b` with Mula's nibble-lookup popcount: `vpshufb` looks
/// up the bit count of each 4-bit half of each byte; the byte counts of four
/// vectors (16 words, at most 4 x 8 = 32 per byte, no overflow) are added as
/// bytes and then summed into four 64-bit lanes by one `vpsadbw`. The last
/// 1..=3 words go through scalar `popcnt`.
///
/// Chosen over an unrolled four-counter scalar `popcnt` loop, which it beat
/// by 1.3-1.5x at 1024-8192 bits on Zen 4 (benchmarked interleaved, best of
/// 200 rounds: 4.1 vs 6.8 ns at 1024 bits, 13.2 vs 19.5 ns at 4096), and over
/// the same lookup with one `vpsadbw` per vector (4.5 / 14.1 ns).
///
/// # Safety
/// AVX2 (and POPCNT, part of x86-64-v3) available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn hamming_body(a: *const u64, b: *const u64, n: usize) -> u32 {
    let lookup = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, //
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    );
    let low = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    // Per-byte bit counts of one vector.
    let count = |v: __m256i| {
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
        _mm256_add_epi8(
            _mm256_shuffle_epi8(lookup, lo),
            _mm256_shuffle_epi8(lookup, hi),
        )
    };
    // SAFETY: (for the closure's use below) every call reads words
    // `i..i + 4` with `i + 4 <= n`, inside the caller's `n` readable words.
    let xor_at = |i: usize| unsafe {
        _mm256_xor_si256(
            _mm256_loadu_si256(a.add(i).cast()),
            _mm256_loadu_si256(b.add(i).cast()),
        )
    };
    let mut acc = zero;
    let mut i = 0;
    while i + 16 <= n {
        let mut bytes = count(xor_at(i));
        bytes = _mm256_add_epi8(bytes, count(xor_at(i + 4)));
        bytes = _mm256_add_epi8(bytes, count(xor_at(i + 8)));
        bytes = _mm256_add_epi8(bytes, count(xor_at(i + 12)));
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(bytes, zero));
        i += 16;
    }
    while i + 4 <= n {
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(count(xor_at(i)), zero));
        i += 4;
    }
    let lanes = _mm_add_epi64(
        _mm256_castsi256_si128(acc),
        _mm256_extracti128_si256::<1>(acc),
    );
    let mut total = (_mm_cvtsi128_si64(lanes) + _mm_extract_epi64::<1>(lanes)) as u64;
    while i < n {
        // SAFETY: i < n.
        let w = unsafe { a.add(i).read_unaligned() ^ b.add(i).read_unaligned() };
        total += u64::from(w.count_ones());
        i += 1;
    }
    // The API's result is a u32 bit count (exact below 2^26 words).
    total as u32
}

// ---- table entries -----------------------------------------------------------
//
// SAFETY: (for every `unsafe` block calling a `*_body` below) the entry is
// reachable only through `TABLE`, handed out after detection of AVX2+FMA
// (x86-64-v3) in `super::avx2_table`; the pointer arguments are forwarded
// with the caller's guarantee from the raw kernel type.

/// The pulp token for this table's ISA.
///
/// # Safety
/// The CPU must have x86-64-v3: true for every caller in this file, which is
/// only reachable through `TABLE` (see `super::avx2_table`).
#[inline]
unsafe fn v3() -> V3 {
    // SAFETY: forwarded to the caller.
    unsafe { V3::new_unchecked() }
}

/// # Safety
/// `RawHamming` contract; AVX2 available.
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn hamming(a: *const u64, b: *const u64, n: usize) -> u32 {
    // SAFETY: see the note above the table entries (POPCNT is part of x86-64-v3).
    unsafe { hamming_body(a, b, n) }
}

/// # Safety
/// `RawDotU8` contract; the table's features available.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_u8(q: *const f32, codes: *const u8, n: usize) -> f32 {
    let mut k = 0;
    // SAFETY: every vector load reads 8 floats at `q + k` and 8 bytes at
    // `codes + k` with `k + 8 <= n` (16 for the pair), the scalar tail one
    // element at `k < n`, and both have `n` readable elements (caller
    // contract); AVX2 and FMA are enabled.
    unsafe {
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let widen =
            |p: *const u8| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())));
        while k + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(k)), widen(codes.add(k)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(k + 8)), widen(codes.add(k + 8)), acc1);
            k += 16;
        }
        if k + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(k)), widen(codes.add(k)), acc0);
            k += 8;
        }
        let v = _mm256_add_ps(acc0, acc1);
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let v = _mm_add_ss(v, _mm_movehdup_ps(v));
        let mut sum = _mm_cvtss_f32(v);
        while k < n {
            sum += *q.add(k) * f32::from(*codes.add(k));
            k += 1;
        }
        sum
    }
}

/// # Safety
/// `RawQuantizeU8` contract; AVX2 and FMA available.
///
/// The portable quantizer's arithmetic in the same order (see
/// `scalar::QUANT_LANES`): its 32 lanes in four registers per sum, the
/// tail through masked loads, and masked-out lanes adding `+0.0` (which
/// leaves a non-negative sum exactly as it was).
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_u8(x: *const f32, codes: *mut u8, n: usize) -> U8Code {
    let full = n / 32 * 32;
    let rest = n - full;
    // SAFETY: every full load reads 8 floats at `x + j` with `j + 8 <= n`;
    // tail loads are masked to the floats left; `x` has `n` readable floats
    // and `codes` `n` writable bytes (caller contract), written 32 at a
    // time below `full` and through a local buffer for the tail. AVX2 is
    // enabled.
    unsafe {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // Lanes of register `r` of the tail that hold values.
        let tail_mask = |r: i32| _mm256_cmpgt_epi32(_mm256_set1_epi32(rest as i32 - 8 * r), lane);
        let masks = [tail_mask(0), tail_mask(1), tail_mask(2), tail_mask(3)];
        let (inf, ninf) = (
            _mm256_set1_ps(f32::INFINITY),
            _mm256_set1_ps(f32::NEG_INFINITY),
        );
        let mut lo = [inf; 4];
        let mut hi = [ninf; 4];
        let mut j = 0;
        while j < full {
            for r in 0..4 {
                let v = _mm256_loadu_ps(x.add(j + 8 * r));
                lo[r] = _mm256_min_ps(lo[r], v);
                hi[r] = _mm256_max_ps(hi[r], v);
            }
            j += 32;
        }
        let mut tail = [_mm256_setzero_ps(); 4];
        if rest > 0 {
            for r in 0..4 {
                let m = masks[r];
                tail[r] = _mm256_maskload_ps(x.add(full + 8 * r), m);
                let mf = _mm256_castsi256_ps(m);
                lo[r] = _mm256_min_ps(lo[r], _mm256_blendv_ps(inf, tail[r], mf));
                hi[r] = _mm256_max_ps(hi[r], _mm256_blendv_ps(ninf, tail[r], mf));
            }
        }
        let lo = halve(lo, _mm256_min_ps, _mm_min_ps, _mm_min_ss);
        let hi = halve(hi, _mm256_max_ps, _mm_max_ps, _mm_max_ss);
        let (scale, inv) = quant_step(lo, hi);
        let (lo_v, inv_v, scale_v) = (
            _mm256_set1_ps(lo),
            _mm256_set1_ps(inv),
            _mm256_set1_ps(scale),
        );
        let (half, zero, top) = (
            _mm256_set1_ps(0.5),
            _mm256_setzero_ps(),
            _mm256_set1_ps(255.0),
        );
        let mut ee = [zero; 4];
        let mut xx = [zero; 4];
        // The codes of 32 values (register `r` holding values
        // `8 r..8 r + 8`), their sums added on the lanes of `m`, and the
        // codes as 32 bytes in order.
        let mut step = |v: [__m256; 4], m: [__m256; 4]| {
            let mut k32 = [_mm256_setzero_si256(); 4];
            for r in 0..4 {
                let d = _mm256_sub_ps(v[r], lo_v);
                let k = _mm256_floor_ps(_mm256_add_ps(_mm256_mul_ps(d, inv_v), half));
                let k = _mm256_min_ps(_mm256_max_ps(k, zero), top);
                let e = _mm256_sub_ps(d, _mm256_mul_ps(scale_v, k));
                ee[r] = _mm256_add_ps(ee[r], _mm256_and_ps(_mm256_mul_ps(e, e), m[r]));
                xx[r] = _mm256_add_ps(xx[r], _mm256_and_ps(_mm256_mul_ps(v[r], v[r]), m[r]));
                k32[r] = _mm256_cvttps_epi32(k);
            }
            // Packing interleaves 4-byte groups across the two 128-bit
            // halves; one permutation puts them back in order.
            let p01 = _mm256_packus_epi32(k32[0], k32[1]);
            let p23 = _mm256_packus_epi32(k32[2], k32[3]);
            let bytes = _mm256_packus_epi16(p01, p23);
            _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        };
        let all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        let mut j = 0;
        while j < full {
            let v = [0, 1, 2, 3].map(|r| _mm256_loadu_ps(x.add(j + 8 * r)));
            let b = step(v, [all; 4]);
            _mm256_storeu_si256(codes.add(j).cast(), b);
            j += 32;
        }
        if rest > 0 {
            let b = step(tail, masks.map(|m| _mm256_castsi256_ps(m)));
            let mut buf = [0u8; 32];
            _mm256_storeu_si256(buf.as_mut_ptr().cast(), b);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), codes.add(full), rest);
        }
        U8Code {
            lo,
            scale,
            err_sq: halve(ee, _mm256_add_ps, _mm_add_ps, _mm_add_ss),
            norm_sq: halve(xx, _mm256_add_ps, _mm_add_ps, _mm_add_ss),
            hi,
        }
    }
}

/// Combines 32 lanes (four registers of eight) pairwise with `f`: lane
/// `i` with `i + 16`, then `i + 8`, `i + 4`, `i + 2`, `i + 1` (the portable
/// quantizer's order).
///
/// # Safety
/// AVX available, and `f8`, `f4`, `f1` safe to call with the caller's
/// features (AVX and SSE intrinsics).
#[inline(always)]
unsafe fn halve(
    v: [__m256; 4],
    f8: unsafe fn(__m256, __m256) -> __m256,
    f4: unsafe fn(__m128, __m128) -> __m128,
    f1: unsafe fn(__m128, __m128) -> __m128,
) -> f32 {
    // SAFETY: register-only operations of AVX and SSE, enabled in the
    // callers.
    unsafe {
        let v8 = f8(f8(v[0], v[2]), f8(v[1], v[3]));
        let v4 = f4(_mm256_castps256_ps128(v8), _mm256_extractf128_ps::<1>(v8));
        let v2 = f4(v4, _mm_movehl_ps(v4, v4));
        _mm_cvtss_f32(f1(v2, _mm_movehdup_ps(v2)))
    }
}

simd_glue!(features: "avx2,fma", token: v3);
batch_entry!(
    #[target_feature(enable = "avx2,fma,popcnt")]
    hamming_batch,
    hamming_body,
    u64,
    u32
);

// `aux` is `q.q` as `norm_sq_body` sums it, which is the `a.a` that
// `cosine_sums` computes (same accumulators, same order).
/// [`hsum`] on four vectors at once: lane `k` of the result is the sum of
/// the 8 lanes of `s[k]`, added in `hsum`'s order (lane `i` with `i + 4`,
/// then `i + 2`, then `i + 1`), so each equals what `hsum` returns for
/// `s[k]` alone.
///
/// # Safety
/// AVX available.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum4(s: [__m256; 4]) -> __m128 {
    // `i + 4`: the 128-bit halves of two vectors side by side.
    let v01 = _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(s[0], s[1]),
        _mm256_permute2f128_ps::<0x31>(s[0], s[1]),
    );
    let v23 = _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(s[2], s[3]),
        _mm256_permute2f128_ps::<0x31>(s[2], s[3]),
    );
    // `i + 2`: per 128-bit lane, lanes 0 and 1 of `v01` and `v23` against
    // their lanes 2 and 3, so `w` holds (for s[0], s[2] | s[1], s[3]) two
    // sums each.
    let w = _mm256_add_ps(
        _mm256_shuffle_ps::<0b01_00_01_00>(v01, v23),
        _mm256_shuffle_ps::<0b11_10_11_10>(v01, v23),
    );
    // `i + 1`: lanes 0 and 2 against 1 and 3, giving
    // (S0, S2, S0, S2 | S1, S3, S1, S3).
    let r = _mm256_add_ps(
        _mm256_shuffle_ps::<0b10_00_10_00>(w, w),
        _mm256_shuffle_ps::<0b11_01_11_01>(w, w),
    );
    _mm_unpacklo_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps::<1>(r))
}

cosine_gather4!("avx2,fma", cosine_vecs, hsum4);

// ---- 8-bit integer kernels (see `kernels::int8`) ----------------------------

/// Horizontal wrapping sum of eight `i32` lanes.
///
/// # Safety
/// AVX2 available.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// `|a - b|` per byte, from two saturating subtractions (one is zero).
///
/// # Safety
/// AVX2 available.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn absdiff_u8(a: __m256i, b: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_subs_epu8(a, b), _mm256_subs_epu8(b, a))
}

/// Exact `sum(q[i] * c[i])`: bytes widened to 16 bits (`vpmovzxbw` for the
/// codes, `vpmovsxbw` for the query) and multiplied pairwise into 32-bit
/// lanes by `vpmaddwd`, so no intermediate saturates (`vpmaddubsw` would:
/// `255 * 127 * 2` exceeds `i16`). 32 codes per step, then 16, then one at
/// a time.
///
/// # Safety
/// AVX2 available; `q` and `c` have `n` readable elements.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_u8i8_body(q: *const i8, c: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // SAFETY: every 32-byte load reads `i..i + 32` with `i + 32 <= n`, every
    // 16-byte one `i..i + 16` with `i + 16 <= n`, the tail `i < n`; both
    // pointers have `n` readable elements (caller contract).
    unsafe {
        let (mut acc0, mut acc1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        while i + 32 <= n {
            let cv = _mm256_loadu_si256(c.add(i).cast());
            let qv = _mm256_loadu_si256(q.add(i).cast());
            let c0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(cv));
            let c1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(cv));
            let q0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(qv));
            let q1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(qv));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(c0, q0));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(c1, q1));
            i += 32;
        }
        if i + 16 <= n {
            let c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(c.add(i).cast()));
            let q0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(q.add(i).cast()));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(c0, q0));
            i += 16;
        }
        let mut total = hsum_i32(_mm256_add_epi32(acc0, acc1));
        while i < n {
            total = total.wrapping_add(i32::from(*q.add(i)) * i32::from(*c.add(i)));
            i += 1;
        }
        total
    }
}

/// Exact `sum((a[i] - b[i])^2)`: `|a - b|` per byte, widened to 16 bits and
/// squared pairwise into 32-bit lanes by `vpmaddwd` (each lane stays below
/// `2^31` for `n <= MAX_INT_DIM`; the total is summed modulo `2^32`, which
/// is exact below `2^32`).
///
/// # Safety
/// AVX2 available; `a` and `b` have `n` readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn l2sq_u8_body(a: *const u8, b: *const u8, n: usize) -> u32 {
    let mut i = 0;
    // SAFETY: as in `dot_u8i8_body`.
    unsafe {
        let (mut acc0, mut acc1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        while i + 32 <= n {
            let d = absdiff_u8(
                _mm256_loadu_si256(a.add(i).cast()),
                _mm256_loadu_si256(b.add(i).cast()),
            );
            let d0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(d));
            let d1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(d));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(d0, d0));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(d1, d1));
            i += 32;
        }
        let mut total = hsum_i32(_mm256_add_epi32(acc0, acc1)) as u32;
        while i < n {
            let d = u32::from((*a.add(i)).abs_diff(*b.add(i)));
            total = total.wrapping_add(d * d);
            i += 1;
        }
        total
    }
}

/// As [`dot_u8i8_body`] with AVX-VNNI: `vpdpbusd` multiplies 32 unsigned
/// code bytes by 32 signed query bytes and adds each group of four products
/// into a 32-bit lane, exactly (no saturation: the `s` form is not used).
/// 128 codes per step on four chains, then 64, then 32, then
/// [`dot_u8i8_body`]'s 16-wide step and
/// scalar tail.
///
/// # Safety
/// AVX2 and AVX-VNNI available; `q` and `c` have `n` readable elements.
#[inline]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn dot_u8i8_vnni_body(q: *const i8, c: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // SAFETY: as in `dot_u8i8_body`; the rest goes to it with the pointers
    // advanced by `i <= n` and `n - i` elements left.
    unsafe {
        let z = _mm256_setzero_si256();
        let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
        // Four chains: `vpdpbusd` has a latency of about five cycles.
        while i + 128 <= n {
            let ld = |o: usize| {
                (
                    _mm256_loadu_si256(c.add(i + o).cast()),
                    _mm256_loadu_si256(q.add(i + o).cast()),
                )
            };
            let ((c0, q0), (c1, q1), (c2, q2), (c3, q3)) = (ld(0), ld(32), ld(64), ld(96));
            acc0 = _mm256_dpbusd_avx_epi32(acc0, c0, q0);
            acc1 = _mm256_dpbusd_avx_epi32(acc1, c1, q1);
            acc2 = _mm256_dpbusd_avx_epi32(acc2, c2, q2);
            acc3 = _mm256_dpbusd_avx_epi32(acc3, c3, q3);
            i += 128;
        }
        acc0 = _mm256_add_epi32(acc0, acc2);
        acc1 = _mm256_add_epi32(acc1, acc3);
        while i + 64 <= n {
            let c0 = _mm256_loadu_si256(c.add(i).cast());
            let q0 = _mm256_loadu_si256(q.add(i).cast());
            let c1 = _mm256_loadu_si256(c.add(i + 32).cast());
            let q1 = _mm256_loadu_si256(q.add(i + 32).cast());
            acc0 = _mm256_dpbusd_avx_epi32(acc0, c0, q0);
            acc1 = _mm256_dpbusd_avx_epi32(acc1, c1, q1);
            i += 64;
        }
        if i + 32 <= n {
            let c0 = _mm256_loadu_si256(c.add(i).cast());
            let q0 = _mm256_loadu_si256(q.add(i).cast());
            acc0 = _mm256_dpbusd_avx_epi32(acc0, c0, q0);
            i += 32;
        }
        hsum_i32(_mm256_add_epi32(acc0, acc1)).wrapping_add(dot_u8i8_body(
            q.add(i),
            c.add(i),
            n - i,
        ))
    }
}

/// One FastScan block (see `kernels::fastscan`): two sub-spaces per step,
/// sub-space `j` in the low 128-bit lane and `j + 1` in the high one (the
/// block and the tables are both in that order), looked up by `vpshufb` on
/// the low and the high nibbles (vectors `0..16` and `16..32`).
///
/// The looked-up bytes are added without unpacking (the even/odd split
/// FAISS uses): each 16-bit lane of `lo` holds an even vector's byte and
/// the next odd one's, so `acc += lo` sums `E + 256 * O` (mod 2^16) and
/// `odd += lo >> 8` sums `O` exactly, and at the flush `E = acc - (odd <<
/// 8)` (mod 2^16) is exact because `E < 2^16`. That trades the four
/// `vpunpck*bw` (the shuffle port's work, beside the two `vpshufb`) for two
/// shifts. Flushes every `FLUSH` sub-spaces (at most 128 adds of 255 per
/// 16-bit lane); an odd last sub-space goes alone with a zero table in the
/// high lane.
///
/// # Safety
/// AVX2 available; `lut` and `block` have `m * 16` readable bytes, `out` 32
/// writable totals.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn fastscan_block(lut: *const u8, block: *const u8, m: usize, out: *mut u32) {
    let low = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    // Totals of vectors (0, 2, .., 14), (1, 3, .., 15), (16, .., 30), (17, .., 31).
    let mut tot = [zero; 4];
    let mut j = 0;
    while j < m {
        let end = m.min(j + crate::kernels::fastscan::FLUSH);
        let mut acc = [zero; 4];
        let mut step = |t: __m256i, c: __m256i| {
            let lo = _mm256_shuffle_epi8(t, _mm256_and_si256(c, low));
            let hi = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16::<4>(c), low));
            acc[0] = _mm256_add_epi16(acc[0], lo);
            acc[1] = _mm256_add_epi16(acc[1], _mm256_srli_epi16::<8>(lo));
            acc[2] = _mm256_add_epi16(acc[2], hi);
            acc[3] = _mm256_add_epi16(acc[3], _mm256_srli_epi16::<8>(hi));
        };
        while j + 2 <= end {
            // SAFETY: sub-spaces `j` and `j + 1` are below `m`, so their 32
            // bytes at `j * 16` are inside `lut` and `block` (caller contract).
            let (t, c) = unsafe {
                (
                    _mm256_loadu_si256(lut.add(j * 16).cast()),
                    _mm256_loadu_si256(block.add(j * 16).cast()),
                )
            };
            step(t, c);
            j += 2;
        }
        if j < end {
            // SAFETY: sub-space `j < m`: 16 bytes at `j * 16` in both.
            let (t, c) = unsafe {
                (
                    _mm_loadu_si128(lut.add(j * 16).cast()),
                    _mm_loadu_si128(block.add(j * 16).cast()),
                )
            };
            step(
                _mm256_set_m128i(_mm_setzero_si128(), t),
                _mm256_set_m128i(_mm_setzero_si128(), c),
            );
            j += 1;
        }
        acc[0] = _mm256_sub_epi16(acc[0], _mm256_slli_epi16::<8>(acc[1]));
        acc[2] = _mm256_sub_epi16(acc[2], _mm256_slli_epi16::<8>(acc[3]));
        for (t, a) in tot.iter_mut().zip(acc) {
            let halves = _mm256_add_epi32(
                _mm256_cvtepu16_epi32(_mm256_castsi256_si128(a)),
                _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(a)),
            );
            *t = _mm256_add_epi32(*t, halves);
        }
    }
    // SAFETY: `out` has 32 writable totals; AVX2 is enabled here.
    unsafe {
        super::store_even_odd(tot[0], tot[1], out);
        super::store_even_odd(tot[2], tot[3], out.add(16));
    }
}

fastscan_entry!(
    #[target_feature(enable = "avx2,fma")]
    fastscan_u4,
    fastscan_block
);

int_glue!(
    #[target_feature(enable = "avx2,fma")]
    mod int_avx2,
    dot: super::dot_u8i8_body,
    l2: super::l2sq_u8_body
);
int_glue!(
    #[target_feature(enable = "avx2,fma,avxvnni")]
    mod int_avxvnni,
    dot: super::dot_u8i8_vnni_body,
    l2: super::l2sq_u8_body
);

/// The AVX2+FMA kernels. Handed out only by `super::avx2_variants`.
pub(super) static TABLE: KernelTable = kernel_table!(Isa::Avx2, "avx2", int: int_avx2);

/// The AVX2+FMA kernels with AVX-VNNI integer kernels. Handed out only by
/// `super::avx2_variants`, after AVX-VNNI detection.
pub(super) static TABLE_VNNI: KernelTable = KernelTable {
    variant: "avx2+avxvnni",
    int: int_fields!(int_avxvnni),
    ..TABLE
};
