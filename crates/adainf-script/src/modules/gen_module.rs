//! The `gen` module (a Gaussian-mixture generator, the generator gap) and the `Generator` handle.

use super::*;

/// A fitted generator as a script handle.
#[derive(Clone)]
pub struct GeneratorHandle {
    gmm: Rc<Gmm>,
    /// The images it was fitted on: its gap is measured against them.
    real: Dataset,
    config: GmmConfig,
}

impl GeneratorHandle {
    /// `n` samples, with the recipe (fit and sample) when the fitted set has one.
    fn sample(&self, n: usize, seed: u64, device: &burn::tensor::Device) -> Res<Dataset> {
        let recipe = self.real.recipe().map(|real| Recipe::GmmSample {
            real: Box::new(real.clone()),
            config: self.config.clone(),
            n,
            seed,
        });
        Ok(recipe::attach(
            core(self.gmm.sample(n, seed, device))?,
            recipe,
        ))
    }
}

/// `Generator`: `info()` with its gap against the images it was fitted on.
pub(super) fn register_type(engine: &mut Engine, state: &Rc<HostState>) {
    engine.register_type_with_name::<GeneratorHandle>("Generator");
    let st = state.clone();
    engine.register_fn("info", move |g: &mut GeneratorHandle| -> Res<Map> {
        let mut m = Map::new();
        // Its samples against the images it was fitted on.
        let cfg = GapConfig::default();
        let samples = core(g.gmm.sample(cfg.max_images, cfg.seed, &st.device))?;
        if theory::gap::measurable(&g.real, &samples, &cfg) {
            let gap = core(generator_gap(&g.real, &samples, &cfg, &st.device))?;
            m.insert("gap".into(), gap_map(&gap).into());
        }
        m.insert("components".into(), (g.gmm.weights.len() as i64).into());
        m.insert("pca_dims".into(), (g.gmm.pca.dims as i64).into());
        m.insert("explained_variance".into(), g.gmm.pca.explained.into());
        m.insert("log_likelihood".into(), g.gmm.log_likelihood.into());
        Ok(m)
    });
    engine.register_fn("to_string", |g: &mut GeneratorHandle| {
        format!("Generator(gmm, {} components)", g.gmm.weights.len())
    });
}

pub(super) fn gen_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "gen";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "gmm", move |real: Dataset,
                              opts: Map|
          -> Res<GeneratorHandle> {
        options::check("gen::gmm", &opts, GMM)?;
        let d = GmmConfig::default();
        let cfg = GmmConfig {
            components: int_or(&opts, "components", d.components as i64) as usize,
            pca_dims: int_or(&opts, "pca_dims", d.pca_dims as i64) as usize,
            seed: int_or(&opts, "seed", 0) as u64,
            iterations: int_or(&opts, "iterations", d.iterations as i64) as usize,
            max_images: int_or(&opts, "max_images", d.max_images as i64) as usize,
        };
        Ok(GeneratorHandle {
            gmm: Rc::new(core(fit_gmm(&real, &cfg, &st.device))?),
            real,
            config: cfg,
        })
    });
    let st = state.clone();
    let sample = move |g: GeneratorHandle, n: i64, opts: Map| -> Res<Dataset> {
        options::check("gen::sample", &opts, SAMPLE)?;
        g.sample(
            n.max(0) as usize,
            int_or(&opts, "seed", 0) as u64,
            &st.device,
        )
    };
    let sample_default = sample.clone();
    register!(m, "sample", move |g: GeneratorHandle,
                                 n: i64,
                                 opts: Map|
          -> Res<Dataset> {
        sample(g, n, opts)
    });
    register!(m, "sample", move |g: GeneratorHandle,
                                 n: i64|
          -> Res<Dataset> {
        sample_default(g, n, Map::new())
    });
    let st = state.clone();
    register!(m, "gap", move |real: Dataset,
                              generated: Dataset,
                              opts: Map|
          -> Res<Map> {
        let cfg: GapConfig = parsed("gen::gap", &opts, GAP)?;
        Ok(gap_map(&core(generator_gap(
            &real, &generated, &cfg, &st.device,
        ))?))
    });
    let st = state.clone();
    register!(m, "frechet", move |a: Dataset,
                                  b: Dataset,
                                  opts: Map|
          -> Res<f64> {
        options::check("gen::frechet", &opts, FRECHET)?;
        core(frechet(
            &a,
            &b,
            int_or(&opts, "dims", 32) as usize,
            int_or(&opts, "max_images", 10_000) as usize,
            &st.device,
        ))
    });
    m
}

pub const GMM: &[Opt] = &[
    opt("components", Kind::Int, "mixture components (default 20)"),
    opt("pca_dims", Kind::Int, "PCA dimensions (default 32)"),
    opt("seed", Kind::Int, "random seed (default 0)"),
    opt("iterations", Kind::Int, "EM iterations (default 40)"),
    opt(
        "max_images",
        Kind::Int,
        "fit on at most this many images (default 60000)",
    ),
];

pub const SAMPLE: &[Opt] = &[opt("seed", Kind::Int, "random seed (default 0)")];

pub const GAP: &[Opt] = &[
    opt(
        "max_images",
        Kind::Int,
        "images of each set compared (default 1000)",
    ),
    opt(
        "k",
        Kind::Int,
        "neighbours that vote real or generated, odd (default 5)",
    ),
    opt(
        "dims",
        Kind::Int,
        "PCA dimensions of the Fréchet distance (default 32)",
    ),
    opt(
        "seed",
        Kind::Int,
        "random seed of the subsample (default 0)",
    ),
];

pub const FRECHET: &[Opt] = &[
    opt(
        "dims",
        Kind::Int,
        "PCA dimensions of the comparison space (default 32)",
    ),
    opt(
        "max_images",
        Kind::Int,
        "use at most this many images of each set (default 10000)",
    ),
];

/// The catalogue entries of `gen` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "gen::gmm",
            "gen::gmm(real, opts) -> Generator",
            "fits PCA + Gaussian mixture (EM) on real images: a fast, weak generator",
            GMM,
        ),
        entry(
            "gen::sample",
            "gen::sample(generator, n, opts) -> Dataset",
            "n generated images (labels -1)",
            SAMPLE,
        ),
        entry(
            "gen::frechet",
            "gen::frechet(reference, other, opts) -> float",
            "Fréchet distance in the reference's PCA space (lower = closer)",
            FRECHET,
        ),
        entry(
            "gen::gap",
            "gen::gap(real, generated, opts) -> map",
            "the generator gap without labels: #{ tv, accuracy, frechet, images }; tv = max(0, 2·accuracy − 1) from a leave-one-out kNN real-vs-generated classifier on pixels (a lower bound on the total-variation distance), frechet as gen::frechet",
            GAP,
        ),
        entry(
            "Generator.info",
            "generator.info() -> map",
            "components, pca_dims, explained variance, mean log-likelihood, and `gap` (gen::gap of 1000 samples against the images it was fitted on)",
            &[],
        ),
    ]
}
