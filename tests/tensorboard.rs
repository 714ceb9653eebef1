//! TensorBoard event files of real runs, read back by the `tensorboard` Python package
//! (`tests/python/read_events.py`): every scalar at the steps and values of the run's
//! `metrics.jsonl`, the augmentation preview image, the HParams session with the run's config
//! and tags, and, for a run killed and resumed, each step exactly once across its files.
//!
//! The Python comes from `ADAINF_TEST_PYTHON` (CI makes a venv with `tensorboard` and sets
//! it); without it the tests skip with a message, except under CI (`CI=true`), where they fail.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python with `tensorboard`, or None (after saying why) when this machine has none.
fn python() -> Option<PathBuf> {
    test_python("tensorboard")
}

/// What read_events.py reports about a run folder.
fn read_events(python: &Path, run_dir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_events.py");
    let out = Command::new(python)
        .arg(script)
        .arg(run_dir)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "read_events.py failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn only_run(runs: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn metrics(run_dir: &Path) -> Vec<serde_json::Map<String, Value>> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| v.as_object().unwrap().clone())
        .collect()
}

/// The tag a metrics field is written under (the documented names).
fn tag_of(field: &str) -> String {
    match field {
        "probe_acc" => "probe/accuracy".into(),
        other => format!("train/{other}"),
    }
}

const SCRIPT: &str = r#"
let real = data::synthetic(#{ n: 64, seed: 2, size: 8 });
let run = train::pretrain(#{ data: real, probe: real, width: 4, batch: 16, steps: 24, lr: 0.05,
                             optimizer: "sgd", warmup: 2, proj_hidden: 16, proj_dim: 8,
                             log_every: 4, eval_every: 8, seed: 5,
                             tags: #{ setting: "tb-check", strength: 0.5 } });
print(`knn=${eval::knn(run, real, real, #{ k: 5 })}`);
"#;

#[test]
fn tensorboard_reads_every_scalar_the_preview_and_the_hparams() {
    let Some(python) = python() else { return };
    let ws = Workspace::new("tensorboard");
    let script = ws.script("tb.rhai", SCRIPT);
    let out = ws.run(&script, &["--quiet"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let knn: f64 = value(&stdout, "knn").parse().unwrap();
    let run_dir = only_run(&ws.0.join("runs"));
    let got = read_events(&python, &run_dir);

    // Every numeric field of every metrics row, at its step, as a float32 (simple_value).
    let rows = metrics(&run_dir);
    assert_eq!(rows.len(), 24 / 4);
    let mut expected: std::collections::BTreeMap<String, Vec<(u64, f64)>> = Default::default();
    for row in &rows {
        let step = row["step"].as_u64().unwrap();
        for (field, v) in row {
            if let (true, Some(x)) = (field != "step", v.as_f64()) {
                expected
                    .entry(tag_of(field))
                    .or_default()
                    .push((step, x as f32 as f64));
            }
        }
    }
    expected.insert("eval/knn".into(), vec![(24, knn as f32 as f64)]);
    for tag in [
        "train/loss",
        "train/lr",
        "train/images_per_s",
        "probe/accuracy",
        "eval/knn",
    ] {
        assert!(expected.contains_key(tag), "{tag} is not in the run's rows");
    }
    let scalars = got["scalars"].as_object().unwrap();
    let tags: Vec<&String> = scalars.keys().collect();
    assert_eq!(
        tags,
        expected.keys().collect::<Vec<_>>(),
        "TensorBoard's scalar tags"
    );
    for (tag, want) in &expected {
        let points: Vec<(u64, f64)> = scalars[tag]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        assert_eq!(&points, want, "{tag}");
    }
    // The probe was evaluated at steps 8, 16 and 24.
    assert_eq!(expected["probe/accuracy"].len(), 3);

    // The preview image at step 0: the PNG kept beside the event files.
    let images = got["images"]["aug/preview"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["step"], 0);
    let png = std::fs::read(run_dir.join("preview.png")).unwrap();
    // A PNG's IHDR chunk holds its width and height (big-endian) at bytes 16..24.
    assert_eq!(&png[1..4], b"PNG");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap()) as u64;
    assert_eq!(
        (images[0]["width"].as_u64(), images[0]["height"].as_u64()),
        (Some(be(&png[16..20])), Some(be(&png[20..24])))
    );
    assert_eq!(images[0]["sha256"], sha256_hex(&png));

    // The HParams session: the config, the data and the script's tags; the session ended well.
    let start = &got["hparams"]["_hparams_/session_start_info"];
    let h = &start["hparams"];
    assert_eq!(h["method"], "simclr");
    assert_eq!(h["lr"], 0.05);
    assert_eq!(h["seed"], 5.0);
    assert_eq!(h["steps"], 24.0);
    assert_eq!(h["strength"], 0.5);
    assert_eq!(h["setting"], "tb-check");
    assert_eq!(h["n_train"], 64.0);
    assert_eq!(start["group"], "tb-check");
    assert_eq!(got["hparams"]["_hparams_/session_end_info"]["status"], 1);
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_killed_and_resumed_run_has_each_step_once_across_its_files() {
    let Some(python) = python() else { return };
    let ws = Workspace::new("tensorboard-resume");
    let script = ws.script(
        "r.rhai",
        r#"
        let real = data::synthetic(#{ n: 64, seed: 1, size: 16 });
        let run = train::pretrain(#{ data: real, probe: real, width: 8, batch: 32, steps: 300,
                                     proj_hidden: 16, proj_dim: 8, warmup: 5, optimizer: "sgd",
                                     lr: 0.05, checkpoint_every: 40, log_every: 10, eval_every: 0,
                                     seed: 3 });
        print(`done=${run.metrics.len()}`);
        "#,
    );
    let runs = ws.0.join("runs");
    let mut child = common::bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(&runs)
        .arg("--quiet")
        .spawn()
        .unwrap();
    // Kill it after the checkpoint at step 40 or 80, once steps after it were logged too
    // (steps of this size take some milliseconds, so it stops well before the next one).
    let started = std::time::Instant::now();
    let run_dir = loop {
        let found = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        if let Some(dir) = found {
            let state =
                std::fs::read_to_string(dir.join("checkpoint/state.json")).unwrap_or_default();
            let logged =
                std::fs::read_to_string(dir.join("metrics.jsonl")).map_or(0, |m| m.lines().count());
            if (state.contains("\"step\": 40") || state.contains("\"step\": 80")) && logged % 4 != 0
            {
                break dir;
            }
        }
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !run_dir.join("result.json").exists(),
        "the run finished before it could be killed"
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    let checkpoint = state["step"].as_u64().unwrap();
    let before = read_events(&python, &run_dir);
    let killed_at = before["raw"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_u64().unwrap())
        .max()
        .unwrap();

    let again = ws.run(&script, &["--quiet"]);
    let (_, err) = text(&again);
    assert!(again.status.success(), "{err}");
    let got = read_events(&python, &run_dir);
    let files = got["raw"].as_array().unwrap();
    assert_eq!(
        files.len(),
        2,
        "one event file per process start: {files:?}"
    );
    // The killed process had logged past its checkpoint, so the cut mattered.
    assert!(
        killed_at > checkpoint,
        "killed at {killed_at}, checkpoint {checkpoint}"
    );

    // Each (tag, step) once across both files, and exactly the rows of metrics.jsonl.
    let mut seen: Vec<(String, u64)> = Vec::new();
    for f in files {
        for e in f["events"].as_array().unwrap() {
            for t in e["tags"].as_array().unwrap() {
                seen.push((t.as_str().unwrap().to_string(), e["step"].as_u64().unwrap()));
            }
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a (tag, step) appears twice");
    let loss_steps: Vec<u64> = sorted
        .iter()
        .filter(|(t, _)| t == "train/loss")
        .map(|(_, s)| *s)
        .collect();
    let rows: Vec<u64> = metrics(&run_dir)
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(loss_steps, rows);
    assert_eq!(rows, (1..=30).map(|i| i * 10).collect::<Vec<u64>>());
    // The preview and the HParams session are written once, by the first process.
    for once in ["aug/preview", "_hparams_/session_start_info"] {
        assert_eq!(seen.iter().filter(|(t, _)| t == once).count(), 1, "{once}");
    }
    assert_eq!(
        got["scalars"]["train/loss"].as_array().unwrap().len(),
        30,
        "EventAccumulator sees each step once"
    );
}
