//! The `train` module (one run or a batch, loading, options, defaults) and the `Run` handle.

use super::aug_module::aug_option;
use super::*;
use crate::train::schedule::{Schedule, ScheduleKey, TabulateError, tabulate};

/// `Run`: its result, metrics, tags and `row()`.
pub(super) fn register_type(engine: &mut Engine) {
    engine.register_type_with_name::<RunHandle>("Run");
    method!(engine.register_get("accuracy", |r: &mut RunHandle| {
        r.run.result.accuracy.map_or(Dynamic::UNIT, Dynamic::from)
    }));
    method!(engine.register_get("id", |r: &mut RunHandle| r.run.result.id.clone()));
    method!(engine.register_get("dir", |r: &mut RunHandle| r.run.dir.display().to_string()));
    method!(engine.register_get("cached", |r: &mut RunHandle| r.run.cached));
    method!(engine.register_get("tags", |r: &mut RunHandle| r.tags.clone()));
    method!(
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
                    for (key, v) in [
                        ("generated_fraction", m.generated_fraction),
                        ("strength", m.strength),
                    ] {
                        row.insert(key.into(), v.map_or(Dynamic::UNIT, Dynamic::from));
                    }
                    Dynamic::from_map(row)
                })
                .collect()
        })
    );
    method!(engine.register_fn("row", |r: &mut RunHandle| run_row_map(r)));
    method!(engine.register_fn("to_string", |r: &mut RunHandle| {
        format!("Run({})", r.run.result.id)
    }));
    method!(engine.register_fn("to_debug", |r: &mut RunHandle| {
        format!("Run({})", r.run.result.id)
    }));
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

/// The options of a pretraining run that are not part of its config (nor of its id); the
/// rest of the primitive options are the config's (`PretrainConfig`).
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default)]
struct RunOptions {
    #[serde(flatten)]
    control: RunControl,
    /// Where batches are gathered: auto (on the GPU when the data fits), device (upload the
    /// data once, gather batches there) or stream (gather on the host, upload each batch); not
    /// part of the run id.
    placement: Placement,
}

/// The options of a pretraining run the host reads itself.
const PRETRAIN_HANDLES: &[Opt] = &[
    opt("data", Kind::Dataset, "Training data (required)."),
    opt(
        "aug",
        Kind::Aug,
        "Augmentation: aug handle, preset name or [view1, view2]; #{ real: A, generated: B } applies A to real and B to generated images of the same batch (each side any of these forms; same normalisation).",
    ),
    opt(
        "probe",
        Kind::Dataset,
        "Labelled set the online linear probe is evaluated on.",
    ),
    opt(
        "tags",
        Kind::Map,
        "Extra columns for reports; not part of the run id.",
    ),
];

/// Every option of `train::pretrain` and `train::pretrain_all`: the handles, the run options,
/// then the config's (the method's own settings at the method's place).
fn pretrain_options() -> Vec<Opt> {
    let mut rows = options::known::<RunOptions>(PRETRAIN_HANDLES);
    rows.extend(PretrainConfig::option_fields());
    rows
}

/// The options and defaults of `train::pretrain`: the config's defaults per method
/// (`PretrainConfig::for_method`), the run options' and the augmentation's.
fn pretrain_typed() -> options::Typed {
    options::Typed {
        options: pretrain_options,
        check: check_literal,
        defaults: || {
            crate::method::METHODS
                .iter()
                .filter_map(|name| Method::parse(name).ok().map(|m| (*name, m)))
                .map(|(name, method)| {
                    let mut d = options::serialized(&PretrainConfig::for_method(method));
                    // The config leaves f32 out of its serialized form (run ids); show it.
                    d.entry("precision").or_insert_with(|| {
                        serde_json::to_value(crate::train::config::Precision::default())
                            .unwrap_or_default()
                    });
                    d.extend(options::serialized(&RunOptions::default()));
                    // `method` picks the variant; its own default is the config's.
                    d.insert(
                        "method".into(),
                        serde_json::to_value(PretrainConfig::default().method())
                            .unwrap_or_default(),
                    );
                    d.insert("aug".into(), DEFAULT_PRESET.into());
                    (name, d)
                })
                .collect()
        },
    }
}

/// The primitive options of `opts` split into the run options' and the config's.
fn split_options(opts: &Map) -> (options::JsonMap, options::JsonMap) {
    options::split_json::<RunOptions>(opts, &pretrain_options())
}

/// The run config: the method's official defaults, the script's options over them, and the
/// defaults that depend on the run fitted to it (`PretrainConfig::fit_defaults`).
fn resolved_config(function: &str, opts: &Map, data_len: usize) -> Res<PretrainConfig> {
    let (_, given) = split_options(opts);
    let method = match given.get("method").and_then(|m| m.as_str()) {
        Some(name) => core(Method::parse(name))?,
        None => PretrainConfig::default().method(),
    };
    let base = options::serialized(&PretrainConfig::for_method(method));
    let mut config: PretrainConfig =
        options::deserialize_over(function, &base, given).map_err(runtime_error)?;
    config.fit_defaults(|key| opts.contains_key(key), data_len);
    Ok(config)
}

/// The data-free checks of pretrain literal options (`Typed::check`): they parse into the
/// config (the method's name, its own settings), and the config's ranges, as `prepare` and the
/// core check them. Nothing while the method is unknown: it decides which keys apply.
fn check_literal(function: &str, opts: &Map, unknown: &[&str]) -> Result<(), String> {
    if unknown.contains(&"method") {
        return Ok(());
    }
    let config = resolved_config(function, opts, 1 << 20).map_err(|e| match *e {
        EvalAltResult::ErrorRuntime(m, _) => m.to_string(),
        other => other.to_string(),
    })?;
    literal_outcome(opts, unknown, config.validate())
}

/// One run a script asked for, with everything resolved.
struct Prepared {
    config: PretrainConfig,
    data: Dataset,
    probe: Option<Dataset>,
    aug: ViewPair,
    tags: Map,
    device: burn::tensor::Device,
    /// The run's `device` option as written (forwarded to `--jobs` workers).
    device_name: Option<String>,
    placement: Placement,
    checkpoint_every: usize,
}

/// The number a schedule value or a schedule function's result stands for, if it is one.
fn number(v: &Dynamic) -> Option<f64> {
    v.as_float()
        .ok()
        .or_else(|| v.as_int().ok().map(|i| i as f64))
}

/// Why a schedule function gave no number at a step.
enum ScheduleFailure {
    /// The function raised an error.
    Script(Box<EvalAltResult>),
    /// It returned a value of this type.
    NotNumber(String),
}

/// The `schedule` option as per-step tables (`train::schedule::tabulate`): a number is a
/// constant, a function (closure or `Fn("name")`) is called with t = step / steps.
fn schedule_option(
    ctx: &NativeCallContext,
    function: &str,
    value: Option<&Dynamic>,
    steps: usize,
) -> Res<Schedule> {
    let mut out = Schedule::default();
    let Some(map) = value.and_then(|v| v.clone().try_cast::<Map>()) else {
        return Ok(out);
    };
    for (name, value) in &map {
        let Some(key) = ScheduleKey::parse(name) else {
            return fail(options::unknown_key_message(
                &format!("`schedule` of {function}"),
                name,
                &crate::entry::schedule_opts(),
            ));
        };
        let table = if let Some(x) = number(value) {
            tabulate(key, steps, |_| Ok(x))
        } else if let Some(f) = value.clone().try_cast::<rhai::FnPtr>() {
            tabulate(key, steps, |t| {
                let r = f
                    .call_within_context::<Dynamic>(ctx, (t,))
                    .map_err(ScheduleFailure::Script)?;
                number(&r).ok_or_else(|| ScheduleFailure::NotNumber(options::type_name(&r)))
            })
        } else {
            return fail(format!(
                "option `schedule.{name}` of {function} must be a number, a function of t (|t| ...) or Fn(\"name\"), got {}",
                options::type_name(value)
            ));
        };
        match table {
            Ok(table) => {
                out.0.insert(key, table);
            }
            Err(TabulateError::OutOfRange(e)) => return core(Err(e)),
            Err(TabulateError::Failed { step, t, error, .. }) => {
                let at = format!("schedule.{name} at step {step} (t = {t})");
                return match error {
                    ScheduleFailure::NotNumber(got) => fail(format!(
                        "option `schedule.{name}` of {function}: the function returned {got} at step {step} (t = {t}); it must return a number"
                    )),
                    ScheduleFailure::Script(e) => Err(Box::new(
                        EvalAltResult::ErrorInFunctionCall(at, String::new(), e, Position::NONE),
                    )),
                };
            }
        }
    }
    Ok(out)
}

fn prepare(ctx: &NativeCallContext, function: &str, st: &HostState, opts: &Map) -> Res<Prepared> {
    options::check(function, opts, &pretrain_options())?;
    let Some(data) = opts.get("data").map(|d| d.clone().cast::<Dataset>()) else {
        return fail(format!(
            "{function} needs `data` (e.g. #{{ data: data::synthetic(#{{ n: 5000 }}) }})"
        ));
    };
    core(data.require_images(&format!("`data` of {function}")))?;
    if let Some(tags) = opts.get("tags").and_then(|t| t.clone().try_cast::<Map>()) {
        check_tags(function, &tags)?;
    }
    if let Some(probe) = opts
        .get("probe")
        .and_then(|d| d.clone().try_cast::<Dataset>())
    {
        core(probe.require_images(&format!("`probe` of {function}")))?;
    }
    let mut config = resolved_config(function, opts, data.len())?;
    let run: RunOptions =
        options::deserialize_over(function, &serde_json::Map::new(), split_options(opts).0)
            .map_err(runtime_error)?;
    config.schedule = schedule_option(ctx, function, opts.get("schedule"), config.steps)?;
    if config.schedule.table(ScheduleKey::Lr).is_some()
        && let Some(key) = ["warmup", "warmup_start"]
            .into_iter()
            .find(|k| opts.contains_key(*k))
    {
        return fail(format!(
            "option `{key}` of {function} does nothing with `schedule.lr`, which replaces the built-in warm-up + cosine; remove one of them"
        ));
    }
    core(config.schedule.validate(config.steps))?;
    core(config.schedule.check_data(&data, config.batch))?;
    let aug = aug_option(opts.get("aug"))?;
    core(aug.validate())?;
    let device = match &run.control.device {
        Some(name) => core(DeviceSpec::parse(name).and_then(|d| d.open()))?,
        None => st.device.clone(),
    };
    Ok(Prepared {
        config,
        probe: opts.get("probe").map(|d| d.clone().cast::<Dataset>()),
        aug,
        tags: opts
            .get("tags")
            .and_then(|t| t.clone().try_cast::<Map>())
            .unwrap_or_default(),
        device,
        device_name: run.control.device,
        placement: run.placement,
        checkpoint_every: run.control.checkpoint_every,
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

    /// The request a worker trains `run` (this run, checked) from, with the script's tags.
    fn run_request(&self, run: &CheckedRequest) -> Res<RunRequest> {
        let tags = self
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), tag_json(v)))
            .collect();
        let mut request = core(RunRequest::new(run, self.placement, tags))?;
        request.device = self.device_name.clone();
        Ok(request)
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
    // Every run is checked before any trains or loads, so a batch with a bad run leaves the
    // runs folder as it was.
    let checked = runs
        .iter()
        .map(|p| {
            let checked = core(p.request().check())?;
            // The device's precision too: a run its device cannot compute in is refused
            // here, not after its folder (and `failed.json`) is written.
            core(p.config.precision.check_supported(&p.device))?;
            Ok(checked)
        })
        .collect::<Res<Vec<_>>>()?;
    if !through_executor(st, runs.len()) {
        let mut out = Vec::with_capacity(runs.len());
        for (p, checked) in runs.iter().zip(checked) {
            let mut progress = (st.progress)();
            // The request (with the tags) is kept in the run folder where the set has a
            // recipe, so TensorBoard's HParams and the HTML report show the script's tags.
            let request = p.run_request(&checked).ok();
            let run = core(execute::pretrain_claimed(
                checked,
                TrainContext {
                    device: &p.device,
                    placement: p.placement,
                    runs_dir: &st.runs_dir,
                    progress: progress.as_mut(),
                    cancel: &st.cancel,
                },
                request.as_ref(),
                st.retry_failed,
            ))?;
            out.push(handle(p, run));
        }
        return Ok(out);
    }
    let requests = runs
        .iter()
        .zip(&checked)
        .map(|(p, checked)| {
            p.run_request(checked)
                .map(|r| Request::Pretrain(Box::new(r)))
        })
        .collect::<Res<Vec<_>>>()?;
    let finished = execute_batch(st, &requests, |_, dir| train::run::load_finished(dir))?;
    Ok(runs
        .iter()
        .zip(finished)
        .map(|(p, (run, trained_now))| {
            handle(
                p,
                FinishedRun {
                    cached: !trained_now,
                    ..run
                },
            )
        })
        .collect())
}

pub(super) fn train_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "train";
    let mut m = Module::new();
    let st = state.clone();
    register_with_context!(m, "pretrain", ctx, move |opts: Map| -> Res<RunHandle> {
        let prepared = prepare(&ctx, "train::pretrain", &st, &opts)?;
        Ok(pretrain_batch(&st, vec![prepared])?.remove(0))
    });
    let st = state.clone();
    register_with_context!(
        m,
        "pretrain_all",
        ctx,
        move |configs: Array| -> Res<Array> {
            let prepared = configs
                .iter()
                .enumerate()
                .map(|(i, c)| match c.clone().try_cast::<Map>() {
                    Some(opts) => prepare(&ctx, "train::pretrain_all", &st, &opts),
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
        }
    );
    register!(m, "defaults", |method: &str| -> Res<Map> {
        defaults_map(method)
    });
    register!(m, "defaults", || -> Res<Map> {
        defaults_map(PretrainConfig::default().method().name())
    });
    register!(m, "options", || -> Res<Array> {
        Ok(pretrain_options()
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
                "{}: is not a finished run folder (no seal.json); run its script to finish it",
                path.display()
            )),
        }
    });
    m
}

/// The catalogue entries of `train` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "train::pretrain",
            "train::pretrain(opts) -> Run",
            "trains (or loads the cached) run; online probe on `probe`",
            &[],
        )
        .typed(pretrain_typed()),
        entry(
            "train::pretrain_all",
            "train::pretrain_all([opts, ...]) -> array",
            "trains (or loads) a batch of runs and returns them in order: one after another by default, in parallel with `adainf run --jobs N` (worker processes) or `--executor slurm` (one job array); each run is trained exactly once across every process sharing the runs folder",
            &[],
        )
        .typed(pretrain_typed()),
        entry(
            "train::load",
            "train::load(dir) -> Run",
            "a finished run from its folder (for eval::* and reports)",
            &[],
        ),
        entry(
            "train::options",
            "train::options() -> array",
            "the names of every option train::pretrain accepts",
            &[],
        ),
        entry(
            "train::defaults",
            "train::defaults(method) -> map",
            "a method's official default options (simclr, mocov2, byol, barlow)",
            &[],
        ),
        entry(
            "Run.accuracy",
            "run.accuracy -> float",
            "final online-probe top-1 on the probe set (() without one)",
            &[],
        ),
        entry(
            "Run.metrics",
            "run.metrics -> array",
            "maps: step, loss, lr, probe_acc, images_per_s, data_wait (fraction of time waiting for data), generated_fraction (of the images since the previous row), strength (in force)",
            &[],
        ),
        entry(
            "Run.id",
            "run.id -> string",
            "content hash of config and data fingerprints",
            &[],
        ),
        entry("Run.dir", "run.dir -> string", "the run's folder", &[]),
        entry(
            "Run.cached",
            "run.cached -> bool",
            "whether the run was loaded from the cache",
            &[],
        ),
        entry(
            "Run.tags",
            "run.tags -> map",
            "the `tags` the run was trained with (report columns, not part of the id)",
            &[],
        ),
        entry(
            "Run.row",
            "run.row() -> map",
            "the run's report columns (config, data recipe, results, tags)",
            &[],
        ),
    ]
}
