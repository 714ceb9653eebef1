//! The methods' losses, as solo-learn computes them:
//! - SimCLR NT-Xent: L2-normalised projections of both views, positives matched by batch
//!   position, the denominator over every other sample of the 2B (self excluded);
//! - MoCo v2+ InfoNCE: query · key against query · queue, temperature τ, cross-entropy with the
//!   positive first; used symmetrically `(ℓ(q1, k2, queue2) + ℓ(q2, k1, queue1)) / 2`;
//! - BYOL: `2 − 2·cos(p, z)` averaged over the batch (summed over the two view orders by the
//!   caller);
//! - Barlow Twins: cross-correlation of the batch-normalised (affine-free) projections,
//!   `scale · [Σ(1 − C_ii)² + λ Σ_{i≠j} C_ij²]`.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use crate::tensor::{floats, ints};

/// Rows scaled to unit L2 norm.
pub fn l2_normalize(z: Tensor<2>) -> Tensor<2> {
    let norm = z.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    let shape = z.shape();
    z / norm.expand(shape)
}

/// Mean cross-entropy of `logits` [n, c] with integer targets.
fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, targets.reshape([n, 1]))
        .mean()
        .neg()
}

/// NT-Xent over the 2B projections of two views (rows i and i + B are positives).
pub fn nt_xent(z1: Tensor<2>, z2: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [b, _] = z1.dims();
    let device = z1.device();
    let z = l2_normalize(Tensor::cat(vec![z1, z2], 0));
    let logits = z.clone().matmul(z.transpose()).div_scalar(temperature);
    let eye: Vec<f32> = (0..4 * b * b)
        .map(|k| if k / (2 * b) == k % (2 * b) { 1.0 } else { 0.0 })
        .collect();
    let self_mask = floats(eye, [2 * b, 2 * b], &device).equal_elem(1.0);
    let logits = logits.mask_fill(self_mask, -1e9);
    let positives: Vec<i64> = (0..2 * b).map(|i| ((i + b) % (2 * b)) as i64).collect();
    cross_entropy(logits, ints(positives, &device))
}

/// MoCo InfoNCE: `query` and `key` [B, d] and `queue` [K, d], all L2-normalised.
pub fn moco_infonce(
    query: Tensor<2>,
    key: Tensor<2>,
    queue: Tensor<2>,
    temperature: f64,
) -> Tensor<1> {
    let [b, _] = query.dims();
    let device = query.device();
    let positive = (query.clone() * key).sum_dim(1); // [B, 1]
    let negative = query.matmul(queue.transpose()); // [B, K]
    let logits = Tensor::cat(vec![positive, negative], 1).div_scalar(temperature);
    cross_entropy(logits, ints(vec![0; b], &device))
}

/// BYOL: `2 − 2·cos(p, z)` averaged over the batch (`z` is the target's, not differentiated).
pub fn byol_loss(p: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
    let cos = (l2_normalize(p) * l2_normalize(z.detach())).sum_dim(1);
    cos.mean().mul_scalar(-2.0).add_scalar(2.0)
}

/// Affine-free batch norm over the batch dimension (biased variance, eps 1e-5).
fn standardize(z: Tensor<2>) -> Tensor<2> {
    let [n, d] = z.dims();
    let mean = z.clone().mean_dim(0).expand([n, d]);
    let centered = z - mean;
    let var = centered.clone().square().mean_dim(0).expand([n, d]);
    centered / var.add_scalar(1e-5).sqrt()
}

/// Barlow Twins loss with off-diagonal weight `lambda` and overall `scale`.
pub fn barlow_loss(z1: Tensor<2>, z2: Tensor<2>, lambda: f64, scale: f64) -> Tensor<1> {
    let [n, d] = z1.dims();
    let device = z1.device();
    let c = standardize(z1)
        .transpose()
        .matmul(standardize(z2))
        .div_scalar(n as f64); // [d, d]
    let eye: Vec<f32> = (0..d * d)
        .map(|k| if k / d == k % d { 1.0 } else { 0.0 })
        .collect();
    let eye = floats(eye, [d, d], &device);
    let on_diag = ((c.clone() - 1.0) * eye.clone()).square().sum();
    let off_diag = (c * (eye.neg() + 1.0)).square().sum();
    (on_diag + off_diag.mul_scalar(lambda)).mul_scalar(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::read_floats;
    use burn::tensor::Device;

    type M = Vec<Vec<f64>>;

    fn t(rows: &M) -> Tensor<2> {
        floats(
            rows.iter().flatten().map(|v| *v as f32).collect(),
            [rows.len(), rows[0].len()],
            &Device::flex(),
        )
    }
    fn scalar(x: Tensor<1>) -> f64 {
        read_floats(x)[0] as f64
    }
    fn norm(r: &[f64]) -> Vec<f64> {
        let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
        r.iter().map(|v| v / n).collect()
    }
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    // Independent host transcriptions of the formulas, in f64.

    fn nt_xent_ref(z1: &M, z2: &M, t: f64) -> f64 {
        let z: M = z1.iter().chain(z2).map(|r| norm(r)).collect();
        let (n, b) = (z.len(), z.len() / 2);
        (0..n)
            .map(|i| {
                let pos = (dot(&z[i], &z[(i + b) % n]) / t).exp();
                let denom: f64 = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (dot(&z[i], &z[j]) / t).exp())
                    .sum();
                -(pos / denom).ln()
            })
            .sum::<f64>()
            / n as f64
    }

    fn moco_ref(q: &M, k: &M, queue: &M, t: f64) -> f64 {
        q.iter()
            .zip(k)
            .map(|(qi, ki)| {
                let pos = (dot(qi, ki) / t).exp();
                let all = pos + queue.iter().map(|u| (dot(qi, u) / t).exp()).sum::<f64>();
                -(pos / all).ln()
            })
            .sum::<f64>()
            / q.len() as f64
    }

    // A direct transcription of the formula: indices read like the paper.
    #[allow(clippy::needless_range_loop)]
    fn barlow_ref(z1: &M, z2: &M, lambda: f64, scale: f64) -> f64 {
        let (n, d) = (z1.len(), z1[0].len());
        let std = |z: &M| -> M {
            let mut out = z.clone();
            for j in 0..d {
                let m = z.iter().map(|r| r[j]).sum::<f64>() / n as f64;
                let v = z.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / n as f64;
                for i in 0..n {
                    out[i][j] = (z[i][j] - m) / (v + 1e-5).sqrt();
                }
            }
            out
        };
        let (a, b) = (std(z1), std(z2));
        let mut loss = 0.0;
        for i in 0..d {
            for j in 0..d {
                let c = (0..n).map(|k| a[k][i] * b[k][j]).sum::<f64>() / n as f64;
                loss += if i == j {
                    (1.0 - c).powi(2)
                } else {
                    lambda * c * c
                };
            }
        }
        scale * loss
    }

    fn sample() -> (M, M, M) {
        let z1 = vec![
            vec![1.0, 0.2, -0.5],
            vec![0.3, -1.0, 0.8],
            vec![-0.7, 0.1, 0.4],
            vec![0.2, 0.9, -0.1],
        ];
        let z2 = vec![
            vec![0.9, 0.1, -0.3],
            vec![0.1, -0.8, 1.0],
            vec![0.5, 0.5, 0.5],
            vec![0.0, 1.0, 0.2],
        ];
        let queue = vec![
            vec![0.6, 0.0, 0.8],
            vec![-1.0, 0.0, 0.0],
            vec![0.0, -0.6, 0.8],
        ];
        (z1, z2, queue)
    }

    #[test]
    fn nt_xent_matches_the_formula() {
        let (z1, z2, _) = sample();
        for temp in [0.2, 0.5, 1.0] {
            let got = scalar(nt_xent(t(&z1), t(&z2), temp));
            assert!((got - nt_xent_ref(&z1, &z2, temp)).abs() < 1e-4, "t={temp}");
        }
    }

    #[test]
    fn moco_matches_the_formula() {
        let (z1, z2, queue) = sample();
        let n = |m: &M| -> M { m.iter().map(|r| norm(r)).collect() };
        let (q, k, u) = (n(&z1), n(&z2), n(&queue));
        let got = scalar(moco_infonce(t(&q), t(&k), t(&u), 0.2));
        assert!((got - moco_ref(&q, &k, &u, 0.2)).abs() < 1e-4);
    }

    #[test]
    fn byol_is_two_minus_twice_the_cosine() {
        let (z1, z2, _) = sample();
        let want = z1
            .iter()
            .zip(&z2)
            .map(|(a, b)| 2.0 - 2.0 * dot(&norm(a), &norm(b)))
            .sum::<f64>()
            / 4.0;
        assert!((scalar(byol_loss(t(&z1), t(&z2))) - want).abs() < 1e-5);
        assert!(scalar(byol_loss(t(&z1), t(&z1))).abs() < 1e-5);
    }

    #[test]
    fn barlow_matches_the_formula() {
        let (z1, z2, _) = sample();
        let got = scalar(barlow_loss(t(&z1), t(&z2), 0.0051, 0.1));
        let want = barlow_ref(&z1, &z2, 0.0051, 0.1);
        assert!((got - want).abs() < 1e-4 * want.max(1.0), "{got} vs {want}");
    }
}
