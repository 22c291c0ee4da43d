//! What every binding shares: numpy input and output, the mapping from
//! `swann::Error` to Python exceptions, metric names and thread pools.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use swann::{Error, Metric};

/// Converts a swann error into the Python exception its callers expect:
/// bad input is a `ValueError`, an unknown label a `KeyError`, a state that
/// forbids the call (full, read-only, built) a `RuntimeError`, I/O an `OSError`.
pub fn to_py(err: Error) -> PyErr {
    match err {
        Error::DimensionMismatch { .. }
        | Error::NonFinite { .. }
        | Error::InvalidParameter(_)
        | Error::RaggedData { .. }
        | Error::ZeroK
        | Error::UnknownName { .. }
        | Error::IncompatibleFiles { .. }
        | Error::UnsupportedMetric { .. }
        | Error::BadDataFile { .. }
        | Error::Format(_) => PyValueError::new_err(err.to_string()),
        Error::UnknownLabel(label) => PyKeyError::new_err(label),
        Error::Io(e) => PyErr::from(e),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// `Result<T, swann::Error>` into `PyResult<T>`.
pub trait IntoPyResult<T> {
    /// Maps the error with [`to_py`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for swann::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Parses a metric name (`"l2"`, `"ip"`, `"cosine"`, `"angular"`, ...).
pub fn parse_metric(name: &str) -> PyResult<Metric> {
    name.parse::<Metric>().py()
}

/// A row-major `f32` matrix borrowed from (or converted once from) a Python
/// object. Holding the read-only borrow keeps numpy from handing the buffer
/// to a Rust writer while we read it.
pub struct Matrix<'py> {
    array: PyReadonlyArrayDyn<'py, f32>,
    /// Number of rows.
    pub rows: usize,
}

impl Matrix<'_> {
    /// The rows, contiguous.
    pub fn data(&self) -> &[f32] {
        self.array
            .as_slice()
            .expect("checked C-contiguous at construction")
    }
}

/// Reads `obj` as `rows x dim` float32 values: a float32 C-contiguous array
/// is used in place, anything else (other dtypes, lists, strided views) is
/// converted once with `numpy.ascontiguousarray`. A 1-D input is one row.
/// Wrong shapes give a `ValueError` naming the shape found.
pub fn matrix<'py>(obj: &Bound<'py, PyAny>, dim: usize, what: &str) -> PyResult<Matrix<'py>> {
    let py = obj.py();
    let direct = obj
        .extract::<PyReadonlyArrayDyn<'py, f32>>()
        .ok()
        .filter(|a| a.is_c_contiguous());
    let array = match direct {
        Some(a) => a,
        None => {
            let np = py.import("numpy")?;
            let converted = np
                .call_method1("ascontiguousarray", (obj, "float32"))
                .map_err(|e| {
                    PyTypeError::new_err(format!(
                        "{what} must be convertible to a float32 array: {e}"
                    ))
                })?;
            converted.extract::<PyReadonlyArrayDyn<'py, f32>>()?
        }
    };
    let shape = array.shape().to_vec();
    let (rows, cols) = match shape.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => {
            return Err(PyValueError::new_err(format!(
            "{what} must be a 1-D vector or a 2-D array of shape (n, {dim}), got shape {shape:?}"
        )))
        }
    };
    if cols != dim {
        return Err(PyValueError::new_err(format!(
            "{what} has dimension {cols}, the index expects {dim} (shape {shape:?})"
        )));
    }
    Ok(Matrix { array, rows })
}

/// Fails with a `ValueError` naming the first NaN or infinity in `rows`.
pub fn check_finite(rows: &[f32], dim: usize, what: &str) -> PyResult<()> {
    match rows.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(PyValueError::new_err(format!(
            "{what} row {} component {} is {}, not a finite number",
            i / dim.max(1),
            i % dim.max(1),
            rows[i]
        ))),
    }
}

/// Reads `obj` as a vector of `u64` labels: an int, or a 1-D sequence or
/// array of non-negative integers.
pub fn labels(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    if let Ok(one) = obj.extract::<u64>() {
        return Ok(vec![one]);
    }
    if let Ok(a) = obj.extract::<numpy::PyReadonlyArray1<'_, u64>>() {
        return Ok(a.as_array().to_vec());
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    if ndim > 1 {
        return Err(PyValueError::new_err(format!(
            "{what} must be an int or a 1-D sequence of ints"
        )));
    }
    let size: usize = arr.getattr("size")?.extract()?;
    if size == 0 {
        return Ok(Vec::new());
    }
    match kind.as_str() {
        "u" => {}
        "i" => {
            let negative: bool = arr.call_method0("min")?.lt(0)?;
            if negative {
                return Err(PyValueError::new_err(format!(
                    "{what} must be non-negative integers"
                )));
            }
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "{what} must be integers, got an array of dtype {}",
                arr.getattr("dtype")?.str()?
            )))
        }
    }
    let flat = arr
        .call_method1("astype", ("uint64",))?
        .call_method1("reshape", (-1,))?;
    let a = flat.extract::<numpy::PyReadonlyArray1<'_, u64>>()?;
    Ok(a.as_array().to_vec())
}

/// A `rows x cols` numpy array holding `data` (moved, not copied).
pub fn array2<'py, T: numpy::Element>(
    py: Python<'py>,
    data: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, data)
        .reshape([rows, cols])?
        .into_any())
}

/// `n` copies of `value`, or a `MemoryError` (not an abort) when `n` is
/// too large to allocate, e.g. an absurd `k`.
pub fn filled<T: Clone>(n: usize, value: T) -> PyResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        pyo3::exceptions::PyMemoryError::new_err(format!("cannot allocate {n} results"))
    })?;
    v.resize(n, value);
    Ok(v)
}

/// A 1-D numpy array holding `data` (moved, not copied).
pub fn array1<'py, T: numpy::Element>(
    py: Python<'py>,
    data: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, data).into_any())
}

/// Thread pools by size, built once and reused: a pool per call would cost
/// a thread spawn per thread per query batch.
fn pools() -> &'static Mutex<HashMap<usize, Arc<rayon::ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(Default::default)
}

/// Runs `f` on a pool of `num_threads` threads; `num_threads <= 0` means
/// rayon's global pool (one thread per core).
pub fn with_threads<R: Send>(num_threads: i64, f: impl FnOnce() -> R + Send) -> PyResult<R> {
    if num_threads <= 0 {
        return Ok(f());
    }
    let n = num_threads as usize;
    let pool = {
        let mut map = pools().lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&n) {
            Some(p) => Arc::clone(p),
            None => {
                let p = Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .thread_name(|i| format!("swann-{i}"))
                        .build()
                        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?,
                );
                map.insert(n, Arc::clone(&p));
                p
            }
        }
    };
    Ok(pool.install(f))
}

/// A Python callable `filter(label) -> bool` made callable from any thread:
/// each call re-attaches to the interpreter. The first exception it raises
/// is kept (and the label rejected) so the search can re-raise it.
pub struct PyFilter {
    func: Py<PyAny>,
    error: Mutex<Option<PyErr>>,
}

impl PyFilter {
    /// Wraps `func`.
    pub fn new(func: Py<PyAny>) -> Self {
        PyFilter {
            func,
            error: Mutex::new(None),
        }
    }

    /// Whether `label` passes.
    pub fn accept(&self, label: u64) -> bool {
        Python::attach(|py| {
            match self
                .func
                .bind(py)
                .call1((label,))
                .and_then(|r| r.is_truthy())
            {
                Ok(b) => b,
                Err(e) => {
                    let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert(e);
                    false
                }
            }
        })
    }

    /// The first exception the callable raised, if any.
    pub fn take_error(&self) -> Option<PyErr> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// hnswlib's message when a query finds fewer than `k` results.
pub const TOO_FEW: &str =
    "Cannot return the results in a contiguous 2D array. Probably ef or M is too small";
