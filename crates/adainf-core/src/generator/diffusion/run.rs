//! Training a DDPM generator as a cached run: the options (`DiffusionConfig`, defaults on the
//! struct, checked before anything is written), the run id (a hash of the config and the
//! data's fingerprint, like `train::run::RunSpec`), and the folder `runs/<id>/` with
//! `config.json`, `metrics.jsonl` (step, loss, images/s), the EMA weights `ema.bpk` and, once
//! finished, `result.json`; a folder with `result.json` is loaded instead of trained again.
//! Not yet: checkpoints and resume, claims for parallel workers, the executor, precision
//! other than f32 (see issue 23).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Schedule, TrainSettings, Trainer, UNet, UNetConfig};
use crate::data::DataRef;
use crate::data::loader::gather;
use crate::data::{Dataset, ImageStore, UNLABELED, hash_hex};
use crate::error::{Error, Result};
use crate::files::{write_atomic, write_json};
use crate::rng::Rng;
use crate::tensor::{floats, read_floats};

/// Bump when the training semantics change, so old cached generators are not reused.
const FORMAT: u32 = 1;

/// The options of `gen::diffusion` (the defaults are the paper's, except `channels` and
/// `steps`, which are CPU-sized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffusionConfig {
    /// Optimisation steps.
    pub steps: usize,
    /// Images per step.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Channels of the UNet's first level (128 = the paper's model).
    pub channels: usize,
    /// Channel multiplier per level.
    pub channel_mult: Vec<usize>,
    /// Resolutions with self-attention.
    pub attention_at: Vec<usize>,
    /// Dropout in the residual blocks.
    pub dropout: f64,
    /// Diffusion steps T of the linear β schedule.
    pub timesteps: usize,
    /// EMA decay of the weights used for sampling.
    pub ema: f64,
    /// Random horizontal flips of the training images.
    pub flip: bool,
    /// Seed of the initial weights, the batches, the timesteps and the noise.
    pub seed: u64,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        DiffusionConfig {
            steps: 1000,
            batch: 64,
            lr: 2e-4,
            channels: 32,
            channel_mult: vec![1, 2, 2, 2],
            attention_at: vec![16],
            dropout: 0.1,
            timesteps: 1000,
            ema: 0.9999,
            flip: true,
            seed: 0,
        }
    }
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
        if self.steps == 0 {
            return Err(Error::config("steps", "must be at least 1"));
        }
        if self.batch == 0 {
            return Err(Error::config("batch", "must be at least 1"));
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
        if real.is_empty() {
            return Err(Error::config("real", "the training set is empty"));
        }
        self.unet(real.shape())
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
    /// Wall time of training, in seconds.
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

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::file(
            path,
            format!("is not a valid run file ({e}); delete the run folder to retrain"),
        )
    })
}

/// Trains a generator on `real` (or loads it from `runs_dir` when it was trained before).
/// `progress` is told the steps done after each step.
pub fn train(
    real: &Dataset,
    config: &DiffusionConfig,
    runs_dir: &Path,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<DiffusionRun> {
    let unet = config.check(real)?;
    let schedule = Schedule::linear(config.timesteps)?;
    let spec = DiffusionSpec {
        format: FORMAT,
        kind: "diffusion".into(),
        config: config.clone(),
        data: DataRef::of(real),
    };
    let id = spec.id();
    let dir = runs_dir.join(&id);
    let result_path = dir.join("result.json");
    let metrics_path = dir.join("metrics.jsonl");
    if result_path.exists() {
        let result: DiffusionResult = read_json(&result_path)?;
        let text =
            std::fs::read_to_string(&metrics_path).map_err(|e| Error::file(&metrics_path, e))?;
        let metrics = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| Error::file(&metrics_path, e)))
            .collect::<Result<Vec<DiffusionMetric>>>()?;
        let path = dir.join(EMA_FILE);
        let model = unet
            .init(device)?
            .try_load_file(&path)
            .map_err(|e| Error::file(&path, format!("cannot load ({e})")))?;
        return Ok(DiffusionRun {
            spec,
            result,
            metrics,
            dir,
            cached: true,
            model,
            schedule,
        });
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::file(&dir, e))?;
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
    let mut rng = Rng::derive(config.seed, &[0xd1ff]);
    let every = (config.steps / 20).max(1);
    let mut metrics = Vec::new();
    let mut log = String::new();
    let start = Instant::now();
    let mut last_time = start;
    let mut last_step = 0;
    let mut loss = 0.0;
    for step in 1..=config.steps {
        let idx: Vec<usize> = (0..config.batch).map(|_| rng.below(real.len())).collect();
        let x0 = batch_tensor(real, &idx, config.flip, &mut rng, &train_device);
        let l = trainer.step(x0, &mut rng);
        if step % every == 0 || step == config.steps {
            loss = read_floats(l)[0] as f64;
            if !loss.is_finite() {
                return Err(Error::Numeric(format!(
                    "the diffusion loss is {loss} at step {step}; lower `lr`"
                )));
            }
            let now = Instant::now();
            let row = DiffusionMetric {
                step,
                loss,
                images_per_s: ((step - last_step) * config.batch) as f64
                    / now.duration_since(last_time).as_secs_f64().max(1e-9),
            };
            log.push_str(&serde_json::to_string(&row).unwrap_or_default());
            log.push('\n');
            write_atomic(&metrics_path, log.as_bytes())?;
            metrics.push(row);
            last_time = now;
            last_step = step;
        }
        progress(step);
    }
    let seconds = start.elapsed().as_secs_f64();
    let path = dir.join(EMA_FILE);
    trainer
        .ema
        .clone()
        .save_file(&path)
        .map_err(|e| Error::file(&path, format!("cannot save weights: {e}")))?;
    let result = DiffusionResult {
        id: id.clone(),
        final_loss: loss,
        steps: config.steps,
        train_seconds: seconds,
        images_per_s: (config.steps * config.batch) as f64 / seconds.max(1e-9),
        shape: real.shape(),
    };
    write_json(&result_path, &result)?;
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

/// The options of `gen::sample` on a diffusion generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleConfig {
    /// Reverse steps (at most the generator's `timesteps`).
    pub steps: usize,
    /// `ddim` or `ddpm`.
    pub sampler: super::Sampler,
    /// DDIM's η (0 = deterministic).
    pub eta: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Images per batch.
    pub batch: usize,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            steps: 50,
            sampler: super::Sampler::Ddim,
            eta: 0.0,
            seed: 0,
            batch: 64,
        }
    }
}

impl DiffusionRun {
    /// `n` generated images (labels -1) as a dataset; `progress` gets the images done.
    pub fn sample(
        &self,
        n: usize,
        cfg: &SampleConfig,
        device: &Device,
        progress: impl FnMut(usize),
    ) -> Result<Dataset> {
        if n == 0 {
            return Err(Error::config("n", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&cfg.eta) {
            return Err(Error::config(
                "eta",
                format!("must be in [0, 1], got {}", cfg.eta),
            ));
        }
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
        let cfg_json = serde_json::to_string(cfg).unwrap_or_default();
        let fp = hash_hex(&[&self.result.id, &n.to_string(), &cfg_json]);
        let source = format!(
            "diffusion_sample(generator={}, n={n}, steps={}, sampler={})",
            self.result.id,
            cfg.steps,
            <&str>::from(cfg.sampler)
        );
        let store = ImageStore::new(source, fp, [h, w, c], 0, pixels, vec![UNLABELED; n])?;
        Ok(Dataset::from_store(store))
    }
}
