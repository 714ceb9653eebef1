//! The HTML report of a real small sweep (6 runs and one that fails on purpose), opened in
//! headless Chromium: a page script (added to a copy of the report) sorts and filters the runs
//! table and writes what it saw into the DOM, which `chromium --dump-dom` returns. Every run is
//! in the table, sorting reorders the rows, the curves are SVG, the failed run shows its error,
//! and the console has no errors.
//!
//! Chromium comes from `ADAINF_TEST_CHROMIUM` or `chromium` on the PATH; without one the test
//! skips with a message, except under CI (`CI=true`), where it fails.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("ADAINF_TEST_CHROMIUM") {
        Some(p) => vec![PathBuf::from(p)],
        None => ["chromium", "chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    for c in candidates {
        if Command::new(&c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(c);
        }
    }
    let msg = "no Chromium: install Debian's `chromium` or set ADAINF_TEST_CHROMIUM";
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{msg} (.ci/run installs it)"
    );
    eprintln!("skipped: {msg}");
    None
}

/// Captures errors and console.error calls from the start of the page.
const CAPTURE: &str = r#"<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => window.__errors.push("rejection: " + e.reason));
(function () { const orig = console.error; console.error = function (...a) { window.__errors.push("console.error: " + a.join(" ")); orig.apply(console, a); }; })();
</script>"#;

/// Sorts and filters the table as a user would (clicks, typing) and writes what it saw.
const PROBE: &str = r##"<script>
(function () {
  const ids = () => Array.from(document.querySelectorAll("#runs tbody tr[data-id]")).map((t) => t.dataset.id);
  const out = { initial: ids() };
  const th = document.querySelector('#runs th[data-key="probe"]');
  th.click(); out.probe_asc = ids();
  th.click(); out.probe_desc = ids();
  const f = document.getElementById("filter");
  f.value = "failed"; f.dispatchEvent(new Event("input")); out.filtered = ids();
  f.value = ""; f.dispatchEvent(new Event("input"));
  out.failed_errors = Array.from(document.querySelectorAll('#runs tbody tr[data-state="failed"] .error')).map((e) => e.textContent);
  out.spark_lines = document.querySelectorAll("#runs svg.spark polyline").length;
  out.ready = document.body.dataset.ready || null;
  setTimeout(function () {
    out.curves = document.body.dataset.curves || null;
    out.chart_svgs = document.querySelectorAll("#curves svg.chart").length;
    out.chart_lines = document.querySelectorAll("#curves svg.chart polyline").length;
    out.sweep_tables = document.querySelectorAll("#sweep table").length;
    out.sweep_text = document.getElementById("sweep").textContent;
    out.previews = document.querySelectorAll("#previews img").length;
    out.errors = window.__errors;
    const pre = document.createElement("pre");
    pre.id = "test-out";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }, 300);
})();
</script>"##;

/// Opens `page` in headless Chromium with the capture and probe scripts added; returns what
/// the probe wrote and Chromium's stderr.
fn probe_page(chromium: &Path, page: &Path, scratch: &Path) -> (Value, String) {
    let html = std::fs::read_to_string(page).unwrap();
    let instrumented = html
        .replacen("<head>", &format!("<head>\n{CAPTURE}"), 1)
        .replacen("</body>", &format!("{PROBE}\n</body>"), 1);
    let copy = scratch.join("probed.html");
    std::fs::write(&copy, instrumented).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", copy.display()))
        .output()
        .unwrap();
    let (dom, stderr) = text(&out);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let start = dom
        .find("<pre id=\"test-out\">")
        .unwrap_or_else(|| panic!("the probe wrote nothing; chromium said: {stderr}"));
    let body = &dom[start + "<pre id=\"test-out\">".len()..];
    let json = &body[..body.find("</pre>").unwrap()];
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    (serde_json::from_str(&json).unwrap(), stderr)
}

const SWEEP: &str = r#"
let real = data::synthetic(#{ n: 64, seed: 4, size: 8 });
let base = #{ data: real, probe: real, width: 4, batch: 16, steps: 12, optimizer: "sgd", lr: 0.05,
              warmup: 2, proj_hidden: 16, proj_dim: 8, log_every: 2, eval_every: 4 };
let configs = [];
for setting in ["plain", "weak", "strong"] {
    for seed in [0, 1] {
        let o = base;
        o.seed = seed;
        o.aug = if setting == "plain" { aug::simclr(#{ crop_min: 1.0, jitter_prob: 0 }) } else if setting == "weak" { aug::preset("symmetric_adainf") } else { aug::preset("symmetric") };
        o.tags = #{ setting: setting, seed: seed };
        configs.push(o);
    }
}
let runs = train::pretrain_all(configs);
for r in runs { eval::knn(r, real, real, #{ k: 5 }); }
print(`script_page_runs=${report::html(runs, "script_report.html")}`);
// One run fails on purpose: its loss overflows.
let bad = base;
bad.lr = 1e30;
bad.seed = 9;
bad.tags = #{ setting: "diverges", seed: 9 };
try { train::pretrain(bad); } catch (e) { print(`failed_as_planned=true`); }
"#;

#[test]
fn the_html_report_of_a_sweep_works_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let ws = Workspace::new("report-html");
    let script = ws.script("sweep.rhai", SWEEP);
    let out = ws.run(&script, &["--quiet"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(value(&stdout, "failed_as_planned"), "true", "{stdout}");
    assert_eq!(value(&stdout, "script_page_runs"), "6");
    assert!(ws.0.join("script_report.html").is_file());

    let runs_dir = ws.0.join("runs");
    let page = ws.0.join("report.html");
    let cli = bin()
        .arg("report")
        .arg(&runs_dir)
        .arg("--out")
        .arg(&page)
        .output()
        .unwrap();
    let (cli_out, cli_err) = text(&cli);
    assert!(cli.status.success(), "{cli_err}");
    assert!(cli_out.contains("7 run(s)"), "{cli_out}");

    // The runs folder's own account: ids, probe accuracies, the failure.
    let mut probe: std::collections::HashMap<String, Option<f64>> = Default::default();
    let mut failed: Option<(String, String)> = None;
    for e in std::fs::read_dir(&runs_dir).unwrap() {
        let dir = e.unwrap().path();
        let id = dir.file_name().unwrap().to_string_lossy().into_owned();
        let result: Option<Value> = std::fs::read_to_string(dir.join("result.json"))
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap());
        if let Ok(t) = std::fs::read_to_string(dir.join("failed.json")) {
            let f: Value = serde_json::from_str(&t).unwrap();
            failed = Some((id.clone(), f["error"].as_str().unwrap().to_string()));
        }
        probe.insert(id, result.and_then(|r| r["accuracy"].as_f64()));
    }
    assert_eq!(probe.len(), 7);
    let (failed_id, failed_error) = failed.expect("the diverging run recorded its failure");
    assert!(failed_error.contains("loss became"), "{failed_error}");

    let (got, chrome_err) = probe_page(&chromium, &page, &ws.0);
    let list = |k: &str| -> Vec<String> {
        got[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    // Every run is in the table.
    let mut initial = list("initial");
    assert_eq!(initial.len(), 7, "{got}");
    initial.sort();
    let mut ids: Vec<String> = probe.keys().cloned().collect();
    ids.sort();
    assert_eq!(initial, ids);
    // Sorting by the probe column orders the rows by probe accuracy, the failed run last.
    let values =
        |order: &[String]| -> Vec<Option<f64>> { order.iter().map(|id| probe[id]).collect() };
    let asc = values(&list("probe_asc"));
    let desc = values(&list("probe_desc"));
    assert_eq!(asc.len(), 7);
    assert_eq!(asc.last(), Some(&None), "{asc:?}");
    assert_eq!(desc.last(), Some(&None), "{desc:?}");
    let known = |v: &[Option<f64>]| v.iter().flatten().copied().collect::<Vec<f64>>();
    assert!(known(&asc).windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    assert!(known(&desc).windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    assert_ne!(known(&asc), known(&desc), "the probe values are all equal");
    // The filter keeps the failed run only; it shows its error.
    assert_eq!(list("filtered"), [failed_id]);
    assert_eq!(list("failed_errors"), [failed_error]);
    // Curves: a sparkline per run with metrics, charts per setting (4 settings: loss and
    // probe, the diverged one has its finite losses or none).
    assert!(got["spark_lines"].as_u64().unwrap() >= 6, "{got}");
    assert_eq!(got["curves"], "drawn");
    assert!(got["chart_svgs"].as_u64().unwrap() >= 6, "{got}");
    assert!(got["chart_lines"].as_u64().unwrap() >= 12, "{got}");
    // The sweep tables: mean ± std per setting and the differences with their standard error.
    assert_eq!(got["sweep_tables"], 3, "{got}");
    let sweep = got["sweep_text"].as_str().unwrap();
    assert!(
        sweep.contains("± ") && sweep.contains("std_error"),
        "{sweep}"
    );
    assert!(got["previews"].as_u64().unwrap() >= 3, "{got}");
    // No errors: none captured on the page, none in Chromium's console log.
    assert_eq!(got["errors"], serde_json::json!([]), "{got}");
    let console: Vec<&str> = chrome_err
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "{console:?}");
}

/// `adainf watch --report`: the page appears, reloads itself (and says so) while watch is on,
/// shows the runs the script trained, and stops reloading once watch exits (Ctrl-C).
#[test]
fn watch_keeps_the_report_current_and_live_while_it_runs() {
    let ws = Workspace::new("watch-report");
    let script = ws.script(
        "w.rhai",
        r#"
        let real = data::synthetic(#{ n: 32, seed: 1, size: 8 });
        train::pretrain(#{ data: real, width: 4, batch: 16, steps: 4, warmup: 1, proj_hidden: 16,
                           proj_dim: 8, eval_every: 0, tags: #{ setting: "watched" } });
        print("script done");
        "#,
    );
    let page = ws.0.join("live.html");
    let mut child = bin()
        .arg("watch")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("runs"))
        .arg("--quiet")
        .arg("--report")
        .arg(&page)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let live = loop {
        let text = std::fs::read_to_string(&page).unwrap_or_default();
        if text.contains("waiting for changes") {
            break text;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "the page never said the script finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        live.contains("http-equiv=\"refresh\""),
        "the live page does not reload"
    );
    assert!(
        live.contains("\"setting\":\"watched\""),
        "the run is not on the page"
    );
    // Ctrl-C: watch writes the page once more, without the reload.
    let sigint = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sigint.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let last = std::fs::read_to_string(&page).unwrap();
    assert!(
        !last.contains("http-equiv=\"refresh\""),
        "still reloading after watch ended"
    );
    assert!(last.contains("\"setting\":\"watched\""));
}
