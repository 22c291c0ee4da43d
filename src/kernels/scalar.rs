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

/// # Safety
/// `RawPq4Table` contract.
unsafe fn pq4_table(
    q: *const f32,
    cent_t: *const f32,
    dim: usize,
    width: usize,
    l2: bool,
    out: *mut f32,
) -> f32 {
    // SAFETY: the caller guarantees `dim` readable floats at `q`, `16 dim`
    // at `cent_t` and `16 ceil(dim / width)` writable ones at `out`, not
    // overlapping.
    let (q, cent_t, out) = unsafe {
        (
            slice(q, dim),
            slice(cent_t, 16 * dim),
            std::slice::from_raw_parts_mut(out, 16 * dim.div_ceil(width)),
        )
    };
    pq4_table_slice(q, cent_t, width, l2, out)
}

/// # Safety
/// `RawPq4Encode` contract.
unsafe fn pq4_encode(v: *const f32, cent_e: *const f32, dim: usize, width: usize, codes: *mut u8) {
    // SAFETY: the caller guarantees `dim` readable floats at `v`, `16 dim`
    // at `cent_e` and `ceil(dim / width)` writable bytes at `codes`.
    let (v, cent_e, codes) = unsafe {
        (
            slice(v, dim),
            slice(cent_e, 16 * dim),
            std::slice::from_raw_parts_mut(codes, dim.div_ceil(width)),
        )
    };
    pq4_encode_slice(v, cent_e, width, codes);
}

/// The 4-bit product code of `v` (see
/// [`KernelTable::pq4_encode`](super::KernelTable::pq4_encode)), from the
/// centroids in [`pq4_encode_layout`](super::pq4_encode_layout)'s order:
/// the whole groups of [`PQ4_ENCODE_LANES`](super::PQ4_ENCODE_LANES)
/// sub-spaces one sub-space per lane, each lane's sixteen squared distances
/// summed component by component in order (the sums `(x - c)^2` of a
/// sequential loop, so every ISA gets the same bits) and its running
/// minimum replaced only by a strictly smaller one (the first index holding
/// the minimum); the sub-spaces past the groups one at a time, the same
/// sums in one local array of sixteen, then the first index holding their
/// minimum.
#[inline(always)]
pub(crate) fn pq4_encode_slice(v: &[f32], cent_e: &[f32], width: usize, codes: &mut [u8]) {
    const L: usize = super::PQ4_ENCODE_LANES;
    let groups = (v.len() / width) / L;
    // The common widths with their component loops unrolled.
    match width {
        1 => pq4_encode_lanes::<1>(v, cent_e, groups, codes),
        2 => pq4_encode_lanes::<2>(v, cent_e, groups, codes),
        4 => pq4_encode_lanes::<4>(v, cent_e, groups, codes),
        _ => pq4_encode_lanes_any(v, cent_e, width, groups, codes),
    }
    let d = groups * L * width;
    for ((code, vj), cj) in codes[groups * L..]
        .iter_mut()
        .zip(v[d..].chunks(width))
        .zip(cent_e[16 * d..].chunks(16 * width))
    {
        let mut acc = [0.0f32; 16];
        for (&x, c) in vj.iter().zip(cj.chunks_exact(16)) {
            let c: &[f32; 16] = c.try_into().expect("16 lanes");
            for i in 0..16 {
                let t = x - c[i];
                acc[i] += t * t;
            }
        }
        *code = first_min16(&acc);
    }
}

/// [`pq4_encode_slice`]'s first `groups` groups of sub-spaces of width
/// `W`: per group, its components gathered lane by lane, then per centroid
/// one distance per lane and a compare-and-keep of the running minimum (no
/// horizontal step).
#[inline(always)]
fn pq4_encode_lanes<const W: usize>(v: &[f32], cent_e: &[f32], groups: usize, codes: &mut [u8]) {
    const L: usize = super::PQ4_ENCODE_LANES;
    for ((out, vg), cg) in codes
        .chunks_exact_mut(L)
        .zip(v.chunks_exact(L * W))
        .zip(cent_e.chunks_exact(16 * L * W))
        .take(groups)
    {
        let mut x = [[0.0f32; L]; W];
        for (l, comps) in vg.chunks_exact(W).enumerate() {
            for w in 0..W {
                x[w][l] = comps[w];
            }
        }
        let mut best = [f32::INFINITY; L];
        let mut idx = [0u32; L];
        for (k, ck) in cg.chunks_exact(L * W).enumerate() {
            let mut d = [0.0f32; L];
            for w in 0..W {
                let c: &[f32; L] = ck[w * L..][..L].try_into().expect("L lanes");
                for l in 0..L {
                    let t = x[w][l] - c[l];
                    d[l] += t * t;
                }
            }
            keep_min(&mut best, &mut idx, &d, k);
        }
        for (o, &i) in out.iter_mut().zip(&idx) {
            *o = i as u8;
        }
    }
}

/// [`pq4_encode_lanes`] for any width: the sixteen distances of a lane
/// group summed component after component.
#[inline(always)]
fn pq4_encode_lanes_any(v: &[f32], cent_e: &[f32], width: usize, groups: usize, codes: &mut [u8]) {
    const L: usize = super::PQ4_ENCODE_LANES;
    for ((out, vg), cg) in codes
        .chunks_exact_mut(L)
        .zip(v.chunks_exact(L * width))
        .zip(cent_e.chunks_exact(16 * L * width))
        .take(groups)
    {
        let mut d = [[0.0f32; L]; 16];
        for w in 0..width {
            let mut x = [0.0f32; L];
            for (l, xl) in x.iter_mut().enumerate() {
                *xl = vg[l * width + w];
            }
            for (k, dk) in d.iter_mut().enumerate() {
                let c: &[f32; L] = cg[(k * width + w) * L..][..L].try_into().expect("L lanes");
                for l in 0..L {
                    let t = x[l] - c[l];
                    dk[l] += t * t;
                }
            }
        }
        let mut best = [f32::INFINITY; L];
        let mut idx = [0u32; L];
        for (k, dk) in d.iter().enumerate() {
            keep_min(&mut best, &mut idx, dk, k);
        }
        for (o, &i) in out.iter_mut().zip(&idx) {
            *o = i as u8;
        }
    }
}

/// Each lane's running minimum of the encoder's distances: lane `l` takes
/// centroid `k`'s distance `d[l]` only when it is strictly below the best so
/// far (so the first index holding the minimum is kept). Branch-free, one
/// compare and two blends per lane group.
#[inline(always)]
fn keep_min(
    best: &mut [f32; super::PQ4_ENCODE_LANES],
    idx: &mut [u32; super::PQ4_ENCODE_LANES],
    d: &[f32; super::PQ4_ENCODE_LANES],
    k: usize,
) {
    for l in 0..super::PQ4_ENCODE_LANES {
        let less = d[l] < best[l];
        best[l] = if less { d[l] } else { best[l] };
        idx[l] = if less { k as u32 } else { idx[l] };
    }
}

/// The first lane holding the minimum of `acc` (never NaN: squares of
/// differences of finite values, at worst infinite): the minimum by
/// halving (exact, in registers), then the lanes equal to it as a mask.
#[inline(always)]
fn first_min16(acc: &[f32; 16]) -> u8 {
    let mut lo = *acc;
    for step in [8, 4, 2, 1] {
        for i in 0..step {
            lo[i] = if lo[i + step] < lo[i] {
                lo[i + step]
            } else {
                lo[i]
            };
        }
    }
    let mut mask = 0u32;
    for (i, &d) in acc.iter().enumerate() {
        mask |= u32::from(d == lo[0]) << i;
    }
    if mask == 0 {
        0
    } else {
        mask.trailing_zeros() as u8
    }
}

/// The table of a 4-bit product quantizer's partial distances for query
/// `q` (see [`KernelTable::pq4_table`](super::KernelTable::pq4_table)):
/// plain loops of sixteen lanes that every ISA compiles with its own target
/// features, each sum in the same order, so every ISA returns the same bits.
#[inline(always)]
pub(crate) fn pq4_table_slice(
    q: &[f32],
    cent_t: &[f32],
    width: usize,
    l2: bool,
    out: &mut [f32],
) -> f32 {
    for ((dst, qj), cj) in out
        .chunks_exact_mut(16)
        .zip(q.chunks(width))
        .zip(cent_t.chunks(16 * width))
    {
        // The sixteen sums in a local array (registers), one pass per
        // component, stored once.
        let mut acc = [0.0f32; 16];
        if l2 {
            for (&x, c) in qj.iter().zip(cj.chunks_exact(16)) {
                let c: &[f32; 16] = c.try_into().expect("16 lanes");
                for i in 0..16 {
                    let t = x - c[i];
                    acc[i] += t * t;
                }
            }
        } else {
            for (&x, c) in qj.iter().zip(cj.chunks_exact(16)) {
                let c: &[f32; 16] = c.try_into().expect("16 lanes");
                for i in 0..16 {
                    acc[i] -= x * c[i];
                }
            }
        }
        dst.copy_from_slice(&acc);
    }
    let mut bias = 0.0f32;
    let mut finite = true;
    for t in out.chunks_exact_mut(16) {
        let t: &mut [f32; 16] = t.try_into().expect("16 lanes");
        // Minimum and maximum by halving, so the lanes stay in registers.
        let (mut lo, mut hi) = (*t, *t);
        for step in [8, 4, 2, 1] {
            for i in 0..step {
                lo[i] = if lo[i + step] < lo[i] {
                    lo[i + step]
                } else {
                    lo[i]
                };
                hi[i] = if hi[i + step] > hi[i] {
                    hi[i + step]
                } else {
                    hi[i]
                };
            }
        }
        finite &= (hi[0] - lo[0]).is_finite();
        bias += lo[0];
        for x in t.iter_mut() {
            *x -= lo[0];
        }
    }
    if finite {
        bias
    } else {
        f32::NAN
    }
}

/// # Safety
/// `q` valid for `n` reads, `codes` for `n` reads.
unsafe fn dot_u8(q: *const f32, codes: *const u8, n: usize) -> f32 {
    // SAFETY: the caller guarantees `n` readable elements at each pointer.
    unsafe { dot_u8_slice(slice(q, n), slice(codes, n)) }
}

/// # Safety
/// `x` valid for `n` reads, `codes` for `n` writes, not overlapping.
unsafe fn quantize_u8(x: *const f32, codes: *mut u8, n: usize) -> U8Code {
    // SAFETY: the caller guarantees `n` readable floats at `x` and `n`
    // writable bytes at `codes`, not overlapping.
    let (x, codes) = unsafe { (slice(x, n), std::slice::from_raw_parts_mut(codes, n)) };
    quantize_u8_slice(x, codes)
}

/// Lanes of the portable `u8` code loops: two AVX-512 registers, four AVX2
/// or eight NEON ones, so the additions form independent chains.
const CODE_LANES: usize = 32;

/// `sum(q[i] * codes[i] as f32)`, the portable loop every ISA compiles with
/// its own target features (zero-extend, convert, multiply, add: LLVM
/// vectorizes the lane arrays). Each product and sum is rounded to `f32`
/// (no contraction), in some order: the error is at most
/// `gamma(n) * sum(|q[i]| * codes[i])`, which is what screening assumes.
#[inline(always)]
pub(crate) fn dot_u8_slice(q: &[f32], codes: &[u8]) -> f32 {
    let mut acc = [0.0f32; CODE_LANES];
    let qc = q.chunks_exact(CODE_LANES);
    let cc = codes.chunks_exact(CODE_LANES);
    let (qt, ct) = (qc.remainder(), cc.remainder());
    for (a, c) in qc.zip(cc) {
        for i in 0..CODE_LANES {
            acc[i] += a[i] * f32::from(c[i]);
        }
    }
    for (i, (&a, &c)) in qt.iter().zip(ct).enumerate() {
        acc[i] += a * f32::from(c);
    }
    acc.iter().sum()
}

/// What [`KernelTable::quantize_u8`](super::KernelTable::quantize_u8) returns besides the codes: `x[i]` is
/// approximately `lo + scale * codes[i]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct U8Code {
    /// The smallest value (the code 0).
    pub lo: f32,
    /// The step between codes, `(max - lo) / 255` rounded to `f32`.
    pub scale: f32,
    /// `sum(e[i]^2)` in `f32` arithmetic, `e[i] = (x[i] - lo) - scale * codes[i]`
    /// each rounded as written.
    pub err_sq: f32,
    /// `sum(x[i]^2)` in `f32` arithmetic.
    pub norm_sq: f32,
    /// The largest value.
    pub hi: f32,
}

/// Lanes of the quantizer: element `j` of `x` goes to lane `j % 32`, each
/// lane's sums run in element order, and lanes are combined pairwise
/// (lane `i` with `i + 16`, then `i + 8`, `i + 4`, `i + 2`, `i + 1`). The
/// AVX2 and AVX-512 quantizers keep exactly this order (and use no fused
/// multiply-add), so every ISA returns the same codes and sums; 32 lanes
/// are two independent chains per sum even on AVX-512.
pub(crate) const QUANT_LANES: usize = 32;

/// `a < b ? a : b`, what `minps(a, b)` computes.
#[inline(always)]
pub(crate) fn min_ps(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// `a > b ? a : b`, what `maxps(a, b)` computes.
#[inline(always)]
pub(crate) fn max_ps(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The step and its inverse for values from `lo` to `hi` (inverse 0 when
/// the step is 0 or not finite, which codes everything as 0).
#[inline(always)]
pub(crate) fn quant_step(lo: f32, hi: f32) -> (f32, f32) {
    let scale = (hi - lo) / 255.0;
    let inv = if scale > 0.0 && scale.is_finite() {
        1.0 / scale
    } else {
        0.0
    };
    (scale, inv)
}

/// The code of `v`: `floor((v - lo) * inv + 0.5)` bounded to [0, 255]
/// (round half up; the product is in [0, 255] up to rounding).
#[inline(always)]
pub(crate) fn quant_code(v: f32, lo: f32, inv: f32) -> f32 {
    let k = ((v - lo) * inv + 0.5).floor();
    min_ps(max_ps(k, 0.0), 255.0)
}

/// Codes `x` as bytes on an even grid from its smallest to its largest
/// value (`codes[i] = round((x[i] - lo) / scale)`), with the rounded sums a
/// caller needs to bound the coding error, in the order [`QUANT_LANES`]
/// describes. Finite input is assumed; a caller checks the returned sums
/// for overflow.
pub(crate) fn quantize_u8_slice(x: &[f32], codes: &mut [u8]) -> U8Code {
    const L: usize = QUANT_LANES;
    let mut lo = [f32::INFINITY; L];
    let mut hi = [f32::NEG_INFINITY; L];
    for (j, &v) in x.iter().enumerate() {
        lo[j % L] = min_ps(lo[j % L], v);
        hi[j % L] = max_ps(hi[j % L], v);
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            lo[i] = min_ps(lo[i], lo[i + w]);
            hi[i] = max_ps(hi[i], hi[i + w]);
        }
    }
    let (lo, hi) = (lo[0], hi[0]);
    let (scale, inv) = quant_step(lo, hi);
    let mut ee = [0.0f32; L];
    let mut xx = [0.0f32; L];
    for (j, (o, &v)) in codes.iter_mut().zip(x).enumerate() {
        let k = quant_code(v, lo, inv);
        *o = k as u8;
        let e = (v - lo) - scale * k;
        ee[j % L] += e * e;
        xx[j % L] += v * v;
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            ee[i] += ee[i + w];
            xx[i] += xx[i + w];
        }
    }
    U8Code {
        lo,
        scale,
        err_sq: ee[0],
        norm_sq: xx[0],
        hi,
    }
}

batch_entry!(dot_batch, dot, f32, f32);
batch_entry!(l2sq_batch, l2sq, f32, f32);
batch_entry!(cosine_batch, cosine, f32, f32);
batch_entry!(manhattan_batch, manhattan, f32, f32);
batch_entry!(hamming_batch, hamming, u64, u32);

gather_entry!(dot_gather, |q, _aux, row, dim| dot(q, row, dim));
gather_entry!(l2sq_gather, |q, _aux, row, dim| l2sq(q, row, dim));
gather_entry!(cosine_gather, |q, _aux, row, dim| cosine(q, row, dim));
gather_entry!(manhattan_gather, |q, _aux, row, dim| manhattan(q, row, dim));

/// `RawProject` under pulp's scalar token (safe on every CPU).
unsafe fn project(columns: &[f32], offsets: &[f32], padded: usize, v: &[f32], out: &mut [f32]) {
    super::project::run(pulp::Scalar::new(), columns, offsets, padded, v, out)
}

int_glue!(
    mod int,
    dot: crate::kernels::int8::reference::dot_u8i8_body,
    l2: crate::kernels::int8::reference::l2sq_u8_body
);

fastscan_entry!(
    fastscan_u4,
    crate::kernels::fastscan::reference::fastscan_block
);

pub(crate) static TABLE: KernelTable = kernel_table!(super::Isa::Scalar, "scalar", int: int);
