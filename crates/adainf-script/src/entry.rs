//! One entry of the script API's catalogue (a function's path, signature, doc, options and
//! their typed struct) and how an entry is shown: the option lines every renderer prints (with
//! each default read from the struct), the doc comments and parameter info the registration
//! gives Rhai. Each script module lists its entries (`modules/<name>_module.rs`); `api` gathers
//! them.

use serde_json::Value;

use super::options::{Kind, Opt, Typed};

pub struct ApiEntry {
    /// `module::name` for module functions, `Type.name` for methods and properties.
    pub path: &'static str,
    pub signature: &'static str,
    pub doc: &'static str,
    pub options: &'static [Opt],
    /// The struct the options parse into (its fields and defaults); `None` without options.
    pub typed: Option<Typed>,
}

/// One catalogue entry.
pub const fn entry(
    path: &'static str,
    signature: &'static str,
    doc: &'static str,
    options: &'static [Opt],
) -> ApiEntry {
    ApiEntry {
        path,
        signature,
        doc,
        options,
        typed: None,
    }
}

impl ApiEntry {
    /// The entry with the struct its options parse into.
    pub fn typed(self, typed: Typed) -> Self {
        ApiEntry {
            typed: Some(typed),
            ..self
        }
    }

    /// The default of option `key` as text, from the struct's serialized defaults: the value,
    /// or the values per variant where they differ (`simclr 0.4, mocov2 0.3`); `None` where it
    /// has none (unset means something the row's doc says).
    pub fn default_of(&self, key: &str) -> Option<String> {
        let defaults = (self.typed?.defaults)();
        let values: Vec<(&str, &Value)> = defaults
            .iter()
            .filter_map(|(label, m)| m.get(key).filter(|v| !v.is_null()).map(|v| (*label, v)))
            .collect();
        let (_, first) = values.first()?;
        if values.len() == defaults.len() && values.iter().all(|(_, v)| v == first) {
            return Some(value_text(first));
        }
        Some(
            values
                .iter()
                .map(|(label, v)| format!("{label} {}", value_text(v)))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// A default as a script literal: numbers as written in code, bools, strings quoted, arrays in
/// brackets.
fn value_text(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Number(n) if n.is_f64() => number_text(n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

/// A float as a literal: an f32 constant widened to f64 as its f32 digits (0.4914, not
/// 0.49140000343322754), small values with an exponent (2e-4), the rest as Rust writes them.
fn number_text(x: f64) -> String {
    let narrow = x as f32;
    let x = if f64::from(narrow) == x {
        narrow.to_string().parse().unwrap_or(x)
    } else {
        x
    };
    if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:e}")
    } else {
        format!("{x:?}")
    }
}

/// How an option line is printed: `adainf api`'s text, the markdown reference, or a Rhai
/// definition file's doc comment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Text,
    Markdown,
    Rhai,
}

/// The lines of `entry`'s options in `style`, one per option (its key, kind, doc and default)
/// and, under a schedule option, one per schedulable key: the one place an option is
/// formatted.
pub fn option_lines(entry: &ApiEntry, style: Style) -> Vec<String> {
    let mut out = Vec::new();
    for o in entry.options {
        let doc = match entry.default_of(o.key) {
            Some(d) => format!("{} (default {d})", o.doc),
            None => o.doc.to_string(),
        };
        let kind = kind_short(o.kind);
        out.push(match style {
            Style::Text => format!("    {:<16} {kind:<12} {doc}", o.key),
            Style::Markdown => format!("- `{}` ({kind}): {doc}", o.key),
            Style::Rhai => format!("/// - `{}` ({kind}): {doc}", o.key),
        });
        if o.kind == Kind::Schedule {
            out.extend(schedule_keys().into_iter().map(|(k, doc)| match style {
                Style::Text => format!("      .{k:<16} {doc}"),
                Style::Markdown => format!("  - `{}.{k}`: {doc}", o.key),
                Style::Rhai => format!("///   - `{}.{k}`: {doc}", o.key),
            }));
        }
    }
    out
}

/// Doc comments (`/// …` lines) of `module::name`, found in its module's `entries`, for Rhai
/// definition files: the signature, the one-line doc and the options.
pub fn doc_comments(entries: &[ApiEntry], module: &str, name: &str) -> Vec<String> {
    let path = format!("{module}::{name}");
    let Some(e) = entries.iter().find(|e| e.path == path) else {
        return Vec::new();
    };
    let mut out = vec![format!("/// {}", e.signature), format!("/// {}", e.doc)];
    if !e.options.is_empty() {
        out.push("///".into());
        out.push("/// Options:".into());
        out.extend(option_lines(e, Style::Rhai));
    }
    out
}

/// Parameter info for Rhai definition files: `params` then the return type of `module::name`
/// (from its signature among its module's `entries`).
pub fn params_info(entries: &[ApiEntry], module: &str, name: &str, params: &[&str]) -> Vec<String> {
    let path = format!("{module}::{name}");
    let ret = entries
        .iter()
        .find(|e| e.path == path)
        .and_then(|e| e.signature.split("-> ").nth(1).map(str::to_string))
        .unwrap_or_else(|| "()".into());
    params.iter().map(|p| p.to_string()).chain([ret]).collect()
}

pub(crate) fn kind_short(k: Kind) -> &'static str {
    match k {
        Kind::Int => "int",
        Kind::IntOrAuto => "int | \"auto\"",
        Kind::Float => "float",
        Kind::Str => "string",
        Kind::Bool => "bool",
        Kind::Floats => "[float]",
        Kind::Ints => "[int]",
        Kind::Strings => "[string]",
        Kind::Pairs => "[[string, string]]",
        Kind::Dataset => "Dataset",
        Kind::Aug => "Aug",
        Kind::Map => "map",
        Kind::Schedule => "schedule map",
    }
}

/// The keys an option of kind `Schedule` takes, from the core's one list of schedulable keys:
/// (name, doc with the range).
pub fn schedule_keys() -> Vec<(&'static str, String)> {
    adainf_core::train::schedule::KEYS
        .iter()
        .map(|k| {
            (
                k.name,
                format!(
                    "in [{}, {}] at each step (a number, |t| ... or Fn(\"name\"), t = step / steps): {}",
                    k.range.0, k.range.1, k.doc
                ),
            )
        })
        .collect()
}

/// The schedulable keys as options (for unknown-key messages).
pub fn schedule_opts() -> Vec<Opt> {
    adainf_core::train::schedule::KEYS
        .iter()
        .map(|k| super::options::opt(k.name, Kind::Float, k.doc))
        .collect()
}

#[cfg(test)]
mod tests {
    //! The option rows and the typed structs cannot drift apart, and every renderer shows the
    //! defaults the structs hold.

    use super::*;
    use crate::api::{catalogue, render, render_markdown};
    use crate::options::{opt, typed};

    /// Where `rows` and the struct described by `typed` disagree: a row that is neither a field
    /// nor a handle the host reads itself, a field without a row, a default without a row.
    fn drift(path: &str, rows: &[Opt], typed: Typed) -> Vec<String> {
        let fields = (typed.fields)();
        let row = |k: &str| rows.iter().any(|o| o.key == k);
        let mut out = Vec::new();
        if fields.is_empty() {
            out.push(format!("{path}: the struct has no fields serde reads"));
        }
        for o in rows {
            if !o.kind.is_handle() && !fields.contains(&o.key) {
                out.push(format!("{path}: row `{}` is no field of the struct", o.key));
            }
        }
        for f in &fields {
            if !row(f) {
                out.push(format!("{path}: field `{f}` has no row"));
            }
        }
        for (label, defaults) in (typed.defaults)() {
            for k in defaults.keys().filter(|k| !row(k)) {
                out.push(format!("{path}: default `{k}` ({label}) has no row"));
            }
        }
        out
    }

    #[test]
    fn every_option_row_is_a_field_of_its_struct_and_every_field_a_row() {
        let mut problems = Vec::new();
        for e in catalogue().iter().filter(|e| !e.options.is_empty()) {
            match e.typed {
                Some(t) => problems.extend(drift(e.path, e.options, t)),
                None => problems.push(format!("{}: options without a typed struct", e.path)),
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// The detector itself: a field without a row and a row without a field are both found.
    #[test]
    fn drift_is_found_both_ways() {
        #[derive(Default, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        struct Two {
            steps: usize,
            seed: u64,
        }
        let rows = [
            opt("steps", Kind::Int, ""),
            opt("stpes", Kind::Int, ""),
            opt("data", Kind::Dataset, "a handle: no field"),
        ];
        let found = drift("f", &rows, typed::<Two>());
        assert_eq!(
            found,
            [
                "f: row `stpes` is no field of the struct",
                "f: field `seed` has no row",
                "f: default `seed` () has no row",
            ],
            "{found:?}"
        );
    }

    /// Whether `doc` writes a default value in prose ("default 5", "(default \"x\")",
    /// "\"f32\" (default)", "default: [1, 2]").
    fn restates_a_default(doc: &str) -> bool {
        doc.match_indices("default").any(|(i, _)| {
            let after = doc[i + "default".len()..].trim_start_matches([' ', ':']);
            after.starts_with(|c: char| c.is_ascii_digit() || "\"[)-".contains(c))
                || after.starts_with("true")
                || after.starts_with("false")
        })
    }

    #[test]
    fn option_docs_do_not_restate_defaults() {
        for bad in [
            "n (default 5000)",
            "\"f32\" (default)",
            "x (default: [1])",
            "default true",
        ] {
            assert!(restates_a_default(bad), "{bad}");
        }
        assert!(!restates_a_default("unset: the default, at most lr"));
        for e in catalogue() {
            for o in e.options {
                assert!(
                    !restates_a_default(o.doc),
                    "{}: `{}` writes its default in prose: {}",
                    e.path,
                    o.key,
                    o.doc
                );
            }
        }
    }

    fn entry_named(path: &str) -> ApiEntry {
        catalogue().into_iter().find(|e| e.path == path).unwrap()
    }

    /// A default shown is the struct's: in `adainf api`'s text, the markdown reference and the
    /// definition files alike; pretraining's per method where the methods differ.
    #[test]
    fn renderers_show_the_structs_defaults() {
        use crate::data::synthetic::SyntheticSpec;
        use crate::method::Method;
        use crate::train::PretrainConfig;
        let n = SyntheticSpec::default().n;
        let synthetic = entry_named("data::synthetic");
        let want = format!("(default {n})");
        for style in [Style::Text, Style::Markdown, Style::Rhai] {
            let lines = option_lines(&synthetic, style);
            let line = lines
                .iter()
                .find(|l| l.contains("n`") || l.contains(" n "))
                .unwrap();
            assert!(line.ends_with(&want), "{line}");
        }
        assert!(render().contains(&want) && render_markdown().contains(&want));
        let split = synthetic.default_of("split").unwrap();
        assert_eq!(split, format!("\"{}\"", SyntheticSpec::default().split));

        let pretrain = entry_named("train::pretrain");
        let lr = |m| PretrainConfig::for_method(m).lr;
        assert_eq!(
            pretrain.default_of("lr").unwrap(),
            format!(
                "simclr {:?}, mocov2 {:?}, byol {:?}, barlow {:?}",
                lr(Method::Simclr),
                lr(Method::Mocov2),
                lr(Method::Byol),
                lr(Method::Barlow)
            )
        );
        let steps = PretrainConfig::default().steps;
        assert_eq!(pretrain.default_of("steps").unwrap(), steps.to_string());
        let queue = crate::train::config::Mocov2Settings::default().queue_size;
        assert_eq!(
            pretrain.default_of("queue_size").unwrap(),
            format!("mocov2 {queue}")
        );
        assert_eq!(pretrain.default_of("precision").unwrap(), "\"f32\"");
        assert_eq!(
            pretrain.default_of("aug").unwrap(),
            format!("\"{}\"", crate::augment::DEFAULT_PRESET)
        );
        assert_eq!(pretrain.default_of("data"), None);
        assert_eq!(pretrain.default_of("lr_scaling"), None);
        // pretrain and pretrain_all share one option list.
        let all = entry_named("train::pretrain_all");
        assert!(std::ptr::eq(pretrain.options, all.options));
        assert_eq!(
            option_lines(&pretrain, Style::Text),
            option_lines(&all, Style::Text)
        );
        // Options with several forms of default render as script literals.
        let diffusion = entry_named("gen::diffusion");
        let mult = crate::generator::diffusion::run::DiffusionConfig::default().channel_mult;
        assert_eq!(
            diffusion.default_of("channel_mult").unwrap(),
            format!(
                "[{}]",
                mult.iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
        assert_eq!(
            entry_named("data::npz").default_of("labels").unwrap(),
            "\"keep\""
        );
        assert_eq!(entry_named("data::inflate").default_of("dup").unwrap(), "1");
        assert_eq!(pretrain.default_of("method").unwrap(), "\"simclr\"");
        assert_eq!(
            entry_named("gen::diffusion").default_of("lr").unwrap(),
            "2e-4"
        );
        assert_eq!(number_text(f64::from(0.4914_f32)), "0.4914");
    }
}
