//! LARS as in the official code (lightning-bolts, `exclude_bias_n_norm=True`, `clip_lr=True`):
//! for parameters of rank ≥ 2, `d = (g + wd·p) · min(eta·‖p‖ / (‖g‖ + wd·‖p‖ + 1e-8) / lr, 1)`
//! (no scaling when ‖p‖ or ‖g‖ is zero); rank-1 parameters (biases, norm scales) get neither
//! scaling nor weight decay. Then heavy-ball momentum (PyTorch semantics, no dampening) and
//! `p ← p − lr·buf`. Everything stays on the device: no scalar is read back.

use burn::optim::momentum::MomentumConfig;
use burn::optim::{LearningRate, Optimizer, Sgd, SgdConfig, SgdState};
use burn::tensor::{Device, Tensor};

/// LARS as in the module docs: layer-wise trust-ratio scaling, then SGD momentum.
#[derive(Clone)]
pub struct Lars {
    eta: f64,
    weight_decay: f64,
    /// Momentum and the update itself (no weight decay inside).
    sgd: Sgd,
}

impl Lars {
    /// LARS with trust coefficient `eta`, weight decay and heavy-ball `momentum` (no dampening).
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

    /// The official rule, transcribed in f64 for one matrix step from a zero momentum buffer.
    fn reference_step(p: &[f64], g: &[f64], lr: f64, eta: f64, wd: f64) -> Vec<f64> {
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let (pn, gn) = (norm(p), norm(g));
        let scale = if pn > 0.0 && gn > 0.0 {
            (eta * pn / (gn + wd * pn + 1e-8) / lr).min(1.0)
        } else {
            1.0
        };
        p.iter()
            .zip(g)
            .map(|(p, g)| p - lr * (g + wd * p) * scale)
            .collect()
    }

    fn step_once(p: &[f32], g: &[f32], lr: f64, eta: f64, wd: f64) -> Vec<f32> {
        let device = Device::flex();
        let (new, _) = Lars::new(eta, wd, 0.9).step(lr, t2(p, &device), t2(g, &device), None);
        crate::tensor::read_floats(new)
    }

    #[test]
    fn the_clip_binds_when_the_trust_ratio_exceeds_the_learning_rate() {
        // ‖p‖ = 5, ‖g‖ = 0.01: eta·‖p‖/‖g‖ ≈ 9.95 ≫ lr = 0.1, so the clip sets the scale to 1
        // and the step is plain SGD with weight decay. Without the clip the step would be
        // about 100× larger.
        let (p, g) = ([3.0f32, 4.0], [0.006f32, 0.008]);
        let (lr, eta, wd) = (0.1, 0.02, 1e-4);
        let got = step_once(&p, &g, lr, eta, wd);
        let want = reference_step(&[3.0, 4.0], &[0.006, 0.008], lr, eta, wd);
        for (a, b) in got.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        let plain: Vec<f64> = [3.0f64, 4.0]
            .iter()
            .zip([0.006, 0.008])
            .map(|(p, g)| p - lr * (g + wd * p))
            .collect();
        assert!(
            (got[0] as f64 - plain[0]).abs() < 1e-6,
            "{got:?} vs {plain:?}"
        );
    }

    #[test]
    fn a_zero_gradient_or_zero_weight_is_not_scaled() {
        let (lr, eta, wd) = (0.5, 0.02, 0.1);
        // Zero gradient: the weight-decay term alone moves p, unscaled (trust would be
        // eta / wd = 0.2 < 1 if it were applied).
        let got = step_once(&[3.0, 4.0], &[0.0, 0.0], lr, eta, wd);
        let want = reference_step(&[3.0, 4.0], &[0.0, 0.0], lr, eta, wd);
        assert!(
            (got[0] as f64 - want[0]).abs() < 1e-6 && (got[0] - 2.85).abs() < 1e-6,
            "{got:?}"
        );
        // Zero weight: the gradient step is unscaled too (trust would be 0).
        let got = step_once(&[0.0, 0.0], &[0.6, 0.8], lr, eta, wd);
        assert!(
            (got[0] + 0.3).abs() < 1e-6 && (got[1] + 0.4).abs() < 1e-6,
            "{got:?}"
        );
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
