//! The workspace's import structure, read from the sources: the core's modules keep their
//! declared layer order (no file imports a module of a higher layer), and no crate of the
//! workspace has an import cycle between its modules or between sibling files.
//!
//! An import is any `crate::…`, `super::…` or `self::…` path outside comments, strings and
//! `#[cfg(test)]` code, `use` trees expanded; it points at the deepest source file its path
//! names. Two checks follow: the *units* (the top-level modules, with the sub-modules named in
//! `CORE_LAYERS` as units of their own) form no cycle and, in the core, respect the layers; and
//! files that are not ancestors of one another (a parent module and its children are one
//! piece: children see their parent's types and the parent re-exports its children) form no
//! cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The core's layers, lowest first: a module may import its own layer and those below.
/// `eval::runs` (evaluating finished runs) sits above `train`; the rest of `eval` (the probes
/// the training loop calls) below it. `generator::diffusion::run` (the generator as a cached
/// run, with the checkpoints and seal of `train`) sits above `train`; the model below it, and
/// `generator::replay` (making sets again from recipes, DDPM samples from their run folders)
/// beside the run.
/// `runs::claim` and `runs::cache` (the run cache's rules, shared by every run kind) sit below
/// the run kinds that use them; the executors (the rest of `runs`) above.
const CORE_LAYERS: &[&[&str]] = &[
    &[
        "error", "options", "files", "rng", "tensor", "png", "linalg",
    ],
    &["data"],
    &["augment", "model", "method", "optim", "device"],
    &["generator"],
    &["theory", "eval"],
    &["train"],
    &["runs::claim", "runs::cache"],
    &[
        "eval::runs",
        "generator::diffusion::run",
        "generator::replay",
        "report",
        "runs",
    ],
];

/// One source file of a crate: its module path (`data::recipe`) and its imports.
struct SourceFile {
    module: Vec<String>,
    path: PathBuf,
    imports: Vec<Vec<String>>,
}

/// Removes comments, string and char literals, and `#[cfg(test)]` items from Rust source.
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied().unwrap_or('\0');
        if c == '/' && next == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == '*' {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (next == '"' || next == '#') && !ident_char(b.get(i.wrapping_sub(1)))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == '\\' {
            // '\n', '\'', '\u{…}'
            i += 2;
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && b.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    remove_test_items(&out)
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Drops every item that follows `#[cfg(test)]`: up to its `;` or its balanced `{ … }`.
fn remove_test_items(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (mut depth, mut end) = (0usize, after.len());
        for (k, ch) in after.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every path that starts with `crate::`, `super::` or `self::`, with `use` groups expanded,
/// resolved to a path from the crate root (`module` is the file's own module path).
fn imports(src: &str, module: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| chars[i..].starts_with(&p.chars().collect::<Vec<_>>()[..]))
            .copied();
        match starts {
            Some(p) if !ident_char(i.checked_sub(1).and_then(|k| chars.get(k))) => {
                // The module `self` refers to: a mod.rs file's own module, else also its own.
                let base: Vec<String> = match p {
                    "crate::" => vec![],
                    "self::" => module.to_vec(),
                    _ => {
                        // super:: of a file module is its parent (mod.rs and x.rs alike).
                        let _ = is_mod_file;
                        module[..module.len().saturating_sub(1)].to_vec()
                    }
                };
                let (paths, end) = parse_tree(&chars, i + p.len(), base);
                out.extend(paths);
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// Parses `a::b::{c, d::e}` (after a prefix) into full paths; returns them and where it ended.
fn parse_tree(chars: &[char], mut i: usize, base: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut path = base;
    loop {
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i > start {
            let seg: String = chars[start..i].iter().collect();
            if seg == "super" {
                path.pop();
            } else if seg != "self" {
                path.push(seg);
            }
        }
        if chars[i..].starts_with(&[':', ':']) {
            i += 2;
            if chars.get(i) == Some(&'{') {
                let mut all = Vec::new();
                i += 1;
                loop {
                    while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                        i += 1;
                    }
                    if chars.get(i) == Some(&'}') || i >= chars.len() {
                        return (if all.is_empty() { vec![path] } else { all }, i + 1);
                    }
                    let (sub, end) = parse_tree(chars, i, path.clone());
                    all.extend(sub);
                    i = end;
                    // Skip `as alias` and anything else up to the next separator.
                    while chars.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                        i += 1;
                    }
                }
            }
            continue;
        }
        return (vec![path], i);
    }
}

/// Every `.rs` file under `src` with its module path and imports.
fn crate_files(src: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source folder is readable") {
            let path = entry.expect("a readable entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src");
                let mut module: Vec<String> = rel
                    .with_extension("")
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                let name = module.last().cloned().unwrap_or_default();
                let is_mod_file = name == "mod";
                if is_mod_file || (module.len() == 1 && (name == "lib" || name == "main")) {
                    module.pop();
                }
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                let imports = imports(&strip(&text), &module, is_mod_file);
                files.push(SourceFile {
                    module,
                    path,
                    imports,
                });
            }
        }
    }
    files.sort_by(|a, b| a.module.cmp(&b.module));
    files
}

/// The file a path points at: the longest prefix of it that is a file module (None: outside
/// the crate's own files, e.g. a re-exported dependency).
fn target(files: &[SourceFile], path: &[String]) -> Option<usize> {
    (1..=path.len())
        .rev()
        .find_map(|k| files.iter().position(|f| f.module == path[..k]))
}

/// The unit of a module path: the longest declared unit that prefixes it, else its top module.
fn unit(module: &[String], declared: &[&str]) -> String {
    let joined = module.join("::");
    declared
        .iter()
        .filter(|u| joined == **u || joined.starts_with(&format!("{u}::")))
        .max_by_key(|u| u.len())
        .map(|u| u.to_string())
        .unwrap_or_else(|| module.first().cloned().unwrap_or_default())
}

/// A cycle in `edges`, if any (as the list of its nodes).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, edges, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Unit-level and file-level import graphs of a crate (self-edges and parent–child file
/// edges left out), with one example import per unit edge for the messages.
struct Graphs {
    units: BTreeMap<String, BTreeSet<String>>,
    files: BTreeMap<String, BTreeSet<String>>,
    example: BTreeMap<(String, String), String>,
}

fn graphs(src: &Path, declared: &[&str]) -> Graphs {
    let files = crate_files(src);
    let mut g = Graphs {
        units: BTreeMap::new(),
        files: BTreeMap::new(),
        example: BTreeMap::new(),
    };
    let name = |f: &SourceFile| {
        f.path
            .strip_prefix(src)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    for f in files.iter().filter(|f| !f.module.is_empty()) {
        // The crate root (lib.rs, main.rs) declares every module: it is no unit.
        let from_unit = unit(&f.module, declared);
        g.units.entry(from_unit.clone()).or_default();
        g.files.entry(name(f)).or_default();
        for path in &f.imports {
            let Some(t) = target(&files, path) else {
                continue;
            };
            let to = &files[t];
            if to.module.is_empty() {
                continue;
            }
            let to_unit = unit(&to.module, declared);
            if to_unit != from_unit {
                g.units
                    .entry(from_unit.clone())
                    .or_default()
                    .insert(to_unit.clone());
                g.example
                    .entry((from_unit.clone(), to_unit))
                    .or_insert_with(|| format!("{} imports crate::{}", name(f), path.join("::")));
            }
            let related = f.module.starts_with(&to.module) || to.module.starts_with(&f.module);
            if !related {
                g.files.entry(name(f)).or_default().insert(name(to));
            }
        }
    }
    g
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn declared_units() -> Vec<&'static str> {
    CORE_LAYERS.iter().flat_map(|l| l.iter().copied()).collect()
}

#[test]
fn the_core_imports_only_its_own_layer_and_those_below() {
    let declared = declared_units();
    let g = graphs(&root().join("crates/adainf-core/src"), &declared);
    let layer = |u: &str| CORE_LAYERS.iter().position(|l| l.contains(&u));
    let mut problems = Vec::new();
    for (from, tos) in &g.units {
        let Some(lf) = layer(from) else {
            problems.push(format!(
                "module `{from}` has no layer in CORE_LAYERS: add it"
            ));
            continue;
        };
        for to in tos {
            match layer(to) {
                Some(lt) if lt > lf => problems.push(format!(
                    "`{from}` (layer {lf}) imports `{to}` (layer {lt}): {}",
                    g.example[&(from.clone(), to.clone())]
                )),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_crate_has_an_import_cycle() {
    let declared = declared_units();
    for (krate, declared) in [
        ("crates/adainf-core/src", &declared[..]),
        ("crates/adainf-script/src", &[][..]),
        ("src", &[][..]),
    ] {
        let g = graphs(&root().join(krate), declared);
        if let Some(cycle) = find_cycle(&g.units) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| g.example[&(w[0].clone(), w[1].clone())].clone())
                .collect();
            panic!(
                "{krate}: modules import each other in a circle {}:\n{}",
                cycle.join(" → "),
                steps.join("\n")
            );
        }
        if let Some(cycle) = find_cycle(&g.files) {
            panic!(
                "{krate}: files import each other in a circle {}",
                cycle.join(" → ")
            );
        }
    }
}

/// The checks see what they claim to: a planted upward import and a planted cycle are found.
#[test]
fn the_scanner_finds_imports_and_cycles() {
    let src = "//! crate::doc::mention is a comment\nuse crate::data::{Dataset, recipe::{self, Recipe}};\n\
               use super::sibling as s;\nfn f() { let x = \"crate::in_string\"; crate::rng::Rng::new(1); }\n\
               #[cfg(test)]\nmod tests { use crate::train::Trainer; }\n";
    let got = imports(&strip(src), &["theory".into(), "adapt".into()], false);
    let want: Vec<Vec<String>> = [
        vec!["data", "Dataset"],
        vec!["data", "recipe"],
        vec!["data", "recipe", "Recipe"],
        vec!["theory", "sibling"],
        vec!["rng", "Rng", "new"],
    ]
    .iter()
    .map(|p| p.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(got, want);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert!(find_cycle(&edges).is_none());
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
}
