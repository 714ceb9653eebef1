//! End-to-end tests of the `adainf` binary on tiny configs (CPU, `flex`): a real training
//! script, the run cache, and the error paths users hit.

mod common;

use common::*;
use std::path::Path;

/// An easy setting: no augmentation (both views identical, so instance discrimination is easy)
/// and the online probe evaluated on its own training images. (120 steps: since the embedded
/// images vary in position and polarity, 60 steps left the probe at 0.17, too close to chance
/// to tell a working pipeline from a broken one; 120 reach 0.35.)
const TINY: &str = r#"
let real = data::synthetic(#{ n: 160, seed: 3, size: 16 });
let plain = aug::simclr(#{ crop_min: 1.0, flip_prob: 0, jitter_prob: 0, gray_prob: 0, blur_prob: 0 });
let run = train::pretrain(#{ data: real, aug: plain, probe: real, width: 4, batch: 32, steps: 120,
                             optimizer: "sgd", lr: 0.05, warmup: 4, proj_hidden: 64, proj_dim: 32,
                             eval_every: 20, log_every: 5, classifier_lr: 1.0, seed: 1 });
let m = run.metrics;
print(`first_loss=${m[0].loss} last_loss=${m[m.len() - 1].loss} accuracy=${run.accuracy} cached=${run.cached}`);
print(`knn=${eval::knn(run, real, real, #{ k: 5 })}`);
report::save_csv([run], "rows.csv");
"#;

#[test]
fn a_real_script_trains_evaluates_and_is_cached() {
    let ws = Workspace::new("e2e");
    let script = ws.script("tiny.rhai", TINY);
    let out = ws.run(&script, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let first: f64 = value(&stdout, "first_loss").parse().unwrap();
    let last: f64 = value(&stdout, "last_loss").parse().unwrap();
    let acc: f64 = value(&stdout, "accuracy").parse().unwrap();
    assert!(last < 0.8 * first, "loss did not fall: {first} -> {last}");
    assert!(acc > 0.2, "probe accuracy {acc} is not above chance (0.1)");
    assert_eq!(value(&stdout, "cached"), "false");
    // The run folder holds the promised files.
    let runs: Vec<_> = std::fs::read_dir(ws.0.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    for f in [
        "config.json",
        "metrics.jsonl",
        "result.json",
        "backbone.bpk",
        "probe.bpk",
    ] {
        assert!(runs[0].join(f).exists(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(runs[0].join("metrics.jsonl")).unwrap();
    assert!(
        metrics.lines().count() >= 8
            && metrics.contains("images_per_s")
            && metrics.contains("probe_acc")
    );
    let csv = std::fs::read_to_string(ws.0.join("rows.csv")).unwrap();
    assert!(
        csv.starts_with("id,method,") && csv.lines().count() == 2,
        "{csv}"
    );

    // Second run: found in the cache, same numbers, no training.
    let again = ws.run(&script, &[]);
    let (stdout2, stderr2) = text(&again);
    assert!(again.status.success(), "{stderr2}");
    assert_eq!(value(&stdout2, "cached"), "true");
    assert!(stderr2.contains("loaded from the run cache"), "{stderr2}");
    assert_eq!(value(&stdout, "accuracy"), value(&stdout2, "accuracy"));
    assert_eq!(value(&stdout, "knn"), value(&stdout2, "knn"));
}

#[test]
fn syntax_error_reports_position_and_exit_code_1() {
    let ws = Workspace::new("syntax");
    let script = ws.script(
        "bad.rhai",
        "let a = data::synthetic(#{ n: 10 });\nlet b = a.len(;\n",
    );
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad.rhai:2:") && stderr.contains("syntax error"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn unknown_option_key_names_key_and_position() {
    let ws = Workspace::new("unknown");
    let script = ws.script("k.rhai", "let d = data::synthetic(#{ n: 40, size: 16 });\nlet r = train::pretrain(#{ data: d, stpes: 3 });\n");
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("k.rhai:2:")
            && stderr.contains("`stpes`")
            && stderr.contains("did you mean `steps`"),
        "{stderr}"
    );
}

#[test]
fn missing_script_and_bad_usage() {
    let ws = Workspace::new("missing");
    let out = ws.run(&ws.0.join("nope.rhai"), &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("nope.rhai") && stderr.contains("cannot read"),
        "{stderr}"
    );
    let usage = bin().arg("run").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let unknown_flag = bin()
        .args(["run", "x.rhai", "--speed", "9"])
        .output()
        .unwrap();
    assert_eq!(unknown_flag.status.code(), Some(2));
}

#[test]
fn runaway_loop_ends_with_an_error() {
    let ws = Workspace::new("loop");
    let script = ws.script("loop.rhai", "let n = 0;\nwhile true { n += 1; }\n");
    let out = ws.run(&script, &["--max-operations", "100000"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("operation budget"), "{stderr}");
}

#[test]
fn unavailable_device_is_a_clear_error() {
    let ws = Workspace::new("device");
    let script = ws.script("d.rhai", "print(1);");
    let out = ws.run(&script, &["--device", "tpu"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("unknown device") && stderr.contains("flex"),
        "{stderr}"
    );
}

#[test]
fn script_parameters_reach_the_script() {
    let ws = Workspace::new("params");
    let script = ws.script(
        "p.rhai",
        "print(`seed=${params.seed} name=${params.name}`);",
    );
    let out = ws.run(&script, &["--", "seed=3", "name=abc"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("seed=3 name=abc"), "{stdout}");
}

#[test]
fn check_reports_all_problems_and_api_lists_functions() {
    let ws = Workspace::new("check");
    let script = ws.script("c.rhai", "let d = data::synthetc(#{ n: 5 });\nlet a = aug::simclr(#{ crop_mn: 0.2, gray_prob: \"x\" });\n");
    let out = bin().arg("check").arg(&script).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("3 problem(s)")
            && stderr.contains("c.rhai:1:")
            && stderr.contains("crop_mn"),
        "{stderr}"
    );
    let defs = ws.0.join("defs");
    let api = bin().arg("api").arg("--defs").arg(&defs).output().unwrap();
    assert!(api.status.success());
    let train_defs = std::fs::read_to_string(defs.join("train.d.rhai")).unwrap();
    assert!(
        train_defs.contains("fn pretrain(opts: map) -> Run;")
            && train_defs.contains("- `steps` (int)"),
        "{train_defs}"
    );
    let (stdout, _) = text(&api);
    for f in [
        "data::synthetic",
        "data::inflate",
        "aug::preset",
        "train::pretrain",
        "eval::knn",
        "eval::linear",
        "report::table",
        "report::save_csv",
    ] {
        assert!(stdout.contains(f), "{f} missing from `adainf api`");
    }
    // `--json`: every function with its options, kinds, closed sets' names and defaults (per
    // method where the methods differ); with `--markdown` it is a usage error.
    let json = bin().args(["api", "--json"]).output().unwrap();
    assert!(json.status.success(), "{}", text(&json).1);
    let api: serde_json::Value = serde_json::from_str(&text(&json).0).unwrap();
    let functions = api["functions"].as_array().unwrap();
    let pretrain = functions
        .iter()
        .find(|f| f["path"] == "train::pretrain")
        .unwrap();
    let option = |key: &str| {
        pretrain["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["key"] == key)
            .unwrap_or_else(|| panic!("no `{key}` in {pretrain}"))
            .clone()
    };
    assert_eq!(
        option("method")["choices"],
        serde_json::json!(["simclr", "mocov2", "byol", "barlow"])
    );
    assert_eq!(option("steps")["kind"], "int");
    assert_eq!(option("data")["kind"], "Dataset");
    assert_eq!(option("optimizer")["default"]["mocov2"], "sgd");
    assert!(option("queue_size")["default"]["mocov2"].is_u64());
    assert!(functions.len() > 40, "{}", functions.len());
    let both = bin()
        .args(["api", "--json", "--markdown"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "{}", text(&both).1);
}

#[test]
fn shipped_scripts_pass_the_static_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["examples", "scripts"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rhai") {
                let out = bin().arg("check").arg(&p).output().unwrap();
                assert!(
                    out.status.success(),
                    "{}: {}",
                    p.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// A run killed with SIGKILL in the middle resumes from its last checkpoint when the script is
/// run again, and ends where an uninterrupted run ends.
#[test]
fn a_killed_run_resumes_from_its_checkpoint() {
    let ws = Workspace::new("resume");
    let script = ws.script(
        "r.rhai",
        r#"
        let real = data::synthetic(#{ n: 64, seed: 1, size: 8 });
        let run = train::pretrain(#{ method: "mocov2", data: real, probe: real, width: 4, batch: 16, steps: 300,
                                     queue_size: 64, proj_hidden: 16, proj_dim: 8, warmup: 5,
                                     checkpoint_every: 20, log_every: 20, eval_every: 0, seed: 3 });
        print(`final_loss=${run.result_loss()} accuracy=${run.accuracy}`);
        "#
        .replace("run.result_loss()", "run.metrics[run.metrics.len() - 1].loss")
        .as_str(),
    );
    // Uninterrupted reference, in its own cache.
    let reference = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("reference"))
        .output()
        .unwrap();
    let (ref_out, ref_err) = text(&reference);
    assert!(reference.status.success(), "{ref_err}");

    let runs = ws.0.join("runs");
    let mut child = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(&runs)
        .arg("--quiet")
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let checkpoint = loop {
        let found = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("checkpoint/state.json"));
        if let Some(p) = found.filter(|p| p.exists()) {
            let state = std::fs::read_to_string(&p).unwrap_or_default();
            if state.contains("\"step\": 40") || state.contains("\"step\": 60") {
                break p;
            }
        }
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let run_dir = checkpoint.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        !run_dir.join("result.json").exists(),
        "the run finished before it could be killed"
    );

    let again = ws.run(&script, &[]);
    let (out, err) = text(&again);
    assert!(again.status.success(), "{err}");
    assert!(
        err.contains("resuming from the checkpoint at step"),
        "{err}"
    );
    let (a, b): (f64, f64) = (
        value(&out, "final_loss").parse().unwrap(),
        value(&ref_out, "final_loss").parse().unwrap(),
    );
    assert!(
        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
        "resumed {a} vs uninterrupted {b}"
    );
    assert_eq!(value(&out, "accuracy"), value(&ref_out, "accuracy"));
    // The metrics log has each logged step once.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 300 / 20, "{metrics}");
}

/// The paper scripts at CPU smoke scale on synthetic data (their GPU form is in the README).
#[test]
fn paper_scripts_run_as_smoke_tests() {
    let ws = Workspace::new("paper");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = ws.0.join("paper_table1.rhai");
    std::fs::copy(root.join("scripts/paper_table1.rhai"), &script).unwrap();
    let params = [
        "--",
        "scale=0.0002",
        "width=4",
        "batch=32",
        "size=8",
        "n_real=200",
        "n_gen=400",
        "n_test=200",
    ];
    let out = ws.run(&script, &params);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for method in ["simclr", "mocov2", "byol", "barlow"] {
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.starts_with(&format!("| {method}")))
                .count(),
            3,
            "{stdout}"
        );
    }
    let csv = std::fs::read_to_string(ws.0.join("paper_table1.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13, "{csv}");

    let scarce = ws.0.join("data_scarce.rhai");
    std::fs::copy(root.join("scripts/data_scarce.rhai"), &scarce).unwrap();
    let out = ws.run(
        &scarce,
        &[
            "--",
            "scale=0.0002",
            "width=4",
            "batch=32",
            "size=8",
            "n_gen=2000",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("| adainf") && stdout.contains("| 5000"),
        "{stdout}"
    );
}

fn watch_script(steps_b: usize) -> String {
    format!(
        r#"
        let real = data::synthetic(#{{ n: 64, seed: 1, size: 8 }});
        let common = #{{ data: real, width: 4, batch: 16, warmup: 1, proj_hidden: 16, proj_dim: 8, eval_every: 0 }};
        let a = common; a.steps = 5; a.seed = 1;
        let b = common; b.steps = {steps_b}; b.seed = 2;
        train::pretrain(a);
        train::pretrain(b);
        print("script done");
        "#
    )
}

/// `adainf watch`: an edit saved by rename re-runs the script with the unchanged run loaded from
/// the cache and the changed one trained; a broken edit prints its error and the watcher keeps
/// going.
#[test]
fn watch_reruns_what_changed_and_survives_a_broken_edit() {
    use std::io::BufRead;
    let ws = Workspace::new("watch");
    let script = ws.script("w.rhai", &watch_script(5));
    let mut child = bin()
        .arg("watch")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("runs"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let wait_for_waits = |n: usize| {
        let started = std::time::Instant::now();
        loop {
            let text = log.lock().unwrap().clone();
            if text.matches("watch: waiting for changes").count() >= n {
                return text;
            }
            assert!(
                started.elapsed().as_secs() < 120,
                "watcher did not get to wait #{n}:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let first = wait_for_waits(1);
    assert_eq!(first.matches(": training 5 steps").count(), 2, "{first}");

    // Save by rename, as editors do: run B changes, run A does not.
    let tmp = ws.0.join("w.rhai.swp");
    std::fs::write(&tmp, watch_script(7)).unwrap();
    std::fs::rename(&tmp, &script).unwrap();
    let second = wait_for_waits(2);
    let round = &second[first.len()..];
    assert!(round.contains("changed: w.rhai"), "{round}");
    assert_eq!(
        round.matches("loaded from the run cache").count(),
        1,
        "run A is cached: {round}"
    );
    assert_eq!(
        round.matches(": training 7 steps").count(),
        1,
        "run B is trained: {round}"
    );
    assert!(!round.contains(": training 5 steps"), "{round}");

    // A broken edit: an error with its position, and the watcher keeps waiting.
    std::fs::write(&script, "let x = (;\n").unwrap();
    let third = wait_for_waits(3);
    let round = &third[second.len()..];
    assert!(
        round.contains("w.rhai:1:") && round.contains("syntax error"),
        "{round}"
    );

    // Fixed again: everything comes from the cache.
    std::fs::write(&script, watch_script(7)).unwrap();
    let fourth = wait_for_waits(4);
    let round = &fourth[third.len()..];
    assert_eq!(
        round.matches("loaded from the run cache").count(),
        2,
        "{round}"
    );
    assert!(!round.contains(": training"), "{round}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A sweep killed after some of its runs finished resumes at the first unfinished run.
#[test]
fn an_interrupted_sweep_resumes_where_it_stopped() {
    use std::io::BufRead;
    let ws = Workspace::new("sweep");
    let script = ws.script(
        "s.rhai",
        r#"
        import "sweep" as sweep;
        let real = data::synthetic(#{ n: 64, seed: 1, size: 8 });
        let base = #{ data: real, width: 4, batch: 16, steps: 30, warmup: 1, proj_hidden: 16, proj_dim: 8, eval_every: 0 };
        let runs = sweep::run_all(base, sweep::grid(#{ lr: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] }), ());
        report::table(runs, #{ columns: ["lr", "final_loss"] });
        "#,
    );
    let mut child = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("runs"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut finished = 0;
    for line in stderr.lines().map_while(Result::ok) {
        if line.contains(": done in") {
            finished += 1;
            if finished == 2 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(finished, 2);
    let out = ws.run(&script, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let cached = stderr.matches("loaded from the run cache").count();
    let trained = stderr.matches(": training 30 steps").count();
    // The two finished runs (and possibly a third that finished before the kill landed) come
    // from the cache; the rest are trained now.
    assert!(
        (2..=3).contains(&cached) && cached + trained == 6,
        "{stderr}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("| 0.")).count(),
        6,
        "{stdout}"
    );
}

/// The theory script at a tiny size: every (n, r, seed) row, the three plots and the trend
/// lines.
#[test]
fn theory_script_runs_small() {
    let ws = Workspace::new("theory");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = ws.0.join("theory_fig5.rhai");
    std::fs::copy(root.join("scripts/theory_fig5.rhai"), &script).unwrap();
    let out = ws.run(
        &script,
        &["--", "seeds=2", "ns=30,60", "r_steps=6", "out=fig"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let csv = std::fs::read_to_string(ws.0.join("fig.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 2 * 6, "{csv}");
    for plot in ["fig_lambda.png", "fig_alpha.png", "fig_best_r.png"] {
        assert!(ws.0.join(plot).is_file(), "{plot} missing");
    }
    for trend in ["trend 1:", "trend 2:", "trend 3:"] {
        assert!(stdout.contains(trend), "{stdout}");
    }
}
