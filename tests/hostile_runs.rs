//! Hostile inputs against the run cache (issue 26): a rejected run leaves the runs folder as it
//! was, a request edited into a configuration its method cannot run is a clear error, a
//! finished run whose files changed is reported (never served) and trained again on
//! `--retry-failed`, a damaged checkpoint says what to do, and `--jobs` workers stop with
//! their driver.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` with its contents (an absent folder is empty).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(format!("{}/", p.display()), Vec::new());
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

const BASE: &str = r#"let real = data::synthetic(#{ n: 64, seed: 3, size: 8 });
let base = #{ data: real, probe: real, width: 4, batch: 16, steps: 6, warmup: 1, proj_hidden: 16,
              proj_dim: 8, eval_every: 0, log_every: 2, optimizer: "sgd", lr: 0.05 };
"#;

fn finished_run(ws: &Workspace) -> std::path::PathBuf {
    let script = ws.script(
        "ok.rhai",
        &format!(
            "{BASE}let run = train::pretrain(base);\nprint(`acc=${{run.accuracy}} cached=${{run.cached}} knn=${{eval::knn(run, real, real, #{{ k: 3 }})}}`);\n"
        ),
    );
    let out = ws.run(&script, &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    let runs: Vec<_> = std::fs::read_dir(ws.0.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    runs[0].clone()
}

/// Each rejected option (in process and under `--jobs 2`) ends in a clear error naming the
/// key, and the runs folder is byte-for-byte what it was.
#[test]
fn a_rejected_run_leaves_the_runs_folder_unchanged() {
    let ws = Workspace::new("rejected");
    // A finished run already there must stay as it is too.
    finished_run(&ws);
    let before = snapshot(&ws.0.join("runs"));
    let cases = [
        ("lr: -1.0", "lr"),
        ("lr: 0.0", "lr"),
        ("batch: 0", "batch"),
        ("steps: 0", "steps"),
        ("width: 0", "width"),
        ("warmup: 50", "warmup"),
        ("temperature: -0.5", "temperature"),
        ("batch: 100", "batch"),
        ("method: \"mocov2\", queue_size: 17", "queue_size"),
    ];
    for (opt, key) in cases {
        for jobs in [None, Some("2")] {
            let source = format!(
                "{BASE}let runs = train::pretrain_all([base, base + #{{ {opt} }}]);\nprint(runs.len());\n"
            );
            let script = ws.script("bad.rhai", &source);
            let extra: Vec<&str> = match jobs {
                Some(j) => vec!["--jobs", j],
                None => vec![],
            };
            let out = ws.run(&script, &extra);
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{opt} {jobs:?}: {stderr}");
            assert!(
                stderr.contains(&format!("`{key}`")) && !stderr.contains("internal error"),
                "{opt} {jobs:?}: {stderr}"
            );
            assert!(!stderr.contains("--retry-failed"), "{opt}: {stderr}");
            assert_eq!(
                snapshot(&ws.0.join("runs")),
                before,
                "{opt} {jobs:?} changed the runs folder"
            );
        }
    }
    // A one-image set names the data, not a batch default the user never set.
    let script = ws.script(
        "one.rhai",
        "let one = data::subset(data::synthetic(#{ n: 10, size: 8 }), #{ n: 1 });\ntrain::pretrain(#{ data: one, width: 4, steps: 2 });\n",
    );
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("at least 2") && !stderr.contains("256"),
        "{stderr}"
    );
    assert_eq!(snapshot(&ws.0.join("runs")), before);
}

/// `adainf worker` on the request `edited` (written to `<ws>/NAME.json`): it must fail with
/// code 1 and leave `<ws>/runs` as it was; its message.
fn refused(ws: &Workspace, name: &str, edited: serde_json::Value) -> String {
    let runs = ws.0.join("runs");
    let path = ws.0.join(format!("{name}.json"));
    std::fs::write(&path, edited.to_string()).unwrap();
    let before = snapshot(&runs);
    let out = bin()
        .args(["worker", "--runs-dir"])
        .arg(&runs)
        .arg(&path)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert_eq!(snapshot(&runs), before, "{name}");
    stderr
}

/// A generator's request edited by hand is refused by `adainf worker` with the reason, before
/// anything is written: an id that is a path, options that cannot train (checked without the
/// data, and against it), an unknown run kind, an unknown option.
#[test]
fn an_edited_generator_request_is_refused_clearly() {
    let ws = Workspace::new("edited-generator-request");
    let script = ws.script("g.rhai", GENERATORS);
    let out = ws.run(&script, &["--jobs", "2", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let id = value(&text(&out).0, "id");
    let original: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.0.join("runs").join(&id).join("request.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(original["kind"], "diffusion");
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = original.clone();
        f(&mut v);
        v
    };
    for (name, edited, want) in [
        (
            "escape",
            edit(&|v| v["id"] = "../escaped".into()),
            "not a run id",
        ),
        ("steps", edit(&|v| v["config"]["steps"] = 0.into()), "steps"),
        (
            "mult",
            edit(&|v| v["config"]["channel_mult"] = serde_json::json!([])),
            "channel_mult",
        ),
        ("kind", edit(&|v| v["kind"] = "gan".into()), "`kind`"),
        (
            "unknown",
            edit(&|v| v["config"]["stepz"] = 3.into()),
            "stepz",
        ),
    ] {
        let stderr = refused(&ws, name, edited);
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(stderr.contains(&format!("{name}.json")), "{name}: {stderr}");
    }
    assert!(
        !ws.0.join("escaped").exists(),
        "a folder was made outside the runs folder"
    );
}

/// A request edited to carry another method's setting (a queue for SimCLR, Barlow's scale for
/// BYOL) is refused with the key and its method named, before anything is written; no panic.
#[test]
fn an_edited_request_with_another_methods_settings_is_a_clear_error() {
    let ws = Workspace::new("edited-request");
    let dir = finished_run(&ws);
    let request = dir.join("request.json");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    let refused = |name: &str, edited: serde_json::Value| refused(&ws, name, edited);
    // A setting of another method than the request's cannot be read into its config.
    for (method, foreign, owner) in [
        ("simclr", "queue_size", "mocov2"),
        ("byol", "barlow_scale", "barlow"),
    ] {
        let mut edited = original.clone();
        edited["config"]["method"] = method.into();
        edited["config"][foreign] = 16.into();
        let stderr = refused(method, edited);
        assert!(
            stderr.contains(&format!("`{foreign}` only applies to {owner}")),
            "{stderr}"
        );
    }
    // An id edited into a path (`../x`) is refused before anything is written: the failure
    // record used to land outside the runs folder.
    let mut edited = original.clone();
    edited["id"] = "../escaped".into();
    let stderr = refused("escape", edited);
    assert!(stderr.contains("not a run id"), "{stderr}");
    assert!(
        !ws.0.join("escaped").exists(),
        "a folder was made outside the runs folder"
    );
}

/// A finished run whose result, config, metrics or weights changed is reported with the
/// file named and what to do; `--retry-failed` trains it again and the result is the
/// untouched one's.
#[test]
fn a_changed_finished_run_is_reported_and_retrained_on_retry() {
    let ws = Workspace::new("changed");
    let dir = finished_run(&ws);
    let script = ws.0.join("ok.rhai");
    let first = text(&ws.run(&script, &[])).0;
    assert!(first.contains("cached=true"), "{first}");
    let accuracy = value(&first, "acc");
    let knn = value(&first, "knn");
    type Edit = (&'static str, fn(&Path));
    let edits: [Edit; 5] = [
        ("result.json", |p| {
            let t = std::fs::read_to_string(p).unwrap();
            let mut j: serde_json::Value = serde_json::from_str(&t).unwrap();
            j["accuracy"] = 0.99.into();
            std::fs::write(p, j.to_string()).unwrap();
        }),
        ("config.json", |p| {
            let t = std::fs::read_to_string(p).unwrap();
            std::fs::write(p, t.replace("\"steps\": 6", "\"steps\": 7")).unwrap();
        }),
        ("metrics.jsonl", |p| std::fs::remove_file(p).unwrap()),
        ("backbone.bpk", |p| {
            let b = std::fs::read(p).unwrap();
            std::fs::write(p, &b[..b.len() / 2]).unwrap();
        }),
        ("backbone.bpk", |p| std::fs::remove_file(p).unwrap()),
    ];
    for (file, edit) in edits {
        edit(&dir.join(file));
        let out = ws.run(&script, &[]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {stdout}{stderr}");
        assert!(
            stderr.contains(file)
                && stderr.contains("changed after it finished")
                && stderr.contains("--retry-failed"),
            "{file}: {stderr}"
        );
        // The listing (and the HTML report, which reads it) shows a changed record as damaged,
        // naming the file, never as done with the edited numbers. Weights are checked on use.
        if !file.ends_with(".bpk") {
            let out = bin()
                .args(["runs", "--json"])
                .arg(ws.0.join("runs"))
                .output()
                .unwrap();
            let row: serde_json::Value = serde_json::from_str(text(&out).0.trim()).unwrap();
            assert_eq!(row["state"], "damaged", "{file}: {row}");
            assert!(
                row["error"].as_str().unwrap().contains(file),
                "{file}: {row}"
            );
            assert!(row["accuracy"].is_null(), "{file}: {row}");
        }
        let out = ws.run(&script, &["--retry-failed"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(stdout.contains("cached=false"), "{file}: {stdout}");
        assert_eq!(
            (value(&stdout, "acc"), value(&stdout, "knn")),
            (accuracy.clone(), knn.clone()),
            "{file}"
        );
    }
}

/// A damaged checkpoint of an unfinished run says what to do, and `--retry-failed` discards it
/// and trains the run from the start (same result as an uninterrupted run).
#[test]
fn a_damaged_checkpoint_says_what_to_do_and_a_retry_trains_from_the_start() {
    let ws = Workspace::new("checkpoint");
    let dir = finished_run(&ws);
    let script = ws.0.join("ok.rhai");
    let want = value(&text(&ws.run(&script, &[])).0, "acc");
    // Unfinished again, with its last checkpoint truncated.
    for f in ["seal.json", "result.json"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let encoder = dir.join("checkpoint/encoder.bpk");
    let bytes = std::fs::read(&encoder).unwrap();
    std::fs::write(&encoder, &bytes[..bytes.len() / 3]).unwrap();
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("checkpoint") && stderr.contains("--retry-failed"),
        "{stderr}"
    );
    for attempt in 0..2 {
        let out = ws.run(&script, &["--retry-failed"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "attempt {attempt}: {stderr}");
        assert_eq!(value(&stdout, "acc"), want);
    }
}

/// SIGKILL of a `--jobs` driver stops its workers (they checkpoint and exit) instead of
/// leaving them running as orphans.
#[test]
fn workers_stop_when_their_driver_is_killed() {
    let ws = Workspace::new("orphans");
    let script = ws.script(
        "long.rhai",
        &format!(
            "{BASE}let runs = train::pretrain_all([base + #{{ steps: 100000, seed: 1 }}, base + #{{ steps: 100000, seed: 2 }}]);\n"
        ),
    );
    let mut driver = bin()
        .arg("run")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("runs"))
        .args(["--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let driver_pid = driver.id().to_string();
    // Wait for both workers to start.
    let workers = || -> Vec<String> {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &driver_pid])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 && start.elapsed().as_secs() < 120 {
        seen = workers();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(seen.len(), 2, "the workers did not start");
    driver.kill().unwrap();
    driver.wait().unwrap();
    let alive = |pid: &str| {
        Path::new(&format!("/proc/{pid}")).exists() && {
            // A zombie (exited, not yet reaped by init) counts as stopped.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.contains(") Z ")
        }
    };
    let start = std::time::Instant::now();
    while seen.iter().any(|p| alive(p)) && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let left: Vec<&String> = seen.iter().filter(|p| alive(p)).collect();
    for p in &left {
        let _ = std::process::Command::new("kill").args(["-9", p]).status();
    }
    assert!(left.is_empty(), "workers {left:?} outlived their driver");
}
