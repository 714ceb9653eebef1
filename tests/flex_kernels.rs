//! The kernels adainf patches into burn-flex (vendor/burn-flex/PATCHED.md) against direct f64
//! references, through burn's public autodiff API on the flex device:
//! - conv2d (`src/ops/conv2d_gemm.rs`): forward output and the gradients of input, weight and
//!   bias, over strides, paddings (also asymmetric), dilations, groups, 1×1 kernels, and
//!   batch/feature-map sizes that take both the one-image and the many-images-per-gemm paths;
//! - training-mode batch norm (`src/ops/batch_norm.rs`): output, batch statistics and the
//!   gradients of input, gamma and beta, for 4-D and 2-D inputs.
//!
//! Most cases run in f32; a selection also runs in f64 (its own kernel instantiation) and in
//! f16 and bf16 (computed through f32, rounded on the way in and out), each against the same
//! f64 reference taken on the inputs as rounded to that precision.

use burn::tensor::module::{batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};

struct Case {
    batch: usize,
    c_in: usize,
    size: [usize; 2],
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    dilation: [usize; 2],
    groups: usize,
}

impl Case {
    fn new(batch: usize, c_in: usize, size: usize, c_out: usize, kernel: usize) -> Case {
        Case {
            batch,
            c_in,
            size: [size, size],
            c_out,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [(kernel / 2, kernel / 2); 2],
            dilation: [1, 1],
            groups: 1,
        }
    }
    fn out(&self) -> [usize; 2] {
        std::array::from_fn(|d| {
            let span = self.dilation[d] * (self.kernel[d] - 1) + 1;
            (self.size[d] + self.padding[d].0 + self.padding[d].1 - span) / self.stride[d] + 1
        })
    }
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// Direct convolution in f64: output, and the gradients for `dy` (x, weight, bias).
struct Reference {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

// A direct transcription of the convolution sum: indices read like the formula.
#[allow(clippy::needless_range_loop)]
fn reference(c: &Case, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> Reference {
    let [h, wd] = c.size;
    let [oh, ow] = c.out();
    let (cig, cog) = (c.c_in / c.groups, c.c_out / c.groups);
    let [kh, kw] = c.kernel;
    let mut r = Reference {
        y: vec![0.0; c.batch * c.c_out * oh * ow],
        dx: vec![0.0; x.len()],
        dw: vec![0.0; w.len()],
        db: vec![0.0; b.len()],
    };
    for n in 0..c.batch {
        for co in 0..c.c_out {
            let g = co / cog;
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((n * c.c_out + co) * oh + oy) * ow + ox;
                    let grad = dy[yi] as f64;
                    let mut acc = b[co] as f64;
                    r.db[co] += grad;
                    for ci in 0..cig {
                        let cx = g * cig + ci;
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (oy * c.stride[0] + i * c.dilation[0]) as isize
                                    - c.padding[0].0 as isize;
                                let ix = (ox * c.stride[1] + j * c.dilation[1]) as isize
                                    - c.padding[1].0 as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((n * c.c_in + cx) * h + iy as usize) * wd + ix as usize;
                                let wi = ((co * cig + ci) * kh + i) * kw + j;
                                acc += w[wi] as f64 * x[xi] as f64;
                                r.dx[xi] += w[wi] as f64 * grad;
                                r.dw[wi] += x[xi] as f64 * grad;
                            }
                        }
                    }
                    r.y[yi] = acc;
                }
            }
        }
    }
    r
}

/// A float type under test and the largest error allowed, relative to the largest magnitude
/// of the expected values.
#[derive(Clone, Copy)]
struct Precision {
    dtype: DType,
    tolerance: f64,
}

const F32: Precision = Precision {
    dtype: DType::F32,
    tolerance: 1e-4,
};
/// f64 sums in f64: only the reference's own order differs.
const F64: Precision = Precision {
    dtype: DType::F64,
    tolerance: 1e-10,
};
/// Half precision sums in f32 and rounds the result: 11 (f16) and 8 (bf16) significant bits.
const F16: Precision = Precision {
    dtype: DType::F16,
    tolerance: 2e-3,
};
const BF16: Precision = Precision {
    dtype: DType::BF16,
    tolerance: 1.6e-2,
};

/// `v` as the precision stores it (so the reference sees the same inputs).
fn rounded(v: &[f32], p: Precision) -> Vec<f32> {
    TensorData::new(v.to_vec(), [v.len()])
        .convert_dtype(p.dtype)
        .convert_dtype(DType::F32)
        .try_to_vec::<f32>()
        .expect("f32 values")
}

fn tensor_in<const D: usize>(
    v: &[f32],
    shape: [usize; D],
    p: Precision,
    device: &Device,
) -> Tensor<D> {
    let data = TensorData::new(v.to_vec(), shape).convert_dtype(p.dtype);
    let t = Tensor::<D>::from_data(data, (device, p.dtype));
    assert_eq!(t.dtype(), p.dtype);
    t
}

/// The values of `t` (any float type) as f64, exactly.
fn read<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.cast(FloatDType::F64)
        .into_data()
        .try_into_vec::<f64>()
        .expect("f64 values")
}

fn assert_close_to(what: &str, got: &[f64], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn check(c: &Case) {
    check_in(c, F32);
}

fn check_in(c: &Case, p: Precision) {
    let device = Device::flex().autodiff();
    let [h, w] = c.size;
    let [oh, ow] = c.out();
    let x = rounded(&values(c.batch * c.c_in * h * w, 1), p);
    let wt = rounded(
        &values(c.c_out * (c.c_in / c.groups) * c.kernel[0] * c.kernel[1], 2),
        p,
    );
    let b = rounded(&values(c.c_out, 3), p);
    let dy = rounded(&values(c.batch * c.c_out * oh * ow, 4), p);
    let want = reference(c, &x, &wt, &b, &dy);

    let xt = tensor_in(&x, [c.batch, c.c_in, h, w], p, &device).require_grad();
    let wt_shape = [c.c_out, c.c_in / c.groups, c.kernel[0], c.kernel[1]];
    let wt_t = tensor_in(&wt, wt_shape, p, &device).require_grad();
    let bt = tensor_in(&b, [c.c_out], p, &device).require_grad();
    let options = ConvOptions::new_with_padding(c.stride, c.padding, c.dilation, c.groups);
    let y = conv2d(xt.clone(), wt_t.clone(), Some(bt.clone()), options);
    assert_eq!(y.dims(), [c.batch, c.c_out, oh, ow]);
    assert_eq!(y.dtype(), p.dtype);
    let close = |what: &str, got: &[f64], want: &[f64]| {
        assert_close_to(&format!("{what} ({:?})", p.dtype), got, want, p.tolerance)
    };
    close("y", &read(y.clone()), &want.y);
    let grads = (y * tensor_in(&dy, [c.batch, c.c_out, oh, ow], p, &device))
        .sum()
        .backward();
    let grad = |t: &Tensor<4>| read(t.grad(&grads).expect("gradient"));
    close("dx", &grad(&xt), &want.dx);
    close("dw", &grad(&wt_t), &want.dw);
    close(
        "db",
        &read(bt.grad(&grads).expect("bias gradient")),
        &want.db,
    );
}

#[test]
fn f64_and_half_precision_paths() {
    let cases = [
        Case::new(3, 5, 7, 4, 3),
        Case {
            stride: [2, 2],
            ..Case::new(2, 6, 9, 8, 3)
        },
        Case::new(1, 8, 20, 6, 1),
        Case {
            padding: [(2, 2); 2],
            dilation: [2, 2],
            groups: 2,
            ..Case::new(2, 4, 9, 6, 3)
        },
    ];
    for p in [F64, F16, BF16] {
        for c in &cases {
            check_in(c, p);
        }
    }
}

#[test]
fn same_padding_3x3_many_images_per_gemm() {
    check(&Case::new(3, 5, 7, 4, 3));
}

#[test]
fn one_image_per_gemm_on_large_maps() {
    // 17×17 = 289 output positions: one image per gemm.
    check(&Case::new(2, 5, 17, 7, 3));
}

#[test]
fn stride_two_with_odd_input() {
    check(&Case {
        stride: [2, 2],
        ..Case::new(2, 6, 9, 8, 3)
    });
}

#[test]
fn pointwise_kernels_small_and_large_maps() {
    check(&Case::new(4, 8, 5, 6, 1));
    check(&Case::new(1, 8, 20, 6, 1));
    // The ResNet shortcut: 1×1 with stride 2.
    check(&Case {
        stride: [2, 2],
        ..Case::new(3, 8, 8, 16, 1)
    });
}

#[test]
fn dilation_groups_and_depthwise() {
    check(&Case {
        padding: [(2, 2); 2],
        dilation: [2, 2],
        groups: 2,
        ..Case::new(2, 4, 9, 6, 3)
    });
    check(&Case {
        groups: 4,
        ..Case::new(2, 4, 6, 4, 3)
    });
}

#[test]
fn asymmetric_kernel_and_padding() {
    check(&Case {
        kernel: [2, 3],
        padding: [(1, 0), (0, 2)],
        stride: [1, 2],
        ..Case::new(3, 3, 6, 5, 3)
    });
}

#[test]
fn rectangular_kernels_with_same_width() {
    // Output as wide as the input (each kernel tap is one contiguous run of the input plane),
    // but shorter, or with horizontal padding only.
    check(&Case {
        kernel: [3, 1],
        padding: [(0, 0), (0, 0)],
        ..Case::new(2, 4, 6, 5, 3)
    });
    check(&Case {
        kernel: [1, 3],
        padding: [(0, 0), (1, 1)],
        ..Case::new(3, 4, 5, 6, 3)
    });
}

#[test]
fn taps_that_read_only_padding() {
    // Stride [2, 1] takes the line-by-line path; with padding 2 on a 1-wide input, the outer
    // kernel columns read nothing but padding.
    check(&Case {
        size: [5, 1],
        kernel: [5, 5],
        stride: [2, 1],
        padding: [(2, 2); 2],
        ..Case::new(2, 8, 5, 8, 5)
    });
    // Padding wider than the input on one side.
    check(&Case {
        size: [1, 1],
        kernel: [1, 7],
        padding: [(0, 0), (4, 4)],
        ..Case::new(1, 8, 1, 8, 1)
    });
}

#[test]
fn pointwise_kernel_with_end_padding() {
    // 1×1 with padding only at the end: the output is larger than the input, so the input is
    // not its own im2col matrix.
    check(&Case {
        padding: [(0, 1), (0, 1)],
        ..Case::new(1, 8, 4, 16, 1)
    });
    check(&Case {
        padding: [(0, 1), (0, 1)],
        ..Case::new(3, 8, 4, 16, 1)
    });
}

#[test]
fn partial_last_chunk_parallel_chunks_and_grouped_pointwise() {
    // 10×10 outputs: 3 images per gemm, so batch 5 is a chunk of 3 and one of 2.
    check(&Case::new(5, 4, 10, 6, 3));
    // Batch 32 of 8×8: 8 chunks, enough to run in parallel on any small machine.
    check(&Case::new(32, 6, 8, 8, 3));
    // Groups with 1×1 kernels, one image per gemm (20×20).
    check(&Case {
        groups: 2,
        ..Case::new(2, 8, 20, 6, 1)
    });
}

#[test]
fn few_input_channels_keep_the_direct_forward() {
    // The stem: 3 input channels; forward by burn-flex's small-channel kernel, backward by gemm.
    check(&Case::new(2, 3, 8, 8, 3));
}

#[test]
fn single_output_position_and_kernel_wider_than_padding() {
    // 3×3 input, 3×3 kernel, no padding: one output position per image (all images in one gemm).
    check(&Case {
        padding: [(0, 0); 2],
        ..Case::new(5, 4, 3, 6, 3)
    });
}

/// Batch norm in f64 over `[n, c, inner]`: output, mean, variance, and the gradients for `dy`.
fn batch_norm_reference(
    shape: [usize; 3],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    dy: &[f32],
    eps: f64,
) -> [Vec<f64>; 6] {
    let [n, c, inner] = shape;
    let at = |b: usize, ch: usize, i: usize| (b * c + ch) * inner + i;
    let count = (n * inner) as f64;
    let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut means, mut vars, mut dgamma, mut dbeta) = (vec![], vec![], vec![], vec![]);
    for ch in 0..c {
        let idx: Vec<usize> = (0..n)
            .flat_map(|b| (0..inner).map(move |i| at(b, ch, i)))
            .collect();
        let mean = idx.iter().map(|&k| x[k] as f64).sum::<f64>() / count;
        let var = idx
            .iter()
            .map(|&k| (x[k] as f64 - mean).powi(2))
            .sum::<f64>()
            / count;
        let inv_std = 1.0 / (var + eps).sqrt();
        let xhat = |k: usize| (x[k] as f64 - mean) * inv_std;
        let sum_dy: f64 = idx.iter().map(|&k| dy[k] as f64).sum();
        let sum_dy_xhat: f64 = idx.iter().map(|&k| dy[k] as f64 * xhat(k)).sum();
        for &k in &idx {
            y[k] = gamma[ch] as f64 * xhat(k) + beta[ch] as f64;
            dx[k] = gamma[ch] as f64
                * inv_std
                * (dy[k] as f64 - sum_dy / count - xhat(k) * sum_dy_xhat / count);
        }
        means.push(mean);
        vars.push(var);
        dgamma.push(sum_dy_xhat);
        dbeta.push(sum_dy);
    }
    [y, means, vars, dx, dgamma, dbeta]
}

fn check_batch_norm<const D: usize>(dims: [usize; D]) {
    check_batch_norm_in(dims, F32);
}

fn check_batch_norm_in<const D: usize>(dims: [usize; D], p: Precision) {
    let device = Device::flex().autodiff();
    let (n, c) = (dims[0], dims[1]);
    let inner: usize = dims[2..].iter().product();
    let len = n * c * inner;
    // An offset mean and a spread other than 1, to exercise the centring.
    let x: Vec<f32> = rounded(
        &values(len, 5)
            .iter()
            .map(|v| 3.0 + 2.5 * v)
            .collect::<Vec<_>>(),
        p,
    );
    let gamma: Vec<f32> = rounded(
        &values(c, 6)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect::<Vec<_>>(),
        p,
    );
    let beta = rounded(&values(c, 7), p);
    let dy = rounded(&values(len, 8), p);
    let eps = 1e-5;
    let [y, mean, var, dx, dgamma, dbeta] =
        batch_norm_reference([n, c, inner], &x, &gamma, &beta, &dy, eps);

    let xt = tensor_in(&x, dims, p, &device).require_grad();
    let gt = tensor_in(&gamma, [c], p, &device).require_grad();
    let bt = tensor_in(&beta, [c], p, &device).require_grad();
    let out = batch_norm_train(xt.clone(), gt.clone(), bt.clone(), eps);
    assert_eq!(out.output.dtype(), p.dtype);
    let close = |what: &str, got: &[f64], want: &[f64]| {
        assert_close_to(&format!("{what} ({:?})", p.dtype), got, want, p.tolerance)
    };
    close("bn y", &read(out.output.clone()), &y);
    close("bn mean", &read(out.mean), &mean);
    close("bn variance", &read(out.variance), &var);
    let grads = (out.output * tensor_in(&dy, dims, p, &device))
        .sum()
        .backward();
    close("bn dx", &read(xt.grad(&grads).expect("x gradient")), &dx);
    close(
        "bn dgamma",
        &read(gt.grad(&grads).expect("gamma gradient")),
        &dgamma,
    );
    close(
        "bn dbeta",
        &read(bt.grad(&grads).expect("beta gradient")),
        &dbeta,
    );
}

#[test]
fn batch_norm_in_f64_and_half_precision() {
    for p in [F64, F16, BF16] {
        check_batch_norm_in([3, 4, 5, 7], p);
        check_batch_norm_in([6, 5], p);
    }
}

#[test]
fn batch_norm_on_feature_maps() {
    // Small, and large enough for the parallel paths (≥ 256 Ki elements).
    check_batch_norm([3, 4, 5, 7]);
    check_batch_norm([16, 8, 48, 48]);
}

#[test]
fn batch_norm_on_vectors() {
    // The projector's [batch, features] case: one value per sample and channel.
    check_batch_norm([6, 5]);
    check_batch_norm([128, 2048]);
}
