//! `adainf bench --suite diffusion`: images per second of the built-in DDPM generator's
//! training step and of its DDIM sampler, on synthetic data, through the generator's own code
//! (`generator::diffusion::{Trainer, sample}`), with the CPU threads pinned.
//!
//! What one side does, and the PyTorch peer (`scripts/ddpm_peer.py bench`, run by
//! `bench::peer`) does the same:
//! - the UNet of `gen::diffusion` (channel multipliers [1, 2, 2, 2], 2 residual blocks per
//!   level, attention at 16×16, dropout 0.1) at `channels`, for `size`×`size` RGB images, the
//!   same parameter count on both sides (both lines carry `params`);
//! - a training step: a fixed batch of `batch` synthetic images in [-1, 1], timesteps and noise
//!   drawn each step, the ε-prediction loss (mean squared error), backward, AdamW (lr 2e-4, no
//!   weight decay, ε 1e-8) and the EMA update (decay 0.9999) of every parameter; `warmup` steps
//!   untimed, then `steps` timed ones, ended by one read of the last loss (queued device work is
//!   included);
//! - sampling: `batch` images with `sample_steps` DDIM steps (η 0, the timesteps
//!   T·i/steps of `Schedule::sampling_steps`, T = 1000) with the EMA weights, noise drawn each
//!   step, after a one-step warm-up; images/s = batch / time of the whole sampling.
//!
//! Known differences, all small against a UNet forward pass: our training step also seeds the
//! device's dropout generator, and our timesteps and noise are drawn on the host and uploaded
//! (the peer draws noise with torch on the device); the peer computes `q_sample` and the DDIM
//! update in float64 (its reference functions), ours in f32; our sampler draws its per-step
//! noise on the host even for η 0 (it is unused there), the peer draws it with torch. Neither
//! side includes the data pipeline of a real run (gathering, flips, upload).

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::generator::diffusion::run::DiffusionConfig;
use crate::generator::diffusion::{
    Sampler, Schedule, TrainSettings, Trainer, UNet, UNetConfig, sample,
};
use crate::rng::Rng;
use crate::tensor::{floats, read_floats};

/// `--channels` when not given: small enough for a CPU (128 is the paper's model).
pub const DEFAULT_CHANNELS: usize = 32;
/// `--batch` when not given, for this suite.
pub const DEFAULT_BATCH: usize = 16;
/// The sampler timed, with η 0 (deterministic DDIM, as `gen::sample`'s default).
pub const SAMPLER: Sampler = Sampler::Ddim;
const ETA: f64 = 0.0;

/// The flags of the diffusion suite.
#[derive(Clone, Debug)]
pub struct DiffusionBench {
    pub channels: usize,
    pub batch: usize,
    pub size: usize,
    pub warmup_steps: usize,
    pub steps: usize,
    /// DDIM steps of the timed sampling (`gen::sample`'s default is 50).
    pub sample_steps: usize,
    /// CPU threads of our side and of the peer.
    pub threads: usize,
    pub device_name: String,
}

/// One measurement, with the same keys as the peer's lines.
#[derive(Debug, Serialize)]
pub struct DiffusionLine {
    pub bench: &'static str,
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    pub device: String,
    pub channels: usize,
    pub params: usize,
    pub batch: usize,
    pub size: usize,
    pub threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampler: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<f64>,
    pub images_per_s: f64,
    pub seconds: f64,
    pub iterations: usize,
}

/// The names of the two measurements (the `bench` key of their lines, ours and the peer's).
pub const TRAIN_STEP: &str = "diffusion_train_step";
pub const SAMPLE: &str = "diffusion_sample";

impl DiffusionBench {
    /// The generator's options at this bench's channels (everything else is `gen::diffusion`'s
    /// default: the paper's UNet, lr, EMA decay, T).
    fn generator(&self) -> DiffusionConfig {
        DiffusionConfig {
            channels: self.channels,
            batch: self.batch,
            ..DiffusionConfig::default()
        }
    }

    /// The UNet of the flags.
    fn unet(&self) -> Result<UNetConfig> {
        let unet = self.generator().unet([self.size, self.size, 3]);
        // A size the standard UNet cannot take is a `--size` problem here, not a data one.
        if let Err(Error::Config { key, .. }) = &unet
            && (key == "data" || key == "attention_at")
        {
            let g = self.generator();
            let sizes: Vec<String> = (0..g.channel_mult.len())
                .flat_map(|i| g.attention_at.iter().map(move |a| (a << i).to_string()))
                .collect();
            return Err(Error::config(
                "size",
                format!(
                    "must be one of {} for the standard UNet (it halves the images {} times \
                     and has self-attention at {:?}), got {}",
                    sizes.join(", "),
                    g.channel_mult.len() - 1,
                    g.attention_at,
                    self.size
                ),
            ));
        }
        unet
    }

    /// Checks the flags before anything is measured: a bad value is one clear error naming it.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::config(
                "steps",
                "must be at least 1 (the timed training steps)",
            ));
        }
        if self.batch == 0 {
            return Err(Error::config("batch", "must be at least 1"));
        }
        if self.threads == 0 {
            return Err(Error::config("threads", "must be at least 1"));
        }
        let t = self.generator().timesteps;
        if !(1..=t).contains(&self.sample_steps) {
            return Err(Error::config(
                "sample-steps",
                format!(
                    "must be between 1 and the generator's timesteps ({t}), got {}",
                    self.sample_steps
                ),
            ));
        }
        self.unet().map(|_| ())
    }

    fn line(
        &self,
        bench: &'static str,
        params: usize,
        images: usize,
        seconds: f64,
        iterations: usize,
    ) -> DiffusionLine {
        DiffusionLine {
            bench,
            implementation: "adainf",
            device: self.device_name.clone(),
            channels: self.channels,
            params,
            batch: self.batch,
            size: self.size,
            threads: self.threads,
            sampler: None,
            sample_steps: None,
            eta: None,
            images_per_s: images as f64 / seconds,
            seconds,
            iterations,
        }
    }

    /// Both measurements on `device`, in a pool of `threads` CPU threads: the training step
    /// (after which the EMA weights are what sampling uses, as in a real run), then sampling.
    /// `emit` gets each line as soon as it is measured.
    pub fn run(&self, device: &Device, mut emit: impl FnMut(DiffusionLine) + Send) -> Result<()> {
        self.check()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| Error::config("threads", format!("cannot start the threads: {e}")))?;
        pool.install(|| {
            let (line, ema, schedule) = self.train_step(device)?;
            emit(line);
            emit(self.sample(&ema, &schedule, device)?);
            Ok(())
        })
    }

    /// Training images/s; returns the EMA weights and the schedule for sampling.
    fn train_step(&self, device: &Device) -> Result<(DiffusionLine, UNet, Schedule)> {
        let g = self.generator();
        let unet = self.unet()?;
        let schedule = Schedule::linear(g.timesteps)?;
        let train_device = device.clone().autodiff();
        // As `gen::diffusion` builds its model.
        let model = crate::model::init_seeded(g.seed, true, &train_device, |d| {
            unet.init(d).expect("checked by `check`")
        });
        let params = model.num_params();
        let mut trainer = Trainer::new(
            model,
            schedule,
            TrainSettings {
                lr: g.lr,
                ema: g.ema,
            },
        );
        let mut rng = Rng::new(g.seed);
        let dims = [self.batch, 3, self.size, self.size];
        let x0 = floats(
            (0..dims.iter().product())
                .map(|_| rng.range(-1.0, 1.0) as f32)
                .collect(),
            dims,
            &train_device,
        );
        let mut run = |steps: usize| {
            let mut last = None;
            for _ in 0..steps {
                last = Some(trainer.step(x0.clone(), &mut rng));
            }
            // One read at the end waits for the queued work.
            last.map(read_floats);
        };
        run(self.warmup_steps);
        let t = Instant::now();
        run(self.steps);
        let seconds = t.elapsed().as_secs_f64();
        let line = self.line(
            TRAIN_STEP,
            params,
            self.steps * self.batch,
            seconds,
            self.steps,
        );
        let schedule = trainer.schedule().clone();
        Ok((line, trainer.ema, schedule))
    }

    /// Sampling images/s: `batch` images, `sample_steps` DDIM steps.
    fn sample(&self, ema: &UNet, schedule: &Schedule, device: &Device) -> Result<DiffusionLine> {
        let draw = |steps: usize, seed: u64| -> Result<()> {
            let shape = [3, self.size, self.size];
            let parts = sample(
                ema,
                schedule,
                shape,
                self.batch,
                steps,
                SAMPLER,
                ETA,
                seed,
                self.batch,
                device,
                |_| {},
                || false,
            )?;
            // Reading the images back waits for the queued work.
            parts.into_iter().for_each(|p| drop(read_floats(p)));
            Ok(())
        };
        draw(1, 1)?;
        let t = Instant::now();
        draw(self.sample_steps, 2)?;
        let seconds = t.elapsed().as_secs_f64();
        Ok(DiffusionLine {
            sampler: Some(SAMPLER.into()),
            sample_steps: Some(self.sample_steps),
            eta: Some(ETA),
            ..self.line(SAMPLE, ema.num_params(), self.batch, seconds, 1)
        })
    }
}
