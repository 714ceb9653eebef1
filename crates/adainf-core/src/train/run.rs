//! Run folders and the run cache. A run's id is a hash of its resolved spec (config, data and
//! probe fingerprints, augmentation); `runs/<id>/` holds `config.json`, `metrics.jsonl`,
//! the weights (`backbone.bpk`, `projector.bpk`, `probe.bpk`) and, once finished,
//! `result.json` and, written last, `seal.json` (`super::seal`). A sealed folder is a finished
//! run and is loaded (after checking its records against the seal) instead of trained again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::PretrainConfig;
use crate::augment::ViewPair;
pub use crate::data::DataRef;
use crate::data::Dataset;
use crate::data::batches::Placement;
use crate::data::hash_hex;
use crate::error::{Error, Result};
pub use crate::files::{write_atomic, write_json};

/// A run's request, as the driver (or an in-process run with recipes) wrote it.
pub const REQUEST_FILE: &str = "request.json";

/// Bump when training semantics change, so old cached runs are not reused. (2: momentum targets
/// no longer share tensors with the online encoder, which had frozen it for MoCo and BYOL.
/// 3: initial weights come from the seeded host generator on every device. 4: hue jitter is
/// torchvision's HSV shift instead of a YIQ rotation.)
const FORMAT: u32 = 4;

/// Everything that determines a run's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Version of the training semantics (`FORMAT`); bumped to invalidate cached runs.
    pub format: u32,
    /// The run's settings.
    pub config: PretrainConfig,
    /// The training set.
    pub data: DataRef,
    /// Augmentations of the two views.
    pub aug: ViewPair,
    /// The set the online probe is evaluated on, if any.
    pub probe: Option<DataRef>,
}

impl RunSpec {
    /// The spec of a run of `config` on `data`, at the current `FORMAT`.
    pub fn new(
        config: PretrainConfig,
        data: &Dataset,
        aug: ViewPair,
        probe: Option<&Dataset>,
    ) -> Self {
        RunSpec {
            format: FORMAT,
            config,
            data: DataRef::of(data),
            aug,
            probe: probe.map(DataRef::of),
        }
    }
    /// The run id: 24 hex digits of a SHA-256 of the spec's JSON.
    pub fn id(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        hash_hex(&[&json])
    }
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Steps completed when the row was logged.
    pub step: usize,
    /// Self-supervised loss of the last step (without the probe's loss).
    pub loss: f64,
    /// Encoder learning rate of the last step.
    pub lr: f64,
    /// Online-probe top-1 on the probe set, in [0, 1]; only on rows where it was evaluated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub probe_acc: Option<f64>,
    /// Training throughput since the previous row, in images per second.
    pub images_per_s: f64,
    /// Fraction of the interval's wall time the step loop waited for its next batch.
    #[serde(default)]
    pub data_wait: f64,
    /// Fraction of the images since the previous row that came from the generated part of
    /// the data (absent in rows of older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_fraction: Option<f64>,
    /// Augmentation strength in force at the row's last step (1 unless scheduled; absent in
    /// rows of older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
}

/// `result.json`: the summary of a finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The run id (`RunSpec::id`).
    pub id: String,
    /// Final online-probe top-1 on the probe set (None without a probe set).
    pub accuracy: Option<f64>,
    /// Self-supervised loss of the last step.
    pub final_loss: f64,
    /// Steps trained (the config's `steps`).
    pub steps: usize,
    /// Wall time of the training loop, in seconds (after a resume, only the resumed part).
    pub train_seconds: f64,
    /// Mean training throughput, in images per second.
    pub images_per_s: f64,
    /// Fraction of the training wall time spent waiting for data (0 = never starved).
    #[serde(default)]
    pub data_wait: f64,
    /// Where the data was during training (`device` or `stream`; absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl RunResult {
    /// The line a run's progress display ends with.
    pub fn summary(&self) -> String {
        match self.accuracy {
            Some(a) => format!(
                "loss {:.4}, probe accuracy {:.2}%",
                self.final_loss,
                100.0 * a
            ),
            None => format!("loss {:.4}", self.final_loss),
        }
    }
}

/// A finished run as the rest of the program sees it.
#[derive(Clone, Debug)]
pub struct FinishedRun {
    /// What determined the run (`config.json`).
    pub spec: RunSpec,
    /// The run's summary (`result.json`).
    pub result: RunResult,
    /// The logged metric rows (`metrics.jsonl`).
    pub metrics: Vec<MetricRow>,
    /// The run folder.
    pub dir: PathBuf,
    /// Loaded from the cache rather than trained now.
    pub cached: bool,
}

/// Checks that the folder of a run in training is still there, before each write into it (a
/// metrics row, a checkpoint, the finished run's files): a run folder, or the runs folder above
/// it, deleted or moved while the run trains stops the run there with this message, rather
/// than at its seal, and is not made again around the missing files.
pub fn check_run_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(Error::file(
        dir,
        "the run folder is gone (it, or the runs folder above it, was deleted or moved while the run trained), so the run stopped; put it back and run the script again to resume from its last checkpoint, or run the script again to train the run from the start",
    ))
}

/// The folder of run `id` under `runs_dir`.
pub fn run_dir(runs_dir: &Path, id: &str) -> PathBuf {
    runs_dir.join(id)
}

/// A run file's JSON; an error that says how to start over when it is not valid.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::file(
            path,
            format!("is not a valid run file ({e}); delete the run folder to retrain"),
        )
    })
}

/// The rows of a `metrics.jsonl` (blank lines skipped); none when the file is missing.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>> {
    read_rows(path)
}

/// The rows of a JSON-lines file of any run kind (blank lines skipped); none when the file is
/// missing.
pub fn read_rows<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::file(path, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| Error::file(path, format!("bad metrics line ({e})")))
        })
        .collect()
}

/// Loads a finished run from its folder, or `None` if it has not finished (no seal: a run
/// interrupted before its seal was written resumes from its checkpoint and is sealed then).
/// An error when its records no longer match the seal.
pub fn load_finished(dir: &Path) -> Result<Option<FinishedRun>> {
    if !super::seal::is_sealed(dir) {
        return Ok(None);
    }
    super::seal::verify(dir, &super::seal::RECORDS)?;
    let result_path = dir.join("result.json");
    let spec: RunSpec = read_json(&dir.join("config.json"))?;
    let result: RunResult = read_json(&result_path)?;
    let metrics = read_metrics(&dir.join("metrics.jsonl"))?;
    Ok(Some(FinishedRun {
        spec,
        result,
        metrics,
        dir: dir.to_path_buf(),
        cached: true,
    }))
}

/// Appends metric rows to `metrics.jsonl` as training goes.
pub struct MetricsLog {
    file: fs::File,
    path: PathBuf,
}

impl MetricsLog {
    /// Creates (or truncates) the log file at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = fs::File::create(path).map_err(|e| Error::file(path, e))?;
        Ok(MetricsLog {
            file,
            path: path.to_path_buf(),
        })
    }
    /// Writes `row` as one JSON line, once the run folder is still there (a line written to a
    /// deleted file is lost without an error).
    pub fn append(&mut self, row: &MetricRow) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            check_run_dir(dir)?;
        }
        let line = serde_json::to_string(row).map_err(|e| Error::file(&self.path, e))?;
        writeln!(self.file, "{line}").map_err(|e| Error::file(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::preset;
    use crate::data::{Dataset, tiny_store};

    #[test]
    fn id_depends_on_config_data_and_aug() {
        let d = Dataset::from_store(tiny_store(4, 2, 0));
        let d2 = Dataset::from_store(tiny_store(4, 2, 1));
        let a = preset("symmetric").unwrap();
        let base = RunSpec::new(PretrainConfig::default(), &d, a.clone(), None);
        assert_eq!(
            base.id(),
            RunSpec::new(PretrainConfig::default(), &d, a.clone(), None).id()
        );
        let other_seed = RunSpec::new(
            PretrainConfig {
                seed: 1,
                ..Default::default()
            },
            &d,
            a.clone(),
            None,
        );
        assert_ne!(base.id(), other_seed.id());
        assert_ne!(
            base.id(),
            RunSpec::new(PretrainConfig::default(), &d2, a.clone(), None).id()
        );
        assert_ne!(
            base.id(),
            RunSpec::new(
                PretrainConfig::default(),
                &d,
                preset("symmetric_adainf").unwrap(),
                None
            )
            .id()
        );
    }

    /// Run ids of a few configs, pinned: a refactor of the config types (enums for strings,
    /// new fields with skipped defaults) must not move them, or every cached run is lost.
    #[test]
    fn run_ids_are_pinned() {
        use crate::method::Method;
        let data = Dataset::from_store(tiny_store(4, 2, 0));
        let id = |config: PretrainConfig, aug: &str| {
            RunSpec::new(config, &data, preset(aug).unwrap(), None).id()
        };
        let ids = [
            id(PretrainConfig::default(), "symmetric"),
            id(PretrainConfig::for_method(Method::Mocov2), "symmetric"),
            id(PretrainConfig::for_method(Method::Byol), "asymmetric"),
            id(
                PretrainConfig::for_method(Method::Barlow),
                "asymmetric_adainf",
            ),
            id(
                PretrainConfig {
                    backbone: crate::model::Backbone::Resnet10,
                    optimizer: crate::optim::OptimizerKind::Sgd,
                    lr_scaling: Some(crate::optim::LrScaling::Linear),
                    width: 8,
                    ..Default::default()
                },
                "symmetric_adainf",
            ),
        ];
        assert_eq!(ids, PINNED_IDS);
    }

    /// Computed with run format 4 before the config fields became typed enums.
    const PINNED_IDS: [&str; 5] = [
        "8a5d17bf4cfd7912eecbcc9b",
        "521396cd6ee5dbea4129b797",
        "bbe55941ef9d7705716d742e",
        "bbc915eee916f784f37d33e3",
        "7c12229dee16e457f1a6c07b",
    ];

    #[test]
    fn files_round_trip_and_unfinished_runs_are_not_loaded() {
        let dir = std::env::temp_dir().join(format!("adainf-run-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let d = Dataset::from_store(tiny_store(4, 2, 0));
        let spec = RunSpec::new(
            PretrainConfig::default(),
            &d,
            preset("symmetric").unwrap(),
            None,
        );
        write_json(&dir.join("config.json"), &spec).unwrap();
        let mut log = MetricsLog::create(&dir.join("metrics.jsonl")).unwrap();
        let row = MetricRow {
            step: 1,
            loss: 2.0,
            lr: 0.1,
            probe_acc: None,
            images_per_s: 3.0,
            data_wait: 0.25,
            generated_fraction: Some(0.5),
            strength: Some(1.0),
        };
        log.append(&row).unwrap();
        assert!(load_finished(&dir).unwrap().is_none());
        for name in super::super::seal::WEIGHTS {
            fs::write(dir.join(name), name).unwrap();
        }
        let result = RunResult {
            id: spec.id(),
            accuracy: Some(0.5),
            final_loss: 2.0,
            steps: 1,
            train_seconds: 1.0,
            images_per_s: 3.0,
            data_wait: 0.25,
            placement: Some(Placement::Stream),
        };
        write_json(&dir.join("result.json"), &result).unwrap();
        // Not finished until sealed.
        assert!(load_finished(&dir).unwrap().is_none());
        super::super::seal::write(&dir, &super::super::seal::pretrain_files()).unwrap();
        let run = load_finished(&dir).unwrap().unwrap();
        assert_eq!(
            (run.spec, run.result, run.metrics),
            (spec, result, vec![row])
        );
        fs::write(dir.join("result.json"), "{oops").unwrap();
        assert!(
            load_finished(&dir)
                .unwrap_err()
                .to_string()
                .contains("result.json")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
