//! The step loop of a pretraining run and what surrounds it: resuming from a checkpoint, the
//! steps (each step, and at its reporting points the loss read back, the metrics row, the
//! online probe and a checkpoint), stopping on a cancel or a diverged loss, and writing the
//! finished run (weights, last checkpoint, result, seal).

use std::path::Path;
use std::time::Duration;

use super::record::{Meter, RunRecord, StepNumbers};
use super::run::{RunResult, write_json};
use super::{PretrainConfig, PretrainRequest, TrainContext, Trainer, seal};
use crate::data::batches::{Batches, Placement};
use crate::error::{Error, Result};
use crate::tensor::read_floats;

/// Restores an interrupted run's last checkpoint into `trainer`; the steps it had done (0 for
/// a fresh run).
pub fn resume(trainer: &mut Trainer, dir: &Path) -> Result<usize> {
    super::checkpoint::resume(dir, |ckpt| trainer.load_checkpoint(ckpt))
}

/// What a step that has just finished (`done` steps in all) must do besides training.
#[derive(Debug, PartialEq, Eq)]
struct Due {
    /// Read the loss back and write a metrics row.
    row: bool,
    /// Evaluate the online probe (and write a row).
    probe: bool,
    /// Save a checkpoint (and write a row); never at the last step, whose weights the
    /// finished run saves.
    checkpoint: bool,
}

fn due(cfg: &PretrainConfig, has_probe: bool, checkpoint_every: usize, done: usize) -> Due {
    let last = done == cfg.steps;
    let probe = has_probe && (last || (cfg.eval_every > 0 && done.is_multiple_of(cfg.eval_every)));
    let checkpoint = checkpoint_due(checkpoint_every, done, cfg.steps);
    Due {
        row: done.is_multiple_of(cfg.log_every) || probe || checkpoint || last,
        probe,
        checkpoint,
    }
}

/// Whether a run of `steps` steps that checkpoints every `every` (0: never on its own) saves
/// one after `done` steps; never at the last step, whose weights the finished run keeps (every
/// run kind's loop asks this).
pub(crate) fn checkpoint_due(every: usize, done: usize, steps: usize) -> bool {
    every > 0 && done.is_multiple_of(every) && done < steps
}

/// What a run that diverged after `last_checkpoint` steps keeps, for its error message.
pub(crate) fn checkpoint_kept(last_checkpoint: usize, dir: &Path) -> String {
    if last_checkpoint > 0 {
        format!(
            "the last good checkpoint (step {last_checkpoint}) is kept in {}",
            dir.join("checkpoint").display()
        )
    } else {
        "no checkpoint was written before it".to_string()
    }
}

/// The loss read back at step `done`, or the error that stops a diverged run (saying which
/// checkpoint is kept and what to change).
fn finite_loss(loss: f64, done: usize, last_checkpoint: usize, dir: &Path, lr: f64) -> Result<f64> {
    if loss.is_finite() {
        return Ok(loss);
    }
    let kept = checkpoint_kept(last_checkpoint, dir);
    Err(Error::Numeric(format!(
        "the loss became {loss} at step {done}; {kept}. Training diverged: lower the learning rate (it is {}), or check the options that scale the loss (temperature, the method's settings) and the data",
        short_number(lr)
    )))
}

/// `x` as a person reads it: `0.4`, `1e300` (not 301 digits).
fn short_number(x: f64) -> String {
    if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// What the loop leaves for the run's result.
pub struct Trained {
    /// The time the loop waited for data.
    pub total_wait: Duration,
    /// Where the data was.
    pub placement: Placement,
}

/// Trains from `first_step` to the config's last step. A cancel (Ctrl-C, a watch reload, a
/// pre-empted Slurm task) checkpoints what was computed and returns `Error::Cancelled`, so
/// running again resumes there.
pub fn train(
    req: &PretrainRequest,
    ctx: &mut TrainContext,
    dir: &Path,
    trainer: &mut Trainer,
    mut batches: Batches,
    record: &mut RunRecord,
    first_step: usize,
) -> Result<Trained> {
    let cfg = &req.config;
    let mut meter = Meter::start();
    let mut last_checkpoint = first_step;
    for step in first_step..cfg.steps {
        if ctx.cancel.is_cancelled() {
            if step > last_checkpoint {
                drop(batches);
                trainer.save_checkpoint(dir, step)?;
            }
            return Err(Error::Cancelled);
        }
        let batch = batches.next_batch();
        meter.count(
            batch.len(),
            batch.generated().iter().filter(|&&g| g).count(),
        );
        let loss = trainer.step(batch, step);
        let done = step + 1;
        let due = due(cfg, req.probe.is_some(), req.checkpoint_every, done);
        if !due.row {
            continue;
        }
        // The only host synchronisation of the step, every `log_every` steps.
        let loss = read_floats(loss)[0] as f64;
        let loss = finite_loss(loss, done, last_checkpoint, dir, cfg.lr)?;
        let probe_acc = req
            .probe
            .filter(|_| due.probe)
            .and_then(|p| trainer.probe_accuracy(p));
        let numbers = StepNumbers {
            step: done,
            loss,
            lr: trainer.lr(step),
            strength: trainer.strength(step),
            probe_acc,
        };
        record.row(
            meter.row(numbers, batches.take_waited()),
            &mut *ctx.progress,
        )?;
        if due.checkpoint {
            trainer.save_checkpoint(dir, done)?;
            last_checkpoint = done;
        }
    }
    let placement = batches.placement();
    Ok(Trained {
        total_wait: meter.total_wait(),
        placement,
    })
}

/// Writes the finished run: its weights, a last checkpoint, `result.json` and, last, the seal
/// that makes it finished.
pub fn finish(dir: &Path, trainer: &Trainer, result: &RunResult) -> Result<()> {
    super::run::check_run_dir(dir)?;
    trainer.save_weights(dir)?;
    trainer.save_checkpoint(dir, result.steps)?;
    write_json(&dir.join("result.json"), result)?;
    seal::write(dir, &seal::pretrain_files())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cfg: &PretrainConfig, has_probe: bool, checkpoint_every: usize) -> [Vec<usize>; 3] {
        let mut out = [vec![], vec![], vec![]];
        for done in 1..=cfg.steps {
            let d = due(cfg, has_probe, checkpoint_every, done);
            for (list, on) in out.iter_mut().zip([d.row, d.probe, d.checkpoint]) {
                if on {
                    list.push(done);
                }
            }
        }
        out
    }

    #[test]
    fn rows_probes_and_checkpoints_fall_where_their_options_say() {
        let cfg = PretrainConfig {
            steps: 10,
            log_every: 4,
            eval_every: 0,
            ..Default::default()
        };
        // Rows every `log_every` and at the last step; no probe without a probe set.
        assert_eq!(at(&cfg, false, 0), [vec![4, 8, 10], vec![], vec![]]);
        // The probe at the last step only (eval_every 0); checkpoints every 5, never at the
        // last step; each of them also writes a row.
        assert_eq!(at(&cfg, true, 5), [vec![4, 5, 8, 10], vec![10], vec![5]]);
        let cfg = PretrainConfig {
            eval_every: 3,
            ..cfg
        };
        assert_eq!(
            at(&cfg, true, 0),
            [vec![3, 4, 6, 8, 9, 10], vec![3, 6, 9, 10], vec![]]
        );
    }

    #[test]
    fn a_diverged_loss_stops_the_run_naming_the_step_and_the_checkpoint_kept() {
        let dir = Path::new("/runs/abc");
        assert_eq!(finite_loss(0.5, 3, 0, dir, 0.1).unwrap(), 0.5);
        let e = finite_loss(f64::NAN, 7, 0, dir, 0.1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("NaN at step 7") && e.contains("no checkpoint") && e.contains("(it is 0.1)"),
            "{e}"
        );
        let e = finite_loss(f64::NAN, 1, 0, dir, 1e300)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(it is 1e300)"), "{e}");
        let e = finite_loss(f64::INFINITY, 9, 6, dir, 0.1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("step 6") && e.contains("/runs/abc/checkpoint"),
            "{e}"
        );
    }
}
