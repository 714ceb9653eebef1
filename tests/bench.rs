//! `adainf bench --suite diffusion` end to end on tiny shapes on flex: our lines are well
//! formed with positive rates, the peer's outcome is always one line (its numbers and the
//! ratios, or why it did not run), and bad flags are refused before anything is measured.
//! No timing is asserted beyond "positive".
//!
//! The real PyTorch peer runs where `ADAINF_TEST_TORCH_PYTHON` names a Python with torch;
//! elsewhere that test says it skipped. The other tests need no torch: a stand-in peer script
//! (`--peer-script`) checks the pairing and the ratio, and Pythons without torch, or none at
//! all, check the reasons given.

mod common;

use common::*;
use serde_json::Value;

/// The tiny shape every test measures: 4 channels, 2 images of 16×16, 1 warm-up and 1 timed
/// step, 2 DDIM steps, 1 thread.
const TINY: &[&str] = &[
    "bench",
    "--suite",
    "diffusion",
    "--channels",
    "4",
    "--batch",
    "2",
    "--size",
    "16",
    "--steps",
    "1",
    "--warmup",
    "1",
    "--sample-steps",
    "2",
    "--threads",
    "1",
];

/// `adainf bench` with TINY and `extra`: exit code, JSON lines of stdout, stderr.
fn bench(extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let out = bin().args(TINY).args(extra).output().unwrap();
    let (stdout, stderr) = text(&out);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    (out.status.code(), lines, stderr)
}

fn find<'a>(lines: &'a [Value], bench: &str, implementation: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["bench"] == bench && l["impl"] == implementation)
        .unwrap_or_else(|| panic!("no {implementation} {bench} line in {lines:#?}"))
}

/// Our two lines: the shape asked for, a parameter count, positive finite rates, the sampler.
fn check_ours(lines: &[Value]) -> (f64, f64, u64) {
    let train = find(lines, "diffusion_train_step", "adainf");
    let sample = find(lines, "diffusion_sample", "adainf");
    for l in [train, sample] {
        assert_eq!(l["device"], "flex", "{l}");
        assert_eq!(l["channels"], 4, "{l}");
        assert_eq!(l["batch"], 2, "{l}");
        assert_eq!(l["size"], 16, "{l}");
        assert_eq!(l["threads"], 1, "{l}");
        assert!(l["params"].as_u64().is_some_and(|p| p > 0), "{l}");
        let rate = l["images_per_s"].as_f64().unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{l}");
        assert!(l["seconds"].as_f64().is_some_and(|s| s > 0.0), "{l}");
    }
    assert_eq!(train["iterations"], 1, "{train}");
    assert_eq!(sample["sampler"], "ddim", "{sample}");
    assert_eq!(sample["sample_steps"], 2, "{sample}");
    assert_eq!(sample["eta"], 0.0, "{sample}");
    assert_eq!(train["params"], sample["params"]);
    (
        train["images_per_s"].as_f64().unwrap(),
        sample["images_per_s"].as_f64().unwrap(),
        train["params"].as_u64().unwrap(),
    )
}

/// The one line saying why the peer has no numbers.
fn peer_note<'a>(lines: &'a [Value], key: &str) -> &'a str {
    let notes: Vec<&Value> = lines
        .iter()
        .filter(|l| l["bench"] == "diffusion_peer")
        .collect();
    assert_eq!(notes.len(), 1, "{lines:#?}");
    notes[0][key]
        .as_str()
        .unwrap_or_else(|| panic!("no `{key}` in {}", notes[0]))
}

#[test]
fn without_the_peers_python_ours_is_measured_and_one_line_says_why() {
    let (code, lines, stderr) = bench(&["--python", "/nonexistent/python3"]);
    assert_eq!(code, Some(0), "{stderr}");
    check_ours(&lines);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let why = peer_note(&lines, "skipped");
    assert!(
        why.contains("/nonexistent/python3") && why.contains("--python"),
        "{why}"
    );

    let (code, lines, stderr) = bench(&["--no-peer"]);
    assert_eq!(code, Some(0), "{stderr}");
    check_ours(&lines);
    assert!(peer_note(&lines, "skipped").contains("--no-peer"));
}

/// A Python without torch (the test Python, a venv with numpy): ours, and a line naming the
/// missing torch and that Python. (Where that Python has torch after all, the peer runs.)
#[test]
fn a_python_without_torch_is_named_in_the_peers_line() {
    let Some(python) = test_python("numpy") else {
        return;
    };
    let has_torch = std::process::Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .unwrap()
        .status
        .success();
    let python = python.to_str().unwrap();
    let (code, lines, stderr) = bench(&["--python", python]);
    assert_eq!(code, Some(0), "{stderr}");
    check_ours(&lines);
    if has_torch {
        eprintln!("{python} has torch: the peer ran instead");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l["bench"] == "diffusion_ratio")
                .count(),
            2
        );
        return;
    }
    let why = peer_note(&lines, "skipped");
    assert!(
        why.contains("torch is not installed") && why.contains(python) && why.contains("--python"),
        "{why}"
    );
}

/// A stand-in peer (any Python, no torch) that prints the two measurements at known rates:
/// its lines are passed on and each ratio is ours ÷ its rate. One that measured a different
/// model, or failed, is an error (exit 1) with a line saying so.
#[test]
fn the_peers_lines_are_paired_with_ours_as_ratios() {
    let Some(python) = test_python("json") else {
        return;
    };
    let python = python.to_str().unwrap();
    let (_, lines, _) = bench(&["--no-peer"]);
    let (_, _, params) = check_ours(&lines);
    let ws = Workspace::new("bench-peer");
    let stand_in = |name: &str, params: u64, exit: i32| {
        ws.script(
            name,
            &format!(
                r#"import json, sys
a = sys.argv[1:]
assert a[0] == "bench", a
arg = lambda k: a[a.index(k) + 1]
shape = dict(channels=int(arg("--channels")), batch=int(arg("--batch")), size=int(arg("--size")),
             threads=int(arg("--threads")), device=arg("--device"), params={params})
assert shape["device"] == "cpu" and arg("--sample-steps") == "2" and arg("--steps") == "1", a
print(json.dumps(dict(bench="diffusion_train_step", impl="pytorch", images_per_s=4.0, **shape)))
print(json.dumps(dict(bench="diffusion_sample", impl="pytorch", images_per_s=0.5, **shape)))
if {exit}:
    sys.exit("peer broke")
"#
            ),
        )
    };
    let good = stand_in("good.py", params, 0);
    let (code, lines, stderr) =
        bench(&["--python", python, "--peer-script", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let (train, sample, _) = check_ours(&lines);
    let peer = find(&lines, "diffusion_train_step", "pytorch");
    assert_eq!(peer["channels"], 4);
    assert_eq!(peer["threads"], 1);
    for (measure, ours, theirs) in [
        ("diffusion_train_step", train, 4.0),
        ("diffusion_sample", sample, 0.5),
    ] {
        let ratio = lines
            .iter()
            .find(|l| l["bench"] == "diffusion_ratio" && l["measure"] == measure)
            .unwrap_or_else(|| panic!("no {measure} ratio in {lines:#?}"));
        assert_eq!(ratio["ours_images_per_s"].as_f64().unwrap(), ours);
        assert_eq!(ratio["peer_images_per_s"].as_f64().unwrap(), theirs);
        let r = ratio["ratio"].as_f64().unwrap();
        assert!((r - ours / theirs).abs() <= 1e-12 * r, "{ratio}");
    }

    let other = stand_in("other.py", params + 1, 0);
    let (code, lines, stderr) =
        bench(&["--python", python, "--peer-script", other.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    check_ours(&lines);
    let why = peer_note(&lines, "failed");
    assert!(why.contains("not the same model"), "{why}");
    assert!(stderr.contains("not the same model"), "{stderr}");
    assert!(!lines.iter().any(|l| l["bench"] == "diffusion_ratio"));

    let broken = stand_in("broken.py", params, 1);
    let (code, lines, stderr) = bench(&[
        "--python",
        python,
        "--peer-script",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    let why = peer_note(&lines, "failed");
    assert!(why.contains("peer broke"), "{why}");
}

/// The real PyTorch peer, where `ADAINF_TEST_TORCH_PYTHON` names a Python with torch: the same
/// model (parameter count), both measurements, both ratios.
#[test]
fn the_pytorch_peer_measures_the_same_model() {
    let Some(python) = std::env::var_os("ADAINF_TEST_TORCH_PYTHON") else {
        eprintln!("skipped: ADAINF_TEST_TORCH_PYTHON does not name a Python with torch");
        return;
    };
    let python = python.to_str().unwrap();
    let (code, lines, stderr) = bench(&["--python", python]);
    assert_eq!(code, Some(0), "{stderr}");
    let (_, _, params) = check_ours(&lines);
    for measure in ["diffusion_train_step", "diffusion_sample"] {
        let peer = find(&lines, measure, "pytorch");
        assert_eq!(peer["params"], params, "{peer}");
        assert_eq!(peer["threads"], 1, "{peer}");
        assert_eq!(peer["device"], "cpu", "{peer}");
        assert!(peer["images_per_s"].as_f64().unwrap() > 0.0, "{peer}");
        assert!(
            lines
                .iter()
                .any(|l| l["bench"] == "diffusion_ratio" && l["measure"] == measure),
            "{lines:#?}"
        );
    }
    let sample = find(&lines, "diffusion_sample", "pytorch");
    assert_eq!(sample["sample_steps"], 2, "{sample}");
    assert_eq!(sample["sampler"], "ddim", "{sample}");
}

/// Each bad flag is one error naming it (exit 2) before anything is measured; so is a flag
/// the suite does not take.
#[test]
fn bad_diffusion_flags_are_refused_before_anything_is_measured() {
    for (args, wanted) in [
        (&["--channels", "3"][..], "`channels`"),
        (&["--channels", "0"], "`channels`"),
        (&["--channels", "48"], "`channels`"),
        (&["--batch", "0"], "`batch`"),
        (&["--size", "24"], "`size`"),
        (&["--size", "8"], "`size`"),
        (&["--steps", "0"], "`steps`"),
        (&["--sample-steps", "0"], "`sample-steps`"),
        (&["--sample-steps", "1001"], "`sample-steps`"),
        (&["--threads", "0"], "`threads`"),
        (
            &["--peer-script", "/nonexistent/ddpm_peer.py"],
            "`peer-script`",
        ),
        (&["--width", "8"], "--width"),
        (&["--placement", "device"], "--placement"),
        (&["--precision", "bf16"], "--precision bf16"),
        (&["--device", "tpu"], "tpu"),
    ] {
        let out = bin()
            .args(["bench", "--suite", "diffusion"])
            .args(args)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one message: {stderr}");
        assert!(stdout.is_empty(), "{args:?} measured: {stdout}");
    }
    // The diffusion flags are refused by the SimCLR suites, not ignored.
    for flag in [
        ["--channels", "32"],
        ["--threads", "1"],
        ["--python", "python3"],
    ] {
        let out = bin()
            .args(["bench", "--suite", "losses"])
            .args(flag)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flag:?}: {stderr}");
        assert!(
            stderr.contains(flag[0]) && stderr.contains("--suite diffusion"),
            "{stderr}"
        );
        assert!(stdout.is_empty(), "{stdout}");
    }
}

/// Absurd counts (a typo, extra digits) are refused naming the flag (exit 2) before anything
/// runs: `--warmup 99999999999` ran silently for days, a huge `--batch` aborted on its
/// allocation (or spoke of an option `n` the user never gave), `--threads` hung starting them.
#[test]
fn absurd_counts_are_refused_naming_the_flag() {
    for args in [
        &["--warmup", "99999999999"][..],
        &["--steps", "18446744073709551615"],
        &["--batch", "100000000000"],
        &["--suite", "losses", "--steps", "100000000000"],
        &["--suite", "diffusion", "--batch", "100000000000"],
        &["--suite", "diffusion", "--threads", "100000000000"],
    ] {
        let flag = args.iter().rev().nth(1).unwrap();
        let mut child = bin()
            .arg("bench")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            ended_within(&mut child, std::time::Duration::from_secs(60)),
            "{args:?} was still running after 60 s"
        );
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} {}", args.last().unwrap()))
                && stderr.contains("at most"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one message: {stderr}");
        assert!(stdout.is_empty(), "{args:?} measured: {stdout}");
    }
}
