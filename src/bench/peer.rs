//! The PyTorch peer of the diffusion suite: runs `scripts/ddpm_peer.py bench` with the suite's
//! shape and threads through a given Python, reads its JSON lines back, and pairs them with
//! ours as ratios (ours ÷ peer). Without Python or torch the peer is not run, and the reason is
//! one line among the results, not an error: our own numbers stand.
//!
//! The script travels inside the binary (`PEER_SOURCE`, run with `python -c`), so an installed
//! `adainf` compares against the peer of its own version wherever it runs; `--peer-script`
//! runs a file instead (an edited peer).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use super::diffusion::{DiffusionBench, DiffusionLine, SAMPLE, TRAIN_STEP};
use crate::device::DeviceSpec;
use crate::error::{Error, Result};

/// `scripts/ddpm_peer.py`, as built into this binary.
const PEER_SOURCE: &str = include_str!("../../scripts/ddpm_peer.py");

/// The `--python` used when none is given.
pub const DEFAULT_PYTHON: &str = "python3";

/// How to run the peer.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// The Python (a name looked up on PATH, or a path).
    pub python: String,
    /// A peer script to run instead of the built-in copy.
    pub script: Option<PathBuf>,
    /// False with `--no-peer`.
    pub enabled: bool,
}

/// What became of the peer.
#[derive(Debug)]
pub enum PeerOutcome {
    /// Its lines, one per measurement, checked to be the same measurements as ours.
    Ran(Vec<Value>),
    /// Not run, and why (no Python, no torch, no PyTorch device for ours, `--no-peer`).
    Skipped(String),
    /// It ran and failed, or printed something other than the two measurements.
    Failed(String),
}

impl PeerOptions {
    /// Checks the options before anything is measured.
    pub fn check(&self) -> Result<()> {
        if let Some(path) = &self.script
            && !path.is_file()
        {
            return Err(Error::config(
                "peer-script",
                format!(
                    "{} is not a file; give the path of scripts/ddpm_peer.py, or leave the flag \
                     out to run the copy built into adainf",
                    path.display()
                ),
            ));
        }
        Ok(())
    }
}

/// The torch device that runs the same hardware as ours, or why there is none.
fn torch_device(device: &DeviceSpec) -> std::result::Result<String, String> {
    match device {
        DeviceSpec::Flex => Ok("cpu".into()),
        DeviceSpec::Cuda(i) => Ok(format!("cuda:{i}")),
        DeviceSpec::Wgpu | DeviceSpec::Vulkan => Err(format!(
            "PyTorch has no {} device; compare on --device flex (the CPU) or --device cuda",
            device.name()
        )),
    }
}

/// The last `n` non-empty lines of `text`, joined.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Runs the peer with `bench`'s shape and threads on the torch device matching `device`.
/// `ours` are our lines, to check that the peer measured the same model.
pub fn run(
    opts: &PeerOptions,
    bench: &DiffusionBench,
    device: &DeviceSpec,
    ours: &[DiffusionLine],
) -> PeerOutcome {
    if !opts.enabled {
        return PeerOutcome::Skipped("--no-peer was given".into());
    }
    let torch_device = match torch_device(device) {
        Ok(d) => d,
        Err(why) => return PeerOutcome::Skipped(why),
    };
    let mut cmd = Command::new(&opts.python);
    match &opts.script {
        Some(path) => cmd.arg(path),
        None => cmd.args(["-c", PEER_SOURCE]),
    };
    let threads = bench.threads.to_string();
    cmd.arg("bench")
        .args(["--channels", &bench.channels.to_string()])
        .args(["--batch", &bench.batch.to_string()])
        .args(["--size", &bench.size.to_string()])
        .args(["--steps", &bench.steps.to_string()])
        .args(["--warmup", &bench.warmup_steps.to_string()])
        .args(["--sample-steps", &bench.sample_steps.to_string()])
        .args(["--threads", &threads])
        .args(["--device", &torch_device])
        // torch.set_num_threads pins the intra-op pool; this keeps OpenMP from starting more.
        .env("OMP_NUM_THREADS", &threads);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            return PeerOutcome::Skipped(format!(
                "cannot start the peer's Python `{}` ({e}); give a Python 3 with torch \
                 installed with --python PATH",
                opts.python
            ));
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("No module named 'torch'") {
            return PeerOutcome::Skipped(format!(
                "torch is not installed for `{}`; install it there (pip install torch) or give a \
                 Python that has it with --python PATH",
                opts.python
            ));
        }
        return PeerOutcome::Failed(format!(
            "the PyTorch peer (`{}`) failed ({}): {}",
            opts.python,
            out.status,
            tail(&stderr, 4)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect();
    for line in ours {
        let Some(peer) = lines.iter().find(|l| l["bench"] == line.bench) else {
            return PeerOutcome::Failed(format!(
                "the PyTorch peer printed no `{}` line; its output ends: {}",
                line.bench,
                tail(&format!("{stdout}\n{stderr}"), 4)
            ));
        };
        if !rate(peer).is_some_and(|r| r > 0.0) {
            return PeerOutcome::Failed(format!(
                "the PyTorch peer's `{}` line has no positive images_per_s: {peer}",
                line.bench
            ));
        }
        if peer["params"] != line.params {
            return PeerOutcome::Failed(format!(
                "the PyTorch peer's UNet has {} parameters and ours {}: they are not the same \
                 model, so their speeds do not compare",
                peer["params"], line.params
            ));
        }
    }
    PeerOutcome::Ran(lines)
}

fn rate(line: &Value) -> Option<f64> {
    line["images_per_s"].as_f64().filter(|r| r.is_finite())
}

/// The line saying why the peer has no numbers (`outcome` Skipped or Failed).
pub fn note(outcome: &PeerOutcome) -> Option<Value> {
    let (key, why) = match outcome {
        PeerOutcome::Ran(_) => return None,
        PeerOutcome::Skipped(why) => ("skipped", why),
        PeerOutcome::Failed(why) => ("failed", why),
    };
    Some(json!({"bench": "diffusion_peer", "impl": "pytorch", key: why}))
}

/// One line per measurement: ours, the peer's and ours ÷ peer.
pub fn ratios(ours: &[DiffusionLine], peer: &[Value]) -> Vec<Value> {
    [TRAIN_STEP, SAMPLE]
        .into_iter()
        .filter_map(|bench| {
            let mine = ours.iter().find(|l| l.bench == bench)?.images_per_s;
            let theirs = peer.iter().find(|l| l["bench"] == bench).and_then(rate)?;
            Some(json!({
                "bench": "diffusion_ratio",
                "measure": bench,
                "ours_images_per_s": mine,
                "peer_images_per_s": theirs,
                "ratio": mine / theirs,
            }))
        })
        .collect()
}
