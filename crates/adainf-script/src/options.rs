//! Checked option maps. A host function's options are one `#[derive(Options)]` struct (its
//! fields: key, kind, doc, default; `adainf_core::options`) plus rows for the handles the host
//! reads itself (`opt`). A map with an unknown key or a value of the wrong kind is refused with a
//! message naming the key, the expected kind and the function; the primitive values are then
//! turned into JSON and deserialized into the struct (defaults for missing keys), an error there
//! naming the key too. Integers are accepted where floats are expected. The catalogue reads the
//! same rows and shows each default from the struct's serialized `Default` (`Typed`).

use rhai::{Dynamic, Map};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// A JSON object: options given, a struct's serialized defaults.
pub type JsonMap = serde_json::Map<String, Value>;

/// Serialized defaults, each with the label of the variant it belongs to ("" when one).
pub type Defaults = Vec<(&'static str, JsonMap)>;

/// The value of an option that asks the tool to choose (`dup: "auto"`).
pub const AUTO: &str = "auto";

pub use adainf_core::options::{Kind, OptionField as Opt, Options};

/// A row for an option the host reads itself (a handle or a map: `Kind::is_handle`), which no
/// struct field holds; every other option is a field of its function's `#[derive(Options)]`
/// struct.
pub const fn opt(key: &'static str, kind: Kind, doc: &'static str) -> Opt {
    Opt {
        key,
        kind,
        doc,
        choices: &[],
    }
}

/// The options of a function: the rows of the handles it reads itself, then its struct's.
pub fn known<T: Options>(handles: &[Opt]) -> Vec<Opt> {
    handles.iter().copied().chain(T::option_fields()).collect()
}

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

/// What a script value is as an option of some kind (`read`).
pub enum Read {
    /// A primitive value, as JSON for the options struct (integers stay integers).
    Json(Value),
    /// A handle or map the host reads itself.
    Handle,
}

/// `v` read as an option of `kind`; `None` where it is not of that kind. The one place a kind
/// meets script values: the key check (`fits`) and the JSON the struct is filled from
/// (`to_json`) both read it.
pub fn read(kind: Kind, v: &Dynamic) -> Option<Read> {
    fn number(x: &Dynamic) -> Option<Value> {
        x.as_int()
            .map(Value::from)
            .ok()
            .or_else(|| x.as_float().ok().map(Value::from))
    }
    fn string(x: &Dynamic) -> Option<Value> {
        x.clone().into_string().ok().map(Value::from)
    }
    fn whole(x: &Dynamic) -> Option<Value> {
        x.as_int().ok().filter(|i| *i >= 0).map(Value::from)
    }
    fn array_of(x: &Dynamic, item: impl Fn(&Dynamic) -> Option<Value>) -> Option<Vec<Value>> {
        x.clone().into_array().ok()?.iter().map(item).collect()
    }
    let pair = |p: &Dynamic| {
        array_of(p, string)
            .filter(|p| p.len() == 2)
            .map(Value::Array)
    };
    let handle = |fits: bool| fits.then_some(Read::Handle);
    let json = match kind {
        Kind::Int => v.as_int().ok().map(Value::from),
        Kind::IntOrAuto => v
            .as_int()
            .ok()
            .map(Value::from)
            .or_else(|| string(v).filter(|s| s == AUTO)),
        Kind::Float => number(v),
        Kind::Str => string(v),
        Kind::Bool => v.as_bool().ok().map(Value::from),
        Kind::Floats => array_of(v, number).map(Value::Array),
        Kind::Ints => array_of(v, whole).map(Value::Array),
        Kind::Strings => array_of(v, string).map(Value::Array),
        Kind::Pairs => array_of(v, pair).map(Value::Array),
        Kind::Dataset => return handle(v.is::<crate::data::Dataset>()),
        Kind::Aug => {
            return handle(
                v.is::<crate::augment::ViewPair>()
                    || v.is_string()
                    || v.is_map()
                    || v.clone().into_array().is_ok_and(|a| {
                        a.len() == 2 && a.iter().all(|x| x.is::<crate::augment::ViewPair>())
                    }),
            );
        }
        Kind::Map | Kind::Schedule => return handle(v.is_map()),
    };
    json.map(Read::Json)
}

/// Does `v` fit `kind`?
pub fn fits(kind: Kind, v: &Dynamic) -> bool {
    read(kind, v).is_some()
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
pub fn to_json(map: &Map, known: &[Opt]) -> JsonMap {
    map.iter()
        .filter_map(|(key, value)| {
            let o = known.iter().find(|o| o.key == key.as_str())?;
            match read(o.kind, value)? {
                Read::Json(json) => Some((key.to_string(), json)),
                Read::Handle => None,
            }
        })
        .collect()
}

/// `given` over `base`, deserialized into `T`; an error names the option it comes from (the
/// first given key that fails on its own over `base`).
pub fn deserialize_over<T: DeserializeOwned>(
    function: &str,
    base: &JsonMap,
    given: JsonMap,
) -> Result<T, String> {
    let over = |pairs: &JsonMap| {
        let mut merged = base.clone();
        merged.extend(pairs.iter().map(|(k, v)| (k.clone(), v.clone())));
        serde_json::from_value::<T>(Value::Object(merged))
    };
    over(&given).map_err(|e| {
        let culprit = given
            .iter()
            .find(|(k, v)| over(&[((*k).clone(), (*v).clone())].into_iter().collect()).is_err());
        match culprit {
            Some((key, _)) => format!("invalid option `{key}` of {function}: {e}"),
            None => format!("bad options for {function}: {e}"),
        }
    })
}

/// Checks `map` against the options of `T` and the `handles` the host reads itself, and fills
/// `T` (defaults for missing keys) from its primitive options.
pub fn parse<T: Options + DeserializeOwned>(
    function: &str,
    map: &Map,
    handles: &[Opt],
) -> Result<T, String> {
    let known = known::<T>(handles);
    check(function, map, &known)?;
    deserialize_over(function, &serde_json::Map::new(), to_json(map, &known))
}

/// The options of a function, for the catalogue and `adainf check`: its rows, its defaults,
/// serialized, and the checks its literal values get without data.
#[derive(Clone, Copy)]
pub struct Typed {
    /// The rows of the handles the host reads itself, then of the struct's fields.
    pub options: fn() -> Vec<Opt>,
    /// The serialized defaults: one map, or one per labelled variant where the defaults depend
    /// on another option (pretraining's per-method defaults).
    pub defaults: fn() -> Defaults,
    /// The checks that need no data, on the option values a script writes literally (`adainf
    /// check`): that they parse into the struct (names of closed sets, lengths of arrays), and
    /// what else the function checks without data (`Typed::with_check`), never an error that
    /// a value the check cannot see could make wrong (see `LiteralCheck`).
    pub check: LiteralCheck,
}

/// A data-free check of literal option values: the function, the literal values, and the keys
/// of the struct's options the script sets to something that is not a literal (a variable, a
/// call), whose values the check cannot know: an error a rule between two options gives
/// (warm-up against steps) may be wrong when one of them is unknown.
pub type LiteralCheck = fn(&str, &Map, &[&str]) -> Result<(), String>;

impl Typed {
    /// The same options with another data-free check of literal values.
    pub fn with_check(self, check: LiteralCheck) -> Self {
        Typed { check, ..self }
    }
}

/// The options of a function that are the struct `T` alone.
pub fn typed<T: Options + Default + Serialize + DeserializeOwned>() -> Typed {
    Typed {
        options: T::option_fields,
        defaults: || vec![("", serialized(&T::default()))],
        check: |function, literals, _| {
            let json = to_json(literals, &T::option_fields());
            deserialize_over::<T>(function, &JsonMap::new(), json).map(|_| ())
        },
    }
}

/// The options of a function that are two structs: `A` (a core config) and `B` (the options of
/// the call that are not part of that config, e.g. its device).
pub fn typed_pair<A, B>() -> Typed
where
    A: Options + Default + Serialize + DeserializeOwned,
    B: Options + Default + Serialize + DeserializeOwned,
{
    Typed {
        options: both::<A, B>,
        defaults: || {
            let mut d = serialized(&A::default());
            d.extend(serialized(&B::default()));
            vec![("", d)]
        },
        check: |function, literals, _| parse_pair::<A, B>(function, literals).map(|_| ()),
    }
}

/// The options of `A` then of `B`.
fn both<A: Options, B: Options>() -> Vec<Opt> {
    let mut rows = A::option_fields();
    rows.extend(B::option_fields());
    rows
}

/// Checks `map` against the options of `A` and `B` (`typed_pair`) and fills both.
pub fn parse_pair<A, B>(function: &str, map: &Map) -> Result<(A, B), String>
where
    A: Options + DeserializeOwned,
    B: Options + DeserializeOwned,
{
    let known = both::<A, B>();
    check(function, map, &known)?;
    let (b, a) = split_json::<B>(map, &known);
    let empty = JsonMap::new();
    Ok((
        deserialize_over(function, &empty, a)?,
        deserialize_over(function, &empty, b)?,
    ))
}

/// The primitive options of `map` split into the options of `B` and the rest (`typed_pair`).
pub fn split_json<B: Options>(map: &Map, known: &[Opt]) -> (JsonMap, JsonMap) {
    let keys: Vec<&str> = B::option_fields().iter().map(|o| o.key).collect();
    to_json(map, known)
        .into_iter()
        .partition(|(k, _)| keys.contains(&k.as_str()))
}

/// `value` serialized as a JSON object (empty if it is not one).
pub fn serialized<T: Serialize>(value: &T) -> JsonMap {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Options)]
    #[serde(default)]
    #[allow(dead_code)]
    struct Known {
        /// learning rate
        lr: f64,
        /// steps
        steps: usize,
        /// name
        name: String,
    }

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn unknown_keys_get_a_hint_and_wrong_kinds_are_named() {
        let known = Known::option_fields();
        let e = check(
            "train::pretrain",
            &map(&[("lrr", Dynamic::from(0.1))]),
            &known,
        )
        .unwrap_err();
        assert!(
            e.contains("`lrr`") && e.contains("did you mean `lr`") && e.contains("train::pretrain"),
            "{e}"
        );
        let e = check("f", &map(&[("steps", Dynamic::from(1.5))]), &known).unwrap_err();
        assert!(
            e.contains("`steps`") && e.contains("an integer") && e.contains("float"),
            "{e}"
        );
        let e = check("f", &map(&[("steps", Dynamic::from(-3_i64))]), &known).unwrap_err();
        assert!(e.contains("negative"), "{e}");
        // NaN would reach serde as null ("invalid type: null, expected f64").
        let e = check("f", &map(&[("lr", Dynamic::from(f64::NAN))]), &known).unwrap_err();
        assert!(e.contains("`lr`") && e.contains("finite number"), "{e}");
    }

    /// A value serde refuses (an unknown name of a closed set) is reported with its option.
    #[test]
    fn a_refused_value_names_its_option() {
        #[derive(Default, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Sampler {
            #[default]
            Ddim,
            Ddpm,
        }
        impl adainf_core::options::OptionKind for Sampler {
            const KIND: Kind = Kind::Str;
        }
        #[derive(serde::Deserialize, Options)]
        #[serde(default)]
        struct C {
            /// the sampler
            name: Sampler,
            /// steps
            steps: usize,
        }
        let m = map(&[
            ("steps", Dynamic::from(3_i64)),
            ("name", Dynamic::from("euler")),
        ]);
        let e = parse::<C>("gen::sample", &m, &[])
            .map(|c| c.steps)
            .unwrap_err();
        assert!(
            e.contains("option `name` of gen::sample") && e.contains("euler") && e.contains("ddpm"),
            "{e}"
        );
        let ok = parse::<C>("f", &map(&[("name", Dynamic::from("ddpm"))]), &[]).unwrap();
        assert!(matches!(ok.name, Sampler::Ddpm) && ok.steps == 0);
        // A handle row is known beside the fields, and not deserialized.
        let handles = [opt("data", Kind::Dataset, "the data")];
        let with_handle = map(&[(
            "data",
            Dynamic::from(
                crate::data::synthetic::synthetic(&crate::data::synthetic::SyntheticSpec {
                    n: 2,
                    ..Default::default()
                })
                .unwrap(),
            ),
        )]);
        assert!(parse::<C>("f", &with_handle, &handles).is_ok());
        let e = parse::<C>("f", &with_handle, &[]).map(|_| ()).unwrap_err();
        assert!(e.contains("unknown option `data`"), "{e}");
    }

    #[test]
    fn integers_are_accepted_for_floats() {
        let c: Known = parse(
            "f",
            &map(&[
                ("lr", Dynamic::from(1_i64)),
                ("steps", Dynamic::from(7_i64)),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!((c.lr, c.steps), (1.0, 7));
    }
}
