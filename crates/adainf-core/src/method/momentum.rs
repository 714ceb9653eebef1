//! The momentum (target) encoder of MoCo v2+ and BYOL: an exponential moving average of the
//! online encoder's parameters, `target ← τ·target + (1 − τ)·online`, with τ following the
//! official cosine schedule `τ_t = τ_final − (τ_final − τ_base)·(cos(π t / T) + 1)/2`.
//! Only parameters are averaged; the target's batch-norm statistics follow its own forward
//! passes, as in the official code.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// τ at `step` of `total`.
pub fn ema_tau(base: f64, final_tau: f64, step: usize, total: usize) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    final_tau - (final_tau - base) * ((std::f64::consts::PI * t).cos() + 1.0) / 2.0
}

/// Trainable parameters (those that require gradients), flattened, detached.
struct Collect(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.is_require_grad() {
            let t = param.val().detach();
            let n = t.shape().num_elements();
            self.0.insert(param.id, t.reshape([n]));
        }
    }
}

struct Blend {
    online: HashMap<ParamId, Tensor<1>>,
    tau: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(online) = self.online.remove(&param.id) else {
            return param;
        };
        let tau = self.tau;
        param.map(|t| {
            let shape = t.shape();
            t.mul_scalar(tau) + online.reshape(shape).mul_scalar(1.0 - tau)
        })
    }
}

/// A momentum target that starts equal to `online`: same parameter ids and values, but its own
/// tensors (a plain clone would share them, and switching the clone's gradients off would switch
/// off the online model's too), in training mode on the autodiff device, without gradients.
pub fn momentum_copy<M: Module>(online: &M) -> M {
    online.valid().train().no_grad()
}

/// The target after one EMA step toward `online` (same module structure, same parameter ids:
/// the target starts as a clone of the online module).
pub fn ema_update<M: Module>(target: M, online: &M, tau: f64) -> M {
    let mut collect = Collect(HashMap::new());
    online.visit(&mut collect);
    target
        .map(&mut Blend {
            online: collect.0,
            tau,
        })
        .no_grad()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::read_floats;
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
    use burn::tensor::{Device, Distribution};

    #[derive(Module, Debug)]
    struct Net {
        linear: Linear,
        norm: BatchNorm,
    }

    #[test]
    fn schedule_goes_from_base_to_final() {
        assert!((ema_tau(0.99, 0.999, 0, 100) - 0.99).abs() < 1e-12);
        assert!((ema_tau(0.99, 0.999, 100, 100) - 0.999).abs() < 1e-12);
        assert!((ema_tau(0.99, 1.0, 50, 100) - 0.995).abs() < 1e-12);
    }

    #[test]
    fn parameters_move_toward_the_online_ones_and_buffers_do_not() {
        let device = Device::flex().autodiff();
        let online = Net {
            linear: LinearConfig::new(3, 2).init(&device),
            norm: BatchNormConfig::new(2).init(&device),
        };
        let target = momentum_copy(&online);
        assert!(
            online.linear.weight.is_require_grad(),
            "making the target must not freeze the online model"
        );
        // Change the online weights and feed the online net once (moves its running mean).
        let online = Net {
            linear: online.linear.clone().map(&mut Shift),
            norm: online.norm,
        };
        let x: Tensor<2> = Tensor::random([4, 3], Distribution::Normal(3.0, 1.0), &device);
        let _ = online.norm.forward(online.linear.forward(x));
        let before = read_floats(target.linear.weight.val());
        let updated = ema_update(target, &online, 0.9);
        let after = read_floats(updated.linear.weight.val());
        let on = read_floats(online.linear.weight.val());
        for ((b, a), o) in before.iter().zip(&after).zip(&on) {
            assert!((a - (0.9 * b + 0.1 * o)).abs() < 1e-6);
        }
        assert!(!updated.linear.weight.is_require_grad());
        // The running mean of the target's batch norm is not averaged.
        assert!(
            read_floats(updated.norm.running_mean.value())
                .iter()
                .all(|v| *v == 0.0)
        );
    }

    struct Shift;
    impl ModuleMapper for Shift {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            p.map(|t| t.add_scalar(1.0).detach().require_grad())
        }
    }
}
