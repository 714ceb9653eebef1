//! The `gen` module (a Gaussian-mixture generator, the DDPM generator, the generator gap) and
//! the `Generator` and `DiffusionGenerator` handles.

use super::*;

/// A fitted generator as a script handle.
#[derive(Clone)]
pub struct GeneratorHandle {
    gmm: Rc<Gmm>,
    /// The images it was fitted on: its gap is measured against them.
    real: Dataset,
    config: GmmConfig,
}

impl GeneratorHandle {
    /// `n` samples, with the recipe (fit and sample) when the fitted set has one.
    fn sample(&self, n: usize, seed: u64, device: &burn::tensor::Device) -> Res<Dataset> {
        let recipe = self.real.recipe().map(|real| Recipe::GmmSample {
            real: Box::new(real.clone()),
            config: self.config.clone(),
            n,
            seed,
        });
        Ok(recipe::attach(
            core(self.gmm.sample(n, seed, device))?,
            recipe,
        ))
    }
}

/// A trained DDPM generator (`gen::diffusion`) as a script handle.
#[derive(Clone)]
pub struct DiffusionHandle {
    run: Rc<DiffusionRun>,
    device: burn::tensor::Device,
}

/// The options of `gen::diffusion` as the core's config: list options must hold whole numbers;
/// `device` and `precision` are not part of the run's identity.
fn diffusion_config(opts: &Map) -> Res<DiffusionConfig> {
    const FN: &str = "gen::diffusion";
    options::check(FN, opts, DIFFUSION)?;
    let mut json = options::to_json(opts, DIFFUSION);
    if let serde_json::Value::Object(obj) = &mut json {
        obj.remove("device");
        obj.remove("precision");
        for key in ["channel_mult", "attention_at"] {
            if let Some(serde_json::Value::Array(values)) = obj.get_mut(key) {
                for v in values.iter_mut() {
                    let x = v.as_f64().unwrap_or(-1.0);
                    if x < 0.0 || x.fract() != 0.0 {
                        return fail(format!(
                            "{FN}: invalid option `{key}`: expected whole numbers, got {x}"
                        ));
                    }
                    *v = serde_json::Value::from(x as u64);
                }
            }
        }
    }
    serde_json::from_value(json).or_else(|e| fail(format!("bad options for {FN}: {e}")))
}

/// `Generator`: `info()` with its gap against the images it was fitted on.
pub(super) fn register_type(engine: &mut Engine, state: &Rc<HostState>) {
    engine.register_type_with_name::<DiffusionHandle>("DiffusionGenerator");
    engine.register_get("id", |g: &mut DiffusionHandle| g.run.result.id.clone());
    engine.register_get("dir", |g: &mut DiffusionHandle| {
        g.run.dir.display().to_string()
    });
    engine.register_get("cached", |g: &mut DiffusionHandle| g.run.cached);
    engine.register_get("metrics", |g: &mut DiffusionHandle| -> Array {
        g.run
            .metrics
            .iter()
            .map(|m| {
                let mut row = Map::new();
                row.insert("step".into(), (m.step as i64).into());
                row.insert("loss".into(), m.loss.into());
                row.insert("images_per_s".into(), m.images_per_s.into());
                row.into()
            })
            .collect()
    });
    engine.register_fn("info", |g: &mut DiffusionHandle| -> Map {
        let r = &g.run.result;
        let mut m = Map::new();
        m.insert("id".into(), r.id.clone().into());
        m.insert("steps".into(), (r.steps as i64).into());
        m.insert("final_loss".into(), r.final_loss.into());
        m.insert("images_per_s".into(), r.images_per_s.into());
        m.insert("train_seconds".into(), r.train_seconds.into());
        m.insert(
            "timesteps".into(),
            (g.run.schedule.timesteps() as i64).into(),
        );
        m.insert(
            "parameters".into(),
            (burn::module::Module::num_params(&g.run.model) as i64).into(),
        );
        m
    });
    engine.register_fn("to_string", |g: &mut DiffusionHandle| {
        format!("DiffusionGenerator({})", g.run.result.id)
    });
    engine.register_type_with_name::<GeneratorHandle>("Generator");
    let st = state.clone();
    engine.register_fn("info", move |g: &mut GeneratorHandle| -> Res<Map> {
        let mut m = Map::new();
        // Its samples against the images it was fitted on.
        let cfg = GapConfig::default();
        let samples = core(g.gmm.sample(cfg.max_images, cfg.seed, &st.device))?;
        if theory::gap::measurable(&g.real, &samples, &cfg) {
            let gap = core(generator_gap(&g.real, &samples, &cfg, &st.device))?;
            m.insert("gap".into(), gap_map(&gap).into());
        }
        m.insert("components".into(), (g.gmm.weights.len() as i64).into());
        m.insert("pca_dims".into(), (g.gmm.pca.dims as i64).into());
        m.insert("explained_variance".into(), g.gmm.pca.explained.into());
        m.insert("log_likelihood".into(), g.gmm.log_likelihood.into());
        Ok(m)
    });
    engine.register_fn("to_string", |g: &mut GeneratorHandle| {
        format!("Generator(gmm, {} components)", g.gmm.weights.len())
    });
}

pub(super) fn gen_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "gen";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "gmm", move |real: Dataset,
                              opts: Map|
          -> Res<GeneratorHandle> {
        options::check("gen::gmm", &opts, GMM)?;
        let d = GmmConfig::default();
        let cfg = GmmConfig {
            components: int_or(&opts, "components", d.components as i64) as usize,
            pca_dims: int_or(&opts, "pca_dims", d.pca_dims as i64) as usize,
            seed: int_or(&opts, "seed", 0) as u64,
            iterations: int_or(&opts, "iterations", d.iterations as i64) as usize,
            max_images: int_or(&opts, "max_images", d.max_images as i64) as usize,
        };
        Ok(GeneratorHandle {
            gmm: Rc::new(core(fit_gmm(&real, &cfg, &st.device))?),
            real,
            config: cfg,
        })
    });
    let st = state.clone();
    register!(m, "diffusion", move |real: Dataset,
                                    opts: Map|
          -> Res<DiffusionHandle> {
        let cfg = diffusion_config(&opts)?;
        if let Some(p) = opts.get("precision") {
            let p = p.to_string();
            if p != "f32" {
                return fail(format!(
                    "gen::diffusion: invalid option `precision`: \"{p}\" is not supported yet; only \"f32\""
                ));
            }
        }
        let device = match opts.get("device") {
            Some(name) => core(DeviceSpec::parse(&name.to_string()).and_then(|d| d.open()))?,
            None => st.device.clone(),
        };
        let mut progress = (st.progress)();
        let run = core(diffusion::run::train(
            &real,
            &cfg,
            diffusion::run::DiffusionContext {
                device: &device,
                runs_dir: &st.runs_dir,
                progress: progress.as_mut(),
                cancel: &st.cancel,
                retry_failed: st.retry_failed,
            },
        ))?;
        Ok(DiffusionHandle {
            run: Rc::new(run),
            device,
        })
    });
    let st = state.clone();
    let sample_diffusion = move |g: DiffusionHandle, n: i64, opts: Map| -> Res<Dataset> {
        let cfg: diffusion::run::SampleConfig = parsed("gen::sample", &opts, SAMPLE)?;
        if n <= 0 {
            return fail(format!("gen::sample: n must be at least 1, got {n}"));
        }
        let mut progress = (st.progress)();
        let out = core(g.run.sample_run(
            n as usize,
            &cfg,
            diffusion::run::SampleContext {
                device: &g.device,
                runs_dir: &st.runs_dir,
                progress: progress.as_mut(),
                retry_failed: st.retry_failed,
            },
        ))?;
        Ok(out.dataset)
    };
    let sample_diffusion_default = sample_diffusion.clone();
    register!(m, "sample", move |g: DiffusionHandle,
                                 n: i64,
                                 opts: Map|
          -> Res<Dataset> {
        sample_diffusion(g, n, opts)
    });
    register!(m, "sample", move |g: DiffusionHandle,
                                 n: i64|
          -> Res<Dataset> {
        sample_diffusion_default(g, n, Map::new())
    });
    let st = state.clone();
    let sample = move |g: GeneratorHandle, n: i64, opts: Map| -> Res<Dataset> {
        options::check("gen::sample", &opts, SAMPLE)?;
        if let Some(k) = opts.keys().find(|k| k.as_str() != "seed") {
            return fail(format!(
                "gen::sample: `{k}` applies to diffusion generators only; a Gaussian-mixture generator takes only `seed`"
            ));
        }
        g.sample(
            n.max(0) as usize,
            int_or(&opts, "seed", 0) as u64,
            &st.device,
        )
    };
    let sample_default = sample.clone();
    register!(m, "sample", move |g: GeneratorHandle,
                                 n: i64,
                                 opts: Map|
          -> Res<Dataset> {
        sample(g, n, opts)
    });
    register!(m, "sample", move |g: GeneratorHandle,
                                 n: i64|
          -> Res<Dataset> {
        sample_default(g, n, Map::new())
    });
    let st = state.clone();
    register!(m, "gap", move |real: Dataset,
                              generated: Dataset,
                              opts: Map|
          -> Res<Map> {
        let cfg: GapConfig = parsed("gen::gap", &opts, GAP)?;
        Ok(gap_map(&core(generator_gap(
            &real, &generated, &cfg, &st.device,
        ))?))
    });
    let st = state.clone();
    register!(m, "frechet", move |a: Dataset,
                                  b: Dataset,
                                  opts: Map|
          -> Res<f64> {
        options::check("gen::frechet", &opts, FRECHET)?;
        core(frechet(
            &a,
            &b,
            int_or(&opts, "dims", 32) as usize,
            int_or(&opts, "max_images", 10_000) as usize,
            &st.device,
        ))
    });
    m
}

pub const GMM: &[Opt] = &[
    opt("components", Kind::Int, "mixture components (default 20)"),
    opt("pca_dims", Kind::Int, "PCA dimensions (default 32)"),
    opt("seed", Kind::Int, "random seed (default 0)"),
    opt("iterations", Kind::Int, "EM iterations (default 40)"),
    opt(
        "max_images",
        Kind::Int,
        "fit on at most this many images (default 60000)",
    ),
];

pub const SAMPLE: &[Opt] = &[
    opt("seed", Kind::Int, "random seed (default 0)"),
    opt(
        "steps",
        Kind::Int,
        "diffusion: reverse steps, at most the generator's timesteps (default 50)",
    ),
    opt(
        "sampler",
        Kind::Str,
        "diffusion: \"ddim\" (default) or \"ddpm\"",
    ),
    opt(
        "eta",
        Kind::Float,
        "diffusion: DDIM's η in [0, 1] (default 0: deterministic)",
    ),
    opt(
        "batch",
        Kind::Int,
        "diffusion: images per batch (default 64)",
    ),
];

pub const DIFFUSION: &[Opt] = &[
    opt("steps", Kind::Int, "optimisation steps (default 1000)"),
    opt("batch", Kind::Int, "images per step (default 64)"),
    opt("lr", Kind::Float, "AdamW learning rate (default 2e-4)"),
    opt(
        "channels",
        Kind::Int,
        "UNet channels of the first level: 128 = the paper's 35.7M-parameter model (default 32)",
    ),
    opt(
        "channel_mult",
        Kind::Floats,
        "channel multiplier per level, whole numbers (default [1, 2, 2, 2])",
    ),
    opt(
        "attention_at",
        Kind::Floats,
        "resolutions with self-attention (default [16])",
    ),
    opt(
        "dropout",
        Kind::Float,
        "dropout in the residual blocks (default 0.1)",
    ),
    opt(
        "timesteps",
        Kind::Int,
        "diffusion steps T of the linear β schedule (default 1000)",
    ),
    opt(
        "ema",
        Kind::Float,
        "EMA decay of the sampling weights (default 0.9999)",
    ),
    opt("flip", Kind::Bool, "random horizontal flips (default true)"),
    opt("seed", Kind::Int, "random seed (default 0)"),
    options::CHECKPOINT_EVERY,
    options::DEVICE,
    opt("precision", Kind::Str, "\"f32\" only for now (default)"),
];

pub const GAP: &[Opt] = &[
    opt(
        "max_images",
        Kind::Int,
        "images of each set compared (default 1000)",
    ),
    opt(
        "k",
        Kind::Int,
        "neighbours that vote real or generated, odd (default 5)",
    ),
    opt(
        "dims",
        Kind::Int,
        "PCA dimensions of the Fréchet distance (default 32)",
    ),
    opt(
        "seed",
        Kind::Int,
        "random seed of the subsample (default 0)",
    ),
];

pub const FRECHET: &[Opt] = &[
    opt(
        "dims",
        Kind::Int,
        "PCA dimensions of the comparison space (default 32)",
    ),
    opt(
        "max_images",
        Kind::Int,
        "use at most this many images of each set (default 10000)",
    ),
];

/// The catalogue entries of `gen` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "gen::gmm",
            "gen::gmm(real, opts) -> Generator",
            "fits PCA + Gaussian mixture (EM) on real images: a fast, weak generator",
            GMM,
        ),
        entry(
            "gen::diffusion",
            "gen::diffusion(real, opts) -> DiffusionGenerator",
            "trains a DDPM (the UNet of Ho et al. 2020, ε-prediction, linear β, AdamW, EMA weights) on real images as a cached run (id, dir, cached, metrics, info())",
            DIFFUSION,
        ),
        entry(
            "gen::sample",
            "gen::sample(generator, n, opts) -> Dataset",
            "n generated images (labels -1); steps, sampler, eta and batch apply to diffusion generators, whose samples are stored in a run folder (samples.npz) and loaded from it when the same generator, n and options come again",
            SAMPLE,
        ),
        entry(
            "gen::frechet",
            "gen::frechet(reference, other, opts) -> float",
            "Fréchet distance in the reference's PCA space (lower = closer)",
            FRECHET,
        ),
        entry(
            "gen::gap",
            "gen::gap(real, generated, opts) -> map",
            "the generator gap without labels: #{ tv, accuracy, frechet, images }; tv = max(0, 2·accuracy − 1) from a leave-one-out kNN real-vs-generated classifier on pixels (a lower bound on the total-variation distance), frechet as gen::frechet",
            GAP,
        ),
        entry(
            "Generator.info",
            "generator.info() -> map",
            "components, pca_dims, explained variance, mean log-likelihood, and `gap` (gen::gap of 1000 samples against the images it was fitted on)",
            &[],
        ),
    ]
}

#[cfg(test)]
mod tests {
    //! `gen::diffusion` and `gen::sample` on a diffusion generator, from a script.

    use std::path::{Path, PathBuf};

    fn run(dir: &Path, source: &str) -> Result<(), String> {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("diffusion.rhai");
        std::fs::write(&path, source).unwrap();
        crate::tests::host(dir)
            .run_file(&path)
            .map_err(|e| e.message)
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("adainf-gen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    const TINY: &str =
        "steps: 2, batch: 2, channels: 4, channel_mult: [1, 2], attention_at: [], timesteps: 20";

    #[test]
    fn train_cache_sample_save_and_inflate() {
        let dir = temp("ok");
        let script = format!(
            r#"
let real = data::synthetic(#{{ n: 8, size: 16, seed: 0 }});
let g = gen::diffusion(real, #{{ {TINY} }});
if g.cached {{ throw "trained before?"; }}
if g.metrics.len() == 0 || g.metrics[0].step < 1 {{ throw "no metrics"; }}
let again = gen::diffusion(real, #{{ {TINY} }});
if !again.cached || again.id != g.id {{ throw "not cached"; }}
let s = gen::sample(g, 3, #{{ steps: 5, sampler: "ddpm", batch: 2, seed: 1 }});
if s.len() != 3 {{ throw "wrong count"; }}
data::save_npz(s, "samples.npz");
let back = data::npz("samples.npz");
if back.len() != 3 {{ throw "npz"; }}
let mix = data::inflate(real, s, #{{ dup: 1 }});
if mix.len() != 11 {{ throw `inflate: ${{mix.len()}}`; }}
"#
        );
        run(&dir, &script).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_options_are_clear_errors_with_nothing_written() {
        let cases = [
            ("stpes: 3", "`stpes`"),
            ("timesteps: 0", "timesteps"),
            ("channel_mult: [1, 2, 2, 2, 2, 2]", "multiple of 32"),
            ("channel_mult: [1.5]", "whole numbers"),
            ("precision: \"bf16\"", "precision"),
        ];
        for (i, (opts, want)) in cases.iter().enumerate() {
            let dir = temp(&format!("bad{i}"));
            let script = format!(
                "let real = data::synthetic(#{{ n: 4, size: 16 }});\nlet g = gen::diffusion(real, #{{ {opts} }});\n"
            );
            let e = run(&dir, &script).unwrap_err();
            assert!(
                e.contains(want) && e.contains("diffusion.rhai:2:"),
                "{opts}: {e}"
            );
            assert!(!dir.join("runs").exists(), "{opts}: nothing written");
            let _ = std::fs::remove_dir_all(&dir);
        }
        // Sampling with more steps than the generator's timesteps, or an unknown sampler.
        for (opts, want) in [
            ("steps: 21", "timesteps (20)"),
            ("sampler: \"euler\"", "euler"),
        ] {
            let dir = temp("badsample");
            let script = format!(
                "let real = data::synthetic(#{{ n: 4, size: 16 }});\nlet g = gen::diffusion(real, #{{ {TINY} }});\nlet s = gen::sample(g, 2, #{{ {opts} }});\n"
            );
            let e = run(&dir, &script).unwrap_err();
            assert!(
                e.contains(want) && e.contains("diffusion.rhai:3:"),
                "{opts}: {e}"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
