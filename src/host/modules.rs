//! Registration of the script modules and handle types. Each function checks its options
//! against the catalogue (`api`), converts them into the core's typed configs and calls the
//! core; errors come back as runtime errors that Rhai places at the call site.

use std::rc::Rc;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext,
    Position,
};

use super::HostState;
use super::api;
use super::options::{self, float_or, int_or, str_or};
use crate::augment::preview::write_preview;
use crate::augment::{AugSpec, ViewPair, preset};
use crate::data::Dataset;
use crate::data::batches::Placement;
use crate::data::readers::{self, cifar::Variant, npz::NpzOptions};
use crate::data::recipe::{self, Recipe};
use crate::data::synthetic::{GeneratorSpec, SyntheticSpec};
use crate::device::DeviceSpec;
use crate::eval::linear::LinearProbeConfig;
use crate::eval::runs::{self, Encoder, KnnConfig};
use crate::generator::{Gmm, GmmConfig, fit_gmm, frechet};
use crate::method::Method;
use crate::report::{self, Cell, Row};
use crate::runs::{Executor, execute, local, request::RunRequest, slurm};
use crate::theory::{
    self,
    estimate::{EstimateConfig, Space},
    gap::{Gap, GapConfig, generator_gap},
    toy::{ToyConfig, toy},
};
use crate::train::{self, FinishedRun, PretrainConfig, PretrainRequest, TrainContext};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(msg: impl std::fmt::Display) -> Res<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(
        msg.to_string().into(),
        Position::NONE,
    )))
}

fn core<T>(r: crate::Result<T>) -> Res<T> {
    match r {
        Ok(v) => Ok(v),
        Err(crate::Error::Cancelled) => Err(Box::new(EvalAltResult::ErrorTerminated(
            "cancelled".into(),
            Position::NONE,
        ))),
        Err(e) => fail(e),
    }
}

/// A finished run as a script handle, with the script's tags.
#[derive(Clone)]
pub struct RunHandle {
    pub run: Rc<FinishedRun>,
    pub tags: Map,
}

/// Gives an error raised inside a host function the position of the script's call.
fn placed<T>(ctx: &NativeCallContext, r: Res<T>) -> Res<T> {
    r.map_err(|mut e| {
        if e.position().is_none() {
            e.set_position(ctx.call_position());
        }
        e
    })
}

/// Registers a host function into a module; its errors carry the call's position.
macro_rules! register {
    ($module:expr, $name:literal, $(move)? || -> $ret:ty $body:block) => {
        FuncRegistration::new($name)
            .with_volatility(true)
            .with_comments(api::doc_comments(MODULE, $name))
            .with_params_info(api::params_info(MODULE, $name, &[]))
            .set_into_module(&mut $module, move |ctx: NativeCallContext| -> $ret {
                // The body runs in a closure called on the spot, so it can use `?` and `return`.
                #[allow(clippy::redundant_closure_call)]
                let result = (|| -> $ret { $body })();
                placed(&ctx, result)
            });
    };
    ($module:expr, $name:literal, $(move)? |$($arg:ident : $ty:ty),*| -> $ret:ty $body:block) => {
        FuncRegistration::new($name)
            .with_volatility(true)
            .with_comments(api::doc_comments(MODULE, $name))
            .with_params_info(api::params_info(MODULE, $name, &[$(concat!(stringify!($arg), ": ", stringify!($ty))),*]))
            .set_into_module(&mut $module, move |ctx: NativeCallContext, $($arg: $ty),*| -> $ret {
                #[allow(clippy::redundant_closure_call)]
                let result = (|| -> $ret { $body })();
                placed(&ctx, result)
            });
    };
}

pub(super) fn register_all(engine: &mut Engine, state: &Rc<HostState>) {
    register_types(engine, state);
    for name in api::MODULES {
        let module = match name {
            "data" => data_module(state),
            "gen" => gen_module(state),
            "aug" => aug_module(state),
            "train" => train_module(state),
            "eval" => eval_module(state),
            "theory" => theory_module(state),
            "report" => report_module(state),
            other => unreachable!("api::MODULES names `{other}`, which has no registration"),
        };
        engine.register_static_module(name, module.into());
    }
}

fn info_map(d: &Dataset) -> Map {
    let mut m = Map::new();
    let [h, w, c] = d.shape();
    let (mean, std) = d.channel_stats(2000);
    m.insert("n".into(), (d.len() as i64).into());
    m.insert(
        "shape".into(),
        Dynamic::from_array(vec![
            (h as i64).into(),
            (w as i64).into(),
            (c as i64).into(),
        ]),
    );
    m.insert("source".into(), d.description().into());
    m.insert("classes".into(), (d.classes() as i64).into());
    m.insert("labelled".into(), (d.labeled_count() as i64).into());
    m.insert(
        "mean".into(),
        Dynamic::from_array(mean.into_iter().map(Dynamic::from).collect()),
    );
    m.insert(
        "std".into(),
        Dynamic::from_array(std.into_iter().map(Dynamic::from).collect()),
    );
    m.insert("fingerprint".into(), d.fingerprint().into());
    for (k, v) in d.attributes() {
        m.insert(
            k.as_str().into(),
            v.parse::<i64>()
                .map_or_else(|_| Dynamic::from(v.clone()), Dynamic::from),
        );
    }
    m
}

fn gap_map(gap: &Gap) -> Map {
    let mut m = Map::new();
    m.insert("tv".into(), gap.tv.into());
    m.insert("accuracy".into(), gap.accuracy.into());
    m.insert("frechet".into(), gap.frechet.into());
    m.insert("images".into(), (gap.images as i64).into());
    m
}

fn cell_to_dynamic(c: &Cell) -> Dynamic {
    match c {
        Cell::Text(s) => s.clone().into(),
        Cell::Number(v) if v.fract() == 0.0 && v.abs() < 9e15 => (*v as i64).into(),
        Cell::Number(v) => (*v).into(),
        Cell::Empty => Dynamic::UNIT,
    }
}

fn run_row_map(h: &RunHandle) -> Map {
    let mut m: Map = report::run_row(&h.run)
        .iter()
        .map(|(k, v)| (k.as_str().into(), cell_to_dynamic(v)))
        .collect();
    for (k, v) in &h.tags {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn register_types(engine: &mut Engine, state: &Rc<HostState>) {
    engine.register_type_with_name::<Dataset>("Dataset");
    engine.register_fn("len", |d: &mut Dataset| d.len() as i64);
    engine.register_fn("classes", |d: &mut Dataset| d.classes() as i64);
    let st = state.clone();
    engine.register_fn("info", move |d: &mut Dataset| -> Res<Map> {
        let mut m = info_map(d);
        // An inflated set reports how far its generated part is from its real part.
        let cfg = GapConfig::default();
        if let Some((real, generated)) = d
            .inflated_from()
            .filter(|(r, g)| theory::gap::measurable(r, g, &cfg))
        {
            let gap = core(generator_gap(real, generated, &cfg, &st.device))?;
            m.insert("generator_gap".into(), gap_map(&gap).into());
        }
        Ok(m)
    });
    engine.register_fn("to_string", |d: &mut Dataset| {
        format!("Dataset({} images: {})", d.len(), d.description())
    });
    engine.register_fn("to_debug", |d: &mut Dataset| {
        format!("Dataset({} images: {})", d.len(), d.description())
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

    engine.register_type_with_name::<ViewPair>("Aug");
    engine.register_fn("strength", |a: &mut ViewPair, s: f64| -> Res<ViewPair> {
        strength(a, s)
    });
    engine.register_fn("strength", |a: &mut ViewPair, s: i64| -> Res<ViewPair> {
        strength(a, s as f64)
    });
    engine.register_get("name", |a: &mut ViewPair| a.name.clone());
    engine.register_fn("to_string", |a: &mut ViewPair| format!("Aug({})", a.name));
    engine.register_fn("to_debug", |a: &mut ViewPair| {
        format!("Aug({}: {:?})", a.name, a.views)
    });

    engine.register_type_with_name::<RunHandle>("Run");
    engine.register_get("accuracy", |r: &mut RunHandle| {
        r.run.result.accuracy.map_or(Dynamic::UNIT, Dynamic::from)
    });
    engine.register_get("id", |r: &mut RunHandle| r.run.result.id.clone());
    engine.register_get("dir", |r: &mut RunHandle| r.run.dir.display().to_string());
    engine.register_get("cached", |r: &mut RunHandle| r.run.cached);
    engine.register_get("tags", |r: &mut RunHandle| r.tags.clone());
    engine.register_get("metrics", |r: &mut RunHandle| -> Array {
        r.run
            .metrics
            .iter()
            .map(|m| {
                let mut row = Map::new();
                row.insert("step".into(), (m.step as i64).into());
                row.insert("loss".into(), m.loss.into());
                row.insert("lr".into(), m.lr.into());
                row.insert(
                    "probe_acc".into(),
                    m.probe_acc.map_or(Dynamic::UNIT, Dynamic::from),
                );
                row.insert("images_per_s".into(), m.images_per_s.into());
                row.insert("data_wait".into(), m.data_wait.into());
                Dynamic::from_map(row)
            })
            .collect()
    });
    engine.register_fn("row", |r: &mut RunHandle| run_row_map(r));
    engine.register_fn("to_string", |r: &mut RunHandle| {
        format!("Run({})", r.run.result.id)
    });
    engine.register_fn("to_debug", |r: &mut RunHandle| {
        format!("Run({})", r.run.result.id)
    });
}

fn strength(a: &ViewPair, s: f64) -> Res<ViewPair> {
    let views = [
        core(a.views[0].with_strength(s))?,
        core(a.views[1].with_strength(s))?,
    ];
    Ok(ViewPair {
        name: format!("{}×{s}", a.name),
        views,
    })
}

fn data_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "data";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "cifar10", move |dir: &str,
                                  split: &str|
          -> Res<Dataset> {
        core(cifar_recipe(&st, dir, Variant::Cifar10, split).build(&st.device))
    });
    let st = state.clone();
    register!(m, "cifar100", move |dir: &str,
                                   split: &str,
                                   opts: Map|
          -> Res<Dataset> {
        options::check("data::cifar100", &opts, api::CIFAR)?;
        let coarse = opts
            .get("coarse")
            .and_then(|v| v.as_bool().ok())
            .unwrap_or(false);
        core(cifar_recipe(&st, dir, Variant::Cifar100 { coarse }, split).build(&st.device))
    });
    let st = state.clone();
    register!(m, "cifar100", move |dir: &str,
                                   split: &str|
          -> Res<Dataset> {
        core(cifar_recipe(&st, dir, Variant::Cifar100 { coarse: false }, split).build(&st.device))
    });
    let st = state.clone();
    let npz = move |path: &str, opts: Map| -> Res<Dataset> {
        options::check("data::npz", &opts, api::NPZ)?;
        let labels = str_or(&opts, "labels", "keep");
        if labels != "keep" && labels != "ignore" {
            return fail(format!(
                "option `labels` of data::npz must be \"keep\" or \"ignore\", got \"{labels}\""
            ));
        }
        let o = NpzOptions {
            image_key: str_or(&opts, "image_key", "image"),
            label_key: str_or(&opts, "label_key", "label"),
            ignore_labels: labels == "ignore",
            bgr: opts
                .get("bgr")
                .and_then(|v| v.as_bool().ok())
                .unwrap_or(false),
            classes: opts
                .get("classes")
                .and_then(|v| v.as_int().ok())
                .map(|c| c as usize),
        };
        let d = core(
            Recipe::Npz {
                path: st.resolve(path),
                options: o,
            }
            .build(&st.device),
        )?;
        if let Some(reference) = opts
            .get("reference")
            .and_then(|r| r.clone().try_cast::<Dataset>())
            && let Some(warning) = readers::npz::channel_order_warning(&d, &reference)
        {
            eprintln!("warning: {warning}");
        }
        Ok(d)
    };
    let npz2 = npz.clone();
    register!(m, "npz", move |path: &str, opts: Map| -> Res<Dataset> {
        npz(path, opts)
    });
    register!(m, "npz", move |path: &str| -> Res<Dataset> {
        npz2(path, Map::new())
    });
    let st = state.clone();
    register!(m, "idx", move |images: &str,
                              labels: &str|
          -> Res<Dataset> {
        core(
            Recipe::Idx {
                images: st.resolve(images),
                labels: st.resolve(labels),
            }
            .build(&st.device),
        )
    });
    let st = state.clone();
    register!(m, "folder", move |path: &str, opts: Map| -> Res<Dataset> {
        options::check("data::folder", &opts, api::FOLDER)?;
        core(
            Recipe::Folder {
                path: st.resolve(path),
                size: int_or(&opts, "size", 32) as usize,
            }
            .build(&st.device),
        )
    });
    let st = state.clone();
    register!(m, "folder", move |path: &str| -> Res<Dataset> {
        core(
            Recipe::Folder {
                path: st.resolve(path),
                size: 32,
            }
            .build(&st.device),
        )
    });
    let st = state.clone();
    register!(m, "save_npz", move |d: Dataset, path: &str| -> Res<()> {
        core(readers::npz::save_npz(&d, &st.resolve(path)))
    });
    let st = state.clone();
    register!(m, "synthetic", move |opts: Map| -> Res<Dataset> {
        options::check("data::synthetic", &opts, api::SYNTHETIC)?;
        let spec = SyntheticSpec {
            n: int_or(&opts, "n", 5000) as usize,
            seed: int_or(&opts, "seed", 0) as u64,
            size: int_or(&opts, "size", 32) as usize,
            split: str_or(&opts, "split", "train"),
        };
        st.memo(format!("{spec:?}"), || {
            core(Recipe::Synthetic(spec.clone()).build(&st.device))
        })
    });
    let st = state.clone();
    register!(m, "synthetic_generator", move |opts: Map| -> Res<Dataset> {
        options::check("data::synthetic_generator", &opts, api::GENERATOR)?;
        let spec = GeneratorSpec {
            n: int_or(&opts, "n", 50_000) as usize,
            seed: int_or(&opts, "seed", 0) as u64,
            size: int_or(&opts, "size", 32) as usize,
            fidelity: float_or(&opts, "fidelity", 0.7),
        };
        st.memo(format!("{spec:?}"), || {
            core(Recipe::SyntheticGenerator(spec.clone()).build(&st.device))
        })
    });
    let st = state.clone();
    register!(m, "inflate", move |real: Dataset,
                                  generated: Dataset,
                                  opts: Map|
          -> Res<Dataset> {
        options::check("data::inflate", &opts, api::INFLATE)?;
        match opts.get("dup") {
            Some(d) if d.is_string() => {
                core(theory::adapt::inflate_auto(&real, &generated, &st.device))
            }
            _ => core(recipe::inflate(
                &real,
                &generated,
                int_or(&opts, "dup", 1) as usize,
            )),
        }
    });
    register!(m, "inflate", |real: Dataset,
                             generated: Dataset|
     -> Res<Dataset> {
        core(recipe::inflate(&real, &generated, 1))
    });
    register!(m, "subset", |d: Dataset, opts: Map| -> Res<Dataset> {
        options::check("data::subset", &opts, api::SUBSET)?;
        let seed = int_or(&opts, "seed", 0) as u64;
        match (opts.get("per_class"), opts.get("n")) {
            (Some(_), Some(_)) => fail("data::subset takes either `per_class` or `n`, not both"),
            (Some(p), None) => core(recipe::subset_per_class(
                &d,
                p.as_int().unwrap_or(0) as usize,
                seed,
            )),
            (None, Some(n)) => core(recipe::subset_random(
                &d,
                n.as_int().unwrap_or(0) as usize,
                seed,
            )),
            (None, None) => {
                fail("data::subset needs `per_class` (e.g. #{ per_class: 500 }) or `n`")
            }
        }
    });
    m
}

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

fn cifar_recipe(st: &HostState, dir: &str, variant: Variant, split: &str) -> Recipe {
    Recipe::Cifar {
        dir: st.resolve(dir),
        variant,
        split: split.to_string(),
    }
}

fn gen_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "gen";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "gmm", move |real: Dataset,
                              opts: Map|
          -> Res<GeneratorHandle> {
        options::check("gen::gmm", &opts, api::GMM)?;
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
    register!(m, "sample", move |g: GeneratorHandle,
                                 n: i64,
                                 opts: Map|
          -> Res<Dataset> {
        options::check("gen::sample", &opts, api::SAMPLE)?;
        g.sample(
            n.max(0) as usize,
            int_or(&opts, "seed", 0) as u64,
            &st.device,
        )
    });
    let st = state.clone();
    register!(m, "sample", move |g: GeneratorHandle,
                                 n: i64|
          -> Res<Dataset> {
        g.sample(n.max(0) as usize, 0, &st.device)
    });
    let st = state.clone();
    register!(m, "gap", move |real: Dataset,
                              generated: Dataset,
                              opts: Map|
          -> Res<Map> {
        let cfg: GapConfig = parsed("gen::gap", &opts, api::GAP)?;
        Ok(gap_map(&core(generator_gap(
            &real, &generated, &cfg, &st.device,
        ))?))
    });
    let st = state.clone();
    register!(m, "frechet", move |a: Dataset,
                                  b: Dataset,
                                  opts: Map|
          -> Res<f64> {
        options::check("gen::frechet", &opts, api::FRECHET)?;
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

fn aug_spec_from(opts: &Map) -> Res<AugSpec> {
    let mut json = options::to_json(opts, api::AUG);
    options::check("aug::simclr", opts, api::AUG)?;
    // Start from the `symmetric` preset and overwrite the given keys.
    let mut base = serde_json::to_value(AugSpec::default()).unwrap_or_default();
    if let (Some(b), Some(j)) = (base.as_object_mut(), json.as_object_mut()) {
        for (k, v) in j.iter() {
            b.insert(k.clone(), v.clone());
        }
    }
    let spec: AugSpec = match serde_json::from_value(base) {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "bad options for aug::simclr: {e} (jitter has 4 values, mean and std 3)"
            ));
        }
    };
    core(spec.validate())?;
    Ok(spec)
}

fn aug_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "aug";
    let mut m = Module::new();
    register!(m, "preset", |name: &str| -> Res<ViewPair> {
        core(preset(name))
    });
    register!(m, "simclr", |opts: Map| -> Res<ViewPair> {
        Ok(ViewPair::symmetric("custom", aug_spec_from(&opts)?))
    });
    let st = state.clone();
    register!(m, "auto", move |d: Dataset, opts: Map| -> Res<ViewPair> {
        options::check("aug::auto", &opts, api::AUG_AUTO)?;
        let name = opts
            .get("preset")
            .and_then(|p| p.clone().into_string().ok())
            .unwrap_or_else(|| "symmetric".into());
        auto_strength(&d, &name, &st.device)
    });
    let st = state.clone();
    register!(m, "auto", move |d: Dataset| -> Res<ViewPair> {
        auto_strength(&d, "symmetric", &st.device)
    });
    register!(m, "pair", |a: ViewPair, b: ViewPair| -> Res<ViewPair> {
        if !a.is_symmetric() || !b.is_symmetric() {
            return fail("aug::pair takes two symmetric augmentations (one per view)");
        }
        Ok(ViewPair {
            name: format!("{}|{}", a.name, b.name),
            views: [a.views[0].clone(), b.views[0].clone()],
        })
    });
    let st = state.clone();
    register!(m, "preview", move |d: Dataset,
                                  a: ViewPair,
                                  path: &str,
                                  opts: Map|
          -> Res<()> {
        options::check("aug::preview", &opts, api::PREVIEW)?;
        let target = st.resolve(path);
        core(write_preview(
            &d,
            &a,
            &target,
            int_or(&opts, "n", 8) as usize,
            int_or(&opts, "seed", 0) as u64,
            &st.device,
        ))
    });
    let st = state.clone();
    register!(m, "preview", move |d: Dataset,
                                  a: ViewPair,
                                  path: &str|
          -> Res<()> {
        core(write_preview(&d, &a, &st.resolve(path), 8, 0, &st.device))
    });
    m
}

/// `aug::auto`: the preset `name` at the strength the adaptive rule gives `data`.
fn auto_strength(data: &Dataset, name: &str, device: &burn::tensor::Device) -> Res<ViewPair> {
    let choice = core(theory::adapt::strength_for(data, device))?;
    let scaled = strength(&core(preset(name))?, choice.strength)?;
    Ok(ViewPair {
        name: format!("{} (auto)", scaled.name),
        ..scaled
    })
}

fn aug_option(v: Option<&Dynamic>) -> Res<ViewPair> {
    match v {
        None => core(preset("symmetric")),
        Some(v) if v.is::<ViewPair>() => Ok(v.clone().cast::<ViewPair>()),
        Some(v) if v.is_string() => core(preset(&v.clone().into_string().unwrap_or_default())),
        Some(v) => {
            let views: Vec<ViewPair> = v
                .clone()
                .into_array()
                .unwrap_or_default()
                .into_iter()
                .map(|x| x.cast::<ViewPair>())
                .collect();
            Ok(ViewPair {
                name: format!("{}|{}", views[0].name, views[1].name),
                views: [views[0].views[0].clone(), views[1].views[1].clone()],
            })
        }
    }
}

/// The official defaults of a method as a script map (method-specific keys included).
fn defaults_map(method: &str) -> Res<Map> {
    let cfg = PretrainConfig::for_method(core(Method::parse(method))?);
    let json = serde_json::to_value(cfg).unwrap_or_default();
    Ok(rhai::serde::to_dynamic(json)
        .ok()
        .and_then(|d| d.try_cast::<Map>())
        .unwrap_or_default())
}

/// The run config: the method's official defaults, the script's options over them, and the
/// defaults that depend on the run fitted to it (`PretrainConfig::fit_defaults`).
fn resolved_config(opts: &Map, data_len: usize) -> Res<PretrainConfig> {
    let method = core(Method::parse(&str_or(opts, "method", "simclr")))?;
    let mut merged = serde_json::to_value(PretrainConfig::for_method(method)).unwrap_or_default();
    if let (Some(base), serde_json::Value::Object(given)) = (
        merged.as_object_mut(),
        options::to_json(opts, api::PRETRAIN),
    ) {
        for (k, v) in given {
            if !["checkpoint_every", "device", "placement"].contains(&k.as_str()) {
                base.insert(k, v);
            }
        }
    }
    let mut config: PretrainConfig = serde_json::from_value(merged).map_err(|e| {
        Box::new(EvalAltResult::ErrorRuntime(
            format!("bad options for train::pretrain: {e}").into(),
            Position::NONE,
        ))
    })?;
    config.fit_defaults(|key| opts.contains_key(key), data_len);
    Ok(config)
}

/// One run a script asked for, with everything resolved.
struct Prepared {
    config: PretrainConfig,
    data: Dataset,
    probe: Option<Dataset>,
    aug: ViewPair,
    tags: Map,
    device: burn::tensor::Device,
    placement: Placement,
    checkpoint_every: usize,
}

fn prepare(function: &str, st: &HostState, opts: &Map) -> Res<Prepared> {
    options::check(function, opts, api::PRETRAIN)?;
    let Some(data) = opts.get("data").map(|d| d.clone().cast::<Dataset>()) else {
        return fail(format!(
            "{function} needs `data` (e.g. #{{ data: data::synthetic(#{{ n: 5000 }}) }})"
        ));
    };
    let config = resolved_config(opts, data.len())?;
    let device = match opts.get("device") {
        Some(name) => core(DeviceSpec::parse(&name.to_string()).and_then(|d| d.open()))?,
        None => st.device.clone(),
    };
    let placement = match opts.get("placement") {
        Some(name) => core(Placement::parse(&name.to_string()))?,
        None => Placement::Auto,
    };
    Ok(Prepared {
        config,
        probe: opts.get("probe").map(|d| d.clone().cast::<Dataset>()),
        aug: aug_option(opts.get("aug"))?,
        tags: opts
            .get("tags")
            .and_then(|t| t.clone().try_cast::<Map>())
            .unwrap_or_default(),
        device,
        placement,
        checkpoint_every: int_or(opts, "checkpoint_every", 0) as usize,
        data,
    })
}

impl Prepared {
    fn request(&self) -> PretrainRequest<'_> {
        PretrainRequest {
            config: self.config.clone(),
            data: &self.data,
            aug: &self.aug,
            probe: self.probe.as_ref(),
            checkpoint_every: self.checkpoint_every,
        }
    }

    fn run_request(&self) -> Res<RunRequest> {
        let tags = self
            .tags
            .iter()
            .map(|(k, v)| {
                let value = if let Ok(i) = v.as_int() {
                    serde_json::json!(i)
                } else if let Ok(x) = v.as_float() {
                    serde_json::json!(x)
                } else if let Ok(b) = v.as_bool() {
                    serde_json::json!(b)
                } else if v.is_unit() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(v.to_string())
                };
                (k.to_string(), value)
            })
            .collect();
        core(RunRequest::new(&self.request(), self.placement, tags))
    }
}

/// Trains (or loads) the runs in order, through the host's executor: in this process one
/// after another, or in local workers, or as a Slurm array; each run exactly once across every
/// process sharing the runs folder.
fn pretrain_batch(st: &HostState, runs: Vec<Prepared>) -> Res<Vec<RunHandle>> {
    let handle = |p: &Prepared, run: FinishedRun| RunHandle {
        run: Rc::new(run),
        tags: p.tags.clone(),
    };
    let requests = match &st.executor {
        Executor::InProcess => None,
        // A single run gains nothing from a local worker.
        Executor::Local(_) if runs.len() == 1 => None,
        _ => Some(
            runs.iter()
                .map(Prepared::run_request)
                .collect::<Res<Vec<_>>>()?,
        ),
    };
    let Some(requests) = requests else {
        let mut out = Vec::with_capacity(runs.len());
        for p in &runs {
            let mut progress = (st.progress)();
            let run = core(execute::pretrain_claimed(
                p.request(),
                TrainContext {
                    device: &p.device,
                    placement: p.placement,
                    runs_dir: &st.runs_dir,
                    progress: progress.as_mut(),
                    cancel: &st.cancel,
                },
                None,
                st.retry_failed,
            ))?;
            out.push(handle(p, run));
        }
        return Ok(out);
    };
    let mut progress = (st.progress)();
    match &st.executor {
        Executor::Local(workers) => core(local::run_workers(
            &requests,
            &st.runs_dir,
            workers,
            progress.as_mut(),
            &st.cancel,
        ))?,
        Executor::Slurm {
            options,
            binary,
            device,
        } => core(slurm::run_array(
            &requests,
            &slurm::Submission {
                binary,
                runs_dir: &st.runs_dir,
                device,
                retry_failed: st.retry_failed,
                options,
                marker_timeout: slurm::MARKER_TIMEOUT,
            },
            progress.as_mut(),
            &st.cancel,
        ))?,
        Executor::InProcess => {}
    }
    let mut out = Vec::with_capacity(runs.len());
    let mut failures = Vec::new();
    for (p, r) in runs.iter().zip(&requests) {
        match execute::collect(&st.runs_dir, &r.id, &st.cancel) {
            Ok(run) => out.push(handle(p, run)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        return fail(format!(
            "{} of {} run(s) did not finish (the others are in the run cache):\n{}",
            failures.len(),
            runs.len(),
            failures.join("\n")
        ));
    }
    Ok(out)
}

fn train_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "train";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "pretrain", move |opts: Map| -> Res<RunHandle> {
        let prepared = prepare("train::pretrain", &st, &opts)?;
        Ok(pretrain_batch(&st, vec![prepared])?.remove(0))
    });
    let st = state.clone();
    register!(m, "pretrain_all", move |configs: Array| -> Res<Array> {
        let prepared = configs
            .iter()
            .enumerate()
            .map(|(i, c)| match c.clone().try_cast::<Map>() {
                Some(opts) => prepare("train::pretrain_all", &st, &opts),
                None => fail(format!(
                    "train::pretrain_all takes an array of option maps; item {i} is {}",
                    options::type_name(c)
                )),
            })
            .collect::<Res<Vec<_>>>()?;
        Ok(pretrain_batch(&st, prepared)?
            .into_iter()
            .map(Dynamic::from)
            .collect())
    });
    register!(m, "defaults", |method: &str| -> Res<Map> {
        defaults_map(method)
    });
    register!(m, "defaults", || -> Res<Map> { defaults_map("simclr") });
    register!(m, "options", || -> Res<Array> {
        Ok(api::PRETRAIN
            .iter()
            .map(|o| Dynamic::from(o.key.to_string()))
            .collect())
    });
    let st = state.clone();
    register!(m, "load", move |dir: &str| -> Res<RunHandle> {
        let path = st.resolve(dir);
        match core(train::run::load_finished(&path))? {
            Some(run) => Ok(RunHandle {
                run: Rc::new(run),
                tags: Map::new(),
            }),
            None => fail(format!(
                "{}: is not a finished run folder (no result.json); run its script to finish it",
                path.display()
            )),
        }
    });
    m
}

/// Evaluations of a run are cached in its folder (`evals/<key>.json`), keyed by the kind, the
/// datasets' fingerprints and the options, so a re-run script does not recompute them.
/// Options map → config struct (defaults on the struct), errors with the call's position.
fn parsed<T: for<'de> serde::Deserialize<'de>>(
    function: &str,
    opts: &Map,
    known: &[options::Opt],
) -> Res<T> {
    options::parse(function, opts, known)
        .map_err(|m| Box::new(EvalAltResult::ErrorRuntime(m.into(), Position::NONE)))
}

fn eval_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "eval";
    let mut m = Module::new();
    let knn = |st: &HostState,
               r: &RunHandle,
               train_set: &Dataset,
               test: &Dataset,
               opts: &Map,
               encoder| {
        let function = match encoder {
            Encoder::Trained => "eval::knn",
            Encoder::RandomInit => "eval::knn_random",
        };
        let cfg: KnnConfig = parsed(function, opts, api::KNN)?;
        core(runs::knn(
            &r.run, encoder, train_set, test, &cfg, &st.device,
        ))
    };
    let st = state.clone();
    register!(m, "knn", move |r: RunHandle,
                              train_set: Dataset,
                              test: Dataset,
                              opts: Map|
          -> Res<f64> {
        knn(&st, &r, &train_set, &test, &opts, Encoder::Trained)
    });
    let st = state.clone();
    register!(m, "knn", move |r: RunHandle,
                              train_set: Dataset,
                              test: Dataset|
          -> Res<f64> {
        knn(&st, &r, &train_set, &test, &Map::new(), Encoder::Trained)
    });
    let st = state.clone();
    register!(m, "knn_random", move |r: RunHandle,
                                     train_set: Dataset,
                                     test: Dataset,
                                     opts: Map|
          -> Res<f64> {
        knn(&st, &r, &train_set, &test, &opts, Encoder::RandomInit)
    });
    let st = state.clone();
    register!(m, "knn_pixels", move |train_set: Dataset,
                                     test: Dataset,
                                     opts: Map|
          -> Res<f64> {
        let cfg: KnnConfig = parsed("eval::knn_pixels", &opts, api::KNN)?;
        core(runs::knn_pixels(&train_set, &test, &cfg, &st.device))
    });
    let st = state.clone();
    register!(m, "linear", move |r: RunHandle,
                                 train_set: Dataset,
                                 test: Dataset,
                                 opts: Map|
          -> Res<f64> {
        let cfg: LinearProbeConfig = parsed("eval::linear", &opts, api::LINEAR)?;
        core(runs::linear(&r.run, &train_set, &test, &cfg, &st.device))
    });
    m
}

fn theory_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "theory";
    let mut m = Module::new();
    register!(m, "toy", |opts: Map| -> Res<Map> {
        let cfg: ToyConfig = parsed("theory::toy", &opts, api::TOY)?;
        let out = core(toy(&cfg))?;
        let mut map = Map::new();
        map.insert("n".into(), Dynamic::from_int(out.n as i64));
        map.insert("r".into(), Dynamic::from_float(out.r));
        map.insert("k".into(), Dynamic::from_int(out.k as i64));
        map.insert("alpha".into(), Dynamic::from_float(out.alpha));
        map.insert(
            "alpha_population".into(),
            Dynamic::from_float(out.alpha_population),
        );
        map.insert("lambda_k1".into(), Dynamic::from_float(out.lambda_k1));
        map.insert(
            "lambda".into(),
            Dynamic::from_array(out.lambda.iter().map(|&v| Dynamic::from_float(v)).collect()),
        );
        map.insert("bound".into(), Dynamic::from_float(out.bound));
        Ok(map)
    });
    let estimate = |data: &Dataset, aug: &ViewPair, opts: &Map, space: &Space| -> Res<Map> {
        let cfg: EstimateConfig = parsed("theory::estimate", opts, api::ESTIMATE)?;
        let out = core(theory::estimate::estimate_in(data, aug, &cfg, space))?;
        let floats =
            |v: &[f64]| Dynamic::from_array(v.iter().map(|&x| Dynamic::from_float(x)).collect());
        let mut map = Map::new();
        map.insert("k".into(), Dynamic::from_int(out.k as i64));
        map.insert("alpha".into(), Dynamic::from_float(out.alpha));
        map.insert("alpha_std".into(), Dynamic::from_float(out.alpha_std));
        map.insert("alpha_clean".into(), Dynamic::from_float(out.alpha_clean));
        map.insert("lambda_k1".into(), Dynamic::from_float(out.lambda_k1));
        map.insert(
            "lambda_k1_std".into(),
            Dynamic::from_float(out.lambda_k1_std),
        );
        // The spectrum of each resample, and whether every solve converged.
        map.insert(
            "lambda".into(),
            Dynamic::from_array(out.samples.iter().map(|s| floats(&s.lambda)).collect()),
        );
        map.insert(
            "converged".into(),
            Dynamic::from_bool(out.samples.iter().all(|s| s.converged)),
        );
        Ok(map)
    };
    register!(m, "estimate", move |data: Dataset,
                                   aug: ViewPair,
                                   opts: Map|
          -> Res<Map> {
        estimate(&data, &aug, &opts, &Space::Pixels)
    });
    register!(m, "estimate", move |data: Dataset,
                                   aug: ViewPair|
          -> Res<Map> {
        estimate(&data, &aug, &Map::new(), &Space::Pixels)
    });
    // In a trained run's encoder space.
    let st = state.clone();
    register!(m, "estimate", move |run: RunHandle,
                                   data: Dataset,
                                   aug: ViewPair,
                                   opts: Map|
          -> Res<Map> {
        let backbone = core(train::load_backbone(&run.run, &st.device))?;
        let space = Space::Encoder {
            backbone: &backbone,
            device: &st.device,
        };
        estimate(&data, &aug, &opts, &space)
    });
    m
}

fn cell_of(v: &Dynamic) -> Cell {
    if v.is_unit() {
        Cell::Empty
    } else if let Ok(i) = v.as_int() {
        Cell::Number(i as f64)
    } else if let Ok(f) = v.as_float() {
        Cell::Number(f)
    } else {
        Cell::Text(v.to_string())
    }
}

/// Script rows (maps or runs) → report rows.
fn rows_of(rows: &Array) -> Res<Vec<Row>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            if let Some(h) = r.clone().try_cast::<RunHandle>() {
                // Keep the run's own column order; tags come last.
                let mut row = report::run_row(&h.run);
                row.extend(h.tags.iter().map(|(k, v)| (k.to_string(), cell_of(v))));
                return Ok(row);
            }
            let map = if let Some(m) = r.clone().try_cast::<Map>() {
                m
            } else {
                return fail(format!(
                    "report rows must be runs or maps; row {i} is {}",
                    options::type_name(r)
                ));
            };
            Ok(map
                .iter()
                .map(|(k, v)| (k.to_string(), cell_of(v)))
                .collect())
        })
        .collect()
}

fn strings(v: Option<&Dynamic>) -> Option<Vec<String>> {
    v.and_then(|a| a.clone().into_array().ok())
        .map(|a| a.iter().map(|s| s.to_string()).collect())
}

fn table(rows: Array, opts: Map) -> Res<String> {
    options::check("report::table", &opts, api::TABLE)?;
    let rows = rows_of(&rows)?;
    let cols = report::columns_of(&rows, strings(opts.get("columns")).as_deref());
    let group = strings(opts.get("group_by")).unwrap_or_default();
    let text = report::markdown(&rows, &cols, &group);
    if opts
        .get("print")
        .and_then(|p| p.as_bool().ok())
        .unwrap_or(true)
    {
        println!("{text}");
    }
    Ok(text)
}

fn compare(rows: Array, opts: Map) -> Res<Array> {
    options::check("report::compare", &opts, api::COMPARE)?;
    let text = |k: &str| match opts.get(k).and_then(|v| v.clone().into_string().ok()) {
        Some(v) => Ok(v),
        None => fail(format!(
            "report::compare needs `{k}` (e.g. #{{ group: \"setting\", value: \"knn\", pairs: [[\"adainf\", \"none\"]] }})"
        )),
    };
    let (group, value) = (text("group")?, text("value")?);
    let Some(pairs) = opts.get("pairs").and_then(|p| p.clone().into_array().ok()) else {
        return fail("report::compare needs `pairs`, e.g. [[\"adainf\", \"none\"]]");
    };
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .filter_map(|p| p.clone().into_array().ok())
        .map(|p| (p[0].to_string(), p[1].to_string()))
        .collect();
    let out = core(report::compare(&rows_of(&rows)?, &group, &value, &pairs))?;
    if opts
        .get("print")
        .and_then(|p| p.as_bool().ok())
        .unwrap_or(true)
    {
        println!(
            "{}",
            report::markdown(&out, &report::columns_of(&out, None), &[])
        );
    }
    Ok(out
        .iter()
        .map(|row| {
            Dynamic::from_map(
                row.iter()
                    .map(|(k, v)| (k.as_str().into(), cell_to_dynamic(v)))
                    .collect(),
            )
        })
        .collect())
}

fn save_csv(st: &HostState, rows: Array, path: &str, opts: Map) -> Res<()> {
    options::check("report::save_csv", &opts, api::CSV)?;
    let rows = rows_of(&rows)?;
    let cols = report::columns_of(&rows, strings(opts.get("columns")).as_deref());
    core(report::save_csv(&rows, &cols, &st.resolve(path)))
}

fn report_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "report";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "plot", move |rows: Array, opts: Map| -> Res<()> {
        options::check("report::plot", &opts, api::PLOT)?;
        let required = |k: &str| match opts.get(k).and_then(|v| v.clone().into_string().ok()) {
            Some(v) => Ok(v),
            None => fail(format!(
                "report::plot needs `{k}` (e.g. #{{ x: \"dup\", y: \"accuracy\", path: \"dup.png\" }})"
            )),
        };
        let spec = report::plot::PlotSpec {
            x: required("x")?,
            y: required("y")?,
            group: opts.get("group").and_then(|v| v.clone().into_string().ok()),
            title: opts.get("title").and_then(|v| v.clone().into_string().ok()),
            log_x: opts
                .get("log_x")
                .and_then(|v| v.as_bool().ok())
                .unwrap_or(false),
        };
        let rows = rows_of(&rows)?;
        core(report::plot::plot(
            &rows,
            &spec,
            &st.resolve(&required("path")?),
        ))
    });
    register!(m, "table", |rows: Array, opts: Map| -> Res<String> {
        table(rows, opts)
    });
    register!(m, "table", |rows: Array| -> Res<String> {
        table(rows, Map::new())
    });
    register!(m, "compare", |rows: Array, opts: Map| -> Res<Array> {
        compare(rows, opts)
    });
    let st = state.clone();
    register!(m, "save_csv", move |rows: Array,
                                   path: &str,
                                   opts: Map|
          -> Res<()> {
        save_csv(&st, rows, path, opts)
    });
    let st = state.clone();
    register!(m, "save_csv", move |rows: Array, path: &str| -> Res<()> {
        save_csv(&st, rows, path, Map::new())
    });
    m
}
