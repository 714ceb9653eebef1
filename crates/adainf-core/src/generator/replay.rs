//! Making a dataset again from its recipe (`data::recipe::Recipe`): readers, synthetic sets,
//! subsets and inflations, and the generator fits and samples that only the generators can
//! replay. The recipe type lives in `data`, which imports nothing above it; its `build` lives
//! here, in the top layer (`tests/layers.rs`): DDPM samples are opened from their sampling
//! run's folder (`diffusion::run::replay`), which sits above `train`.

use burn::tensor::Device;

use super::diffusion::run as diffusion_run;
use super::fit_gmm;
use crate::data::Dataset;
use crate::data::readers;
use crate::data::recipe::{Recipe, with_choice};
use crate::data::synthetic::{synthetic, synthetic_generator};
use crate::error::Result;

impl Recipe {
    /// Makes the set; it carries this recipe.
    pub fn build(&self, device: &Device) -> Result<Dataset> {
        let made = match self {
            Recipe::Synthetic(spec) => synthetic(spec)?,
            Recipe::SyntheticGenerator(spec) => synthetic_generator(spec)?,
            Recipe::Cifar {
                dir,
                variant,
                split,
            } => readers::cifar::read_cifar(dir, *variant, split)?,
            Recipe::Npz { path, options } => readers::npz::read_npz(path, options)?,
            Recipe::Idx { images, labels } => readers::idx::read_idx(images, labels)?,
            Recipe::Folder { path, size } => readers::folder::read_folder(path, *size)?,
            Recipe::Inflate {
                real,
                generated,
                dup,
                auto,
            } => {
                let made = Dataset::inflate(&real.build(device)?, &generated.build(device)?, *dup)?;
                with_choice(made, auto.as_ref())
            }
            Recipe::SubsetPerClass {
                of,
                per_class,
                seed,
            } => of.build(device)?.subset_per_class(*per_class, *seed)?,
            Recipe::SubsetRandom { of, n, seed } => of.build(device)?.subset_random(*n, *seed)?,
            Recipe::GmmSample {
                real,
                config,
                n,
                seed,
            } => fit_gmm(&real.build(device)?, config, device)?.sample(*n, *seed, device)?,
            Recipe::DiffusionSample {
                dir,
                generator,
                n,
                config,
                samples_sha256,
            } => diffusion_run::replay(dir, generator, *n, config, samples_sha256)?,
        };
        Ok(made.with_recipe(self.clone()))
    }
}
