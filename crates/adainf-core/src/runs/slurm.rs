//! `--executor slurm`: the runs of a batch that still need training go to the cluster as one
//! Slurm job array (`sbatch --parsable`), one array task per run, each running `adainf worker`
//! under the run's claim. The driver waits, printing the runs in flight, and returns when every
//! run is finished or failed; a task that ended without either is reported with its log.
//!
//! The runs folder must be on a filesystem every node mounts at the same path (the tasks read
//! their requests and write their runs there). The driver checks it: each task first writes a
//! `started` marker into the batch folder, and a task that Slurm reports running whose marker
//! never appears means the folder is not shared.
//!
//! Requeued and pre-empted tasks (`--requeue`, `scontrol requeue`) start again with the same
//! array task id: the worker takes its own claim back and resumes from the run's checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::local::{live_lines, needs_training, write_request};
use super::request::{Request, RunKind};
use crate::data::hash_hex;
use crate::error::{Error, Result};
use crate::train::run::run_dir;
use crate::train::{CancelFlag, Progress};

/// Options passed through to `sbatch`.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    /// Slurm partition (`--partition`).
    pub partition: Option<String>,
    /// `--gres=gpu:N` per task.
    pub gpus: Option<usize>,
    /// `--time` per task (Slurm's format, e.g. `4:00:00`).
    pub time: Option<String>,
    /// Account the tasks are charged to (`--account`).
    pub account: Option<String>,
    /// CPUs per task (`--cpus-per-task`); the worker's CPU threads default to it (else 1).
    pub cpus_per_task: Option<usize>,
    /// At most this many tasks at once (`--array=…%N`).
    pub throttle: Option<usize>,
    /// Extra `#SBATCH` lines (e.g. `--qos=long`), or any shell lines to run before the worker
    /// (module loads).
    pub extra: Vec<String>,
}

/// How long a task may run without its `started` marker before the runs folder is declared
/// not shared (the driver's default).
pub const MARKER_TIMEOUT: Duration = Duration::from_secs(120);

/// What the driver needs to submit and watch a batch.
pub struct Submission<'a> {
    /// The adainf binary the tasks run (on a path every node sees).
    pub binary: &'a Path,
    /// The runs folder: absolute, and mounted at the same path on every node.
    pub runs_dir: &'a Path,
    /// The device the tasks open (`--device`).
    pub device: &'a str,
    /// Train runs with a recorded failure again (`--retry-failed`).
    pub retry_failed: bool,
    /// Options passed through to `sbatch`.
    pub options: &'a SlurmOptions,
    /// How long a task may run without its `started` marker before the folder is declared
    /// not shared.
    pub marker_timeout: Duration,
}

/// The batch folder and job script for `ids`.
fn job_script(sub: &Submission, batch_dir: &Path, requests: &[PathBuf]) -> String {
    let o = sub.options;
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        "#SBATCH --job-name=adainf".into(),
        format!(
            "#SBATCH --array=0-{}{}",
            requests.len() - 1,
            o.throttle.map_or(String::new(), |t| format!("%{t}"))
        ),
        format!("#SBATCH --output={}/task-%a.log", batch_dir.display()),
        format!("#SBATCH --chdir={}", batch_dir.display()),
        "#SBATCH --requeue".into(),
        // A requeued task appends to its log, so both attempts stay readable.
        "#SBATCH --open-mode=append".into(),
    ];
    if let Some(p) = &o.partition {
        lines.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(g) = o.gpus {
        lines.push(format!("#SBATCH --gres=gpu:{g}"));
    }
    if let Some(t) = &o.time {
        lines.push(format!("#SBATCH --time={t}"));
    }
    if let Some(a) = &o.account {
        lines.push(format!("#SBATCH --account={a}"));
    }
    if let Some(c) = o.cpus_per_task {
        lines.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    // Every directive before the first command (sbatch ignores #SBATCH lines after one).
    for extra in o.extra.iter().filter(|e| e.starts_with("--")) {
        lines.push(format!("#SBATCH {extra}"));
    }
    lines.push("set -e".into());
    lines.extend(o.extra.iter().filter(|e| !e.starts_with("--")).cloned());
    // CPU threads: the task's share, not the node's.
    lines.push(
        "export RAYON_NUM_THREADS=\"${RAYON_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}\"".into(),
    );
    let batch = batch_dir.display().to_string();
    lines.push(format!(
        "hostname > {}",
        shell_quote(&format!("{batch}/started.")) + "$SLURM_ARRAY_TASK_ID"
    ));
    lines.push(format!(
        "exec {} worker --runs-dir {} --device {} --list {} --index \"$SLURM_ARRAY_TASK_ID\"{}",
        shell_quote(&sub.binary.display().to_string()),
        shell_quote(&sub.runs_dir.display().to_string()),
        shell_quote(sub.device),
        shell_quote(&format!("{batch}/requests.txt")),
        if sub.retry_failed {
            " --retry-failed"
        } else {
            ""
        }
    ));
    lines.join("\n") + "\n"
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn command_error(what: &str, e: std::io::Error) -> Error {
    Error::Device(format!(
        "cannot run `{what}` ({e}): --executor slurm needs the Slurm client commands on PATH"
    ))
}

/// Array task id → state, of the tasks of `job` (or of the one task `JOB_TASK`) that Slurm
/// still knows; None when squeue could not answer (a controller timeout), which is not taken
/// to mean the tasks are gone.
fn live_tasks(job: &str) -> Result<Option<BTreeMap<usize, String>>> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-j", job, "-o", "%K %T"])
        .output()
        .map_err(|e| command_error("squeue", e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // A job Slurm has forgotten is gone; anything else is a failure to ask.
        return Ok(err.contains("Invalid job id").then(BTreeMap::new));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(Some(
        text.lines()
            .filter_map(|l| {
                let (k, state) = l.trim().split_once(' ')?;
                Some((k.parse().ok()?, state.to_string()))
            })
            .collect(),
    ))
}

/// A run's Slurm task (`JOB_TASK`), recorded when it was submitted.
const TASK_FILE: &str = "slurm_task";

/// Whether the Slurm task recorded for the run in `dir` is still queued or running.
fn task_alive(dir: &Path) -> Result<bool> {
    let Ok(task) = std::fs::read_to_string(dir.join(TASK_FILE)) else {
        return Ok(false);
    };
    // When squeue cannot answer, count the task alive rather than submit the run twice.
    Ok(live_tasks(task.trim())?.is_none_or(|tasks| !tasks.is_empty()))
}

/// Whether run `id` is submitted now: it still needs training and no live process holds its
/// claim (`claim::held_live`, the rule used everywhere else: fresh, and its owner not known to
/// be gone; a fresh claim of a process that exited does not hold a run back).
fn to_submit(runs_dir: &Path, id: &str, kind: RunKind, retry_failed: bool) -> bool {
    needs_training(runs_dir, id, kind, retry_failed)
        && !super::claim::held_live(&run_dir(runs_dir, id))
}

/// Submits the runs of `requests` that need training as one array job and waits for them.
pub fn run_array(
    requests: &[Request],
    sub: &Submission,
    progress: &mut dyn Progress,
    cancel: &CancelFlag,
) -> Result<()> {
    let runs_dir = sub.runs_dir;
    if !runs_dir.is_absolute() {
        return Err(Error::config(
            "runs-dir",
            format!(
                "{} must be absolute for --executor slurm (tasks run elsewhere)",
                runs_dir.display()
            ),
        ));
    }
    let mut ids: Vec<String> = Vec::new();
    for r in requests {
        let id = r.id().to_string();
        if to_submit(runs_dir, &id, r.kind(), sub.retry_failed) && !ids.contains(&id) {
            write_request(runs_dir, r)?;
            ids.push(id);
        }
    }
    // Runs another driver's tasks are training are waited for, not submitted again.
    let watched: Vec<(String, RunKind)> = requests
        .iter()
        .filter(|r| needs_training(runs_dir, r.id(), r.kind(), sub.retry_failed))
        .map(|r| (r.id().to_string(), r.kind()))
        .collect();
    let (job, batch_dir) = if ids.is_empty() {
        (None, None)
    } else {
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let batch_dir = runs_dir.join(".slurm").join(&hash_hex(&id_refs)[..16]);
        crate::files::create_folder(&batch_dir)?;
        for f in std::fs::read_dir(&batch_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.file_name().to_string_lossy().starts_with("started.") {
                let _ = std::fs::remove_file(f.path());
            }
        }
        let paths: Vec<PathBuf> = ids
            .iter()
            .map(|id| run_dir(runs_dir, id).join(super::REQUEST_FILE))
            .collect();
        let list = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let write = |name: &str, text: &str| {
            let p = batch_dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::file(&p, format!("cannot write: {e}")))
        };
        write("requests.txt", &list)?;
        write("job.sh", &job_script(sub, &batch_dir, &paths))?;
        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(batch_dir.join("job.sh"))
            .output()
            .map_err(|e| command_error("sbatch", e))?;
        if !out.status.success() {
            return Err(Error::Device(format!(
                "sbatch refused the job ({}): {}",
                batch_dir.join("job.sh").display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let job = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        for (k, id) in ids.iter().enumerate() {
            let path = run_dir(runs_dir, id).join(TASK_FILE);
            std::fs::write(&path, format!("{job}_{k}\n"))
                .map_err(|e| Error::file(&path, format!("cannot record the task: {e}")))?;
        }
        progress.note(&format!(
            "submitted {} run(s) as Slurm array job {job} (script {})",
            ids.len(),
            batch_dir.join("job.sh").display()
        ));
        (Some(job), Some(batch_dir))
    };

    let mut running_since: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut gone_since: Option<Instant> = None;
    let mut last_line = Instant::now();
    loop {
        if cancel.is_cancelled() {
            if let Some(job) = &job {
                progress.note(&format!(
                    "interrupted: Slurm job {job} keeps running; `scancel {job}` stops it, and running the script again waits for it instead of resubmitting"
                ));
            }
            return Err(Error::Cancelled);
        }
        // Runs neither finished nor failed (a retry's old failure was cleared at submission).
        let pending: Vec<&String> = watched
            .iter()
            .filter(|(id, kind)| needs_training(runs_dir, id, *kind, false))
            .map(|(id, _)| id)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let answer = match &job {
            Some(job) => live_tasks(job)?,
            None => Some(BTreeMap::new()),
        };
        let unknown = answer.is_none();
        let live = answer.unwrap_or_default();
        // The shared-folder check: a running task writes its marker first.
        if let Some(batch_dir) = &batch_dir {
            for (task, state) in &live {
                if state == "RUNNING" {
                    let since = *running_since.entry(*task).or_insert_with(Instant::now);
                    if since.elapsed() > sub.marker_timeout
                        && !batch_dir.join(format!("started.{task}")).exists()
                    {
                        return Err(Error::config(
                            "runs-dir",
                            format!(
                                "array task {task} has been running for {:.0} s but its marker never appeared in {}: the runs folder is not on a filesystem the compute nodes share. Put --runs-dir on a shared filesystem (the same path on every node)",
                                since.elapsed().as_secs_f64(),
                                batch_dir.display()
                            ),
                        ));
                    }
                }
            }
        }
        // Only once this driver's tasks are gone: are the remaining runs someone else's?
        let mut elsewhere = false;
        if live.is_empty() && !unknown {
            for id in &pending {
                let dir = run_dir(runs_dir, id);
                if super::claim::held_live(&dir) || (!ids.contains(id) && task_alive(&dir)?) {
                    elsewhere = true;
                    break;
                }
            }
        }
        if live.is_empty() && !elsewhere && !unknown {
            // Files can lag behind the queue on network filesystems: give them a moment.
            let since = *gone_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(10) {
                if let Some(batch_dir) = &batch_dir {
                    let markers = std::fs::read_dir(batch_dir)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .any(|f| f.file_name().to_string_lossy().starts_with("started."));
                    if !markers {
                        return Err(Error::config(
                            "runs-dir",
                            format!(
                                "the Slurm tasks ended without starting: none wrote its marker in {}. Usually the runs folder is not on a filesystem the compute nodes share (the same path on every node), or the adainf binary ({}) is not there; Slurm's own logs on the nodes say which",
                                batch_dir.display(),
                                sub.binary.display()
                            ),
                        ));
                    }
                }
                let mut report = Vec::new();
                for id in &pending {
                    let log = batch_dir.as_ref().and_then(|b| {
                        ids.iter()
                            .position(|x| x == *id)
                            .map(|k| b.join(format!("task-{k}.log")))
                    });
                    report.push(format!(
                        "run {id}: its task ended without a result or an error{}",
                        log.map(|l| format!(
                            "; last lines of {}:\n{}",
                            l.display(),
                            super::tail(&l, 10)
                        ))
                        .unwrap_or_default()
                    ));
                }
                return Err(Error::Data(format!(
                    "{} run(s) did not finish on Slurm (checkpoints are kept; running the script again resubmits them):\n{}",
                    pending.len(),
                    report.join("\n")
                )));
            }
        } else {
            gone_since = None;
        }
        if last_line.elapsed() >= Duration::from_secs(10) {
            let ids: Vec<&str> = pending.iter().map(|s| s.as_str()).collect();
            progress.note(&format!(
                "{} of {} run(s) left; {} task(s) queued or running:",
                pending.len(),
                watched.len(),
                live.len()
            ));
            for line in live_lines(runs_dir, &ids) {
                progress.note(&line);
            }
            last_line = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh claim of a process of this machine that exited does not hold a run back from
    /// the array; a live one does (Linux: the owner's /proc entry is looked at).
    #[test]
    fn a_fresh_claim_of_an_exited_process_does_not_hold_a_run_back() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let runs = std::env::temp_dir().join(format!("adainf-slurm-claims-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&runs);
        let claim_file = |id: &str, owner: &super::super::claim::Owner| {
            let dir = run_dir(&runs, id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join(super::super::claim::CLAIM_FILE),
                serde_json::to_string(owner).unwrap(),
            )
            .unwrap();
        };
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let me = super::super::claim::Owner::me();
        claim_file(
            "gone",
            &super::super::claim::Owner {
                pid: dead_pid,
                ..me.clone()
            },
        );
        claim_file("live", &me);
        for kind in [RunKind::Pretrain, RunKind::Diffusion] {
            assert!(to_submit(&runs, "gone", kind, false));
            assert!(!to_submit(&runs, "live", kind, false));
            assert!(to_submit(&runs, "unclaimed", kind, false));
        }
        std::fs::remove_dir_all(&runs).unwrap();
    }

    #[test]
    fn the_job_script_carries_the_options() {
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            gpus: Some(1),
            time: Some("4:00:00".into()),
            account: Some("lab".into()),
            cpus_per_task: Some(8),
            throttle: Some(4),
            extra: vec!["--qos=long".into(), "module load cuda".into()],
        };
        let sub = Submission {
            binary: Path::new("/opt/adainf"),
            runs_dir: Path::new("/shared/runs"),
            device: "cuda",
            retry_failed: false,
            options: &opts,
            marker_timeout: Duration::from_secs(60),
        };
        let script = job_script(
            &sub,
            Path::new("/shared/runs/.slurm/b"),
            &[PathBuf::from("a"), PathBuf::from("b")],
        );
        for want in [
            "#SBATCH --array=0-1%4",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --time=4:00:00",
            "#SBATCH --account=lab",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --qos=long",
            "\nmodule load cuda\n",
            "#SBATCH --requeue",
            "exec /opt/adainf worker --runs-dir /shared/runs --device cuda --list /shared/runs/.slurm/b/requests.txt --index \"$SLURM_ARRAY_TASK_ID\"",
        ] {
            assert!(script.contains(want), "{want} missing from\n{script}");
        }
    }
}
