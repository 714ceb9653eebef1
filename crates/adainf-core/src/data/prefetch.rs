//! Batches prepared ahead of the training step: a background thread draws indices from the
//! sampler, gathers the u8 images (from memory or a memory-mapped file) and hands them over a
//! bounded queue, so the step never waits for the disk or the gather unless the producer is
//! slower than the device. The consumer side counts the time it did wait.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Dataset;
use super::loader::{HostBatch, Sampler, gather};
use crate::error::{Error, Result};

/// Batches a consumer may be ahead of: enough to hide a slow read, small enough that the
/// queued u8 batches stay a few megabytes.
pub const DEFAULT_DEPTH: usize = 4;

/// The consumer end of a prefetching thread. Dropping it stops the thread.
pub struct Prefetcher {
    batches: Option<Receiver<HostBatch>>,
    worker: Option<JoinHandle<()>>,
    waited: Duration,
}

impl Prefetcher {
    /// Starts a thread that yields `sampler`'s batches of `data`, at most `depth` ahead.
    pub fn start(data: &Dataset, mut sampler: Sampler, depth: usize) -> Result<Self> {
        let (tx, rx): (SyncSender<HostBatch>, _) = sync_channel(depth.max(1));
        let data = data.clone();
        let worker = std::thread::Builder::new()
            .name("adainf-prefetch".into())
            .spawn(move || {
                loop {
                    let batch = gather(&data, &sampler.next_batch());
                    // Pages of a mapped file already copied out are not kept resident.
                    data.release_mapped_pages();
                    if tx.send(batch).is_err() {
                        return; // the consumer is gone
                    }
                }
            })
            .map_err(|e| {
                Error::Data(format!(
                    "could not start the data-loading thread: {e} (the system refused a new thread; check the process limits)"
                ))
            })?;
        Ok(Prefetcher {
            batches: Some(rx),
            worker: Some(worker),
            waited: Duration::ZERO,
        })
    }

    /// The next batch, waiting for the producer if it is behind.
    pub fn next_batch(&mut self) -> HostBatch {
        let started = Instant::now();
        let batch = self
            .batches
            .as_ref()
            .and_then(|rx| rx.recv().ok())
            .expect("the prefetch thread only stops when the prefetcher is dropped");
        self.waited += started.elapsed();
        batch
    }

    /// Total time `next` spent waiting, and resets it.
    pub fn take_waited(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the queue makes the producer's next send fail, which ends its loop.
        self.batches.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{SyntheticSpec, synthetic};

    #[test]
    fn yields_the_samplers_sequence_and_stops_when_dropped() {
        let data = synthetic(&SyntheticSpec {
            n: 40,
            seed: 3,
            size: 8,
            split: "train".into(),
        })
        .unwrap();
        let mut direct = Sampler::new(data.len(), 16, 7).unwrap();
        let mut ahead =
            Prefetcher::start(&data, Sampler::new(data.len(), 16, 7).unwrap(), 2).unwrap();
        for _ in 0..6 {
            let expected = gather(&data, &direct.next_batch());
            let got = ahead.next_batch();
            assert_eq!(got.labels, expected.labels);
            assert_eq!(got.pixels, expected.pixels);
        }
        drop(ahead); // joins the thread; a hang here would fail the test by timeout
    }
}
