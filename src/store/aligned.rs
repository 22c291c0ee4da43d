//! A growable buffer of plain-old-data whose start is 64-byte aligned.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::NonNull;

use bytemuck::Pod;

use super::ALIGN;

/// A `Vec`-like buffer of `T: Pod` whose first element sits on a 64-byte
/// boundary, so rows of a multiple of 64 bytes each start on a cache line.
///
/// Growth reallocates (keeping the alignment) and zero-fills new elements.
pub struct AlignedVec<T: Pod> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
}

// SAFETY: AlignedVec owns its buffer exclusively, like Vec<T>; T: Pod is Send + Sync.
unsafe impl<T: Pod> Send for AlignedVec<T> {}
// SAFETY: shared access only hands out `&[T]`, like Vec<T>.
unsafe impl<T: Pod> Sync for AlignedVec<T> {}

impl<T: Pod> AlignedVec<T> {
    /// An empty buffer (no allocation).
    pub fn new() -> Self {
        Self {
            ptr: NonNull::dangling_aligned(),
            len: 0,
            cap: 0,
        }
    }

    /// `len` zeroed elements.
    pub fn zeroed(len: usize) -> Self {
        let mut v = Self::new();
        v.resize_zeroed(len);
        v
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[T]) -> Self {
        let mut v = Self::new();
        v.extend_from_slice(data);
        v
    }

    fn layout(cap: usize) -> Layout {
        let size = cap
            .checked_mul(std::mem::size_of::<T>())
            .expect("capacity overflow");
        Layout::from_size_align(size.max(1), ALIGN.max(std::mem::align_of::<T>()))
            .expect("capacity overflow")
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of elements the buffer holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Makes room for at least `additional` more elements.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len.checked_add(additional).expect("capacity overflow");
        if need <= self.cap {
            return;
        }
        let new_cap = need
            .max(self.cap.saturating_mul(2))
            .max(ALIGN / std::mem::size_of::<T>().max(1));
        self.realloc(new_cap);
    }

    /// Makes room for exactly `additional` more elements (no doubling).
    pub fn reserve_exact(&mut self, additional: usize) {
        let need = self.len.checked_add(additional).expect("capacity overflow");
        if need > self.cap {
            self.realloc(need);
        }
    }

    fn realloc(&mut self, new_cap: usize) {
        debug_assert!(new_cap >= self.len);
        if std::mem::size_of::<T>() == 0 {
            self.cap = usize::MAX;
            return;
        }
        let new_layout = Self::layout(new_cap);
        // SAFETY: new_layout has non-zero size (`max(1)` above).
        let new_ptr = unsafe { alloc::alloc_zeroed(new_layout) } as *mut T;
        let Some(new_ptr) = NonNull::new(new_ptr) else {
            alloc::handle_alloc_error(new_layout);
        };
        if self.cap > 0 {
            // SAFETY: the old buffer holds `len` initialized elements, the new
            // one has room for `new_cap >= len`, and they are distinct allocations.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), new_ptr.as_ptr(), self.len);
                alloc::dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap));
            }
        }
        self.ptr = new_ptr;
        self.cap = new_cap;
    }

    /// Grows or shrinks to `len` elements; new elements are zero.
    pub fn resize_zeroed(&mut self, len: usize) {
        if len > self.len {
            self.reserve_exact(len - self.len);
            // SAFETY: capacity >= len; zero is a valid bit pattern for T: Pod.
            unsafe {
                std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, len - self.len);
            }
        }
        self.len = len;
    }

    /// Appends the elements of `data`.
    pub fn extend_from_slice(&mut self, data: &[T]) {
        self.reserve(data.len());
        // SAFETY: capacity >= len + data.len(); `data` cannot alias our buffer
        // while we hold `&mut self`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                data.len(),
            );
        }
        self.len += data.len();
    }

    /// Removes every element (keeps the allocation).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` is valid for `len` initialized elements (or dangling
        // and aligned with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The elements as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_slice())
    }

    /// Raw pointer to the first element (64-byte aligned).
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// Bytes allocated.
    pub fn allocated_bytes(&self) -> usize {
        self.cap * std::mem::size_of::<T>()
    }
}

trait DanglingAligned {
    fn dangling_aligned() -> Self;
}

impl<T> DanglingAligned for NonNull<T> {
    fn dangling_aligned() -> Self {
        // An aligned, non-null address that is never dereferenced (len == 0).
        NonNull::new(std::ptr::without_provenance_mut(
            ALIGN.max(std::mem::align_of::<T>()),
        ))
        .expect("non-zero")
    }
}

impl<T: Pod> Drop for AlignedVec<T> {
    fn drop(&mut self) {
        if self.cap > 0 && std::mem::size_of::<T>() > 0 {
            // SAFETY: allocated in `realloc` with exactly this layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap)) }
        }
    }
}

impl<T: Pod> Default for AlignedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Pod> Clone for AlignedVec<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self.as_slice())
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedVec")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

impl<T: Pod> std::ops::Deref for AlignedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> std::ops::DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_preserved_across_growth() {
        let mut v = AlignedVec::<f32>::new();
        for i in 0..10_000 {
            v.extend_from_slice(&[i as f32]);
            assert_eq!(v.as_ptr() as usize % ALIGN, 0);
        }
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        v.resize_zeroed(20_000);
        assert_eq!(v[9_999], 9_999.0);
        assert_eq!(v[19_999], 0.0);
        let c = v.clone();
        assert_eq!(c.as_slice(), v.as_slice());
    }
}
