//! `--jobs N`: the runs of a batch (of any run kind: pretraining runs, generators) in up to N
//! worker processes on this machine (`adainf worker REQUEST`), each under its run's claim, so two drivers on one sweep never train a run twice.
//! A worker's output goes to its run's `worker.log`. On a GPU device, worker slot i gets
//! device i mod the number of GPUs; on flex the CPU threads are divided between the workers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cache::failure;
use super::request::{Request, RunKind};
use super::{REQUEST_FILE, WORKER_LOG};
use crate::error::{Error, Result};
use crate::train::run::{read_rows, run_dir, write_json};
use crate::train::{CancelFlag, Progress};

/// The environment variable that gives a worker its driver's pid: the worker stops (after a
/// checkpoint) when its driver is gone.
pub const DRIVER_PID_ENV: &str = "ADAINF_DRIVER_PID";

/// How the workers are started.
#[derive(Clone, Debug)]
pub struct Workers {
    /// The adainf binary the workers run (the driver's own).
    pub binary: PathBuf,
    /// Most worker processes running at once (`--jobs N`).
    pub jobs: usize,
    /// Device of each worker slot, used round-robin (`["flex"]`, or `cuda:0`, `cuda:1`, …).
    pub devices: Vec<String>,
    /// CPU threads per worker (`RAYON_NUM_THREADS`), for CPU devices.
    pub threads: Option<usize>,
    /// Train runs with a recorded failure again (passes `--retry-failed` to the workers).
    pub retry_failed: bool,
}

/// Whether a run of `kind` still has to be trained by someone (not finished, and not a
/// recorded failure that is not to be retried).
pub fn needs_training(runs_dir: &Path, id: &str, kind: RunKind, retry_failed: bool) -> bool {
    let dir = run_dir(runs_dir, id);
    if retry_failed && crate::train::seal::damaged(&dir, &kind.sealed_files()) {
        return true;
    }
    match kind.finished(&dir) {
        Ok(true) => false,
        Ok(false) => retry_failed || failure(&dir).is_none(),
        // Changed after it finished: trained again on a retry, reported otherwise.
        Err(_) => retry_failed,
    }
}

/// Writes each request into its run folder and returns the path.
pub fn write_request(runs_dir: &Path, request: &Request) -> Result<PathBuf> {
    let dir = run_dir(runs_dir, request.id());
    crate::files::create_folder(&dir)?;
    let path = dir.join(REQUEST_FILE);
    write_json(&path, request)?;
    Ok(path)
}

/// The fields every run kind's `metrics.jsonl` rows have.
#[derive(Clone, serde::Deserialize)]
struct StepLoss {
    step: usize,
    loss: f64,
}

/// One line per run in flight: its step and its last loss, from its `metrics.jsonl` (runs
/// that have not logged yet say so).
pub fn live_lines(runs_dir: &Path, ids: &[&str]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            let dir = run_dir(runs_dir, id);
            let last = read_rows::<StepLoss>(&dir.join("metrics.jsonl"))
                .ok()
                .and_then(|m| m.last().cloned());
            let short = super::short_id(id);
            match last {
                Some(m) => format!("  run {short}: step {} · loss {:.4}", m.step, m.loss),
                None => format!("  run {short}: starting"),
            }
        })
        .collect()
}

/// Trains the requests that need it in worker processes and returns when every worker has
/// exited (the caller then collects each run from its folder).
pub fn run_workers(
    requests: &[Request],
    runs_dir: &Path,
    workers: &Workers,
    progress: &mut dyn Progress,
    cancel: &CancelFlag,
) -> Result<()> {
    let mut queue: Vec<(String, PathBuf, Option<&str>)> = Vec::new();
    for r in requests {
        if needs_training(runs_dir, r.id(), r.kind(), workers.retry_failed)
            && !queue.iter().any(|(id, ..)| id == r.id())
        {
            let path = write_request(runs_dir, r)?;
            queue.push((r.id().to_string(), path, r.device()));
        }
    }
    if queue.is_empty() {
        return Ok(());
    }
    let total = queue.len();
    let jobs = workers.jobs.max(1).min(total);
    progress.note(&format!(
        "{total} run(s) to train in {jobs} worker process(es); logs in each run's {WORKER_LOG}"
    ));
    queue.reverse();
    let mut slots: Vec<Option<(Child, String)>> = (0..jobs).map(|_| None).collect();
    let mut finished = 0usize;
    let mut last_line = Instant::now();
    loop {
        if cancel.is_cancelled() {
            for (child, _) in slots.iter_mut().flatten() {
                let _ = child.kill();
                let _ = child.wait();
            }
            return Err(Error::Cancelled);
        }
        for (slot, entry) in slots.iter_mut().enumerate() {
            if let Some((child, _)) = entry
                && let Ok(Some(_status)) = child.try_wait()
            {
                *entry = None;
                finished += 1;
            }
            if entry.is_none()
                && let Some((id, path, asked)) = queue.pop()
            {
                // The run's own `device` option first, else the slot's.
                let device = asked.unwrap_or(&workers.devices[slot % workers.devices.len().max(1)]);
                *entry = Some((spawn(workers, runs_dir, &id, &path, device)?, id));
            }
        }
        if slots.iter().all(Option::is_none) && queue.is_empty() {
            return Ok(());
        }
        if last_line.elapsed() >= Duration::from_secs(10) {
            let live: Vec<&str> = slots.iter().flatten().map(|(_, id)| id.as_str()).collect();
            progress.note(&format!("{finished} of {total} run(s) done; running:"));
            for line in live_lines(runs_dir, &live) {
                progress.note(&line);
            }
            last_line = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spawn(
    workers: &Workers,
    runs_dir: &Path,
    id: &str,
    request: &Path,
    device: &str,
) -> Result<Child> {
    let log_path = run_dir(runs_dir, id).join(WORKER_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::file(&log_path, format!("cannot open the worker log: {e}")))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::file(&log_path, format!("cannot open the worker log: {e}")))?;
    let mut cmd = Command::new(&workers.binary);
    cmd.arg("worker")
        .arg("--runs-dir")
        .arg(runs_dir)
        .arg("--device")
        .arg(device)
        .arg(request)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if workers.retry_failed {
        cmd.arg("--retry-failed");
    }
    cmd.env(DRIVER_PID_ENV, std::process::id().to_string());
    if let Some(t) = workers.threads {
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    // A driver inside a Slurm array task must not hand its task identity to its workers: a
    // claim with that identity is taken back at once as a requeued task's own.
    cmd.env_remove("SLURM_ARRAY_JOB_ID")
        .env_remove("SLURM_ARRAY_TASK_ID");
    cmd.spawn().map_err(|e| {
        Error::file(
            &workers.binary,
            format!("cannot start a worker process: {e}"),
        )
    })
}
