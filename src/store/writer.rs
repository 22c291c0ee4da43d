//! Writing index files: layout, checksums, and the atomic replace.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::Xxh3;

use super::fault::{self, FaultPoint};
use super::format::{
    align_up, header_checksum, table_end, FormatError, Header, SectionEntry,
    HEADER_CHECKSUM_OFFSET, MAX_SECTIONS,
};

/// A section waiting to be written: borrowed slices, written back to back.
struct Pending<'a> {
    id: u32,
    parts: Vec<&'a [u8]>,
    len: u64,
    checksum: u64,
}

/// Builds an index file from a [`Header`] and sections borrowed from the
/// index, then writes it.
///
/// Sections are written in the order they are added, each starting on a
/// 64-byte boundary. A section may be given as several slices
/// ([`add_section_parts`](Self::add_section_parts)) so that an index can
/// write its arenas without first concatenating them. Checksums are computed
/// when a section is added.
///
/// # Example
///
/// ```
/// use swann::store::{ElemType, FileWriter, Header, IndexFile, IndexKind};
/// use swann::Metric;
///
/// let mut header = Header::new(IndexKind::Flat, Metric::L2, ElemType::F32, 2);
/// header.n_items = 3;
/// header.capacity = 3;
/// let vectors = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let mut w = FileWriter::new(header);
/// w.add_pod_section(1, &vectors)?;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("tiny.swann");
/// w.write_atomic(&path)?;
///
/// let file = IndexFile::load(&path)?;
/// assert_eq!(file.section::<f32>(1)?, &vectors);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileWriter<'a> {
    header: Header,
    sections: Vec<Pending<'a>>,
}

impl<'a> FileWriter<'a> {
    /// A writer for a file with this header and no sections yet.
    pub fn new(header: Header) -> Self {
        Self {
            header,
            sections: Vec::new(),
        }
    }

    /// Adds a section holding `bytes`.
    ///
    /// # Errors
    /// As [`add_section_parts`](Self::add_section_parts).
    pub fn add_section(&mut self, id: u32, bytes: &'a [u8]) -> Result<&mut Self, FormatError> {
        self.add_section_parts(id, [bytes])
    }

    /// Adds a section holding the elements of `data` as bytes.
    ///
    /// # Errors
    /// As [`add_section_parts`](Self::add_section_parts).
    pub fn add_pod_section<T: bytemuck::Pod>(
        &mut self,
        id: u32,
        data: &'a [T],
    ) -> Result<&mut Self, FormatError> {
        self.add_section_parts(id, [bytemuck::cast_slice::<T, u8>(data)])
    }

    /// Adds a section made of `parts` written back to back (no padding
    /// between parts).
    ///
    /// # Errors
    /// [`FormatError::DuplicateSection`] when section `id` was already added;
    /// [`FormatError::TooManySections`] when the writer already holds
    /// [`MAX_SECTIONS`](super::format::MAX_SECTIONS).
    pub fn add_section_parts(
        &mut self,
        id: u32,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<&mut Self, FormatError> {
        if self.sections.iter().any(|s| s.id == id) {
            return Err(FormatError::DuplicateSection(id));
        }
        if self.sections.len() >= MAX_SECTIONS {
            return Err(FormatError::TooManySections {
                found: self.sections.len() as u64 + 1,
                max: MAX_SECTIONS,
            });
        }
        let parts: Vec<&'a [u8]> = parts.into_iter().collect();
        let mut hasher = Xxh3::new();
        let mut len = 0u64;
        for p in &parts {
            hasher.update(p);
            len += p.len() as u64;
        }
        self.sections.push(Pending {
            id,
            parts,
            len,
            checksum: hasher.digest(),
        });
        Ok(self)
    }

    /// The section table this writer will produce, and the file length.
    pub fn layout(&self) -> (Vec<SectionEntry>, u64) {
        let mut pos = table_end(self.sections.len()) as u64;
        let mut entries = Vec::with_capacity(self.sections.len());
        for s in &self.sections {
            let offset = align_up(pos).expect("file length overflows u64");
            entries.push(SectionEntry {
                id: s.id,
                offset,
                len: s.len,
                checksum: s.checksum,
            });
            pos = offset + s.len;
        }
        (entries, align_up(pos).expect("file length overflows u64"))
    }

    /// The encoded header and section table (with the header checksum).
    fn encode_head(&self) -> (Vec<u8>, Vec<SectionEntry>, u64) {
        let (entries, file_len) = self.layout();
        let header = self.header.encode(self.sections.len() as u32, file_len);
        let mut head = Vec::with_capacity(table_end(entries.len()));
        head.extend_from_slice(&header);
        for e in &entries {
            head.extend_from_slice(&e.encode());
        }
        let (h, t) = head.split_at(super::format::HEADER_LEN);
        let sum = header_checksum(h, t);
        head[HEADER_CHECKSUM_OFFSET..HEADER_CHECKSUM_OFFSET + 8]
            .copy_from_slice(&sum.to_le_bytes());
        (head, entries, file_len)
    }

    /// Writes the whole file to `w`; returns its length.
    ///
    /// # Errors
    /// Whatever error `w` returns.
    pub fn write_to<W: Write>(&self, w: &mut W) -> io::Result<u64> {
        self.write_impl(w, |_| Ok(()))
    }

    fn write_impl<W: Write>(
        &self,
        w: &mut W,
        mut midway: impl FnMut(&mut W) -> io::Result<()>,
    ) -> io::Result<u64> {
        const ZEROS: [u8; 64] = [0; 64];
        let (head, entries, file_len) = self.encode_head();
        w.write_all(&head)?;
        let mut pos = head.len() as u64;
        let half = self.sections.len().div_ceil(2);
        for (i, (s, e)) in self.sections.iter().zip(&entries).enumerate() {
            if i == half {
                midway(w)?;
            }
            w.write_all(&ZEROS[..(e.offset - pos) as usize])?;
            for p in &s.parts {
                w.write_all(p)?;
            }
            pos = e.offset + e.len;
        }
        if half == self.sections.len() {
            midway(w)?;
        }
        w.write_all(&ZEROS[..(file_len - pos) as usize])?;
        Ok(file_len)
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v).expect("writing to a Vec cannot fail");
        v
    }

    /// Writes the file to `path` so that `path` holds either its previous
    /// content or the complete new file, whatever happens.
    ///
    /// The file is written to a temporary file in the same directory
    /// (`.NAME.tmp-PID-N`), synced with `fsync`, renamed over `path`, and the
    /// directory is synced so the rename itself is durable. On an error
    /// before the rename the temporary file is removed and `path` is
    /// untouched. If the process dies before the rename, `path` is untouched
    /// and a stray temporary file may remain. An error from the final
    /// directory sync is reported, but the new file is already in place.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) when `path`
    /// has no file name (it ends in `..` or is a root);
    /// [`Error::Io`](crate::Error::Io) when the temporary file cannot be
    /// created, written, synced or renamed over `path` (`path` is then
    /// untouched), or when the directory sync after the rename fails (the new
    /// file is then in place).
    pub fn write_atomic(&self, path: impl AsRef<Path>) -> crate::Result<()> {
        replace_file(path.as_ref(), |w| {
            self.write_impl(w, |w| {
                w.flush()?;
                fault::hit(FaultPoint::WriteMidway)
            })
            .map(drop)
        })
    }
}

/// Replaces `path` with what `write` writes, atomically: a temporary file
/// in the same folder (`.NAME.tmp-PID-N`), synced, renamed over `path`, the
/// folder synced. On an error before the rename the temporary file is
/// removed and `path` is untouched.
fn replace_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> crate::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        crate::Error::InvalidParameter(format!("{} is not a file path", path.display()))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));

    fault::hit(FaultPoint::CreateTemp)?;
    let file = File::options().write(true).create_new(true).open(&tmp)?;
    let mut guard = TempGuard(Some(tmp));
    fault::hit(FaultPoint::WriteStart)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    fault::hit(FaultPoint::SyncFile)?;
    file.sync_all()?;
    drop(file);
    fault::hit(FaultPoint::Rename)?;
    let tmp = guard.0.as_deref().expect("armed");
    fs::rename(tmp, path)?;
    guard.0 = None;
    fault::hit(FaultPoint::SyncDir)?;
    sync_dir(dir)?;
    Ok(())
}

#[cfg(any(feature = "forest", feature = "sharded"))]
/// Writes `bytes` to `path` atomically, as [`FileWriter::write_atomic`]
/// does, for files that are not swann's container (a shard manifest, a
/// copy of a foreign index file).
pub(crate) fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    replace_file(path, |w| w.write_all(bytes))
}

/// Removes the temporary file unless disarmed (after the rename).
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; its rename is
        // journalled by NTFS.
        let _ = dir;
        Ok(())
    }
}
