//! `adainf runs [DIR]`: the run cache at a glance. Each run folder — a pretraining run, a DDPM
//! generator or a set of samples drawn from one — with its state: done (finished), running
//! (claimed, heartbeat fresh), claimed (claim left by a process that stopped; the next driver
//! takes it over), failed (with its error), partial (a checkpoint, nobody training it),
//! requested (a request, nothing trained yet); its key settings, tags and metrics; one run in
//! detail; JSON lines for tools.

use std::path::Path;

use serde::Serialize;

use super::cache::failure;
use super::claim;
use super::request::RunRequest;
use super::{REQUEST_FILE, WORKER_LOG, short_id, tail};
use crate::error::{Error, Result};
use crate::generator::diffusion::run::{
    DiffusionConfig, GENERATOR_KIND, SAMPLE_RECORDS, SAMPLES_KIND, SampleSpec,
};
use crate::train::run::{RunResult, RunSpec};
use crate::train::seal;

/// Where a run folder stands, judged from its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
    /// The state's name, as listings and reports show it (serde's, as `--json` writes it).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What a run folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EntryKind {
    /// A contrastive pretraining run (`train::pretrain`).
    Pretrain,
    /// A DDPM generator (`gen::diffusion`).
    Generator,
    /// Samples drawn from a generator (`gen::sample`).
    Samples,
}

impl EntryKind {
    /// The kind's name, as the listing shows it (serde's, as `--json` writes it).
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The records whose seal makes a run of this kind finished (its weights or images are
    /// checked when they are used).
    fn records(self) -> &'static [&'static str] {
        match self {
            EntryKind::Pretrain | EntryKind::Generator => &seal::RECORDS,
            EntryKind::Samples => &SAMPLE_RECORDS,
        }
    }
}

/// A pretraining run's key options.
#[derive(Clone, Debug, Serialize)]
pub struct PretrainSettings {
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
}

/// One row of the listing.
#[derive(Clone, Debug, Serialize)]
pub struct RunEntry {
    /// The run id (the folder's name).
    pub id: String,
    /// What the folder holds.
    pub kind: EntryKind,
    /// The run's state.
    pub state: RunState,
    /// The key settings in a few words (method and options, the generator's shape, the
    /// sampler and count).
    pub settings: String,
    /// A pretraining run's key options (in JSON, fields of the entry).
    #[serde(flatten)]
    pub pretrain: Option<PretrainSettings>,
    /// Steps done (last logged).
    pub step: usize,
    /// Steps asked for (the config's `steps`; 0 for samples).
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

/// What a run folder's config (or, before it trained, its request) says about it.
struct About {
    kind: EntryKind,
    settings: String,
    pretrain: Option<PretrainSettings>,
    steps: usize,
    data: String,
}

/// A pretraining run's settings.
fn pretrain_about(config: &crate::train::PretrainConfig, data: &str) -> About {
    let p = PretrainSettings {
        method: config.method().name().to_string(),
        backbone: format!("{:?}", config.backbone).to_lowercase(),
        width: config.width,
        batch: config.batch,
        lr: config.lr,
        seed: config.seed,
    };
    About {
        kind: EntryKind::Pretrain,
        settings: format!(
            "{} {} w{} b{} lr {} seed {}",
            p.method, p.backbone, p.width, p.batch, p.lr, p.seed
        ),
        pretrain: Some(p),
        steps: config.steps,
        data: data.to_string(),
    }
}

/// A generator's settings.
fn generator_about(config: &DiffusionConfig, data: &str) -> About {
    About {
        kind: EntryKind::Generator,
        settings: format!(
            "ddpm ch{} b{} lr {} T {} seed {}",
            config.channels, config.batch, config.lr, config.timesteps, config.seed
        ),
        pretrain: None,
        steps: config.steps,
        data: data.to_string(),
    }
}

/// What a run's stored config (`config.json`, or its request before it trained) says, by its
/// kind (its `kind` field; pretraining configs and requests have none); None for another kind.
fn about(stored: serde_json::Value) -> Option<About> {
    let description = |v: &serde_json::Value| {
        v["data"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    match stored.get("kind").and_then(|k| k.as_str()) {
        None | Some("pretrain") => {
            let config = match serde_json::from_value::<RunSpec>(stored.clone()) {
                Ok(spec) => spec.config,
                Err(_) => {
                    serde_json::from_value::<RunRequest>(stored.clone())
                        .ok()?
                        .config
                }
            };
            Some(pretrain_about(&config, &description(&stored)))
        }
        Some(GENERATOR_KIND) => {
            let config: DiffusionConfig = serde_json::from_value(stored["config"].clone()).ok()?;
            Some(generator_about(&config, &description(&stored)))
        }
        Some(SAMPLES_KIND) => {
            let spec: SampleSpec = serde_json::from_value(stored).ok()?;
            Some(About {
                kind: EntryKind::Samples,
                settings: format!(
                    "{} images, {} {} steps eta {} seed {}",
                    spec.n,
                    <&str>::from(spec.config.sampler),
                    spec.config.steps,
                    spec.config.eta,
                    spec.config.seed
                ),
                pretrain: None,
                steps: 0,
                data: format!("generator {}", short_id(&spec.generator)),
            })
        }
        Some(_) => None,
    }
}

/// Step and loss of the last row of `metrics.jsonl` (only that line is parsed).
fn last_row(dir: &Path) -> Option<(usize, Option<f64>)> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let row: serde_json::Value = serde_json::from_str(line).ok()?;
    Some((row["step"].as_u64()? as usize, row["loss"].as_f64()))
}

/// The entry of one run folder (None when it is not a run folder).
pub fn entry(dir: &Path) -> Option<RunEntry> {
    let request: Option<serde_json::Value> = read_json(&dir.join(REQUEST_FILE));
    // The config, or the request where the run has not written a config it reads.
    let about = read_json(&dir.join("config.json"))
        .and_then(about)
        .or_else(|| request.clone().and_then(about))?;
    let tags = request
        .and_then(|r| r.get("tags").and_then(|t| t.as_object()).cloned())
        .unwrap_or_default();
    // Only a sealed run whose records match its seal is finished (its weights or images are
    // checked when they are used); an unsealed result.json is an unfinished run's.
    let sealed = seal::is_sealed(dir);
    let damage = sealed
        .then(|| seal::verify(dir, about.kind.records()).err())
        .flatten();
    let finished = sealed && damage.is_none() && dir.join("result.json").is_file();
    // A pretraining run's result, read once (the HTML report's view uses it).
    let result: Option<RunResult> = (finished && about.kind == EntryKind::Pretrain)
        .then(|| read_json(&dir.join("result.json")))
        .flatten();
    let held = claim::state(dir);
    let failed = failure(dir);
    let state = if damage.is_some() {
        RunState::Damaged
    } else if finished && (about.kind != EntryKind::Pretrain || result.is_some()) {
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
    let last = last_row(dir);
    Some(RunEntry {
        id: dir.file_name()?.to_string_lossy().into_owned(),
        kind: about.kind,
        state,
        settings: about.settings,
        pretrain: about.pretrain,
        step: last.map_or(0, |(step, _)| step),
        steps: about.steps,
        loss: last.and_then(|(_, loss)| loss),
        accuracy: result.as_ref().and_then(|r| r.accuracy),
        data: about.data,
        tags,
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
        "| id | kind | state | settings | steps | loss | accuracy | tags |\n|---|---|---|---|---|---|---|---|\n",
    );
    for e in entries {
        let tags = e
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
            .collect::<Vec<_>>()
            .join(" ");
        let tags = table_cell(&tags);
        let steps = if e.steps == 0 {
            "–".to_string()
        } else {
            format!("{}/{}", e.step, e.steps)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            short_id(&e.id),
            e.kind.name(),
            e.state.name(),
            table_cell(&e.settings),
            steps,
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
        "run {}\nkind: {}\nsettings: {}\nstate: {}{}\nfolder: {}\ndata: {}\n",
        e.id,
        e.kind.name(),
        e.settings,
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
    if let Ok(metrics) = std::fs::read_to_string(dir.join("metrics.jsonl")) {
        // The rows as written (each run kind logs its own columns).
        let rows: Vec<&str> = metrics.lines().filter(|l| !l.trim().is_empty()).collect();
        out.push_str("last metrics:\n");
        for row in &rows[rows.len().saturating_sub(5)..] {
            out.push_str(&format!("  {}\n", table_cell(row)));
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
