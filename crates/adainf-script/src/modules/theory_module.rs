//! The `theory` module: the paper's toy computed exactly and estimates on images.

use super::*;

pub(super) fn theory_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "theory";
    let mut m = Module::new();
    register!(m, "toy", |opts: Map| -> Res<Map> {
        let cfg: ToyConfig = parsed("theory::toy", &opts, &[])?;
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
        let cfg: EstimateConfig = parsed("theory::estimate", opts, &[])?;
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

/// The catalogue entries of `theory` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "theory::toy",
            "theory::toy(opts) -> map",
            "the paper's 2-D toy, exact: two Gaussians, disc augmentation of radius r; returns #{ alpha, alpha_population, lambda_k1, lambda, bound, n, r, k } (λ_{k+1} of the normalised Laplacian of the augmentation graph, bound = α/λ_{k+1} + α)",
            &[],
        )
        .typed(typed::<ToyConfig>().with_check(|function, opts, unknown| {
            let cfg: ToyConfig = options::parse(function, opts, &[])?;
            literal_outcome(opts, unknown, cfg.validate())
        })),
        entry(
            "theory::estimate",
            "theory::estimate([run,] data, aug, opts) -> map",
            "estimates on labelled images, in normalised-pixel space or, given a run, in its frozen encoder's space (L2-normalised features): α (how often an augmented view's nearest un-augmented images vote another class; `alpha_clean` is that judge's error without augmentation) and λ_{k+1} of the normalised Laplacian of the k-nearest-neighbour graph over augmented views (sparse eigensolver); #{ k, alpha, alpha_std, alpha_clean, lambda_k1, lambda_k1_std, lambda, converged }",
            &[],
        )
        .typed(typed::<EstimateConfig>()),
    ]
}
