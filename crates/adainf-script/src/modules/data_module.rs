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
    engine.register_fn("len", |d: &mut Dataset| d.len() as i64);
    engine.register_fn("classes", |d: &mut Dataset| d.classes() as i64);
    let st = state.clone();
    engine.register_fn("info", move |d: &mut Dataset| -> Res<Map> {
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
    });
    engine.register_fn("to_string", |d: &mut Dataset| {
        format!("Dataset({} images: {})", d.len(), d.description())
    });
    engine.register_fn("to_debug", |d: &mut Dataset| {
        format!("Dataset({} images: {})", d.len(), d.description())
    });
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
        options::check("data::cifar100", &opts, CIFAR)?;
        let coarse = opts
            .get("coarse")
            .and_then(|v| v.as_bool().ok())
            .unwrap_or(false);
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
        options::check("data::npz", &opts, NPZ)?;
        let labels = str_or(&opts, "labels", "keep");
        if labels != "keep" && labels != "ignore" {
            return fail(format!(
                "option `labels` of data::npz must be \"keep\" or \"ignore\", got \"{labels}\""
            ));
        }
        let o = NpzOptions {
            image_key: str_or(&opts, "image_key", "image"),
            label_key: str_or(&opts, "label_key", "label"),
            ignore_labels: labels == "ignore",
            bgr: opts
                .get("bgr")
                .and_then(|v| v.as_bool().ok())
                .unwrap_or(false),
            classes: opts
                .get("classes")
                .and_then(|v| v.as_int().ok())
                .map(|c| c as usize),
        };
        let d = core(
            Recipe::Npz {
                path: st.resolve(path),
                options: o,
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
        options::check("data::folder", &opts, FOLDER)?;
        core(
            Recipe::Folder {
                path: st.resolve(path),
                size: int_or(&opts, "size", 32) as usize,
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
        options::check("data::synthetic", &opts, SYNTHETIC)?;
        let spec = SyntheticSpec {
            n: int_or(&opts, "n", 5000) as usize,
            seed: int_or(&opts, "seed", 0) as u64,
            size: int_or(&opts, "size", 32) as usize,
            split: str_or(&opts, "split", "train"),
        };
        st.memo(format!("{spec:?}"), || {
            core(Recipe::Synthetic(spec.clone()).build(&st.device))
        })
    });
    let st = state.clone();
    register!(m, "synthetic_generator", move |opts: Map| -> Res<Dataset> {
        options::check("data::synthetic_generator", &opts, GENERATOR)?;
        let spec = GeneratorSpec {
            n: int_or(&opts, "n", 50_000) as usize,
            seed: int_or(&opts, "seed", 0) as u64,
            size: int_or(&opts, "size", 32) as usize,
            fidelity: float_or(&opts, "fidelity", 0.7),
        };
        st.memo(format!("{spec:?}"), || {
            core(Recipe::SyntheticGenerator(spec.clone()).build(&st.device))
        })
    });
    let st = state.clone();
    let inflate = move |real: Dataset, generated: Dataset, opts: Map| -> Res<Dataset> {
        options::check("data::inflate", &opts, INFLATE)?;
        match opts.get("dup") {
            Some(d) if d.is_string() => {
                core(theory::adapt::inflate_auto(&real, &generated, &st.device))
            }
            _ => core(recipe::inflate(
                &real,
                &generated,
                int_or(&opts, "dup", 1) as usize,
            )),
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
        options::check("data::subset", &opts, SUBSET)?;
        let seed = int_or(&opts, "seed", 0) as u64;
        match (opts.get("per_class"), opts.get("n")) {
            (Some(_), Some(_)) => fail("data::subset takes either `per_class` or `n`, not both"),
            (Some(p), None) => core(recipe::subset_per_class(
                &d,
                p.as_int().unwrap_or(0) as usize,
                seed,
            )),
            (None, Some(n)) => core(recipe::subset_random(
                &d,
                n.as_int().unwrap_or(0) as usize,
                seed,
            )),
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

/// The data-free checks of `data::synthetic*` options (`modules::static_option_check`).
pub(super) fn check_literal(opts: &Map) -> crate::error::Result<()> {
    crate::data::synthetic::check_size(int_or(opts, "size", 32).max(0) as usize)
}

pub const SYNTHETIC: &[Opt] = &[
    opt("n", Kind::Int, "number of images (default 5000)"),
    opt("seed", Kind::Int, "random seed (default 0)"),
    opt("size", Kind::Int, "image side in pixels (default 32)"),
    opt(
        "split",
        Kind::Str,
        "\"train\" or \"test\": independent streams (default \"train\")",
    ),
];

pub const GENERATOR: &[Opt] = &[
    opt("n", Kind::Int, "number of generated images (default 50000)"),
    opt(
        "fidelity",
        Kind::Float,
        "in [0, 1]; 1 = the real distribution (default 0.7)",
    ),
    opt("seed", Kind::Int, "random seed (default 0)"),
    opt("size", Kind::Int, "image side in pixels (default 32)"),
];

pub const INFLATE: &[Opt] = &[opt(
    "dup",
    Kind::IntOrAuto,
    "copies of the real data before the generated data (default 1); \"auto\": chosen from the generator gap by the adaptive rule (docs/adaptive.md), reported in info()",
)];

pub const NPZ: &[Opt] = &[
    opt(
        "labels",
        Kind::Str,
        "\"keep\" (default) or \"ignore\" (all -1: generated images never reach the probe)",
    ),
    opt(
        "bgr",
        Kind::Bool,
        "pixels are stored B, G, R (OpenCV-written files): swap to RGB",
    ),
    opt(
        "image_key",
        Kind::Str,
        "array name of the images (default \"image\")",
    ),
    opt(
        "label_key",
        Kind::Str,
        "array name of the labels (default \"label\")",
    ),
    opt(
        "classes",
        Kind::Int,
        "number of classes (default: largest label + 1)",
    ),
    opt(
        "reference",
        Kind::Dataset,
        "warn if the channel means look R/B-swapped relative to this set",
    ),
];

pub const CIFAR: &[Opt] = &[opt(
    "coarse",
    Kind::Bool,
    "CIFAR-100 only: the 20 coarse labels instead of the 100 fine ones",
)];

pub const FOLDER: &[Opt] = &[opt(
    "size",
    Kind::Int,
    "images are resized to size×size (default 32)",
)];

pub const SUBSET: &[Opt] = &[
    opt(
        "per_class",
        Kind::Int,
        "labelled images per class (the paper's 5k set: 500)",
    ),
    opt("n", Kind::Int, "images chosen uniformly at random"),
    opt("seed", Kind::Int, "random seed (default 0)"),
];

/// The catalogue entries of `data` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "data::synthetic",
            "data::synthetic(opts) -> Dataset",
            "the embedded 10-class shape family (labels 0..9)",
            SYNTHETIC,
        ),
        entry(
            "data::synthetic_generator",
            "data::synthetic_generator(opts) -> Dataset",
            "simulated generator samples of that family (labels -1)",
            GENERATOR,
        ),
        entry(
            "data::inflate",
            "data::inflate(real, generated, opts) -> Dataset",
            "real × dup then generated, as an index view (no copies)",
            INFLATE,
        ),
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
            CIFAR,
        ),
        entry(
            "data::npz",
            "data::npz(path, opts) -> Dataset",
            "AdaInf npz (image N×H×W×3 u8, label); memory-mapped when stored",
            NPZ,
        ),
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
            FOLDER,
        ),
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
            SUBSET,
        ),
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
