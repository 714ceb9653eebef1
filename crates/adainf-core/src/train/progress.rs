//! How training reports progress and learns that it should stop, without knowing the terminal:
//! the CLI decides between a progress bar and plain lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Receives a run's progress. Calls come from the training thread.
pub trait Progress {
    /// A run starts (or is found in the cache when `cached`).
    fn start(&mut self, label: &str, total_steps: usize, cached: bool);
    /// A sampling run starts: `update` then counts images drawn, with no loss (NaN).
    fn start_sampling(&mut self, label: &str, images: usize) {
        self.start(label, images, false);
    }
    /// The run continues from a checkpoint after `step` steps.
    fn resumed(&mut self, _step: usize) {}
    /// Periodic update: step reached, last loss, throughput in images per second.
    fn update(&mut self, step: usize, loss: f64, images_per_s: f64);
    /// The online probe was evaluated.
    fn probe(&mut self, step: usize, accuracy: f64);
    /// The run ended.
    fn finish(&mut self, summary: &str);
    /// A line about what the run is waiting for (another process's claim, workers).
    fn note(&mut self, _message: &str) {}
}

/// A progress sink that ignores everything (tests, `--quiet`).
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: usize, _: bool) {}
    fn update(&mut self, _: usize, _: f64, _: f64) {}
    fn probe(&mut self, _: usize, _: f64) {}
    fn finish(&mut self, _: &str) {}
}

/// Shared flag that asks a running training loop to stop at the next step.
#[derive(Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the training loop to stop before its next step.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Clears a stop request, so the flag can serve another run.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    /// Whether a stop was asked for (and not reset since).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// The underlying flag (for signal handlers).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}
