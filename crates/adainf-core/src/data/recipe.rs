//! Datasets as recipes: how a set was made (reader and path and options, synthetic spec,
//! subset, inflation, generator fit and sample), with typed numbers, so another process — a
//! local worker or a Slurm array task — can make the same set again from a run's request
//! instead of receiving pixels. Every script-facing constructor goes through `Recipe::build`,
//! which attaches the recipe to the set it returns; `build` replays generators, so it lives
//! above the data layer (`generator::replay`): `data` imports nothing above it. Files keep
//! their fingerprint (path, size, modification time): a worker compares the rebuilt set's
//! fingerprint with the one the driver saw, so a file that changed in between is an error,
//! never silently used. DDPM samples are not drawn again: their recipe names their sampling
//! run's folder and the SHA-256 of its sealed `samples.npz`, which a worker memory-maps.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Dataset;
use super::inflate::AutoChoice;
use super::readers::{cifar::Variant, npz::NpzOptions};
use super::synthetic::{GeneratorSpec, SyntheticSpec};
use crate::error::{Error, Result};
use crate::options::Options;

/// Settings of the PCA + Gaussian-mixture generator (`generator::fit_gmm`), as recipes
/// record them: the options of `gen::gmm`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(default)]
pub struct GmmConfig {
    /// Mixture components (at least 1, at most the number of images).
    #[option(default = 20)]
    pub components: usize,
    /// PCA dimensions the mixture is fitted in.
    #[option(default = 32)]
    pub pca_dims: usize,
    /// Seed of the PCA's random start and of the EM initialisation.
    pub seed: u64,
    /// EM iterations (at least 1).
    #[option(default = 40)]
    pub iterations: usize,
    /// Fit on at most this many images (evenly spaced).
    #[option(default = 60_000)]
    pub max_images: usize,
}

/// The options of `gen::sample` on a diffusion generator (`generator::diffusion::run`), as
/// recipes record them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
pub struct SampleConfig {
    /// Diffusion: reverse steps, at most the generator's timesteps.
    #[option(default = 50)]
    pub steps: usize,
    /// Diffusion: the reverse process.
    pub sampler: Sampler,
    /// Diffusion: DDIM's η in [0, 1]; 0 is deterministic.
    pub eta: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Diffusion: images per batch.
    #[option(default = 64)]
    pub batch: usize,
}

/// Which reverse process `sample` runs.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Sampler {
    /// Deterministic for eta 0 (Song et al. 2021).
    #[default]
    Ddim,
    /// Ancestral sampling with the posterior variance (x̂_0 clipped to [-1, 1]).
    Ddpm,
}

crate::closed_set!(Sampler, "sampler");

/// How a dataset is made. Paths are absolute (resolved by the script host).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipe {
    /// The embedded procedural dataset (`synthetic::synthetic`).
    Synthetic(SyntheticSpec),
    /// Samples of the simulated generator (`synthetic::synthetic_generator`).
    SyntheticGenerator(GeneratorSpec),
    /// A CIFAR-10/100 release folder (`readers::cifar::read_cifar`).
    Cifar {
        /// The extracted release folder.
        dir: PathBuf,
        /// CIFAR-10 or CIFAR-100, and which labels.
        variant: Variant,
        /// "train" or "test".
        split: String,
    },
    /// An AdaInf `.npz` archive (`readers::npz::read_npz`).
    Npz {
        /// The archive file.
        path: PathBuf,
        /// Keys, labels, channel order and class count.
        options: NpzOptions,
    },
    /// MNIST-style IDX files (`readers::idx::read_idx`).
    Idx {
        /// The image file (N×H×W).
        images: PathBuf,
        /// The label file (N).
        labels: PathBuf,
    },
    /// A folder of PNG/JPEG images (`readers::folder::read_folder`).
    Folder {
        /// The folder.
        path: PathBuf,
        /// Side in pixels that every image is resized to.
        size: usize,
    },
    /// `real` replicated `dup` times, then `generated` with labels -1 (`Dataset::inflate`).
    Inflate {
        /// The real set.
        real: Box<Recipe>,
        /// The generated set.
        generated: Box<Recipe>,
        /// Copies of the real set (at least 1).
        dup: usize,
        /// `dup: "auto"`: what the rule measured and chose (`dup` is its choice), so the set
        /// is made again without measuring.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto: Option<AutoChoice>,
    },
    /// `per_class` random labeled items of each class (`Dataset::subset_per_class`).
    SubsetPerClass {
        /// The set to choose from.
        of: Box<Recipe>,
        /// Items per class.
        per_class: usize,
        /// Seed of the random choice.
        seed: u64,
    },
    /// `n` items chosen at random without replacement (`Dataset::subset_random`).
    SubsetRandom {
        /// The set to choose from.
        of: Box<Recipe>,
        /// Number of items.
        n: usize,
        /// Seed of the random choice.
        seed: u64,
    },
    /// `n` samples (seed `seed`) of a Gaussian mixture fitted with `config` on `real`.
    GmmSample {
        /// The set the mixture is fitted on.
        real: Box<Recipe>,
        /// Fitting options.
        config: GmmConfig,
        /// Number of samples.
        n: usize,
        /// Sampling seed.
        seed: u64,
    },
    /// `n` samples of a DDPM generator (`gen::sample`), stored in their sampling run's folder
    /// under the runs folder: made again by memory-mapping the folder's `samples.npz` once the
    /// folder is checked to hold exactly these samples (`generator::diffusion::run::replay`).
    DiffusionSample {
        /// The sampling run's folder (`<runs>/<id>/`).
        dir: PathBuf,
        /// The generator's run id.
        generator: String,
        /// Number of images.
        n: usize,
        /// The sampling options.
        config: SampleConfig,
        /// SHA-256 of the folder's `samples.npz` when the samples were handed out.
        samples_sha256: String,
    },
}

impl Recipe {
    /// The recipe of a set that is about to be sent to another process, or an error naming
    /// the set when it was made some other way.
    pub fn of(data: &Dataset) -> Result<Recipe> {
        data.recipe().cloned().ok_or_else(|| {
            Error::Data(format!(
                "{} has no recipe, so another process cannot make it again; make it with a data:: \
                 or gen:: function, or train it in this process (without --jobs or --executor)",
                data.description()
            ))
        })
    }
}

/// `made` with `recipe` attached, when its ingredients had recipes (`recipe` is None when one
/// did not: the set is then made only in this process).
pub fn attach(made: Dataset, recipe: Option<Recipe>) -> Dataset {
    match recipe {
        Some(r) => made.with_recipe(r),
        None => made,
    }
}

/// `Dataset::inflate` with the recipe attached when both parts have one.
pub fn inflate(real: &Dataset, generated: &Dataset, dup: usize) -> Result<Dataset> {
    inflate_recorded(real, generated, dup, None)
}

/// `Dataset::inflate` that records the adaptive choice `auto` (which chose `dup`) in the set's
/// attributes and recipe (`theory::adapt::inflate_auto`).
pub fn inflate_recorded(
    real: &Dataset,
    generated: &Dataset,
    dup: usize,
    auto: Option<AutoChoice>,
) -> Result<Dataset> {
    let recipe = real
        .recipe()
        .zip(generated.recipe())
        .map(|(r, g)| Recipe::Inflate {
            real: Box::new(r.clone()),
            generated: Box::new(g.clone()),
            dup,
            auto: auto.clone(),
        });
    let made = with_choice(Dataset::inflate(real, generated, dup)?, auto.as_ref());
    Ok(attach(made, recipe))
}

/// An inflated set with the adaptive choice that made it in its record.
pub(crate) fn with_choice(made: Dataset, auto: Option<&AutoChoice>) -> Dataset {
    match auto {
        Some(choice) => made.with_auto_choice(choice.clone()),
        None => made,
    }
}

/// A subset with the recipe attached when the whole has one.
pub fn subset_per_class(data: &Dataset, per_class: usize, seed: u64) -> Result<Dataset> {
    let recipe = data.recipe().map(|of| Recipe::SubsetPerClass {
        of: Box::new(of.clone()),
        per_class,
        seed,
    });
    Ok(attach(data.subset_per_class(per_class, seed)?, recipe))
}

/// A random subset with the recipe attached when the whole has one.
pub fn subset_random(data: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    let recipe = data.recipe().map(|of| Recipe::SubsetRandom {
        of: Box::new(of.clone()),
        n,
        seed,
    });
    Ok(attach(data.subset_random(n, seed)?, recipe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::synthetic;
    use burn::tensor::Device;

    /// A recipe survives JSON and makes a set with the same fingerprint and pixels.
    #[test]
    fn recipes_rebuild_the_same_set() {
        let device = Device::flex();
        let real = Recipe::Synthetic(SyntheticSpec {
            n: 50,
            seed: 1,
            size: 8,
            split: "train".into(),
        });
        let generated = Recipe::SyntheticGenerator(GeneratorSpec {
            n: 30,
            seed: 2,
            size: 8,
            fidelity: 0.5,
        });
        let a = real.build(&device).unwrap();
        let g = generated.build(&device).unwrap();
        let mixed = subset_random(&inflate(&a, &g, 3).unwrap(), 40, 7).unwrap();
        let json = serde_json::to_string(&Recipe::of(&mixed).unwrap()).unwrap();
        let again: Recipe = serde_json::from_str(&json).unwrap();
        let rebuilt = again.build(&device).unwrap();
        assert_eq!(rebuilt.fingerprint(), mixed.fingerprint());
        assert_eq!(rebuilt.len(), mixed.len());
        let pixels =
            |d: &Dataset| crate::data::loader::gather(d, &(0..d.len()).collect::<Vec<_>>());
        assert_eq!(pixels(&rebuilt).pixels, pixels(&mixed).pixels);
        assert_eq!(pixels(&rebuilt).labels, pixels(&mixed).labels);
        // A set made without a recipe says so.
        let bare = synthetic(&SyntheticSpec {
            n: 5,
            seed: 0,
            size: 8,
            split: "train".into(),
        })
        .unwrap();
        assert!(
            Recipe::of(&bare)
                .unwrap_err()
                .to_string()
                .contains("no recipe")
        );
    }
}
