//! Estimates of the theory's quantities on image data, where the augmentation graph cannot be
//! written down: draw `views` augmentations of `n` labelled images, embed them in a fixed
//! feature space (normalised pixels), and
//! - λ_{k+1} (k = the number of classes): the (k+1)-th smallest eigenvalue of the normalised
//!   Laplacian of the graph over the views whose edges join each view to its `neighbours`
//!   nearest views (Euclidean, made symmetric) and the views of one image to each other (they
//!   share a natural sample, the augmentation graph's definition); a sparse eigensolver
//!   (`linalg::top_eigenvalues`) finds it;
//! - α: how often an augmented view changes class, judged by its `judge_k` nearest
//!   un-augmented images among the other sampled images (a majority vote of their labels).
//!   The judge errs on un-augmented images too; `alpha_clean` is its error on them (each image
//!   judged by the others), the floor under which `alpha` cannot be read.
//!
//! Each of `resamples` draws (another sample of images and views) gives one value; the result
//! holds their mean and standard deviation.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::fused::augment_and_normalize;
use crate::augment::{AugSpec, ViewPair, ViewParams};
use crate::data::Dataset;
use crate::data::loader::gather;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::rng::Rng;

use super::nearest;

/// Largest number of views (n × views): the graph's nearest neighbours are found by brute
/// force, O((n·views)²) distances.
pub const MAX_VIEWS: usize = 20_000;

/// Settings of `estimate`: the options of `theory::estimate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
pub struct EstimateConfig {
    /// Labelled images per resample.
    #[option(default = 1000)]
    pub n: usize,
    /// Augmented views per image, alternating the pair's two views.
    #[option(default = 2)]
    pub views: usize,
    /// Nearest views each view is joined to in the graph.
    #[option(default = 10)]
    pub neighbours: usize,
    /// Nearest un-augmented images whose labels judge a view's class.
    #[option(default = 10)]
    pub judge_k: usize,
    /// Independent draws of images and views; mean and std over them.
    #[option(default = 3)]
    pub resamples: usize,
    /// Random seed of the image and view draws; resample r uses a stream derived from it and r.
    pub seed: u64,
}

/// One resample's values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Fraction of augmented views the judge assigns to another class than their image's.
    pub alpha: f64,
    /// Fraction of un-augmented images the judge misclassifies (the floor under `alpha`).
    pub alpha_clean: f64,
    /// The k + 2 smallest eigenvalues of the normalised Laplacian, ascending.
    pub lambda: Vec<f64>,
    /// Whether the eigensolver converged.
    pub converged: bool,
}

/// α and λ_{k+1} over the resamples: means, standard deviations and each resample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Number of classes of the data.
    pub k: usize,
    /// Mean `alpha` over the resamples.
    pub alpha: f64,
    /// Sample standard deviation of `alpha` over the resamples (0 with one resample).
    pub alpha_std: f64,
    /// Mean `alpha_clean` over the resamples.
    pub alpha_clean: f64,
    /// Mean λ_{k+1}, the (k+1)-th smallest Laplacian eigenvalue, over the resamples.
    pub lambda_k1: f64,
    /// Sample standard deviation of λ_{k+1} over the resamples (0 with one resample).
    pub lambda_k1_std: f64,
    /// Each resample's values.
    pub samples: Vec<Sample>,
}

impl EstimateConfig {
    fn validate(&self, data: &Dataset) -> Result<()> {
        let labelled = data.labeled_count();
        if self.n < 2 {
            return Err(Error::config(
                "n",
                format!(
                    "is {} but must be at least 2: each image's class is judged by the labels of the other images drawn",
                    self.n
                ),
            ));
        }
        if self.n > labelled {
            return Err(Error::config(
                "n",
                format!(
                    "is {} but the data has only {labelled} labelled images; use an `n` of at most {labelled}",
                    self.n
                ),
            ));
        }
        if self.views == 0 || self.n * self.views > MAX_VIEWS {
            return Err(Error::config(
                "views",
                format!(
                    "n × views is {} but must be between 1 and {MAX_VIEWS} (the neighbour search is brute force)",
                    self.n * self.views
                ),
            ));
        }
        if self.neighbours == 0 || self.neighbours >= self.n * self.views {
            return Err(Error::config(
                "neighbours",
                format!(
                    "is {} but must be between 1 and n × views − 1",
                    self.neighbours
                ),
            ));
        }
        if self.judge_k == 0 || self.judge_k >= self.n {
            return Err(Error::config(
                "judge_k",
                format!("is {} but must be between 1 and n − 1", self.judge_k),
            ));
        }
        if self.resamples == 0 {
            return Err(Error::config("resamples", "must be at least 1"));
        }
        if data.classes() < 1 {
            return Err(Error::Data("theory::estimate needs labelled data".into()));
        }
        Ok(())
    }
}

/// The feature space the views are compared in.
pub enum Space<'a> {
    /// Normalised pixels.
    Pixels,
    /// A frozen encoder's features (L2-normalised, so distances follow cosine similarity, as
    /// `eval::knn` compares them), computed on `device`.
    Encoder {
        /// The frozen backbone.
        backbone: &'a crate::model::ResNet,
        /// Device the backbone runs on.
        device: &'a burn::tensor::Device,
    },
}

impl Space<'_> {
    /// Rows of `dim` normalised NCHW floats (`h`×`w` images) → rows of this space, and their
    /// width.
    fn embed(&self, rows: Vec<f32>, h: usize, w: usize) -> (Vec<f32>, usize) {
        let dim = 3 * h * w;
        match self {
            Space::Pixels => (rows, dim),
            Space::Encoder { backbone, device } => {
                let n = rows.len() / dim;
                let mut out = Vec::new();
                let mut width = 0;
                for chunk in rows.chunks(256 * dim) {
                    let b = chunk.len() / dim;
                    let x = crate::tensor::floats(chunk.to_vec(), [b, 3, h, w], device);
                    let f = backbone.forward(x);
                    width = f.dims()[1];
                    out.extend(crate::tensor::read_floats(f));
                }
                for row in out.chunks_mut(width.max(1)) {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    row.iter_mut().for_each(|v| *v /= norm);
                }
                debug_assert_eq!(out.len(), n * width);
                (out, width)
            }
        }
    }
}

/// Estimates α and λ_{k+1} of `aug` on the labelled images of `data`, in pixel space.
pub fn estimate(data: &Dataset, aug: &ViewPair, cfg: &EstimateConfig) -> Result<Estimate> {
    estimate_in(data, aug, cfg, &Space::Pixels)
}

/// Estimates α and λ_{k+1} of `aug` on the labelled images of `data`, in `space`.
pub fn estimate_in(
    data: &Dataset,
    aug: &ViewPair,
    cfg: &EstimateConfig,
    space: &Space,
) -> Result<Estimate> {
    cfg.validate(data)?;
    let k = data.classes();
    let labelled: Vec<usize> = (0..data.len()).filter(|&i| data.label(i) >= 0).collect();
    let samples: Vec<Sample> = (0..cfg.resamples)
        .map(|r| resample(data, &labelled, aug, cfg, k, r as u64, space))
        .collect();
    let stats = |f: &dyn Fn(&Sample) -> f64| {
        let values: Vec<f64> = samples.iter().map(f).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64
        } else {
            0.0
        };
        (mean, var.sqrt())
    };
    let (alpha, alpha_std) = stats(&|s| s.alpha);
    let (alpha_clean, _) = stats(&|s| s.alpha_clean);
    let (lambda_k1, lambda_k1_std) = stats(&|s| s.lambda[k]);
    Ok(Estimate {
        k,
        alpha,
        alpha_std,
        alpha_clean,
        lambda_k1,
        lambda_k1_std,
        samples,
    })
}

fn resample(
    data: &Dataset,
    labelled: &[usize],
    aug: &ViewPair,
    cfg: &EstimateConfig,
    k: usize,
    r: u64,
    space: &Space,
) -> Sample {
    let mut rng = Rng::derive(cfg.seed, &[r]);
    let mut pool = labelled.to_vec();
    rng.shuffle(&mut pool);
    pool.truncate(cfg.n);
    let batch = gather(data, &pool);
    let [h, w, _] = batch.shape;
    let labels = batch.labels.clone();
    // Un-augmented images, normalised like the first view.
    let plain = vec![ViewParams::identity(h, w); cfg.n];
    let (clean, dim) = space.embed(augment_and_normalize(&batch, &plain, &aug.views[0]), h, w);
    // Views: view v of image i is row v·n + i.
    let mut views = Vec::with_capacity(cfg.n * cfg.views * 3 * h * w);
    for v in 0..cfg.views {
        let spec: &AugSpec = &aug.views[v % 2];
        let params: Vec<ViewParams> = (0..cfg.n)
            .map(|_| ViewParams::sample(spec, &mut rng, h, w))
            .collect();
        views.extend(augment_and_normalize(&batch, &params, spec));
    }
    let (views, _) = space.embed(views, h, w);
    let m = cfg.n * cfg.views;

    // α: each view judged by the nearest un-augmented other images.
    let judge = |x: &[f32], own: usize| -> i32 {
        let nearest = nearest(&clean, dim, x, cfg.judge_k, |j| j != own);
        let mut votes = vec![0usize; k];
        for j in nearest {
            votes[labels[j] as usize] += 1;
        }
        // Ties go to the smallest label.
        (0..k)
            .max_by_key(|&c| (votes[c], std::cmp::Reverse(c)))
            .unwrap_or(0) as i32
    };
    let wrong_views = (0..m)
        .into_par_iter()
        .filter(|&row| {
            let own = row % cfg.n;
            judge(&views[row * dim..(row + 1) * dim], own) != labels[own]
        })
        .count();
    let wrong_clean = (0..cfg.n)
        .into_par_iter()
        .filter(|&i| judge(&clean[i * dim..(i + 1) * dim], i) != labels[i])
        .count();

    // The graph over the views.
    let neighbour_lists: Vec<Vec<usize>> = (0..m)
        .into_par_iter()
        .map(|row| {
            nearest(
                &views,
                dim,
                &views[row * dim..(row + 1) * dim],
                cfg.neighbours,
                |j| j != row,
            )
        })
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); m];
    for (row, list) in neighbour_lists.iter().enumerate() {
        for &j in list {
            edges[row].push(j);
            edges[j].push(row);
        }
        for v in 0..cfg.views {
            let twin = v * cfg.n + row % cfg.n;
            if twin != row {
                edges[row].push(twin);
            }
        }
    }
    for list in &mut edges {
        list.sort_unstable();
        list.dedup();
    }
    let (lambda, converged) = graph_spectrum(&edges, k + 2, r);
    Sample {
        alpha: wrong_views as f64 / m as f64,
        alpha_clean: wrong_clean as f64 / cfg.n as f64,
        lambda,
        converged,
    }
}

/// The `count` smallest eigenvalues (ascending) of the normalised Laplacian of an unweighted
/// graph given as symmetric adjacency lists (no self-loops), and whether the solver converged.
/// Isolated nodes contribute eigenvalue 0 (their own component).
pub fn graph_spectrum(edges: &[Vec<usize>], count: usize, seed: u64) -> (Vec<f64>, bool) {
    let m = edges.len();
    let inv_sqrt: Vec<f64> = edges
        .iter()
        .map(|e| {
            if e.is_empty() {
                0.0
            } else {
                1.0 / (e.len() as f64).sqrt()
            }
        })
        .collect();
    let isolated = edges.iter().filter(|e| e.is_empty()).count();
    // (I + D^{-1/2} W D^{-1/2}) / 2 is positive semi-definite, and its largest eigenvalues are
    // 1 − λ/2 for the Laplacian's smallest λ. An isolated node's row is ½·x: eigenvalue ½,
    // which would read λ = 1; its λ is 0, so isolated nodes are counted apart.
    let apply = |x: &[f64], b: usize, y: &mut [f64]| {
        y.par_chunks_mut(b).enumerate().for_each(|(i, yi)| {
            for c in 0..b {
                yi[c] = 0.5 * x[i * b + c];
            }
            for &j in &edges[i] {
                let wij = 0.5 * inv_sqrt[i] * inv_sqrt[j];
                for c in 0..b {
                    yi[c] += wij * x[j * b + c];
                }
            }
        });
    };
    let (top, converged) = crate::linalg::top_eigenvalues(apply, m, count, 1e-7, 5000, seed);
    let mut lambda: Vec<f64> = std::iter::repeat_n(0.0, isolated.min(count))
        .chain(top.iter().map(|mu| (2.0 - 2.0 * mu).max(0.0)))
        .collect();
    lambda.sort_by(|a, b| a.total_cmp(b));
    lambda.truncate(count);
    (lambda, converged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::AugSpec;

    /// Images made of a fixed random pattern per cluster plus a little noise; `cluster_of`
    /// maps image i to its pattern, `label_of` to its label.
    fn patterned(
        n: usize,
        patterns: usize,
        cluster_of: impl Fn(usize) -> usize,
        label_of: impl Fn(usize) -> i32,
        classes: usize,
    ) -> Dataset {
        let side = 8;
        let per = side * side * 3;
        let mut rng = Rng::new(5);
        let templates: Vec<Vec<f64>> = (0..patterns)
            .map(|_| (0..per).map(|_| rng.range(30.0, 225.0)).collect())
            .collect();
        let mut pixels = Vec::with_capacity(n * per);
        for i in 0..n {
            let t = &templates[cluster_of(i)];
            pixels.extend(t.iter().map(|v| (v + rng.range(-4.0, 4.0)).round() as u8));
        }
        let labels = (0..n).map(label_of).collect();
        let store = crate::data::ImageStore::new(
            "patterns".into(),
            "patterns".into(),
            [side, side, 3],
            classes,
            pixels,
            labels,
        )
        .unwrap();
        Dataset::from_store(store)
    }

    fn identity() -> ViewPair {
        ViewPair::symmetric("identity", AugSpec::identity())
    }

    fn cfg() -> EstimateConfig {
        EstimateConfig {
            n: 120,
            views: 2,
            neighbours: 5,
            judge_k: 5,
            resamples: 2,
            seed: 0,
        }
    }

    /// Three well-separated clusters, one per class: three components (λ₁..λ₃ = 0), each
    /// internally connected, so λ_{k+1} is well above 0 (about 0.1 for these sparse 5-nearest-
    /// neighbour graphs; the split case below is 0 to 1e-6); the judge never errs.
    #[test]
    fn separated_classes_connect_within_and_judge_right() {
        let data = patterned(120, 3, |i| i % 3, |i| (i % 3) as i32, 3);
        let est = estimate(&data, &identity(), &cfg()).unwrap();
        assert!(est.samples.iter().all(|s| s.converged));
        for s in &est.samples {
            assert!(s.lambda[..3].iter().all(|&v| v < 1e-6), "{:?}", s.lambda);
        }
        assert!(est.lambda_k1 > 0.05, "{est:?}");
        assert_eq!(est.alpha, 0.0);
        assert_eq!(est.alpha_clean, 0.0);
    }

    /// Each of the three classes split into two far-apart clusters: six components, so
    /// λ_{k+1} = λ₄ = 0, the graph's sign that the augmentation does not connect a class.
    #[test]
    fn split_classes_have_no_connectivity() {
        let data = patterned(120, 6, |i| i % 6, |i| (i % 3) as i32, 3);
        let est = estimate(&data, &identity(), &cfg()).unwrap();
        assert!(est.lambda_k1 < 1e-6, "{est:?}");
    }

    /// Labels that ignore the images: the judge is right by chance only (1/k), so α is near
    /// 1 − 1/k. With labels that follow the clusters, a mild brightness jitter keeps every view
    /// nearest its own cluster (α ≈ 0), while crops and flips of these pixel-noise patterns
    /// move views across clusters in pixel space (α clearly larger): α grows with strength.
    #[test]
    fn alpha_follows_the_labels() {
        let mut rng = Rng::new(9);
        let random: Vec<i32> = (0..240).map(|_| rng.below(3) as i32).collect();
        let data = patterned(240, 3, |i| i % 3, |i| random[i], 3);
        let est = estimate(&data, &identity(), &EstimateConfig { n: 240, ..cfg() }).unwrap();
        assert!((est.alpha - 2.0 / 3.0).abs() < 0.12, "{est:?}");
        // The judge of an un-augmented image leaves the image itself out (else it would vote
        // for its own label and err far less than 2/3).
        assert!((est.alpha_clean - 2.0 / 3.0).abs() < 0.12, "{est:?}");
        let data = patterned(240, 3, |i| i % 3, |i| (i % 3) as i32, 3);
        let mild = ViewPair::symmetric(
            "mild",
            AugSpec {
                jitter_prob: 1.0,
                jitter: [0.1, 0.0, 0.0, 0.0],
                ..AugSpec::identity()
            },
        );
        let mild = estimate(&data, &mild, &EstimateConfig { n: 240, ..cfg() }).unwrap();
        assert!(mild.alpha < 0.05, "{mild:?}");
        let strong = ViewPair::symmetric(
            "strong",
            AugSpec {
                crop_min: 0.3,
                flip_prob: 0.5,
                ..AugSpec::identity()
            },
        );
        let strong = estimate(&data, &strong, &EstimateConfig { n: 240, ..cfg() }).unwrap();
        assert!(strong.alpha > mild.alpha + 0.1, "{strong:?}");
    }

    /// The sparse path against the dense eigenvalues of the same graph (a ring of cliques),
    /// and an isolated node counted as its own component.
    #[test]
    fn graph_spectrum_matches_dense() {
        let m = 40;
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); m];
        let mut link = |a: usize, b: usize| {
            edges[a].push(b);
            edges[b].push(a);
        };
        for c in 0..4 {
            for a in 0..9 {
                for b in a + 1..9 {
                    link(c * 9 + a, c * 9 + b);
                }
            }
            link(c * 9, ((c + 1) % 4) * 9 + 1);
        }
        link(36, 37);
        link(37, 38);
        for list in &mut edges {
            list.sort_unstable();
            list.dedup();
        }
        // Node 39 is isolated: drop it for the dense reference and add its 0 by hand.
        let n = 39;
        let mut w = vec![0.0; n * n];
        for (i, list) in edges.iter().enumerate().take(n) {
            for &j in list {
                w[i * n + j] = 1.0;
            }
        }
        let deg: Vec<f64> = (0..n).map(|i| w[i * n..(i + 1) * n].iter().sum()).collect();
        let mut lap = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                lap[i * n + j] =
                    if i == j { 1.0 } else { 0.0 } - w[i * n + j] / (deg[i] * deg[j]).sqrt();
            }
        }
        let mut dense = vec![0.0];
        dense.extend(crate::linalg::symmetric_eigenvalues(&lap, n));
        let (sparse, converged) = graph_spectrum(&edges, 5, 0);
        assert!(converged);
        for (a, b) in sparse.iter().zip(&dense) {
            assert!((a - b).abs() < 1e-6, "{sparse:?} vs {:?}", &dense[..5]);
        }
    }

    #[test]
    fn bad_options_name_the_key() {
        let data = patterned(30, 3, |i| i % 3, |i| (i % 3) as i32, 3);
        for (bad, key) in [
            (EstimateConfig { n: 31, ..cfg() }, "`n`"),
            (
                EstimateConfig {
                    n: 30,
                    judge_k: 30,
                    ..cfg()
                },
                "`judge_k`",
            ),
            (
                EstimateConfig {
                    n: 30,
                    neighbours: 0,
                    ..cfg()
                },
                "`neighbours`",
            ),
            (
                EstimateConfig {
                    n: 30,
                    resamples: 0,
                    ..cfg()
                },
                "`resamples`",
            ),
        ] {
            let msg = estimate(&data, &identity(), &bad).unwrap_err().to_string();
            assert!(msg.contains(key), "{msg}");
        }
        // Too few and too many images are two messages, each with its bound (n = 1 read "is 1
        // but the data has 30 labelled images (at least 2 needed)").
        let few = estimate(&data, &identity(), &EstimateConfig { n: 1, ..cfg() })
            .unwrap_err()
            .to_string();
        assert!(
            few.contains("`n`")
                && few.contains("is 1 but must be at least 2")
                && !few.contains("30"),
            "{few}"
        );
        let many = estimate(&data, &identity(), &EstimateConfig { n: 31, ..cfg() })
            .unwrap_err()
            .to_string();
        assert!(
            many.contains("is 31")
                && many.contains("only 30 labelled")
                && many.contains("at most 30"),
            "{many}"
        );
    }
}
