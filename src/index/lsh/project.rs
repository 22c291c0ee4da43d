//! Many projections of one vector in one pass: the hashing step of
//! [`Engine::store`](super::Engine::store) and of every query.
//!
//! A hash projects a vector onto a few directions (10 for NearPy's default),
//! and an engine with several hashes onto all of theirs. Done as one dot
//! product per direction, each ends in a horizontal sum of a SIMD register,
//! which is slow on every ISA; here the directions are stored transposed
//! (column `j` holds component `j` of every direction, padded to
//! [`PAD`] lanes), so the pass broadcasts `v[j]` and adds `v[j] * column j`
//! into whole registers of outputs, and no horizontal sum is needed. An
//! engine stacks the directions of all its hashes into one [`ProjectionPlan`],
//! so the vector is read once for all of them.
//!
//! The summation order of each output is fixed (component `j` goes into
//! accumulator `j % STREAMS`, one fused multiply-add each, in increasing `j`;
//! the accumulators are added pairwise at the end) and independent of the
//! ISA, of the register width and of how many directions are stacked: a
//! vector gets bit-identical projections, hence the same bucket keys, from a
//! hash alone or stacked in an engine, and on every machine. That matters for
//! a storage such as Redis, which one machine may fill and another query.

use pulp::{Simd, WithSimd};

use crate::kernels;

/// Directions are padded to a multiple of this many lanes (the widest
/// register, AVX-512's 16 `f32`), so every ISA's registers tile a column.
pub(crate) const PAD: usize = 16;

/// One cache line of `f32`s ([`PAD`] of them), the unit the stacked
/// directions are allocated in, so that every register load of a column
/// starts on a line boundary. The pass does one 64-byte load per fused
/// multiply-add and is bound by load bandwidth; from a plain `Vec<f32>`
/// (16-byte aligned, wherever the allocator put it) every AVX-512 load could
/// straddle two lines, and one-call stores (SIFT, four 10-bit hashes) ran
/// at 2.4M/s or 3.0M/s depending only on where the heap placed the plan.
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Line(pub(crate) [f32; PAD]);

/// Independent accumulators per output. The FMA chain of one output is
/// `dim / STREAMS` long; 8 keeps a 128-d projection off the FMA latency.
const STREAMS: usize = 8;

/// The SIMD token the pass runs under, picked from the active kernel table's
/// ISA, so pinning an ISA (`SWANN_ISA`, [`kernels::pin`]) pins hashing too.
#[derive(Clone, Copy, Debug)]
enum Token {
    Scalar,
    #[cfg(all(target_arch = "x86_64", feature = "avx2"))]
    V3(pulp::x86::V3),
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    V4(pulp::x86::V4),
    #[cfg(all(target_arch = "aarch64", feature = "neon"))]
    Neon(pulp::aarch64::Neon),
}

impl Token {
    fn for_active_table() -> Token {
        // `try_new` checks the CPU itself, so each arm is safe whatever the
        // table claims; a token that cannot be had falls back to scalar.
        match kernels::active().isa() {
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            kernels::Isa::Avx512 => pulp::x86::V4::try_new().map_or(Token::Scalar, Token::V4),
            #[cfg(all(target_arch = "x86_64", feature = "avx2"))]
            kernels::Isa::Avx2 => pulp::x86::V3::try_new().map_or(Token::Scalar, Token::V3),
            #[cfg(all(target_arch = "aarch64", feature = "neon"))]
            kernels::Isa::Neon => pulp::aarch64::Neon::try_new().map_or(Token::Scalar, Token::Neon),
            _ => Token::Scalar,
        }
    }
}

/// Directions stacked and transposed for [`ProjectionPlan::project`].
#[derive(Clone, Debug)]
pub(crate) struct ProjectionPlan {
    dim: usize,
    /// Number of directions, before padding.
    rows: usize,
    /// `rows` rounded up to a multiple of [`PAD`].
    padded: usize,
    /// `dim x padded`: entry `j * padded + r` (of the lines seen as `f32`s) is
    /// component `j` of direction `r` (zero for padding directions).
    columns: Vec<Line>,
    /// Subtracted from each projection (zero for padding).
    offsets: Vec<f32>,
    token: Token,
}

impl ProjectionPlan {
    /// Stacks `parts`, each a row-major `count x dim` matrix with `count`
    /// offsets, in order: the projections of part `i` come out after those of
    /// the parts before it. The caller has checked the shapes.
    pub(crate) fn new<'a>(
        dim: usize,
        parts: impl IntoIterator<Item = (&'a [f32], &'a [f32])>,
    ) -> Self {
        let parts: Vec<(&[f32], &[f32])> = parts.into_iter().collect();
        let rows: usize = parts.iter().map(|(_, o)| o.len()).sum();
        let padded = rows.div_ceil(PAD).max(1) * PAD;
        let mut lines = vec![Line([0.0; PAD]); dim * padded / PAD];
        let columns: &mut [f32] = bytemuck::cast_slice_mut(&mut lines);
        let mut offsets = vec![0.0f32; padded];
        let mut r = 0;
        for (matrix, offs) in parts {
            debug_assert_eq!(matrix.len(), offs.len() * dim);
            for (row, &off) in matrix.chunks_exact(dim.max(1)).zip(offs) {
                for (j, &x) in row.iter().enumerate() {
                    columns[j * padded + r] = x;
                }
                offsets[r] = off;
                r += 1;
            }
        }
        ProjectionPlan {
            dim,
            rows,
            padded,
            columns: lines,
            offsets,
            token: Token::for_active_table(),
        }
    }

    /// Writes `v . direction - offset` for every direction into
    /// `out[..rows()]` (`out[rows()..]` gets padding garbage).
    ///
    /// # Panics
    /// If `v.len() != dim` or `out.len() != padded()`.
    #[inline]
    pub(crate) fn project(&self, v: &[f32], out: &mut [f32]) {
        assert_eq!(v.len(), self.dim, "vector length");
        assert_eq!(out.len(), self.padded, "output length");
        let op = Project {
            columns: bytemuck::cast_slice(&self.columns),
            offsets: &self.offsets,
            padded: self.padded,
            v,
            out,
        };
        match self.token {
            Token::Scalar => Simd::vectorize(pulp::Scalar::new(), op),
            #[cfg(all(target_arch = "x86_64", feature = "avx2"))]
            Token::V3(t) => Simd::vectorize(t, op),
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Token::V4(t) => Simd::vectorize(t, op),
            #[cfg(all(target_arch = "aarch64", feature = "neon"))]
            Token::Neon(t) => Simd::vectorize(t, op),
        }
    }

    /// Projects `v` into a buffer on the stack (the heap past 64
    /// directions) and hands the projections (`rows()` of them) to `f`.
    #[inline]
    pub(crate) fn with_projection<R>(&self, v: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
        let mut stack = [0.0f32; 64];
        let mut heap;
        let out: &mut [f32] = if self.padded <= stack.len() {
            &mut stack[..self.padded]
        } else {
            heap = vec![0.0f32; self.padded];
            &mut heap
        };
        self.project(v, out);
        f(&out[..self.rows])
    }
}

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
    use crate::kernels::Isa;
    use crate::rng::Rng;

    fn reference(dim: usize, matrix: &[f32], offsets: &[f32], v: &[f32]) -> Vec<f32> {
        // The documented order, one output at a time.
        matrix
            .chunks_exact(dim)
            .zip(offsets)
            .map(|(row, off)| {
                let mut acc = [0.0f32; STREAMS];
                for (j, (&m, &x)) in row.iter().zip(v).enumerate() {
                    acc[j % STREAMS] = m.mul_add(x, acc[j % STREAMS]);
                }
                let sum = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
                    + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
                sum - off
            })
            .collect()
    }

    #[test]
    fn matches_the_documented_order_bit_for_bit_on_every_isa() {
        let mut rng = Rng::new(3);
        for dim in [1usize, 2, 7, 8, 9, 31, 128, 131] {
            for rows in [1usize, 10, 16, 17, 40, 49, 100] {
                let matrix: Vec<f32> = (0..rows * dim).map(|_| rng.normal() as f32).collect();
                let offsets: Vec<f32> = (0..rows).map(|_| rng.normal() as f32).collect();
                let v: Vec<f32> = (0..dim).map(|_| rng.normal() as f32 * 10.0).collect();
                let want = reference(dim, &matrix, &offsets, &v);
                for &isa in Isa::available() {
                    let mut plan = ProjectionPlan::new(dim, [(&matrix[..], &offsets[..])]);
                    plan.token = match isa {
                        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
                        Isa::Avx512 => pulp::x86::V4::try_new().map_or(Token::Scalar, Token::V4),
                        #[cfg(all(target_arch = "x86_64", feature = "avx2"))]
                        Isa::Avx2 => pulp::x86::V3::try_new().map_or(Token::Scalar, Token::V3),
                        #[cfg(all(target_arch = "aarch64", feature = "neon"))]
                        Isa::Neon => {
                            pulp::aarch64::Neon::try_new().map_or(Token::Scalar, Token::Neon)
                        }
                        _ => Token::Scalar,
                    };
                    let got = plan.with_projection(&v, |p| p.to_vec());
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "dim {dim}, rows {rows}, {isa:?}: {got:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn stacking_does_not_change_a_projection() {
        let mut rng = Rng::new(9);
        let dim = 128;
        let parts: Vec<(Vec<f32>, Vec<f32>)> = [10usize, 10, 7, 10]
            .iter()
            .map(|&n| {
                (
                    (0..n * dim).map(|_| rng.normal() as f32).collect(),
                    vec![0.0; n],
                )
            })
            .collect();
        let v: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let stacked = ProjectionPlan::new(dim, parts.iter().map(|(m, o)| (&m[..], &o[..])));
        let all = stacked.with_projection(&v, |p| p.to_vec());
        assert_eq!(all.len(), 37);
        let mut start = 0;
        for (m, o) in &parts {
            let alone =
                ProjectionPlan::new(dim, [(&m[..], &o[..])]).with_projection(&v, |p| p.to_vec());
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&alone), bits(&all[start..start + o.len()]));
            start += o.len();
        }
    }
}
