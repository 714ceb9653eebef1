//! Small dense linear algebra on the host (f64): symmetric eigen-decomposition by cyclic
//! Jacobi rotations and Gram-Schmidt orthonormalisation. Sizes here are at most a few hundred.

/// Row-major square matrix helpers.
pub fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for p in 0..k {
            let av = a[i * k + p];
            if av == 0.0 {
                continue;
            }
            for j in 0..m {
                out[i * m + j] += av * b[p * m + j];
            }
        }
    }
    out
}

pub fn transpose(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            t[j * n + i] = a[i * m + j];
        }
    }
    t
}

/// Eigenvalues (descending) and eigenvectors (columns of the returned n×n matrix) of a
/// symmetric n×n matrix.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| {
        a[j * n + j]
            .partial_cmp(&a[i * n + i])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            vectors[k * n + new] = v[k * n + old];
        }
    }
    (values, vectors)
}

/// Symmetric positive semi-definite square root.
pub fn sqrt_psd(a: &[f64], n: usize) -> Vec<f64> {
    let (vals, vecs) = symmetric_eigen(a, n);
    let mut scaled = vecs.clone();
    for k in 0..n {
        for j in 0..n {
            scaled[k * n + j] *= vals[j].max(0.0).sqrt();
        }
    }
    matmul(&scaled, &transpose(&vecs, n, n), n, n, n)
}

/// Orthonormalises the columns of a d×r matrix in place (modified Gram-Schmidt).
pub fn orthonormalize_columns(m: &mut [f64], d: usize, r: usize) {
    for j in 0..r {
        for i in 0..j {
            let dot: f64 = (0..d).map(|k| m[k * r + i] * m[k * r + j]).sum();
            for k in 0..d {
                m[k * r + j] -= dot * m[k * r + i];
            }
        }
        let norm = (0..d)
            .map(|k| m[k * r + j].powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-300);
        for k in 0..d {
            m[k * r + j] /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_reconstructs_and_sqrt_squares_back() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
        let (vals, vecs) = symmetric_eigen(&a, 3);
        assert!(vals[0] >= vals[1] && vals[1] >= vals[2]);
        // A v = λ v for each column.
        for j in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|k| a[i * 3 + k] * vecs[k * 3 + j]).sum();
                assert!((av - vals[j] * vecs[i * 3 + j]).abs() < 1e-9);
            }
        }
        let s = sqrt_psd(&a, 3);
        let back = matmul(&s, &s, 3, 3, 3);
        for (x, y) in back.iter().zip(&a) {
            assert!((x - y).abs() < 1e-9);
        }
        let mut m = vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        orthonormalize_columns(&mut m, 3, 2);
        let dot: f64 = (0..3).map(|k| m[k * 2] * m[k * 2 + 1]).sum();
        assert!(dot.abs() < 1e-12);
    }
}
