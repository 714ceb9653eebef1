//! Helpers shared by the integration tests: the binary, a scratch folder that cleans up
//! after itself, reading `key=value` words from a script's output, and the Python that reads
//! what adainf writes.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_adainf"))
}

pub struct Workspace(pub PathBuf);

impl Workspace {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("adainf-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workspace(dir)
    }
    pub fn script(&self, name: &str, source: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, source).unwrap();
        p
    }
    /// `adainf run SCRIPT --runs-dir <ws>/runs EXTRA...`, not started yet.
    pub fn command(&self, script: &Path, extra: &[&str]) -> Command {
        self.command_in(script, "runs", extra)
    }
    /// `command` with the runs folder `<ws>/RUNS`.
    pub fn command_in(&self, script: &Path, runs: &str, extra: &[&str]) -> Command {
        let mut command = bin();
        command
            .arg("run")
            .arg(script)
            .arg("--runs-dir")
            .arg(self.0.join(runs))
            .args(extra);
        command
    }
    pub fn run(&self, script: &Path, extra: &[&str]) -> Output {
        self.command(script, extra).output().unwrap()
    }
    /// `run` with the runs folder `<ws>/RUNS`.
    pub fn run_in(&self, script: &Path, runs: &str, extra: &[&str]) -> Output {
        self.command_in(script, runs, extra).output().unwrap()
    }
    /// `run`, killed after `limit`: None where it had not ended by then (a hang detector for
    /// scripts that used to run for hours, not a speed test).
    pub fn run_bounded(
        &self,
        script: &Path,
        extra: &[&str],
        limit: std::time::Duration,
    ) -> Option<Output> {
        let mut child = self
            .command(script, extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        ended_within(&mut child, limit).then(|| child.wait_with_output().unwrap())
    }

    /// `run` interrupted as a user would with Ctrl-C: SIGINT two seconds after the script
    /// printed `line` (its first line), then it must end within 60 s (`what` names the work in
    /// the panic otherwise). Its output, and what it printed after `line`.
    pub fn interrupted_after(&self, script: &Path, line: &str, what: &str) -> (Output, String) {
        let mut child = self
            .command(script, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut out, &mut first).unwrap();
        assert_eq!(first.trim(), line);
        std::thread::sleep(std::time::Duration::from_secs(2));
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        assert!(
            ended_within(&mut child, std::time::Duration::from_secs(60)),
            "{what} went on for 60 s after Ctrl-C"
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        (child.wait_with_output().unwrap(), rest)
    }
}

/// Whether `child` ended within `limit`; it is killed (and reaped) when it did not.
pub fn ended_within(child: &mut std::process::Child, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tensor bytes of a burnpack file (`.bpk`): after the magic `NRUB`, a u16 version and a
/// u32 (little-endian) header length, the CBOR header (names, shapes, offsets and each
/// parameter's id, which is new in every process), then the data.
pub fn tensor_data(file: &[u8]) -> &[u8] {
    assert_eq!(&file[..4], b"NRUB", "not a burnpack file");
    let header = u32::from_le_bytes([file[6], file[7], file[8], file[9]]) as usize;
    &file[10 + header..]
}

/// Two tiny DDPM generators (seeds 0 and 1, with dropout and checkpoints) as one
/// `gen::diffusion_all` batch; each prints its id, whether it was cached and its final loss.
pub const GENERATORS: &str = r#"
let real = data::synthetic(#{ n: 16, seed: 1, size: 16 });
let base = #{ steps: 6, batch: 4, channels: 4, channel_mult: [1, 2], attention_at: [8],
              timesteps: 50, dropout: 0.1, checkpoint_every: 3 };
let configs = [];
for s in 0..2 { let c = base; c.seed = s; configs.push(c); }
for g in gen::diffusion_all(real, configs) {
    print(`id=${g.id} cached=${g.cached} loss=${g.info().final_loss}`);
}
"#;

/// Two tiny pretraining runs (seeds 0 and 1, ResNet-10 of width 4) as one batch on 16 real
/// images inflated with 8 samples of a tiny DDPM (`gen::sample`, stored in their sampling
/// run's folder); each prints its id, final loss and accuracy.
pub const SAMPLED_SWEEP: &str = r#"
let real = data::synthetic(#{ n: 16, seed: 2, size: 16 });
let g = gen::diffusion(real, #{ steps: 2, batch: 2, channels: 4, channel_mult: [1, 2],
                               attention_at: [], timesteps: 10 });
let samples = gen::sample(g, 8, #{ steps: 2, batch: 4, seed: 5 });
let mixed = data::inflate(real, samples, #{ dup: 1 });
let base = #{ data: mixed, probe: real, backbone: "resnet10", width: 4, batch: 8, steps: 4,
              optimizer: "sgd", lr: 0.05, warmup: 1, proj_hidden: 16, proj_dim: 8, eval_every: 0,
              log_every: 2 };
let configs = [];
for s in 0..2 { let c = base; c.seed = s; configs.push(c); }
for r in train::pretrain_all(configs) {
    print(`id=${r.id} loss=${r.metrics[r.metrics.len() - 1].loss} acc=${r.accuracy}`);
}
"#;

/// The folder of the stored samples (the one with `samples.npz`) in the runs folder `runs`.
pub fn samples_dir(runs: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("samples.npz").is_file())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sampling run in {}: {found:?}",
        runs.display()
    );
    found.into_iter().next().unwrap()
}

/// The `id=… cached=…` lines of `GENERATORS`: (id, cached).
pub fn generator_results(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("id="))
        .map(|l| (value(l, "id"), value(l, "cached")))
        .collect()
}

/// The generator runs `ids` in `a` and `b` are the same: EMA weights equal byte for byte,
/// the same logged losses.
pub fn assert_same_generators(a: &Path, b: &Path, ids: &[String], what: &str) {
    for id in ids {
        let read = |dir: &Path, f: &str| std::fs::read(dir.join(id).join(f)).unwrap();
        let (wa, wb) = (read(a, "ema.bpk"), read(b, "ema.bpk"));
        let (ta, tb) = (tensor_data(&wa), tensor_data(&wb));
        assert_eq!(ta.len(), tb.len(), "{what}: {id}");
        let differing = ta.iter().zip(tb).filter(|(x, y)| x != y).count();
        assert_eq!(
            differing, 0,
            "{what}: {id}: {differing} weight bytes differ"
        );
        let losses = |dir: &Path| -> Vec<(u64, f64)> {
            String::from_utf8(read(dir, "metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
                .collect()
        };
        assert_eq!(
            losses(a),
            losses(b),
            "{what}: {id}: the logged steps and losses"
        );
    }
}

/// Makes a FIFO at `path` (a file that blocks its reader until someone writes).
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn value(stdout: &str, key: &str) -> String {
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing in {stdout}"))
        .to_string()
}

/// The `id=… loss=… acc=…` lines a sweep script prints, in order.
pub fn run_results(stdout: &str) -> Vec<(String, f64, String)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("id="))
        .map(|l| {
            (
                value(l, "id"),
                value(l, "loss").parse().unwrap(),
                value(l, "acc"),
            )
        })
        .collect()
}

/// Two executions of one sweep agree: the same run ids in the same order, final losses within
/// 1e-4 (relative; a run resumed from a checkpoint repeats the same steps) and the same probe
/// accuracies.
pub fn assert_same_runs(a: &[(String, f64, String)], b: &[(String, f64, String)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for ((id_a, loss_a, acc_a), (id_b, loss_b, acc_b)) in a.iter().zip(b) {
        assert_eq!(id_a, id_b, "{what}");
        assert!(
            (loss_a - loss_b).abs() <= 1e-4 * loss_b.abs().max(1.0),
            "{what}: loss {loss_a} vs {loss_b}"
        );
        assert_eq!(acc_a, acc_b, "{what}");
    }
}

/// The Python of `ADAINF_TEST_PYTHON`, checked to import `module` (CI makes a venv with
/// `tensorboard`, which brings `numpy`, and sets it). Without it: None after saying why, except
/// under CI (`CI=true`), where the test fails instead of skipping.
pub fn test_python(module: &str) -> Option<PathBuf> {
    let found = std::env::var_os("ADAINF_TEST_PYTHON").map(PathBuf::from);
    if let Some(p) = &found {
        let ok = Command::new(p)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "ADAINF_TEST_PYTHON={} cannot import {module}; pip install {module} into it",
            p.display()
        );
        return found;
    }
    let msg = format!(
        "ADAINF_TEST_PYTHON is not set: it names a Python with the `{module}` package \
         (python3 -m venv /work/venv-tb && /work/venv-tb/bin/pip install tensorboard)"
    );
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{msg} (.ci/run sets it up)"
    );
    eprintln!("skipped: {msg}");
    None
}
