//! AVX-512 kernels (512-bit vectors, sixteen `f32` lanes).
//!
//! Every function here is reachable only through [`TABLE`] and its
//! variants, which `super::avx512_variants` hands out only after run-time
//! detection found AVX-512F/BW/CD/DQ/VL (pulp's `V4`), and, for the
//! variants, AVX-512 VPOPCNTDQ and/or VNNI. That detection is the check behind
//! every `#[target_feature]` call below; pointer validity is the caller's
//! contract from the raw kernel types in `kernels/mod.rs`.
//!
//! Layout of the hot loops: four accumulators over 64 floats per iteration,
//! then 16 floats at a time, then one zero-masked load
//! (`_mm512_maskz_loadu_ps` with the low `rem` bits of the mask set) for the
//! last 1..=15 floats. A masked-off lane is neither read (no fault, even past
//! the end of a page) nor counted (it loads as 0.0).

use core::arch::x86_64::*;

use pulp::x86::V4;

use super::cosine_from_sums4;
use crate::kernels::scalar::cosine_from_sums;
use crate::kernels::scalar::{quant_step, U8Code};
use crate::kernels::{Isa, KernelTable};

/// Mask with the low `rem` bits set, for the last `rem` (1..=15) floats.
#[inline(always)]
fn tail16(rem: usize) -> __mmask16 {
    debug_assert!((1..16).contains(&rem));
    ((1u32 << rem) - 1) as __mmask16
}

/// Mask with the low `rem` bits set, for the last `rem` (1..=7) words.
#[inline(always)]
fn tail8(rem: usize) -> __mmask8 {
    debug_assert!((1..8).contains(&rem));
    ((1u32 << rem) - 1) as __mmask8
}

/// # Safety
/// AVX-512F available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dot_body(a: *const f32, b: *const f32, n: usize) -> f32 {
    let z = _mm512_setzero_ps();
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n, so floats i..i + 64 of both inputs are readable.
        unsafe {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.add(i + 16)),
                _mm512_loadu_ps(b.add(i + 16)),
                acc1,
            );
            acc2 = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.add(i + 32)),
                _mm512_loadu_ps(b.add(i + 32)),
                acc2,
            );
            acc3 = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.add(i + 48)),
                _mm512_loadu_ps(b.add(i + 48)),
                acc3,
            );
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc0);
        }
        i += 16;
    }
    if i < n {
        let m = tail16(n - i);
        // SAFETY: the masked load reads only the lanes set in `m`, floats
        // i..n, which are readable; the other lanes are 0.0.
        unsafe {
            acc1 = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, a.add(i)),
                _mm512_maskz_loadu_ps(m, b.add(i)),
                acc1,
            );
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc0, acc1),
        _mm512_add_ps(acc2, acc3),
    ))
}

/// # Safety
/// AVX-512F available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn l2sq_body(a: *const f32, b: *const f32, n: usize) -> f32 {
    let z = _mm512_setzero_ps();
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n, so floats i..i + 64 of both inputs are readable.
        unsafe {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            let d1 = _mm512_sub_ps(
                _mm512_loadu_ps(a.add(i + 16)),
                _mm512_loadu_ps(b.add(i + 16)),
            );
            let d2 = _mm512_sub_ps(
                _mm512_loadu_ps(a.add(i + 32)),
                _mm512_loadu_ps(b.add(i + 32)),
            );
            let d3 = _mm512_sub_ps(
                _mm512_loadu_ps(a.add(i + 48)),
                _mm512_loadu_ps(b.add(i + 48)),
            );
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            acc2 = _mm512_fmadd_ps(d2, d2, acc2);
            acc3 = _mm512_fmadd_ps(d3, d3, acc3);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            let d = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            acc0 = _mm512_fmadd_ps(d, d, acc0);
        }
        i += 16;
    }
    if i < n {
        let m = tail16(n - i);
        // SAFETY: the masked load reads only floats i..n; masked-off lanes
        // are 0.0 in both inputs, so their difference adds nothing.
        unsafe {
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(m, a.add(i)),
                _mm512_maskz_loadu_ps(m, b.add(i)),
            );
            acc1 = _mm512_fmadd_ps(d, d, acc1);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc0, acc1),
        _mm512_add_ps(acc2, acc3),
    ))
}

/// # Safety
/// AVX-512F available; `a` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn norm_sq_body(a: *const f32, n: usize) -> f32 {
    let z = _mm512_setzero_ps();
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n.
        unsafe {
            let x0 = _mm512_loadu_ps(a.add(i));
            let x1 = _mm512_loadu_ps(a.add(i + 16));
            let x2 = _mm512_loadu_ps(a.add(i + 32));
            let x3 = _mm512_loadu_ps(a.add(i + 48));
            acc0 = _mm512_fmadd_ps(x0, x0, acc0);
            acc1 = _mm512_fmadd_ps(x1, x1, acc1);
            acc2 = _mm512_fmadd_ps(x2, x2, acc2);
            acc3 = _mm512_fmadd_ps(x3, x3, acc3);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            let x = _mm512_loadu_ps(a.add(i));
            acc0 = _mm512_fmadd_ps(x, x, acc0);
        }
        i += 16;
    }
    if i < n {
        // SAFETY: the masked load reads only floats i..n.
        unsafe {
            let x = _mm512_maskz_loadu_ps(tail16(n - i), a.add(i));
            acc1 = _mm512_fmadd_ps(x, x, acc1);
        }
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
    // SAFETY: AVX-512F is enabled here, AVX and SSE with it.
    unsafe { halve(sum, _mm256_add_ps, _mm_add_ps, _mm_add_ss) }
}

/// `(a.b, a.a, b.b)` in one pass, 4 x 3 accumulators over 64 floats, each
/// reduced by [`halve`] (so `a.a` is what [`norm_sq_body`] returns for `a`).
///
/// # Safety
/// AVX-512F available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn cosine_sums(a: *const f32, b: *const f32, n: usize) -> (f32, f32, f32) {
    // SAFETY: forwarded to the caller.
    let (ab, aa, bb) = unsafe { cosine_vecs(a, b, n) };
    // SAFETY: AVX-512F is enabled here, AVX and SSE with it.
    unsafe {
        (
            halve(ab, _mm256_add_ps, _mm_add_ps, _mm_add_ss),
            halve(aa, _mm256_add_ps, _mm_add_ps, _mm_add_ss),
            halve(bb, _mm256_add_ps, _mm_add_ps, _mm_add_ss),
        )
    }
}

/// The 16-lane partial sums of `(a.b, a.a, b.b)` that [`cosine_sums`]
/// reduces: 4 x 3 accumulators over 64 floats, the four of each sum added
/// as `(0 + 1) + (2 + 3)`.
///
/// # Safety
/// AVX-512F available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn cosine_vecs(a: *const f32, b: *const f32, n: usize) -> (__m512, __m512, __m512) {
    let z = _mm512_setzero_ps();
    let (mut ab0, mut ab1, mut ab2, mut ab3) = (z, z, z, z);
    let (mut aa0, mut aa1, mut aa2, mut aa3) = (z, z, z, z);
    let (mut bb0, mut bb1, mut bb2, mut bb3) = (z, z, z, z);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n, so floats i..i + 64 of both inputs are readable.
        unsafe {
            let (x, y) = (_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            ab0 = _mm512_fmadd_ps(x, y, ab0);
            aa0 = _mm512_fmadd_ps(x, x, aa0);
            bb0 = _mm512_fmadd_ps(y, y, bb0);
            let (x, y) = (
                _mm512_loadu_ps(a.add(i + 16)),
                _mm512_loadu_ps(b.add(i + 16)),
            );
            ab1 = _mm512_fmadd_ps(x, y, ab1);
            aa1 = _mm512_fmadd_ps(x, x, aa1);
            bb1 = _mm512_fmadd_ps(y, y, bb1);
            let (x, y) = (
                _mm512_loadu_ps(a.add(i + 32)),
                _mm512_loadu_ps(b.add(i + 32)),
            );
            ab2 = _mm512_fmadd_ps(x, y, ab2);
            aa2 = _mm512_fmadd_ps(x, x, aa2);
            bb2 = _mm512_fmadd_ps(y, y, bb2);
            let (x, y) = (
                _mm512_loadu_ps(a.add(i + 48)),
                _mm512_loadu_ps(b.add(i + 48)),
            );
            ab3 = _mm512_fmadd_ps(x, y, ab3);
            aa3 = _mm512_fmadd_ps(x, x, aa3);
            bb3 = _mm512_fmadd_ps(y, y, bb3);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            let (x, y) = (_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            ab0 = _mm512_fmadd_ps(x, y, ab0);
            aa0 = _mm512_fmadd_ps(x, x, aa0);
            bb0 = _mm512_fmadd_ps(y, y, bb0);
        }
        i += 16;
    }
    if i < n {
        let m = tail16(n - i);
        // SAFETY: the masked loads read only floats i..n.
        unsafe {
            let (x, y) = (
                _mm512_maskz_loadu_ps(m, a.add(i)),
                _mm512_maskz_loadu_ps(m, b.add(i)),
            );
            ab1 = _mm512_fmadd_ps(x, y, ab1);
            aa1 = _mm512_fmadd_ps(x, x, aa1);
            bb1 = _mm512_fmadd_ps(y, y, bb1);
        }
    }
    let sum4 = |p: __m512, q: __m512, r: __m512, s: __m512| {
        _mm512_add_ps(_mm512_add_ps(p, q), _mm512_add_ps(r, s))
    };
    (
        sum4(ab0, ab1, ab2, ab3),
        sum4(aa0, aa1, aa2, aa3),
        sum4(bb0, bb1, bb2, bb3),
    )
}

/// One Hamming body per way of counting the bits of a 512-bit vector: two
/// accumulators over 16 words, then 8, then a masked load for the last
/// 1..=7 words (masked-off lanes are zero in both inputs, so their XOR
/// counts no bits). `$count` maps a vector to eight 64-bit lane counts;
/// `let`s before it are set up once per call.
macro_rules! hamming_body {
    ($(#[$doc:meta])* $name:ident, $features:literal,
     $(let $k:ident = $init:expr;)* |$v:ident| $count:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("`", $features, "` available; `a` and `b` valid for `n` reads.")]
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name(a: *const u64, b: *const u64, n: usize) -> u32 {
            $(let $k = $init;)*
            let count = |$v: __m512i| $count;
            let z = _mm512_setzero_si512();
            let (mut acc0, mut acc1) = (z, z);
            let (a, b) = (a.cast::<i64>(), b.cast::<i64>());
            let mut i = 0;
            while i + 16 <= n {
                // SAFETY: i + 16 <= n, so words i..i + 16 of both inputs
                // are readable.
                unsafe {
                    let x0 = _mm512_loadu_epi64(a.add(i));
                    let y0 = _mm512_loadu_epi64(b.add(i));
                    let x1 = _mm512_loadu_epi64(a.add(i + 8));
                    let y1 = _mm512_loadu_epi64(b.add(i + 8));
                    acc0 = _mm512_add_epi64(acc0, count(_mm512_xor_si512(x0, y0)));
                    acc1 = _mm512_add_epi64(acc1, count(_mm512_xor_si512(x1, y1)));
                }
                i += 16;
            }
            if i + 8 <= n {
                // SAFETY: i + 8 <= n.
                unsafe {
                    let x = _mm512_loadu_epi64(a.add(i));
                    let y = _mm512_loadu_epi64(b.add(i));
                    acc0 = _mm512_add_epi64(acc0, count(_mm512_xor_si512(x, y)));
                }
                i += 8;
            }
            if i < n {
                let m = tail8(n - i);
                // SAFETY: the masked loads read only words i..n; masked-off
                // lanes are zero in both, so their XOR counts no bits.
                unsafe {
                    let x = _mm512_maskz_loadu_epi64(m, a.add(i));
                    let y = _mm512_maskz_loadu_epi64(m, b.add(i));
                    acc1 = _mm512_add_epi64(acc1, count(_mm512_xor_si512(x, y)));
                }
            }
            // Truncation to u32 as in every ISA: the bit count of fewer than
            // 2^26 words.
            _mm512_reduce_add_epi64(_mm512_add_epi64(acc0, acc1)) as u32
        }
    };
}

hamming_body!(
    /// Bits set in `a ^ b` with `vpopcntq`, eight words per vector.
    hamming_vpopcnt_body,
    "avx512f,avx512vpopcntdq",
    |v| _mm512_popcnt_epi64(v)
);

hamming_body!(
    /// Bits set in `a ^ b` for AVX-512 CPUs without VPOPCNTDQ (Skylake-SP,
    /// Cascade Lake): Mula's nibble lookup with `vpshufb` on 64 bytes, summed
    /// per 64-bit lane by `vpsadbw`.
    hamming_lookup_body,
    "avx512f,avx512bw",
    let lookup = _mm512_broadcast_i32x4(_mm_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    ));
    let low = _mm512_set1_epi8(0x0f);
    |v| {
        let lo = _mm512_and_si512(v, low);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low);
        let bytes = _mm512_add_epi8(
            _mm512_shuffle_epi8(lookup, lo),
            _mm512_shuffle_epi8(lookup, hi),
        );
        _mm512_sad_epu8(bytes, _mm512_setzero_si512())
    }
);

// ---- table entries -----------------------------------------------------------
//
// SAFETY: (for every `unsafe` block calling a `*_body` below) the entry is
// reachable only through `TABLE` / `TABLE_VPOPCNTDQ`, handed out after
// detection of x86-64-v4 (and VPOPCNTDQ for the latter) in
// `super::avx512_table`; the pointer arguments are forwarded with the
// caller's guarantee from the raw kernel type.

/// # Safety
/// `RawHamming` contract; AVX-512F and VPOPCNTDQ available.
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn hamming_vpopcnt(a: *const u64, b: *const u64, n: usize) -> u32 {
    // SAFETY: see the note above the table entries; only `TABLE_VPOPCNTDQ`,
    // handed out after VPOPCNTDQ was detected, points here.
    unsafe { hamming_vpopcnt_body(a, b, n) }
}

/// # Safety
/// `RawHamming` contract; AVX-512F and BW available.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn hamming_lookup(a: *const u64, b: *const u64, n: usize) -> u32 {
    // SAFETY: see the note above the table entries.
    unsafe { hamming_lookup_body(a, b, n) }
}

/// The pulp token for this table's ISA.
///
/// # Safety
/// The CPU must have x86-64-v4: true for every caller in this file, which is
/// only reachable through the tables handed out by `super::avx512_table`.
#[inline]
unsafe fn v4() -> V4 {
    // SAFETY: forwarded to the caller.
    unsafe { V4::new_unchecked() }
}

/// # Safety
/// `RawDotU8` contract; the table's features available.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn dot_u8(q: *const f32, codes: *const u8, n: usize) -> f32 {
    let mut k = 0;
    // SAFETY: every vector load reads 16 floats at `q + k` and 16 bytes at
    // `codes + k` with `k + 16 <= n` (32 for the pair), the scalar tail one
    // element at `k < n`, and both have `n` readable elements (caller
    // contract); AVX-512F is enabled.
    unsafe {
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let widen =
            |p: *const u8| _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())));
        while k + 32 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(k)), widen(codes.add(k)), acc0);
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(q.add(k + 16)),
                widen(codes.add(k + 16)),
                acc1,
            );
            k += 32;
        }
        if k + 16 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(k)), widen(codes.add(k)), acc0);
            k += 16;
        }
        let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        // SAFETY: (tail) `k < n` elements remain at both pointers.
        while k < n {
            sum += *q.add(k) * f32::from(*codes.add(k));
            k += 1;
        }
        sum
    }
}

/// # Safety
/// `RawQuantizeU8` contract; AVX-512F/BW available.
///
/// The portable quantizer's arithmetic in the same order (see
/// `scalar::QUANT_LANES`): lanes 0-15 and 16-31 in two registers per sum,
/// the tail through masked loads and masked additions.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_u8(x: *const f32, codes: *mut u8, n: usize) -> U8Code {
    let full = n / 32 * 32;
    let rest = n - full;
    // Lanes of the tail in the first and second register.
    let m0: __mmask16 = ((1u32 << rest.min(16)) - 1) as __mmask16;
    let m1: __mmask16 = ((1u32 << rest.saturating_sub(16)) - 1) as __mmask16;
    // SAFETY: every full load reads 16 floats at `x + j` with
    // `j + 16 <= n`; tail loads are masked to the floats left; `x` has `n`
    // readable floats and `codes` `n` writable bytes (caller contract),
    // written 16 at a time below `full` and through a local buffer for the
    // tail. AVX-512F/BW are enabled.
    unsafe {
        let load = |j: usize, m: __mmask16| _mm512_maskz_loadu_ps(m, x.add(j));
        let (mut lo0, mut lo1) = (_mm512_set1_ps(f32::INFINITY), _mm512_set1_ps(f32::INFINITY));
        let (mut hi0, mut hi1) = (
            _mm512_set1_ps(f32::NEG_INFINITY),
            _mm512_set1_ps(f32::NEG_INFINITY),
        );
        let mut j = 0;
        while j < full {
            let (v0, v1) = (_mm512_loadu_ps(x.add(j)), _mm512_loadu_ps(x.add(j + 16)));
            lo0 = _mm512_min_ps(lo0, v0);
            hi0 = _mm512_max_ps(hi0, v0);
            lo1 = _mm512_min_ps(lo1, v1);
            hi1 = _mm512_max_ps(hi1, v1);
            j += 32;
        }
        if rest > 0 {
            let (v0, v1) = (load(full, m0), load(full + 16, m1));
            lo0 = _mm512_mask_min_ps(lo0, m0, lo0, v0);
            hi0 = _mm512_mask_max_ps(hi0, m0, hi0, v0);
            lo1 = _mm512_mask_min_ps(lo1, m1, lo1, v1);
            hi1 = _mm512_mask_max_ps(hi1, m1, hi1, v1);
        }
        let lo = halve(
            _mm512_min_ps(lo0, lo1),
            _mm256_min_ps,
            _mm_min_ps,
            _mm_min_ss,
        );
        let hi = halve(
            _mm512_max_ps(hi0, hi1),
            _mm256_max_ps,
            _mm_max_ps,
            _mm_max_ss,
        );
        let (scale, inv) = quant_step(lo, hi);
        let (lo_v, inv_v, scale_v) = (
            _mm512_set1_ps(lo),
            _mm512_set1_ps(inv),
            _mm512_set1_ps(scale),
        );
        let (half, zero, top) = (
            _mm512_set1_ps(0.5),
            _mm512_setzero_ps(),
            _mm512_set1_ps(255.0),
        );
        let mut sums = [_mm512_setzero_ps(); 4];
        // Codes of 16 values, their squared errors and squares added into
        // `sums[2 r]` and `sums[2 r + 1]` on the lanes of `m`.
        let mut step = |v: __m512, m: __mmask16, r: usize| {
            let d = _mm512_sub_ps(v, lo_v);
            let k = _mm512_add_ps(_mm512_mul_ps(d, inv_v), half);
            let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(k);
            let k = _mm512_min_ps(_mm512_max_ps(k, zero), top);
            let e = _mm512_sub_ps(d, _mm512_mul_ps(scale_v, k));
            sums[2 * r] = _mm512_mask_add_ps(sums[2 * r], m, sums[2 * r], _mm512_mul_ps(e, e));
            sums[2 * r + 1] =
                _mm512_mask_add_ps(sums[2 * r + 1], m, sums[2 * r + 1], _mm512_mul_ps(v, v));
            _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(k))
        };
        let mut j = 0;
        while j < full {
            let b0 = step(_mm512_loadu_ps(x.add(j)), 0xffff, 0);
            let b1 = step(_mm512_loadu_ps(x.add(j + 16)), 0xffff, 1);
            _mm_storeu_si128(codes.add(j).cast(), b0);
            _mm_storeu_si128(codes.add(j + 16).cast(), b1);
            j += 32;
        }
        if rest > 0 {
            let mut buf = [0u8; 32];
            let b0 = step(load(full, m0), m0, 0);
            let b1 = step(load(full + 16, m1), m1, 1);
            _mm_storeu_si128(buf.as_mut_ptr().cast(), b0);
            _mm_storeu_si128(buf.as_mut_ptr().add(16).cast(), b1);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), codes.add(full), rest);
        }
        let [e0, x0, e1, x1] = sums;
        U8Code {
            lo,
            scale,
            err_sq: halve(_mm512_add_ps(e0, e1), _mm256_add_ps, _mm_add_ps, _mm_add_ss),
            norm_sq: halve(_mm512_add_ps(x0, x1), _mm256_add_ps, _mm_add_ps, _mm_add_ss),
            hi,
        }
    }
}

/// Combines the 16 lanes of `v` pairwise, lane `i` with `i + 8`, then
/// `i + 4`, `i + 2`, `i + 1` (the portable quantizer's order), with `f`.
///
/// # Safety
/// AVX-512F available, and `f8`, `f4`, `f1` safe to call with the
/// caller's features (AVX and SSE intrinsics).
#[inline(always)]
unsafe fn halve(
    v: __m512,
    f8: unsafe fn(__m256, __m256) -> __m256,
    f4: unsafe fn(__m128, __m128) -> __m128,
    f1: unsafe fn(__m128, __m128) -> __m128,
) -> f32 {
    // SAFETY: register-only operations of AVX-512F, AVX and SSE, enabled in
    // the callers.
    unsafe {
        let low = _mm512_castps512_ps256(v);
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        let v8 = f8(low, high);
        let v4 = f4(_mm256_castps256_ps128(v8), _mm256_extractf128_ps::<1>(v8));
        let v2 = f4(v4, _mm_movehl_ps(v4, v4));
        _mm_cvtss_f32(f1(v2, _mm_movehdup_ps(v2)))
    }
}

/// [`halve`] on four vectors at once: lane `k` of the result is the sum
/// of the 16 lanes of `s[k]`, added in `halve`'s order (lane `i` with
/// `i + 8`, then `i + 4`, `i + 2`, `i + 1`), so each equals what `halve`
/// returns for `s[k]` alone; four reductions for the shuffles of about one.
///
/// # Safety
/// AVX-512F available.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn halve4(s: [__m512; 4]) -> __m128 {
    // `i + 8`: the 256-bit halves of two vectors side by side, so `v01`
    // holds the eight sums of `s[0]` then those of `s[1]`.
    let v01 = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(s[0], s[1]),
        _mm512_shuffle_f32x4::<0xee>(s[0], s[1]),
    );
    let v23 = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(s[2], s[3]),
        _mm512_shuffle_f32x4::<0xee>(s[2], s[3]),
    );
    // `i + 4`: each vector's first 128-bit block against its second, one
    // vector per block of `w`.
    let w = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x88>(v01, v23),
        _mm512_shuffle_f32x4::<0xdd>(v01, v23),
    );
    // `i + 2` (lanes 2, 3, 0, 1 of each block), then `i + 1`.
    let x = _mm512_add_ps(w, _mm512_permute_ps::<0x4e>(w));
    let y = _mm512_add_ps(x, _mm512_movehdup_ps(x));
    let first = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castps512_ps128(_mm512_permutexvar_ps(first, y))
}

// Every feature of pulp's `V4`, which `avx512_variants` requires before it
// hands out any of these tables: with `avx512f` alone LLVM has no 256-bit
// EVEX forms or mask compares, and the loops it vectorizes here (the
// eight-lane `pq4_encode`) ran slower than the AVX2 table's.
simd_glue!(features: "avx512f,avx512bw,avx512cd,avx512dq,avx512vl", token: v4);

cosine_gather4!("avx512f", cosine_vecs, halve4);

batch_entry!(
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    hamming_vpopcnt_batch,
    hamming_vpopcnt_body,
    u64,
    u32
);
batch_entry!(
    #[target_feature(enable = "avx512f,avx512bw")]
    hamming_lookup_batch,
    hamming_lookup_body,
    u64,
    u32
);

// ---- 8-bit integer kernels (see `kernels::int8`) ----------------------------

/// A mask of the first `k <= 32` byte lanes.
#[inline(always)]
fn first_bytes32(k: usize) -> __mmask32 {
    if k >= 32 {
        !0
    } else {
        (1u32 << k) - 1
    }
}

/// A mask of the first `k <= 64` byte lanes.
#[inline(always)]
fn first_bytes64(k: usize) -> __mmask64 {
    if k >= 64 {
        !0
    } else {
        (1u64 << k) - 1
    }
}

/// Exact `sum(q[i] * c[i])`: as the AVX2 kernel (bytes widened to 16 bits,
/// `vpmaddwd` into 32-bit lanes, never saturating), 64 codes per step, the
/// last 1..=63 by masked 32-byte loads (masked lanes load as 0).
///
/// # Safety
/// AVX-512F/BW/VL available; `q` and `c` have `n` readable elements.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dot_u8i8_body(q: *const i8, c: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // SAFETY: every full load reads `i..i + 64` with `i + 64 <= n`; masked
    // loads touch only lanes below `n - i`; both pointers have `n` readable
    // elements (caller contract).
    unsafe {
        let (mut acc0, mut acc1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        while i + 64 <= n {
            let cv = _mm512_loadu_si512(c.add(i).cast());
            let qv = _mm512_loadu_si512(q.add(i).cast());
            let c0 = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(cv));
            let c1 = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(cv));
            let q0 = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(qv));
            let q1 = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64::<1>(qv));
            acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(c0, q0));
            acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(c1, q1));
            i += 64;
        }
        while i < n {
            let m = first_bytes32(n - i);
            let c0 = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, c.add(i).cast()));
            let q0 = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, q.add(i).cast()));
            acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(c0, q0));
            i += 32;
        }
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1))
    }
}

/// `|a - b|` per byte of 32-byte vectors.
///
/// # Safety
/// AVX2 available.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn absdiff_u8_256(a: __m256i, b: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_subs_epu8(a, b), _mm256_subs_epu8(b, a))
}

/// Exact `sum((a[i] - b[i])^2)`: `|a - b|` per byte, widened to 16 bits and
/// squared pairwise by `vpmaddwd`, 64 bytes per step, masked 32-byte tails.
///
/// # Safety
/// AVX-512F/BW/VL available; `a` and `b` have `n` readable bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn l2sq_u8_body(a: *const u8, b: *const u8, n: usize) -> u32 {
    let mut i = 0;
    // SAFETY: as in `dot_u8i8_body`.
    unsafe {
        let (mut acc0, mut acc1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        while i + 64 <= n {
            let av = _mm512_loadu_si512(a.add(i).cast());
            let bv = _mm512_loadu_si512(b.add(i).cast());
            let d = _mm512_or_si512(_mm512_subs_epu8(av, bv), _mm512_subs_epu8(bv, av));
            let d0 = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(d));
            let d1 = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(d));
            acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(d0, d0));
            acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(d1, d1));
            i += 64;
        }
        while i < n {
            let m = first_bytes32(n - i);
            let d = absdiff_u8_256(
                _mm256_maskz_loadu_epi8(m, a.add(i).cast()),
                _mm256_maskz_loadu_epi8(m, b.add(i).cast()),
            );
            let d0 = _mm512_cvtepu8_epi16(d);
            acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(d0, d0));
            i += 32;
        }
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1)) as u32
    }
}

/// As [`dot_u8i8_body`] with AVX-512 VNNI: `vpdpbusd` multiplies 64 code
/// bytes by 64 query bytes and adds each group of four into a 32-bit lane,
/// exactly; 256 codes per step on four chains, then 128, then 64-byte
/// masked steps.
///
/// # Safety
/// AVX-512F/BW/VL and VNNI available; `q` and `c` have `n` readable elements.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_u8i8_vnni_body(q: *const i8, c: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // SAFETY: as in `dot_u8i8_body`.
    unsafe {
        let z = _mm512_setzero_si512();
        let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
        // Four chains: `vpdpbusd` has a latency of about five cycles.
        while i + 256 <= n {
            let ld = |o: usize| {
                (
                    _mm512_loadu_si512(c.add(i + o).cast()),
                    _mm512_loadu_si512(q.add(i + o).cast()),
                )
            };
            let ((c0, q0), (c1, q1), (c2, q2), (c3, q3)) = (ld(0), ld(64), ld(128), ld(192));
            acc0 = _mm512_dpbusd_epi32(acc0, c0, q0);
            acc1 = _mm512_dpbusd_epi32(acc1, c1, q1);
            acc2 = _mm512_dpbusd_epi32(acc2, c2, q2);
            acc3 = _mm512_dpbusd_epi32(acc3, c3, q3);
            i += 256;
        }
        acc0 = _mm512_add_epi32(acc0, acc2);
        acc1 = _mm512_add_epi32(acc1, acc3);
        while i + 128 <= n {
            let c0 = _mm512_loadu_si512(c.add(i).cast());
            let q0 = _mm512_loadu_si512(q.add(i).cast());
            let c1 = _mm512_loadu_si512(c.add(i + 64).cast());
            let q1 = _mm512_loadu_si512(q.add(i + 64).cast());
            acc0 = _mm512_dpbusd_epi32(acc0, c0, q0);
            acc1 = _mm512_dpbusd_epi32(acc1, c1, q1);
            i += 128;
        }
        while i < n {
            let m = first_bytes64(n - i);
            let c0 = _mm512_maskz_loadu_epi8(m, c.add(i).cast());
            let q0 = _mm512_maskz_loadu_epi8(m, q.add(i).cast());
            acc0 = _mm512_dpbusd_epi32(acc0, c0, q0);
            i += 64;
        }
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1))
    }
}

/// One FastScan block (see `kernels::fastscan`): as the AVX2 body (the
/// even/odd split, no unpacking) with four sub-spaces per 512-bit step (one
/// per 128-bit lane, `vpshufb` looking up each lane's own table); the last
/// one to three sub-spaces come in by a zero-masked load, so the missing
/// lanes look up a zero table. Between flushes a 16-bit lane takes at most
/// 64 adds of 255; at each flush the four 128-bit lanes are widened and
/// added in 32 bits.
///
/// # Safety
/// AVX-512F/BW available; `lut` and `block` have `m * 16` readable bytes,
/// `out` 32 writable totals.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn fastscan_block(lut: *const u8, block: *const u8, m: usize, out: *mut u32) {
    let low = _mm512_set1_epi8(0x0f);
    let zero = _mm512_setzero_si512();
    // Totals of vectors (0, 2, .., 14), (1, 3, .., 15), (16, .., 30), (17, .., 31).
    let mut tot = [zero; 4];
    let mut j = 0;
    while j < m {
        let end = m.min(j + crate::kernels::fastscan::FLUSH);
        let mut acc = [zero; 4];
        let mut step = |t: __m512i, c: __m512i| {
            let lo = _mm512_shuffle_epi8(t, _mm512_and_si512(c, low));
            let hi = _mm512_shuffle_epi8(t, _mm512_and_si512(_mm512_srli_epi16::<4>(c), low));
            acc[0] = _mm512_add_epi16(acc[0], lo);
            acc[1] = _mm512_add_epi16(acc[1], _mm512_srli_epi16::<8>(lo));
            acc[2] = _mm512_add_epi16(acc[2], hi);
            acc[3] = _mm512_add_epi16(acc[3], _mm512_srli_epi16::<8>(hi));
        };
        while j + 4 <= end {
            // SAFETY: sub-spaces `j..j + 4` are below `m`, so their 64 bytes
            // at `j * 16` are inside `lut` and `block` (caller contract).
            let (t, c) = unsafe {
                (
                    _mm512_loadu_si512(lut.add(j * 16).cast()),
                    _mm512_loadu_si512(block.add(j * 16).cast()),
                )
            };
            step(t, c);
            j += 4;
        }
        if j < end {
            let k = first_bytes64((end - j) * 16);
            // SAFETY: the mask covers the `(end - j) * 16` bytes of the
            // sub-spaces `j..end` (below `m`); masked-off bytes are not read.
            let (t, c) = unsafe {
                (
                    _mm512_maskz_loadu_epi8(k, lut.add(j * 16).cast()),
                    _mm512_maskz_loadu_epi8(k, block.add(j * 16).cast()),
                )
            };
            step(t, c);
            j = end;
        }
        acc[0] = _mm512_sub_epi16(acc[0], _mm512_slli_epi16::<8>(acc[1]));
        acc[2] = _mm512_sub_epi16(acc[2], _mm512_slli_epi16::<8>(acc[3]));
        for (t, a) in tot.iter_mut().zip(acc) {
            let lanes = _mm512_add_epi32(
                _mm512_cvtepu16_epi32(_mm512_castsi512_si256(a)),
                _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(a)),
            );
            *t = _mm512_add_epi32(*t, lanes);
        }
    }
    let half =
        |t: __m512i| _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64::<1>(t));
    // SAFETY: `out` has 32 writable totals; AVX2 is enabled with AVX-512F.
    unsafe {
        super::store_even_odd(half(tot[0]), half(tot[1]), out);
        super::store_even_odd(half(tot[2]), half(tot[3]), out.add(16));
    }
}

fastscan_entry!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fastscan_u4,
    fastscan_block
);

int_glue!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    mod int_avx512,
    dot: super::dot_u8i8_body,
    l2: super::l2sq_u8_body
);
int_glue!(
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    mod int_vnni,
    dot: super::dot_u8i8_vnni_body,
    l2: super::l2sq_u8_body
);

use self::hamming_lookup as hamming;
use self::hamming_lookup_batch as hamming_batch;

/// The AVX-512 kernels for CPUs without VPOPCNTDQ (Hamming by nibble lookup).
pub(super) static TABLE: KernelTable = kernel_table!(Isa::Avx512, "avx512", int: int_avx512);

/// The AVX-512 kernels for CPUs with VPOPCNTDQ (Hamming by `vpopcntq`).
pub(super) static TABLE_VPOPCNTDQ: KernelTable = KernelTable {
    variant: "avx512+vpopcntdq",
    hamming: hamming_vpopcnt,
    hamming_batch: hamming_vpopcnt_batch,
    ..TABLE
};

/// The AVX-512 kernels for CPUs with VNNI but not VPOPCNTDQ.
pub(super) static TABLE_VNNI: KernelTable = KernelTable {
    variant: "avx512+vnni",
    int: int_fields!(int_vnni),
    ..TABLE
};

/// The AVX-512 kernels for CPUs with both VNNI and VPOPCNTDQ.
pub(super) static TABLE_VNNI_VPOPCNTDQ: KernelTable = KernelTable {
    variant: "avx512+vnni+vpopcntdq",
    int: int_fields!(int_vnni),
    ..TABLE_VPOPCNTDQ
};

#[cfg(test)]
mod tests {
    /// The table in use exercises only one Hamming variant; this runs the
    /// other one too when the CPU has its features, so the lookup fallback
    /// is checked on VPOPCNTDQ machines as well.
    #[test]
    fn hamming_variants_agree() {
        if super::super::avx512_variants().is_empty() {
            return;
        }
        let vpopcnt = is_x86_feature_detected!("avx512vpopcntdq");
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let words: Vec<u64> = (0..600)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            })
            .collect();
        for n in 0..=140 {
            for off in 0..3 {
                let (a, b) = (&words[off..off + n], &words[300 + off..300 + off + n]);
                let want: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
                // SAFETY: avx512_variants() returned a table, so the CPU has
                // AVX-512F/BW; both slices hold `n` words.
                let got = unsafe { super::hamming_lookup_body(a.as_ptr(), b.as_ptr(), n) };
                assert_eq!(got, want, "lookup, n = {n}");
                if vpopcnt {
                    // SAFETY: VPOPCNTDQ detected just above.
                    let got = unsafe { super::hamming_vpopcnt_body(a.as_ptr(), b.as_ptr(), n) };
                    assert_eq!(got, want, "vpopcntq, n = {n}");
                }
            }
        }
    }
}
