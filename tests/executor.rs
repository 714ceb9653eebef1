//! The executors end to end: local worker processes against the in-process run (pretraining
//! runs and generators), two drivers racing on one sweep, a killed worker whose claim expires
//! and whose run resumes, a failed run reported with its error, runs on DDPM samples (opened
//! by the workers from their sampling run's folder), and `adainf runs`.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// `n` tiny runs (seeds 0..n) as one batch; each prints its id, final loss and accuracy.
fn sweep(n: usize, steps: usize, lr: &str) -> String {
    format!(
        r#"
        let real = data::synthetic(#{{ n: 64, seed: 3, size: 8 }});
        let base = #{{ data: real, probe: real, width: 4, batch: 16, steps: {steps}, optimizer: "sgd",
                      lr: {lr}, warmup: 2, proj_hidden: 32, proj_dim: 16, eval_every: 0, log_every: 5,
                      checkpoint_every: 10 }};
        let configs = [];
        for s in 0..{n} {{ let c = base; c.seed = s; c.tags = #{{ k: s }}; configs.push(c); }}
        for r in train::pretrain_all(configs) {{
            print(`id=${{r.id}} loss=${{r.metrics[r.metrics.len() - 1].loss}} acc=${{r.accuracy}} k=${{r.tags.k}}`);
        }}
        "#
    )
}

/// `adainf runs DIR` with the claim timeout of the test.
fn listing(runs: &Path) -> String {
    let out = bin()
        .arg("runs")
        .arg(runs)
        .env("ADAINF_CLAIM_TIMEOUT", "3")
        .output()
        .unwrap();
    assert!(out.status.success());
    text(&out).0
}

/// `script` in process (runs folder `a`) and under `--jobs 2` (`b`), both succeeding, the
/// second in two worker processes: the first's stdout, the second's stdout and stderr.
fn in_process_and_in_workers(ws: &Workspace, script: &Path) -> (String, String, String) {
    let inline = ws.run_in(script, "a", &[]);
    let (out_a, err_a) = text(&inline);
    assert!(inline.status.success(), "{err_a}");
    let workers = ws.run_in(script, "b", &["--jobs", "2"]);
    let (out_b, err_b) = text(&workers);
    assert!(workers.status.success(), "{err_b}");
    assert!(err_b.contains("in 2 worker process(es)"), "{err_b}");
    (out_a, out_b, err_b)
}

/// Worker processes give the same runs (ids, losses, accuracies) as the in-process executor,
/// in the script's order, and `adainf runs` lists them as done with their tags.
#[test]
fn workers_reproduce_the_in_process_runs() {
    let ws = Workspace::new("workers");
    let script = ws.script("s.rhai", &sweep(3, 20, "0.05"));
    let (out_a, out_b, _) = in_process_and_in_workers(&ws, &script);
    let (a, b) = (run_results(&out_a), run_results(&out_b));
    assert_eq!(a.len(), 3);
    // The same computation in another process: equal to the last digit.
    assert_eq!(a, b, "in-process vs workers");
    for (i, line) in out_b.lines().filter(|l| l.starts_with("id=")).enumerate() {
        assert_eq!(value(line, "k"), i.to_string(), "order: {out_b}");
    }
    let list = listing(&ws.0.join("b"));
    assert!(list.contains("3 run(s): 3 done"), "{list}");
    assert!(list.contains("k=2"), "{list}");
    let json = bin()
        .args(["runs", "--json"])
        .arg(ws.0.join("b"))
        .output()
        .unwrap();
    let (json, _) = text(&json);
    assert_eq!(
        json.lines()
            .filter(|l| l.contains("\"state\":\"done\""))
            .count(),
        3,
        "{json}"
    );
}

/// Two drivers started together on one sweep (one with workers, one in-process) train each
/// run exactly once: every run's "training" line appears once across both drivers and the
/// workers' logs, and both drivers print the same results.
#[test]
fn racing_drivers_train_each_run_once() {
    let ws = Workspace::new("race");
    let script = ws.script("s.rhai", &sweep(4, 40, "0.05"));
    let runs = ws.0.join("runs");
    let spawn = |extra: &[&str]| {
        bin()
            .arg("run")
            .arg(&script)
            .arg("--runs-dir")
            .arg(&runs)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&["--jobs", "2"]);
    let second = spawn(&[]);
    let (o1, o2) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    let ((out1, err1), (out2, err2)) = (text(&o1), text(&o2));
    assert!(o1.status.success(), "{err1}");
    assert!(o2.status.success(), "{err2}");
    assert_eq!(run_results(&out1), run_results(&out2));
    let mut logs = format!("{err1}\n{err2}");
    for entry in std::fs::read_dir(&runs).unwrap().flatten() {
        if let Ok(log) = std::fs::read_to_string(entry.path().join("worker.log")) {
            logs.push_str(&log);
        }
    }
    for (id, _, _) in run_results(&out1) {
        let trained = logs
            .lines()
            .filter(|l| l.contains(&format!("run {id}: training")))
            .count();
        assert_eq!(trained, 1, "run {id} trained {trained} times:\n{logs}");
    }
}

/// A worker killed mid-run leaves its claim; once the claim's heartbeat is older than the
/// timeout, the next driver takes the run over, resumes it from its checkpoint, and ends with
/// the loss of an uninterrupted run.
#[test]
fn a_killed_workers_claim_expires_and_the_run_resumes() {
    let ws = Workspace::new("takeover");
    let script = ws.script("s.rhai", &sweep(2, 200, "0.05"));
    let reference = ws.run_in(&script, "reference", &[]);
    let (ref_out, ref_err) = text(&reference);
    assert!(reference.status.success(), "{ref_err}");

    let runs = ws.0.join("runs");
    let mut driver = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(&runs)
        .args(["--jobs", "2", "--quiet"])
        .env("ADAINF_CLAIM_TIMEOUT", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a worker to write a checkpoint past step 20, then kill that worker (its pid is
    // in its claim) with SIGKILL.
    let started = Instant::now();
    let (claim, pid) = loop {
        let found = std::fs::read_dir(&runs).ok().and_then(|entries| {
            entries.flatten().find_map(|e| {
                let state = std::fs::read_to_string(e.path().join("checkpoint/state.json")).ok()?;
                let step: usize = state
                    .split("\"step\":")
                    .nth(1)?
                    .trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()?;
                let claim = std::fs::read_to_string(e.path().join("claim.json")).ok()?;
                let pid: u32 = claim
                    .split("\"pid\":")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .trim()
                    .parse()
                    .ok()?;
                (step >= 20).then(|| (e.path().join("claim.json"), pid))
            })
        });
        if let Some(f) = found {
            break f;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let status = driver.wait().unwrap();
    assert!(
        !status.success(),
        "the driver must report the run its worker did not finish"
    );
    let run_dir = claim.parent().unwrap().to_path_buf();
    assert!(claim.exists(), "a killed worker leaves its claim behind");
    assert!(!run_dir.join("result.json").exists());

    // The claim belongs to a process that no longer exists on this machine; to exercise the
    // timeout (as for a claim from another node), make its owner look remote.
    let text_claim = std::fs::read_to_string(&claim).unwrap();
    let host = text_claim
        .split("\"host\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        &claim,
        text_claim.replace(&format!("\"host\":\"{host}\""), "\"host\":\"another-node\""),
    )
    .unwrap();
    let list = listing(&runs);
    assert!(
        list.contains("running"),
        "a fresh claim lists as running:\n{list}"
    );
    std::thread::sleep(Duration::from_millis(3500));
    let list = listing(&runs);
    assert!(
        list.contains("claimed"),
        "an expired claim lists as claimed:\n{list}"
    );

    let again = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(&runs)
        .args(["--jobs", "2"])
        .env("ADAINF_CLAIM_TIMEOUT", "3")
        .output()
        .unwrap();
    let (out, err) = text(&again);
    assert!(again.status.success(), "{err}");
    let log = std::fs::read_to_string(run_dir.join("worker.log")).unwrap();
    assert!(
        log.contains("resuming from the checkpoint at step"),
        "{log}"
    );
    let (a, b) = (run_results(&out), run_results(&ref_out));
    assert_eq!(a.len(), 2);
    assert_same_runs(&a, &b, "resumed vs uninterrupted");
}

/// A run that fails (its loss overflows) is recorded with its error; the driver names it,
/// a second driver reports it without training it again, `adainf runs` lists it as failed, and
/// --retry-failed trains it again.
#[test]
fn a_failed_run_is_reported_with_its_error() {
    let ws = Workspace::new("failed");
    let script = ws.script("s.rhai", &sweep(2, 20, "1e30"));
    for extra in [&["--jobs", "2"][..], &[][..]] {
        let out = ws.run_in(&script, "runs", extra);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("failed") && err.contains("the loss became"),
            "{err}"
        );
        assert!(err.contains("--retry-failed"), "{err}");
    }
    let list = listing(&ws.0.join("runs"));
    assert!(list.contains("2 failed"), "{list}");
    let retry = ws.run_in(&script, "runs", &["--retry-failed"]);
    let (_, err) = text(&retry);
    assert!(
        err.contains(": training 20 steps"),
        "a retry trains again: {err}"
    );
}

/// Generators trained by `--jobs 2` workers (`gen::diffusion_all`) are the in-process ones:
/// the same ids in the script's order, the same EMA weights byte for byte and the same
/// logged losses; each worker's log and request are in its run folder, and the same script
/// again loads both without starting a worker.
#[test]
fn workers_train_generators_to_the_in_process_weights() {
    let ws = Workspace::new("generator-workers");
    let script = ws.script("g.rhai", GENERATORS);
    let (out_a, out_b, err_b) = in_process_and_in_workers(&ws, &script);
    assert!(
        err_b.contains("2 run(s) to train in 2 worker process(es)"),
        "{err_b}"
    );
    let (a, b) = (generator_results(&out_a), generator_results(&out_b));
    assert_eq!(a.len(), 2, "{out_a}");
    assert_eq!(a, b, "in-process vs workers");
    assert!(b.iter().all(|(_, cached)| cached == "false"), "{out_b}");
    assert_ne!(a[0].0, a[1].0);
    let ids: Vec<String> = a.into_iter().map(|(id, _)| id).collect();
    assert_same_generators(
        &ws.0.join("a"),
        &ws.0.join("b"),
        &ids,
        "in-process vs workers",
    );
    for id in &ids {
        let dir = ws.0.join("b").join(id);
        let request = std::fs::read_to_string(dir.join("request.json")).unwrap();
        assert!(request.contains("\"kind\": \"diffusion\""), "{request}");
        assert!(dir.join("worker.log").is_file());
        assert!(
            !dir.join("checkpoint").exists(),
            "a finished generator keeps no checkpoint"
        );
    }
    let again = ws.run_in(&script, "b", &["--jobs", "2"]);
    let (out, err) = text(&again);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains("worker process"), "{err}");
    let cached = generator_results(&out);
    assert_eq!(cached.len(), 2);
    assert!(cached.iter().all(|(_, c)| c == "true"), "{out}");
}

/// Pretraining runs on real images inflated with DDPM samples (`gen::sample`) train in
/// `--jobs 2` workers to the in-process runs (same ids, losses and accuracies): the samples
/// are drawn once, by the driver, and each request's recipe names their sampling run's folder
/// (with the sealed SHA-256 of `samples.npz`), from which the workers open them.
#[test]
fn workers_train_on_diffusion_samples_to_the_in_process_runs() {
    let ws = Workspace::new("sample-workers");
    let script = ws.script("s.rhai", SAMPLED_SWEEP);
    let (out_a, out_b, err_b) = in_process_and_in_workers(&ws, &script);
    assert!(
        err_b.contains("2 run(s) to train in 2 worker process(es)"),
        "{err_b}"
    );
    let (a, b) = (run_results(&out_a), run_results(&out_b));
    assert_eq!(a.len(), 2, "{out_a}");
    assert_ne!(a[0].0, a[1].0);
    assert_eq!(a, b, "in-process vs workers");
    let samples = samples_dir(&ws.0.join("b"));
    for (id, _, _) in &b {
        let dir = ws.0.join("b").join(id);
        assert!(dir.join("worker.log").is_file(), "trained by a worker");
        let request: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("request.json")).unwrap())
                .unwrap();
        let generated = &request["data"]["recipe"]["generated"];
        assert_eq!(generated["kind"], "diffusion_sample", "{request}");
        assert_eq!(
            generated["dir"].as_str().map(std::path::PathBuf::from),
            Some(samples.clone())
        );
    }
}
