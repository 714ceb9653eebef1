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
    //! Each loss and its gradients against PyTorch, in solo-learn's own formulation of the loss
    //! (`tests/fixtures/make_loss_fixtures.py` → `tests/fixtures/loss_fixtures.json`, f64).

    use super::*;
    use crate::tensor::read_floats;
    use burn::tensor::{Device, TensorData};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        loss: String,
        params: BTreeMap<String, f64>,
        inputs: BTreeMap<String, Input>,
        value: f64,
        grads: BTreeMap<String, Option<Vec<f64>>>,
    }

    #[derive(Deserialize)]
    struct Input {
        shape: [usize; 2],
        values: Vec<f32>,
    }

    fn cases(loss: &str) -> Vec<Case> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/loss_fixtures.json"
        );
        let text = std::fs::read_to_string(path).expect("the fixture file is in the repository");
        let fixture: Fixture = serde_json::from_str(&text).expect("the fixture file parses");
        let cases: Vec<Case> = fixture
            .cases
            .into_iter()
            .filter(|c| c.loss == loss)
            .collect();
        assert!(!cases.is_empty(), "no {loss} case in the fixture");
        cases
    }

    /// Evaluates `loss` on the case's inputs (as tracked leaves) and checks its value and the
    /// gradient of every input against PyTorch's (`None` there: no gradient may flow).
    fn check(case: &Case, loss: impl Fn(&BTreeMap<String, Tensor<2>>) -> Tensor<1>) {
        let device = Device::flex().autodiff();
        let leaves: BTreeMap<String, Tensor<2>> = case
            .inputs
            .iter()
            .map(|(name, input)| {
                let data = TensorData::new(input.values.clone(), input.shape);
                (
                    name.clone(),
                    Tensor::from_data(data, &device).require_grad(),
                )
            })
            .collect();
        let value = loss(&leaves);
        let grads = value.backward();
        let got = read_floats(value)[0] as f64;
        let what = format!("{} {:?}", case.loss, case.params);
        assert!(
            (got - case.value).abs() < 1e-5 * (1.0 + case.value.abs()),
            "{what}: loss {got} vs PyTorch {}",
            case.value
        );
        for (name, want) in &case.grads {
            let grad = leaves[name].grad(&grads).map(read_floats);
            match (want, grad) {
                (Some(want), Some(got)) => {
                    for (a, b) in got.iter().zip(want) {
                        assert!(
                            (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                            "{what}: d/d{name} {got:?} vs PyTorch {want:?}"
                        );
                    }
                }
                (Some(_), None) => panic!("{what}: no gradient reaches {name}"),
                (None, Some(got)) => assert!(
                    got.iter().all(|v| *v == 0.0),
                    "{what}: a gradient reaches {name}, which PyTorch detaches: {got:?}"
                ),
                (None, None) => {}
            }
        }
    }

    #[test]
    fn nt_xent_and_its_gradients_match_pytorch() {
        for case in cases("nt_xent") {
            let t = case.params["temperature"];
            check(&case, |x| nt_xent(x["z1"].clone(), x["z2"].clone(), t));
        }
    }

    /// As the trainer calls it: query, key and queue L2-normalised before the loss.
    #[test]
    fn moco_infonce_and_its_gradients_match_pytorch() {
        for case in cases("moco_infonce") {
            let t = case.params["temperature"];
            check(&case, |x| {
                let n = |name: &str| l2_normalize(x[name].clone());
                moco_infonce(n("query"), n("key"), n("queue"), t)
            });
        }
    }

    #[test]
    fn byol_and_its_gradients_match_pytorch() {
        for case in cases("byol") {
            check(&case, |x| byol_loss(x["p"].clone(), x["z"].clone()));
        }
    }

    #[test]
    fn barlow_and_its_gradients_match_pytorch() {
        for case in cases("barlow") {
            let (lambda, scale) = (case.params["lamb"], case.params["scale"]);
            check(&case, |x| {
                barlow_loss(x["z1"].clone(), x["z2"].clone(), lambda, scale)
            });
        }
    }
}
