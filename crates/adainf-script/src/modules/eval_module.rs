//! The `eval` module: kNN and linear probes of trained, random-init and pixel features.

use super::*;

pub(super) fn eval_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "eval";
    let mut m = Module::new();
    let knn = |st: &HostState,
               r: &RunHandle,
               train_set: &Dataset,
               test: &Dataset,
               opts: &Map,
               encoder| {
        let function = match encoder {
            Encoder::Trained => "eval::knn",
            Encoder::RandomInit => "eval::knn_random",
        };
        let cfg: KnnConfig = parsed(function, opts, &[])?;
        core(runs::knn(
            &r.run, encoder, train_set, test, &cfg, &st.device,
        ))
    };
    let st = state.clone();
    register!(m, "knn", move |r: RunHandle,
                              train_set: Dataset,
                              test: Dataset,
                              opts: Map|
          -> Res<f64> {
        knn(&st, &r, &train_set, &test, &opts, Encoder::Trained)
    });
    let st = state.clone();
    register!(m, "knn", move |r: RunHandle,
                              train_set: Dataset,
                              test: Dataset|
          -> Res<f64> {
        knn(&st, &r, &train_set, &test, &Map::new(), Encoder::Trained)
    });
    let st = state.clone();
    register!(m, "knn_random", move |r: RunHandle,
                                     train_set: Dataset,
                                     test: Dataset,
                                     opts: Map|
          -> Res<f64> {
        knn(&st, &r, &train_set, &test, &opts, Encoder::RandomInit)
    });
    let st = state.clone();
    register!(m, "knn_pixels", move |train_set: Dataset,
                                     test: Dataset,
                                     opts: Map|
          -> Res<f64> {
        let cfg: KnnConfig = parsed("eval::knn_pixels", &opts, &[])?;
        core(runs::knn_pixels(&train_set, &test, &cfg, &st.device))
    });
    let st = state.clone();
    register!(m, "linear", move |r: RunHandle,
                                 train_set: Dataset,
                                 test: Dataset,
                                 opts: Map|
          -> Res<f64> {
        let cfg: LinearProbeConfig = parsed("eval::linear", &opts, &[])?;
        core(runs::linear(
            &r.run, &train_set, &test, &cfg, &st.device, &st.cancel,
        ))
    });
    m
}

/// The catalogue entries of `eval` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "eval::knn",
            "eval::knn(run, train, test, opts) -> float",
            "weighted kNN top-1 on frozen features",
            &[],
        )
        .typed(typed::<KnnConfig>()),
        entry(
            "eval::knn_pixels",
            "eval::knn_pixels(train, test, opts) -> float",
            "the same kNN on raw normalised pixels (a baseline)",
            &[],
        )
        .typed(typed::<KnnConfig>()),
        entry(
            "eval::knn_random",
            "eval::knn_random(run, train, test, opts) -> float",
            "the same kNN on a randomly initialised encoder of the run's shape",
            &[],
        )
        .typed(typed::<KnnConfig>()),
        entry(
            "eval::linear",
            "eval::linear(run, train, test, opts) -> float",
            "offline linear probe on frozen features",
            &[],
        )
        .typed(typed::<LinearProbeConfig>()),
    ]
}
