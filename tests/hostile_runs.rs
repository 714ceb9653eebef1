//! Hostile inputs against the run cache (issue 26): a rejected run leaves the runs folder as it
//! was, a request edited into a configuration its method cannot run is a clear error, a
//! finished run whose files changed is reported (never served) and trained again on
//! `--retry-failed`, a damaged checkpoint says what to do, `--jobs` workers stop with
//! their driver, and a worker whose DDPM samples were deleted or changed after the driver drew
//! them stops with a clear error.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` with its contents (an absent folder is empty).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(format!("{}/", p.display()), Vec::new());
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Panics naming every path that `after` adds, removes or changes against `before`.
fn assert_unchanged(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "{what} changed the runs folder: {changed:?}"
    );
}

const BASE: &str = r#"let real = data::synthetic(#{ n: 64, seed: 3, size: 8 });
let base = #{ data: real, probe: real, width: 4, batch: 16, steps: 6, warmup: 1, proj_hidden: 16,
              proj_dim: 8, eval_every: 0, log_every: 2, optimizer: "sgd", lr: 0.05 };
"#;

fn finished_run(ws: &Workspace) -> std::path::PathBuf {
    let script = ws.script(
        "ok.rhai",
        &format!(
            "{BASE}let run = train::pretrain(base);\nprint(`acc=${{run.accuracy}} cached=${{run.cached}} knn=${{eval::knn(run, real, real, #{{ k: 3 }})}}`);\n"
        ),
    );
    let out = ws.run(&script, &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    let runs: Vec<_> = std::fs::read_dir(ws.0.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    runs[0].clone()
}

/// Which call a case goes through: each kind of run that writes into the runs folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunKind {
    /// `train::pretrain_all([new run, base + #{ OPT }])`, in process and under `--jobs 2`.
    Pretrain,
    /// `gen::diffusion_all(real, [new generator, gbase + #{ OPT }])`.
    Diffusion,
    /// `gen::sample(finished generator, OPT)`: OPT is the arguments after the generator.
    Sample,
}
use RunKind::*;

/// A bad value: its run kind, the key its error must name, the script text, and the text
/// the error must contain where it is not "`key`" (see the comment at such a case).
struct Case(RunKind, &'static str, &'static str, Option<&'static str>);

/// Every bad value the tests try: at least one per key that a check of the run's options
/// names (`checked_keys` reads them from the checks' source, and
/// `every_check_of_a_runs_options_has_a_case` holds the two lists together), then the
/// option-level refusals (unknown key, wrong kind, unknown name of a closed set).
const CASES: &[Case] = &[
    // PretrainRequest::check → check_inputs, PretrainConfig::validate, MethodConfig::validate.
    Case(Pretrain, "lr", "lr: -1.0", None),
    Case(Pretrain, "lr", "lr: 0.0", None),
    Case(Pretrain, "classifier_lr", "classifier_lr: 0.0", None),
    Case(Pretrain, "temperature", "temperature: -0.5", None),
    Case(Pretrain, "weight_decay", "weight_decay: -1.0", None),
    Case(Pretrain, "warmup_start", "warmup_start: 1.0", None),
    Case(Pretrain, "steps", "steps: 0", None),
    Case(Pretrain, "batch", "batch: 0", None),
    Case(Pretrain, "batch", "batch: 1", None),
    Case(Pretrain, "batch", "batch: 100", None),
    Case(Pretrain, "proj_hidden", "proj_hidden: 0", None),
    Case(Pretrain, "proj_dim", "proj_dim: 0", None),
    Case(Pretrain, "log_every", "log_every: 0", None),
    Case(Pretrain, "warmup", "warmup: 50", None),
    Case(Pretrain, "width", "width: 0", None),
    Case(Pretrain, "width", "width: 2000", None),
    Case(
        Pretrain,
        "ema_base",
        "method: \"byol\", ema_base: 1.5",
        None,
    ),
    Case(
        Pretrain,
        "ema_final",
        "method: \"mocov2\", ema_final: -0.1",
        None,
    ),
    Case(
        Pretrain,
        "queue_size",
        "method: \"mocov2\", queue_size: 17",
        None,
    ),
    Case(
        Pretrain,
        "barlow_lambda",
        "method: \"barlow\", barlow_lambda: 0.0",
        None,
    ),
    Case(
        Pretrain,
        "barlow_scale",
        "method: \"barlow\", barlow_scale: -1.0",
        None,
    ),
    Case(Pretrain, "method", "method: \"simsiam\"", None),
    Case(Pretrain, "precision", "precision: \"f64\"", None),
    // Schedules (tabulate, Schedule::validate, Schedule::check_data, Sampler::mixed).
    Case(Pretrain, "schedule.lr", "schedule: #{ lr: 11.0 }", None),
    Case(
        Pretrain,
        "schedule.strength",
        "schedule: #{ strength: |t| 20.0 * t }",
        None,
    ),
    Case(
        Pretrain,
        "schedule.generated_share",
        "schedule: #{ generated_share: 1.5 }",
        None,
    ),
    Case(
        Pretrain,
        "schedule.generated_share",
        "schedule: #{ generated_share: 0.5 }",
        None,
    ),
    Case(
        Pretrain,
        "schedule.generated_share",
        "data: data::inflate(data::subset(real, #{ n: 60 }), data::subset(real, #{ n: 4 })), schedule: #{ generated_share: 0.5 }",
        None,
    ),
    // The augmentation (AugSpec::validate, ViewPair::validate, preset).
    Case(
        Pretrain,
        "flip_prob",
        "aug: aug::simclr(#{ flip_prob: 1.5 })",
        None,
    ),
    Case(
        Pretrain,
        "jitter_prob",
        "aug: aug::simclr(#{ jitter_prob: -0.1 })",
        None,
    ),
    Case(
        Pretrain,
        "gray_prob",
        "aug: aug::simclr(#{ gray_prob: 2.0 })",
        None,
    ),
    Case(
        Pretrain,
        "blur_prob",
        "aug: aug::simclr(#{ blur_prob: 1.1 })",
        None,
    ),
    Case(
        Pretrain,
        "solarize_prob",
        "aug: aug::simclr(#{ solarize_prob: -1.0 })",
        None,
    ),
    Case(
        Pretrain,
        "crop_min",
        "aug: aug::simclr(#{ crop_min: 0.0 })",
        None,
    ),
    Case(
        Pretrain,
        "crop_min",
        "aug: aug::simclr(#{ crop_max: 1.5 })",
        None,
    ),
    Case(
        Pretrain,
        "jitter",
        "aug: aug::simclr(#{ jitter: [0.8, 0.8, 0.8, 0.9] })",
        None,
    ),
    Case(
        Pretrain,
        "std",
        "aug: aug::simclr(#{ std: [0.0, 0.2, 0.2] })",
        None,
    ),
    Case(
        Pretrain,
        "aug.generated",
        "aug: #{ real: \"symmetric\", generated: aug::simclr(#{ mean: [0.5, 0.5, 0.5] }) }",
        None,
    ),
    Case(Pretrain, "preset", "aug: \"strongest\"", None),
    // Option-level refusals.
    Case(Pretrain, "stepz", "stepz: 3", None),
    Case(Pretrain, "steps", "steps: \"six\"", None),
    Case(Pretrain, "batch", "batch: 16.5", None),
    Case(Pretrain, "eval_every", "eval_every: -1", None),
    Case(Pretrain, "optimizer", "optimizer: \"adam\"", None),
    Case(Pretrain, "backbone", "backbone: \"resnet99\"", None),
    Case(Pretrain, "lr_scaling", "lr_scaling: \"sqrt\"", None),
    Case(Pretrain, "placement", "placement: \"gpu\"", None),
    // DeviceSpec::parse also reads `--device`, so it names the value, not the option.
    Case(
        Pretrain,
        "device",
        "device: \"tpu\"",
        Some("unknown device \"tpu\""),
    ),
    Case(Pretrain, "aug", "aug: 5", None),
    Case(Pretrain, "tags", "tags: 5", None),
    Case(Pretrain, "data", "data: 5", None),
    Case(Pretrain, "lrr", "schedule: #{ lrr: 1.0 }", None),
    Case(Pretrain, "schedule.lr", "schedule: #{ lr: \"x\" }", None),
    Case(
        Pretrain,
        "schedule.lr",
        "schedule: #{ lr: |t| \"x\" }",
        None,
    ),
    Case(Pretrain, "warmup", "schedule: #{ lr: 1.0 }", None),
    // DiffusionConfig::check → check_options, unet, diffusion::Schedule::linear,
    // UNetConfig::check_layers and check_images.
    Case(Diffusion, "steps", "steps: 0", None),
    Case(Diffusion, "batch", "batch: 0", None),
    Case(Diffusion, "lr", "lr: 0.0", None),
    Case(Diffusion, "ema", "ema: 1.0", None),
    Case(Diffusion, "timesteps", "timesteps: 0", None),
    // Counts past any memory were an allocation abort at the first step (after "training").
    Case(Diffusion, "timesteps", "timesteps: 100000000000", None),
    Case(Diffusion, "batch", "batch: 100000000000", None),
    Case(Diffusion, "channels", "channels: 3", None),
    Case(Diffusion, "channels", "channels: 48", None),
    Case(Diffusion, "channel_mult", "channel_mult: []", None),
    Case(Diffusion, "channel_mult", "channel_mult: [1, 17]", None),
    Case(Diffusion, "dropout", "dropout: 1.0", None),
    Case(Diffusion, "data", "channel_mult: [1, 2, 2, 2, 2, 2]", None),
    Case(Diffusion, "attention_at", "attention_at: [5]", None),
    // Option-level refusals.
    Case(Diffusion, "stpes", "stpes: 3", None),
    Case(Diffusion, "precision", "precision: \"bf16\"", None),
    Case(Diffusion, "channel_mult", "channel_mult: [1.5]", None),
    Case(Diffusion, "flip", "flip: 1", None),
    Case(
        Diffusion,
        "device",
        "device: \"tpu\"",
        Some("unknown device \"tpu\""),
    ),
    // SampleConfig::check → diffusion::Schedule::sampling_steps.
    Case(Sample, "eta", "4, #{ eta: 1.5 }", None),
    Case(Sample, "batch", "4, #{ batch: 0 }", None),
    Case(Sample, "steps", "4, #{ steps: 0 }", None),
    Case(Sample, "steps", "4, #{ steps: 21 }", None),
    // The script host refuses n <= 0 before the core's check, in its own words.
    Case(Sample, "n", "0", Some("n must be at least 1")),
    Case(Sample, "sampler", "4, #{ sampler: \"euler\" }", None),
    Case(Sample, "stepz", "4, #{ stepz: 2 }", None),
];

/// Keys a check names that no script can set: (kind, key, why).
const UNREACHABLE: &[(RunKind, &str, &str)] = &[
    (
        Diffusion,
        "res_blocks",
        "fixed at 2 by DiffusionConfig, not an option",
    ),
    (
        Diffusion,
        "real",
        "no script makes an empty set (data::subset and data::synthetic refuse n = 0)",
    ),
];

/// A core source file, by its path in the repository, with its text.
macro_rules! source {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)),
        )
    };
}

/// The checks a run makes on its options before it writes anything, per run kind: the
/// files and, in each, the signatures of the functions (every function with that signature
/// is read). A call from one of them to a function that is neither listed here nor in
/// `HARMLESS` fails `every_check_of_a_runs_options_has_a_case`.
#[allow(clippy::type_complexity)]
const CHECKS: &[(RunKind, (&str, &str), &[&str])] = &[
    (
        Pretrain,
        source!("crates/adainf-core/src/train/mod.rs"),
        &["pub fn check(self)", "fn check_inputs("],
    ),
    (
        Pretrain,
        source!("crates/adainf-core/src/train/config.rs"),
        &[
            "pub fn validate(&self)",
            "fn validate(&self, batch: usize)",
            "fn positive(",
            "pub fn check_supported(",
        ],
    ),
    (
        Pretrain,
        source!("crates/adainf-core/src/model/resnet.rs"),
        &["pub fn new(backbone: Backbone, width: usize)"],
    ),
    (
        Pretrain,
        source!("crates/adainf-core/src/method/mod.rs"),
        &["pub fn parse(name: &str)"],
    ),
    (
        Pretrain,
        source!("crates/adainf-core/src/train/schedule.rs"),
        &[
            "pub fn tabulate<",
            "fn check_value(",
            "pub fn validate(&self, steps: usize)",
            "pub fn check_data(",
        ],
    ),
    (
        Pretrain,
        source!("crates/adainf-core/src/data/loader.rs"),
        &["pub fn mixed("],
    ),
    (
        Pretrain,
        source!("crates/adainf-core/src/augment/mod.rs"),
        &["pub fn validate(&self)", "pub fn preset(name: &str)"],
    ),
    (
        Diffusion,
        source!("crates/adainf-core/src/generator/diffusion/run/mod.rs"),
        &[
            "pub fn check(&self, real: &Dataset)",
            "pub fn check_options(&self)",
            "pub fn unet(&self",
        ],
    ),
    (
        Diffusion,
        source!("crates/adainf-core/src/generator/diffusion/mod.rs"),
        &["pub fn linear(timesteps: usize)"],
    ),
    (
        Diffusion,
        source!("crates/adainf-core/src/generator/diffusion/unet.rs"),
        &[
            "pub fn check(&self)",
            "pub fn check_layers(&self)",
            "fn check_images(&self)",
        ],
    ),
    (
        Sample,
        source!("crates/adainf-core/src/generator/diffusion/run/mod.rs"),
        &["pub fn check(&self, n: usize, schedule: &Schedule)"],
    ),
    (
        Sample,
        source!("crates/adainf-core/src/generator/diffusion/mod.rs"),
        &["pub fn sampling_steps(&self"],
    ),
];

/// Calls inside the checks that check nothing the user set: std, iterators, constructors,
/// the error constructors and the helpers whose key is their first argument (read at the
/// call, as `prob("flip_prob", ..)`).
const HARMLESS: &[&str] = &[
    "Error::config",
    "Error::Data",
    "prob",
    "positive",
    "crate::error::parse_one_of",
    ".contains",
    ".is_finite",
    ".is_multiple_of",
    ".max",
    ".min",
    ".iter",
    ".chain",
    ".flatten",
    ".any",
    ".find",
    ".zip",
    ".map",
    ".map_err",
    ".collect",
    ".copied",
    ".unwrap_or",
    ".unwrap_or_default",
    ".saturating_sub",
    ".len",
    ".is_empty",
    ".clone",
    ".name",
    ".info",
    ".join",
    ".position",
    ".value",
    ".sources",
    ".description",
    ".ema",
    ".generated_counts",
    ".shape",
    ".labeled_count",
    ".id",
    ".blocks",
    ".dtype",
    ".supports_dtype",
    ".filter",
    ".enumerate",
    ".push",
    ".rev",
    ".is_empty",
    ".iter_mut",
    ".resolutions",
    ".timesteps",
    ".skip",
    ".count",
    ".into_iter",
    ".with_capacity",
    "Vec::with_capacity",
    "RunSpec::new",
    "Shuffled::new",
    "TabulateError::Failed",
    "TabulateError::OutOfRange",
    "Box::new",
    "t_of",
    "value",
    ".classes",
    ".method",
    "AugSpec::default",
    "ViewPair::symmetric",
    "adainf",
    ".into",
];

/// The text of every function in `source` whose signature starts with `sig` (its body,
/// brace-matched outside strings, chars and comments); none is an error.
fn bodies<'a>(file: &str, source: &'a str, sig: &str) -> Vec<&'a str> {
    let found: Vec<&str> = source
        .match_indices(sig)
        .map(|(at, _)| {
            let b = source.as_bytes();
            let open = at + source[at..].find('{').unwrap();
            let (mut depth, mut i) = (0usize, open);
            loop {
                match b[i] {
                    b'/' if b[i + 1] == b'/' => {
                        i += source[i..].find('\n').unwrap();
                        continue;
                    }
                    b'"' => {
                        i += 1;
                        while b[i] != b'"' {
                            i += if b[i] == b'\\' { 2 } else { 1 };
                        }
                    }
                    b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return &source[open..=i];
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        })
        .collect();
    assert!(
        !found.is_empty(),
        "{file}: no function `{sig}`: update CHECKS"
    );
    found
}

/// What a check function's body says about keys and calls.
#[derive(Default)]
struct Scan {
    /// String literals that are a call's or a tuple's first item and look like a key.
    keys: Vec<String>,
    /// Callees: `name`, `Type::name` or `.name` (method).
    calls: Vec<String>,
    /// First arguments of `Error::config` that are not a literal.
    dynamic: Vec<String>,
}

fn scan(body: &str) -> Scan {
    let b = body.as_bytes();
    let mut out = Scan::default();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let key_like = |s: &str| {
        s.split('.').all(|part| {
            part == "{}"
                || (part.starts_with(|c: char| c.is_ascii_lowercase())
                    && part
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'))
        })
    };
    let mut last = b' '; // the last byte that is not whitespace
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            i += body[i..].find('\n').unwrap_or(body.len() - i);
            continue;
        }
        if c == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
            last = b'\'';
            continue;
        }
        if c == b'"' {
            let start = i + 1;
            i += 1;
            while b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            let lit = &body[start..i];
            if last == b'(' && key_like(lit) {
                out.keys.push(lit.to_string());
            }
            last = b'"';
            i += 1;
            continue;
        }
        if c == b'(' && i > 0 && ident(b[i - 1]) {
            let mut s = i;
            while s > 0 && (ident(b[s - 1]) || (b[s - 1] == b':' && s > 1 && b[s - 2] == b':')) {
                s -= if b[s - 1] == b':' { 2 } else { 1 };
            }
            let mut callee = body[s..i].to_string();
            if s > 0 && b[s - 1] == b'.' && (s < 2 || b[s - 2] != b'.') {
                callee = format!(".{callee}");
            }
            if callee == "Error::config" {
                let arg = body[i + 1..].trim_start();
                if !arg.starts_with('"') && !arg.starts_with("format!(\"schedule.{}\"") {
                    out.dynamic
                        .push(arg.split(',').next().unwrap().trim().to_string());
                }
            }
            out.calls.push(callee);
        }
        if !c.is_ascii_whitespace() {
            last = c;
        }
        i += 1;
    }
    out
}

/// Every key a check of `kind` names, read from the checks' source: `schedule.{}` stands for
/// each schedulable key.
fn checked_keys(kind: RunKind) -> std::collections::BTreeSet<String> {
    let checks: Vec<_> = CHECKS.iter().filter(|(k, _, _)| *k == kind).collect();
    // Every function read, by name (`Type::name` for the associated ones called by path).
    let scanned: Vec<String> = checks
        .iter()
        .flat_map(|(_, _, sigs)| sigs.iter())
        .map(|sig| {
            let name = sig.split("fn ").nth(1).unwrap();
            name[..name.find(['(', '<']).unwrap()].to_string()
        })
        .collect();
    let mut keys = std::collections::BTreeSet::new();
    let mut unknown = Vec::new();
    for (_, (file, source), sigs) in &checks {
        for sig in *sigs {
            for body in bodies(file, source, sig) {
                let found = scan(body);
                for call in &found.calls {
                    let name = call.rsplit([':', '.']).next().unwrap();
                    // A variant or a tuple struct (a constructor or a pattern) checks nothing.
                    let constructor = name.starts_with(|c: char| c.is_ascii_uppercase());
                    if !(constructor
                        || HARMLESS.contains(&call.as_str())
                        || scanned.iter().any(|s| s == name))
                    {
                        unknown.push(format!("{file}: `{sig}` calls `{call}`"));
                    }
                }
                for arg in &found.dynamic {
                    assert_eq!(
                        arg, "key",
                        "{file}: `{sig}`: Error::config({arg}, ..): a key this test cannot read"
                    );
                }
                for key in found.keys {
                    if NOT_KEYS.contains(&(*file, key.as_str())) {
                        continue;
                    }
                    match key.strip_suffix(".{}") {
                        Some(prefix) => keys.extend(
                            adainf_core::train::schedule::KEYS
                                .iter()
                                .map(|k| format!("{prefix}.{}", k.name)),
                        ),
                        None => {
                            keys.insert(key);
                        }
                    }
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "{unknown:#?}\nadd each function to CHECKS (and its keys to CASES) or, if it checks nothing the user set, to HARMLESS"
    );
    keys
}

/// Literals in a key's place in the checks that are not keys: (file, text).
const NOT_KEYS: &[(&str, &str)] = &[
    // Sampler::mixed: which part of the batch cannot be filled.
    ("crates/adainf-core/src/data/loader.rs", "generated"),
    ("crates/adainf-core/src/data/loader.rs", "real"),
];

/// The checks of every run kind read from their source name keys; each such key has a case
/// in `CASES` (or is in `UNREACHABLE` with the reason). A check added without a case, or a
/// call from a check to a function this test does not read or know, fails here.
#[test]
fn every_check_of_a_runs_options_has_a_case() {
    for kind in [Pretrain, Diffusion, Sample] {
        let checked = checked_keys(kind);
        let cased: std::collections::BTreeSet<&str> = CASES
            .iter()
            .filter(|c| c.0 == kind)
            .map(|c| c.1)
            .chain(UNREACHABLE.iter().filter(|u| u.0 == kind).map(|u| u.1))
            .collect();
        let missing: Vec<&String> = checked
            .iter()
            .filter(|k| !cased.contains(k.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{kind:?}: checks name {missing:?} but CASES has no bad value for them"
        );
        eprintln!("{kind:?}: {} checked keys: {checked:?}", checked.len());
    }
}

/// A finished generator in `ws`'s runs folder, and the options it was trained with.
const GENERATOR: &str = r#"let real = data::synthetic(#{ n: 16, seed: 1, size: 16 });
let gbase = #{ steps: 2, batch: 4, channels: 4, channel_mult: [1, 2], attention_at: [8],
               timesteps: 20, dropout: 0.1 };
let g = gen::diffusion(real, gbase);
"#;

/// Runs every case of `kind` in `ws` (whose runs folder holds finished runs) with each of
/// `jobs`: the script fails with code 1 and an error naming the key, no internal error and
/// no `--retry-failed` hint, and the runs folder is byte-for-byte what it was.
fn rejected(ws: &Workspace, kind: RunKind, jobs: &[Option<&str>]) -> usize {
    let before = snapshot(&ws.0.join("runs"));
    let mut tried = 0;
    for Case(_, key, opt, needle) in CASES.iter().filter(|c| c.0 == kind) {
        let source = match kind {
            // A new run first: a batch with a bad run trains none of them.
            Pretrain => format!(
                "{BASE}let runs = train::pretrain_all([base + #{{ seed: 9 }}, base + #{{ {opt} }}]);\nprint(runs.len());\n"
            ),
            Diffusion => format!(
                "{GENERATOR}let gs = gen::diffusion_all(real, [gbase + #{{ seed: 9 }}, gbase + #{{ {opt} }}]);\n"
            ),
            Sample => format!("{GENERATOR}let s = gen::sample(g, {opt});\n"),
        };
        let script = ws.script("bad.rhai", &source);
        for jobs in jobs {
            let extra: Vec<&str> = jobs.iter().flat_map(|j| ["--jobs", j]).collect();
            let out = ws.run(&script, &extra);
            let (_, stderr) = text(&out);
            let want = needle.map_or(format!("`{key}`"), String::from);
            assert_eq!(out.status.code(), Some(1), "{opt} {jobs:?}: {stderr}");
            assert!(
                stderr.contains(&want) && !stderr.contains("internal error"),
                "{opt} {jobs:?}: wanted {want} in: {stderr}"
            );
            assert!(!stderr.contains("--retry-failed"), "{opt}: {stderr}");
            let what = format!("{opt} {jobs:?}");
            assert_unchanged(&before, &snapshot(&ws.0.join("runs")), &what);
            tried += 1;
        }
    }
    tried
}

/// Each rejected pretraining option (in process and under `--jobs 2`) ends in a clear error
/// naming the key, and the runs folder, which holds a finished run, is byte-for-byte what it
/// was.
#[test]
fn a_rejected_run_leaves_the_runs_folder_unchanged() {
    let ws = Workspace::new("rejected");
    finished_run(&ws);
    let tried = rejected(&ws, Pretrain, &[None, Some("2")]);
    assert_eq!(tried, 2 * CASES.iter().filter(|c| c.0 == Pretrain).count());
    // A one-image set names the data, not a batch default the user never set.
    let before = snapshot(&ws.0.join("runs"));
    let script = ws.script(
        "one.rhai",
        "let one = data::subset(data::synthetic(#{ n: 10, size: 8 }), #{ n: 1 });\ntrain::pretrain(#{ data: one, width: 4, steps: 2 });\n",
    );
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("at least 2") && !stderr.contains("256"),
        "{stderr}"
    );
    assert_eq!(snapshot(&ws.0.join("runs")), before);
}

/// A precision the run's device cannot compute in (WGSL has no bf16) is refused before the
/// run folder is made, in process and under `--jobs 2`: it used to leave a folder with
/// `failed.json` that the next run reported as a failed run.
#[cfg(feature = "wgpu")]
#[test]
fn a_precision_the_device_lacks_leaves_the_runs_folder_unchanged() {
    let ws = Workspace::new("rejected-precision");
    finished_run(&ws);
    let before = snapshot(&ws.0.join("runs"));
    let script = ws.script(
        "bf16.rhai",
        &format!(
            "{BASE}let runs = train::pretrain_all([base + #{{ seed: 9 }}, base + #{{ device: \"vulkan\", precision: \"bf16\" }}]);\n"
        ),
    );
    for extra in [&[][..], &["--jobs", "2"]] {
        let out = ws.run(&script, extra);
        let (_, stderr) = text(&out);
        if stderr.contains("no Vulkan") || stderr.contains("cannot open") {
            eprintln!("skipped: no Vulkan device: {stderr}");
            return;
        }
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("`precision`") && stderr.contains("not supported"),
            "{extra:?}: {stderr}"
        );
        assert!(!stderr.contains("--retry-failed"), "{extra:?}: {stderr}");
        assert_unchanged(
            &before,
            &snapshot(&ws.0.join("runs")),
            &format!("{extra:?}"),
        );
    }
}

/// Each rejected option of a DDPM generator, and of sampling one, ends in a clear error naming
/// the key, and the runs folder, which holds the finished generator, is byte-for-byte what it
/// was (a batch with a bad generator trains none; a bad sampling draws nothing).
#[test]
fn a_rejected_generator_or_sampling_leaves_the_runs_folder_unchanged() {
    let ws = Workspace::new("rejected-generator");
    let script = ws.script("g.rhai", GENERATOR);
    let out = ws.run(&script, &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(rejected(&ws, Diffusion, &[None]) > 0);
    assert!(rejected(&ws, Sample, &[None]) > 0);
}

/// `adainf worker` on the request `edited` (written to `<ws>/NAME.json`): it must fail with
/// code 1 and leave `<ws>/runs` as it was; its message.
fn refused(ws: &Workspace, name: &str, edited: serde_json::Value) -> String {
    let runs = ws.0.join("runs");
    let path = ws.0.join(format!("{name}.json"));
    std::fs::write(&path, edited.to_string()).unwrap();
    let before = snapshot(&runs);
    let out = bin()
        .args(["worker", "--runs-dir"])
        .arg(&runs)
        .arg(&path)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert_eq!(snapshot(&runs), before, "{name}");
    stderr
}

/// A generator's request edited by hand is refused by `adainf worker` with the reason, before
/// anything is written: an id that is a path, options that cannot train (checked without the
/// data, and against it), an unknown run kind, an unknown option.
#[test]
fn an_edited_generator_request_is_refused_clearly() {
    let ws = Workspace::new("edited-generator-request");
    let script = ws.script("g.rhai", GENERATORS);
    let out = ws.run(&script, &["--jobs", "2", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let id = value(&text(&out).0, "id");
    let original: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.0.join("runs").join(&id).join("request.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(original["kind"], "diffusion");
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = original.clone();
        f(&mut v);
        v
    };
    for (name, edited, want) in [
        (
            "escape",
            edit(&|v| v["id"] = "../escaped".into()),
            "not a run id",
        ),
        ("steps", edit(&|v| v["config"]["steps"] = 0.into()), "steps"),
        (
            "mult",
            edit(&|v| v["config"]["channel_mult"] = serde_json::json!([])),
            "channel_mult",
        ),
        ("kind", edit(&|v| v["kind"] = "gan".into()), "`kind`"),
        (
            "unknown",
            edit(&|v| v["config"]["stepz"] = 3.into()),
            "stepz",
        ),
    ] {
        let stderr = refused(&ws, name, edited);
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(stderr.contains(&format!("{name}.json")), "{name}: {stderr}");
    }
    assert!(
        !ws.0.join("escaped").exists(),
        "a folder was made outside the runs folder"
    );
}

/// A request edited to carry another method's setting (a queue for SimCLR, Barlow's scale for
/// BYOL) is refused with the key and its method named, before anything is written; no panic.
#[test]
fn an_edited_request_with_another_methods_settings_is_a_clear_error() {
    let ws = Workspace::new("edited-request");
    let dir = finished_run(&ws);
    let request = dir.join("request.json");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    let refused = |name: &str, edited: serde_json::Value| refused(&ws, name, edited);
    // A setting of another method than the request's cannot be read into its config.
    for (method, foreign, owner) in [
        ("simclr", "queue_size", "mocov2"),
        ("byol", "barlow_scale", "barlow"),
    ] {
        let mut edited = original.clone();
        edited["config"]["method"] = method.into();
        edited["config"][foreign] = 16.into();
        let stderr = refused(method, edited);
        assert!(
            stderr.contains(&format!("`{foreign}` only applies to {owner}")),
            "{stderr}"
        );
    }
    // An id edited into a path (`../x`) is refused before anything is written: the failure
    // record used to land outside the runs folder.
    let mut edited = original.clone();
    edited["id"] = "../escaped".into();
    let stderr = refused("escape", edited);
    assert!(stderr.contains("not a run id"), "{stderr}");
    assert!(
        !ws.0.join("escaped").exists(),
        "a folder was made outside the runs folder"
    );
}

/// A finished run whose result, config, metrics or weights changed is reported with the
/// file named and what to do; `--retry-failed` trains it again and the result is the
/// untouched one's.
#[test]
fn a_changed_finished_run_is_reported_and_retrained_on_retry() {
    let ws = Workspace::new("changed");
    let dir = finished_run(&ws);
    let script = ws.0.join("ok.rhai");
    let first = text(&ws.run(&script, &[])).0;
    assert!(first.contains("cached=true"), "{first}");
    let accuracy = value(&first, "acc");
    let knn = value(&first, "knn");
    type Edit = (&'static str, fn(&Path));
    let edits: [Edit; 5] = [
        ("result.json", |p| {
            let t = std::fs::read_to_string(p).unwrap();
            let mut j: serde_json::Value = serde_json::from_str(&t).unwrap();
            j["accuracy"] = 0.99.into();
            std::fs::write(p, j.to_string()).unwrap();
        }),
        ("config.json", |p| {
            let t = std::fs::read_to_string(p).unwrap();
            std::fs::write(p, t.replace("\"steps\": 6", "\"steps\": 7")).unwrap();
        }),
        ("metrics.jsonl", |p| std::fs::remove_file(p).unwrap()),
        ("backbone.bpk", |p| {
            let b = std::fs::read(p).unwrap();
            std::fs::write(p, &b[..b.len() / 2]).unwrap();
        }),
        ("backbone.bpk", |p| std::fs::remove_file(p).unwrap()),
    ];
    for (file, edit) in edits {
        edit(&dir.join(file));
        let out = ws.run(&script, &[]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {stdout}{stderr}");
        assert!(
            stderr.contains(file)
                && stderr.contains("changed after it finished")
                && stderr.contains("--retry-failed"),
            "{file}: {stderr}"
        );
        // The listing (and the HTML report, which reads it) shows a changed record as damaged,
        // naming the file, never as done with the edited numbers. Weights are checked on use.
        if !file.ends_with(".bpk") {
            let out = bin()
                .args(["runs", "--json"])
                .arg(ws.0.join("runs"))
                .output()
                .unwrap();
            let row: serde_json::Value = serde_json::from_str(text(&out).0.trim()).unwrap();
            assert_eq!(row["state"], "damaged", "{file}: {row}");
            assert!(
                row["error"].as_str().unwrap().contains(file),
                "{file}: {row}"
            );
            assert!(row["accuracy"].is_null(), "{file}: {row}");
        }
        let out = ws.run(&script, &["--retry-failed"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(stdout.contains("cached=false"), "{file}: {stdout}");
        assert_eq!(
            (value(&stdout, "acc"), value(&stdout, "knn")),
            (accuracy.clone(), knn.clone()),
            "{file}"
        );
    }
}

/// A damaged checkpoint of an unfinished run says what to do, and `--retry-failed` discards it
/// and trains the run from the start (same result as an uninterrupted run).
#[test]
fn a_damaged_checkpoint_says_what_to_do_and_a_retry_trains_from_the_start() {
    let ws = Workspace::new("checkpoint");
    let dir = finished_run(&ws);
    let script = ws.0.join("ok.rhai");
    let want = value(&text(&ws.run(&script, &[])).0, "acc");
    // Unfinished again, with its last checkpoint truncated.
    for f in ["seal.json", "result.json"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let encoder = dir.join("checkpoint/encoder.bpk");
    let bytes = std::fs::read(&encoder).unwrap();
    std::fs::write(&encoder, &bytes[..bytes.len() / 3]).unwrap();
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("checkpoint") && stderr.contains("--retry-failed"),
        "{stderr}"
    );
    for attempt in 0..2 {
        let out = ws.run(&script, &["--retry-failed"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "attempt {attempt}: {stderr}");
        assert_eq!(value(&stdout, "acc"), want);
    }
}

/// SIGKILL of a `--jobs` driver stops its workers (they checkpoint and exit) instead of
/// leaving them running as orphans.
#[test]
fn workers_stop_when_their_driver_is_killed() {
    let ws = Workspace::new("orphans");
    let script = ws.script(
        "long.rhai",
        &format!(
            "{BASE}let runs = train::pretrain_all([base + #{{ steps: 100000, seed: 1 }}, base + #{{ steps: 100000, seed: 2 }}]);\n"
        ),
    );
    let mut driver = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("runs"))
        .args(["--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let driver_pid = driver.id().to_string();
    // Wait for both workers to start.
    let workers = || -> Vec<String> {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &driver_pid])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 && start.elapsed().as_secs() < 120 {
        seen = workers();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(seen.len(), 2, "the workers did not start");
    driver.kill().unwrap();
    driver.wait().unwrap();
    let alive = |pid: &str| {
        Path::new(&format!("/proc/{pid}")).exists() && {
            // A zombie (exited, not yet reaped by init) counts as stopped.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.contains(") Z ")
        }
    };
    let start = std::time::Instant::now();
    while seen.iter().any(|p| alive(p)) && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let left: Vec<&String> = seen.iter().filter(|p| alive(p)).collect();
    for p in &left {
        let _ = std::process::Command::new("kill").args(["-9", p]).status();
    }
    assert!(left.is_empty(), "workers {left:?} outlived their driver");
}

/// The DDPM samples a batch trains on (`gen::sample`, stored in their sampling run's folder)
/// deleted, unfinished, changed or drawn again between the driver and a worker: the worker
/// stops with one error naming the samples' folder and saying what to do, trains nothing, and
/// the runs folder is unchanged but for the failure it records for the driver (`failed.json`
/// of its run). The driver then names the failed run, and `--retry-failed` draws the samples
/// again and trains the runs to the first results.
#[test]
fn samples_gone_or_changed_before_the_worker_are_a_clear_error() {
    let ws = Workspace::new("samples-between");
    let script = ws.script("s.rhai", SAMPLED_SWEEP);
    let first = ws.run(&script, &["--jobs", "2", "--quiet"]);
    let (out, err) = text(&first);
    assert!(first.status.success(), "{err}");
    let results = run_results(&out);
    let runs = ws.0.join("runs");
    let samples = samples_dir(&runs);
    let kept = ws.0.join("samples-kept");
    copy_dir(&samples, &kept);
    // The request of run 0 as the driver leaves it for a worker: its folder holds only it.
    let run = runs.join(&results[0].0);
    let request = std::fs::read(run.join("request.json")).unwrap();
    std::fs::remove_dir_all(&run).unwrap();
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("request.json"), &request).unwrap();
    let npz = samples.join("samples.npz");
    let flip_a_pixel = |npz: &Path| {
        let mut bytes = std::fs::read(npz).unwrap();
        let last = bytes.len() - 200;
        bytes[last] ^= 0x55;
        std::fs::write(npz, bytes).unwrap();
    };
    let cases: [(&str, &dyn Fn(), &str); 4] = [
        (
            "deleted",
            &|| std::fs::remove_dir_all(&samples).unwrap(),
            "their folder is missing",
        ),
        (
            "unfinished",
            &|| std::fs::remove_file(samples.join("seal.json")).unwrap(),
            "no seal.json",
        ),
        (
            "changed",
            &|| flip_a_pixel(&npz),
            "changed after they were drawn (samples.npz: its SHA-256 differs",
        ),
        (
            "drawn again",
            &|| {
                // Other samples sealed in the folder: the seal is right, the set is not.
                flip_a_pixel(&npz);
                let seal = samples.join("seal.json");
                let mut v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&seal).unwrap()).unwrap();
                v["files"]["samples.npz"] = sha256(&npz).into();
                std::fs::write(&seal, v.to_string()).unwrap();
            },
            "were drawn again after this set was made",
        ),
    ];
    for (case, damage, want) in cases {
        damage();
        let before = snapshot(&runs);
        let out = bin()
            .args(["worker", "--runs-dir"])
            .arg(&runs)
            .arg(run.join("request.json"))
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{case}: no error line in {stderr}"));
        for part in [
            &format!("{}: the 8 samples of generator", samples.display())[..],
            want,
            "Run the script again with --retry-failed",
        ] {
            assert!(error.contains(part), "{case}: `{part}` missing in {error}");
        }
        // Only the failure the driver reports was written.
        let mut after = snapshot(&runs);
        let failed = after
            .remove(&run.join("failed.json").display().to_string())
            .unwrap_or_else(|| panic!("{case}: no failure recorded"));
        assert!(
            String::from_utf8_lossy(&failed).contains(want),
            "{case}: {}",
            String::from_utf8_lossy(&failed)
        );
        assert_unchanged(&before, &after, case);
        std::fs::remove_file(run.join("failed.json")).unwrap();
        let _ = std::fs::remove_dir_all(&samples);
        copy_dir(&kept, &samples);
    }
    // The samples deleted before a worker ran: the driver names the failed run and what to do;
    // --retry-failed draws the samples again and trains it to the first result.
    std::fs::remove_dir_all(&samples).unwrap();
    let worker = bin()
        .args(["worker", "--runs-dir"])
        .arg(&runs)
        .arg(run.join("request.json"))
        .output()
        .unwrap();
    assert_eq!(worker.status.code(), Some(1));
    let again = ws.run(&script, &["--jobs", "2", "--quiet"]);
    let (_, err) = text(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("run {} failed", results[0].0))
            && err.contains("their folder is missing")
            && err.contains("--retry-failed"),
        "{err}"
    );
    let retried = ws.run(&script, &["--jobs", "2", "--quiet", "--retry-failed"]);
    let (out, err) = text(&retried);
    assert!(retried.status.success(), "{err}");
    assert_eq!(run_results(&out), results, "retried vs first");
}

/// Copies the files of the folder `from` (no subfolders) into a new folder `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The SHA-256 of a file, in hex (`sha256sum`).
fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A runs folder that is a link to nothing, or a file standing at a run's folder name, is one
/// message naming the path and what to do (it was "File exists (os error 17)").
#[test]
fn a_runs_folder_in_the_way_names_the_path_and_the_fix() {
    let source = format!("{BASE}let run = train::pretrain(base);\nprint(`id=${{run.id}}`);\n");
    // The run's id, from the same run in another workspace.
    let first = Workspace::new("runs-in-the-way-first");
    let out = first.run(&first.script("ok.rhai", &source), &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let id = value(&stdout, "id");
    let ws = Workspace::new("runs-in-the-way");
    let script = ws.script("ok.rhai", &source);
    let runs = ws.0.join("runs");
    // A dangling link as the runs folder.
    std::os::unix::fs::symlink(ws.0.join("nowhere"), &runs).unwrap();
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: this is a link to", runs.display()))
            && stderr.contains("nowhere")
            && stderr.contains("does not exist")
            && !stderr.contains("os error"),
        "{stderr}"
    );
    assert!(!ws.0.join("nowhere").exists());
    // A file where the run's folder is to be made.
    std::fs::remove_file(&runs).unwrap();
    std::fs::create_dir(&runs).unwrap();
    std::fs::write(runs.join(&id), "in the way").unwrap();
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: a file stands where this folder",
            runs.join(&id).display()
        )) && stderr.contains("move or remove it")
            && !stderr.contains("os error"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(runs.join(&id)).unwrap(), b"in the way");
}

/// Deleting the runs folder while a run trains stops the run at its next metrics row with a
/// message naming the run folder, and the folder is not made again (the run used to train to
/// the end, remake the folder and fail with "cannot read it to seal the run").
#[test]
fn a_runs_folder_deleted_while_training_stops_the_run_clearly() {
    let ws = Workspace::new("runs-deleted");
    let script = ws.script(
        "long.rhai",
        &format!(
            "{BASE}print(\"start\");\nlet run = train::pretrain(base + #{{ steps: 100000, checkpoint_every: 50 }});\n"
        ),
    );
    let mut child = ws
        .command(&script, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let runs = ws.0.join("runs");
    // Once the run has logged a row, its folder is there: delete the whole runs folder.
    let logged = || {
        std::fs::read_dir(&runs).ok().is_some_and(|d| {
            d.flatten().any(|e| {
                std::fs::metadata(e.path().join("metrics.jsonl")).is_ok_and(|m| m.len() > 0)
            })
        })
    };
    let start = std::time::Instant::now();
    while !logged() {
        assert!(
            start.elapsed().as_secs() < 120,
            "the run never logged a row"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&runs).unwrap();
    assert!(
        ended_within(&mut child, std::time::Duration::from_secs(120)),
        "the run went on for 120 s after its runs folder was deleted"
    );
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the run folder is gone") && !stderr.contains("seal"),
        "{stderr}"
    );
    assert!(!runs.exists(), "the deleted runs folder was made again");
}
