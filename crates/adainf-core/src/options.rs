//! What a script function's options are, independent of the script engine: the kinds of value
//! an option takes (`Kind`, with its names for people), one documented option (`OptionField`),
//! the kind each Rust type stands for (`OptionKind`), and `Options`, which a struct's
//! `#[derive(Options)]` implements from its fields (key, kind, doc comment, default): the one
//! definition the script host's parsing, `adainf api`, `adainf check` and the `.d.rhai` files read.

pub use adainf_derive::Options;

/// The kind of value an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A non-negative integer.
    Int,
    /// A non-negative integer or the string "auto" (a value the tool chooses).
    IntOrAuto,
    /// A finite number (integers are accepted).
    Float,
    /// A string.
    Str,
    /// true or false.
    Bool,
    /// An array of numbers.
    Floats,
    /// An array of whole numbers (integers ≥ 0).
    Ints,
    /// An array of strings.
    Strings,
    /// An array of two-string arrays, e.g. `[["vanilla", "none"], ["adainf", "none"]]`.
    Pairs,
    /// A dataset handle (`data::...`).
    Dataset,
    /// An augmentation (`aug::preset(..)`), a preset name, or an array of two augmentations.
    Aug,
    /// A map the host reads itself.
    Map,
    /// A map of schedulable keys (`train::schedule::KEYS`) to numbers or functions of t.
    Schedule,
}

impl Kind {
    /// How an error names what was expected ("an integer").
    pub fn describe(self) -> &'static str {
        self.names().0
    }

    /// How the catalogue shows the kind ("int").
    pub fn short(self) -> &'static str {
        self.names().1
    }

    /// (what an error says was expected, what the catalogue shows): the one table of names.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Int => ("an integer", "int"),
            Kind::IntOrAuto => ("an integer or \"auto\"", "int | \"auto\""),
            Kind::Float => ("a number", "float"),
            Kind::Str => ("a string", "string"),
            Kind::Bool => ("a bool (true/false)", "bool"),
            Kind::Floats => ("an array of numbers", "[float]"),
            Kind::Ints => ("an array of whole numbers", "[int]"),
            Kind::Strings => ("an array of strings", "[string]"),
            Kind::Pairs => ("an array of [string, string] pairs", "[[string, string]]"),
            Kind::Dataset => ("a dataset (from data::...)", "Dataset"),
            Kind::Aug => (
                "an augmentation (aug::preset(..)), a preset name, [view1, view2], or #{ real: .., generated: .. }",
                "Aug",
            ),
            Kind::Map => ("a map #{...}", "map"),
            Kind::Schedule => (
                "a map #{ key: number | |t| ... | Fn(\"name\") }",
                "schedule map",
            ),
        }
    }

    /// Whether values of this kind are script handles or maps the host reads itself, not
    /// values a struct's fields deserialize from.
    pub fn is_handle(self) -> bool {
        matches!(self, Kind::Dataset | Kind::Aug | Kind::Map | Kind::Schedule)
    }
}

/// One documented option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionField {
    /// The key in the options map.
    pub key: &'static str,
    /// The kind of value it takes.
    pub kind: Kind,
    /// What it means, for people (a field's first doc paragraph).
    pub doc: &'static str,
    /// The names a string option takes (a closed set's); empty where any string goes.
    pub choices: &'static [&'static str],
}

/// The options of a struct, in declaration order (`#[derive(Options)]`).
pub trait Options {
    /// The options, in declaration order.
    fn option_fields() -> Vec<OptionField>;
}

/// The kind of option a field of this type is.
pub trait OptionKind {
    /// The kind.
    const KIND: Kind;
    /// The names a closed set's option takes (`Kind::Str` enums); empty for the rest.
    const CHOICES: &'static [&'static str] = &[];
}

#[doc(hidden)]
pub use strum;

/// `OptionKind` for types of one kind; `choices: T` for a closed set named by strum's
/// `VariantNames` (the names serde reads: the enum's test checks they agree).
#[macro_export]
macro_rules! option_kind {
    (choices: $($ty:ty),* $(,)?) => {
        $(impl $crate::options::OptionKind for $ty {
            const KIND: $crate::options::Kind = $crate::options::Kind::Str;
            const CHOICES: &'static [&'static str] = <$ty as $crate::options::strum::VariantNames>::VARIANTS;
        })*
    };
    ($kind:ident: $($ty:ty),* $(,)?) => {
        $(impl $crate::options::OptionKind for $ty {
            const KIND: $crate::options::Kind = $crate::options::Kind::$kind;
        })*
    };
}

/// A closed set of names (an enum whose strum names are the names serde reads): the option
/// kind that shows them, and `NAMES`, `parse` (an error naming the option `key` and listing the
/// names) and `name`, written once for every such enum.
#[macro_export]
macro_rules! closed_set {
    ($ty:ty, $key:literal) => {
        $crate::option_kind!(choices: $ty);

        impl $ty {
            /// The names, in variant order (those serde reads and writes).
            pub const NAMES: &'static [&'static str] =
                <Self as $crate::options::strum::VariantNames>::VARIANTS;

            /// Parses a name; an unknown one is an error naming the option and the names.
            pub fn parse(name: &str) -> $crate::error::Result<Self> {
                $crate::error::parse_one_of($key, name, Self::NAMES)
            }

            /// The name, as in `NAMES`.
            pub fn name(self) -> &'static str {
                self.into()
            }
        }
    };
}

// Unsigned only: the option check refuses negative integers (a signed option would need a kind
// of its own).
crate::option_kind!(Int: usize, u64, u32, u16, u8);
crate::option_kind!(Float: f64, f32);
crate::option_kind!(Str: String);
crate::option_kind!(Bool: bool);
crate::option_kind!(Floats: Vec<f64>, Vec<f32>);
crate::option_kind!(Ints: Vec<usize>, Vec<u64>);
crate::option_kind!(Strings: Vec<String>);
crate::option_kind!(Pairs: Vec<(String, String)>);

impl<const N: usize> OptionKind for [f64; N] {
    const KIND: Kind = Kind::Floats;
}

/// An option left unset means what its doc says: the kind of the value it takes when set.
impl<T: OptionKind> OptionKind for Option<T> {
    const KIND: Kind = T::KIND;
    const CHOICES: &'static [&'static str] = T::CHOICES;
}

#[cfg(test)]
mod tests {
    //! The derive against structs written for each of its rules.

    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, Options)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        /// Inner count.
        count: usize,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, Options)]
    #[serde(default)]
    struct Outer {
        /// Number of images
        /// (at least 1).
        ///
        /// A paragraph for developers only.
        #[option(default = 5000)]
        n: usize,
        /// Train or test.
        #[option(default = "train")]
        split: String,
        /// Renamed on the wire.
        #[serde(rename = "lr")]
        learning_rate: f64,
        /// Unset: chosen from the data.
        classes: Option<usize>,
        /// Copies of the real data, or "auto".
        #[option(kind = IntOrAuto, default = 1)]
        dup: u32,
        #[serde(skip)]
        cache: Vec<u8>,
        #[serde(flatten)]
        inner: Inner,
    }

    fn row(key: &'static str, kind: Kind, doc: &'static str) -> OptionField {
        OptionField {
            key,
            kind,
            doc,
            choices: &[],
        }
    }

    #[test]
    fn rows_come_from_the_fields_and_defaults_from_the_attributes() {
        assert_eq!(
            Outer::option_fields(),
            [
                row("n", Kind::Int, "Number of images (at least 1)."),
                row("split", Kind::Str, "Train or test."),
                row("lr", Kind::Float, "Renamed on the wire."),
                row("classes", Kind::Int, "Unset: chosen from the data."),
                row(
                    "dup",
                    Kind::IntOrAuto,
                    "Copies of the real data, or \"auto\"."
                ),
                row("count", Kind::Int, "Inner count."),
            ]
        );
        let d = Outer::default();
        assert_eq!((d.n, d.split.as_str(), d.dup), (5000, "train", 1));
        assert_eq!((d.learning_rate, d.classes, d.inner.count), (0.0, None, 0));
        // What serde reads is what the rows list.
        let parsed: Outer =
            serde_json::from_value(serde_json::json!({"lr": 0.5, "count": 3})).unwrap();
        assert_eq!(
            (parsed.learning_rate, parsed.inner.count, parsed.n),
            (0.5, 3, 5000)
        );
    }

    /// Every closed set's names (strum's, shown by the catalogue) are the names serde reads,
    /// and serde reads no other canonical name.
    #[test]
    fn the_names_shown_for_a_closed_set_are_the_names_it_reads() {
        fn agree<T: OptionKind + serde::de::DeserializeOwned + serde::Serialize>() {
            assert!(!T::CHOICES.is_empty(), "{}", std::any::type_name::<T>());
            for name in T::CHOICES {
                let v: T = serde_json::from_value(serde_json::json!(name))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(name));
            }
        }
        agree::<crate::model::Backbone>();
        agree::<crate::optim::OptimizerKind>();
        agree::<crate::optim::LrScaling>();
        agree::<crate::train::config::Precision>();
        agree::<crate::method::Method>();
        agree::<crate::generator::diffusion::Sampler>();
        agree::<crate::data::batches::Placement>();
    }
}
