//! Where a forest's image lives: the heap, a read-only map of a file, or a
//! writable map of a file that grows as items and trees are added
//! (`on_disk_build`).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::store::{map_mut, IndexFile, Line, Slab};
use crate::Result;

pub(crate) enum Backing {
    Heap(HeapImage),
    /// A loaded or mapped index file (read-only).
    File(IndexFile),
    Disk(DiskImage),
}

/// Bytes in a [`Line`].
const LINE: usize = std::mem::size_of::<Line>();

/// An image in memory, as whole cache lines in a [`Slab`]: a large image
/// lives in transparent huge pages. Builds and searches read rows and tree
/// nodes at random over hundreds of megabytes, and with 4 KiB pages nearly
/// every such read would also miss the TLB (a page walk, dearer still
/// under virtualization). Growth reserves address space only: pages never
/// written are never made resident.
///
/// Invariant: every byte of the slab past `len` is zero, so growing never
/// has to clear anything.
pub(crate) struct HeapImage {
    lines: Slab<Line>,
    len: usize,
}

impl HeapImage {
    /// `len` zero bytes.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut image = HeapImage {
            lines: Slab::default(),
            len: 0,
        };
        image.resize(len);
        image
    }

    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<Line, u8>(&self.lines)[..self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Line, u8>(&mut self.lines)[..self.len]
    }

    /// Grows (the new bytes are zero) or shrinks to `len` bytes.
    fn resize(&mut self, len: usize) {
        if len < self.len {
            // Keep the invariant: what is dropped must read as zero if the
            // image grows over it again.
            let all: &mut [u8] = bytemuck::cast_slice_mut(&mut self.lines);
            all[len..self.len].fill(0);
            self.lines.truncate_zeroed(len.div_ceil(LINE));
        } else {
            self.lines.resize_zeroed(len.div_ceil(LINE));
        }
        self.len = len;
    }

    /// Shrinks to `len` bytes that were all that was written: the bytes
    /// past it are still zero, so they are not cleared (nor touched).
    fn release_tail(&mut self, len: usize) {
        debug_assert!(self.bytes()[len.min(self.len)..].iter().all(|&b| b == 0));
        self.lines.truncate_zeroed(len.div_ceil(LINE));
        self.len = len.min(self.len);
    }

    /// Makes room for `len` bytes in all, so that growing up to it moves
    /// nothing; costs address space, not memory, until bytes are written.
    pub(crate) fn reserve(&mut self, len: usize) {
        let (have, need) = (self.lines.len(), len.div_ceil(LINE));
        if need > have {
            self.lines.resize_zeroed(need);
            self.lines.truncate_zeroed(have);
        }
    }
}

/// A file mapped read-write whose logical length may be below the mapped
/// capacity; the file is grown in steps and remapped, and truncated to the
/// logical length when the build finishes.
pub(crate) struct DiskImage {
    file: File,
    map: MmapMut,
    len: usize,
    /// Bytes past this were never written since the file last grew over
    /// them: they read as zero (a file extended by `set_len` reads as zero).
    dirty: usize,
    path: PathBuf,
}

/// Bytes a disk image grows by at least (fewer remaps for many small adds).
const MIN_GROWTH: usize = 1 << 20;

impl DiskImage {
    pub(crate) fn create(path: &Path, initial: &[u8]) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let cap = initial.len().max(MIN_GROWTH);
        file.set_len(cap as u64)?;
        let mut map = map_mut(&file, cap)?;
        map[..initial.len()].copy_from_slice(initial);
        Ok(DiskImage {
            file,
            map,
            len: initial.len(),
            dirty: initial.len(),
            path: path.to_path_buf(),
        })
    }

    fn resize(&mut self, len: usize) -> Result<()> {
        if len > self.map.len() {
            let cap = len.max(self.map.len() + self.map.len() / 2).max(MIN_GROWTH);
            let cap = cap.div_ceil(4096) * 4096;
            self.map.flush_async()?;
            self.file.set_len(cap as u64)?;
            self.map = map_mut(&self.file, cap)?;
        }
        // The bytes between the old length and the dirty mark may hold
        // bytes of an earlier build (after unbuild); past the mark they are
        // zero, and not touching them keeps a reserve sparse.
        let clear_end = len.min(self.dirty);
        if self.len < clear_end {
            self.map[self.len..clear_end].fill(0);
        }
        self.len = len;
        self.dirty = self.dirty.max(len);
        Ok(())
    }

    /// Truncates the file to the logical length and writes it back.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.map.flush()?;
        if self.map.len() != self.len {
            self.file.set_len(self.len.max(1) as u64)?;
            self.map = map_mut(&self.file, self.len.max(1))?;
            self.dirty = self.len;
        }
        self.file.sync_all()?;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Backing {
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Backing::Heap(v) => v.bytes(),
            Backing::File(f) => f.bytes(),
            Backing::Disk(d) => &d.map[..d.len],
        }
    }

    /// Writable bytes, `None` for a read-only map.
    pub(crate) fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Backing::Heap(v) => Some(v.bytes_mut()),
            Backing::File(_) => None,
            Backing::Disk(d) => Some(&mut d.map[..d.len]),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Grows (zero-filling) or shrinks to `len` bytes.
    pub(crate) fn resize(&mut self, len: usize) -> Result<()> {
        match self {
            Backing::Heap(v) => {
                // The slab grows geometrically: adding items one by one
                // does not copy the whole image each time.
                v.resize(len);
                Ok(())
            }
            Backing::File(_) => Err(crate::Error::InvalidState(
                "a loaded or mapped forest is read-only".into(),
            )),
            Backing::Disk(d) => d.resize(len),
        }
    }

    /// Shrinks to `len` bytes when nothing past `len` was written since the
    /// image last grew: those bytes are left as they are (zero), so a
    /// reserve that was not used is never touched.
    pub(crate) fn release_tail(&mut self, len: usize) -> Result<()> {
        match self {
            Backing::Heap(v) => v.release_tail(len),
            Backing::File(_) => return self.resize(len),
            Backing::Disk(d) => {
                d.len = len.min(d.len);
                d.dirty = d.len;
            }
        }
        Ok(())
    }

    /// Appends `data` at the end.
    pub(crate) fn append(&mut self, data: &[u8]) -> Result<()> {
        let start = self.len();
        self.resize(start + data.len())?;
        self.bytes_mut().expect("resized, so writable")[start..].copy_from_slice(data);
        Ok(())
    }

    pub(crate) fn is_read_only(&self) -> bool {
        matches!(self, Backing::File(_))
    }
}
