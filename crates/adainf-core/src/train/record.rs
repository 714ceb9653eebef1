//! What a run reports as it trains: the meter of the steps since the last metrics row
//! (images/s, data wait, generated share) and the record each row goes to (`metrics.jsonl`,
//! the TensorBoard events, the progress display, the rows kept for the result), opened for a
//! fresh or a resumed run.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Progress;
use super::events::{self, RunEvents};
use super::run::{MetricRow, MetricsLog, RunSpec, read_metrics};
use crate::error::Result;

/// What the steps since the last metrics row did.
pub struct Meter {
    since: Instant,
    images: usize,
    generated: usize,
    total_wait: Duration,
}

/// The numbers of a metrics row besides those the meter measures.
pub struct StepNumbers {
    /// Steps done.
    pub step: usize,
    /// The loss of the last step.
    pub loss: f64,
    /// The learning rate of the last step.
    pub lr: f64,
    /// The augmentation strength of the last step.
    pub strength: f64,
    /// The online probe's accuracy, where it was evaluated.
    pub probe_acc: Option<f64>,
}

impl Meter {
    /// A meter whose first interval starts now.
    pub fn start() -> Meter {
        Meter {
            since: Instant::now(),
            images: 0,
            generated: 0,
            total_wait: Duration::ZERO,
        }
    }

    /// One step's batch: `images` images, `generated` of them generated.
    pub fn count(&mut self, images: usize, generated: usize) {
        self.images += images;
        self.generated += generated;
    }

    /// The row that closes the interval, which waited `waited` for data; a new interval starts.
    pub fn row(&mut self, numbers: StepNumbers, waited: Duration) -> MetricRow {
        let row = interval_row(
            numbers,
            self.images,
            self.generated,
            self.since.elapsed(),
            waited,
        );
        self.total_wait += waited;
        self.since = Instant::now();
        self.images = 0;
        self.generated = 0;
        row
    }

    /// The time all intervals so far waited for data.
    pub fn total_wait(&self) -> Duration {
        self.total_wait
    }
}

/// The row of an interval of `elapsed` that trained `images` images (`generated` of them
/// generated) and waited `waited` for data.
fn interval_row(
    n: StepNumbers,
    images: usize,
    generated: usize,
    elapsed: Duration,
    waited: Duration,
) -> MetricRow {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    MetricRow {
        step: n.step,
        loss: n.loss,
        lr: n.lr,
        probe_acc: n.probe_acc,
        images_per_s: images as f64 / seconds,
        data_wait: (waited.as_secs_f64() / seconds).min(1.0),
        generated_fraction: Some(generated as f64 / images.max(1) as f64),
        strength: Some(n.strength),
    }
}

/// Where a run's metrics rows go, and the rows so far.
pub struct RunRecord {
    /// The rows so far, the resumed ones first.
    pub rows: Vec<MetricRow>,
    log: MetricsLog,
    events: RunEvents,
}

impl RunRecord {
    /// The record of the run in `dir`, training from `first_step`: the rows an interrupted
    /// process logged after that step are dropped (those steps run again), in `metrics.jsonl`
    /// and in the event files.
    pub fn open(
        dir: &Path,
        spec: &RunSpec,
        first_step: usize,
        preview: impl FnOnce() -> Result<events::Preview>,
    ) -> Result<RunRecord> {
        let path = dir.join("metrics.jsonl");
        let rows: Vec<MetricRow> = read_metrics(&path)?
            .into_iter()
            .filter(|m| m.step <= first_step)
            .collect();
        let mut log = MetricsLog::create(&path)?;
        for row in &rows {
            log.append(row)?;
        }
        let events = RunEvents::start(dir, spec, first_step, preview)?;
        Ok(RunRecord { rows, log, events })
    }

    /// Sends `row` to the log, the events and `progress`, and keeps it.
    pub fn row(&mut self, row: MetricRow, progress: &mut dyn Progress) -> Result<()> {
        self.log.append(&row)?;
        self.events.row(&row)?;
        progress.update(row.step, row.loss, row.images_per_s);
        if let Some(acc) = row.probe_acc {
            progress.probe(row.step, acc);
        }
        self.rows.push(row);
        Ok(())
    }

    /// The last loss recorded (NaN before any).
    pub fn last_loss(&self) -> f64 {
        self.rows.last().map_or(f64::NAN, |m| m.loss)
    }

    /// The last probe accuracy recorded.
    pub fn accuracy(&self) -> Option<f64> {
        self.rows.iter().rev().find_map(|m| m.probe_acc)
    }

    /// The run finished after `steps` steps; its rows.
    pub fn finish(mut self, steps: usize) -> Result<Vec<MetricRow>> {
        self.events.finish(steps)?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(step: usize) -> StepNumbers {
        StepNumbers {
            step,
            loss: 1.5,
            lr: 0.1,
            strength: 0.5,
            probe_acc: None,
        }
    }

    #[test]
    fn an_interval_row_measures_throughput_wait_and_generated_share() {
        let second = Duration::from_secs(1);
        let row = interval_row(numbers(8), 100, 25, 2 * second, second / 2);
        assert_eq!((row.step, row.loss, row.lr), (8, 1.5, 0.1));
        assert_eq!(row.images_per_s, 50.0);
        assert_eq!(row.data_wait, 0.25);
        assert_eq!(row.generated_fraction, Some(0.25));
        assert_eq!(row.strength, Some(0.5));
        // A wait longer than the interval (measured on another clock) is all of it; an
        // interval with no images has no generated share, not NaN.
        let row = interval_row(numbers(9), 0, 0, second, 3 * second);
        assert_eq!(row.data_wait, 1.0);
        assert_eq!(row.generated_fraction, Some(0.0));
        assert_eq!(row.images_per_s, 0.0);
    }

    #[test]
    fn a_resumed_record_drops_the_rows_after_its_checkpoint() {
        use crate::augment::preset;
        use crate::data::{Dataset, tiny_store};
        let dir = std::env::temp_dir().join(format!("adainf-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = Dataset::from_store(tiny_store(4, 2, 0));
        let spec = RunSpec::new(
            Default::default(),
            &data,
            preset("symmetric").unwrap(),
            None,
        );
        let preview = || Err(crate::error::Error::Data("no preview in this test".into()));
        // A process logs steps 2, 4, 6 and is killed; its last checkpoint was at step 4.
        let mut record = RunRecord::open(&dir, &spec, 0, || {
            events::preview(&data, &preset("symmetric").unwrap(), &Default::default())
        })
        .unwrap();
        for step in [2, 4, 6] {
            let row = interval_row(numbers(step), 8, 0, Duration::from_secs(1), Duration::ZERO);
            record.row(row, &mut super::super::Silent).unwrap();
        }
        drop(record);
        // Resumed at step 4: rows 2 and 4 stay, in memory and in metrics.jsonl (the preview
        // is not made again).
        let record = RunRecord::open(&dir, &spec, 4, preview).unwrap();
        let steps: Vec<usize> = record.rows.iter().map(|r| r.step).collect();
        assert_eq!(steps, [2, 4]);
        let logged = read_metrics(&dir.join("metrics.jsonl")).unwrap();
        assert_eq!(logged.iter().map(|r| r.step).collect::<Vec<_>>(), [2, 4]);
        assert_eq!(record.last_loss(), 1.5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_meter_starts_a_new_interval_after_each_row_and_sums_the_waits() {
        let mut meter = Meter::start();
        meter.count(10, 10);
        meter.count(10, 0);
        let first = meter.row(numbers(2), Duration::from_millis(3));
        assert_eq!(first.generated_fraction, Some(0.5));
        meter.count(10, 0);
        let second = meter.row(numbers(3), Duration::from_millis(4));
        assert_eq!(second.generated_fraction, Some(0.0));
        assert_eq!(meter.total_wait(), Duration::from_millis(7));
    }
}
