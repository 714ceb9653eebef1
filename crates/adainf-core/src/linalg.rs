//! Small dense linear algebra on the host (f64), shared by the generator and the theory
//! instruments: symmetric eigen-decomposition by cyclic Jacobi rotations (with vectors),
//! symmetric eigenvalues alone by Householder tridiagonalisation and implicit QL (about ten
//! times faster for the graphs of `theory`), and Gram-Schmidt orthonormalisation. Sizes here
//! are at most a few thousand.

/// The product of `a` (n×k) and `b` (k×m), all row-major.
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

/// The transpose of the row-major n×m matrix `a`, as a row-major m×n matrix.
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

/// Eigenvalues of a symmetric n×n matrix (row-major), ascending. Householder reduction to a
/// tridiagonal matrix, then the implicit QL algorithm with Wilkinson shifts (the
/// `tred2`/`tqli` pair of Numerical Recipes, values only): O(n³) with a small constant.
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n, "symmetric_eigenvalues: a is not n×n");
    if n == 0 {
        return Vec::new();
    }
    let (mut d, mut e) = tridiagonalize(a.to_vec(), n);
    tridiagonal_ql(&mut d, &mut e);
    d.sort_by(|x, y| x.total_cmp(y));
    d
}

/// The largest `count` eigenvalues (descending) of a symmetric positive semi-definite n×n
/// operator that is only available as a product: `apply(x, b, y)` sets y = A·x for `b` column
/// vectors stored row-major (n×b). Block subspace iteration with Rayleigh–Ritz on a block
/// twice as wide as asked for, so repeated eigenvalues (a graph's components) are all found,
/// stopping when every wanted Ritz pair's residual ‖A·u − θ·u‖ is below `tolerance` (then each
/// θ is within `tolerance` of an eigenvalue of A) or after `max_iterations`. Returns the values
/// and whether they converged.
pub fn top_eigenvalues(
    apply: impl Fn(&[f64], usize, &mut [f64]),
    n: usize,
    count: usize,
    tolerance: f64,
    max_iterations: usize,
    seed: u64,
) -> (Vec<f64>, bool) {
    let count = count.min(n);
    let b = (2 * count + 4).min(n);
    let mut rng = crate::rng::Rng::new(seed);
    let mut q: Vec<f64> = (0..n * b).map(|_| rng.normal()).collect();
    orthonormalize_block(&mut q, n, b, &mut rng);
    let mut y = vec![0.0; n * b];
    let mut previous: Vec<f64> = vec![f64::NAN; count];
    for _ in 0..max_iterations {
        apply(&q, b, &mut y);
        // H = Qᵀ A Q, the Rayleigh–Ritz matrix of the current basis.
        let h = matmul(&transpose(&q, n, b), &y, b, n, b);
        let h: Vec<f64> = (0..b * b)
            .map(|k| 0.5 * (h[k] + h[(k % b) * b + k / b]))
            .collect();
        // Ritz pairs (θ_j, y_j) of H, largest first; the residual of u_j = Q·y_j is
        // A·u_j − θ_j·u_j = Y·y_j − θ_j·Q·y_j.
        let (values, vectors) = symmetric_eigen(&h, b);
        let ritz: Vec<f64> = values[..count].to_vec();
        let residual = (0..count)
            .map(|j| {
                (0..n)
                    .map(|row| {
                        let (mut ay, mut qy) = (0.0, 0.0);
                        for c in 0..b {
                            ay += y[row * b + c] * vectors[c * b + j];
                            qy += q[row * b + c] * vectors[c * b + j];
                        }
                        (ay - ritz[j] * qy).powi(2)
                    })
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(0.0, f64::max);
        if residual < tolerance {
            return (ritz, true);
        }
        previous = ritz;
        std::mem::swap(&mut q, &mut y);
        orthonormalize_block(&mut q, n, b, &mut rng);
    }
    (previous, false)
}

/// Orthonormalises the columns of an n×b block (modified Gram-Schmidt, twice for stability);
/// a column that is (numerically) in the span of the others is replaced by a random one.
fn orthonormalize_block(m: &mut [f64], n: usize, b: usize, rng: &mut crate::rng::Rng) {
    for j in 0..b {
        for attempt in 0..3 {
            let before = column_norm(m, n, b, j);
            for _pass in 0..2 {
                for i in 0..j {
                    let dot: f64 = (0..n).map(|k| m[k * b + i] * m[k * b + j]).sum();
                    for k in 0..n {
                        m[k * b + j] -= dot * m[k * b + i];
                    }
                }
            }
            let norm = column_norm(m, n, b, j);
            if norm > 1e-10 * before.max(1e-300) && norm > 1e-200 {
                for k in 0..n {
                    m[k * b + j] /= norm;
                }
                break;
            }
            assert!(
                attempt < 2,
                "orthonormalize_block: no independent direction left"
            );
            for k in 0..n {
                m[k * b + j] = rng.normal();
            }
        }
    }
}

fn column_norm(m: &[f64], n: usize, b: usize, j: usize) -> f64 {
    (0..n).map(|k| m[k * b + j].powi(2)).sum::<f64>().sqrt()
}

/// Householder reduction of a symmetric matrix: the diagonal `d` and the sub-diagonal `e`
/// (`e[i]` couples rows i−1 and i; `e[0]` = 0).
fn tridiagonalize(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    for i in (1..n).rev() {
        let l = i - 1;
        if l > 0 {
            let scale: f64 = (0..=l).map(|k| a[i * n + k].abs()).sum();
            if scale == 0.0 {
                e[i] = a[i * n + l];
                continue;
            }
            let mut h = 0.0;
            for k in 0..=l {
                a[i * n + k] /= scale;
                h += a[i * n + k] * a[i * n + k];
            }
            let f = a[i * n + l];
            let g = if f >= 0.0 { -h.sqrt() } else { h.sqrt() };
            e[i] = scale * g;
            h -= f * g;
            a[i * n + l] = f - g;
            let mut f = 0.0;
            for j in 0..=l {
                let mut g = 0.0;
                for k in 0..=j {
                    g += a[j * n + k] * a[i * n + k];
                }
                for k in j + 1..=l {
                    g += a[k * n + j] * a[i * n + k];
                }
                e[j] = g / h;
                f += e[j] * a[i * n + j];
            }
            let hh = f / (h + h);
            for j in 0..=l {
                let f = a[i * n + j];
                let g = e[j] - hh * f;
                e[j] = g;
                for k in 0..=j {
                    a[j * n + k] -= f * e[k] + g * a[i * n + k];
                }
            }
        } else {
            e[i] = a[i * n + l];
        }
    }
    for (i, di) in d.iter_mut().enumerate() {
        *di = a[i * n + i];
    }
    e[0] = 0.0;
    (d, e)
}

/// Eigenvalues of the symmetric tridiagonal matrix (`d`, `e` as `tridiagonalize` returns
/// them) by implicit QL; they replace `d`, unordered.
fn tridiagonal_ql(d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    for l in 0..n {
        for _iteration in 0..200 {
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut underflow = false;
            let mut i = m;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
            }
            if underflow {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
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

    /// The tridiagonal QL path against the Jacobi path (an independent algorithm) on random
    /// symmetric matrices of many sizes, a matrix with repeated eigenvalues, and a diagonal one.
    #[test]
    fn eigenvalues_match_jacobi() {
        let mut rng = crate::rng::Rng::new(7);
        for n in [1usize, 2, 3, 4, 7, 16, 33] {
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..=i {
                    let v = rng.normal();
                    a[i * n + j] = v;
                    a[j * n + i] = v;
                }
            }
            let fast = symmetric_eigenvalues(&a, n);
            let (mut jac, _) = symmetric_eigen(&a, n);
            jac.reverse();
            for (x, y) in fast.iter().zip(&jac) {
                assert!((x - y).abs() < 1e-9, "n {n}: {fast:?} vs {jac:?}");
            }
        }
        // J − I on 5 nodes: eigenvalues 4 and −1 (four times).
        let n = 5;
        let a: Vec<f64> = (0..n * n)
            .map(|k| if k / n == k % n { 0.0 } else { 1.0 })
            .collect();
        let v = symmetric_eigenvalues(&a, n);
        for (x, y) in v.iter().zip([-1.0, -1.0, -1.0, -1.0, 4.0]) {
            assert!((x - y).abs() < 1e-12, "{v:?}");
        }
        let diag = [3.0, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(symmetric_eigenvalues(&diag, 3), vec![-2.0, 1.0, 3.0]);
    }

    /// Block subspace iteration against the dense path: a random PSD matrix, and a
    /// block-diagonal one with a threefold top eigenvalue (three components of a graph), which a
    /// single-vector method would report once.
    #[test]
    fn top_eigenvalues_match_dense_with_multiplicity() {
        let mut rng = crate::rng::Rng::new(3);
        let n = 60;
        let g: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let a = matmul(&transpose(&g, n, n), &g, n, n, n);
        let dense = symmetric_eigenvalues(&a, n);
        fn apply(a: &[f64], n: usize) -> impl Fn(&[f64], usize, &mut [f64]) + '_ {
            move |x: &[f64], b: usize, y: &mut [f64]| {
                y.copy_from_slice(&matmul(a, x, n, n, b));
            }
        }
        let (top, converged) = top_eigenvalues(apply(&a, n), n, 4, 1e-7, 20_000, 1);
        assert!(converged);
        for (i, v) in top.iter().enumerate() {
            let want = dense[n - 1 - i];
            assert!(
                (v - want).abs() < 1e-6 * want,
                "{top:?} vs {:?}",
                &dense[n - 4..]
            );
        }
        // Three blocks of the all-ones 20×20 matrix /20: eigenvalue 1 three times, then 0.
        let mut blocks = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                if i / 20 == j / 20 {
                    blocks[i * n + j] = 1.0 / 20.0;
                }
            }
        }
        let (top, converged) = top_eigenvalues(apply(&blocks, n), n, 4, 1e-10, 1000, 2);
        assert!(converged);
        for (v, want) in top.iter().zip([1.0, 1.0, 1.0, 0.0]) {
            assert!((v - want).abs() < 1e-9, "{top:?}");
        }
    }
}
