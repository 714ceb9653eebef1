//! `adainf bench`: throughput of the SimCLR train step (images per second, two views per
//! image, after warm-up) and of the `symmetric` augmentation pipeline (views per second), on
//! synthetic data; and the per-step losses of a short seeded run, which must agree across
//! devices (the travelling GPU check compares them). Results are JSON lines so they can be
//! collected by scripts. The diffusion generator's suite, with its PyTorch peer, is in
//! `diffusion` and `peer`.

pub mod diffusion;
pub mod peer;

use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use crate::augment::{ViewPair, batch, preset};
use crate::data::Dataset;
use crate::data::batches::{Batches, Placement};
use crate::data::loader::{Sampler, gather};
use crate::data::synthetic::{GeneratorSpec, SyntheticSpec, synthetic, synthetic_generator};
use crate::error::{Error, Result};
use crate::model::Backbone;
use crate::rng::Rng;
use crate::tensor::read_floats;
use crate::train::config::Precision;
use crate::train::schedule::{self, ScheduleKey, tabulate};
use crate::train::{PretrainConfig, Trainer};

/// Most steps of each of `--warmup` and `--steps`: a benchmark times a few steps, and a count
/// past this (a typo, an extra digit) ran silently for days.
pub const MAX_STEPS: usize = 10_000;
/// Largest `--batch` (the paper's SimCLR batch is 512, its generator's 128).
pub const MAX_BATCH: usize = 4096;
/// Most CPU threads of the diffusion suite (`--threads`).
pub const MAX_THREADS: usize = 1024;

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub width: usize,
    pub batch: usize,
    pub size: usize,
    pub backbone: Backbone,
    pub warmup_steps: usize,
    pub steps: usize,
    pub device_name: String,
    pub precision: Precision,
    pub placement: Placement,
}

#[derive(Debug, Serialize)]
pub struct BenchLine {
    pub bench: &'static str,
    pub device: String,
    pub backbone: &'static str,
    pub width: usize,
    pub batch: usize,
    pub size: usize,
    pub precision: &'static str,
    /// Where the training data was (`device` or `stream`); train-step lines only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub views_per_s: Option<f64>,
    /// Fraction of the timed steps spent waiting for the next batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_wait: Option<f64>,
    /// The loss after each step (the `losses` bench).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub losses: Option<Vec<f64>>,
    pub seconds: f64,
    pub iterations: usize,
}

impl BenchConfig {
    /// The train-step configuration of the flags, over `base`.
    fn pretrain_config(&self, steps: usize, base: PretrainConfig) -> PretrainConfig {
        PretrainConfig {
            backbone: self.backbone,
            width: self.width,
            batch: self.batch,
            steps,
            warmup: 0,
            precision: self.precision,
            ..base
        }
    }

    /// Checks the flags before anything is measured, with the training run's own checks: a
    /// bad value is one clear error naming it, not a partial set of results.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::config(
                "steps",
                "must be at least 1 (the timed steps)",
            ));
        }
        crate::data::synthetic::check_size(self.size)?;
        self.pretrain_config(self.warmup_steps + self.steps, PretrainConfig::default())
            .validate()
    }
}

impl BenchLine {
    fn new(bench: &'static str, cfg: &BenchConfig, seconds: f64, iterations: usize) -> Self {
        BenchLine {
            bench,
            device: cfg.device_name.clone(),
            backbone: cfg.backbone.name(),
            width: cfg.width,
            batch: cfg.batch,
            size: cfg.size,
            precision: cfg.precision.name(),
            placement: None,
            images_per_s: None,
            views_per_s: None,
            data_wait: None,
            losses: None,
            seconds,
            iterations,
        }
    }
}

/// A SimCLR trainer with the bench's shape and its training data (`batch × 2` synthetic
/// images, so every step after the first epoch reshuffles). `base` supplies what the bench
/// does not set (optimiser, learning rate).
fn simclr_trainer(
    cfg: &BenchConfig,
    steps: usize,
    base: PretrainConfig,
    device: &Device,
) -> Result<(Trainer, Batches)> {
    let data = synthetic(&SyntheticSpec {
        n: cfg.batch * 2,
        seed: 0,
        size: cfg.size,
        split: "train".into(),
    })?;
    let tc = cfg.pretrain_config(steps, base);
    tc.validate()?;
    let trainer = Trainer::new(&tc, &preset("symmetric")?, 10, device)?;
    // The same pipeline as training.
    let sampler = Sampler::new(data.len(), cfg.batch, 0)?;
    let batches = Batches::start(&data, sampler, device, cfg.placement)?;
    Ok((trainer, batches))
}

/// The loss after each of `cfg.steps` SimCLR steps from seed 0 (the full `symmetric`
/// augmentation, SGD at lr 0.05, no warm-up). Initial weights and augmentation parameters are
/// drawn on the host, so every device computes the same steps up to float summation order.
/// The small learning rate keeps those rounding differences from being amplified step after
/// step (at the default LARS rate of 0.4 two devices drift apart by 1e-3 within six steps).
pub fn losses(cfg: &BenchConfig, device: &Device) -> Result<BenchLine> {
    let base = PretrainConfig {
        optimizer: crate::optim::OptimizerKind::Sgd,
        lr: 0.05,
        ..Default::default()
    };
    let (mut trainer, mut batches) = simclr_trainer(cfg, cfg.steps, base, device)?;
    let t = Instant::now();
    let losses = (0..cfg.steps)
        .map(|step| read_floats(trainer.step(batches.next_batch(), step))[0] as f64)
        .collect();
    Ok(BenchLine {
        placement: Some(batches.placement().name()),
        losses: Some(losses),
        ..BenchLine::new("losses", cfg, t.elapsed().as_secs_f64(), cfg.steps)
    })
}

/// What a train-step bench varies: a fixed run, a scheduled one, augmentation per source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepVariant {
    Fixed,
    Scheduled,
    PerSource,
}

/// A SimCLR trainer and its batches on an inflation (`batch` real images ×1, then `batch`
/// generated ones), fixed, with all three keys scheduled, or with a weaker augmentation for
/// the generated images.
fn variant_trainer(
    cfg: &BenchConfig,
    steps: usize,
    variant: StepVariant,
    device: &Device,
) -> Result<(Trainer, Batches)> {
    let synth = |split: &str| SyntheticSpec {
        n: cfg.batch,
        seed: 0,
        size: cfg.size,
        split: split.into(),
    };
    let real = synthetic(&synth("train"))?;
    let generated = synthetic_generator(&GeneratorSpec {
        n: cfg.batch,
        seed: 1,
        size: cfg.size,
        fidelity: 0.5,
    })?;
    let data = Dataset::inflate(&real, &generated, 1)?;
    let mut tc = PretrainConfig {
        backbone: cfg.backbone,
        width: cfg.width,
        batch: cfg.batch,
        steps,
        warmup: 0,
        precision: cfg.precision,
        ..PretrainConfig::default()
    };
    let mut aug = preset("symmetric")?;
    match variant {
        StepVariant::Fixed => {}
        StepVariant::Scheduled => {
            for (key, f) in [
                (
                    ScheduleKey::GeneratedShare,
                    (|t: f64| 0.5 * t) as fn(f64) -> f64,
                ),
                (ScheduleKey::Strength, |t| {
                    0.75 + 0.25 * (std::f64::consts::PI * t).cos()
                }),
                (ScheduleKey::Lr, |t| {
                    0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }),
            ] {
                let table = tabulate::<()>(key, steps, |t| Ok(f(t)))
                    .map_err(|_| crate::Error::config(key.name(), "bench schedule out of range"))?;
                tc.schedule.0.insert(key, table);
            }
        }
        StepVariant::PerSource => aug = ViewPair::per_source(&aug, &preset("symmetric_weak")?),
    }
    tc.validate()?;
    let trainer = Trainer::new(&tc, &aug, 10, device)?;
    // The same pipeline as training.
    let sampler = schedule::sampler(&data, &tc.schedule, cfg.batch, 0, 0)?;
    let batches = Batches::start(&data, sampler, device, cfg.placement)?;
    Ok((trainer, batches))
}

/// SimCLR train-step throughput of a fixed run on an inflation (the baseline of the two
/// benches below).
pub fn train_step(cfg: &BenchConfig, device: &Device) -> Result<BenchLine> {
    train_step_variant(cfg, device, StepVariant::Fixed, "simclr_train_step")
}

/// `train_step` with the generated share, the strength and the lr scheduled.
pub fn train_step_scheduled(cfg: &BenchConfig, device: &Device) -> Result<BenchLine> {
    train_step_variant(
        cfg,
        device,
        StepVariant::Scheduled,
        "simclr_train_step_scheduled",
    )
}

/// `train_step` with a weaker augmentation for the generated half of the data.
pub fn train_step_per_source(cfg: &BenchConfig, device: &Device) -> Result<BenchLine> {
    train_step_variant(
        cfg,
        device,
        StepVariant::PerSource,
        "simclr_train_step_per_source_aug",
    )
}

fn train_step_variant(
    cfg: &BenchConfig,
    device: &Device,
    variant: StepVariant,
    name: &'static str,
) -> Result<BenchLine> {
    let steps = cfg.warmup_steps + cfg.steps;
    let (mut trainer, mut batches) = variant_trainer(cfg, steps, variant, device)?;
    let mut run = |batches: &mut Batches, steps: usize, offset: usize| {
        let mut last = None;
        for s in 0..steps {
            last = Some(trainer.step(batches.next_batch(), offset + s));
        }
        // One read at the end waits for the queued work.
        last.map(read_floats);
    };
    run(&mut batches, cfg.warmup_steps, 0);
    batches.take_waited();
    let t = Instant::now();
    run(&mut batches, cfg.steps, cfg.warmup_steps);
    let seconds = t.elapsed().as_secs_f64();
    let waited = batches.take_waited().as_secs_f64();
    Ok(BenchLine {
        placement: Some(batches.placement().name()),
        images_per_s: Some((cfg.steps * cfg.batch) as f64 / seconds),
        data_wait: Some(waited / seconds),
        ..BenchLine::new(name, cfg, seconds, cfg.steps)
    })
}

/// Augmentation throughput of the `symmetric` preset (u8 batch → normalised views).
pub fn augmentation(cfg: &BenchConfig, device: &Device) -> Result<BenchLine> {
    let data = synthetic(&SyntheticSpec {
        n: cfg.batch,
        seed: 0,
        size: cfg.size,
        split: "train".into(),
    })?;
    let aug = preset("symmetric")?;
    let idx: Vec<usize> = (0..cfg.batch).collect();
    let mut rng = Rng::new(0);
    let mut run = |iters: usize| {
        for _ in 0..iters {
            // The path training takes: fused on the host for flex, batched on other devices.
            let staged = batch::Staged::new(gather(&data, &idx), device);
            let params =
                batch::sample_params(&aug.views[0], &mut rng, cfg.batch, cfg.size, cfg.size);
            let out = staged.view(&params, &aug.views[0]);
            read_floats(out.slice([0..1, 0..1, 0..1, 0..1]));
        }
    };
    run(cfg.warmup_steps.max(1));
    let iters = cfg.steps.max(1) * 4;
    let t = Instant::now();
    run(iters);
    let seconds = t.elapsed().as_secs_f64();
    Ok(BenchLine {
        views_per_s: Some((iters * cfg.batch) as f64 / seconds),
        ..BenchLine::new("augment_symmetric", cfg, seconds, iters)
    })
}
