//! The forest's file layout: one image, the same bytes in memory, on disk
//! and in a memory map.
//!
//! ```text
//! offset 0     Header (160 bytes), zero padding up to DATA_START (4096)
//! DATA_START   vectors   n_items rows of row_words 4-byte words (64-byte multiple)
//!              norms     n_items f32 squared norms (angular only, else empty)
//!              present   ceil(n_items / 64) u64 words, bit i set when item i exists
//!              trees     one block per tree, each starting on 64 bytes:
//!                          planes  n_splits rows of plane_words f32 (normal vectors)
//!                          metas   n_splits x [bias or bit index, left ref, right ref]
//!                          leaves  [count, ids...] records
//!              dir       n_trees TreeEntry records
//! ```
//!
//! Every section starts on a 64-byte boundary, so a mapped file casts
//! straight to `&[f32]`/`&[u32]`/`&[u64]` with no copy. A node reference is
//! a `u32`: with the top bit set it is the word offset of a leaf record in
//! the tree's leaves, otherwise the index of a split. Splits are stored in
//! preorder, so a split's children always have larger indices than the split
//! itself: a search checks that as it goes, which keeps a corrupt file from
//! sending it round a cycle.
//!
//! Opening checks the header (magic, version, byte order, metric, sizes),
//! its checksum, every section's bounds and alignment, and every tree's
//! block bounds, in O(n_trees). The checksum of the payload is checked by
//! `load` (which reads every byte anyway) and by `open_mmap` on request.

use bytemuck::{Pod, Zeroable};

use crate::{Error, Metric, Result};

/// First bytes of a forest file.
pub(crate) const MAGIC: [u8; 8] = *b"SWANNRPF";
/// The version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Written native-endian; reads back differently on a machine of the other order.
pub(crate) const ENDIAN: u32 = 0x0102_0304;
/// Where the payload starts (the header sits in a page of its own).
pub(crate) const DATA_START: usize = 4096;
/// Alignment of every section and tree block.
pub(crate) const ALIGN: usize = crate::store::ALIGN;
/// Tag bit of a leaf reference.
pub(crate) const LEAF: u32 = 0x8000_0000;

/// Offset and length, in bytes, of one section.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub(crate) struct Section {
    pub offset: u64,
    pub len: u64,
}

impl Section {
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..(self.offset + self.len) as usize
    }
}

/// The fixed header at offset 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub endian: u32,
    pub metric: u32,
    pub dim: u32,
    pub row_words: u32,
    pub leaf_max: u32,
    pub n_items: u64,
    pub n_trees: u64,
    pub seed: u64,
    pub vectors: Section,
    pub norms: Section,
    pub present: Section,
    pub trees: Section,
    pub dir: Section,
    pub file_len: u64,
    pub payload_hash: u64,
    pub header_hash: u64,
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

pub(crate) fn metric_code(metric: Metric) -> u32 {
    match metric {
        Metric::L2 => 1,
        Metric::InnerProduct => 2,
        Metric::Cosine => 3,
        Metric::Angular => 4,
        Metric::Euclidean => 5,
        Metric::Manhattan => 6,
        Metric::Hamming => 7,
        Metric::Dot => 8,
    }
}

pub(crate) fn metric_from_code(code: u32) -> Option<Metric> {
    Metric::ALL.into_iter().find(|&m| metric_code(m) == code)
}

/// A fast 64-bit checksum over whole bytes: four independent lanes of
/// xor-multiply-rotate over little-endian words, then a SplitMix finalizer.
/// It only needs to catch corruption, not resist an adversary.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    const P: u64 = 0x9E37_79B9_7F4A_7C15;
    const Q: u64 = 0xC2B2_AE3D_27D4_EB4F;
    let mut h = [P, P ^ Q, P.rotate_left(17), Q];
    let chunks = bytes.chunks_exact(32);
    let tail = chunks.remainder();
    for c in chunks {
        for (lane, w) in h.iter_mut().zip(c.chunks_exact(8)) {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            *lane = (*lane ^ w).wrapping_mul(Q).rotate_left(31);
        }
    }
    for (i, &b) in tail.iter().enumerate() {
        h[i % 4] = (h[i % 4] ^ b as u64).wrapping_mul(Q).rotate_left(31);
    }
    let mut x = (bytes.len() as u64).wrapping_mul(P);
    for lane in h {
        x = (x ^ lane).wrapping_mul(P);
        x ^= x >> 29;
    }
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The header hash: the header with `header_hash` zeroed, then the directory.
pub(crate) fn header_hash(h: &Header, dir: &[u8]) -> u64 {
    let mut copy = *h;
    copy.header_hash = 0;
    let mut bytes = bytemuck::bytes_of(&copy).to_vec();
    bytes.extend_from_slice(dir);
    checksum(&bytes)
}

pub(crate) fn corrupt(path: &str, reason: impl Into<String>) -> Error {
    Error::BadDataFile {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// What a file's header says, checked.
pub(crate) struct Parsed {
    pub header: Header,
    pub metric: Metric,
    pub trees: Vec<TreeLayout>,
}

/// Validates everything but the payload checksum; `path` is only for messages.
pub(crate) fn parse(bytes: &[u8], path: &str) -> Result<Parsed> {
    let bad = |r: &str| corrupt(path, format!("not a valid swann forest file: {r}"));
    let hsize = std::mem::size_of::<Header>();
    if bytes.len() < DATA_START {
        return Err(bad("too short for a header"));
    }
    let h: Header = bytemuck::pod_read_unaligned(&bytes[..hsize]);
    if h.magic != MAGIC {
        return Err(bad("wrong magic bytes"));
    }
    if h.endian != ENDIAN {
        return Err(bad("written on a machine of the other byte order"));
    }
    if h.version != VERSION {
        return Err(bad(&format!(
            "format version {} (this build reads {VERSION})",
            h.version
        )));
    }
    if h.file_len != bytes.len() as u64 || !h.file_len.is_multiple_of(ALIGN as u64) {
        return Err(bad(&format!(
            "header says {} bytes, the file has {} (truncated?)",
            h.file_len,
            bytes.len()
        )));
    }
    let metric = metric_from_code(h.metric).ok_or_else(|| bad("unknown metric code"))?;
    let len = bytes.len() as u64;
    let sections = [
        ("vectors", h.vectors),
        ("norms", h.norms),
        ("present", h.present),
        ("trees", h.trees),
        ("dir", h.dir),
    ];
    for (name, s) in sections {
        if !s.offset.is_multiple_of(ALIGN as u64)
            || s.offset < DATA_START as u64
            || s.offset.checked_add(s.len).is_none_or(|end| end > len)
        {
            return Err(bad(&format!("section {name} out of bounds or misaligned")));
        }
    }
    let dir = &bytes[h.dir.range()];
    if header_hash(&h, dir) != h.header_hash {
        return Err(bad("header checksum mismatch"));
    }
    let geometry = super::Geometry::new(h.dim as usize, metric)
        .map_err(|e| bad(&format!("bad dimension or metric: {e}")))?;
    let n = h.n_items;
    let checks = [
        ("row width", h.row_words as u64 == geometry.row_words as u64),
        ("leaf size", h.leaf_max >= 1),
        (
            "vectors length",
            n.checked_mul(geometry.row_words as u64 * 4) == Some(h.vectors.len),
        ),
        (
            "norms length",
            h.norms.len == if metric == Metric::Angular { n * 4 } else { 0 },
        ),
        ("present length", h.present.len == n.div_ceil(64) * 8),
        (
            "directory length",
            h.n_trees
                .checked_mul(std::mem::size_of::<TreeEntry>() as u64)
                == Some(h.dir.len),
        ),
        ("item count", n <= u32::MAX as u64 + 1),
    ];
    for (what, ok) in checks {
        if !ok {
            return Err(bad(&format!("inconsistent {what}")));
        }
    }
    let entries: Vec<TreeEntry> = dir
        .chunks_exact(std::mem::size_of::<TreeEntry>())
        .map(bytemuck::pod_read_unaligned)
        .collect();
    let t_start = h.trees.offset as usize / 4;
    let t_end = (h.trees.offset + h.trees.len) as usize / 4;
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
        metric,
        trees,
    })
}
