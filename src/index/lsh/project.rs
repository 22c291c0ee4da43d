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
//! so the vector is read once for all of them. The pass itself is the kernel
//! table's projection entry (`kernels::project`), so this module names no ISA.
//!
//! The summation order of each output is fixed (component `j` goes into
//! accumulator `j % STREAMS`, one fused multiply-add each, in increasing `j`;
//! the accumulators are added pairwise at the end) and independent of the
//! ISA, of the register width and of how many directions are stacked: a
//! vector gets bit-identical projections, hence the same bucket keys, from a
//! hash alone or stacked in an engine, and on every machine. That matters for
//! a storage such as Redis, which one machine may fill and another query.

use crate::kernels::{self, KernelTable};

pub(crate) use crate::kernels::project::{Line, PAD};

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
    /// The kernel table the pass runs on: the active one when the plan was
    /// made, so pinning an ISA (`SWANN_ISA`, [`kernels::pin`]) pins hashing too.
    table: &'static KernelTable,
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
            table: kernels::active(),
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
        self.table.project(&self.columns, &self.offsets, v, out);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Isa;

    /// Accumulators per output of the documented order.
    const STREAMS: usize = 8;
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
                    plan.table = kernels::KernelTable::for_isa(isa).expect("available");
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
