//! Training a pretraining request under its claim (`cache::claimed`, which every run kind
//! shares), and collecting the runs workers were asked to train.

use std::path::Path;

use super::cache::POLL;
use super::cache::{claimed, failed_error, failure};
use super::claim;
use super::request::RunRequest;
use super::{REQUEST_FILE, WORKER_LOG, tail};
use crate::error::{Error, Result};
use crate::train::run::{load_finished, run_dir, write_json};
use crate::train::{self, CheckedRequest, FinishedRun, TrainContext};

/// Trains `req` (or loads it from the cache, or waits for the process that trains it),
/// exactly once across every process sharing `ctx.runs_dir`.
pub fn pretrain_claimed(
    run: CheckedRequest,
    ctx: TrainContext,
    request: Option<&RunRequest>,
    retry_failed: bool,
) -> Result<FinishedRun> {
    // Every check of the user's input came before the folder, the claim or any file (a
    // `CheckedRequest` exists only once they passed).
    let id = run.id().to_string();
    let dir = run_dir(ctx.runs_dir, &id);
    let TrainContext {
        device,
        placement,
        runs_dir,
        progress,
        cancel,
    } = ctx;
    claimed(
        &id,
        &dir,
        &crate::train::seal::pretrain_files(),
        retry_failed,
        progress,
        cancel,
        |progress| {
            let run = load_finished(&dir)?;
            if let Some(run) = &run {
                progress.start(&id, run.result.steps, true);
            }
            Ok(run)
        },
        |progress| {
            if let Some(r) = request {
                write_json(&dir.join(REQUEST_FILE), r)?;
            }
            train::pretrain(
                run,
                TrainContext {
                    device,
                    placement,
                    runs_dir,
                    progress,
                    cancel,
                },
            )
        },
    )
}

/// A run that a worker was asked to train, of any kind: finished (`load` gives it once it is
/// sealed), or the error that says why not. A run that another live process is training (its
/// claim is fresh) is waited for.
pub fn collect<T>(
    runs_dir: &Path,
    id: &str,
    cancel: &crate::train::CancelFlag,
    load: impl Fn(&Path) -> Result<Option<T>>,
) -> Result<T> {
    let dir = run_dir(runs_dir, id);
    loop {
        if let Some(run) = load(&dir)? {
            return Ok(run);
        }
        if let Some(f) = failure(&dir) {
            return Err(failed_error(id, &dir, &f));
        }
        if !claim::held_live(&dir) {
            break;
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        std::thread::sleep(POLL);
    }
    let log = dir.join(WORKER_LOG);
    Err(Error::Data(format!(
        "run {id} did not finish: its worker stopped without a result or an error; its checkpoint (if any) is kept in {}; run the script again to resume it.{}",
        dir.display(),
        if log.is_file() {
            format!("\nlast lines of {}:\n{}", log.display(), tail(&log, 10))
        } else {
            String::new()
        }
    )))
}
