//! Registration of the script modules and handle types, one file per script module (`data`,
//! `gen`, `aug`, `train`, `eval`, `theory`, `report`), each with the handle type it returns.
//! Each function checks its options against the catalogue (`api`), converts them into the
//! core's typed configs and calls the core; errors come back as runtime errors that Rhai places
//! at the call site. This file holds what they share: error conversion, the `register!` macro,
//! and the conversions of runs and cells to script values.

use std::rc::Rc;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext,
    Position,
};

use super::HostState;
use super::entry::{self, ApiEntry, entry};
use super::options::{self, Kind, Opt, Options, opt, typed};
use crate::augment::preview::write_preview;
use crate::augment::{AugSpec, DEFAULT_PRESET, ViewPair, preset};
use crate::data::Dataset;
use crate::data::batches::Placement;
use crate::data::readers::{self, cifar::Variant, npz::NpzOptions};
use crate::data::recipe::{self, Recipe};
use crate::data::synthetic::{GeneratorSpec, SyntheticSpec};
use crate::device::DeviceSpec;
use crate::eval::linear::LinearProbeConfig;
use crate::eval::runs::{self, Encoder, KnnConfig};
use crate::generator::diffusion::{
    self,
    run::{DiffusionConfig, DiffusionRun},
};
use crate::generator::{Gmm, GmmConfig, fit_gmm, frechet};
use crate::method::Method;
use crate::report::{self, Cell, Row};
use crate::runs::request::{DiffusionRequest, Request, RunRequest};
use crate::runs::{Executor, execute, local, slurm};
use crate::theory::{
    self,
    estimate::{EstimateConfig, Space},
    gap::{Gap, GapConfig, generator_gap},
    toy::{ToyConfig, toy},
};
use crate::train::{
    self, CheckedRequest, FinishedRun, PretrainConfig, PretrainRequest, TrainContext,
};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// A runtime error (`register!` places it at the script's call).
fn runtime_error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), Position::NONE))
}

fn fail<T>(msg: impl std::fmt::Display) -> Res<T> {
    Err(runtime_error(msg.to_string()))
}

fn core<T>(r: crate::error::Result<T>) -> Res<T> {
    match r {
        Ok(v) => Ok(v),
        Err(crate::error::Error::Cancelled) => Err(Box::new(EvalAltResult::ErrorTerminated(
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

/// Refuses a `tags` value that is not a number, a string, a bool or `()`: a dataset or a
/// closure would be shown in reports by its type name, and an array or a map is no column.
fn check_tags(function: &str, tags: &Map) -> Res<()> {
    for (key, v) in tags {
        let plain = v.is_int() || v.is_float() || v.is_string() || v.is_bool() || v.is_unit();
        if !plain {
            return fail(format!(
                "tag `{key}` of {function} holds a value of type {}; a tag is a report column and must be a number, a string, a bool or () (give the value to show, e.g. its name as a string)",
                options::type_name(v)
            ));
        }
    }
    Ok(())
}

/// A script tag value as JSON (requests and reports keep tags so).
fn tag_json(v: &Dynamic) -> serde_json::Value {
    if let Ok(i) = v.as_int() {
        serde_json::json!(i)
    } else if let Ok(x) = v.as_float() {
        serde_json::json!(x)
    } else if let Ok(b) = v.as_bool() {
        serde_json::json!(b)
    } else if v.is_unit() {
        serde_json::Value::Null
    } else {
        serde_json::Value::String(v.to_string())
    }
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
            .with_comments(entry::doc_comments(&entries(), MODULE, $name))
            .with_params_info(entry::params_info(&entries(), MODULE, $name, &[]))
            .set_into_module(&mut $module, move |ctx: NativeCallContext| -> $ret {
                // The body runs in a closure called on the spot, so it can use `?` and `return`.
                let _work = crate::memory::HostCall::enter();
                #[allow(clippy::redundant_closure_call)]
                let result = (|| -> $ret { $body })();
                placed(&ctx, result)
            });
    };
    ($module:expr, $name:literal, $(move)? |$($arg:ident : $ty:ty),*| -> $ret:ty $body:block) => {
        FuncRegistration::new($name)
            .with_volatility(true)
            .with_comments(entry::doc_comments(&entries(), MODULE, $name))
            .with_params_info(entry::params_info(&entries(), MODULE, $name, &[$(concat!(stringify!($arg), ": ", stringify!($ty))),*]))
            .set_into_module(&mut $module, move |ctx: NativeCallContext, $($arg: $ty),*| -> $ret {
                let _work = crate::memory::HostCall::enter();
                #[allow(clippy::redundant_closure_call)]
                let result = (|| -> $ret { $body })();
                placed(&ctx, result)
            });
    };
}

/// Registers a method or property of a script type (`engine.register_fn(..)` or
/// `engine.register_get(..)`, written inside) whose body runs as host work
/// (`memory::HostCall`), like a module function's: what it allocates (`Dataset.info()`
/// measures a generator gap) is not charged to the script's operation budget.
macro_rules! method {
    ($engine:ident . $register:ident ($name:literal, $(move)? |$($arg:ident : $ty:ty),*| -> $ret:ty $body:block)) => {
        $engine.$register($name, move |$($arg: $ty),*| -> $ret {
            let _work = crate::memory::HostCall::enter();
            $body
        })
    };
    ($engine:ident . $register:ident ($name:literal, $(move)? |$($arg:ident : $ty:ty),*| $body:expr)) => {
        $engine.$register($name, move |$($arg: $ty),*| {
            let _work = crate::memory::HostCall::enter();
            $body
        })
    };
}

/// `register!` for a function whose body needs the call context (`$ctx`), e.g. to call a
/// script function it was given.
macro_rules! register_with_context {
    ($module:expr, $name:literal, $ctx:ident, $(move)? |$($arg:ident : $ty:ty),*| -> $ret:ty $body:block) => {
        FuncRegistration::new($name)
            .with_volatility(true)
            .with_comments(entry::doc_comments(&entries(), MODULE, $name))
            .with_params_info(entry::params_info(&entries(), MODULE, $name, &[$(concat!(stringify!($arg), ": ", stringify!($ty))),*]))
            .set_into_module(&mut $module, move |$ctx: NativeCallContext, $($arg: $ty),*| -> $ret {
                let _work = crate::memory::HostCall::enter();
                #[allow(clippy::redundant_closure_call)]
                let result = (|| -> $ret { $body })();
                placed(&$ctx, result)
            });
    };
}

mod aug_module;
pub(crate) mod data_module;
mod eval_module;
mod gen_module;
mod report_module;
mod theory_module;
mod train_module;

/// A script module: its name, its registration and its catalogue entries.
pub(super) struct ScriptModule {
    pub name: &'static str,
    pub module: fn(&Rc<HostState>) -> Module,
    pub entries: fn() -> Vec<ApiEntry>,
}

/// The script modules, in the order `adainf api` lists them: the one list registration, the
/// catalogue (`api::catalogue`, `api::MODULES`) and `adainf check` read.
pub(super) const SCRIPT_MODULES: [ScriptModule; 7] = [
    ScriptModule {
        name: "data",
        module: data_module::data_module,
        entries: data_module::entries,
    },
    ScriptModule {
        name: "gen",
        module: gen_module::gen_module,
        entries: gen_module::entries,
    },
    ScriptModule {
        name: "aug",
        module: aug_module::aug_module,
        entries: aug_module::entries,
    },
    ScriptModule {
        name: "train",
        module: train_module::train_module,
        entries: train_module::entries,
    },
    ScriptModule {
        name: "eval",
        module: eval_module::eval_module,
        entries: eval_module::entries,
    },
    ScriptModule {
        name: "theory",
        module: theory_module::theory_module,
        entries: theory_module::entries,
    },
    ScriptModule {
        name: "report",
        module: report_module::report_module,
        entries: report_module::entries,
    },
];

pub(super) fn register_all(engine: &mut Engine, state: &Rc<HostState>) {
    data_module::register_type(engine, state);
    gen_module::register_type(engine, state);
    aug_module::register_type(engine);
    train_module::register_type(engine);
    for m in &SCRIPT_MODULES {
        engine.register_static_module(m.name, (m.module)(state).into());
    }
}

/// The outcome of a core check run on the option values a script writes literally (`adainf
/// check`, `options::Typed::check`; `unknown`: the options set to values the check cannot
/// see): an error about a key the script did not write literally is none of its business, nor
/// is a range error while another option is unknown (the rule may read it; the call decides).
fn literal_outcome(
    opts: &Map,
    unknown: &[&str],
    result: crate::error::Result<()>,
) -> Result<(), String> {
    match result {
        Err(crate::error::Error::Config { key, .. })
            if !opts.contains_key(key.as_str()) || !unknown.is_empty() =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
        Ok(()) => Ok(()),
    }
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

/// Whether a batch of `n` runs goes to the host's executor (local workers, a Slurm array)
/// rather than being trained in this process: a single run gains nothing from a local worker.
fn through_executor(st: &HostState, n: usize) -> bool {
    match &st.executor {
        Executor::InProcess => false,
        Executor::Local(_) => n > 1,
        Executor::Slurm { .. } => true,
    }
}

/// Trains `requests` (runs of any kind) through the host's executor — local workers or one
/// Slurm array — and returns each finished run, in order, as `load` gives it from its folder
/// (`load(i, dir)` for request i), with whether it was trained now rather than found in the
/// cache. Runs that did not finish are reported together; the others stay in the run cache.
fn execute_batch<T>(
    st: &HostState,
    requests: &[Request],
    load: impl Fn(usize, &std::path::Path) -> crate::error::Result<Option<T>>,
) -> Res<Vec<(T, bool)>> {
    // Runs the workers train now are not cached, the others are.
    let to_train: Vec<bool> = requests
        .iter()
        .map(|r| local::needs_training(&st.runs_dir, r.id(), r.kind(), st.retry_failed))
        .collect();
    let mut progress = (st.progress)();
    match &st.executor {
        Executor::Local(workers) => core(local::run_workers(
            requests,
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
            requests,
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
    let mut out = Vec::with_capacity(requests.len());
    let mut failures = Vec::new();
    for (i, (r, trained_now)) in requests.iter().zip(to_train).enumerate() {
        match execute::collect(&st.runs_dir, r.id(), &st.cancel, |dir| load(i, dir)) {
            Ok(run) => out.push((run, trained_now)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        return fail(format!(
            "{} of {} run(s) did not finish (the others are in the run cache):\n{}",
            failures.len(),
            requests.len(),
            failures.join("\n")
        ));
    }
    Ok(out)
}

/// Options map → typed options (defaults on the struct; `handles`: the options the host reads
/// itself), errors with the call's position.
fn parsed<T: Options + for<'de> serde::Deserialize<'de>>(
    function: &str,
    opts: &Map,
    handles: &[options::Opt],
) -> Res<T> {
    options::parse(function, opts, handles).map_err(runtime_error)
}

/// The options of every run kind (pretraining, the diffusion generator) that say where and how
/// it runs, not what it computes: none of them is part of the run id.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default)]
struct RunControl {
    /// flex, wgpu, vulkan, cuda or cuda:N (unset: the command's --device); not part of the run
    /// id.
    device: Option<String>,
    /// Checkpoint period in steps (0: a checkpoint only when the run is stopped by Ctrl-C or
    /// SIGTERM); an interrupted run resumes from its last checkpoint and computes the same
    /// steps as an uninterrupted one; not part of the run id.
    checkpoint_every: usize,
}
