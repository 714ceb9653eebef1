//! Datasets: immutable u8 image stores (N×H×W×C, RGB, labels with -1 = unlabeled) and cheap
//! index views over them (subsets, inflation mixtures). Views never copy pixels: they hold
//! `Arc`s to stores plus row lists, so replicating real data ×10 costs a few bytes.

pub mod alloc;
pub mod batches;
pub mod inflate;
pub mod loader;
pub mod prefetch;
pub mod readers;
pub mod recipe;
pub mod resident;
pub mod synthetic;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Label value of an unlabeled image (generated data).
pub const UNLABELED: i32 = -1;

/// Where a store's pixel bytes (N×H×W×C, u8) live.
pub enum Pixels {
    /// Bytes held in memory.
    Owned(Vec<u8>),
    /// A read-only memory map of a file; the pixels are `len` bytes from `offset`.
    Mapped {
        /// The mapped file.
        map: memmap2::Mmap,
        /// Byte offset of the first pixel in the file.
        offset: usize,
        /// Number of pixel bytes.
        len: usize,
    },
}

impl Pixels {
    /// The N×H×W×C pixel bytes, wherever they live.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Pixels::Owned(v) => v,
            Pixels::Mapped { map, offset, len } => &map[*offset..*offset + *len],
        }
    }
}

impl Pixels {
    /// Drops this process's mapping of file pages already read (they stay in the page cache and
    /// are mapped again on the next access). Keeps the resident set of a long run over a large
    /// memory-mapped file from growing toward the file's size.
    pub fn release_mapped_pages(&self) {
        #[cfg(unix)]
        if let Pixels::Mapped { map, .. } = self {
            // SAFETY: the map is a read-only mapping of a file; after MADV_DONTNEED its pages
            // are read back from the file on access, with the same contents.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(v: Vec<u8>) -> Self {
        Pixels::Owned(v)
    }
}

/// Pixels and labels of one physical image collection.
pub struct ImageStore {
    /// Human-readable origin, e.g. `synthetic(n=5000, seed=0)`.
    pub source: String,
    /// Content fingerprint (hash of the generating recipe or of the file).
    pub fingerprint: String,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Channels per pixel, one byte each.
    pub channels: usize,
    /// Number of classes of the labeled task this store belongs to (0 when unknown).
    pub classes: usize,
    /// Channel order is B, G, R (files written by OpenCV); gathering swaps to RGB.
    pub bgr: bool,
    pixels: Pixels,
    labels: Vec<i32>,
}

impl ImageStore {
    /// Builds a store from HWC u8 pixels. Checks sizes and label range.
    pub fn new(
        source: String,
        fingerprint: String,
        [height, width, channels]: [usize; 3],
        classes: usize,
        pixels: impl Into<Pixels>,
        labels: Vec<i32>,
    ) -> Result<Self> {
        let pixels = pixels.into();
        let per = height * width * channels;
        if per == 0 || pixels.bytes().len() != per * labels.len() {
            return Err(Error::Data(format!(
                "{source}: {} pixel bytes do not make {} images of {height}×{width}×{channels}",
                pixels.bytes().len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels
            .iter()
            .find(|&&l| l < UNLABELED || (l >= 0 && l as usize >= classes.max(1) && classes > 0))
        {
            return Err(Error::Data(format!(
                "{source}: label {bad} is outside 0..{classes} (and not -1)"
            )));
        }
        Ok(ImageStore {
            source,
            fingerprint,
            height,
            width,
            channels,
            classes,
            bgr: false,
            pixels,
            labels,
        })
    }

    /// Marks the store's channel order as B, G, R.
    pub fn with_bgr(mut self, bgr: bool) -> Self {
        self.bgr = bgr;
        self
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the store holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The H×W×C bytes of image `row`, in the store's channel order (see `bgr`). Panics if
    /// `row` is out of range.
    pub fn image(&self, row: usize) -> &[u8] {
        let per = self.height * self.width * self.channels;
        &self.pixels.bytes()[row * per..(row + 1) * per]
    }
    /// The stored label of image `row` (-1 = unlabeled). Panics if `row` is out of range.
    pub fn label(&self, row: usize) -> i32 {
        self.labels[row]
    }
}

/// A contiguous piece of a dataset view: some rows of one store.
#[derive(Clone)]
struct Part {
    store: Arc<ImageStore>,
    /// `None` = every row of the store, in order.
    rows: Option<Arc<[u32]>>,
    /// Replace every label of this part by -1 (generated data in a mixture).
    unlabeled: bool,
}

impl Part {
    fn len(&self) -> usize {
        self.rows.as_ref().map_or(self.store.len(), |r| r.len())
    }
    fn row(&self, i: usize) -> usize {
        self.rows.as_ref().map_or(i, |r| r[i] as usize)
    }
}

/// A dataset as scripts see it: an index view over one or more stores. Cheap to clone.
#[derive(Clone)]
pub struct Dataset {
    inner: Arc<Inner>,
    /// How to make this set again in another process (`recipe::Recipe::build`).
    recipe: Option<Arc<recipe::Recipe>>,
}

struct Inner {
    parts: Vec<Part>,
    /// Cumulative lengths: `ends[k]` = number of items in parts 0..=k.
    ends: Vec<usize>,
    description: String,
    fingerprint: String,
    /// For an inflated set or a part of one: what it was made of (typed; the report
    /// attributes are derived from it).
    inflation: Option<inflate::Inflation>,
}

/// One view of an item: where its pixels are and its (possibly masked) label.
pub struct Item<'a> {
    /// H×W×C bytes in the store's channel order (see `bgr`).
    pub pixels: &'a [u8],
    /// Class label; -1 = unlabeled (or masked: a generated item of a mixture).
    pub label: i32,
    /// `pixels` are in B, G, R order (`extend_rgb` swaps them).
    pub bgr: bool,
    /// The item comes from the generated part of an inflation (`Dataset::inflate`).
    pub generated: bool,
}

impl Item<'_> {
    /// Appends the pixels in R, G, B order.
    pub fn extend_rgb(&self, out: &mut Vec<u8>) {
        if self.bgr {
            for px in self.pixels.chunks_exact(3) {
                out.extend_from_slice(&[px[2], px[1], px[0]]);
            }
        } else {
            out.extend_from_slice(self.pixels);
        }
    }
}

/// Fingerprint of `parts`: SHA-256 over each part followed by a NUL byte, first 12 bytes as
/// 24 lowercase hex digits.
pub fn hash_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize()
        .iter()
        .take(HASH_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of SHA-256 a `hash_hex` keeps (run ids, fingerprints).
const HASH_BYTES: usize = 12;

/// Whether `s` has the shape of a `hash_hex` (a run id): lower-case hex of the kept bytes.
/// A name of another shape (`../x`, an edited id) never names a run folder.
pub fn is_hash_hex(s: &str) -> bool {
    s.len() == 2 * HASH_BYTES && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Dataset {
    /// The whole of one store.
    pub fn from_store(store: ImageStore) -> Dataset {
        let description = store.source.clone();
        let fingerprint = store.fingerprint.clone();
        Dataset::from_parts(
            vec![Part {
                store: Arc::new(store),
                rows: None,
                unlabeled: false,
            }],
            description,
            fingerprint,
            None,
        )
    }

    fn from_parts(
        parts: Vec<Part>,
        description: String,
        fingerprint: String,
        inflation: Option<inflate::Inflation>,
    ) -> Dataset {
        let mut ends = Vec::with_capacity(parts.len());
        let mut total = 0;
        for p in &parts {
            total += p.len();
            ends.push(total);
        }
        Dataset {
            recipe: None,
            inner: Arc::new(Inner {
                parts,
                ends,
                description,
                fingerprint,
                inflation,
            }),
        }
    }

    /// This inflated set with the adaptive choice that chose its `dup` in its record (the same
    /// items, fingerprint and recipe). A set that is no inflation is returned as it is.
    pub fn with_auto_choice(self, choice: inflate::AutoChoice) -> Dataset {
        let inner = &self.inner;
        let Some(inflation) = &inner.inflation else {
            return self;
        };
        Dataset {
            recipe: self.recipe.clone(),
            inner: Arc::new(Inner {
                parts: inner.parts.clone(),
                ends: inner.ends.clone(),
                description: inner.description.clone(),
                fingerprint: inner.fingerprint.clone(),
                inflation: Some(inflate::Inflation {
                    auto: Some(choice),
                    ..inflation.clone()
                }),
            }),
        }
    }

    /// This set with the recipe that makes it again.
    pub fn with_recipe(mut self, recipe: recipe::Recipe) -> Dataset {
        self.recipe = Some(Arc::new(recipe));
        self
    }

    /// How to make this set again, when it was made through `recipe::Recipe::build`.
    pub fn recipe(&self) -> Option<&recipe::Recipe> {
        self.recipe.as_deref()
    }

    /// The record of the inflation this set is or is part of (`Dataset::inflate`).
    pub fn inflation(&self) -> Option<&inflate::Inflation> {
        self.inner.inflation.as_ref()
    }

    /// The real and the generated set of an inflated set (`Dataset::inflate`); None for a
    /// part of one.
    pub fn inflated_from(&self) -> Option<(&Dataset, &Dataset)> {
        self.inflation()?.parts.as_ref().map(|(r, g)| (r, g))
    }

    /// The view positions of the real part and of the generated part, each image once: for an
    /// inflation the first replica of the real set and the generated set; for a set with no
    /// generated image all of it and an empty range. `None` for a set that mixes the two
    /// otherwise (a subset of an inflation), whose parts cannot be sampled on their own.
    pub fn sources(&self) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
        if let Some((real, generated)) = self.inflated_from() {
            let start = self.len() - generated.len();
            return Some((0..real.len(), start..self.len()));
        }
        let any_generated = self.inner.parts.iter().any(|p| p.unlabeled);
        (!any_generated).then(|| (0..self.len(), self.len()..self.len()))
    }

    /// Number of items in the view (each replica of an inflated set counts).
    pub fn len(&self) -> usize {
        self.inner.ends.last().copied().unwrap_or(0)
    }
    /// Whether the view holds no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Human-readable account of how the set was made, e.g. `subset(n=40, seed=7) of ...`.
    pub fn description(&self) -> &str {
        &self.inner.description
    }
    /// Content fingerprint, derived from the stores' fingerprints and how the view was made.
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }
    /// Name–value pairs shown in reports (e.g. `dup`, `n_real`, `n_generated`), derived from
    /// the inflation record.
    pub fn attributes(&self) -> Vec<(String, String)> {
        self.inflation()
            .map(inflate::Inflation::attributes)
            .unwrap_or_default()
    }
    /// (height, width, channels) shared by every image.
    pub fn shape(&self) -> [usize; 3] {
        self.inner.parts.first().map_or([0; 3], |p| {
            [p.store.height, p.store.width, p.store.channels]
        })
    }

    /// An error naming `role` (e.g. "the training set") and how the set was made when the set
    /// has no images: the operations that need images call this first.
    pub fn require_images(&self, role: &str) -> Result<()> {
        if self.is_empty() {
            return Err(Error::Data(format!(
                "{role} has no images ({}); give a set with at least one image",
                self.description()
            )));
        }
        Ok(())
    }
    /// Number of classes of the labeled task (max over stores).
    pub fn classes(&self) -> usize {
        self.inner
            .parts
            .iter()
            .map(|p| p.store.classes)
            .max()
            .unwrap_or(0)
    }

    /// The item at position `i` of the view. Panics if out of range (callers index within len).
    pub fn item(&self, i: usize) -> Item<'_> {
        let k = self.inner.ends.partition_point(|&end| end <= i);
        let start = if k == 0 { 0 } else { self.inner.ends[k - 1] };
        let part = &self.inner.parts[k];
        let row = part.row(i - start);
        let label = if part.unlabeled {
            UNLABELED
        } else {
            part.store.label(row)
        };
        Item {
            pixels: part.store.image(row),
            label,
            bgr: part.store.bgr,
            generated: part.unlabeled,
        }
    }

    /// The label of item `i` (-1 = unlabeled or masked). Panics if out of range.
    pub fn label(&self, i: usize) -> i32 {
        self.item(i).label
    }

    /// See `Pixels::release_mapped_pages`; called by the training loop after each batch.
    pub fn release_mapped_pages(&self) {
        for part in &self.inner.parts {
            part.store.pixels.release_mapped_pages();
        }
    }

    /// Where every item's pixels live: the distinct stores the view reads, and for each item
    /// (in order) the index of its store in that list and its row there. Used to upload a
    /// dataset to a device once (`resident`).
    pub fn locations(&self) -> (Vec<Arc<ImageStore>>, Vec<(u32, u32)>) {
        let mut stores: Vec<Arc<ImageStore>> = Vec::new();
        let mut out = Vec::with_capacity(self.len());
        for part in &self.inner.parts {
            let s = match stores.iter().position(|s| Arc::ptr_eq(s, &part.store)) {
                Some(s) => s,
                None => {
                    stores.push(part.store.clone());
                    stores.len() - 1
                }
            };
            out.extend((0..part.len()).map(|i| (s as u32, part.row(i) as u32)));
        }
        (stores, out)
    }

    /// Number of items with a label (>= 0).
    pub fn labeled_count(&self) -> usize {
        (0..self.len()).filter(|&i| self.label(i) >= 0).count()
    }

    /// Per-channel mean and standard deviation in [0, 1] units, over at most `max_items`
    /// evenly spaced items.
    pub fn channel_stats(&self, max_items: usize) -> (Vec<f64>, Vec<f64>) {
        let c = self.shape()[2];
        let n = self.len();
        let take = n.min(max_items.max(1));
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        let mut count = 0usize;
        for k in 0..take {
            let i = k * n / take;
            let item = self.item(i);
            for px in item.pixels.chunks_exact(c) {
                for ch in 0..c {
                    let source = if item.bgr { c - 1 - ch } else { ch };
                    let v = px[source] as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
                count += 1;
            }
        }
        let count = count.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / count - m * m).max(0.0).sqrt())
            .collect();
        (mean, std)
    }
}

/// What a dataset contributes to a run's identity and record.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataRef {
    /// Fingerprint of the dataset's contents.
    pub fingerprint: String,
    /// Human-readable description of the dataset (e.g. its source).
    pub description: String,
    /// Number of items.
    pub len: usize,
    /// Recipe attributes shown in reports (e.g. `dup`, `n_real`, `n_generated`).
    pub attributes: Vec<(String, String)>,
}

impl DataRef {
    /// The fingerprint, description, length and attributes of `d`.
    pub fn of(d: &Dataset) -> Self {
        DataRef {
            fingerprint: d.fingerprint().into(),
            description: d.description().into(),
            len: d.len(),
            attributes: d.attributes().to_vec(),
        }
    }
}

#[cfg(test)]
pub(crate) fn tiny_store(n: usize, classes: usize, seed: u8) -> ImageStore {
    let pixels: Vec<u8> = (0..n * 4 * 4 * 3)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let labels = (0..n).map(|i| (i % classes) as i32).collect();
    ImageStore::new(
        format!("tiny{seed}"),
        format!("fp{seed}"),
        [4, 4, 3],
        classes,
        pixels,
        labels,
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_rejects_wrong_sizes_and_labels() {
        assert!(
            ImageStore::new("s".into(), "f".into(), [2, 2, 3], 2, vec![0; 11], vec![0]).is_err()
        );
        let e = ImageStore::new("s".into(), "f".into(), [2, 2, 3], 2, vec![0; 12], vec![5])
            .err()
            .unwrap();
        assert!(e.to_string().contains("label 5"), "{e}");
        assert!(
            ImageStore::new("s".into(), "f".into(), [2, 2, 3], 2, vec![0; 12], vec![-1]).is_ok()
        );
    }

    #[test]
    fn dataset_items_and_stats() {
        let d = Dataset::from_store(tiny_store(6, 3, 0));
        assert_eq!(d.len(), 6);
        assert_eq!(d.shape(), [4, 4, 3]);
        assert_eq!(d.classes(), 3);
        assert_eq!(d.label(4), 1);
        assert_eq!(d.item(1).pixels.len(), 48);
        let (mean, std) = d.channel_stats(100);
        assert_eq!(mean.len(), 3);
        assert!(mean.iter().all(|m| (0.0..=1.0).contains(m)));
        assert!(std.iter().all(|s| *s > 0.0));
    }
}
