//! Pretraining: the training loop (sampler → u8 batch, gathered ahead on the prefetch thread
//! → device → two augmented views → backbone → method loss + online probe → optimiser),
//! periodic metrics and probe evaluation, the run folder, and loading a finished run's encoder
//! back for evaluation.

pub mod checkpoint;
pub mod config;
pub mod events;
pub mod progress;
pub mod run;
pub mod schedule;
#[cfg(test)]
mod schedule_tests;
pub mod seal;
pub mod trainer;

use std::path::Path;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::tensor::Device;

use crate::augment::ViewPair;
use crate::data::Dataset;
use crate::data::batches::{Batches, Placement};
use crate::error::{Error, Result};
use crate::model::ResNet;
use crate::tensor::read_floats;
pub use config::PretrainConfig;
use events::RunEvents;
pub use progress::{CancelFlag, Progress, Silent};
pub use run::{FinishedRun, MetricRow, RunResult, RunSpec};
use run::{MetricsLog, load_finished, read_metrics, run_dir, write_json};
pub use trainer::{Encoder, Trainer};

/// What to train on.
pub struct PretrainRequest<'a> {
    /// The run's settings (part of the run id).
    pub config: PretrainConfig,
    /// Training images (RGB); their labels, where present, train the online probe.
    pub data: &'a Dataset,
    /// Augmentations of the two views (part of the run id).
    pub aug: &'a ViewPair,
    /// Labelled set the online probe is evaluated on.
    pub probe: Option<&'a Dataset>,
    /// Save a checkpoint every this many steps (0 = only at the end). Not part of the run id.
    pub checkpoint_every: usize,
}

/// Where and how to train.
pub struct TrainContext<'a> {
    /// Device to train on.
    pub device: &'a Device,
    /// How the data reaches the device (streamed or resident); changes no result.
    pub placement: Placement,
    /// Folder of the run folders (`<runs_dir>/<id>/`).
    pub runs_dir: &'a Path,
    /// Receives the run's progress.
    pub progress: &'a mut dyn Progress,
    /// Checked before each step; when set, the run checkpoints its progress and returns
    /// `Error::Cancelled`.
    pub cancel: &'a CancelFlag,
}

impl PretrainRequest<'_> {
    /// Every check of the user's input a run can make before anything is written: the
    /// training set, the config, the augmentation, the schedules against the data, the probe
    /// set. The run cache calls it before it creates a folder or a claim, so a rejected run
    /// leaves nothing behind.
    pub fn check(&self) -> Result<()> {
        check_inputs(self)
    }
}

fn check_inputs(req: &PretrainRequest) -> Result<()> {
    // The data first: with fewer than two images, the batch default (which fits the data)
    // would otherwise be reported as a bad `batch`.
    if req.data.len() < 2 {
        return Err(Error::Data(format!(
            "{} has {} image(s); contrastive training needs at least 2 (a batch of two views per image)",
            req.data.description(),
            req.data.len()
        )));
    }
    req.config.validate()?;
    if req.config.batch > req.data.len() {
        return Err(Error::config(
            "batch",
            format!(
                "is {} but {} has only {} images; use a batch of at most {}",
                req.config.batch,
                req.data.description(),
                req.data.len(),
                req.data.len()
            ),
        ));
    }
    req.aug.validate()?;
    req.config.schedule.check_data(req.data, req.config.batch)?;
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
        if p.is_empty() || p.labeled_count() == 0 {
            return Err(Error::Data(format!(
                "the probe set {} has no labelled images",
                p.description()
            )));
        }
    }
    Ok(())
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

    let cfg = &req.config;
    let classes = req
        .data
        .classes()
        .max(req.probe.map_or(0, |p| p.classes()))
        .max(1);
    let mut trainer = Trainer::new(cfg, req.aug, classes, ctx.device)?;
    // A run that was interrupted resumes from its last checkpoint; the metrics logged after
    // that checkpoint are dropped, since those steps run again.
    let first_step = checkpoint::resume(&dir, |ckpt| trainer.load_checkpoint(ckpt))?;
    let mut metrics: Vec<MetricRow> = read_metrics(&dir.join("metrics.jsonl"))?
        .into_iter()
        .filter(|m| m.step <= first_step)
        .collect();
    let mut log = MetricsLog::create(&dir.join("metrics.jsonl"))?;
    for row in &metrics {
        log.append(row)?;
    }
    // TensorBoard event files: a new one per process start, the older ones cut at first_step.
    let mut events = RunEvents::start(&dir, &spec, first_step, || {
        events::preview(req.data, req.aug, ctx.device)
    })?;
    let sampler = schedule::sampler(req.data, &cfg.schedule, cfg.batch, cfg.seed, first_step)?;
    let mut batches = Batches::start(req.data, sampler, ctx.device, ctx.placement)?;

    ctx.progress.start(&id, cfg.steps, false);
    if first_step > 0 {
        ctx.progress.resumed(first_step);
    }
    let started = Instant::now();
    let mut interval_start = Instant::now();
    let mut interval_images = 0usize;
    let mut interval_generated = 0usize;
    let mut total_wait = Duration::ZERO;
    let mut last_loss = metrics.last().map_or(f64::NAN, |m| m.loss);
    let mut last_checkpoint = first_step;
    for step in first_step..cfg.steps {
        if ctx.cancel.is_cancelled() {
            // Ctrl-C, a watch reload, or a pre-empted Slurm task (SIGTERM): keep what was
            // computed, so running again resumes here.
            if step > last_checkpoint {
                drop(batches);
                trainer.save_checkpoint(&dir, step)?;
            }
            return Err(Error::Cancelled);
        }
        let batch = batches.next_batch();
        interval_images += batch.len();
        interval_generated += batch.generated().iter().filter(|&&g| g).count();
        let loss = trainer.step(batch, step);

        let done = step + 1;
        let eval_now = req.probe.is_some()
            && (done == cfg.steps || (cfg.eval_every > 0 && done % cfg.eval_every == 0));
        let checkpoint_now =
            req.checkpoint_every > 0 && done % req.checkpoint_every == 0 && done < cfg.steps;
        if done % cfg.log_every == 0 || eval_now || checkpoint_now || done == cfg.steps {
            // The only host synchronisation of the step, every `log_every` steps.
            last_loss = read_floats(loss)[0] as f64;
            if !last_loss.is_finite() {
                let kept = if last_checkpoint > 0 {
                    format!(
                        "the last good checkpoint (step {last_checkpoint}) is kept in {}",
                        dir.join("checkpoint").display()
                    )
                } else {
                    "no checkpoint was written before it".to_string()
                };
                return Err(Error::Numeric(format!(
                    "the loss became {last_loss} at step {done}; {kept}. Lower the learning rate (lr = {}) or check the data",
                    cfg.lr
                )));
            }
            let interval = interval_start.elapsed().as_secs_f64().max(1e-9);
            let images_per_s = interval_images as f64 / interval;
            let waited = batches.take_waited();
            total_wait += waited;
            let data_wait = (waited.as_secs_f64() / interval).min(1.0);
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
                data_wait,
                generated_fraction: Some(interval_generated as f64 / interval_images.max(1) as f64),
                strength: Some(trainer.strength(step)),
            };
            log.append(&row)?;
            events.row(&row)?;
            ctx.progress.update(done, last_loss, images_per_s);
            if let Some(acc) = probe_acc {
                ctx.progress.probe(done, acc);
            }
            metrics.push(row);
            if checkpoint_now {
                trainer.save_checkpoint(&dir, done)?;
                last_checkpoint = done;
            }
            interval_start = Instant::now();
            interval_images = 0;
            interval_generated = 0;
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let placement = batches.placement();
    drop(batches);
    trainer.save_weights(&dir)?;
    trainer.save_checkpoint(&dir, cfg.steps)?;
    let accuracy = metrics.iter().rev().find_map(|m| m.probe_acc);
    let result = RunResult {
        id: id.clone(),
        accuracy,
        final_loss: last_loss,
        steps: cfg.steps,
        train_seconds,
        images_per_s: ((cfg.steps - first_step) * cfg.batch) as f64 / train_seconds.max(1e-9),
        data_wait: (total_wait.as_secs_f64() / train_seconds.max(1e-9)).min(1.0),
        placement: Some(placement),
    };
    write_json(&dir.join("result.json"), &result)?;
    // Last: the seal makes the run finished.
    seal::write(&dir, &seal::pretrain_files())?;
    events.finish(cfg.steps)?;
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

/// The trained backbone of a finished run, in inference mode on `device`.
pub fn load_backbone(run: &FinishedRun, device: &Device) -> Result<ResNet> {
    let path = run.dir.join("backbone.bpk");
    seal::verify(&run.dir, &["backbone.bpk"])?;
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
    let cfg = run.spec.config.backbone_config()?;
    Ok(crate::model::init_seeded(
        run.spec.config.seed,
        false,
        device,
        |host| cfg.init(host),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{AugSpec, ViewPair};
    use crate::data::loader::{Sampler, gather};
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
            optimizer: crate::optim::OptimizerKind::Sgd,
            ..Default::default()
        };
        let aug = ViewPair::symmetric("none", AugSpec::identity());
        let mut trainer = Trainer::new(&cfg, &aug, 10, &Device::flex()).unwrap();
        let mut sampler = Sampler::new(data.len(), cfg.batch, 0).unwrap();
        let before = trainer.probe_accuracy(&data).unwrap();
        for step in 0..cfg.steps {
            trainer.step(gather(&data, &sampler.next_batch()), step);
        }
        let after = trainer.probe_accuracy(&data).unwrap();
        assert!(after > 0.5 && after > before, "{before} -> {after}");
    }
}
