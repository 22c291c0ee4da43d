//! Bytes: 64-byte-aligned storage for vectors and graph records.

mod aligned;
mod arena;

pub use aligned::AlignedVec;
pub use arena::{count as link_count, Line, LinkArena, RowArena};

/// Alignment of every arena and row start: one cache line, and the width of
/// an AVX-512 register.
pub const ALIGN: usize = 64;

/// Rounds `n` elements of `size` bytes up so a row of them fills whole cache lines.
pub const fn padded_len(n: usize, size: usize) -> usize {
    let bytes = n * size;
    bytes.div_ceil(ALIGN) * ALIGN / size
}
