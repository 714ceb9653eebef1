//! Evaluation of frozen encoders: feature extraction on un-augmented, normalised images,
//! weighted kNN (solo-learn's `WeightedKNNClassifier`), an offline linear probe, and the
//! accuracy of the online probe; `runs` evaluates finished runs and caches the results.

pub mod knn;
pub mod linear;
pub mod runs;

use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::augment::{AugSpec, batch};
use crate::data::Dataset;
use crate::data::loader::{gather, sequential_batches};
use crate::model::ResNet;
use crate::tensor::{ints, read_ints};

const EVAL_BATCH: usize = 256;

/// Features of every item of `data` ([N, F] on `device`) and its labels. `backbone` should be
/// in inference mode (`valid()`), so batch norm uses its running statistics.
pub fn features(
    backbone: &ResNet,
    data: &Dataset,
    norm: &AugSpec,
    device: &Device,
) -> (Tensor<2>, Vec<i32>) {
    let mut parts = Vec::new();
    let mut labels = Vec::with_capacity(data.len());
    for idx in sequential_batches(data.len(), EVAL_BATCH) {
        let hb = gather(data, &idx);
        labels.extend_from_slice(&hb.labels);
        let x = batch::normalize(batch::to_device(hb, device), norm);
        parts.push(backbone.forward(x));
    }
    (Tensor::cat(parts, 0), labels)
}

/// Top-1 accuracy of `probe` on the labelled items of `data` (None when none is labelled).
pub fn probe_accuracy(
    backbone: &ResNet,
    probe: &Linear,
    data: &Dataset,
    norm: &AugSpec,
    device: &Device,
) -> Option<f64> {
    let (feats, labels) = features(backbone, data, norm, device);
    let predicted = read_ints(probe.forward(feats).argmax(1));
    top1(&predicted, &labels)
}

/// Fraction of labelled items (label ≥ 0) whose prediction is right.
pub fn top1(predicted: &[i64], labels: &[i32]) -> Option<f64> {
    let (mut right, mut total) = (0usize, 0usize);
    for (p, l) in predicted.iter().zip(labels) {
        if *l >= 0 {
            total += 1;
            right += (*p == *l as i64) as usize;
        }
    }
    (total > 0).then(|| right as f64 / total as f64)
}

/// Keeps the rows of `feats` whose label is ≥ 0.
pub fn labelled_rows(feats: Tensor<2>, labels: &[i32]) -> (Tensor<2>, Vec<i32>) {
    let keep: Vec<i64> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| **l >= 0)
        .map(|(i, _)| i as i64)
        .collect();
    if keep.len() == labels.len() {
        return (feats, labels.to_vec());
    }
    let device = feats.device();
    let kept_labels = keep.iter().map(|&i| labels[i as usize]).collect();
    (feats.select(0, ints(keep, &device)), kept_labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_ignores_unlabelled() {
        assert_eq!(top1(&[1, 2, 3], &[1, -1, 0]), Some(0.5));
        assert_eq!(top1(&[1], &[-1]), None);
    }
}
