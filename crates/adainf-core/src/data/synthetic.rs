//! The embedded default data: a procedural 10-class image family, and a simulated generative
//! model of it.
//!
//! Class identity lives only in the *shape* (disk, square, triangle, ring, plus, X, two bars,
//! L, crescent, frame). Everything else is nuisance that varies per image: which of a light
//! and a dark tone is the foreground (each tinted), the position (shapes may run off the
//! frame), the scale, a small rotation, a faint background gradient, stripe texture and pixel
//! noise, and in a quarter of the images a small clutter blob. Position, scale and polarity
//! make raw-pixel distances a poor guide to the class; crops and colour jitter are what teach
//! an encoder to ignore them, and the instance-specific detail is kept faint so that two views
//! of one image cannot be matched by their background instead of their shape.
//!
//! The simulated generator draws from the same family, degraded by the gap `g = 1 - fidelity`:
//! narrower nuisance ranges (less diversity), class frequencies skewed toward the first classes,
//! blur (σ = 3g pixels at 32 px), a global colour shift, and malformed samples with probability
//! min(1, 1.2g) (the shape morphed halfway into another class's, or cut by a half-plane).
//! `fidelity = 1` gives the same distribution as `synthetic` (with its own random stream).
//! Generated images carry label -1.

use super::{Dataset, ImageStore, UNLABELED, hash_hex};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::rng::Rng;

/// Bump when rendering changes, so cached runs on the old images are not reused.
const RENDER_VERSION: &str = "synthetic-v4";
/// Number of classes (shapes) of the synthetic family.
pub const CLASSES: usize = 10;
/// The light and the dark tone of the two-tone images (before their per-image tint).
const TONES: [[f64; 3]; 2] = [[0.95, 0.95, 0.95], [0.08, 0.08, 0.08]];
/// Name of each class's shape, indexed by label.
pub const CLASS_NAMES: [&str; CLASSES] = [
    "disk", "square", "triangle", "ring", "plus", "x", "bars", "ell", "crescent", "frame",
];

/// Parameters of the real embedded dataset (`synthetic`): `data::synthetic`'s options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Options)]
#[serde(default)]
pub struct SyntheticSpec {
    /// Number of images (at least 1).
    #[option(default = 5000)]
    pub n: usize,
    /// Random seed.
    pub seed: u64,
    /// Image side in pixels (8 to 256).
    #[option(default = 32)]
    pub size: usize,
    /// "train" or "test": independent streams.
    #[option(default = "train")]
    pub split: String,
}

/// Parameters of the simulated generator's samples (`synthetic_generator`):
/// `data::synthetic_generator`'s options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, Options)]
#[serde(default)]
pub struct GeneratorSpec {
    /// Number of generated images (at least 1).
    #[option(default = 50_000)]
    pub n: usize,
    /// Random seed.
    pub seed: u64,
    /// Image side in pixels (8 to 256).
    #[option(default = 32)]
    pub size: usize,
    /// In [0, 1]; 1 = the real distribution.
    #[option(default = 0.7)]
    pub fidelity: f64,
}

/// The image side must be in 8..=256 pixels (also `adainf check`'s static check of `size`).
pub fn check_size(size: usize) -> Result<()> {
    if !(8..=256).contains(&size) {
        return Err(Error::config(
            "size",
            format!("must be between 8 and 256 pixels, got {size}"),
        ));
    }
    Ok(())
}

/// The real embedded dataset: balanced classes (`i % 10`), labels 0..10.
pub fn synthetic(spec: &SyntheticSpec) -> Result<Dataset> {
    check_size(spec.size)?;
    let split_id = match spec.split.as_str() {
        "train" => 0,
        "test" => 1,
        other => {
            return Err(Error::config(
                "split",
                format!("must be \"train\" or \"test\", got \"{other}\""),
            ));
        }
    };
    if spec.n == 0 {
        return Err(Error::config("n", "must be at least 1"));
    }
    check_memory(spec.n, spec.size)?;
    let labels: Vec<i32> = (0..spec.n).map(|i| (i % CLASSES) as i32).collect();
    let pixels = render_all(spec.n, spec.size, |i| {
        let mut rng = Rng::derive(spec.seed, &[split_id, i as u64]);
        Scene::sample(&mut rng, i % CLASSES, &Degradation::none())
    })?;
    let source = format!(
        "synthetic(n={}, seed={}, size={}, split={})",
        spec.n, spec.seed, spec.size, spec.split
    );
    finish(source, spec.size, pixels, labels)
}

/// A simulated generator's samples: unlabeled, degraded by `1 - fidelity`.
pub fn synthetic_generator(spec: &GeneratorSpec) -> Result<Dataset> {
    check_size(spec.size)?;
    if !(0.0..=1.0).contains(&spec.fidelity) {
        return Err(Error::config(
            "fidelity",
            format!("must be in [0, 1], got {}", spec.fidelity),
        ));
    }
    if spec.n == 0 {
        return Err(Error::config("n", "must be at least 1"));
    }
    check_memory(spec.n, spec.size)?;
    let degradation = Degradation::new(spec.fidelity, spec.seed);
    let pixels = render_all(spec.n, spec.size, |i| {
        let mut rng = Rng::derive(spec.seed, &[2, i as u64]);
        let class = degradation.sample_class(&mut rng);
        Scene::sample(&mut rng, class, &degradation)
    })?;
    let labels = vec![UNLABELED; spec.n];
    let source = format!(
        "synthetic_generator(n={}, fidelity={}, seed={}, size={})",
        spec.n, spec.fidelity, spec.seed, spec.size
    );
    finish(source, spec.size, pixels, labels)
}

/// Refuses `n` images of `size`² RGB pixels (and their labels) that cannot fit in memory.
fn check_memory(n: usize, size: usize) -> Result<()> {
    let per = size * size * 3 + std::mem::size_of::<i32>();
    super::alloc::bytes_for("n", &format!("{size}×{size} images"), n, per).map(|_| ())
}

/// The dataset of rendered images; its fingerprint is the recipe (`source`) and the renderer.
fn finish(source: String, size: usize, pixels: Vec<u8>, labels: Vec<i32>) -> Result<Dataset> {
    let fp = hash_hex(&[RENDER_VERSION, &source]);
    let store = ImageStore::new(source, fp, [size, size, 3], CLASSES, pixels, labels)?;
    Ok(Dataset::from_store(store))
}

/// Renders `n` images in parallel on all cores; image `i` comes from `scene(i)` only, so the
/// result does not depend on the number of threads.
fn render_all(n: usize, size: usize, scene: impl Fn(usize) -> Scene + Sync) -> Result<Vec<u8>> {
    let per = size * size * 3;
    let total = n
        .checked_mul(per)
        .ok_or_else(|| Error::config("n", format!("{n} images of {per} bytes overflow")))?;
    let mut pixels = super::alloc::zeroed("n", "the pixels", total)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n.max(1));
    let chunk_items = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (c, chunk) in pixels.chunks_mut(chunk_items * per).enumerate() {
            let scene = &scene;
            s.spawn(move || {
                for (k, out) in chunk.chunks_exact_mut(per).enumerate() {
                    scene(c * chunk_items + k).render(size, out);
                }
            });
        }
    });
    Ok(pixels)
}

/// How far a simulated generator falls short of the real family.
struct Degradation {
    /// 1 - fidelity.
    gap: f64,
    tint: [f64; 3],
}

impl Degradation {
    fn none() -> Self {
        Degradation {
            gap: 0.0,
            tint: [0.0; 3],
        }
    }
    fn new(fidelity: f64, seed: u64) -> Self {
        let gap = 1.0 - fidelity;
        let mut rng = Rng::derive(seed, &[3]);
        let dir = [
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
        ];
        let norm = dir.iter().map(|d| d * d).sum::<f64>().sqrt().max(1e-6);
        Degradation {
            gap,
            tint: dir.map(|d| 0.15 * gap * d / norm),
        }
    }
    /// A uniform draw in [lo, hi) whose range shrinks toward its middle as the gap grows.
    fn nuisance(&self, rng: &mut Rng, lo: f64, hi: f64) -> f64 {
        let mid = 0.5 * (lo + hi);
        mid + (rng.uniform() - 0.5) * (hi - lo) * (1.0 - 0.75 * self.gap)
    }
    /// Class frequencies skew toward the first classes as the gap grows.
    fn sample_class(&self, rng: &mut Rng) -> usize {
        let w: Vec<f64> = (0..CLASSES)
            .map(|k| (-2.0 * self.gap * k as f64 / 9.0).exp())
            .collect();
        let mut u = rng.uniform() * w.iter().sum::<f64>();
        for (k, wk) in w.iter().enumerate() {
            if u < *wk {
                return k;
            }
            u -= wk;
        }
        CLASSES - 1
    }
}

enum Malformation {
    None,
    /// Blend the signed distance with another class's.
    Morph(usize, f64),
    /// Cut away a half-plane (normal angle, offset).
    Cut(f64, f64),
}

struct Scene {
    class: usize,
    malformation: Malformation,
    cx: f64,
    cy: f64,
    scale: f64,
    angle: f64,
    fg: [f64; 3],
    bg0: [f64; 3],
    bg1: [f64; 3],
    grad_angle: f64,
    stripe: (f64, f64, f64, f64), // frequency, direction, phase, amplitude
    noise: f64,
    noise_seed: u64,
    clutter: Option<(f64, f64, f64, [f64; 3])>,
    blur: f64,
    tint: [f64; 3],
}

/// HSV → RGB as torchvision's `_hsv2rgb`: hue `h` in turns ([0, 1)), saturation and value
/// in [0, 1]. One function for both precisions: the synthetic scenes' colours (f64) and the
/// hue jitter (`augment::color::shift_hue_pixel`, f32).
pub fn hsv_to_rgb<T: num_traits::Float>(h: T, s: T, v: T) -> [T; 3] {
    let (zero, one) = (T::zero(), T::one());
    let six = T::from(6.0).unwrap_or(one);
    let i = (h * six).floor();
    let f = h * six - i;
    let unit = |x: T| num_traits::clamp(x, zero, one);
    let p = unit(v * (one - s));
    let q = unit(v * (one - s * f));
    let t = unit(v * (one - s * (one - f)));
    match i.to_i64().unwrap_or(0).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

impl Scene {
    fn sample(rng: &mut Rng, class: usize, d: &Degradation) -> Scene {
        // Size and place vary widely (a shape may run off the frame by up to a third of its
        // radius), so silhouettes of one class overlap pixel for pixel only by chance; random
        // crops are what teaches an encoder to ignore both.
        let scale = d.nuisance(rng, 0.3, 0.45);
        let margin = 0.65 * scale;
        let cx = margin + d.nuisance(rng, 0.0, 1.0) * (1.0 - 2.0 * margin);
        let cy = margin + d.nuisance(rng, 0.0, 1.0) * (1.0 - 2.0 * margin);
        let angle = d.nuisance(rng, -0.35, 0.35);
        // Two tones, either one the foreground: a light and a dark grey, each tinted by up to
        // ±0.1 per channel (the background's two ends separately, a faint gradient). Colour
        // jitter and grayscale cannot flip the polarity, but it is one bit; richer colours
        // would give two views of one image a shared colour signature that contrastive
        // learning latches onto instead of the shape (measured: kNN fell from 0.88 to 0.15
        // with six hues).
        let (fg_tone, bg_tone) = loop {
            let (a, b) = (rng.below(2), rng.below(2));
            if a != b {
                break (TONES[a], TONES[b]);
            }
        };
        let mut tinted = |tone: [f64; 3]| tone.map(|v| (v + rng.range(-0.1, 0.1)).clamp(0.0, 1.0));
        let fg = tinted(fg_tone);
        let bg0 = tinted(bg_tone);
        let bg1 = tinted(bg_tone);
        // Faint instance-specific detail: strong texture or clutter would let two views of one
        // image be matched by their background instead of their shape.
        let stripe = (
            d.nuisance(rng, 6.0, 20.0),
            d.nuisance(rng, 0.0, std::f64::consts::PI),
            rng.range(0.0, std::f64::consts::TAU),
            d.nuisance(rng, 0.0, 0.02),
        );
        let noise = d.nuisance(rng, 0.0, 0.02);
        let noise_seed = rng.next_u64();
        let clutter = rng.bernoulli(0.25).then(|| {
            (
                rng.range(0.1, 0.9),
                rng.range(0.1, 0.9),
                rng.range(0.04, 0.07),
                hsv_to_rgb(rng.uniform(), rng.range(0.3, 1.0), rng.range(0.3, 1.0)),
            )
        });
        let malformation = if rng.bernoulli((1.2 * d.gap).min(1.0)) {
            if rng.bernoulli(0.5) {
                Malformation::Morph(
                    (class + 1 + rng.below(CLASSES - 1)) % CLASSES,
                    rng.range(0.3, 0.7),
                )
            } else {
                Malformation::Cut(rng.range(0.0, std::f64::consts::TAU), rng.range(-0.3, 0.3))
            }
        } else {
            Malformation::None
        };
        Scene {
            class,
            malformation,
            cx,
            cy,
            scale,
            angle,
            fg,
            bg0,
            bg1,
            grad_angle: rng.range(0.0, std::f64::consts::TAU),
            stripe,
            noise,
            noise_seed,
            clutter,
            blur: 3.0 * d.gap,
            tint: d.tint,
        }
    }

    fn distance(&self, u: f64, v: f64) -> f64 {
        let base = shape_sdf(self.class, u, v);
        match self.malformation {
            Malformation::None => base,
            Malformation::Morph(other, t) => (1.0 - t) * base + t * shape_sdf(other, u, v),
            Malformation::Cut(theta, offset) => {
                base.max(u * theta.cos() + v * theta.sin() - offset)
            }
        }
    }

    fn render(&self, size: usize, out: &mut [u8]) {
        let mut img = vec![0.0f64; size * size * 3];
        let (sin_a, cos_a) = self.angle.sin_cos();
        let (gs, gc) = self.grad_angle.sin_cos();
        let (freq, dir, phase, amp) = self.stripe;
        let (ds, dc) = dir.sin_cos();
        let mut noise_rng = Rng::new(self.noise_seed);
        let px = 1.0 / size as f64;
        for y in 0..size {
            for x in 0..size {
                let fx = (x as f64 + 0.5) * px;
                let fy = (y as f64 + 0.5) * px;
                let t = (0.5 + 0.7 * ((fx - 0.5) * gc + (fy - 0.5) * gs)).clamp(0.0, 1.0);
                let stripe =
                    amp * (std::f64::consts::TAU * freq * (fx * dc + fy * ds) + phase).sin();
                let mut c: [f64; 3] =
                    std::array::from_fn(|ch| self.bg0[ch] * (1.0 - t) + self.bg1[ch] * t + stripe);
                if let Some((qx, qy, r, color)) = self.clutter {
                    let dist = ((fx - qx).powi(2) + (fy - qy).powi(2)).sqrt() - r;
                    let a = (0.5 - dist / px).clamp(0.0, 1.0);
                    for (v, col) in c.iter_mut().zip(color) {
                        *v = *v * (1.0 - a) + col * a;
                    }
                }
                let (dx, dy) = ((fx - self.cx) / self.scale, (fy - self.cy) / self.scale);
                let (u, v) = (dx * cos_a + dy * sin_a, -dx * sin_a + dy * cos_a);
                let alpha = (0.5 - self.distance(u, v) * self.scale / px).clamp(0.0, 1.0);
                for ch in 0..3 {
                    img[(y * size + x) * 3 + ch] = c[ch] * (1.0 - alpha) + self.fg[ch] * alpha;
                }
            }
        }
        if self.blur > 0.05 {
            gaussian_blur(&mut img, size, self.blur * size as f64 / 32.0);
        }
        for (k, o) in out.iter_mut().enumerate() {
            let v = img[k] + self.tint[k % 3] + self.noise * noise_rng.normal();
            *o = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
}

fn box_sdf(u: f64, v: f64, bx: f64, by: f64) -> f64 {
    let (qx, qy) = (u.abs() - bx, v.abs() - by);
    (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt() + qx.max(qy).min(0.0)
}

fn triangle_sdf(u: f64, v: f64, r: f64) -> f64 {
    let k = 3f64.sqrt();
    let (mut x, mut y) = (u.abs() - r, -v + r / k);
    if x + k * y > 0.0 {
        (x, y) = ((x - k * y) / 2.0, (-k * x - y) / 2.0);
    }
    x -= x.clamp(-2.0 * r, 0.0);
    -(x * x + y * y).sqrt() * y.signum()
}

/// Signed distance (negative inside) of class `class`'s shape, in units of the shape radius.
fn shape_sdf(class: usize, u: f64, v: f64) -> f64 {
    let len = |a: f64, b: f64| (a * a + b * b).sqrt();
    let rot45 = |a: f64, b: f64| {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        (s * (a + b), s * (b - a))
    };
    match class {
        0 => len(u, v) - 0.8,
        1 => box_sdf(u, v, 0.68, 0.68),
        2 => triangle_sdf(u, v - 0.15, 0.95),
        3 => (len(u, v) - 0.65).abs() - 0.2,
        4 => box_sdf(u, v, 0.85, 0.22).min(box_sdf(u, v, 0.22, 0.85)),
        5 => {
            let (a, b) = rot45(u, v);
            box_sdf(a, b, 0.9, 0.2).min(box_sdf(a, b, 0.2, 0.9))
        }
        6 => box_sdf(u, v - 0.42, 0.85, 0.18).min(box_sdf(u, v + 0.42, 0.85, 0.18)),
        7 => box_sdf(u + 0.5, v, 0.22, 0.85).min(box_sdf(u, v - 0.63, 0.72, 0.22)),
        8 => (len(u, v) - 0.85).max(-(len(u - 0.45, v + 0.1) - 0.62)),
        _ => box_sdf(u, v, 0.8, 0.8).max(-box_sdf(u, v, 0.45, 0.45)),
    }
}

/// Separable Gaussian blur with edge clamping, in place, on an HWC f64 image.
fn gaussian_blur(img: &mut [f64], size: usize, sigma: f64) {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / total).collect();
    let mut tmp = vec![0.0; img.len()];
    let clamp = |i: isize| i.clamp(0, size as isize - 1) as usize;
    for horizontal in [true, false] {
        for y in 0..size {
            for x in 0..size {
                for ch in 0..3 {
                    let mut acc = 0.0;
                    for (j, k) in kernel.iter().enumerate() {
                        let o = j as isize - radius;
                        let (sx, sy) = if horizontal {
                            (clamp(x as isize + o), y)
                        } else {
                            (x, clamp(y as isize + o))
                        };
                        acc += k * img[(sy * size + sx) * 3 + ch];
                    }
                    tmp[(y * size + x) * 3 + ch] = acc;
                }
            }
        }
        img.copy_from_slice(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize, seed: u64, split: &str) -> SyntheticSpec {
        SyntheticSpec {
            n,
            seed,
            size: 32,
            split: split.into(),
        }
    }

    #[test]
    fn deterministic_balanced_and_split_dependent() {
        let a = synthetic(&spec(40, 0, "train")).unwrap();
        let b = synthetic(&spec(40, 0, "train")).unwrap();
        let t = synthetic(&spec(40, 0, "test")).unwrap();
        assert_eq!(a.item(7).pixels, b.item(7).pixels);
        assert_ne!(a.item(7).pixels, t.item(7).pixels);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), t.fingerprint());
        for c in 0..10 {
            assert_eq!((0..40).filter(|&i| a.label(i) == c).count(), 4);
        }
        assert!(synthetic(&spec(4, 0, "val")).is_err());
        assert!(
            synthetic(&SyntheticSpec {
                size: 4,
                ..spec(4, 0, "train")
            })
            .is_err()
        );
    }

    #[test]
    fn every_shape_has_an_inside_and_an_outside() {
        for class in 0..CLASSES {
            let inside = (0..400)
                .filter(|k| {
                    shape_sdf(
                        class,
                        (k % 20) as f64 / 10.0 - 1.0,
                        (k / 20) as f64 / 10.0 - 1.0,
                    ) < 0.0
                })
                .count();
            assert!(
                inside > 20 && inside < 380,
                "class {class}: {inside} of 400 points inside"
            );
        }
    }

    #[test]
    fn generator_is_unlabeled_and_fidelity_moves_it_away() {
        let g = synthetic_generator(&GeneratorSpec {
            n: 50,
            seed: 1,
            size: 32,
            fidelity: 0.3,
        })
        .unwrap();
        assert!((0..50).all(|i| g.label(i) == -1));
        assert!(
            synthetic_generator(&GeneratorSpec {
                n: 5,
                seed: 1,
                size: 32,
                fidelity: 1.5
            })
            .is_err()
        );
        // Lower fidelity = blurrier images: mean absolute horizontal gradient drops.
        let sharpness = |d: &Dataset| {
            let mut s = 0.0;
            for i in 0..d.len() {
                let p = d.item(i).pixels;
                for k in 3..p.len() {
                    s += (p[k] as f64 - p[k - 3] as f64).abs();
                }
            }
            s / d.len() as f64
        };
        let real = synthetic_generator(&GeneratorSpec {
            n: 200,
            seed: 1,
            size: 32,
            fidelity: 1.0,
        })
        .unwrap();
        let poor = synthetic_generator(&GeneratorSpec {
            n: 200,
            seed: 1,
            size: 32,
            fidelity: 0.0,
        })
        .unwrap();
        assert!(
            sharpness(&poor) < 0.8 * sharpness(&real),
            "{} vs {}",
            sharpness(&poor),
            sharpness(&real)
        );
    }
}
