//! LARS as in the official code (lightning-bolts, `exclude_bias_n_norm=True`, `clip_lr=True`):
//! for parameters of rank ≥ 2, `d = (g + wd·p) · min(eta·‖p‖ / (‖g‖ + wd·‖p‖ + 1e-8) / lr, 1)`
//! (no scaling when ‖p‖ or ‖g‖ is zero); rank-1 parameters (biases, norm scales) get neither
//! scaling nor weight decay. Then heavy-ball momentum (PyTorch semantics, no dampening) and
//! `p ← p − lr·buf`. Everything stays on the device: no scalar is read back.

use burn::optim::momentum::MomentumConfig;
use burn::optim::{LearningRate, Optimizer, Sgd, SgdConfig, SgdState};
use burn::tensor::{Device, Tensor};

#[derive(Clone)]
pub struct Lars {
    eta: f64,
    weight_decay: f64,
    /// Momentum and the update itself (no weight decay inside).
    sgd: Sgd,
}

impl Lars {
    pub fn new(eta: f64, weight_decay: f64, momentum: f64) -> Self {
        let sgd = SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov: false,
            }))
            .build();
        Lars {
            eta,
            weight_decay,
            sgd,
        }
    }
}

impl Optimizer for Lars {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let direction = if D >= 2 {
            let wd = self.weight_decay;
            let p_norm = tensor.clone().square().sum().sqrt();
            let g_norm = grad.clone().square().sum().sqrt();
            let trust = p_norm.clone().mul_scalar(self.eta).div(
                g_norm
                    .clone()
                    .add(p_norm.clone().mul_scalar(wd))
                    .add_scalar(1e-8),
            );
            let clipped = trust.div_scalar(lr.max(1e-12)).clamp_max(1.0);
            let both_nonzero = p_norm.greater_elem(0.0).bool_and(g_norm.greater_elem(0.0));
            let scale = clipped.mask_fill(both_nonzero.bool_not(), 1.0);
            let decayed = if wd > 0.0 {
                grad + tensor.clone().mul_scalar(wd)
            } else {
                grad
            };
            let shape = decayed.shape();
            decayed.mul(scale.reshape([1; D]).expand(shape))
        } else {
            grad
        };
        self.sgd.step(lr, tensor, direction, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Sgd::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn t2(v: &[f32], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), device)
    }

    #[test]
    fn matrix_step_matches_hand_computation() {
        let device = Device::flex();
        let lars = Lars::new(0.02, 1e-4, 0.9);
        let p = [3.0f32, 4.0]; // |p| = 5
        let g = [0.6f32, 0.8]; // |g| = 1
        let lr = 0.5;
        let (new, state) = lars.step(lr, t2(&p, &device), t2(&g, &device), None);
        let trust = 0.02 * 5.0 / (1.0 + 1e-4 * 5.0 + 1e-8);
        let scale = (trust / lr).min(1.0);
        let expect: Vec<f64> = p
            .iter()
            .zip(&g)
            .map(|(p, g)| *p as f64 - lr * (*g as f64 + 1e-4 * *p as f64) * scale)
            .collect();
        let got = crate::tensor::read_floats(new);
        for (a, b) in got.iter().zip(&expect) {
            assert!((*a as f64 - b).abs() < 1e-5, "{got:?} vs {expect:?}");
        }
        // Second step uses momentum: buf = 0.9·buf + d.
        let (new2, _) = lars.step(lr, t2(&got, &device), t2(&g, &device), state);
        let got2 = crate::tensor::read_floats(new2);
        assert!(got2[0] < got[0]);
    }

    #[test]
    fn vectors_get_plain_momentum_sgd_without_decay() {
        let device = Device::flex();
        let lars = Lars::new(0.02, 0.5, 0.9);
        let p: Tensor<1> = Tensor::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device);
        let g: Tensor<1> = Tensor::from_data(TensorData::new(vec![0.5f32, -1.0], [2]), &device);
        let (new, _) = lars.step(0.1, p, g, None);
        let got = crate::tensor::read_floats(new);
        assert!(
            (got[0] - 0.95).abs() < 1e-6 && (got[1] - 2.1).abs() < 1e-6,
            "{got:?}"
        );
    }
}
