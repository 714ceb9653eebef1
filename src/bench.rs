//! `adainf bench`: throughput of the SimCLR train step (images per second, two views per
//! image, after warm-up) and of the `symmetric` augmentation pipeline (views per second), on
//! synthetic data. Results are JSON lines so they can be collected by scripts.

use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use crate::augment::{batch, preset};
use crate::data::loader::{Sampler, gather};
use crate::data::prefetch::{self, Prefetcher};
use crate::data::synthetic::{SyntheticSpec, synthetic};
use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::read_floats;
use crate::train::{PretrainConfig, Trainer};

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub width: usize,
    pub batch: usize,
    pub size: usize,
    pub backbone: String,
    pub warmup_steps: usize,
    pub steps: usize,
    pub device_name: String,
}

#[derive(Debug, Serialize)]
pub struct BenchLine {
    pub bench: &'static str,
    pub device: String,
    pub backbone: String,
    pub width: usize,
    pub batch: usize,
    pub size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub views_per_s: Option<f64>,
    /// Fraction of the timed steps spent waiting for the next batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_wait: Option<f64>,
    pub seconds: f64,
    pub iterations: usize,
}

/// SimCLR train-step throughput.
pub fn train_step(cfg: &BenchConfig, device: &Device) -> Result<BenchLine> {
    let data = synthetic(&SyntheticSpec {
        n: cfg.batch * 2,
        seed: 0,
        size: cfg.size,
        split: "train".into(),
    })?;
    let tc = PretrainConfig {
        backbone: cfg.backbone.clone(),
        width: cfg.width,
        batch: cfg.batch,
        steps: cfg.warmup_steps + cfg.steps,
        warmup: 0,
        ..Default::default()
    };
    tc.validate()?;
    let mut trainer = Trainer::new(&tc, &preset("symmetric")?, 10, device)?;
    // The same pipeline as training: batches gathered ahead on the prefetch thread.
    let sampler = Sampler::new(data.len(), cfg.batch, 0)?;
    let mut batches = Prefetcher::start(&data, sampler, prefetch::DEFAULT_DEPTH)?;
    let mut run = |batches: &mut Prefetcher, steps: usize, offset: usize| {
        let mut last = None;
        for s in 0..steps {
            last = Some(trainer.step(batches.next(), offset + s));
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
        bench: "simclr_train_step",
        device: cfg.device_name.clone(),
        backbone: cfg.backbone.clone(),
        width: cfg.width,
        batch: cfg.batch,
        size: cfg.size,
        images_per_s: Some((cfg.steps * cfg.batch) as f64 / seconds),
        views_per_s: None,
        data_wait: Some(waited / seconds),
        seconds,
        iterations: cfg.steps,
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
        bench: "augment_symmetric",
        device: cfg.device_name.clone(),
        backbone: cfg.backbone.clone(),
        width: cfg.width,
        batch: cfg.batch,
        size: cfg.size,
        images_per_s: None,
        views_per_s: Some((iters * cfg.batch) as f64 / seconds),
        data_wait: None,
        seconds,
        iterations: iters,
    })
}
