//! The resolved configuration of one pretraining run. Every field has the value the run used;
//! together with the datasets' fingerprints it is hashed into the run id.

use burn::tensor::{Device, FloatDType};
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;
use crate::error::{Error, Result};
use crate::method::Method;
use crate::model::{Backbone, ResNetConfig};
use crate::optim::{LrScaling, OptimizerKind};

/// The float type the backbone's convolutions compute in. Master weights, batch norm, the
/// losses, the probe and the optimisers are f32 in every case (mixed precision as PyTorch's
/// autocast does it for convolutions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float (the default).
    #[default]
    F32,
    /// bfloat16 (not available on WGSL devices).
    Bf16,
    /// IEEE half precision (on WGSL devices, needs the SHADER_F16 feature).
    F16,
}

impl Precision {
    /// Config names of the variants, in declaration order.
    pub const NAMES: [&'static str; 3] = ["f32", "bf16", "f16"];

    /// Parses a config name ("f32", "bf16" or "f16"); an unknown name is a config error.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" => Ok(Precision::F16),
            other => Err(Error::config(
                "precision",
                format!(
                    "unknown precision \"{other}\"; use one of {}",
                    Self::NAMES.join(", ")
                ),
            )),
        }
    }

    /// The config name: "f32", "bf16" or "f16".
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The burn float type the backbone's convolutions compute in.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// An error naming what `device` supports when it cannot compute in this precision
    /// (WGSL has no bf16; f16 needs the SHADER_F16 feature).
    pub fn check_supported(self, device: &Device) -> Result<()> {
        if device.supports_dtype(self.dtype()) {
            return Ok(());
        }
        let supported: Vec<&str> = Self::NAMES
            .iter()
            .zip([Precision::F32, Precision::Bf16, Precision::F16])
            .filter(|(_, p)| device.supports_dtype(p.dtype()))
            .map(|(n, _)| *n)
            .collect();
        Err(Error::config(
            "precision",
            format!(
                "\"{}\" is not supported on this device; it supports {}",
                self.name(),
                supported.join(", ")
            ),
        ))
    }
}

/// The momentum target's EMA τ, from `base` at the first step to `end` at the last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ema {
    /// τ at the first step (`ema_base`).
    pub base: f64,
    /// τ at the last step (`ema_final`).
    pub end: f64,
}

/// A method's own settings, typed: what a validated config's method-specific fields hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MethodSettings {
    /// SimCLR: NT-Xent (the shared `temperature`).
    Simclr,
    /// MoCo v2+: momentum target and key queues of `queue_size` keys.
    Mocov2 {
        /// The target's EMA.
        ema: Ema,
        /// Keys per queue.
        queue_size: usize,
    },
    /// BYOL: momentum target and a predictor with `pred_hidden` hidden units.
    Byol {
        /// The target's EMA.
        ema: Ema,
        /// Predictor hidden size.
        pred_hidden: usize,
    },
    /// Barlow Twins: off-diagonal weight and loss scale.
    Barlow {
        /// Off-diagonal weight λ.
        lambda: f64,
        /// Loss scale.
        scale: f64,
    },
}

/// Settings of one pretraining run. `Default` is SimCLR's official setup; other methods
/// start from `for_method`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// "simclr", "mocov2", "byol" or "barlow".
    pub method: Method,
    /// "resnet18" (or "resnet10", a CPU-sized variant).
    pub backbone: Backbone,
    /// Channels of the first ResNet stage; 64 = standard ResNet-18.
    pub width: usize,
    /// Optimisation steps, one batch each; also the length of the lr and EMA schedules.
    pub steps: usize,
    /// Images per step (each gives two augmented views); at least 2.
    pub batch: usize,
    /// Learning rate; used as given unless `lr_scaling` is set (the official effective rate
    /// for SimCLR at batch 512 is 0.4).
    pub lr: f64,
    /// Online linear probe learning rate (official effective value 0.1).
    pub classifier_lr: f64,
    /// "lars" or "sgd".
    pub optimizer: OptimizerKind,
    /// Weight decay of the encoder's optimiser (the probe's optimiser has none).
    pub weight_decay: f64,
    /// Linear warm-up steps (official: 1000 of 100k).
    pub warmup: usize,
    /// Learning rate at step 0 of the warm-up (official: 3e-5).
    pub warmup_start: f64,
    /// Softmax temperature of SimCLR's NT-Xent and MoCo's InfoNCE (unused by BYOL, Barlow).
    pub temperature: f64,
    /// Projector hidden and output sizes (official: 2048, 256).
    pub proj_hidden: usize,
    /// Projector output size (also MoCo's key size and BYOL's predictor input/output size).
    pub proj_dim: usize,
    /// Seeds the initial weights, the batch order and the augmentations.
    pub seed: u64,
    /// Probe evaluation period in steps (0 = only at the end).
    pub eval_every: usize,
    /// Loss/throughput logging period in steps (each log reads the loss back from the device).
    pub log_every: usize,
    // Method-specific settings: set (by `for_method`) only for the methods that use them, and
    // left out of the serialised config (and so of the run id) otherwise.
    /// Momentum-target EMA τ at the start and at the end (MoCo v2+: 0.99 → 0.999; BYOL:
    /// 0.99 → 1.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema_base: Option<f64>,
    /// Momentum-target EMA τ at the end of the run (see `ema_base`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema_final: Option<f64>,
    /// MoCo v2+: keys per queue (official 32768).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<usize>,
    /// BYOL: predictor hidden size (official 4096).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pred_hidden: Option<usize>,
    /// Barlow Twins: off-diagonal weight λ (0.0051) and loss scale (0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barlow_lambda: Option<f64>,
    /// Barlow Twins: loss scale (see `barlow_lambda`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barlow_scale: Option<f64>,
    /// "linear": `lr` and `classifier_lr` are multiplied by batch/256 (the official rule,
    /// `lr · batch_size · n_devices / 256`); unset: used as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_scaling: Option<LrScaling>,
    /// The backbone's convolutions in f32, bf16 or f16 (see `Precision`). Left out of the
    /// serialised config (and so of the run id) when f32, so f32 runs keep their ids.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Per-step values of the scheduled keys (`super::schedule`). Left out of the serialised
    /// config (and so of the run id) when nothing is scheduled.
    #[serde(skip_serializing_if = "Schedule::is_empty")]
    pub schedule: Schedule,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            method: Method::Simclr,
            backbone: Backbone::Resnet18,
            width: 64,
            steps: 1000,
            batch: 256,
            lr: 0.4,
            classifier_lr: 0.1,
            optimizer: OptimizerKind::Lars,
            weight_decay: 1e-4,
            warmup: WARMUP,
            warmup_start: WARMUP_START,
            temperature: 0.2,
            proj_hidden: 2048,
            proj_dim: 256,
            seed: 0,
            eval_every: 200,
            log_every: 10,
            ema_base: None,
            ema_final: None,
            queue_size: None,
            pred_hidden: None,
            barlow_lambda: None,
            barlow_scale: None,
            lr_scaling: None,
            precision: Precision::F32,
            schedule: Schedule::default(),
        }
    }
}

/// Official values of the defaults that must fit the run they are used in.
const WARMUP: usize = 100;
const WARMUP_START: f64 = 3e-5;
const QUEUE_SIZE: usize = 32768;

impl PretrainConfig {
    /// Fits the defaults that depend on the rest of the run to it, leaving every option the
    /// user set (`given`) alone, so a default never makes a run invalid: the warm-up is at most
    /// a tenth of the steps (the official 100 from 1,000 steps on), the warm-up start at most
    /// the learning rate, MoCo's queue the largest multiple of the batch up to 32,768 keys, and
    /// the batch at most the number of training items. An explicit bad value still fails
    /// `validate`.
    pub fn fit_defaults(&mut self, given: impl Fn(&str) -> bool, data_len: usize) {
        if !given("batch") && data_len >= 2 {
            self.batch = self.batch.min(data_len);
        }
        if !given("warmup") {
            self.warmup = WARMUP.min(self.steps / 10);
        }
        if !given("warmup_start") {
            self.warmup_start = WARMUP_START.min(self.lr);
        }
        if !given("queue_size")
            && let Some(q) = self.queue_size.as_mut()
        {
            let batch = self.batch.max(1);
            *q = (QUEUE_SIZE / batch).max(1) * batch;
        }
    }

    /// The official settings of a method (reference §5.3; learning rates are the effective
    /// ones of the official runs at global batch 512).
    pub fn for_method(method: Method) -> Self {
        let base = PretrainConfig::default();
        match method {
            Method::Simclr => base,
            Method::Mocov2 => PretrainConfig {
                method: Method::Mocov2,
                optimizer: OptimizerKind::Sgd,
                lr: 0.3,
                classifier_lr: 0.3,
                ema_base: Some(0.99),
                ema_final: Some(0.999),
                queue_size: Some(QUEUE_SIZE),
                ..base
            },
            Method::Byol => PretrainConfig {
                method: Method::Byol,
                lr: 1.0,
                weight_decay: 1e-5,
                proj_hidden: 4096,
                pred_hidden: Some(4096),
                ema_base: Some(0.99),
                ema_final: Some(1.0),
                ..base
            },
            Method::Barlow => PretrainConfig {
                method: Method::Barlow,
                lr: 0.3,
                proj_hidden: 2048,
                proj_dim: 2048,
                barlow_lambda: Some(0.0051),
                barlow_scale: Some(0.1),
                ..base
            },
        }
    }

    /// Learning rates after the scaling rule: (encoder, probe).
    pub fn effective_lrs(&self) -> (f64, f64) {
        match self.lr_scaling {
            Some(LrScaling::Linear) => {
                let k = self.batch as f64 / 256.0;
                (self.lr * k, self.classifier_lr * k)
            }
            None => (self.lr, self.classifier_lr),
        }
    }

    /// Checks ranges and names, naming the offending key.
    pub fn validate(&self) -> Result<()> {
        let method = self.method;
        // A method's own settings are set exactly for the methods that use them (for_method
        // sets them; a config edited by hand may lack one or carry another method's).
        let own = |key: &str, set: bool, wanted: bool, methods: &str| {
            if set && !wanted {
                Err(Error::config(
                    key,
                    format!(
                        "only applies to {methods}, not to \"{}\"",
                        self.method.name()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let momentum = method.has_momentum_target();
        own(
            "ema_base",
            self.ema_base.is_some(),
            momentum,
            "mocov2 and byol",
        )?;
        own(
            "ema_final",
            self.ema_final.is_some(),
            momentum,
            "mocov2 and byol",
        )?;
        own(
            "queue_size",
            self.queue_size.is_some(),
            method == Method::Mocov2,
            "mocov2",
        )?;
        own(
            "pred_hidden",
            self.pred_hidden.is_some(),
            method == Method::Byol,
            "byol",
        )?;
        own(
            "barlow_lambda",
            self.barlow_lambda.is_some(),
            method == Method::Barlow,
            "barlow",
        )?;
        own(
            "barlow_scale",
            self.barlow_scale.is_some(),
            method == Method::Barlow,
            "barlow",
        )?;
        self.method_settings()?;
        for (key, v) in [("ema_base", self.ema_base), ("ema_final", self.ema_final)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(Error::config(key, format!("must be in [0, 1], got {v}")));
            }
        }
        if let Some(q) = self.queue_size
            && (q == 0 || !q.is_multiple_of(self.batch.max(1)))
        {
            return Err(Error::config(
                "queue_size",
                format!(
                    "must be a positive multiple of the batch ({}), got {q}",
                    self.batch
                ),
            ));
        }
        ResNetConfig::new(self.backbone, self.width)?;
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
        // Barlow Twins' off-diagonal weight and loss scale: 0 or less trains nothing (a loss
        // of 0 throughout) or rewards correlation.
        for (key, v) in [
            ("barlow_lambda", self.barlow_lambda),
            ("barlow_scale", self.barlow_scale),
        ] {
            if let Some(v) = v {
                positive(key, v)?;
            }
        }
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
        self.schedule.validate(self.steps)?;
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

    /// The self-supervised method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The method's own settings; an error naming the first one the method needs and the
    /// config lacks (`for_method` sets them all; a hand-edited config may not).
    pub fn method_settings(&self) -> Result<MethodSettings> {
        fn required<T>(method: Method, key: &str, v: Option<T>) -> Result<T> {
            v.ok_or_else(|| {
                Error::config(
                    key,
                    format!(
                        "is missing: \"{m}\" needs it (train::defaults(\"{m}\") gives the official value)",
                        m = method.name()
                    ),
                )
            })
        }
        let need = |key, v: Option<f64>| required(self.method, key, v);
        let need_n = |key, v: Option<usize>| required(self.method, key, v);
        let ema = || -> Result<Ema> {
            Ok(Ema {
                base: need("ema_base", self.ema_base)?,
                end: need("ema_final", self.ema_final)?,
            })
        };
        Ok(match self.method {
            Method::Simclr => MethodSettings::Simclr,
            Method::Mocov2 => MethodSettings::Mocov2 {
                ema: ema()?,
                queue_size: need_n("queue_size", self.queue_size)?,
            },
            Method::Byol => MethodSettings::Byol {
                ema: ema()?,
                pred_hidden: need_n("pred_hidden", self.pred_hidden)?,
            },
            Method::Barlow => MethodSettings::Barlow {
                lambda: need("barlow_lambda", self.barlow_lambda)?,
                scale: need("barlow_scale", self.barlow_scale)?,
            },
        })
    }

    /// Projector layer sizes from the backbone's feature size.
    pub fn projector_sizes(&self, features: usize) -> Vec<usize> {
        match self.method() {
            Method::Barlow => vec![features, self.proj_hidden, self.proj_hidden, self.proj_dim],
            _ => vec![features, self.proj_hidden, self.proj_dim],
        }
    }
    /// The backbone's ResNet config; an error when `width` is not in 1..=1024.
    pub fn backbone_config(&self) -> Result<ResNetConfig> {
        ResNetConfig::new(self.backbone, self.width)
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
        // Unknown names are errors that list the valid ones (no silent fallback).
        for (key, bad) in [
            ("method", "dino"),
            ("optimizer", "adam"),
            ("backbone", "vgg"),
            ("lr_scaling", "sqrt"),
        ] {
            let json = serde_json::json!({ key: bad });
            let e = serde_json::from_value::<PretrainConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad) && e.contains("expected"), "{e}");
        }
        let e = serde_json::from_value::<PretrainConfig>(serde_json::json!({ "method": "dino" }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("byol") && e.contains("barlow"), "{e}");
        // The old spellings the official configs use still parse.
        let moco: PretrainConfig =
            serde_json::from_value(serde_json::json!({ "method": "mocov2plus" })).unwrap();
        assert_eq!(moco.method, Method::Mocov2);
        for m in crate::method::METHODS {
            let cfg = PretrainConfig::for_method(Method::parse(m).unwrap());
            assert!(cfg.validate().is_ok(), "{m}");
        }
        for (key, bad) in [
            ("barlow_scale", 0.0),
            ("barlow_lambda", -1.0),
            ("barlow_lambda", f64::NAN),
        ] {
            let mut cfg = PretrainConfig::for_method(Method::Barlow);
            match key {
                "barlow_scale" => cfg.barlow_scale = Some(bad),
                _ => cfg.barlow_lambda = Some(bad),
            }
            let e = cfg.validate().unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains("positive"),
                "{e}"
            );
        }
        let e = PretrainConfig {
            queue_size: Some(256),
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("queue_size") && e.contains("mocov2"), "{e}");
        // A method without one of its own settings (a hand-edited config or request.json)
        // is rejected here, not at an `expect` in the trainer.
        for (method, key) in [
            (Method::Mocov2, "queue_size"),
            (Method::Mocov2, "ema_base"),
            (Method::Byol, "pred_hidden"),
            (Method::Byol, "ema_final"),
            (Method::Barlow, "barlow_lambda"),
        ] {
            let mut json = serde_json::to_value(PretrainConfig::for_method(method)).unwrap();
            json.as_object_mut().unwrap().remove(key);
            let cfg: PretrainConfig = serde_json::from_value(json).unwrap();
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("missing"), "{e}");
        }
        // SimCLR's serialised config (and so its run ids) carries no method-specific keys.
        let json = serde_json::to_string(&PretrainConfig::default()).unwrap();
        assert!(!json.contains("ema_base") && !json.contains("queue_size"));
        let scaled = PretrainConfig {
            lr_scaling: Some(LrScaling::Linear),
            batch: 512,
            lr: 0.2,
            ..Default::default()
        };
        assert_eq!(scaled.effective_lrs(), (0.4, 0.2));
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

    #[test]
    fn defaults_fit_the_run_and_given_values_are_kept() {
        let nothing_given = |_: &str| false;
        // A short run: the warm-up shrinks with it instead of failing validation.
        let mut short = PretrainConfig {
            steps: 12,
            ..Default::default()
        };
        short.fit_defaults(nothing_given, 1000);
        assert_eq!(short.warmup, 1);
        assert!(short.validate().is_ok());
        // From 1,000 steps on, the official 100.
        let mut long = PretrainConfig::default();
        long.fit_defaults(nothing_given, 100_000);
        assert_eq!((long.warmup, long.batch), (100, 256));
        // A learning rate below the official warm-up start; a dataset smaller than the batch.
        let mut small = PretrainConfig {
            lr: 1e-5,
            ..Default::default()
        };
        small.fit_defaults(nothing_given, 100);
        assert_eq!((small.warmup_start, small.batch), (1e-5, 100));
        assert!(small.validate().is_ok());
        // MoCo's queue follows a batch that does not divide 32,768.
        let mut moco = PretrainConfig {
            batch: 100,
            ..PretrainConfig::for_method(Method::Mocov2)
        };
        moco.fit_defaults(|k| k == "batch", 10_000);
        assert_eq!(moco.queue_size, Some(32_700));
        assert!(moco.validate().is_ok());
        // What the user set stays, and a bad explicit value is still an error.
        let mut explicit = PretrainConfig {
            steps: 12,
            warmup: 100,
            ..Default::default()
        };
        explicit.fit_defaults(|k| k == "warmup", 1000);
        assert_eq!(explicit.warmup, 100);
        assert!(
            explicit
                .validate()
                .unwrap_err()
                .to_string()
                .contains("warmup")
        );
    }
}
