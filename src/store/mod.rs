//! Bytes: 64-byte-aligned storage for vectors and graph records, and the
//! file format every index is saved in.
//!
//! - [`AlignedVec`]: a growable buffer whose start is 64-byte aligned.
//! - [`FileWriter`], [`IndexFile`]: the versioned, checksummed container
//!   (header, section table, 64-byte-aligned sections) shared by every index
//!   kind; `docs/FORMAT.md` describes it byte by byte.

mod aligned;
mod arena;
#[doc(hidden)]
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault;
pub mod format;
mod reader;
mod slab;
mod writer;

pub use aligned::AlignedVec;
pub use arena::{count as link_count, Line, LinkArena, RowArena};
pub use format::{ChecksumTarget, ElemType, FormatError, Header, IndexKind, SectionEntry};
#[cfg(feature = "forest")]
pub(crate) use reader::{map_mut, map_readonly};
pub use reader::{Bytes, IndexFile, OpenOptions};
pub use slab::{FileSafe, Slab};
#[cfg(any(feature = "forest", feature = "sharded"))]
pub(crate) use writer::write_bytes_atomic;
pub use writer::FileWriter;

/// Alignment of every arena and row start: one cache line, and the width of
/// an AVX-512 register.
pub const ALIGN: usize = 64;

/// Rounds `n` elements of `size` bytes up so a row of them fills whole cache lines.
pub const fn padded_len(n: usize, size: usize) -> usize {
    let bytes = n * size;
    bytes.div_ceil(ALIGN) * ALIGN / size
}
