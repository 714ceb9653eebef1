//! The diffusion generator end to end through the script host: `data::save_npz` of
//! `gen::sample`'s output is the official AdaInf layout that numpy reads (`image` N×H×W×3
//! uint8, `label` all -1), with exactly the pixels adainf holds; a killed generator run resumes
//! bit for bit; `examples/diffusion.rhai` runs end to end on a tiny budget.
//!
//! The Python comes from `ADAINF_TEST_PYTHON` (`common::test_python`): without it the test
//! skips with a message, except under CI (`CI=true`), where it fails.

mod common;

use adainf_core::data::Dataset;
use adainf_core::data::loader::gather;
use adainf_core::train::{CancelFlag, Silent};
use adainf_script::{Host, HostConfig};
use common::*;
use std::process::Command;

/// Reads an npz with numpy and prints its keys, the image array's shape, dtype and bytes, and
/// the labels, as JSON.
const READ_NPZ: &str = r#"
import json, sys
import numpy as np
z = np.load(sys.argv[1])
img = z["image"]
print(json.dumps({
    "keys": sorted(z.files),
    "shape": list(img.shape),
    "dtype": str(img.dtype),
    "pixels": img.reshape(-1).tolist(),
    "labels": z["label"].tolist(),
}))
"#;

#[test]
fn numpy_reads_the_samples_of_a_diffusion_generator_with_the_pixels_adainf_holds() {
    let Some(python) = test_python("numpy") else {
        return;
    };
    let ws = Workspace::new("diffusion-npz");
    let npz = ws.0.join("samples.npz");
    let host = Host::new(
        HostConfig {
            device: burn::tensor::Device::flex(),
            device_name: "flex".into(),
            runs_dir: ws.0.join("runs"),
            max_operations: 200_000,
            max_memory_gib: 1,
            params: rhai::Map::new(),
            lib_dirs: vec![],
            cancel: CancelFlag::new(),
            executor: Default::default(),
            retry_failed: false,
        },
        Box::new(|| Box::new(Silent)),
    );
    let script = format!(
        r#"
let real = data::synthetic(#{{ n: 8, size: 16, seed: 0 }});
let g = gen::diffusion(real, #{{ steps: 2, batch: 2, channels: 4, channel_mult: [1, 2],
                                attention_at: [], timesteps: 20 }});
let s = gen::sample(g, 5, #{{ steps: 4, batch: 2, seed: 3 }});
data::save_npz(s, "{}");
s
"#,
        npz.display()
    );
    let samples: Dataset = host.engine().eval(&script).unwrap();
    let held = gather(&samples, &(0..samples.len()).collect::<Vec<_>>());
    let out = Command::new(&python)
        .args(["-c", READ_NPZ])
        .arg(&npz)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "numpy could not read the npz: {stderr}"
    );
    let got: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got["keys"], serde_json::json!(["image", "label"]));
    assert_eq!(got["shape"], serde_json::json!([5, 16, 16, 3]));
    assert_eq!(got["dtype"], "uint8");
    let pixels: Vec<u8> = got["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(held.shape, [16, 16, 3]);
    assert_eq!(pixels.len(), held.pixels.len());
    let differing = pixels
        .iter()
        .zip(&held.pixels)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "{differing} pixel values differ from adainf's"
    );
    // The samples are images, not a constant.
    assert!(held.pixels.iter().any(|&p| p != held.pixels[0]));
    assert_eq!(got["labels"], serde_json::json!(vec![-1; 5]));
}

/// A generator's script: a small UNet with dropout, trained long enough to be killed mid-way,
/// with a checkpoint every 10 steps.
const TRAIN: &str = r#"
let real = data::synthetic(#{ n: 16, size: 16, seed: 0 });
let g = gen::diffusion(real, #{ steps: 200, batch: 4, channels: 8, channel_mult: [1, 2],
                               attention_at: [8], timesteps: 50, dropout: 0.3, ema: 0.9,
                               lr: 1e-3, checkpoint_every: 10 });
print(`id=${g.id} cached=${g.cached}`);
"#;

/// `adainf run` killed (SIGKILL) after a checkpoint and run again ends with the EMA weights of
/// an uninterrupted run, byte for byte, and the same metrics: every step's randomness,
/// dropout included, is a function of the seed and the step, and the checkpoint holds the
/// model, its EMA and the AdamW state.
#[test]
fn a_killed_generator_run_resumes_to_the_weights_of_an_uninterrupted_one() {
    let straight = Workspace::new("diffusion-straight");
    let script = straight.script("gen.rhai", TRAIN);
    let out = straight.run(&script, &["--quiet"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let id = value(&stdout, "id");
    let want = straight.0.join("runs").join(&id);

    let ws = Workspace::new("diffusion-killed");
    let script = ws.script("gen.rhai", TRAIN);
    let runs = ws.0.join("runs");
    let run_dir = runs.join(&id);
    let mut child = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(&runs)
        .arg("--quiet")
        .spawn()
        .unwrap();
    // Kill it once a checkpoint exists and steps after it were logged (a step of this size
    // takes milliseconds, so it stops well before the end).
    let started = std::time::Instant::now();
    loop {
        let state =
            std::fs::read_to_string(run_dir.join("checkpoint/state.json")).unwrap_or_default();
        let step = serde_json::from_str::<serde_json::Value>(&state)
            .ok()
            .and_then(|v| v["step"].as_u64());
        let logged = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
            .map_or(0, |m| m.lines().count() as u64);
        if step.is_some_and(|s| s >= 20 && logged * 10 > s) {
            break;
        }
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !run_dir.join("seal.json").exists(),
        "the run finished before it could be killed"
    );
    let again = ws.run(&script, &["--quiet"]);
    let (stdout, stderr) = text(&again);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(value(&stdout, "cached"), "false");
    assert!(run_dir.join("seal.json").is_file());
    assert!(
        !run_dir.join("checkpoint").exists(),
        "a finished run keeps no checkpoint"
    );
    let bytes = |dir: &std::path::Path, f: &str| std::fs::read(dir.join(f)).unwrap();
    let (got, expected) = (bytes(&run_dir, "ema.bpk"), bytes(&want, "ema.bpk"));
    let (got, expected) = (tensor_data(&got), tensor_data(&expected));
    assert_eq!(got.len(), expected.len());
    let differing = got.iter().zip(expected).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing, 0,
        "{differing} bytes of the resumed run's EMA weights differ from the uninterrupted run's"
    );
    let losses = |dir: &std::path::Path| -> Vec<(u64, f64)> {
        String::from_utf8(bytes(dir, "metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
            .collect()
    };
    assert_eq!(losses(&run_dir), losses(&want));
    // The same script again loads the sealed generator.
    let cached = ws.run(&script, &["--quiet"]);
    assert_eq!(value(&text(&cached).0, "cached"), "true");
}

/// Ctrl-C during a long `gen::sample` stops it at the next reverse step: `adainf run` exits
/// with 130 and says the sampling was interrupted and nothing stored, and no samples file is
/// left behind that a later run could load as finished.
#[test]
fn ctrl_c_stops_a_long_sampling_and_stores_nothing() {
    let ws = Workspace::new("diffusion-ctrl-c");
    let script = ws.script(
        "sample.rhai",
        r#"let real = data::synthetic(#{ n: 8, size: 16, seed: 0 });
let g = gen::diffusion(real, #{ steps: 2, batch: 2, channels: 4, channel_mult: [1, 2],
                               attention_at: [], timesteps: 1000 });
print("trained");
let s = gen::sample(g, 1000000, #{ steps: 1000, batch: 16 });
print("sampled");
"#,
    );
    let (output, rest) = ws.interrupted_after(&script, "trained", "the sampling");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted after") && stderr.contains("nothing was stored"),
        "{stderr}"
    );
    // The progress says what runs: a sampling of images (it said "training N steps").
    assert!(stderr.contains("sampling 1000000 images"), "{stderr}");
    assert!(!rest.contains("sampled"), "{rest}");
    // Only the generator's folder: no samples file anywhere under the runs folder.
    let folders: Vec<_> = std::fs::read_dir(ws.0.join("runs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert!(!folders[0].path().join("samples.npz").exists());
}

/// `examples/diffusion.rhai` runs end to end on a tiny budget: the gap table has a row per
/// budget and per reference generator, the budget with the lowest Fréchet distance is the one
/// inflated with, the comparison has its three settings and differences, and the sample grid
/// has a row per generator and one of real images.
#[test]
fn the_diffusion_example_runs_small() {
    let ws = Workspace::new("diffusion-example");
    let script = ws.0.join("diffusion.rhai");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/diffusion.rhai"),
        &script,
    )
    .unwrap();
    let out = ws.run(
        &script,
        &[
            "--quiet",
            "--",
            "seeds=2",
            "steps=3",
            "budgets=2,3,4",
            "generated=40",
            "gap_samples=40",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The Fréchet column of each budget's row; the lowest must be the one chosen.
    let frechet = |budget: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| diffusion, {budget} steps ")))
            .unwrap_or_else(|| panic!("no gap row for {budget} steps in\n{stdout}"));
        line.split('|').nth(5).unwrap().trim().parse().unwrap()
    };
    let best = ["2", "3", "4"]
        .into_iter()
        .min_by(|a, b| frechet(a).total_cmp(&frechet(b)))
        .unwrap();
    assert!(
        stdout.contains(&format!("Budget used for inflation: {best} steps")),
        "{stdout}"
    );
    for row in [
        "| simulated, fidelity 0.5 ",
        "| gen::gmm ",
        "| real (the 500 trained on) ",
        "| none    |     | symmetric        | 500 ",
        "| vanilla | 1   | symmetric        | 540 ",
        "| adainf  | 10  | symmetric_adainf | 5040 ",
    ] {
        assert!(stdout.contains(row), "`{row}` missing in\n{stdout}");
    }
    assert_eq!(
        stdout.matches("| adainf − vanilla |").count(),
        2,
        "{stdout}"
    );
    // Six rows (three budgets, the simulated generator, the GMM, real images) of 16-pixel
    // images ×3 with 2-pixel gutters, and a label margin before 12 columns.
    let png = std::fs::read(ws.0.join("diffusion_samples.png")).unwrap();
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap()) as usize;
    let (w, h) = (be(&png[16..20]), be(&png[20..24]));
    assert_eq!(h, 6 * 50 + 2);
    assert!(w > 12 * 50 + 2, "{w}");
}

/// `adainf runs` lists a generator and its samples beside the pretraining runs, each with its
/// kind, state and settings (in the table and as JSON), and a damaged sample record as damaged;
/// the HTML report's runs stay the pretraining runs.
#[test]
fn the_run_listing_shows_generators_and_samples() {
    let ws = Workspace::new("diffusion-listing");
    let script = ws.script(
        "all.rhai",
        r#"
let real = data::synthetic(#{ n: 16, size: 16, seed: 0 });
let g = gen::diffusion(real, #{ steps: 3, batch: 4, channels: 8, channel_mult: [1, 2],
                               attention_at: [8], timesteps: 20 });
let s = gen::sample(g, 6, #{ steps: 4, seed: 2 });
let run = train::pretrain(#{ data: data::inflate(real, s), backbone: "resnet10", width: 4,
                             batch: 8, steps: 2, tags: #{ setting: "vanilla" } });
print(`generator=${g.id} run=${run.id}`);
"#,
    );
    let out = ws.run(&script, &["--quiet"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let runs = ws.0.join("runs");
    let json = bin().args(["runs", "--json"]).arg(&runs).output().unwrap();
    assert!(json.status.success(), "{}", text(&json).1);
    let rows: Vec<serde_json::Value> = text(&json)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        rows.iter().filter(|r| r["kind"] == kind).collect()
    };
    let (generators, samples, pretrain) = (of("generator"), of("samples"), of("pretrain"));
    assert_eq!(
        (generators.len(), samples.len(), pretrain.len(), rows.len()),
        (1, 1, 1, 3),
        "{rows:?}"
    );
    let generator = generators[0];
    assert_eq!(generator["id"], value(&stdout, "generator"));
    assert_eq!(generator["state"], "done");
    assert_eq!(
        (generator["step"].as_u64(), generator["steps"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(
        generator["loss"].as_f64().is_some_and(f64::is_finite),
        "{generator}"
    );
    assert!(
        generator["settings"].as_str().unwrap().contains("ddpm ch8"),
        "{generator}"
    );
    assert!(generator.get("method").is_none(), "{generator}");
    let sample = samples[0];
    assert_eq!(sample["state"], "done");
    assert!(
        sample["settings"]
            .as_str()
            .unwrap()
            .starts_with("6 images, ddim 4 steps"),
        "{sample}"
    );
    let run = pretrain[0];
    assert_eq!(run["id"], value(&stdout, "run"));
    assert_eq!(
        (run["state"].as_str(), run["method"].as_str()),
        (Some("done"), Some("simclr"))
    );
    assert_eq!(run["tags"]["setting"], "vanilla");
    // The table: one row each, with its kind.
    let table = bin().arg("runs").arg(&runs).output().unwrap();
    let (table, _) = text(&table);
    for kind in [
        "| generator | done |",
        "| samples | done |",
        "| pretrain | done |",
    ] {
        assert!(table.contains(kind), "{kind}:\n{table}");
    }
    assert!(table.contains("3 run(s): 3 done"), "{table}");
    // A sample record edited after it finished is damaged, naming the file.
    let sample_dir = runs.join(sample["id"].as_str().unwrap());
    let result = sample_dir.join("result.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    record["n"] = serde_json::json!(7);
    std::fs::write(&result, record.to_string()).unwrap();
    let json = bin().args(["runs", "--json"]).arg(&runs).output().unwrap();
    let damaged = text(&json)
        .0
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["kind"] == "samples")
        .unwrap();
    assert_eq!(damaged["state"], "damaged", "{damaged}");
    assert!(
        damaged["error"].as_str().unwrap().contains("result.json"),
        "{damaged}"
    );
    // The detail of the generator shows its kind and its last metrics rows.
    let detail = bin()
        .args(["runs", "--id", &generator["id"].as_str().unwrap()[..8]])
        .arg(&runs)
        .output()
        .unwrap();
    let (detail, stderr) = text(&detail);
    assert!(
        detail.contains("kind: generator") && detail.contains("\"step\":3"),
        "{detail}{stderr}"
    );
}
