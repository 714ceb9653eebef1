//! One entry of the script API's catalogue (a function's path, signature, doc and options)
//! and how an entry is shown: the doc comments and parameter info the registration gives Rhai.
//! Each script module lists its entries (`modules/<name>_module.rs`); `api` gathers them.

use super::options::{Kind, Opt};

pub struct ApiEntry {
    /// `module::name` for module functions, `Type.name` for methods and properties.
    pub path: &'static str,
    pub signature: &'static str,
    pub doc: &'static str,
    pub options: &'static [Opt],
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
    }
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
        for o in e.options {
            out.push(format!(
                "/// - `{}` ({}): {}",
                o.key,
                kind_short(o.kind),
                o.doc
            ));
            if o.kind == Kind::Schedule {
                out.extend(
                    schedule_keys()
                        .into_iter()
                        .map(|(k, doc)| format!("///   - `{}.{k}`: {doc}", o.key)),
                );
            }
        }
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
