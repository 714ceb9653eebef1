//! Checked option maps. Every host function that takes `#{...}` options declares the keys it
//! knows with their kinds; a map with an unknown key or a value of the wrong kind is refused
//! with a message naming the key, the expected kind and the function. Integers are accepted
//! where floats are expected. Primitive values are turned into JSON so the core's serde config
//! structs (with their defaults) can be filled from them.

use rhai::{Dynamic, Map};
use serde_json::Value;

/// The value of an option that asks the tool to choose (`dup: "auto"`).
pub const AUTO: &str = "auto";

/// The kind of value an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    /// A non-negative integer or the string "auto" (a value the tool chooses).
    IntOrAuto,
    Float,
    Str,
    Bool,
    /// An array of numbers.
    Floats,
    Dataset,
    /// An augmentation (`aug::preset(..)`), a preset name, or an array of two augmentations.
    Aug,
    Map,
    /// A map of schedulable keys (`train::schedule::KEYS`) to numbers or functions of t.
    Schedule,
    /// Array of strings.
    Strings,
    /// Array of two-string arrays, e.g. `[["vanilla", "none"], ["adainf", "none"]]`.
    Pairs,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::IntOrAuto => "an integer or \"auto\"",
            Kind::Float => "a number",
            Kind::Str => "a string",
            Kind::Bool => "a bool (true/false)",
            Kind::Floats => "an array of numbers",
            Kind::Dataset => "a dataset (from data::...)",
            Kind::Aug => {
                "an augmentation (aug::preset(..)), a preset name, [view1, view2], or #{ real: .., generated: .. }"
            }
            Kind::Map => "a map #{...}",
            Kind::Schedule => "a map #{ key: number | |t| ... | Fn(\"name\") }",
            Kind::Strings => "an array of strings",
            Kind::Pairs => "an array of [string, string] pairs",
        }
    }
}

/// One documented option.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    pub key: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

pub const fn opt(key: &'static str, kind: Kind, doc: &'static str) -> Opt {
    Opt { key, kind, doc }
}

/// The `device` option of every run kind (pretraining, the diffusion generator): one row.
pub const DEVICE: Opt = opt(
    "device",
    Kind::Str,
    "flex, wgpu, vulkan, cuda or cuda:N (default: the command's --device); not part of the run id",
);

/// The `checkpoint_every` option of every run kind (pretraining, the diffusion generator): one
/// row.
pub const CHECKPOINT_EVERY: Opt = opt(
    "checkpoint_every",
    Kind::Int,
    "checkpoint period in steps (default 0: a checkpoint only when the run is stopped by Ctrl-C or SIGTERM); an interrupted run resumes from its last checkpoint and computes the same steps as an uninterrupted one; not part of the run id",
);

/// Human name of a script value's type.
pub fn type_name(v: &Dynamic) -> String {
    let t = v.type_name();
    match t {
        "i64" => "integer".into(),
        "f64" => "float".into(),
        "string" | "ImmutableString" => "string".into(),
        _ => t.rsplit("::").next().unwrap_or(t).to_string(),
    }
}

/// Does `v` fit `kind`? (Handle kinds are checked by type name of the registered types.)
pub fn fits(kind: Kind, v: &Dynamic) -> bool {
    match kind {
        Kind::Int => v.is_int(),
        Kind::IntOrAuto => v.is_int() || v.clone().into_string().is_ok_and(|s| s == AUTO),
        Kind::Float => v.is_int() || v.is_float(),
        Kind::Str => v.is_string(),
        Kind::Bool => v.is_bool(),
        Kind::Floats => {
            v.is_array()
                && v.clone()
                    .into_array()
                    .is_ok_and(|a| a.iter().all(|x| x.is_int() || x.is_float()))
        }
        Kind::Strings => {
            v.is_array()
                && v.clone()
                    .into_array()
                    .is_ok_and(|a| a.iter().all(|x| x.is_string()))
        }
        Kind::Pairs => v.clone().into_array().is_ok_and(|a| {
            a.iter().all(|p| {
                p.clone()
                    .into_array()
                    .is_ok_and(|p| p.len() == 2 && p.iter().all(|x| x.is_string()))
            })
        }),
        Kind::Dataset => v.is::<crate::data::Dataset>(),
        Kind::Aug => {
            v.is::<crate::augment::ViewPair>()
                || v.is_string()
                || v.is_map()
                || v.clone().into_array().is_ok_and(|a| {
                    a.len() == 2 && a.iter().all(|x| x.is::<crate::augment::ViewPair>())
                })
        }
        Kind::Map | Kind::Schedule => v.is_map(),
    }
}

pub fn unknown_key_message(function: &str, key: &str, known: &[Opt]) -> String {
    let best = known
        .iter()
        .min_by_key(|o| strsim::levenshtein(key, o.key))
        .filter(|o| strsim::levenshtein(key, o.key) <= 2);
    let hint = best
        .map(|o| format!(" (did you mean `{}`?)", o.key))
        .unwrap_or_default();
    let names: Vec<&str> = known.iter().map(|o| o.key).collect();
    format!(
        "unknown option `{key}` for {function}{hint}; known options: {}",
        names.join(", ")
    )
}

pub fn wrong_kind_message(function: &str, key: &str, kind: Kind, got: &str) -> String {
    format!(
        "option `{key}` of {function} must be {}, got {got}",
        kind.describe()
    )
}

/// Checks every key of `map` against `known`.
pub fn check(function: &str, map: &Map, known: &[Opt]) -> Result<(), String> {
    for (key, value) in map {
        match known.iter().find(|o| o.key == key.as_str()) {
            None => return Err(unknown_key_message(function, key, known)),
            Some(o) if !fits(o.kind, value) => {
                return Err(wrong_kind_message(function, key, o.kind, &type_name(value)));
            }
            Some(o) if o.kind == Kind::Float && value.as_float().is_ok_and(|x| !x.is_finite()) => {
                return Err(format!(
                    "option `{key}` of {function} must be a finite number, got {}",
                    value.as_float().unwrap_or(f64::NAN)
                ));
            }
            Some(o)
                if matches!(o.kind, Kind::Int | Kind::IntOrAuto)
                    && value.as_int().is_ok_and(|i| i < 0) =>
            {
                return Err(format!(
                    "option `{key}` of {function} must not be negative, got {}",
                    value.as_int().unwrap_or(0)
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The primitive options of `map` as a JSON object (handles and maps are left out).
pub fn to_json(map: &Map, known: &[Opt]) -> Value {
    let mut obj = serde_json::Map::new();
    for (key, value) in map {
        let Some(o) = known.iter().find(|o| o.key == key.as_str()) else {
            continue;
        };
        let json = match o.kind {
            Kind::Int => value.as_int().ok().map(Value::from),
            Kind::Float => value
                .as_float()
                .ok()
                .or_else(|| value.as_int().ok().map(|i| i as f64))
                .map(Value::from),
            Kind::Str => value.clone().into_string().ok().map(Value::from),
            Kind::Bool => value.as_bool().ok().map(Value::from),
            Kind::Floats => value.clone().into_array().ok().map(|a| {
                Value::Array(
                    a.iter()
                        .map(|x| {
                            Value::from(
                                x.as_float()
                                    .ok()
                                    .or_else(|| x.as_int().ok().map(|i| i as f64))
                                    .unwrap_or(0.0),
                            )
                        })
                        .collect(),
                )
            }),
            _ => None,
        };
        if let Some(j) = json {
            obj.insert(key.to_string(), j);
        }
    }
    Value::Object(obj)
}

/// Checks `map` and fills a serde config (defaults for missing keys) from its primitive options.
pub fn parse<T: for<'de> serde::Deserialize<'de>>(
    function: &str,
    map: &Map,
    known: &[Opt],
) -> Result<T, String> {
    check(function, map, known)?;
    serde_json::from_value(to_json(map, known))
        .map_err(|e| format!("bad options for {function}: {e}"))
}

/// Reads an optional integer option (already checked).
pub fn int_or(map: &Map, key: &str, default: i64) -> i64 {
    map.get(key)
        .and_then(|v| v.as_int().ok())
        .unwrap_or(default)
}

/// Reads an optional number option (already checked).
pub fn float_or(map: &Map, key: &str, default: f64) -> f64 {
    map.get(key)
        .and_then(|v| {
            v.as_float()
                .ok()
                .or_else(|| v.as_int().ok().map(|i| i as f64))
        })
        .unwrap_or(default)
}

pub fn str_or(map: &Map, key: &str, default: &str) -> String {
    map.get(key)
        .and_then(|v| v.clone().into_string().ok())
        .unwrap_or_else(|| default.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [Opt; 3] = [
        opt("lr", Kind::Float, "learning rate"),
        opt("steps", Kind::Int, "steps"),
        opt("name", Kind::Str, "name"),
    ];

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn unknown_keys_get_a_hint_and_wrong_kinds_are_named() {
        let e = check(
            "train::pretrain",
            &map(&[("lrr", Dynamic::from(0.1))]),
            &KNOWN,
        )
        .unwrap_err();
        assert!(
            e.contains("`lrr`") && e.contains("did you mean `lr`") && e.contains("train::pretrain"),
            "{e}"
        );
        let e = check("f", &map(&[("steps", Dynamic::from(1.5))]), &KNOWN).unwrap_err();
        assert!(
            e.contains("`steps`") && e.contains("an integer") && e.contains("float"),
            "{e}"
        );
        let e = check("f", &map(&[("steps", Dynamic::from(-3_i64))]), &KNOWN).unwrap_err();
        assert!(e.contains("negative"), "{e}");
        // NaN would reach serde as null ("invalid type: null, expected f64").
        let e = check("f", &map(&[("lr", Dynamic::from(f64::NAN))]), &KNOWN).unwrap_err();
        assert!(e.contains("`lr`") && e.contains("finite number"), "{e}");
    }

    #[test]
    fn integers_are_accepted_for_floats() {
        #[derive(serde::Deserialize)]
        struct C {
            lr: f64,
            steps: usize,
        }
        let c: C = parse(
            "f",
            &map(&[
                ("lr", Dynamic::from(1_i64)),
                ("steps", Dynamic::from(7_i64)),
            ]),
            &KNOWN,
        )
        .unwrap();
        assert_eq!((c.lr, c.steps), (1.0, 7));
    }
}
