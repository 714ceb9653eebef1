//! Pretraining: the training loop (sampler → u8 batch → device → two augmented views →
//! backbone → method loss + online probe → optimiser), periodic metrics and probe evaluation,
//! the run folder, and loading a finished run's encoder back for evaluation.

pub mod config;
pub mod progress;
pub mod run;

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use crate::augment::{ViewPair, batch};
use crate::data::Dataset;
use crate::data::loader::{HostBatch, Sampler, gather};
use crate::error::{Error, Result};
use crate::eval::probe_accuracy;
use crate::method::probe::masked_cross_entropy;
use crate::method::simclr::{Projector, nt_xent};
use crate::model::ResNet;
use crate::optim::schedule::WarmupCosine;
use crate::rng::Rng;
use crate::tensor::{ints, read_floats};
pub use config::PretrainConfig;
pub use progress::{CancelFlag, Progress, Silent};
pub use run::{FinishedRun, MetricRow, RunResult, RunSpec};
use run::{MetricsLog, load_finished, run_dir, write_json};

/// The trainable self-supervised model: backbone and projection head.
#[derive(Module, Debug)]
pub struct Encoder {
    pub backbone: ResNet,
    pub projector: Projector,
}

/// What to train on.
pub struct PretrainRequest<'a> {
    pub config: PretrainConfig,
    pub data: &'a Dataset,
    pub aug: &'a ViewPair,
    /// Labelled set the online probe is evaluated on.
    pub probe: Option<&'a Dataset>,
}

/// Where and how to train.
pub struct TrainContext<'a> {
    pub device: &'a Device,
    pub runs_dir: &'a Path,
    pub progress: &'a mut dyn Progress,
    pub cancel: &'a CancelFlag,
}

fn check_inputs(req: &PretrainRequest) -> Result<()> {
    req.config.validate()?;
    for view in &req.aug.views {
        view.validate()?;
    }
    let shape = req.data.shape();
    if shape[2] != 3 {
        return Err(Error::Data(format!(
            "{}: images have {} channels; training needs RGB (3)",
            req.data.description(),
            shape[2]
        )));
    }
    if let Some(p) = req.probe {
        if p.shape() != shape {
            return Err(Error::Data(format!(
                "the probe set's images are {:?} (H×W×C) but the training images are {:?}",
                p.shape(),
                shape
            )));
        }
        if p.labeled_count() == 0 {
            return Err(Error::Data(format!(
                "the probe set {} has no labelled images",
                p.description()
            )));
        }
    }
    Ok(())
}

/// Model, online probe, optimisers and schedules of one run: one call of `step` is one
/// optimisation step on one batch. Shared by `pretrain` and the benchmark.
pub struct Trainer {
    encoder: Encoder,
    probe: Linear,
    encoder_opt: ModuleOptimizer,
    probe_opt: ModuleOptimizer,
    lr_encoder: WarmupCosine,
    lr_probe: WarmupCosine,
    aug: ViewPair,
    temperature: f64,
    seed: u64,
    /// The plain (non-autodiff) device: inputs and augmentation live here.
    plain: Device,
    autodiff: Device,
}

impl Trainer {
    pub fn new(
        cfg: &PretrainConfig,
        aug: &ViewPair,
        classes: usize,
        device: &Device,
    ) -> Result<Self> {
        let plain = device.clone();
        let autodiff = plain.clone().autodiff();
        autodiff.seed(cfg.seed);
        let backbone_cfg = cfg.backbone_config()?;
        let feat = backbone_cfg.feature_dim();
        let encoder = Encoder {
            backbone: backbone_cfg.init(&autodiff),
            projector: Projector::new(feat, cfg.proj_hidden, cfg.proj_dim, &autodiff),
        };
        let probe = LinearConfig::new(feat, classes.max(1)).init(&autodiff);
        let schedule = |base: f64| WarmupCosine {
            base,
            warmup: cfg.warmup,
            total: cfg.steps,
            warmup_start: cfg.warmup_start.min(base),
            min_lr: 0.0,
        };
        Ok(Trainer {
            encoder,
            probe,
            encoder_opt: cfg.optimizer_kind().build(cfg.weight_decay),
            probe_opt: cfg.optimizer_kind().build(0.0),
            lr_encoder: schedule(cfg.lr),
            lr_probe: schedule(cfg.classifier_lr),
            aug: aug.clone(),
            temperature: cfg.temperature,
            seed: cfg.seed,
            plain,
            autodiff,
        })
    }

    /// Encoder learning rate at `step`.
    pub fn lr(&self, step: usize) -> f64 {
        self.lr_encoder.lr(step)
    }

    /// Two augmented views of `hb`, normalised, on the plain device.
    pub fn views(&self, hb: &HostBatch, step: usize) -> [Tensor<4>; 2] {
        let [h, w, _] = hb.shape;
        let x = batch::to_device(hb, &self.plain);
        let mut rng = Rng::derive(self.seed, &[0xA06, step as u64]);
        [0, 1].map(|v| {
            let spec = &self.aug.views[v];
            let params = batch::sample_params(spec, &mut rng, hb.len(), h, w);
            batch::augment_and_normalize(x.clone(), &params, spec)
        })
    }

    /// One optimisation step; returns the self-supervised loss (not read back).
    pub fn step(&mut self, hb: &HostBatch, step: usize) -> Tensor<1> {
        let [v1, v2] = self.views(hb, step);
        let f1 = self.encoder.backbone.forward(v1);
        let f2 = self.encoder.backbone.forward(v2);
        let ssl = nt_xent(
            self.encoder.projector.forward(f1.clone()),
            self.encoder.projector.forward(f2.clone()),
            self.temperature,
        );
        let labels: Vec<i64> = hb
            .labels
            .iter()
            .chain(&hb.labels)
            .map(|&l| l as i64)
            .collect();
        let logits = self
            .probe
            .forward(Tensor::cat(vec![f1.detach(), f2.detach()], 0));
        let probe_loss = masked_cross_entropy(logits, ints(labels, &self.autodiff));
        let mut grads = (ssl.clone() + probe_loss).backward();
        let encoder_grads = GradientsParams::from_module(&mut grads, &self.encoder);
        let probe_grads = GradientsParams::from_module(&mut grads, &self.probe);
        self.encoder = self.encoder_opt.step(
            self.lr_encoder.lr(step),
            self.encoder.clone(),
            encoder_grads,
        );
        self.probe = self
            .probe_opt
            .step(self.lr_probe.lr(step), self.probe.clone(), probe_grads);
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

    fn save_weights(&self, dir: &Path) -> Result<()> {
        let encoder = self.encoder.valid();
        save_module(encoder.backbone, dir, "backbone")?;
        save_module(encoder.projector, dir, "projector")?;
        save_module(self.probe.valid(), dir, "probe")
    }
}

/// Trains (or loads from the cache) one run.
pub fn pretrain(req: PretrainRequest, ctx: TrainContext) -> Result<FinishedRun> {
    check_inputs(&req)?;
    let spec = RunSpec::new(req.config.clone(), req.data, req.aug.clone(), req.probe);
    let id = spec.id();
    let dir = run_dir(ctx.runs_dir, &id);
    if let Some(run) = load_finished(&dir)? {
        ctx.progress.start(&id, run.result.steps, true);
        return Ok(run);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::file(&dir, format!("cannot create the run folder: {e}")))?;
    write_json(&dir.join("config.json"), &spec)?;
    let mut log = MetricsLog::create(&dir.join("metrics.jsonl"))?;

    let cfg = &req.config;
    let classes = req
        .data
        .classes()
        .max(req.probe.map_or(0, |p| p.classes()))
        .max(1);
    let mut trainer = Trainer::new(cfg, req.aug, classes, ctx.device)?;
    let mut sampler = Sampler::new(req.data.len(), cfg.batch, cfg.seed)?;

    ctx.progress.start(&id, cfg.steps, false);
    let started = Instant::now();
    let mut interval_start = Instant::now();
    let mut interval_images = 0usize;
    let mut metrics = Vec::new();
    let mut last_loss = f64::NAN;
    for step in 0..cfg.steps {
        if ctx.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let hb = gather(req.data, &sampler.next_batch());
        req.data.release_mapped_pages();
        let loss = trainer.step(&hb, step);
        interval_images += hb.len();

        let done = step + 1;
        let eval_now = req.probe.is_some()
            && (done == cfg.steps || (cfg.eval_every > 0 && done % cfg.eval_every == 0));
        if done % cfg.log_every == 0 || eval_now || done == cfg.steps {
            // The only host synchronisation of the step, every `log_every` steps.
            last_loss = read_floats(loss)[0] as f64;
            if !last_loss.is_finite() {
                return Err(Error::Numeric(format!(
                    "the loss became {last_loss} at step {done}; lower the learning rate (lr = {}) or check the data",
                    cfg.lr
                )));
            }
            let images_per_s =
                interval_images as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
            let probe_acc = match (eval_now, req.probe) {
                (true, Some(p)) => trainer.probe_accuracy(p),
                _ => None,
            };
            let row = MetricRow {
                step: done,
                loss: last_loss,
                lr: trainer.lr(step),
                probe_acc,
                images_per_s,
            };
            log.append(&row)?;
            ctx.progress.update(done, last_loss, images_per_s);
            if let Some(acc) = probe_acc {
                ctx.progress.probe(done, acc);
            }
            metrics.push(row);
            interval_start = Instant::now();
            interval_images = 0;
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    trainer.save_weights(&dir)?;
    let accuracy = metrics.iter().rev().find_map(|m| m.probe_acc);
    let result = RunResult {
        id: id.clone(),
        accuracy,
        final_loss: last_loss,
        steps: cfg.steps,
        train_seconds,
        images_per_s: (cfg.steps * cfg.batch) as f64 / train_seconds.max(1e-9),
    };
    write_json(&dir.join("result.json"), &result)?;
    ctx.progress.finish(&match accuracy {
        Some(a) => format!("loss {last_loss:.4}, probe accuracy {:.2}%", 100.0 * a),
        None => format!("loss {last_loss:.4}"),
    });
    Ok(FinishedRun {
        spec,
        result,
        metrics,
        dir,
        cached: false,
    })
}

fn save_module<M: Module>(module: M, dir: &Path, name: &str) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp.bpk"));
    let path = dir.join(format!("{name}.bpk"));
    module
        .save_file(&tmp)
        .map_err(|e| Error::file(&tmp, format!("cannot save weights: {e}")))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::file(&path, e))
}

/// The trained backbone of a finished run, in inference mode on `device`.
pub fn load_backbone(run: &FinishedRun, device: &Device) -> Result<ResNet> {
    let path = run.dir.join("backbone.bpk");
    let fresh = run.spec.config.backbone_config()?.init(device);
    fresh.try_load_file(&path).map_err(|e| {
        Error::file(
            &path,
            format!("cannot load the weights ({e}); delete the run folder to retrain"),
        )
    })
}

/// An untrained backbone of the same shape as the run's (the random-init baseline).
pub fn random_backbone(run: &FinishedRun, device: &Device) -> Result<ResNet> {
    device.seed(run.spec.config.seed);
    Ok(run.spec.config.backbone_config()?.init(device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{AugSpec, ViewPair};
    use crate::data::synthetic::{SyntheticSpec, synthetic};

    /// With the encoder (almost) frozen, the probe alone must fit its training images.
    #[test]
    fn the_online_probe_learns_its_training_images() {
        let data = synthetic(&SyntheticSpec {
            n: 64,
            seed: 0,
            size: 16,
            split: "train".into(),
        })
        .unwrap();
        let cfg = PretrainConfig {
            width: 4,
            batch: 32,
            steps: 60,
            warmup: 0,
            proj_hidden: 32,
            proj_dim: 16,
            classifier_lr: 1.0,
            lr: 1e-6,
            warmup_start: 0.0,
            optimizer: "sgd".into(),
            ..Default::default()
        };
        let aug = ViewPair::symmetric("none", AugSpec::identity());
        let mut trainer = Trainer::new(&cfg, &aug, 10, &Device::flex()).unwrap();
        let mut sampler = Sampler::new(data.len(), cfg.batch, 0).unwrap();
        let before = trainer.probe_accuracy(&data).unwrap();
        for step in 0..cfg.steps {
            trainer.step(&gather(&data, &sampler.next_batch()), step);
        }
        let after = trainer.probe_accuracy(&data).unwrap();
        assert!(after > 0.5 && after > before, "{before} -> {after}");
    }
}
