//! Scheduled runs against the fixed runs they equal, realized generated fractions, and
//! augmentation per source, through the training loop (`pretrain`) on tiny configs.

use std::path::PathBuf;

use burn::tensor::Device;

use super::schedule::{ScheduleKey, tabulate};
use super::*;
use crate::augment::{AugSpec, CIFAR10_MEAN, CIFAR10_STD, ViewPair, preset};
use crate::data::batches::Placement;
use crate::data::loader::{Batch, Sampler, gather};
use crate::data::synthetic::{GeneratorSpec, SyntheticSpec, synthetic, synthetic_generator};
use crate::optim::schedule::WarmupCosine;
use crate::tensor::read_floats;

fn real() -> Dataset {
    synthetic(&SyntheticSpec {
        n: 24,
        seed: 0,
        size: 8,
        split: "train".into(),
    })
    .unwrap()
}

fn generated() -> Dataset {
    synthetic_generator(&GeneratorSpec {
        n: 20,
        seed: 1,
        size: 8,
        fidelity: 0.5,
    })
    .unwrap()
}

fn tiny(steps: usize) -> PretrainConfig {
    PretrainConfig {
        backbone: crate::model::Backbone::Resnet10,
        width: 4,
        batch: 8,
        steps,
        warmup: 2,
        warmup_start: 0.01,
        lr: 0.05,
        optimizer: crate::optim::OptimizerKind::Sgd,
        proj_hidden: 16,
        proj_dim: 8,
        eval_every: 0,
        log_every: 1,
        ..Default::default()
    }
}

/// A fresh runs folder per call.
fn runs_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("adainf-schedule-{}-{n}", std::process::id()))
}

/// The metric rows of a run trained now.
fn train(cfg: PretrainConfig, data: &Dataset, aug: &ViewPair) -> Vec<MetricRow> {
    let dir = runs_dir();
    let run = pretrain(
        PretrainRequest {
            config: cfg,
            data,
            aug,
            probe: None,
            checkpoint_every: 0,
        }
        .check()
        .unwrap(),
        TrainContext {
            device: &Device::flex(),
            placement: Placement::Stream,
            runs_dir: &dir,
            progress: &mut Silent,
            cancel: &CancelFlag::new(),
        },
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!run.cached);
    run.metrics
}

fn losses(rows: &[MetricRow]) -> Vec<f64> {
    rows.iter().map(|r| r.loss).collect()
}

fn scheduled(mut cfg: PretrainConfig, key: ScheduleKey, table: Vec<f64>) -> PretrainConfig {
    cfg.schedule.0.insert(key, table);
    cfg
}

/// A schedule that holds a value trains exactly as the fixed configuration with that value:
/// a constant strength as the augmentation scaled once, an lr factor equal to the built-in
/// warm-up + cosine as the built-in, a generated share of 0 as a run on the real images
/// alone (whatever `dup`), and the same augmentation for both sources as one augmentation.
#[test]
fn constant_schedules_train_like_the_fixed_config_they_equal() {
    let (real, generated) = (real(), generated());
    let mix = Dataset::inflate(&real, &generated, 3).unwrap();
    let sym = preset("symmetric").unwrap();
    let steps = 6;

    let half = ViewPair::symmetric("half", AugSpec::default().with_strength(0.5).unwrap());
    let fixed = losses(&train(tiny(steps), &mix, &half));
    let strength = scheduled(tiny(steps), ScheduleKey::Strength, vec![0.5; steps]);
    let rows = train(strength, &mix, &sym);
    assert_eq!(losses(&rows), fixed, "constant strength 0.5");
    assert!(rows.iter().all(|r| r.strength == Some(0.5)));
    // The plain run is not trivially equal to it.
    assert_ne!(losses(&train(tiny(steps), &mix, &sym)), fixed);

    let cfg = tiny(steps);
    let built_in = WarmupCosine {
        base: cfg.lr,
        warmup: cfg.warmup,
        total: cfg.steps,
        warmup_start: cfg.warmup_start,
        min_lr: 0.0,
    };
    let factors = (0..steps).map(|s| built_in.lr(s) / cfg.lr).collect();
    let lr_rows = train(scheduled(tiny(steps), ScheduleKey::Lr, factors), &mix, &sym);
    let fixed_rows = train(tiny(steps), &mix, &sym);
    for (a, b) in lr_rows.iter().zip(&fixed_rows) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-9 * b.loss.abs(),
            "{a:?} vs {b:?}"
        );
        assert!((a.lr - b.lr).abs() <= 1e-12, "{a:?} vs {b:?}");
    }

    let share0 = scheduled(tiny(steps), ScheduleKey::GeneratedShare, vec![0.0; steps]);
    assert_eq!(
        losses(&train(share0, &mix, &sym)),
        losses(&train(tiny(steps), &real, &sym)),
        "share 0 on real ×3 + generated vs real alone"
    );

    let both = ViewPair::per_source(&sym, &sym);
    assert_eq!(
        losses(&train(tiny(steps), &mix, &both)),
        losses(&fixed_rows),
        "the same augmentation per source"
    );
}

/// Share 0 and 1 give batches with no generated image and with generated images only
/// (counted from the images' sources, not from the sampler's plan); a linear share is
/// followed within the rounding of a batch (half an image per batch).
#[test]
fn realized_generated_fractions_follow_the_share() {
    let mix = Dataset::inflate(&real(), &generated(), 2).unwrap();
    let sym = preset("symmetric").unwrap();
    let steps = 12;
    for share in [0.0, 1.0] {
        let cfg = scheduled(tiny(steps), ScheduleKey::GeneratedShare, vec![share; steps]);
        let rows = train(cfg, &mix, &sym);
        assert_eq!(rows.len(), steps);
        assert!(
            rows.iter().all(|r| r.generated_fraction == Some(share)),
            "{share}: {rows:?}"
        );
    }
    let table = tabulate::<()>(ScheduleKey::GeneratedShare, steps, Ok).unwrap();
    let mut cfg = scheduled(tiny(steps), ScheduleKey::GeneratedShare, table.clone());
    cfg.log_every = 3;
    let rows = train(cfg, &mix, &sym);
    let mut from = 0;
    for r in &rows {
        let planned = table[from..r.step].iter().sum::<f64>() / (r.step - from) as f64;
        let got = r.generated_fraction.unwrap();
        assert!(
            (got - planned).abs() <= 0.5 / 8.0 + 1e-12,
            "steps {from}..{}: {got} vs {planned}",
            r.step
        );
        from = r.step;
    }
    assert!(rows.last().unwrap().generated_fraction.unwrap() > 0.7);
    // Without a schedule, the fraction is that of the inflated set's uniform sampling.
    let plain = train(tiny(steps), &mix, &sym);
    let mean = plain
        .iter()
        .map(|r| r.generated_fraction.unwrap())
        .sum::<f64>()
        / steps as f64;
    assert!(mean > 0.1 && mean < 0.5, "{mean}");
}

/// The mixed sampler: each batch holds its scheduled number of generated positions after
/// the real ones, and within an epoch of a part no position repeats.
#[test]
fn mixed_batches_draw_each_part_without_repeats() {
    let counts: std::sync::Arc<[u32]> = (0..40).map(|s| (s % 5) as u32).collect();
    let mut s = Sampler::mixed(0..10, 30..37, counts.clone(), 4, 3, 0).unwrap();
    let (mut real_seen, mut gen_seen) = (Vec::new(), Vec::new());
    let mut real_epoch_len = 0;
    for step in 0..40 {
        let b = s.next_batch();
        let g = counts[step] as usize;
        assert_eq!(b.len(), 4);
        assert!(b[..4 - g].iter().all(|&i| i < 10), "{b:?}");
        assert!(b[4 - g..].iter().all(|&i| (30..37).contains(&i)), "{b:?}");
        for (seen, part, len) in [
            (&mut real_seen, &b[..4 - g], 10),
            (&mut gen_seen, &b[4 - g..], 7),
        ] {
            if seen.len() + part.len() > len {
                seen.clear();
            }
            for i in part {
                assert!(!seen.contains(i), "{i} repeats within an epoch");
                seen.push(*i);
            }
        }
        real_epoch_len = real_epoch_len.max(real_seen.len());
    }
    assert!(real_epoch_len >= 8);
    // Resuming after k steps continues the same stream.
    for k in [0, 3, 17] {
        let mut full = Sampler::mixed(0..10, 30..37, counts.clone(), 4, 3, 0).unwrap();
        for _ in 0..k {
            full.next_batch();
        }
        let mut resumed = Sampler::mixed(0..10, 30..37, counts.clone(), 4, 3, k).unwrap();
        for _ in 0..10 {
            assert_eq!(full.next_batch(), resumed.next_batch(), "after {k}");
        }
    }
    // A part too small for its share is an error that names the key.
    let e = Sampler::mixed(0..10, 30..32, counts, 4, 3, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("generated_share") && e.contains("only 2"), "{e}");
}

/// Per-source augmentation: with A = no augmentation and B = a horizontal flip, the views of
/// a batch of known sources hold the real images as they are and the generated ones
/// mirrored, on the fused host path and on the batched device path. The reference is the
/// normalisation and the flip written out on the u8 pixels.
#[test]
fn per_source_augmentation_applies_b_to_generated_images_only() {
    let mix = Dataset::inflate(&real(), &generated(), 1).unwrap();
    let a = ViewPair::symmetric("identity", AugSpec::identity());
    let b = ViewPair::symmetric(
        "flip",
        AugSpec {
            flip_prob: 1.0,
            ..AugSpec::identity()
        },
    );
    let aug = ViewPair::per_source(&a, &b);
    let cfg = tiny(2);
    let trainer = Trainer::new(&cfg, &aug, 10, &Device::flex()).unwrap();
    // Real, generated, real, generated, generated.
    let idx = [0, 24, 5, 30, 43];
    let host = gather(&mix, &idx);
    assert_eq!(host.generated, [false, true, false, true, true]);
    let [h, w, c] = host.shape;
    let expected: Vec<f64> = idx
        .iter()
        .enumerate()
        .flat_map(|(k, _)| {
            let flip = host.generated[k];
            let pixels = &host.pixels[k * h * w * c..(k + 1) * h * w * c];
            (0..c).flat_map(move |ch| {
                (0..h).flat_map(move |y| {
                    (0..w).map(move |x| {
                        let sx = if flip { w - 1 - x } else { x };
                        let v = pixels[(y * w + sx) * c + ch] as f64 / 255.0;
                        (v - CIFAR10_MEAN[ch] as f64) / CIFAR10_STD[ch] as f64
                    })
                })
            })
        })
        .collect();
    let device_batch = Batch::Device {
        images: crate::augment::batch::to_device(host.clone(), &Device::flex()),
        labels: host.labels.clone(),
        generated: host.generated.clone(),
    };
    for (path, batch) in [
        ("host", Batch::Host(host.clone())),
        ("device", device_batch),
    ] {
        for view in trainer.views(batch, 0) {
            let got = read_floats(view);
            assert_eq!(got.len(), expected.len());
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (*g as f64 - e).abs() < 1e-4,
                    "{path}: value {i} (image {}): {g} vs {e}",
                    i / (c * h * w)
                );
            }
        }
    }
}

/// Errors of the data a schedule needs, from the request's check (before any folder exists:
/// only a checked request can be trained).
#[test]
fn a_share_needs_a_generated_part_and_known_sources() {
    let sym = preset("symmetric").unwrap();
    let cfg = scheduled(
        tiny(4),
        ScheduleKey::GeneratedShare,
        vec![0.0, 0.0, 0.5, 0.5],
    );
    let real = real();
    let e = PretrainRequest {
        config: cfg.clone(),
        data: &real,
        aug: &sym,
        probe: None,
        checkpoint_every: 0,
    }
    .check()
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("schedule.generated_share")
            && e.contains("step 2")
            && e.contains("no generated part"),
        "{e}"
    );
    let mix = Dataset::inflate(&real, &generated(), 1).unwrap();
    let part = mix.subset_random(30, 0).unwrap();
    let e = cfg.schedule.check_data(&part, 8).unwrap_err().to_string();
    assert!(e.contains("subset"), "{e}");
    assert!(cfg.schedule.check_data(&mix, 8).is_ok());
}
