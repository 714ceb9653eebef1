//! The `theory` module: the paper's toy computed exactly and estimates on images.

use super::*;

pub(super) fn theory_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "theory";
    let mut m = Module::new();
    register!(m, "toy", |opts: Map| -> Res<Map> {
        let cfg: ToyConfig = parsed("theory::toy", &opts, TOY)?;
        let out = core(toy(&cfg))?;
        let mut map = Map::new();
        map.insert("n".into(), Dynamic::from_int(out.n as i64));
        map.insert("r".into(), Dynamic::from_float(out.r));
        map.insert("k".into(), Dynamic::from_int(out.k as i64));
        map.insert("alpha".into(), Dynamic::from_float(out.alpha));
        map.insert(
            "alpha_population".into(),
            Dynamic::from_float(out.alpha_population),
        );
        map.insert("lambda_k1".into(), Dynamic::from_float(out.lambda_k1));
        map.insert(
            "lambda".into(),
            Dynamic::from_array(out.lambda.iter().map(|&v| Dynamic::from_float(v)).collect()),
        );
        map.insert("bound".into(), Dynamic::from_float(out.bound));
        Ok(map)
    });
    let estimate = |data: &Dataset, aug: &ViewPair, opts: &Map, space: &Space| -> Res<Map> {
        let cfg: EstimateConfig = parsed("theory::estimate", opts, ESTIMATE)?;
        let out = core(theory::estimate::estimate_in(data, aug, &cfg, space))?;
        let floats =
            |v: &[f64]| Dynamic::from_array(v.iter().map(|&x| Dynamic::from_float(x)).collect());
        let mut map = Map::new();
        map.insert("k".into(), Dynamic::from_int(out.k as i64));
        map.insert("alpha".into(), Dynamic::from_float(out.alpha));
        map.insert("alpha_std".into(), Dynamic::from_float(out.alpha_std));
        map.insert("alpha_clean".into(), Dynamic::from_float(out.alpha_clean));
        map.insert("lambda_k1".into(), Dynamic::from_float(out.lambda_k1));
        map.insert(
            "lambda_k1_std".into(),
            Dynamic::from_float(out.lambda_k1_std),
        );
        // The spectrum of each resample, and whether every solve converged.
        map.insert(
            "lambda".into(),
            Dynamic::from_array(out.samples.iter().map(|s| floats(&s.lambda)).collect()),
        );
        map.insert(
            "converged".into(),
            Dynamic::from_bool(out.samples.iter().all(|s| s.converged)),
        );
        Ok(map)
    };
    register!(m, "estimate", move |data: Dataset,
                                   aug: ViewPair,
                                   opts: Map|
          -> Res<Map> {
        estimate(&data, &aug, &opts, &Space::Pixels)
    });
    register!(m, "estimate", move |data: Dataset,
                                   aug: ViewPair|
          -> Res<Map> {
        estimate(&data, &aug, &Map::new(), &Space::Pixels)
    });
    // In a trained run's encoder space.
    let st = state.clone();
    register!(m, "estimate", move |run: RunHandle,
                                   data: Dataset,
                                   aug: ViewPair,
                                   opts: Map|
          -> Res<Map> {
        let backbone = core(train::load_backbone(&run.run, &st.device))?;
        let space = Space::Encoder {
            backbone: &backbone,
            device: &st.device,
        };
        estimate(&data, &aug, &opts, &space)
    });
    m
}

pub const TOY: &[Opt] = &[
    opt("n", Kind::Int, "natural samples, 3 to 2000"),
    opt(
        "r",
        Kind::Float,
        "radius of the augmentation disc, the augmentation strength",
    ),
    opt("seed", Kind::Int, "random seed of the samples"),
    opt(
        "variance",
        Kind::Float,
        "variance per axis of each Gaussian (the default is the paper's)",
    ),
    opt(
        "separation",
        Kind::Float,
        "distance between the two means, at (±separation/2, 0) (the default is the paper's)",
    ),
];

pub const ESTIMATE: &[Opt] = &[
    opt("n", Kind::Int, "labelled images per resample"),
    opt(
        "views",
        Kind::Int,
        "augmented views per image, alternating the pair's two views",
    ),
    opt(
        "neighbours",
        Kind::Int,
        "nearest views each view is joined to in the graph",
    ),
    opt(
        "judge_k",
        Kind::Int,
        "nearest un-augmented images whose labels judge a view's class",
    ),
    opt(
        "resamples",
        Kind::Int,
        "independent draws of images and views; mean and std over them",
    ),
    options::SEED,
];

/// The catalogue entries of `theory` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "theory::toy",
            "theory::toy(opts) -> map",
            "the paper's 2-D toy, exact: two Gaussians, disc augmentation of radius r; returns #{ alpha, alpha_population, lambda_k1, lambda, bound, n, r, k } (λ_{k+1} of the normalised Laplacian of the augmentation graph, bound = α/λ_{k+1} + α)",
            TOY,
        )
        .typed(typed::<ToyConfig>()),
        entry(
            "theory::estimate",
            "theory::estimate([run,] data, aug, opts) -> map",
            "estimates on labelled images, in normalised-pixel space or, given a run, in its frozen encoder's space (L2-normalised features): α (how often an augmented view's nearest un-augmented images vote another class; `alpha_clean` is that judge's error without augmentation) and λ_{k+1} of the normalised Laplacian of the k-nearest-neighbour graph over augmented views (sparse eigensolver); #{ k, alpha, alpha_std, alpha_clean, lambda_k1, lambda_k1_std, lambda, converged }",
            ESTIMATE,
        )
        .typed(typed::<EstimateConfig>()),
    ]
}
