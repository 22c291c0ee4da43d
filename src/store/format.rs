//! The on-disk container every index kind is saved in.
//!
//! A file is a fixed 192-byte header, a table of up to [`MAX_SECTIONS`]
//! 32-byte section entries, and the sections themselves, each starting on a
//! 64-byte boundary so that a memory-mapped file can be cast straight to
//! `&[f32]`, `&[u32]` or a record type without a copy. All integers are
//! little-endian. `docs/FORMAT.md` describes every byte.
//!
//! Integrity is layered so that opening stays O(1):
//!
//! - the header checksum (XXH3-64) covers the header and the section table,
//!   and is checked on every open, together with every offset, length and
//!   alignment in the table;
//! - each section has its own XXH3-64 checksum, checked by
//!   [`IndexFile::verify`](super::IndexFile::verify) and by
//!   [`IndexFile::load`](super::IndexFile::load), but not by
//!   [`IndexFile::open_mmap`](super::IndexFile::open_mmap), which would
//!   otherwise have to read the whole file.
//!
//! This module holds the layout, the codes and the validation; the writer
//! and the reader sit beside it.

use std::fmt;

use xxhash_rust::xxh3::Xxh3;

use crate::Metric;

use super::ALIGN;

/// The first eight bytes of every swann index file.
pub const MAGIC: [u8; 8] = *b"SWANNIDX";

/// The format version this build writes, and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Written as a little-endian `u32`; a file whose marker reads back as
/// `0x04030201` was written big-endian.
pub const ENDIAN_MARKER: u32 = 0x0102_0304;

/// Size of the fixed header, in bytes.
pub const HEADER_LEN: usize = 192;

/// Size of one section-table entry, in bytes.
pub const SECTION_ENTRY_LEN: usize = 32;

/// Most sections a file may hold (bounds the table, and the work an open does).
pub const MAX_SECTIONS: usize = 64;

/// Number of generic `u64` parameter slots in the header.
pub const N_PARAMS: usize = 8;

/// Offset of the header checksum inside the header.
pub(crate) const HEADER_CHECKSUM_OFFSET: usize = 184;

/// Offset and length of the reserved (must be zero) header bytes.
const RESERVED_OFFSET: usize = 152;
const RESERVED_LEN: usize = 32;

/// Rounds `n` up to a multiple of [`ALIGN`]; `None` on overflow.
pub(crate) fn align_up(n: u64) -> Option<u64> {
    let a = ALIGN as u64;
    n.checked_add(a - 1).map(|x| x / a * a)
}

/// Where the section table ends for `n_sections` entries.
pub(crate) fn table_end(n_sections: usize) -> usize {
    HEADER_LEN + n_sections * SECTION_ENTRY_LEN
}

/// Which index a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IndexKind {
    /// Exact brute-force index.
    Flat,
    /// Hierarchical navigable small-world graph.
    Hnsw,
    /// Random-projection forest.
    Forest,
    /// Locality-sensitive hashing pipeline.
    Lsh,
}

impl IndexKind {
    /// The code stored in the header.
    pub const fn code(self) -> u32 {
        match self {
            IndexKind::Flat => 1,
            IndexKind::Hnsw => 2,
            IndexKind::Forest => 3,
            IndexKind::Lsh => 4,
        }
    }

    /// The kind for a header code.
    pub const fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => IndexKind::Flat,
            2 => IndexKind::Hnsw,
            3 => IndexKind::Forest,
            4 => IndexKind::Lsh,
            _ => return None,
        })
    }

    /// Lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            IndexKind::Flat => "flat",
            IndexKind::Hnsw => "hnsw",
            IndexKind::Forest => "forest",
            IndexKind::Lsh => "lsh",
        }
    }
}

impl fmt::Display for IndexKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of one vector component as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElemType {
    /// `f32` components.
    F32,
    /// Bit-packed binary vectors in `u64` words (Hamming).
    U64Bits,
    /// `u8` components.
    U8,
}

impl ElemType {
    /// The code stored in the header.
    pub const fn code(self) -> u32 {
        match self {
            ElemType::F32 => 1,
            ElemType::U64Bits => 2,
            ElemType::U8 => 3,
        }
    }

    /// The element type for a header code.
    pub const fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => ElemType::F32,
            2 => ElemType::U64Bits,
            3 => ElemType::U8,
            _ => return None,
        })
    }

    /// Size of one stored element in bytes.
    pub const fn size(self) -> usize {
        match self {
            ElemType::F32 => 4,
            ElemType::U64Bits => 8,
            ElemType::U8 => 1,
        }
    }

    /// Lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::U64Bits => "u64-bits",
            ElemType::U8 => "u8",
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The header code of a metric.
pub const fn metric_code(metric: Metric) -> u32 {
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

/// The metric for a header code.
pub const fn metric_from_code(code: u32) -> Option<Metric> {
    Some(match code {
        1 => Metric::L2,
        2 => Metric::InnerProduct,
        3 => Metric::Cosine,
        4 => Metric::Angular,
        5 => Metric::Euclidean,
        6 => Metric::Manhattan,
        7 => Metric::Hamming,
        8 => Metric::Dot,
        _ => return None,
    })
}

/// What a file says about the index it holds: everything in the header but
/// the layout fields (magic, version, section count, file length, checksum),
/// which the writer fills in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Which index the file holds.
    pub kind: IndexKind,
    /// The metric it ranks by.
    pub metric: Metric,
    /// How vector components are stored.
    pub elem_type: ElemType,
    /// Vector dimension (components; bits for [`ElemType::U64Bits`]). At least 1.
    pub dim: u64,
    /// Number of items stored.
    pub n_items: u64,
    /// Number of item slots; at least `n_items`.
    pub capacity: u64,
    /// HNSW's `M` (0 where it means nothing).
    pub m: u64,
    /// HNSW's `ef_construction` (0 where it means nothing).
    pub ef_construction: u64,
    /// Seed of the index's random generator.
    pub seed: u64,
    /// Kind-specific parameters; each kind documents its slots in `docs/FORMAT.md`.
    pub params: [u64; N_PARAMS],
}

impl Header {
    /// A header with every count and parameter zero except `dim`.
    pub fn new(kind: IndexKind, metric: Metric, elem_type: ElemType, dim: u64) -> Self {
        Self {
            kind,
            metric,
            elem_type,
            dim,
            n_items: 0,
            capacity: 0,
            m: 0,
            ef_construction: 0,
            seed: 0,
            params: [0; N_PARAMS],
        }
    }

    /// Encodes the header (checksum field zero) for a file of `n_sections`
    /// sections and `file_len` bytes.
    pub(crate) fn encode(&self, n_sections: u32, file_len: u64) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        put_u32(&mut b, 8, FORMAT_VERSION);
        put_u32(&mut b, 12, ENDIAN_MARKER);
        put_u32(&mut b, 16, self.kind.code());
        put_u32(&mut b, 20, metric_code(self.metric));
        put_u32(&mut b, 24, self.elem_type.code());
        put_u32(&mut b, 28, n_sections);
        put_u64(&mut b, 32, self.dim);
        put_u64(&mut b, 40, self.n_items);
        put_u64(&mut b, 48, self.capacity);
        put_u64(&mut b, 56, self.m);
        put_u64(&mut b, 64, self.ef_construction);
        put_u64(&mut b, 72, self.seed);
        for (i, p) in self.params.iter().enumerate() {
            put_u64(&mut b, 80 + 8 * i, *p);
        }
        put_u64(&mut b, 144, file_len);
        b
    }
}

/// One entry of the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionEntry {
    /// Section id; each index kind defines its own ids.
    pub id: u32,
    /// Byte offset from the start of the file; a multiple of 64.
    pub offset: u64,
    /// Length in bytes (no padding).
    pub len: u64,
    /// XXH3-64 of the section's bytes.
    pub checksum: u64,
}

impl SectionEntry {
    pub(crate) fn encode(&self) -> [u8; SECTION_ENTRY_LEN] {
        let mut b = [0u8; SECTION_ENTRY_LEN];
        put_u32(&mut b, 0, self.id);
        // Bytes 4..8 are reserved and stay zero.
        put_u64(&mut b, 8, self.offset);
        put_u64(&mut b, 16, self.len);
        put_u64(&mut b, 24, self.checksum);
        b
    }
}

/// What a checksum mismatch was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumTarget {
    /// The header and section table.
    Header,
    /// The section with this id.
    Section(u32),
}

impl fmt::Display for ChecksumTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChecksumTarget::Header => f.write_str("header"),
            ChecksumTarget::Section(id) => write!(f, "section {id}"),
        }
    }
}

/// Everything that can be wrong with an index file's bytes.
///
/// Every check that reading a file makes reports one of these; none panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with `SWANNIDX`.
    #[error("not a swann index file (magic bytes {found:02x?})")]
    BadMagic {
        /// The first bytes of the file (up to eight).
        found: Vec<u8>,
    },
    /// The file's format version is not the one this build reads.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The file was written in big-endian byte order.
    #[error("file was written big-endian; swann files are little-endian")]
    WrongEndian,
    /// The endianness marker is neither byte order of `0x01020304`.
    #[error("bad endianness marker {found:#010x}")]
    BadEndianMarker {
        /// The marker as read (little-endian).
        found: u32,
    },
    /// This host is big-endian; swann casts file sections to native integers
    /// and so only reads its little-endian files on little-endian hosts.
    #[error("swann index files can only be read on little-endian hosts")]
    BigEndianHost,
    /// The file is shorter than its layout says.
    #[error("file truncated: {what} needs {needed} bytes, the file has {actual}")]
    Truncated {
        /// What did not fit.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The file is longer than its header says.
    #[error("file has {actual} bytes, its header says {expected}")]
    TrailingBytes {
        /// Length in the header.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A stored checksum does not match the bytes.
    #[error("checksum mismatch in {target}: stored {stored:#018x}, computed {computed:#018x}")]
    ChecksumMismatch {
        /// Where.
        target: ChecksumTarget,
        /// The checksum in the file.
        stored: u64,
        /// The checksum of the bytes.
        computed: u64,
    },
    /// More sections than [`MAX_SECTIONS`].
    #[error("{found} sections, at most {max} allowed")]
    TooManySections {
        /// Count in the header.
        found: u64,
        /// Limit.
        max: usize,
    },
    /// Unknown index-kind code.
    #[error("unknown index kind code {0}")]
    UnknownKind(u32),
    /// Unknown metric code.
    #[error("unknown metric code {0}")]
    UnknownMetric(u32),
    /// Unknown element-type code.
    #[error("unknown element type code {0}")]
    UnknownElemType(u32),
    /// A reserved byte is not zero.
    #[error("reserved byte at file offset {offset} is {value:#04x}, must be zero")]
    NonZeroReserved {
        /// File offset of the byte.
        offset: u64,
        /// Its value.
        value: u8,
    },
    /// A padding byte between sections is not zero.
    #[error("padding byte at file offset {offset} is {value:#04x}, must be zero")]
    NonZeroPadding {
        /// File offset of the byte.
        offset: u64,
        /// Its value.
        value: u8,
    },
    /// The header's counts contradict each other.
    #[error("bad counts in header: {0}")]
    BadCounts(String),
    /// A section's offset or length is not acceptable.
    #[error("section {section}: bad offset {offset} / length {len}: {reason}")]
    BadOffset {
        /// Section id.
        section: u32,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// Why.
        reason: &'static str,
    },
    /// Two table entries have the same id.
    #[error("section {0} appears twice")]
    DuplicateSection(u32),
    /// A required section is absent.
    #[error("missing section {0}")]
    MissingSection(u32),
    /// A section cannot be viewed as the requested element type.
    #[error(
        "section {section} ({len} bytes) cannot be viewed as {type_name} (size {size}, align {align})"
    )]
    SectionType {
        /// Section id.
        section: u32,
        /// Its length in bytes.
        len: u64,
        /// Requested type.
        type_name: &'static str,
        /// Its size.
        size: usize,
        /// Its alignment.
        align: usize,
    },
    /// A section has the wrong length for the header's counts.
    #[error("section {section} has {found} bytes, expected {expected}")]
    SectionLength {
        /// Section id.
        section: u32,
        /// Expected length.
        expected: u64,
        /// Actual length.
        found: u64,
    },
    /// The file holds another kind of index.
    #[error("file holds a {found} index, expected {expected}")]
    WrongKind {
        /// Kind asked for.
        expected: IndexKind,
        /// Kind in the file.
        found: IndexKind,
    },
    /// The file's dimension is not the one asked for.
    #[error("file has dimension {found}, expected {expected}")]
    WrongDimension {
        /// Dimension asked for.
        expected: u64,
        /// Dimension in the file.
        found: u64,
    },
    /// The file stores another element type than the index reads.
    #[error("file stores {found} vectors, the index reads {expected}")]
    WrongElemType {
        /// Element type the index reads.
        expected: ElemType,
        /// Element type in the file.
        found: ElemType,
    },
    /// The file's metric is not the one asked for.
    #[error("file uses metric {found}, expected {expected}")]
    WrongMetric {
        /// Metric asked for.
        expected: Metric,
        /// Metric in the file.
        found: Metric,
    },
    /// The contents of a section contradict the index's invariants.
    #[error("corrupt section {section}: {reason}")]
    Corrupt {
        /// Section id.
        section: u32,
        /// What is wrong.
        reason: String,
    },
    /// A file of another library's format (e.g. hnswlib) is malformed.
    #[error("{format} file: {reason}")]
    Foreign {
        /// The format.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A writer was given an invalid section.
    #[error("invalid section {section}: {reason}")]
    InvalidSection {
        /// Section id.
        section: u32,
        /// Why.
        reason: &'static str,
    },
}

/// A parsed, validated header and section table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub header: Header,
    pub sections: Vec<SectionEntry>,
    pub file_len: u64,
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads a little-endian `u32` at `at`; the caller has checked the length.
fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian `u64` at `at`; the caller has checked the length.
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// XXH3-64 of the header (with its checksum field read as zero) followed by
/// the section table. `bytes` holds at least the header and the table.
pub(crate) fn header_checksum(header: &[u8], table: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(&header[..HEADER_CHECKSUM_OFFSET]);
    h.update(&[0u8; 8]);
    h.update(table);
    h.digest()
}

/// XXH3-64 of one section's bytes.
pub(crate) fn section_checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Recomputes and stores the header checksum of `buf` in place, as far as
/// the section count in `buf` and its length allow. For fuzzing and tests
/// that need a file whose header is internally consistent but whose content
/// is not; does nothing if `buf` is shorter than a header.
#[doc(hidden)]
pub fn fix_header_checksum(buf: &mut [u8]) {
    if buf.len() < HEADER_LEN {
        return;
    }
    let n = (get_u32(buf, 28) as usize).min(MAX_SECTIONS);
    let end = table_end(n).min(buf.len());
    let sum = header_checksum(&buf[..HEADER_LEN], &buf[HEADER_LEN..end]);
    put_u64(buf, HEADER_CHECKSUM_OFFSET, sum);
}

/// Validates the header and section table of a file of `bytes.len()` bytes.
///
/// O(number of sections): no section content is read. Checks, in order:
/// host byte order, magic, version, endianness marker, section count,
/// truncation of header and table, header checksum, codes, reserved bytes,
/// file length, counts, then each section's id, alignment, bounds and order.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, FormatError> {
    if cfg!(target_endian = "big") {
        return Err(FormatError::BigEndianHost);
    }
    let actual = bytes.len() as u64;
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(FormatError::BadMagic {
            found: bytes[..magic_len].to_vec(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated {
            what: "header",
            needed: HEADER_LEN as u64,
            actual,
        });
    }
    let h = &bytes[..HEADER_LEN];
    let version = get_u32(h, 8);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let marker = get_u32(h, 12);
    if marker == ENDIAN_MARKER.swap_bytes() {
        return Err(FormatError::WrongEndian);
    }
    if marker != ENDIAN_MARKER {
        return Err(FormatError::BadEndianMarker { found: marker });
    }
    let n_sections = get_u32(h, 28);
    if n_sections as usize > MAX_SECTIONS {
        return Err(FormatError::TooManySections {
            found: n_sections.into(),
            max: MAX_SECTIONS,
        });
    }
    let n_sections = n_sections as usize;
    let tend = table_end(n_sections);
    if bytes.len() < tend {
        return Err(FormatError::Truncated {
            what: "section table",
            needed: tend as u64,
            actual,
        });
    }
    let table = &bytes[HEADER_LEN..tend];
    let stored = get_u64(h, HEADER_CHECKSUM_OFFSET);
    let computed = header_checksum(h, table);
    if stored != computed {
        return Err(FormatError::ChecksumMismatch {
            target: ChecksumTarget::Header,
            stored,
            computed,
        });
    }

    // The header is what the writer wrote (up to a 2^-64 chance); from here
    // on every check guards against a writer bug or a hand-made file.
    let kind =
        IndexKind::from_code(get_u32(h, 16)).ok_or(FormatError::UnknownKind(get_u32(h, 16)))?;
    let metric =
        metric_from_code(get_u32(h, 20)).ok_or(FormatError::UnknownMetric(get_u32(h, 20)))?;
    let elem_type =
        ElemType::from_code(get_u32(h, 24)).ok_or(FormatError::UnknownElemType(get_u32(h, 24)))?;
    if let Some(i) = h[RESERVED_OFFSET..RESERVED_OFFSET + RESERVED_LEN]
        .iter()
        .position(|&b| b != 0)
    {
        let offset = RESERVED_OFFSET + i;
        return Err(FormatError::NonZeroReserved {
            offset: offset as u64,
            value: h[offset],
        });
    }
    let file_len = get_u64(h, 144);
    if actual < file_len {
        return Err(FormatError::Truncated {
            what: "file",
            needed: file_len,
            actual,
        });
    }
    if actual > file_len {
        return Err(FormatError::TrailingBytes {
            expected: file_len,
            actual,
        });
    }
    let mut params = [0u64; N_PARAMS];
    for (i, p) in params.iter_mut().enumerate() {
        *p = get_u64(h, 80 + 8 * i);
    }
    let header = Header {
        kind,
        metric,
        elem_type,
        dim: get_u64(h, 32),
        n_items: get_u64(h, 40),
        capacity: get_u64(h, 48),
        m: get_u64(h, 56),
        ef_construction: get_u64(h, 64),
        seed: get_u64(h, 72),
        params,
    };
    if header.dim == 0 {
        return Err(FormatError::BadCounts("dimension is 0".into()));
    }
    if header.n_items > header.capacity {
        return Err(FormatError::BadCounts(format!(
            "n_items {} exceeds capacity {}",
            header.n_items, header.capacity
        )));
    }

    let data_start = align_up(tend as u64).unwrap_or(u64::MAX);
    let mut sections: Vec<SectionEntry> = Vec::with_capacity(n_sections);
    let mut prev_end = data_start;
    for i in 0..n_sections {
        let e = &table[i * SECTION_ENTRY_LEN..(i + 1) * SECTION_ENTRY_LEN];
        let entry = SectionEntry {
            id: get_u32(e, 0),
            offset: get_u64(e, 8),
            len: get_u64(e, 16),
            checksum: get_u64(e, 24),
        };
        let reserved = get_u32(e, 4);
        if reserved != 0 {
            let at = HEADER_LEN + i * SECTION_ENTRY_LEN + 4;
            let k = e[4..8].iter().position(|&b| b != 0).unwrap_or(0);
            return Err(FormatError::NonZeroReserved {
                offset: (at + k) as u64,
                value: e[4 + k],
            });
        }
        if sections.iter().any(|s| s.id == entry.id) {
            return Err(FormatError::DuplicateSection(entry.id));
        }
        let bad = |reason| FormatError::BadOffset {
            section: entry.id,
            offset: entry.offset,
            len: entry.len,
            reason,
        };
        if !entry.offset.is_multiple_of(ALIGN as u64) {
            return Err(bad("offset is not a multiple of 64"));
        }
        if entry.offset < data_start {
            return Err(bad("section overlaps the header or section table"));
        }
        if entry.offset < prev_end {
            return Err(bad(
                "section overlaps the previous one (sections must be in offset order)",
            ));
        }
        let end = entry
            .offset
            .checked_add(entry.len)
            .ok_or_else(|| bad("offset + length overflows"))?;
        if end > file_len {
            return Err(bad("section extends past the end of the file"));
        }
        if usize::try_from(end).is_err() {
            return Err(bad("section does not fit in this platform's address space"));
        }
        prev_end = end;
        sections.push(entry);
    }
    Ok(Parsed {
        header,
        sections,
        file_len,
    })
}

/// Checks every section checksum, and that every byte no section covers
/// (padding before, between and after sections) is zero. Reads the whole file.
pub(crate) fn verify(bytes: &[u8], parsed: &Parsed) -> Result<(), FormatError> {
    let mut pos = table_end(parsed.sections.len());
    for s in &parsed.sections {
        // `parse` checked offset <= end <= file_len == bytes.len(), and that
        // both fit in usize, so these conversions and slices cannot fail.
        let start = s.offset as usize;
        let end = start + s.len as usize;
        check_zero(bytes, pos, start)?;
        let computed = section_checksum(&bytes[start..end]);
        if computed != s.checksum {
            return Err(FormatError::ChecksumMismatch {
                target: ChecksumTarget::Section(s.id),
                stored: s.checksum,
                computed,
            });
        }
        pos = end;
    }
    check_zero(bytes, pos, bytes.len())
}

fn check_zero(bytes: &[u8], from: usize, to: usize) -> Result<(), FormatError> {
    let gap = bytes.get(from..to).unwrap_or(&[]);
    match gap.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(FormatError::NonZeroPadding {
            offset: (from + i) as u64,
            value: gap[i],
        }),
    }
}
