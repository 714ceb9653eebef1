//! `adainf runs [DIR]`: the run cache at a glance. Each run folder's state — done (finished),
//! running (claimed, heartbeat fresh), claimed (claim left by a process that stopped; the next
//! driver takes it over), failed (with its error), partial (a checkpoint, nobody training it),
//! requested (a request, nothing trained yet) — with its method, key options, tags and metrics;
//! one run in detail; JSON lines for tools.

use std::path::Path;

use serde::Serialize;

use super::cache::failure;
use super::claim;
use super::request::RunRequest;
use super::{REQUEST_FILE, WORKER_LOG, short_id, tail};
use crate::error::{Error, Result};
use crate::train::run::{RunResult, RunSpec, read_metrics};
use crate::train::seal;

/// Where a run folder stands, judged from its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Finished: sealed, and its records match the seal.
    Done,
    /// Sealed, but its records no longer match the seal (edited, truncated or deleted after
    /// it finished); the error names the file. `adainf run --retry-failed` trains it again.
    Damaged,
    /// Claimed by a live process (fresh heartbeat).
    Running,
    /// Claimed by a process that stopped (stale heartbeat, or exited); a driver takes it over.
    Claimed,
    /// A failure is recorded (`failed.json`) and no claim is held.
    Failed,
    /// A checkpoint exists but nobody is training the run.
    Partial,
    /// Requested or configured, nothing trained yet.
    Requested,
}

impl RunState {
    /// The state's name, as listings and reports show it.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Damaged => "damaged",
            RunState::Running => "running",
            RunState::Claimed => "claimed",
            RunState::Failed => "failed",
            RunState::Partial => "partial",
            RunState::Requested => "requested",
        }
    }
}

/// One row of the listing.
#[derive(Clone, Debug, Serialize)]
pub struct RunEntry {
    /// The run id (the folder's name).
    pub id: String,
    /// The run's state.
    pub state: RunState,
    /// Training method (`simclr`, `mocov2`, `byol` or `barlow`).
    pub method: String,
    /// Backbone, lower-cased (`resnet18` or `resnet10`).
    pub backbone: String,
    /// Channels of the first ResNet stage.
    pub width: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate of the config.
    pub lr: f64,
    /// Random seed of the config.
    pub seed: u64,
    /// Steps done (last logged) and asked for.
    pub step: usize,
    /// Steps asked for (the config's `steps`).
    pub steps: usize,
    /// Loss at the last logged step (None before the first log).
    pub loss: Option<f64>,
    /// Final probe accuracy from `result.json` (None until done, or without a probe set).
    pub accuracy: Option<f64>,
    /// Description of the training set.
    pub data: String,
    /// The script's report columns, from the request (empty without one).
    pub tags: serde_json::Map<String, serde_json::Value>,
    /// The claim's owner, for running and claimed runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The error of the recorded failure, if the folder has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A finished run's `result.json`, as read for this entry (the HTML report's views use it
    /// rather than reading the file again).
    #[serde(skip)]
    pub result: Option<RunResult>,
}

#[cfg(test)]
thread_local! {
    /// The files `read_json` read on this thread, for the tests that count reads.
    pub(crate) static READS: std::cell::RefCell<Vec<std::path::PathBuf>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A run file's JSON, or None where it is missing or not valid (a listing shows what it can).
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    #[cfg(test)]
    READS.with(|r| r.borrow_mut().push(path.to_path_buf()));
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The entry of one run folder (None when it is not a run folder).
pub fn entry(dir: &Path) -> Option<RunEntry> {
    let spec: Option<RunSpec> = read_json(&dir.join("config.json"));
    let request: Option<RunRequest> = read_json(&dir.join(REQUEST_FILE));
    let (config, data) = match (&spec, &request) {
        (Some(s), _) => (s.config.clone(), s.data.description.clone()),
        (None, Some(r)) => (r.config.clone(), r.data.description.clone()),
        (None, None) => return None,
    };
    // Only a sealed run whose records match its seal is finished (its weights are checked
    // when they are used); an unsealed result.json is an unfinished run's.
    let sealed = seal::is_sealed(dir);
    let damage = sealed
        .then(|| seal::verify(dir, &seal::RECORDS).err())
        .flatten();
    let result: Option<RunResult> = (sealed && damage.is_none())
        .then(|| read_json(&dir.join("result.json")))
        .flatten();
    let held = claim::state(dir);
    let failed = failure(dir);
    let state = if damage.is_some() {
        RunState::Damaged
    } else if result.is_some() {
        RunState::Done
    } else if let Some(h) = &held {
        if h.is_live(claim::timeout()) {
            RunState::Running
        } else {
            RunState::Claimed
        }
    } else if failed.is_some() {
        RunState::Failed
    } else if dir.join("checkpoint").is_dir() {
        RunState::Partial
    } else {
        RunState::Requested
    };
    let last = read_metrics(&dir.join("metrics.jsonl"))
        .ok()
        .and_then(|m| m.last().cloned());
    Some(RunEntry {
        id: dir.file_name()?.to_string_lossy().into_owned(),
        state,
        method: config.method().name().to_string(),
        backbone: format!("{:?}", config.backbone).to_lowercase(),
        width: config.width,
        batch: config.batch,
        lr: config.lr,
        seed: config.seed,
        step: last.as_ref().map_or(0, |m| m.step),
        steps: config.steps,
        loss: last.as_ref().map(|m| m.loss),
        accuracy: result.as_ref().and_then(|r| r.accuracy),
        data,
        tags: request.map(|r| r.tags).unwrap_or_default(),
        owner: held.and_then(|h| h.owner).map(|o| o.to_string()),
        error: damage.map(|e| e.to_string()).or(failed.map(|f| f.error)),
        result,
    })
}

/// Every run folder of `runs_dir`, sorted by id.
pub fn list(runs_dir: &Path) -> Result<Vec<RunEntry>> {
    let dirs = std::fs::read_dir(runs_dir).map_err(|e| {
        Error::file(
            runs_dir,
            format!(
                "cannot read the runs folder ({e}); pass the folder a script's --runs-dir named"
            ),
        )
    })?;
    let mut out: Vec<RunEntry> = dirs
        .flatten()
        .filter(|d| !d.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|d| entry(&d.path()))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// `text` as one cell of a markdown table on a terminal: control characters (escape sequences
/// that would clear or recolour the screen, line breaks that would split the row) are shown
/// escaped, and `|` cannot end the cell.
fn table_cell(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '|' => "\\|".to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The listing as a table.
pub fn render(entries: &[RunEntry]) -> String {
    let mut out = String::from(
        "| id | state | method | backbone | width | batch | lr | seed | steps | loss | accuracy | tags |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for e in entries {
        let tags = e
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
            .collect::<Vec<_>>()
            .join(" ");
        let tags = table_cell(&tags);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} |\n",
            short_id(&e.id),
            e.state.name(),
            e.method,
            e.backbone,
            e.width,
            e.batch,
            e.lr,
            e.seed,
            e.step,
            e.steps,
            e.loss.map_or("–".into(), |l| format!("{l:.4}")),
            e.accuracy.map_or("–".into(), |a| format!("{a:.4}")),
            tags
        ));
    }
    let count = |s: RunState| entries.iter().filter(|e| e.state == s).count();
    out.push_str(&format!(
        "\n{} run(s): {} done, {} damaged, {} running, {} claimed, {} failed, {} partial, {} requested\n",
        entries.len(),
        count(RunState::Done),
        count(RunState::Damaged),
        count(RunState::Running),
        count(RunState::Claimed),
        count(RunState::Failed),
        count(RunState::Partial),
        count(RunState::Requested)
    ));
    out
}

/// One run in detail: its entry, its config, its last metrics and the end of its log.
pub fn detail(runs_dir: &Path, id_prefix: &str) -> Result<String> {
    let entries = list(runs_dir)?;
    let matching: Vec<&RunEntry> = entries
        .iter()
        .filter(|e| e.id.starts_with(id_prefix))
        .collect();
    let e = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Data(format!(
                "no run in {} starts with `{id_prefix}`; `adainf runs {}` lists them",
                runs_dir.display(),
                runs_dir.display()
            )));
        }
        many => {
            return Err(Error::Data(format!(
                "{} runs start with `{id_prefix}`; give more of the id",
                many.len()
            )));
        }
    };
    let dir = runs_dir.join(&e.id);
    let mut out = format!(
        "run {}\nstate: {}{}\nfolder: {}\ndata: {}\n",
        e.id,
        e.state.name(),
        e.owner
            .as_ref()
            .map_or(String::new(), |o| format!(" ({o})")),
        dir.display(),
        e.data
    );
    if let Some(err) = &e.error {
        out.push_str(&format!("error: {err}\n"));
    }
    if let Ok(config) = std::fs::read_to_string(dir.join("config.json")) {
        out.push_str(&format!("config.json:\n{config}\n"));
    }
    if let Ok(metrics) = read_metrics(&dir.join("metrics.jsonl")) {
        out.push_str("last metrics:\n");
        for m in metrics.iter().rev().take(5).rev() {
            out.push_str(&format!(
                "  step {} loss {:.4} lr {:.4}{}\n",
                m.step,
                m.loss,
                m.lr,
                m.probe_acc
                    .map_or(String::new(), |a| format!(" probe {a:.4}"))
            ));
        }
    }
    let log = dir.join(WORKER_LOG);
    if log.is_file() {
        out.push_str(&format!(
            "last lines of {}:\n{}\n",
            log.display(),
            tail(&log, 10)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_show_control_characters_escaped() {
        assert_eq!(table_cell("a=1 b=x"), "a=1 b=x");
        assert_eq!(
            table_cell("\u{1b}[2J|x\ny\u{7}"),
            "\\u{1b}[2J\\|x\\ny\\u{7}"
        );
        assert_eq!(table_cell("é ünï"), "é ünï");
    }
}
