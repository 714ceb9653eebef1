//! Hostile inputs end in a clear error, bounded and fast (issue 26): each case runs the real
//! binary on a tiny script and expects one message naming the problem and exit code 1, never a
//! panic ("internal error"), an allocation abort (134) or a hang.

mod common;

use common::*;

/// Runs `source` as a script and returns its stderr, asserting it failed cleanly with code 1.
fn fails(ws: &Workspace, source: &str) -> String {
    let script = ws.script("hostile.rhai", source);
    let out = ws.run(&script, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{source}\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
    stderr
}

#[test]
fn pixel_knn_on_sets_of_other_sizes_is_an_error() {
    let ws = Workspace::new("knn-shapes");
    let e = fails(
        &ws,
        "let a = data::synthetic(#{ n: 20, size: 8 });\n\
         let b = data::synthetic(#{ n: 20, size: 16, split: \"test\" });\n\
         print(eval::knn_pixels(a, b, #{ k: 3 }));\n",
    );
    assert!(
        e.contains("hostile.rhai:3:") && e.contains("8×8×3") && e.contains("16×16×3"),
        "{e}"
    );
}

#[test]
fn empty_subsets_are_refused() {
    let ws = Workspace::new("empty-subset");
    for opt in ["n: 0", "per_class: 0"] {
        let e = fails(
            &ws,
            &format!(
                "let a = data::synthetic(#{{ n: 20, size: 8 }});\n\
                 let s = data::subset(a, #{{ {opt} }});\nprint(s.info());\n"
            ),
        );
        let key = opt.split(':').next().unwrap();
        assert!(
            e.contains("hostile.rhai:2:")
                && e.contains(&format!("`{key}`"))
                && e.contains("at least 1"),
            "{e}"
        );
    }
}

#[test]
fn impossible_sizes_are_errors_not_aborts() {
    let ws = Workspace::new("sizes");
    for (call, what) in [
        ("data::synthetic(#{ n: 1000000000000, size: 8 })", "TB"),
        (
            "data::synthetic_generator(#{ n: 1000000000000, size: 8 })",
            "TB",
        ),
        (
            "data::synthetic(#{ n: 4000000000000000000, size: 8 })",
            "address space",
        ),
    ] {
        let e = fails(&ws, &format!("let a = {call};\nprint(a.len());\n"));
        assert!(
            e.contains("hostile.rhai:1:") && e.contains("`n`") && e.contains(what),
            "{e}"
        );
    }
    let e = fails(
        &ws,
        "let a = data::synthetic(#{ n: 20, size: 8 });\n\
         let b = data::inflate(a, a, #{ dup: 4000000000000000000 });\n",
    );
    assert!(e.contains("hostile.rhai:2:") && e.contains("`dup`"), "{e}");
}

#[test]
fn plots_of_non_finite_or_overflowing_values_are_errors() {
    let ws = Workspace::new("plot");
    for y in ["1.0 / 0.0", "0.0 / 0.0"] {
        let e = fails(
            &ws,
            &format!(
                "let rows = [#{{ x: 1, y: 0.5 }}, #{{ x: 2, y: {y} }}];\n\
                 report::plot(rows, #{{ x: \"x\", y: \"y\", path: \"p.png\" }});\n"
            ),
        );
        assert!(e.contains("`y`") && e.contains("finite"), "{e}");
    }
    let e = fails(
        &ws,
        "let rows = [#{ x: 1, y: 1e308 }, #{ x: 2, y: -1e308 }];\n\
         report::plot(rows, #{ x: \"x\", y: \"y\", path: \"p.png\" });\n",
    );
    assert!(e.contains("too large to draw"), "{e}");
    assert!(!ws.0.join("p.png").exists());
}

#[cfg(unix)]
#[test]
fn special_files_and_bombs_are_refused() {
    use std::io::Write;
    let ws = Workspace::new("files");
    let fifo = ws.0.join("fifo");
    mkfifo(&fifo);
    // IDX labels for one image.
    std::fs::write(ws.0.join("lab"), [0, 0, 8, 1, 0, 0, 0, 1, 3]).unwrap();
    for call in [
        "data::idx(\"/dev/zero\", \"lab\")",
        "data::idx(\"fifo\", \"lab\")",
        "data::npz(\"fifo\")",
    ] {
        let e = fails(&ws, &format!("let a = {call};\n"));
        assert!(e.contains("not a regular file"), "{e}");
    }
    // A gzip bomb: 8×8 declared pixels, then 64 MB of zeros.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&[0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 8])
        .unwrap();
    gz.write_all(&vec![0; 64 << 20]).unwrap();
    std::fs::write(ws.0.join("bomb.gz"), gz.finish().unwrap()).unwrap();
    let e = fails(&ws, "let a = data::idx(\"bomb.gz\", \"lab\");\n");
    assert!(
        e.contains("bomb.gz") && e.contains("more than 64 data bytes"),
        "{e}"
    );
}

/// Files a script or the CLI names for output (tables, plots, npz, the HTML report) never
/// replace a link, a FIFO or a device (`report --out /dev/full` used to turn the device into a
/// file) nor block writing into a FIFO; an empty path is not a file name.
#[cfg(unix)]
#[test]
fn outputs_never_replace_links_fifos_or_devices() {
    let ws = Workspace::new("outputs");
    let fifo = ws.0.join("out.fifo");
    mkfifo(&fifo);
    std::fs::write(ws.0.join("target"), "kept").unwrap();
    std::os::unix::fs::symlink(ws.0.join("target"), ws.0.join("link.out")).unwrap();
    let rows = "let rows = [#{ x: 1, y: 0.5 }, #{ x: 2, y: 0.7 }];\n";
    let d = "let d = data::synthetic(#{ n: 8, size: 8 });\n";
    for (path, wanted) in [
        ("out.fifo", "not a regular file"),
        ("link.out", "not a regular file"),
        ("", "not a"),
    ] {
        for call in [
            format!("{rows}report::save_csv(rows, \"{path}\", #{{}});\n"),
            format!("{rows}report::plot(rows, #{{ x: \"x\", y: \"y\", path: \"{path}\" }});\n"),
            format!("{d}data::save_npz(d, \"{path}\");\n"),
        ] {
            let script = ws.script("out.rhai", &call);
            let limit = std::time::Duration::from_secs(120);
            let out = ws
                .run_bounded(&script, &[], limit)
                .unwrap_or_else(|| panic!("{call}: did not end within 120 s"));
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{call}: {stderr}");
            assert!(stderr.contains(wanted), "{call}: {stderr}");
        }
    }
    let out = bin()
        .args(["report"])
        .arg(ws.0.join("runs"))
        .arg("--out")
        .arg(ws.0.join("link.out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    let meta = std::fs::symlink_metadata(ws.0.join("link.out")).unwrap();
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    assert_eq!(
        std::fs::read_to_string(ws.0.join("target")).unwrap(),
        "kept"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn knn_temperatures_must_be_positive_and_tiny_ones_give_the_nearest_neighbour() {
    let ws = Workspace::new("temperature");
    for t in ["0.0", "-0.07", "0"] {
        let e = fails(
            &ws,
            &format!(
                "let a = data::synthetic(#{{ n: 40, size: 8 }});\n\
                 let b = data::synthetic(#{{ n: 40, size: 8, split: \"test\" }});\n\
                 print(eval::knn_pixels(a, b, #{{ temperature: {t} }}));\n"
            ),
        );
        assert!(e.contains("`temperature`") && e.contains("positive"), "{e}");
    }
    // exp((s − max s)/T) with T = 1e-300 leaves the nearest neighbour's vote alone: the
    // accuracy of k = 1.
    let script = ws.script(
        "tiny_t.rhai",
        "let a = data::synthetic(#{ n: 60, size: 8 });\n\
         let b = data::synthetic(#{ n: 60, size: 8, split: \"test\" });\n\
         print(`tiny=${eval::knn_pixels(a, b, #{ k: 20, temperature: 1e-300 })}`);\n\
         print(`one=${eval::knn_pixels(a, b, #{ k: 1 })}`);\n",
    );
    let out = ws.run(&script, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(value(&stdout, "tiny"), value(&stdout, "one"), "{stdout}");
}

#[test]
fn runs_lists_folders_with_multibyte_names() {
    let ws = Workspace::new("runs-names");
    let script = ws.script(
        "train.rhai",
        "let d = data::synthetic(#{ n: 16, size: 8 });\n\
         let r = train::pretrain(#{ data: d, width: 2, batch: 8, steps: 2, proj_hidden: 8, proj_dim: 8, log_every: 1 });\n",
    );
    let out = ws.run(&script, &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    let runs = ws.0.join("runs");
    let dir = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("config.json").exists())
        .unwrap();
    // 'é' takes bytes 11 and 12: a cut after 12 bytes falls inside it.
    std::fs::rename(&dir, runs.join("abcdefghijké-copy")).unwrap();
    let out = bin().arg("runs").arg(&runs).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| abcdefghijké |"), "{stdout}");
}
