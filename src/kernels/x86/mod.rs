//! x86-64 kernels: AVX2+FMA and AVX-512.
//!
//! The tables are handed out only after `is_x86_feature_detected!` (through
//! pulp's `V3` / `V4` tokens, which check the full x86-64-v3 / v4 feature
//! sets) says the running CPU has every feature the table's functions are
//! compiled with. The answer is cached in a `OnceLock`, so `for_isa` costs
//! one atomic load after the first call.

use std::sync::OnceLock;

use super::KernelTable;

#[cfg(any(feature = "avx2", feature = "avx512"))]
use std::arch::x86_64::{
    __m128, __m256i, _mm256_permute2x128_si256, _mm256_storeu_si256, _mm256_unpackhi_epi32,
    _mm256_unpacklo_epi32, _mm_blendv_ps, _mm_cmpeq_ps, _mm_div_ps, _mm_max_ps, _mm_min_ps,
    _mm_mul_ps, _mm_set1_ps, _mm_setzero_ps, _mm_sqrt_ps, _mm_sub_ps,
};

/// Defines `cosine_gather`, the cosine `RawF32Gather` entry of an x86
/// table, under `#[target_feature(enable = $features)]`: from one prepared
/// query (`aux` = `q.q` as the table's `norm_sq_body` sums it, the `a.a`
/// of its `cosine_sums`) to rows scattered through an arena, four at a
/// time. Their partial sums are computed by `$vecs` (the table's
/// `cosine_vecs`, what its `cosine_sums` reduces), reduced together by
/// `$reduce4` (its reduction's lane pairing, four vectors at once) and
/// finished together by [`cosine_from_sums4`]; the last one to three rows
/// go one by one through `cosine_sums` and `cosine_from_sums`. Each result
/// equals the table's `cosine(q, row)` bit for bit.
#[cfg(any(feature = "avx2", feature = "avx512"))]
macro_rules! cosine_gather4 {
    ($features:literal, $vecs:ident, $reduce4:ident) => {
        /// # Safety
        /// `RawF32Gather` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn cosine_gather(
            q: *const f32,
            aux: f32,
            base: *const f32,
            dim: usize,
            stride: usize,
            rows: *const u32,
            n: usize,
            out: *mut f32,
        ) {
            // SAFETY: (for each use) `i < n`, so `rows.add(i)` is readable,
            // and row `rows[i]` has `dim` readable floats at
            // `base + rows[i] * stride` (caller contract).
            let row = |i: usize| unsafe { base.add(*rows.add(i) as usize * stride) };
            let mut i = 0;
            while i + 4 <= n {
                // SAFETY: rows `i..i + 4` are below `n` (see `row`); `q` has
                // `dim` readable floats and `out` has `n` writable slots
                // (caller contract); the table's features (and with them
                // SSE4.1) are enabled here.
                unsafe {
                    let (ab0, _, bb0) = $vecs(q, row(i), dim);
                    let (ab1, _, bb1) = $vecs(q, row(i + 1), dim);
                    let (ab2, _, bb2) = $vecs(q, row(i + 2), dim);
                    let (ab3, _, bb3) = $vecs(q, row(i + 3), dim);
                    let ab = $reduce4([ab0, ab1, ab2, ab3]);
                    let bb = $reduce4([bb0, bb1, bb2, bb3]);
                    _mm_storeu_ps(out.add(i), cosine_from_sums4(ab, aux, bb));
                }
                i += 4;
            }
            while i < n {
                // SAFETY: as above, for row `i < n`.
                unsafe {
                    let (ab, _, bb) = cosine_sums(q, row(i), dim);
                    *out.add(i) = cosine_from_sums(ab, aux, bb);
                }
                i += 1;
            }
        }
    };
}

#[cfg(feature = "avx2")]
mod avx2;

#[cfg(feature = "avx512")]
mod avx512;

/// `cosine_from_sums(ab[k], aa, bb[k])` (the scalar finish of every
/// ISA) in lane `k`, for four rows against one query: the same IEEE operations lane by lane (`sqrt`,
/// product, quotient, `1 - x`, the clamp as `max` then `min`, which keep a
/// NaN as `clamp` does), and the same zero cases.
///
/// Shared by the AVX2 and AVX-512 gathers (it needs only SSE4.1).
///
/// # Safety
/// SSE4.1 available.
#[inline]
#[target_feature(enable = "sse4.1")]
#[cfg(any(feature = "avx2", feature = "avx512"))]
unsafe fn cosine_from_sums4(ab: __m128, aa: f32, bb: __m128) -> __m128 {
    let (zero, one) = (_mm_setzero_ps(), _mm_set1_ps(1.0));
    let bb_zero = _mm_cmpeq_ps(bb, zero);
    if aa == 0.0 {
        return _mm_blendv_ps(one, zero, bb_zero);
    }
    let d = _mm_sub_ps(
        one,
        _mm_div_ps(ab, _mm_mul_ps(_mm_set1_ps(aa.sqrt()), _mm_sqrt_ps(bb))),
    );
    // `maxps` and `minps` return their second operand when one is NaN.
    let d = _mm_min_ps(_mm_set1_ps(2.0), _mm_max_ps(zero, d));
    _mm_blendv_ps(d, one, bb_zero)
}

/// Stores 16 FastScan totals given as the even vectors' (`even[k]` is
/// vector `2k`) and the odd vectors' (`odd[k]` is vector `2k + 1`), in
/// vector order: `vpunpck[lh]dq` interleave within 128-bit lanes (vectors
/// 0-3 and 8-11, 4-7 and 12-15), `vperm2i128` puts the lanes in order.
///
/// Shared by the AVX2 and AVX-512 FastScan bodies.
///
/// # Safety
/// AVX2 available; `out` has 16 writable `u32`s.
#[inline]
#[target_feature(enable = "avx2")]
#[cfg(any(feature = "avx2", feature = "avx512"))]
unsafe fn store_even_odd(even: __m256i, odd: __m256i, out: *mut u32) {
    let (a, b) = (
        _mm256_unpacklo_epi32(even, odd),
        _mm256_unpackhi_epi32(even, odd),
    );
    // SAFETY: `out` has 16 writable `u32`s (caller contract).
    unsafe {
        _mm256_storeu_si256(out.cast(), _mm256_permute2x128_si256::<0x20>(a, b));
        _mm256_storeu_si256(out.add(8).cast(), _mm256_permute2x128_si256::<0x31>(a, b));
    }
}

/// The AVX2+FMA tables the CPU can run, best first: with AVX-VNNI
/// (`vpdpbusd` on 256-bit registers, Alder Lake, Sapphire Rapids, Zen 5 and
/// later) when it has that, then the base table. The base needs AVX2, FMA
/// and the rest of x86-64-v3 (BMI1/2, LZCNT, MOVBE, POPCNT, which every
/// AVX2+FMA CPU has, and which the generic kernels compiled through pulp's
/// `V3` may use).
#[cfg(feature = "avx2")]
pub(super) fn avx2_variants() -> &'static [&'static KernelTable] {
    static VARIANTS: OnceLock<Vec<&'static KernelTable>> = OnceLock::new();
    VARIANTS.get_or_init(|| {
        let base = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("popcnt")
            && pulp::x86::V3::is_available();
        let mut v = Vec::new();
        if base {
            if is_x86_feature_detected!("avxvnni") {
                v.push(&avx2::TABLE_VNNI);
            }
            v.push(&avx2::TABLE);
        }
        v
    })
}

/// The AVX-512 tables the CPU can run, best first. The base needs AVX-512F,
/// BW, CD, DQ and VL (pulp's `V4`, i.e. x86-64-v4: every AVX-512 CPU since
/// Skylake-SP). Hamming uses VPOPCNTDQ when the CPU has it (Ice Lake, Zen 4
/// and later) and a BW nibble-lookup count otherwise; the integer kernels use
/// AVX-512 VNNI (`vpdpbusd`, Cascade Lake, Ice Lake, Zen 4 and later) when
/// the CPU has it. The choice is made here, once, by picking static tables,
/// so no kernel branches on it.
#[cfg(feature = "avx512")]
pub(super) fn avx512_variants() -> &'static [&'static KernelTable] {
    static VARIANTS: OnceLock<Vec<&'static KernelTable>> = OnceLock::new();
    VARIANTS.get_or_init(|| {
        let base = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && pulp::x86::V4::is_available();
        if !base {
            return Vec::new();
        }
        let vnni = is_x86_feature_detected!("avx512vnni");
        let vpopcnt = is_x86_feature_detected!("avx512vpopcntdq");
        let mut v = Vec::new();
        if vnni && vpopcnt {
            v.push(&avx512::TABLE_VNNI_VPOPCNTDQ);
        }
        if vnni {
            v.push(&avx512::TABLE_VNNI);
        }
        if vpopcnt {
            v.push(&avx512::TABLE_VPOPCNTDQ);
        }
        v.push(&avx512::TABLE);
        v
    })
}
