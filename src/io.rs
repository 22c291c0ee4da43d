//! Readers and writers for the standard vector files.
//!
//! - `.fvecs`: per row a little-endian `i32` dimension, then that many `f32`.
//! - `.bvecs`: per row an `i32` dimension, then that many `u8` (widened to `f32` on read).
//! - `.ivecs`: per row an `i32` dimension, then that many `i32` (ground-truth ids).
//! - `.npy`: NumPy's format, version 1.0/2.0/3.0, C order, 2-D, dtype
//!   `<f4`, `<f8`, `|u1`, `<i4`, `<i8` (converted to the requested type).
//!
//! Every reader validates the whole file (every row's dimension, the total
//! size) and reports a bad file as [`Error::BadDataFile`], never a panic.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// A dense row-major matrix of `rows x dim` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    /// Number of components per row.
    pub dim: usize,
    /// `rows * dim` values, row after row.
    pub data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= self.rows()`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterates over the rows.
    pub fn iter_rows(&self) -> impl ExactSizeIterator<Item = &[T]> + '_ {
        self.data.chunks_exact(self.dim.max(1))
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadDataFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a `*vecs` file whose elements are `elem` bytes each, returning the
/// dimension and the raw element bytes of every row (dimension headers removed).
fn read_vecs_raw(path: &Path, elem: usize) -> Result<(usize, Vec<u8>)> {
    let bytes = fs::read(path)?;
    if bytes.is_empty() {
        return Ok((0, Vec::new()));
    }
    if bytes.len() < 4 {
        return Err(bad(path, "file shorter than one dimension header"));
    }
    let dim = i32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    if dim <= 0 {
        return Err(bad(path, format!("row 0 has dimension {dim}")));
    }
    let dim = dim as usize;
    let row_bytes = 4 + dim * elem;
    if bytes.len() % row_bytes != 0 {
        return Err(bad(
            path,
            format!(
                "size {} is not a multiple of the row size {row_bytes} (dimension {dim})",
                bytes.len()
            ),
        ));
    }
    let rows = bytes.len() / row_bytes;
    let mut out = Vec::with_capacity(rows * dim * elem);
    for (i, row) in bytes.chunks_exact(row_bytes).enumerate() {
        let d = i32::from_le_bytes(row[0..4].try_into().expect("4 bytes"));
        if d as i64 != dim as i64 {
            return Err(bad(
                path,
                format!("row {i} has dimension {d}, row 0 has {dim}"),
            ));
        }
        out.extend_from_slice(&row[4..]);
    }
    Ok((dim, out))
}

/// Reads an `.fvecs` file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::BadDataFile`] for a
/// first dimension that is not positive, a size that is not a whole number of
/// rows, or a row whose dimension differs from the first's.
pub fn read_fvecs(path: impl AsRef<Path>) -> Result<Matrix<f32>> {
    let path = path.as_ref();
    let (dim, raw) = read_vecs_raw(path, 4)?;
    let data = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(Matrix { dim, data })
}

/// Reads a `.bvecs` file, widening each byte to `f32`.
///
/// # Errors
/// As [`read_fvecs`].
pub fn read_bvecs(path: impl AsRef<Path>) -> Result<Matrix<f32>> {
    let path = path.as_ref();
    let (dim, raw) = read_vecs_raw(path, 1)?;
    let mut data = vec![0.0f32; raw.len()];
    crate::kernels::active().widen_u8(&raw, &mut data);
    Ok(Matrix { dim, data })
}

/// Reads a `.bvecs` file as bytes.
///
/// # Errors
/// As [`read_fvecs`].
pub fn read_bvecs_u8(path: impl AsRef<Path>) -> Result<Matrix<u8>> {
    let (dim, data) = read_vecs_raw(path.as_ref(), 1)?;
    Ok(Matrix { dim, data })
}

/// Reads an `.ivecs` file.
///
/// # Errors
/// As [`read_fvecs`].
pub fn read_ivecs(path: impl AsRef<Path>) -> Result<Matrix<i32>> {
    let (dim, raw) = read_vecs_raw(path.as_ref(), 4)?;
    let data = raw
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Ok(Matrix { dim, data })
}

/// Checks that `m` can be written as whole rows of a vector file, before
/// the file is created.
fn check_writable<T>(m: &Matrix<T>) -> Result<()> {
    if m.dim == 0 || m.dim > i32::MAX as usize || !m.data.len().is_multiple_of(m.dim) {
        return Err(Error::InvalidParameter(format!(
            "a matrix of dimension {} holding {} elements is not whole rows a vector file can hold",
            m.dim,
            m.data.len()
        )));
    }
    Ok(())
}

/// Writes an `.fvecs` file.
///
/// # Errors
/// [`Error::InvalidParameter`] for a matrix of dimension 0 or above
/// `i32::MAX`, or whose data is not whole rows (nothing is written);
/// [`Error::Io`] when the file cannot be created or written.
pub fn write_fvecs(path: impl AsRef<Path>, m: &Matrix<f32>) -> Result<()> {
    check_writable(m)?;
    let mut w = std::io::BufWriter::new(fs::File::create(path)?);
    for row in m.iter_rows() {
        w.write_all(&(m.dim as i32).to_le_bytes())?;
        for x in row {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Writes an `.ivecs` file.
///
/// # Errors
/// As [`write_fvecs`].
pub fn write_ivecs(path: impl AsRef<Path>, m: &Matrix<i32>) -> Result<()> {
    check_writable(m)?;
    let mut w = std::io::BufWriter::new(fs::File::create(path)?);
    for row in m.iter_rows() {
        w.write_all(&(m.dim as i32).to_le_bytes())?;
        for x in row {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Element types a `.npy` file may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NpyType {
    F4,
    F8,
    U1,
    I4,
    I8,
}

impl NpyType {
    fn size(self) -> usize {
        match self {
            NpyType::U1 => 1,
            NpyType::F4 | NpyType::I4 => 4,
            NpyType::F8 | NpyType::I8 => 8,
        }
    }
}

/// Parses a `.npy` header; returns (type, rows, cols, data offset).
fn parse_npy(path: &Path, bytes: &[u8]) -> Result<(NpyType, usize, usize, usize)> {
    if bytes.len() < 10 || &bytes[0..6] != b"\x93NUMPY" {
        return Err(bad(path, "not a .npy file (bad magic)"));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad(path, "truncated header"));
            }
            (
                u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize,
                12,
            )
        }
        v => return Err(bad(path, format!("unsupported .npy version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(path, "truncated header"))?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| bad(path, "header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest.find(':')?;
        Some(rest[colon + 1..].trim_start())
    };
    let descr = field("descr").ok_or_else(|| bad(path, "header has no descr"))?;
    let descr = descr
        .trim_start_matches(['\'', '"'])
        .split(['\'', '"'])
        .next()
        .unwrap_or("");
    let ty = match descr {
        "<f4" => NpyType::F4,
        "<f8" => NpyType::F8,
        "|u1" | "<u1" | "u1" => NpyType::U1,
        "<i4" => NpyType::I4,
        "<i8" => NpyType::I8,
        other => return Err(bad(path, format!("unsupported dtype {other:?}"))),
    };
    let fortran = field("fortran_order").ok_or_else(|| bad(path, "header has no fortran_order"))?;
    if fortran.starts_with("True") {
        return Err(bad(
            path,
            "Fortran-order arrays are not supported; save with C order",
        ));
    }
    let shape = field("shape").ok_or_else(|| bad(path, "header has no shape"))?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(path, "malformed shape"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(path, "malformed shape")))
        .collect::<Result<_>>()?;
    let (rows, cols) = match dims.as_slice() {
        [r, c] => (*r, *c),
        [r] => (*r, 1),
        _ => {
            return Err(bad(
                path,
                format!("expected a 2-D array, shape is {dims:?}"),
            ))
        }
    };
    let need = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(ty.size()))
        .ok_or_else(|| bad(path, "shape overflows"))?;
    if bytes.len() - end != need {
        return Err(bad(
            path,
            format!(
                "data holds {} bytes, shape {rows}x{cols} of {descr} needs {need}",
                bytes.len() - end
            ),
        ));
    }
    Ok((ty, rows, cols, end))
}

fn npy_values<T>(path: &Path, conv: impl Fn(NpyType, &[u8]) -> T) -> Result<Matrix<T>> {
    let bytes = fs::read(path)?;
    let (ty, _rows, cols, off) = parse_npy(path, &bytes)?;
    let data = bytes[off..]
        .chunks_exact(ty.size())
        .map(|c| conv(ty, c))
        .collect();
    Ok(Matrix { dim: cols, data })
}

/// Reads a 2-D `.npy` array as `f32` (float64, uint8 and integer arrays are converted).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::BadDataFile`] for a bad
/// magic or version, a truncated or non-text header, a missing or malformed
/// `descr`, `fortran_order` or `shape`, an unsupported dtype, a Fortran-order
/// array, a shape of more than two dimensions, or data whose size does not
/// match the shape.
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<Matrix<f32>> {
    npy_values(path.as_ref(), |ty, c| match ty {
        NpyType::F4 => f32::from_le_bytes(c.try_into().expect("4")),
        NpyType::F8 => f64::from_le_bytes(c.try_into().expect("8")) as f32,
        NpyType::U1 => f32::from(c[0]),
        NpyType::I4 => i32::from_le_bytes(c.try_into().expect("4")) as f32,
        NpyType::I8 => i64::from_le_bytes(c.try_into().expect("8")) as f32,
    })
}

/// Reads a 2-D integer `.npy` array (ground-truth ids) as `i32`.
///
/// # Errors
/// As [`read_npy_f32`], and [`Error::BadDataFile`] for a non-empty float array
/// or an id outside the `i32` range.
pub fn read_npy_i32(path: impl AsRef<Path>) -> Result<Matrix<i32>> {
    let path = path.as_ref();
    let bytes = fs::read(path)?;
    let (ty, _rows, cols, off) = parse_npy(path, &bytes)?;
    let mut data = Vec::with_capacity((bytes.len() - off) / ty.size());
    for c in bytes[off..].chunks_exact(ty.size()) {
        let v: i64 = match ty {
            NpyType::I4 => i64::from(i32::from_le_bytes(c.try_into().expect("4"))),
            NpyType::I8 => i64::from_le_bytes(c.try_into().expect("8")),
            NpyType::U1 => i64::from(c[0]),
            _ => return Err(bad(path, "ground truth must be an integer array")),
        };
        data.push(i32::try_from(v).map_err(|_| bad(path, format!("id {v} out of i32 range")))?);
    }
    Ok(Matrix { dim: cols, data })
}

/// Writes a 2-D `<f4` `.npy` file (version 1.0).
///
/// # Errors
/// As [`write_fvecs`].
pub fn write_npy_f32(path: impl AsRef<Path>, m: &Matrix<f32>) -> Result<()> {
    check_writable(m)?;
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.rows(),
        m.dim
    );
    // Pad so the data starts on a 64-byte boundary, ending the header with '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.div_ceil(64) * 64 - total));
    header.push('\n');
    let mut w = std::io::BufWriter::new(fs::File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for x in &m.data {
        w.write_all(&x.to_le_bytes())?;
    }
    w.flush()?;
    Ok(())
}

/// Reads vectors as `f32` from a file chosen by extension (`.fvecs`, `.bvecs`, `.npy`).
///
/// # Errors
/// [`Error::BadDataFile`] for an extension other than `.fvecs`, `.bvecs` or
/// `.npy`; otherwise the errors of [`read_fvecs`], [`read_bvecs`] or
/// [`read_npy_f32`].
pub fn read_vectors(path: impl AsRef<Path>) -> Result<Matrix<f32>> {
    let path = path.as_ref();
    match extension(path).as_str() {
        "fvecs" => read_fvecs(path),
        "bvecs" => read_bvecs(path),
        "npy" => read_npy_f32(path),
        other => Err(bad(
            path,
            format!("unknown vector file extension {other:?} (expected .fvecs, .bvecs or .npy)"),
        )),
    }
}

/// Reads ground-truth ids from `.ivecs` or `.npy`.
///
/// # Errors
/// [`Error::BadDataFile`] for an extension other than `.ivecs` or `.npy`;
/// otherwise the errors of [`read_ivecs`] or [`read_npy_i32`].
pub fn read_groundtruth(path: impl AsRef<Path>) -> Result<Matrix<i32>> {
    let path = path.as_ref();
    match extension(path).as_str() {
        "ivecs" => read_ivecs(path),
        "npy" => read_npy_i32(path),
        other => Err(bad(
            path,
            format!("unknown ground-truth file extension {other:?} (expected .ivecs or .npy)"),
        )),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_that_are_not_whole_rows_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.fvecs");
        for (dim, n) in [(0usize, 0usize), (0, 3), (3, 4)] {
            let m = Matrix {
                dim,
                data: vec![1.0f32; n],
            };
            assert!(matches!(
                write_fvecs(&p, &m),
                Err(Error::InvalidParameter(_))
            ));
            assert!(matches!(
                write_npy_f32(&p, &m),
                Err(Error::InvalidParameter(_))
            ));
            assert!(!p.exists());
        }
        let g = Matrix {
            dim: 2,
            data: vec![1i32; 3],
        };
        assert!(write_ivecs(&p, &g).is_err());
        assert!(!p.exists());
    }

    #[test]
    fn fvecs_ivecs_npy_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matrix {
            dim: 3,
            data: vec![1.0, 2.0, 3.0, -4.5, 5.25, 6.0],
        };
        let p = dir.path().join("a.fvecs");
        write_fvecs(&p, &m).unwrap();
        assert_eq!(read_vectors(&p).unwrap(), m);
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, &m).unwrap();
        assert_eq!(read_vectors(&p).unwrap(), m);
        let g = Matrix {
            dim: 2,
            data: vec![7, 8, 9, 10],
        };
        let p = dir.path().join("g.ivecs");
        write_ivecs(&p, &g).unwrap();
        assert_eq!(read_groundtruth(&p).unwrap(), g);
    }

    #[test]
    fn bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.fvecs");
        // dimension 2, but only one float follows
        std::fs::write(&p, [2, 0, 0, 0, 0, 0, 128, 63]).unwrap();
        assert!(matches!(read_fvecs(&p), Err(Error::BadDataFile { .. })));
        // second row with another dimension
        let mut b = vec![1, 0, 0, 0, 0, 0, 128, 63];
        b.extend([2, 0, 0, 0, 0, 0, 128, 63]);
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(read_fvecs(&p), Err(Error::BadDataFile { .. })));
        let p = dir.path().join("t.npy");
        std::fs::write(&p, b"\x93NUMPY\x01\x00\xff\xff{").unwrap();
        assert!(matches!(read_npy_f32(&p), Err(Error::BadDataFile { .. })));
        let p = dir.path().join("t.bin");
        std::fs::write(&p, b"").unwrap();
        assert!(read_vectors(&p).is_err());
    }

    #[test]
    fn bvecs_widen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.bvecs");
        std::fs::write(&p, [2, 0, 0, 0, 0, 255, 2, 0, 0, 0, 7, 1]).unwrap();
        let m = read_bvecs(&p).unwrap();
        assert_eq!(m.dim, 2);
        assert_eq!(m.data, vec![0.0, 255.0, 7.0, 1.0]);
    }
}
