//! Data inflation and subsets as index views (no pixel copies).
//!
//! `inflate` follows the official AdaInf code: the real set replicated `dup` times, then the
//! generated set, each replica an item of its own (so two copies of one real image in a SimCLR
//! batch are negatives of each other, as in the paper's code). Generated items are unlabeled.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Dataset, Part, hash_hex};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// What an inflated set, or a part of one, was made of. Subsets keep it without the parts.
#[derive(Clone)]
pub struct Inflation {
    /// Copies of the real set.
    pub dup: usize,
    /// Images in the real set.
    pub n_real: usize,
    /// Images in the generated set.
    pub n_generated: usize,
    /// `dup: "auto"`: what the adaptive rule (`theory::adapt`) measured and chose.
    pub auto: Option<AutoChoice>,
    /// The real and the generated set (None in a part of the inflation: it no longer knows
    /// them).
    pub parts: Option<(Dataset, Dataset)>,
}

impl Inflation {
    /// The record as report attributes (shown by `info()`, in rows and in the run's record).
    pub fn attributes(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("dup".to_string(), self.dup.to_string()),
            ("n_real".to_string(), self.n_real.to_string()),
            ("n_generated".to_string(), self.n_generated.to_string()),
        ];
        if let Some(auto) = &self.auto {
            out.extend(auto.attributes());
        }
        out
    }
}

/// What the adaptive rule (`theory::adapt::choose`) measured and what it chose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoChoice {
    /// Images in the real set.
    pub n_real: usize,
    /// Images in the generated set.
    pub n_generated: usize,
    /// The generator gap: `gap::generator_gap(real, generated).tv`, a lower bound on D_TV.
    pub tv: f64,
    /// Copies of the real data.
    pub dup: usize,
    /// In-distribution images: `n_real + (1 − tv)·n_generated`.
    pub n_effective: f64,
    /// Augmentation strength for the inflated set (1 = the preset as it is).
    pub strength: f64,
}

impl AutoChoice {
    /// The choice's inputs and outputs as dataset attributes (shown by `info()`, in rows and
    /// in the run's record).
    pub fn attributes(&self) -> Vec<(String, String)> {
        vec![
            ("dup_rule".into(), "auto".into()),
            ("generator_tv".into(), format!("{:.4}", self.tv)),
            ("n_effective".into(), format!("{:.0}", self.n_effective)),
            ("auto_strength".into(), format!("{:.2}", self.strength)),
        ]
    }
}

impl Dataset {
    /// Whether this set is an inflation or part of one (its record says so even where, as
    /// in a subset, its real and generated parts are no longer known).
    pub fn comes_from_inflation(&self) -> bool {
        self.inflation().is_some()
    }

    /// `real` × `dup` followed by `generated` (labels of generated items forced to -1).
    pub fn inflate(real: &Dataset, generated: &Dataset, dup: usize) -> Result<Dataset> {
        if dup == 0 {
            return Err(Error::config(
                "dup",
                "must be at least 1 (the number of copies of the real data)",
            ));
        }
        if real.shape() != generated.shape() {
            return Err(Error::Data(format!(
                "cannot inflate: real images are {:?} (H×W×C) but generated images are {:?}; \
                 resize one of them (e.g. the `size` option of the reader)",
                real.shape(),
                generated.shape()
            )));
        }
        for (which, set) in [("real", real), ("generated", generated)] {
            if set.is_empty() {
                return Err(Error::Data(format!(
                    "cannot inflate: the {which} set ({}) has no images",
                    set.description()
                )));
            }
        }
        let count = real
            .inner
            .parts
            .len()
            .checked_mul(dup)
            .and_then(|c| c.checked_add(generated.inner.parts.len()))
            .ok_or_else(|| Error::config("dup", format!("{dup} copies are too many")))?;
        let mut parts = super::alloc::vec_for::<Part>("dup", "the inflated set's index", count)?;
        for _ in 0..dup {
            parts.extend(real.inner.parts.iter().cloned());
        }
        parts.extend(generated.inner.parts.iter().map(|p| Part {
            unlabeled: true,
            ..p.clone()
        }));
        let fingerprint = hash_hex(&[
            "inflate",
            real.fingerprint(),
            generated.fingerprint(),
            &dup.to_string(),
        ]);
        let description = format!(
            "inflate({} ×{dup}, {})",
            real.description(),
            generated.description()
        );
        let inflation = Inflation {
            dup,
            n_real: real.len(),
            n_generated: generated.len(),
            auto: None,
            parts: Some((real.clone(), generated.clone())),
        };
        Ok(Dataset::from_parts(
            parts,
            description,
            fingerprint,
            Some(inflation),
        ))
    }

    /// Selected positions of this view, in the given order.
    pub fn select(&self, positions: &[usize], what: &str) -> Dataset {
        // Group consecutive positions that fall into the same part into one new part.
        let mut parts: Vec<Part> = Vec::new();
        let mut current: Option<(usize, Vec<u32>)> = None;
        for &i in positions {
            let k = self.inner.ends.partition_point(|&end| end <= i);
            let start = if k == 0 { 0 } else { self.inner.ends[k - 1] };
            let row = self.inner.parts[k].row(i - start) as u32;
            match &mut current {
                Some((pk, rows)) if *pk == k => rows.push(row),
                _ => {
                    if let Some((pk, rows)) = current.take() {
                        parts.push(Part {
                            rows: Some(Arc::from(rows)),
                            ..self.inner.parts[pk].clone()
                        });
                    }
                    current = Some((k, vec![row]));
                }
            }
        }
        if let Some((pk, rows)) = current {
            parts.push(Part {
                rows: Some(Arc::from(rows)),
                ..self.inner.parts[pk].clone()
            });
        }
        // An empty selection keeps an empty part of the first store, so the set still knows
        // its image shape and classes.
        if parts.is_empty()
            && let Some(first) = self.inner.parts.first()
        {
            parts.push(Part {
                rows: Some(Arc::from(Vec::new())),
                ..first.clone()
            });
        }
        let fingerprint = hash_hex(&[what, self.fingerprint()]);
        let description = format!("{what} of {}", self.description());
        let inflation = self.inflation().map(|i| Inflation {
            parts: None,
            ..i.clone()
        });
        Dataset::from_parts(parts, description, fingerprint, inflation)
    }

    /// `per_class` labeled items of each class (the paper's data-scarce set: 500 per class),
    /// chosen at random with `seed`. Errors if a class has too few items.
    pub fn subset_per_class(&self, per_class: usize, seed: u64) -> Result<Dataset> {
        if per_class == 0 {
            return Err(Error::config(
                "per_class",
                "must be at least 1: a subset with no images cannot be trained on or evaluated",
            ));
        }
        let mut by_class: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for i in 0..self.len() {
            let l = self.label(i);
            if l >= 0 {
                by_class.entry(l).or_default().push(i);
            }
        }
        if by_class.is_empty() {
            return Err(Error::Data(format!(
                "{}: has no labeled items to take per class",
                self.description()
            )));
        }
        let mut rng = Rng::new(seed);
        let mut chosen = Vec::new();
        for (class, mut items) in by_class {
            if items.len() < per_class {
                return Err(Error::config(
                    "per_class",
                    format!(
                        "class {class} has only {} items, fewer than {per_class}",
                        items.len()
                    ),
                ));
            }
            rng.shuffle(&mut items);
            chosen.extend_from_slice(&items[..per_class]);
        }
        chosen.sort_unstable();
        Ok(self.select(
            &chosen,
            &format!("subset(per_class={per_class}, seed={seed})"),
        ))
    }

    /// `n` items chosen uniformly at random without replacement.
    pub fn subset_random(&self, n: usize, seed: u64) -> Result<Dataset> {
        if n == 0 {
            return Err(Error::config(
                "n",
                "must be at least 1: a subset with no images cannot be trained on or evaluated",
            ));
        }
        if n > self.len() {
            return Err(Error::config(
                "n",
                format!("asked for {n} items but the dataset has {}", self.len()),
            ));
        }
        let mut all: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut all);
        let mut chosen = all[..n].to_vec();
        chosen.sort_unstable();
        Ok(self.select(&chosen, &format!("subset(n={n}, seed={seed})")))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Dataset, tiny_store};

    #[test]
    fn inflate_replicates_real_then_generated_without_labels() {
        let real = Dataset::from_store(tiny_store(4, 2, 0));
        let gen_ = Dataset::from_store(tiny_store(3, 2, 9));
        let mix = Dataset::inflate(&real, &gen_, 3).unwrap();
        assert_eq!(mix.len(), 4 * 3 + 3);
        for copy in 0..3 {
            for i in 0..4 {
                assert_eq!(mix.item(copy * 4 + i).pixels, real.item(i).pixels);
                assert_eq!(mix.label(copy * 4 + i), real.label(i));
            }
        }
        for i in 0..3 {
            assert_eq!(mix.item(12 + i).pixels, gen_.item(i).pixels);
            assert_eq!(mix.label(12 + i), -1);
        }
        // Views share the store: the pixels are the very same memory.
        assert!(std::ptr::eq(
            mix.item(0).pixels.as_ptr(),
            real.item(0).pixels.as_ptr()
        ));
        assert!(Dataset::inflate(&real, &gen_, 0).is_err());
        assert_ne!(
            mix.fingerprint(),
            Dataset::inflate(&real, &gen_, 2).unwrap().fingerprint()
        );
    }

    #[test]
    fn empty_sets_are_refused_where_made_and_keep_their_shape_otherwise() {
        let d = Dataset::from_store(tiny_store(30, 3, 0));
        for e in [d.subset_random(0, 1), d.subset_per_class(0, 1)] {
            let e = e.err().unwrap().to_string();
            assert!(e.contains("must be at least 1"), "{e}");
        }
        // An empty view (there is no script way to make one) still knows its shape, and the
        // operations that need images say so instead of panicking.
        let empty = d.select(&[], "nothing");
        assert_eq!(
            (empty.len(), empty.shape(), empty.classes()),
            (0, [4, 4, 3], 3)
        );
        let (mean, _) = empty.channel_stats(100);
        assert_eq!(mean, vec![0.0; 3]);
        let e = empty
            .require_images("the training set")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the training set has no images"), "{e}");
        let e = Dataset::inflate(&empty, &d, 2).err().unwrap().to_string();
        assert!(e.contains("real set") && e.contains("no images"), "{e}");
        let e = Dataset::inflate(&d, &empty, 2).err().unwrap().to_string();
        assert!(e.contains("generated set"), "{e}");
        // A dup whose index cannot be allocated is an error on `dup`, not an abort.
        let e = Dataset::inflate(&d, &d, usize::MAX / 2)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`dup`"), "{e}");
    }

    #[test]
    fn subsets_pick_balanced_and_distinct_items() {
        let d = Dataset::from_store(tiny_store(30, 3, 0));
        let s = d.subset_per_class(4, 1).unwrap();
        assert_eq!(s.len(), 12);
        for c in 0..3 {
            assert_eq!((0..s.len()).filter(|&i| s.label(i) == c).count(), 4);
        }
        assert!(d.subset_per_class(11, 1).is_err());
        let r = d.subset_random(7, 2).unwrap();
        assert_eq!(r.len(), 7);
        assert!(d.subset_random(31, 2).is_err());
    }
}
