//! A run as a self-contained request: the resolved config, the training and probe sets as
//! recipes with the fingerprints the driver saw, the augmentation, and how to run it. A worker
//! makes the sets again, checks the fingerprints and the run id, and trains exactly the run the
//! driver asked for.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::augment::ViewPair;
use crate::data::Dataset;
use crate::data::batches::Placement;
use crate::data::recipe::Recipe;
use crate::error::{Error, Result};
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
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read the run request: {e}")))?;
        let req: RunRequest = serde_json::from_str(&text).map_err(|e| {
            Error::file(
                path,
                format!("not a run request of this adainf version: {e}"),
            )
        })?;
        // An id of another shape (`../../x`) would name a folder outside the runs folder.
        if !crate::data::is_hash_hex(&req.id) {
            return Err(Error::file(
                path,
                format!(
                    "the run request's id {:?} is not a run id (24 hex digits): the file was edited; use the request adainf wrote",
                    req.id
                ),
            ));
        }
        // A request edited by hand into a config its method cannot run stops here, before
        // anything is written.
        req.config
            .validate()
            .map_err(|e| Error::file(path, format!("the run request is not valid: {e}")))?;
        if req.format != REQUEST_FORMAT {
            return Err(Error::file(
                path,
                format!(
                    "request format {} but this adainf reads format {REQUEST_FORMAT}; use the adainf that wrote it",
                    req.format
                ),
            ));
        }
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
