//! 4-bit FastScan: the lookup-table accumulation a product (or any 4-bit)
//! quantizer searches with.
//!
//! A vector's code is `m` sub-codes of 4 bits (values `0..16`), one per
//! sub-space. A query gives a lookup table of `m x 16` bytes, `lut[j * 16 +
//! c]` being its (quantized) distance term for sub-code `c` in sub-space `j`,
//! and the estimate for a vector is `sum over j < m of lut[j * 16 + code_j]`,
//! exact in integers. [`KernelTable::fastscan_u4`] computes it for 32
//! vectors at once, in registers: each 16-entry table fits one 128-bit
//! lane, so a byte shuffle (`vpshufb`, `tbl`) looks up 16 (or 32, 64)
//! sub-codes in one instruction.
//!
//! # Layout
//!
//! The codes of 32 vectors form a *block* of `m * 16` bytes
//! ([`block_bytes`]). For each sub-space `j` the block holds 16 bytes at
//! `j * 16`, byte `i` (for `i < 16`) being
//!
//! ```text
//! code_j(vector i) | code_j(vector i + 16) << 4
//! ```
//!
//! so a block is the `m` sub-spaces one after the other, each one 16-byte
//! register of 32 nibbles. This is the order the shuffles need: the low
//! nibbles (`& 0x0f`) index vectors `0..16`, the high nibbles (`>> 4`)
//! vectors `16..32`, and consecutive sub-spaces fill consecutive 128-bit
//! lanes of a wider register, in the same order as their tables in `lut`.
//! [`pack_blocks`] builds blocks from rows of codes (one sub-code per byte),
//! padding the last block with vectors whose codes are all 0;
//! [`code`] and [`unpack_blocks`] read them back.
//!
//! An index stores a node's (up to) 32 neighbours as one block and calls
//! the kernel on consecutive blocks; the padding vectors' results are
//! `sum over j of lut[j * 16]` and are the caller's to ignore.
//!
//! # Exactness and the flush
//!
//! Every ISA returns the scalar reference's sums, bit for bit, for any
//! `1 <= m <=` [`MAX_SUBSPACES`]. The vector kernels add looked-up bytes in
//! 16-bit lanes and flush them into 32-bit totals after at most
//! [`FLUSH`] = 256 sub-spaces: a vector's partial sum is then at most
//! `256 * 255 = 65,280 < 65,536`, so it is exact in 16 bits (the x86
//! kernels let a lane holding two vectors' bytes wrap and recover each sum
//! modulo `2^16`, which is exact for the same reason). The 32-bit totals
//! hold `255 * MAX_SUBSPACES < 2^32`.
//!
//! | ISA | per step | lookup | widening |
//! |---|---|---|---|
//! | scalar | one sub-space | indexing | `u32` adds |
//! | AVX2 | two sub-spaces (one per 128-bit lane) | `vpshufb` on low / high nibbles (`vpand`, `vpsrlw`) | even and odd bytes: `vpaddw` of the bytes as 16-bit lanes and of them shifted down by 8 (`vpsrlw`), the even sums recovered at the flush; the lanes' halves added in 32 bits there |
//! | AVX-512 (BW) | four sub-spaces, a masked load for the last one to three | `vpshufb` on 512 bits | as AVX2, 512-bit; the four 128-bit lanes added in 32 bits at the flush |
//! | NEON | one sub-space | `tbl` (`vqtbl1q_u8`) | `uaddw` / `uaddw2` (`vaddw_u8`, `vaddw_high_u8`) |
//!
//! Unpacking the bytes against zero (`vpunpck[lh]bw`) instead of the
//! even/odd split took 8-18% longer per block (m = 32 to 96) on AVX2 and
//! AVX-512 (cpu_report, Emerald Rapids): both forms are
//! bound by the shuffle port, which the unpacks share with `vpshufb`. A
//! `vpermb` (AVX-512 VBMI) variant would look up 64-entry tables, which 4-bit
//! codes do not fill; it does the same work as `vpshufb` here, so there is
//! none.
//!
//! The per-block bodies are written per ISA; the batch entry over
//! consecutive blocks is generated once for all of them
//! (`fastscan_entry!`), and each ISA's [`KernelTable`] carries its own.

use super::KernelTable;

/// Vectors per block.
pub const BLOCK: usize = 32;

/// The most sub-spaces the kernel takes: `255 * 2^24 < 2^32`, so a total
/// fits `u32`.
pub const MAX_SUBSPACES: usize = 1 << 24;

/// Sub-spaces the vector kernels add in 16-bit lanes before flushing them to
/// 32 bits: `FLUSH * 255 = 65,280 < 65,536`.
pub const FLUSH: usize = 256;

/// Bytes of one block of `m` sub-spaces: `m * 16`.
#[inline]
pub const fn block_bytes(m: usize) -> usize {
    m * 16
}

/// Codes that [`pack_blocks`] cannot pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// `m` is zero or above [`MAX_SUBSPACES`].
    #[error("{0} sub-spaces; FastScan takes 1 to {max}", max = MAX_SUBSPACES)]
    SubspaceCount(usize),
    /// The code slice is not a whole number of rows of `m` sub-codes.
    #[error("{len} codes are not a whole number of rows of {m}")]
    Length {
        /// Codes given.
        len: usize,
        /// Sub-codes per row.
        m: usize,
    },
    /// A sub-code does not fit 4 bits.
    #[error("row {row}, sub-space {subspace}: code {code} does not fit 4 bits")]
    CodeOutOfRange {
        /// The row.
        row: usize,
        /// The sub-space.
        subspace: usize,
        /// The code found (16 or more).
        code: u8,
    },
}

fn check_m(m: usize) -> Result<(), PackError> {
    if m == 0 || m > MAX_SUBSPACES {
        return Err(PackError::SubspaceCount(m));
    }
    Ok(())
}

/// Packs `n = codes.len() / m` rows of `m` sub-codes (one per byte, row `r`
/// at `codes[r * m..][..m]`) into `ceil(n / 32)` blocks (see the
/// [layout](self#layout)), appended to `out`; the last block is padded with
/// vectors whose codes are all 0. Nothing is appended on error.
///
/// ```
/// use swann::kernels::fastscan;
///
/// // Three vectors of two sub-codes.
/// let codes = [1u8, 2, 3, 4, 15, 0];
/// let mut blocks = Vec::new();
/// fastscan::pack_blocks(&codes, 2, &mut blocks).unwrap();
/// assert_eq!(blocks.len(), fastscan::block_bytes(2));
/// assert_eq!(fastscan::code(&blocks, 2, 2, 0), 15);
/// assert_eq!(fastscan::unpack_blocks(&blocks, 2, 3), codes);
/// ```
///
/// # Errors
/// [`PackError::SubspaceCount`] when `m` is 0 or above [`MAX_SUBSPACES`],
/// [`PackError::Length`] when `codes.len()` is not a multiple of `m`, and
/// [`PackError::CodeOutOfRange`] for the first sub-code of 16 or more.
pub fn pack_blocks(codes: &[u8], m: usize, out: &mut Vec<u8>) -> Result<(), PackError> {
    check_m(m)?;
    if !codes.len().is_multiple_of(m) {
        return Err(PackError::Length {
            len: codes.len(),
            m,
        });
    }
    if let Some(at) = codes.iter().position(|&c| c >= 16) {
        return Err(PackError::CodeOutOfRange {
            row: at / m,
            subspace: at % m,
            code: codes[at],
        });
    }
    let n = codes.len() / m;
    let blocks = n.div_ceil(BLOCK);
    let start = out.len();
    out.resize(start + blocks * block_bytes(m), 0);
    for (r, row) in codes.chunks_exact(m).enumerate() {
        put_codes(&mut out[start..], m, r, row);
    }
    Ok(())
}

/// ORs vector `vector`'s sub-codes (the low four bits of each of `codes`,
/// `m` of them) into blocks of `m` sub-spaces where its nibbles are zero:
/// [`pack_blocks`]'s write of one vector, for blocks filled in place.
///
/// # Panics
/// If `codes.len() != m` or the vector's block lies past the end of
/// `blocks`.
#[inline]
pub fn put_codes(blocks: &mut [u8], m: usize, vector: usize, codes: &[u8]) {
    assert_eq!(codes.len(), m, "one code per sub-space");
    let block = &mut blocks[(vector / BLOCK) * block_bytes(m)..][..block_bytes(m)];
    let i = vector % BLOCK;
    let (lane, shift) = (i % 16, 4 * (i / 16));
    for (dst, &c) in block.chunks_exact_mut(16).zip(codes) {
        dst[lane] |= (c & 0x0f) << shift;
    }
}

/// Vector `vector`'s `m` sub-codes from blocks of `m` sub-spaces into
/// `out`: [`code`] for each sub-space.
///
/// # Panics
/// If `out.len() != m` or the vector's block lies past the end of
/// `blocks`.
#[inline]
pub fn get_codes(blocks: &[u8], m: usize, vector: usize, out: &mut [u8]) {
    assert_eq!(out.len(), m, "one code per sub-space");
    let block = &blocks[(vector / BLOCK) * block_bytes(m)..][..block_bytes(m)];
    let i = vector % BLOCK;
    let (lane, shift) = (i % 16, 4 * (i / 16));
    for (c, src) in out.iter_mut().zip(block.chunks_exact(16)) {
        *c = (src[lane] >> shift) & 0x0f;
    }
}

/// Sub-code `j` of vector `vector` (counted from the first block) in
/// blocks of `m` sub-spaces.
///
/// # Panics
/// If `j >= m` or the vector's block lies past the end of `blocks`.
#[inline]
pub fn code(blocks: &[u8], m: usize, vector: usize, j: usize) -> u8 {
    assert!(j < m, "sub-space {j} of {m}");
    let block = &blocks[(vector / BLOCK) * block_bytes(m)..][..block_bytes(m)];
    let i = vector % BLOCK;
    (block[j * 16 + i % 16] >> (4 * (i / 16))) & 0x0f
}

/// The first `n` rows of `m` sub-codes back from blocks: the inverse of
/// [`pack_blocks`] (padding vectors past `n` are left out).
///
/// # Panics
/// If `m == 0` or `blocks` holds fewer than `n` vectors' blocks.
pub fn unpack_blocks(blocks: &[u8], m: usize, n: usize) -> Vec<u8> {
    assert!(m > 0, "no sub-spaces");
    (0..n)
        .flat_map(|v| (0..m).map(move |j| code(blocks, m, v, j)))
        .collect()
}

/// Raw batch kernel: `lut` has `m * 16` readable bytes, `blocks` `nblocks`
/// consecutive blocks of `m * 16` readable bytes, `out` `nblocks * 32`
/// writable totals; `1 <= m <= MAX_SUBSPACES`.
pub(crate) type RawFastScan =
    unsafe fn(lut: *const u8, blocks: *const u8, m: usize, nblocks: usize, out: *mut u32);

/// Defines the [`RawFastScan`] entry `$name` over the per-block body
/// `$body(lut, block, m, out)` (one block's 32 totals into `out`), which it
/// calls once per block inside one function with the attributes given (the
/// ISA's `#[target_feature]`), so the body inlines. One definition for
/// every ISA.
macro_rules! fastscan_entry {
    ($(#[$attr:meta])* $name:ident, $body:path) => {
        /// # Safety
        /// `RawFastScan` contract; the table's ISA available.
        $(#[$attr])*
        pub(crate) unsafe fn $name(
            lut: *const u8,
            blocks: *const u8,
            m: usize,
            nblocks: usize,
            out: *mut u32,
        ) {
            for b in 0..nblocks {
                // SAFETY: block `b < nblocks` has `m * 16` readable bytes at
                // `blocks + b * m * 16`, `out` has 32 writable totals at
                // `b * 32`, and `lut` has `m * 16` readable bytes (caller
                // contract); the table holding this entry is handed out only
                // where its ISA runs.
                unsafe {
                    $body(
                        lut,
                        blocks.add(b * $crate::kernels::fastscan::block_bytes(m)),
                        m,
                        out.add(b * $crate::kernels::fastscan::BLOCK),
                    )
                }
            }
        }
    };
}

/// The scalar reference body.
pub(crate) mod reference {
    /// One block's 32 sums, in `u32` (exact for `m <= MAX_SUBSPACES`).
    ///
    /// # Safety
    /// `lut` and `block` have `m * 16` readable bytes, `out` 32 writable
    /// totals.
    #[inline(always)]
    pub(crate) unsafe fn fastscan_block(lut: *const u8, block: *const u8, m: usize, out: *mut u32) {
        // SAFETY: caller contract.
        let (lut, block, out) = unsafe {
            (
                super::super::scalar::slice(lut, m * 16),
                super::super::scalar::slice(block, m * 16),
                std::slice::from_raw_parts_mut(out, super::BLOCK),
            )
        };
        let mut sums = [0u32; super::BLOCK];
        for (table, codes) in lut.chunks_exact(16).zip(block.chunks_exact(16)) {
            for (i, &c) in codes.iter().enumerate() {
                sums[i] += u32::from(table[usize::from(c & 0x0f)]);
                sums[i + 16] += u32::from(table[usize::from(c >> 4)]);
            }
        }
        out.copy_from_slice(&sums);
    }
}

impl KernelTable {
    /// The FastScan sums of consecutive blocks (see the
    /// [module documentation](self)): `out[b * 32 + i]` is `sum over j < m
    /// of lut[j * 16 + code_j]` for vector `i` of block `b`. Exact, and the
    /// same integers on every ISA.
    ///
    /// ```
    /// use swann::kernels::{self, fastscan};
    ///
    /// // Two sub-spaces; the table gives code c the value c (+ 100 in the second).
    /// let lut: Vec<u8> = (0..16).chain(100..116).collect();
    /// let mut blocks = Vec::new();
    /// fastscan::pack_blocks(&[3, 5, 15, 0], 2, &mut blocks).unwrap();
    /// let mut out = [0u32; 32];
    /// kernels::active().fastscan_u4(&lut, &blocks, 2, &mut out);
    /// assert_eq!(out[..2], [3 + 105, 15 + 100]);
    /// assert_eq!(out[2], 100); // padding: codes 0
    /// ```
    ///
    /// # Panics
    /// If `m` is 0 or above [`MAX_SUBSPACES`], `lut.len() != m * 16`,
    /// `blocks.len()` is not a multiple of `m * 16`, or `out.len()` is not
    /// 32 per block.
    #[inline]
    pub fn fastscan_u4(&self, lut: &[u8], blocks: &[u8], m: usize, out: &mut [u32]) {
        assert!(
            (1..=MAX_SUBSPACES).contains(&m),
            "{m} sub-spaces; FastScan takes 1 to {MAX_SUBSPACES}"
        );
        assert_eq!(lut.len(), block_bytes(m), "lookup table length (m * 16)");
        assert!(
            blocks.len().is_multiple_of(block_bytes(m)),
            "blocks length {} is not a multiple of m * 16 = {}",
            blocks.len(),
            block_bytes(m)
        );
        let nblocks = blocks.len() / block_bytes(m);
        assert_eq!(out.len(), nblocks * BLOCK, "output length (32 per block)");
        // SAFETY: the table's ISA runs here (tables are handed out only
        // then); `lut` has `m * 16` bytes, `blocks` `nblocks` blocks of
        // `m * 16` and `out` `32 * nblocks` slots, checked above, with
        // `1 <= m <= MAX_SUBSPACES`.
        unsafe { (self.fastscan_u4)(lut.as_ptr(), blocks.as_ptr(), m, nblocks, out.as_mut_ptr()) }
    }
}
