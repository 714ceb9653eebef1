//! The colour and blur arithmetic both augmentation paths share: grayscale weights, the jitter
//! ops (colour matrices for brightness, contrast and saturation; torchvision's HSV hue shift),
//! and the Gaussian blur's radius and taps. `batch` applies them with tensor ops on a whole
//! batch, `fused` per image on the host.

use super::JitterOp;
use super::ViewParams;
use crate::data::synthetic::hsv_to_rgb;

/// ITU-R 601 luma weights, as PIL's `convert("L")` (torchvision's tensor grayscale: 0.2989).
pub const GRAY: [f32; 3] = [0.299, 0.587, 0.114];

/// 3×3 colour matrix on RGB pixels, indexed `[output channel][input channel]`.
pub type Mat3 = [[f32; 3]; 3];
/// The identity colour matrix.
pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// s·I + (1 − s)·1·grayᵀ: blend with the grayscale image.
pub fn saturation_matrix(s: f32) -> Mat3 {
    let mut m = [[0.0; 3]; 3];
    for (r, row) in m.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (1.0 - s) * GRAY[c] + if r == c { s } else { 0.0 };
        }
    }
    m
}

/// torchvision's hue shift of one RGB pixel in [0, 1] (`adjust_hue` on float tensors:
/// `_rgb2hsv`, `h ← (h + factor) mod 1`, `_hsv2rgb`), step for step. The fused host path
/// calls it per pixel; `shift_hue` is the same with tensor ops.
pub fn shift_hue_pixel([r, g, b]: [f32; 3], factor: f32) -> [f32; 3] {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let crd = if eqc { 1.0 } else { cr };
    let (rc, gc, bc) = ((maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd);
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = h / 6.0 + 1.0;
    let h = h - h.floor();
    let h = h + factor;
    let h = h - h.floor();
    hsv_to_rgb(h, s, maxc)
}

/// One jitter op: brightness, contrast and saturation are linear in the pixel (a colour
/// matrix, plus the contrast offset, which depends on the image's mean gray level); hue is
/// torchvision's HSV shift.
pub enum ColorOp {
    /// Colour matrix, plus the contrast factor c when the op adds (1 − c)·mean gray level.
    Matrix(Mat3, Option<f32>),
    /// Hue shift, a fraction of a full turn.
    Hue(f32),
}

/// The colour op for jitter op `op` with its sampled `factor`.
pub fn color_op(op: JitterOp, factor: f64) -> ColorOp {
    let scaled = IDENTITY.map(|row| row.map(|v| v * factor as f32));
    match op {
        JitterOp::Brightness => ColorOp::Matrix(scaled, None),
        JitterOp::Contrast => ColorOp::Matrix(scaled, Some(factor as f32)),
        JitterOp::Saturation => ColorOp::Matrix(saturation_matrix(factor as f32), None),
        JitterOp::Hue => ColorOp::Hue(factor as f32),
    }
}

/// The blur radius of a batch: 3σ of its largest σ, rounded up (0 = no image is blurred).
pub fn blur_radius(params: &[ViewParams]) -> usize {
    let max_sigma = params.iter().map(|p| p.blur_sigma).fold(0.0, f64::max);
    if max_sigma <= 0.0 {
        0
    } else {
        (3.0 * max_sigma).ceil() as usize
    }
}

/// Normalised Gaussian taps of σ `sigma` over `2·radius + 1` pixels (a unit impulse for σ 0).
pub fn blur_kernel(sigma: f64, radius: usize) -> Vec<f32> {
    let k = 2 * radius + 1;
    if sigma <= 0.0 {
        return (0..k)
            .map(|i| if i == radius { 1.0 } else { 0.0 })
            .collect();
    }
    let s2 = 2.0 * sigma * sigma;
    let raw: Vec<f64> = (0..k)
        .map(|i| (-((i as f64 - radius as f64).powi(2)) / s2).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|v| (v / total) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_preserves_gray_and_hue_leaves_gray_alone() {
        for row in saturation_matrix(0.3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
        }
        // A gray pixel has no hue: any shift leaves it as it is.
        assert_eq!(shift_hue_pixel([0.4, 0.4, 0.4], 0.3), [0.4, 0.4, 0.4]);
        // A shift of a whole turn is the identity (up to rounding); red + 1/3 turn is green.
        let px = [0.7, 0.2, 0.5];
        let back = shift_hue_pixel(px, 1.0);
        assert!(
            px.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-6),
            "{back:?}"
        );
        let green = shift_hue_pixel([0.8, 0.1, 0.1], 1.0 / 3.0);
        assert!(
            (green[1] - 0.8).abs() < 1e-5 && green[0] < 0.11,
            "{green:?}"
        );
    }
}
