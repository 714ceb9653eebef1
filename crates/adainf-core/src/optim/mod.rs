//! Optimisers (LARS, SGD with momentum) and the learning-rate schedule.

pub mod lars;
pub mod schedule;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use serde::{Deserialize, Serialize};

/// The pretraining optimiser, serialised as `lars` or `sgd`; both use momentum 0.9.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum OptimizerKind {
    /// LARS (`lars::Lars`) with trust coefficient eta = 0.02.
    Lars,
    /// SGD with heavy-ball momentum and optional weight decay.
    Sgd,
}

/// How the learning rates follow the batch size.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum LrScaling {
    /// `lr · batch / 256` (the official rule, applied to `lr` and `classifier_lr`).
    Linear,
}

crate::closed_set!(OptimizerKind, "optimizer");
crate::option_kind!(choices: LrScaling);

impl OptimizerKind {
    /// A module optimiser with momentum 0.9 (the official value for both).
    pub fn build(self, weight_decay: f64) -> ModuleOptimizer {
        match self {
            OptimizerKind::Lars => ModuleOptimizer::from(lars::Lars::new(0.02, weight_decay, 0.9)),
            OptimizerKind::Sgd => {
                let mut cfg = SgdConfig::new().with_momentum(Some(MomentumConfig {
                    momentum: 0.9,
                    dampening: 0.0,
                    nesterov: false,
                }));
                if weight_decay > 0.0 {
                    cfg = cfg.with_weight_decay(Some(WeightDecayConfig {
                        penalty: weight_decay as f32,
                    }));
                }
                ModuleOptimizer::from(cfg.build())
            }
        }
    }
}
