//! Secondary kernels written once over `pulp`'s portable SIMD types and
//! instantiated per ISA: Manhattan (single and batch) and the scaling step of
//! normalization, plus the `u8 -> f32` widening loop, which is plain Rust that
//! each ISA module compiles under its own `#[target_feature]`.
//!
//! Why generic here and hand-written elsewhere: these kernels are either
//! rarely on a query's hot path (normalization runs once per inserted vector,
//! widening once per file read) or, for Manhattan, a straight `sub`/`abs`/`add`
//! chain that pulp's per-ISA types express without loss. Writing them once
//! keeps three ISAs in step with one piece of code. The hot kernels (dot,
//! squared L2, cosine, Hamming) are hand-written per ISA in `x86/` and
//! `aarch64/`, where the accumulator layout and tail handling are tuned.
//!
//! Each ISA module obtains a pulp token with `new_unchecked` inside a
//! function that is only reachable through its `KernelTable`, which exists
//! only when the CPU has that token's features.

use pulp::{Simd, WithSimd};

/// `sum(|a[i] - b[i]|)` with four vector accumulators and a masked (partial)
/// load for the tail.
pub(crate) struct Manhattan<'a> {
    pub a: &'a [f32],
    pub b: &'a [f32],
}

#[inline(always)]
fn manhattan_body<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (a_head, a_tail) = S::as_simd_f32s(a);
    let (b_head, b_tail) = S::as_simd_f32s(b);
    let zero = simd.splat_f32s(0.0);
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (zero, zero, zero, zero);

    let a4 = a_head.chunks_exact(4);
    let b4 = b_head.chunks_exact(4);
    let (a_rest, b_rest) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        acc0 = simd.add_f32s(acc0, simd.abs_f32s(simd.sub_f32s(x[0], y[0])));
        acc1 = simd.add_f32s(acc1, simd.abs_f32s(simd.sub_f32s(x[1], y[1])));
        acc2 = simd.add_f32s(acc2, simd.abs_f32s(simd.sub_f32s(x[2], y[2])));
        acc3 = simd.add_f32s(acc3, simd.abs_f32s(simd.sub_f32s(x[3], y[3])));
    }
    for (&x, &y) in a_rest.iter().zip(b_rest) {
        acc0 = simd.add_f32s(acc0, simd.abs_f32s(simd.sub_f32s(x, y)));
    }
    // Lanes past the tail load as zero in both vectors, so they add |0 - 0| = 0.
    let x = simd.partial_load_f32s(a_tail);
    let y = simd.partial_load_f32s(b_tail);
    acc1 = simd.add_f32s(acc1, simd.abs_f32s(simd.sub_f32s(x, y)));

    let acc = simd.add_f32s(simd.add_f32s(acc0, acc1), simd.add_f32s(acc2, acc3));
    simd.reduce_sum_f32s(acc)
}

impl WithSimd for Manhattan<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        manhattan_body(simd, self.a, self.b)
    }
}

/// One query against `out.len()` rows, row `i` being `rows[i * stride..][..q.len()]`;
/// all rows run inside one `with_simd`, so the ISA's features are enabled once
/// for the whole batch and no row pays an indirect call.
pub(crate) struct ManhattanBatch<'a> {
    pub q: &'a [f32],
    pub rows: &'a [f32],
    pub stride: usize,
    pub out: &'a mut [f32],
}

impl WithSimd for ManhattanBatch<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let dim = self.q.len();
        for (i, o) in self.out.iter_mut().enumerate() {
            let row = &self.rows[i * self.stride..][..dim];
            *o = manhattan_body(simd, self.q, row);
        }
    }
}

/// `a[i] *= factor`, the scaling step of normalization.
pub(crate) struct Scale<'a> {
    pub a: &'a mut [f32],
    pub factor: f32,
}

impl WithSimd for Scale<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let f = simd.splat_f32s(self.factor);
        let (head, tail) = S::as_mut_simd_f32s(self.a);
        for x in head {
            *x = simd.mul_f32s(*x, f);
        }
        for x in tail {
            *x *= self.factor;
        }
    }
}
