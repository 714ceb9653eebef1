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
    );
    assert!(too_many.unwrap_err().to_string().contains("timesteps (50)"));
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

/// Trains (or loads) a generator under `dir` on flex, silently, not cancelled.
fn train_in(
    real: &crate::data::Dataset,
    cfg: &run::DiffusionConfig,
    dir: &std::path::Path,
) -> Result<run::DiffusionRun> {
    run::train(
        real,
        cfg,
        run::DiffusionContext {
            device: &Device::flex(),
            runs_dir: dir,
            progress: &mut crate::train::Silent,
            cancel: &crate::train::CancelFlag::new(),
            retry_failed: false,
        },
    )
}

/// A tiny generator without dropout: dropout masks come from the device's generator, which is
/// one per process, and the other tests of this binary draw from it in parallel, so runs that
/// must agree bit for bit here leave it out (`tests/diffusion.rs` checks a killed run with
/// dropout, alone in its process).
fn tiny_run_config() -> run::DiffusionConfig {
    run::DiffusionConfig {
        steps: 3,
        batch: 2,
        channels: 4,
        channel_mult: vec![1, 2],
        attention_at: vec![],
        dropout: 0.0,
        ..Default::default()
    }
}

fn tiny_real() -> crate::data::Dataset {
    crate::data::synthetic::synthetic(&crate::data::synthetic::SyntheticSpec {
        n: 8,
        seed: 0,
        size: 16,
        split: "train".into(),
    })
    .unwrap()
}

/// A generator is a cached run: trained once, then loaded with the same weights (the same
/// samples), its folder holding config, metrics and result; samples are a u8 dataset with
/// labels -1.
#[test]
fn a_generator_run_is_cached_and_samples_a_dataset() {
    let dir = std::env::temp_dir().join(format!("adainf-diffusion-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let device = Device::flex();
    let real = tiny_real();
    let cfg = tiny_run_config();
    let first = train_in(&real, &cfg, &dir).unwrap();
    assert!(!first.cached);
    assert_eq!(first.metrics.last().unwrap().step, 3);
    for f in ["config.json", "metrics.jsonl", "result.json", "ema.bpk"] {
        assert!(first.dir.join(f).exists(), "{f}");
    }
    let again = train_in(&real, &cfg, &dir).unwrap();
    assert!(again.cached);
    assert_eq!(again.result, first.result);
    let sc = run::SampleConfig {
        steps: 4,
        batch: 2,
        ..Default::default()
    };
    let a = first.sample(3, &sc, &device, |_| {}).unwrap();
    let b = again.sample(3, &sc, &device, |_| {}).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.shape(), [16, 16, 3]);
    let (ha, hb) = (
        crate::data::loader::gather(&a, &[0, 1, 2]),
        crate::data::loader::gather(&b, &[0, 1, 2]),
    );
    assert_eq!(ha.labels, vec![-1; 3]);
    assert_eq!(
        ha.pixels, hb.pixels,
        "the cached weights sample the same images"
    );
    // Another seed of the generator is another run.
    let other = run::DiffusionConfig { seed: 1, ..cfg };
    assert_ne!(train_in(&real, &other, &dir).unwrap().dir, first.dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Options the generator cannot take fail before anything is written.
#[test]
fn bad_generator_options_write_nothing() {
    let dir = std::env::temp_dir().join(format!("adainf-diffusion-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let real = tiny_real();
    let cases: Vec<(run::DiffusionConfig, &str)> = vec![
        (
            run::DiffusionConfig {
                timesteps: 0,
                ..tiny_run_config()
            },
            "timesteps",
        ),
        (
            run::DiffusionConfig {
                channel_mult: vec![1, 2, 2, 2, 2, 2],
                ..tiny_run_config()
            },
            "multiple of 32",
        ),
        (
            run::DiffusionConfig {
                steps: 0,
                ..tiny_run_config()
            },
            "steps",
        ),
    ];
    for (cfg, want) in cases {
        let err = train_in(&real, &cfg, &dir)
            .err()
            .expect("an error")
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(!dir.exists(), "nothing written for {want}");
    }
    let unknown: std::result::Result<run::DiffusionConfig, _> =
        serde_json::from_str(r#"{"stpes": 3}"#);
    assert!(unknown.unwrap_err().to_string().contains("stpes"));
}

/// Every parameter of a module, flattened, in visiting order.
fn weights<M: Module>(m: &M) -> Vec<f32> {
    params_of(m).into_iter().flat_map(read_floats).collect()
}

/// A progress sink that stops the run once it reports `at` steps: by the cancel flag (the run
/// checkpoints on its way out, as on Ctrl-C) or by a panic (a kill: nothing more is written).
struct StopAt {
    at: usize,
    cancel: crate::train::CancelFlag,
    kill: bool,
}

impl crate::train::Progress for StopAt {
    fn start(&mut self, _: &str, _: usize, _: bool) {}
    fn update(&mut self, step: usize, _: f64, _: f64) {
        if step == self.at {
            if self.kill {
                panic!("killed at step {step} (planted by the test)");
            }
            self.cancel.cancel();
        }
    }
    fn probe(&mut self, _: usize, _: f64) {}
    fn finish(&mut self, _: &str) {}
}

fn train_stopped(
    real: &crate::data::Dataset,
    cfg: &run::DiffusionConfig,
    dir: &std::path::Path,
    at: usize,
    kill: bool,
) -> bool {
    let cancel = crate::train::CancelFlag::new();
    let mut stop = StopAt {
        at,
        cancel: cancel.clone(),
        kill,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run::train(
            real,
            cfg,
            run::DiffusionContext {
                device: &Device::flex(),
                runs_dir: dir,
                progress: &mut stop,
                cancel: &cancel,
                retry_failed: false,
            },
        )
    }));
    match outcome {
        Err(_) => kill,
        Ok(Err(Error::Cancelled)) => !kill,
        Ok(other) => panic!("the run was not stopped: {:?}", other.map(|r| r.result)),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("adainf-diffusion-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Kill + resume gives the weights of an uninterrupted run, bit for bit (the batches, flips,
/// timesteps and noise of each step come from the step's own stream): a run cancelled after step 3
/// (checkpointed on its way out), and a run killed after step 5 with `checkpoint_every: 2`
/// (resumed from step 4, step 5 trained again), each end with the EMA weights, the metrics and
/// the samples of a run trained straight through; a finished run is sealed and keeps no
/// checkpoint.
#[test]
fn a_killed_or_cancelled_run_resumes_to_the_weights_of_an_uninterrupted_one() {
    let real = tiny_real();
    let cfg = run::DiffusionConfig {
        steps: 6,
        ema: 0.5,
        lr: 1e-3,
        checkpoint_every: 2,
        ..tiny_run_config()
    };
    let straight_dir = temp_dir("straight");
    let straight = train_in(&real, &cfg, &straight_dir).unwrap();
    assert!(crate::train::seal::is_sealed(&straight.dir));
    assert!(crate::train::checkpoint::latest(&straight.dir).is_none());
    let want = weights(&straight.model);
    let sc = run::SampleConfig {
        steps: 3,
        batch: 2,
        ..Default::default()
    };
    let want_samples = straight.sample(2, &sc, &Device::flex(), |_| {}).unwrap();
    for (name, at, kill, resumes_from) in [("cancelled", 3, false, 3), ("killed", 5, true, 4)] {
        let dir = temp_dir(name);
        assert!(train_stopped(&real, &cfg, &dir, at, kill), "{name}");
        let run_dir = dir.join(&straight.result.id);
        assert!(!crate::train::seal::is_sealed(&run_dir), "{name}");
        let ckpt =
            crate::train::checkpoint::read(&crate::train::checkpoint::latest(&run_dir).unwrap())
                .unwrap();
        assert_eq!(ckpt.step, resumes_from, "{name}");
        let resumed = train_in(&real, &cfg, &dir).unwrap();
        assert!(!resumed.cached);
        let got = weights(&resumed.model);
        assert_eq!(got.len(), want.len());
        let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(
            differing, 0,
            "{name}: {differing} EMA weights differ from the straight run's"
        );
        // The training weights changed over the run (the EMA is not the initial model).
        assert_ne!(
            weights(&resumed.model),
            weights(&crate::model::init_seeded(
                cfg.seed,
                false,
                &Device::flex(),
                |d| cfg.unet([16, 16, 3]).unwrap().init(d).unwrap()
            )),
            "{name}"
        );
        assert_eq!(
            resumed
                .metrics
                .iter()
                .map(|m| (m.step, m.loss))
                .collect::<Vec<_>>(),
            straight
                .metrics
                .iter()
                .map(|m| (m.step, m.loss))
                .collect::<Vec<_>>(),
            "{name}: the metrics of the resumed run"
        );
        let got_samples = resumed.sample(2, &sc, &Device::flex(), |_| {}).unwrap();
        assert_eq!(
            crate::data::loader::gather(&got_samples, &[0, 1]).pixels,
            crate::data::loader::gather(&want_samples, &[0, 1]).pixels,
            "{name}"
        );
        assert!(crate::train::checkpoint::latest(&resumed.dir).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&straight_dir);
}

/// A finished generator whose weights changed is reported by name with the way out, and is
/// trained again (to the same weights) with `--retry-failed`; so is a damaged checkpoint.
#[test]
fn a_damaged_generator_is_reported_and_retrained_on_retry() {
    let real = tiny_real();
    let cfg = tiny_run_config();
    let dir = temp_dir("damaged");
    let first = train_in(&real, &cfg, &dir).unwrap();
    let want = weights(&first.model);
    let ema = first.dir.join("ema.bpk");
    let mut bytes = std::fs::read(&ema).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&ema, &bytes).unwrap();
    let err = train_in(&real, &cfg, &dir)
        .err()
        .expect("an error")
        .to_string();
    assert!(
        err.contains("ema.bpk") && err.contains("--retry-failed"),
        "{err}"
    );
    let retry = |dir: &std::path::Path| {
        run::train(
            &real,
            &cfg,
            run::DiffusionContext {
                device: &Device::flex(),
                runs_dir: dir,
                progress: &mut crate::train::Silent,
                cancel: &crate::train::CancelFlag::new(),
                retry_failed: true,
            },
        )
    };
    let again = retry(&dir).unwrap();
    assert!(!again.cached);
    assert_eq!(weights(&again.model), want);
    assert!(train_in(&real, &cfg, &dir).unwrap().cached);
    // A damaged checkpoint: an error that says how to start over, then a fresh start.
    let dir2 = temp_dir("damaged-ckpt");
    assert!(train_stopped(&real, &cfg, &dir2, 2, false));
    let ckpt = crate::train::checkpoint::latest(&dir2.join(&first.result.id)).unwrap();
    std::fs::write(ckpt.join("optimizer.bpk"), b"truncated").unwrap();
    let err = train_in(&real, &cfg, &dir2)
        .err()
        .expect("an error")
        .to_string();
    assert!(
        err.contains("checkpoint") && err.contains("--retry-failed"),
        "{err}"
    );
    assert_eq!(weights(&retry(&dir2).unwrap().model), want);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

fn sample_in(
    g: &run::DiffusionRun,
    n: usize,
    cfg: &run::SampleConfig,
    dir: &std::path::Path,
    retry_failed: bool,
) -> Result<run::SampleRun> {
    g.sample_run(
        n,
        cfg,
        run::SampleContext {
            device: &Device::flex(),
            runs_dir: dir,
            progress: &mut crate::train::Silent,
            retry_failed,
        },
    )
}

fn pixels(d: &crate::data::Dataset) -> Vec<u8> {
    crate::data::loader::gather(d, &(0..d.len()).collect::<Vec<_>>()).pixels
}

/// Samples are a run of their own: drawn, stored and sealed the first time, loaded (the same
/// pixels, source and fingerprint as when drawn) the second; any changed option, or another
/// `n`, samples anew into another folder; a damaged samples file is reported by name and
/// sampled again with `--retry-failed`.
#[test]
fn samples_are_stored_and_loaded_by_generator_and_options() {
    let real = tiny_real();
    let dir = temp_dir("samples");
    let g = train_in(&real, &tiny_run_config(), &dir).unwrap();
    let sc = run::SampleConfig {
        steps: 4,
        batch: 2,
        seed: 1,
        ..Default::default()
    };
    let first = sample_in(&g, 3, &sc, &dir, false).unwrap();
    assert!(!first.cached);
    assert!(crate::train::seal::is_sealed(&first.dir));
    assert!(first.dir.join("samples.npz").is_file());
    let in_memory = g.sample(3, &sc, &Device::flex(), |_| {}).unwrap();
    assert_eq!(first.dataset.fingerprint(), in_memory.fingerprint());
    assert_eq!(pixels(&first.dataset), pixels(&in_memory));
    let again = sample_in(&g, 3, &sc, &dir, false).unwrap();
    assert!(
        again.cached,
        "the same generator, n and options load the stored samples"
    );
    assert_eq!(again.dir, first.dir);
    assert_eq!(pixels(&again.dataset), pixels(&first.dataset));
    assert_eq!(again.dataset.fingerprint(), first.dataset.fingerprint());
    assert_eq!(again.dataset.description(), first.dataset.description());
    assert_eq!(again.dataset.label(0), crate::data::UNLABELED);
    let changed = [
        (
            3,
            run::SampleConfig {
                seed: 2,
                ..sc.clone()
            },
        ),
        (
            3,
            run::SampleConfig {
                steps: 5,
                ..sc.clone()
            },
        ),
        (
            3,
            run::SampleConfig {
                sampler: Sampler::Ddpm,
                ..sc.clone()
            },
        ),
        (
            3,
            run::SampleConfig {
                eta: 0.5,
                ..sc.clone()
            },
        ),
        (
            3,
            run::SampleConfig {
                batch: 3,
                ..sc.clone()
            },
        ),
        (4, sc.clone()),
    ];
    for (n, cfg) in &changed {
        let other = sample_in(&g, *n, cfg, &dir, false).unwrap();
        assert!(!other.cached, "{n} {cfg:?} was loaded instead of sampled");
        assert_ne!(other.dir, first.dir);
        assert_ne!(other.dataset.fingerprint(), first.dataset.fingerprint());
    }
    // A changed byte of the stored pixels: reported, then sampled again on a retry.
    let npz = first.dir.join("samples.npz");
    let mut bytes = std::fs::read(&npz).unwrap();
    bytes[200] ^= 0xff;
    std::fs::write(&npz, &bytes).unwrap();
    let err = sample_in(&g, 3, &sc, &dir, false)
        .err()
        .expect("an error")
        .to_string();
    assert!(
        err.contains("samples.npz") && err.contains("--retry-failed"),
        "{err}"
    );
    let retried = sample_in(&g, 3, &sc, &dir, true).unwrap();
    assert!(!retried.cached);
    assert_eq!(pixels(&retried.dataset), pixels(&first.dataset));
    assert!(sample_in(&g, 3, &sc, &dir, false).unwrap().cached);
    // Bad options write nothing.
    let before = std::fs::read_dir(&dir).unwrap().count();
    for bad in [
        run::SampleConfig {
            steps: 1001,
            ..sc.clone()
        },
        run::SampleConfig {
            eta: 2.0,
            ..sc.clone()
        },
        run::SampleConfig {
            batch: 0,
            ..sc.clone()
        },
    ] {
        assert!(sample_in(&g, 3, &bad, &dir, false).is_err(), "{bad:?}");
    }
    assert!(sample_in(&g, 0, &sc, &dir, false).is_err());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends the notes of a run (what it waits for) to the test.
struct Notes(std::sync::mpsc::Sender<String>);

impl crate::train::Progress for Notes {
    fn start(&mut self, _: &str, _: usize, _: bool) {}
    fn update(&mut self, _: usize, _: f64, _: f64) {}
    fn probe(&mut self, _: usize, _: f64) {}
    fn finish(&mut self, _: &str) {}
    fn note(&mut self, message: &str) {
        let _ = self.0.send(message.to_string());
    }
}

/// Two processes never train one generator at once: while another process holds the run's
/// claim, `train` says it waits and writes nothing; once the claim is released it trains the
/// run (to the weights of an unclaimed run).
#[test]
fn a_generator_claimed_by_another_process_is_waited_for() {
    let real = tiny_real();
    let cfg = tiny_run_config();
    let elsewhere = temp_dir("unclaimed");
    let want = train_in(&real, &cfg, &elsewhere).unwrap();
    let dir = temp_dir("claimed");
    let run_dir = dir.join(&want.result.id);
    std::fs::create_dir_all(&run_dir).unwrap();
    let crate::runs::claim::Claimed::Mine(held) =
        crate::runs::claim::try_claim(&run_dir, std::time::Duration::from_secs(60)).unwrap()
    else {
        panic!("the fresh folder could not be claimed");
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut notes = Notes(tx);
            run::train(
                &real,
                &cfg,
                run::DiffusionContext {
                    device: &Device::flex(),
                    runs_dir: &dir,
                    progress: &mut notes,
                    cancel: &crate::train::CancelFlag::new(),
                    retry_failed: false,
                },
            )
            .map(|r| (r.cached, weights(&r.model)))
        });
        let note = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the run did not wait for the claim's owner");
        assert!(note.contains("being trained by"), "{note}");
        for f in ["metrics.jsonl", "config.json", "ema.bpk", "seal.json"] {
            assert!(
                !run_dir.join(f).exists(),
                "{f} written while another held the claim"
            );
        }
        assert!(!waiter.is_finished());
        drop(held);
        let (cached, got) = waiter.join().unwrap().unwrap();
        assert!(!cached);
        assert_eq!(got, weights(&want.model));
    });
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&elsewhere);
}
