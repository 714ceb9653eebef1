//! Schedules: the values a run may vary over its steps (the share of generated images per
//! batch, the augmentation strength, the learning-rate factor), as per-step tables. The keys
//! are one typed list (`KEYS`: name, range, meaning) that the script host, `adainf api` /
//! `check`, validation and the trainer all read; `tabulate` is the one place a value (a
//! script's number or function) becomes a table. A table is part of the run's config, so the
//! run id hashes the values, not how they were written, and workers need no script engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::data::loader::Sampler;
use crate::error::{Error, Result};

/// A value a schedule can set per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKey {
    /// Share of each batch drawn from the generated part of the data.
    GeneratedShare,
    /// Factor on the augmentation's strength (`AugSpec::with_strength`).
    Strength,
    /// Factor on the base learning rates, replacing the built-in warm-up + cosine.
    Lr,
}

/// What a schedulable key means and which values it takes.
#[derive(Clone, Copy, Debug)]
pub struct KeyInfo {
    /// The key.
    pub key: ScheduleKey,
    /// Its name in scripts and configs.
    pub name: &'static str,
    /// Smallest and largest allowed value.
    pub range: (f64, f64),
    /// What it sets, and what holds when it is not scheduled.
    pub doc: &'static str,
}

/// Every schedulable key, in `ScheduleKey` order: the one list that scripts, the API
/// catalogue, validation and training read.
pub const KEYS: [KeyInfo; 3] = [
    KeyInfo {
        key: ScheduleKey::GeneratedShare,
        name: "generated_share",
        range: (0.0, 1.0),
        doc: "share of each batch drawn from the generated part of an inflation: round(share × batch) generated images, the rest real, each part by its own shuffled sampler (`dup` then sets nothing about sampling); unset: uniform over the inflated set",
    },
    KeyInfo {
        key: ScheduleKey::Strength,
        name: "strength",
        range: (0.0, 10.0),
        doc: "augmentation strength (as aug.strength(s): jitter × s, crop_min^s) of every view and source; unset: 1",
    },
    KeyInfo {
        key: ScheduleKey::Lr,
        name: "lr",
        range: (0.0, 10.0),
        doc: "factor on the base lr and classifier_lr, replacing the built-in warm-up + cosine (`warmup`, `warmup_start` then do nothing); unset: the built-in one",
    },
];

impl ScheduleKey {
    /// The key's entry in `KEYS`.
    pub fn info(self) -> &'static KeyInfo {
        &KEYS[self as usize]
    }
    /// The key's name in scripts and configs.
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// The key named `name`, if any.
    pub fn parse(name: &str) -> Option<ScheduleKey> {
        KEYS.iter().find(|k| k.name == name).map(|k| k.key)
    }
}

/// `t` of step `step` of a run of `steps` steps: step / steps (0 at the first step).
pub fn t_of(step: usize, steps: usize) -> f64 {
    step as f64 / steps.max(1) as f64
}

/// Why a value could not be tabulated.
#[derive(Debug)]
pub enum TabulateError<E> {
    /// Evaluating the value at this step failed with `E` (a script error, a non-number).
    Failed {
        /// The key.
        key: ScheduleKey,
        /// The step and its t.
        step: usize,
        /// `t_of(step)`.
        t: f64,
        /// The evaluation's error.
        error: E,
    },
    /// The value at this step is NaN, infinite or out of the key's range.
    OutOfRange(Error),
}

/// The error for value `v` of `key` at `step` when it is not a finite number in the key's range.
fn check_value(key: ScheduleKey, step: usize, steps: usize, v: f64) -> Result<()> {
    let (lo, hi) = key.info().range;
    if v.is_finite() && (lo..=hi).contains(&v) {
        return Ok(());
    }
    Err(Error::config(
        format!("schedule.{}", key.name()),
        format!(
            "is {v} at step {step} (t = {}); it must be a number in [{lo}, {hi}]",
            t_of(step, steps)
        ),
    ))
}

/// The per-step table of `key` over a run of `steps` steps: `value(t)` at t = step / steps
/// for every step, each checked against the key's range.
pub fn tabulate<E>(
    key: ScheduleKey,
    steps: usize,
    mut value: impl FnMut(f64) -> std::result::Result<f64, E>,
) -> std::result::Result<Vec<f64>, TabulateError<E>> {
    let mut table = Vec::with_capacity(steps);
    for step in 0..steps {
        let t = t_of(step, steps);
        let v = value(t).map_err(|error| TabulateError::Failed {
            key,
            step,
            t,
            error,
        })?;
        check_value(key, step, steps, v).map_err(TabulateError::OutOfRange)?;
        table.push(v);
    }
    Ok(table)
}

/// The scheduled keys of a run and their per-step values (one per step of the run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Schedule(pub BTreeMap<ScheduleKey, Vec<f64>>);

crate::option_kind!(Schedule: Schedule);

impl Schedule {
    /// Whether no key is scheduled.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key` at `step`; None when `key` is not scheduled.
    pub fn value(&self, key: ScheduleKey, step: usize) -> Option<f64> {
        let table = self.0.get(&key)?;
        table.get(step).or(table.last()).copied()
    }

    /// The table of `key`, if scheduled.
    pub fn table(&self, key: ScheduleKey) -> Option<&[f64]> {
        self.0.get(&key).map(Vec::as_slice)
    }

    /// The scheduled keys' names joined by `+` (a report column), empty when none.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.0.keys().map(|k| k.name()).collect();
        names.join("+")
    }

    /// Checks that every table has one value per step, each in its key's range.
    pub fn validate(&self, steps: usize) -> Result<()> {
        for (&key, table) in &self.0 {
            if table.len() != steps {
                return Err(Error::config(
                    format!("schedule.{}", key.name()),
                    format!(
                        "has {} values but the run has {steps} steps (one value per step)",
                        table.len()
                    ),
                ));
            }
            for (step, &v) in table.iter().enumerate() {
                check_value(key, step, steps, v)?;
            }
        }
        Ok(())
    }

    /// Generated images per batch at each step, `round(share × batch)`, when the share is
    /// scheduled.
    pub fn generated_counts(&self, batch: usize) -> Option<Arc<[u32]>> {
        let shares = self.table(ScheduleKey::GeneratedShare)?;
        Some(
            shares
                .iter()
                .map(|s| (s * batch as f64).round() as u32)
                .collect(),
        )
    }

    /// Checks the schedule against the training data: a generated share needs a set whose
    /// real and generated parts are known (`Dataset::sources`), and a generated part whenever
    /// the share is above 0; each part must fill its largest share of a batch.
    pub fn check_data(&self, data: &Dataset, batch: usize) -> Result<()> {
        let Some(counts) = self.generated_counts(batch) else {
            return Ok(());
        };
        let key = format!("schedule.{}", ScheduleKey::GeneratedShare.name());
        let Some((real, generated)) = data.sources() else {
            return Err(Error::config(
                key,
                format!(
                    "{} mixes real and generated images without saying which part is which (a subset of an inflation?); schedule the share on the set data::inflate made",
                    data.description()
                ),
            ));
        };
        if generated.is_empty()
            && let Some(step) = counts.iter().position(|&c| c > 0)
        {
            let steps = counts.len();
            return Err(Error::config(
                key,
                format!(
                    "is {} at step {step} (t = {}) but {} has no generated part; make the data with data::inflate(real, generated, ..) or keep the share at 0",
                    self.value(ScheduleKey::GeneratedShare, step).unwrap_or(0.0),
                    t_of(step, steps),
                    data.description()
                ),
            ));
        }
        Sampler::mixed(real, generated, counts, batch, 0, 0).map(|_| ())
    }
}

/// The sampler of a run after `first_step` steps: mixed when the generated share is
/// scheduled, uniform over the whole set otherwise.
pub fn sampler(
    data: &Dataset,
    schedule: &Schedule,
    batch: usize,
    seed: u64,
    first_step: usize,
) -> Result<Sampler> {
    let Some(counts) = schedule.generated_counts(batch) else {
        return Sampler::resume(data.len(), batch, seed, first_step);
    };
    schedule.check_data(data, batch)?;
    let Some((real, generated)) = data.sources() else {
        return Err(Error::Data(format!(
            "{}: its real and generated parts are not known",
            data.description()
        )));
    };
    Sampler::mixed(real, generated, counts, batch, seed, first_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_listed_once_in_variant_order() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(k.key as usize, i, "{}", k.name);
            assert_eq!(ScheduleKey::parse(k.name), Some(k.key));
            // The serialised name is the script name.
            assert_eq!(
                serde_json::to_string(&k.key).unwrap(),
                format!("\"{}\"", k.name)
            );
        }
        assert_eq!(ScheduleKey::parse("temperature"), None);
    }

    #[test]
    fn tabulate_evaluates_at_step_over_steps_and_checks_ranges() {
        let table = tabulate::<()>(ScheduleKey::GeneratedShare, 4, Ok).unwrap();
        assert_eq!(table, vec![0.0, 0.25, 0.5, 0.75]);
        let e = match tabulate::<()>(ScheduleKey::GeneratedShare, 4, |t| Ok(2.0 * t)) {
            Err(TabulateError::OutOfRange(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        // 2 × 0.75 = 1.5 is the first value out of [0, 1]; 2 × 0.5 = 1 is allowed.
        assert!(
            e.contains("schedule.generated_share")
                && e.contains("1.5")
                && e.contains("step 3")
                && e.contains("t = 0.75"),
            "{e}"
        );
        let e = match tabulate::<()>(ScheduleKey::Lr, 3, |_| Ok(f64::NAN)) {
            Err(TabulateError::OutOfRange(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(e.contains("NaN") && e.contains("step 0"), "{e}");
        match tabulate(ScheduleKey::Strength, 5, |t| {
            if t > 0.5 { Err("boom") } else { Ok(1.0) }
        }) {
            Err(TabulateError::Failed { step, t, error, .. }) => {
                assert_eq!((step, t, error), (3, 0.6, "boom"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validate_wants_one_value_per_step_in_range() {
        let mut s = Schedule::default();
        assert!(s.validate(3).is_ok() && s.is_empty());
        s.0.insert(ScheduleKey::Strength, vec![1.0, 0.5]);
        assert!(s.validate(3).unwrap_err().to_string().contains("2 values"));
        s.0.insert(ScheduleKey::Strength, vec![1.0, 0.5, 11.0]);
        assert!(s.validate(3).unwrap_err().to_string().contains("step 2"));
        s.0.insert(ScheduleKey::Strength, vec![1.0, 0.5, 0.25]);
        assert!(s.validate(3).is_ok());
        assert_eq!(s.value(ScheduleKey::Strength, 1), Some(0.5));
        assert_eq!(s.value(ScheduleKey::Lr, 1), None);
        // The serialised form names the key; it round-trips.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"strength":[1.0,0.5,0.25]}"#);
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }

    #[test]
    fn generated_counts_round_share_times_batch() {
        let mut s = Schedule::default();
        s.0.insert(ScheduleKey::GeneratedShare, vec![0.0, 0.26, 0.5, 1.0]);
        assert_eq!(&*s.generated_counts(10).unwrap(), &[0, 3, 5, 10]);
    }
}
