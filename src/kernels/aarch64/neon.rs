//! NEON kernels (128-bit vectors, four `f32` lanes).
//!
//! Every function here is reachable only through [`TABLE`], which
//! `super::neon_table` hands out only after `is_aarch64_feature_detected!("neon")`.
//! That detection is the check behind every `#[target_feature]` call below;
//! pointer validity is the caller's contract from the raw kernel types in
//! `kernels/mod.rs`.
//!
//! Layout of the hot loops: four accumulators over 16 floats per iteration
//! (FMA latency 4 on most cores, two or more FMA pipes), then four floats at
//! a time, then a short scalar remainder of at most three floats (NEON has no
//! masked loads; lengths that are a multiple of four never run it).

use core::arch::aarch64::*;

use pulp::aarch64::Neon;

use crate::kernels::scalar::{cosine_from_sums, slice};
use crate::kernels::scalar::{dot_u8_slice, quantize_u8_slice, U8Code};
use crate::kernels::{Isa, KernelTable};

/// # Safety
/// NEON available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_body(a: *const f32, b: *const f32, n: usize) -> f32 {
    let z = vdupq_n_f32(0.0);
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so floats i..i + 16 of both inputs are readable.
        unsafe {
            acc0 = vfmaq_f32(acc0, vld1q_f32(a.add(i)), vld1q_f32(b.add(i)));
            acc1 = vfmaq_f32(acc1, vld1q_f32(a.add(i + 4)), vld1q_f32(b.add(i + 4)));
            acc2 = vfmaq_f32(acc2, vld1q_f32(a.add(i + 8)), vld1q_f32(b.add(i + 8)));
            acc3 = vfmaq_f32(acc3, vld1q_f32(a.add(i + 12)), vld1q_f32(b.add(i + 12)));
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: i + 4 <= n.
        unsafe { acc0 = vfmaq_f32(acc0, vld1q_f32(a.add(i)), vld1q_f32(b.add(i))) };
        i += 4;
    }
    let mut sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    while i < n {
        // SAFETY: i < n.
        unsafe { sum = (*a.add(i)).mul_add(*b.add(i), sum) };
        i += 1;
    }
    sum
}

/// # Safety
/// NEON available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn l2sq_body(a: *const f32, b: *const f32, n: usize) -> f32 {
    let z = vdupq_n_f32(0.0);
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so floats i..i + 16 of both inputs are readable.
        unsafe {
            let d0 = vsubq_f32(vld1q_f32(a.add(i)), vld1q_f32(b.add(i)));
            let d1 = vsubq_f32(vld1q_f32(a.add(i + 4)), vld1q_f32(b.add(i + 4)));
            let d2 = vsubq_f32(vld1q_f32(a.add(i + 8)), vld1q_f32(b.add(i + 8)));
            let d3 = vsubq_f32(vld1q_f32(a.add(i + 12)), vld1q_f32(b.add(i + 12)));
            acc0 = vfmaq_f32(acc0, d0, d0);
            acc1 = vfmaq_f32(acc1, d1, d1);
            acc2 = vfmaq_f32(acc2, d2, d2);
            acc3 = vfmaq_f32(acc3, d3, d3);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: i + 4 <= n.
        unsafe {
            let d = vsubq_f32(vld1q_f32(a.add(i)), vld1q_f32(b.add(i)));
            acc0 = vfmaq_f32(acc0, d, d);
        }
        i += 4;
    }
    let mut sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    while i < n {
        // SAFETY: i < n.
        let d = unsafe { *a.add(i) - *b.add(i) };
        sum = d.mul_add(d, sum);
        i += 1;
    }
    sum
}

/// # Safety
/// NEON available; `a` valid for `n` reads.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn norm_sq_body(a: *const f32, n: usize) -> f32 {
    let z = vdupq_n_f32(0.0);
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (z, z, z, z);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            let x0 = vld1q_f32(a.add(i));
            let x1 = vld1q_f32(a.add(i + 4));
            let x2 = vld1q_f32(a.add(i + 8));
            let x3 = vld1q_f32(a.add(i + 12));
            acc0 = vfmaq_f32(acc0, x0, x0);
            acc1 = vfmaq_f32(acc1, x1, x1);
            acc2 = vfmaq_f32(acc2, x2, x2);
            acc3 = vfmaq_f32(acc3, x3, x3);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: i + 4 <= n.
        unsafe {
            let x = vld1q_f32(a.add(i));
            acc0 = vfmaq_f32(acc0, x, x);
        }
        i += 4;
    }
    let mut sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    while i < n {
        // SAFETY: i < n.
        let x = unsafe { *a.add(i) };
        sum = x.mul_add(x, sum);
        i += 1;
    }
    sum
}

/// `(a.b, a.a, b.b)` in one pass, 4 x 3 accumulators over 16 floats.
///
/// # Safety
/// NEON available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn cosine_sums(a: *const f32, b: *const f32, n: usize) -> (f32, f32, f32) {
    let z = vdupq_n_f32(0.0);
    let (mut ab0, mut ab1, mut ab2, mut ab3) = (z, z, z, z);
    let (mut aa0, mut aa1, mut aa2, mut aa3) = (z, z, z, z);
    let (mut bb0, mut bb1, mut bb2, mut bb3) = (z, z, z, z);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so floats i..i + 16 of both inputs are readable.
        unsafe {
            let (x, y) = (vld1q_f32(a.add(i)), vld1q_f32(b.add(i)));
            ab0 = vfmaq_f32(ab0, x, y);
            aa0 = vfmaq_f32(aa0, x, x);
            bb0 = vfmaq_f32(bb0, y, y);
            let (x, y) = (vld1q_f32(a.add(i + 4)), vld1q_f32(b.add(i + 4)));
            ab1 = vfmaq_f32(ab1, x, y);
            aa1 = vfmaq_f32(aa1, x, x);
            bb1 = vfmaq_f32(bb1, y, y);
            let (x, y) = (vld1q_f32(a.add(i + 8)), vld1q_f32(b.add(i + 8)));
            ab2 = vfmaq_f32(ab2, x, y);
            aa2 = vfmaq_f32(aa2, x, x);
            bb2 = vfmaq_f32(bb2, y, y);
            let (x, y) = (vld1q_f32(a.add(i + 12)), vld1q_f32(b.add(i + 12)));
            ab3 = vfmaq_f32(ab3, x, y);
            aa3 = vfmaq_f32(aa3, x, x);
            bb3 = vfmaq_f32(bb3, y, y);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: i + 4 <= n.
        unsafe {
            let (x, y) = (vld1q_f32(a.add(i)), vld1q_f32(b.add(i)));
            ab0 = vfmaq_f32(ab0, x, y);
            aa0 = vfmaq_f32(aa0, x, x);
            bb0 = vfmaq_f32(bb0, y, y);
        }
        i += 4;
    }
    let sum4 = |p: float32x4_t, q: float32x4_t, r: float32x4_t, s: float32x4_t| {
        vaddvq_f32(vaddq_f32(vaddq_f32(p, q), vaddq_f32(r, s)))
    };
    let (mut ab, mut aa, mut bb) = (
        sum4(ab0, ab1, ab2, ab3),
        sum4(aa0, aa1, aa2, aa3),
        sum4(bb0, bb1, bb2, bb3),
    );
    while i < n {
        // SAFETY: i < n.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        ab = x.mul_add(y, ab);
        aa = x.mul_add(x, aa);
        bb = y.mul_add(y, bb);
        i += 1;
    }
    (ab, aa, bb)
}

/// Bits set in `a ^ b`: `cnt` counts bits per byte, `uadalp` adds byte
/// counts pairwise into 16-bit lanes (two accumulators over four words per
/// step), folded into a 32-bit total every block of steps before a lane
/// could overflow.
///
/// # Safety
/// NEON available; `a` and `b` valid for `n` reads.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn hamming_body(a: *const u64, b: *const u64, n: usize) -> u32 {
    // Each step adds at most 2 x 8 = 16 to a 16-bit lane: 4000 steps stay
    // below 65535.
    const STEPS_PER_BLOCK: usize = 4000;
    let mut total: u32 = 0;
    let mut i = 0;
    while i + 4 <= n {
        let (mut acc0, mut acc1) = (vdupq_n_u16(0), vdupq_n_u16(0));
        let mut steps = 0;
        while i + 4 <= n && steps < STEPS_PER_BLOCK {
            // SAFETY: i + 4 <= n, so words i..i + 4 of both inputs are readable.
            unsafe {
                let x0 = vreinterpretq_u8_u64(vld1q_u64(a.add(i)));
                let y0 = vreinterpretq_u8_u64(vld1q_u64(b.add(i)));
                let x1 = vreinterpretq_u8_u64(vld1q_u64(a.add(i + 2)));
                let y1 = vreinterpretq_u8_u64(vld1q_u64(b.add(i + 2)));
                acc0 = vpadalq_u8(acc0, vcntq_u8(veorq_u8(x0, y0)));
                acc1 = vpadalq_u8(acc1, vcntq_u8(veorq_u8(x1, y1)));
            }
            i += 4;
            steps += 1;
        }
        total = total.wrapping_add(vaddlvq_u16(acc0).wrapping_add(vaddlvq_u16(acc1)));
    }
    while i < n {
        // SAFETY: i < n.
        let w = unsafe { *a.add(i) ^ *b.add(i) };
        total = total.wrapping_add(w.count_ones());
        i += 1;
    }
    total
}

// ---- table entries -----------------------------------------------------------
//
// SAFETY: (for every `unsafe` block calling a `*_body` below) the entry is
// reachable only through `TABLE`, handed out after NEON was detected in
// `super::neon_table`; the pointer arguments are forwarded with the
// caller's guarantee from the raw kernel type.

/// # Safety
/// `RawHamming` contract; NEON available.
#[target_feature(enable = "neon")]
unsafe fn hamming(a: *const u64, b: *const u64, n: usize) -> u32 {
    // SAFETY: see the note above the table entries.
    unsafe { hamming_body(a, b, n) }
}

/// The pulp token for this table's ISA.
///
/// # Safety
/// The CPU must have NEON: true for every caller in this file, which is only
/// reachable through `TABLE` (see `super::neon_table`).
#[inline]
unsafe fn neon() -> Neon {
    // SAFETY: forwarded to the caller.
    unsafe { Neon::new_unchecked() }
}

/// # Safety
/// `RawDotU8` contract; the table's features available.
#[target_feature(enable = "neon")]
unsafe fn dot_u8(q: *const f32, codes: *const u8, n: usize) -> f32 {
    // SAFETY: `q` and `codes` each have `n` readable elements (caller contract).
    unsafe { dot_u8_slice(slice(q, n), slice(codes, n)) }
}

/// # Safety
/// `RawQuantizeU8` contract; the table's features available.
#[target_feature(enable = "neon")]
unsafe fn quantize_u8(x: *const f32, codes: *mut u8, n: usize) -> U8Code {
    // SAFETY: `x` has `n` readable floats and `codes` `n` writable bytes that
    // do not overlap (caller contract).
    let (x, codes) = unsafe { (slice(x, n), std::slice::from_raw_parts_mut(codes, n)) };
    quantize_u8_slice(x, codes)
}

simd_glue!(features: "neon", token: neon);
batch_entry!(
    #[target_feature(enable = "neon")]
    hamming_batch,
    hamming_body,
    u64,
    u32
);

// `aux` is `q.q` as `norm_sq_body` sums it, which is the `a.a` that
// `cosine_sums` computes (same accumulators, same order).
gather_entry!(
    #[target_feature(enable = "neon")]
    cosine_gather,
    |q, aux, row, dim| {
        let (qr, _, rr) = cosine_sums(q, row, dim);
        cosine_from_sums(qr, aux, rr)
    }
);

// ---- 8-bit integer kernels (see `kernels::int8`) ----------------------------

/// Exact `sum(q[i] * c[i])`: bytes widened to 16 bits (codes by `ushll`,
/// the query by `sshll`) and multiplied into 32-bit lanes by `smlal`, 16
/// codes per step, then one at a time.
///
/// # Safety
/// NEON available; `q` and `c` have `n` readable elements.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_u8i8_body(q: *const i8, c: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // SAFETY: every vector load reads `i..i + 16` with `i + 16 <= n`, the
    // tail `i < n`; both pointers have `n` readable elements (caller
    // contract).
    unsafe {
        let (mut acc0, mut acc1) = (vdupq_n_s32(0), vdupq_n_s32(0));
        while i + 16 <= n {
            let cv = vld1q_u8(c.add(i));
            let qv = vld1q_s8(q.add(i));
            let c0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(cv)));
            let c1 = vreinterpretq_s16_u16(vmovl_high_u8(cv));
            let q0 = vmovl_s8(vget_low_s8(qv));
            let q1 = vmovl_high_s8(qv);
            acc0 = vmlal_s16(acc0, vget_low_s16(c0), vget_low_s16(q0));
            acc1 = vmlal_high_s16(acc1, c0, q0);
            acc0 = vmlal_s16(acc0, vget_low_s16(c1), vget_low_s16(q1));
            acc1 = vmlal_high_s16(acc1, c1, q1);
            i += 16;
        }
        let mut total = vaddvq_s32(vaddq_s32(acc0, acc1));
        while i < n {
            total = total.wrapping_add(i32::from(*q.add(i)) * i32::from(*c.add(i)));
            i += 1;
        }
        total
    }
}

/// Exact `sum((a[i] - b[i])^2)`: `vabd` per byte, squared into 16 bits by
/// `umull` (at most 255^2), added pairwise into 32-bit lanes by `uadalp`.
///
/// # Safety
/// NEON available; `a` and `b` have `n` readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn l2sq_u8_body(a: *const u8, b: *const u8, n: usize) -> u32 {
    let mut i = 0;
    // SAFETY: as in `dot_u8i8_body`.
    unsafe {
        let (mut acc0, mut acc1) = (vdupq_n_u32(0), vdupq_n_u32(0));
        while i + 16 <= n {
            let d = vabdq_u8(vld1q_u8(a.add(i)), vld1q_u8(b.add(i)));
            acc0 = vpadalq_u16(acc0, vmull_u8(vget_low_u8(d), vget_low_u8(d)));
            acc1 = vpadalq_u16(acc1, vmull_high_u8(d, d));
            i += 16;
        }
        let mut total = vaddvq_u32(vaddq_u32(acc0, acc1));
        while i < n {
            let d = u32::from((*a.add(i)).abs_diff(*b.add(i)));
            total = total.wrapping_add(d * d);
            i += 1;
        }
        total
    }
}

/// `$insn acc.4s, a.16b, b.16b`: each 32-bit lane of `acc` plus the four
/// products of its bytes. The dot-product intrinsics are not yet stable in
/// Rust, so the instruction is written out.
macro_rules! dot4 {
    ($(#[$doc:meta])* $name:ident, $insn:literal, $acc:ty, $bytes:ty) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// NEON and dotprod available.
        #[inline]
        #[target_feature(enable = "neon,dotprod")]
        unsafe fn $name(mut acc: $acc, a: $bytes, b: $bytes) -> $acc {
            // SAFETY: a register-only instruction of the dotprod extension,
            // which the caller guarantees.
            unsafe {
                core::arch::asm!(
                    concat!($insn, " {acc:v}.4s, {a:v}.16b, {b:v}.16b"),
                    acc = inout(vreg) acc,
                    a = in(vreg) a,
                    b = in(vreg) b,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
            acc
        }
    };
}

dot4!(
    /// `udot`: unsigned bytes.
    udot, "udot", uint32x4_t, uint8x16_t
);
dot4!(
    /// `sdot`: signed bytes.
    sdot, "sdot", int32x4_t, int8x16_t
);

/// As [`dot_u8i8_body`] with `sdot`: codes shifted to signed (`c ^ 0x80` is
/// `c - 128`), so `sum(q * c) = sum(q * (c - 128)) + 128 * sum(q)`, the
/// second sum also by `sdot` (against ones). Exact in `i32`.
///
/// # Safety
/// NEON and dotprod available; `q` and `c` have `n` readable elements.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_u8i8_dotprod_body(q: *const i8, c: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // SAFETY: as in `dot_u8i8_body`; the tail goes to it with the pointers
    // advanced by `i <= n` and `n - i` elements left.
    unsafe {
        let (flip, ones) = (vdupq_n_u8(0x80), vdupq_n_s8(1));
        let (mut acc, mut qsum) = (vdupq_n_s32(0), vdupq_n_s32(0));
        while i + 16 <= n {
            let cs = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(c.add(i)), flip));
            let qv = vld1q_s8(q.add(i));
            acc = sdot(acc, cs, qv);
            qsum = sdot(qsum, qv, ones);
            i += 16;
        }
        vaddvq_s32(acc)
            .wrapping_add(vaddvq_s32(qsum).wrapping_mul(128))
            .wrapping_add(dot_u8i8_body(q.add(i), c.add(i), n - i))
    }
}

/// As [`l2sq_u8_body`] with `udot`: `|a - b|` per byte, squared and summed
/// in groups of four into 32-bit lanes.
///
/// # Safety
/// NEON and dotprod available; `a` and `b` have `n` readable bytes.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn l2sq_u8_dotprod_body(a: *const u8, b: *const u8, n: usize) -> u32 {
    let mut i = 0;
    // SAFETY: as in `dot_u8i8_dotprod_body`.
    unsafe {
        let (mut acc0, mut acc1) = (vdupq_n_u32(0), vdupq_n_u32(0));
        while i + 32 <= n {
            let d0 = vabdq_u8(vld1q_u8(a.add(i)), vld1q_u8(b.add(i)));
            let d1 = vabdq_u8(vld1q_u8(a.add(i + 16)), vld1q_u8(b.add(i + 16)));
            acc0 = udot(acc0, d0, d0);
            acc1 = udot(acc1, d1, d1);
            i += 32;
        }
        if i + 16 <= n {
            let d0 = vabdq_u8(vld1q_u8(a.add(i)), vld1q_u8(b.add(i)));
            acc0 = udot(acc0, d0, d0);
            i += 16;
        }
        vaddvq_u32(vaddq_u32(acc0, acc1)).wrapping_add(l2sq_u8_body(a.add(i), b.add(i), n - i))
    }
}

/// One FastScan block (see `kernels::fastscan`): one sub-space per step,
/// its 16 code bytes split into low nibbles (vectors `0..16`) and high
/// nibbles (`16..32`), each looked up in the sub-space's table by `tbl`,
/// and the bytes added into four accumulators of 16-bit lanes by `uaddw` /
/// `uaddw2`, flushed into 32-bit totals every `FLUSH` sub-spaces (at most
/// 256 adds of 255 per lane).
///
/// # Safety
/// NEON available; `lut` and `block` have `m * 16` readable bytes, `out` 32
/// writable totals.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn fastscan_block(lut: *const u8, block: *const u8, m: usize, out: *mut u32) {
    let low = vdupq_n_u8(0x0f);
    let mut tot = [vdupq_n_u32(0); 8];
    let mut j = 0;
    while j < m {
        let end = m.min(j + crate::kernels::fastscan::FLUSH);
        let mut acc = [vdupq_n_u16(0); 4];
        while j < end {
            // SAFETY: sub-space `j < m`: 16 bytes at `j * 16` in `lut` and
            // `block` (caller contract).
            let (t, c) = unsafe { (vld1q_u8(lut.add(j * 16)), vld1q_u8(block.add(j * 16))) };
            let lo = vqtbl1q_u8(t, vandq_u8(c, low));
            let hi = vqtbl1q_u8(t, vshrq_n_u8::<4>(c));
            acc[0] = vaddw_u8(acc[0], vget_low_u8(lo));
            acc[1] = vaddw_high_u8(acc[1], lo);
            acc[2] = vaddw_u8(acc[2], vget_low_u8(hi));
            acc[3] = vaddw_high_u8(acc[3], hi);
            j += 1;
        }
        for (k, a) in acc.into_iter().enumerate() {
            tot[2 * k] = vaddw_u16(tot[2 * k], vget_low_u16(a));
            tot[2 * k + 1] = vaddw_high_u16(tot[2 * k + 1], a);
        }
    }
    for (k, t) in tot.into_iter().enumerate() {
        // SAFETY: `out` has 32 writable totals; `k * 4 + 4 <= 32`.
        unsafe { vst1q_u32(out.add(k * 4), t) };
    }
}

fastscan_entry!(
    #[target_feature(enable = "neon")]
    fastscan_u4,
    fastscan_block
);

int_glue!(
    #[target_feature(enable = "neon")]
    mod int_neon,
    dot: super::dot_u8i8_body,
    l2: super::l2sq_u8_body
);
int_glue!(
    #[target_feature(enable = "neon,dotprod")]
    mod int_dotprod,
    dot: super::dot_u8i8_dotprod_body,
    l2: super::l2sq_u8_dotprod_body
);

/// The NEON kernels. Handed out only by `super::neon_variants`.
pub(super) static TABLE: KernelTable = kernel_table!(Isa::Neon, "neon", int: int_neon);

/// The NEON kernels with `sdot`/`udot` integer kernels. Handed out only by
/// `super::neon_variants`, after dotprod detection.
pub(super) static TABLE_DOTPROD: KernelTable = KernelTable {
    variant: "neon+dotprod",
    int: int_fields!(int_dotprod),
    ..TABLE
};
