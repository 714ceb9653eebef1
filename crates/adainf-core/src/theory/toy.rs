//! The paper's 2-D toy (its §4.3, Figure 5), computed exactly: natural samples from two
//! isotropic Gaussians (means (±separation/2, 0), variance `variance` per axis, the classes
//! alternating), augmentation = a point uniform in the disc of radius r around the sample.
//!
//! - The ground-truth label of any point is its side of the Bayes boundary x₁ = 0 (a
//!   deterministic labeling function, as in HaoChen et al.), for natural and augmented points.
//! - The augmentation graph over the n natural samples has weight
//!   `w_ij = area(disc(x_i, r) ∩ disc(x_j, r)) / (π r²)`, the probability that an augmentation
//!   of x_i lands where x_j's can (self-loops `w_ii = 1`): the natural-sample proxy of
//!   `E[A(x|x̄)·A(x'|x̄)]` that the reference describes (§4.4).
//! - α is the probability that an augmentation crosses the boundary: over the samples
//!   (`alpha`, the mean fraction of each disc beyond x₁ = 0, a circular segment) and over the
//!   population (`alpha_population`, the same fraction integrated against the data density).
//! - λ_{k+1} (k = 2) is the third smallest eigenvalue of the graph's normalised Laplacian.
//! - `bound` is the schematic bound `α/λ_{k+1} + α` (the constants c₁ = c₂ = 1; no generated
//!   data, so no distribution-gap term); it is infinite when λ_{k+1} = 0.
//!
//! r → 0 leaves only self-loops (λ_{k+1} = 0, α = 0); r → ∞ makes every pair overlap fully
//! (λ_{k+1} → 1, the value of the complete graph with self-loops, and α → ½).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::options::Options;
use crate::rng::Rng;

/// Classes of the toy (the k of λ_{k+1}).
pub const CLASSES: usize = 2;
/// Eigenvalues below this are round-off of 0 (the matrix entries are O(1)).
const ZERO_EIGENVALUE: f64 = 1e-12;
/// Largest n: the dense eigen-decomposition is O(n³) (2,000 samples take a few seconds).
pub const MAX_SAMPLES: usize = 2000;

/// Settings of the 2-D toy: the options of `theory::toy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
pub struct ToyConfig {
    /// Natural samples, 3 to 2000.
    #[option(default = 400)]
    pub n: usize,
    /// Radius of the augmentation disc, the augmentation strength.
    #[option(default = 0.5)]
    pub r: f64,
    /// Random seed of the samples.
    pub seed: u64,
    /// Variance per axis of each Gaussian (the default is the paper's).
    #[option(default = 0.7)]
    pub variance: f64,
    /// Distance between the two means, at (±separation/2, 0) (the default is the paper's).
    #[option(default = 2.0)]
    pub separation: f64,
}

/// The toy's quantities for one configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToyResult {
    /// Number of natural samples.
    pub n: usize,
    /// Radius of the augmentation disc.
    pub r: f64,
    /// Number of classes, the k of λ_{k+1} (always 2).
    pub k: usize,
    /// Labeling error over the n samples.
    pub alpha: f64,
    /// Labeling error over the data distribution.
    pub alpha_population: f64,
    /// The k + 2 smallest eigenvalues of the normalised Laplacian, ascending.
    pub lambda: Vec<f64>,
    /// λ_{k+1}.
    pub lambda_k1: f64,
    /// α/λ_{k+1} + α (infinite when λ_{k+1} = 0).
    pub bound: f64,
}

/// Area of the intersection of two discs of radius r whose centres are d apart (a lens).
pub fn lens_area(d: f64, r: f64) -> f64 {
    if d >= 2.0 * r {
        return 0.0;
    }
    2.0 * r * r * (d / (2.0 * r)).acos() - 0.5 * d * (4.0 * r * r - d * d).sqrt()
}

/// Area of the part of a disc of radius r beyond a line at distance h ≥ 0 from its centre
/// (a circular segment).
pub fn segment_area(h: f64, r: f64) -> f64 {
    if h >= r {
        return 0.0;
    }
    r * r * (h / r).acos() - h * (r * r - h * h).sqrt()
}

/// `lens_area(d, r) / (π r²)`, the share of a disc that another disc d away covers, computed
/// from d/r alone: finite for every radius (r² overflows past r ≈ 1e154 and underflows below
/// 1e-154, which made the toy's results NaN).
pub fn lens_fraction(d: f64, r: f64) -> f64 {
    let u = d / (2.0 * r);
    if u.is_nan() || u >= 1.0 {
        return 0.0;
    }
    2.0 / PI * (u.acos() - u * (1.0 - u * u).sqrt())
}

/// `segment_area(h, r) / (π r²)`, the share of a disc beyond a line h from its centre, from
/// h/r alone (finite for every radius, as `lens_fraction`).
pub fn segment_fraction(h: f64, r: f64) -> f64 {
    let t = h / r;
    if t.is_nan() || t >= 1.0 {
        return 0.0;
    }
    (t.acos() - t * (1.0 - t * t).sqrt()) / PI
}

impl ToyConfig {
    /// Checks every option's range, naming the offending key (`adainf check` runs it on the
    /// options a script writes literally).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(key, msg));
        if self.n < CLASSES + 1 || self.n > MAX_SAMPLES {
            return bad(
                "n",
                format!(
                    "is {} but must be between {} and {MAX_SAMPLES} (λ_{{k+1}} needs k + 1 = {} samples; the eigen-decomposition is dense)",
                    self.n,
                    CLASSES + 1,
                    CLASSES + 1
                ),
            );
        }
        if !(self.r.is_finite() && self.r > 0.0) {
            return bad("r", format!("is {} but must be a positive number", self.r));
        }
        if !(self.variance.is_finite() && self.variance > 0.0) {
            return bad(
                "variance",
                format!("is {} but must be a positive number", self.variance),
            );
        }
        if !(self.separation.is_finite() && self.separation >= 0.0) {
            return bad(
                "separation",
                format!("is {} but must be a number ≥ 0", self.separation),
            );
        }
        Ok(())
    }

    /// The natural samples: class i % 2, mean (∓separation/2, 0).
    pub fn samples(&self) -> Vec<[f64; 2]> {
        let mut rng = Rng::new(self.seed);
        let sigma = self.variance.sqrt();
        (0..self.n)
            .map(|i| {
                let mean = if i % 2 == 0 { -0.5 } else { 0.5 } * self.separation;
                [mean + sigma * rng.normal(), sigma * rng.normal()]
            })
            .collect()
    }
}

/// The toy's quantities for `cfg`.
pub fn toy(cfg: &ToyConfig) -> Result<ToyResult> {
    cfg.validate()?;
    let points = cfg.samples();
    let mut result = measure(&points, cfg.r);
    result.alpha_population = alpha_population(cfg);
    Ok(result)
}

/// α, the spectrum and the bound for given natural samples (`alpha_population` left at 0).
pub fn measure(points: &[[f64; 2]], r: f64) -> ToyResult {
    let n = points.len();
    let mut w = vec![0.0; n * n];
    for i in 0..n {
        w[i * n + i] = 1.0;
        for j in 0..i {
            let d = (points[i][0] - points[j][0]).hypot(points[i][1] - points[j][1]);
            let overlap = lens_fraction(d, r);
            w[i * n + j] = overlap;
            w[j * n + i] = overlap;
        }
    }
    let spectrum = super::normalized_laplacian_eigenvalues(&w, n);
    // Round-off leaves eigenvalues that are 0 (a component each) a hair above or below it.
    let lambda: Vec<f64> = spectrum
        .iter()
        .take(CLASSES + 2)
        .map(|&v| if v < ZERO_EIGENVALUE { 0.0 } else { v })
        .collect();
    let lambda_k1 = lambda[CLASSES];
    let alpha = points
        .iter()
        .map(|p| segment_fraction(p[0].abs(), r))
        .sum::<f64>()
        / n as f64;
    let bound = if lambda_k1 > 0.0 {
        alpha / lambda_k1 + alpha
    } else {
        f64::INFINITY
    };
    ToyResult {
        n,
        r,
        k: CLASSES,
        alpha,
        alpha_population: 0.0,
        lambda,
        lambda_k1,
        bound,
    }
}

/// α over the data distribution: E[segment(|x₁|, r)] / (π r²) for x₁ from the mixture of
/// N(±separation/2, variance), by composite Simpson over |x₁| in [0, r] (the segment vanishes
/// beyond r; past 12 standard deviations of both means the density is below 1e-31).
fn alpha_population(cfg: &ToyConfig) -> f64 {
    let sigma = cfg.variance.sqrt();
    let mean = cfg.separation / 2.0;
    let density = |t: f64| {
        // In standard deviations, so that a variance near f64::MAX does not overflow 2σ².
        let g = |m: f64| (-((t - m) / sigma).powi(2) / 2.0).exp();
        (g(mean) + g(-mean)) / (2.0 * sigma * (2.0 * PI).sqrt())
    };
    let upper = cfg.r.min(mean + 12.0 * sigma);
    let intervals = 4000;
    let step = upper / intervals as f64;
    let integrand = |t: f64| density(t) * segment_fraction(t, cfg.r);
    let mut sum = integrand(0.0) + integrand(upper);
    for i in 1..intervals {
        sum += integrand(i as f64 * step) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    // Both sides of the boundary: the density of |x₁| is twice that of x₁.
    2.0 * sum * step / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// The two area formulas against counting points of a fine grid (an independent reference:
    /// no trigonometry), for several distances.
    #[test]
    fn areas_match_grid_counts() {
        let r = 1.0;
        let cells = 2000;
        let h = 2.0 * r / cells as f64;
        let grid = |inside: &dyn Fn(f64, f64) -> bool| {
            let mut count = 0usize;
            for a in 0..cells {
                for b in 0..cells {
                    let (x, y) = (-r + (a as f64 + 0.5) * h, -r + (b as f64 + 0.5) * h);
                    if x * x + y * y <= r * r && inside(x, y) {
                        count += 1;
                    }
                }
            }
            count as f64 * h * h
        };
        for d in [0.0, 0.3, 1.0, 1.7, 1.99] {
            let counted = grid(&|x, y| (x - d).powi(2) + y * y <= r * r);
            assert!(
                close(lens_area(d, r), counted, 2e-3),
                "lens d {d}: {} vs {counted}",
                lens_area(d, r)
            );
        }
        for offset in [0.0, 0.25, 0.6, 0.95] {
            let counted = grid(&|x, _| x >= offset);
            assert!(
                close(segment_area(offset, r), counted, 2e-3),
                "segment h {offset}: {} vs {counted}",
                segment_area(offset, r)
            );
        }
        assert_eq!(lens_area(2.0, 1.0), 0.0);
        assert!(close(lens_area(0.0, 1.5), PI * 2.25, 1e-12));
        assert!(close(segment_area(0.0, 2.0), PI * 2.0, 1e-12));
    }

    /// Three samples at the corners of an equilateral triangle of side d: W = I + b(J − I)
    /// with b = lens(d)/πr², so by hand the normalised Laplacian has eigenvalues 0 and
    /// 3b/(1 + 2b) (twice); two samples at distance d: 0 and 2b/(1 + b).
    #[test]
    fn spectrum_of_small_graphs_by_hand() {
        let (r, d) = (1.0, 0.8);
        let b = lens_area(d, r) / (PI * r * r);
        let tri = [[0.0, 0.0], [d, 0.0], [d / 2.0, d * 3f64.sqrt() / 2.0]];
        let res = measure(&tri, r);
        let expected = 3.0 * b / (1.0 + 2.0 * b);
        assert!(close(res.lambda[0], 0.0, 1e-12), "{:?}", res.lambda);
        assert!(close(res.lambda[1], expected, 1e-12), "{:?}", res.lambda);
        assert!(close(res.lambda_k1, expected, 1e-12), "{:?}", res.lambda);
        let w = [1.0, b, b, 1.0];
        let two = super::super::normalized_laplacian_eigenvalues(&w, 2);
        assert!(close(two[1], 2.0 * b / (1.0 + b), 1e-12), "{two:?}");
        // α by hand: a sample at x₁ = h has segment(h)/πr² of its disc across the boundary.
        let res = measure(&[[0.0, 5.0], [0.5, -5.0], [-2.0, 9.0]], 1.0);
        let want = (0.5 + segment_area(0.5, 1.0) / PI + 0.0) / 3.0;
        assert!(close(res.alpha, want, 1e-12), "{} vs {want}", res.alpha);
    }

    #[test]
    fn limits_of_the_radius() {
        let small = toy(&ToyConfig {
            n: 60,
            r: 1e-6,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(small.lambda_k1, 0.0, "only self-loops: L = 0");
        assert!(small.alpha < 1e-4 && small.alpha_population < 1e-5);
        assert!(small.bound.is_infinite());
        let large = toy(&ToyConfig {
            n: 60,
            r: 1e4,
            ..Default::default()
        })
        .unwrap();
        // Every pair overlaps almost fully: the complete graph, λ = 0, 1, 1, …
        assert!(close(large.lambda_k1, 1.0, 1e-3), "{:?}", large.lambda);
        assert!(close(large.alpha, 0.5, 1e-3) && close(large.alpha_population, 0.5, 1e-3));
        assert!(close(large.bound, 1.0, 3e-3));
    }

    /// Radii, variances and separations near the ends of f64 (r² overflowed to ∞ or
    /// underflowed to 0, and 1e308 gave NaN for α and λ) give the limits of `limits_of_the_radius`.
    #[test]
    fn extreme_options_give_finite_results() {
        let at = |r: f64, variance: f64, separation: f64| {
            let res = toy(&ToyConfig {
                n: 40,
                r,
                variance,
                separation,
                ..Default::default()
            })
            .unwrap();
            let values = [res.alpha, res.alpha_population, res.lambda_k1];
            assert!(
                values.iter().chain(&res.lambda).all(|v| v.is_finite()),
                "r {r}, variance {variance}, separation {separation}: {res:?}"
            );
            res
        };
        let huge = at(1e308, 0.7, 2.0);
        assert!(close(huge.lambda_k1, 1.0, 1e-9), "{:?}", huge.lambda);
        assert!(close(huge.alpha, 0.5, 1e-9) && close(huge.alpha_population, 0.5, 1e-9));
        let tiny = at(1e-300, 0.7, 2.0);
        assert_eq!(tiny.lambda_k1, 0.0);
        assert!(
            tiny.alpha < 1e-9 && tiny.alpha_population < 1e-9,
            "{tiny:?}"
        );
        at(0.5, 1e308, 2.0);
        at(0.5, 1e-300, 2.0);
        at(0.5, 0.7, 1.7e308);
        at(1e308, 1e308, 1e308);
        assert!(close(
            lens_fraction(0.8, 1.0),
            lens_area(0.8, 1.0) / PI,
            1e-15
        ));
        assert!(close(
            segment_fraction(0.3, 2.0),
            segment_area(0.3, 2.0) / (4.0 * PI),
            1e-15
        ));
    }

    /// The population α against a Monte Carlo simulation of the augmentation itself (draw a
    /// sample, draw a point uniform in its disc, compare sides), within 4 standard errors.
    #[test]
    fn population_alpha_matches_simulation() {
        let mut rng = Rng::new(11);
        for r in [0.3, 1.0, 2.5] {
            let cfg = ToyConfig {
                r,
                ..Default::default()
            };
            let exact = alpha_population(&cfg);
            let trials = 200_000;
            let sigma = cfg.variance.sqrt();
            let mut crossed = 0usize;
            for i in 0..trials {
                let mean = if i % 2 == 0 { -1.0 } else { 1.0 };
                let x = mean + sigma * rng.normal();
                let (dx, _) = loop {
                    let (u, v) = (rng.range(-r, r), rng.range(-r, r));
                    if u * u + v * v <= r * r {
                        break (u, v);
                    }
                };
                if (x < 0.0) != (x + dx < 0.0) {
                    crossed += 1;
                }
            }
            let simulated = crossed as f64 / trials as f64;
            let se = (simulated * (1.0 - simulated) / trials as f64).sqrt();
            assert!(
                (exact - simulated).abs() < 4.0 * se,
                "r {r}: {exact} vs {simulated} ± {se}"
            );
        }
    }

    #[test]
    fn seeded_and_checked() {
        let cfg = ToyConfig {
            n: 50,
            ..Default::default()
        };
        assert_eq!(toy(&cfg).unwrap(), toy(&cfg).unwrap());
        let other = toy(&ToyConfig {
            seed: 1,
            ..cfg.clone()
        })
        .unwrap();
        assert_ne!(toy(&cfg).unwrap().alpha, other.alpha);
        for (bad, key) in [
            (
                ToyConfig {
                    n: 2,
                    ..Default::default()
                },
                "`n`",
            ),
            (
                ToyConfig {
                    r: 0.0,
                    ..Default::default()
                },
                "`r`",
            ),
            (
                ToyConfig {
                    variance: -1.0,
                    ..Default::default()
                },
                "`variance`",
            ),
        ] {
            let msg = toy(&bad).unwrap_err().to_string();
            assert!(msg.contains(key), "{msg}");
        }
    }

    /// The samples' α against the population α: at n = 2000 the mean of the per-sample
    /// crossing fractions must be within 4 standard errors of the integral (this checks the
    /// samples' means and spread as well as the two α formulas against each other).
    #[test]
    fn sample_alpha_estimates_the_population_alpha() {
        for r in [0.4, 1.2] {
            let cfg = ToyConfig {
                n: 2000,
                r,
                seed: 5,
                ..Default::default()
            };
            let disc = PI * r * r;
            let fractions: Vec<f64> = cfg
                .samples()
                .iter()
                .map(|p| segment_area(p[0].abs(), r) / disc)
                .collect();
            let n = fractions.len() as f64;
            let mean = fractions.iter().sum::<f64>() / n;
            let sd = (fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            let exact = alpha_population(&cfg);
            assert!(
                (mean - exact).abs() < 4.0 * sd / n.sqrt(),
                "r {r}: {mean} vs {exact}"
            );
        }
    }
}
