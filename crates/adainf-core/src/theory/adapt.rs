//! Adaptive inflation: the rule that chooses the real data's replication (`dup`) and the
//! augmentation strength from label-free measurements — the two data sizes and the generator
//! gap `tv` (`gap::generator_gap`, a two-sample test). docs/adaptive.md derives it from the
//! bound of the paper's §4; in short:
//!
//! - **dup.** Model each generated image as a draw from the shared part of the two
//!   distributions with probability `1 − tv` and from elsewhere otherwise (the decomposition
//!   behind total variation). The ideal weighting — 1 for in-distribution images, 0 for the
//!   rest — would keep every in-distribution image at equal weight and remove the gap term;
//!   without knowing which generated image is which, the rule uses its expectation, `1 − tv`
//!   per generated image: a real image weighs `1/(1 − tv)` generated ones, so
//!   `dup = round(1/(1 − tv))`. A heuristic read off the bound's terms, not its minimiser: at
//!   these weights the effective number of images is largest at dup = 1, so the rule trades
//!   some connectivity for a smaller gap term.
//! - **strength.** The in-distribution images number `n_eff = n_real + (1 − tv)·n_generated`
//!   (replicas add none; this is the count, whatever the weights). On the paper's toy, computed exactly by `toy`, the radius that
//!   minimises the bound falls as `n^(−γ)` with γ ≈ 1/6; the default augmentation was made
//!   for the real set alone, so the strength is `(n_eff / n_real)^(−γ)`, applied by
//!   `AugSpec::with_strength` (jitter × s, crop_min ← crop_min^s).
//!
//! The choice is a pure function of its inputs (`choose`) and is recorded with them, so a run
//! that used it is reproducible without measuring again.

use burn::tensor::Device;

use super::gap::{self, GapConfig};
use crate::data::Dataset;
pub use crate::data::inflate::AutoChoice;
use crate::data::recipe;
use crate::error::{Error, Result};

/// γ: the optimal augmentation radius of the toy falls as `n^(−γ)` (fitted on n = 50 … 800,
/// seeds 0–4 of scripts/theory_fig5.rhai: −0.167; a test fits it again).
pub const STRENGTH_EXPONENT: f64 = 1.0 / 6.0;
/// `tv` is capped here before the rule reads it, so `dup` stays finite (at most 20).
pub const MAX_TV: f64 = 0.95;

/// The rule (module doc): a pure function of the data sizes and the measured `tv`.
pub fn choose(n_real: usize, n_generated: usize, tv: f64) -> Result<AutoChoice> {
    if n_real == 0 {
        return Err(Error::Data(
            "adaptive inflation needs real images; the real set is empty".into(),
        ));
    }
    if !(0.0..=1.0).contains(&tv) {
        return Err(Error::Data(format!(
            "the generator gap tv must be in [0, 1], got {tv}"
        )));
    }
    let tv_used = tv.min(MAX_TV);
    let dup = (1.0 / (1.0 - tv_used)).round().max(1.0) as usize;
    let n_effective = n_real as f64 + (1.0 - tv) * n_generated as f64;
    let raw = (n_effective / n_real as f64).powf(-STRENGTH_EXPONENT);
    // Two decimals, so the augmentation's name (and the run id) is stable across platforms.
    let strength = (raw * 100.0).round() / 100.0;
    Ok(AutoChoice {
        n_real,
        n_generated,
        tv,
        dup,
        n_effective,
        strength,
    })
}

/// Measures the generator gap of `generated` against `real` (`GapConfig::default()`) and
/// applies the rule. Errors, naming what to do, when a set is too small to measure.
pub fn measure(real: &Dataset, generated: &Dataset, device: &Device) -> Result<AutoChoice> {
    let cfg = GapConfig::default();
    let too_small = real.is_empty()
        || generated.is_empty()
        || (real.shape() == generated.shape() && !gap::measurable(real, generated, &cfg));
    if too_small {
        return Err(Error::Data(format!(
            "the adaptive rule measures the generator gap, which needs more than {} images in \
             each set (real {}, generated {}); with fewer, give dup as a number \
             (data::inflate) and the strength by hand (aug.strength(s))",
            cfg.k.max(cfg.dims),
            real.len(),
            generated.len()
        )));
    }
    let measured = gap::generator_gap(real, generated, &cfg, device)?;
    choose(real.len(), generated.len(), measured.tv)
}

/// `data::inflate(real, generated, #{ dup: "auto" })`: measures, chooses dup, and records the
/// choice and its inputs in the set's attributes and recipe.
pub fn inflate_auto(real: &Dataset, generated: &Dataset, device: &Device) -> Result<Dataset> {
    let choice = measure(real, generated, device)?;
    recipe::inflate_recorded(real, generated, choice.dup, Some(choice))
}

/// The strength the rule gives `data`'s augmentation: the recorded choice of a set inflated
/// with `dup: "auto"` (or of the set it is a subset of); a measured one for a set inflated
/// with a fixed dup; 1 (the preset as it is) for real data alone. A subset of a fixed-dup
/// inflation no longer knows its parts: an error says to call it on the inflated set.
pub fn strength_for(data: &Dataset, device: &Device) -> Result<AutoChoice> {
    if let Some(choice) = data.inflation().and_then(|i| i.auto.as_ref()) {
        return Ok(choice.clone());
    }
    if let Some((real, generated)) = data.inflated_from() {
        return measure(real, generated, device);
    }
    if data.comes_from_inflation() {
        return Err(Error::Data(format!(
            "{} is part of an inflated set whose real and generated parts it no longer knows; \
             call aug::auto on the inflated set itself",
            data.description()
        )));
    }
    choose(data.len(), 0, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::toy::{ToyConfig, toy};

    /// Hand-computed cases: a perfect generator keeps every image at weight 1 and weakens
    /// the augmentation by the data growth alone; a poor one up-weights the real images.
    #[test]
    fn the_rule_by_hand() {
        let perfect = choose(500, 5000, 0.0).unwrap();
        assert_eq!(perfect.dup, 1);
        assert_eq!(perfect.n_effective, 5500.0);
        // 11^(−1/6) = 0.6705…
        assert_eq!(perfect.strength, 0.67);
        let poor = choose(500, 5000, 0.65).unwrap();
        // 1/(1 − 0.65) = 2.86 rounds to 3; n_eff = 500 + 0.35·5000 = 2250.
        assert_eq!(poor.dup, 3);
        assert!((poor.n_effective - 2250.0).abs() < 1e-9);
        assert_eq!(poor.strength, 0.78); // 4.5^(−1/6) = 0.7783
        let useless = choose(500, 5000, 1.0).unwrap();
        assert_eq!(useless.dup, 20);
        assert_eq!(useless.strength, 1.0);
        // No generated data: nothing to weigh, the preset as it is.
        let alone = choose(500, 0, 0.3).unwrap();
        assert_eq!((alone.dup, alone.strength), (1, 1.0)); // 1/0.7 = 1.43 rounds to 1
        assert!(choose(0, 10, 0.1).is_err());
        assert!(choose(10, 10, 1.5).is_err());
        let attrs = poor.attributes();
        assert!(attrs.contains(&("generator_tv".into(), "0.6500".into())));
        assert!(attrs.contains(&("auto_strength".into(), "0.78".into())));
    }

    /// The choice travels in the recipe: another process makes the same set, with the same
    /// attributes, from the recorded choice (a tampered record shows it is read, not measured
    /// again).
    #[test]
    fn the_choice_travels_in_the_recipe() {
        use crate::data::recipe::Recipe;
        use crate::data::synthetic::{GeneratorSpec, SyntheticSpec};
        let device = Device::flex();
        let real = Recipe::Synthetic(SyntheticSpec {
            n: 120,
            seed: 0,
            size: 8,
            split: "train".into(),
        })
        .build(&device)
        .unwrap();
        let generated = Recipe::SyntheticGenerator(GeneratorSpec {
            n: 300,
            seed: 1,
            size: 8,
            fidelity: 0.2,
        })
        .build(&device)
        .unwrap();
        let mix = inflate_auto(&real, &generated, &device).unwrap();
        let choice = strength_for(&mix, &device).unwrap();
        assert_eq!(choice, measure(&real, &generated, &device).unwrap());
        assert_eq!(mix.len(), 120 * choice.dup + 300);
        let json = serde_json::to_string(&Recipe::of(&mix).unwrap()).unwrap();
        let rebuilt = serde_json::from_str::<Recipe>(&json)
            .unwrap()
            .build(&device)
            .unwrap();
        assert_eq!(rebuilt.fingerprint(), mix.fingerprint());
        assert_eq!(rebuilt.attributes(), mix.attributes());
        let tampered = json.replace(
            &format!("\"strength\":{}", choice.strength),
            "\"strength\":0.123",
        );
        assert_ne!(tampered, json);
        let read = serde_json::from_str::<Recipe>(&tampered)
            .unwrap()
            .build(&device)
            .unwrap();
        assert_eq!(strength_for(&read, &device).unwrap().strength, 0.123);
        // A fixed-dup inflation has no record; its strength is measured.
        let fixed = recipe::inflate(&real, &generated, 4).unwrap();
        assert!(fixed.inflation().unwrap().auto.is_none());
        assert_eq!(
            strength_for(&fixed, &device).unwrap().strength,
            choice.strength
        );
        // A subset of an adaptive inflation keeps its choice; a subset of a fixed one cannot be
        // measured any more and says so; an empty set is an error, not a panic.
        let part = recipe::subset_random(&mix, 50, 0).unwrap();
        assert_eq!(strength_for(&part, &device).unwrap(), choice);
        let fixed_part = recipe::subset_random(&fixed, 50, 0).unwrap();
        let err = strength_for(&fixed_part, &device).unwrap_err().to_string();
        assert!(err.contains("call aug::auto on the inflated set"), "{err}");
        // (`subset` refuses n: 0; an empty view can still be made in Rust.)
        let empty = real.select(&[], "none");
        let err = measure(&empty, &generated, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("real 0"), "{err}");
    }

    /// Monotone where the derivation says so: a larger gap never lowers dup nor raises the
    /// strength; more generated data never raises the strength.
    #[test]
    fn the_rule_moves_the_right_way() {
        let mut last = choose(1000, 10_000, 0.0).unwrap();
        for i in 1..=100 {
            let c = choose(1000, 10_000, i as f64 / 100.0).unwrap();
            assert!(
                c.dup >= last.dup && c.strength >= last.strength,
                "{c:?} {last:?}"
            );
            last = c;
        }
        let mut last = choose(1000, 0, 0.3).unwrap();
        for n_generated in [100, 1000, 10_000, 100_000] {
            let c = choose(1000, n_generated, 0.3).unwrap();
            assert!(c.strength <= last.strength, "{c:?} {last:?}");
            last = c;
        }
    }

    /// γ again from the exact toy: the bound-minimising radius over n = 50 … 400 (seeds 0–2,
    /// a fine geometric grid of radii) against n on log–log axes. Would catch a constant that
    /// does not come from the toy (a slope of −1/2, say, or a sign error).
    #[test]
    fn the_strength_exponent_comes_from_the_toy() {
        use rayon::prelude::*;
        let ns = [50usize, 100, 200, 400];
        let radii: Vec<f64> = (0..48).map(|i| 0.4 * 1.04f64.powi(i)).collect();
        let points: Vec<(f64, f64)> = ns
            .iter()
            .flat_map(|&n| (0..3u64).map(move |seed| (n, seed)))
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(n, seed)| {
                let best = radii
                    .iter()
                    .map(|&r| {
                        let t = toy(&ToyConfig {
                            n,
                            r,
                            seed,
                            ..ToyConfig::default()
                        })
                        .unwrap();
                        (t.bound, r)
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .unwrap();
                ((n as f64).ln(), best.1.ln())
            })
            .collect();
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / points.len() as f64;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
        let slope = points
            .iter()
            .map(|p| (p.0 - mean_x) * (p.1 - mean_y))
            .sum::<f64>()
            / points.iter().map(|p| (p.0 - mean_x).powi(2)).sum::<f64>();
        assert!(
            (slope + STRENGTH_EXPONENT).abs() < 0.05,
            "fitted slope {slope}, constant −{STRENGTH_EXPONENT}"
        );
    }
}
