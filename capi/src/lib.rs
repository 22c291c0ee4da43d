//! C ABI for swann: the HNSW graph ([`hnsw`]), the random-projection
//! forest ([`forest`], Annoy's method) and the exact flat index ([`flat`])
//! behind opaque handles.
//!
//! The rules every exported function follows (the generated header,
//! `include/swann.h`, repeats them for C readers):
//!
//! - It returns a [`SwannStatus`]; results come back through out-pointers
//!   that are written only on success.
//! - On failure the calling thread's error message
//!   ([`swann_last_error_message`]) says what went wrong; each call clears
//!   it first, so after a success it is empty.
//! - No Rust panic crosses the boundary: each body runs under
//!   [`std::panic::catch_unwind`] and a panic becomes
//!   [`SwannStatus::Panic`] with the panic's message.
//! - Null pointers, misaligned pointers and lengths that disagree with the
//!   index are reported as errors, never dereferenced.
//! - Each handle wraps its index in a read-write lock: reads (searches,
//!   getters) share it, changes take it alone, so any calls may be made
//!   concurrently on one handle except its `free`.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

/// A `&'static CStr` from a string literal. (The `c"..."` literal syntax is
/// avoided: cbindgen's parser does not read it.)
macro_rules! cstr {
    ($s:expr) => {
        match ::std::ffi::CStr::from_bytes_with_nul(concat!($s, "\0").as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("string literal with an interior NUL"),
        }
    };
}

pub mod flat;
pub mod forest;
pub mod hnsw;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a call returns. `SWANN_STATUS_OK` (0) is success; every other
/// value is a failure whose message [`swann_last_error_message`] gives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwannStatus {
    /// Success.
    Ok = 0,
    /// An argument is out of range or inconsistent: a vector of the wrong
    /// dimension or with NaN/infinite components, `k == 0`, an unknown
    /// metric name, a parameter the index rejects.
    InvalidArgument = 1,
    /// A pointer argument that must not be NULL is NULL (or is misaligned
    /// for its type).
    NullPointer = 2,
    /// The operating system reported an I/O error (open, read, write, map).
    Io = 3,
    /// A file is not a swann index of the expected kind, or is corrupt.
    Format = 4,
    /// The label or item id is not in the index.
    NotFound = 5,
    /// The index is full and the call may not grow it.
    IndexFull = 6,
    /// The index's state forbids the call: searching an unbuilt forest,
    /// adding to a built one, using a handle a panic left inconsistent.
    State = 7,
    /// A Rust panic was caught; the message holds the panic's text.
    Panic = 8,
    /// A caller's buffer is too small for the whole result (it holds a
    /// truncated, NUL-terminated prefix).
    BufferTooSmall = 9,
    /// Anything else (e.g. a thread pool that could not start).
    Other = 10,
}

/// A failure on its way to the caller: the status and the message.
#[derive(Debug)]
pub(crate) struct Failure {
    status: SwannStatus,
    message: String,
}

impl Failure {
    pub(crate) fn new(status: SwannStatus, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(SwannStatus::InvalidArgument, message)
    }

    pub(crate) fn null(what: &str) -> Self {
        Failure::new(SwannStatus::NullPointer, format!("{what} is NULL"))
    }
}

/// The status a library error is reported with.
pub fn status_of(err: &swann::Error) -> SwannStatus {
    use swann::Error as E;
    match err {
        E::DimensionMismatch { .. }
        | E::NonFinite { .. }
        | E::InvalidParameter(_)
        | E::RaggedData { .. }
        | E::ZeroK
        | E::UnknownName { .. }
        | E::CapacityTooSmall { .. }
        | E::IncompatibleFiles { .. }
        | E::UnsupportedMetric { .. } => SwannStatus::InvalidArgument,
        E::UnknownLabel(_) => SwannStatus::NotFound,
        E::CapacityExceeded { .. } => SwannStatus::IndexFull,
        E::InvalidState(_) | E::AlreadyBuilt | E::NotBuilt => SwannStatus::State,
        E::BadDataFile { .. } | E::Format(_) => SwannStatus::Format,
        E::Io(_) => SwannStatus::Io,
        _ => SwannStatus::Other,
    }
}

impl From<swann::Error> for Failure {
    fn from(err: swann::Error) -> Self {
        Failure::new(status_of(&err), err.to_string())
    }
}

pub(crate) type CResult<T> = Result<T, Failure>;

thread_local! {
    /// The calling thread's last error message, NUL-terminated. Cleared
    /// (to just the NUL) at the start of every call; its buffer is reused.
    static LAST_ERROR: RefCell<Vec<u8>> = RefCell::new(vec![0]);
    /// Set by `swann_debug_panic_next_call`: the next call on this thread
    /// panics inside its guard.
    static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
}

fn clear_error() {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push(0);
    });
}

fn set_error(message: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        // Interior NULs would cut the C string short; show them instead.
        e.extend(message.bytes().map(|b| if b == 0 { b'?' } else { b }));
        e.push(0);
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs the body of an exported function: clears the thread's error,
/// catches any panic, and turns the outcome into a status (recording the
/// message on failure).
pub(crate) fn guard(body: impl FnOnce() -> CResult<()>) -> SwannStatus {
    clear_error();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("forced by swann_debug_panic_next_call");
        }
        body()
    }));
    match outcome {
        Ok(Ok(())) => SwannStatus::Ok,
        Ok(Err(f)) => {
            set_error(&f.message);
            f.status
        }
        Err(payload) => {
            set_error(&format!("panic: {}", panic_message(payload.as_ref())));
            SwannStatus::Panic
        }
    }
}

/// An index behind a read-write lock, with a flag set when a panic
/// unwound out of a change (the index may then be half-changed).
pub(crate) struct Shared<T> {
    lock: RwLock<T>,
    poisoned: AtomicBool,
}

impl<T> Shared<T> {
    pub(crate) fn new(value: T) -> Self {
        Shared {
            lock: RwLock::new(value),
            poisoned: AtomicBool::new(false),
        }
    }

    fn check(&self) -> CResult<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Failure::new(
                SwannStatus::State,
                "a panic interrupted an earlier change to this index; free the handle",
            ));
        }
        Ok(())
    }

    /// Shared access, for calls that do not change the index.
    pub(crate) fn read(&self) -> CResult<RwLockReadGuard<'_, T>> {
        self.check()?;
        Ok(self.lock.read())
    }

    /// Exclusive access for a change; a panic inside `f` marks the handle
    /// unusable and goes on unwinding to the call's guard.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut T) -> CResult<R>) -> CResult<R> {
        self.check()?;
        let mut guard: RwLockWriteGuard<'_, T> = self.lock.write();
        match catch_unwind(AssertUnwindSafe(|| f(&mut guard))) {
            Ok(r) => r,
            Err(payload) => {
                self.poisoned.store(true, Ordering::Release);
                drop(guard);
                std::panic::resume_unwind(payload)
            }
        }
    }
}

/// Borrows the handle behind `h`.
///
/// # Safety
/// `h` is NULL or a pointer returned by this library's constructor for `T`
/// and not yet freed.
pub(crate) unsafe fn handle<'a, T>(h: *const T, what: &str) -> CResult<&'a T> {
    if h.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-null, and by the contract above it points to a live
    // handle that the library allocated (so it is aligned and initialized).
    Ok(unsafe { &*h })
}

/// Checks a pointer for NULL and alignment.
fn check_ptr<T>(p: *const T, what: &str) -> CResult<()> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    if !p.is_aligned() {
        return Err(Failure::new(
            SwannStatus::NullPointer,
            format!("{what} is not aligned for its type"),
        ));
    }
    Ok(())
}

/// Checks that `len` elements of `T` fit in a Rust slice.
fn check_len<T>(len: usize, what: &str) -> CResult<()> {
    let bytes = len.checked_mul(std::mem::size_of::<T>());
    if bytes.is_none_or(|b| b > isize::MAX as usize) {
        return Err(Failure::invalid(format!(
            "{what}: {len} elements is too large"
        )));
    }
    Ok(())
}

/// Borrows `len` elements at `p` (NULL is allowed when `len` is 0).
///
/// # Safety
/// Unless NULL, `p` points to `len` initialized elements that stay valid and
/// unchanged for `'a`.
pub(crate) unsafe fn slice<'a, T>(p: *const T, len: usize, what: &str) -> CResult<&'a [T]> {
    if len == 0 && p.is_null() {
        return Ok(&[]);
    }
    check_ptr(p, what)?;
    check_len::<T>(len, what)?;
    // SAFETY: `p` is non-null and aligned (checked), the byte length fits
    // `isize` (checked), and the caller promises `len` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrows `len` writable elements at `p` as possibly uninitialized memory
/// (NULL is allowed when `len` is 0): the library only writes to it.
///
/// # Safety
/// Unless NULL, `p` points to `len` writable elements, not aliased by any
/// other argument, that stay valid for `'a`.
pub(crate) unsafe fn slice_mut<'a, T>(
    p: *mut T,
    len: usize,
    what: &str,
) -> CResult<&'a mut [MaybeUninit<T>]> {
    if len == 0 && p.is_null() {
        return Ok(&mut []);
    }
    check_ptr(p.cast_const(), what)?;
    check_len::<T>(len, what)?;
    // SAFETY: `p` is non-null and aligned (checked), the byte length fits
    // `isize` (checked), and the caller promises `len` writable, unaliased
    // elements. `MaybeUninit` makes no claim that they are initialized.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<MaybeUninit<T>>(), len) })
}

/// [`slice_mut`] for an optional output: NULL means "not wanted".
///
/// # Safety
/// As for [`slice_mut`].
pub(crate) unsafe fn opt_slice_mut<'a, T>(
    p: *mut T,
    len: usize,
    what: &str,
) -> CResult<Option<&'a mut [MaybeUninit<T>]>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { slice_mut(p, len, what) }.map(Some)
}

/// Copies `src` into the front of `dst` (which must be at least as long).
pub(crate) fn fill_from<T: Copy>(dst: &mut [MaybeUninit<T>], src: impl IntoIterator<Item = T>) {
    for (d, s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

/// Checks that an out-pointer is usable, before any work is done.
pub(crate) fn check_out<T>(p: *mut T, what: &str) -> CResult<()> {
    check_ptr(p.cast_const(), what)
}

/// Writes `value` through an out-pointer already checked with [`check_out`].
///
/// # Safety
/// `p` is non-null, aligned and points to writable memory for a `T`.
pub(crate) unsafe fn put<T>(p: *mut T, value: T) {
    // SAFETY: by the contract above; `write` does not read or drop the old
    // (possibly uninitialized) value.
    unsafe { p.write(value) }
}

/// Reads a NUL-terminated string argument.
///
/// # Safety
/// Unless NULL, `s` points to a NUL-terminated string that stays valid for
/// `'a`.
pub(crate) unsafe fn c_str<'a>(s: *const c_char, what: &str) -> CResult<&'a CStr> {
    if s.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-null and NUL-terminated by the contract above.
    Ok(unsafe { CStr::from_ptr(s) })
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// As for [`c_str`].
pub(crate) unsafe fn utf8<'a>(s: *const c_char, what: &str) -> CResult<&'a str> {
    // SAFETY: forwarded contract.
    let c = unsafe { c_str(s, what) }?;
    c.to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// Reads a file path argument (any bytes on Unix, UTF-8 elsewhere).
///
/// # Safety
/// As for [`c_str`].
pub(crate) unsafe fn path(s: *const c_char, what: &str) -> CResult<PathBuf> {
    // SAFETY: forwarded contract.
    let c = unsafe { c_str(s, what) }?;
    if c.is_empty() {
        return Err(Failure::invalid(format!("{what} is empty")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        c.to_str()
            .map(PathBuf::from)
            .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
    }
}

/// Parses a metric name.
pub(crate) fn metric(name: &str) -> CResult<swann::Metric> {
    name.parse::<swann::Metric>().map_err(Failure::from)
}

/// The `search_k` / `ef` convention: -1 is the default, other negatives are
/// errors.
pub(crate) fn knob(value: i64, what: &str) -> CResult<Option<usize>> {
    match value {
        -1 => Ok(None),
        v if v >= 0 => usize::try_from(v)
            .map(Some)
            .map_err(|_| Failure::invalid(format!("{what} {v} is too large"))),
        v => Err(Failure::invalid(format!(
            "{what} must be -1 (the default) or at least 0, got {v}"
        ))),
    }
}

/// The thread-count convention: -1 is every core, positive is that many,
/// anything else an error. Returns `None` for every core.
pub(crate) fn threads(n: i32) -> CResult<Option<usize>> {
    match n {
        -1 => Ok(None),
        n if n >= 1 => Ok(Some(n as usize)),
        n => Err(Failure::invalid(format!(
            "thread count must be -1 (every core) or at least 1, got {n}"
        ))),
    }
}

/// Thread pools by size, built once and reused: a pool per call would cost
/// a thread spawn per thread per batch.
fn pools() -> &'static Mutex<HashMap<usize, Arc<rayon::ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(Default::default)
}

/// Runs `f` on a pool of `n` threads (`None`: rayon's global pool, one
/// thread per core).
pub(crate) fn with_threads<R: Send>(n: Option<usize>, f: impl FnOnce() -> R + Send) -> CResult<R> {
    let n = match n {
        Some(n) => n,
        None => return Ok(f()),
    };
    let pool = {
        let mut map = pools().lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&n) {
            Some(p) => Arc::clone(p),
            None => {
                let p = Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .thread_name(|i| format!("swann-capi-{i}"))
                        .build()
                        .map_err(|e| Failure::new(SwannStatus::Other, e.to_string()))?,
                );
                map.insert(n, Arc::clone(&p));
                p
            }
        }
    };
    Ok(pool.install(f))
}

/// Copies `text` into a caller's buffer of `len` bytes as a NUL-terminated
/// string (truncated if it does not fit) and stores the size it needs,
/// NUL included, in `needed` (optional).
///
/// # Safety
/// `buf` is NULL (only with `len == 0`) or points to `len` writable bytes;
/// `needed` is NULL or points to a writable `size_t`.
pub(crate) unsafe fn copy_out(
    text: &[u8],
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> CResult<()> {
    if !needed.is_null() {
        check_out(needed, "needed")?;
    }
    // SAFETY: forwarded contract for `buf`.
    let out = unsafe { slice_mut(buf.cast::<u8>(), len, "buf") }?;
    if !needed.is_null() {
        // SAFETY: checked non-null and aligned above; writable by contract.
        unsafe { put(needed, text.len() + 1) };
    }
    if out.is_empty() {
        return Err(Failure::new(
            SwannStatus::BufferTooSmall,
            format!("the buffer is empty; {} bytes needed", text.len() + 1),
        ));
    }
    let n = text.len().min(out.len() - 1);
    fill_from(&mut out[..n], text[..n].iter().copied());
    out[n].write(0);
    if n < text.len() {
        return Err(Failure::new(
            SwannStatus::BufferTooSmall,
            format!(
                "the buffer holds {} bytes; {} needed",
                out.len(),
                text.len() + 1
            ),
        ));
    }
    Ok(())
}

/// The calling thread's last error message: empty after a successful call,
/// else the message of the failed call.
///
/// Ownership: the string belongs to the library. It stays valid, unchanged,
/// until the calling thread's next call of a function that returns a
/// `SwannStatus` (other than `swann_last_error_copy`); copy it to keep it.
/// Never NULL.
#[no_mangle]
pub extern "C" fn swann_last_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr().cast())
}

/// Copies the calling thread's last error message into `buf` (`len` bytes,
/// caller-owned) as a NUL-terminated string, truncated if it does not fit,
/// and stores the bytes the whole message needs (NUL included) in `needed`
/// (may be NULL). Does not change the message.
///
/// Returns `SWANN_STATUS_BUFFER_TOO_SMALL` when it was truncated, and
/// `SWANN_STATUS_NULL_POINTER` when `buf` is NULL and `len` is not 0.
///
/// # Safety
/// `buf` points to `len` writable bytes (or is NULL with `len == 0`);
/// `needed` is NULL or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swann_last_error_copy(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> SwannStatus {
    let text: Vec<u8> = LAST_ERROR.with(|e| {
        let e = e.borrow();
        e[..e.len() - 1].to_vec()
    });
    let status = guard(|| {
        // SAFETY: forwarded contract.
        unsafe { copy_out(&text, buf, len, needed) }
    });
    // The copy's own outcome must not replace the message being copied
    // (unless it panicked: that is reported as any panic is).
    if status != SwannStatus::Panic {
        set_error(std::str::from_utf8(&text).unwrap_or("(message not UTF-8)"));
    }
    status
}

/// A static name for a status value (`"ok"`, `"invalid argument"`, ...;
/// `"unknown status"` for values this library does not return). The string
/// is owned by the library and lives for the whole process.
#[no_mangle]
pub extern "C" fn swann_status_name(status: i32) -> *const c_char {
    let s: &'static CStr = match status {
        0 => cstr!("ok"),
        1 => cstr!("invalid argument"),
        2 => cstr!("null pointer"),
        3 => cstr!("I/O error"),
        4 => cstr!("bad or corrupt file"),
        5 => cstr!("not found"),
        6 => cstr!("index full"),
        7 => cstr!("invalid state"),
        8 => cstr!("panic"),
        9 => cstr!("buffer too small"),
        10 => cstr!("other error"),
        _ => cstr!("unknown status"),
    };
    s.as_ptr()
}

/// The library's version, e.g. `"0.1.0"` (static, owned by the library).
#[no_mangle]
pub extern "C" fn swann_version() -> *const c_char {
    const VERSION: &CStr = cstr!(env!("CARGO_PKG_VERSION"));
    VERSION.as_ptr()
}

/// Test hook: with `enable` non-zero, the next `swann_*` call made on the
/// calling thread panics inside the library (before touching its
/// arguments) and returns `SWANN_STATUS_PANIC`, showing that a panic never
/// unwinds into C; `enable == 0` disarms it. The flag is per thread and is
/// consumed by the call that panics. Not meant for production use.
#[no_mangle]
pub extern "C" fn swann_debug_panic_next_call(enable: i32) {
    PANIC_NEXT.with(|p| p.set(enable != 0));
}
