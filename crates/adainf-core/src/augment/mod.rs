//! Augmentation recipes (the official presets, `strength` scaling) and per-sample random
//! parameters. The tensor implementation that applies them to a whole batch on the device is
//! in `batch`; `preview` renders a PNG grid of views.

pub mod batch;
pub mod color;
pub mod fused;
pub mod preview;
#[cfg(test)]
mod reference_tests;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::options::Options;
use crate::rng::Rng;

/// CIFAR-10 channel statistics, the official pretraining normalisation.
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 channel standard deviations, paired with `CIFAR10_MEAN`.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// One view's augmentation, torchvision semantics (see the README for the differences): the
/// options of `aug::simclr`. `Default` is the `symmetric` preset (SimCLR's CIFAR augmentation
/// in the official code).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(deny_unknown_fields, default)]
pub struct AugSpec {
    /// RandomResizedCrop minimum area fraction.
    #[option(default = 0.08)]
    pub crop_min: f64,
    /// RandomResizedCrop maximum area fraction.
    #[option(default = 1.0)]
    pub crop_max: f64,
    /// Horizontal flip probability.
    #[option(default = 0.5)]
    pub flip_prob: f64,
    /// Colour jitter probability.
    #[option(default = 0.8)]
    pub jitter_prob: f64,
    /// [brightness, contrast, saturation, hue] strengths.
    #[option(default = [0.8, 0.8, 0.8, 0.2])]
    pub jitter: [f64; 4],
    /// Grayscale probability (ITU-R 601 weights).
    #[option(default = 0.2)]
    pub gray_prob: f64,
    /// Gaussian blur probability (sigma in [0.1, 2] pixels).
    #[option(default = 0.5)]
    pub blur_prob: f64,
    /// Solarize probability (pixels ≥ 128/255 inverted).
    pub solarize_prob: f64,
    /// Normalisation mean per channel, applied last; the default is CIFAR-10's.
    #[option(default = CIFAR10_MEAN.map(f64::from))]
    pub mean: [f64; 3],
    /// Normalisation std per channel (above 0); the default is CIFAR-10's.
    #[option(default = CIFAR10_STD.map(f64::from))]
    pub std: [f64; 3],
}

impl AugSpec {
    /// No augmentation at all: only normalisation (what evaluation uses).
    pub fn identity() -> Self {
        AugSpec {
            crop_min: 1.0,
            crop_max: 1.0,
            flip_prob: 0.0,
            jitter_prob: 0.0,
            jitter: [0.0; 4],
            gray_prob: 0.0,
            blur_prob: 0.0,
            solarize_prob: 0.0,
            ..AugSpec::default()
        }
    }

    /// Checks every value's range, naming the offending key.
    pub fn validate(&self) -> Result<()> {
        let prob = |key: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(
                    key,
                    format!("is a probability, must be in [0, 1], got {v}"),
                ))
            }
        };
        prob("flip_prob", self.flip_prob)?;
        prob("jitter_prob", self.jitter_prob)?;
        prob("gray_prob", self.gray_prob)?;
        prob("blur_prob", self.blur_prob)?;
        prob("solarize_prob", self.solarize_prob)?;
        if !(self.crop_min > 0.0 && self.crop_min <= self.crop_max && self.crop_max <= 1.0) {
            return Err(Error::config(
                "crop_min",
                format!(
                    "need 0 < crop_min <= crop_max <= 1, got crop_min {} and crop_max {}",
                    self.crop_min, self.crop_max
                ),
            ));
        }
        if self.jitter.iter().any(|j| *j < 0.0) || self.jitter[3] > 0.5 {
            return Err(Error::config(
                "jitter",
                format!(
                    "strengths must be >= 0 and hue <= 0.5, got {:?}",
                    self.jitter
                ),
            ));
        }
        if self.std.iter().any(|s| *s <= 0.0) {
            return Err(Error::config("std", "normalisation std must be positive"));
        }
        Ok(())
    }

    /// Scales the augmentation: jitter strengths × s (hue capped at 0.5), and the crop area
    /// range follows `crop_min ← crop_min^s`, so s < 1 moves crop_min toward 1 (milder crops),
    /// s = 0 disables cropping and jitter, s > 1 crops harder.
    pub fn with_strength(&self, s: f64) -> Result<AugSpec> {
        if !(0.0..=10.0).contains(&s) {
            return Err(Error::config(
                "strength",
                format!("must be in [0, 10], got {s}"),
            ));
        }
        let mut out = self.clone();
        out.jitter = self.jitter.map(|j| j * s);
        out.jitter[3] = out.jitter[3].min(0.5);
        out.crop_min = self.crop_min.powf(s).min(self.crop_max);
        Ok(out)
    }
}

/// The augmentation of the two views of a pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewPair {
    /// Preset name, e.g. `symmetric`.
    pub name: String,
    /// Augmentation of the first and the second view (of every image, or of the real images
    /// when `generated` is set).
    pub views: [AugSpec; 2],
    /// Augmentation of the two views of generated images, when it differs from that of real
    /// ones (`aug: #{ real: A, generated: B }`); the normalisation must be the same. Left out
    /// of the serialised pair (and so of the run id) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<[AugSpec; 2]>,
}

impl ViewPair {
    /// A pair whose two views both use `spec`.
    pub fn symmetric(name: &str, spec: AugSpec) -> Self {
        ViewPair {
            name: name.to_string(),
            views: [spec.clone(), spec],
            generated: None,
        }
    }

    /// `real` for real images and `generated`'s views for generated ones.
    pub fn per_source(real: &ViewPair, generated: &ViewPair) -> ViewPair {
        ViewPair {
            name: format!("real {}, generated {}", real.name, generated.name),
            views: real.views.clone(),
            generated: Some(generated.views.clone()),
        }
    }

    /// The views' augmentation of an image from a generated (or a real) source.
    pub fn views_for(&self, generated: bool) -> &[AugSpec; 2] {
        match (&self.generated, generated) {
            (Some(g), true) => g,
            _ => &self.views,
        }
    }

    /// Checks every view's values; generated images must be normalised as real ones are.
    pub fn validate(&self) -> Result<()> {
        for view in self.views.iter().chain(self.generated.iter().flatten()) {
            view.validate()?;
        }
        if let Some(g) = &self.generated {
            for (r, g) in self.views.iter().zip(g) {
                if r.mean != g.mean || r.std != g.std {
                    return Err(Error::config(
                        "aug.generated",
                        format!(
                            "normalises with mean {:?} and std {:?} but the real images' augmentation with mean {:?} and std {:?}; both sides of one batch need the same normalisation",
                            g.mean, g.std, r.mean, r.std
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
    /// Whether both views use the same augmentation.
    pub fn is_symmetric(&self) -> bool {
        self.views[0] == self.views[1]
    }
}

/// The preset used where none is named (SimCLR's CIFAR augmentation, `AugSpec::default()`).
pub const DEFAULT_PRESET: &str = "symmetric";

/// Names of the presets `preset` knows.
pub const PRESETS: [&str; 5] = [
    "symmetric",
    "symmetric_adainf",
    "symmetric_weak",
    "asymmetric",
    "asymmetric_adainf",
];

/// The official augmentation files (reference §2.3).
pub fn preset(name: &str) -> Result<ViewPair> {
    let sym = AugSpec::default();
    let asym = AugSpec {
        jitter: [0.4, 0.4, 0.2, 0.1],
        blur_prob: 0.0,
        ..AugSpec::default()
    };
    let asym2 = AugSpec {
        solarize_prob: 0.2,
        ..asym.clone()
    };
    let adainf = |s: &AugSpec| AugSpec {
        crop_min: 0.2,
        jitter_prob: 0.4,
        ..s.clone()
    };
    Ok(match name {
        "symmetric" => ViewPair::symmetric(name, sym),
        "symmetric_adainf" => ViewPair::symmetric(
            name,
            AugSpec {
                jitter: [0.4, 0.4, 0.4, 0.1],
                ..adainf(&sym)
            },
        ),
        "symmetric_weak" => ViewPair::symmetric(
            name,
            AugSpec {
                jitter: [0.4, 0.4, 0.4, 0.1],
                ..sym
            },
        ),
        "asymmetric" => ViewPair {
            name: name.into(),
            views: [asym, asym2],
            generated: None,
        },
        "asymmetric_adainf" => ViewPair {
            name: name.into(),
            views: [adainf(&asym), adainf(&asym2)],
            generated: None,
        },
        other => {
            return Err(Error::config(
                "preset",
                format!(
                    "unknown preset \"{other}\"; known presets: {}",
                    PRESETS.join(", ")
                ),
            ));
        }
    })
}

/// Random parameters of one view of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewParams {
    /// Crop box in pixels: x0, y0, width, height.
    pub crop: [f64; 4],
    /// Whether the crop is flipped horizontally.
    pub flip: bool,
    /// Jitter factors (brightness, contrast, saturation, hue) in the order they are applied;
    /// `None` when jitter is not applied.
    pub jitter: Option<[(JitterOp, f64); 4]>,
    /// Whether the view is converted to grayscale.
    pub gray: bool,
    /// Blur sigma in pixels, 0 = no blur.
    pub blur_sigma: f64,
    /// Whether pixels ≥ 128/255 are inverted.
    pub solarize: bool,
}

/// One colour-jitter op; its discriminant indexes the strengths in `AugSpec::jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JitterOp {
    /// Multiplies every channel by the factor.
    Brightness,
    /// Blends with the image's mean gray level: c·x + (1 − c)·mean.
    Contrast,
    /// Blends with the grayscale image: s·x + (1 − s)·gray.
    Saturation,
    /// Shifts the HSV hue by the value, a fraction of a full turn.
    Hue,
}

/// torchvision's RandomResizedCrop.get_params: 10 tries of (area, log-uniform ratio), then a
/// centre crop with the ratio clamped.
fn sample_crop(rng: &mut Rng, h: usize, w: usize, scale: (f64, f64)) -> [f64; 4] {
    let (hf, wf) = (h as f64, w as f64);
    let area = hf * wf;
    let (lr0, lr1) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.range(scale.0, scale.1);
        let ratio = rng.range(lr0, lr1).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw > 0.0 && cw <= wf && ch > 0.0 && ch <= hf {
            let x0 = rng.below((wf - cw) as usize + 1) as f64;
            let y0 = rng.below((hf - ch) as usize + 1) as f64;
            return [x0, y0, cw, ch];
        }
    }
    let in_ratio = wf / hf;
    let (cw, ch) = if in_ratio < 3.0 / 4.0 {
        (wf, (wf / (3.0 / 4.0)).round())
    } else if in_ratio > 4.0 / 3.0 {
        ((hf * 4.0 / 3.0).round(), hf)
    } else {
        (wf, hf)
    };
    [((wf - cw) / 2.0).floor(), ((hf - ch) / 2.0).floor(), cw, ch]
}

impl ViewParams {
    /// The parameters that leave an h×w image as it is (the whole frame, no colour op).
    pub fn identity(h: usize, w: usize) -> ViewParams {
        ViewParams {
            crop: [0.0, 0.0, w as f64, h as f64],
            flip: false,
            jitter: None,
            gray: false,
            blur_sigma: 0.0,
            solarize: false,
        }
    }

    /// Draws random parameters for one view of an h×w image under `spec`.
    pub fn sample(spec: &AugSpec, rng: &mut Rng, h: usize, w: usize) -> ViewParams {
        let crop = sample_crop(rng, h, w, (spec.crop_min, spec.crop_max));
        let jitter = rng.bernoulli(spec.jitter_prob).then(|| {
            let [b, c, s, hue] = spec.jitter;
            let factor = |rng: &mut Rng, x: f64| rng.range((1.0 - x).max(0.0), 1.0 + x);
            let mut ops = [
                JitterOp::Brightness,
                JitterOp::Contrast,
                JitterOp::Saturation,
                JitterOp::Hue,
            ];
            rng.shuffle(&mut ops);
            let values = [
                factor(rng, b),
                factor(rng, c),
                factor(rng, s),
                rng.range(-hue, hue),
            ];
            ops.map(|op| (op, values[op as usize]))
        });
        let gray = rng.bernoulli(spec.gray_prob);
        let blur_sigma = if rng.bernoulli(spec.blur_prob) {
            rng.range(0.1, 2.0)
        } else {
            0.0
        };
        let solarize = rng.bernoulli(spec.solarize_prob);
        let flip = rng.bernoulli(spec.flip_prob);
        ViewParams {
            crop,
            flip,
            jitter,
            gray,
            blur_sigma,
            solarize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_official_files() {
        let s = preset("symmetric").unwrap();
        assert!(s.is_symmetric());
        assert_eq!(
            (
                s.views[0].crop_min,
                s.views[0].jitter_prob,
                s.views[0].jitter
            ),
            (0.08, 0.8, [0.8, 0.8, 0.8, 0.2])
        );
        let a = preset("symmetric_adainf").unwrap();
        assert_eq!(
            (
                a.views[0].crop_min,
                a.views[0].jitter_prob,
                a.views[0].jitter
            ),
            (0.2, 0.4, [0.4, 0.4, 0.4, 0.1])
        );
        assert_eq!(
            (
                a.views[0].gray_prob,
                a.views[0].blur_prob,
                a.views[0].flip_prob
            ),
            (0.2, 0.5, 0.5)
        );
        let b = preset("asymmetric").unwrap();
        assert!(!b.is_symmetric());
        assert_eq!(
            (
                b.views[0].solarize_prob,
                b.views[1].solarize_prob,
                b.views[0].blur_prob
            ),
            (0.0, 0.2, 0.0)
        );
        let c = preset("asymmetric_adainf").unwrap();
        assert_eq!(
            (
                c.views[1].crop_min,
                c.views[1].jitter_prob,
                c.views[1].jitter
            ),
            (0.2, 0.4, [0.4, 0.4, 0.2, 0.1])
        );
        assert!(
            preset("strong")
                .unwrap_err()
                .to_string()
                .contains("symmetric_adainf")
        );
    }

    /// Every field of every preset, against the official YAML files (reference §2.3).
    #[test]
    fn every_preset_value_is_the_official_one() {
        let spec = |crop_min, jitter_prob, jitter, blur_prob, solarize_prob| AugSpec {
            crop_min,
            crop_max: 1.0,
            flip_prob: 0.5,
            jitter_prob,
            jitter,
            gray_prob: 0.2,
            blur_prob,
            solarize_prob,
            mean: [0.4914, 0.4822, 0.4465].map(|v: f32| v as f64),
            std: [0.2470, 0.2435, 0.2616].map(|v: f32| v as f64),
        };
        let strong = [0.8, 0.8, 0.8, 0.2];
        let half = [0.4, 0.4, 0.4, 0.1];
        let asym = [0.4, 0.4, 0.2, 0.1];
        let expected = [
            (
                "symmetric",
                [
                    spec(0.08, 0.8, strong, 0.5, 0.0),
                    spec(0.08, 0.8, strong, 0.5, 0.0),
                ],
            ),
            (
                "symmetric_adainf",
                [
                    spec(0.2, 0.4, half, 0.5, 0.0),
                    spec(0.2, 0.4, half, 0.5, 0.0),
                ],
            ),
            (
                "symmetric_weak",
                [
                    spec(0.08, 0.8, half, 0.5, 0.0),
                    spec(0.08, 0.8, half, 0.5, 0.0),
                ],
            ),
            (
                "asymmetric",
                [
                    spec(0.08, 0.8, asym, 0.0, 0.0),
                    spec(0.08, 0.8, asym, 0.0, 0.2),
                ],
            ),
            (
                "asymmetric_adainf",
                [
                    spec(0.2, 0.4, asym, 0.0, 0.0),
                    spec(0.2, 0.4, asym, 0.0, 0.2),
                ],
            ),
        ];
        assert_eq!(expected.len(), PRESETS.len());
        for (name, views) in expected {
            assert_eq!(preset(name).unwrap().views, views, "{name}");
        }
    }

    /// torchvision's RandomResizedCrop.get_params: the area fraction is uniform in
    /// [crop_min, crop_max] and the aspect ratio log-uniform in [3/4, 4/3], up to the rounding
    /// of the box to whole pixels; boxes that do not fit are retried.
    #[test]
    fn crop_geometry_follows_torchvision() {
        let mut rng = Rng::new(11);
        let (mut fractions, mut log_ratios) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let [x0, y0, w, h] = sample_crop(&mut rng, 64, 64, (0.2, 0.6));
            assert!(x0 >= 0.0 && y0 >= 0.0 && x0 + w <= 64.0 && y0 + h <= 64.0);
            fractions.push(w * h / 4096.0);
            log_ratios.push((w / h).ln());
        }
        let (lo, hi) = (0.75f64.ln(), (4.0f64 / 3.0).ln());
        // Rounding a side of ~30 pixels moves the ratio by up to ~3% and the area by ~4%.
        assert!(log_ratios.iter().all(|r| *r > lo - 0.04 && *r < hi + 0.04));
        assert!(fractions.iter().all(|f| *f > 0.2 * 0.93 && *f < 0.6 * 1.07));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // Uniform area: mean 0.4; log-uniform ratio: mean log 0 (symmetric range).
        assert!(
            (mean(&fractions) - 0.4).abs() < 0.005,
            "{}",
            mean(&fractions)
        );
        assert!(mean(&log_ratios).abs() < 0.005, "{}", mean(&log_ratios));
        // Area uniform, not (say) side length uniform: a quarter of the draws below 0.3.
        let below = fractions.iter().filter(|f| **f < 0.3).count() as f64 / 20_000.0;
        assert!((below - 0.25).abs() < 0.02, "{below}");
        // A box that can never fit (half or more of a 64×1 image, at a ratio near 1) falls
        // back to torchvision's centre crop with the ratio clamped to 3/4: the full width, a
        // height of round(1 / 0.75) = 1, centred at row (64 − 1) / 2 = 31.
        assert_eq!(
            sample_crop(&mut rng, 64, 1, (0.5, 1.0)),
            [0.0, 31.0, 1.0, 1.0]
        );
    }

    #[test]
    fn strength_scales_jitter_and_moves_crop() {
        let s = AugSpec::default();
        let half = s.with_strength(0.5).unwrap();
        assert_eq!(half.jitter, [0.4, 0.4, 0.4, 0.1]);
        assert!(half.crop_min > s.crop_min && half.crop_min < 1.0);
        assert_eq!(s.with_strength(1.0).unwrap(), s);
        assert_eq!(s.with_strength(0.0).unwrap().crop_min, 1.0);
        assert!(s.with_strength(2.0).unwrap().crop_min < s.crop_min);
        assert!(s.with_strength(-1.0).is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let bad = AugSpec {
            gray_prob: 1.5,
            ..AugSpec::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("gray_prob")
        );
        let bad = AugSpec {
            crop_min: 0.0,
            ..AugSpec::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("crop_min"));
        assert!(AugSpec::default().validate().is_ok());
    }

    #[test]
    fn crops_stay_inside_and_cover_the_scale_range() {
        let spec = AugSpec::default();
        let mut rng = Rng::new(5);
        let mut areas = Vec::new();
        for _ in 0..5000 {
            let p = ViewParams::sample(&spec, &mut rng, 32, 32);
            let [x0, y0, w, h] = p.crop;
            assert!(
                x0 >= 0.0 && y0 >= 0.0 && w >= 1.0 && h >= 1.0 && x0 + w <= 32.0 && y0 + h <= 32.0,
                "{:?}",
                p.crop
            );
            areas.push(w * h / 1024.0);
        }
        let min = areas.iter().cloned().fold(1.0, f64::min);
        let max = areas.iter().cloned().fold(0.0, f64::max);
        assert!(min < 0.12 && max > 0.9, "{min} {max}");
    }

    #[test]
    fn probabilities_hold_over_many_samples() {
        let spec = AugSpec::default();
        let mut rng = Rng::new(9);
        let n = 20_000;
        let mut jit = 0;
        let mut gray = 0;
        let mut blur = 0;
        for _ in 0..n {
            let p = ViewParams::sample(&spec, &mut rng, 32, 32);
            jit += p.jitter.is_some() as usize;
            gray += p.gray as usize;
            if p.blur_sigma > 0.0 {
                blur += 1;
                assert!((0.1..2.0).contains(&p.blur_sigma));
            }
            if let Some(ops) = p.jitter {
                let mut kinds: Vec<usize> = ops.iter().map(|(o, _)| *o as usize).collect();
                kinds.sort();
                assert_eq!(kinds, vec![0, 1, 2, 3]);
            }
        }
        // Binomial standard deviation at n = 20000 is under 0.0036; allow 4 of them.
        let close = |count: usize, p: f64| ((count as f64 / n as f64) - p).abs() < 0.015;
        assert!(
            close(jit, 0.8) && close(gray, 0.2) && close(blur, 0.5),
            "{jit} {gray} {blur}"
        );
    }
}
