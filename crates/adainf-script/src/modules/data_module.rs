//! The `data` module (readers, the embedded default, inflation, subsets) and the `Dataset` handle.

use super::*;

fn info_map(d: &Dataset) -> Map {
    let mut m = Map::new();
    let [h, w, c] = d.shape();
    let (mean, std) = d.channel_stats(2000);
    m.insert("n".into(), (d.len() as i64).into());
    m.insert(
        "shape".into(),
        Dynamic::from_array(vec![
            (h as i64).into(),
            (w as i64).into(),
            (c as i64).into(),
        ]),
    );
    m.insert("source".into(), d.description().into());
    m.insert("classes".into(), (d.classes() as i64).into());
    m.insert("labelled".into(), (d.labeled_count() as i64).into());
    m.insert(
        "mean".into(),
        Dynamic::from_array(mean.into_iter().map(Dynamic::from).collect()),
    );
    m.insert(
        "std".into(),
        Dynamic::from_array(std.into_iter().map(Dynamic::from).collect()),
    );
    m.insert("fingerprint".into(), d.fingerprint().into());
    for (k, v) in d.attributes() {
        // Numbers as numbers (integers stay integers), as in run rows.
        let value = match (v.parse::<i64>(), v.parse::<f64>()) {
            (Ok(i), _) => Dynamic::from(i),
            (_, Ok(x)) => Dynamic::from(x),
            _ => Dynamic::from(v.clone()),
        };
        m.insert(k.as_str().into(), value);
    }
    m
}

/// `Dataset`: length, classes, `info()`.
pub(super) fn register_type(engine: &mut Engine, state: &Rc<HostState>) {
    engine.register_type_with_name::<Dataset>("Dataset");
    method!(engine.register_fn("len", |d: &mut Dataset| d.len() as i64));
    method!(engine.register_fn("classes", |d: &mut Dataset| d.classes() as i64));
    let st = state.clone();
    method!(engine.register_fn("info", move |d: &mut Dataset| -> Res<Map> {
        let mut m = info_map(d);
        // An inflated set reports how far its generated part is from its real part.
        let cfg = GapConfig::default();
        if let Some((real, generated)) = d
            .inflated_from()
            .filter(|(r, g)| theory::gap::measurable(r, g, &cfg))
        {
            let gap = core(generator_gap(real, generated, &cfg, &st.device))?;
            m.insert("generator_gap".into(), gap_map(&gap).into());
        }
        if d.inflated_from().is_some() {
            m.insert(
                "sampling".into(),
                "uniform over the real images ×dup then the generated ones; with a `generated_share` schedule each part is sampled on its own and dup sets nothing".into(),
            );
        }
        Ok(m)
    }));
    method!(engine.register_fn("to_string", |d: &mut Dataset| {
        format!("Dataset({} images: {})", d.len(), d.description())
    }));
    method!(engine.register_fn("to_debug", |d: &mut Dataset| {
        format!("Dataset({} images: {})", d.len(), d.description())
    }));
}

pub(super) fn data_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "data";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "cifar10", move |dir: &str,
                                  split: &str|
          -> Res<Dataset> {
        core(cifar_recipe(&st, dir, Variant::Cifar10, split).build(&st.device))
    });
    // Overloads without an options map delegate with an empty one, so defaults live once.
    let st = state.clone();
    let cifar100 = move |dir: &str, split: &str, opts: Map| -> Res<Dataset> {
        let CifarOptions { coarse } = parsed("data::cifar100", &opts, &[])?;
        core(cifar_recipe(&st, dir, Variant::Cifar100 { coarse }, split).build(&st.device))
    };
    let cifar100_default = cifar100.clone();
    register!(m, "cifar100", move |dir: &str,
                                   split: &str,
                                   opts: Map|
          -> Res<Dataset> {
        cifar100(dir, split, opts)
    });
    register!(m, "cifar100", move |dir: &str,
                                   split: &str|
          -> Res<Dataset> {
        cifar100_default(dir, split, Map::new())
    });
    let st = state.clone();
    let npz = move |path: &str, opts: Map| -> Res<Dataset> {
        let o: NpzArgs = parsed("data::npz", &opts, NPZ_HANDLES)?;
        let d = core(
            Recipe::Npz {
                path: st.resolve(path),
                options: o.into(),
            }
            .build(&st.device),
        )?;
        if let Some(reference) = opts
            .get("reference")
            .and_then(|r| r.clone().try_cast::<Dataset>())
            && let Some(warning) = readers::npz::channel_order_warning(&d, &reference)
        {
            eprintln!("warning: {warning}");
        }
        Ok(d)
    };
    let npz2 = npz.clone();
    register!(m, "npz", move |path: &str, opts: Map| -> Res<Dataset> {
        npz(path, opts)
    });
    register!(m, "npz", move |path: &str| -> Res<Dataset> {
        npz2(path, Map::new())
    });
    let st = state.clone();
    register!(m, "idx", move |images: &str,
                              labels: &str|
          -> Res<Dataset> {
        core(
            Recipe::Idx {
                images: st.resolve(images),
                labels: st.resolve(labels),
            }
            .build(&st.device),
        )
    });
    let st = state.clone();
    let folder = move |path: &str, opts: Map| -> Res<Dataset> {
        let FolderOptions { size } = parsed("data::folder", &opts, &[])?;
        core(
            Recipe::Folder {
                path: st.resolve(path),
                size,
            }
            .build(&st.device),
        )
    };
    let folder_default = folder.clone();
    register!(m, "folder", move |path: &str, opts: Map| -> Res<Dataset> {
        folder(path, opts)
    });
    register!(m, "folder", move |path: &str| -> Res<Dataset> {
        folder_default(path, Map::new())
    });
    let st = state.clone();
    register!(m, "save_npz", move |d: Dataset, path: &str| -> Res<()> {
        core(readers::npz::save_npz(&d, &st.resolve(path)))
    });
    let st = state.clone();
    register!(m, "synthetic", move |opts: Map| -> Res<Dataset> {
        let spec: SyntheticSpec = parsed("data::synthetic", &opts, &[])?;
        st.memo(format!("{spec:?}"), || {
            core(Recipe::Synthetic(spec.clone()).build(&st.device))
        })
    });
    let st = state.clone();
    register!(m, "synthetic_generator", move |opts: Map| -> Res<Dataset> {
        let spec: GeneratorSpec = parsed("data::synthetic_generator", &opts, &[])?;
        st.memo(format!("{spec:?}"), || {
            core(Recipe::SyntheticGenerator(spec.clone()).build(&st.device))
        })
    });
    let st = state.clone();
    let inflate = move |real: Dataset, generated: Dataset, opts: Map| -> Res<Dataset> {
        let InflateOptions { dup } = parsed("data::inflate", &opts, &[])?;
        match dup {
            Dup::Auto(_) => core(theory::adapt::inflate_auto(&real, &generated, &st.device)),
            Dup::Copies(copies) => core(recipe::inflate(&real, &generated, copies)),
        }
    };
    let inflate_default = inflate.clone();
    register!(m, "inflate", move |real: Dataset,
                                  generated: Dataset,
                                  opts: Map|
          -> Res<Dataset> {
        inflate(real, generated, opts)
    });
    register!(m, "inflate", move |real: Dataset,
                                  generated: Dataset|
          -> Res<Dataset> {
        inflate_default(real, generated, Map::new())
    });
    register!(m, "subset", |d: Dataset, opts: Map| -> Res<Dataset> {
        let SubsetOptions {
            per_class, n, seed, ..
        } = parsed("data::subset", &opts, &[])?;
        match (per_class, n) {
            (Some(_), Some(_)) => fail("data::subset takes either `per_class` or `n`, not both"),
            (Some(p), None) => core(recipe::subset_per_class(&d, p, seed)),
            (None, Some(n)) => core(recipe::subset_random(&d, n, seed)),
            (None, None) => {
                fail("data::subset needs `per_class` (e.g. #{ per_class: 500 }) or `n`")
            }
        }
    });
    m
}

fn cifar_recipe(st: &HostState, dir: &str, variant: Variant, split: &str) -> Recipe {
    Recipe::Cifar {
        dir: st.resolve(dir),
        variant,
        split: split.to_string(),
    }
}

/// The data-free checks of `data::synthetic`'s literal options (`Typed::check`): they parse,
/// and the image size is in range.
fn check_synthetic(function: &str, opts: &Map, unknown: &[&str]) -> Result<(), String> {
    let spec: SyntheticSpec = options::parse(function, opts, &[])?;
    literal_outcome(opts, unknown, crate::data::synthetic::check_size(spec.size))
}

/// `check_synthetic` for `data::synthetic_generator`.
fn check_synthetic_generator(function: &str, opts: &Map, unknown: &[&str]) -> Result<(), String> {
    let spec: GeneratorSpec = options::parse(function, opts, &[])?;
    literal_outcome(opts, unknown, crate::data::synthetic::check_size(spec.size))
}

/// The options of `data::cifar100`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct CifarOptions {
    /// CIFAR-100 only: the 20 coarse labels instead of the 100 fine ones.
    coarse: bool,
}

/// The options of `data::folder`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct FolderOptions {
    /// Images are resized to size×size.
    #[option(default = 32)]
    size: usize,
}

/// The options of `data::subset`: `per_class` or `n` (one of them).
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct SubsetOptions {
    /// Labelled images per class (the paper's 5k set: 500).
    per_class: Option<usize>,
    /// Images chosen uniformly at random.
    n: Option<usize>,
    /// Random seed.
    seed: u64,
    /// An option only this crate's test build has: the test that adding a field is all it
    /// takes (`tests::a_field_added_to_an_options_struct_is_an_option_everywhere`).
    #[cfg(test)]
    #[option(default = 7)]
    pub(crate) fake_option: usize,
}

/// The test-only option's value as `data::subset` parses it (for the one-definition test).
#[cfg(test)]
pub(crate) fn parsed_fake_option(opts: &Map) -> Result<usize, String> {
    options::parse::<SubsetOptions>("data::subset", opts, &[]).map(|o| o.fake_option)
}

/// `dup: "auto"`.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
enum AutoWord {
    #[serde(rename = "auto")]
    Auto,
}

/// How many copies of the real data `data::inflate` puts before the generated data.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Dup {
    Copies(usize),
    /// Chosen from the generator gap by the adaptive rule.
    Auto(AutoWord),
}

/// The options of `data::inflate`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct InflateOptions {
    /// Copies of the real data before the generated data; "auto": chosen from the generator
    /// gap by the adaptive rule (docs/adaptive.md), reported in info().
    #[option(kind = IntOrAuto, default = Dup::Copies(1))]
    dup: Dup,
}

/// What `data::npz` does with the stored labels.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize, strum::VariantNames)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
enum Labels {
    Keep,
    /// All -1: generated images never reach the probe.
    Ignore,
}

adainf_core::option_kind!(choices: Labels);

/// The options of `data::npz` (the core's `NpzOptions`, with `labels` named by its effect);
/// the defaults are the core's.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
#[option(manual_default)]
struct NpzArgs {
    /// What to do with the stored labels: "ignore" makes them all -1 (generated images never
    /// reach the probe).
    labels: Labels,
    /// Pixels are stored B, G, R (OpenCV-written files): swap to RGB.
    bgr: bool,
    /// Array name of the images.
    image_key: String,
    /// Array name of the labels.
    label_key: String,
    /// Number of classes (unset: largest label + 1).
    classes: Option<usize>,
}

impl Default for NpzArgs {
    fn default() -> Self {
        let d = NpzOptions::default();
        NpzArgs {
            labels: if d.ignore_labels {
                Labels::Ignore
            } else {
                Labels::Keep
            },
            bgr: d.bgr,
            image_key: d.image_key,
            label_key: d.label_key,
            classes: d.classes,
        }
    }
}

impl From<NpzArgs> for NpzOptions {
    fn from(a: NpzArgs) -> Self {
        NpzOptions {
            image_key: a.image_key,
            label_key: a.label_key,
            ignore_labels: matches!(a.labels, Labels::Ignore),
            bgr: a.bgr,
            classes: a.classes,
        }
    }
}

/// The option of `data::npz` the host reads itself.
pub const NPZ_HANDLES: &[Opt] = &[opt(
    "reference",
    Kind::Dataset,
    "Warn if the channel means look R/B-swapped relative to this set.",
)];

/// The catalogue entries of `data` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "data::synthetic",
            "data::synthetic(opts) -> Dataset",
            "the embedded 10-class shape family (labels 0..9)",
            &[],
        )
        .typed(typed::<SyntheticSpec>().with_check(check_synthetic)),
        entry(
            "data::synthetic_generator",
            "data::synthetic_generator(opts) -> Dataset",
            "simulated generator samples of that family (labels -1)",
            &[],
        )
        .typed(typed::<GeneratorSpec>().with_check(check_synthetic_generator)),
        entry(
            "data::inflate",
            "data::inflate(real, generated, opts) -> Dataset",
            "real × dup then generated, as an index view (no copies)",
            &[],
        )
        .typed(typed::<InflateOptions>()),
        entry(
            "data::cifar10",
            "data::cifar10(dir, split) -> Dataset",
            "CIFAR-10 binary or python release folder; split \"train\" | \"test\"",
            &[],
        ),
        entry(
            "data::cifar100",
            "data::cifar100(dir, split, opts) -> Dataset",
            "CIFAR-100 binary or python release folder (fine labels)",
            &[],
        )
        .typed(typed::<CifarOptions>()),
        entry(
            "data::npz",
            "data::npz(path, opts) -> Dataset",
            "AdaInf npz (image N×H×W×3 u8, label); memory-mapped when stored",
            NPZ_HANDLES,
        )
        .typed(typed::<NpzArgs>()),
        entry(
            "data::idx",
            "data::idx(images, labels) -> Dataset",
            "MNIST/Fashion-MNIST IDX files (raw or .gz); grey → 3 equal channels",
            &[],
        ),
        entry(
            "data::folder",
            "data::folder(path, opts) -> Dataset",
            "PNG/JPEG files; class subfolders give labels, else -1",
            &[],
        )
        .typed(typed::<FolderOptions>()),
        entry(
            "data::save_npz",
            "data::save_npz(data, path)",
            "writes the official npz format (uncompressed, like np.savez)",
            &[],
        ),
        entry(
            "data::subset",
            "data::subset(data, opts) -> Dataset",
            "per_class labelled images per class, or n random images",
            &[],
        )
        .typed(typed::<SubsetOptions>()),
        entry("Dataset.len", "data.len() -> int", "number of images", &[]),
        entry(
            "Dataset.classes",
            "data.classes() -> int",
            "number of classes of the labelled task",
            &[],
        ),
        entry(
            "Dataset.info",
            "data.info() -> map",
            "n, shape, source, labelled, channel mean/std, recipe attributes (with dup \"auto\": dup_rule, generator_tv, n_effective, auto_strength); an inflated set adds `generator_gap` (gen::gap of its generated part against its real part, when each has more than 32 images) and `sampling` (what dup does, and that a `generated_share` schedule replaces it)",
            &[],
        ),
    ]
}
