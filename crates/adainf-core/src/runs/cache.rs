//! The run cache's rules for one run of any kind (pretraining, the diffusion generator): a
//! finished run is loaded, a recorded failure is reported (unless a retry is asked for), else
//! the run is trained under its claim. A process that finds the run claimed by a live process
//! waits for it to finish (or for the claim to go stale, and then takes it over and resumes
//! from the checkpoint). A failure is written to `failed.json` with its error; nothing else in
//! the folder is removed. It sits below the run kinds that use it and the executors.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::claim::{self, Claimed};
use crate::error::{Error, Result};
use crate::train::run::write_json;
use crate::train::{CancelFlag, Progress};

/// A run's file that marks it failed (with the error), until a retry is asked for.
pub const FAILED_FILE: &str = "failed.json";
/// A worker's output (local workers and Slurm tasks).
pub const WORKER_LOG: &str = "worker.log";

/// The last `n` lines of a text file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What `failed.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    /// The error message the run failed with.
    pub error: String,
    /// The process the run failed in.
    pub owner: claim::Owner,
}

/// How long a waiting process sleeps between looks at a run claimed by another.
pub(super) const POLL: Duration = Duration::from_millis(500);

/// The recorded failure of a run folder, if any.
pub fn failure(dir: &Path) -> Option<Failure> {
    let text = std::fs::read_to_string(dir.join(FAILED_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The error that reports a recorded failure.
pub fn failed_error(id: &str, dir: &Path, failure: &Failure) -> Error {
    let log = dir.join(WORKER_LOG);
    let log_tail = if log.is_file() {
        format!("\nlast lines of {}:\n{}", log.display(), tail(&log, 10))
    } else {
        String::new()
    };
    Error::Data(format!(
        "run {id} failed ({}): {}\nIts folder {} is kept; run the script again with --retry-failed to train it again.{log_tail}",
        failure.owner,
        failure.error,
        dir.display()
    ))
}

/// Runs `train` on the run `id` in `dir` under its claim, exactly once across every process
/// sharing the runs folder, for every run kind: `load` gives the run when it is finished
/// (sealed; an error when its sealed `files` changed), a recorded failure is reported unless
/// `retry_failed`, and a process that finds the run claimed by a live process waits for it
/// (said once on `progress`) and then loads it, or takes the claim over when it goes stale
/// and resumes from the checkpoint. On a retry a damaged run or checkpoint is discarded
/// before `train`; a failure of `train` is recorded in `failed.json`.
#[allow(clippy::too_many_arguments)]
pub fn claimed<T>(
    id: &str,
    dir: &Path,
    files: &[&str],
    retry_failed: bool,
    progress: &mut dyn Progress,
    cancel: &CancelFlag,
    mut load: impl FnMut(&mut dyn Progress) -> Result<Option<T>>,
    train: impl FnOnce(&mut dyn Progress) -> Result<T>,
) -> Result<T> {
    let timeout = claim::timeout();
    let mut waiting_told = false;
    // A run that is finished (loaded), or failed and not to be retried (its error).
    let mut settled = |progress: &mut dyn Progress| -> Option<Result<T>> {
        // Changed after it finished: trained again from the start on a retry.
        if retry_failed && crate::train::seal::damaged(dir, files) {
            return None;
        }
        match load(progress) {
            Ok(Some(run)) => return Some(Ok(run)),
            Err(e) => return Some(Err(e)),
            Ok(None) => {}
        }
        failure(dir)
            .filter(|_| !retry_failed)
            .map(|f| Err(failed_error(id, dir, &f)))
    };
    loop {
        if let Some(outcome) = settled(progress) {
            return outcome;
        }
        crate::files::create_folder(dir)?;
        match claim::try_claim(dir, timeout)? {
            Claimed::Mine(held) => {
                // Another process may have finished or failed the run between the look above
                // and the claim.
                if let Some(outcome) = settled(progress) {
                    drop(held);
                    return outcome;
                }
                let _ = std::fs::remove_file(dir.join(FAILED_FILE));
                if retry_failed {
                    crate::train::checkpoint::discard_damaged(dir, files, progress)?;
                }
                let result = train(progress);
                // A run folder deleted while the run trained is not made again to hold the
                // record (the error says it is gone).
                if let Err(e) = &result
                    && !matches!(e, Error::Cancelled)
                    && dir.is_dir()
                {
                    record_failure(dir, e)?;
                }
                drop(held);
                return result;
            }
            Claimed::Other(owner) => {
                if !waiting_told {
                    let who = owner.map_or("another process".to_string(), |o| o.to_string());
                    progress.note(&format!(
                        "run {id} is being trained by {who}; waiting for it"
                    ));
                    waiting_told = true;
                }
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Records that the run in `dir` failed with `error` (`failed.json`).
pub fn record_failure(dir: &Path, error: &Error) -> Result<()> {
    let record = Failure {
        error: error.to_string(),
        owner: claim::Owner::me(),
    };
    write_json(&dir.join(FAILED_FILE), &record)
}
