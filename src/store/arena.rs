//! Cache-line arenas for an index's hot data: vector rows and link records.
//!
//! Both are arrays of 64-byte lines, so every row or record of a whole
//! number of lines starts on a cache line and a single prefetch of its first
//! line never straddles two.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use super::format::FormatError;
use super::slab::{FileSafe, Slab};
use super::{IndexFile, ALIGN};

/// One cache line of raw storage.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
pub struct Line(pub [u8; ALIGN]);

/// A cache line of `u32` link words, readable while other threads write.
#[repr(C, align(64))]
pub struct LinkLine([AtomicU32; ALIGN / 4]);

// SAFETY: 64 plain bytes, any bit pattern valid.
unsafe impl FileSafe for Line {}
// SAFETY: UnsafeCell<Line> has Line's layout.
unsafe impl FileSafe for UnsafeCell<Line> {}
// SAFETY: 16 atomics with the layout of u32, no padding (64 bytes, align 64).
unsafe impl FileSafe for LinkLine {}

impl LinkLine {
    fn filled(v: u32) -> Self {
        LinkLine(std::array::from_fn(|_| AtomicU32::new(v)))
    }
}

/// Rows of `T` (`f32` components or `u64` bit words), each padded to whole
/// cache lines, written once per slot before the slot is published and then
/// read concurrently.
///
/// Writing needs either `&mut self` ([`RowArena::row_mut`]) or the unsafe
/// [`RowArena::write_row`], whose contract is that nobody reads the row yet:
/// an index only publishes a slot (links it into the graph, maps its label)
/// after its row is written.
pub struct RowArena<T: Pod> {
    lines: Slab<UnsafeCell<Line>>,
    dim: usize,
    lines_per_row: usize,
    _elem: std::marker::PhantomData<T>,
}

// SAFETY: rows are plain data; concurrent access follows the write-once
// contract of `write_row` (no row is read while it is written), and every
// other access is a shared read.
unsafe impl<T: Pod + Send> Send for RowArena<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Sync> Sync for RowArena<T> {}

impl<T: Pod> RowArena<T> {
    /// An arena of `rows` zeroed rows of `dim` elements.
    pub fn new(dim: usize, rows: usize) -> Self {
        let lines_per_row = Self::lines_per_row(dim);
        let mut a = RowArena {
            lines: Slab::default(),
            dim,
            lines_per_row,
            _elem: std::marker::PhantomData,
        };
        a.resize(rows);
        a
    }

    fn lines_per_row(dim: usize) -> usize {
        (dim * std::mem::size_of::<T>()).div_ceil(ALIGN).max(1)
    }

    /// `rows` rows of `dim` elements stored in section `id` of `file`, in
    /// place (the section must hold exactly `rows` padded rows).
    ///
    /// # Errors
    /// [`FormatError::MissingSection`] when `file` has no section `id`;
    /// [`FormatError::SectionLength`] when it does not hold exactly `rows`
    /// padded rows; [`FormatError::SectionType`] when its start is not 64-byte
    /// aligned.
    pub fn from_file(
        file: &Arc<IndexFile>,
        id: u32,
        dim: usize,
        rows: u64,
    ) -> Result<Self, FormatError> {
        let lines_per_row = Self::lines_per_row(dim);
        let count = rows.saturating_mul(lines_per_row as u64);
        Ok(RowArena {
            lines: Slab::from_file(file, id, count)?,
            dim,
            lines_per_row,
            _elem: std::marker::PhantomData,
        })
    }

    /// Whether the rows are a view of a file.
    pub fn is_mapped(&self) -> bool {
        self.lines.is_mapped()
    }

    /// Copies a file view into owned memory (no-op when owned).
    pub fn make_owned(&mut self) {
        self.lines.make_owned();
    }

    /// Elements per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.lines.len() / self.lines_per_row
    }

    /// Bytes between row starts.
    pub fn row_bytes(&self) -> usize {
        self.lines_per_row * ALIGN
    }

    /// Grows (zero-filled) or shrinks to `rows` rows.
    pub fn resize(&mut self, rows: usize) {
        let n = rows * self.lines_per_row;
        self.lines.resize_zeroed(n);
    }

    /// Row `slot`.
    ///
    /// # Panics
    /// If `slot >= self.rows()`.
    #[inline(always)]
    pub fn row(&self, slot: usize) -> &[T] {
        let lines = &self.lines[slot * self.lines_per_row..(slot + 1) * self.lines_per_row];
        // SAFETY: `lines` is a live, 64-byte-aligned run of `lines_per_row * 64`
        // bytes inside the vector; `dim * size_of::<T>()` fits in it by
        // construction, T: Pod accepts any bytes and needs at most 64-byte
        // alignment. No `&mut` to it exists (write_row's contract).
        unsafe { std::slice::from_raw_parts(lines.as_ptr() as *const T, self.dim) }
    }

    /// Address of row `slot`, for prefetching (never dereferenced by the caller).
    #[inline(always)]
    pub fn row_ptr(&self, slot: usize) -> *const u8 {
        self.lines
            .get(slot * self.lines_per_row)
            .map_or(std::ptr::null(), |l| l.get() as *const u8)
    }

    /// Row `slot`, mutably.
    pub fn row_mut(&mut self, slot: usize) -> &mut [T] {
        let lines = &mut self.lines[slot * self.lines_per_row..(slot + 1) * self.lines_per_row];
        // SAFETY: as in `row`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr() as *mut T, self.dim) }
    }

    /// Writes row `slot` through a shared reference.
    ///
    /// # Safety
    /// No other thread may read or write row `slot` during the call: the
    /// caller owns the slot exclusively and has not published it yet.
    ///
    /// # Panics
    /// If `slot` is out of range or `data.len() != self.dim()`.
    pub unsafe fn write_row(&self, slot: usize, data: &[T]) {
        assert_eq!(data.len(), self.dim, "row length");
        let lines = &self.lines[slot * self.lines_per_row..(slot + 1) * self.lines_per_row];
        // SAFETY: the row lies inside the vector (the slice above is in
        // bounds); UnsafeCell permits writing through `&self`, and the
        // caller guarantees nobody else touches this row meanwhile.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), lines.as_ptr() as *mut T, self.dim);
        }
    }

    /// All rows as bytes (for saving).
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: UnsafeCell<Line> has the layout of Line (64 plain bytes);
        // no row is being written while the caller holds `&self` for saving
        // (writers publish before returning).
        unsafe {
            std::slice::from_raw_parts(self.lines.as_ptr() as *const u8, self.lines.len() * ALIGN)
        }
    }

    /// Bytes allocated (0 for a file view).
    pub fn allocated_bytes(&self) -> usize {
        self.lines.allocated_bytes()
    }
}

/// Fixed-size link records of `u32` neighbour ids, one record per slot,
/// each starting on a cache line. Unused entries hold [`LinkArena::EMPTY`];
/// a reader stops at the first one.
///
/// Entries are atomics: writers (holding the node's lock) store with
/// `Release`, readers load with `Acquire`, so a reader that sees an id also
/// sees that node's vector row, written before it was linked. A reader may
/// see a list mid-rewrite (a mix of old and new ids); every id it can see is
/// a published slot.
pub struct LinkArena {
    lines: Slab<LinkLine>,
    lines_per_record: usize,
    max_links: usize,
}

impl LinkArena {
    /// Marks an unused entry.
    pub const EMPTY: u32 = u32::MAX;

    /// An arena of `records` empty records holding up to `max_links` ids each.
    pub fn new(max_links: usize, records: usize) -> Self {
        let lines_per_record = Self::lines_per_record(max_links);
        let mut a = LinkArena {
            lines: Slab::default(),
            lines_per_record,
            max_links,
        };
        a.resize(records);
        a
    }

    fn lines_per_record(max_links: usize) -> usize {
        (max_links * 4).div_ceil(ALIGN).max(1)
    }

    /// `records` records of up to `max_links` ids stored in section `id` of
    /// `file`, in place. The ids are not checked here: readers bound them
    /// with [`LinkArena::read_into_bounded`].
    ///
    /// # Errors
    /// [`FormatError::MissingSection`] when `file` has no section `id`;
    /// [`FormatError::SectionLength`] when it does not hold exactly `records`
    /// padded records; [`FormatError::SectionType`] when its start is not
    /// 64-byte aligned.
    pub fn from_file(
        file: &Arc<IndexFile>,
        id: u32,
        max_links: usize,
        records: u64,
    ) -> Result<Self, FormatError> {
        let lines_per_record = Self::lines_per_record(max_links);
        let count = records.saturating_mul(lines_per_record as u64);
        Ok(LinkArena {
            lines: Slab::from_file(file, id, count)?,
            lines_per_record,
            max_links,
        })
    }

    /// Whether the records are a view of a file.
    pub fn is_mapped(&self) -> bool {
        self.lines.is_mapped()
    }

    /// Copies a file view into owned memory (no-op when owned).
    pub fn make_owned(&mut self) {
        self.lines.make_owned();
    }

    /// Most ids a record holds.
    pub fn max_links(&self) -> usize {
        self.max_links
    }

    /// Number of records.
    pub fn records(&self) -> usize {
        self.lines.len() / self.lines_per_record
    }

    /// Bytes between record starts.
    pub fn record_bytes(&self) -> usize {
        self.lines_per_record * ALIGN
    }

    /// Grows (new records empty) or shrinks to `records` records.
    pub fn resize(&mut self, records: usize) {
        let n = records * self.lines_per_record;
        self.lines.resize_with(n, || LinkLine::filled(Self::EMPTY));
    }

    /// The `max_links` entries of record `slot`.
    ///
    /// # Panics
    /// If `slot >= self.records()`.
    #[inline(always)]
    pub fn record(&self, slot: usize) -> &[AtomicU32] {
        let lines = &self.lines[slot * self.lines_per_record..(slot + 1) * self.lines_per_record];
        // SAFETY: LinkLine is repr(C) over [AtomicU32; 16] with no padding, so
        // a run of lines is a contiguous array of AtomicU32 of
        // `lines_per_record * 16 >= max_links` entries.
        unsafe { std::slice::from_raw_parts(lines.as_ptr() as *const AtomicU32, self.max_links) }
    }

    /// Address of record `slot`, for prefetching.
    #[inline(always)]
    pub fn record_ptr(&self, slot: usize) -> *const u8 {
        self.lines
            .get(slot * self.lines_per_record)
            .map_or(std::ptr::null(), |l| l as *const LinkLine as *const u8)
    }

    /// Replaces record `slot` with `ids` (at most `max_links`). The caller
    /// holds the node's lock so writers never interleave.
    pub fn set(&self, slot: usize, ids: &[u32]) {
        let rec = self.record(slot);
        debug_assert!(ids.len() <= rec.len());
        for (e, &id) in rec.iter().zip(ids) {
            e.store(id, Ordering::Release);
        }
        if ids.len() < rec.len() {
            rec[ids.len()].store(Self::EMPTY, Ordering::Release);
        }
    }

    /// Appends `id` if there is room; returns whether it did.
    pub fn push(&self, slot: usize, id: u32) -> bool {
        let rec = self.record(slot);
        let n = count(rec);
        if n < rec.len() {
            rec[n].store(id, Ordering::Release);
            if n + 1 < rec.len() {
                rec[n + 1].store(Self::EMPTY, Ordering::Release);
            }
            true
        } else {
            false
        }
    }

    /// Copies record `slot`'s ids into `out` (cleared first).
    #[inline]
    pub fn read_into(&self, slot: usize, out: &mut Vec<u32>) {
        out.clear();
        for e in self.record(slot) {
            let id = e.load(Ordering::Acquire);
            if id == Self::EMPTY {
                break;
            }
            out.push(id);
        }
    }

    /// Like [`LinkArena::read_into`], skipping ids `>= limit` and reading
    /// nothing from a record past the end: safe on links read from a file
    /// that was never checked, at the cost of one compare per id.
    #[inline]
    pub fn read_into_bounded(&self, slot: usize, out: &mut Vec<u32>, limit: u32) {
        out.clear();
        let Some(lines) = self
            .lines
            .get(slot * self.lines_per_record..(slot + 1) * self.lines_per_record)
        else {
            return;
        };
        // SAFETY: as in `record`: a run of LinkLines is a contiguous array of
        // `lines_per_record * 16 >= max_links` AtomicU32.
        let rec = unsafe {
            std::slice::from_raw_parts(lines.as_ptr() as *const AtomicU32, self.max_links)
        };
        for e in rec {
            let id = e.load(Ordering::Acquire);
            if id == Self::EMPTY {
                break;
            }
            if id < limit {
                out.push(id);
            }
        }
    }

    /// The first `records` records as `u32` words, padding included (for saving).
    pub fn words_prefix(&self, records: usize) -> Vec<u32> {
        self.lines[..records * self.lines_per_record]
            .iter()
            .flat_map(|l| l.0.iter().map(|a| a.load(Ordering::Acquire)))
            .collect()
    }

    /// Bytes allocated (0 for a file view).
    pub fn allocated_bytes(&self) -> usize {
        self.lines.allocated_bytes()
    }
}

/// Number of ids before the first [`LinkArena::EMPTY`].
#[inline]
pub fn count(rec: &[AtomicU32]) -> usize {
    rec.iter()
        .position(|e| e.load(Ordering::Acquire) == LinkArena::EMPTY)
        .unwrap_or(rec.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_aligned_and_independent() {
        let mut a = RowArena::<f32>::new(5, 3);
        assert_eq!(a.row_bytes(), 64);
        a.row_mut(1).copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        // SAFETY: single-threaded test, nobody reads row 2 meanwhile.
        unsafe { a.write_row(2, &[9.0; 5]) };
        assert_eq!(a.row(0), &[0.0; 5]);
        assert_eq!(a.row(1), &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(a.row(2), &[9.0; 5]);
        assert_eq!(a.row_ptr(1) as usize % 64, 0);
        a.resize(10);
        assert_eq!(a.row(1), &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(a.row(9), &[0.0; 5]);
    }

    #[test]
    fn links_set_push_read() {
        let a = LinkArena::new(32, 4);
        assert_eq!(a.record_bytes(), 128);
        let mut out = Vec::new();
        a.read_into(0, &mut out);
        assert!(out.is_empty());
        a.set(1, &[3, 4, 5]);
        assert!(a.push(1, 6));
        a.read_into(1, &mut out);
        assert_eq!(out, vec![3, 4, 5, 6]);
        a.set(1, &[7]);
        a.read_into(1, &mut out);
        assert_eq!(out, vec![7]);
        let full: Vec<u32> = (0..32).collect();
        a.set(2, &full);
        assert!(!a.push(2, 99));
        a.read_into(2, &mut out);
        assert_eq!(out, full);
        a.read_into(3, &mut out);
        assert!(out.is_empty());
    }
}
