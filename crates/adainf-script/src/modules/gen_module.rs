//! The `gen` module (a Gaussian-mixture generator, the DDPM generator, the generator gap) and
//! the `Generator` and `DiffusionGenerator` handles. DDPM generators train through the host's
//! executor as pretraining runs do (`gen::diffusion` is a batch of one, `gen::diffusion_all` a
//! batch): in this process, in `--jobs` workers or as a Slurm array.

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

/// The options of `gen::diffusion` that are not part of the run's identity (the rest is the
/// core's `DiffusionConfig`).
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default)]
struct DiffusionRunOptions {
    #[serde(flatten)]
    control: RunControl,
    /// "f32" only for now.
    precision: crate::train::config::Precision,
}

/// One generator a script asked for: its options and where it trains.
struct PreparedGenerator {
    config: DiffusionConfig,
    /// The device it trains on in this process, and its samples are drawn on.
    device: burn::tensor::Device,
    /// Its `device` option as written (sent to workers).
    device_name: Option<String>,
}

/// The options of `function` (`gen::diffusion`, `gen::diffusion_all`): the core's config and
/// the run options, checked, with the device opened.
fn prepare_diffusion(function: &str, st: &HostState, opts: &Map) -> Res<PreparedGenerator> {
    let (mut config, run) = diffusion_options(function, opts).map_err(runtime_error)?;
    config.checkpoint_every = run.control.checkpoint_every;
    let device = match &run.control.device {
        Some(name) => core(DeviceSpec::parse(name).and_then(|d| d.open()))?,
        None => st.device.clone(),
    };
    Ok(PreparedGenerator {
        config,
        device,
        device_name: run.control.device,
    })
}

/// The options of `gen::diffusion` and `gen::diffusion_all`, parsed: the core's config and the
/// run options (its precision f32 for now).
fn diffusion_options(
    function: &str,
    opts: &Map,
) -> Result<(DiffusionConfig, DiffusionRunOptions), String> {
    let (config, run) =
        options::parse_pair::<DiffusionConfig, DiffusionRunOptions>(function, opts)?;
    if run.precision != crate::train::config::Precision::F32 {
        return Err(format!(
            "{function}: invalid option `precision`: \"{}\" is not supported yet; only \"f32\"",
            run.precision.name()
        ));
    }
    Ok((config, run))
}

/// The options of `gen::diffusion` and `gen::diffusion_all`: the core's config, then the run
/// options; `adainf check` parses literal values and checks the config's ranges.
fn diffusion_typed() -> options::Typed {
    options::typed_pair::<DiffusionConfig, DiffusionRunOptions>().with_check(
        |function, opts, unknown| {
            let (config, _) = diffusion_options(function, opts)?;
            literal_outcome(opts, unknown, config.check_options())
        },
    )
}

/// Trains (or loads) the generators on `real` in order, through the host's executor (as
/// `train::pretrain_all` does): in this process one after another, or in local workers, or as
/// a Slurm array; each exactly once across every process sharing the runs folder.
fn diffusion_batch(
    st: &HostState,
    real: &Dataset,
    gens: Vec<PreparedGenerator>,
) -> Res<Vec<DiffusionHandle>> {
    // Every generator's options are checked against the data before any is trained.
    for g in &gens {
        core(g.config.check(real))?;
    }
    if !through_executor(st, gens.len()) {
        let mut out = Vec::with_capacity(gens.len());
        for g in gens {
            let mut progress = (st.progress)();
            let run = core(diffusion::run::train(
                real,
                &g.config,
                diffusion::run::DiffusionContext {
                    device: &g.device,
                    runs_dir: &st.runs_dir,
                    progress: progress.as_mut(),
                    cancel: &st.cancel,
                    retry_failed: st.retry_failed,
                },
            ))?;
            out.push(DiffusionHandle {
                run: Rc::new(run),
                device: g.device,
            });
        }
        return Ok(out);
    }
    // A set without a recipe is refused before any request is written.
    let requests = gens
        .iter()
        .map(|g| {
            core(DiffusionRequest::new(
                real,
                &g.config,
                g.device_name.clone(),
            ))
            .map(|r| Request::Diffusion(Box::new(r)))
        })
        .collect::<Res<Vec<_>>>()?;
    let finished = execute_batch(st, &requests, |i, _| {
        diffusion::run::load(real, &gens[i].config, &st.runs_dir, &gens[i].device)
    })?;
    Ok(gens
        .into_iter()
        .zip(finished)
        .map(|(g, (run, trained_now))| DiffusionHandle {
            run: Rc::new(DiffusionRun {
                cached: !trained_now,
                ..run
            }),
            device: g.device,
        })
        .collect())
}

/// `Generator`: `info()` with its gap against the images it was fitted on.
pub(super) fn register_type(engine: &mut Engine, state: &Rc<HostState>) {
    engine.register_type_with_name::<DiffusionHandle>("DiffusionGenerator");
    method!(engine.register_get("id", |g: &mut DiffusionHandle| g.run.result.id.clone()));
    method!(engine.register_get("dir", |g: &mut DiffusionHandle| {
        g.run.dir.display().to_string()
    }));
    method!(engine.register_get("cached", |g: &mut DiffusionHandle| g.run.cached));
    method!(
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
        })
    );
    method!(
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
        })
    );
    method!(engine.register_fn("to_string", |g: &mut DiffusionHandle| {
        format!("DiffusionGenerator({})", g.run.result.id)
    }));
    engine.register_type_with_name::<GeneratorHandle>("Generator");
    let st = state.clone();
    method!(
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
        })
    );
    method!(engine.register_fn("to_string", |g: &mut GeneratorHandle| {
        format!("Generator(gmm, {} components)", g.gmm.weights.len())
    }));
}

pub(super) fn gen_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "gen";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "gmm", move |real: Dataset,
                              opts: Map|
          -> Res<GeneratorHandle> {
        let cfg: GmmConfig = parsed("gen::gmm", &opts, &[])?;
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
        let g = prepare_diffusion("gen::diffusion", &st, &opts)?;
        Ok(diffusion_batch(&st, &real, vec![g])?.remove(0))
    });
    let st = state.clone();
    register!(m, "diffusion_all", move |real: Dataset,
                                        configs: Array|
          -> Res<Array> {
        let gens = configs
            .iter()
            .enumerate()
            .map(|(i, c)| match c.clone().try_cast::<Map>() {
                Some(opts) => prepare_diffusion("gen::diffusion_all", &st, &opts),
                None => fail(format!(
                    "gen::diffusion_all takes an array of option maps; item {i} is {}",
                    options::type_name(c)
                )),
            })
            .collect::<Res<Vec<_>>>()?;
        Ok(diffusion_batch(&st, &real, gens)?
            .into_iter()
            .map(Dynamic::from)
            .collect())
    });
    let st = state.clone();
    let sample_diffusion = move |g: DiffusionHandle, n: i64, opts: Map| -> Res<Dataset> {
        let cfg: diffusion::run::SampleConfig = parsed("gen::sample", &opts, &[])?;
        if n <= 0 {
            return fail(format!("gen::sample: n must be at least 1, got {n}"));
        }
        let mut progress = (st.progress)();
        let out = core(g.run.sample_run(
            n as usize,
            &cfg,
            diffusion::run::DiffusionContext {
                device: &g.device,
                runs_dir: &st.runs_dir,
                progress: progress.as_mut(),
                cancel: &st.cancel,
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
        let cfg: diffusion::run::SampleConfig = parsed("gen::sample", &opts, &[])?;
        if let Some(k) = opts.keys().find(|k| k.as_str() != "seed") {
            return fail(format!(
                "gen::sample: `{k}` applies to diffusion generators only; a Gaussian-mixture generator takes only `seed`"
            ));
        }
        g.sample(n.max(0) as usize, cfg.seed, &st.device)
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
        let cfg: GapConfig = parsed("gen::gap", &opts, &[])?;
        Ok(gap_map(&core(generator_gap(
            &real, &generated, &cfg, &st.device,
        ))?))
    });
    let st = state.clone();
    register!(m, "frechet", move |a: Dataset,
                                  b: Dataset,
                                  opts: Map|
          -> Res<f64> {
        let cfg: FrechetOptions = parsed("gen::frechet", &opts, &[])?;
        core(frechet(&a, &b, cfg.dims, cfg.max_images, &st.device))
    });
    m
}

/// The options of `gen::frechet`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct FrechetOptions {
    /// PCA dimensions of the comparison space.
    #[option(default = 32)]
    dims: usize,
    /// Use at most this many images of each set.
    #[option(default = 10_000)]
    max_images: usize,
}

/// The catalogue entries of `gen` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "gen::gmm",
            "gen::gmm(real, opts) -> Generator",
            "fits PCA + Gaussian mixture (EM) on real images: a fast, weak generator",
            &[],
        )
        .typed(typed::<GmmConfig>()),
        entry(
            "gen::diffusion",
            "gen::diffusion(real, opts) -> DiffusionGenerator",
            "trains a DDPM (the UNet of Ho et al. 2020, ε-prediction, linear β, AdamW, EMA weights) on real images as a cached run (id, dir, cached, metrics, info()); a batch of one for the executor, like train::pretrain (with `--executor slurm` it trains on the cluster)",
            &[],
        )
        .typed(diffusion_typed()),
        entry(
            "gen::diffusion_all",
            "gen::diffusion_all(real, [opts, ...]) -> array",
            "trains (or loads) several DDPM generators on the same real images and returns them in order, as train::pretrain_all does runs: one after another by default, in parallel with `adainf run --jobs N` (worker processes) or `--executor slurm` (one job array); each is trained exactly once across every process sharing the runs folder, with the weights it gets in this process",
            &[],
        )
        .typed(diffusion_typed()),
        entry(
            "gen::sample",
            "gen::sample(generator, n, opts) -> Dataset",
            "n generated images (labels -1); steps, sampler, eta and batch apply to diffusion generators, whose samples are stored in a run folder (samples.npz) and loaded from it when the same generator, n and options come again; runs trained on them go to `--jobs` workers and Slurm tasks, which open them from that folder",
            &[],
        )
        .typed(typed::<diffusion::run::SampleConfig>()),
        entry(
            "gen::frechet",
            "gen::frechet(reference, other, opts) -> float",
            "Fréchet distance in the reference's PCA space (lower = closer)",
            &[],
        )
        .typed(typed::<FrechetOptions>()),
        entry(
            "gen::gap",
            "gen::gap(real, generated, opts) -> map",
            "the generator gap without labels: #{ tv, accuracy, frechet, images }; tv = max(0, 2·accuracy − 1) from a leave-one-out kNN real-vs-generated classifier on pixels (a lower bound on the total-variation distance), frechet as gen::frechet",
            &[],
        )
        .typed(typed::<GapConfig>()),
        entry(
            "Generator.info",
            "generator.info() -> map",
            "components, pca_dims, explained variance, mean log-likelihood, and `gap` (gen::gap with its defaults: as many samples as its `max_images`, against the images it was fitted on)",
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

    /// Runs `source` in a fresh folder `name`: it must fail with an error that names `want`
    /// and the script's line `line`; with `nothing_written`, no runs folder may exist after.
    fn refused(name: &str, source: &str, line: usize, want: &str, nothing_written: bool) {
        let dir = temp(name);
        let e = run(&dir, source).unwrap_err();
        assert!(
            e.contains(want) && e.contains(&format!("diffusion.rhai:{line}:")),
            "{source}: {e}"
        );
        if nothing_written {
            assert!(!dir.join("runs").exists(), "{source}: nothing written");
        }
        let _ = std::fs::remove_dir_all(&dir);
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

    /// `gen::diffusion_all` in this process returns the generators in order, each as
    /// `gen::diffusion` gives it; a bad option in any item stops the call before the first
    /// is trained, and a non-map item is named.
    #[test]
    fn diffusion_all_trains_in_order_and_checks_every_item_first() {
        let dir = temp("all");
        let script = format!(
            r#"
let real = data::synthetic(#{{ n: 8, size: 16, seed: 0 }});
let gs = gen::diffusion_all(real, [#{{ {TINY}, seed: 1 }}, #{{ {TINY}, seed: 2 }}]);
if gs.len() != 2 {{ throw "two"; }}
let one = gen::diffusion(real, #{{ {TINY}, seed: 2 }});
if !one.cached || one.id != gs[1].id || gs[0].id == gs[1].id {{ throw "order"; }}
"#
        );
        run(&dir, &script).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        for (items, want) in [
            (format!("#{{ {TINY} }}, #{{ {TINY}, ema: 1.5 }}"), "`ema`"),
            (format!("#{{ {TINY} }}, 3"), "item 1 is"),
        ] {
            let script = format!(
                "let real = data::synthetic(#{{ n: 4, size: 16 }});\nlet g = gen::diffusion_all(real, [{items}]);\n"
            );
            refused("all-bad", &script, 2, want, true);
        }
    }

    #[test]
    fn bad_options_are_clear_errors_with_nothing_written() {
        let cases = [
            ("stpes: 3", "`stpes`"),
            ("timesteps: 0", "timesteps"),
            ("channel_mult: [1, 2, 2, 2, 2, 2]", "multiple of 32"),
            ("channel_mult: [1.5]", "whole numbers"),
            ("channel_mult: [-1]", "whole numbers"),
            ("precision: \"bf16\"", "precision"),
        ];
        for (i, (opts, want)) in cases.iter().enumerate() {
            let script = format!(
                "let real = data::synthetic(#{{ n: 4, size: 16 }});\nlet g = gen::diffusion(real, #{{ {opts} }});\n"
            );
            refused(&format!("bad{i}"), &script, 2, want, true);
        }
        // Sampling with more steps than the generator's timesteps, or an unknown sampler.
        for (opts, want) in [
            ("steps: 21", "timesteps (20)"),
            ("sampler: \"euler\"", "euler"),
        ] {
            let script = format!(
                "let real = data::synthetic(#{{ n: 4, size: 16 }});\nlet g = gen::diffusion(real, #{{ {TINY} }});\nlet s = gen::sample(g, 2, #{{ {opts} }});\n"
            );
            refused("badsample", &script, 3, want, false);
        }
    }
}
