//! The crate's error type.

use crate::Metric;

/// Result alias with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in swann's safe API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector has the wrong number of components.
    #[error("vector has dimension {got}, the index expects {expected}")]
    DimensionMismatch {
        /// The index's dimension.
        expected: usize,
        /// The dimension given.
        got: usize,
    },
    /// A vector holds NaN or an infinity.
    #[error("vector component {index} is {value}, not a finite number")]
    NonFinite {
        /// Position of the first bad component.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A flat buffer of several vectors (a batch of inserts or queries,
    /// training data) is not a whole number of rows of the dimension.
    #[error("{what} holds {len} elements, not a multiple of the dimension {dim}")]
    RaggedData {
        /// What the buffer is (`"query data"`, `"training data"`, ...).
        what: &'static str,
        /// Its number of elements.
        len: usize,
        /// The dimension it should be rows of.
        dim: usize,
    },
    /// A search asked for `k = 0` neighbours.
    #[error("k must be at least 1")]
    ZeroK,
    /// A name (a metric, a quantization scheme) that the crate does not know.
    #[error("unknown {kind} {name:?}; expected one of {expected}")]
    UnknownName {
        /// What was being named (`"metric"`, `"quantization"`).
        kind: &'static str,
        /// The name given.
        name: String,
        /// The names accepted, comma-separated.
        expected: String,
    },
    /// A resize below the number of labels the index holds (nothing changed).
    #[error("cannot resize to {requested}: the index holds {len} labels")]
    CapacityTooSmall {
        /// The capacity asked for.
        requested: usize,
        /// The labels held.
        len: usize,
    },
    /// Index files that must agree (the shards of one manifest) do not;
    /// `path` is the one that differs from the first.
    #[error("{path}: {reason}")]
    IncompatibleFiles {
        /// The file that does not fit.
        path: String,
        /// How it differs.
        reason: String,
    },
    /// The label is not in the index (or is deleted, where that matters).
    #[error("label {0} is not in the index")]
    UnknownLabel(u64),
    /// An insert found the index full and the call may not grow it.
    #[error("index is full (capacity {capacity}); reserve or resize it first")]
    CapacityExceeded {
        /// The current capacity.
        capacity: usize,
    },
    /// The index kind does not implement this metric.
    #[error("{index} does not support metric {metric}")]
    UnsupportedMetric {
        /// The metric asked for.
        metric: Metric,
        /// The index kind.
        index: &'static str,
    },
    /// An operation is not valid in the index's current state.
    #[error("{0}")]
    InvalidState(String),
    /// The index is built and takes no more items (unbuild it first).
    #[error("the index is built and takes no more items; unbuild it first")]
    AlreadyBuilt,
    /// The index must be built first.
    #[error("the index is not built yet")]
    NotBuilt,
    /// A data file could not be parsed.
    #[error("{path}: {reason}")]
    BadDataFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A storage backend (e.g. Redis) failed, or returned data that does not
    /// decode; the message says which and why.
    #[error("storage error ({backend}): {message}")]
    Storage {
        /// Which backend (`"redis"`, `"memory"`, ...).
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An index file is malformed, corrupt, or not the index asked for.
    #[error("index file: {0}")]
    Format(#[from] crate::store::FormatError),
}

/// Checks that `v` has `dim` finite components, as every index does before
/// it stores or searches a vector.
///
/// ```
/// use swann::error::{check_vector, Error};
/// assert!(check_vector(&[1.0, 2.0], 2).is_ok());
/// assert!(matches!(check_vector(&[1.0], 2), Err(Error::DimensionMismatch { .. })));
/// assert!(matches!(
///     check_vector(&[1.0, f32::NAN], 2),
///     Err(Error::NonFinite { index: 1, .. })
/// ));
/// ```
///
/// # Errors
/// [`Error::DimensionMismatch`] when `v.len() != dim`; [`Error::NonFinite`]
/// naming the first NaN or infinite component.
pub fn check_vector(v: &[f32], dim: usize) -> Result<()> {
    if v.len() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: v.len(),
        });
    }
    if let Some((index, value)) = crate::error::first_non_finite(v) {
        return Err(Error::NonFinite { index, value });
    }
    Ok(())
}

/// The index and value of the first NaN or infinite element of `v`. A
/// branch-free pass per chunk (the largest magnitude's bits, which
/// vectorizes) finds a chunk that holds one; only then is it searched
/// element by element. Every coder and insert checks its input with this,
/// so it costs a fraction of the work it guards.
#[inline]
pub(crate) fn first_non_finite(v: &[f32]) -> Option<(usize, f32)> {
    const CHUNK: usize = 64;
    const EXPONENT: u32 = 0x7f80_0000;
    for (c, chunk) in v.chunks(CHUNK).enumerate() {
        let top = chunk
            .iter()
            .fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff));
        if top >= EXPONENT {
            return chunk
                .iter()
                .position(|x| !x.is_finite())
                .map(|i| (c * CHUNK + i, chunk[i]));
        }
    }
    None
}

/// Checks that `data` is whole rows of `dim` elements ([`Error::RaggedData`]
/// naming `what` otherwise); `dim` must be positive.
pub(crate) fn check_rows(what: &'static str, len: usize, dim: usize) -> Result<()> {
    if dim == 0 || !len.is_multiple_of(dim) {
        return Err(Error::RaggedData { what, len, dim });
    }
    Ok(())
}

/// Checks that a search asks for at least one neighbour.
pub(crate) fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::ZeroK);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    #[test]
    fn first_non_finite_finds_the_first_in_any_chunk() {
        let edge = [f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, -0.0, 0.0];
        for len in [0usize, 1, 63, 64, 65, 200] {
            let v: Vec<f32> = (0..len).map(|i| edge[i % edge.len()]).collect();
            assert_eq!(first_non_finite(&v), None, "len {len}");
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
                for at in [0, len / 2, len.saturating_sub(1)] {
                    if at >= len {
                        continue;
                    }
                    let mut w = v.clone();
                    w[at] = bad;
                    // A second one further on is not the first.
                    if at + 70 < len {
                        w[at + 70] = f32::NAN;
                    }
                    let (i, x) = first_non_finite(&w).expect("one is there");
                    assert_eq!(i, at, "len {len}");
                    assert_eq!(x.to_bits(), bad.to_bits());
                }
            }
        }
    }
}
