//! The resolved configuration of one pretraining run. Every field has the value the run used;
//! together with the datasets' fingerprints it is hashed into the run id.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::method::Method;
use crate::model::ResNetConfig;
use crate::optim::OptimizerKind;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// "simclr".
    pub method: String,
    /// "resnet18" (or "resnet10", a CPU-sized variant).
    pub backbone: String,
    /// Channels of the first ResNet stage; 64 = standard ResNet-18.
    pub width: usize,
    pub steps: usize,
    pub batch: usize,
    /// Learning rate as used (no batch-size scaling is applied: the official effective rate for
    /// SimCLR at batch 512 is 0.4).
    pub lr: f64,
    /// Online linear probe learning rate (official effective value 0.1).
    pub classifier_lr: f64,
    /// "lars" or "sgd".
    pub optimizer: String,
    pub weight_decay: f64,
    /// Linear warm-up steps (official: 1000 of 100k).
    pub warmup: usize,
    /// Learning rate at step 0 of the warm-up (official: 3e-5).
    pub warmup_start: f64,
    pub temperature: f64,
    /// Projector hidden and output sizes (official: 2048, 256).
    pub proj_hidden: usize,
    pub proj_dim: usize,
    pub seed: u64,
    /// Probe evaluation period in steps (0 = only at the end).
    pub eval_every: usize,
    /// Loss/throughput logging period in steps (each log reads the loss back from the device).
    pub log_every: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            method: "simclr".into(),
            backbone: "resnet18".into(),
            width: 64,
            steps: 1000,
            batch: 256,
            lr: 0.4,
            classifier_lr: 0.1,
            optimizer: "lars".into(),
            weight_decay: 1e-4,
            warmup: 100,
            warmup_start: 3e-5,
            temperature: 0.2,
            proj_hidden: 2048,
            proj_dim: 256,
            seed: 0,
            eval_every: 200,
            log_every: 10,
        }
    }
}

impl PretrainConfig {
    /// Checks ranges and names, naming the offending key.
    pub fn validate(&self) -> Result<()> {
        Method::parse(&self.method)?;
        OptimizerKind::parse(&self.optimizer)?;
        ResNetConfig::named(&self.backbone, self.width)?;
        let positive = |key: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::config(
                    key,
                    format!("must be a positive number, got {v}"),
                ))
            }
        };
        positive("lr", self.lr)?;
        positive("classifier_lr", self.classifier_lr)?;
        positive("temperature", self.temperature)?;
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::config(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            ));
        }
        if !(0.0..=self.lr).contains(&self.warmup_start) {
            return Err(Error::config(
                "warmup_start",
                format!("must be in [0, lr], got {}", self.warmup_start),
            ));
        }
        for (key, v) in [
            ("steps", self.steps),
            ("batch", self.batch),
            ("proj_hidden", self.proj_hidden),
            ("proj_dim", self.proj_dim),
            ("log_every", self.log_every),
        ] {
            if v == 0 {
                return Err(Error::config(key, "must be at least 1"));
            }
        }
        if self.batch < 2 {
            return Err(Error::config(
                "batch",
                "must be at least 2 (contrastive losses need negatives)",
            ));
        }
        if self.warmup > self.steps {
            return Err(Error::config(
                "warmup",
                format!(
                    "is {} but the run has only {} steps",
                    self.warmup, self.steps
                ),
            ));
        }
        Ok(())
    }

    pub fn method(&self) -> Method {
        Method::parse(&self.method).unwrap_or(Method::Simclr)
    }
    pub fn optimizer_kind(&self) -> OptimizerKind {
        OptimizerKind::parse(&self.optimizer).unwrap_or(OptimizerKind::Lars)
    }
    pub fn backbone_config(&self) -> Result<ResNetConfig> {
        ResNetConfig::named(&self.backbone, self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert!(PretrainConfig::default().validate().is_ok());
        let e = PretrainConfig {
            lr: -1.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`lr`"), "{e}");
        let e = PretrainConfig {
            method: "byol".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("byol"), "{e}");
        let e = PretrainConfig {
            warmup: 5,
            steps: 2,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("warmup"), "{e}");
    }
}
