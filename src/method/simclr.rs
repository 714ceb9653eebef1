//! SimCLR: projector `feat → hidden → ReLU → out` (official: 512 → 2048 → 256, no BN) and the
//! NT-Xent loss of solo-learn: L2-normalised projections of both views, positives matched by
//! batch position, the denominator over every other sample of the 2B (self excluded).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Tensor};

use crate::tensor::{floats, ints};

#[derive(Module, Debug)]
pub struct Projector {
    hidden: Linear,
    out: Linear,
}

impl Projector {
    pub fn new(input: usize, hidden: usize, output: usize, device: &Device) -> Self {
        Projector {
            hidden: LinearConfig::new(input, hidden).init(device),
            out: LinearConfig::new(hidden, output).init(device),
        }
    }
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(relu(self.hidden.forward(x)))
    }
}

/// Rows scaled to unit L2 norm.
pub fn l2_normalize(z: Tensor<2>) -> Tensor<2> {
    let norm = z.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    let shape = z.shape();
    z / norm.expand(shape)
}

/// NT-Xent over the 2B projections of two views (rows i and i + B are positives).
pub fn nt_xent(z1: Tensor<2>, z2: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [b, _] = z1.dims();
    let device = z1.device();
    let z = l2_normalize(Tensor::cat(vec![z1, z2], 0));
    let logits = z.clone().matmul(z.transpose()).div_scalar(temperature);
    // Remove self-similarity from the softmax.
    let eye: Vec<f32> = (0..4 * b * b)
        .map(|k| if k / (2 * b) == k % (2 * b) { 1.0 } else { 0.0 })
        .collect();
    let self_mask = floats(eye, [2 * b, 2 * b], &device).equal_elem(1.0);
    let logits = logits.mask_fill(self_mask, -1e9);
    let positives: Vec<i64> = (0..2 * b).map(|i| ((i + b) % (2 * b)) as i64).collect();
    let picked = log_softmax(logits, 1).gather(1, ints(positives, &device).reshape([2 * b, 1]));
    picked.mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::read_floats;

    /// Direct transcription of the formula on the host, in f64.
    fn reference(z1: &[Vec<f64>], z2: &[Vec<f64>], t: f64) -> f64 {
        let z: Vec<Vec<f64>> = z1
            .iter()
            .chain(z2)
            .map(|r| {
                let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                r.iter().map(|v| v / n).collect()
            })
            .collect();
        let n = z.len();
        let b = n / 2;
        let dot = |a: &Vec<f64>, c: &Vec<f64>| a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>();
        let mut total = 0.0;
        for i in 0..n {
            let pos = (dot(&z[i], &z[(i + b) % n]) / t).exp();
            let denom: f64 = (0..n)
                .filter(|&j| j != i)
                .map(|j| (dot(&z[i], &z[j]) / t).exp())
                .sum();
            total += -(pos / denom).ln();
        }
        total / n as f64
    }

    #[test]
    fn nt_xent_matches_the_formula() {
        let device = Device::flex();
        let z1 = vec![
            vec![1.0, 0.2, -0.5],
            vec![0.3, -1.0, 0.8],
            vec![-0.7, 0.1, 0.4],
        ];
        let z2 = vec![
            vec![0.9, 0.1, -0.3],
            vec![0.1, -0.8, 1.0],
            vec![0.5, 0.5, 0.5],
        ];
        let to_t = |rows: &Vec<Vec<f64>>| {
            floats(
                rows.iter().flatten().map(|v| *v as f32).collect(),
                [3, 3],
                &device,
            )
        };
        for t in [0.2, 0.5, 1.0] {
            let got = read_floats(nt_xent(to_t(&z1), to_t(&z2), t))[0] as f64;
            let want = reference(&z1, &z2, t);
            assert!((got - want).abs() < 1e-4, "t={t}: {got} vs {want}");
        }
        // Identical views with well-separated samples give a loss near its minimum.
        let aligned = read_floats(nt_xent(to_t(&z1), to_t(&z1), 0.1))[0];
        let shuffled = read_floats(nt_xent(
            to_t(&z1),
            to_t(&vec![z1[1].clone(), z1[2].clone(), z1[0].clone()]),
            0.1,
        ))[0];
        assert!(aligned < shuffled);
    }
}
