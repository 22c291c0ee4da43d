//! Distance kernels, one implementation per instruction set, chosen at run time.
//!
//! Every kernel exists once per ISA (`scalar`, `avx2`, `avx512`, `neon`). The
//! ISA functions are `unsafe fn`s over raw pointers and lengths; they are
//! gathered into one [`KernelTable`] per ISA, and a table is only ever handed
//! out (by [`KernelTable::for_isa`] or [`active`]) when the running CPU can
//! execute it. The safe methods on [`KernelTable`] check slice lengths and then
//! call the raw kernels, so holding a `&'static KernelTable` is the proof that
//! its instructions are available.
//!
//! Detection runs once and is cached in an atomic pointer, the way `memchr`
//! does it: a query pays neither detection nor a per-call branch on the ISA.
//!
//! The ISA can be pinned with the environment variable `SWANN_ISA`
//! (`scalar`, `avx2`, `avx512`, `neon`), read the first time [`active`] is
//! called, or with [`pin`] at any time. A request the CPU or the build cannot
//! honour is refused (`pin` returns an error; the environment variable prints
//! one warning to standard error and falls back to the detected ISA).
//!
//! # What is written per ISA and what once
//!
//! | entry | scalar | AVX2+FMA | AVX-512 | NEON |
//! |---|---|---|---|---|
//! | dot, squared L2, cosine sums, norm (`*_body`) | reference | by hand | by hand | by hand |
//! | Hamming | `count_ones` | `vpshufb` nibble lookup | `vpopcntq` or BW lookup (two tables) | `cnt` + `uadalp` |
//! | cosine gather (four rows per step) | per row | by hand (`cosine_gather4!`, x86) | by hand (`cosine_gather4!`, x86) | per row |
//! | byte dot, byte quantization | reference | by hand | by hand | the reference under NEON |
//! | 4-bit FastScan block ([`fastscan`]) | reference | `vpshufb`, two sub-spaces per register | `vpshufb` on 512 bits, four sub-spaces | `tbl` (`vqtbl1q_u8`) |
//! | single entries over the bodies, Manhattan, normalize, widen | reference | `simd_glue!` | `simd_glue!` | `simd_glue!` |
//! | batch and gather forms, cosine and Manhattan batch | `batch_entry!` / `gather_entry!` | `simd_glue!` | `simd_glue!` | `simd_glue!` |
//! | FastScan over consecutive blocks | `fastscan_entry!` | `fastscan_entry!` | `fastscan_entry!` | `fastscan_entry!` |
//! | projection pass ([`project`]) | pulp `Scalar` | pulp `V3` | pulp `V4` | pulp `Neon` |
//! | the table itself | `kernel_table!` | `kernel_table!` | `kernel_table!` | `kernel_table!` |
//!
//! An ISA module writes only what is specific to its instructions (the hot
//! bodies, its Hamming count, its horizontal sums) and its pulp token; the
//! macros here derive every other entry from those, once for all ISAs, so a
//! new kernel is one body per ISA plus one line in the glue.
//!
//! # Lengths
//!
//! Two-vector kernels panic when the slices differ in length, like slice
//! indexing does; batch kernels panic when `rows` or `out` is too short for
//! the number of rows asked for. No length mismatch can reach the raw kernels.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// Defines a [`RawF32Gather`] entry, `$name`, that evaluates `$body` on
/// each row in turn: `$body` is an expression in the query pointer `$q`, the
/// prepared value `$aux`, the row pointer `$row` and the length `$dim`, and
/// is evaluated in an `unsafe` block under the attributes given (the ISA's
/// `#[target_feature]`), so the per-row kernel inlines into the loop.
macro_rules! gather_entry {
    ($(#[$attr:meta])* $name:ident, |$q:ident, $aux:ident, $row:ident, $dim:ident| $body:expr) => {
        /// # Safety
        /// `RawF32Gather` contract; the table's ISA available.
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(
            $q: *const f32,
            $aux: f32,
            base: *const f32,
            $dim: usize,
            stride: usize,
            rows: *const u32,
            n: usize,
            out: *mut f32,
        ) {
            for i in 0..n {
                // SAFETY: `rows` has `n` readable indices; row `rows[i]`
                // starts at `base + rows[i] * stride` with `$dim` readable
                // floats, `$q` has `$dim`, and `out` has `n` writable slots
                // (caller contract); the table holding this entry is handed
                // out only where its ISA runs.
                unsafe {
                    let $row = base.add(*rows.add(i) as usize * stride);
                    *out.add(i) = $body;
                }
            }
        }
    };
}

/// Defines a batch entry (`RawF32Batch` / `RawHammingBatch` layout),
/// `$name`, that calls the single-pair body `$body` once per row inside one
/// function carrying the attributes given (the ISA's `#[target_feature]`),
/// so each call is direct and inlinable, never through a pointer. One
/// definition for every ISA.
macro_rules! batch_entry {
    ($(#[$attr:meta])* $name:ident, $body:path, $t:ty, $o:ty) => {
        batch_entry!($(#[$attr])* $name, $body, $t, $t, $o);
    };
    ($(#[$attr:meta])* $name:ident, $body:path, $qt:ty, $rt:ty, $o:ty) => {
        /// # Safety
        /// Layout contract of the raw batch kernel types in `kernels`; the
        /// table's ISA available.
        $(#[$attr])*
        pub(crate) unsafe fn $name(
            q: *const $qt,
            base: *const $rt,
            dim: usize,
            stride: usize,
            rows: usize,
            out: *mut $o,
        ) {
            for i in 0..rows {
                // SAFETY: row `i < rows` starts at `base + i * stride` with
                // `dim` readable elements and `out` has `rows` writable slots
                // (caller contract); the table holding this entry is handed
                // out only where its ISA runs.
                unsafe { *out.add(i) = $body(q, base.add(i * stride), dim) };
            }
        }
    };
}

/// The entries every SIMD ISA derives the same way from its hand-written
/// bodies, written once: the single dot, squared L2, cosine and norm entries
/// over the bodies, Manhattan, normalization and widening (pulp code or
/// plain loops under the ISA's features), the dot / squared-L2 batch and
/// gather entries, the Manhattan gather, the cosine batch (the query's `q.q`
/// computed once), the Manhattan batch and the projection pass. The calling module provides `dot_body`, `l2sq_body`,
/// `norm_sq_body`, `cosine_sums` and `manhattan` with the ISA's features, and
/// `$token`, an `unsafe fn() -> ` its pulp token, sound to call wherever the
/// table is handed out.
#[cfg(any(
    all(target_arch = "x86_64", any(feature = "avx2", feature = "avx512")),
    all(target_arch = "aarch64", feature = "neon")
))]
macro_rules! simd_glue {
    (features: $features:literal, token: $token:ident) => {
        /// # Safety
        /// `RawF32` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn dot(a: *const f32, b: *const f32, n: usize) -> f32 {
            // SAFETY: `n` readable floats at each pointer (caller contract);
            // the ISA runs (the table is handed out only then).
            unsafe { dot_body(a, b, n) }
        }

        /// # Safety
        /// `RawF32` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn l2sq(a: *const f32, b: *const f32, n: usize) -> f32 {
            // SAFETY: as in `dot`.
            unsafe { l2sq_body(a, b, n) }
        }

        /// # Safety
        /// `RawF32` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn cosine(a: *const f32, b: *const f32, n: usize) -> f32 {
            // SAFETY: as in `dot`.
            let (ab, aa, bb) = unsafe { cosine_sums(a, b, n) };
            $crate::kernels::scalar::cosine_from_sums(ab, aa, bb)
        }

        /// # Safety
        /// `RawF32Unary` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn norm_sq(a: *const f32, n: usize) -> f32 {
            // SAFETY: `n` readable floats at `a` (caller contract); the ISA runs.
            unsafe { norm_sq_body(a, n) }
        }

        /// # Safety
        /// `RawF32` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn manhattan(a: *const f32, b: *const f32, n: usize) -> f32 {
            // SAFETY: both pointers are valid for `n` reads (caller
            // contract); the token is sound where the table is handed out.
            unsafe {
                let (a, b) = (
                    $crate::kernels::scalar::slice(a, n),
                    $crate::kernels::scalar::slice(b, n),
                );
                pulp::Simd::vectorize($token(), $crate::kernels::generic::Manhattan { a, b })
            }
        }

        /// # Safety
        /// `RawF32InPlace` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn normalize(a: *mut f32, n: usize) -> f32 {
            if n == 0 {
                return 0.0;
            }
            // SAFETY: the caller gives exclusive access to `n` floats at `a`;
            // the token is sound where the table is handed out.
            unsafe {
                let nsq = norm_sq_body(a, n);
                let a = std::slice::from_raw_parts_mut(a, n);
                let simd = $token();
                $crate::kernels::scalar::scale_to_unit(a, nsq, |a, factor| {
                    pulp::Simd::vectorize(simd, $crate::kernels::generic::Scale { a, factor })
                })
            }
        }

        /// Bytes to `f32`: a plain loop that LLVM vectorizes with the ISA's
        /// features (`vpmovzxbd` + `vcvtdq2ps` on AVX2, for one).
        ///
        /// # Safety
        /// `RawWidenU8` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn widen_u8(src: *const u8, dst: *mut f32, n: usize) {
            if n == 0 {
                return;
            }
            // SAFETY: `src` has `n` readable bytes and `dst` `n` writable
            // floats that do not overlap (caller contract).
            let (src, dst) = unsafe {
                (
                    $crate::kernels::scalar::slice(src, n),
                    std::slice::from_raw_parts_mut(dst, n),
                )
            };
            $crate::kernels::scalar::widen_slice(src, dst);
        }

        /// A 4-bit product quantizer's table: plain loops that LLVM
        /// vectorizes with the ISA's features (one 16-lane register per
        /// centroid row with AVX-512).
        ///
        /// # Safety
        /// `RawPq4Table` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn pq4_table(
            q: *const f32,
            cent_t: *const f32,
            dim: usize,
            width: usize,
            l2: bool,
            out: *mut f32,
        ) -> f32 {
            // SAFETY: `dim` readable floats at `q`, `16 dim` at `cent_t`,
            // `16 ceil(dim / width)` writable at `out`, not overlapping
            // (caller contract).
            let (q, cent_t, out) = unsafe {
                (
                    $crate::kernels::scalar::slice(q, dim),
                    $crate::kernels::scalar::slice(cent_t, 16 * dim),
                    std::slice::from_raw_parts_mut(out, 16 * dim.div_ceil(width)),
                )
            };
            $crate::kernels::scalar::pq4_table_slice(q, cent_t, width, l2, out)
        }

        /// A 4-bit product quantizer's codes: plain loops that LLVM
        /// vectorizes with the ISA's features.
        ///
        /// # Safety
        /// `RawPq4Encode` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn pq4_encode(
            v: *const f32,
            cent_e: *const f32,
            dim: usize,
            width: usize,
            codes: *mut u8,
        ) {
            // SAFETY: `dim` readable floats at `v`, `16 dim` at `cent_e`,
            // `ceil(dim / width)` writable bytes at `codes` (caller
            // contract).
            let (v, cent_e, codes) = unsafe {
                (
                    $crate::kernels::scalar::slice(v, dim),
                    $crate::kernels::scalar::slice(cent_e, 16 * dim),
                    std::slice::from_raw_parts_mut(codes, dim.div_ceil(width)),
                )
            };
            $crate::kernels::scalar::pq4_encode_slice(v, cent_e, width, codes)
        }

        batch_entry!(
            #[target_feature(enable = $features)]
            dot_batch,
            dot_body,
            f32,
            f32
        );
        batch_entry!(
            #[target_feature(enable = $features)]
            l2sq_batch,
            l2sq_body,
            f32,
            f32
        );
        gather_entry!(
            #[target_feature(enable = $features)]
            dot_gather,
            |q, _aux, row, dim| dot_body(q, row, dim)
        );
        gather_entry!(
            #[target_feature(enable = $features)]
            l2sq_gather,
            |q, _aux, row, dim| l2sq_body(q, row, dim)
        );
        gather_entry!(
            #[target_feature(enable = $features)]
            manhattan_gather,
            |q, _aux, row, dim| manhattan(q, row, dim)
        );

        /// Cosine against many rows: the query's own sum `q.q` is computed once.
        ///
        /// # Safety
        /// `RawF32Batch` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn cosine_batch(
            q: *const f32,
            base: *const f32,
            dim: usize,
            stride: usize,
            rows: usize,
            out: *mut f32,
        ) {
            // SAFETY: `q` has `dim` readable floats (caller contract); the
            // ISA runs (the table is handed out only then).
            let qq = unsafe { norm_sq_body(q, dim) };
            for i in 0..rows {
                // SAFETY: row `i < rows` is readable for `dim` floats at
                // `base + i * stride`, `out` has `rows` slots (caller contract).
                unsafe {
                    let (qr, _, rr) = cosine_sums(q, base.add(i * stride), dim);
                    *out.add(i) = $crate::kernels::scalar::cosine_from_sums(qr, qq, rr);
                }
            }
        }

        /// # Safety
        /// `RawF32Batch` contract; the table's ISA available.
        #[target_feature(enable = $features)]
        unsafe fn manhattan_batch(
            q: *const f32,
            base: *const f32,
            dim: usize,
            stride: usize,
            rows: usize,
            out: *mut f32,
        ) {
            if rows == 0 {
                return;
            }
            // SAFETY: the caller guarantees `dim` readable floats at `q`, rows
            // `0..rows` readable at `base + i * stride` (so
            // `(rows - 1) * stride + dim` floats from `base`), and `rows`
            // writable slots at `out`; the token is sound where the table is
            // handed out.
            unsafe {
                let q = $crate::kernels::scalar::slice(q, dim);
                let rows_slice = $crate::kernels::scalar::slice(base, (rows - 1) * stride + dim);
                let out = std::slice::from_raw_parts_mut(out, rows);
                pulp::Simd::vectorize(
                    $token(),
                    $crate::kernels::generic::ManhattanBatch {
                        q,
                        rows: rows_slice,
                        stride,
                        out,
                    },
                )
            }
        }

        /// `RawProject` under this ISA's pulp token.
        ///
        /// # Safety
        /// The table's ISA available (the table is handed out only then).
        unsafe fn project(
            columns: &[f32],
            offsets: &[f32],
            padded: usize,
            v: &[f32],
            out: &mut [f32],
        ) {
            // SAFETY: forwarded to the caller.
            let simd = unsafe { $token() };
            $crate::kernels::project::run(simd, columns, offsets, padded, v, out)
        }
    };
}

/// A [`KernelTable`] literal for `$isa` from the entries of the calling
/// module, by their standard names (`fastscan_u4` from `fastscan_entry!`), with its variant name and the module of
/// integer kernels (`int_glue!`) it uses; a table for a sub-feature (VNNI,
/// VPOPCNTDQ, dotprod) is this one with some entries replaced.
macro_rules! kernel_table {
    ($isa:expr, $variant:literal, int: $int:ident) => {
        $crate::kernels::KernelTable {
            isa: $isa,
            variant: $variant,
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
            dot_gather,
            l2sq_gather,
            cosine_gather,
            manhattan_gather,
            widen_u8,
            dot_u8,
            quantize_u8,
            pq4_table,
            pq4_encode,
            project,
            fastscan_u4,
            int: int_fields!($int),
        }
    };
}

#[macro_use]
pub mod fastscan;
#[macro_use]
pub mod int8;
#[cfg(any(
    all(target_arch = "x86_64", any(feature = "avx2", feature = "avx512")),
    all(target_arch = "aarch64", feature = "neon")
))]
mod generic;
pub mod prefetch;
pub mod project;
pub(crate) mod scalar;

pub use scalar::U8Code;

#[cfg(all(target_arch = "x86_64", any(feature = "avx2", feature = "avx512")))]
mod x86;

#[cfg(all(target_arch = "aarch64", feature = "neon"))]
mod aarch64;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// An instruction-set level the kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD: the reference every other ISA is tested against.
    Scalar,
    /// x86-64 AVX2 with FMA (Haswell, Zen and later).
    Avx2,
    /// x86-64 AVX-512F (Skylake-SP, Ice Lake, Zen 4 and later); Hamming uses
    /// VPOPCNTDQ where the CPU has it.
    Avx512,
    /// AArch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// Every ISA, in order from least to most preferred on its architecture.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Neon, Isa::Avx2, Isa::Avx512];

    /// The lowercase name used by `SWANN_ISA` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Whether this ISA's kernels are compiled into this build (cargo features,
    /// target architecture, compiler support).
    pub fn is_compiled(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => cfg!(all(target_arch = "x86_64", feature = "avx2")),
            Isa::Avx512 => cfg!(all(target_arch = "x86_64", feature = "avx512")),
            Isa::Neon => cfg!(all(target_arch = "aarch64", feature = "neon")),
        }
    }

    /// Whether this build has the ISA compiled in and the running CPU executes it.
    pub fn is_available(self) -> bool {
        KernelTable::for_isa(self).is_some()
    }

    /// The best ISA this CPU runs among those compiled in.
    pub fn detected() -> Isa {
        *Isa::available().last().unwrap_or(&Isa::Scalar)
    }

    /// All ISAs this CPU runs and this build contains, least preferred first
    /// (so `Scalar` is always first and [`Isa::detected`] is last).
    pub fn available() -> &'static [Isa] {
        static AVAILABLE: OnceLock<Vec<Isa>> = OnceLock::new();
        AVAILABLE.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .filter(|&isa| KernelTable::for_isa(isa).is_some())
                .collect()
        })
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `SWANN_ISA` or [`pin`] named an ISA that cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    /// The name is not one of `scalar`, `avx2`, `avx512`, `neon`.
    #[error("unknown instruction set {0:?} (expected scalar, avx2, avx512 or neon)")]
    Unknown(String),
    /// The ISA is not compiled into this build (cargo feature off, other architecture,
    /// or a compiler without the needed target features).
    #[error("instruction set {0} is not compiled into this build")]
    NotCompiled(Isa),
    /// The build has it, but the running CPU does not execute it.
    #[error("this CPU cannot run instruction set {0}")]
    NotSupported(Isa),
}

impl FromStr for Isa {
    type Err = IsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" | "avx-512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            _ => Err(IsaError::Unknown(s.to_string())),
        }
    }
}

/// Raw two-vector `f32` kernel: `a` and `b` point to `n` readable `f32`s each.
pub(crate) type RawF32 = unsafe fn(a: *const f32, b: *const f32, n: usize) -> f32;
/// Raw one-vector `f32` kernel over `n` readable `f32`s.
pub(crate) type RawF32Unary = unsafe fn(a: *const f32, n: usize) -> f32;
/// Raw in-place kernel over `n` writable `f32`s.
pub(crate) type RawF32InPlace = unsafe fn(a: *mut f32, n: usize) -> f32;
/// Raw Hamming kernel: `a` and `b` point to `n` readable `u64` words each.
pub(crate) type RawHamming = unsafe fn(a: *const u64, b: *const u64, n: usize) -> u32;
/// Raw one-query-against-many-rows kernel: `q` points to `dim` readable `f32`s,
/// row `i` (for `i < rows`) starts at `base + i * stride` and has `dim`
/// readable `f32`s, `out` points to `rows` writable `f32`s.
pub(crate) type RawF32Batch = unsafe fn(
    q: *const f32,
    base: *const f32,
    dim: usize,
    stride: usize,
    rows: usize,
    out: *mut f32,
);
/// Raw gather kernel: distances from `q` (`dim` readable `f32`s) to `n`
/// rows scattered through an arena, row `i` starting at
/// `base + rows[i] * stride` with `dim` readable `f32`s (`rows` has `n`
/// readable indices, `out` `n` writable `f32`s). `aux` is what
/// [`F32Kernel::prepare`] computed from `q` with the same table (for cosine,
/// `q.q` as the table's `norm_sq` sums it; unused otherwise).
pub(crate) type RawF32Gather = unsafe fn(
    q: *const f32,
    aux: f32,
    base: *const f32,
    dim: usize,
    stride: usize,
    rows: *const u32,
    n: usize,
    out: *mut f32,
);
/// Raw batch Hamming kernel, with the same layout rules as [`RawF32Batch`] in `u64` words.
pub(crate) type RawHammingBatch = unsafe fn(
    q: *const u64,
    base: *const u64,
    words: usize,
    stride: usize,
    rows: usize,
    out: *mut u32,
);
/// Raw widening kernel: `src` has `n` readable bytes, `dst` `n` writable `f32`s.
pub(crate) type RawWidenU8 = unsafe fn(src: *const u8, dst: *mut f32, n: usize);
/// Raw `f32`-by-byte dot product: `q` and `codes` each have `n` readable elements.
pub(crate) type RawDotU8 = unsafe fn(q: *const f32, codes: *const u8, n: usize) -> f32;
/// Raw byte quantizer: `x` has `n` readable floats, `codes` `n` writable bytes.
pub(crate) type RawQuantizeU8 = unsafe fn(x: *const f32, codes: *mut u8, n: usize) -> U8Code;
/// Raw 4-bit product quantizer table: `q` has `dim` readable floats,
/// `cent_t` `16 dim`, `out` `16 ceil(dim / width)` writable ones, not
/// overlapping; `width >= 1`.
pub(crate) type RawPq4Table = unsafe fn(
    q: *const f32,
    cent_t: *const f32,
    dim: usize,
    width: usize,
    l2: bool,
    out: *mut f32,
) -> f32;
/// Raw 4-bit product coder: `v` has `dim` readable floats, `cent_e`
/// `16 dim`, `codes` `ceil(dim / width)` writable bytes; `width >= 1`.
pub(crate) type RawPq4Encode =
    unsafe fn(v: *const f32, cent_e: *const f32, dim: usize, width: usize, codes: *mut u8);
/// Raw projection pass (see [`KernelTable::project`]): unsafe only because
/// it needs the table's ISA; the slices carry their own bounds.
pub(crate) type RawProject =
    unsafe fn(columns: &[f32], offsets: &[f32], padded: usize, v: &[f32], out: &mut [f32]);

/// Sub-spaces [`KernelTable::pq4_encode`] codes side by side, one per
/// lane (a 256-bit register of `f32`).
pub const PQ4_ENCODE_LANES: usize = 8;

/// 4-bit product quantizer centroids in the order
/// [`KernelTable::pq4_encode`] reads them, from `cent_t` laid out as for
/// [`KernelTable::pq4_table`] (`cent_t[d * 16 + c]`: component `d` of
/// centroid `c`; `16 * dim` values) with `width` components per sub-space.
/// The `G = floor(floor(dim / width) / PQ4_ENCODE_LANES)` whole groups of
/// [`PQ4_ENCODE_LANES`] full sub-spaces come first, lane by lane: value
/// `((g * 16 + c) * width + i) * PQ4_ENCODE_LANES + l` is component `i` of
/// centroid `c` of sub-space `g * PQ4_ENCODE_LANES + l`. The components
/// past them (from `d0 = G * PQ4_ENCODE_LANES * width`) follow as in
/// `cent_t`: value `16 * d + c` for `d >= d0`. `16 * dim` values in all.
///
/// # Panics
/// If `width` is 0 or `cent_t.len()` is not a multiple of 16.
pub fn pq4_encode_layout(cent_t: &[f32], width: usize) -> Vec<f32> {
    assert!(width > 0, "components per sub-space");
    assert_eq!(cent_t.len() % 16, 0, "16 centroid values per component");
    const L: usize = PQ4_ENCODE_LANES;
    let dim = cent_t.len() / 16;
    let groups = (dim / width) / L;
    let mut out = Vec::with_capacity(cent_t.len());
    for g in 0..groups {
        for c in 0..16 {
            for i in 0..width {
                out.extend((0..L).map(|l| cent_t[((g * L + l) * width + i) * 16 + c]));
            }
        }
    }
    out.extend_from_slice(&cent_t[out.len()..]);
    out
}

/// The kernels of one ISA, resolved to function pointers.
///
/// Obtain one with [`KernelTable::for_isa`] or [`active`]; both hand out a
/// table only when the running CPU executes its instructions, which is what
/// makes the safe methods sound.
#[derive(Debug)]
pub struct KernelTable {
    isa: Isa,
    variant: &'static str,
    pub(crate) dot: RawF32,
    pub(crate) l2sq: RawF32,
    pub(crate) cosine: RawF32,
    pub(crate) manhattan: RawF32,
    pub(crate) norm_sq: RawF32Unary,
    pub(crate) normalize: RawF32InPlace,
    pub(crate) hamming: RawHamming,
    pub(crate) dot_batch: RawF32Batch,
    pub(crate) l2sq_batch: RawF32Batch,
    pub(crate) cosine_batch: RawF32Batch,
    pub(crate) manhattan_batch: RawF32Batch,
    pub(crate) hamming_batch: RawHammingBatch,
    pub(crate) dot_gather: RawF32Gather,
    pub(crate) l2sq_gather: RawF32Gather,
    pub(crate) cosine_gather: RawF32Gather,
    pub(crate) manhattan_gather: RawF32Gather,
    pub(crate) widen_u8: RawWidenU8,
    pub(crate) dot_u8: RawDotU8,
    pub(crate) quantize_u8: RawQuantizeU8,
    pub(crate) pq4_table: RawPq4Table,
    pub(crate) pq4_encode: RawPq4Encode,
    pub(crate) project: RawProject,
    pub(crate) fastscan_u4: fastscan::RawFastScan,
    pub(crate) int: int8::IntKernels,
}

/// Which `f32` distance a [`F32Kernel`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum F32Op {
    /// Dot product `sum(a[i] * b[i])`.
    Dot,
    /// Squared Euclidean distance `sum((a[i] - b[i])^2)`.
    L2sq,
    /// Cosine distance `1 - cos(a, b)`, in `[0, 2]`.
    Cosine,
    /// Manhattan (L1) distance `sum(|a[i] - b[i]|)`.
    Manhattan,
}

/// One resolved `f32` kernel (single, batch and gather form), for an index
/// to hold instead of a whole table: calling it is one indirect call, no
/// branch on the ISA or the metric.
#[derive(Clone, Copy)]
pub struct F32Kernel {
    op: F32Op,
    isa: Isa,
    single: RawF32,
    batch: RawF32Batch,
    gather: RawF32Gather,
    /// What a query needs computed once for `gather` (cosine: `q.q`).
    aux: Option<RawF32Unary>,
}

/// A query made ready for [`F32Kernel::eval_gather`] by
/// [`F32Kernel::prepare`]: what the kernel would otherwise recompute from
/// the query for every row (for cosine, the query's own sum of squares) is
/// computed once.
#[derive(Clone, Copy, Debug)]
pub struct PreparedQuery<'q> {
    query: &'q [f32],
    aux: f32,
    op: F32Op,
    isa: Isa,
}

impl PreparedQuery<'_> {
    /// The query.
    pub fn query(&self) -> &[f32] {
        self.query
    }
}

impl fmt::Debug for F32Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("F32Kernel")
            .field("op", &self.op)
            .field("isa", &self.isa)
            .finish()
    }
}

impl F32Kernel {
    /// The distance this kernel computes.
    pub fn op(&self) -> F32Op {
        self.op
    }

    /// The ISA it runs on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The distance between `a` and `b`.
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline(always)]
    pub fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: an F32Kernel is only built from a KernelTable, which exists
        // only for an ISA the CPU runs; both pointers are valid for `a.len()`
        // reads, checked just above.
        unsafe { (self.single)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Prepares `query` for [`F32Kernel::eval_gather`].
    #[inline]
    pub fn prepare<'q>(&self, query: &'q [f32]) -> PreparedQuery<'q> {
        let aux = match self.aux {
            // SAFETY: as in `eval`; the pointer is valid for `query.len()` reads.
            Some(f) => unsafe { f(query.as_ptr(), query.len()) },
            None => 0.0,
        };
        PreparedQuery {
            query,
            aux,
            op: self.op,
            isa: self.isa,
        }
    }

    /// Distances from a prepared query to rows scattered through `base`:
    /// `out[i]` is the distance to `base[rows[i] * stride..][..dim]`, equal
    /// bit for bit to what [`F32Kernel::eval`] returns for that row. For
    /// candidates read from an arena by index: the kernel sees several rows
    /// at once (their latencies overlap, and cosine reduces four rows'
    /// sums together) and the per-query work is done once.
    ///
    /// ```
    /// use swann::kernels::{self, F32Op};
    ///
    /// let cos = kernels::active().f32_kernel(F32Op::Cosine);
    /// let q = [1.0f32, 2.0, 3.0, 4.0];
    /// // Three rows of four: zero, (4, 3, 2, 1), the query itself.
    /// let arena = [0.0f32, 0.0, 0.0, 0.0, 4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 4.0];
    /// let prepared = cos.prepare(&q);
    /// let mut out = [0.0f32; 3];
    /// cos.eval_gather(&prepared, &arena, 4, &[2, 0, 1], &mut out);
    /// assert!(out[0] < 1e-6);
    /// assert_eq!(out[1], 1.0); // against a zero row
    /// assert_eq!(out[2], cos.eval(&q, &arena[4..8]));
    /// ```
    ///
    /// # Panics
    /// If `query` was prepared by a kernel of another metric or ISA, if
    /// `out.len() != rows.len()`, if `stride < dim`, or if a row runs past
    /// the end of `base`.
    #[inline]
    pub fn eval_gather(
        &self,
        query: &PreparedQuery<'_>,
        base: &[f32],
        stride: usize,
        rows: &[u32],
        out: &mut [f32],
    ) {
        assert!(
            query.op == self.op && query.isa == self.isa,
            "the query was prepared by a {:?} kernel on {}, not this {:?} kernel on {}",
            query.op,
            query.isa,
            self.op,
            self.isa
        );
        assert_eq!(rows.len(), out.len(), "one output per row");
        let dim = query.query.len();
        assert!(
            stride >= dim,
            "stride {stride} is shorter than the vector length {dim}"
        );
        if let Some(&last) = rows.iter().max() {
            let end = (last as usize)
                .checked_mul(stride)
                .and_then(|s| s.checked_add(dim))
                .expect("row offset overflows usize");
            assert!(
                end <= base.len(),
                "row {last} ends at {end}, past the {} floats given",
                base.len()
            );
        }
        // SAFETY: as in `eval`; every row `rows[i]` ends within `base`
        // (checked against the largest index above), `rows` and `out` hold
        // `rows.len()` elements, and `aux` came from this kernel's op and ISA.
        unsafe {
            (self.gather)(
                query.query.as_ptr(),
                query.aux,
                base.as_ptr(),
                dim,
                stride,
                rows.as_ptr(),
                rows.len(),
                out.as_mut_ptr(),
            )
        }
    }

    /// Distances from `query` to each of `out.len()` rows of `rows`, row `i`
    /// being `rows[i * stride..i * stride + query.len()]`.
    ///
    /// # Panics
    /// If `stride < query.len()` or `rows` is too short for `out.len()` rows.
    #[inline]
    pub fn eval_batch(&self, query: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
        check_batch(query.len(), rows.len(), stride, out.len());
        // SAFETY: as in `eval`; `check_batch` proved every row in bounds.
        unsafe {
            (self.batch)(
                query.as_ptr(),
                rows.as_ptr(),
                query.len(),
                stride,
                out.len(),
                out.as_mut_ptr(),
            )
        }
    }
}

#[inline]
#[track_caller]
fn check_batch(dim: usize, rows_len: usize, stride: usize, n: usize) {
    assert!(
        stride >= dim,
        "stride {stride} is shorter than the vector length {dim}"
    );
    if n > 0 {
        let need = (n - 1)
            .checked_mul(stride)
            .and_then(|x| x.checked_add(dim))
            .expect("batch size overflows usize");
        assert!(
            rows_len >= need,
            "rows hold {rows_len} elements, {n} rows of stride {stride} need {need}"
        );
    }
}

impl KernelTable {
    /// The table for `isa`, or `None` when this build lacks it or the running
    /// CPU cannot execute it: the best of [`KernelTable::variants`] (the one
    /// using every sub-feature the CPU has). Detection is cached after the
    /// first call.
    pub fn for_isa(isa: Isa) -> Option<&'static KernelTable> {
        Self::variants(isa).first().copied()
    }

    /// Every variant of `isa`'s table the running CPU can execute, best
    /// first: the ISA's base table and those that also use a sub-feature
    /// (AVX-512 VNNI and VPOPCNTDQ, AVX-VNNI, NEON dotprod). Empty when this
    /// build lacks the ISA or the CPU cannot run it. Each variant gives the
    /// same results (bit for bit where the kernel is exact); they exist so
    /// that tests and benchmarks can reach the paths a CPU would not pick.
    pub fn variants(isa: Isa) -> &'static [&'static KernelTable] {
        // Miri interprets the portable code, not the vector intrinsics:
        // under it every dispatch goes to the scalar reference.
        if cfg!(miri) && isa != Isa::Scalar {
            return &[];
        }
        match isa {
            Isa::Scalar => {
                static SCALAR: [&KernelTable; 1] = [&scalar::TABLE];
                &SCALAR
            }
            #[cfg(all(target_arch = "x86_64", feature = "avx2"))]
            Isa::Avx2 => x86::avx2_variants(),
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Isa::Avx512 => x86::avx512_variants(),
            #[cfg(all(target_arch = "aarch64", feature = "neon"))]
            Isa::Neon => aarch64::neon_variants(),
            #[allow(unreachable_patterns)]
            _ => &[],
        }
    }

    /// The variant's name: the ISA and the sub-features its table uses
    /// (`"avx512+vnni+vpopcntdq"`, `"neon+dotprod"`, `"scalar"`).
    pub fn variant(&self) -> &'static str {
        self.variant
    }

    /// Which ISA this table runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The single and batch form of one `f32` distance, for an index to keep.
    pub fn f32_kernel(&'static self, op: F32Op) -> F32Kernel {
        let (single, batch, gather) = match op {
            F32Op::Dot => (self.dot, self.dot_batch, self.dot_gather),
            F32Op::L2sq => (self.l2sq, self.l2sq_batch, self.l2sq_gather),
            F32Op::Cosine => (self.cosine, self.cosine_batch, self.cosine_gather),
            F32Op::Manhattan => (self.manhattan, self.manhattan_batch, self.manhattan_gather),
        };
        F32Kernel {
            op,
            isa: self.isa,
            single,
            batch,
            gather,
            aux: (op == F32Op::Cosine).then_some(self.norm_sq),
        }
    }

    /// Dot product of `a` and `b`.
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: the table exists only for an ISA the CPU runs (see `for_isa`);
        // both pointers are valid for `a.len()` reads.
        unsafe { (self.dot)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Squared Euclidean distance between `a` and `b`.
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline]
    pub fn l2sq(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: as in `dot`.
        unsafe { (self.l2sq)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Cosine distance `1 - a.b / (|a| |b|)`, clamped to `[0, 2]`. When one
    /// vector is zero the distance is 1; when both are, 0.
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline]
    pub fn cosine(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: as in `dot`.
        unsafe { (self.cosine)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Manhattan (L1) distance between `a` and `b`.
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline]
    pub fn manhattan(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: as in `dot`.
        unsafe { (self.manhattan)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Squared Euclidean norm `a.a`.
    #[inline]
    pub fn norm_sq(&self, a: &[f32]) -> f32 {
        // SAFETY: the table's ISA runs here; the pointer is valid for `a.len()` reads.
        unsafe { (self.norm_sq)(a.as_ptr(), a.len()) }
    }

    /// Euclidean norm `|a|`.
    #[inline]
    pub fn norm(&self, a: &[f32]) -> f32 {
        self.norm_sq(a).sqrt()
    }

    /// Scales `a` to unit length in place and returns its former norm. A zero
    /// vector is left as it is (and 0 returned).
    #[inline]
    pub fn normalize(&self, a: &mut [f32]) -> f32 {
        // SAFETY: the table's ISA runs here; the pointer is valid for `a.len()`
        // reads and writes and nothing else aliases it (`&mut`).
        unsafe { (self.normalize)(a.as_mut_ptr(), a.len()) }
    }

    /// Hamming distance between two bit-packed binary vectors (number of differing bits).
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    #[inline]
    pub fn hamming(&self, a: &[u64], b: &[u64]) -> u32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: as in `dot`, for `u64` words.
        unsafe { (self.hamming)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Dot products of `query` with `out.len()` rows of `rows` (row `i` is
    /// `rows[i * stride..][..query.len()]`).
    ///
    /// # Panics
    /// If `stride < query.len()` or `rows` is too short.
    #[inline]
    pub fn dot_batch(&self, query: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
        self.f32_batch(self.dot_batch, query, rows, stride, out)
    }

    /// Squared Euclidean distances from `query` to each row; layout as in [`KernelTable::dot_batch`].
    #[inline]
    pub fn l2sq_batch(&self, query: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
        self.f32_batch(self.l2sq_batch, query, rows, stride, out)
    }

    /// Cosine distances from `query` to each row; layout as in [`KernelTable::dot_batch`].
    #[inline]
    pub fn cosine_batch(&self, query: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
        self.f32_batch(self.cosine_batch, query, rows, stride, out)
    }

    /// Manhattan distances from `query` to each row; layout as in [`KernelTable::dot_batch`].
    #[inline]
    pub fn manhattan_batch(&self, query: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
        self.f32_batch(self.manhattan_batch, query, rows, stride, out)
    }

    #[inline]
    fn f32_batch(
        &self,
        f: RawF32Batch,
        query: &[f32],
        rows: &[f32],
        stride: usize,
        out: &mut [f32],
    ) {
        check_batch(query.len(), rows.len(), stride, out.len());
        // SAFETY: the table's ISA runs here; `check_batch` proved that every
        // row `i < out.len()` lies inside `rows`, and `out` is writable.
        unsafe {
            f(
                query.as_ptr(),
                rows.as_ptr(),
                query.len(),
                stride,
                out.len(),
                out.as_mut_ptr(),
            )
        }
    }

    /// Hamming distances from `query` to each of `out.len()` rows of `rows`
    /// (row `i` is `rows[i * stride..][..query.len()]`, in `u64` words).
    ///
    /// # Panics
    /// If `stride < query.len()` or `rows` is too short.
    #[inline]
    pub fn hamming_batch(&self, query: &[u64], rows: &[u64], stride: usize, out: &mut [u32]) {
        check_batch(query.len(), rows.len(), stride, out.len());
        // SAFETY: as in `f32_batch`, in `u64` words.
        unsafe {
            (self.hamming_batch)(
                query.as_ptr(),
                rows.as_ptr(),
                query.len(),
                stride,
                out.len(),
                out.as_mut_ptr(),
            )
        }
    }

    /// Widens bytes to `f32` (`dst[i] = src[i] as f32`), as `.bvecs` data needs.
    ///
    /// # Panics
    /// If `src.len() != dst.len()`.
    #[inline]
    pub fn widen_u8(&self, src: &[u8], dst: &mut [f32]) {
        assert_eq!(
            src.len(),
            dst.len(),
            "source and destination lengths differ"
        );
        // SAFETY: the table's ISA runs here; `src` has `len` readable bytes and
        // `dst` `len` writable floats, which cannot overlap (`&` and `&mut`).
        unsafe { (self.widen_u8)(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
    }

    /// `sum(q[i] * codes[i] as f32)`, every product and partial sum rounded
    /// to `f32` (no fused multiply-add), in an order of the ISA's choosing.
    ///
    /// # Panics
    /// If `q.len() != codes.len()`.
    #[inline]
    pub fn dot_u8(&self, q: &[f32], codes: &[u8]) -> f32 {
        assert_eq!(q.len(), codes.len(), "query and code lengths differ");
        // SAFETY: the table's ISA runs here; both slices have `len` readable
        // elements.
        unsafe { (self.dot_u8)(q.as_ptr(), codes.as_ptr(), q.len()) }
    }

    /// A query's table for 4-bit product codes of `width` components per
    /// sub-space, with the centroids given by component: `cent_t[d * 16 +
    /// c]` is component `d` of centroid `c` of the sub-space holding `d`
    /// (sub-space `j` holds components `j * width..` up to `width` of them).
    /// Writes `out[j * 16 + c]` = the partial distance of centroid `c` of
    /// sub-space `j` to `q`'s slice (squared L2 with `l2`, else minus the
    /// dot product), summed component by component in order, then shifted
    /// down by the sub-space's minimum, and returns the sum of the minima:
    /// `out` is the table [`quant::Pq4`](crate::quant::Pq4)'s FastScan
    /// bytes are quantized from, every entry `>= 0`. The same bits on every
    /// ISA. Returns NaN when a partial distance is not finite (a query far
    /// outside the centroids' range overflows `f32`).
    ///
    /// # Panics
    /// If `width` is 0, `cent_t.len() != 16 * q.len()` or
    /// `out.len() != 16 * ceil(q.len() / width)`.
    #[inline]
    pub fn pq4_table(
        &self,
        q: &[f32],
        cent_t: &[f32],
        width: usize,
        l2: bool,
        out: &mut [f32],
    ) -> f32 {
        assert!(width > 0, "components per sub-space");
        assert_eq!(
            cent_t.len(),
            16 * q.len(),
            "16 centroid values per component"
        );
        assert_eq!(
            out.len(),
            16 * q.len().div_ceil(width),
            "16 entries per sub-space"
        );
        // SAFETY: the table's ISA runs here; the lengths were checked
        // above, and `out` (`&mut`) overlaps neither input.
        unsafe {
            (self.pq4_table)(
                q.as_ptr(),
                cent_t.as_ptr(),
                q.len(),
                width,
                l2,
                out.as_mut_ptr(),
            )
        }
    }

    /// The 4-bit product code of `v` into `codes`: per sub-space of
    /// `width` components (the last may have fewer), the index of the
    /// nearest of its 16 centroids, by squared L2 summed component by
    /// component in order, the lowest index on ties. `cent_e` holds the
    /// centroids in [`pq4_encode_layout`]'s order (made once per
    /// quantizer from the by-component layout [`KernelTable::pq4_table`]
    /// reads), which lets [`PQ4_ENCODE_LANES`] sub-spaces be coded side by
    /// side, one per lane. The same codes on every ISA, and the same as a
    /// plain loop over the centroids computes.
    ///
    /// # Panics
    /// If `width` is 0, `cent_e.len() != 16 * v.len()` or
    /// `codes.len() != ceil(v.len() / width)`.
    #[inline]
    pub fn pq4_encode(&self, v: &[f32], cent_e: &[f32], width: usize, codes: &mut [u8]) {
        assert!(width > 0, "components per sub-space");
        assert_eq!(
            cent_e.len(),
            16 * v.len(),
            "16 centroid values per component"
        );
        assert_eq!(
            codes.len(),
            v.len().div_ceil(width),
            "one code per sub-space"
        );
        // SAFETY: the table's ISA runs here; the lengths were checked
        // above, and `codes` (`&mut`) overlaps neither input.
        unsafe {
            (self.pq4_encode)(
                v.as_ptr(),
                cent_e.as_ptr(),
                v.len(),
                width,
                codes.as_mut_ptr(),
            )
        }
    }

    /// Codes `x` as bytes on an even grid from its smallest to its largest
    /// value (see [`U8Code`]); `x` must be finite.
    ///
    /// # Panics
    /// If `x.len() != codes.len()`.
    #[inline]
    pub fn quantize_u8(&self, x: &[f32], codes: &mut [u8]) -> U8Code {
        assert_eq!(x.len(), codes.len(), "vector and code lengths differ");
        // SAFETY: the table's ISA runs here; `x` has `len` readable floats and
        // `codes` `len` writable bytes, which cannot overlap (`&` and `&mut`).
        unsafe { (self.quantize_u8)(x.as_ptr(), codes.as_mut_ptr(), x.len()) }
    }

    /// The projection pass: `out[r] = v . direction_r - offsets[r]` for each
    /// of `padded` directions stored transposed in `columns` (entry
    /// `j * padded + r` of the lines seen as `f32`s is component `j` of
    /// direction `r`), summed in the fixed order [`project`] documents, so
    /// every ISA gives the same bits.
    ///
    /// # Panics
    /// If `padded` is not a multiple of [`project::PAD`], or the lengths do
    /// not match (`columns`: `v.len() * padded` floats; `offsets` and `out`:
    /// `padded`).
    #[inline]
    pub fn project(&self, columns: &[project::Line], offsets: &[f32], v: &[f32], out: &mut [f32]) {
        let padded = offsets.len();
        assert_eq!(padded % project::PAD, 0, "padded direction count");
        assert_eq!(out.len(), padded, "output length");
        let columns: &[f32] = bytemuck::cast_slice(columns);
        assert_eq!(columns.len(), v.len() * padded, "columns length");
        // SAFETY: the table's ISA runs here (tables are handed out only then);
        // the pass indexes its slices with bounds checks.
        unsafe { (self.project)(columns, offsets, padded, v, out) }
    }
}

static ACTIVE: AtomicPtr<KernelTable> = AtomicPtr::new(std::ptr::null_mut());

/// The table the convenience functions and new indexes use: the one pinned
/// with [`pin`], else the one `SWANN_ISA` names, else the detected one.
#[inline]
pub fn active() -> &'static KernelTable {
    let ptr = ACTIVE.load(Ordering::Acquire);
    if ptr.is_null() {
        return init_active();
    }
    // SAFETY: ACTIVE only ever holds null or a pointer made from a
    // `&'static KernelTable` (in `init_active` and `pin`).
    unsafe { &*ptr }
}

#[cold]
fn init_active() -> &'static KernelTable {
    let table = match std::env::var("SWANN_ISA") {
        Ok(name) if !name.trim().is_empty() => match table_for_name(&name) {
            Ok(table) => table,
            Err(err) => {
                eprintln!(
                    "swann: ignoring SWANN_ISA={name:?}: {err}; using {}",
                    Isa::detected()
                );
                detected_table()
            }
        },
        _ => detected_table(),
    };
    // Another thread may have raced us (or called `pin`); keep whatever got there first.
    match ACTIVE.compare_exchange(
        std::ptr::null_mut(),
        table as *const KernelTable as *mut KernelTable,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => table,
        // SAFETY: a non-null value was stored from a `&'static KernelTable`.
        Err(existing) => unsafe { &*existing },
    }
}

fn detected_table() -> &'static KernelTable {
    KernelTable::for_isa(Isa::detected()).unwrap_or(&scalar::TABLE)
}

fn table_for_name(name: &str) -> Result<&'static KernelTable, IsaError> {
    let isa: Isa = name.parse()?;
    lookup(isa)
}

fn lookup(isa: Isa) -> Result<&'static KernelTable, IsaError> {
    if !isa.is_compiled() {
        return Err(IsaError::NotCompiled(isa));
    }
    KernelTable::for_isa(isa).ok_or(IsaError::NotSupported(isa))
}

/// Pins the ISA that [`active`] returns from now on (indexes created earlier
/// keep the table they resolved). Returns the table, or an error when this
/// build or CPU cannot run `isa`, in which case nothing changes.
///
/// # Errors
/// [`IsaError::NotCompiled`] when this build does not include `isa`;
/// [`IsaError::NotSupported`] when the running CPU cannot execute it.
pub fn pin(isa: Isa) -> Result<&'static KernelTable, IsaError> {
    let table = lookup(isa)?;
    ACTIVE.store(
        table as *const KernelTable as *mut KernelTable,
        Ordering::Release,
    );
    Ok(table)
}

/// Dot product with the [`active`] table. Panics if the lengths differ.
///
/// ```
/// let d = swann::kernels::dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
/// assert_eq!(d, 32.0);
/// ```
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    active().dot(a, b)
}

/// Squared Euclidean distance with the [`active`] table. Panics if the lengths differ.
///
/// ```
/// assert_eq!(swann::kernels::l2sq(&[1.0, 2.0], &[4.0, 6.0]), 25.0);
/// ```
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    active().l2sq(a, b)
}

/// Cosine distance `1 - cos(a, b)` with the [`active`] table. Panics if the lengths differ.
///
/// ```
/// let d = swann::kernels::cosine(&[1.0, 0.0], &[0.0, 2.0]);
/// assert!((d - 1.0).abs() < 1e-6);
/// ```
#[inline]
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    active().cosine(a, b)
}

/// Manhattan distance with the [`active`] table. Panics if the lengths differ.
///
/// ```
/// assert_eq!(swann::kernels::manhattan(&[1.0, -2.0], &[0.0, 2.0]), 5.0);
/// ```
#[inline]
pub fn manhattan(a: &[f32], b: &[f32]) -> f32 {
    active().manhattan(a, b)
}

/// Hamming distance of bit-packed vectors with the [`active`] table. Panics if the lengths differ.
///
/// ```
/// assert_eq!(swann::kernels::hamming(&[0b1011], &[0b0001]), 2);
/// ```
#[inline]
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    active().hamming(a, b)
}

/// Euclidean norm with the [`active`] table.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    active().norm(a)
}

/// Scales `a` to unit length in place with the [`active`] table; returns the former norm.
#[inline]
pub fn normalize(a: &mut [f32]) -> f32 {
    active().normalize(a)
}
