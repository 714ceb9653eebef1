//! Applying augmentations to a whole batch on the device. Random parameters are drawn per
//! sample on the host (cheap, seeded), uploaded as small tensors, and applied as batched tensor
//! ops (on the CPU backend `Staged` hands the same work to the fused per-image version in
//! `super::host`), in torchvision's order:
//!
//! 1. random resized crop + horizontal flip: one affine sampling grid, bilinear `grid_sample_2d`
//!    (the official code uses bicubic; burn's CPU backend samples bilinearly);
//! 2. colour jitter in a random order per sample: at each of the 4 positions every sample
//!    applies its op, clamped to [0, 1]: brightness, contrast and saturation as a 3×3 colour
//!    matrix (+ the contrast offset), hue as torchvision's shift in HSV space; all four are
//!    torchvision's formulas (held to values torchvision computed, `reference_tests`);
//! 3. grayscale (ITU-R 601 weights, as torchvision);
//! 4. Gaussian blur, σ per sample, separable depthwise convolution with edge replication
//!    (the official code uses PIL's box-filter approximation of a Gaussian);
//! 5. solarize (pixels ≥ 128/255 inverted);
//! 6. per-channel normalisation.

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::color::{ColorOp, GRAY, IDENTITY, Mat3, blur_kernel, blur_radius, color_op};
use super::{AugSpec, ViewParams};
use crate::data::loader::HostBatch;
use crate::rng::Rng;
use crate::tensor::floats;

/// Uploads a u8 NHWC batch and returns it as float NCHW in [0, 1].
pub fn to_device(batch: HostBatch, device: &Device) -> Tensor<4> {
    let [h, w, c] = batch.shape;
    let n = batch.len();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(batch.pixels, [n, h, w, c]), device);
    x.permute([0, 3, 1, 2]).div_scalar(255.0)
}

/// A u8 batch made ready for augmentation on a device. On the CPU backend the images stay in
/// host memory and each view comes from the fused per-image pipeline (`super::fused`); on other
/// devices the batch is uploaded once and each view is computed there with batched tensor ops.
/// (One per step, moved once: boxing the larger variant would buy nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Staged {
    /// CPU backend: the images stay in host memory.
    Host {
        /// The u8 NHWC images.
        batch: HostBatch,
        /// Device the augmented views are created on.
        device: Device,
    },
    /// The batch uploaded as float NCHW in [0, 1].
    OnDevice(Tensor<4>),
}

impl Staged {
    /// Kept on the host on the CPU backend (3-channel images), otherwise uploaded to `device`.
    pub fn new(batch: HostBatch, device: &Device) -> Self {
        if *device == Device::flex() && batch.shape[2] == 3 {
            Staged::Host {
                batch,
                device: device.clone(),
            }
        } else {
            Staged::OnDevice(to_device(batch, device))
        }
    }

    /// Image height and width.
    pub fn size(&self) -> [usize; 2] {
        match self {
            Staged::Host { batch, .. } => [batch.shape[0], batch.shape[1]],
            Staged::OnDevice(x) => {
                let [_, _, h, w] = x.dims();
                [h, w]
            }
        }
    }

    /// One augmented, normalised view (NCHW) of every image, with these parameters.
    pub fn view(&self, params: &[ViewParams], spec: &AugSpec) -> Tensor<4> {
        match self {
            Staged::Host { batch, device } => {
                let [h, w, _] = batch.shape;
                let values = super::fused::augment_and_normalize(batch, params, spec);
                floats(values, [batch.len(), 3, h, w], device)
            }
            Staged::OnDevice(x) => augment_and_normalize(x.clone(), params, spec),
        }
    }
}

/// Draws one view's parameters for `n` images of size h×w.
pub fn sample_params(
    spec: &AugSpec,
    rng: &mut Rng,
    n: usize,
    h: usize,
    w: usize,
) -> Vec<ViewParams> {
    (0..n)
        .map(|_| ViewParams::sample(spec, rng, h, w))
        .collect()
}

/// Crop, jitter, grayscale, blur and solarize (everything but normalisation); values stay in
/// [0, 1].
pub fn augment(x: Tensor<4>, params: &[ViewParams]) -> Tensor<4> {
    let x = crop_and_flip(x, params);
    let x = color_jitter(x, params);
    let x = grayscale(x, params);
    let x = blur(x, params);
    solarize(x, params)
}

/// Per-channel (x − mean) / std.
pub fn normalize(x: Tensor<4>, spec: &AugSpec) -> Tensor<4> {
    let device = x.device();
    let mean = floats(spec.mean.map(|m| m as f32).to_vec(), [1, 3, 1, 1], &device);
    let std = floats(spec.std.map(|s| s as f32).to_vec(), [1, 3, 1, 1], &device);
    let shape = x.shape();
    (x - mean.expand(shape.clone())) / std.expand(shape)
}

/// `augment` then `normalize`.
pub fn augment_and_normalize(x: Tensor<4>, params: &[ViewParams], spec: &AugSpec) -> Tensor<4> {
    normalize(augment(x, params), spec)
}

fn crop_and_flip(x: Tensor<4>, params: &[ViewParams]) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let device = x.device();
    let (hf, wf) = (h as f64, w as f64);
    let (mut sx, mut tx, mut sy, mut ty) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Sampling stays between the centres of the crop's edge pixels, so interpolation near the
    // border replicates the crop's edge (crop-then-resize) instead of reading outside the box.
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in params {
        let [x0, y0, cw, ch] = p.crop;
        let flip = if p.flip { -1.0 } else { 1.0 };
        sx.push((flip * cw / wf) as f32);
        tx.push(((2.0 * x0 + cw) / wf - 1.0) as f32);
        sy.push((ch / hf) as f32);
        ty.push(((2.0 * y0 + ch) / hf - 1.0) as f32);
        x_lo.push(((2.0 * x0 + 1.0) / wf - 1.0) as f32);
        x_hi.push(((2.0 * (x0 + cw) - 1.0) / wf - 1.0) as f32);
        y_lo.push(((2.0 * y0 + 1.0) / hf - 1.0) as f32);
        y_hi.push(((2.0 * (y0 + ch) - 1.0) / hf - 1.0) as f32);
    }
    // Output pixel centres in [-1, 1] (align_corners = false).
    let u = floats(
        (0..w)
            .map(|j| ((2 * j + 1) as f64 / wf - 1.0) as f32)
            .collect(),
        [1, 1, w],
        &device,
    );
    let v = floats(
        (0..h)
            .map(|i| ((2 * i + 1) as f64 / hf - 1.0) as f32)
            .collect(),
        [1, h, 1],
        &device,
    );
    let col = |vals: Vec<f32>| floats(vals, [b, 1, 1], &device);
    let gx = (col(sx).expand([b, 1, w]) * u.expand([b, 1, w]) + col(tx).expand([b, 1, w]))
        .max_pair(col(x_lo).expand([b, 1, w]))
        .min_pair(col(x_hi).expand([b, 1, w]))
        .expand([b, h, w]);
    let gy = (col(sy).expand([b, h, 1]) * v.expand([b, h, 1]) + col(ty).expand([b, h, 1]))
        .max_pair(col(y_lo).expand([b, h, 1]))
        .min_pair(col(y_hi).expand([b, h, 1]))
        .expand([b, h, w]);
    let grid: Tensor<4> = Tensor::stack(vec![gx, gy], 3);
    let options = GridSampleOptions::new(InterpolateMode::Bilinear)
        .with_padding_mode(GridSamplePaddingMode::Border)
        .with_align_corners(false);
    x.grid_sample_2d(grid, options)
}

/// `shift_hue_pixel` on a batch: sample k's hue moves by `factors[k]`; samples whose factor is
/// `None` are left exactly as they are.
fn shift_hue(x: Tensor<4>, factors: &[Option<f32>]) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let device = x.device();
    let channel = |i: usize| x.clone().narrow(1, i, 1);
    let (r, g, bl) = (channel(0), channel(1), channel(2));
    let maxc = r.clone().max_pair(g.clone()).max_pair(bl.clone());
    let minc = r.clone().min_pair(g.clone()).min_pair(bl.clone());
    let eqc = maxc.clone().equal(minc.clone());
    let cr = maxc.clone() - minc;
    let ones = Tensor::ones_like(&maxc);
    let s = cr.clone() / maxc.clone().mask_where(eqc.clone(), ones.clone());
    let crd = cr.mask_where(eqc, ones);
    let rc = (maxc.clone() - r.clone()) / crd.clone();
    let gc = (maxc.clone() - g.clone()) / crd.clone();
    let bc = (maxc.clone() - bl) / crd;
    let is_r = maxc.clone().equal(r);
    let is_g = maxc.clone().equal(g).bool_and(is_r.clone().bool_not());
    let is_b = is_r.clone().bool_or(is_g.clone()).bool_not();
    let hue = is_r.float() * (bc.clone() - gc.clone())
        + is_g.float() * (rc.clone() - bc).add_scalar(2.0)
        + is_b.float() * (gc - rc).add_scalar(4.0);
    let hue = hue.div_scalar(6.0).add_scalar(1.0);
    let hue = hue.clone() - hue.floor();
    let shift = floats(
        factors.iter().map(|f| f.unwrap_or(0.0)).collect(),
        [b, 1, 1, 1],
        &device,
    );
    let hue = hue + shift.expand([b, 1, h, w]);
    let hue = hue.clone() - hue.floor();
    let v = maxc;
    let sector = hue.mul_scalar(6.0);
    let i = sector.clone().floor();
    let f = sector - i.clone();
    let p = (v.clone() * (s.clone().neg().add_scalar(1.0))).clamp(0.0, 1.0);
    let q = (v.clone() * (s.clone() * f.clone()).neg().add_scalar(1.0)).clamp(0.0, 1.0);
    let t = (v.clone() * (s * f.neg().add_scalar(1.0)).neg().add_scalar(1.0)).clamp(0.0, 1.0);
    let i = i.clone() - i.div_scalar(6.0).floor().mul_scalar(6.0);
    let pick = |parts: [&Tensor<4>; 6]| {
        parts
            .iter()
            .enumerate()
            .map(|(k, part)| i.clone().equal_elem(k as f32).float() * (*part).clone())
            .reduce(|a, b| a + b)
            .expect("six sectors")
    };
    let shifted = Tensor::cat(
        vec![
            pick([&v, &q, &p, &p, &t, &v]),
            pick([&t, &v, &v, &q, &p, &p]),
            pick([&p, &p, &t, &v, &v, &q]),
        ],
        1,
    );
    let on = floats(
        factors
            .iter()
            .map(|f| if f.is_some() { 1.0 } else { 0.0 })
            .collect(),
        [b, 1, 1, 1],
        &device,
    );
    x.clone() + on.expand([b, 3, h, w]) * (shifted - x)
}

/// x ← clamp(M_b · x + offset_b, 0, 1) per sample; `offset_b = (1 − c_b) · mean_gray_b`
/// (contrast) when `contrast` is given.
fn apply_color_matrices(x: Tensor<4>, mats: &[Mat3], contrast: Option<&[f32]>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let flat: Vec<f32> = mats
        .iter()
        .flat_map(|m| m.iter().flatten().copied())
        .collect();
    let m = floats(flat, [b, 3, 3], &device);
    let mut y = m.matmul(x.clone().reshape([b, c, h * w]));
    if let Some(factors) = contrast {
        let gray = floats(GRAY.to_vec(), [1, 3, 1], &device);
        let mean = (x.reshape([b, c, h * w]) * gray.expand([b, 3, h * w]))
            .sum_dim(1)
            .mean_dim(2); // [b,1,1]
        let k = floats(
            factors.iter().map(|f| 1.0 - f).collect(),
            [b, 1, 1],
            &device,
        );
        y = y + (k * mean).expand([b, 3, h * w]);
    }
    y.clamp(0.0, 1.0).reshape([b, c, h, w])
}

fn color_jitter(mut x: Tensor<4>, params: &[ViewParams]) -> Tensor<4> {
    if params.iter().all(|p| p.jitter.is_none()) {
        return x;
    }
    for position in 0..4 {
        let mut mats = Vec::with_capacity(params.len());
        let mut contrast = Vec::with_capacity(params.len());
        let mut hue = Vec::with_capacity(params.len());
        for p in params {
            let op = p
                .jitter
                .as_ref()
                .map(|ops| color_op(ops[position].0, ops[position].1));
            let (m, c, h) = match op {
                Some(ColorOp::Matrix(m, c)) => (m, c, None),
                Some(ColorOp::Hue(f)) => (IDENTITY, None, Some(f)),
                None => (IDENTITY, None, None),
            };
            mats.push(m);
            contrast.push(c.unwrap_or(1.0));
            hue.push(h);
        }
        if mats.iter().any(|m| *m != IDENTITY) {
            let any_contrast = contrast.iter().any(|&c| c != 1.0);
            x = apply_color_matrices(x, &mats, any_contrast.then_some(&contrast[..]));
        }
        if hue.iter().any(Option::is_some) {
            x = shift_hue(x, &hue);
        }
    }
    x
}

fn grayscale(x: Tensor<4>, params: &[ViewParams]) -> Tensor<4> {
    if !params.iter().any(|p| p.gray) {
        return x;
    }
    let to_gray = [GRAY, GRAY, GRAY];
    let mats: Vec<Mat3> = params
        .iter()
        .map(|p| if p.gray { to_gray } else { IDENTITY })
        .collect();
    apply_color_matrices(x, &mats, None)
}

fn blur(x: Tensor<4>, params: &[ViewParams]) -> Tensor<4> {
    let radius = blur_radius(params);
    if radius == 0 {
        return x;
    }
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let k = 2 * radius + 1;
    let mut weights = Vec::with_capacity(b * c * k);
    for p in params {
        let kernel = blur_kernel(p.blur_sigma, radius);
        for _ in 0..c {
            weights.extend_from_slice(&kernel);
        }
    }
    // Edge replication: index maps for the padded rows and columns.
    let clamp_index = |n: usize| -> Tensor<1, Int> {
        let idx: Vec<i64> = (0..n + 2 * radius)
            .map(|i| (i as i64 - radius as i64).clamp(0, n as i64 - 1))
            .collect();
        Tensor::from_data(TensorData::new(idx, [n + 2 * radius]), &device)
    };
    let x = x
        .reshape([1, b * c, h, w])
        .select(2, clamp_index(h))
        .select(3, clamp_index(w));
    let groups = b * c;
    let vertical = floats(weights.clone(), [groups, 1, k, 1], &device);
    let horizontal = floats(weights, [groups, 1, 1, k], &device);
    let x = conv2d(
        x,
        vertical,
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], groups),
    );
    let x = conv2d(
        x,
        horizontal,
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], groups),
    );
    x.reshape([b, c, h, w])
}

fn solarize(x: Tensor<4>, params: &[ViewParams]) -> Tensor<4> {
    if !params.iter().any(|p| p.solarize) {
        return x;
    }
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let on = floats(
        params
            .iter()
            .map(|p| if p.solarize { 1.0 } else { 0.0 })
            .collect(),
        [b, 1, 1, 1],
        &device,
    );
    let bright = x.clone().greater_equal_elem(128.0 / 255.0);
    let inverted = x.clone().neg().add_scalar(1.0);
    let solar = x.clone().mask_where(bright, inverted);
    x.clone() + on.expand([b, c, h, w]) * (solar - x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::AugSpec;

    fn batch(n: usize, seed: u64) -> HostBatch {
        let mut rng = Rng::new(seed);
        let pixels = (0..n * 8 * 8 * 3).map(|_| rng.below(256) as u8).collect();
        HostBatch {
            pixels,
            labels: vec![0; n],
            shape: [8, 8, 3],
            generated: vec![false; n],
        }
    }

    fn values(x: Tensor<4>) -> Vec<f32> {
        crate::tensor::read_floats(x)
    }

    fn params(spec: &AugSpec, n: usize, seed: u64) -> Vec<ViewParams> {
        sample_params(spec, &mut Rng::new(seed), n, 8, 8)
    }

    #[test]
    fn identity_when_every_op_is_off() {
        let device = Device::flex();
        let hb = batch(3, 1);
        let x = to_device(hb.clone(), &device);
        let out = augment(x.clone(), &params(&AugSpec::identity(), 3, 2));
        let (a, b) = (values(x), values(out));
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
        // Normalisation is exactly (x − mean)/std.
        let spec = AugSpec::identity();
        let n = values(normalize(to_device(hb.clone(), &device), &spec));
        let v = hb.pixels[0] as f32 / 255.0; // pixel (0,0) red channel → NCHW index 0
        assert!((n[0] - (v - 0.4914) / 0.2470).abs() < 1e-4);
    }

    #[test]
    fn flip_mirrors_each_row() {
        let device = Device::flex();
        let x = to_device(batch(2, 3), &device);
        let spec = AugSpec {
            flip_prob: 1.0,
            ..AugSpec::identity()
        };
        let out = values(augment(x.clone(), &params(&spec, 2, 4)));
        let inp = values(x);
        for row in 0..(2 * 3 * 8) {
            for col in 0..8 {
                let (o, i) = (out[row * 8 + col], inp[row * 8 + 7 - col]);
                assert!((o - i).abs() < 1e-5, "row {row} col {col}: {o} vs {i}");
            }
        }
    }

    #[test]
    fn grayscale_gives_equal_channels() {
        let device = Device::flex();
        let x = to_device(batch(2, 5), &device);
        let spec = AugSpec {
            gray_prob: 1.0,
            ..AugSpec::identity()
        };
        let out = values(augment(x, &params(&spec, 2, 6)));
        for img in 0..2 {
            for p in 0..64 {
                let r = out[img * 192 + p];
                assert!(
                    (r - out[img * 192 + 64 + p]).abs() < 1e-5
                        && (r - out[img * 192 + 128 + p]).abs() < 1e-5
                );
            }
        }
    }

    #[test]
    fn crop_samples_only_from_inside_its_box() {
        // An image whose left half is 0 and right half is 1: a crop inside the right half must
        // give all ones (no zero padding leaks in, no values from outside the box).
        let device = Device::flex();
        let mut pixels = vec![0u8; 8 * 8 * 3];
        for y in 0..8 {
            for x in 4..8 {
                for c in 0..3 {
                    pixels[(y * 8 + x) * 3 + c] = 255;
                }
            }
        }
        let hb = HostBatch {
            pixels,
            labels: vec![0],
            shape: [8, 8, 3],
            generated: vec![false; 1],
        };
        let mut p = params(&AugSpec::identity(), 1, 0);
        p[0].crop = [4.0, 2.0, 4.0, 5.0];
        let out = values(augment(to_device(hb.clone(), &device), &p));
        assert!(out.iter().all(|v| (v - 1.0).abs() < 1e-5), "{out:?}");
    }

    #[test]
    fn jitter_blur_solarize_keep_range_and_change_pixels() {
        let device = Device::flex();
        let x = to_device(batch(4, 7), &device);
        let spec = AugSpec {
            jitter_prob: 1.0,
            blur_prob: 1.0,
            solarize_prob: 1.0,
            ..AugSpec::identity()
        };
        let spec = AugSpec {
            jitter: [0.8, 0.8, 0.8, 0.2],
            ..spec
        };
        let out = values(augment(x.clone(), &params(&spec, 4, 8)));
        let inp = values(x);
        assert!(out.iter().all(|v| (-1e-5..=1.0 + 1e-5).contains(v)));
        let changed = out
            .iter()
            .zip(&inp)
            .filter(|(a, b)| (*a - *b).abs() > 1e-3)
            .count();
        assert!(changed > out.len() / 2);
    }

    #[test]
    fn solarize_inverts_bright_pixels_only() {
        let device = Device::flex();
        let hb = HostBatch {
            pixels: vec![10, 200, 128, 127, 0, 255, 64, 192, 5, 250, 100, 130],
            labels: vec![0],
            shape: [2, 2, 3],
            generated: vec![false; 1],
        };
        let mut p = vec![ViewParams::sample(
            &AugSpec::identity(),
            &mut Rng::new(0),
            2,
            2,
        )];
        p[0].solarize = true;
        let out = values(augment(to_device(hb.clone(), &device), &p));
        let inp = values(to_device(hb.clone(), &device));
        for (o, i) in out.iter().zip(&inp) {
            let expect = if *i >= 128.0 / 255.0 - 1e-6 {
                1.0 - i
            } else {
                *i
            };
            assert!((o - expect).abs() < 1e-5);
        }
    }
}
