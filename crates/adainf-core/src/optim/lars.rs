//! LARS as in the official code (solo-learn's `solo/utils/lars.py`, from lightning-bolts, with
//! `exclude_bias_n_norm_lars=True`, `clip_lars_lr=True`): for parameters of rank ≥ 2,
//! `d = (g + wd·p) · min(eta·‖p‖ / (‖g‖ + wd·‖p‖ + 1e-8) / lr, 1)`, and `d = g` (neither
//! scaling nor weight decay) when ‖p‖ or ‖g‖ is zero; rank-1 parameters (biases, norm scales)
//! get neither scaling nor weight decay. Then heavy-ball momentum (PyTorch semantics, no
//! dampening) and `p ← p − lr·buf`. Everything stays on the device: no scalar is read back.
//! The tests compare against that code run by PyTorch (`tests/fixtures/make_lars_fixtures.py`).

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
            let scale = clipped.mask_fill(both_nonzero.clone().bool_not(), 1.0);
            let shape = grad.shape();
            let decayed = if wd > 0.0 {
                // The weight decay joins only where the scaling applies (zero otherwise).
                let decay = both_nonzero.float().mul_scalar(wd);
                grad + tensor
                    .clone()
                    .mul(decay.reshape([1; D]).expand(shape.clone()))
            } else {
                grad
            };
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
    use serde::Deserialize;
    use std::collections::BTreeMap;

    /// Parameters after each step of solo-learn's LARS run by PyTorch in f64
    /// (`tests/fixtures/make_lars_fixtures.py` → `tests/fixtures/lars_fixtures.json`).
    #[derive(Deserialize)]
    struct Fixture {
        configs: Vec<Config>,
    }

    #[derive(Deserialize)]
    struct Config {
        eta: f64,
        weight_decay: f64,
        momentum: f64,
        shapes: BTreeMap<String, Vec<usize>>,
        init: BTreeMap<String, Vec<f32>>,
        steps: Vec<Step>,
    }

    #[derive(Deserialize)]
    struct Step {
        lr: f64,
        grads: BTreeMap<String, Vec<f32>>,
        after: BTreeMap<String, Vec<f64>>,
    }

    fn fixture() -> Fixture {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/lars_fixtures.json"
        );
        let text = std::fs::read_to_string(path).expect("the fixture file is in the repository");
        serde_json::from_str(&text).expect("the fixture file parses")
    }

    /// Runs every step of `config` on the parameter `name` (of rank `D`), carrying the
    /// momentum state, and checks the parameter after each step.
    fn check_parameter<const D: usize>(config: &Config, name: &str) {
        let device = Device::flex();
        let shape: [usize; D] = config.shapes[name].clone().try_into().expect("rank");
        let tensor =
            |v: &[f32]| Tensor::<D>::from_data(TensorData::new(v.to_vec(), shape), &device);
        let lars = Lars::new(config.eta, config.weight_decay, config.momentum);
        let mut p = tensor(&config.init[name]);
        let mut state = None;
        for (k, step) in config.steps.iter().enumerate() {
            let (next, next_state) = lars.step(step.lr, p, tensor(&step.grads[name]), state);
            let got = crate::tensor::read_floats(next.clone());
            let want = &step.after[name];
            for (a, b) in got.iter().zip(want) {
                assert!(
                    (*a as f64 - b).abs() < 2e-5 * (1.0 + b.abs()),
                    "{name} (eta {}, wd {}, momentum {}) after step {}: {got:?} vs {want:?}",
                    config.eta,
                    config.weight_decay,
                    config.momentum,
                    k + 1
                );
            }
            (p, state) = (next, next_state);
        }
    }

    /// Matrices: the trust ratio, the clip (it binds on step 2 of the first configuration),
    /// weight decay, momentum across steps, a zero gradient (step 4: neither scaling nor decay).
    #[test]
    fn matrices_match_the_reference_step_by_step() {
        for config in &fixture().configs {
            check_parameter::<2>(config, "matrix");
        }
    }

    #[test]
    fn convolution_kernels_match_the_reference_step_by_step() {
        for config in &fixture().configs {
            check_parameter::<4>(config, "conv");
        }
    }

    /// A zero weight (zero-initialised layer) takes a plain gradient step first.
    #[test]
    fn a_zero_weight_matches_the_reference() {
        for config in &fixture().configs {
            check_parameter::<2>(config, "zero_matrix");
        }
    }

    /// Biases and norm scales: plain momentum SGD, no scaling and no weight decay.
    #[test]
    fn vectors_are_excluded_as_in_the_reference() {
        for config in &fixture().configs {
            check_parameter::<1>(config, "bias");
        }
    }
}
