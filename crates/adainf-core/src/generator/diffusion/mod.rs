//! A DDPM generator (Ho et al. 2020): the linear β schedule and the quantities derived from it
//! (`Schedule`, in f64 on the host), the forward process `q_sample`, the ε-prediction loss, one
//! reverse step of the DDPM and DDIM samplers, a training step (AdamW, EMA weights) and
//! seeded sampling. The denoiser is `unet::UNet`. Images are scaled to [-1, 1]; all noise is
//! drawn on the host from `Rng`, so a seed gives the same samples on every device.

pub mod run;
pub mod unet;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::floats;

pub use crate::data::recipe::Sampler;
pub use unet::{UNet, UNetConfig, timestep_embedding};

/// The linear β schedule of DDPM and the quantities the samplers use, in f64.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// β_t, linear from 1e-4 to 0.02.
    pub betas: Vec<f64>,
    /// ᾱ_t = ∏_{s ≤ t} (1 − β_s).
    pub alpha_bars: Vec<f64>,
    /// Variance of q(x_{t−1} | x_t, x_0): β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), with ᾱ_{−1} = 1.
    pub posterior_variance: Vec<f64>,
}

/// Most diffusion steps T of a schedule (its tables are O(T); the paper uses 1000).
pub const MAX_TIMESTEPS: usize = 100_000;

impl Schedule {
    /// β from 1e-4 to 0.02 over `timesteps` steps (the paper's schedule at 1000).
    pub fn linear(timesteps: usize) -> Result<Self> {
        if !(1..=MAX_TIMESTEPS).contains(&timesteps) {
            return Err(Error::config(
                "timesteps",
                format!(
                    "is {timesteps} but must be between 1 and {MAX_TIMESTEPS} (the paper uses 1000)"
                ),
            ));
        }
        let (lo, hi) = (1e-4, 0.02);
        let betas: Vec<f64> = (0..timesteps)
            .map(|i| {
                if timesteps == 1 {
                    lo
                } else {
                    lo + (hi - lo) * i as f64 / (timesteps - 1) as f64
                }
            })
            .collect();
        let mut alpha_bars = Vec::with_capacity(timesteps);
        let mut prod = 1.0;
        for b in &betas {
            prod *= 1.0 - b;
            alpha_bars.push(prod);
        }
        let posterior_variance = (0..timesteps)
            .map(|t| {
                let prev = if t == 0 { 1.0 } else { alpha_bars[t - 1] };
                betas[t] * (1.0 - prev) / (1.0 - alpha_bars[t])
            })
            .collect();
        Ok(Schedule {
            betas,
            alpha_bars,
            posterior_variance,
        })
    }

    /// Number of diffusion steps T.
    pub fn timesteps(&self) -> usize {
        self.betas.len()
    }

    /// ᾱ at `t`, with ᾱ_{−1} = 1 (`t` = None).
    pub fn alpha_bar(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alpha_bars[t])
    }

    /// The timesteps a sampler with `steps` steps visits, in decreasing order: T·i/steps for
    /// i = steps−1 … 0 (every step when `steps` = T).
    pub fn sampling_steps(&self, steps: usize) -> Result<Vec<usize>> {
        let t = self.timesteps();
        if steps == 0 || steps > t {
            return Err(Error::config(
                "steps",
                format!("must be between 1 and the generator's timesteps ({t}), got {steps}"),
            ));
        }
        Ok((0..steps).rev().map(|i| i * t / steps).collect())
    }
}

/// x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, with one ᾱ per image (`alpha_bars`, length B).
pub fn q_sample(x0: Tensor<4>, noise: Tensor<4>, alpha_bars: &[f64]) -> Tensor<4> {
    let dims = x0.dims();
    let device = x0.device();
    let col = |f: &dyn Fn(f64) -> f64| {
        floats(
            alpha_bars.iter().map(|&a| f(a) as f32).collect(),
            [dims[0], 1, 1, 1],
            &device,
        )
        .expand(dims)
    };
    x0 * col(&|a| a.sqrt()) + noise * col(&|a| (1.0 - a).sqrt())
}

/// One DDPM step from x_t to x_{t_prev} given the predicted noise, on the (possibly respaced)
/// schedule ᾱ_t → ᾱ_prev: β' = 1 − ᾱ_t/ᾱ_prev, x̂_0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t clipped to
/// [-1, 1], mean = β'√ᾱ_prev/(1−ᾱ_t) x̂_0 + (1−ᾱ_prev)√(1−β')/(1−ᾱ_t) x_t, variance
/// β'(1−ᾱ_prev)/(1−ᾱ_t); `noise` is added unless ᾱ_prev = 1 (the last step).
pub fn ddpm_step(
    x_t: Tensor<4>,
    eps: Tensor<4>,
    alpha_bar: f64,
    alpha_bar_prev: f64,
    noise: Tensor<4>,
) -> Tensor<4> {
    let beta = 1.0 - alpha_bar / alpha_bar_prev;
    let x0 = ((x_t.clone() - eps * (1.0 - alpha_bar).sqrt()) / alpha_bar.sqrt()).clamp(-1.0, 1.0);
    let c0 = beta * alpha_bar_prev.sqrt() / (1.0 - alpha_bar);
    let ct = (1.0 - alpha_bar_prev) * (1.0 - beta).sqrt() / (1.0 - alpha_bar);
    let mean = x0 * c0 + x_t * ct;
    let var = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar);
    if alpha_bar_prev >= 1.0 {
        mean
    } else {
        mean + noise * var.sqrt()
    }
}

/// One DDIM step: x̂_0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t (not clipped), σ = η √((1−ᾱ_prev)/(1−ᾱ_t))
/// √(1 − ᾱ_t/ᾱ_prev), x_prev = √ᾱ_prev x̂_0 + √(1−ᾱ_prev−σ²) ε + σ noise.
pub fn ddim_step(
    x_t: Tensor<4>,
    eps: Tensor<4>,
    alpha_bar: f64,
    alpha_bar_prev: f64,
    eta: f64,
    noise: Tensor<4>,
) -> Tensor<4> {
    let x0 = (x_t - eps.clone() * (1.0 - alpha_bar).sqrt()) / alpha_bar.sqrt();
    let sigma = eta
        * ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar)).sqrt()
        * (1.0 - alpha_bar / alpha_bar_prev).max(0.0).sqrt();
    let dir = (1.0 - alpha_bar_prev - sigma * sigma).max(0.0).sqrt();
    let out = x0 * alpha_bar_prev.sqrt() + eps * dir;
    if sigma > 0.0 {
        out + noise * sigma
    } else {
        out
    }
}

/// `n` standard normal values from `rng`, as a tensor of `shape`.
pub fn host_normal(rng: &mut Rng, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n = shape.iter().product();
    floats((0..n).map(|_| rng.normal() as f32).collect(), shape, device)
}

/// Training hyper-parameters of one optimisation step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// AdamW learning rate (2e-4 in the paper).
    pub lr: f64,
    /// EMA decay of the weights (0.9999 in the paper).
    pub ema: f64,
}

/// A UNet in training: its weights, their EMA, the optimiser and the schedule.
pub struct Trainer {
    /// The trained weights (on an autodiff device).
    pub model: UNet,
    /// Exponential moving average of the weights (used for sampling).
    pub ema: UNet,
    optimizer: ModuleOptimizer,
    schedule: Schedule,
    settings: TrainSettings,
}

/// All float parameters of a module, in visiting order.
fn params_of<M: Module>(m: &M) -> Vec<Tensor<1>> {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v = param.val();
            let n = v.shape().num_elements();
            self.0.push(v.reshape([n]));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// ema ← decay·ema + (1 − decay)·model, parameter by parameter.
fn ema_update(ema: UNet, model: &UNet, decay: f64) -> UNet {
    struct Blend {
        src: std::vec::IntoIter<Tensor<1>>,
        decay: f64,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let src = self.src.next().expect("same architecture");
            let decay = self.decay;
            param.map(|value| {
                let dims = value.dims();
                value * decay + src.reshape(dims) * (1.0 - decay)
            })
        }
    }
    let src: Vec<Tensor<1>> = params_of(model)
        .into_iter()
        .map(|t| t.detach().inner())
        .collect();
    ema.map(&mut Blend {
        src: src.into_iter(),
        decay,
    })
}

impl Trainer {
    /// A trainer for `model` (built on an autodiff device).
    pub fn new(model: UNet, schedule: Schedule, settings: TrainSettings) -> Self {
        let ema = model.clone().valid();
        let optimizer: ModuleOptimizer = AdamWConfig::new()
            .with_weight_decay(0.0)
            .with_epsilon(1e-8)
            .init();
        Trainer {
            model,
            ema,
            optimizer,
            schedule,
            settings,
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The ε-prediction loss ‖ε − ε_θ(x_t, t)‖² (mean over all values) of `model` on images
    /// `x0` [B, C, H, W] in [-1, 1], with timesteps and noise drawn from `rng`.
    pub fn loss(model: &UNet, schedule: &Schedule, x0: Tensor<4>, rng: &mut Rng) -> Tensor<1> {
        let dims = x0.dims();
        let device = x0.device();
        let ts: Vec<usize> = (0..dims[0])
            .map(|_| rng.below(schedule.timesteps()))
            .collect();
        let noise = host_normal(rng, dims, &device);
        let abs: Vec<f64> = ts.iter().map(|&t| schedule.alpha_bars[t]).collect();
        let x_t = q_sample(x0, noise.clone(), &abs);
        let t = floats(ts.iter().map(|&t| t as f32).collect(), [dims[0]], &device);
        let pred = model.forward(x_t, t);
        (pred - noise).square().mean()
    }

    /// One AdamW step on images `x0` in [-1, 1], then the EMA update; returns the loss (on the
    /// device, not read back). The forward pass runs with the device's generator seeded from
    /// `rng` (`model::with_seed`), so its dropout masks, like its timesteps and noise, are a
    /// function of `rng`'s state alone.
    pub fn step(&mut self, x0: Tensor<4>, rng: &mut Rng) -> Tensor<1> {
        let device = x0.device();
        let dropout_seed = rng.next_u64();
        let loss = crate::model::with_seed(&device, dropout_seed, || {
            Self::loss(&self.model, &self.schedule, x0, rng)
        });
        let grads = loss.backward();
        let grads = GradientsParams::from_grads(grads, &self.model);
        self.model = self
            .optimizer
            .step(self.settings.lr, self.model.clone(), grads);
        self.ema = ema_update(self.ema.clone(), &self.model, self.settings.ema);
        loss.detach()
    }
}

/// Draws `n` images [n, C, H, W] in [-1, 1] from `model` with `steps` steps of `sampler`
/// (`eta` for DDIM), noise from `Rng::new(seed)`, `batch` images at a time. `progress` is told
/// the number of images finished; once `cancelled()` says so, it stops before the next reverse
/// step with `Error::Cancelled` (Ctrl-C during a long sampling).
#[allow(clippy::too_many_arguments)]
pub fn sample(
    model: &UNet,
    schedule: &Schedule,
    shape: [usize; 3],
    n: usize,
    steps: usize,
    sampler: Sampler,
    eta: f64,
    seed: u64,
    batch: usize,
    device: &Device,
    mut progress: impl FnMut(usize),
    cancelled: impl Fn() -> bool,
) -> Result<Vec<Tensor<4>>> {
    let ts = schedule.sampling_steps(steps)?;
    if batch == 0 {
        return Err(Error::config("batch", "must be at least 1"));
    }
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut done = 0;
    while done < n {
        let b = batch.min(n - done);
        let dims = [b, shape[0], shape[1], shape[2]];
        let mut x = host_normal(&mut rng, dims, device);
        for (i, &t) in ts.iter().enumerate() {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            let prev = ts.get(i + 1).copied();
            let tt = floats(vec![t as f32; b], [b], device);
            let eps = model.forward(x.clone(), tt);
            let noise = host_normal(&mut rng, dims, device);
            let (ab, ab_prev) = (schedule.alpha_bar(Some(t)), schedule.alpha_bar(prev));
            x = match sampler {
                Sampler::Ddpm => ddpm_step(x, eps, ab, ab_prev, noise),
                Sampler::Ddim => ddim_step(x, eps, ab, ab_prev, eta, noise),
            };
        }
        out.push(x.clamp(-1.0, 1.0));
        done += b;
        progress(done);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
