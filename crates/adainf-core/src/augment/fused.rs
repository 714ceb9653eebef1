//! The augmentation pipeline of `batch.rs`, fused into one pass per image on the host, for the
//! CPU backend. On flex the device *is* this CPU, and the batched version costs about thirty
//! full-batch tensor passes (each with its allocation); here every image goes through crop,
//! jitter, grayscale, blur, solarize and normalisation while it sits in cache, in parallel over
//! images. The math is the same step for step (same sampling grid, same colour matrices, same
//! blur radius rule); `tests` holds the two versions to 1e-4 on random parameters. GPU devices
//! keep the batched version.

use rayon::prelude::*;

use super::color::{ColorOp, GRAY, Mat3, blur_kernel, blur_radius, color_op, shift_hue_pixel};
use super::{AugSpec, ViewParams};
use crate::data::loader::HostBatch;

/// Augmented, normalised views of a u8 NHWC RGB batch, as NCHW floats (`n × 3 × h × w`).
pub fn augment_and_normalize(batch: &HostBatch, params: &[ViewParams], spec: &AugSpec) -> Vec<f32> {
    let [h, w, c] = batch.shape;
    assert_eq!(c, 3, "the host pipeline takes RGB batches");
    assert_eq!(params.len(), batch.len(), "one parameter set per image");
    let plane = h * w;
    let radius = blur_radius(params);
    let mut out = vec![0.0f32; batch.len() * 3 * plane];
    out.par_chunks_mut(3 * plane)
        .zip(batch.pixels.par_chunks(plane * 3))
        .zip(params.par_iter())
        .for_each(|((dst, src), p)| {
            let mut img = crop_and_flip(src, h, w, p);
            if let Some(ops) = &p.jitter {
                for &(op, factor) in ops {
                    match color_op(op, factor) {
                        ColorOp::Matrix(m, contrast) => {
                            apply_color_matrix(&mut img, plane, &m, contrast)
                        }
                        ColorOp::Hue(f) => {
                            for k in 0..plane {
                                let px = [img[k], img[plane + k], img[2 * plane + k]];
                                let [r, g, b] = shift_hue_pixel(px, f);
                                (img[k], img[plane + k], img[2 * plane + k]) = (r, g, b);
                            }
                        }
                    }
                }
            }
            if p.gray {
                apply_color_matrix(&mut img, plane, &[GRAY, GRAY, GRAY], None);
            }
            if radius > 0 && p.blur_sigma > 0.0 {
                blur(&mut img, h, w, &blur_kernel(p.blur_sigma, radius));
            }
            for (k, v) in img.iter().enumerate() {
                let ch = k / plane;
                let v = if p.solarize && *v >= 128.0 / 255.0 {
                    1.0 - v
                } else {
                    *v
                };
                dst[k] = (v - spec.mean[ch] as f32) / spec.std[ch] as f32;
            }
        });
    out
}

/// Bilinear resampling of the crop box onto the h×w grid (align_corners = false, sampling kept
/// between the centres of the box's edge pixels), as `batch::crop_and_flip`; planar output.
fn crop_and_flip(src: &[u8], h: usize, w: usize, p: &ViewParams) -> Vec<f32> {
    let (hf, wf) = (h as f64, w as f64);
    let [x0, y0, cw, ch] = p.crop;
    let flip = if p.flip { -1.0 } else { 1.0 };
    let (sx, tx) = ((flip * cw / wf) as f32, ((2.0 * x0 + cw) / wf - 1.0) as f32);
    let (sy, ty) = ((ch / hf) as f32, ((2.0 * y0 + ch) / hf - 1.0) as f32);
    let (x_lo, x_hi) = (
        ((2.0 * x0 + 1.0) / wf - 1.0) as f32,
        ((2.0 * (x0 + cw) - 1.0) / wf - 1.0) as f32,
    );
    let (y_lo, y_hi) = (
        ((2.0 * y0 + 1.0) / hf - 1.0) as f32,
        ((2.0 * (y0 + ch) - 1.0) / hf - 1.0) as f32,
    );
    // Source coordinate and the two neighbours with their weights, per output column and row.
    let taps = |n: usize, s: f32, t: f32, lo: f32, hi: f32| -> Vec<(usize, usize, f32)> {
        (0..n)
            .map(|j| {
                let u = ((2 * j + 1) as f64 / n as f64 - 1.0) as f32;
                let g = (s * u + t).max(lo).min(hi);
                let pos = (((g + 1.0) * n as f32 - 1.0) / 2.0).clamp(0.0, (n - 1) as f32);
                let i0 = pos.floor() as usize;
                let i1 = (i0 + 1).min(n - 1);
                (i0, i1, pos - i0 as f32)
            })
            .collect()
    };
    let cols = taps(w, sx, tx, x_lo, x_hi);
    let rows = taps(h, sy, ty, y_lo, y_hi);
    let plane = h * w;
    let mut out = vec![0.0f32; 3 * plane];
    let px = |y: usize, x: usize, c: usize| src[(y * w + x) * 3 + c] as f32 / 255.0;
    for (i, &(r0, r1, fy)) in rows.iter().enumerate() {
        for (j, &(c0, c1, fx)) in cols.iter().enumerate() {
            for c in 0..3 {
                let top = px(r0, c0, c) * (1.0 - fx) + px(r0, c1, c) * fx;
                let bottom = px(r1, c0, c) * (1.0 - fx) + px(r1, c1, c) * fx;
                out[c * plane + i * w + j] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

/// x ← clamp(M·x + (1 − c)·mean_gray(x), 0, 1) on a planar RGB image (the contrast offset only
/// when `contrast` is given), as `batch::apply_color_matrices` does per sample.
fn apply_color_matrix(img: &mut [f32], plane: usize, m: &Mat3, contrast: Option<f32>) {
    let offset = contrast.map_or(0.0, |c| {
        let mut sum = 0.0f32;
        for k in 0..plane {
            sum += GRAY[0] * img[k] + GRAY[1] * img[plane + k] + GRAY[2] * img[2 * plane + k];
        }
        (1.0 - c) * sum / plane as f32
    });
    for k in 0..plane {
        let (r, g, b) = (img[k], img[plane + k], img[2 * plane + k]);
        for (ch, row) in m.iter().enumerate() {
            img[ch * plane + k] = (row[0] * r + row[1] * g + row[2] * b + offset).clamp(0.0, 1.0);
        }
    }
}

/// Separable blur with edge replication: vertical, then horizontal, as `batch::blur`. Both
/// passes run over edge-padded copies, so the inner loops are plain multiply-adds.
fn blur(img: &mut [f32], h: usize, w: usize, kernel: &[f32]) {
    let radius = kernel.len() / 2;
    let mut rows = vec![0.0f32; (h + 2 * radius) * w];
    let mut line = vec![0.0f32; w + 2 * radius];
    for channel in img.chunks_mut(h * w) {
        // Vertical: rows padded by repeating the first and last row.
        for (py, row) in rows.chunks_mut(w).enumerate() {
            let sy = py.saturating_sub(radius).min(h - 1);
            row.copy_from_slice(&channel[sy * w..(sy + 1) * w]);
        }
        for y in 0..h {
            let out = &mut channel[y * w..(y + 1) * w];
            out.fill(0.0);
            for (t, &k) in kernel.iter().enumerate() {
                let src = &rows[(y + t) * w..(y + t + 1) * w];
                for (o, &v) in out.iter_mut().zip(src) {
                    *o += k * v;
                }
            }
        }
        // Horizontal: each row padded by repeating its first and last pixel.
        for y in 0..h {
            let row = &mut channel[y * w..(y + 1) * w];
            line[..radius].fill(row[0]);
            line[radius..radius + w].copy_from_slice(row);
            line[radius + w..].fill(row[w - 1]);
            row.fill(0.0);
            for (t, &k) in kernel.iter().enumerate() {
                for (o, &v) in row.iter_mut().zip(&line[t..t + w]) {
                    *o += k * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{batch, preset};
    use crate::rng::Rng;
    use burn::tensor::Device;

    fn random_batch(n: usize, h: usize, w: usize, seed: u64) -> HostBatch {
        let mut rng = Rng::new(seed);
        HostBatch {
            pixels: (0..n * h * w * 3).map(|_| rng.below(256) as u8).collect(),
            labels: vec![0; n],
            shape: [h, w, 3],
            generated: vec![false; n],
        }
    }

    /// Every preset's views, host version against the batched tensor version, on the same
    /// random parameters (crops, flips, jitter in every order, grayscale, blur, solarize).
    #[test]
    fn matches_the_batched_tensor_pipeline() {
        let device = Device::flex();
        for (k, name) in [
            "symmetric",
            "symmetric_adainf",
            "asymmetric",
            "asymmetric_adainf",
        ]
        .into_iter()
        .enumerate()
        {
            let pair = preset(name).unwrap();
            for (v, spec) in pair.views.iter().enumerate() {
                let (h, w) = (12, 10);
                let hb = random_batch(24, h, w, 7 + k as u64);
                let params =
                    batch::sample_params(spec, &mut Rng::new(100 * k as u64 + v as u64), 24, h, w);
                let host = augment_and_normalize(&hb, &params, spec);
                let tensor = crate::tensor::read_floats(batch::augment_and_normalize(
                    batch::to_device(hb, &device),
                    &params,
                    spec,
                ));
                assert_eq!(host.len(), tensor.len());
                let worst = host
                    .iter()
                    .zip(&tensor)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{name} view {v}: largest difference {worst}");
            }
        }
    }
}
