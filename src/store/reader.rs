//! Reading index files: owned or memory-mapped, validated before any cast.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::Path;

use memmap2::MmapMut;

use super::format::{self, FormatError, Header, IndexKind, Parsed, SectionEntry};
use super::AlignedVec;
use crate::Metric;

/// The bytes of an index file: read into a 64-byte-aligned buffer, or mapped.
///
/// Either way the first byte sits on a 64-byte boundary (a mapping starts on
/// a page), so a section at a 64-byte offset is 64-byte aligned in memory.
pub enum Bytes {
    /// Read into memory.
    Owned(AlignedVec<u8>),
    /// Memory-mapped copy-on-write (`MAP_PRIVATE`), and never written.
    ///
    /// The pages are mapped writable although swann never writes them: an
    /// index keeps link words in atomics, and Rust only permits atomic
    /// accesses (beyond small relaxed loads) on memory that is not mapped
    /// read-only. Unwritten pages of a private mapping are the page cache's
    /// own pages, shared by every process that maps the file.
    Mapped(MmapMut),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v.as_slice(),
            Bytes::Mapped(m) => m,
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bytes::Owned(v) => write!(f, "Owned({} bytes)", v.len()),
            Bytes::Mapped(m) => write!(f, "Mapped({} bytes)", m.len()),
        }
    }
}

/// How [`IndexFile::open_mmap`] maps a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Read the whole file into the page cache and map it up front
    /// (`MADV_POPULATE_READ` on Linux 5.14+, else one read per page), so the
    /// first searches take no page faults. Makes the open O(file size).
    /// (`MAP_POPULATE` is not used: on a private writable mapping it would
    /// copy every page.)
    pub populate: bool,
    /// Tell the kernel accesses will be random (`MADV_RANDOM`), which turns
    /// off read-ahead: right for a graph index larger than memory.
    pub advise_random: bool,
    /// Check every section's checksum at open (reads the whole file, so the
    /// open is O(file size)); without it a mapped file is checked lazily by
    /// its index's `verify`.
    pub verify: bool,
}

#[cfg(feature = "forest")]
/// Maps the first `len` bytes of `file` writable and shared (a file an
/// index is built straight into).
pub(crate) fn map_mut(file: &std::fs::File, len: usize) -> crate::Result<MmapMut> {
    // SAFETY: the caller opened (and created) the file for this image and
    // does not resize it behind the map's back; as with every file map,
    // another process truncating the file would fault (SIGBUS), which the
    // docs of `Forest::on_disk_build` state.
    Ok(unsafe { memmap2::MmapOptions::new().len(len).map_mut(file)? })
}

#[cfg(feature = "forest")]
/// Maps `file` read-only, optionally prefaulting every page (a foreign
/// format's file, validated by its reader before any use).
pub(crate) fn map_readonly(file: &std::fs::File, prefault: bool) -> crate::Result<memmap2::Mmap> {
    let mut opts = memmap2::MmapOptions::new();
    if prefault {
        opts.populate();
    }
    // SAFETY: the map is read-only and the bytes are validated before any
    // use; the remaining hazard of every file map, another process
    // modifying or truncating the file while it is mapped, is documented on
    // the readers that map (`AnnoyIndex::open`).
    Ok(unsafe { opts.map(file)? })
}

/// Faults every page of `map` in for reading without copying it.
fn populate(map: &MmapMut) {
    #[cfg(target_os = "linux")]
    if map.advise(memmap2::Advice::PopulateRead).is_ok() {
        return;
    }
    // Older kernels and other systems: one read per page.
    let mut acc = 0u8;
    for i in (0..map.len()).step_by(4096) {
        acc ^= map[i];
    }
    std::hint::black_box(acc);
}

/// An index file whose header and section table have been validated.
///
/// It owns its bytes (an [`AlignedVec`] or a memory map), so an index built
/// on it keeps the mapping alive by owning the `IndexFile`. Every section
/// accessor checks bounds, size and alignment before it casts.
///
/// # Example
///
/// ```
/// use swann::store::{ElemType, FileWriter, Header, IndexFile, IndexKind, OpenOptions};
/// use swann::Metric;
///
/// let ids = [7u32, 8, 9];
/// let mut w = FileWriter::new(Header::new(IndexKind::Hnsw, Metric::Cosine, ElemType::F32, 16));
/// w.add_pod_section(3, &ids)?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("ids.swann");
/// w.write_atomic(&path)?;
///
/// // O(1): only the header and section table are read and checked.
/// let file = IndexFile::open_mmap(&path, OpenOptions::default())?;
/// file.expect_kind(IndexKind::Hnsw)?;
/// assert_eq!(file.section::<u32>(3)?, &ids);
/// file.verify()?; // reads and hashes every section
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct IndexFile {
    bytes: Bytes,
    parsed: Parsed,
}

impl IndexFile {
    /// Maps `path` read-only and validates its header and section table.
    ///
    /// O(1) in the file size (unless `opts.populate`): section checksums are
    /// not computed; call [`verify`](Self::verify) for that.
    ///
    /// The mapping assumes the file is not modified while it is open, as
    /// every memory-mapped reader must; swann's writers never modify a file
    /// in place (they replace it by rename), so saving over an open file is
    /// safe and the open mapping keeps the old content.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the file cannot be opened, measured
    /// or mapped (or `opts.advise_random` is refused);
    /// [`Error::Format`](crate::Error::Format) for a header or section table
    /// that does not validate (see [`from_bytes`](Self::from_bytes)), and with
    /// `opts.verify` for a section checksum or padding byte that does not (see
    /// [`verify`](Self::verify)).
    pub fn open_mmap(path: impl AsRef<Path>, opts: OpenOptions) -> crate::Result<Self> {
        let file = File::open(path.as_ref())?;
        let len = file.metadata()?.len();
        if len < format::HEADER_LEN as u64 {
            // Too short to map usefully (and a zero-length map is an error on
            // some systems): read what there is and report on it.
            let mut buf = Vec::new();
            (&file).read_to_end(&mut buf)?;
            return Ok(Self::from_bytes(&buf)?);
        }
        // SAFETY: the mapping is private (copy-on-write) and swann never
        // writes through it, so it only ever holds the file's bytes. Rust's
        // rules would be broken only if another process truncated or rewrote
        // the file in place while it is mapped, which swann never does (it
        // replaces files by rename) and which the docs above tell users not
        // to do. Every read through it is bounds-checked.
        let map = unsafe { memmap2::MmapOptions::new().map_copy(&file)? };
        #[cfg(unix)]
        if opts.advise_random {
            map.advise(memmap2::Advice::Random)?;
        }
        if opts.populate {
            populate(&map);
        }
        let parsed = format::parse(&map)?;
        let file = Self {
            bytes: Bytes::Mapped(map),
            parsed,
        };
        if opts.verify {
            file.verify()?;
        }
        Ok(file)
    }

    /// Reads `path` into memory and validates all of it, section checksums
    /// included.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the file cannot be opened or read,
    /// or grows while it is read; [`Error::Format`](crate::Error::Format) for a
    /// file too large for the address space ([`FormatError::Truncated`]), a
    /// header or section table that does not validate, or a section checksum or
    /// padding byte that does not.
    pub fn load(path: impl AsRef<Path>) -> crate::Result<Self> {
        let mut file = File::open(path.as_ref())?;
        let len = file.metadata()?.len();
        let len = usize::try_from(len).map_err(|_| FormatError::Truncated {
            what: "address space",
            needed: len,
            actual: usize::MAX as u64,
        })?;
        let mut buf = AlignedVec::<u8>::zeroed(len);
        file.read_exact(buf.as_mut_slice())?;
        // A file that grew after the metadata call: refuse rather than
        // silently ignore the tail.
        let mut probe = [0u8; 1];
        if file.read(&mut probe)? != 0 {
            return Err(std::io::Error::other("file grew while it was being read").into());
        }
        let f = Self::from_aligned(buf)?;
        f.verify()?;
        Ok(f)
    }

    /// Validates the header and section table of a file held in `bytes`
    /// (copied into an aligned buffer). Section checksums are not computed.
    ///
    /// # Errors
    /// The first check of the header and section table that fails:
    /// [`FormatError::BadMagic`], [`FormatError::UnsupportedVersion`],
    /// [`FormatError::WrongEndian`] or [`FormatError::BadEndianMarker`],
    /// [`FormatError::TooManySections`], [`FormatError::Truncated`] (header,
    /// table or file), [`FormatError::ChecksumMismatch`] for the header
    /// checksum, an unknown kind, metric or element-type code,
    /// [`FormatError::NonZeroReserved`], [`FormatError::TrailingBytes`],
    /// [`FormatError::BadCounts`] (zero dimension, or more items than
    /// capacity), [`FormatError::DuplicateSection`] or
    /// [`FormatError::BadOffset`] for a section entry;
    /// [`FormatError::BigEndianHost`] on a big-endian host.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        Self::from_aligned(AlignedVec::from_slice(bytes))
    }

    /// Like [`from_bytes`](Self::from_bytes), taking ownership of an aligned buffer.
    ///
    /// # Errors
    /// As [`from_bytes`](Self::from_bytes).
    pub fn from_aligned(bytes: AlignedVec<u8>) -> Result<Self, FormatError> {
        let parsed = format::parse(&bytes)?;
        Ok(Self {
            bytes: Bytes::Owned(bytes),
            parsed,
        })
    }

    /// Checks every section's checksum and that all padding is zero. Reads
    /// the whole file (pages in a mapped one).
    ///
    /// # Errors
    /// [`FormatError::ChecksumMismatch`] for a section whose bytes do not match
    /// its stored checksum; [`FormatError::NonZeroPadding`] for a non-zero byte
    /// outside every section.
    pub fn verify(&self) -> Result<(), FormatError> {
        format::verify(&self.bytes, &self.parsed)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.parsed.header
    }

    /// The section table, in file order.
    pub fn sections(&self) -> &[SectionEntry] {
        &self.parsed.sections
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.parsed.file_len
    }

    /// Whether the file is memory-mapped (rather than read into memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }

    /// The whole file.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Fails unless the file holds a `kind` index.
    ///
    /// # Errors
    /// [`FormatError::WrongKind`] when the header names another kind.
    pub fn expect_kind(&self, kind: IndexKind) -> Result<(), FormatError> {
        let found = self.parsed.header.kind;
        if found != kind {
            return Err(FormatError::WrongKind {
                expected: kind,
                found,
            });
        }
        Ok(())
    }

    /// Fails unless the file's vectors have dimension `dim`.
    ///
    /// # Errors
    /// [`FormatError::WrongDimension`] when the header's dimension differs.
    pub fn expect_dim(&self, dim: u64) -> Result<(), FormatError> {
        let found = self.parsed.header.dim;
        if found != dim {
            return Err(FormatError::WrongDimension {
                expected: dim,
                found,
            });
        }
        Ok(())
    }

    /// Fails unless the file's metric is `metric`.
    ///
    /// # Errors
    /// [`FormatError::WrongMetric`] when the header names another metric.
    pub fn expect_metric(&self, metric: Metric) -> Result<(), FormatError> {
        let found = self.parsed.header.metric;
        if found != metric {
            return Err(FormatError::WrongMetric {
                expected: metric,
                found,
            });
        }
        Ok(())
    }

    /// The table entry of section `id`, if present.
    pub fn entry(&self, id: u32) -> Option<&SectionEntry> {
        self.parsed.sections.iter().find(|s| s.id == id)
    }

    /// Whether section `id` is present.
    pub fn has_section(&self, id: u32) -> bool {
        self.entry(id).is_some()
    }

    /// The bytes of section `id`.
    ///
    /// # Errors
    /// [`FormatError::MissingSection`] when the file has no section `id`.
    pub fn section_bytes(&self, id: u32) -> Result<&[u8], FormatError> {
        let e = self.entry(id).ok_or(FormatError::MissingSection(id))?;
        let range = usize::try_from(e.offset)
            .ok()
            .zip(usize::try_from(e.offset.saturating_add(e.len)).ok())
            .and_then(|(start, end)| self.bytes.get(start..end));
        // `parse` checked the bounds; this can only fail on a logic error,
        // reported instead of panicking.
        range.ok_or(FormatError::BadOffset {
            section: id,
            offset: e.offset,
            len: e.len,
            reason: "section extends past the end of the file",
        })
    }

    /// Section `id` viewed as a slice of `T`, after checking that its length
    /// is a multiple of `size_of::<T>()` and its start is aligned for `T`.
    ///
    /// # Errors
    /// [`FormatError::MissingSection`] when the file has no section `id`;
    /// [`FormatError::SectionType`] when its length is not a multiple of
    /// `size_of::<T>()` or its start is not aligned for `T`.
    pub fn section<T: bytemuck::Pod>(&self, id: u32) -> Result<&[T], FormatError> {
        let bytes = self.section_bytes(id)?;
        bytemuck::try_cast_slice(bytes).map_err(|_| FormatError::SectionType {
            section: id,
            len: bytes.len() as u64,
            type_name: std::any::type_name::<T>(),
            size: std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>(),
        })
    }

    /// Like [`section`](Self::section), and checks the section holds exactly
    /// `count` elements.
    ///
    /// # Errors
    /// As [`section`](Self::section), and [`FormatError::SectionLength`] when
    /// the section does not hold exactly `count` elements.
    pub fn section_exact<T: bytemuck::Pod>(
        &self,
        id: u32,
        count: u64,
    ) -> Result<&[T], FormatError> {
        let s = self.section::<T>(id)?;
        if s.len() as u64 != count {
            let size = std::mem::size_of::<T>() as u64;
            return Err(FormatError::SectionLength {
                section: id,
                expected: count.saturating_mul(size),
                found: (s.len() as u64).saturating_mul(size),
            });
        }
        Ok(s)
    }
}
