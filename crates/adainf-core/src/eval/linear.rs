//! Offline linear probe: a linear classifier trained on frozen, standardised features
//! (Adam, cosine-decayed learning rate, mini-batches of 256) and evaluated on test features.
//! Not the paper's protocol (the paper reports the online probe); a common second opinion.

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};

use super::top1;
use crate::error::{Error, Result};
use crate::method::probe::masked_cross_entropy;
use crate::options::Options;
use crate::rng::Rng;
use crate::tensor::{ints, read_ints};

/// Settings of the offline linear probe: the options of `eval::linear`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
pub struct LinearProbeConfig {
    /// Passes over the training features (at least 1).
    #[option(default = 20)]
    pub epochs: usize,
    /// Adam learning rate.
    #[option(default = 1e-3)]
    pub lr: f64,
    /// Training features per mini-batch (at least 1).
    #[option(default = 256)]
    pub batch: usize,
    /// Seeds the classifier's initial weights and the per-epoch shuffling.
    pub seed: u64,
}

/// Trains on `train` (features, labels) and returns top-1 accuracy on `test`; stops with
/// `Error::Cancelled` between two steps once `cancelled()` says so.
pub fn linear_probe_accuracy(
    (train, train_labels): (Tensor<2>, &[i32]),
    (test, test_labels): (Tensor<2>, &[i32]),
    classes: usize,
    cfg: &LinearProbeConfig,
    device: &Device,
    cancelled: impl Fn() -> bool,
) -> Result<f64> {
    let [n, f] = train.dims();
    if n == 0 {
        return Err(Error::Data(
            "the linear probe needs labelled training items, but there are none".into(),
        ));
    }
    for (key, bad) in [
        ("epochs", cfg.epochs == 0),
        ("batch", cfg.batch == 0),
        ("lr", cfg.lr.is_nan() || cfg.lr <= 0.0),
    ] {
        if bad {
            return Err(Error::config(key, "must be positive"));
        }
    }
    // Standardise with training statistics.
    let mean = train.clone().mean_dim(0);
    let std = (train.clone() - mean.clone().expand([n, f]))
        .square()
        .mean_dim(0)
        .sqrt()
        .add_scalar(1e-6);
    let standardize = |x: Tensor<2>| {
        let [m, _] = x.dims();
        (x - mean.clone().expand([m, f])) / std.clone().expand([m, f])
    };
    let train = standardize(train);
    let test = standardize(test);
    let ad = device.clone().autodiff();
    let mut model = crate::model::init_seeded(cfg.seed, true, &ad, |host| {
        LinearConfig::new(f, classes.max(1)).init(host)
    });
    let mut optim = AdamConfig::new().init();
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let batches_per_epoch = n.div_ceil(cfg.batch);
    let total = cfg.epochs * batches_per_epoch;
    let mut step = 0;
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(cfg.batch) {
            // Ctrl-C, a watch reload: a long probe stops between two steps.
            if cancelled() {
                return Err(Error::Cancelled);
            }
            let idx = ints(chunk.iter().map(|&i| i as i64).collect(), device);
            let x = train.clone().select(0, idx);
            let y = ints(chunk.iter().map(|&i| train_labels[i] as i64).collect(), &ad);
            let loss = masked_cross_entropy(model.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let lr =
                0.5 * cfg.lr * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
            model = optim.step(lr, model, grads);
            step += 1;
        }
    }
    let predicted = read_ints(model.valid().forward(test).argmax(1));
    top1(&predicted, test_labels)
        .ok_or_else(|| Error::Data("the linear probe's test set has no labelled items".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::floats;

    #[test]
    fn learns_a_linearly_separable_problem() {
        let device = Device::flex();
        let mut rng = Rng::new(1);
        let make = |rng: &mut Rng, n: usize| {
            let mut v = Vec::new();
            let mut l = Vec::new();
            for i in 0..n {
                let c = (i % 3) as i32;
                for d in 0..4 {
                    v.push(if d == c as usize { 2.0 } else { 0.0 } + rng.normal() as f32 * 0.5);
                }
                l.push(c);
            }
            (floats(v, [n, 4], &device), l)
        };
        let (tr, trl) = make(&mut rng, 300);
        let (te, tel) = make(&mut rng, 90);
        let cfg = LinearProbeConfig {
            epochs: 10,
            lr: 0.05,
            batch: 32,
            seed: 0,
        };
        let acc =
            linear_probe_accuracy((tr, &trl), (te, &tel), 3, &cfg, &device, || false).unwrap();
        assert!(acc > 0.9, "{acc}");
    }
}
