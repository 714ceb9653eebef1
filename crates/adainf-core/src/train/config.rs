//! The resolved configuration of one pretraining run. Every field has the value the run used;
//! together with the datasets' fingerprints it is hashed into the run id.

use burn::tensor::{Device, FloatDType};
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;
use crate::error::{Error, Result};
use crate::method::Method;
use crate::model::{Backbone, ResNetConfig};
use crate::optim::{LrScaling, OptimizerKind};
use crate::options::{Kind, OptionField, OptionKind, Options};

/// The float type the backbone's convolutions compute in. Master weights, batch norm, the
/// losses, the probe and the optimisers are f32 in every case (mixed precision as PyTorch's
/// autocast does it for convolutions).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Precision {
    /// 32-bit float (the default).
    #[default]
    F32,
    /// bfloat16 (not available on WGSL devices).
    Bf16,
    /// IEEE half precision (on WGSL devices, needs the SHADER_F16 feature).
    F16,
}

crate::closed_set!(Precision, "precision");

impl Precision {
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
        let supported: Vec<&str> = <Self as strum::VariantArray>::VARIANTS
            .iter()
            .filter(|p| device.supports_dtype(p.dtype()))
            .map(|p| p.name())
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

/// MoCo v2+'s own settings; `Default` is the official setup (reference §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(deny_unknown_fields, default)]
pub struct Mocov2Settings {
    /// Momentum-target τ at the start.
    #[option(default = 0.99)]
    pub ema_base: f64,
    /// Momentum-target τ at the end.
    #[option(default = 0.999)]
    pub ema_final: f64,
    /// Keys per queue, a multiple of the batch; unset: the default rounded down to one.
    ///
    /// Fitted to the largest multiple of the batch up to the official 32,768 unless given
    /// (`PretrainConfig::fit_defaults`).
    #[option(default = QUEUE_SIZE)]
    pub queue_size: usize,
}

impl Mocov2Settings {
    /// The momentum target's EMA.
    pub fn ema(&self) -> Ema {
        Ema {
            base: self.ema_base,
            end: self.ema_final,
        }
    }
}

/// BYOL's own settings; `Default` is the official setup (reference §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(deny_unknown_fields, default)]
pub struct ByolSettings {
    /// Momentum-target τ at the start.
    #[option(default = 0.99)]
    pub ema_base: f64,
    /// Momentum-target τ at the end.
    #[option(default = 1.0)]
    pub ema_final: f64,
    /// Predictor hidden size.
    #[option(default = 4096)]
    pub pred_hidden: usize,
}

impl ByolSettings {
    /// The momentum target's EMA.
    pub fn ema(&self) -> Ema {
        Ema {
            base: self.ema_base,
            end: self.ema_final,
        }
    }
}

/// Barlow Twins' own settings; `Default` is the official setup (reference §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(deny_unknown_fields, default)]
pub struct BarlowSettings {
    /// Off-diagonal weight λ.
    #[option(default = 0.0051)]
    pub barlow_lambda: f64,
    /// Loss scale.
    #[option(default = 0.1)]
    pub barlow_scale: f64,
}

/// The self-supervised method with exactly its own settings: a configuration a method cannot
/// run (MoCo without its queue, a queue for SimCLR) cannot be written down. In the stored
/// form the method's name is the config's `method` key and its settings are keys beside the
/// shared ones (`PretrainConfig`'s `Serialize` and `Deserialize`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MethodConfig {
    /// SimCLR: NT-Xent (the shared `temperature`); no settings of its own.
    Simclr,
    /// MoCo v2+: a momentum target and a key queue.
    Mocov2(Mocov2Settings),
    /// BYOL: a momentum target and a predictor.
    Byol(ByolSettings),
    /// Barlow Twins: the cross-correlation loss's weights.
    Barlow(BarlowSettings),
}

impl MethodConfig {
    /// `method` with its official settings.
    pub fn official(method: Method) -> Self {
        match method {
            Method::Simclr => MethodConfig::Simclr,
            Method::Mocov2 => MethodConfig::Mocov2(Mocov2Settings::default()),
            Method::Byol => MethodConfig::Byol(ByolSettings::default()),
            Method::Barlow => MethodConfig::Barlow(BarlowSettings::default()),
        }
    }

    /// Which method this is.
    pub fn method(&self) -> Method {
        match self {
            MethodConfig::Simclr => Method::Simclr,
            MethodConfig::Mocov2(_) => Method::Mocov2,
            MethodConfig::Byol(_) => Method::Byol,
            MethodConfig::Barlow(_) => Method::Barlow,
        }
    }

    /// The options of `method`'s own settings (their struct's fields).
    pub fn settings(method: Method) -> Vec<OptionField> {
        match method {
            Method::Simclr => Vec::new(),
            Method::Mocov2 => Mocov2Settings::option_fields(),
            Method::Byol => ByolSettings::option_fields(),
            Method::Barlow => BarlowSettings::option_fields(),
        }
    }

    /// The keys of `method`'s own settings.
    pub fn keys(method: Method) -> Vec<&'static str> {
        Self::settings(method).iter().map(|o| o.key).collect()
    }

    /// The keys of every method's own settings, each once, in the methods' order.
    pub fn all_keys() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = Vec::new();
        for &m in Method::ALL {
            for k in Self::keys(m) {
                if !all.contains(&k) {
                    all.push(k);
                }
            }
        }
        all
    }

    /// The momentum target's EMA, for the methods that have one.
    pub fn ema(&self) -> Option<Ema> {
        match self {
            MethodConfig::Mocov2(m) => Some(m.ema()),
            MethodConfig::Byol(b) => Some(b.ema()),
            _ => None,
        }
    }

    /// `method` from the stored keys of its own settings (`own`; one left out takes its
    /// official value): a key of another method's settings is an error naming it.
    fn from_stored(
        method: Method,
        own: serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<Self, String> {
        let keys = Self::keys(method);
        if let Some(foreign) = own.keys().find(|k| !keys.contains(&k.as_str())) {
            let users: Vec<&str> = Method::ALL
                .iter()
                .filter(|m| Self::keys(**m).contains(&foreign.as_str()))
                .map(|m| m.name())
                .collect();
            return Err(format!(
                "`{foreign}` only applies to {}, not to \"{}\"",
                users.join(" and "),
                method.name()
            ));
        }
        let own = serde_json::Value::Object(own);
        let parsed = match method {
            Method::Simclr => Ok(MethodConfig::Simclr),
            Method::Mocov2 => serde_json::from_value(own).map(MethodConfig::Mocov2),
            Method::Byol => serde_json::from_value(own).map(MethodConfig::Byol),
            Method::Barlow => serde_json::from_value(own).map(MethodConfig::Barlow),
        };
        parsed.map_err(|e| e.to_string())
    }

    /// Checks the ranges of the method's own settings, naming the offending key.
    fn validate(&self, batch: usize) -> Result<()> {
        if let Some(ema) = self.ema() {
            for (key, v) in [("ema_base", ema.base), ("ema_final", ema.end)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(Error::config(key, format!("must be in [0, 1], got {v}")));
                }
            }
        }
        match *self {
            MethodConfig::Mocov2(Mocov2Settings { queue_size: q, .. })
                if q == 0 || !q.is_multiple_of(batch.max(1)) =>
            {
                Err(Error::config(
                    "queue_size",
                    format!("must be a positive multiple of the batch ({batch}), got {q}"),
                ))
            }
            // Barlow Twins' off-diagonal weight and loss scale: 0 or less trains nothing (a
            // loss of 0 throughout) or rewards correlation.
            MethodConfig::Barlow(b) => {
                positive("barlow_lambda", b.barlow_lambda)?;
                positive("barlow_scale", b.barlow_scale)
            }
            _ => Ok(()),
        }
    }
}

/// Serializes the method's own settings only (its name is the config's `method` key, which
/// `PretrainConfig` writes first).
impl Serialize for MethodConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            MethodConfig::Simclr => s.serialize_map(Some(0))?.end(),
            MethodConfig::Mocov2(m) => m.serialize(s),
            MethodConfig::Byol(b) => b.serialize(s),
            MethodConfig::Barlow(b) => b.serialize(s),
        }
    }
}

/// The options a method brings: `method`, then every method's own settings once, each doc
/// ending with the methods it applies to ("(mocov2/byol only)"): where `PretrainConfig`'s
/// `method` field stands in its option list.
impl Options for MethodConfig {
    fn option_fields() -> Vec<OptionField> {
        static ROWS: std::sync::LazyLock<Vec<OptionField>> = std::sync::LazyLock::new(|| {
            let method = OptionField {
                key: "method",
                kind: Kind::Str,
                doc: "The self-supervised method; unset keys take that method's official defaults (shown per method where they differ).",
                choices: <Method as OptionKind>::CHOICES,
            };
            let mut rows = vec![method];
            for key in MethodConfig::all_keys() {
                let users: Vec<&str> = Method::ALL
                    .iter()
                    .filter(|m| MethodConfig::keys(**m).contains(&key))
                    .map(|m| m.name())
                    .collect();
                let own = Method::ALL
                    .iter()
                    .flat_map(|m| MethodConfig::settings(*m))
                    .find(|o| o.key == key)
                    .expect("a key of all_keys is some method's setting");
                let doc = own.doc.strip_suffix('.').unwrap_or(own.doc);
                let doc = format!("{doc} ({} only).", users.join("/"));
                rows.push(OptionField {
                    doc: doc.leak(),
                    ..own
                });
            }
            rows
        });
        ROWS.clone()
    }
}

/// An error naming `key` unless `v` is a finite number above 0.
fn positive(key: &str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!("must be a positive number, got {v}"),
        ))
    }
}

/// Settings of one pretraining run. `Default` is SimCLR's official setup; other methods
/// start from `for_method`.
///
/// Stored form: a flat JSON object, `method` first, then the fields below in order with the
/// method's own settings at `method`'s place (the bytes run ids were pinned with, so cached
/// runs keep their ids). The derive below (`remote = "Self"`) reads and writes everything but
/// the method's name; the `Serialize` and `Deserialize` impls add it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(remote = "Self", deny_unknown_fields, default)]
#[option(manual_default)]
pub struct PretrainConfig {
    /// The backbone: the CIFAR ResNet-18, or a CPU-sized ResNet-10.
    pub backbone: Backbone,
    /// First-stage channels, 64 = standard ResNet-18.
    pub width: usize,
    /// Optimisation steps.
    ///
    /// One batch each; also the length of the lr and EMA schedules.
    pub steps: usize,
    /// Images per step (two views each), at least 2.
    pub batch: usize,
    /// Learning rate, used as given (the defaults are the official effective rates at batch 512).
    pub lr: f64,
    /// Online probe learning rate.
    pub classifier_lr: f64,
    /// The encoder's optimiser.
    pub optimizer: OptimizerKind,
    /// Weight decay (not on biases and norms with LARS).
    ///
    /// The probe's optimiser has none.
    pub weight_decay: f64,
    /// Linear warm-up steps; unset: the default, at most steps / 10.
    pub warmup: usize,
    /// Learning rate at step 0; unset: the default, at most lr.
    pub warmup_start: f64,
    /// NT-Xent and InfoNCE temperature.
    ///
    /// Unused by BYOL and Barlow Twins.
    pub temperature: f64,
    /// Projector hidden size.
    pub proj_hidden: usize,
    /// Projector output size.
    ///
    /// Also MoCo's key size and BYOL's predictor input/output size.
    pub proj_dim: usize,
    /// Random seed.
    ///
    /// Seeds the initial weights, the batch order and the augmentations.
    pub seed: u64,
    /// Online-probe evaluation period in steps (0 = end only).
    pub eval_every: usize,
    /// Loss logging period in steps.
    ///
    /// Each log reads the loss back from the device.
    pub log_every: usize,
    /// The method and its own settings (`method` and the settings' keys).
    ///
    /// In the stored form the method's name is the `method` key and its settings are keys
    /// here, beside the shared ones.
    #[serde(flatten, skip_deserializing)]
    pub method: MethodConfig,
    /// "linear": lr and classifier_lr × batch/256 (the official rule); unset: as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_scaling: Option<LrScaling>,
    /// The backbone's convolutions in that type; f32 master weights, batch norm, losses and
    /// optimiser.
    ///
    /// Left out of the serialised config (and so of the run id) when f32, so f32 runs keep
    /// their ids.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Values that change over the run, per step: #{ generated_share, strength, lr } (see
    /// below); the per-step values, not how they are written, are part of the run id.
    ///
    /// Left out of the serialised config (and so of the run id) when nothing is scheduled.
    #[serde(skip_serializing_if = "Schedule::is_empty")]
    pub schedule: Schedule,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            method: MethodConfig::Simclr,
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
            && let MethodConfig::Mocov2(moco) = &mut self.method
        {
            let batch = self.batch.max(1);
            moco.queue_size = (QUEUE_SIZE / batch).max(1) * batch;
        }
    }

    /// The official settings of a method (reference §5.3; learning rates are the effective
    /// ones of the official runs at global batch 512).
    pub fn for_method(method: Method) -> Self {
        let base = PretrainConfig {
            method: MethodConfig::official(method),
            ..PretrainConfig::default()
        };
        match method {
            Method::Simclr => base,
            Method::Mocov2 => PretrainConfig {
                optimizer: OptimizerKind::Sgd,
                lr: 0.3,
                classifier_lr: 0.3,
                ..base
            },
            Method::Byol => PretrainConfig {
                lr: 1.0,
                weight_decay: 1e-5,
                proj_hidden: 4096,
                ..base
            },
            Method::Barlow => PretrainConfig {
                lr: 0.3,
                proj_hidden: 2048,
                proj_dim: 2048,
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
        self.method.validate(self.batch)?;
        ResNetConfig::new(self.backbone, self.width)?;
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
        self.method.method()
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

/// The stored form: the method's name first, then the derived fields (`remote = "Self"`) with
/// the method's own settings at their place.
impl Serialize for PretrainConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Fields<'a>(&'a PretrainConfig);
        impl Serialize for Fields<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                PretrainConfig::serialize(self.0, s)
            }
        }
        #[derive(Serialize)]
        struct Stored<'a> {
            method: Method,
            #[serde(flatten)]
            fields: Fields<'a>,
        }
        Stored {
            method: self.method(),
            fields: Fields(self),
        }
        .serialize(s)
    }
}

/// Reads the stored form: `method` (SimCLR when absent) picks the variant, which takes its own
/// settings (another method's setting is an error naming it; a missing one of its own takes
/// its official value); the derived fields take the rest, where an unknown key is an error.
impl<'de> Deserialize<'de> for PretrainConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut stored = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let method = match stored.remove("method") {
            Some(name) => Method::deserialize(name).map_err(D::Error::custom)?,
            None => PretrainConfig::default().method(),
        };
        let own = MethodConfig::all_keys()
            .into_iter()
            .filter_map(|key| stored.remove_entry(key))
            .collect();
        let method = MethodConfig::from_stored(method, own).map_err(D::Error::custom)?;
        let mut config = PretrainConfig::deserialize(serde_json::Value::Object(stored))
            .map_err(D::Error::custom)?;
        config.method = method;
        Ok(config)
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
        assert_eq!(moco.method(), Method::Mocov2);
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
            let MethodConfig::Barlow(barlow) = &mut cfg.method else {
                unreachable!()
            };
            match key {
                "barlow_scale" => barlow.barlow_scale = bad,
                _ => barlow.barlow_lambda = bad,
            }
            let e = cfg.validate().unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains("positive"),
                "{e}"
            );
        }
        // Another method's setting cannot be written into a config: the stored form naming one
        // is refused, with the methods it applies to.
        for (json, key, owners) in [
            (
                serde_json::json!({ "queue_size": 256 }),
                "queue_size",
                "mocov2",
            ),
            (
                serde_json::json!({ "method": "byol", "barlow_scale": 0.1 }),
                "barlow_scale",
                "barlow",
            ),
            (
                serde_json::json!({ "method": "barlow", "ema_base": 0.9 }),
                "ema_base",
                "mocov2 and byol",
            ),
        ] {
            let e = serde_json::from_value::<PretrainConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("`{key}` only applies to {owners}, not to")),
                "{e}"
            );
        }
        // A method's own setting left out of the stored form takes its official value, so
        // every config that reads is one its method can run.
        for (method, key) in [
            (Method::Mocov2, "queue_size"),
            (Method::Mocov2, "ema_base"),
            (Method::Byol, "pred_hidden"),
            (Method::Byol, "ema_final"),
            (Method::Barlow, "barlow_lambda"),
        ] {
            let official = PretrainConfig::for_method(method);
            let mut json = serde_json::to_value(&official).unwrap();
            json.as_object_mut().unwrap().remove(key);
            let read: PretrainConfig = serde_json::from_value(json).unwrap();
            assert_eq!(read, official, "{key}");
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
        assert_eq!(moco.method.ema().map(|e| e.base), Some(0.99));
        let MethodConfig::Mocov2(settings) = moco.method else {
            panic!("{moco:?}")
        };
        assert_eq!(settings.queue_size, 32_700);
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
