//! Principal components of a training sample, for the PCA hashes.
//!
//! The covariance matrix is accumulated in `f64` and diagonalized with the
//! cyclic Jacobi method: slower than a tridiagonal QR for large matrices, but
//! short, unconditionally convergent for symmetric input, and accurate to the
//! last few ulps, which is what a hash trained once and kept forever wants.
//! For the dimensions LSH is used with (up to a few hundred) it takes
//! milliseconds.

use crate::error::{Error, Result};

/// The mean and the leading eigenvectors of the covariance of `rows`
/// (`n x dim`, row-major), largest eigenvalue first.
pub(crate) struct Pca {
    pub(crate) mean: Vec<f64>,
    /// `count` eigenvectors of length `dim`, one after another.
    pub(crate) components: Vec<f64>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) eigenvalues: Vec<f64>,
}

/// Computes the `count` leading principal components of the sample.
pub(crate) fn principal_components(rows: &[f32], dim: usize, count: usize) -> Result<Pca> {
    if dim == 0 {
        return Err(Error::InvalidParameter("PCA needs dimension > 0".into()));
    }
    crate::error::check_rows("training data", rows.len(), dim)?;
    let n = rows.len() / dim;
    if n < 2 {
        return Err(Error::InvalidParameter(format!(
            "PCA needs at least 2 training vectors, got {n}"
        )));
    }
    if count == 0 || count > dim {
        return Err(Error::InvalidParameter(format!(
            "cannot take {count} principal components of {dim}-dimensional data"
        )));
    }
    for (i, row) in rows.chunks_exact(dim).enumerate() {
        if let Some((j, value)) = crate::error::first_non_finite(row) {
            return Err(Error::InvalidParameter(format!(
                "training vector {i} has non-finite component {j} ({value})"
            )));
        }
    }

    let mut mean = vec![0.0f64; dim];
    for row in rows.chunks_exact(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    // Upper triangle of the sample covariance (n - 1 denominator, as numpy.cov).
    let mut cov = vec![0.0f64; dim * dim];
    let mut centered = vec![0.0f64; dim];
    for row in rows.chunks_exact(dim) {
        for ((c, &x), &m) in centered.iter_mut().zip(row).zip(&mean) {
            *c = x as f64 - m;
        }
        for i in 0..dim {
            let ci = centered[i];
            let line = &mut cov[i * dim..(i + 1) * dim];
            for j in i..dim {
                line[j] += ci * centered[j];
            }
        }
    }
    let denom = (n - 1) as f64;
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / denom;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }

    let (values, vectors) = jacobi_eigen(cov, dim);
    let mut order: Vec<usize> = (0..dim).collect();
    // Largest first; ties by index so the order is deterministic.
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let mut components = Vec::with_capacity(count * dim);
    let mut eigenvalues = Vec::with_capacity(count);
    for &k in order.iter().take(count) {
        // Column k of `vectors` is the eigenvector. Its sign is arbitrary, so
        // fix it: the largest-magnitude component is made positive.
        let col: Vec<f64> = (0..dim).map(|r| vectors[r * dim + k]).collect();
        let pivot = col.iter().copied().fold(
            0.0f64,
            |best, x| if x.abs() > best.abs() { x } else { best },
        );
        let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
        components.extend(col.iter().map(|x| x * sign));
        eigenvalues.push(values[k]);
    }
    Ok(Pca {
        mean,
        components,
        eigenvalues,
    })
}

/// Eigen-decomposition of the symmetric `dim x dim` matrix `a` (row-major) by
/// cyclic Jacobi rotations. Returns the eigenvalues and the eigenvectors as
/// the columns of a row-major matrix.
pub(crate) fn jacobi_eigen(mut a: Vec<f64>, dim: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; dim * dim];
    for i in 0..dim {
        v[i * dim + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    if total == 0.0 {
        return (vec![0.0; dim], v);
    }
    for _sweep in 0..100 {
        let off: f64 = (0..dim)
            .flat_map(|i| (0..dim).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * dim + j] * a[i * dim + j])
            .sum();
        // Converged when the off-diagonal mass is negligible next to the whole
        // matrix (relative to f64 epsilon squared, since `off` is squared).
        if off <= total * 1e-30 {
            break;
        }
        for p in 0..dim {
            for q in p + 1..dim {
                let apq = a[p * dim + q];
                if apq == 0.0 {
                    continue;
                }
                let app = a[p * dim + p];
                let aqq = a[q * dim + q];
                // Rotation angle that zeroes a[p][q] (Numerical Recipes' stable form).
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..dim {
                    let akp = a[k * dim + p];
                    let akq = a[k * dim + q];
                    a[k * dim + p] = c * akp - s * akq;
                    a[k * dim + q] = s * akp + c * akq;
                }
                for k in 0..dim {
                    let apk = a[p * dim + k];
                    let aqk = a[q * dim + k];
                    a[p * dim + k] = c * apk - s * aqk;
                    a[q * dim + k] = s * apk + c * aqk;
                }
                for k in 0..dim {
                    let vkp = v[k * dim + p];
                    let vkq = v[k * dim + q];
                    v[k * dim + p] = c * vkp - s * vkq;
                    v[k * dim + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let values = (0..dim).map(|i| a[i * dim + i]).collect();
    (values, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn jacobi_diagonalizes_a_random_symmetric_matrix() {
        let dim = 12;
        let mut rng = Rng::new(3);
        let mut a = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in i..dim {
                let x = rng.normal();
                a[i * dim + j] = x;
                a[j * dim + i] = x;
            }
        }
        let (values, vectors) = jacobi_eigen(a.clone(), dim);
        for k in 0..dim {
            // A v = lambda v, and v has unit length.
            let mut norm = 0.0;
            for i in 0..dim {
                let av: f64 = (0..dim)
                    .map(|j| a[i * dim + j] * vectors[j * dim + k])
                    .sum();
                assert!((av - values[k] * vectors[i * dim + k]).abs() < 1e-10);
                norm += vectors[i * dim + k] * vectors[i * dim + k];
            }
            assert!((norm - 1.0).abs() < 1e-12);
            // Orthogonal to the other eigenvectors.
            for l in k + 1..dim {
                let d: f64 = (0..dim)
                    .map(|i| vectors[i * dim + k] * vectors[i * dim + l])
                    .sum();
                assert!(d.abs() < 1e-10);
            }
        }
    }

    #[test]
    fn known_answer_on_a_line() {
        // Points on the line y = 2x (plus a constant offset): one component
        // (1, 2)/sqrt(5), all the variance on it, mean (1.5, 5).
        let rows = [0.0f32, 2.0, 1.0, 4.0, 2.0, 6.0, 3.0, 8.0];
        let pca = principal_components(&rows, 2, 2).unwrap();
        let s5 = 5f64.sqrt();
        assert!((pca.components[0] - 1.0 / s5).abs() < 1e-12);
        assert!((pca.components[1] - 2.0 / s5).abs() < 1e-12);
        // Variance along the line: x has sample variance 5/3, and |(1,2)|^2 = 5.
        assert!((pca.eigenvalues[0] - 25.0 / 3.0).abs() < 1e-9);
        assert!(pca.eigenvalues[1].abs() < 1e-9);
        assert_eq!(pca.mean, vec![1.5, 5.0]);
    }

    #[test]
    fn bad_training_input_is_an_error() {
        assert!(principal_components(&[1.0, 2.0], 2, 1).is_err());
        assert!(principal_components(&[1.0, 2.0, 3.0], 2, 1).is_err());
        assert!(principal_components(&[1.0, f32::NAN, 3.0, 4.0], 2, 1).is_err());
        assert!(principal_components(&[1.0, 2.0, 3.0, 4.0], 2, 3).is_err());
    }
}
