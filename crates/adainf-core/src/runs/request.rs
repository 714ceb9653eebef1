//! A run as a self-contained request: the resolved config, the training and probe sets as
//! recipes with the fingerprints the driver saw, the augmentation, and how to run it. A worker
//! makes the sets again, checks the fingerprints and the run id, and trains exactly the run the
//! driver asked for. Each run kind has its request (`RunRequest` for pretraining,
//! `DiffusionRequest` for a generator); `Request` is either, as the executors hand them out and
//! `request.json` holds them (its `kind`; pretraining requests, which came first, have none).

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::augment::ViewPair;
use crate::data::Dataset;
use crate::data::batches::Placement;
use crate::data::recipe::Recipe;
use crate::error::{Error, Result};
use crate::generator::diffusion::run::{self as diffusion, DiffusionConfig, DiffusionSpec};
use crate::train::{CheckedRequest, PretrainConfig};

/// Bump when the request's fields change meaning.
pub const REQUEST_FORMAT: u32 = 1;

/// A dataset as a request holds it: how to make it again and what the driver saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRequest {
    /// How to make the set again.
    pub recipe: Recipe,
    /// The set's fingerprint as the driver saw it; the remade set must match it.
    pub fingerprint: String,
    /// Human-readable description of the set (for messages and the run listing).
    pub description: String,
}

/// One run as a self-contained request that any process can train (`request.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Format of the request (`REQUEST_FORMAT` of the adainf that wrote it).
    pub format: u32,
    /// The run id the driver computed.
    pub id: String,
    /// The resolved training config.
    pub config: PretrainConfig,
    /// The training set.
    pub data: DataRequest,
    /// The augmentation of the two views.
    pub aug: ViewPair,
    /// The labelled set the online probe is evaluated on, if any.
    pub probe: Option<DataRequest>,
    /// Save a checkpoint every this many steps (0 = only at the end); not part of the run id.
    pub checkpoint_every: usize,
    /// How the data reaches the device (not part of the run id).
    pub placement: Placement,
    /// Report columns of the script (not part of the run id).
    #[serde(default)]
    pub tags: serde_json::Map<String, serde_json::Value>,
    /// The device the script asked this run to train on (its `device` option), which a
    /// local worker opens instead of its slot's; None: the slot's (not part of the run id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The text of the request file at `path`.
fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read the run request: {e}")))
}

/// The request of type `T` in `text` (read from `path`).
fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::file(
            path,
            format!("not a run request of this adainf version: {e}"),
        )
    })
}

/// The checks of every request read from a file, before anything is written: its id has a
/// run id's shape, its config passed the run kind's checks (`valid`), and its format is this
/// adainf's.
fn check_read(path: &Path, id: &str, format: u32, valid: Result<()>) -> Result<()> {
    // An id of another shape (`../../x`) would name a folder outside the runs folder.
    if !crate::data::is_hash_hex(id) {
        return Err(Error::file(
            path,
            format!(
                "the run request's id {id:?} is not a run id (24 hex digits): the file was edited; use the request adainf wrote"
            ),
        ));
    }
    valid.map_err(|e| Error::file(path, format!("the run request is not valid: {e}")))?;
    if format != REQUEST_FORMAT {
        return Err(Error::file(
            path,
            format!(
                "request format {format} but this adainf reads format {REQUEST_FORMAT}; use the adainf that wrote it"
            ),
        ));
    }
    Ok(())
}

fn data_request(d: &Dataset) -> Result<DataRequest> {
    Ok(DataRequest {
        recipe: Recipe::of(d)?,
        fingerprint: d.fingerprint().to_string(),
        description: d.description().to_string(),
    })
}

fn rebuild(req: &DataRequest, device: &Device) -> Result<Dataset> {
    let d = req.recipe.build(device)?;
    if d.fingerprint() != req.fingerprint {
        return Err(Error::Data(format!(
            "{} changed after the driver read it (its fingerprint — path, size and modification \
             time for files — differs); run the script again so the run id matches the data",
            req.description
        )));
    }
    Ok(d)
}

impl RunRequest {
    /// The request of a checked in-process training request: only a run that passed every
    /// check is written as a request, so no worker is started (and nothing is written) for a
    /// run that would be rejected.
    pub fn new(
        run: &CheckedRequest,
        placement: Placement,
        tags: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self> {
        let req = run.request();
        Ok(RunRequest {
            format: REQUEST_FORMAT,
            id: run.id().to_string(),
            config: req.config.clone(),
            data: data_request(req.data)?,
            aug: req.aug.clone(),
            probe: req.probe.map(data_request).transpose()?,
            checkpoint_every: req.checkpoint_every,
            placement,
            tags,
            device: None,
        })
    }

    /// Reads the request at `path`, refusing one of another request format.
    pub fn read(path: &Path) -> Result<Self> {
        let req: RunRequest = parse(path, &read_text(path)?)?;
        // A request edited by hand into a config its method cannot run stops here, before
        // anything is written.
        check_read(path, &req.id, req.format, req.config.validate())?;
        Ok(req)
    }

    /// The training and probe sets, made again and checked against the driver's
    /// fingerprints.
    pub fn datasets(&self, device: &Device) -> Result<(Dataset, Option<Dataset>)> {
        let data = rebuild(&self.data, device)?;
        let probe = self
            .probe
            .as_ref()
            .map(|p| rebuild(p, device))
            .transpose()?;
        Ok((data, probe))
    }

    /// The run this request asks for, checked, from the sets `datasets` made: an error when
    /// its id is not the one the driver computed.
    pub fn checked<'a>(
        &'a self,
        data: &'a Dataset,
        probe: Option<&'a Dataset>,
    ) -> Result<CheckedRequest<'a>> {
        let run = crate::train::PretrainRequest {
            config: self.config.clone(),
            data,
            aug: &self.aug,
            probe,
            checkpoint_every: self.checkpoint_every,
        }
        .check()?;
        if run.id() != self.id {
            return Err(Error::Data(format!(
                "the request for run {} makes run {}: the adainf that wrote it computes runs differently; use the same binary for driver and workers",
                self.id,
                run.id()
            )));
        }
        Ok(run)
    }
}

/// The kinds of run a request can ask for (the `kind` field of `request.json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Contrastive pretraining (`train::pretrain`); its requests have no `kind` field.
    #[default]
    Pretrain,
    /// A DDPM generator (`gen::diffusion`).
    Diffusion,
}

impl RunKind {
    /// The files a finished run of this kind seals.
    pub fn sealed_files(self) -> Vec<&'static str> {
        match self {
            RunKind::Pretrain => crate::train::seal::pretrain_files(),
            RunKind::Diffusion => diffusion::sealed_files(),
        }
    }

    /// Whether the run in `dir` is finished: sealed, with its records matching the seal (an
    /// error, naming the file, when they do not).
    pub fn finished(self, dir: &Path) -> Result<bool> {
        match self {
            RunKind::Pretrain => crate::train::run::load_finished(dir).map(|r| r.is_some()),
            RunKind::Diffusion => {
                if !crate::train::seal::is_sealed(dir) {
                    return Ok(false);
                }
                crate::train::seal::verify(dir, &self.sealed_files()).map(|()| true)
            }
        }
    }
}

/// A generator to train as a self-contained request (`request.json` with `kind: "diffusion"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionRequest {
    /// Format of the request (`REQUEST_FORMAT` of the adainf that wrote it).
    pub format: u32,
    /// Always `RunKind::Diffusion`.
    pub kind: RunKind,
    /// The run id the driver computed.
    pub id: String,
    /// The options (its `checkpoint_every` is the field below: it is not part of the run id,
    /// so the config leaves it out of its JSON).
    pub config: DiffusionConfig,
    /// The training images.
    pub data: DataRequest,
    /// Save a checkpoint every this many steps (0 = only when stopped).
    pub checkpoint_every: usize,
    /// The device the script asked this generator to train on (its `device` option); None:
    /// the worker's (not part of the run id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl DiffusionRequest {
    /// The request of a generator trained with `config` on `real`; an error, before anything
    /// is written, for options that cannot train on it or a set without a recipe.
    pub fn new(real: &Dataset, config: &DiffusionConfig, device: Option<String>) -> Result<Self> {
        config.check(real)?;
        Ok(DiffusionRequest {
            format: REQUEST_FORMAT,
            kind: RunKind::Diffusion,
            id: DiffusionSpec::new(config, real).id(),
            // As the file holds it: `checkpoint_every` travels in its own field.
            config: DiffusionConfig {
                checkpoint_every: 0,
                ..config.clone()
            },
            data: data_request(real)?,
            checkpoint_every: config.checkpoint_every,
            device,
        })
    }

    /// The options to train with, `checkpoint_every` included.
    pub fn config(&self) -> DiffusionConfig {
        DiffusionConfig {
            checkpoint_every: self.checkpoint_every,
            ..self.config.clone()
        }
    }

    /// The training set, made again and checked against the driver's, and the config checked
    /// against it.
    pub fn dataset(&self, device: &Device) -> Result<Dataset> {
        let data = rebuild(&self.data, device)?;
        self.config.check(&data)?;
        let id = DiffusionSpec::new(&self.config, &data).id();
        if id != self.id {
            return Err(Error::Data(format!(
                "the request for generator {} makes run {id}: the adainf that wrote it computes runs differently; use the same binary for driver and workers",
                self.id
            )));
        }
        Ok(data)
    }
}

/// A request of any run kind: what the executors write, hand to workers and watch.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Request {
    /// A pretraining run.
    Pretrain(Box<RunRequest>),
    /// A generator.
    Diffusion(Box<DiffusionRequest>),
}

impl Request {
    /// The run id.
    pub fn id(&self) -> &str {
        match self {
            Request::Pretrain(r) => &r.id,
            Request::Diffusion(r) => &r.id,
        }
    }

    /// The run's kind.
    pub fn kind(&self) -> RunKind {
        match self {
            Request::Pretrain(_) => RunKind::Pretrain,
            Request::Diffusion(_) => RunKind::Diffusion,
        }
    }

    /// The device the script asked the run to train on, if it did.
    pub fn device(&self) -> Option<&str> {
        match self {
            Request::Pretrain(r) => r.device.as_deref(),
            Request::Diffusion(r) => r.device.as_deref(),
        }
    }

    /// Reads the request at `path`, of whichever kind it is, with the checks of its kind
    /// (`RunRequest::read`): nothing is written before they pass.
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        /// The `kind` field alone.
        #[derive(Deserialize)]
        struct Kind {
            #[serde(default)]
            kind: RunKind,
        }
        let kind: Kind = serde_json::from_str(&text).map_err(|e| {
            Error::file(
                path,
                format!(
                    "not a run request of this adainf version: {e} (its `kind` is one of \"pretrain\", \"diffusion\")"
                ),
            )
        })?;
        match kind.kind {
            RunKind::Pretrain => RunRequest::read(path).map(|r| Request::Pretrain(Box::new(r))),
            RunKind::Diffusion => {
                let req: DiffusionRequest = parse(path, &text)?;
                check_read(path, &req.id, req.format, req.config.check_options())?;
                Ok(Request::Diffusion(Box::new(req)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(name: &str, value: &serde_json::Value) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("adainf-request-{}-{name}.json", std::process::id()));
        std::fs::write(&path, value.to_string()).unwrap();
        path
    }

    /// A generator's request reads back as written, through the kind-dispatching reader; an
    /// edited one (a path for an id, options that cannot train, an unknown kind or field) is
    /// refused with the reason.
    #[test]
    fn diffusion_requests_read_back_and_edited_ones_are_refused() {
        let real = Recipe::Synthetic(crate::data::synthetic::SyntheticSpec {
            n: 4,
            seed: 0,
            size: 16,
            split: "train".into(),
        })
        .build(&burn::tensor::Device::flex())
        .unwrap();
        let config = DiffusionConfig {
            steps: 2,
            channels: 4,
            channel_mult: vec![1, 2],
            attention_at: vec![8],
            checkpoint_every: 5,
            ..Default::default()
        };
        let req = DiffusionRequest::new(&real, &config, Some("flex".into())).unwrap();
        assert_eq!(req.id, DiffusionSpec::new(&config, &real).id());
        let json = serde_json::to_value(Request::Diffusion(Box::new(req.clone()))).unwrap();
        assert_eq!(json["kind"], "diffusion");
        let back = Request::read(&written("ok", &json)).unwrap();
        assert_eq!(back, Request::Diffusion(Box::new(req.clone())));
        let Request::Diffusion(back) = back else {
            unreachable!()
        };
        assert_eq!(
            back.config(),
            config,
            "checkpoint_every travels beside the config"
        );
        assert_eq!(
            back.dataset(&burn::tensor::Device::flex())
                .unwrap()
                .fingerprint(),
            real.fingerprint()
        );
        for (name, edit, want) in [
            (
                "id",
                ("id", None, serde_json::json!("../x")),
                "not a run id",
            ),
            (
                "steps",
                ("config", Some("steps"), serde_json::json!(0)),
                "steps",
            ),
            (
                "mult",
                ("config", Some("channel_mult"), serde_json::json!([])),
                "channel_mult",
            ),
            ("kind", ("kind", None, serde_json::json!("gan")), "`kind`"),
            (
                "field",
                ("config", Some("stepz"), serde_json::json!(3)),
                "stepz",
            ),
        ] {
            let mut edited = json.clone();
            match edit {
                (key, None, v) => edited[key] = v,
                (key, Some(inner), v) => edited[key][inner] = v,
            }
            let err = Request::read(&written(name, &edited))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
        // Options that need the data (attention at a resolution the images do not have) are
        // checked once it is made, before training.
        let mut other = req.clone();
        other.config.attention_at = vec![5];
        let err = other
            .dataset(&burn::tensor::Device::flex())
            .err()
            .expect("an error")
            .to_string();
        assert!(err.contains("attention_at"), "{err}");
    }
}
