//! An array that is either owned or a view of an index file's section.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};
use std::sync::Arc;

use super::format::FormatError;

/// Size of a transparent huge page on x86-64 and (4 KiB-granule) AArch64.
/// Under Miri, which interprets every byte, the mapped path runs at a
/// small scale.
const HUGE_PAGE: usize = if cfg!(miri) { 4 << 10 } else { 2 << 20 };
/// Arrays at least this large are placed in huge pages (see [`Slab::resize_with`]).
pub const HUGE_MIN_BYTES: usize = if cfg!(miri) { 64 << 10 } else { 4 << 20 };
use super::IndexFile;

/// Types that can be viewed in place in a file's bytes.
///
/// # Safety
///
/// Every bit pattern must be a valid value, the type must have no padding,
/// no drop glue, no pointers, and an alignment of at most 64 (sections are
/// 64-byte aligned).
pub unsafe trait FileSafe: Sized {}

// SAFETY: integers: any bits, no padding.
unsafe impl FileSafe for u8 {}
// SAFETY: as above.
unsafe impl FileSafe for u32 {}
// SAFETY: as above.
unsafe impl FileSafe for u64 {}
// SAFETY: atomics have the layout of their integer.
unsafe impl FileSafe for AtomicU8 {}
// SAFETY: as above.
unsafe impl FileSafe for AtomicU32 {}
// SAFETY: as above.
unsafe impl FileSafe for AtomicU64 {}

enum Owner<T> {
    Vec(Vec<T>),
    /// An anonymous mapping advised for transparent huge pages; holds
    /// `capacity` elements, of which the Slab's `len` are initialized.
    Huge {
        #[allow(dead_code)]
        map: memmap2::MmapMut,
        capacity: usize,
        /// Elements at and past `max(written, len)` are zero (never
        /// written, or cleared): shrinking raises it to the old length,
        /// since `DerefMut` may have written anything below that.
        written: usize,
    },
    /// Held only to keep the file's bytes alive.
    #[allow(dead_code)]
    File(Arc<IndexFile>),
}

/// A `[T]` that is either an owned `Vec<T>` or a view of a section of an
/// [`IndexFile`] (which it keeps alive).
///
/// Reading costs the same either way (a cached pointer and length, no
/// branch). Any mutation first copies a file view into an owned `Vec`
/// (copy-on-write), so a file's memory is never written.
pub struct Slab<T> {
    ptr: NonNull<T>,
    len: usize,
    owner: Owner<T>,
}

// SAFETY: a Slab owns its elements like a Vec does, or shares an immutable
// IndexFile (Send + Sync); it is as thread-safe as the elements.
unsafe impl<T: Send> Send for Slab<T> {}
// SAFETY: shared access hands out `&[T]` only, like `&Vec<T>`.
unsafe impl<T: Sync> Sync for Slab<T> {}

impl<T> Slab<T> {
    /// An owned slab.
    pub fn from_vec(mut v: Vec<T>) -> Self {
        let ptr = NonNull::new(v.as_mut_ptr()).expect("Vec pointers are non-null");
        Slab {
            ptr,
            len: v.len(),
            owner: Owner::Vec(v),
        }
    }

    /// Section `id` of `file` viewed as exactly `count` elements of `T`.
    ///
    /// # Errors
    /// [`FormatError::MissingSection`] when `file` has no section `id`;
    /// [`FormatError::SectionLength`] when it does not hold exactly `count`
    /// elements; [`FormatError::SectionType`] when its start is not aligned for
    /// `T`.
    pub fn from_file(file: &Arc<IndexFile>, id: u32, count: u64) -> Result<Self, FormatError>
    where
        T: FileSafe,
    {
        let bytes = file.section_bytes(id)?;
        let size = std::mem::size_of::<T>() as u64;
        if count.checked_mul(size) != Some(bytes.len() as u64) {
            return Err(FormatError::SectionLength {
                section: id,
                expected: count.saturating_mul(size),
                found: bytes.len() as u64,
            });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return Err(FormatError::SectionType {
                section: id,
                len: bytes.len() as u64,
                type_name: std::any::type_name::<T>(),
                size: size as usize,
                align: std::mem::align_of::<T>(),
            });
        }
        let ptr = if bytes.is_empty() {
            NonNull::dangling()
        } else {
            NonNull::new(bytes.as_ptr() as *mut T).expect("slices are non-null")
        };
        Ok(Slab {
            ptr,
            len: count as usize,
            owner: Owner::File(Arc::clone(file)),
        })
    }

    /// Whether this is a view of a file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.owner, Owner::File(_))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes owned (0 for a file view).
    pub fn allocated_bytes(&self) -> usize {
        match &self.owner {
            Owner::Vec(v) => v.capacity() * std::mem::size_of::<T>(),
            Owner::Huge { written, .. } => (*written).max(self.len) * std::mem::size_of::<T>(),
            Owner::File(_) => 0,
        }
    }

    /// Runs `f` on the owned `Vec`, copying a file view into one first.
    pub fn with_vec<R>(&mut self, f: impl FnOnce(&mut Vec<T>) -> R) -> R
    where
        T: FileSafe,
    {
        self.copy_into_vec();
        let Owner::Vec(v) = &mut self.owner else {
            unreachable!("copy_into_vec leaves an owned Vec")
        };
        let r = f(v);
        self.ptr = NonNull::new(v.as_mut_ptr()).expect("Vec pointers are non-null");
        self.len = v.len();
        r
    }

    /// Grows (new elements from `f`) or shrinks to `n` elements.
    ///
    /// Arrays of at least `HUGE_MIN_BYTES` live in an anonymous mapping
    /// advised for transparent huge pages (Linux `MADV_HUGEPAGE`): an index
    /// reads its vectors and links at random, and with 4 KiB pages nearly
    /// every such read of a large index also misses the TLB. Growth reserves
    /// twice the size, which costs address space only: untouched pages are
    /// never made resident.
    pub fn resize_with(&mut self, n: usize, f: impl FnMut() -> T)
    where
        T: FileSafe,
    {
        self.resize_inner(n, f, false)
    }

    /// Like [`Slab::resize_with`] with all-zero new elements. In a huge-page
    /// array the never-written part of the mapping is zero already, so it
    /// is not touched: reserving capacity costs no resident memory until a
    /// row is actually written, as with `calloc`.
    pub fn resize_zeroed(&mut self, n: usize)
    where
        T: FileSafe + bytemuck::Zeroable,
    {
        self.resize_inner(n, T::zeroed, true)
    }

    /// Shrinks to `n` elements (nothing when it holds no more) that the
    /// caller has left all zero past `n`: unlike shrinking with
    /// [`Slab::resize_zeroed`], growing over them again does not clear
    /// them, so in a huge-page array a page that was never written is
    /// never touched. Were they not zero, growing again would show them.
    #[cfg_attr(not(feature = "forest"), allow(dead_code))]
    pub(crate) fn truncate_zeroed(&mut self, n: usize)
    where
        T: FileSafe + bytemuck::Zeroable,
    {
        if n >= self.len {
            return;
        }
        match self.owner {
            // `written` stays: what lies past `n` is zero, as past it.
            Owner::Huge { .. } => self.len = n,
            _ => self.resize_zeroed(n),
        }
    }

    /// Appends a copy of `src`: one block copy into the array's spare
    /// room, with no zeroing or per-element fill first (what
    /// [`Slab::resize_zeroed`] then a copy would cost).
    pub fn extend_from_slice(&mut self, src: &[T])
    where
        T: FileSafe + Copy,
    {
        let n = self
            .len
            .checked_add(src.len())
            .expect("array size overflows usize");
        let size = std::mem::size_of::<T>().max(1);
        if n.saturating_mul(size) < HUGE_MIN_BYTES && !matches!(self.owner, Owner::Huge { .. }) {
            self.with_vec(|v| v.extend_from_slice(src));
            return;
        }
        self.reserve_huge(n);
        let Owner::Huge {
            capacity, written, ..
        } = &mut self.owner
        else {
            unreachable!("reserve_huge leaves a huge-page mapping")
        };
        debug_assert!(n <= *capacity);
        // SAFETY: `reserve_huge` made room for `n` elements from `ptr`, so
        // `len..n` lies inside the mapping; `src` is a live slice that
        // cannot overlap the mapping's spare room (nothing hands out
        // references past `len`); T: FileSafe + Copy has no drop glue, so
        // overwriting an old value there is fine.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(self.len), src.len())
        };
        *written = (*written).max(n);
        self.len = n;
    }

    /// Makes the array a huge-page mapping with room for at least `n`
    /// elements (twice the old capacity when it grows), keeping the
    /// first `min(len, n)` elements.
    ///
    /// A huge-page array grows by `mremap` on Linux: its pages move to the
    /// larger mapping instead of being copied, so growth costs no second
    /// copy of the array at once, and pages never written stay untouched
    /// (a copy would make every page of the new mapping resident, zeros
    /// included: an array of a sparse id range several times its written
    /// part). The mapping's length is a whole number of huge pages, so the
    /// kernel keeps the moved pages at the same offset within a huge page
    /// and moves huge pages whole.
    fn reserve_huge(&mut self, n: usize)
    where
        T: FileSafe,
    {
        let size = std::mem::size_of::<T>().max(1);
        let capacity = match self.owner {
            Owner::Huge { capacity, .. } => capacity,
            _ => 0,
        };
        if n > capacity {
            let new_cap = n.max(capacity.saturating_mul(2));
            // One huge page of slack for aligning the start, and the length
            // rounded up to whole huge pages (the room rounded off is
            // capacity too).
            let bytes = new_cap
                .checked_mul(size)
                .and_then(|b| b.checked_add(2 * HUGE_PAGE - 1))
                .map(|b| b / HUGE_PAGE * HUGE_PAGE)
                .expect("array size overflows usize");
            let new_cap = (bytes - HUGE_PAGE) / size;
            #[cfg(all(target_os = "linux", not(miri)))]
            if let Owner::Huge { map, capacity, .. } = &mut self.owner {
                let offset = self.ptr.as_ptr() as usize - map.as_ptr() as usize;
                // SAFETY: `&mut self` means no reference into the mapping is
                // alive, and `ptr` is re-derived from the moved mapping below.
                // The mapping is anonymous: its grown part reads as zeros, as
                // a new mapping's would, so `written` still bounds what is
                // not zero.
                let moved =
                    unsafe { map.remap(bytes, memmap2::RemapOptions::new().may_move(true)) };
                if moved.is_ok() {
                    let _ = map.advise(memmap2::Advice::HugePage);
                    // `offset < HUGE_PAGE`: room for `new_cap` elements from it.
                    let start = map.as_mut_ptr().wrapping_add(offset) as *mut T;
                    self.ptr = NonNull::new(start).expect("mapped memory is non-null");
                    *capacity = new_cap;
                    return;
                }
                // Out of address space in place and elsewhere: try a copy.
            }
            let mut map = memmap2::MmapOptions::new()
                .len(bytes)
                .map_anon()
                .unwrap_or_else(|e| panic!("cannot map {bytes} bytes of memory: {e}"));
            // Huge pages are a hint: a kernel without them keeps 4 KiB pages
            // (and Miri, which cannot run `madvise`, skips it).
            #[cfg(all(target_os = "linux", not(miri)))]
            let _ = map.advise(memmap2::Advice::HugePage);
            // Start on a 2 MiB boundary so every touched 2 MiB of the array
            // can be one huge page.
            let base = map.as_mut_ptr();
            let start = base.wrapping_add(base.align_offset(HUGE_PAGE)) as *mut T;
            let keep = self.len.min(n);
            // SAFETY: the new mapping has room for `new_cap` elements from
            // `start` (one huge page of slack covers the alignment offset),
            // is page aligned (>= align_of::<T>() <= 64) and distinct from
            // the old storage, whose first `keep` elements are initialized.
            // T: FileSafe has no drop glue, so a bitwise move is a move.
            unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), start, keep) };
            self.owner = Owner::Huge {
                map,
                capacity: new_cap,
                written: keep,
            };
            self.ptr = NonNull::new(start).expect("mapped memory is non-null");
            self.len = keep;
        }
    }

    fn resize_inner(&mut self, n: usize, mut f: impl FnMut() -> T, zero: bool)
    where
        T: FileSafe,
    {
        let size = std::mem::size_of::<T>().max(1);
        if n.saturating_mul(size) < HUGE_MIN_BYTES && !matches!(self.owner, Owner::Huge { .. }) {
            self.with_vec(|v| v.resize_with(n, f));
            return;
        }
        self.reserve_huge(n);
        let Owner::Huge { mut written, .. } = self.owner else {
            unreachable!("reserve_huge leaves a huge-page mapping")
        };
        if zero {
            // Only the part written before (and since forgotten) needs zeroing.
            let dirty_end = written.min(n);
            if self.len < dirty_end {
                // SAFETY: elements `len..dirty_end` lie inside the mapping
                // (`dirty_end <= n <= capacity`); all-zero bytes are a valid T
                // (T: Zeroable) with nothing to drop.
                unsafe {
                    std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, dirty_end - self.len)
                };
            }
        } else {
            for i in self.len..n {
                // SAFETY: `i < n <= capacity`: the slot lies inside the
                // mapping; any old value there has no drop glue (T: FileSafe).
                unsafe { self.ptr.as_ptr().add(i).write(f()) };
            }
            written = written.max(n);
        }
        // Shrinking just forgets the tail (T has no drop glue), which may
        // hold anything written through `DerefMut`: growing over it again
        // must clear it.
        if n < self.len {
            written = written.max(self.len);
        }
        self.len = n;
        if let Owner::Huge {
            written: w,
            capacity: c,
            ..
        } = &mut self.owner
        {
            *w = written;
            *c = (*c).max(n);
        }
    }

    /// Copies a file view into owned memory (no-op when owned).
    pub fn make_owned(&mut self)
    where
        T: FileSafe,
    {
        if matches!(self.owner, Owner::File(_)) {
            // Same length: no element is created, so the closure never runs;
            // a large array lands in huge pages like one that was built.
            let n = self.len;
            self.resize_with(n, || unreachable!("resizing to the same length"));
        }
    }

    /// Copies a file view or a huge-page array into an owned `Vec` (no-op
    /// when it is one).
    fn copy_into_vec(&mut self)
    where
        T: FileSafe,
    {
        if !matches!(self.owner, Owner::Vec(_)) {
            let mut v = Vec::<T>::with_capacity(self.len);
            // SAFETY: `ptr` is valid for `len` initialized elements of the live
            // file or mapping (`owner` keeps it alive until the assignment
            // below); the new Vec has room for them and
            // is a distinct allocation; T: FileSafe makes the copied bits a
            // valid T with nothing to drop twice.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), v.as_mut_ptr(), self.len);
                v.set_len(self.len);
            }
            self.ptr = NonNull::new(v.as_mut_ptr()).expect("Vec pointers are non-null");
            self.owner = Owner::Vec(v);
        }
    }
}

impl<T> std::ops::Deref for Slab<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialized, aligned elements owned by
        // `owner` (a Vec not resized since `ptr` was taken, an anonymous
        // mapping whose first `len` elements `resize_with` initialized, or a
        // file section checked for length and alignment in `from_file`, kept
        // alive by the Arc); no `&mut` to them exists while `&self` is held.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: FileSafe> std::ops::DerefMut for Slab<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.make_owned();
        // SAFETY: as in `deref`, now over owned memory (a Vec or a private
        // anonymous mapping), with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::from_vec(Vec::new())
    }
}

impl<T> From<Vec<T>> for Slab<T> {
    fn from(v: Vec<T>) -> Self {
        Slab::from_vec(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_arrays_keep_data_and_zero_reused_tails() {
        let n = HUGE_MIN_BYTES / 8 + 10;
        let mut s: Slab<u64> = Slab::default();
        s.resize_zeroed(n);
        assert!(matches!(s.owner, Owner::Huge { .. }));
        assert!(s.iter().all(|&x| x == 0));
        for (i, x) in s.iter_mut().enumerate() {
            *x = i as u64;
        }
        // Growth copies into a new mapping.
        s.resize_with(3 * n, || 7);
        assert!(s[..n].iter().enumerate().all(|(i, &x)| x == i as u64));
        assert!(s[n..].iter().all(|&x| x == 7));
        // Shrink, then grow zeroed: the written tail must read as zero again.
        s.resize_zeroed(5);
        s.resize_zeroed(2 * n);
        assert_eq!(&s[..5], &[0, 1, 2, 3, 4]);
        assert!(s[5..].iter().all(|&x| x == 0));
        // `with_vec` still works on a huge array (it copies into a Vec).
        s.with_vec(|v| v.push(99));
        assert_eq!(s.len(), 2 * n + 1);
        assert_eq!(s[2 * n], 99);
    }

    #[test]
    fn extend_from_slice_appends_across_the_huge_threshold_and_over_old_data() {
        let row: Vec<u32> = (0..1000).collect();
        // Runs of at least 300 values (1200 bytes): enough to pass the threshold.
        let rows = HUGE_MIN_BYTES / 1200 + 3;
        let mut s: Slab<u32> = Slab::default();
        for r in 0..rows {
            s.extend_from_slice(&row[..(r % 7) * 100 + 300]);
        }
        assert!(matches!(s.owner, Owner::Huge { .. }));
        // Every appended run is intact, across the move into a mapping and
        // each doubling of it.
        let mut at = 0;
        for r in 0..rows {
            let len = (r % 7) * 100 + 300;
            assert_eq!(&s[at..at + len], &row[..len], "run {r}");
            at += len;
        }
        assert_eq!(s.len(), at);
        // Shrunk, then appended over written memory: no stale values, and a
        // later zeroed growth past the appended part reads as zero.
        s.resize_with(10, || 0);
        s.extend_from_slice(&[5, 6, 7]);
        assert_eq!(&s[..13], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 5, 6, 7]);
        s.resize_zeroed(at);
        assert!(s[13..].iter().all(|&x| x == 0));
        let empty: &[u32] = &[];
        s.extend_from_slice(empty);
        assert_eq!(s.len(), at);
    }

    /// What `DerefMut` wrote past the length an array shrank to reads as
    /// zero when it grows back, whether it grows within its mapping or
    /// past it (moved to a larger one).
    #[test]
    fn growing_back_clears_what_was_written_before_shrinking() {
        let n = HUGE_MIN_BYTES / 8 + 10;
        for past_capacity in [false, true] {
            let mut s: Slab<u64> = Slab::default();
            s.resize_zeroed(n);
            assert!(matches!(s.owner, Owner::Huge { .. }));
            s[n - 1] = 5;
            s[n / 2] = 6;
            s.resize_zeroed(n / 4);
            s[0] = 1;
            let grown = if past_capacity { 4 * n } else { n };
            s.resize_zeroed(grown);
            assert_eq!(s[0], 1);
            assert!(
                s[1..].iter().all(|&x| x == 0),
                "past capacity: {past_capacity}"
            );
        }
    }

    /// `truncate_zeroed` trusts the caller that the tail is zero, so growing
    /// back does not clear it; it still reads as zero.
    #[test]
    fn truncate_zeroed_then_growing_reads_zero() {
        let n = HUGE_MIN_BYTES / 8 + 10;
        let mut s: Slab<u64> = Slab::default();
        s.resize_zeroed(n);
        s[3] = 9;
        s[n - 1] = 5;
        s[n - 1] = 0;
        s.truncate_zeroed(10);
        assert_eq!(s.len(), 10);
        s.truncate_zeroed(20);
        assert_eq!(s.len(), 10);
        s.resize_zeroed(3 * n);
        assert_eq!(s[3], 9);
        assert_eq!(s.iter().filter(|&&x| x != 0).count(), 1);
        // Small arrays (a Vec) truncate too.
        let mut v: Slab<u32> = Slab::default();
        v.resize_zeroed(100);
        v.truncate_zeroed(4);
        assert_eq!(v.len(), 4);
    }

    /// Growing a huge-page array past its mapping moves its pages (Linux
    /// `mremap`) instead of copying it: the pages never written stay
    /// untouched, so the grown mapping's resident set is what was written,
    /// not the array's length. Measured on the array's own mapping (its
    /// line in `/proc/self/smaps`), so tests running beside it do not count.
    #[cfg(all(target_os = "linux", not(miri)))]
    #[test]
    fn growth_past_the_mapping_leaves_unwritten_pages_untouched() {
        fn mapping_rss(addr: usize) -> u64 {
            let smaps = std::fs::read_to_string("/proc/self/smaps").expect("procfs");
            let mut inside = false;
            for line in smaps.lines() {
                let range = line.split_whitespace().next().unwrap_or("");
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
                if let Some(kb) = line.strip_prefix("Rss:").filter(|_| inside) {
                    let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap();
                    return kb << 10;
                }
            }
            panic!("no mapping holds {addr:#x}");
        }
        const MIB: usize = 1 << 20;
        // 512 MiB of zeros, one element written at each end.
        let n = 512 * MIB / 8;
        let mut s: Slab<u64> = Slab::default();
        s.resize_zeroed(n);
        s[0] = 1;
        s[n - 1] = 2;
        s.resize_zeroed(n + 1);
        assert_eq!((s[0], s[n - 1], s[n]), (1, 2, 0));
        let rss = mapping_rss(s.as_ptr() as usize);
        // A copy would have written all 512 MiB into the new mapping.
        assert!(
            rss < 64 * MIB as u64,
            "{} MiB resident after growing",
            rss >> 20
        );
    }

    #[test]
    fn small_arrays_stay_in_a_vec() {
        let mut s: Slab<u32> = Slab::default();
        s.resize_with(100, || 3);
        assert!(matches!(s.owner, Owner::Vec(_)));
        assert_eq!(s.len(), 100);
        assert!(s.iter().all(|&x| x == 3));
    }
}
