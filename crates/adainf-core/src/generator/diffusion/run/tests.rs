//! Tests of the generator as a run: the cache, options checked before anything is written,
//! checkpoints and resume, the seal, stored samples and claims.

use burn::module::Module;
use burn::tensor::Device;

use super as run;
use super::super::{Sampler, params_of};
use crate::error::{Error, Result};
use crate::tensor::read_floats;

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
    let a = first.sample(3, &sc, &device, |_| {}, || false).unwrap();
    let b = again.sample(3, &sc, &device, |_| {}, || false).unwrap();
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
    let want_samples = straight
        .sample(2, &sc, &Device::flex(), |_| {}, || false)
        .unwrap();
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
        let got_samples = resumed
            .sample(2, &sc, &Device::flex(), |_| {}, || false)
            .unwrap();
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
        run::DiffusionContext {
            device: &Device::flex(),
            runs_dir: dir,
            progress: &mut crate::train::Silent,
            cancel: &crate::train::CancelFlag::new(),
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
    let in_memory = g.sample(3, &sc, &Device::flex(), |_| {}, || false).unwrap();
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

/// A sampling run cancelled midway (the flag set after its first batch) ends with
/// `Error::Cancelled`, says how far it got, and leaves no file in its folder that could pass
/// for its samples; the same call afterwards samples them in full.
#[test]
fn a_cancelled_sampling_stores_nothing() {
    let real = tiny_real();
    let dir = temp_dir("cancelled-samples");
    let g = train_in(&real, &tiny_run_config(), &dir).unwrap();
    let sc = run::SampleConfig {
        steps: 4,
        batch: 2,
        ..Default::default()
    };
    let cancel = crate::train::CancelFlag::new();
    /// Cancels once the first batch is finished.
    struct CancelAfterFirst<'a>(&'a crate::train::CancelFlag, Vec<String>);
    impl crate::train::Progress for CancelAfterFirst<'_> {
        fn start(&mut self, _: &str, _: usize, _: bool) {}
        fn update(&mut self, _: usize, _: f64, _: f64) {
            self.0.cancel();
        }
        fn probe(&mut self, _: usize, _: f64) {}
        fn finish(&mut self, _: &str) {}
        fn note(&mut self, message: &str) {
            self.1.push(message.to_string());
        }
    }
    let mut progress = CancelAfterFirst(&cancel, Vec::new());
    let out = g.sample_run(
        5,
        &sc,
        run::DiffusionContext {
            device: &Device::flex(),
            runs_dir: &dir,
            progress: &mut progress,
            cancel: &cancel,
            retry_failed: false,
        },
    );
    assert!(matches!(out, Err(Error::Cancelled)), "not cancelled");
    let note = progress.1.join("\n");
    assert!(
        note.contains("after 2 of 5 images") && note.contains("nothing was stored"),
        "{note}"
    );
    let run_dir = dir.join(g.sample_spec(5, &sc).id());
    assert!(
        !run_dir.exists(),
        "an interrupted sampling wrote its folder"
    );
    let full = sample_in(&g, 5, &sc, &dir, false).unwrap();
    assert!(!full.cached);
    assert_eq!(full.dataset.len(), 5);
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

/// Stored samples carry a recipe (their folder, the spec and the sealed SHA-256 of
/// `samples.npz`), drawn or loaded alike, that survives JSON and opens the same set again (the
/// same fingerprint, description and pixels; a memory map of the folder's file); a folder that
/// is gone, unfinished, changed, drawn again or another sampling run's is an error naming the
/// folder and saying how to draw the samples again, and the folder is left as it was.
#[test]
fn stored_samples_have_a_recipe_that_opens_them_again_or_says_why_not() {
    use crate::data::recipe::Recipe;
    let real = tiny_real();
    let dir = temp_dir("sample-recipe");
    let g = train_in(&real, &tiny_run_config(), &dir).unwrap();
    let sc = run::SampleConfig {
        steps: 3,
        batch: 2,
        seed: 4,
        ..Default::default()
    };
    let drawn = sample_in(&g, 3, &sc, &dir, false).unwrap();
    let loaded = sample_in(&g, 3, &sc, &dir, false).unwrap();
    assert!(loaded.cached);
    let recipe = Recipe::of(&drawn.dataset).unwrap();
    assert_eq!(Some(&recipe), loaded.dataset.recipe());
    let Recipe::DiffusionSample {
        dir: folder,
        samples_sha256,
        ..
    } = &recipe
    else {
        panic!("{recipe:?}")
    };
    assert_eq!(folder, &drawn.dir);
    assert_eq!(
        samples_sha256,
        &crate::train::seal::digest_file(&drawn.dir.join("samples.npz")).unwrap()
    );
    let json = serde_json::to_string(&recipe).unwrap();
    let again: Recipe = serde_json::from_str(&json).unwrap();
    let device = Device::flex();
    let opened = again.build(&device).unwrap();
    assert_eq!(opened.fingerprint(), drawn.dataset.fingerprint());
    assert_eq!(opened.description(), drawn.dataset.description());
    assert_eq!(pixels(&opened), pixels(&drawn.dataset));
    assert_eq!(opened.recipe(), Some(&recipe));

    // Each damage, on a copy of the folder, and what the error says.
    let npz = drawn.dir.join("samples.npz");
    let kept = std::fs::read(&npz).unwrap();
    let seal_path = drawn.dir.join(crate::train::seal::SEAL_FILE);
    let seal = std::fs::read(&seal_path).unwrap();
    let flip = || {
        let mut bytes = kept.clone();
        bytes[300] ^= 0x0f;
        std::fs::write(&npz, bytes).unwrap();
    };
    let other = {
        let mut s = sc.clone();
        s.seed = 5;
        sample_in(&g, 3, &s, &dir, false).unwrap()
    };
    /// A damage done to the folder, giving the recipe to open.
    type Damage<'a> = Box<dyn Fn() -> Recipe + 'a>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "unfinished",
            Box::new(|| {
                std::fs::remove_file(&seal_path).unwrap();
                recipe.clone()
            }),
            "no seal.json",
        ),
        (
            "changed",
            Box::new(|| {
                flip();
                recipe.clone()
            }),
            "changed after they were drawn (samples.npz: its SHA-256 differs",
        ),
        (
            "drawn again",
            Box::new(|| {
                flip();
                crate::train::seal::write(
                    &drawn.dir,
                    &["config.json", "result.json", "samples.npz"],
                )
                .unwrap();
                recipe.clone()
            }),
            "were drawn again",
        ),
        (
            "another run's folder",
            Box::new(|| match recipe.clone() {
                Recipe::DiffusionSample {
                    generator,
                    n,
                    config,
                    samples_sha256,
                    ..
                } => Recipe::DiffusionSample {
                    dir: other.dir.clone(),
                    generator,
                    n,
                    config,
                    samples_sha256,
                },
                r => r,
            }),
            "its config.json is sampling run",
        ),
        (
            "gone",
            Box::new(|| {
                std::fs::remove_dir_all(&drawn.dir).unwrap();
                recipe.clone()
            }),
            "their folder is missing",
        ),
    ];
    for (case, damage, want) in cases {
        let r = damage();
        let listing = |d: &std::path::Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .map(|e| {
                    e.flatten()
                        .map(|e| {
                            (
                                e.path().display().to_string(),
                                std::fs::read(e.path()).unwrap(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let Recipe::DiffusionSample { dir: named, .. } = &r else {
            unreachable!()
        };
        let before = listing(named);
        let err = r.build(&device).err().expect(case).to_string();
        for part in [
            format!("{}: the 3 samples of generator", named.display()),
            want.to_string(),
            "Run the script again with --retry-failed".into(),
        ] {
            assert!(err.contains(&part), "{case}: `{part}` missing in {err}");
        }
        assert_eq!(listing(named), before, "{case}: the folder changed");
        if drawn.dir.is_dir() {
            std::fs::write(&npz, &kept).unwrap();
            std::fs::write(&seal_path, &seal).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
