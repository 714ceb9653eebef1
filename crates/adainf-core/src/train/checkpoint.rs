//! A run's checkpoints, and a pretraining trainer's files. A checkpoint captures everything a
//! resumed run needs; it is written to `checkpoint.tmp/` and renamed into place; its
//! `state.json`, written last, holds the step and the SHA-256 of every other file, checked
//! before a resume. `write`, `latest`, `resume` and `discard_damaged` serve every run kind
//! (pretraining, the diffusion generator); the files are the kind's own. Pretraining's
//! checkpoint holds every module, both optimisers' states, MoCo's queues and the step (the
//! sampler and the augmentation randomness are functions of the seed and the step, so they
//! need no state), and a finished run's weights are in burn's format and, for the backbone,
//! safetensors with torchvision's names.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::progress::Progress;
use super::run::write_json;
use super::trainer::Trainer;
use crate::error::{Error, Result};
use crate::tensor::{floats, read_floats};

/// `checkpoint/state.json`.
#[derive(Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps completed.
    pub step: usize,
    /// MoCo v2+: the queues' write position (next row to overwrite); None for other methods.
    pub queue_ptr: Option<usize>,
    /// SHA-256 of each other file of the checkpoint (`super::seal::digest_file`).
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
}

fn read_state(dir: &Path) -> Result<CheckpointState> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::file(&state_path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::file(&state_path, e))
}

/// Checks the checkpoint in `dir` against the digests of its `state.json`: an error naming
/// the first file that is missing, truncated or changed (a checkpoint without digests, from
/// an older adainf, cannot be checked and counts as damaged).
pub fn check_intact(dir: &Path) -> Result<()> {
    let state = read_state(dir)?;
    if state.files.is_empty() {
        return Err(Error::file(
            dir,
            "the checkpoint has no digests (written by an older adainf), so it cannot be checked",
        ));
    }
    let names: Vec<&str> = state.files.keys().map(String::as_str).collect();
    super::seal::check(dir, &state.files, &names).map_err(|_| {
        Error::file(
            dir,
            "the checkpoint is damaged (a file is missing or differs from its digest)",
        )
    })
}

/// The state of the checkpoint in `dir`, once its files match their digests.
pub fn read(dir: &Path) -> Result<CheckpointState> {
    check_intact(dir)?;
    read_state(dir)
}

/// Writes `run_dir/checkpoint/` atomically: `save` writes the files into `checkpoint.tmp/`,
/// then `state.json` (the step, `queue_ptr`, the digests of those files) is written last and
/// the folder renamed into place (the previous checkpoint stays until the new one is
/// complete).
pub fn write(
    run_dir: &Path,
    step: usize,
    queue_ptr: Option<usize>,
    save: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    // A run folder deleted while the run trains is reported, not made again.
    super::run::check_run_dir(run_dir)?;
    let tmp = run_dir.join("checkpoint.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| Error::file(&tmp, e))?;
    save(&tmp)?;
    let names: Vec<String> = std::fs::read_dir(&tmp)
        .map_err(|e| Error::file(&tmp, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    write_json(
        &tmp.join("state.json"),
        &CheckpointState {
            step,
            queue_ptr,
            files: super::seal::digests(&tmp, &names)?,
        },
    )?;
    let current = run_dir.join("checkpoint");
    let old = run_dir.join("checkpoint.old");
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(&current, &old).map_err(|e| Error::file(&current, e))?;
    }
    std::fs::rename(&tmp, &current).map_err(|e| Error::file(&current, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The checkpoint folders a run may have (the current one, the previous one kept while a
/// new one is renamed into place, an incomplete one being written).
pub const FOLDERS: [&str; 3] = ["checkpoint", "checkpoint.old", "checkpoint.tmp"];

/// The newest complete checkpoint folder of a run, if any.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    FOLDERS[..2]
        .iter()
        .map(|n| run_dir.join(n))
        .find(|d| d.join("state.json").exists())
}

/// Resumes the run in `run_dir` from its newest checkpoint with `load` (which restores the
/// state from the folder and returns the steps done): 0 when there is none, and an error
/// that says how to start over when it cannot be used.
pub fn resume(run_dir: &Path, load: impl FnOnce(&Path) -> Result<usize>) -> Result<usize> {
    let Some(ckpt) = latest(run_dir) else {
        return Ok(0);
    };
    load(&ckpt).map_err(|e| {
        Error::file(
            &ckpt,
            format!(
                "cannot resume from this checkpoint ({e}); run the script again with --retry-failed to discard it and train the run from the start"
            ),
        )
    })
}

/// Removes every checkpoint folder of the run in `run_dir`.
pub fn remove_all(run_dir: &Path) -> Result<()> {
    for folder in FOLDERS {
        let path = run_dir.join(folder);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::file(&path, e))?;
        }
    }
    Ok(())
}

/// On a retry: a run whose sealed `files` changed after it finished, or whose checkpoint is
/// damaged, is trained again from the start (said on the progress line).
pub fn discard_damaged(run_dir: &Path, files: &[&str], progress: &mut dyn Progress) -> Result<()> {
    if super::seal::damaged(run_dir, files) {
        progress.note(&format!(
            "{}: its files changed after it finished; training it again from the start",
            run_dir.display()
        ));
        return super::seal::discard(run_dir, files);
    }
    if let Some(ckpt) = latest(run_dir)
        && let Err(e) = check_intact(&ckpt)
    {
        progress.note(&format!("{e}; discarding it and training from the start"));
        remove_all(run_dir)?;
    }
    Ok(())
}

/// Writes `module` to `dir/<name>.bpk`.
pub fn save_module<M: Module>(module: M, dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(format!("{name}.bpk"));
    module
        .save_file(&path)
        .map_err(|e| Error::file(&path, format!("cannot save weights: {e}")))
}

/// `fresh` with the weights of `dir/<name>.bpk`.
pub fn load_module<M: Module>(fresh: M, dir: &Path, name: &str) -> Result<M> {
    let path = dir.join(format!("{name}.bpk"));
    fresh
        .try_load_file(&path)
        .map_err(|e| Error::file(&path, format!("cannot load ({e})")))
}

/// Writes an optimiser's state to `dir/<name>.bpk`.
pub fn save_optimizer(o: &ModuleOptimizer, dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(format!("{name}.bpk"));
    o.save(&path)
        .map_err(|e| Error::file(&path, format!("cannot save optimizer state: {e}")))
}

/// `o` with the state of `dir/<name>.bpk`.
pub fn load_optimizer(o: ModuleOptimizer, dir: &Path, name: &str) -> Result<ModuleOptimizer> {
    let path = dir.join(format!("{name}.bpk"));
    o.load(&path)
        .map_err(|e| Error::file(&path, format!("cannot load optimizer state: {e}")))
}

fn write_floats(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| Error::file(path, e))
}

fn read_floats_file(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

impl Trainer {
    /// The final weights of a finished run: `backbone.bpk`, `projector.bpk`, `probe.bpk`
    /// (burn writes each file to a temporary name and renames it), and `backbone.safetensors`
    /// with torchvision key names, for PyTorch.
    pub fn save_weights(&self, dir: &Path) -> Result<()> {
        let encoder = self.encoder.valid();
        crate::model::safetensors::save_backbone(
            &encoder.backbone,
            &self.cfg.backbone_config()?,
            &dir.join("backbone.safetensors"),
        )?;
        save_module(encoder.backbone, dir, "backbone")?;
        save_module(encoder.projector, dir, "projector")?;
        save_module(self.probe.valid(), dir, "probe")
    }

    /// Writes the trainer's `checkpoint/` (`write`).
    pub fn save_checkpoint(&self, run_dir: &Path, steps_done: usize) -> Result<()> {
        write(
            run_dir,
            steps_done,
            self.state.queue().map(|q| q.ptr),
            |tmp| {
                save_module(self.encoder.clone(), tmp, "encoder")?;
                save_module(self.probe.clone(), tmp, "probe")?;
                if let Some(target) = self.state.target() {
                    save_module(target.clone(), tmp, "target")?;
                }
                save_optimizer(&self.encoder_opt, tmp, "encoder_optim")?;
                save_optimizer(&self.probe_opt, tmp, "probe_optim")?;
                if let Some(q) = self.state.queue() {
                    write_floats(&tmp.join("queue0.f32"), &read_floats(q.keys[0].clone()))?;
                    write_floats(&tmp.join("queue1.f32"), &read_floats(q.keys[1].clone()))?;
                }
                Ok(())
            },
        )
    }

    /// Restores the state saved by `save_checkpoint`; returns the number of steps done.
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<usize> {
        let state = read(dir)?;
        self.encoder = load_module(self.encoder.clone(), dir, "encoder")?;
        self.probe = load_module(self.probe.clone(), dir, "probe")?;
        if let Some((target, _)) = self.state.target_mut() {
            *target = load_module(target.clone(), dir, "target")?.no_grad();
        }
        self.encoder_opt = load_optimizer(self.encoder_opt.clone(), dir, "encoder_optim")?;
        self.probe_opt = load_optimizer(self.probe_opt.clone(), dir, "probe_optim")?;
        let plain = self.plain.clone();
        if let Some(q) = self.state.queue_mut() {
            for (k, slot) in q.keys.iter_mut().enumerate() {
                let dims = slot.dims();
                let values = read_floats_file(&dir.join(format!("queue{k}.f32")))?;
                if values.len() != dims[0] * dims[1] {
                    return Err(Error::file(
                        dir.join(format!("queue{k}.f32")),
                        "has the wrong size for this run's queue",
                    ));
                }
                *slot = floats(values, dims, &plain);
            }
            q.ptr = state.queue_ptr.unwrap_or(0);
        }
        Ok(state.step)
    }
}
