//! Training a DDPM generator as a cached run: the options (`DiffusionConfig`, defaults on the
//! struct, checked before anything is written), the run id (a hash of the config and the
//! data's fingerprint, like `train::run::RunSpec`), and the folder `runs/<id>/` with
//! `config.json`, `metrics.jsonl` (step, loss, images/s), the EMA weights `ema.bpk`,
//! `result.json` and, written last, the seal (`train::seal`) that makes the run finished. A
//! sealed folder is loaded (its files checked against the seal) instead of trained again; a
//! damaged one is reported, and trained again from the start with `--retry-failed`.
//!
//! Checkpoints (`train::checkpoint`: `checkpoint/` with the model, its EMA and the AdamW state,
//! every `checkpoint_every` steps and when the run is cancelled) let a killed run resume and end
//! with the weights of an uninterrupted one: each step's randomness (batch, flips, timesteps,
//! noise, dropout) is drawn from a stream derived from the seed and the step, so no generator
//! state is saved. (Dropout masks come from the device's generator, seeded per step; it is one
//! per process, so the guarantee holds while nothing else in the process draws from it at the
//! same time: the script host trains one run at a time, `--jobs` workers are processes.) A
//! finished run keeps only `ema.bpk`; its checkpoints are removed.
//!
//! Samples are runs too (`DiffusionRun::sample_run`): `runs/<id>/` with `samples.npz` (the
//! official AdaInf layout), `config.json` (the generator's id, `n` and the options: the id),
//! `result.json` and the seal; the same call again loads them instead of sampling. The samples
//! carry a recipe (`Recipe::DiffusionSample`: the folder, the spec and the sealed SHA-256 of
//! `samples.npz`) that another process opens them with (`replay`, a memory map, never a copy,
//! of a folder checked to hold exactly those samples): samples are drawn only by the driver.
//! Training runs under the run's claim (`runs::cache::claimed`, as pretraining does), so two
//! processes sharing a runs folder never train one generator at once: the second waits, then
//! loads it; a failure is recorded in `failed.json`. Another process trains a generator from
//! its request (`runs::request::DiffusionRequest`, what `--jobs` workers and Slurm array tasks
//! read) with the same `train`, so where it trains does not change its weights.
//! Not yet: precision other than f32 (issue 23).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Schedule, TrainSettings, Trainer, UNet, UNetConfig};
use crate::data::DataRef;
use crate::data::loader::gather;
use crate::data::recipe::Recipe;
use crate::data::{Dataset, ImageStore, UNLABELED, hash_hex};
use crate::error::{Error, Result};
use crate::files::{write_atomic, write_json};
use crate::options::Options;
use crate::rng::Rng;
use crate::tensor::{floats, read_floats};
use crate::train::checkpoint::{self, load_module, load_optimizer, save_module, save_optimizer};
use crate::train::progress::{CancelFlag, Progress};
use crate::train::run::{check_run_dir, read_json, read_rows};
use crate::train::{seal, steps};

/// Bump when the training semantics change, so old cached generators are not reused. (2: each
/// step's randomness comes from a stream derived from the seed and the step, dropout included.)
const FORMAT: u32 = 2;

/// Largest batch of a generator's training step: a larger one is refused with the other
/// options, before training starts (its images were allocated at the first step, which
/// aborted the process past the memory).
pub const MAX_BATCH: usize = 4096;

/// The options of `gen::diffusion` that make the run (the defaults are the paper's, except
/// `channels` and `steps`, which are CPU-sized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
pub struct DiffusionConfig {
    /// Optimisation steps.
    #[option(default = 1000)]
    pub steps: usize,
    /// Images per step.
    #[option(default = 64)]
    pub batch: usize,
    /// AdamW learning rate.
    #[option(default = 2e-4)]
    pub lr: f64,
    /// UNet channels of the first level: 128 = the paper's 35.7M-parameter model.
    #[option(default = 32)]
    pub channels: usize,
    /// Channel multiplier per level.
    #[option(default = vec![1, 2, 2, 2])]
    pub channel_mult: Vec<usize>,
    /// Resolutions with self-attention.
    #[option(default = vec![16])]
    pub attention_at: Vec<usize>,
    /// Dropout in the residual blocks.
    #[option(default = 0.1)]
    pub dropout: f64,
    /// Diffusion steps T of the linear β schedule.
    #[option(default = 1000)]
    pub timesteps: usize,
    /// EMA decay of the weights used for sampling.
    #[option(default = 0.9999)]
    pub ema: f64,
    /// Random horizontal flips of the training images.
    #[option(default = true)]
    pub flip: bool,
    /// Seed of the initial weights, the batches, the timesteps, the noise and dropout.
    pub seed: u64,
    /// Save a checkpoint every this many steps (0 = only when the run is cancelled by Ctrl-C
    /// or SIGTERM). Not part of the run id: the script's run options set it
    /// (`checkpoint_every`, shared by every run kind).
    #[serde(skip_serializing)]
    #[option(skip)]
    pub checkpoint_every: usize,
}

impl DiffusionConfig {
    /// The UNet for images of `shape` [height, width, channels]; an error for shapes it
    /// cannot take.
    pub fn unet(&self, shape: [usize; 3]) -> Result<UNetConfig> {
        let [h, w, c] = shape;
        if h != w {
            return Err(Error::config(
                "data",
                format!("the UNet takes square images; got {h}×{w} images"),
            ));
        }
        let cfg = UNetConfig {
            channels: self.channels,
            channel_mult: self.channel_mult.clone(),
            res_blocks: 2,
            attention_at: self.attention_at.clone(),
            dropout: self.dropout,
            image_size: h,
            image_channels: c,
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks every option against `real`; nothing is written before this passes.
    pub fn check(&self, real: &Dataset) -> Result<UNetConfig> {
        self.check_options()?;
        if real.is_empty() {
            return Err(Error::config("real", "the training set is empty"));
        }
        self.unet(real.shape())
    }

    /// The checks that need no data (a run request is refused by them before its data is
    /// made); `check` adds the training set's.
    pub fn check_options(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::config("steps", "must be at least 1"));
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(Error::config(
                "batch",
                format!(
                    "is {} but must be between 1 and {MAX_BATCH} (the paper trains with 128)",
                    self.batch
                ),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::config(
                "lr",
                format!("must be positive, got {}", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.ema) {
            return Err(Error::config(
                "ema",
                format!("must be in [0, 1), got {}", self.ema),
            ));
        }
        Schedule::linear(self.timesteps)?;
        UNetConfig {
            channels: self.channels,
            channel_mult: self.channel_mult.clone(),
            res_blocks: 2,
            attention_at: self.attention_at.clone(),
            dropout: self.dropout,
            image_size: 0,
            image_channels: 0,
        }
        .check_layers()
    }
}

/// Everything that determines a trained generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffusionSpec {
    /// Version of the training semantics.
    pub format: u32,
    /// Which kind of run this is (so no pretraining run can share its id).
    pub kind: String,
    /// The options.
    pub config: DiffusionConfig,
    /// The training images.
    pub data: DataRef,
}

impl DiffusionSpec {
    /// The spec of a generator trained with `config` on `real`.
    pub fn new(config: &DiffusionConfig, real: &Dataset) -> Self {
        DiffusionSpec {
            format: FORMAT,
            kind: GENERATOR_KIND.into(),
            config: config.clone(),
            data: DataRef::of(real),
        }
    }

    /// The run id: 24 hex digits of a SHA-256 of the spec's JSON.
    pub fn id(&self) -> String {
        hash_hex(&[&serde_json::to_string(self).unwrap_or_default()])
    }
}

/// One line of the generator's `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffusionMetric {
    /// Steps completed.
    pub step: usize,
    /// ε-prediction loss of the last step.
    pub loss: f64,
    /// Training throughput since the previous row.
    pub images_per_s: f64,
}

/// `result.json` of a finished generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffusionResult {
    /// The run id.
    pub id: String,
    /// Loss of the last step.
    pub final_loss: f64,
    /// Steps trained.
    pub steps: usize,
    /// Wall time of training, in seconds (after a resume, only the resumed part).
    pub train_seconds: f64,
    /// Mean training throughput.
    pub images_per_s: f64,
    /// Image shape [height, width, channels].
    pub shape: [usize; 3],
}

/// A trained generator: its EMA weights, schedule and record.
pub struct DiffusionRun {
    /// What determined it.
    pub spec: DiffusionSpec,
    /// Its summary.
    pub result: DiffusionResult,
    /// The logged rows.
    pub metrics: Vec<DiffusionMetric>,
    /// Its folder.
    pub dir: PathBuf,
    /// Loaded from the cache rather than trained now.
    pub cached: bool,
    /// EMA weights (not autodiff).
    pub model: UNet,
    /// The β schedule.
    pub schedule: Schedule,
}

/// The EMA weights of a finished generator (burn's format), written as `save_module(…, "ema")`.
const EMA_FILE: &str = "ema.bpk";

/// Training images `indices` of `data` as a [B, C, H, W] tensor in [-1, 1], flipped
/// horizontally where `rng` says so when `flip`.
fn batch_tensor(
    data: &Dataset,
    indices: &[usize],
    flip: bool,
    rng: &mut Rng,
    device: &Device,
) -> Tensor<4> {
    let hb = gather(data, indices);
    let [h, w, c] = hb.shape;
    let mut v = vec![0f32; indices.len() * c * h * w];
    for i in 0..indices.len() {
        let mirror = flip && rng.bernoulli(0.5);
        for y in 0..h {
            for x in 0..w {
                let sx = if mirror { w - 1 - x } else { x };
                for ch in 0..c {
                    let p = hb.pixels[((i * h + y) * w + sx) * c + ch];
                    v[((i * c + ch) * h + y) * w + x] = p as f32 / 127.5 - 1.0;
                }
            }
        }
    }
    floats(v, [indices.len(), c, h, w], device)
}

/// The files a finished generator run seals: its records and its EMA weights.
pub fn sealed_files() -> Vec<&'static str> {
    seal::RECORDS.iter().copied().chain([EMA_FILE]).collect()
}

/// Where and how a generator trains, or draws samples.
pub struct DiffusionContext<'a> {
    /// Device to train or sample on (not part of the run id).
    pub device: &'a Device,
    /// Folder of the run folders.
    pub runs_dir: &'a Path,
    /// Receives the run's progress (steps trained, or images drawn).
    pub progress: &'a mut dyn Progress,
    /// Checked before each training step or reverse step; when set, training checkpoints
    /// and sampling stores nothing, and both return `Error::Cancelled`.
    pub cancel: &'a CancelFlag,
    /// Train (or sample) again a run whose files changed after it finished, or whose
    /// checkpoint is damaged, from the start (`--retry-failed`).
    pub retry_failed: bool,
}

impl Trainer {
    /// Writes the run's `checkpoint/`: the model, its EMA and the AdamW state.
    fn save_checkpoint(&self, run_dir: &Path, steps_done: usize) -> Result<()> {
        checkpoint::write(run_dir, steps_done, None, |tmp| {
            save_module(self.model.clone(), tmp, "model")?;
            save_module(self.ema.clone(), tmp, "ema")?;
            save_optimizer(&self.optimizer, tmp, "optimizer")
        })
    }

    /// Restores the state saved by `save_checkpoint`; returns the number of steps done.
    fn load_checkpoint(&mut self, dir: &Path) -> Result<usize> {
        let state = checkpoint::read(dir)?;
        self.model = load_module(self.model.clone(), dir, "model")?;
        self.ema = load_module(self.ema.clone(), dir, "ema")?;
        self.optimizer = load_optimizer(self.optimizer.clone(), dir, "optimizer")?;
        Ok(state.step)
    }
}

/// The random stream of training step `step` (0-based): its batch, flips, timesteps, noise and
/// dropout seed.
fn step_rng(seed: u64, step: usize) -> Rng {
    Rng::derive(seed, &[0xd1ff, step as u64])
}

/// Loads the finished generator in `dir` after checking its files against the seal.
fn load_finished(
    spec: DiffusionSpec,
    unet: &UNetConfig,
    schedule: Schedule,
    dir: PathBuf,
    device: &Device,
) -> Result<DiffusionRun> {
    seal::verify(&dir, &sealed_files())?;
    let result: DiffusionResult = read_json(&dir.join("result.json"))?;
    let metrics = read_rows(&dir.join("metrics.jsonl"))?;
    let model = load_module(unet.init(device)?, &dir, "ema")?;
    Ok(DiffusionRun {
        spec,
        result,
        metrics,
        dir,
        cached: true,
        model,
        schedule,
    })
}

/// The finished generator trained with `config` on `real` under `runs_dir`, loaded after
/// checking its files against the seal; None while it is not finished (an error for options
/// that cannot train).
pub fn load(
    real: &Dataset,
    config: &DiffusionConfig,
    runs_dir: &Path,
    device: &Device,
) -> Result<Option<DiffusionRun>> {
    let unet = config.check(real)?;
    let spec = DiffusionSpec::new(config, real);
    let dir = runs_dir.join(spec.id());
    if !seal::is_sealed(&dir) {
        return Ok(None);
    }
    let schedule = Schedule::linear(config.timesteps)?;
    load_finished(spec, &unet, schedule, dir, device).map(Some)
}

/// Trains a generator on `real` (or loads it from `ctx.runs_dir` when it was trained before;
/// an interrupted run resumes from its checkpoint), under the run's claim
/// (`runs::cache::claimed`): a process that finds another training it waits and loads it.
pub fn train(
    real: &Dataset,
    config: &DiffusionConfig,
    ctx: DiffusionContext,
) -> Result<DiffusionRun> {
    let unet = config.check(real)?;
    let schedule = Schedule::linear(config.timesteps)?;
    let spec = DiffusionSpec::new(config, real);
    let id = spec.id();
    let dir = ctx.runs_dir.join(&id);
    let DiffusionContext {
        device,
        progress,
        cancel,
        retry_failed,
        ..
    } = ctx;
    crate::runs::cache::claimed(
        &id,
        &dir,
        &sealed_files(),
        retry_failed,
        progress,
        cancel,
        |progress| {
            if !seal::is_sealed(&dir) {
                return Ok(None);
            }
            let run = load_finished(spec.clone(), &unet, schedule.clone(), dir.clone(), device)?;
            progress.start(&id, run.result.steps, true);
            Ok(Some(run))
        },
        |progress| {
            train_claimed(
                real,
                config,
                Resolved {
                    spec: spec.clone(),
                    unet: &unet,
                    schedule: schedule.clone(),
                    dir: dir.clone(),
                },
                device,
                progress,
                cancel,
            )
        },
    )
}

/// What `train` resolved before taking the run's claim.
struct Resolved<'a> {
    spec: DiffusionSpec,
    unet: &'a UNetConfig,
    schedule: Schedule,
    dir: PathBuf,
}

/// Trains the generator whose claim this process holds, from its checkpoint if it has one.
fn train_claimed(
    real: &Dataset,
    config: &DiffusionConfig,
    Resolved {
        spec,
        unet,
        schedule,
        dir,
    }: Resolved,
    device: &Device,
    progress: &mut dyn Progress,
    cancel: &CancelFlag,
) -> Result<DiffusionRun> {
    let id = spec.id();
    let files = sealed_files();
    crate::files::create_folder(&dir)?;
    write_json(&dir.join("config.json"), &spec)?;
    let train_device = device.clone().autodiff();
    let model = crate::model::init_seeded(config.seed, true, &train_device, |d| {
        unet.init(d).expect("checked above")
    });
    let mut trainer = Trainer::new(
        model,
        schedule.clone(),
        TrainSettings {
            lr: config.lr,
            ema: config.ema,
        },
    );
    // A run that was interrupted resumes from its last checkpoint; the rows logged after it
    // are dropped, since those steps run again.
    let first_step = checkpoint::resume(&dir, |ckpt| trainer.load_checkpoint(ckpt))?;
    let metrics_path = dir.join("metrics.jsonl");
    let mut metrics: Vec<DiffusionMetric> = read_rows::<DiffusionMetric>(&metrics_path)?
        .into_iter()
        .filter(|m| m.step <= first_step)
        .collect();
    let mut log = String::new();
    for row in &metrics {
        log.push_str(&serde_json::to_string(row).unwrap_or_default());
        log.push('\n');
    }
    write_atomic(&metrics_path, log.as_bytes())?;
    progress.start(&id, config.steps, false);
    if first_step > 0 {
        progress.resumed(first_step);
    }
    let every = (config.steps / 20).max(1);
    let start = Instant::now();
    let mut last_time = start;
    let mut last_step = first_step;
    let mut last_checkpoint = first_step;
    let mut loss = metrics.last().map_or(f64::NAN, |m| m.loss);
    for step in first_step..config.steps {
        if cancel.is_cancelled() {
            // Ctrl-C or SIGTERM: keep what was computed, so running again resumes here.
            if step > last_checkpoint {
                trainer.save_checkpoint(&dir, step)?;
            }
            return Err(Error::Cancelled);
        }
        let mut rng = step_rng(config.seed, step);
        let idx: Vec<usize> = (0..config.batch).map(|_| rng.below(real.len())).collect();
        let x0 = batch_tensor(real, &idx, config.flip, &mut rng, &train_device);
        let l = trainer.step(x0, &mut rng);
        let done = step + 1;
        let checkpoint_now = steps::checkpoint_due(config.checkpoint_every, done, config.steps);
        if done % every == 0 || checkpoint_now || done == config.steps {
            loss = read_floats(l)[0] as f64;
            if !loss.is_finite() {
                let kept = steps::checkpoint_kept(last_checkpoint, &dir);
                return Err(Error::Numeric(format!(
                    "the diffusion loss is {loss} at step {done}; {kept}. Lower `lr` (lr = {})",
                    config.lr
                )));
            }
            let now = Instant::now();
            let row = DiffusionMetric {
                step: done,
                loss,
                images_per_s: ((done - last_step) * config.batch) as f64
                    / now.duration_since(last_time).as_secs_f64().max(1e-9),
            };
            log.push_str(&serde_json::to_string(&row).unwrap_or_default());
            log.push('\n');
            check_run_dir(&dir)?;
            write_atomic(&metrics_path, log.as_bytes())?;
            progress.update(done, loss, row.images_per_s);
            metrics.push(row);
            if checkpoint_now {
                trainer.save_checkpoint(&dir, done)?;
                last_checkpoint = done;
            }
            last_time = now;
            last_step = done;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    check_run_dir(&dir)?;
    save_module(trainer.ema.clone(), &dir, "ema")?;
    let result = DiffusionResult {
        id: id.clone(),
        final_loss: loss,
        steps: config.steps,
        train_seconds: seconds,
        images_per_s: ((config.steps - first_step) * config.batch) as f64 / seconds.max(1e-9),
        shape: real.shape(),
    };
    write_json(&dir.join("result.json"), &result)?;
    // Last: the seal makes the run finished; its checkpoints are not needed any more.
    seal::write(&dir, &files)?;
    checkpoint::remove_all(&dir)?;
    progress.finish(&format!("generator {id} (loss {loss:.4})"));
    Ok(DiffusionRun {
        spec,
        result,
        metrics,
        dir,
        cached: false,
        model: trainer.ema.fork(device),
        schedule,
    })
}

pub use crate::data::recipe::SampleConfig;

impl SampleConfig {
    /// Checks the options for `n` samples of a generator with `schedule`; nothing is written
    /// before this passes.
    pub fn check(&self, n: usize, schedule: &Schedule) -> Result<()> {
        if n == 0 {
            return Err(Error::config("n", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.eta) {
            return Err(Error::config(
                "eta",
                format!("must be in [0, 1], got {}", self.eta),
            ));
        }
        if self.batch == 0 {
            return Err(Error::config("batch", "must be at least 1"));
        }
        schedule.sampling_steps(self.steps).map(|_| ())
    }
}

/// Everything that determines a set of samples: the generator, the number and the options
/// (the device is not part of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleSpec {
    /// Version of the sampling semantics.
    pub format: u32,
    /// Which kind of run this is.
    pub kind: String,
    /// The generator's run id.
    pub generator: String,
    /// Number of images.
    pub n: usize,
    /// The options.
    pub config: SampleConfig,
}

impl SampleSpec {
    /// The spec of `n` samples with `config` of the generator whose run id is `generator`.
    pub fn new(generator: &str, n: usize, config: &SampleConfig) -> Self {
        SampleSpec {
            format: SAMPLE_FORMAT,
            kind: SAMPLES_KIND.into(),
            generator: generator.into(),
            n,
            config: config.clone(),
        }
    }

    /// The sampling run's id (24 hex digits of a SHA-256 of the spec's JSON), which is also the
    /// fingerprint of the samples as a dataset.
    pub fn id(&self) -> String {
        hash_hex(&[&serde_json::to_string(self).unwrap_or_default()])
    }

    /// The source line of the samples as a dataset.
    fn source(&self) -> String {
        format!(
            "diffusion_sample(generator={}, n={}, steps={}, sampler={})",
            self.generator,
            self.n,
            self.config.steps,
            <&str>::from(self.config.sampler)
        )
    }
}

/// `result.json` of a sampling run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// The sampling run's id.
    pub id: String,
    /// Number of images.
    pub n: usize,
    /// Image shape [height, width, channels].
    pub shape: [usize; 3],
    /// Wall time of sampling, in seconds.
    pub seconds: f64,
    /// Sampling throughput.
    pub images_per_s: f64,
}

/// Samples stored in their run folder.
pub struct SampleRun {
    /// The images (labels -1).
    pub dataset: Dataset,
    /// What sampled them.
    pub spec: SampleSpec,
    /// Their summary.
    pub result: SampleResult,
    /// The run folder (`samples.npz`, `config.json`, `result.json`, the seal).
    pub dir: PathBuf,
    /// Loaded from the folder rather than sampled now.
    pub cached: bool,
}

/// The samples of a sampling run, in the official AdaInf layout (`data::save_npz`).
const SAMPLES_FILE: &str = "samples.npz";

/// The files a finished sampling run seals.
const SAMPLE_FILES: [&str; 3] = [SAMPLE_RECORDS[0], SAMPLE_RECORDS[1], SAMPLES_FILE];

/// The records of a sampling run (what a listing checks against the seal; the images are
/// checked when they are used).
pub const SAMPLE_RECORDS: [&str; 2] = ["config.json", "result.json"];

/// The `kind` of a generator's `config.json` (`DiffusionSpec`).
pub const GENERATOR_KIND: &str = "diffusion";

/// The `kind` of a sampling run's `config.json` (`SampleSpec`).
pub const SAMPLES_KIND: &str = "diffusion_sample";

/// Bump when the sampling semantics change, so old stored samples are not reused.
const SAMPLE_FORMAT: u32 = 1;

/// The sealed samples of `spec` in `dir`, memory-mapped (never copied), with the recipe that
/// opens them again; the caller has checked the folder against its seal (`changed` phrases the
/// error when the seal cannot be read).
fn open_samples(dir: &Path, spec: &SampleSpec, changed: seal::Changed) -> Result<Dataset> {
    let mut store =
        crate::data::readers::npz::read_npz_store(&dir.join(SAMPLES_FILE), &Default::default())?;
    store.source = spec.source();
    store.fingerprint = spec.id();
    let recipe = samples_recipe(dir, spec, changed)?;
    Ok(Dataset::from_store(store).with_recipe(recipe))
}

/// The recipe of the sealed samples of `spec` in `dir`: the folder (absolute, so a worker in
/// another folder finds it), the spec and the sealed digest of `samples.npz`.
fn samples_recipe(dir: &Path, spec: &SampleSpec, changed: seal::Changed) -> Result<Recipe> {
    Ok(Recipe::DiffusionSample {
        dir: std::path::absolute(dir).map_err(|e| Error::file(dir, e))?,
        generator: spec.generator.clone(),
        n: spec.n,
        config: spec.config.clone(),
        samples_sha256: seal::sealed_digest(dir, SAMPLES_FILE, changed)?,
    })
}

/// Makes the samples of a `Recipe::DiffusionSample` again in another process (a `--jobs`
/// worker, a Slurm array task): memory-maps `samples.npz` of the sampling run's folder `dir`
/// once the folder is the one the recipe names (its `config.json` is the spec), finished (its
/// seal), holds the samples the recipe was made with (the sealed SHA-256 of `samples.npz`) and
/// its files match the seal. Anything else (the folder gone, unfinished, drawn again, edited)
/// is one error naming the folder and saying how to draw the samples again; nothing is
/// written. Samples are drawn only by the script's driver, which holds the generator.
pub fn replay(
    dir: &Path,
    generator: &str,
    n: usize,
    config: &SampleConfig,
    samples_sha256: &str,
) -> Result<Dataset> {
    let spec = SampleSpec::new(generator, n, config);
    let unusable = |what: &str| {
        Error::file(
            dir,
            format!(
                "the {n} samples of generator {generator} (gen::sample, sampling run {}) that this set is made of {what}, so the set cannot be made again here. Run the script again with --retry-failed: its driver draws the samples again and trains the runs on them",
                spec.id()
            ),
        )
    };
    if !dir.is_dir() {
        return Err(unusable("are gone: their folder is missing"));
    }
    if !seal::is_sealed(dir) {
        return Err(unusable(
            "are not finished: their folder has no seal.json (drawing them was interrupted, or the folder was emptied)",
        ));
    }
    let changed =
        |name: &str, how: &str| unusable(&format!("changed after they were drawn ({name}: {how})"));
    let stored: Option<SampleSpec> = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    match stored {
        Some(stored) if stored == spec => {}
        Some(stored) => {
            return Err(unusable(&format!(
                "are not in this folder: its config.json is sampling run {}",
                stored.id()
            )));
        }
        None => {
            return Err(changed(
                "config.json",
                "it cannot be read as a sampling run's",
            ));
        }
    }
    if seal::sealed_digest(dir, SAMPLES_FILE, &changed)? != samples_sha256 {
        return Err(unusable(
            "were drawn again after this set was made (the sealed SHA-256 of samples.npz differs from the one the driver saw)",
        ));
    }
    // The files, config.json included, are the sealed ones.
    seal::verify_as(dir, &SAMPLE_FILES, &changed)?;
    let data = open_samples(dir, &spec, &changed)?;
    if data.len() != n {
        return Err(unusable(&format!(
            "are {} images in samples.npz",
            data.len()
        )));
    }
    Ok(data)
}

impl DiffusionRun {
    /// The spec of `n` samples with `cfg`.
    pub fn sample_spec(&self, n: usize, cfg: &SampleConfig) -> SampleSpec {
        SampleSpec::new(&self.result.id, n, cfg)
    }

    /// `n` samples as a sampling run under `ctx.runs_dir`: drawn and stored the first time,
    /// loaded (after checking them against the seal) afterwards.
    pub fn sample_run(
        &self,
        n: usize,
        cfg: &SampleConfig,
        ctx: DiffusionContext,
    ) -> Result<SampleRun> {
        cfg.check(n, &self.schedule)?;
        let spec = self.sample_spec(n, cfg);
        let id = spec.id();
        let dir = ctx.runs_dir.join(&id);
        if ctx.retry_failed && dir.is_dir() {
            checkpoint::discard_damaged(&dir, &SAMPLE_FILES, ctx.progress)?;
        }
        if seal::is_sealed(&dir) {
            seal::verify(&dir, &SAMPLE_FILES)?;
            let dataset = open_samples(&dir, &spec, &|name, how| seal::changed(&dir, name, how))?;
            let result: SampleResult = read_json(&dir.join("result.json"))?;
            ctx.progress.start(&id, n, true);
            return Ok(SampleRun {
                dataset,
                spec,
                result,
                dir,
                cached: true,
            });
        }
        ctx.progress.start_sampling(&id, n);
        let start = Instant::now();
        let progress = &mut *ctx.progress;
        let mut finished = 0;
        let drawn = self.sample(
            n,
            cfg,
            ctx.device,
            |done| {
                finished = done;
                let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
                progress.update(done, f64::NAN, rate);
            },
            || ctx.cancel.is_cancelled(),
        );
        let dataset = match drawn {
            Err(Error::Cancelled) => {
                // Nothing of the run is written before its samples are all drawn, so an
                // interrupted sampling leaves no file that could pass for its samples.
                ctx.progress.note(&format!(
                    "sampling {id} interrupted after {finished} of {n} images; nothing was stored, and running the script again samples them from the start"
                ));
                return Err(Error::Cancelled);
            }
            other => other?,
        };
        let seconds = start.elapsed().as_secs_f64();
        crate::files::create_folder(&dir)?;
        write_json(&dir.join("config.json"), &spec)?;
        crate::data::readers::npz::save_npz(&dataset, &dir.join(SAMPLES_FILE))?;
        let result = SampleResult {
            id: id.clone(),
            n,
            shape: dataset.shape(),
            seconds,
            images_per_s: n as f64 / seconds.max(1e-9),
        };
        write_json(&dir.join("result.json"), &result)?;
        // Last: the seal makes the samples finished.
        seal::write(&dir, &SAMPLE_FILES)?;
        // Another process opens them from the folder (the pixels here are the ones stored).
        let recipe = samples_recipe(&dir, &spec, &|name, how| seal::changed(&dir, name, how))?;
        ctx.progress.finish(&format!("{n} samples ({id})"));
        Ok(SampleRun {
            dataset: dataset.with_recipe(recipe),
            spec,
            result,
            dir,
            cached: false,
        })
    }

    /// `n` generated images (labels -1) as a dataset, in memory (`sample_run` stores them in
    /// a run folder); `progress` gets the images done; `Error::Cancelled` once `cancelled()`
    /// says so (asked before each reverse step).
    pub fn sample(
        &self,
        n: usize,
        cfg: &SampleConfig,
        device: &Device,
        progress: impl FnMut(usize),
        cancelled: impl Fn() -> bool,
    ) -> Result<Dataset> {
        cfg.check(n, &self.schedule)?;
        let [h, w, c] = self.result.shape;
        let parts = super::sample(
            &self.model,
            &self.schedule,
            [c, h, w],
            n,
            cfg.steps,
            cfg.sampler,
            cfg.eta,
            cfg.seed,
            cfg.batch,
            device,
            progress,
            cancelled,
        )?;
        let mut pixels = Vec::with_capacity(n * h * w * c);
        for part in parts {
            let b = part.dims()[0];
            // [B, C, H, W] in [-1, 1] → HWC u8.
            let v = read_floats(part.swap_dims(1, 2).swap_dims(2, 3));
            debug_assert_eq!(v.len(), b * h * w * c);
            pixels.extend(
                v.iter()
                    .map(|x| ((x + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8),
            );
        }
        let spec = self.sample_spec(n, cfg);
        let store = ImageStore::new(
            spec.source(),
            spec.id(),
            [h, w, c],
            0,
            pixels,
            vec![UNLABELED; n],
        )?;
        Ok(Dataset::from_store(store))
    }
}

#[cfg(test)]
mod tests;
