//! Portable kernels with no explicit SIMD: the reference every ISA is tested
//! against, and the fallback on CPUs without a vector ISA swann knows.
//!
//! The sums use eight independent lanes, like the SIMD kernels, so the
//! compiler may vectorize them for the baseline target; the order of the
//! additions is fixed and documented by the code itself.

use super::KernelTable;

const LANES: usize = 8;

/// Builds a slice from a raw kernel argument.
///
/// # Safety
/// `p` must be valid for `n` reads of `T` for the caller-chosen lifetime.
#[inline(always)]
pub(crate) unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if n == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller (n > 0, so `p` is non-null and valid).
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

#[inline(always)]
fn lanes_sum(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn fold2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += f(x[i], y[i]);
        }
    }
    let mut tail = 0.0f32;
    for (&x, &y) in ta.iter().zip(tb) {
        tail += f(x, y);
    }
    lanes_sum(acc) + tail
}

pub(crate) fn dot_slices(a: &[f32], b: &[f32]) -> f32 {
    fold2(a, b, |x, y| x * y)
}

pub(crate) fn l2sq_slices(a: &[f32], b: &[f32]) -> f32 {
    fold2(a, b, |x, y| (x - y) * (x - y))
}

pub(crate) fn manhattan_slices(a: &[f32], b: &[f32]) -> f32 {
    fold2(a, b, |x, y| (x - y).abs())
}

/// Cosine distance from the three sums, shared by every ISA so that all of
/// them treat zero vectors and rounding past +-1 the same way.
#[inline(always)]
pub(crate) fn cosine_from_sums(ab: f32, aa: f32, bb: f32) -> f32 {
    if aa == 0.0 && bb == 0.0 {
        return 0.0;
    }
    if aa == 0.0 || bb == 0.0 {
        return 1.0;
    }
    let d = 1.0 - ab / (aa.sqrt() * bb.sqrt());
    d.clamp(0.0, 2.0)
}

pub(crate) fn cosine_slices(a: &[f32], b: &[f32]) -> f32 {
    let mut ab = [0.0f32; LANES];
    let mut aa = [0.0f32; LANES];
    let mut bb = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            ab[i] += x[i] * y[i];
            aa[i] += x[i] * x[i];
            bb[i] += y[i] * y[i];
        }
    }
    let (mut tab, mut taa, mut tbb) = (0.0f32, 0.0f32, 0.0f32);
    for (&x, &y) in ta.iter().zip(tb) {
        tab += x * y;
        taa += x * x;
        tbb += y * y;
    }
    cosine_from_sums(
        lanes_sum(ab) + tab,
        lanes_sum(aa) + taa,
        lanes_sum(bb) + tbb,
    )
}

pub(crate) fn hamming_slices(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Scales `a` by `1 / norm` when `norm_sq > 0`; returns the norm. Shared by
/// every ISA, so all of them leave zero (and non-finite) vectors alone the
/// same way; only the multiplication loop, `scale(a, 1 / norm)`, differs.
#[inline(always)]
pub(crate) fn scale_to_unit(
    a: &mut [f32],
    norm_sq: f32,
    scale: impl FnOnce(&mut [f32], f32),
) -> f32 {
    let norm = norm_sq.sqrt();
    if norm > 0.0 && norm.is_finite() {
        scale(a, 1.0 / norm);
    }
    norm
}

/// `a[i] *= factor`, the portable scaling loop.
#[inline(always)]
pub(crate) fn scale_slice(a: &mut [f32], factor: f32) {
    for x in a.iter_mut() {
        *x *= factor;
    }
}

// ---- raw entry points --------------------------------------------------------

/// # Safety
/// `a` and `b` valid for `n` reads.
unsafe fn dot(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: the caller guarantees `n` valid reads through each pointer.
    unsafe { dot_slices(slice(a, n), slice(b, n)) }
}

/// # Safety
/// `a` and `b` valid for `n` reads.
unsafe fn l2sq(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: as in `dot`.
    unsafe { l2sq_slices(slice(a, n), slice(b, n)) }
}

/// # Safety
/// `a` and `b` valid for `n` reads.
unsafe fn cosine(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: as in `dot`.
    unsafe { cosine_slices(slice(a, n), slice(b, n)) }
}

/// # Safety
/// `a` and `b` valid for `n` reads.
unsafe fn manhattan(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: as in `dot`.
    unsafe { manhattan_slices(slice(a, n), slice(b, n)) }
}

/// # Safety
/// `a` valid for `n` reads.
unsafe fn norm_sq(a: *const f32, n: usize) -> f32 {
    // SAFETY: as in `dot`.
    unsafe {
        let a = slice(a, n);
        dot_slices(a, a)
    }
}

/// # Safety
/// `a` valid for `n` reads and writes, not aliased.
unsafe fn normalize(a: *mut f32, n: usize) -> f32 {
    if n == 0 {
        return 0.0;
    }
    // SAFETY: the caller guarantees exclusive access to `n` floats at `a`.
    let a = unsafe { std::slice::from_raw_parts_mut(a, n) };
    let nsq = dot_slices(a, a);
    scale_to_unit(a, nsq, scale_slice)
}

/// # Safety
/// `a` and `b` valid for `n` reads.
unsafe fn hamming(a: *const u64, b: *const u64, n: usize) -> u32 {
    // SAFETY: as in `dot`.
    unsafe { hamming_slices(slice(a, n), slice(b, n)) }
}

/// # Safety
/// `src` valid for `n` reads, `dst` for `n` writes.
unsafe fn widen_u8(src: *const u8, dst: *mut f32, n: usize) {
    if n == 0 {
        return;
    }
    // SAFETY: the caller guarantees `n` readable bytes at `src` and `n`
    // writable floats at `dst`, not overlapping.
    let (src, dst) = unsafe { (slice(src, n), std::slice::from_raw_parts_mut(dst, n)) };
    widen_slice(src, dst);
}

/// `dst[i] = src[i] as f32`, the portable widening loop every ISA compiles
/// with its own target features (LLVM vectorizes it to zero-extend +
/// convert instructions of the enabled width).
#[inline(always)]
pub(crate) fn widen_slice(src: &[u8], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from(s);
    }
}

/// Defines a batch kernel that calls a single-pair kernel once per row.
macro_rules! batch_of {
    ($name:ident, $single:path, $t:ty, $o:ty) => {
        /// # Safety
        /// Layout contract of `RawF32Batch` / `RawHammingBatch` in `kernels`.
        pub(crate) unsafe fn $name(
            q: *const $t,
            base: *const $t,
            dim: usize,
            stride: usize,
            rows: usize,
            out: *mut $o,
        ) {
            for i in 0..rows {
                // SAFETY: row `i < rows` starts at `base + i * stride` with `dim`
                // readable elements, and `out` has `rows` writable slots.
                unsafe { *out.add(i) = $single(q, base.add(i * stride), dim) };
            }
        }
    };
}

batch_of!(dot_batch, dot, f32, f32);
batch_of!(l2sq_batch, l2sq, f32, f32);
batch_of!(cosine_batch, cosine, f32, f32);
batch_of!(manhattan_batch, manhattan, f32, f32);
batch_of!(hamming_batch, hamming, u64, u32);

pub(crate) static TABLE: KernelTable = KernelTable {
    isa: super::Isa::Scalar,
    dot,
    l2sq,
    cosine,
    manhattan,
    norm_sq,
    normalize,
    hamming,
    dot_batch,
    l2sq_batch,
    cosine_batch,
    manhattan_batch,
    hamming_batch,
    widen_u8,
};
