//! The paper's theory as instruments (its §4, after HaoChen et al. 2021): the augmentation
//! graph, its connectivity λ_{k+1} (the (k+1)-th smallest eigenvalue of the normalised
//! Laplacian) and the augmentation's labeling error α. `toy` computes them exactly on the
//! paper's two-Gaussian toy; `estimate` estimates them on images; `gap` measures the
//! distribution gap between real and generated images without labels; `adapt` is the rule of
//! adaptive inflation that chooses dup and augmentation strength from such measurements.

pub mod adapt;
pub mod estimate;
pub mod gap;
pub mod toy;

/// Eigenvalues (ascending) of the normalised Laplacian `I − D^{-1/2} W D^{-1/2}` of a graph
/// with symmetric non-negative weights `w` (n×n, row-major; self-loops allowed). Every node
/// needs a positive degree.
pub fn normalized_laplacian_eigenvalues(w: &[f64], n: usize) -> Vec<f64> {
    let degree: Vec<f64> = (0..n).map(|i| w[i * n..(i + 1) * n].iter().sum()).collect();
    debug_assert!(degree.iter().all(|&d| d > 0.0), "a node without edges");
    let inv_sqrt: Vec<f64> = degree.iter().map(|d| 1.0 / d.sqrt()).collect();
    let mut laplacian = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let normalized = inv_sqrt[i] * w[i * n + j] * inv_sqrt[j];
            laplacian[i * n + j] = if i == j { 1.0 } else { 0.0 } - normalized;
        }
    }
    crate::linalg::symmetric_eigenvalues(&laplacian, n)
}

/// Indices of the `count` rows of `rows` (row-major, `dim` wide) nearest to `x` (Euclidean)
/// among those `keep` accepts, nearest first.
pub(crate) fn nearest(
    rows: &[f32],
    dim: usize,
    x: &[f32],
    count: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = rows
        .chunks_exact(dim)
        .enumerate()
        .filter(|(j, _)| keep(*j))
        .map(|(j, row)| {
            let d: f32 = row.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum();
            (d, j)
        })
        .collect();
    let count = count.min(scored.len());
    if count == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(count - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored.truncate(count);
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, j)| j).collect()
}
