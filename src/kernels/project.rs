//! The projection pass: many dot products of one vector in one pass, with
//! the directions stored transposed, as LSH hashing needs (see
//! `index::lsh`'s hashing; any caller with many directions can use it).
//!
//! Column `j` of the directions holds component `j` of every direction,
//! padded to [`PAD`] lanes, so the pass broadcasts `v[j]` and adds
//! `v[j] * column j` into whole registers of outputs; no horizontal sum is
//! needed. The summation order of each output is fixed (component `j` goes
//! into accumulator `j % STREAMS`, one fused multiply-add each, in increasing
//! `j`; the accumulators are added pairwise at the end) and independent of
//! the ISA, of the register width and of how many directions are stacked, so
//! every ISA's table gives bit-identical projections.
//!
//! Written once over pulp's `Simd` trait; each ISA's table holds the
//! instantiation for its own token.

use pulp::{Simd, WithSimd};

/// Directions are padded to a multiple of this many lanes (the widest
/// register, AVX-512's 16 `f32`), so every ISA's registers tile a column.
pub const PAD: usize = 16;

/// One cache line of `f32`s ([`PAD`] of them), the unit the stacked
/// directions are allocated in, so that every register load of a column
/// starts on a line boundary. The pass does one 64-byte load per fused
/// multiply-add and is bound by load bandwidth; from a plain `Vec<f32>`
/// (16-byte aligned, wherever the allocator put it) every AVX-512 load could
/// straddle two lines, and one-call stores (SIFT, four 10-bit hashes) ran
/// at 2.4M/s or 3.0M/s depending only on where the heap placed the plan.
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct Line(pub [f32; PAD]);

/// Independent accumulators per output. The FMA chain of one output is
/// `dim / STREAMS` long; 8 keeps a 128-d projection off the FMA latency.
const STREAMS: usize = 8;

/// Runs the pass under `simd` (see [`super::KernelTable::project`] for the
/// contract); every ISA table's `project` entry is this function for its
/// token.
#[inline(always)]
pub(crate) fn run<S: Simd>(
    simd: S,
    columns: &[f32],
    offsets: &[f32],
    padded: usize,
    v: &[f32],
    out: &mut [f32],
) {
    simd.vectorize(Project {
        columns,
        offsets,
        padded,
        v,
        out,
    })
}

/// The pass's arguments, for `Simd::vectorize`.
struct Project<'a> {
    columns: &'a [f32],
    offsets: &'a [f32],
    padded: usize,
    v: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for Project<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let lanes = S::F32_LANES;
        let per_column = self.padded / lanes;
        let (columns, _) = S::as_simd_f32s(self.columns);
        let (offsets, _) = S::as_simd_f32s(self.offsets);
        let (out, _) = S::as_mut_simd_f32s(self.out);
        // Registers of outputs per pass over `v`: with 32 vector registers
        // (AVX-512) up to three (24 accumulators), with 16 (AVX2, NEON) one.
        // This only decides which outputs share a pass, never the order of
        // any output's sum.
        let widest = if lanes >= 16 { 3 } else { 1 };
        let mut g = 0;
        while g < per_column {
            match (per_column - g).min(widest) {
                3 => project_block::<S, 3>(simd, columns, per_column, g, self.v, offsets, out),
                2 => project_block::<S, 2>(simd, columns, per_column, g, self.v, offsets, out),
                _ => project_block::<S, 1>(simd, columns, per_column, g, self.v, offsets, out),
            }
            g += (per_column - g).min(widest);
        }
    }
}

/// Outputs `g..g + W` (in registers) of the pass: `STREAMS x W`
/// accumulators, indexed only by constants so they stay in registers.
#[inline(always)]
fn project_block<S: Simd, const W: usize>(
    simd: S,
    columns: &[S::f32s],
    per_column: usize,
    g: usize,
    v: &[f32],
    offsets: &[S::f32s],
    out: &mut [S::f32s],
) {
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; W]; STREAMS];
    let full = v.len() / STREAMS * STREAMS;
    let (v_head, v_tail) = v.split_at(full);
    let (c_head, c_tail) = columns.split_at(full * per_column);
    for (cols, vs) in c_head
        .chunks_exact(STREAMS * per_column)
        .zip(v_head.chunks_exact(STREAMS))
    {
        for s in 0..STREAMS {
            let x = simd.splat_f32s(vs[s]);
            let col = &cols[s * per_column + g..][..W];
            for b in 0..W {
                acc[s][b] = simd.mul_add_f32s(col[b], x, acc[s][b]);
            }
        }
    }
    for (s, (&x, col)) in v_tail
        .iter()
        .zip(c_tail.chunks_exact(per_column))
        .enumerate()
    {
        let x = simd.splat_f32s(x);
        let col = &col[g..][..W];
        for b in 0..W {
            acc[s][b] = simd.mul_add_f32s(col[b], x, acc[s][b]);
        }
    }
    for b in 0..W {
        // Pairwise, in a fixed order (see the module documentation).
        let s01 = simd.add_f32s(acc[0][b], acc[1][b]);
        let s23 = simd.add_f32s(acc[2][b], acc[3][b]);
        let s45 = simd.add_f32s(acc[4][b], acc[5][b]);
        let s67 = simd.add_f32s(acc[6][b], acc[7][b]);
        let sum = simd.add_f32s(simd.add_f32s(s01, s23), simd.add_f32s(s45, s67));
        out[g + b] = simd.sub_f32s(sum, offsets[g + b]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Isa, KernelTable};

    /// Every compiled ISA this CPU runs gives the scalar table's bits, for
    /// dimensions around the stream count and direction counts around the
    /// register widths.
    #[test]
    fn every_isa_matches_scalar_bit_for_bit() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let scalar = KernelTable::for_isa(Isa::Scalar).expect("scalar always runs");
        for dim in [1usize, 7, 8, 9, 33, 128] {
            for padded in [PAD, 2 * PAD, 3 * PAD, 5 * PAD] {
                let columns: Vec<Line> = (0..dim * padded / PAD)
                    .map(|_| Line(std::array::from_fn(|_| next())))
                    .collect();
                let offsets: Vec<f32> = (0..padded).map(|_| next()).collect();
                let v: Vec<f32> = (0..dim).map(|_| next() * 8.0).collect();
                let mut want = vec![0.0; padded];
                scalar.project(&columns, &offsets, &v, &mut want);
                for &isa in Isa::available() {
                    let table = KernelTable::for_isa(isa).expect("available");
                    let mut got = vec![0.0; padded];
                    table.project(&columns, &offsets, &v, &mut got);
                    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "dim {dim}, padded {padded}, {isa:?}"
                    );
                }
            }
        }
    }
}
