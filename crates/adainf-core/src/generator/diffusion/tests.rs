//! Tests of the DDPM generator against independent references: an f64 transcription of the
//! schedule written differently (sums of logs), and values computed by the PyTorch peer
//! (`scripts/ddpm_peer.py fixtures tests/fixtures/ddpm_fixtures.json`).

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde_json::Value;

use super::*;
use crate::tensor::read_floats;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/ddpm_fixtures.json"
    );
    let text = std::fs::read_to_string(path).expect("the fixture file is in the repository");
    serde_json::from_str(&text).expect("the fixture file parses")
}

fn vec_f32(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn vec_usize(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

fn tensor4(v: &Value, shape: [usize; 4], device: &Device) -> Tensor<4> {
    floats(vec_f32(v), shape, device)
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// ᾱ_t as exp(Σ ln(1 − β_s)) with β_s written as 1e-4 + s·(0.02 − 1e-4)/(T − 1), and the
/// posterior variance as β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t): a transcription of the paper.
#[test]
fn schedule_matches_an_f64_transcription_and_torch() {
    let t_max = 1000;
    let s = Schedule::linear(t_max).unwrap();
    let beta = |t: usize| 1e-4 + t as f64 * (0.02 - 1e-4) / (t_max - 1) as f64;
    let abar = |t: usize| (0..=t).map(|s| (1.0 - beta(s)).ln()).sum::<f64>().exp();
    for t in [0, 1, 5, 250, 999] {
        assert!((s.betas[t] - beta(t)).abs() < 1e-15);
        assert!(
            (s.alpha_bars[t] / abar(t) - 1.0).abs() < 1e-12,
            "alpha_bar[{t}]"
        );
        let prev = if t == 0 { 1.0 } else { abar(t - 1) };
        let pv = beta(t) * (1.0 - prev) / (1.0 - abar(t));
        assert!(
            (s.posterior_variance[t] - pv).abs() <= 1e-12 * pv.max(1e-30),
            "posterior variance [{t}]: {} vs {pv}",
            s.posterior_variance[t]
        );
    }
    assert_eq!(s.posterior_variance[0], 0.0);
    let f = fixture();
    let fs = &f["schedule"];
    for (k, &t) in vec_usize(&fs["t"]).iter().enumerate() {
        let a = fs["alpha_bar"][k].as_f64().unwrap();
        let p = fs["posterior_variance"][k].as_f64().unwrap();
        assert!(
            (s.alpha_bars[t] / a - 1.0).abs() < 1e-12,
            "torch alpha_bar[{t}]"
        );
        assert!(
            (s.posterior_variance[t] - p).abs() <= 1e-12 * p.max(1e-30),
            "torch posterior variance [{t}]"
        );
    }
    assert!(Schedule::linear(0).is_err());
}

#[test]
fn q_sample_matches_torch() {
    let f = fixture();
    let device = Device::flex();
    let shape: [usize; 4] = vec_usize(&f["shape"]).try_into().unwrap();
    let q = &f["q_sample"];
    let s = Schedule::linear(1000).unwrap();
    let abs: Vec<f64> = vec_usize(&q["t"])
        .iter()
        .map(|&t| s.alpha_bars[t])
        .collect();
    let got = q_sample(
        tensor4(&q["x0"], shape, &device),
        tensor4(&q["noise"], shape, &device),
        &abs,
    );
    assert_close(&read_floats(got), &vec_f32(&q["x_t"]), 1e-5, "q_sample");
}

#[test]
fn ddpm_and_ddim_steps_match_torch() {
    let f = fixture();
    let device = Device::flex();
    let shape: [usize; 4] = vec_usize(&f["shape"]).try_into().unwrap();
    let st = &f["steps"];
    let x = tensor4(&st["x_t"], shape, &device);
    let eps = tensor4(&st["eps"], shape, &device);
    let z = tensor4(&st["noise"], shape, &device);
    let s = Schedule::linear(1000).unwrap();
    for case in st["cases"].as_array().unwrap() {
        let t = case["t"].as_u64().unwrap() as usize;
        let prev = case["t_prev"].as_u64().map(|p| p as usize);
        let (ab, abp) = (s.alpha_bar(Some(t)), s.alpha_bar(prev));
        let what = format!("t {t} → {prev:?}");
        let ddpm = ddpm_step(x.clone(), eps.clone(), ab, abp, z.clone());
        assert_close(
            &read_floats(ddpm),
            &vec_f32(&case["ddpm"]),
            2e-5,
            &format!("ddpm {what}"),
        );
        for (eta, key) in [(0.0, "ddim_eta0"), (1.0, "ddim_eta1")] {
            let ddim = ddim_step(x.clone(), eps.clone(), ab, abp, eta, z.clone());
            assert_close(
                &read_floats(ddim),
                &vec_f32(&case[key]),
                2e-5,
                &format!("{key} {what}"),
            );
        }
    }
}

#[test]
fn time_embedding_matches_torch() {
    let f = fixture();
    let device = Device::flex();
    let te = &f["time_embedding"];
    let t = floats(vec_f32(&te["t"]), [4], &device);
    let dim = te["dim"].as_u64().unwrap() as usize;
    let got = timestep_embedding(t, dim);
    assert_eq!(got.dims(), [4, dim]);
    assert_close(
        &read_floats(got),
        &vec_f32(&te["values"]),
        1e-5,
        "embedding",
    );
}

/// The standard model (channels 128, [1, 2, 2, 2], attention at 16, 32×32) has exactly the
/// PyTorch peer's parameter count (GroupNorm keeps no running statistics, so burn counts the
/// same tensors), and so does the CPU-sized channels 32; it takes one training step on flex.
#[test]
fn standard_model_has_the_peers_parameter_count_and_trains_one_step() {
    let f = fixture();
    let device = Device::flex().autodiff();
    let cfg = UNetConfig::standard(128, 32);
    let model = cfg.init(&device).unwrap();
    assert_eq!(
        model.num_params() as u64,
        f["param_count"]["count"].as_u64().unwrap()
    );
    let small = UNetConfig::standard(32, 32).init(&device).unwrap();
    assert_eq!(
        small.num_params() as u64,
        f["param_count"]["channels_32"].as_u64().unwrap()
    );
    let mut trainer = Trainer::new(
        model,
        Schedule::linear(1000).unwrap(),
        TrainSettings {
            lr: 2e-4,
            ema: 0.9999,
        },
    );
    let mut rng = Rng::new(0);
    let x0 = host_normal(&mut rng, [1, 3, 32, 32], &device).clamp(-1.0, 1.0);
    let loss = read_floats(trainer.step(x0, &mut rng))[0];
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
}

/// A full forward pass with weights exported from torch gives torch's output.
#[test]
fn forward_matches_torch_with_its_weights() {
    let f = fixture();
    let device = Device::flex();
    let fw = &f["forward"];
    let c = &fw["config"];
    let cfg = UNetConfig {
        channels: c["channels"].as_u64().unwrap() as usize,
        channel_mult: vec_usize(&c["channel_mult"]),
        res_blocks: c["res_blocks"].as_u64().unwrap() as usize,
        attention_at: vec_usize(&c["attention_at"]),
        dropout: 0.0,
        image_size: c["image_size"].as_u64().unwrap() as usize,
        image_channels: 3,
    };
    let named: HashMap<String, (Vec<usize>, Vec<f32>)> = fw["weights"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), (vec_usize(&v["shape"]), vec_f32(&v["values"]))))
        .collect();
    let model = cfg.init(&device).unwrap().load_named(&named).unwrap();
    let s = cfg.image_size;
    let x = tensor4(&fw["x"], [2, 3, s, s], &device);
    let t = floats(vec_f32(&fw["t"]), [2], &device);
    let y = model.forward(x, t);
    assert_close(&read_floats(y), &vec_f32(&fw["y"]), 2e-4, "UNet forward");
    // A missing tensor is an error, not a silently random weight.
    let mut fewer = named.clone();
    fewer.remove("conv_out.bias");
    let err = cfg.init(&device).unwrap().load_named(&fewer).unwrap_err();
    assert!(err.to_string().contains("conv_out.bias"), "{err}");
}

fn tiny() -> UNetConfig {
    UNetConfig {
        channels: 8,
        channel_mult: vec![1, 2],
        res_blocks: 1,
        attention_at: vec![4],
        dropout: 0.0,
        image_size: 8,
        image_channels: 3,
    }
}

/// Loss on fixed images, timesteps and noise (the same draw each time).
fn eval_loss(model: &UNet, s: &Schedule, x0: &Tensor<4>) -> f64 {
    let mut rng = Rng::new(99);
    (0..4)
        .map(|_| read_floats(Trainer::loss(model, s, x0.clone(), &mut rng))[0] as f64)
        .sum::<f64>()
        / 4.0
}

#[test]
fn loss_falls_on_a_tiny_set() {
    let device = Device::flex().autodiff();
    let model = crate::model::init_seeded(1, true, &device, |d| tiny().init(d).unwrap());
    let s = Schedule::linear(100).unwrap();
    // Four smooth images: gradients in x, in y, and their negatives.
    let mut v = Vec::new();
    for k in 0..4 {
        for c in 0..3 {
            for i in 0..8 {
                for j in 0..8 {
                    let g = if k % 2 == 0 { i } else { j } as f32 / 7.0 * 2.0 - 1.0;
                    v.push(if k < 2 { g } else { -g } * (1.0 - 0.2 * c as f32));
                }
            }
        }
    }
    let x0 = floats(v, [4, 3, 8, 8], &device);
    let before = eval_loss(&model, &s, &x0);
    let mut trainer = Trainer::new(model, s.clone(), TrainSettings { lr: 2e-3, ema: 0.9 });
    let mut rng = Rng::new(3);
    for _ in 0..60 {
        trainer.step(x0.clone(), &mut rng);
    }
    let after = eval_loss(&trainer.model, &s, &x0);
    assert!(after < 0.7 * before, "loss {before} → {after}");
    // The EMA moved towards the trained weights.
    let ema_loss = eval_loss(&trainer.ema.clone().fork(&device), &s, &x0);
    assert!(ema_loss < before, "EMA loss {before} → {ema_loss}");
}

#[test]
fn same_seed_gives_the_same_samples() {
    let device = Device::flex();
    let model = crate::model::init_seeded(2, false, &device, |d| tiny().init(d).unwrap());
    let s = Schedule::linear(50).unwrap();
    let draw = |seed, sampler, eta| {
        let parts = sample(
            &model,
            &s,
            [3, 8, 8],
            3,
            10,
            sampler,
            eta,
            seed,
            2,
            &device,
            |_| {},
            || false,
        )
        .unwrap();
        assert_eq!(parts.len(), 2);
        parts
            .into_iter()
            .flat_map(read_floats)
            .collect::<Vec<f32>>()
    };
    for (sampler, eta) in [
        (Sampler::Ddim, 0.0),
        (Sampler::Ddim, 1.0),
        (Sampler::Ddpm, 0.0),
    ] {
        let a = draw(7, sampler, eta);
        assert_eq!(a.len(), 3 * 3 * 64);
        assert!(a.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        assert_eq!(a, draw(7, sampler, eta), "{sampler:?} eta {eta}");
        assert_ne!(a, draw(8, sampler, eta), "{sampler:?}: seeds differ");
    }
    let too_many = sample(
        &model,
        &s,
        [3, 8, 8],
        1,
        51,
        Sampler::Ddim,
        0.0,
        0,
        1,
        &device,
        |_| {},
        || false,
    );
    assert!(too_many.unwrap_err().to_string().contains("timesteps (50)"));
}

/// A cancelled sampling stops before the next reverse step: asked before each one, it ends
/// with `Error::Cancelled` at the first `true`, with no batch reported finished.
#[test]
fn sampling_stops_at_the_next_step_once_cancelled() {
    let device = Device::flex();
    let model = crate::model::init_seeded(2, false, &device, |d| tiny().init(d).unwrap());
    let s = Schedule::linear(50).unwrap();
    let asked = std::cell::Cell::new(0usize);
    let mut finished = Vec::new();
    let out = sample(
        &model,
        &s,
        [3, 8, 8],
        4,
        10,
        Sampler::Ddim,
        0.0,
        0,
        4,
        &device,
        |done| finished.push(done),
        || {
            asked.set(asked.get() + 1);
            asked.get() == 3
        },
    );
    assert!(matches!(out, Err(Error::Cancelled)), "not cancelled");
    assert_eq!(
        asked.get(),
        3,
        "asked before each reverse step, stopped at once"
    );
    assert!(finished.is_empty(), "{finished:?}");
}

#[test]
fn configurations_the_unet_cannot_take_are_clear_errors() {
    let mut c = UNetConfig::standard(128, 30);
    let e = c.check().unwrap_err().to_string();
    assert!(e.contains("multiple of 8") && e.contains("30×30"), "{e}");
    c.image_size = 32;
    c.attention_at = vec![12];
    assert!(c.check().unwrap_err().to_string().contains("attention_at"));
    c.attention_at = vec![16];
    c.channels = 48;
    assert!(
        c.check()
            .unwrap_err()
            .to_string()
            .contains("multiple of 32")
    );
    c.channels = 16;
    assert!(c.check().is_ok());
    assert_eq!(
        Sampler::parse("euler").unwrap_err().to_string(),
        "invalid option `sampler`: unknown sampler \"euler\"; use one of ddim, ddpm"
    );
}
