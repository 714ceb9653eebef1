//! Backends other than flex, tested without a GPU: wgpu on a software Vulkan device (lavapipe,
//! Debian's `mesa-vulkan-drivers`) must train like flex, and a CUDA build on a machine without
//! the NVIDIA driver must say so in one clear message.

#![cfg(any(feature = "wgpu", feature = "cuda"))]

mod common;

use common::*;

/// Six logged steps of a small SimCLR run with the full `symmetric` augmentation, so crops,
/// jitter, blur, the backbone, batch norm, the loss and SGD all run on the device.
#[cfg(feature = "wgpu")]
const SAME_SEED_RUN: &str = r#"
let real = data::synthetic(#{ n: 64, seed: 5, size: 16 });
let run = train::pretrain(#{ data: real, aug: "symmetric", backbone: "resnet10", width: 4,
                             batch: 16, steps: 6, optimizer: "sgd", lr: 0.05, warmup: 0,
                             proj_hidden: 32, proj_dim: 16, log_every: 1, seed: 2 });
for m in run.metrics { print(`loss=${m.loss}`); }
"#;

/// Largest relative difference allowed between a flex and a wgpu loss at the same step.
/// Both start from the same weights (initialised on the host) and see the same augmentation
/// parameters; what differs is float summation order on the device, which SGD carries forward.
/// Measured on lavapipe: 3.6e-7 at worst over the six steps.
#[cfg(feature = "wgpu")]
const LOSS_TOLERANCE: f64 = 1e-4;

#[cfg(feature = "wgpu")]
fn losses(ws: &Workspace, device: &str) -> Vec<f64> {
    let script = ws.script(&format!("{device}.rhai"), SAME_SEED_RUN);
    let out = bin()
        .arg("run")
        .arg(&script)
        .args(["--quiet", "--device", device, "--runs-dir"])
        .arg(ws.0.join(format!("runs-{device}")))
        // The first use of each kernel is autotuned; the minimal level keeps that short.
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "--device {device} failed (for wgpu without a GPU install Debian's mesa-vulkan-drivers, \
         which provides the lavapipe software device):\n{stderr}"
    );
    stdout
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("loss="))
        .map(|v| v.parse().unwrap())
        .collect()
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_trains_like_flex_from_the_same_seed() {
    let ws = Workspace::new("wgpu-vs-flex");
    let flex = losses(&ws, "flex");
    // Pinned to Vulkan: on a machine without a GPU that is lavapipe (wgpu's automatic choice
    // could fall back to a GL software renderer instead).
    let wgpu = losses(&ws, "vulkan");
    assert_eq!(flex.len(), 6, "{flex:?}");
    assert_eq!(wgpu.len(), flex.len(), "{wgpu:?}");
    let worst = flex
        .iter()
        .zip(&wgpu)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1e-12))
        .fold(0.0, f64::max);
    eprintln!("flex {flex:?}\nwgpu {wgpu:?}\nlargest relative difference {worst:.2e}");
    assert!(
        worst <= LOSS_TOLERANCE,
        "losses differ by {worst:.2e} (tolerance {LOSS_TOLERANCE:e}):\nflex {flex:?}\nwgpu {wgpu:?}"
    );
    // The run trains at all (not two identical constant curves).
    assert!(flex.iter().any(|l| (l - flex[0]).abs() > 1e-4), "{flex:?}");
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_driver_is_one_clear_error() {
    let ws = Workspace::new("cuda");
    let script = ws.script("c.rhai", "print(\"ran\");");
    let out = ws.run(&script, &["--device", "cuda"]);
    let (stdout, stderr) = text(&out);
    if out.status.success() {
        // A machine with an NVIDIA driver: the device opened and the script ran.
        assert!(stdout.contains("ran"), "{stdout}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CUDA") && stderr.contains("--device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR")) // mesa's noise, when burn also probes Vulkan
        .collect();
    assert_eq!(ours.len(), 1, "one message, got:\n{stderr}");
}

/// With no Vulkan driver visible (the loader pointed at a driver list that does not exist),
/// `--device vulkan` ends in one message that says what was tried and how to fix it.
#[cfg(feature = "wgpu")]
#[test]
fn vulkan_without_a_driver_is_one_clear_error() {
    let ws = Workspace::new("no-vulkan");
    let script = ws.script("v.rhai", "print(\"ran\");");
    let out = bin()
        .arg("run")
        .arg(&script)
        .args(["--device", "vulkan"])
        .env("VK_ICD_FILENAMES", ws.0.join("no-such-driver.json"))
        .env("VK_DRIVER_FILES", ws.0.join("no-such-driver.json"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("ran"), "{stdout}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR")) // mesa's own probing noise
        .collect();
    assert_eq!(ours.len(), 1, "one message, got:\n{stderr}");
    assert!(
        ours[0].contains("could not start a wgpu device (tried Vulkan")
            && ours[0].contains("mesa-vulkan-drivers")
            && ours[0].contains("--device flex"),
        "{stderr}"
    );
}

/// Reduced precision on a GPU backend: f16 convolutions on lavapipe (its Vulkan driver has
/// shaderFloat16; WGSL has no bf16) give the same first-step loss as f32 on flex, within the
/// rounding of f16 inputs and weights, and not exactly the same (the f16 path really ran).
#[cfg(feature = "wgpu")]
#[test]
fn f16_on_vulkan_tracks_f32_on_flex() {
    let first_loss = |device: &str, precision: &str| -> Option<f64> {
        let out = bin()
            .args(["bench", "--suite", "losses", "--steps", "1", "--width", "8"])
            .args(["--batch", "16", "--size", "16", "--placement", "device"])
            .args(["--device", device, "--precision", precision])
            .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        if !out.status.success() {
            assert!(stderr.contains("not supported"), "{stderr}");
            return None;
        }
        let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        Some(line["losses"][0].as_f64().unwrap())
    };
    let reference = first_loss("flex", "f32").unwrap();
    let Some(half) = first_loss("vulkan", "f16") else {
        eprintln!("skipped: this Vulkan device has no f16 support");
        return;
    };
    let rel = (half - reference).abs() / reference;
    assert!(
        rel < 1e-2 && rel > 1e-8,
        "f16 on vulkan {half} vs f32 on flex {reference}"
    );
}

/// A run's own `device` option reaches the `--jobs` worker that trains it (the command's
/// `--device` is only the default): each worker's log says it opened wgpu.
#[cfg(feature = "wgpu")]
#[test]
fn a_runs_device_option_reaches_its_jobs_worker() {
    let ws = Workspace::new("device-jobs");
    let script = ws.script(
        "jobs.rhai",
        r#"
let real = data::synthetic(#{ n: 32, seed: 5, size: 8 });
let base = #{ data: real, device: "wgpu", backbone: "resnet10", width: 4, batch: 8, steps: 2,
              optimizer: "sgd", lr: 0.05, warmup: 0, proj_hidden: 16, proj_dim: 8, log_every: 1 };
let runs = train::pretrain_all([base + #{ seed: 1 }, base + #{ seed: 2 }]);
print(`trained=${runs.len()}`);
"#,
    );
    let out = bin()
        .arg("run")
        .arg(&script)
        .args(["--quiet", "--device", "flex", "--jobs", "2", "--runs-dir"])
        .arg(ws.0.join("runs"))
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(value(&stdout, "trained"), "2");
    let logs: Vec<String> = std::fs::read_dir(ws.0.join("runs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("worker.log")).unwrap())
        .collect();
    assert_eq!(logs.len(), 2);
    for log in logs {
        assert!(log.contains("on device wgpu"), "{log}");
    }
}
