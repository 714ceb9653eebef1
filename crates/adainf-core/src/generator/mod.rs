//! A classical generator that can be fitted in seconds on any image set, so inflation can be
//! studied offline on real data: PCA to `pca_dims` dimensions (randomised subspace iteration,
//! the large products on the device), a Gaussian mixture with diagonal covariances fitted by
//! EM in that space, and samples mapped back to pixels and clamped to u8. It is a weak
//! generator (smooth, low-detail samples): the regime in which the paper warns that inflation
//! can hurt. `frechet` gives a documented quality number: the Fréchet distance between two sets
//! in the PCA space of the first (the FID formula without an Inception network).
//! `replay` makes a set again from its recipe (`data::recipe::Recipe::build`), fitting and
//! sampling generators where the recipe says so.

pub mod diffusion;
pub mod replay;

use burn::tensor::{Device, Tensor};

use crate::data::loader::{gather, sequential_batches};
use crate::data::{Dataset, ImageStore, UNLABELED, hash_hex};
use crate::error::{Error, Result};
use crate::linalg::{matmul, orthonormalize_columns, sqrt_psd, symmetric_eigen, transpose};
use crate::rng::Rng;
use crate::tensor::{floats, read_floats};

pub use crate::data::recipe::GmmConfig;

/// A fitted PCA basis: `mean` (D) and `basis` (D×k, orthonormal columns), row-major.
pub struct Pca {
    /// Mean image, D values in [0, 1].
    pub mean: Vec<f32>,
    /// D×k basis, row-major, orthonormal columns.
    pub basis: Vec<f64>,
    /// Number of components k.
    pub dims: usize,
    /// Values per image D (height × width × channels).
    pub input_dim: usize,
    /// Fraction of the pixel variance the `dims` components explain.
    pub explained: f64,
}

/// A fitted generator: a diagonal-covariance Gaussian mixture in a PCA space of the pixels.
pub struct Gmm {
    /// The PCA the mixture lives in.
    pub pca: Pca,
    /// Mixture weights, one per component, summing to 1.
    pub weights: Vec<f64>,
    /// Component means in PCA coordinates, one k-vector per component.
    pub means: Vec<Vec<f64>>,
    /// Component diagonal variances in PCA coordinates, one k-vector per component.
    pub vars: Vec<Vec<f64>>,
    /// Image shape [height, width, channels] of the fitted data and of the samples.
    pub shape: [usize; 3],
    /// Number of classes of the fitted data, carried over to the (unlabelled) samples.
    pub classes: usize,
    /// Hash of the fitted data's fingerprint and the config; enters the samples' fingerprints.
    pub fingerprint: String,
    /// Mean log-likelihood per fitted image in PCA space, from the last E-step.
    pub log_likelihood: f64,
}

/// Up to `max` evenly spaced images of `data` as an [n, D] tensor in [0, 1].
fn pixel_matrix(data: &Dataset, max: usize, device: &Device) -> Tensor<2> {
    let n = data.len().min(max.max(1));
    let idx: Vec<usize> = (0..n).map(|k| k * data.len() / n).collect();
    let d: usize = data.shape().iter().product();
    let mut parts = Vec::new();
    for chunk in sequential_batches(idx.len(), 4096) {
        let sel: Vec<usize> = chunk.iter().map(|&k| idx[k]).collect();
        let hb = gather(data, &sel);
        let v: Vec<f32> = hb.pixels.iter().map(|&p| p as f32 / 255.0).collect();
        parts.push(floats(v, [sel.len(), d], device));
    }
    Tensor::cat(parts, 0)
}

fn host_matrix(v: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    floats(v.iter().map(|x| *x as f32).collect(), [rows, cols], device)
}

/// PCA of `x` [n, D] by randomised subspace iteration (4 power iterations, 8 extra columns).
/// `key` names the option that set `dims` in errors (`pca_dims`, `dims`).
pub fn fit_pca(x: &Tensor<2>, dims: usize, key: &str, seed: u64, device: &Device) -> Result<Pca> {
    let [n, d] = x.dims();
    if dims == 0 || dims > d.min(n) {
        let limit = if n < d {
            format!("{n}, the number of images used (`max_images` and the data's size)")
        } else {
            format!("{d}, the pixels per image")
        };
        return Err(Error::config(
            key,
            format!("must be between 1 and {limit}, got {dims}"),
        ));
    }
    let mean_t = x.clone().mean_dim(0);
    let xc = x.clone() - mean_t.clone().expand([n, d]);
    let r = (dims + 8).min(d).min(n);
    let mut rng = Rng::new(seed);
    let mut q: Vec<f64> = (0..d * r).map(|_| rng.normal()).collect();
    orthonormalize_columns(&mut q, d, r);
    for _ in 0..4 {
        let z = xc
            .clone()
            .transpose()
            .matmul(xc.clone().matmul(host_matrix(&q, d, r, device)));
        q = read_floats(z).iter().map(|v| *v as f64).collect();
        orthonormalize_columns(&mut q, d, r);
    }
    let b = xc.clone().matmul(host_matrix(&q, d, r, device));
    let c: Vec<f64> = read_floats(b.clone().transpose().matmul(b))
        .iter()
        .map(|v| *v as f64 / n as f64)
        .collect();
    let (vals, vecs) = symmetric_eigen(&c, r);
    let basis_r: Vec<f64> = (0..r)
        .flat_map(|i| (0..dims).map(move |j| (i, j)))
        .map(|(i, j)| vecs[i * r + j])
        .collect();
    let basis = matmul(&q, &basis_r, d, r, dims);
    let total_var = read_floats(xc.square().sum())[0] as f64 / n as f64;
    let explained = vals.iter().take(dims).sum::<f64>() / total_var.max(1e-12);
    Ok(Pca {
        mean: read_floats(mean_t),
        basis,
        dims,
        input_dim: d,
        explained,
    })
}

impl Pca {
    /// Projections [n, dims] of `x` [n, D], on the host.
    pub fn project(&self, x: Tensor<2>, device: &Device) -> Vec<f64> {
        let [n, d] = x.dims();
        let mean = floats(self.mean.clone(), [1, d], device).expand([n, d]);
        read_floats((x - mean).matmul(host_matrix(&self.basis, d, self.dims, device)))
            .iter()
            .map(|v| *v as f64)
            .collect()
    }
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Fits the generator on `real`.
pub fn fit_gmm(real: &Dataset, cfg: &GmmConfig, device: &Device) -> Result<Gmm> {
    for (key, value) in [
        ("components", cfg.components),
        ("iterations", cfg.iterations),
        ("max_images", cfg.max_images),
    ] {
        if value == 0 {
            return Err(Error::config(key, "must be at least 1"));
        }
    }
    if real.len() < cfg.components {
        return Err(Error::config(
            "components",
            format!(
                "{} components need at least as many images; the data has {}",
                cfg.components,
                real.len()
            ),
        ));
    }
    let x = pixel_matrix(real, cfg.max_images, device);
    let pca = fit_pca(&x, cfg.pca_dims, "pca_dims", cfg.seed, device)?;
    let y = pca.project(x, device);
    let k = pca.dims;
    let n = y.len() / k;
    let row = |i: usize| &y[i * k..(i + 1) * k];
    let global_var: Vec<f64> = (0..k)
        .map(|j| (0..n).map(|i| row(i)[j].powi(2)).sum::<f64>() / n as f64)
        .collect();
    let floor: Vec<f64> = global_var.iter().map(|v| (v * 1e-3).max(1e-8)).collect();
    let mut rng = Rng::new(cfg.seed ^ 0x6A3);
    let m = cfg.components;
    let mut means: Vec<Vec<f64>> = (0..m).map(|_| row(rng.below(n)).to_vec()).collect();
    let mut vars: Vec<Vec<f64>> = vec![global_var.clone(); m];
    let mut weights = vec![1.0 / m as f64; m];
    let mut resp = vec![0.0; n * m];
    let mut log_likelihood = 0.0;
    for _ in 0..cfg.iterations {
        // E-step.
        log_likelihood = 0.0;
        let consts: Vec<f64> = (0..m)
            .map(|c| {
                weights[c].max(1e-300).ln()
                    - 0.5
                        * vars[c]
                            .iter()
                            .map(|v| (std::f64::consts::TAU * v).ln())
                            .sum::<f64>()
            })
            .collect();
        let mut logp = vec![0.0; m];
        for i in 0..n {
            let yi = row(i);
            for c in 0..m {
                logp[c] = consts[c]
                    - 0.5
                        * yi.iter()
                            .zip(&means[c])
                            .zip(&vars[c])
                            .map(|((y, mu), v)| (y - mu).powi(2) / v)
                            .sum::<f64>();
            }
            let z = log_sum_exp(&logp);
            log_likelihood += z;
            for c in 0..m {
                resp[i * m + c] = (logp[c] - z).exp();
            }
        }
        // M-step.
        for c in 0..m {
            let nk: f64 = (0..n).map(|i| resp[i * m + c]).sum::<f64>().max(1e-10);
            weights[c] = nk / n as f64;
            let mut mu = vec![0.0; k];
            for i in 0..n {
                let r = resp[i * m + c];
                for (j, y) in row(i).iter().enumerate() {
                    mu[j] += r * y;
                }
            }
            mu.iter_mut().for_each(|v| *v /= nk);
            let mut var = vec![0.0; k];
            for i in 0..n {
                let r = resp[i * m + c];
                for (j, y) in row(i).iter().enumerate() {
                    var[j] += r * (y - mu[j]).powi(2);
                }
            }
            for j in 0..k {
                var[j] = (var[j] / nk).max(floor[j]);
            }
            means[c] = mu;
            vars[c] = var;
        }
    }
    let fingerprint = hash_hex(&["gmm-v2", real.fingerprint(), &format!("{cfg:?}")]);
    Ok(Gmm {
        pca,
        weights,
        means,
        vars,
        shape: real.shape(),
        classes: real.classes(),
        fingerprint,
        log_likelihood: log_likelihood / n as f64,
    })
}

impl Gmm {
    /// `n` samples (labels -1).
    pub fn sample(&self, n: usize, seed: u64, device: &Device) -> Result<Dataset> {
        if n == 0 {
            return Err(Error::config("n", "must be at least 1"));
        }
        let k = self.pca.dims;
        let d = self.pca.input_dim;
        // The pixels (d bytes) and the label (4 bytes) of each sample must fit in memory.
        crate::data::alloc::bytes_for("n", "samples", n, d + 4)?;
        let mut rng = Rng::new(seed);
        let mut pixels = Vec::with_capacity(n * d);
        let basis_t = host_matrix(&transpose(&self.pca.basis, d, k), k, d, device);
        for chunk in sequential_batches(n, 8192) {
            let mut y = Vec::with_capacity(chunk.len() * k);
            for _ in &chunk {
                let mut u = rng.uniform();
                let c = self.weights.iter().position(|w| {
                    u -= w;
                    u < 0.0
                });
                let c = c.unwrap_or(self.weights.len() - 1);
                for j in 0..k {
                    y.push((self.means[c][j] + self.vars[c][j].sqrt() * rng.normal()) as f32);
                }
            }
            let mean = floats(self.pca.mean.clone(), [1, d], device).expand([chunk.len(), d]);
            let x = floats(y, [chunk.len(), k], device).matmul(basis_t.clone()) + mean;
            pixels.extend(
                read_floats(x.clamp(0.0, 1.0))
                    .iter()
                    .map(|v| (v * 255.0).round() as u8),
            );
        }
        let source = format!(
            "gmm_sample(n={n}, seed={seed}, components={}, pca_dims={k})",
            self.weights.len()
        );
        let fp = hash_hex(&[&self.fingerprint, &n.to_string(), &seed.to_string()]);
        let store = ImageStore::new(
            source,
            fp,
            self.shape,
            self.classes,
            pixels,
            vec![UNLABELED; n],
        )?;
        Ok(Dataset::from_store(store))
    }
}

/// Fréchet distance between `reference` and `other` in the `dims`-dimensional PCA space of
/// `reference` (pixel values in [0, 1]).
pub fn frechet(
    reference: &Dataset,
    other: &Dataset,
    dims: usize,
    max_images: usize,
    device: &Device,
) -> Result<f64> {
    if reference.shape() != other.shape() {
        return Err(Error::Data(format!(
            "cannot compare images of shape {:?} and {:?}",
            reference.shape(),
            other.shape()
        )));
    }
    let xr = pixel_matrix(reference, max_images, device);
    if max_images == 0 {
        return Err(Error::config("max_images", "must be at least 1"));
    }
    let pca = fit_pca(&xr, dims, "dims", 0, device)?;
    let stats = |y: Vec<f64>| {
        let n = y.len() / dims;
        let mu: Vec<f64> = (0..dims)
            .map(|j| (0..n).map(|i| y[i * dims + j]).sum::<f64>() / n as f64)
            .collect();
        let mut cov = vec![0.0; dims * dims];
        for i in 0..n {
            for a in 0..dims {
                let da = y[i * dims + a] - mu[a];
                for b in 0..dims {
                    cov[a * dims + b] += da * (y[i * dims + b] - mu[b]);
                }
            }
        }
        cov.iter_mut().for_each(|v| *v /= (n.max(2) - 1) as f64);
        (mu, cov)
    };
    let (m1, c1) = stats(pca.project(xr, device));
    let (m2, c2) = stats(pca.project(pixel_matrix(other, max_images, device), device));
    let s1 = sqrt_psd(&c1, dims);
    let inner = sqrt_psd(
        &matmul(&matmul(&s1, &c2, dims, dims, dims), &s1, dims, dims, dims),
        dims,
    );
    let trace = |m: &[f64]| (0..dims).map(|i| m[i * dims + i]).sum::<f64>();
    let mean_term: f64 = m1.iter().zip(&m2).map(|(a, b)| (a - b).powi(2)).sum();
    Ok((mean_term + trace(&c1) + trace(&c2) - 2.0 * trace(&inner)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{GeneratorSpec, SyntheticSpec, synthetic, synthetic_generator};

    /// Each bad option is named as the user wrote it (`iterations: 0` used to be reported as
    /// `components`, `gen::frechet`'s `dims` as `pca_dims`, `max_images: 0` as a `pca_dims`
    /// out of "1 and 1").
    #[test]
    fn bad_generator_options_name_their_own_key() {
        let device = Device::flex();
        let real = synthetic(&SyntheticSpec {
            n: 40,
            seed: 0,
            size: 8,
            split: "train".into(),
        })
        .unwrap();
        let gmm = |cfg: GmmConfig| match fit_gmm(&real, &cfg, &device) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        let base = GmmConfig {
            components: 2,
            pca_dims: 4,
            ..Default::default()
        };
        for (cfg, key) in [
            (
                GmmConfig {
                    iterations: 0,
                    ..base.clone()
                },
                "`iterations`",
            ),
            (
                GmmConfig {
                    components: 0,
                    ..base.clone()
                },
                "`components`",
            ),
            (
                GmmConfig {
                    max_images: 0,
                    ..base.clone()
                },
                "`max_images`",
            ),
            (
                GmmConfig {
                    pca_dims: 500,
                    ..base.clone()
                },
                "`pca_dims`",
            ),
        ] {
            let e = gmm(cfg);
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = frechet(&real, &real, 0, 100, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dims`") && !e.contains("pca_dims"), "{e}");
        let e = frechet(&real, &real, 4, 0, &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`max_images`"), "{e}");
    }

    #[test]
    fn pca_explains_a_low_rank_set_and_gmm_samples_look_like_the_data() {
        let device = Device::flex();
        let real = synthetic(&SyntheticSpec {
            n: 400,
            seed: 0,
            size: 8,
            split: "train".into(),
        })
        .unwrap();
        let cfg = GmmConfig {
            components: 5,
            pca_dims: 12,
            iterations: 15,
            ..Default::default()
        };
        let g = fit_gmm(&real, &cfg, &device).unwrap();
        assert!(
            g.pca.explained > 0.5 && g.pca.explained <= 1.0 + 1e-6,
            "{}",
            g.pca.explained
        );
        assert!((g.weights.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        let samples = g.sample(300, 1, &device).unwrap();
        assert_eq!(
            (samples.len(), samples.shape(), samples.label(0)),
            (300, [8, 8, 3], -1)
        );
        // Channel means close to the data's.
        let (ma, _) = real.channel_stats(1000);
        let (mb, _) = samples.channel_stats(1000);
        for (a, b) in ma.iter().zip(&mb) {
            assert!((a - b).abs() < 0.05, "{ma:?} vs {mb:?}");
        }
        // Fréchet distance: a set against itself ≈ 0; an independent draw of the same family is
        // closer than the GMM samples, which are closer than a poor simulated generator.
        let same = frechet(&real, &real, 8, 1000, &device).unwrap();
        let other = synthetic(&SyntheticSpec {
            n: 400,
            seed: 5,
            size: 8,
            split: "test".into(),
        })
        .unwrap();
        let fresh = frechet(&real, &other, 8, 1000, &device).unwrap();
        let poor = synthetic_generator(&GeneratorSpec {
            n: 400,
            seed: 2,
            size: 8,
            fidelity: 0.0,
        })
        .unwrap();
        let far = frechet(&real, &poor, 8, 1000, &device).unwrap();
        assert!(same < 1e-3, "{same}");
        assert!(fresh < far, "{fresh} vs {far}");
        assert!(
            fit_gmm(
                &real,
                &GmmConfig {
                    pca_dims: 0,
                    ..cfg.clone()
                },
                &device
            )
            .is_err()
        );
    }
}
