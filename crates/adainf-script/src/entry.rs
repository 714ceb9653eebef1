//! One entry of the script API's catalogue (a function's path, signature, doc, and its options:
//! the handles the host reads itself and the struct the rest parse into) and how an entry is
//! shown: the option lines every renderer prints (each default read from the struct), the doc
//! comments and parameter info the registration gives Rhai. Each script module lists its
//! entries (`modules/<name>_module.rs`); `api` gathers them.

use serde_json::Value;

use super::options::{Kind, Opt, Typed};

pub struct ApiEntry {
    /// `module::name` for module functions, `Type.name` for methods and properties.
    pub path: &'static str,
    pub signature: &'static str,
    pub doc: &'static str,
    /// The options the host reads itself (handles, maps): rows no struct field holds.
    pub handles: &'static [Opt],
    /// The options that parse into a struct (its fields and defaults); `None` without any.
    pub typed: Option<Typed>,
}

/// One catalogue entry, with the rows of the handles its function reads itself (the same
/// constant its registration parses with).
pub const fn entry(
    path: &'static str,
    signature: &'static str,
    doc: &'static str,
    handles: &'static [Opt],
) -> ApiEntry {
    ApiEntry {
        path,
        signature,
        doc,
        handles,
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

    /// Every option: the handles, then the struct's (what parsing knows).
    pub fn options(&self) -> Vec<Opt> {
        let fields = self.typed.map(|t| (t.options)()).unwrap_or_default();
        self.handles.iter().copied().chain(fields).collect()
    }

    /// The default of option `key` from the struct's serialized defaults: one value, or the
    /// values per variant where they differ (labelled, e.g. by method); `None` where it has none
    /// (unset means something the option's doc says).
    pub fn default_value(&self, key: &str) -> Option<DefaultValue> {
        let defaults = (self.typed?.defaults)();
        let values: Vec<(&'static str, Value)> = defaults
            .iter()
            .filter_map(|(label, m)| {
                m.get(key)
                    .filter(|v| !v.is_null())
                    .map(|v| (*label, v.clone()))
            })
            .collect();
        let (_, first) = values.first()?;
        if values.len() == defaults.len() && values.iter().all(|(_, v)| v == first) {
            return Some(DefaultValue::One(first.clone()));
        }
        Some(DefaultValue::PerVariant(values))
    }

    /// The default of option `key` as text: the value as a script literal, or the values per
    /// variant (`simclr 0.4, mocov2 0.3`).
    pub fn default_of(&self, key: &str) -> Option<String> {
        Some(match self.default_value(key)? {
            DefaultValue::One(v) => value_text(&v),
            DefaultValue::PerVariant(values) => values
                .iter()
                .map(|(label, v)| format!("{label} {}", value_text(v)))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// An option's default: one value, or one per labelled variant.
pub enum DefaultValue {
    One(Value),
    PerVariant(Vec<(&'static str, Value)>),
}

impl DefaultValue {
    /// As JSON: the value, or an object from each variant's label to its value.
    pub fn to_json(&self) -> Value {
        match self {
            DefaultValue::One(v) => v.clone(),
            DefaultValue::PerVariant(values) => Value::Object(
                values
                    .iter()
                    .map(|(label, v)| (label.to_string(), v.clone()))
                    .collect(),
            ),
        }
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
    for o in entry.options() {
        let doc = option_doc(&o);
        let doc = match entry.default_of(o.key) {
            Some(d) => format!("{doc} (default {d})"),
            None => doc.to_string(),
        };
        let kind = kind_text(&o);
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
    if !e.options().is_empty() {
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

/// An option's doc as the catalogue shows it: without a final period, so the default can
/// follow it.
pub fn option_doc(o: &Opt) -> &'static str {
    o.doc.strip_suffix('.').unwrap_or(o.doc)
}

/// How an option's kind is shown: its names where it takes one of a closed set
/// (`"lars" | "sgd"`), else the kind's short name.
pub(crate) fn kind_text(o: &Opt) -> String {
    if o.choices.is_empty() {
        return o.kind.short().to_string();
    }
    o.choices
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(" | ")
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

    /// Each entry's options are unique keys, and every default the struct serializes is one of
    /// them (a serde name the derive did not read as the field's key would be missing).
    #[test]
    fn options_are_unique_and_every_default_is_an_option() {
        let mut problems = Vec::new();
        for e in catalogue() {
            let options = e.options();
            for (i, o) in options.iter().enumerate() {
                if options[..i].iter().any(|p| p.key == o.key) {
                    problems.push(format!("{}: `{}` twice", e.path, o.key));
                }
                if o.doc.is_empty() {
                    problems.push(format!("{}: `{}` has no doc", e.path, o.key));
                }
            }
            for (label, defaults) in e.typed.map(|t| (t.defaults)()).unwrap_or_default() {
                for k in defaults.keys() {
                    if !options.iter().any(|o| o.key == k) {
                        problems.push(format!("{}: default `{k}` ({label}) is no option", e.path));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
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
            for o in e.options() {
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
