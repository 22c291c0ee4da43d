//! The forest's sections in swann's shared index file (`crate::store`).
//!
//! A forest is one image of bytes, laid out exactly as
//! [`FileWriter`](crate::store::FileWriter) lays out its file, so the image
//! in memory, the saved file, a memory map of it and a file built in place
//! (`on_disk_build`) are the same bytes:
//!
//! ```text
//! 0            store header (192 bytes) and section table (5 entries)
//! DATA_START   VECTORS  n_items rows of row_words 4-byte words (64-byte multiple)
//!              NORMS    n_items f32 squared norms (angular only, else empty)
//!              PRESENT  ceil(n_items / 64) u64 words, bit i set when item i exists
//!              TREES    one block per tree, each starting on 64 bytes:
//!                         planes  n_splits rows of plane_words f32 (normal vectors)
//!                         metas   n_splits x [bias or bit index, left ref, right ref]
//!                         leaves  [count, ids...] records
//!              DIR      n_trees TreeEntry records
//! ```
//!
//! Header slots: `dim`, `n_items`, `seed`, and `params[0]` = row words,
//! `params[1]` = leaf size, `params[2]` = number of trees.
//!
//! Every section starts on a 64-byte boundary, so a mapped file casts
//! straight to `&[f32]`/`&[u32]`/`&[u64]` with no copy. A node reference is
//! a `u32`: with the top bit set it is the word offset of a leaf record in
//! the tree's leaves, otherwise the index of a split. Splits are numbered so
//! that a split's children always have larger indices than the split
//! itself: a search checks that as it goes, which keeps a corrupt file from
//! sending it round a cycle.
//!
//! The store checks the container (header checksum, section bounds and
//! order) on open and the section checksums on `load` or `verify`; this
//! module checks what the sections must say about each other, and every
//! tree's block bounds, in O(n_trees).

use bytemuck::{Pod, Zeroable};

use crate::store::format::{HEADER_LEN, SECTION_ENTRY_LEN};
use crate::store::{ElemType, Header, IndexFile, IndexKind};
use crate::{Error, Metric, Result};

/// Section ids, in file order.
pub(crate) const VECTORS: u32 = 1;
pub(crate) const NORMS: u32 = 2;
pub(crate) const PRESENT: u32 = 3;
pub(crate) const TREES: u32 = 4;
pub(crate) const DIR: u32 = 5;
pub(crate) const N_SECTIONS: usize = 5;
/// Where the first section starts: after the header and a five-entry table,
/// as the store's writer places it.
pub(crate) const DATA_START: usize =
    (HEADER_LEN + N_SECTIONS * SECTION_ENTRY_LEN).div_ceil(ALIGN) * ALIGN;
/// Alignment of every section and tree block.
pub(crate) const ALIGN: usize = crate::store::ALIGN;
/// Tag bit of a leaf reference.
pub(crate) const LEAF: u32 = 0x8000_0000;

/// Offset and length, in bytes, of one section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Section {
    pub offset: u64,
    pub len: u64,
}

impl Section {
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..(self.offset + self.len) as usize
    }
}

/// The element type a metric stores.
pub(crate) fn elem_type(metric: Metric) -> ElemType {
    if metric == Metric::Hamming {
        ElemType::U64Bits
    } else {
        ElemType::F32
    }
}

/// Where one tree's block lies and where its root is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct TreeEntry {
    /// Byte offset of the block in the file (64-byte aligned).
    pub base: u64,
    pub n_splits: u32,
    pub leaf_words: u32,
    pub root: u32,
    pub _pad: u32,
}

/// A tree's arrays as absolute 4-byte word offsets into the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TreeLayout {
    pub planes: usize,
    pub metas: usize,
    pub leaves: usize,
    pub n_splits: u32,
    pub leaf_words: u32,
    pub root: u32,
}

impl TreeLayout {
    pub(crate) fn new(e: &TreeEntry, plane_words: usize) -> Self {
        let planes = e.base as usize / 4;
        let metas = planes + e.n_splits as usize * plane_words;
        let leaves = metas + 3 * e.n_splits as usize;
        TreeLayout {
            planes,
            metas,
            leaves,
            n_splits: e.n_splits,
            leaf_words: e.leaf_words,
            root: e.root,
        }
    }

    /// One past the last word of the block.
    pub(crate) fn end(&self) -> usize {
        self.leaves + self.leaf_words as usize
    }
}

/// Rounds up to [`ALIGN`].
pub(crate) fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

pub(crate) fn corrupt(path: &str, reason: impl Into<String>) -> Error {
    Error::BadDataFile {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// What a file says, checked.
pub(crate) struct Parsed {
    pub header: Header,
    pub geometry: super::Geometry,
    pub leaf_max: usize,
    pub vectors: Section,
    pub norms: Section,
    pub present: Section,
    pub trees: Vec<TreeLayout>,
}

/// Checks a forest file's header and sections against each other; `path`
/// is only for messages.
pub(crate) fn parse(file: &IndexFile, path: &str) -> Result<Parsed> {
    let bad = |r: &str| corrupt(path, format!("not a valid swann forest file: {r}"));
    file.expect_kind(IndexKind::Forest)?;
    let h = file.header().clone();
    let metric = h.metric;
    let geometry = super::Geometry::of_file(h.dim as usize, metric, h.params[0])
        .map_err(|e| bad(&format!("bad dimension, metric or row width: {e}")))?;
    if h.elem_type != elem_type(metric) {
        return Err(bad("element type does not fit the metric"));
    }
    let section = |id: u32| -> Result<Section> {
        let e = file
            .entry(id)
            .ok_or_else(|| bad(&format!("section {id} is missing")))?;
        Ok(Section {
            offset: e.offset,
            len: e.len,
        })
    };
    let (vectors, norms, present, trees_s, dir) = (
        section(VECTORS)?,
        section(NORMS)?,
        section(PRESENT)?,
        section(TREES)?,
        section(DIR)?,
    );
    let n = h.n_items;
    let (row_words, leaf_max, n_trees) = (h.params[0], h.params[1], h.params[2]);
    let checks = [
        ("row width", row_words == geometry.row_words as u64),
        ("leaf size", (1..LEAF as u64).contains(&leaf_max)),
        (
            "vectors length",
            n.checked_mul(row_words * 4) == Some(vectors.len),
        ),
        (
            "norms length",
            norms.len == if metric == Metric::Angular { n * 4 } else { 0 },
        ),
        ("present length", present.len == n.div_ceil(64) * 8),
        (
            "directory length",
            n_trees.checked_mul(std::mem::size_of::<TreeEntry>() as u64) == Some(dir.len),
        ),
        ("item count", n <= u32::MAX as u64 + 1),
    ];
    for (what, ok) in checks {
        if !ok {
            return Err(bad(&format!("inconsistent {what}")));
        }
    }
    let bytes: &[u8] = file.bytes();
    let entries: Vec<TreeEntry> = bytes[dir.range()]
        .chunks_exact(std::mem::size_of::<TreeEntry>())
        .map(bytemuck::pod_read_unaligned)
        .collect();
    let t_start = trees_s.offset as usize / 4;
    let t_end = (trees_s.offset + trees_s.len) as usize / 4;
    let mut trees = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let layout = TreeLayout::new(e, geometry.plane_words);
        let in_bounds = e.base.is_multiple_of(ALIGN as u64)
            && layout.planes >= t_start
            && (e.n_splits as u64) < LEAF as u64
            && (e.leaf_words as u64) < LEAF as u64
            && layout.end() <= t_end;
        let root_ok = if e.root & LEAF != 0 {
            (e.root & !LEAF) < e.leaf_words
        } else {
            e.root < e.n_splits
        };
        if !in_bounds || !root_ok {
            return Err(bad(&format!("tree {i} lies outside the trees section")));
        }
        trees.push(layout);
    }
    Ok(Parsed {
        header: h,
        geometry,
        leaf_max: leaf_max as usize,
        vectors,
        norms,
        present,
        trees,
    })
}
