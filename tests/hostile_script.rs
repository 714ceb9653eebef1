//! Hostile scripts and command lines end in one clear error (or a correct result), bounded
//! and fast: deeply nested data, values growing without end, errors inside imported modules,
//! edits to modules in subfolders under `watch`, and bad `--` parameters and flags.

mod common;

use common::*;

fn run_source(name: &str, source: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let ws = Workspace::new(name);
    let script = ws.script(&format!("{name}.rhai"), source);
    let out = ws.run(&script, extra);
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

/// Printing, comparing and interpolating 6000 levels of `[[[...]]]` used to overflow the
/// stack and abort the process (exit 134); they now give their results.
#[test]
fn deeply_nested_data_prints_compares_and_interpolates() {
    let (code, stdout, stderr) = run_source(
        "nested",
        "let a = []; for i in 0..6000 { a = [a]; }\nprint(a);\nprint(a == a);\nprint(`${a}`.len());\n",
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout:.200}");
    assert_eq!(lines[0].len(), 2 * 6001, "{:.100}", lines[0]);
    assert!(lines[0].starts_with("[[[") && lines[0].ends_with("]]]"));
    assert_eq!(lines[1], "true");
    assert_eq!(lines[2], "12002");
}

/// `a.push(1)` forever used to re-measure the whole array at each push (about an hour to the
/// array limit); it now stops at the operation budget, with the message that says so.
#[test]
fn pushing_forever_ends_with_an_error() {
    let (code, _, stderr) = run_source(
        "push",
        "let a = [];\nloop { a.push(1); }\n",
        &["--max-operations", "5000000"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("push.rhai:2:") && stderr.contains("operation budget"),
        "{stderr}"
    );
}

/// `a = [a]` copies all of `a` (Rhai copies values whole), so a loop of it did quadratic work
/// that neither the operation count nor the memory limit saw (10,000 levels took 6 s, 100,000
/// would take ten minutes). The values a script copies now count against its operation budget:
/// it stops there, with the message that says so.
#[test]
fn nesting_without_end_stops_at_the_operation_budget() {
    let ws = Workspace::new("nest-forever");
    let script = ws.script("nest.rhai", "let a = [];\nloop { a = [a]; }\n");
    let limit = std::time::Duration::from_secs(120);
    let out = ws
        .run_bounded(&script, &["--max-operations", "2000000"], limit)
        .expect("`loop { a = [a]; }` did not stop within 120 s");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nest.rhai:2:")
            && stderr.contains("operation budget")
            && stderr.contains("--max-operations"),
        "{stderr}"
    );
    assert!(
        !ws.0.join("runs").exists(),
        "a script that trains nothing wrote a runs folder"
    );
}

/// What host functions allocate (here a whole pretraining run, thousands of tensors) is their
/// own work: only the script's own copies count against the operation budget, so a small
/// budget still trains.
#[test]
fn host_work_does_not_count_against_the_operation_budget() {
    let (code, stdout, stderr) = run_source(
        "host-work",
        "let real = data::synthetic(#{ n: 64, seed: 3, size: 8 });\nlet run = train::pretrain(#{ data: real, width: 4, steps: 20, batch: 16 });\nprint(`trained ${run.id.len()}`);\n",
        &["--max-operations", "1000"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("trained 24"), "{stdout}");
    // A method of a script type is host work too: `Dataset.info()` of an inflated set
    // measures the generator gap (a few hundred allocations), under a budget of 200.
    let (code, stdout, stderr) = run_source(
        "method-work",
        "let real = data::synthetic(#{ n: 64, seed: 3, size: 8 });\nlet mix = data::inflate(real, data::synthetic_generator(#{ n: 64, size: 8 }), #{ dup: 1 });\nprint(`gap ${mix.info().generator_gap.frechet > 0.0}`);\n",
        &["--max-operations", "200"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("gap true"), "{stdout}");
}

/// Built-ins that allocate a size the script names (`pad`, `blob`) used to abort the process
/// (an allocation the system refuses) or run for minutes past every limit; they are refused
/// before they allocate, naming the limit.
#[test]
fn one_call_asking_for_too_much_memory_is_refused_before_it_allocates() {
    for (name, source) in [
        ("array", "let a = [];\na.pad(1000000000000, 0);\n"),
        ("string", "let s = \"x\";\ns.pad(100000000000, \"y\");\n"),
        ("blob", "let b = 1;\nb = blob(1000000000000);\n"),
    ] {
        let ws = Workspace::new(&format!("pad-{name}"));
        let script = ws.script("pad.rhai", source);
        let limit = std::time::Duration::from_secs(120);
        let out = ws
            .run_bounded(&script, &["--max-memory", "1"], limit)
            .unwrap_or_else(|| panic!("{name}: did not stop within 120 s"));
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("pad.rhai:2:") && stderr.contains("memory limit of 1 GiB"),
            "{name}: {stderr}"
        );
    }
}

/// An import cycle (which used to recurse until the stack overflowed, exit 134, also under
/// `watch`) and a script importing itself are one clear error, from `run` and `check`.
#[test]
fn import_cycles_and_self_imports_are_clear_errors() {
    let ws = Workspace::new("cycles");
    ws.script("cyc_a.rhai", "import \"cyc_b\" as b;\nfn a() { 1 }\n");
    ws.script("cyc_b.rhai", "import \"cyc_a\" as a;\nfn b() { 2 }\n");
    let main = ws.script(
        "main.rhai",
        "let x = 1;\nimport \"cyc_a\" as a;\nprint(x);\n",
    );
    let own = ws.script("own.rhai", "import \"own\" as me;\n");
    for (script, place, wanted) in [
        (
            &main,
            "main.rhai:2:",
            "import cycle: \"cyc_a\" imports \"cyc_b\" imports \"cyc_a\"",
        ),
        (&own, "own.rhai:1:", "names this script itself"),
    ] {
        let run = ws.run(script, &[]);
        let check = bin().arg("check").arg(script).output().unwrap();
        for (what, out) in [("run", run), ("check", check)] {
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{what} {script:?}: {stderr}");
            assert!(
                stderr.contains(place) && stderr.contains(wanted),
                "{what} {script:?}: {stderr}"
            );
        }
    }
}

/// Recursion as deep as a script can mean it works (the limit was 64 calls); a recursion
/// without end stops with a message that says so, not Rhai's bare "Stack overflow".
#[test]
fn deep_recursion_works_and_endless_recursion_is_named() {
    let f = "fn f(n) { if n == 0 { 0 } else { 1 + f(n - 1) } }\n";
    let (code, stdout, stderr) = run_source("deep", &format!("{f}print(f(9000));\n"), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "9000");
    let (code, _, stderr) = run_source("endless", &format!("{f}print(f(-1));\n"), &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("endless.rhai:2:") && stderr.contains("deeper than 10000 levels"),
        "{stderr}"
    );
}

/// Ctrl-C stops a long offline linear probe between two of its steps (it used to ignore it).
#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_long_linear_probe() {
    let ws = Workspace::new("linear-ctrl-c");
    let script = ws.script(
        "linear.rhai",
        "let d = data::synthetic(#{ n: 64, size: 8 });\nlet r = train::pretrain(#{ data: d, width: 4, batch: 16, steps: 2, eval_every: 0 });\nprint(\"trained\");\nprint(eval::linear(r, d, d, #{ epochs: 1000000000 }));\n",
    );
    let (output, _) = ws.interrupted_after(&script, "trained", "the linear probe");
    assert!(!output.status.success());
}

/// Values that double at each step stop at the memory limit with a message naming it and the
/// flag that raises it, within one step of the limit.
#[test]
fn doubling_data_stops_at_the_memory_limit() {
    for (name, source) in [
        ("string", "let s = \"x\";\nloop { s += s; }\n"),
        ("array", "let a = [1];\nloop { a = [a, a]; }\n"),
    ] {
        // A budget high enough that the copies of `[a, a]` do not end it first.
        let extra = ["--max-memory", "1", "--max-operations", "1000000000"];
        let (code, _, stderr) = run_source(name, source, &extra);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}.rhai:2:"))
                && stderr.contains("memory limit of 1 GiB")
                && stderr.contains("--max-memory"),
            "{name}: {stderr}"
        );
    }
}

/// An error inside an imported module is placed in the module's file, with the import or call
/// in the script as the way there.
#[test]
fn errors_inside_imported_modules_name_the_module_file() {
    let ws = Workspace::new("module-error");
    std::fs::create_dir_all(ws.0.join("sub")).unwrap();
    ws.script(
        "sub/deep.rhai",
        "fn boom(x) {\n    let y = x + ();\n    y\n}\n",
    );
    ws.script("sub/bad.rhai", "let z = 1;\nlet q = z + ();\n");
    let call = ws.script(
        "call.rhai",
        "import \"sub/deep\" as d;\nprint(d::boom(1));\n",
    );
    let out = ws.run(&call, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("deep.rhai:2:15") && stderr.contains("call.rhai:2:"),
        "{stderr}"
    );
    let load = ws.script("load.rhai", "import \"sub/bad\" as b;\n");
    let out = ws.run(&load, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.rhai:2:11") && stderr.contains("load.rhai:1:"),
        "{stderr}"
    );
    assert!(!stderr.contains("load.rhai:2:"), "{stderr}");
}

/// `adainf watch` re-runs the script when a module imported from a subfolder is saved.
#[test]
fn watch_sees_edits_to_a_module_in_a_subfolder() {
    use std::io::BufRead;
    let ws = Workspace::new("watch-sub");
    std::fs::create_dir_all(ws.0.join("sub")).unwrap();
    ws.script("sub/deep.rhai", "fn value() { 1 }\n");
    let script = ws.script(
        "main.rhai",
        "import \"sub/deep\" as d;\nprint(`value=${d::value()}`);\n",
    );
    let mut child = bin()
        .arg("watch")
        .arg(&script)
        .arg("--runs-dir")
        .arg(ws.0.join("runs"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let wait_for = |what: &str| {
        let started = std::time::Instant::now();
        loop {
            let text = log.lock().unwrap().clone();
            if text.contains(what) {
                return text;
            }
            if started.elapsed().as_secs() > 60 {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let first = wait_for("watch: waiting for changes");
    // Save by rename, as editors do.
    let tmp = ws.0.join("sub/.deep.rhai.swp");
    std::fs::write(&tmp, "fn value() { 2 }\n").unwrap();
    std::fs::rename(&tmp, ws.0.join("sub/deep.rhai")).unwrap();
    let second = wait_for("value=2");
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("value=1"), "{first}");
    assert!(
        second.contains("value=2") && second.contains("changed: deep.rhai"),
        "{second}"
    );
}

/// `adainf bench` checks its flags before measuring anything: a bad one is one error naming it
/// (exit 2), not an error about a key the user never set, or a partial set of results.
#[test]
fn bench_flags_are_checked_before_anything_is_measured() {
    for (flag, value, key) in [
        ("--batch", "0", "`batch`"),
        ("--batch", "1", "`batch`"),
        ("--steps", "0", "`steps`"),
        ("--width", "0", "`width`"),
        ("--size", "4", "`size`"),
    ] {
        let out = bin().args(["bench", flag, value]).output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(key), "{flag} {value}: {stderr}");
        assert!(stdout.is_empty(), "{flag} {value} measured: {stdout}");
    }
}

/// Bad script parameters and flags are refused with a message that says how to fix them.
#[test]
fn bad_parameters_and_flags_are_refused_clearly() {
    let (code, _, stderr) = run_source("nan", "print(params);\n", &["--", "lr=nan"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("lr=nan") && stderr.contains("not a finite number"),
        "{stderr}"
    );
    assert!(!stderr.contains("null"), "{stderr}");
    let (code, _, stderr) = run_source("empty", "print(params);\n", &["--", "=5"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`=5`") && stderr.contains("no name"),
        "{stderr}"
    );
    // A parameter given twice, or an integer too large to stay one, is not silently changed.
    for (args, wanted) in [
        (["a=1", "a=2"], "given twice"),
        (["n=99999999999999999999", "b=1"], "too large"),
    ] {
        let extra: Vec<&str> = std::iter::once("--").chain(args).collect();
        let (code, _, stderr) = run_source("twice", "print(params);\n", &extra);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(wanted), "{stderr}");
    }
    // `api --defs` names a folder; a file there is refused before anything is printed.
    let ws = Workspace::new("defs");
    let file = ws.script("base.rhai", "print(1);\n");
    let out = bin().args(["api", "--defs"]).arg(&file).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("folder") && stdout.is_empty(), "{stderr}");
    // `worker --index` without its --list does nothing: refused.
    let out = bin().args(["worker", "--index", "5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
    let (code, _, stderr) = run_source("zero", "print(1);\n", &["--max-operations", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--max-operations"), "{stderr}");
    let help = bin().args(["run", "--help"]).output().unwrap();
    let (help, _) = text(&help);
    assert!(help.contains("no unlimited setting"), "{help}");
    // A NaN made inside the script is refused by the option check, not by a serde message.
    let (code, _, stderr) = run_source(
        "nan-option",
        "let d = data::synthetic(#{ n: 16, size: 8 });\ntrain::pretrain(#{ data: d, lr: 0.0 / 0.0, steps: 1 });\n",
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("nan-option.rhai:2:") && stderr.contains("finite number"),
        "{stderr}"
    );
}

/// `adainf check` finds what `adainf run` would refuse on facts it can know statically, each
/// with file:line:col and a did-you-mean where one applies.
#[test]
fn check_reports_what_run_would_refuse() {
    let ws = Workspace::new("check");
    ws.script(
        "mymod.rhai",
        "fn value() { 1 }\nfn twice(x) { x * 2 }\nfn settings() { #{ steps: 3000 } }\n",
    );
    let data = "let d = data::synthetic(#{ n: 16 });\n";
    let cases: &[(&str, String, &[&str])] = &[
        (
            "arity",
            format!("{data}let o = #{{ lr: 0.1 }};\ntrain::pretrain(d, o);\n"),
            &[
                "arity.rhai:3:",
                "`train::pretrain` takes 1 argument, given 2",
            ],
        ),
        (
            "missing",
            "import \"mymodd\" as m;\n".into(),
            &[
                "missing.rhai:1:",
                "module `mymodd` not found",
                "did you mean `mymod`",
            ],
        ),
        (
            "stdlib_fn",
            "import \"sweep\" as s;\nprint(s::gird(1));\n".into(),
            &[
                "stdlib_fn.rhai:2:",
                "unknown function `s::gird`",
                "did you mean `grid`",
            ],
        ),
        (
            "module_arity",
            "import \"mymod\" as m;\nprint(m::twice(1, 2));\n".into(),
            &[
                "module_arity.rhai:2:",
                "`m::twice` takes 1 argument, given 2",
            ],
        ),
        (
            "undefined",
            "let alpha = 1;\nprint(alpah + 1);\nprint(alpah + betta);\n".into(),
            &[
                "undefined.rhai:2:",
                "undefined variable `alpah`",
                "did you mean `alpha`",
                // Every undefined variable is reported, each once.
                "undefined.rhai:3:",
                "undefined variable `betta`",
            ],
        ),
        (
            "map_variable",
            format!("{data}let o = #{{ data: d, lr: 0.1, bogsu: 1 }};\ntrain::pretrain(o);\n"),
            &["map_variable.rhai:2:", "unknown option `bogsu`"],
        ),
        (
            "map_later",
            format!(
                "{data}let o = #{{ data: d, lr: 0.1 }};\no.bogsu = 1;\no[\"lr\"] = -1;\ntrain::pretrain(o);\n"
            ),
            &[
                "map_later.rhai:3:",
                "unknown option `bogsu`",
                "map_later.rhai:4:",
                "positive",
            ],
        ),
        (
            "lr",
            format!("{data}train::pretrain(#{{ data: d, lr: -1 }});\n"),
            &["lr.rhai:2:", "`lr`", "positive"],
        ),
        (
            "method",
            format!("{data}train::pretrain(#{{ data: d, method: \"nope\" }});\n"),
            &["method.rhai:2:", "\"nope\"", "simclr"],
        ),
        (
            "n",
            "let d = data::synthetic(#{ n: -5 });\n".into(),
            &["n.rhai:1:", "`n`", "negative"],
        ),
        (
            "size",
            "let d = data::synthetic(#{ n: 16, size: 4 });\n".into(),
            &["size.rhai:1:", "`size`", "between 8 and 256"],
        ),
        // Values the options struct does not read (every function's, from its definition):
        // a name outside a closed set, an array of the wrong length; and a generator's ranges.
        (
            "closed_set",
            "data::npz(\"x.npz\", #{ labels: \"drop\" });\n".into(),
            &["closed_set.rhai:1:", "`labels`", "`drop`", "ignore"],
        ),
        (
            "array_length",
            "let a = aug::simclr(#{ jitter: [0.5] });\n".into(),
            &["array_length.rhai:1:", "`jitter`", "takes 4 numbers"],
        ),
        // The maps of a batch, each with its place, and a map merged with `+`.
        (
            "batch",
            format!(
                "{data}let base = #{{ data: d, steps: 2 }};\ntrain::pretrain_all([#{{ data: d, lrr: 0.1 }}, base + #{{ optimizer: \"adam\" }}]);\n"
            ),
            &[
                "batch.rhai:3:34:",
                "unknown option `lrr`",
                "batch.rhai:3:",
                "`optimizer`",
                "`adam`",
            ],
        ),
        (
            "aug_range",
            "let a = aug::simclr(#{ flip_prob: 1.5 });\n".into(),
            &["aug_range.rhai:1:", "`flip_prob`", "[0, 1]"],
        ),
        (
            "toy_range",
            "print(theory::toy(#{ n: 2 }));\n".into(),
            &["toy_range.rhai:1:", "`n`"],
        ),
        (
            "generator_range",
            format!("{data}gen::diffusion(d, #{{ ema: 1.5 }});\n"),
            &["generator_range.rhai:2:", "`ema`", "[0, 1)"],
        ),
        (
            "generator_precision",
            format!("{data}gen::diffusion(d, #{{ precision: \"bf16\" }});\n"),
            &["generator_precision.rhai:2:", "`precision`", "only \"f32\""],
        ),
    ];
    for (name, source, wanted) in cases {
        let script = ws.script(&format!("{name}.rhai"), source);
        let out = bin().arg("check").arg(&script).output().unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        for w in *wanted {
            assert!(stderr.contains(w), "{name}: `{w}` missing in {stderr}");
        }
        // `run` refuses the same script (each is a real mistake, not a checker's opinion).
        let run = ws.run(&script, &[]);
        assert_eq!(run.status.code(), Some(1), "{name} runs: {}", text(&run).1);
    }
    // A correct script using the same features passes, and so do literal values that are
    // valid with the values of the options the checker cannot see (a variable's): a warm-up
    // longer than the default steps, a method's own setting with the method in a variable, a
    // bad literal replaced by a variable before the call.
    let fine = ws.script(
        "fine.rhai",
        &format!(
            "import \"mymod\" as m;\nimport \"sweep\" as s;\nlet alpha = m::twice(m::value());\n{data}let o = #{{ data: d, lr: 0.1, steps: 1 }};\no.seed = 2;\ntrain::pretrain(o);\no.note = \"a key set after the call is not an option\";\nprint(alpha);\n\
             let n = 3000;\nlet long = #{{ data: d, steps: n, warmup: 2000 }};\n\
             let method = \"mocov2\";\nlet moco = #{{ data: d, method: method, queue_size: 4096 }};\n\
             let optimizer = \"sgd\";\nlet replaced = #{{ data: d, optimizer: \"adam\" }};\nreplaced.optimizer = optimizer;\n\
             train::pretrain(long);\ntrain::pretrain(moco);\ntrain::pretrain(replaced);\n\
             train::pretrain_all([long + #{{ seed: 1 }}, moco, m::settings() + #{{ warmup: 2000 }}]);\n"
        ),
    );
    let out = bin().arg("check").arg(&fine).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}

/// `aug::simclr`'s arrays of fixed length say how many numbers they take and what they are
/// (serde's "invalid length 0, expected an array of length 4" did not).
#[test]
fn fixed_length_augmentation_arrays_say_what_they_take() {
    for (opt, want) in [
        (
            "jitter: []",
            "option `jitter` of aug::simclr takes 4 numbers [brightness, contrast, saturation, hue], got 0",
        ),
        (
            "jitter: [0.4, 0.4]",
            "option `jitter` of aug::simclr takes 4 numbers",
        ),
        (
            "mean: [0.5]",
            "option `mean` of aug::simclr takes 3 numbers one per channel [red, green, blue], got 1",
        ),
        (
            "std: [0.2, 0.2, 0.2, 0.2]",
            "option `std` of aug::simclr takes 3 numbers",
        ),
    ] {
        let (code, _, stderr) = run_source("jitter", &format!("aug::simclr(#{{ {opt} }});\n"), &[]);
        assert_eq!(code, Some(1), "{opt}: {stderr}");
        assert!(
            stderr.contains("jitter.rhai:1:")
                && stderr.contains(want)
                && !stderr.contains("invalid length"),
            "{opt}: {stderr}"
        );
    }
}

/// A `tags` value that is not a number, a string, a bool or () is refused naming the tag,
/// before anything trains (a dataset or a closure was shown in reports by its type name).
#[test]
fn tags_that_are_not_plain_values_are_refused() {
    for (tag, kind) in [
        ("set: d", "Dataset"),
        ("f: |x| x", "Fn"),
        ("list: [1, 2]", "array"),
    ] {
        let key = tag.split(':').next().unwrap();
        let ws = Workspace::new("tags");
        let script = ws.script(
            "tags.rhai",
            &format!(
                "let d = data::synthetic(#{{ n: 32, size: 8 }});\nlet r = train::pretrain(#{{ data: d, width: 4, batch: 16, steps: 2, warmup: 0, tags: #{{ ok: 1, {tag} }} }});\n"
            ),
        );
        let out = ws.run(&script, &[]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{tag}: {stderr}");
        assert!(
            stderr.contains("tags.rhai:2:")
                && stderr.contains(&format!(
                    "tag `{key}` of train::pretrain holds a value of type {kind}"
                ))
                && stderr.contains("a number, a string, a bool or ()"),
            "{tag}: {stderr}"
        );
        assert!(!ws.0.join("runs").exists(), "{tag}: a run was started");
    }
}

/// `gen::diffusion` checks every option before it says anything: a batch or a number of
/// timesteps past any memory is an option error, with no "training" line before it (the
/// batch was allocated at the first step, after "training 1 steps", and aborted the process).
#[test]
fn diffusion_options_are_checked_before_any_progress() {
    for (opt, key) in [
        ("batch: 100000000000", "`batch`"),
        ("timesteps: 100000000000", "`timesteps`"),
    ] {
        let (code, stdout, stderr) = run_source(
            "gen",
            &format!(
                "let d = data::synthetic(#{{ n: 8, size: 8 }});\nlet g = gen::diffusion(d, #{{ steps: 1, channels: 4, channel_mult: [1], attention_at: [], {opt} }});\n"
            ),
            &[],
        );
        assert_eq!(code, Some(1), "{opt}: {stderr}");
        assert!(
            stderr.contains("gen.rhai:2:")
                && stderr.contains(key)
                && stderr.contains("must be between 1 and"),
            "{opt}: {stderr}"
        );
        assert!(
            !stderr.contains("training") && stdout.is_empty(),
            "{opt}: progress before the option error: {stderr}"
        );
    }
}
