//! The online linear probe of the paper's protocol: a linear classifier on detached backbone
//! features, trained with cross-entropy on labelled samples only (label -1 is ignored).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy over the rows whose target is ≥ 0; 0 when there are none.
pub fn masked_cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let valid = targets.clone().greater_equal_elem(0).float();
    let safe = targets.clamp_min(0).reshape([b, 1]);
    let log_p = log_softmax(logits, 1).gather(1, safe).reshape([b]);
    let count = valid.clone().sum().clamp_min(1.0);
    (log_p * valid).sum().neg() / count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{floats, ints, read_floats};
    use burn::tensor::Device;

    #[test]
    fn ignores_unlabeled_rows() {
        let device = Device::flex();
        let logits = floats(vec![2.0, 0.0, 0.0, 5.0, 1.0, 1.0], [3, 2], &device);
        let all = read_floats(masked_cross_entropy(
            logits.clone(),
            ints(vec![0, -1, 1], &device),
        ))[0] as f64;
        let p0 = (2f64.exp() / (2f64.exp() + 1.0)).ln();
        let p2 = 0.5f64.ln();
        assert!((all - (-(p0 + p2) / 2.0)).abs() < 1e-5, "{all}");
        let none = read_floats(masked_cross_entropy(
            logits,
            ints(vec![-1, -1, -1], &device),
        ))[0];
        assert_eq!(none, 0.0);
    }
}
