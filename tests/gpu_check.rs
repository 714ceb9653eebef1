//! The travelling GPU check (`scripts/gpu_check.py`) runs end to end here, at tiny sizes, with
//! wgpu on lavapipe standing in for the GPU and the PyTorch peer on the CPU when torch is
//! installed, so the first call on a real GPU is never spent finding a typo. With
//! `ADAINF_GPU_BUNDLE=DIR` (set by CI after `scripts/gpu-pack.sh DIR`) it runs from the packed
//! bundle, exactly what travels; otherwise from the test build's binary.

#![cfg(feature = "wgpu")]

mod common;

use common::Workspace;
use serde_json::Value;
use std::process::Command;

fn python() -> Option<&'static str> {
    ["python3", "python"].into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_travelling_gpu_check_runs_end_to_end_on_lavapipe() {
    let Some(python) = python() else {
        eprintln!("skipped: no python3 on this machine (the GPU check is a Python driver)");
        return;
    };
    let ws = Workspace::new("gpu-check");
    let results = ws.0.join("results.jsonl");
    let mut cmd = Command::new(python);
    cmd.arg("scripts/gpu_check.py");
    match std::env::var("ADAINF_GPU_BUNDLE") {
        Ok(bundle) => cmd.args(["--bundle", &bundle]),
        Err(_) => cmd.args(["--bin", env!("CARGO_BIN_EXE_adainf")]),
    };
    let out = cmd
        .args([
            "--tiny",
            "--gpus",
            "cuda,vulkan",
            "--run-seconds",
            "4",
            "--out",
        ])
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the check itself failed:\n{stderr}");
    let text = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of =
        |check: &str| -> Vec<&Value> { lines.iter().filter(|l| l["check"] == check).collect() };
    let all = || text.clone();

    // The devices this build has, with the adapter names they opened.
    let devices = of("device");
    assert!(
        devices
            .iter()
            .any(|d| d["device"] == "flex" && d["ok"] == true),
        "{}",
        all()
    );
    let wgpu = devices
        .iter()
        .find(|d| d["device"] == "wgpu")
        .unwrap_or_else(|| panic!("no wgpu line:\n{}", all()));
    assert_eq!(wgpu["ok"], true, "{}", all());
    assert!(wgpu["name"].as_str().is_some_and(|n| !n.is_empty()));
    if cfg!(feature = "cuda") {
        let cuda = devices.iter().find(|d| d["device"] == "cuda:0").unwrap();
        if cuda["ok"] == false {
            // No NVIDIA driver here: cuda is skipped with its reason, and the check goes on.
            assert!(
                cuda["error"].as_str().unwrap().contains("CUDA"),
                "{}",
                all()
            );
            assert!(of("skip").iter().any(|s| s["asked"] == "cuda"), "{}", all());
        }
    }

    // The same seeded steps agree between flex and the Vulkan device.
    let agreement = of("agreement");
    let vulkan = agreement
        .iter()
        .find(|a| a["asked"] == "vulkan")
        .unwrap_or_else(|| panic!("no agreement line for vulkan:\n{}", all()));
    assert_eq!(vulkan["pass"], true, "{}", all());
    assert_eq!(vulkan["steps"], 6);

    // The bench ran on the Vulkan device (train step and augmentation) in f32, with the data
    // resident on the device.
    let step = of("bench")
        .into_iter()
        .find(|b| {
            b["bench"] == "simclr_train_step" && b["asked"] == "vulkan" && b["precision"] == "f32"
        })
        .unwrap_or_else(|| panic!("no f32 train-step bench on vulkan:\n{}", all()));
    assert!(step["images_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(step["placement"], "device", "{}", all());

    // The peer ran on the CPU, or says why not.
    let peer = of("peer");
    assert!(!peer.is_empty(), "{}", all());
    for p in &peer {
        assert!(
            p["skipped"].is_string() || p["images_per_s"].as_f64().is_some_and(|v| v > 0.0),
            "{}",
            all()
        );
    }

    // The diffusion generator on flex (tiny): our training and sampling rates, and the peer's
    // numbers with both ratios, or the one line saying why the peer did not run.
    let diffusion = of("diffusion");
    for bench in ["diffusion_train_step", "diffusion_sample"] {
        let ours = diffusion
            .iter()
            .find(|d| d["bench"] == bench && d["impl"] == "adainf")
            .unwrap_or_else(|| panic!("no {bench} line of ours:\n{}", all()));
        assert_eq!(ours["asked"], "flex", "{}", all());
        assert!(ours["images_per_s"].as_f64().is_some_and(|v| v > 0.0));
    }
    let ratios = diffusion
        .iter()
        .filter(|d| d["bench"] == "diffusion_ratio")
        .count();
    let why = diffusion
        .iter()
        .filter(|d| d["bench"] == "diffusion_peer" && d["skipped"].is_string())
        .count();
    assert!(
        (ratios, why) == (2, 0) || (ratios, why) == (0, 1),
        "{}",
        all()
    );

    // The training run through `adainf run` reports its throughput and data wait.
    let run = of("run")
        .into_iter()
        .find(|r| r["images_per_s"].is_number())
        .unwrap_or_else(|| panic!("no run line:\n{}", all()));
    assert!(
        run["data_wait"]
            .as_f64()
            .is_some_and(|w| (0.0..=1.0).contains(&w))
    );
    assert_eq!(run["placement"], "device", "{}", all());
    assert_eq!(of("done").len(), 1, "{}", all());
}
