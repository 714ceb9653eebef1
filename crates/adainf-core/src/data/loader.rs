//! Batching: a seeded shuffling sampler (one permutation per epoch, last partial batch dropped,
//! as the official loader does), gathering of u8 batches by index from any dataset view, and
//! the batch a training step takes (host pixels or images already on the device).

use burn::tensor::Tensor;

use super::Dataset;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// One shuffled part of a dataset (the whole set, or the real or the generated part of an
/// inflation): a permutation of `0..len` per epoch, seeded by `(seed, salt, epoch)`, read in
/// takes of any size; a take that the rest of the permutation cannot fill starts a new epoch
/// (the tail is dropped, as the official loader drops the last partial batch).
#[derive(Clone, Debug)]
struct Shuffled {
    len: usize,
    seed: u64,
    salt: u64,
    epoch: u64,
    pos: usize,
    perm: Vec<u32>,
}

impl Shuffled {
    fn new(len: usize, seed: u64, salt: u64) -> Self {
        let mut s = Shuffled {
            len,
            seed,
            salt,
            epoch: 0,
            pos: 0,
            perm: Vec::new(),
        };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.perm = (0..self.len as u32).collect();
        Rng::derive(self.seed, &[self.salt, self.epoch]).shuffle(&mut self.perm);
        self.pos = 0;
    }

    /// The next `k` positions (`k` at most `len`).
    fn take(&mut self, k: usize) -> &[u32] {
        if self.pos + k > self.len {
            self.epoch += 1;
            self.reshuffle();
        }
        let out = &self.perm[self.pos..self.pos + k];
        self.pos += k;
        out
    }

    /// Moves on as `take` would for each of `takes`, shuffling only for the epoch it ends in.
    fn skip(&mut self, takes: impl Iterator<Item = usize>) {
        let (mut epoch, mut pos) = (self.epoch, self.pos);
        for k in takes {
            if pos + k > self.len {
                epoch += 1;
                pos = 0;
            }
            pos += k;
        }
        if epoch != self.epoch {
            self.epoch = epoch;
            self.reshuffle();
        }
        self.pos = pos;
    }
}

/// Seed salt of the whole-set sampler (and of the real part of a mixed one, so a run whose
/// batches hold no generated image draws the real images a plain run on them would).
const SALT_WHOLE: u64 = 0x5A3F;
/// Seed salt of the generated part of a mixed sampler.
const SALT_GENERATED: u64 = 0x6E4D;

/// Endless stream of shuffled index batches over a dataset: uniform over `0..len`, or mixed
/// (each batch `k` generated images and `batch − k` real ones, `k` scheduled per step).
#[derive(Clone, Debug)]
pub struct Sampler {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// Shuffled batches over the whole set.
    Whole {
        /// The permutation stream over `0..len`.
        part: Shuffled,
        /// Items per batch.
        batch: usize,
    },
    /// Batches with a scheduled number of generated images (`generated_share`).
    Mixed(Box<Mixed>),
}

/// The state of a mixed sampler: two shuffled parts and the number of generated images of
/// each step's batch.
#[derive(Clone, Debug)]
struct Mixed {
    real: Shuffled,
    generated: Shuffled,
    /// View position of the first real item and of the first generated item.
    real_start: usize,
    generated_start: usize,
    /// Generated images per batch, per step (steps past the end take the last value).
    counts: std::sync::Arc<[u32]>,
    batch: usize,
    step: usize,
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
        Ok(Sampler {
            kind: Kind::Whole {
                part: Shuffled::new(len, seed, SALT_WHOLE),
                batch,
            },
        })
    }

    /// The sampler as it is after `steps` batches (a resumed run continues the same stream).
    pub fn resume(len: usize, batch: usize, seed: u64, steps: usize) -> Result<Self> {
        let mut s = Sampler::new(len, batch, seed)?;
        if let Kind::Whole { part, .. } = &mut s.kind {
            let per_epoch = (len / batch) as u64;
            part.epoch = steps as u64 / per_epoch;
            if part.epoch > 0 {
                part.reshuffle();
            }
            part.pos = (steps as u64 % per_epoch) as usize * batch;
        }
        Ok(s)
    }

    /// A mixed sampler after `first_step` batches: step s's batch holds `batch − counts[s]`
    /// real items (view positions `real`) then `counts[s]` generated ones (positions
    /// `generated`), each part shuffled on its own. Errors when a part cannot fill its share.
    pub fn mixed(
        real: std::ops::Range<usize>,
        generated: std::ops::Range<usize>,
        counts: std::sync::Arc<[u32]>,
        batch: usize,
        seed: u64,
        first_step: usize,
    ) -> Result<Self> {
        let most_generated = counts.iter().copied().max().unwrap_or(0) as usize;
        let fewest_generated = counts.iter().copied().min().unwrap_or(0) as usize;
        let most_real = batch.saturating_sub(fewest_generated);
        for (what, need, have) in [
            ("generated", most_generated, generated.len()),
            ("real", most_real, real.len()),
        ] {
            if need > have {
                return Err(Error::config(
                    "schedule.generated_share",
                    format!(
                        "a batch takes up to {need} {what} images but the data has only {have}; use a smaller batch or a share that needs fewer"
                    ),
                ));
            }
        }
        let mut m = Mixed {
            real: Shuffled::new(real.len(), seed, SALT_WHOLE),
            generated: Shuffled::new(generated.len(), seed, SALT_GENERATED),
            real_start: real.start,
            generated_start: generated.start,
            counts,
            batch,
            step: 0,
        };
        let gen_count = |s: usize| m.count(s);
        let gens: Vec<usize> = (0..first_step).map(gen_count).collect();
        m.real.skip(gens.iter().map(|&g| batch - g));
        m.generated.skip(gens.into_iter());
        m.step = first_step;
        Ok(Sampler {
            kind: Kind::Mixed(Box::new(m)),
        })
    }

    /// The next batch's indices; starts a new epoch (new permutation) when the current one
    /// cannot fill a whole batch (each part on its own, for a mixed sampler).
    pub fn next_batch(&mut self) -> Vec<usize> {
        match &mut self.kind {
            Kind::Whole { part, batch } => part.take(*batch).iter().map(|&i| i as usize).collect(),
            Kind::Mixed(m) => {
                let g = m.count(m.step);
                m.step += 1;
                let mut out = Vec::with_capacity(m.batch);
                let r0 = m.real_start;
                out.extend(m.real.take(m.batch - g).iter().map(|&i| r0 + i as usize));
                let g0 = m.generated_start;
                out.extend(m.generated.take(g).iter().map(|&i| g0 + i as usize));
                out
            }
        }
    }

    /// Current epoch, from 0 (a new one starts when the permutation cannot fill a batch); of
    /// the real part for a mixed sampler.
    pub fn epoch(&self) -> u64 {
        match &self.kind {
            Kind::Whole { part, .. } => part.epoch,
            Kind::Mixed(m) => m.real.epoch,
        }
    }
}

impl Mixed {
    /// Generated images in step `s`'s batch.
    fn count(&self, s: usize) -> usize {
        let c = self
            .counts
            .get(s)
            .or(self.counts.last())
            .copied()
            .unwrap_or(0) as usize;
        c.min(self.batch)
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
    /// Per image: whether it comes from the generated part of an inflation.
    pub generated: Vec<bool>,
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
        /// Per image: whether it comes from the generated part of an inflation.
        generated: Vec<bool>,
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
    /// Per image: whether it comes from the generated part of an inflation.
    pub fn generated(&self) -> &[bool] {
        match self {
            Batch::Host(hb) => &hb.generated,
            Batch::Device { generated, .. } => generated,
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
    let mut generated = Vec::with_capacity(indices.len());
    for &i in indices {
        let item = data.item(i);
        item.extend_rgb(&mut pixels);
        labels.push(item.label);
        generated.push(item.generated);
    }
    HostBatch {
        pixels,
        labels,
        shape,
        generated,
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
