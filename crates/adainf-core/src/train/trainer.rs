//! One run's training state and step: the online encoder (backbone, projector, BYOL's
//! predictor), the momentum target (MoCo v2+, BYOL), MoCo's key queues, the online linear
//! probe, the optimisers and the schedules. `step` is one optimisation step on one batch.
//! Saving and restoring this state is `super::checkpoint`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, FloatDType, Tensor};

use super::config::{Ema, MethodConfig, PretrainConfig};
use super::schedule::ScheduleKey;
use crate::augment::{AugSpec, ViewPair, ViewParams, batch};
use crate::data::Dataset;
use crate::data::loader::Batch;
use crate::error::Result;
use crate::eval::probe_accuracy;
use crate::method::heads::Mlp;
use crate::method::losses::{barlow_loss, byol_loss, l2_normalize, moco_infonce, nt_xent};
use crate::method::momentum::{ema_tau, ema_update, momentum_copy};
use crate::method::probe::masked_cross_entropy;
use crate::method::queue::KeyQueue;
use crate::model::{ResNet, init_seeded};
use crate::optim::schedule::WarmupCosine;
use crate::rng::Rng;
use crate::tensor::ints;

/// The trainable self-supervised model: backbone, projection head and (BYOL) predictor.
#[derive(Module, Debug)]
pub struct Encoder {
    /// The ResNet feature extractor.
    pub backbone: ResNet,
    /// MLP from the backbone's features to the embeddings the loss compares.
    pub projector: Mlp,
    /// BYOL's predictor on the projections; None for other methods.
    pub predictor: Option<Mlp>,
}

impl Encoder {
    /// BYOL's prediction of `z` (the encoder of a BYOL trainer is built with its predictor;
    /// other methods never call this).
    fn predict(&self, z: Tensor<2>) -> Tensor<2> {
        match &self.predictor {
            Some(p) => p.forward(z),
            None => z,
        }
    }

    fn project(&self, x: Tensor<4>, dtype: FloatDType) -> (Tensor<2>, Tensor<2>) {
        let f = self.backbone.forward_in(x, dtype);
        let z = self.projector.forward(f.clone());
        (f, z)
    }
}

/// What each method adds to the shared state, built from its typed settings: the momentum
/// target and MoCo's queues exist exactly for the methods that use them.
// One per trainer, built once and never moved on a hot path: the size of its largest variant
// costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum MethodState {
    /// SimCLR: nothing beyond the encoder.
    Simclr,
    /// MoCo v2+: momentum target and key queues.
    Mocov2 {
        target: Box<Encoder>,
        queue: KeyQueue,
        ema: Ema,
    },
    /// BYOL: momentum target (the predictor is part of the online encoder).
    Byol { target: Box<Encoder>, ema: Ema },
    /// Barlow Twins: its loss weights.
    Barlow { lambda: f64, scale: f64 },
}

impl MethodState {
    /// The momentum target, for the methods that have one.
    pub(super) fn target(&self) -> Option<&Encoder> {
        match self {
            MethodState::Mocov2 { target, .. } | MethodState::Byol { target, .. } => {
                Some(target.as_ref())
            }
            _ => None,
        }
    }

    /// The momentum target (mutable) and its EMA, for the methods that have one.
    pub(super) fn target_mut(&mut self) -> Option<(&mut Encoder, Ema)> {
        match self {
            MethodState::Mocov2 { target, ema, .. } | MethodState::Byol { target, ema } => {
                Some((target.as_mut(), *ema))
            }
            _ => None,
        }
    }

    /// MoCo's key queues.
    pub(super) fn queue(&self) -> Option<&KeyQueue> {
        match self {
            MethodState::Mocov2 { queue, .. } => Some(queue),
            _ => None,
        }
    }

    /// MoCo's key queues (mutable).
    pub(super) fn queue_mut(&mut self) -> Option<&mut KeyQueue> {
        match self {
            MethodState::Mocov2 { queue, .. } => Some(queue),
            _ => None,
        }
    }
}

/// One run's training state: encoder, momentum target, MoCo's queues, online probe,
/// optimisers, learning-rate schedules and augmentations.
pub struct Trainer {
    pub(super) cfg: PretrainConfig,
    pub(super) encoder: Encoder,
    pub(super) state: MethodState,
    pub(super) probe: Linear,
    pub(super) encoder_opt: ModuleOptimizer,
    pub(super) probe_opt: ModuleOptimizer,
    pub(super) lr_encoder: WarmupCosine,
    pub(super) lr_probe: WarmupCosine,
    pub(super) aug: ViewPair,
    /// The plain (non-autodiff) device: inputs and augmentation live here.
    pub(super) plain: Device,
    pub(super) autodiff: Device,
}

impl Trainer {
    /// Fresh state for `cfg` (validated, and its precision checked against `device`), with
    /// seeded initial weights; `classes` is the online probe's output size.
    pub fn new(
        cfg: &PretrainConfig,
        aug: &ViewPair,
        classes: usize,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        cfg.precision.check_supported(device)?;
        let method = cfg.method();
        let plain = device.clone();
        let autodiff = plain.clone().autodiff();
        crate::model::seed_device(&autodiff, cfg.seed);
        let backbone_cfg = cfg.backbone_config()?;
        let feat = backbone_cfg.feature_dim();
        let bn = method.projector_batch_norm();
        // Initial weights come from the seeded host generator, whatever the device.
        let (encoder, probe) = init_seeded(cfg.seed, true, &autodiff, |host| {
            let encoder = Encoder {
                backbone: backbone_cfg.init(host),
                projector: Mlp::new(&cfg.projector_sizes(feat), bn, host),
                predictor: match cfg.method {
                    MethodConfig::Byol(byol) => Some(Mlp::new(
                        &[cfg.proj_dim, byol.pred_hidden, cfg.proj_dim],
                        true,
                        host,
                    )),
                    _ => None,
                },
            };
            (encoder, LinearConfig::new(feat, classes.max(1)).init(host))
        });
        let target = || {
            Box::new(momentum_copy(&Encoder {
                predictor: None,
                ..encoder.clone()
            }))
        };
        let state = match cfg.method {
            MethodConfig::Simclr => MethodState::Simclr,
            MethodConfig::Mocov2(moco) => MethodState::Mocov2 {
                target: target(),
                queue: KeyQueue::new(moco.queue_size, cfg.proj_dim, cfg.batch, &plain)?,
                ema: moco.ema(),
            },
            MethodConfig::Byol(byol) => MethodState::Byol {
                target: target(),
                ema: byol.ema(),
            },
            MethodConfig::Barlow(barlow) => MethodState::Barlow {
                lambda: barlow.barlow_lambda,
                scale: barlow.barlow_scale,
            },
        };
        let (lr, classifier_lr) = cfg.effective_lrs();
        let schedule = |base: f64| WarmupCosine {
            base,
            warmup: cfg.warmup,
            total: cfg.steps,
            warmup_start: cfg.warmup_start.min(base),
            min_lr: 0.0,
        };
        Ok(Trainer {
            cfg: cfg.clone(),
            encoder,
            state,
            probe,
            encoder_opt: cfg.optimizer.build(cfg.weight_decay),
            probe_opt: cfg.optimizer.build(0.0),
            lr_encoder: schedule(lr),
            lr_probe: schedule(classifier_lr),
            aug: aug.clone(),
            plain,
            autodiff,
        })
    }

    /// Encoder learning rate at `step`: the base rate times the scheduled factor, or the
    /// built-in warm-up + cosine.
    pub fn lr(&self, step: usize) -> f64 {
        match self.cfg.schedule.value(ScheduleKey::Lr, step) {
            Some(factor) => self.lr_encoder.base * factor,
            None => self.lr_encoder.lr(step),
        }
    }

    /// Online-probe learning rate at `step` (follows the encoder's schedule).
    fn probe_lr(&self, step: usize) -> f64 {
        match self.cfg.schedule.value(ScheduleKey::Lr, step) {
            Some(factor) => self.lr_probe.base * factor,
            None => self.lr_probe.lr(step),
        }
    }

    /// The augmentation strength in force at `step` (1 when not scheduled).
    pub fn strength(&self, step: usize) -> f64 {
        self.cfg
            .schedule
            .value(ScheduleKey::Strength, step)
            .unwrap_or(1.0)
    }

    /// Two augmented views of the batch, normalised, on the plain device. Each image's
    /// parameters are drawn in batch order from its source's augmentation (real or
    /// generated), scaled by the scheduled strength.
    pub fn views(&self, input: Batch, step: usize) -> [Tensor<4>; 2] {
        let n = input.len();
        let generated = input.generated().to_vec();
        let staged = match input {
            Batch::Host(hb) => batch::Staged::new(hb, &self.plain),
            Batch::Device { images, .. } => batch::Staged::OnDevice(images),
        };
        let [h, w] = staged.size();
        let mut rng = Rng::derive(self.cfg.seed, &[0xA06, step as u64]);
        let scaled = |views: &[AugSpec; 2]| -> [AugSpec; 2] {
            match self.cfg.schedule.value(ScheduleKey::Strength, step) {
                // Validated range: `with_strength` cannot fail here.
                Some(s) => views.clone().map(|v| v.with_strength(s).unwrap_or(v)),
                None => views.clone(),
            }
        };
        let real = scaled(&self.aug.views);
        let from_generated = self.aug.generated.as_ref().map(scaled);
        [0, 1].map(|v| {
            let spec = &real[v];
            let params = match &from_generated {
                None => batch::sample_params(spec, &mut rng, n, h, w),
                Some(g) => (0..n)
                    .map(|k| {
                        let source = if generated.get(k) == Some(&true) {
                            &g[v]
                        } else {
                            spec
                        };
                        ViewParams::sample(source, &mut rng, h, w)
                    })
                    .collect(),
            };
            // Both sources normalise alike (`ViewPair::validate`).
            staged.view(&params, spec)
        })
    }

    /// The target's projections of the two views (no gradient).
    fn target_projections(
        target: &Encoder,
        v1: &Tensor<4>,
        v2: &Tensor<4>,
        dtype: FloatDType,
    ) -> (Tensor<2>, Tensor<2>) {
        (
            target.project(v1.clone(), dtype).1.detach(),
            target.project(v2.clone(), dtype).1.detach(),
        )
    }

    /// One optimisation step; returns the self-supervised loss (not read back).
    pub fn step(&mut self, input: impl Into<Batch>, step: usize) -> Tensor<1> {
        let input = input.into();
        let labels: Vec<i64> = input
            .labels()
            .iter()
            .chain(input.labels())
            .map(|&l| l as i64)
            .collect();
        let [v1, v2] = self.views(input, step);
        let dtype = self.cfg.precision.dtype();
        let (f1, z1) = self.encoder.project(v1.clone(), dtype);
        let (f2, z2) = self.encoder.project(v2.clone(), dtype);
        let t = self.cfg.temperature;
        let ssl = match &mut self.state {
            MethodState::Simclr => nt_xent(z1, z2, t),
            MethodState::Mocov2 { target, queue, .. } => {
                let (k1, k2) = Self::target_projections(target, &v1, &v2, dtype);
                let (k1, k2) = (l2_normalize(k1), l2_normalize(k2));
                let [q1_keys, q2_keys] = queue.keys.clone();
                let loss = (moco_infonce(l2_normalize(z1), k2.clone(), q2_keys, t)
                    + moco_infonce(l2_normalize(z2), k1.clone(), q1_keys, t))
                .div_scalar(2.0);
                queue.push(k1, k2);
                loss
            }
            MethodState::Byol { target, .. } => {
                let (t1, t2) = Self::target_projections(target, &v1, &v2, dtype);
                byol_loss(self.encoder.predict(z1), t2) + byol_loss(self.encoder.predict(z2), t1)
            }
            MethodState::Barlow { lambda, scale } => barlow_loss(z1, z2, *lambda, *scale),
        };
        let logits = self
            .probe
            .forward(Tensor::cat(vec![f1.detach(), f2.detach()], 0));
        let probe_loss = masked_cross_entropy(logits, ints(labels, &self.autodiff));
        let mut grads = (ssl.clone() + probe_loss).backward();
        let encoder_grads = GradientsParams::from_module(&mut grads, &self.encoder);
        let probe_grads = GradientsParams::from_module(&mut grads, &self.probe);
        self.encoder = self
            .encoder_opt
            .step(self.lr(step), self.encoder.clone(), encoder_grads);
        self.probe = self
            .probe_opt
            .step(self.probe_lr(step), self.probe.clone(), probe_grads);
        if let Some((target, ema)) = self.state.target_mut() {
            let tau = ema_tau(ema.base, ema.end, step, self.cfg.steps);
            *target = ema_update(target.clone(), &self.encoder, tau);
        }
        ssl
    }

    /// Online-probe top-1 on `data` (inference mode).
    pub fn probe_accuracy(&self, data: &Dataset) -> Option<f64> {
        probe_accuracy(
            &self.encoder.backbone.valid(),
            &self.probe.valid(),
            data,
            &self.aug.views[0],
            &self.plain,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{batch, preset};
    use crate::data::batches::{Batches, Placement};
    use crate::data::loader::{HostBatch, Sampler, gather};
    use crate::data::synthetic::{SyntheticSpec, synthetic};
    use crate::method::Method;
    use crate::tensor::{floats, read_floats};
    use crate::train::config::Precision;

    fn tiny(method: &str) -> PretrainConfig {
        let m = Method::parse(method).unwrap();
        let mut cfg = PretrainConfig::for_method(m);
        cfg.width = 4;
        cfg.batch = 8;
        cfg.steps = 6;
        cfg.warmup = 1;
        cfg.proj_hidden = 16;
        cfg.proj_dim = 8;
        match &mut cfg.method {
            MethodConfig::Byol(byol) => byol.pred_hidden = 16,
            MethodConfig::Mocov2(moco) => moco.queue_size = 16,
            _ => {}
        }
        cfg
    }

    fn tiny_data() -> Dataset {
        synthetic(&SyntheticSpec {
            n: 32,
            seed: 0,
            size: 8,
            split: "train".into(),
        })
        .unwrap()
    }

    fn run(
        trainer: &mut Trainer,
        data: &Dataset,
        cfg: &PretrainConfig,
        from: usize,
        to: usize,
    ) -> f64 {
        let mut sampler = Sampler::resume(data.len(), cfg.batch, cfg.seed, from).unwrap();
        let mut last = f64::NAN;
        for step in from..to {
            last = read_floats(trainer.step(gather(data, &sampler.next_batch()), step))[0] as f64;
        }
        last
    }

    /// Sum of the backbone's trainable parameters (those that receive gradients).
    fn backbone_signature(t: &Trainer) -> f64 {
        struct Sum(f64);
        impl burn::module::ModuleVisitor for Sum {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                if p.is_require_grad() {
                    self.0 += read_floats(p.val().abs().sum())[0] as f64;
                }
            }
        }
        let mut s = Sum(0.0);
        t.encoder.backbone.visit(&mut s);
        s.0
    }

    #[test]
    fn every_method_trains_with_finite_losses() {
        let data = tiny_data();
        for method in crate::method::METHODS {
            let cfg = tiny(method);
            let aug = if method == "byol" || method == "barlow" {
                preset("asymmetric").unwrap()
            } else {
                preset("symmetric").unwrap()
            };
            let mut t = Trainer::new(&cfg, &aug, 10, &Device::flex()).unwrap();
            let before = backbone_signature(&t);
            let loss = run(&mut t, &data, &cfg, 0, cfg.steps);
            assert!(loss.is_finite(), "{method}: {loss}");
            // The online backbone itself is trained (not only the heads).
            assert!(
                (backbone_signature(&t) - before).abs() > 1e-6,
                "{method}: the backbone did not change"
            );
        }
    }

    /// A small SimCLR trainer (SGD at a small rate, so float rounding is not amplified from
    /// step to step) with the full `symmetric` augmentation.
    fn simclr_trainer(precision: Precision) -> (Trainer, PretrainConfig) {
        let mut cfg = tiny("simclr");
        cfg.optimizer = crate::optim::OptimizerKind::Sgd;
        cfg.lr = 0.05;
        cfg.width = 8;
        cfg.precision = precision;
        let t = Trainer::new(&cfg, &preset("symmetric").unwrap(), 10, &Device::flex()).unwrap();
        (t, cfg)
    }

    /// Every trainable backbone parameter, flattened.
    fn backbone_values(t: &Trainer) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                self.0.extend(read_floats(p.val()));
            }
        }
        let mut c = Collect(Vec::new());
        t.encoder.backbone.visit(&mut c);
        c.0
    }

    fn first_batch(data: &Dataset, cfg: &PretrainConfig) -> HostBatch {
        gather(
            data,
            &Sampler::new(data.len(), cfg.batch, cfg.seed)
                .unwrap()
                .next_batch(),
        )
    }

    /// The probe trains on detached features: hiding every label of a batch (probe loss 0)
    /// must leave the encoder's update exactly as it was. Dropping the `detach` lets the
    /// probe's cross-entropy into the backbone and breaks this.
    #[test]
    fn probe_labels_never_reach_the_encoder() {
        let data = tiny_data();
        let (mut labelled, cfg) = simclr_trainer(Precision::F32);
        let (mut hidden, _) = simclr_trainer(Precision::F32);
        let batch = first_batch(&data, &cfg);
        let mut unlabelled = batch.clone();
        unlabelled.labels.fill(-1);
        labelled.step(batch, 0);
        hidden.step(unlabelled, 0);
        assert_eq!(backbone_values(&labelled), backbone_values(&hidden));
        // The labels did train the probe itself.
        let probe = |t: &Trainer| read_floats(t.probe.weight.val());
        assert_ne!(probe(&labelled), probe(&hidden));
    }

    /// MoCo v2+ as solo-learn wires it: loss = (ℓ(q1, k2, queue of view 2) + ℓ(q2, k1, queue
    /// of view 1)) / 2, keys from the momentum encoder without gradient, then k1 and k2 are
    /// written into their own view's queue. Swapping the queues (or the keys) changes the loss
    /// by far more than the tolerance, which the test checks too.
    #[test]
    fn moco_pairs_each_query_with_the_other_views_key_and_queue() {
        let data = tiny_data();
        let cfg = tiny("mocov2");
        let mut t = Trainer::new(&cfg, &preset("symmetric").unwrap(), 10, &Device::flex()).unwrap();
        let batch = first_batch(&data, &cfg);
        let [v1, v2] = t.views(batch.clone().into(), 0);
        let f32_ = FloatDType::F32;
        let z1 = l2_normalize(t.encoder.project(v1.clone(), f32_).1);
        let z2 = l2_normalize(t.encoder.project(v2.clone(), f32_).1);
        let (k1, k2) = Trainer::target_projections(t.state.target().unwrap(), &v1, &v2, f32_);
        let (k1, k2) = (l2_normalize(k1), l2_normalize(k2));
        let [queue1, queue2] = t.state.queue().unwrap().keys.clone();
        let temp = cfg.temperature;
        let loss = |a: Tensor<2>, b: Tensor<2>| {
            read_floats(
                (moco_infonce(z1.clone(), k2.clone(), a, temp)
                    + moco_infonce(z2.clone(), k1.clone(), b, temp))
                .div_scalar(2.0),
            )[0] as f64
        };
        let want = loss(queue2.clone(), queue1.clone());
        let swapped = loss(queue1, queue2);
        let got = read_floats(t.step(batch, 0))[0] as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(
            (swapped - want).abs() > 1e-3,
            "the queues are too alike to tell apart"
        );
        // The step wrote each view's keys into that view's queue (its first `batch` rows).
        let queue = t.state.queue().unwrap();
        let rows = |x: &Tensor<2>| read_floats(x.clone().narrow(0, 0, cfg.batch));
        for (written, keys) in [(&queue.keys[0], &k1), (&queue.keys[1], &k2)] {
            let (a, b) = (rows(written), read_floats(keys.clone()));
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
        }
    }

    /// BYOL's target network normalises with the statistics of the batch it sees (train-mode
    /// batch norm, as the official code runs it), not with running statistics: the step's loss
    /// matches a reference computed that way and not one with the target in eval mode.
    #[test]
    fn byol_target_batch_norm_uses_batch_statistics() {
        let data = tiny_data();
        let cfg = tiny("byol");
        let mut t =
            Trainer::new(&cfg, &preset("asymmetric").unwrap(), 10, &Device::flex()).unwrap();
        let batch = first_batch(&data, &cfg);
        let [v1, v2] = t.views(batch.clone().into(), 0);
        let f32_ = FloatDType::F32;
        let predictor = t.encoder.predictor.clone().unwrap();
        let p1 = predictor.forward(t.encoder.project(v1.clone(), f32_).1);
        let p2 = predictor.forward(t.encoder.project(v2.clone(), f32_).1);
        let loss = |t1: Tensor<2>, t2: Tensor<2>| {
            read_floats(byol_loss(p1.clone(), t2) + byol_loss(p2.clone(), t1))[0] as f64
        };
        let (t1, t2) = Trainer::target_projections(t.state.target().unwrap(), &v1, &v2, f32_);
        let want = loss(t1, t2);
        let eval_target = t.state.target().unwrap().valid();
        let eval_projection = |v: &Tensor<4>| {
            let z = eval_target.project(v.clone(), f32_).1;
            let dims = z.dims();
            floats(read_floats(z), dims, &t.autodiff)
        };
        let eval = loss(eval_projection(&v1), eval_projection(&v2));
        let got = read_floats(t.step(batch, 0))[0] as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(
            (eval - want).abs() > 1e-3,
            "eval-mode targets are indistinguishable"
        );
    }

    #[test]
    fn device_resident_batches_are_the_streamed_batches_on_the_device() {
        let data = tiny_data();
        let device = Device::flex();
        let (mut fused, cfg) = simclr_trainer(Precision::F32);
        let (mut batched, _) = simclr_trainer(Precision::F32);
        let sampler = || Sampler::new(data.len(), cfg.batch, cfg.seed).unwrap();
        let mut resident = Batches::start(&data, sampler(), &device, Placement::Device).unwrap();
        let mut streamed = Batches::start(&data, sampler(), &device, Placement::Stream).unwrap();
        assert_eq!(resident.placement(), Placement::Device);
        assert_eq!(streamed.placement(), Placement::Stream);
        for step in 0..6 {
            // Same items in the same order, the same pixels and labels.
            let (
                Batch::Device {
                    images,
                    labels,
                    generated,
                },
                Batch::Host(host),
            ) = (resident.next_batch(), streamed.next_batch())
            else {
                panic!("each stream yields its own kind of batch");
            };
            assert_eq!(labels, host.labels, "step {step}");
            assert_eq!(
                read_floats(images.clone()),
                read_floats(batch::to_device(host.clone(), &device)),
                "step {step}"
            );
            // On flex a host batch takes the fused per-image augmentation and a device batch
            // the batched tensor one (what GPUs run); their views agree within 1e-4, so the
            // first step's loss agrees closely (later steps drift as SGD carries the rounding).
            assert_eq!(generated, host.generated, "step {step}");
            let a = read_floats(fused.step(host, step))[0] as f64;
            let device_batch = Batch::Device {
                images,
                labels,
                generated,
            };
            let b = read_floats(batched.step(device_batch, step))[0] as f64;
            if step == 0 {
                assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn reduced_precision_tracks_f32() {
        let data = tiny_data();
        let first_loss = |precision| {
            let (mut t, cfg) = simclr_trainer(precision);
            let mut sampler = Sampler::new(data.len(), cfg.batch, cfg.seed).unwrap();
            let before = backbone_signature(&t);
            let losses: Vec<f64> = (0..3)
                .map(|s| read_floats(t.step(gather(&data, &sampler.next_batch()), s))[0] as f64)
                .collect();
            assert!(
                losses.iter().all(|l| l.is_finite()),
                "{precision:?}: {losses:?}"
            );
            // Gradients flow back through the casts into the f32 weights.
            assert!(
                (backbone_signature(&t) - before).abs() > 1e-6,
                "{precision:?}: the backbone did not train"
            );
            losses[0]
        };
        let reference = first_loss(Precision::F32);
        for precision in [Precision::Bf16, Precision::F16] {
            let low = first_loss(precision);
            let rel = (low - reference).abs() / reference;
            // bf16 rounds the convolutions' inputs and weights to 8 bits of mantissa (about
            // 0.4%); the loss of the same step moves by far less than 1%.
            assert!(rel < 1e-2, "{precision:?}: {low} vs f32 {reference}");
            // The convolutions really ran in the lower precision.
            assert!(
                rel > 1e-7,
                "{precision:?} gave exactly the f32 loss {reference}"
            );
        }
    }

    #[test]
    fn a_resumed_run_continues_exactly() {
        let data = tiny_data();
        let dir = std::env::temp_dir().join(format!("adainf-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for method in ["simclr", "simclr-sgd", "mocov2", "byol"] {
            let mut cfg = tiny(method.trim_end_matches("-sgd"));
            if method.ends_with("-sgd") {
                cfg.optimizer = crate::optim::OptimizerKind::Sgd;
            }
            let aug = preset("symmetric").unwrap();
            let device = Device::flex();
            // One trainer runs 3 steps, checkpoints, and goes on for 3 more; a fresh trainer
            // (different init seed) restores the checkpoint and runs the same 3 steps.
            let mut straight = Trainer::new(&cfg, &aug, 10, &device).unwrap();
            run(&mut straight, &data, &cfg, 0, 3);
            straight.save_checkpoint(&dir, 3).unwrap();
            let want = run(&mut straight, &data, &cfg, 3, 6);
            let mut second = Trainer::new(
                &PretrainConfig {
                    seed: 99,
                    ..cfg.clone()
                },
                &aug,
                10,
                &device,
            )
            .unwrap();
            second.cfg.seed = cfg.seed;
            let done = second
                .load_checkpoint(&crate::train::checkpoint::latest(&dir).unwrap())
                .unwrap();
            assert_eq!(done, 3);
            let got = run(&mut second, &data, &cfg, 3, 6);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{method}: resumed {got} vs straight {want}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
