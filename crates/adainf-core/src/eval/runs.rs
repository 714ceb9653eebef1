//! Evaluations of a finished run, as scripts ask for them: weighted kNN on the run's encoder or
//! on a random-init encoder of the same shape, kNN on raw pixels, and the offline linear probe.
//! A run's results are cached in its folder (`evals/<key>.json`), keyed by a format version,
//! the kind of evaluation, the datasets' fingerprints and the resolved options, so re-running a
//! script re-reads them instead of recomputing.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::knn::knn_accuracy;
use super::linear::{LinearProbeConfig, linear_probe_accuracy};
use super::{features, labelled_rows};
use crate::data::{Dataset, hash_hex};
use crate::error::{Error, Result};
use crate::model::ResNet;
use crate::options::Options;
use crate::tensor::floats;
use crate::train::{self, FinishedRun};

/// Bump when an evaluation's computation changes, so cached results are not reused.
const EVAL_FORMAT: u32 = 1;

/// Weighted kNN (solo-learn's defaults): the options of `eval::knn` and its variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
pub struct KnnConfig {
    /// Neighbours that vote.
    #[option(default = 20)]
    pub k: usize,
    /// Vote temperature: votes weigh exp(similarity / T); positive; a tiny T gives the nearest
    /// neighbour's class.
    #[option(default = 0.07)]
    pub temperature: f64,
}

/// Which encoder of a run to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoder {
    /// The run's trained backbone.
    Trained,
    /// A freshly initialised backbone of the same shape and seed (the random-init baseline).
    RandomInit,
}

/// Labelled training features, test features and the number of classes.
struct Features {
    train: Tensor<2>,
    train_labels: Vec<i32>,
    test: Tensor<2>,
    test_labels: Vec<i32>,
    classes: usize,
}

impl Features {
    fn new(
        of: impl Fn(&Dataset) -> (Tensor<2>, Vec<i32>),
        train_set: &Dataset,
        test: &Dataset,
    ) -> Self {
        let (tr, trl) = of(train_set);
        let (train, train_labels) = labelled_rows(tr, &trl);
        let (test_features, test_labels) = of(test);
        Features {
            train,
            train_labels,
            test: test_features,
            test_labels,
            classes: train_set.classes().max(test.classes()),
        }
    }

    fn knn(self, cfg: &KnnConfig) -> Result<f64> {
        knn_accuracy(
            self.train,
            &self.train_labels,
            self.test,
            &self.test_labels,
            cfg.k,
            cfg.temperature,
            self.classes,
        )
    }
}

fn encoder_features(
    run: &FinishedRun,
    backbone: &ResNet,
    train_set: &Dataset,
    test: &Dataset,
    device: &Device,
) -> Features {
    let norm = &run.spec.aug.views[0];
    Features::new(|d| features(backbone, d, norm, device), train_set, test)
}

/// Raw pixels as features: every image's RGB values in [−0.5, 0.5], flattened.
pub fn pixel_features(data: &Dataset, device: &Device) -> (Tensor<2>, Vec<i32>) {
    let per: usize = data.shape().iter().product();
    let mut values = Vec::with_capacity(data.len() * per);
    let mut labels = Vec::with_capacity(data.len());
    let mut rgb = Vec::with_capacity(per);
    for i in 0..data.len() {
        let item = data.item(i);
        rgb.clear();
        item.extend_rgb(&mut rgb);
        values.extend(rgb.iter().map(|p| *p as f32 / 255.0 - 0.5));
        labels.push(item.label);
    }
    (floats(values, [data.len(), per], device), labels)
}

/// kNN top-1 on `test`, with the labelled items of `train_set` as the memory, on features of
/// one of the run's encoders. Cached in the run folder.
pub fn knn(
    run: &FinishedRun,
    encoder: Encoder,
    train_set: &Dataset,
    test: &Dataset,
    cfg: &KnnConfig,
    device: &Device,
) -> Result<f64> {
    let kind = match encoder {
        Encoder::Trained => "knn",
        Encoder::RandomInit => "knn_random",
    };
    check_sets(train_set, test)?;
    if encoder == Encoder::Trained {
        // A cached result stands for these weights only: they must still be the sealed ones.
        crate::train::seal::verify(&run.dir, &["backbone.bpk"])?;
    }
    cached(run, kind, train_set, test, cfg, || {
        let backbone = match encoder {
            Encoder::Trained => train::load_backbone(run, device)?,
            Encoder::RandomInit => train::random_backbone(run, device)?,
        };
        encoder_features(run, &backbone, train_set, test, device).knn(cfg)
    })
}

/// kNN top-1 on raw pixels (no run, nothing cached: it is quick).
pub fn knn_pixels(
    train_set: &Dataset,
    test: &Dataset,
    cfg: &KnnConfig,
    device: &Device,
) -> Result<f64> {
    check_sets(train_set, test)?;
    Features::new(|d| pixel_features(d, device), train_set, test).knn(cfg)
}

/// The training and the test set of an evaluation must both hold images, of one shape.
fn check_sets(train_set: &Dataset, test: &Dataset) -> Result<()> {
    train_set.require_images("the training set")?;
    test.require_images("the test set")?;
    let (a, b) = (train_set.shape(), test.shape());
    if a != b {
        let show = |[h, w, c]: [usize; 3]| format!("{h}×{w}×{c}");
        return Err(Error::Data(format!(
            "the training set's images are {} (H×W×C, {}) but the test set's are {} ({}); \
             evaluate on sets of one image size (e.g. the same `size` option)",
            show(a),
            train_set.description(),
            show(b),
            test.description()
        )));
    }
    Ok(())
}

/// The offline linear probe on the run's frozen features. Cached in the run folder.
pub fn linear(
    run: &FinishedRun,
    train_set: &Dataset,
    test: &Dataset,
    cfg: &LinearProbeConfig,
    device: &Device,
    cancel: &crate::train::CancelFlag,
) -> Result<f64> {
    check_sets(train_set, test)?;
    crate::train::seal::verify(&run.dir, &["backbone.bpk"])?;
    cached(run, "linear", train_set, test, cfg, || {
        let backbone = train::load_backbone(run, device)?;
        let f = encoder_features(run, &backbone, train_set, test, device);
        linear_probe_accuracy(
            (f.train, &f.train_labels),
            (f.test, &f.test_labels),
            f.classes,
            cfg,
            device,
            || cancel.is_cancelled(),
        )
    })
}

/// A cached evaluation: `evals/<key>.json` in the run folder holds the value.
fn cached<C: Serialize>(
    run: &FinishedRun,
    kind: &str,
    train_set: &Dataset,
    test: &Dataset,
    cfg: &C,
    compute: impl FnOnce() -> Result<f64>,
) -> Result<f64> {
    let mut computed = false;
    let value = cached_in(&run.dir, kind, train_set, test, cfg, || {
        computed = true;
        compute()
    })?;
    // A result computed now also goes to TensorBoard (`eval/knn`, ...) at the run's last step.
    if computed {
        // Best effort too (`cached_in`).
        let _ = crate::train::events::write_eval(
            &run.dir,
            &format!("eval/{kind}"),
            run.result.steps,
            value,
        );
    }
    Ok(value)
}

fn cached_in<C: Serialize>(
    run_dir: &std::path::Path,
    kind: &str,
    train_set: &Dataset,
    test: &Dataset,
    cfg: &C,
    compute: impl FnOnce() -> Result<f64>,
) -> Result<f64> {
    let options = serde_json::to_string(cfg).map_err(|e| Error::Data(e.to_string()))?;
    let key = hash_hex(&[
        &EVAL_FORMAT.to_string(),
        kind,
        train_set.fingerprint(),
        test.fingerprint(),
        &options,
    ]);
    let folder = run_dir.join("evals");
    let path = folder.join(format!("{key}.json"));
    if let Some(v) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|j| j["value"].as_f64())
    {
        return Ok(v);
    }
    let value = compute()?;
    let record = serde_json::json!({
        "format": EVAL_FORMAT, "kind": kind, "options": cfg,
        "train": train_set.description(), "test": test.description(), "value": value,
    });
    // Best effort: a run folder that cannot be written (a read-only copy, an archive) still
    // evaluates; its result is only not kept.
    let _ = std::fs::create_dir_all(&folder)
        .map_err(|e| Error::file(&folder, e))
        .and_then(|_| train::run::write_json(&path, &record));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tiny_store;

    #[test]
    fn results_are_cached_per_kind_data_and_options() {
        let dir = std::env::temp_dir().join(format!("adainf-evals-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (
            Dataset::from_store(tiny_store(4, 2, 0)),
            Dataset::from_store(tiny_store(4, 2, 1)),
        );
        let k20 = KnnConfig::default();
        let k5 = KnnConfig {
            k: 5,
            ..KnnConfig::default()
        };
        let first = cached_in(&dir, "knn", &a, &b, &k20, || Ok(0.25)).unwrap();
        // Found again: the computation does not run.
        let again = cached_in(&dir, "knn", &a, &b, &k20, || panic!("recomputed")).unwrap();
        assert_eq!((first, again), (0.25, 0.25));
        // Another kind, other data or other options are other results.
        for (kind, train, cfg) in [
            ("knn_random", &a, &k20),
            ("knn", &b, &k20),
            ("knn", &a, &k5),
        ] {
            assert_eq!(
                cached_in(&dir, kind, train, &b, cfg, || Ok(0.5)).unwrap(),
                0.5
            );
        }
        // A run folder that cannot keep the result still evaluates (here `evals` is a file).
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(&blocked).unwrap();
        std::fs::write(blocked.join("evals"), "not a folder").unwrap();
        assert_eq!(
            cached_in(&blocked, "knn", &a, &b, &k20, || Ok(0.75)).unwrap(),
            0.75
        );
        // A failed evaluation leaves nothing behind.
        assert!(
            cached_in(&dir, "linear", &a, &b, &k20, || Err(Error::Data(
                "x".into()
            )))
            .is_err()
        );
        assert_eq!(std::fs::read_dir(dir.join("evals")).unwrap().count(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pixel_knn_refuses_sets_of_other_shapes_and_empty_sets() {
        use crate::data::synthetic::{SyntheticSpec, synthetic};
        let device = Device::flex();
        let set = |size: usize| {
            synthetic(&SyntheticSpec {
                n: 20,
                seed: 0,
                size,
                split: "train".into(),
            })
            .unwrap()
        };
        let cfg = KnnConfig::default();
        let e = knn_pixels(&set(8), &set(16), &cfg, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("8×8×3") && e.contains("16×16×3"), "{e}");
        let empty = set(8).select(&[], "none");
        let e = knn_pixels(&set(8), &empty, &cfg, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the test set has no images"), "{e}");
        assert!(knn_pixels(&set(8), &set(8), &cfg, &device).is_ok());
    }
}
