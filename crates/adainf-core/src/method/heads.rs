//! Projection and prediction heads: MLPs `in → hidden… → out` with ReLU after each hidden
//! layer and, optionally, batch norm before the ReLU (BYOL, Barlow Twins).

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// One hidden layer: linear, optional batch norm, then ReLU.
#[derive(Module, Debug)]
pub struct HiddenLayer {
    linear: Linear,
    norm: Option<BatchNorm>,
}

/// An MLP head `in → hidden… → out`, ReLU (after optional batch norm) on each hidden layer.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<HiddenLayer>,
    out: Linear,
}

impl Mlp {
    /// `sizes` = [input, hidden…, output].
    pub fn new(sizes: &[usize], batch_norm: bool, device: &Device) -> Mlp {
        let n = sizes.len();
        let hidden = (0..n - 2)
            .map(|i| HiddenLayer {
                linear: LinearConfig::new(sizes[i], sizes[i + 1]).init(device),
                norm: batch_norm.then(|| BatchNormConfig::new(sizes[i + 1]).init(device)),
            })
            .collect();
        Mlp {
            hidden,
            out: LinearConfig::new(sizes[n - 2], sizes[n - 1]).init(device),
        }
    }

    /// Applies the MLP to `x` [batch, input], giving [batch, output].
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        for layer in &self.hidden {
            x = layer.linear.forward(x);
            if let Some(norm) = &layer.norm {
                x = norm.forward(x);
            }
            x = relu(x);
        }
        self.out.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn shapes_and_parameter_counts() {
        let device = Device::flex();
        let simclr = Mlp::new(&[512, 2048, 256], false, &device);
        assert_eq!(simclr.num_params(), 512 * 2048 + 2048 + 2048 * 256 + 256);
        let barlow = Mlp::new(&[8, 16, 16, 4], true, &device);
        let x: Tensor<2> = Tensor::random([5, 8], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(barlow.forward(x).dims(), [5, 4]);
    }
}
