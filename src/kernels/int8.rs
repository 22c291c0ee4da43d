//! 8-bit integer kernels: the distance estimates that quantized indexes
//! search on.
//!
//! Two operations, each with single, batch and gather forms:
//!
//! - [`KernelTable::dot_u8i8`]: `sum(q[i] as i32 * codes[i] as i32)` between
//!   a query quantized to `i8` and `u8` codes. Any scalar quantizer's
//!   distance reduces to it: with codes `x[i] = lo[i] + s[i] * c[i]`,
//!   `q . x = q . lo + sum((q[i] * s[i]) * c[i])`, so folding the per-
//!   dimension scales into the query and quantizing that to `i8` leaves one
//!   integer dot product per row (plus per-row terms such as `|x|^2`).
//! - [`KernelTable::l2sq_u8`]: `sum((a[i] - b[i])^2)` between two `u8`
//!   codes of one grid (code against code, as a build on codes needs).
//!
//! Both are exact: every ISA returns the scalar reference's integer, bit for
//! bit, for vectors of up to [`MAX_INT_DIM`] components (where the sums still
//! fit `i32` and `u32`).
//!
//! | ISA | `dot_u8i8` | `l2sq_u8` |
//! |---|---|---|
//! | scalar | widening loop | widening loop |
//! | AVX2 | `vpmovzxbw`/`vpmovsxbw` + `vpmaddwd` (16-bit products, so `vpmaddubsw`'s saturation never happens) | `|a - b|` by saturating subtractions, `vpmaddwd` |
//! | AVX-VNNI | `vpdpbusd` (256-bit, four chains) | as AVX2 |
//! | AVX-512 (BW) | as AVX2, 512-bit, masked tails | as AVX2, 512-bit |
//! | AVX-512 VNNI | `vpdpbusd` (512-bit, four chains), masked tails | as AVX-512 |
//! | NEON | widening `smlal` | `vabd` + `umull` + `uadalp` |
//! | NEON dotprod | `sdot` on `c - 128` plus `128 * sum(q)` | `vabd` + `udot` |
//!
//! `vpdpwssd` would fuse L2's multiply and add, but its five-cycle latency
//! sits on the accumulator chain where `vpaddd`'s one cycle does: it
//! measured slower with AVX-VNNI and no faster with AVX-512 VNNI, so the
//! VNNI variants keep the `vpmaddwd` L2.

use super::KernelTable;

/// The most components the integer kernels take: below it their sums fit
/// `i32` (`255 * 128 * 65,536 < 2^31`) and `u32` (`255^2 * 65,536 < 2^32`).
pub const MAX_INT_DIM: usize = 1 << 16;

/// Raw `u8`-by-`i8` dot: `q` and `codes` each have `n` readable elements.
pub(crate) type RawDotU8I8 = unsafe fn(q: *const i8, codes: *const u8, n: usize) -> i32;
/// Raw `u8` squared L2: `a` and `b` each have `n` readable bytes.
pub(crate) type RawL2sqU8 = unsafe fn(a: *const u8, b: *const u8, n: usize) -> u32;
/// Raw batch form of [`RawDotU8I8`]: `rows` rows of `dim` codes at `base + i
/// * stride`, `out` with `rows` slots.
pub(crate) type RawDotU8I8Batch =
    unsafe fn(q: *const i8, base: *const u8, dim: usize, stride: usize, rows: usize, out: *mut i32);
/// Raw batch form of [`RawL2sqU8`].
pub(crate) type RawL2sqU8Batch =
    unsafe fn(q: *const u8, base: *const u8, dim: usize, stride: usize, rows: usize, out: *mut u32);
/// Raw gather form of [`RawDotU8I8`]: row `ids[i]` at `base + ids[i] *
/// stride` for `i < n`.
pub(crate) type RawDotU8I8Gather = unsafe fn(
    q: *const i8,
    base: *const u8,
    dim: usize,
    stride: usize,
    ids: *const u32,
    n: usize,
    out: *mut i32,
);
/// Raw gather form of [`RawL2sqU8`].
pub(crate) type RawL2sqU8Gather = unsafe fn(
    q: *const u8,
    base: *const u8,
    dim: usize,
    stride: usize,
    ids: *const u32,
    n: usize,
    out: *mut u32,
);

/// Defines a gather entry, `$name`, calling `$body(q, row, dim)` for rows
/// named by index, inside one function with the attributes given.
macro_rules! gather_rows_entry {
    ($(#[$attr:meta])* $name:ident, $body:path, $qt:ty, $rt:ty, $o:ty) => {
        /// # Safety
        /// Layout contract of the raw gather kernel types in `kernels`; the
        /// table's ISA available.
        $(#[$attr])*
        pub(crate) unsafe fn $name(
            q: *const $qt,
            base: *const $rt,
            dim: usize,
            stride: usize,
            ids: *const u32,
            n: usize,
            out: *mut $o,
        ) {
            for i in 0..n {
                // SAFETY: `ids` has `n` readable indices; row `ids[i]` starts
                // at `base + ids[i] * stride` with `dim` readable elements, `q`
                // has `dim`, and `out` has `n` writable slots (caller
                // contract); the table holding this entry is handed out only
                // where its ISA runs.
                unsafe {
                    let row = base.add(*ids.add(i) as usize * stride);
                    *out.add(i) = $body(q, row, dim);
                }
            }
        }
    };
}

/// Defines, in a module `$m`, the integer entries of one ISA variant from its
/// two bodies (`$dot(q: *const i8, codes: *const u8, n) -> i32` and
/// `$l2(a: *const u8, b: *const u8, n) -> u32`): the single entries, the
/// batch and the gather forms, all under the attributes given (the
/// variant's `#[target_feature]`).
macro_rules! int_glue {
    ($(#[$attr:meta])* mod $m:ident, dot: $dot:path, l2: $l2:path) => {
        pub(crate) mod $m {
            #[allow(unused_imports)]
            use super::*;

            /// # Safety
            /// `RawDotU8I8` contract; the variant's features available.
            $(#[$attr])*
            pub(crate) unsafe fn dot_u8i8(q: *const i8, codes: *const u8, n: usize) -> i32 {
                // SAFETY: forwarded (caller contract; the table holding this
                // entry is handed out only where its features run).
                unsafe { $dot(q, codes, n) }
            }

            /// # Safety
            /// `RawL2sqU8` contract; the variant's features available.
            $(#[$attr])*
            pub(crate) unsafe fn l2sq_u8(a: *const u8, b: *const u8, n: usize) -> u32 {
                // SAFETY: as in `dot_u8i8`.
                unsafe { $l2(a, b, n) }
            }

            batch_entry!($(#[$attr])* dot_u8i8_batch, $dot, i8, u8, i32);
            batch_entry!($(#[$attr])* l2sq_u8_batch, $l2, u8, u8, u32);
            gather_rows_entry!($(#[$attr])* dot_u8i8_gather, $dot, i8, u8, i32);
            gather_rows_entry!($(#[$attr])* l2sq_u8_gather, $l2, u8, u8, u32);
        }
    };
}

/// The integer fields of a [`KernelTable`] literal, from a module `int_glue!`
/// made.
macro_rules! int_fields {
    ($m:ident) => {
        $crate::kernels::int8::IntKernels {
            dot_u8i8: $m::dot_u8i8,
            l2sq_u8: $m::l2sq_u8,
            dot_u8i8_batch: $m::dot_u8i8_batch,
            l2sq_u8_batch: $m::l2sq_u8_batch,
            dot_u8i8_gather: $m::dot_u8i8_gather,
            l2sq_u8_gather: $m::l2sq_u8_gather,
        }
    };
}

/// One variant's integer kernels (a field of [`KernelTable`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntKernels {
    pub(crate) dot_u8i8: RawDotU8I8,
    pub(crate) l2sq_u8: RawL2sqU8,
    pub(crate) dot_u8i8_batch: RawDotU8I8Batch,
    pub(crate) l2sq_u8_batch: RawL2sqU8Batch,
    pub(crate) dot_u8i8_gather: RawDotU8I8Gather,
    pub(crate) l2sq_u8_gather: RawL2sqU8Gather,
}

/// The scalar reference bodies.
pub(crate) mod reference {
    /// `sum(q[i] * codes[i])`, exact in `i32` for `n <= MAX_INT_DIM`.
    ///
    /// # Safety
    /// `q` and `codes` have `n` readable elements.
    #[inline(always)]
    pub(crate) unsafe fn dot_u8i8_body(q: *const i8, codes: *const u8, n: usize) -> i32 {
        // SAFETY: caller contract.
        let (q, c) = unsafe {
            (
                super::super::scalar::slice(q, n),
                super::super::scalar::slice(codes, n),
            )
        };
        q.iter()
            .zip(c)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .fold(0i32, i32::wrapping_add)
    }

    /// `sum((a[i] - b[i])^2)`, exact in `u32` for `n <= MAX_INT_DIM`.
    ///
    /// # Safety
    /// `a` and `b` have `n` readable bytes.
    #[inline(always)]
    pub(crate) unsafe fn l2sq_u8_body(a: *const u8, b: *const u8, n: usize) -> u32 {
        // SAFETY: caller contract.
        let (a, b) = unsafe {
            (
                super::super::scalar::slice(a, n),
                super::super::scalar::slice(b, n),
            )
        };
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let d = u32::from(x.abs_diff(y));
                d * d
            })
            .fold(0u32, u32::wrapping_add)
    }
}

fn check_int_dim(n: usize) {
    assert!(
        n <= MAX_INT_DIM,
        "{n} components; the integer kernels take at most {MAX_INT_DIM}"
    );
}

fn check_gather(dim: usize, len: usize, stride: usize, ids: &[u32]) {
    assert!(
        stride >= dim,
        "stride {stride} is shorter than the vector length {dim}"
    );
    if let Some(&last) = ids.iter().max() {
        let end = (last as usize)
            .checked_mul(stride)
            .and_then(|s| s.checked_add(dim))
            .expect("row offset overflows usize");
        assert!(
            end <= len,
            "row {last} ends at {end}, past the {len} codes given"
        );
    }
}

impl KernelTable {
    /// `sum(q[i] as i32 * codes[i] as i32)`: a query quantized to `i8`
    /// against `u8` codes (see the [module documentation](self)). Exact, and
    /// the same integer on every ISA.
    ///
    /// # Panics
    /// If the lengths differ or exceed [`MAX_INT_DIM`].
    #[inline]
    pub fn dot_u8i8(&self, q: &[i8], codes: &[u8]) -> i32 {
        assert_eq!(q.len(), codes.len(), "query and code lengths differ");
        check_int_dim(q.len());
        // SAFETY: the table's ISA runs here; both slices have `len` elements.
        unsafe { (self.int.dot_u8i8)(q.as_ptr(), codes.as_ptr(), q.len()) }
    }

    /// `sum((a[i] - b[i])^2)` between two `u8` codes. Exact, and the same
    /// integer on every ISA.
    ///
    /// # Panics
    /// If the lengths differ or exceed [`MAX_INT_DIM`].
    #[inline]
    pub fn l2sq_u8(&self, a: &[u8], b: &[u8]) -> u32 {
        assert_eq!(a.len(), b.len(), "code lengths differ");
        check_int_dim(a.len());
        // SAFETY: the table's ISA runs here; both slices have `len` bytes.
        unsafe { (self.int.l2sq_u8)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// [`KernelTable::dot_u8i8`] of `q` against `out.len()` rows of `rows`,
    /// row `i` being `rows[i * stride..i * stride + q.len()]`.
    ///
    /// # Panics
    /// If `stride < q.len()`, `rows` is too short, or `q.len()` exceeds
    /// [`MAX_INT_DIM`].
    #[inline]
    pub fn dot_u8i8_batch(&self, q: &[i8], rows: &[u8], stride: usize, out: &mut [i32]) {
        check_int_dim(q.len());
        super::check_batch(q.len(), rows.len(), stride, out.len());
        // SAFETY: the table's ISA runs here; every row lies within `rows`
        // (checked above) and `out` has one slot per row.
        unsafe {
            (self.int.dot_u8i8_batch)(
                q.as_ptr(),
                rows.as_ptr(),
                q.len(),
                stride,
                out.len(),
                out.as_mut_ptr(),
            )
        }
    }

    /// [`KernelTable::l2sq_u8`] of `q` against `out.len()` rows of `rows`.
    ///
    /// # Panics
    /// As [`KernelTable::dot_u8i8_batch`].
    #[inline]
    pub fn l2sq_u8_batch(&self, q: &[u8], rows: &[u8], stride: usize, out: &mut [u32]) {
        check_int_dim(q.len());
        super::check_batch(q.len(), rows.len(), stride, out.len());
        // SAFETY: as in `dot_u8i8_batch`.
        unsafe {
            (self.int.l2sq_u8_batch)(
                q.as_ptr(),
                rows.as_ptr(),
                q.len(),
                stride,
                out.len(),
                out.as_mut_ptr(),
            )
        }
    }

    /// [`KernelTable::dot_u8i8`] of `q` against the rows named by `ids`, row
    /// `r` being `base[r * stride..r * stride + q.len()]`; `out[i]` is row
    /// `ids[i]`'s.
    ///
    /// # Panics
    /// If `out.len() != ids.len()`, `stride < q.len()`, a row runs past
    /// `base`, or `q.len()` exceeds [`MAX_INT_DIM`].
    #[inline]
    pub fn dot_u8i8_gather(
        &self,
        q: &[i8],
        base: &[u8],
        stride: usize,
        ids: &[u32],
        out: &mut [i32],
    ) {
        assert_eq!(ids.len(), out.len(), "one output per row");
        check_int_dim(q.len());
        check_gather(q.len(), base.len(), stride, ids);
        // SAFETY: the table's ISA runs here; every named row ends within
        // `base` (checked against the largest index), `ids` and `out` hold
        // `ids.len()` elements.
        unsafe {
            (self.int.dot_u8i8_gather)(
                q.as_ptr(),
                base.as_ptr(),
                q.len(),
                stride,
                ids.as_ptr(),
                ids.len(),
                out.as_mut_ptr(),
            )
        }
    }

    /// [`KernelTable::dot_u8i8_gather`] with the rows addressed from a
    /// raw `base` and no bounds checks, for arenas whose other rows may be
    /// written meanwhile (no slice may span them).
    ///
    /// # Safety
    /// For every id, `base + id * stride` must point to `q.len()` readable
    /// bytes that no one writes during the call; `q.len() <= MAX_INT_DIM`;
    /// `out.len() == ids.len()`.
    #[inline]
    pub(crate) unsafe fn dot_u8i8_gather_raw(
        &self,
        q: &[i8],
        base: *const u8,
        stride: usize,
        ids: &[u32],
        out: &mut [i32],
    ) {
        debug_assert_eq!(ids.len(), out.len());
        // SAFETY: the caller's contract; the table's ISA runs here.
        unsafe {
            (self.int.dot_u8i8_gather)(
                q.as_ptr(),
                base,
                q.len(),
                stride,
                ids.as_ptr(),
                ids.len(),
                out.as_mut_ptr(),
            )
        }
    }

    /// [`KernelTable::l2sq_u8`] of `q` against the rows named by `ids`.
    ///
    /// # Panics
    /// As [`KernelTable::dot_u8i8_gather`].
    #[inline]
    pub fn l2sq_u8_gather(
        &self,
        q: &[u8],
        base: &[u8],
        stride: usize,
        ids: &[u32],
        out: &mut [u32],
    ) {
        assert_eq!(ids.len(), out.len(), "one output per row");
        check_int_dim(q.len());
        check_gather(q.len(), base.len(), stride, ids);
        // SAFETY: as in `dot_u8i8_gather`.
        unsafe {
            (self.int.l2sq_u8_gather)(
                q.as_ptr(),
                base.as_ptr(),
                q.len(),
                stride,
                ids.as_ptr(),
                ids.len(),
                out.as_mut_ptr(),
            )
        }
    }
}
