//! Weighted kNN on L2-normalised features (cosine similarity), as solo-learn's
//! `WeightedKNNClassifier`: the k nearest training features vote for their class with weight
//! exp(similarity / T); the class with the largest total wins. The weights are computed as
//! exp((similarity − the row's largest similarity) / T), the same ratios without overflow, so
//! a tiny T gives the nearest neighbour's class (its limit) rather than infinities that tie.

use burn::tensor::Tensor;

use crate::error::{Error, Result};
use crate::method::losses::l2_normalize;
use crate::tensor::{read_floats, read_ints};

const CHUNK: usize = 512;

/// Top-1 accuracy of weighted kNN. `train`/`test` are [N, F] features with their labels
/// (unlabelled training rows must already be removed).
pub fn knn_accuracy(
    train: Tensor<2>,
    train_labels: &[i32],
    test: Tensor<2>,
    test_labels: &[i32],
    k: usize,
    temperature: f64,
    classes: usize,
) -> Result<f64> {
    let [n_train, _] = train.dims();
    if n_train == 0 {
        return Err(Error::Data(
            "kNN needs labelled training items, but the training set has none".into(),
        ));
    }
    if k == 0 {
        return Err(Error::config("k", "must be at least 1"));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::config(
            "temperature",
            format!("must be a positive number (solo-learn uses 0.07), got {temperature}"),
        ));
    }
    let k = k.min(n_train);
    let train_t = l2_normalize(train).transpose();
    let test = l2_normalize(test);
    let [n_test, _] = test.dims();
    let (mut right, mut total) = (0usize, 0usize);
    for start in (0..n_test).step_by(CHUNK) {
        let len = CHUNK.min(n_test - start);
        let sims = test.clone().narrow(0, start, len).matmul(train_t.clone());
        let (values, indices) = sims.topk_with_indices(k, 1);
        let values = read_floats(values);
        let indices = read_ints(indices);
        for row in 0..len {
            let label = test_labels[start + row];
            if label < 0 {
                continue;
            }
            let mut votes = vec![0.0f64; classes.max(1)];
            let sims = &values[row * k..(row + 1) * k];
            let top = sims.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s as f64));
            for (j, &sim) in sims.iter().enumerate() {
                let neighbour = train_labels[indices[row * k + j] as usize];
                if neighbour >= 0 && (neighbour as usize) < votes.len() {
                    votes[neighbour as usize] += ((sim as f64 - top) / temperature).exp();
                }
            }
            let best = votes
                .iter()
                .enumerate()
                .fold(0, |b, (c, v)| if *v > votes[b] { c } else { b });
            total += 1;
            right += (best == label as usize) as usize;
        }
    }
    if total == 0 {
        return Err(Error::Data(
            "kNN needs labelled test items, but the test set has none".into(),
        ));
    }
    Ok(right as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::floats;
    use burn::tensor::Device;

    #[test]
    fn separable_clusters_are_classified_and_k_matters() {
        let device = Device::flex();
        // Two classes along two directions; one mislabelled point near class 0.
        let train = floats(
            vec![
                1.0, 0.1, 0.9, 0.0, 1.0, -0.1, 0.95, 0.05, 0.0, 1.0, 0.1, 0.9, -0.1, 1.0,
            ],
            [7, 2],
            &device,
        );
        let train_labels = [0, 0, 0, 1, 1, 1, 1];
        let test = floats(vec![1.0, 0.02, 0.05, 1.0], [2, 2], &device);
        let acc = knn_accuracy(
            train.clone(),
            &train_labels,
            test.clone(),
            &[0, 1],
            3,
            0.07,
            2,
        )
        .unwrap();
        assert_eq!(acc, 1.0);
        // k = 1 picks the mislabelled nearest neighbour for the first test point.
        let test1 = floats(vec![0.95, 0.05], [1, 2], &device);
        assert_eq!(
            knn_accuracy(train.clone(), &train_labels, test1, &[0], 1, 0.07, 2).unwrap(),
            0.0
        );
        assert!(knn_accuracy(train, &train_labels, test, &[0, 1], 0, 0.07, 2).is_err());
    }

    #[test]
    fn votes_are_weighted_by_exp_similarity_over_t() {
        let device = Device::flex();
        // The test point is (1, 0). Its nearest neighbour (cosine 0.999) has class 1; the two
        // others (cosine 0.80 each) have class 0. A majority vote over k = 3 says 0; weighted
        // by exp(sim / 0.07), class 1 gets e^14.27 against 2·e^11.43, and wins.
        let train = floats(vec![0.999, 0.0447, 0.8, 0.6, 0.8, -0.6], [3, 2], &device);
        let labels = [1, 0, 0];
        let test = floats(vec![1.0, 0.0], [1, 2], &device);
        let acc =
            |t: f64| knn_accuracy(train.clone(), &labels, test.clone(), &[1], 3, t, 2).unwrap();
        assert_eq!(acc(0.07), 1.0);
        // At a large temperature the weights flatten and the two class-0 votes win.
        assert_eq!(acc(100.0), 0.0);
        for bad in [0.0, -0.07, f64::NAN, f64::INFINITY] {
            let e = knn_accuracy(train.clone(), &labels, test.clone(), &[1], 3, bad, 2)
                .unwrap_err()
                .to_string();
            assert!(e.contains("`temperature`") && e.contains("positive"), "{e}");
        }
    }

    /// Accuracy of weighted kNN transcribed in f64: cosine similarities, the k most similar
    /// training rows, and per class the log of its total vote, log Σ exp(s/T), computed with
    /// that class's own largest s/T taken out (a different arrangement from the code's).
    fn reference(
        train: &[Vec<f64>],
        labels: &[i32],
        test: &[(Vec<f64>, i32)],
        k: usize,
        t: f64,
    ) -> f64 {
        let unit = |v: &Vec<f64>| {
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<_>>()
        };
        let train: Vec<Vec<f64>> = train.iter().map(unit).collect();
        let mut right = 0;
        for (x, label) in test {
            let x = unit(x);
            let mut sims: Vec<(f64, i32)> = train
                .iter()
                .zip(labels)
                .map(|(r, &l)| (r.iter().zip(&x).map(|(a, b)| a * b).sum(), l))
                .collect();
            sims.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut best = (f64::NEG_INFINITY, -1);
            for class in 0..3 {
                let logits: Vec<f64> = sims[..k]
                    .iter()
                    .filter(|s| s.1 == class)
                    .map(|s| s.0 / t)
                    .collect();
                let Some(m) = logits.iter().copied().reduce(f64::max) else {
                    continue;
                };
                let score = m + logits.iter().map(|z| (z - m).exp()).sum::<f64>().ln();
                if score > best.0 {
                    best = (score, class);
                }
            }
            right += (best.1 == *label) as usize;
        }
        right as f64 / test.len() as f64
    }

    #[test]
    fn tiny_temperatures_match_an_f64_transcription() {
        let device = Device::flex();
        let mut rng = crate::rng::Rng::new(3);
        let mut row = || (0..6).map(|_| rng.normal()).collect::<Vec<f64>>();
        let train: Vec<Vec<f64>> = (0..40).map(|_| row()).collect();
        let labels: Vec<i32> = (0..40).map(|i| i * 7 % 3).collect();
        // Test points lie near training points and carry their labels: the nearest neighbour
        // is right, so a tiny T (whose limit is the nearest neighbour's class) scores 1.
        let test: Vec<(Vec<f64>, i32)> = (0..30)
            .map(|i| {
                let noise = row();
                let x = train[i].iter().zip(&noise).map(|(a, b)| a + 0.05 * b);
                (x.collect(), labels[i])
            })
            .collect();
        let flat = |rows: &mut dyn Iterator<Item = &Vec<f64>>| {
            rows.flat_map(|r| r.iter().map(|x| *x as f32))
                .collect::<Vec<f32>>()
        };
        let train_t = floats(flat(&mut train.iter()), [40, 6], &device);
        let test_t = floats(flat(&mut test.iter().map(|t| &t.0)), [30, 6], &device);
        let test_labels: Vec<i32> = test.iter().map(|t| t.1).collect();
        for t in [1e-300, 1e-6, 0.07, 1.0] {
            let got = knn_accuracy(
                train_t.clone(),
                &labels,
                test_t.clone(),
                &test_labels,
                10,
                t,
                3,
            )
            .unwrap();
            assert_eq!(got, reference(&train, &labels, &test, 10, t), "T = {t}");
        }
        assert_eq!(reference(&train, &labels, &test, 10, 1e-300), 1.0);
    }
}
