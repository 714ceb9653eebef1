//! Pretraining: the training loop (sampler → u8 batch, gathered ahead on the prefetch thread
//! → device → two augmented views → backbone → method loss + online probe → optimiser),
//! periodic metrics and probe evaluation, the run folder, and loading a finished run's encoder
//! back for evaluation.

pub mod checkpoint;
pub mod config;
pub mod events;
pub mod progress;
mod record;
pub mod run;
pub mod schedule;
#[cfg(test)]
mod schedule_tests;
pub mod seal;
pub(crate) mod steps;
pub mod trainer;

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;

use crate::augment::ViewPair;
use crate::data::Dataset;
use crate::data::batches::{Batches, Placement};
use crate::error::{Error, Result};
use crate::model::ResNet;
pub use config::PretrainConfig;
pub use progress::{CancelFlag, Progress, Silent};
use record::RunRecord;
pub use run::{FinishedRun, MetricRow, RunResult, RunSpec};
use run::{load_finished, run_dir, write_json};
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

impl<'a> PretrainRequest<'a> {
    /// Every check of the user's input a run can make before anything is written: the
    /// training set, the config, the augmentation, the schedules against the data, the probe
    /// set; then the run's spec and id, computed once. The run cache, the trainer and a
    /// worker's request take the checked request, so a rejected run leaves nothing behind and
    /// none of them checks or hashes again.
    pub fn check(self) -> Result<CheckedRequest<'a>> {
        check_inputs(&self)?;
        let spec = RunSpec::new(self.config.clone(), self.data, self.aug.clone(), self.probe);
        let id = spec.id();
        Ok(CheckedRequest {
            req: self,
            spec,
            id,
        })
    }
}

/// A request whose inputs passed every check (`PretrainRequest::check`, the only way to make
/// one), with its spec and run id.
pub struct CheckedRequest<'a> {
    req: PretrainRequest<'a>,
    spec: RunSpec,
    id: String,
}

impl<'a> CheckedRequest<'a> {
    /// The request.
    pub fn request(&self) -> &PretrainRequest<'a> {
        &self.req
    }

    /// What the run id is computed from (`config.json`).
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.id
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

/// Trains (or loads from the cache) one run: the parts in order.
pub fn pretrain(run: CheckedRequest, mut ctx: TrainContext) -> Result<FinishedRun> {
    let CheckedRequest { req, spec, id } = run;
    let dir = run_dir(ctx.runs_dir, &id);
    if let Some(run) = load_finished(&dir)? {
        ctx.progress.start(&id, run.result.steps, true);
        return Ok(run);
    }
    crate::files::create_folder(&dir)?;
    write_json(&dir.join("config.json"), &spec)?;
    let cfg = &req.config;
    let classes = req.data.classes().max(req.probe.map_or(0, |p| p.classes()));
    let mut trainer = Trainer::new(cfg, req.aug, classes.max(1), ctx.device)?;
    let first_step = steps::resume(&mut trainer, &dir)?;
    let mut record = RunRecord::open(&dir, &spec, first_step, || {
        events::preview(req.data, req.aug, ctx.device)
    })?;
    let sampler = schedule::sampler(req.data, &cfg.schedule, cfg.batch, cfg.seed, first_step)?;
    let batches = Batches::start(req.data, sampler, ctx.device, ctx.placement)?;
    ctx.progress.start(&id, cfg.steps, false);
    if first_step > 0 {
        ctx.progress.resumed(first_step);
    }
    let started = Instant::now();
    let trained = steps::train(
        &req,
        &mut ctx,
        &dir,
        &mut trainer,
        batches,
        &mut record,
        first_step,
    )?;
    let train_seconds = started.elapsed().as_secs_f64().max(1e-9);
    let result = RunResult {
        id,
        accuracy: record.accuracy(),
        final_loss: record.last_loss(),
        steps: cfg.steps,
        train_seconds,
        images_per_s: ((cfg.steps - first_step) * cfg.batch) as f64 / train_seconds,
        data_wait: (trained.total_wait.as_secs_f64() / train_seconds).min(1.0),
        placement: Some(trained.placement),
    };
    steps::finish(&dir, &trainer, &result)?;
    let metrics = record.finish(cfg.steps)?;
    ctx.progress.finish(&result.summary());
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
