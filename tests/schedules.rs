//! Schedules end to end: a scheduled batch in worker processes against the in-process run,
//! the errors of the `schedule` option (nothing written), `adainf check` on schedule maps, and
//! `adainf watch` re-running when a schedule or a library it imports changes.

mod common;

use common::*;
use std::io::BufRead;
use std::path::Path;

const DATA: &str = r#"
let real = data::synthetic(#{ n: 64, seed: 1, size: 8 });
let gen = data::synthetic_generator(#{ n: 48, seed: 2, size: 8 });
let mix = data::inflate(real, gen, #{ dup: 2 });
let common = #{ data: mix, width: 4, batch: 16, proj_hidden: 16, proj_dim: 8,
                eval_every: 0, log_every: 1, optimizer: "sgd", lr: 0.05 };
"#;

/// The metric rows of every run under `runs`, by run id, without the timing columns.
fn metrics(runs: &Path) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
    std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("result.json").exists())
        .map(|p| {
            let rows = std::fs::read_to_string(p.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let row = v.as_object_mut().unwrap();
                    row.remove("images_per_s");
                    row.remove("data_wait");
                    v
                })
                .collect();
            (p.file_name().unwrap().to_string_lossy().into_owned(), rows)
        })
        .collect()
}

/// Workers receive the schedule tables in the run request and train exactly what the
/// in-process executor trains: the same run ids and the same metric rows (loss, lr,
/// strength, realized generated fraction).
#[test]
fn a_scheduled_batch_in_workers_matches_the_in_process_run() {
    let ws = Workspace::new("sched-workers");
    let script = ws.script(
        "s.rhai",
        &format!(
            r#"{DATA}
            import "schedules" as s;
            let a = common; a.steps = 8; a.seed = 1;
            a.schedule = #{{ generated_share: s::linear(0.0, 1.0), strength: s::cosine(1.0, 0.5), lr: s::warmup_cosine(0.25) }};
            let b = common; b.steps = 8; b.seed = 2; b.schedule = #{{ generated_share: 0.25 }};
            b.aug = #{{ real: aug::preset("symmetric"), generated: aug::preset("symmetric_weak") }};
            for r in train::pretrain_all([a, b]) {{ print(`id=${{r.id}}`); }}
            "#
        ),
    );
    let inline = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("a"))
        .output()
        .unwrap();
    assert!(inline.status.success(), "{}", text(&inline).1);
    let workers = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("b"))
        .args(["--jobs", "2"])
        .output()
        .unwrap();
    assert!(workers.status.success(), "{}", text(&workers).1);
    assert_eq!(text(&inline).0, text(&workers).0, "the same run ids");
    let (a, b) = (metrics(&ws.0.join("a")), metrics(&ws.0.join("b")));
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
    // The rows carry the schedule: the strength falls, the share rises.
    let rows = a
        .values()
        .find(|r| r.len() == 8 && r[7]["strength"] != 1.0)
        .unwrap();
    assert!(rows[0]["strength"].as_f64().unwrap() > rows[7]["strength"].as_f64().unwrap());
    assert!(rows[7]["generated_fraction"].as_f64().unwrap() > 0.7);
    // The request holds the tables, not the closures.
    let request = std::fs::read_dir(ws.0.join("b"))
        .unwrap()
        .map(|e| e.unwrap().path().join("request.json"))
        .find(|p| p.exists())
        .unwrap();
    let json = std::fs::read_to_string(request).unwrap();
    assert!(json.contains("\"schedule\"") && !json.contains("|t|"));
}

/// Every error of the `schedule` option names the key (and, for values, the step, t and the
/// script position) and stops the script before anything is written under the runs folder.
#[test]
fn schedule_errors_are_clear_and_write_nothing() {
    let ws = Workspace::new("sched-errors");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "throws",
            "schedule: #{ strength: |t| if t > 0.5 { throw \"too late\" } else { 1.0 } }",
            &[
                "too late",
                "schedule.strength at step 4 (t = 0.66",
                "e.rhai:",
            ],
        ),
        (
            "string",
            "schedule: #{ lr: |t| \"fast\" }",
            &[
                "schedule.lr",
                "returned string at step 0 (t = 0)",
                "e.rhai:8:",
            ],
        ),
        (
            "nan",
            "schedule: #{ strength: |t| if t > 0.2 { parse_float(\"NaN\") } else { 1.0 } }",
            &["schedule.strength", "NaN at step 2 (t = 0.33", "e.rhai:8:"],
        ),
        (
            "range",
            "schedule: #{ generated_share: |t| 2.0 * t }",
            &[
                "schedule.generated_share",
                "at step 4 (t = 0.66",
                "[0, 1]",
                "e.rhai:8:",
            ],
        ),
        (
            "nogen",
            "data: real, schedule: #{ generated_share: |t| t }",
            &[
                "schedule.generated_share",
                "no generated part",
                "step 1",
                "e.rhai:8:",
            ],
        ),
        (
            "unknown",
            "schedule: #{ strenght: 0.5 }",
            &[
                "unknown option `strenght`",
                "did you mean `strength`",
                "e.rhai:8:",
            ],
        ),
        (
            "type",
            "schedule: #{ strength: \"strong\" }",
            &[
                "schedule.strength",
                "must be a number, a function of t",
                "string",
                "e.rhai:8:",
            ],
        ),
        (
            "warmup",
            "warmup: 2, schedule: #{ lr: 0.5 }",
            &["`warmup`", "schedule.lr", "e.rhai:8:"],
        ),
        (
            "augkey",
            "aug: #{ real: \"symmetric\", synthetic: \"symmetric_weak\" }",
            &["unknown option `synthetic`", "generated", "e.rhai:8:"],
        ),
    ];
    for (name, option, wanted) in cases {
        let script = ws.script(
            "e.rhai",
            &format!(
                "{DATA}let o = common; o.steps = 6;\nlet r = train::pretrain(o + #{{ {option} }});\n"
            ),
        );
        let runs = ws.0.join(format!("runs-{name}"));
        let out = bin()
            .arg("run")
            .arg(&script)
            .arg("--runs-dir")
            .arg(&runs)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        for w in *wanted {
            assert!(stderr.contains(w), "{name}: `{w}` missing in\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            !runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(),
            "{name}: something was written under {}",
            runs.display()
        );
    }
}

/// `adainf check` finds unknown schedule keys and literal values of the wrong type without
/// running the script; `adainf api` documents every schedulable key with its range.
#[test]
fn check_and_api_know_the_schedule_keys() {
    let ws = Workspace::new("sched-check");
    let script = ws.script(
        "c.rhai",
        r#"let d = data::synthetic(#{ n: 20 });
train::pretrain(#{ data: d, schedule: #{ generated_shares: |t| t, strength: "high", lr: 0.5 } });
"#,
    );
    let out = bin().arg("check").arg(&script).output().unwrap();
    let (stdout, stderr) = text(&out);
    let all = format!("{stdout}{stderr}");
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("c.rhai:2:")
            && all.contains("`generated_shares`")
            && all.contains("did you mean `generated_share`")
            && all.contains("`schedule.strength`")
            && all.contains("got string"),
        "{all}"
    );
    assert!(!all.contains("`schedule.lr`"), "{all}");
    let api = bin().arg("api").output().unwrap();
    let api = text(&api).0;
    for key in ["generated_share", "strength", "lr"] {
        assert!(api.contains(&format!(".{key}")), "{key} missing in api");
    }
    assert!(api.contains("in [0, 1]") && api.contains("real: A, generated: B"));
}

/// Starts `adainf watch` on `script` and returns the child and its collected stdout + stderr.
fn watch(
    script: &Path,
    runs: &Path,
    lib: &Path,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    let mut child = bin()
        .arg("watch")
        .arg(script)
        .arg("--runs-dir")
        .arg(runs)
        .arg("--lib")
        .arg(lib)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for reader in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(reader)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    (child, log)
}

/// `adainf watch` on a scheduled script: an edit of a module beside the script, or of the
/// `schedules` library (here a copy in a `--lib` folder, which takes the stdlib's place),
/// re-runs the script with the new contents: the run whose schedule changed is trained again
/// and the other comes from the cache. Saving a file unchanged trains nothing.
#[test]
fn watch_reruns_when_a_schedule_or_an_imported_library_changes() {
    let ws = Workspace::new("sched-watch");
    let lib = ws.0.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let stdlib = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib/schedules.rhai"),
    )
    .unwrap();
    std::fs::write(lib.join("schedules.rhai"), &stdlib).unwrap();
    let mine = |v: &str| format!("fn strength() {{ |t| {v} }}\n");
    let module = ws.0.join("mine.rhai");
    std::fs::write(&module, mine("0.5")).unwrap();
    let script = ws.script(
        "w.rhai",
        &format!(
            r#"import "mine" as m;
            import "schedules" as s;
            {DATA}
            let a = common; a.steps = 4; a.seed = 1; a.schedule = #{{ strength: m::strength() }};
            let b = common; b.steps = 4; b.seed = 2; b.schedule = #{{ generated_share: s::linear(0.0, 0.5) }};
            let ra = train::pretrain(a);
            let rb = train::pretrain(b);
            print(`strength_a=${{ra.metrics[0].strength}} share_b=${{rb.metrics[3].generated_fraction}}`);
            "#
        ),
    );
    let (mut child, log) = watch(&script, &ws.0.join("runs"), &lib);
    let wait_for = |n: usize| {
        let started = std::time::Instant::now();
        loop {
            let text = log.lock().unwrap().clone();
            if text.matches("watch: waiting for changes").count() >= n {
                return text;
            }
            assert!(
                started.elapsed().as_secs() < 180,
                "watcher did not get to wait #{n}:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let save = |path: &Path, contents: &str| {
        let tmp = path.with_extension("rhai.swp");
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    };
    let first = wait_for(1);
    assert_eq!(first.matches(": training 4 steps").count(), 2, "{first}");
    // linear(0, 0.5) at t = 3/4: round(0.375 × 16) = 6 generated images of 16.
    assert!(first.contains("strength_a=0.5 share_b=0.375"), "{first}");

    save(&module, &mine("0.25"));
    let second = wait_for(2);
    let round = &second[first.len()..];
    assert!(round.contains("strength_a=0.25 share_b=0.375"), "{round}");
    assert_eq!(round.matches(": training 4 steps").count(), 1, "{round}");
    assert_eq!(
        round.matches("loaded from the run cache").count(),
        1,
        "{round}"
    );

    // The library: `linear` now holds its end value.
    save(
        &lib.join("schedules.rhai"),
        &stdlib.replace("|t| a + (b - a) * t", "|t| b + 0.0 * (a + t)"),
    );
    let third = wait_for(3);
    let round = &third[second.len()..];
    assert!(round.contains("strength_a=0.25 share_b=0.5"), "{round}");
    assert_eq!(round.matches(": training 4 steps").count(), 1, "{round}");
    assert_eq!(
        round.matches("loaded from the run cache").count(),
        1,
        "{round}"
    );

    // Saved without a change: both runs come from the cache.
    save(&module, &mine("0.25"));
    let fourth = wait_for(4);
    let round = &fourth[third.len()..];
    assert!(!round.contains(": training"), "{round}");
    assert_eq!(
        round.matches("loaded from the run cache").count(),
        2,
        "{round}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `examples/schedules.rhai` runs end to end on a tiny budget and reports every setting with
/// its schedule and realized generated fraction.
#[test]
fn the_schedules_example_runs_small() {
    let ws = Workspace::new("sched-example");
    let script = ws.0.join("schedules.rhai");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/schedules.rhai"),
        &script,
    )
    .unwrap();
    let out = ws.run(&script, &["--", "steps=3", "seeds=2"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for row in [
        "| adainf (fixed)      |                 |",
        "| curriculum share    | generated_share |",
        "| falling strength    | strength        |",
        "| weak aug, generated |                 | real symmetric_adainf, generated",
    ] {
        assert!(stdout.contains(row), "`{row}` missing in\n{stdout}");
    }
    assert_eq!(stdout.matches("− adainf (fixed)").count(), 6, "{stdout}");
}
