//! Script-level tests of the host: option checking, error positions, limits.

use super::*;
use crate::train::Silent;

/// A host on flex with its runs in `dir/runs` (also used by the modules' own tests).
pub(crate) fn host(dir: &Path) -> Host {
    let config = HostConfig {
        device: Device::flex(),
        device_name: "flex".into(),
        runs_dir: dir.join("runs"),
        max_operations: 200_000,
        max_memory_gib: 1,
        params: Map::new(),
        lib_dirs: vec![],
        cancel: CancelFlag::new(),
        executor: Default::default(),
        retry_failed: false,
    };
    Host::new(config, Box::new(|| Box::new(Silent)))
}

fn run_script(name: &str, source: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("adainf-host-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.rhai"));
    std::fs::write(&path, source).unwrap();
    let r = host(&dir).run_file(&path).map_err(|e| e.message);
    std::fs::remove_dir_all(&dir).ok();
    r
}

#[test]
fn syntax_errors_have_file_line_and_column() {
    let e = run_script("syntax", "let a = 1;\nlet b = (2 + ;\n").unwrap_err();
    assert!(
        e.contains("syntax.rhai:2:") && e.contains("syntax error"),
        "{e}"
    );
}

#[test]
fn unknown_option_key_is_named_with_position() {
    let e = run_script(
        "unknown",
        "let d = data::synthetic(#{ n: 20 });\nlet x = data::subset(d, #{ per_clas: 1 });\n",
    )
    .unwrap_err();
    assert!(
        e.contains("unknown.rhai:2:")
            && e.contains("`per_clas`")
            && e.contains("did you mean `per_class`"),
        "{e}"
    );
}

#[test]
fn wrong_option_type_is_named() {
    let e = run_script("wrongtype", "let d = data::synthetic(#{ n: \"many\" });").unwrap_err();
    assert!(
        e.contains("wrongtype.rhai:1:")
            && e.contains("`n`")
            && e.contains("an integer")
            && e.contains("string"),
        "{e}"
    );
}

#[test]
fn runaway_loop_hits_the_operation_budget() {
    let e = run_script("loop", "let i = 0;\nloop { i += 1; }\n").unwrap_err();
    assert!(
        e.contains("operation budget") && e.contains("loop.rhai:"),
        "{e}"
    );
}

#[test]
fn core_errors_reach_the_script_position() {
    let e = run_script("core", "let r = data::synthetic(#{ n: 10 });\nlet g = data::synthetic_generator(#{ n: 5, size: 16 });\nlet m = data::inflate(r, g, #{ dup: 2 });\n").unwrap_err();
    assert!(
        e.contains("core.rhai:3:") && e.contains("cannot inflate"),
        "{e}"
    );
}

#[test]
fn datasets_views_and_info_work_from_scripts() {
    run_script(
        "views",
        r#"
        let real = data::synthetic(#{ n: 30, size: 16 });
        let gen = data::synthetic_generator(#{ n: 7, size: 16, fidelity: 1 });
        let mix = data::inflate(real, gen, #{ dup: 3 });
        if mix.len() != 97 { throw "len " + mix.len(); }
        let info = mix.info();
        if info.labelled != 90 || info.dup != 3 { throw "info " + info; }
        if "generator_gap" in info { throw "a gap measured on 7 generated images"; }
        let gap = data::inflate(data::synthetic(#{ n: 40, size: 8 }),
                                data::synthetic_generator(#{ n: 40, size: 8, fidelity: 0.2 }), #{})
                      .info().generator_gap;
        if gap.images != 40 || gap.tv < 0.0 || gap.tv > 1.0 || gap.frechet <= 0.0 { throw "gap " + gap; }
        let few = data::subset(real, #{ per_class: 2, seed: 1 });
        if few.len() != 20 || few.classes() != 10 { throw "subset"; }
        let a = aug::preset("symmetric").strength(0.5);
        let b = aug::simclr(#{ crop_min: 0.3, jitter: [0.1, 0.1, 0.1, 0.05] });
        let p = aug::pair(a, b);
        "#,
    )
    .unwrap();
}

/// `report::images` writes its grid next to the script (one row per dataset, a label margin
/// when labels are given); a non-dataset item, a label count that does not match and an unknown
/// key are refused at the call with what to do.
#[test]
fn report_images_writes_a_grid_and_refuses_mistakes_at_the_call() {
    let dir = std::env::temp_dir().join(format!("adainf-host-{}-images", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("images.rhai");
    std::fs::write(
        &path,
        r#"
        let real = data::synthetic(#{ n: 20, size: 8 });
        let gen = data::synthetic_generator(#{ n: 3, size: 8 });
        report::images([gen, real], "out/grid.png", #{ n: 5 });
        report::images([gen, real], "labelled.png", #{ labels: ["generated", "real"] });
        "#,
    )
    .unwrap();
    host(&dir).run_file(&path).map_err(|e| e.message).unwrap();
    // IHDR: width and height, big-endian, at bytes 16..24.
    let size = |name: &str| {
        let png = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap()) as usize;
        (be(&png[16..20]), be(&png[20..24]))
    };
    let cell = 8 * 3 + 2;
    assert_eq!(size("out/grid.png"), (5 * cell + 2, 2 * cell + 2));
    // The default n: 16 columns (of the 20 real images), and labels add a margin before them.
    let (w, h) = size("labelled.png");
    assert_eq!(h, 2 * cell + 2);
    assert!(w > 16 * cell + 2, "{w}");
    std::fs::remove_dir_all(&dir).ok();
    for (source, wanted) in [
        (
            "report::images([data::synthetic(#{ n: 4 }), 3], \"g.png\");",
            "item 1 is integer",
        ),
        (
            "report::images([data::synthetic(#{ n: 4 })], \"g.png\", #{ labels: [\"a\", \"b\"] });",
            "2 labels for 1 datasets",
        ),
        (
            "report::images([data::synthetic(#{ n: 4 })], \"g.png\", #{ rows: 2 });",
            "rows",
        ),
    ] {
        let e = run_script("images-bad", source).unwrap_err();
        assert!(
            e.contains("images-bad.rhai:1:") && e.contains(wanted),
            "{source}: {e}"
        );
    }
}

/// `dup: "auto"` reports its choice and inputs; the choice follows the documented rule (an
/// independent transcription here); `aug::auto` reads it; wrong values and sets too small to
/// measure are errors that say what to do.
#[test]
fn adaptive_inflation_reports_its_choice() {
    run_script(
        "auto",
        r#"
        let real = data::synthetic(#{ n: 200, size: 8 });
        let gen = data::synthetic_generator(#{ n: 600, size: 8, fidelity: 0.1 });
        let mix = data::inflate(real, gen, #{ dup: "auto" });
        let i = mix.info();
        if i.dup_rule != "auto" { throw "rule " + i; }
        let tv = i.generator_tv;
        if type_of(tv) != "f64" || type_of(i.auto_strength) != "f64" { throw "numbers " + i; }
        if tv < 0.0 || tv > 1.0 { throw "tv " + tv; }
        let capped = if tv > 0.95 { 0.95 } else { tv };
        let dup = (1.0 / (1.0 - capped)).round().to_int();
        if i.dup != dup || mix.len() != 200 * dup + 600 { throw `dup ${i.dup}, expected ${dup}`; }
        let n_eff = 200.0 + (1.0 - tv) * 600.0;
        let strength = ((n_eff / 200.0) ** (-1.0 / 6.0) * 100.0).round() / 100.0;
        let a = aug::auto(mix);
        if a.name != `symmetric×${strength} (auto)` { throw `aug ${a.name}, expected strength ${strength}`; }
        if aug::auto(real, #{ preset: "asymmetric" }).name != "asymmetric×1 (auto)" { throw "real alone"; }
        "#,
    )
    .unwrap();
    let wrong = run_script(
        "auto_wrong",
        r#"data::inflate(data::synthetic(#{ n: 50, size: 8 }), data::synthetic_generator(#{ n: 50, size: 8 }), #{ dup: "many" });"#,
    )
    .unwrap_err();
    assert!(
        wrong.contains("`dup`") && wrong.contains("\"auto\""),
        "{wrong}"
    );
    let small = run_script(
        "auto_small",
        r#"data::inflate(data::synthetic(#{ n: 20, size: 8 }), data::synthetic_generator(#{ n: 50, size: 8 }), #{ dup: "auto" });"#,
    )
    .unwrap_err();
    assert!(small.contains("give dup as a number"), "{small}");
}

#[test]
fn check_reports_every_unknown_function_and_key() {
    let dir = std::env::temp_dir().join(format!("adainf-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.rhai");
    std::fs::write(&path, "let d = data::synthetc(#{ n: 5 });\nlet r = train::pretrain(#{ data: d, stepz: 3, lr: \"x\" });\n").unwrap();
    let problems = host(&dir).check_file(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("c.rhai:1:") && problems[0].contains("data::synthetc"));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`stepz`") && p.contains("did you mean `steps`"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`lr`") && p.contains("a number"))
    );
}

#[test]
fn check_accepts_auto_and_numbers_for_dup_and_nothing_else() {
    let dir = std::env::temp_dir().join(format!("adainf-check-auto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.rhai");
    std::fs::write(
        &path,
        "let r = data::synthetic(#{ n: 5 });\n\
         data::inflate(r, r, #{ dup: \"auto\" });\n\
         data::inflate(r, r, #{ dup: 3 });\n\
         data::inflate(r, r, #{ dup: \"many\" });\n",
    )
    .unwrap();
    let problems = host(&dir).check_file(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("c.rhai:4:") && problems[0].contains("\"auto\""));
}

#[test]
fn every_catalogue_entry_is_callable() {
    let dir = std::env::temp_dir();
    let h = host(&dir);
    let sigs = h.engine().gen_fn_signatures(true).join("\n");
    for e in api::catalogue() {
        // Module functions appear as `module::name(`; methods and properties by their name.
        let wanted = if e.path.contains("::") {
            format!("{}(", e.path)
        } else {
            e.path.rsplit('.').next().unwrap().to_string()
        };
        assert!(
            sigs.contains(&wanted),
            "{} is not registered:\n{sigs}",
            e.path
        );
    }
}

#[test]
fn stdlib_modules_import_from_anywhere_and_local_files_win() {
    run_script(
        "stdlib",
        r#"
        import "adainf" as ada;
        import "sweep" as sweep;
        let real = data::synthetic(#{ n: 20, size: 8 });
        let gen = data::synthetic_generator(#{ n: 5, size: 8 });
        let r = ada::adainf(real, gen);
        if r.data.len() != 205 || r.aug != "symmetric_adainf" || r.tags.setting != "adainf" { throw `adainf recipe ${r}`; }
        if ada::vanilla(real, gen).data.len() != 25 { throw "vanilla"; }
        if ada::asymmetric(ada::none(real)).aug != "asymmetric" { throw "asymmetric"; }
        let m = ada::merge(#{ steps: 3, tags: #{ a: 1 } }, #{ lr: 0.1, tags: #{ b: 2 } });
        if m.steps != 3 || m.lr != 0.1 || m.tags.a != 1 || m.tags.b != 2 { throw `merge ${m}`; }
        let g = sweep::grid(#{ dup: [1, 10], seed: [0, 1, 2] });
        if g.len() != 6 || sweep::with_seeds([#{ dup: 1 }], 3).len() != 3 { throw `grid ${g}`; }
        if !("steps" in train::options()) { throw "options"; }
        "#,
    )
    .unwrap();
    // A module next to the script takes precedence over the standard library.
    let dir = std::env::temp_dir().join(format!("adainf-host-{}-local", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("adainf.rhai"), "fn none(real) { 42 }").unwrap();
    let path = dir.join("local.rhai");
    std::fs::write(
        &path,
        "import \"adainf\" as ada;\nif ada::none(1) != 42 { throw \"stdlib won\"; }\n",
    )
    .unwrap();
    let r = host(&dir).run_file(&path).map_err(|e| e.message);
    std::fs::remove_dir_all(&dir).ok();
    r.unwrap();
}

#[test]
fn a_device_named_by_the_script_is_checked_with_position() {
    let e = run_script(
        "device",
        "let d = data::synthetic(#{ n: 20, size: 8 });\nlet r = train::pretrain(#{ data: d, device: \"tpu\", steps: 1, batch: 4 });\n",
    )
    .unwrap_err();
    assert!(
        e.contains("device.rhai:2:") && e.contains("unknown device \"tpu\""),
        "{e}"
    );
    // A valid name trains there; the device is not part of the run id.
    let dir = std::env::temp_dir().join(format!("adainf-host-{}-devid", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids.rhai");
    std::fs::write(
        &path,
        "let d = data::synthetic(#{ n: 16, size: 8 });\n\
         let o = #{ data: d, steps: 2, warmup: 0, batch: 4, width: 2, backbone: \"resnet10\", proj_hidden: 8, proj_dim: 4, log_every: 1 };\n\
         let a = train::pretrain(o);\n\
         o.device = \"flex\";\n\
         let b = train::pretrain(o);\n\
         if a.id != b.id || !b.cached { throw \"the device changed the run id\"; }\n",
    )
    .unwrap();
    let r = host(&dir).run_file(&path).map_err(|e| e.message);
    std::fs::remove_dir_all(&dir).ok();
    r.unwrap();
}

/// The other direction: everything the engine registers for scripts (module functions, and
/// methods and getters on the host's types) is in the catalogue, so `adainf api`, `adainf check`
/// and the definition files list it.
#[test]
fn every_registered_function_is_in_the_catalogue() {
    let dir = std::env::temp_dir();
    let h = host(&dir);
    let listed: Vec<&str> = api::catalogue().iter().map(|e| e.path).collect();
    let mut missing = Vec::new();
    for sig in h.engine().gen_fn_signatures(true) {
        let (name, rest) = sig.split_once('(').unwrap_or((&sig, ""));
        let path = if let Some((module, f)) = name.split_once("::") {
            if !api::MODULES.contains(&module) {
                continue;
            }
            format!("{module}::{f}")
        } else {
            let Some(ty) = ["Run", "Dataset", "Aug", "Generator"]
                .into_iter()
                .find(|t| rest.starts_with(&format!("_: &mut {t}")))
            else {
                continue; // Rhai's own functions
            };
            let name = name.trim_start_matches("get$");
            if name == "to_string" || name == "to_debug" {
                continue; // printing, not API
            }
            format!("{ty}.{name}")
        };
        if !listed.contains(&path.as_str()) {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "registered but not in the catalogue: {missing:?}"
    );
}

/// docs/api.md is the generated reference, current with the catalogue (less the option only
/// this test build has: `a_field_added_to_an_options_struct_is_an_option_everywhere`).
#[test]
fn the_api_reference_in_docs_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let rendered: String = api::render_markdown()
        .split_inclusive('\n')
        .filter(|line| !line.contains("`fake_option`"))
        .collect();
    assert!(
        on_disk == rendered,
        "docs/api.md is out of date: run `adainf api --markdown > docs/api.md`"
    );
}

/// `theory::estimate` in a trained run's encoder space: with the identity augmentation every
/// view is its own un-augmented image, so α must equal the judge's own error exactly; with a
/// real augmentation the spectrum is computed and the solver converges.
#[test]
fn theory_estimate_in_an_encoder_space() {
    run_script(
        "estimate",
        r#"
        let real = data::synthetic(#{ n: 80, size: 8 });
        let plain = aug::simclr(#{ crop_min: 1.0, flip_prob: 0, jitter_prob: 0, gray_prob: 0, blur_prob: 0 });
        let run = train::pretrain(#{ data: real, aug: plain, width: 4, batch: 16, steps: 3,
                                     optimizer: "sgd", proj_hidden: 16, proj_dim: 8 });
        let same = theory::estimate(run, real, plain, #{ n: 60, resamples: 1, neighbours: 4, judge_k: 5 });
        if same.alpha != same.alpha_clean { throw `identity views: alpha ${same.alpha} vs ${same.alpha_clean}`; }
        let sym = theory::estimate(run, real, aug::preset("symmetric"), #{ n: 60, resamples: 2, neighbours: 4, judge_k: 5 });
        if !sym.converged || sym.lambda_k1 < 0.0 || sym.lambda_k1 > 2.0 || sym.k != 10 { throw `estimate ${sym}`; }
        "#,
    )
    .unwrap();
}

/// A schedule is identified by its per-step values: a closure, a named function and a
/// library function giving the same table give one run (the second and third come from the
/// cache), and an edited closure gives a new run.
#[test]
fn a_schedule_is_identified_by_its_values_not_its_text() {
    run_script(
        "schedule_id",
        r#"
        import "schedules" as s;
        fn half(t) { 0.5 * t }
        let real = data::synthetic(#{ n: 24, size: 8 });
        let gen = data::synthetic_generator(#{ n: 20, size: 8, seed: 1 });
        let base = #{ data: data::inflate(real, gen, #{ dup: 1 }), backbone: "resnet10", width: 2,
                      batch: 8, steps: 3, proj_hidden: 8, proj_dim: 4, eval_every: 0 };
        let o = base; o.schedule = #{ generated_share: |t| 0.5 * t };
        let a = train::pretrain(o);
        let o = base; o.schedule = #{ generated_share: Fn("half") };
        let b = train::pretrain(o);
        let o = base; o.schedule = #{ generated_share: s::linear(0, 0.5) };
        let c = train::pretrain(o);
        let o = base; o.schedule = #{ generated_share: |t| 0.6 * t };
        let d = train::pretrain(o);
        if a.cached || !b.cached || !c.cached || d.cached { throw `cached: ${[a.cached, b.cached, c.cached, d.cached]}`; }
        if a.id != b.id || a.id != c.id { throw `ids differ: ${a.id} ${b.id} ${c.id}`; }
        if d.id == a.id { throw "an edited closure kept the run id"; }
        let o = base; o.schedule = #{ strength: 1 };
        let e = train::pretrain(o);
        if e.id == a.id || e.cached { throw "a constant is a schedule of its own"; }
        "#,
    )
    .unwrap();
}

/// The values of `stdlib/schedules.rhai`, against the formulas written out in f64 here.
#[test]
fn the_schedules_library_gives_its_documented_values() {
    let pi = std::f64::consts::PI;
    let mut checks = String::new();
    let mut expect = |call: &str, t: f64, want: f64| {
        checks.push_str(&format!(
            "let v = {call}.call({t:?}); if (v - {want:?}).abs() > 1e-12 {{ throw `{call} at {t}: ${{v}} instead of {want}`; }}\n"
        ));
    };
    for t in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
        expect("s::linear(1.0, 0.2)", t, 1.0 + (0.2 - 1.0) * t);
        expect("s::linear(0, 1)", t, t);
        expect(
            "s::cosine(1.0, 0.5)",
            t,
            0.5 + 0.5 * 0.5 * (1.0 + (pi * t).cos()),
        );
        let w = 0.2;
        let warm = if t < w {
            t / w
        } else {
            0.5 * (1.0 + (pi * (t - w) / (1.0 - w)).cos())
        };
        expect("s::warmup_cosine(0.2)", t, warm);
        let step = if t >= 0.5 {
            0.1
        } else if t >= 0.25 {
            0.5
        } else {
            1.0
        };
        expect("s::steps([0.0, 0.25, 0.5], [1.0, 0.5, 0.1])", t, step);
    }
    let script = format!("import \"schedules\" as s;\n{checks}");
    run_script("schedules_lib", &script).unwrap();
    let e = run_script(
        "schedules_bad",
        "import \"schedules\" as s;\nlet f = s::steps([0.5], [1.0, 2.0]);\n",
    )
    .unwrap_err();
    assert!(e.contains("as many t_points as values"), "{e}");
}

/// The one-definition rule of options: `data::subset`'s options struct has a field only in this
/// crate's test build (`fake_option`, an int defaulting to 7, with a doc comment), and nothing
/// else names it. Parsing, `adainf api` (text, markdown, JSON), `adainf check` and the Rhai
/// definition files all know it.
#[test]
fn a_field_added_to_an_options_struct_is_an_option_everywhere() {
    let data = "let d = data::synthetic(#{ n: 20, size: 8 });\n";
    // Parsing: the key is known, its kind checked, and the call runs with it.
    run_script(
        "fake_ok",
        &format!("{data}let s = data::subset(d, #{{ n: 3, fake_option: 2 }});\nif s.len() != 3 {{ throw \"len\"; }}\n"),
    )
    .unwrap();
    // The value given is the value parsed, and the field's default where none is given.
    let given: Map = [
        ("n".into(), Dynamic::from(3_i64)),
        ("fake_option".into(), Dynamic::from(2_i64)),
    ]
    .into_iter()
    .collect();
    assert_eq!(modules::data_module::parsed_fake_option(&given), Ok(2));
    assert_eq!(modules::data_module::parsed_fake_option(&Map::new()), Ok(7));
    let e = run_script(
        "fake_kind",
        &format!("{data}data::subset(d, #{{ n: 3, fake_option: \"x\" }});\n"),
    )
    .unwrap_err();
    assert!(
        e.contains("option `fake_option` of data::subset must be an integer"),
        "{e}"
    );
    let e = run_script(
        "fake_typo",
        &format!("{data}data::subset(d, #{{ n: 3, fake_optoin: 2 }});\n"),
    )
    .unwrap_err();
    assert!(e.contains("did you mean `fake_option`"), "{e}");
    // `adainf api`: its line with kind, doc and default, in every form.
    let doc = "An option only this crate's test build has";
    let text = api::render();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("fake_option"))
        .unwrap_or_else(|| panic!("no fake_option in `adainf api`:\n{text}"));
    assert!(
        line.contains("int") && line.contains(doc) && line.ends_with("(default 7)"),
        "{line}"
    );
    let markdown = api::render_markdown();
    assert!(
        markdown.contains("- `fake_option` (int): An option only"),
        "{markdown}"
    );
    let json: serde_json::Value = serde_json::from_str(&api::render_json()).unwrap();
    let subset = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "data::subset")
        .unwrap();
    let row = subset["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == "fake_option")
        .unwrap_or_else(|| panic!("no fake_option in `adainf api --json`: {subset}"));
    assert_eq!(
        (row["kind"].as_str(), row["default"].as_i64()),
        (Some("int"), Some(7))
    );
    // `adainf check`: a literal of the wrong kind is found without running; the right kind is
    // no problem.
    let dir = std::env::temp_dir().join(format!("adainf-fake-option-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("{data}data::subset(d, #{{ n: 3, fake_option: {value} }});\n"),
        )
        .unwrap();
        host(&dir).check_file(&path)
    };
    let problems = check("bad.rhai", "1.5");
    assert!(
        problems.len() == 1
            && problems[0].contains("bad.rhai:2:")
            && problems[0].contains("`fake_option`"),
        "{problems:?}"
    );
    assert_eq!(check("good.rhai", "2"), Vec::<String>::new());
    // The Rhai definition files: `subset`'s doc comment lists it.
    let host = host(&dir);
    let defs: String = host
        .engine()
        .definitions()
        .iter_files()
        .map(|(_, text)| text)
        .collect();
    let subset_doc = defs
        .split("fn subset(")
        .next()
        .and_then(|before| before.rsplit("\n\n").next())
        .unwrap_or_default();
    assert!(
        subset_doc.contains("/// - `fake_option` (int): An option only"),
        "{subset_doc}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
