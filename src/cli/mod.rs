//! The command line: `run`, `check`, `api` and `bench`. It owns the terminal (progress bars or
//! plain lines), exit codes (0 ok, 1 script/data/device error, 2 usage) and turns any panic
//! from below into one message instead of a crash trace.

mod live_report;
pub mod progress;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rhai::{Dynamic, Map};

use burn::tensor::Device;

use crate::bench::diffusion::{self, DiffusionBench};
use crate::bench::peer::{self, PeerOptions, PeerOutcome};
use crate::bench::{self, BenchConfig};
use crate::data::batches::Placement;
use crate::device::DeviceSpec;
use crate::generator::diffusion::run::{self as diffusion_run, SampleConfig};
use crate::host::{Host, HostConfig, api};
use crate::model::Backbone;
use crate::runs::{self, Executor, execute, local::Workers, request::Request, slurm::SlurmOptions};
use crate::train::config::Precision;
use crate::train::{CancelFlag, Progress, Silent, TrainContext};

#[derive(Parser)]
#[command(
    name = "adainf",
    version,
    about = "Scriptable contrastive-learning experiments with generated data (AdaInf)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a script.
    Run(RunArgs),
    /// Run a script, and again every time it or a module it imports is saved.
    Watch(watch::WatchArgs),
    /// Compile a script and check its calls and option keys without running it.
    Check { script: PathBuf },
    /// List every script function with its signature and options.
    Api {
        /// Also write Rhai definition files (`.d.rhai`) for the Rhai language server into this
        /// folder (made where missing).
        #[arg(long, value_name = "DIR")]
        defs: Option<PathBuf>,
        /// Print the reference as markdown (what docs/api.md holds).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// Print the reference as JSON: every function with its options (key, kind, doc,
        /// default), from the same definitions the parser uses.
        #[arg(long)]
        json: bool,
    },
    /// Measure train-step and augmentation throughput, or the diffusion generator against its
    /// PyTorch peer (JSON lines).
    Bench(BenchArgs),
    /// Try every compute device this build has and print what each opens (JSON lines).
    Devices,
    /// List the run cache: each run's state, method, key options, tags and metrics; or one
    /// run in detail.
    Runs(RunsArgs),
    /// Write one self-contained HTML page of a runs folder: runs table, sweep tables, curves,
    /// previews.
    Report(live_report::ReportArgs),
    /// Train run requests written by a driver (`--jobs`, `--executor slurm`); not for direct
    /// use.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Args)]
struct RunsArgs {
    /// The runs folder.
    #[arg(default_value = "runs")]
    dir: PathBuf,
    /// Show this run (an id or the start of one) in detail.
    #[arg(long)]
    id: Option<String>,
    /// One JSON object per run.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct WorkerArgs {
    /// Request files (`runs/<id>/request.json`).
    requests: Vec<PathBuf>,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    #[arg(long, default_value = "flex")]
    device: String,
    /// A file listing request paths, one per line; with --index, train line INDEX (Slurm
    /// array tasks).
    #[arg(long, requires = "index")]
    list: Option<PathBuf>,
    /// The line of --list to train (0 for the first).
    #[arg(long, requires = "list")]
    index: Option<usize>,
    #[arg(long)]
    retry_failed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorKind {
    /// This machine: in the script's process, or in --jobs worker processes.
    Local,
    /// Slurm job arrays (sbatch); the runs folder must be on a shared filesystem.
    Slurm,
}

#[derive(Args)]
struct RunArgs {
    script: PathBuf,
    /// flex (CPU), wgpu, vulkan, cuda or cuda:N.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Folder of the run cache.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// No progress output (script output still prints).
    #[arg(long)]
    quiet: bool,
    /// Folders searched for `import "name"` after the script's own folder.
    #[arg(long = "lib")]
    lib: Vec<PathBuf>,
    /// Script operation budget (a runaway loop stops with an error): each operation counts one,
    /// and so does each value the script copies (Rhai copies a value whole on assignment, so
    /// `a = [a]` in a loop is quadratic work); host functions such as training do not count.
    /// At least 1 (there is no unlimited setting: raise it instead).
    #[arg(long, default_value_t = 50_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_operations: u64,
    /// Memory limit in GiB: the script stops with an error once the process holds more (a
    /// value growing without end). Default: three quarters of the machine's memory.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_memory: Option<u64>,
    /// Train up to N runs of a batch (`train::pretrain_all`, `gen::diffusion_all`) at once, in
    /// worker processes.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// GPUs the local workers share (worker i gets cuda:i mod N; with --device cuda).
    #[arg(long, default_value_t = 1)]
    gpus: usize,
    /// Where runs are trained.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    executor: ExecutorKind,
    /// Train runs again whose earlier attempt failed.
    #[arg(long)]
    retry_failed: bool,
    /// Slurm partition (--executor slurm).
    #[arg(long)]
    slurm_partition: Option<String>,
    /// GPUs per Slurm task (`--gres=gpu:N`).
    #[arg(long)]
    slurm_gpus: Option<usize>,
    /// Time limit per Slurm task (e.g. 4:00:00).
    #[arg(long)]
    slurm_time: Option<String>,
    /// Slurm account.
    #[arg(long)]
    slurm_account: Option<String>,
    /// CPUs per Slurm task.
    #[arg(long)]
    slurm_cpus: Option<usize>,
    /// At most this many array tasks at once.
    #[arg(long)]
    slurm_throttle: Option<usize>,
    /// An extra line for the job script: `--qos=long` becomes `#SBATCH --qos=long`, anything
    /// else runs before the worker (e.g. `module load cuda`). Repeatable.
    #[arg(long)]
    slurm_extra: Vec<String>,
    /// Script parameters `key=value`, available as the map `params`.
    #[arg(last = true)]
    params: Vec<String>,
}

#[derive(Args)]
struct BenchArgs {
    /// flex (CPU), wgpu, vulkan, cuda or cuda:N.
    #[arg(long, default_value = "flex")]
    device: String,
    /// What to measure: `throughput` (augmentation, then the SimCLR train step), `losses` (the
    /// loss after each of --steps seeded SimCLR steps, to compare devices), or `diffusion` (the
    /// DDPM generator's training step and DDIM sampling, and the same on its PyTorch peer).
    #[arg(long, value_enum, default_value_t = Suite::Throughput)]
    suite: Suite,
    /// Images per step (default 128; 16 for the diffusion suite).
    #[arg(long)]
    batch: Option<usize>,
    /// Image side in pixels.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Timed steps (after warm-up).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// SimCLR suites: ResNet width (default 16).
    #[arg(long)]
    width: Option<usize>,
    /// SimCLR suites: resnet18 or resnet10 (default resnet18).
    #[arg(long)]
    backbone: Option<String>,
    /// Float type of the backbone's convolutions: f32, bf16 or f16 (f32 master weights;
    /// default f32; the diffusion suite is f32 only).
    #[arg(long)]
    precision: Option<String>,
    /// SimCLR suites: where the training data lives: auto, device or stream (default auto).
    #[arg(long)]
    placement: Option<String>,
    /// Diffusion suite: channels of the UNet's first level (default 32; 128 is the paper's
    /// model).
    #[arg(long)]
    channels: Option<usize>,
    /// Diffusion suite: DDIM steps of the timed sampling (default 50).
    #[arg(long)]
    sample_steps: Option<usize>,
    /// Diffusion suite: CPU threads, for adainf and the peer alike (default: RAYON_NUM_THREADS,
    /// else every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Diffusion suite: the Python that runs the PyTorch peer (default python3).
    #[arg(long)]
    python: Option<String>,
    /// Diffusion suite: run this peer script instead of the copy of scripts/ddpm_peer.py built
    /// into adainf.
    #[arg(long)]
    peer_script: Option<PathBuf>,
    /// Diffusion suite: measure adainf only.
    #[arg(long)]
    no_peer: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Suite {
    Throughput,
    Losses,
    Diffusion,
}

/// What `adainf bench` was asked to measure, its flags checked.
enum BenchPlan {
    /// The SimCLR suites: throughput, or the losses (true).
    Simclr(BenchConfig, bool),
    Diffusion(DiffusionBench, PeerOptions),
}

impl BenchArgs {
    /// The suite's configuration; a bad flag, or one the suite does not take, is a usage error
    /// naming it (nothing is measured).
    fn plan(&self) -> Result<BenchPlan, String> {
        fn given<'a>(flags: &[(&'a str, bool)]) -> Option<&'a str> {
            flags.iter().find(|(_, g)| *g).map(|(f, _)| *f)
        }
        for (flag, value, max, what) in [
            ("--steps", Some(self.steps), bench::MAX_STEPS, "timed steps"),
            (
                "--warmup",
                Some(self.warmup),
                bench::MAX_STEPS,
                "warm-up steps",
            ),
            ("--batch", self.batch, bench::MAX_BATCH, "images per step"),
            ("--threads", self.threads, bench::MAX_THREADS, "threads"),
        ] {
            if let Some(v) = value.filter(|v| *v > max) {
                return Err(format!(
                    "{flag} {v}: a benchmark takes at most {max} {what}; give a smaller count"
                ));
            }
        }
        if self.suite == Suite::Diffusion {
            if let Some(flag) = given(&[
                ("--width", self.width.is_some()),
                ("--backbone", self.backbone.is_some()),
                ("--placement", self.placement.is_some()),
            ]) {
                return Err(format!(
                    "{flag} is for the SimCLR suites (throughput, losses); the diffusion suite's \
                     model is set by --channels"
                ));
            }
            if let Some(p) = &self.precision {
                let p = Precision::parse(p).map_err(|e| e.to_string())?;
                if p != Precision::F32 {
                    return Err(format!(
                        "--precision {}: the diffusion suite measures f32 only (the generator \
                         trains in f32)",
                        p.name()
                    ));
                }
            }
            let cfg = DiffusionBench {
                channels: self.channels.unwrap_or(diffusion::DEFAULT_CHANNELS),
                batch: self.batch.unwrap_or(diffusion::DEFAULT_BATCH),
                size: self.size,
                warmup_steps: self.warmup,
                steps: self.steps,
                sample_steps: self.sample_steps.unwrap_or(SampleConfig::default().steps),
                threads: self.threads.unwrap_or_else(default_threads),
                device_name: String::new(),
            };
            let peer = PeerOptions {
                python: self
                    .python
                    .clone()
                    .unwrap_or_else(|| peer::DEFAULT_PYTHON.into()),
                script: self.peer_script.clone(),
                enabled: !self.no_peer,
            };
            cfg.check().map_err(|e| e.to_string())?;
            peer.check().map_err(|e| e.to_string())?;
            return Ok(BenchPlan::Diffusion(cfg, peer));
        }
        if let Some(flag) = given(&[
            ("--channels", self.channels.is_some()),
            ("--sample-steps", self.sample_steps.is_some()),
            ("--threads", self.threads.is_some()),
            ("--python", self.python.is_some()),
            ("--peer-script", self.peer_script.is_some()),
            ("--no-peer", self.no_peer),
        ]) {
            return Err(format!(
                "{flag} is for --suite diffusion; the SimCLR suites' model is set by --width and \
                 --backbone"
            ));
        }
        let cfg = BenchConfig {
            width: self.width.unwrap_or(16),
            batch: self.batch.unwrap_or(128),
            size: self.size,
            backbone: Backbone::parse(self.backbone.as_deref().unwrap_or("resnet18"))
                .map_err(|e| e.to_string())?,
            warmup_steps: self.warmup,
            steps: self.steps,
            device_name: String::new(),
            precision: Precision::parse(self.precision.as_deref().unwrap_or("f32"))
                .map_err(|e| e.to_string())?,
            placement: Placement::parse(self.placement.as_deref().unwrap_or("auto"))
                .map_err(|e| e.to_string())?,
        };
        cfg.check().map_err(|e| e.to_string())?;
        Ok(BenchPlan::Simclr(cfg, self.suite == Suite::Losses))
    }
}

/// CPU threads when --threads is not given: RAYON_NUM_THREADS where it is a positive number
/// (what rayon itself would use), else every core.
fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `key=value` → script value: integer, float, bool, else string.
fn parse_params(items: &[String]) -> Result<Map, String> {
    let mut map = Map::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!(
                "script parameter `{item}` must look like key=value"
            ));
        };
        if k.trim().is_empty() {
            return Err(format!(
                "script parameter `{item}` has no name before `=`; write it as key=value, e.g. lr=0.1"
            ));
        }
        let all_digits = {
            let digits = v.strip_prefix('-').unwrap_or(v);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        };
        let value = if let Ok(i) = v.parse::<i64>() {
            Dynamic::from(i)
        } else if all_digits {
            // Silently a float (1e20) would lose digits a script may count on.
            return Err(format!(
                "script parameter `{item}`: `{v}` is an integer too large for a script (at most {}); write it as a decimal number ({v}.0) if a float is meant",
                i64::MAX
            ));
        } else if let Ok(f) = v.parse::<f64>() {
            if !f.is_finite() {
                return Err(format!(
                    "script parameter `{item}`: `{v}` is not a finite number; give a number such as {}=0.1",
                    k.trim()
                ));
            }
            Dynamic::from(f)
        } else if let Ok(b) = v.parse::<bool>() {
            Dynamic::from(b)
        } else {
            Dynamic::from(v.to_string())
        };
        if map.insert(k.trim().into(), value).is_some() {
            return Err(format!(
                "script parameter `{}` is given twice; give each parameter once",
                k.trim()
            ));
        }
    }
    Ok(map)
}

fn open_device(name: &str) -> Result<(burn::tensor::Device, String), String> {
    let spec = DeviceSpec::parse(name).map_err(|e| e.to_string())?;
    let device = spec.open().map_err(|e| e.to_string())?;
    let described = spec.describe(&device);
    Ok((device, described))
}

fn make_host(args: &RunArgs, cancel: CancelFlag) -> Result<Host, (String, u8)> {
    let params = parse_params(&args.params).map_err(|e| (e, 2))?;
    // With Slurm the runs train on the cluster's nodes; the driver (often on a login node
    // without a GPU) keeps its own work — evaluation, reports — on the CPU.
    let driver_device = match args.executor {
        ExecutorKind::Slurm => "flex",
        ExecutorKind::Local => args.device.as_str(),
    };
    let (device, device_name) = open_device(driver_device).map_err(|e| (e, 1))?;
    let quiet = args.quiet;
    if !quiet && device_name != "flex" {
        eprintln!("device {device_name}");
    }
    let (executor, runs_dir) = executor_of(args).map_err(|e| (e, 2))?;
    let config = HostConfig {
        device,
        device_name,
        runs_dir,
        executor,
        retry_failed: args.retry_failed,
        max_operations: args.max_operations,
        max_memory_gib: args
            .max_memory
            .unwrap_or_else(crate::host::memory::default_limit_gib),
        params,
        lib_dirs: args.lib.clone(),
        cancel,
    };
    Ok(Host::new(
        config,
        Box::new(move || -> Box<dyn Progress> {
            if quiet {
                Box::new(Silent)
            } else {
                Box::new(progress::Terminal::new())
            }
        }),
    ))
}

/// The executor the flags ask for, and the runs folder (absolute for Slurm, whose tasks run
/// elsewhere).
fn executor_of(args: &RunArgs) -> Result<(Executor, PathBuf), String> {
    let binary = || {
        std::env::current_exe()
            .map_err(|e| format!("cannot find the adainf binary for worker processes: {e}"))
    };
    if args.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    if args.executor == ExecutorKind::Slurm && (args.jobs != 1 || args.gpus != 1) {
        return Err(
            "--jobs and --gpus are for the local executor; with --executor slurm, --slurm-throttle limits the tasks running at once and --slurm-gpus sets each task's GPUs".into(),
        );
    }
    let slurm_flags = args.slurm_partition.is_some()
        || args.slurm_gpus.is_some()
        || args.slurm_time.is_some()
        || args.slurm_account.is_some()
        || args.slurm_cpus.is_some()
        || args.slurm_throttle.is_some()
        || !args.slurm_extra.is_empty();
    if args.executor == ExecutorKind::Local && slurm_flags {
        return Err("--slurm-* options need --executor slurm".into());
    }
    match args.executor {
        ExecutorKind::Slurm => {
            crate::files::create_folder(&args.runs_dir).map_err(|e| e.to_string())?;
            let runs_dir = std::fs::canonicalize(&args.runs_dir).map_err(|e| {
                format!(
                    "{}: cannot resolve the runs folder: {e}",
                    args.runs_dir.display()
                )
            })?;
            let options = SlurmOptions {
                partition: args.slurm_partition.clone(),
                gpus: args.slurm_gpus,
                time: args.slurm_time.clone(),
                account: args.slurm_account.clone(),
                cpus_per_task: args.slurm_cpus,
                throttle: args.slurm_throttle,
                extra: args.slurm_extra.clone(),
            };
            Ok((
                Executor::Slurm {
                    options,
                    binary: binary()?,
                    device: args.device.clone(),
                },
                runs_dir,
            ))
        }
        ExecutorKind::Local if args.jobs > 1 => {
            // --gpus G spreads the workers over cuda:0..G-1; with one GPU the device given
            // (e.g. cuda:1) is used as is.
            let devices = if args.device.starts_with("cuda") && args.gpus > 1 {
                (0..args.gpus).map(|i| format!("cuda:{i}")).collect()
            } else {
                vec![args.device.clone()]
            };
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Ok((
                Executor::Local(Workers {
                    binary: binary()?,
                    jobs: args.jobs,
                    devices,
                    threads: (!args.device.starts_with("cuda") && !args.device.starts_with("wgpu"))
                        .then(|| (cores / args.jobs).max(1)),
                    retry_failed: args.retry_failed,
                }),
                args.runs_dir.clone(),
            ))
        }
        ExecutorKind::Local => Ok((Executor::InProcess, args.runs_dir.clone())),
    }
}

/// `adainf worker`: trains each request (a pretraining run or a generator) under its claim.
fn worker(args: WorkerArgs) -> ExitCode {
    let mut requests = args.requests.clone();
    if let (Some(list), Some(index)) = (&args.list, args.index) {
        let text = match std::fs::read_to_string(list) {
            Ok(t) => t,
            Err(e) => {
                return report(
                    &format!("{}: cannot read the request list: {e}", list.display()),
                    1,
                );
            }
        };
        match text.lines().filter(|l| !l.trim().is_empty()).nth(index) {
            Some(line) => requests.push(PathBuf::from(line.trim())),
            None => {
                return report(
                    &format!("{}: no request at index {index}", list.display()),
                    1,
                );
            }
        }
    }
    let (device, _) = match open_device(&args.device) {
        Ok(d) => d,
        Err(e) => return report(&e, 1),
    };
    // The first line of each worker.log: which device the run trains on.
    eprintln!("worker {}: on device {}", std::process::id(), args.device);
    let cancel = CancelFlag::new();
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, cancel.flag());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, cancel.flag());
    stop_with_driver(&cancel);
    let mut failed = 0;
    for path in &requests {
        let outcome = Request::read(path).and_then(|req| {
            let dir = crate::train::run::run_dir(&args.runs_dir, req.id());
            // A run another live process trains is left to it: a worker does not sit on a
            // GPU (or a Slurm slot) waiting; the driver watches the run folder.
            if let Some(held) = runs::claim::state(&dir)
                && held.is_live(runs::claim::timeout())
                && !crate::train::seal::is_sealed(&dir)
            {
                eprintln!(
                    "run {}: being trained by {}; leaving it to that process",
                    req.id(),
                    held.owner
                        .map_or("another process".to_string(), |o| o.to_string())
                );
                return Ok(());
            }
            // A set that cannot be made again, or a request that does not make its run, is
            // recorded, so the driver reports it instead of resubmitting it forever.
            let recorded = |e: crate::error::Error| {
                std::fs::create_dir_all(&dir).ok();
                let _ = runs::cache::record_failure(&dir, &e);
                e
            };
            let mut progress = progress::Terminal::new();
            let req = match req {
                Request::Pretrain(req) => *req,
                Request::Diffusion(req) => {
                    let data = req.dataset(&device).map_err(&recorded)?;
                    return diffusion_run::train(
                        &data,
                        &req.config(),
                        diffusion_run::DiffusionContext {
                            device: &device,
                            runs_dir: &args.runs_dir,
                            progress: &mut progress,
                            cancel: &cancel,
                            retry_failed: args.retry_failed,
                        },
                    )
                    .map(|_| ());
                }
            };
            let (data, probe) = req.datasets(&device).map_err(&recorded)?;
            let run = req.checked(&data, probe.as_ref()).map_err(&recorded)?;
            execute::pretrain_claimed(
                run,
                TrainContext {
                    device: &device,
                    placement: req.placement,
                    runs_dir: &args.runs_dir,
                    progress: &mut progress,
                    cancel: &cancel,
                },
                Some(&req),
                args.retry_failed,
            )
            .map(|_| ())
        });
        if let Err(e) = outcome {
            eprintln!("error: {}: {e}", path.display());
            failed += 1;
        }
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A local worker (`--jobs`) stops when its driver is gone (killed, even by SIGKILL, which
/// it cannot pass on): the driver's pid comes in `runs::local::DRIVER_PID_ENV`, and once the
/// worker's parent is no longer that process, the run checkpoints and the worker exits (the
/// next driver resumes it).
fn stop_with_driver(cancel: &CancelFlag) {
    let Some(driver) = std::env::var(runs::local::DRIVER_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return;
    };
    let flag = cancel.flag();
    std::thread::spawn(move || {
        while std::os::unix::process::parent_id() == driver {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        eprintln!("the driver (pid {driver}) is gone; checkpointing and stopping");
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
}

/// A host that runs nothing (for `check` and `api`): CPU device, no parameters.
fn offline_host() -> Result<Host, (String, u8)> {
    let args = RunArgs {
        script: PathBuf::new(),
        device: "flex".into(),
        runs_dir: "runs".into(),
        quiet: true,
        lib: vec![],
        max_operations: 1,
        max_memory: None,
        params: vec![],
        jobs: 1,
        gpus: 1,
        executor: ExecutorKind::Local,
        retry_failed: false,
        slurm_partition: None,
        slurm_gpus: None,
        slurm_time: None,
        slurm_account: None,
        slurm_cpus: None,
        slurm_throttle: None,
        slurm_extra: vec![],
    };
    make_host(&args, CancelFlag::new())
}

fn report(message: &str, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Runs `f`, turning a panic into an error message (exit code 1).
fn guarded(f: impl FnOnce() -> ExitCode) -> ExitCode {
    std::panic::set_hook(Box::new(|_| {}));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(payload) => {
            let what = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown failure".into());
            report(
                &format!(
                    "internal error: {what}\nThis is a bug in adainf or a backend; files already written are kept. Please report it with the script."
                ),
                1,
            )
        }
    }
}

/// Stack of the thread commands run on. Rhai walks nested values (printing, comparing,
/// dropping `[[[...]]]`) by recursion; 1 GiB holds millions of levels, more than a script can
/// build within its operation budget, and costs only the pages touched.
const STACK: usize = 1 << 30;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let thread = std::thread::Builder::new()
        .name("adainf".into())
        .stack_size(STACK);
    let cli = std::sync::Mutex::new(Some(cli));
    let take = || cli.lock().ok().and_then(|mut c| c.take());
    match std::thread::scope(|s| {
        thread
            .spawn_scoped(s, || take().map(command))
            .map(|h| h.join())
    }) {
        Ok(Ok(Some(code))) => code,
        Ok(_) => report("internal error: the command's thread ended abnormally", 1),
        // No thread with a large stack could be made: run here.
        Err(_) => take().map_or(ExitCode::from(1), command),
    }
}

fn command(cli: Cli) -> ExitCode {
    guarded(move || match cli.command {
        Command::Run(args) => {
            // Ctrl-C stops the run in flight at the next step; what was written stays.
            let cancel = CancelFlag::new();
            let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, cancel.flag());
            let mut host = match make_host(&args, cancel.clone()) {
                Ok(h) => h,
                Err((msg, code)) => return report(&msg, code),
            };
            match host.run_file(&args.script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) if cancel.is_cancelled() => report(
                    &format!(
                        "interrupted; finished runs and checkpoints are kept in {}",
                        args.runs_dir.display()
                    ),
                    130,
                ),
                Err(e) => report(&e.message, 1),
            }
        }
        Command::Watch(args) => watch::watch(args),
        Command::Check { script } => {
            let mut host = match offline_host() {
                Ok(h) => h,
                Err((msg, code)) => return report(&msg, code),
            };
            let problems = host.check_file(&script);
            if problems.is_empty() {
                println!("{}: ok", script.display());
                ExitCode::SUCCESS
            } else {
                for p in &problems {
                    eprintln!("error: {p}");
                }
                eprintln!("{} problem(s) found", problems.len());
                ExitCode::from(1)
            }
        }
        Command::Api {
            defs,
            markdown,
            json,
        } => {
            if let Some(dir) = defs.as_ref().filter(|d| d.exists() && !d.is_dir()) {
                return report(
                    &format!(
                        "--defs {}: this is a file; --defs names the folder to write the .d.rhai files in",
                        dir.display()
                    ),
                    2,
                );
            }
            if markdown {
                print!("{}", api::render_markdown());
            } else if json {
                print!("{}", api::render_json());
            } else {
                print!("{}", api::render());
            }
            if let Some(dir) = defs {
                let host = match offline_host() {
                    Ok(h) => h,
                    Err((msg, code)) => return report(&msg, code),
                };
                if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| {
                    host.engine()
                        .definitions()
                        .with_headers(true)
                        .write_to_dir(&dir)
                }) {
                    return report(
                        &format!("{}: cannot write the definition files: {e}", dir.display()),
                        1,
                    );
                }
                eprintln!("wrote Rhai definition files to {}", dir.display());
            }
            ExitCode::SUCCESS
        }
        Command::Worker(args) => worker(args),
        Command::Report(args) => live_report::report_command(args),
        Command::Runs(args) => {
            if let Some(id) = &args.id {
                return match runs::listing::detail(&args.dir, id) {
                    Ok(text) => {
                        print!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => report(&e.to_string(), 1),
                };
            }
            match runs::listing::list(&args.dir) {
                Ok(entries) if args.json => {
                    for e in &entries {
                        println!("{}", serde_json::to_string(e).unwrap_or_default());
                    }
                    ExitCode::SUCCESS
                }
                Ok(entries) => {
                    print!("{}", runs::listing::render(&entries));
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e.to_string(), 1),
            }
        }
        Command::Devices => {
            for line in crate::device::probe_all() {
                println!("{}", serde_json::to_string(&line).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Command::Bench(b) => bench_command(&b),
    })
}

/// `adainf bench`: checks the flags (exit 2), opens the device (exit 1), measures, prints
/// JSON lines.
fn bench_command(b: &BenchArgs) -> ExitCode {
    let plan = match b.plan() {
        Ok(plan) => plan,
        Err(e) => return report(&e, 2),
    };
    let spec = match DeviceSpec::parse(&b.device) {
        Ok(spec) => spec,
        Err(e) => return report(&e.to_string(), 2),
    };
    let (device, device_name) = match open_device(&b.device) {
        Ok(d) => d,
        Err(e) => return report(&e, 1),
    };
    fn print(line: &impl serde::Serialize) {
        println!("{}", serde_json::to_string(line).unwrap_or_default());
    }
    match plan {
        BenchPlan::Simclr(mut cfg, losses) => {
            cfg.device_name = device_name;
            let benches: &[fn(&BenchConfig, &Device) -> crate::Result<bench::BenchLine>] = if losses
            {
                &[bench::losses]
            } else {
                &[
                    bench::augmentation,
                    bench::train_step,
                    bench::train_step_scheduled,
                    bench::train_step_per_source,
                ]
            };
            for run in benches {
                match run(&cfg, &device) {
                    Ok(line) => print(&line),
                    Err(e) => return report(&e.to_string(), 1),
                }
            }
            ExitCode::SUCCESS
        }
        BenchPlan::Diffusion(mut cfg, peer_opts) => {
            cfg.device_name = device_name;
            let mut ours = Vec::new();
            if let Err(e) = cfg.run(&device, |line| {
                print(&line);
                ours.push(line);
            }) {
                return report(&e.to_string(), 1);
            }
            let outcome = peer::run(&peer_opts, &cfg, &spec, &ours);
            if let Some(note) = peer::note(&outcome) {
                print(&note);
            }
            match &outcome {
                PeerOutcome::Ran(lines) => {
                    for line in lines.iter().chain(&peer::ratios(&ours, lines)) {
                        print(line);
                    }
                    ExitCode::SUCCESS
                }
                PeerOutcome::Skipped(_) => ExitCode::SUCCESS,
                PeerOutcome::Failed(why) => report(why, 1),
            }
        }
    }
}
