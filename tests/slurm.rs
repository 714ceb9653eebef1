//! `--executor slurm` on a real Slurm: a sweep of four tiny runs as one job array, one array
//! task requeued mid-run (it resumes from its checkpoint), and results equal to a local
//! sequential run of the same script; two generators (`gen::diffusion_all`) as an array, equal
//! to local ones; two runs on DDPM samples as an array, equal to local ones. Needs a running Slurm whose nodes share this machine's
//! filesystem: CI starts one (scripts/slurm-local.sh) and sets ADAINF_SLURM_TEST=1; elsewhere
//! the test says it did not run.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn sweep() -> &'static str {
    r#"
    let real = data::synthetic(#{ n: 64, seed: 3, size: 8 });
    let base = #{ data: real, probe: real, width: 4, batch: 16, steps: 600, optimizer: "sgd",
                  lr: 0.05, warmup: 2, proj_hidden: 32, proj_dim: 16, eval_every: 0, log_every: 10,
                  checkpoint_every: 20 };
    let configs = [];
    for s in 0..4 { let c = base; c.seed = s; configs.push(c); }
    for r in train::pretrain_all(configs) {
        print(`id=${r.id} loss=${r.metrics[r.metrics.len() - 1].loss} acc=${r.accuracy}`);
    }
    "#
}

/// Whether a Slurm is there to test against; says so when not.
fn slurm_here() -> bool {
    let here = std::env::var("ADAINF_SLURM_TEST").as_deref() == Ok("1");
    if !here {
        eprintln!("not run: set ADAINF_SLURM_TEST=1 with a running Slurm (scripts/slurm-local.sh)");
    }
    here
}

#[test]
fn a_sweep_runs_as_a_job_array_and_a_requeued_task_resumes() {
    if !slurm_here() {
        return;
    }
    let ws = Workspace::new("slurm");
    let script = ws.script("s.rhai", sweep());
    let local = ws.run_in(&script, "local", &["--quiet"]);
    let (local_out, local_err) = text(&local);
    assert!(local.status.success(), "{local_err}");

    let runs = ws.0.join("runs");
    let driver = ws
        .command_in(
            &script,
            "runs",
            &["--executor", "slurm", "--slurm-throttle", "2"],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Requeue the first task seen past its checkpoint at step 40.
    let started = Instant::now();
    let task = loop {
        let found = std::fs::read_dir(&runs).ok().and_then(|entries| {
            entries.flatten().find_map(|e| {
                let state = std::fs::read_to_string(e.path().join("checkpoint/state.json")).ok()?;
                let past = !state.contains("\"step\": 20,") && state.contains("\"step\"");
                let claim = std::fs::read_to_string(e.path().join("claim.json")).ok()?;
                let task = claim
                    .split("\"slurm\":\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .to_string();
                (past && !e.path().join("result.json").exists()).then_some(task)
            })
        });
        if let Some(t) = found {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no task reached a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let requeue = Command::new("scontrol")
        .args(["requeue", &task])
        .output()
        .unwrap();
    assert!(
        requeue.status.success(),
        "{}",
        String::from_utf8_lossy(&requeue.stderr)
    );
    // Slurm delays a requeued task by two minutes; let it start again at once (StartTime; the update is
    // refused until the requeue has completed, so try for a while).
    for _ in 0..60 {
        let pending = Command::new("squeue")
            .args(["-h", "-j", &task, "-o", "%T %r"])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&pending.stdout).to_string();
        if state.contains("PENDING") {
            let update = Command::new("scontrol")
                .args(["update", &format!("JobId={task}"), "StartTime=now"])
                .output()
                .unwrap();
            if update.status.success() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = driver.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("as Slurm array job"), "{stderr}");
    let (a, b) = (run_results(&stdout), run_results(&local_out));
    assert_eq!(a.len(), 4, "{stdout}");
    assert_same_runs(&a, &b, "Slurm vs local sequential");
    let index = task.rsplit('_').next().unwrap();
    let logs: String = std::fs::read_dir(runs.join(".slurm"))
        .unwrap()
        .flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join(format!("task-{index}.log"))).ok())
        .collect();
    assert!(
        logs.contains("resuming from the checkpoint at step"),
        "{logs}"
    );
}

/// Two generators of one `gen::diffusion_all` batch train as a job array to the weights of
/// local in-process ones (byte for byte), and a second driver loads them from the cache.
#[test]
fn generators_train_as_a_job_array() {
    if !slurm_here() {
        return;
    }
    let ws = Workspace::new("slurm-generators");
    let script = ws.script("g.rhai", GENERATORS);
    let local = ws.run_in(&script, "local", &["--quiet"]);
    let (local_out, local_err) = text(&local);
    assert!(local.status.success(), "{local_err}");
    let runs = ws.0.join("runs");
    let slurm = || ws.run_in(&script, "runs", &["--executor", "slurm"]);
    let out = slurm();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("submitted 2 run(s) as Slurm array job"),
        "{stderr}"
    );
    let (a, b) = (generator_results(&stdout), generator_results(&local_out));
    assert_eq!(a.len(), 2, "{stdout}");
    assert_eq!(a, b, "Slurm vs local");
    let ids: Vec<String> = a.into_iter().map(|(id, _)| id).collect();
    assert_same_generators(&runs, &ws.0.join("local"), &ids, "Slurm vs local");
    let again = slurm();
    let (stdout, stderr) = text(&again);
    assert!(again.status.success(), "{stderr}");
    assert!(!stderr.contains("submitted"), "{stderr}");
    assert!(
        generator_results(&stdout).iter().all(|(_, c)| c == "true"),
        "{stdout}"
    );
}

/// Two pretraining runs on real images inflated with DDPM samples (`gen::sample`, drawn by the
/// driver) train as a job array to the runs of a local in-process driver: the array tasks open
/// the samples from their sampling run's folder in the shared runs folder.
#[test]
fn runs_on_diffusion_samples_train_as_a_job_array() {
    if !slurm_here() {
        return;
    }
    let ws = Workspace::new("slurm-samples");
    let script = ws.script("s.rhai", SAMPLED_SWEEP);
    let local = ws.run_in(&script, "local", &["--quiet"]);
    let (local_out, local_err) = text(&local);
    assert!(local.status.success(), "{local_err}");
    let out = ws.run_in(&script, "runs", &["--executor", "slurm"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("submitted 2 run(s) as Slurm array job"),
        "{stderr}"
    );
    let (a, b) = (run_results(&stdout), run_results(&local_out));
    assert_eq!(a.len(), 2, "{stdout}");
    assert_same_runs(&a, &b, "Slurm vs local");
}
