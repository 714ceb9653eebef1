//! Batching: a seeded shuffling sampler (one permutation per epoch, last partial batch dropped,
//! as the official loader does), gathering of u8 batches by index from any dataset view, and
//! the batch a training step takes (host pixels or images already on the device).

use burn::tensor::Tensor;

use super::Dataset;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Endless stream of shuffled index batches over `0..len`.
pub struct Sampler {
    len: usize,
    batch: usize,
    seed: u64,
    epoch: u64,
    pos: usize,
    perm: Vec<u32>,
}

impl Sampler {
    /// A sampler over `0..len` in batches of `batch` items, shuffled with `seed`. Errors when
    /// `batch` is 0 or larger than `len`.
    pub fn new(len: usize, batch: usize, seed: u64) -> Result<Self> {
        if batch == 0 {
            return Err(Error::config("batch", "must be at least 1"));
        }
        if len < batch {
            return Err(Error::config(
                "batch",
                format!(
                    "is {batch} but the training data has only {len} items; use a smaller batch or more data"
                ),
            ));
        }
        let mut s = Sampler {
            len,
            batch,
            seed,
            epoch: 0,
            pos: 0,
            perm: Vec::new(),
        };
        s.reshuffle();
        Ok(s)
    }

    fn reshuffle(&mut self) {
        self.perm = (0..self.len as u32).collect();
        Rng::derive(self.seed, &[0x5A3F, self.epoch]).shuffle(&mut self.perm);
        self.pos = 0;
    }

    /// The sampler as it is after `steps` batches (a resumed run continues the same stream).
    pub fn resume(len: usize, batch: usize, seed: u64, steps: usize) -> Result<Self> {
        let mut s = Sampler::new(len, batch, seed)?;
        let per_epoch = (len / batch) as u64;
        s.epoch = steps as u64 / per_epoch;
        if s.epoch > 0 {
            s.reshuffle();
        }
        s.pos = (steps as u64 % per_epoch) as usize * batch;
        Ok(s)
    }

    /// The next `batch` indices; starts a new epoch (new permutation) when the current one
    /// cannot fill a whole batch.
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.pos + self.batch > self.len {
            self.epoch += 1;
            self.reshuffle();
        }
        let out = self.perm[self.pos..self.pos + self.batch]
            .iter()
            .map(|&i| i as usize)
            .collect();
        self.pos += self.batch;
        out
    }

    /// Current epoch, from 0 (a new one starts when the permutation cannot fill a batch).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// A batch of raw images in host memory: N×H×W×C u8 and labels.
#[derive(Clone, Debug)]
pub struct HostBatch {
    /// N×H×W×C bytes, channels in R, G, B order.
    pub pixels: Vec<u8>,
    /// One label per image; -1 = unlabeled.
    pub labels: Vec<i32>,
    /// (height, width, channels) of each image.
    pub shape: [usize; 3],
}

impl HostBatch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the batch holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// One training batch: u8 images in host memory (streamed), or float images gathered on the
/// device from a resident copy of the dataset (`super::resident`). One per step, moved once.
#[allow(clippy::large_enum_variant)]
pub enum Batch {
    /// u8 images in host memory; the step uploads them.
    Host(HostBatch),
    /// NCHW images in [0, 1] (what `augment::batch::to_device` makes of a host batch).
    Device {
        /// N×C×H×W float pixels in [0, 1].
        images: Tensor<4>,
        /// One label per image; -1 = unlabeled.
        labels: Vec<i32>,
    },
}

impl Batch {
    /// One label per image; -1 = unlabeled.
    pub fn labels(&self) -> &[i32] {
        match self {
            Batch::Host(hb) => &hb.labels,
            Batch::Device { labels, .. } => labels,
        }
    }
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels().len()
    }
    /// Whether the batch holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }
}

impl From<HostBatch> for Batch {
    fn from(hb: HostBatch) -> Self {
        Batch::Host(hb)
    }
}

/// Copies the selected items into one contiguous batch.
pub fn gather(data: &Dataset, indices: &[usize]) -> HostBatch {
    let shape = data.shape();
    let per = shape.iter().product::<usize>();
    let mut pixels = Vec::with_capacity(indices.len() * per);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let item = data.item(i);
        item.extend_rgb(&mut pixels);
        labels.push(item.label);
    }
    HostBatch {
        pixels,
        labels,
        shape,
    }
}

/// Consecutive batches covering `0..len` in order (the last one may be short): for evaluation.
pub fn sequential_batches(len: usize, batch: usize) -> impl Iterator<Item = Vec<usize>> {
    let batch = batch.max(1);
    (0..len.div_ceil(batch)).map(move |b| (b * batch..((b + 1) * batch).min(len)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tiny_store;

    #[test]
    fn sampler_covers_each_epoch_once_and_drops_the_tail() {
        let mut s = Sampler::new(10, 3, 4).unwrap();
        let mut seen: Vec<usize> = (0..3).flat_map(|_| s.next_batch()).collect();
        assert_eq!(s.epoch(), 0);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9);
        let next = s.next_batch();
        assert_eq!(s.epoch(), 1);
        assert_eq!(next.len(), 3);
        assert!(Sampler::new(2, 3, 0).is_err());
        assert!(Sampler::new(2, 0, 0).is_err());
        // Same seed, same order.
        let mut a = Sampler::new(50, 5, 9).unwrap();
        let mut b = Sampler::new(50, 5, 9).unwrap();
        assert_eq!(a.next_batch(), b.next_batch());
        // Resuming after k batches continues the same stream, across epoch boundaries.
        for k in [0, 3, 4, 9] {
            let mut full = Sampler::new(13, 3, 2).unwrap();
            for _ in 0..k {
                full.next_batch();
            }
            let mut resumed = Sampler::resume(13, 3, 2, k).unwrap();
            for _ in 0..6 {
                assert_eq!(full.next_batch(), resumed.next_batch(), "after {k}");
            }
        }
    }

    #[test]
    fn gather_copies_pixels_and_labels_in_order() {
        let d = Dataset::from_store(tiny_store(5, 5, 1));
        let b = gather(&d, &[3, 1]);
        assert_eq!(b.labels, vec![3, 1]);
        assert_eq!(&b.pixels[..48], d.item(3).pixels);
        assert_eq!(&b.pixels[48..], d.item(1).pixels);
        let all: Vec<Vec<usize>> = sequential_batches(5, 2).collect();
        assert_eq!(all, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }
}
