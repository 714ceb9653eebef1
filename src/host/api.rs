//! The catalogue of the script API: every function with its signature, a one-line doc and the
//! options it accepts. `adainf api` prints it, `adainf check` validates calls against it, and
//! the registration in `modules` uses the same option lists.

use super::options::{Kind, Opt, opt};

pub struct ApiEntry {
    /// `module::name` for module functions, `Type.name` for methods and properties.
    pub path: &'static str,
    pub signature: &'static str,
    pub doc: &'static str,
    pub options: &'static [Opt],
}

/// The script modules, in the order `adainf api` lists them; registration, `adainf check` and
/// the catalogue test read this list.
pub const MODULES: [&str; 7] = ["data", "gen", "aug", "train", "eval", "theory", "report"];

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

pub const AUG_AUTO: &[Opt] = &[opt(
    "preset",
    Kind::Str,
    "the augmentation to scale (default \"symmetric\"; \"asymmetric\" for BYOL and Barlow Twins)",
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

pub const GMM: &[Opt] = &[
    opt("components", Kind::Int, "mixture components (default 20)"),
    opt("pca_dims", Kind::Int, "PCA dimensions (default 32)"),
    opt("seed", Kind::Int, "random seed (default 0)"),
    opt("iterations", Kind::Int, "EM iterations (default 40)"),
    opt(
        "max_images",
        Kind::Int,
        "fit on at most this many images (default 60000)",
    ),
];

pub const SAMPLE: &[Opt] = &[opt("seed", Kind::Int, "random seed (default 0)")];

pub const GAP: &[Opt] = &[
    opt(
        "max_images",
        Kind::Int,
        "images of each set compared (default 1000)",
    ),
    opt(
        "k",
        Kind::Int,
        "neighbours that vote real or generated, odd (default 5)",
    ),
    opt(
        "dims",
        Kind::Int,
        "PCA dimensions of the Fréchet distance (default 32)",
    ),
    opt(
        "seed",
        Kind::Int,
        "random seed of the subsample (default 0)",
    ),
];

pub const FRECHET: &[Opt] = &[
    opt(
        "dims",
        Kind::Int,
        "PCA dimensions of the comparison space (default 32)",
    ),
    opt(
        "max_images",
        Kind::Int,
        "use at most this many images of each set (default 10000)",
    ),
];

pub const SUBSET: &[Opt] = &[
    opt(
        "per_class",
        Kind::Int,
        "labelled images per class (the paper's 5k set: 500)",
    ),
    opt("n", Kind::Int, "images chosen uniformly at random"),
    opt("seed", Kind::Int, "random seed (default 0)"),
];

pub const AUG: &[Opt] = &[
    opt(
        "crop_min",
        Kind::Float,
        "RandomResizedCrop minimum area fraction",
    ),
    opt(
        "crop_max",
        Kind::Float,
        "RandomResizedCrop maximum area fraction",
    ),
    opt("flip_prob", Kind::Float, "horizontal flip probability"),
    opt("jitter_prob", Kind::Float, "colour jitter probability"),
    opt(
        "jitter",
        Kind::Floats,
        "[brightness, contrast, saturation, hue] strengths",
    ),
    opt("gray_prob", Kind::Float, "grayscale probability"),
    opt(
        "blur_prob",
        Kind::Float,
        "Gaussian blur probability (sigma in [0.1, 2])",
    ),
    opt("solarize_prob", Kind::Float, "solarize probability"),
    opt(
        "mean",
        Kind::Floats,
        "normalisation mean per channel (default CIFAR-10)",
    ),
    opt(
        "std",
        Kind::Floats,
        "normalisation std per channel (default CIFAR-10)",
    ),
];

pub const PREVIEW: &[Opt] = &[
    opt("n", Kind::Int, "number of images (default 8)"),
    opt("seed", Kind::Int, "random seed (default 0)"),
];

pub const PRETRAIN: &[Opt] = &[
    opt("data", Kind::Dataset, "training data (required)"),
    opt(
        "aug",
        Kind::Aug,
        "augmentation: aug handle, preset name or [view1, view2] (default \"symmetric\")",
    ),
    opt(
        "probe",
        Kind::Dataset,
        "labelled set the online linear probe is evaluated on",
    ),
    opt(
        "tags",
        Kind::Map,
        "extra columns for reports; not part of the run id",
    ),
    opt(
        "device",
        Kind::Str,
        "flex, wgpu, vulkan, cuda or cuda:N (default: the command's --device); not part of the run id",
    ),
    opt(
        "placement",
        Kind::Str,
        "\"auto\" (default: on the GPU when the data fits), \"device\" (upload the data once, gather batches there) or \"stream\" (gather on the host, upload each batch); not part of the run id",
    ),
    opt(
        "method",
        Kind::Str,
        "\"simclr\" | \"mocov2\" | \"byol\" | \"barlow\"; unset keys take that method's official defaults",
    ),
    opt(
        "backbone",
        Kind::Str,
        "\"resnet18\" (or \"resnet10\", CPU-sized)",
    ),
    opt(
        "width",
        Kind::Int,
        "first-stage channels, 64 = standard ResNet-18",
    ),
    opt("steps", Kind::Int, "optimisation steps"),
    opt("batch", Kind::Int, "images per step (two views each)"),
    opt(
        "lr",
        Kind::Float,
        "learning rate, used as given (official SimCLR: 0.4 at batch 512)",
    ),
    opt(
        "classifier_lr",
        Kind::Float,
        "online probe learning rate (official: 0.1)",
    ),
    opt("optimizer", Kind::Str, "\"lars\" or \"sgd\""),
    opt(
        "weight_decay",
        Kind::Float,
        "weight decay (not on biases and norms with LARS)",
    ),
    opt("warmup", Kind::Int, "linear warm-up steps"),
    opt(
        "warmup_start",
        Kind::Float,
        "learning rate at step 0 (official 3e-5)",
    ),
    opt(
        "temperature",
        Kind::Float,
        "NT-Xent temperature (official 0.2)",
    ),
    opt(
        "proj_hidden",
        Kind::Int,
        "projector hidden size (official 2048)",
    ),
    opt(
        "proj_dim",
        Kind::Int,
        "projector output size (official 256)",
    ),
    opt("seed", Kind::Int, "random seed"),
    opt(
        "eval_every",
        Kind::Int,
        "online-probe evaluation period in steps (0 = end only)",
    ),
    opt("log_every", Kind::Int, "loss logging period in steps"),
    opt(
        "checkpoint_every",
        Kind::Int,
        "checkpoint period in steps (0 = end only); an interrupted run resumes from its last checkpoint; not part of the run id",
    ),
    opt(
        "ema_base",
        Kind::Float,
        "mocov2/byol: momentum-target τ at the start (0.99)",
    ),
    opt(
        "ema_final",
        Kind::Float,
        "mocov2/byol: τ at the end (0.999 / 1.0)",
    ),
    opt(
        "queue_size",
        Kind::Int,
        "mocov2: keys per queue, a multiple of the batch (32768)",
    ),
    opt(
        "pred_hidden",
        Kind::Int,
        "byol: predictor hidden size (4096)",
    ),
    opt(
        "barlow_lambda",
        Kind::Float,
        "barlow: off-diagonal weight λ (0.0051)",
    ),
    opt("barlow_scale", Kind::Float, "barlow: loss scale (0.1)"),
    opt(
        "lr_scaling",
        Kind::Str,
        "\"linear\": lr and classifier_lr × batch/256 (the official rule); unset: as given",
    ),
    opt(
        "precision",
        Kind::Str,
        "\"f32\" (default), \"bf16\" or \"f16\": the backbone's convolutions in that type, f32 master weights, batch norm, losses and optimiser",
    ),
];

pub const TOY: &[Opt] = &[
    opt("n", Kind::Int, "natural samples, 3 to 2000 (default 400)"),
    opt(
        "r",
        Kind::Float,
        "radius of the augmentation disc, the augmentation strength (default 0.5)",
    ),
    opt("seed", Kind::Int, "random seed of the samples (default 0)"),
    opt(
        "variance",
        Kind::Float,
        "variance per axis of each Gaussian (default 0.7, the paper's)",
    ),
    opt(
        "separation",
        Kind::Float,
        "distance between the two means (default 2: (-1, 0) and (1, 0))",
    ),
];

pub const ESTIMATE: &[Opt] = &[
    opt(
        "n",
        Kind::Int,
        "labelled images per resample (default 1000)",
    ),
    opt(
        "views",
        Kind::Int,
        "augmented views per image, alternating the pair's two views (default 2)",
    ),
    opt(
        "neighbours",
        Kind::Int,
        "nearest views each view is joined to in the graph (default 10)",
    ),
    opt(
        "judge_k",
        Kind::Int,
        "nearest un-augmented images whose labels judge a view's class (default 10)",
    ),
    opt(
        "resamples",
        Kind::Int,
        "independent draws of images and views; mean and std over them (default 3)",
    ),
    opt("seed", Kind::Int, "random seed (default 0)"),
];

pub const KNN: &[Opt] = &[
    opt("k", Kind::Int, "neighbours (default 20)"),
    opt(
        "temperature",
        Kind::Float,
        "vote temperature (default 0.07)",
    ),
];

pub const LINEAR: &[Opt] = &[
    opt("epochs", Kind::Int, "epochs (default 20)"),
    opt("lr", Kind::Float, "Adam learning rate (default 1e-3)"),
    opt("batch", Kind::Int, "mini-batch (default 256)"),
    opt("seed", Kind::Int, "random seed (default 0)"),
];

pub const TABLE: &[Opt] = &[
    opt(
        "columns",
        Kind::Strings,
        "columns to show, in order (default: all)",
    ),
    opt(
        "group_by",
        Kind::Strings,
        "merge rows with equal values here; numbers become mean ± std",
    ),
    opt("print", Kind::Bool, "print the table (default true)"),
];

pub const COMPARE: &[Opt] = &[
    opt(
        "group",
        Kind::Str,
        "column whose values name the groups, e.g. \"setting\" (required)",
    ),
    opt(
        "value",
        Kind::Str,
        "numeric column to compare, e.g. \"knn\" (required)",
    ),
    opt(
        "pairs",
        Kind::Pairs,
        "[a, b] group pairs; each row gives mean(a) − mean(b) (required)",
    ),
    opt("print", Kind::Bool, "print the table (default true)"),
];

pub const PLOT: &[Opt] = &[
    opt("x", Kind::Str, "column on the x axis (required)"),
    opt("y", Kind::Str, "column on the y axis (required)"),
    opt("group", Kind::Str, "one line per value of this column"),
    opt("path", Kind::Str, "PNG file to write (required)"),
    opt("title", Kind::Str, "plot title (default \"y vs x\")"),
    opt("log_x", Kind::Bool, "logarithmic x axis"),
];

pub const CSV: &[Opt] = &[opt(
    "columns",
    Kind::Strings,
    "columns to write, in order (default: all)",
)];

/// Every script function.
pub fn catalogue() -> Vec<ApiEntry> {
    let e = |path, signature, doc, options| ApiEntry {
        path,
        signature,
        doc,
        options,
    };
    vec![
        e(
            "data::synthetic",
            "data::synthetic(opts) -> Dataset",
            "the embedded 10-class shape family (labels 0..9)",
            SYNTHETIC,
        ),
        e(
            "data::synthetic_generator",
            "data::synthetic_generator(opts) -> Dataset",
            "simulated generator samples of that family (labels -1)",
            GENERATOR,
        ),
        e(
            "data::inflate",
            "data::inflate(real, generated, opts) -> Dataset",
            "real × dup then generated, as an index view (no copies)",
            INFLATE,
        ),
        e(
            "data::cifar10",
            "data::cifar10(dir, split) -> Dataset",
            "CIFAR-10 binary or python release folder; split \"train\" | \"test\"",
            &[],
        ),
        e(
            "data::cifar100",
            "data::cifar100(dir, split, opts) -> Dataset",
            "CIFAR-100 binary or python release folder (fine labels)",
            CIFAR,
        ),
        e(
            "data::npz",
            "data::npz(path, opts) -> Dataset",
            "AdaInf npz (image N×H×W×3 u8, label); memory-mapped when stored",
            NPZ,
        ),
        e(
            "data::idx",
            "data::idx(images, labels) -> Dataset",
            "MNIST/Fashion-MNIST IDX files (raw or .gz); grey → 3 equal channels",
            &[],
        ),
        e(
            "data::folder",
            "data::folder(path, opts) -> Dataset",
            "PNG/JPEG files; class subfolders give labels, else -1",
            FOLDER,
        ),
        e(
            "data::save_npz",
            "data::save_npz(data, path)",
            "writes the official npz format (uncompressed, like np.savez)",
            &[],
        ),
        e(
            "data::subset",
            "data::subset(data, opts) -> Dataset",
            "per_class labelled images per class, or n random images",
            SUBSET,
        ),
        e(
            "gen::gmm",
            "gen::gmm(real, opts) -> Generator",
            "fits PCA + Gaussian mixture (EM) on real images: a fast, weak generator",
            GMM,
        ),
        e(
            "gen::sample",
            "gen::sample(generator, n, opts) -> Dataset",
            "n generated images (labels -1)",
            SAMPLE,
        ),
        e(
            "gen::frechet",
            "gen::frechet(reference, other, opts) -> float",
            "Fréchet distance in the reference's PCA space (lower = closer)",
            FRECHET,
        ),
        e(
            "gen::gap",
            "gen::gap(real, generated, opts) -> map",
            "the generator gap without labels: #{ tv, accuracy, frechet, images }; tv = max(0, 2·accuracy − 1) from a leave-one-out kNN real-vs-generated classifier on pixels (a lower bound on the total-variation distance), frechet as gen::frechet",
            GAP,
        ),
        e(
            "Generator.info",
            "generator.info() -> map",
            "components, pca_dims, explained variance, mean log-likelihood, and `gap` (gen::gap of 1000 samples against the images it was fitted on)",
            &[],
        ),
        e("Dataset.len", "data.len() -> int", "number of images", &[]),
        e(
            "Dataset.classes",
            "data.classes() -> int",
            "number of classes of the labelled task",
            &[],
        ),
        e(
            "Dataset.info",
            "data.info() -> map",
            "n, shape, source, labelled, channel mean/std, recipe attributes; an inflated set adds `generator_gap` (gen::gap of its generated part against its real part, when each has more than 32 images)",
            &[],
        ),
        e(
            "aug::preset",
            "aug::preset(name) -> Aug",
            "official presets: symmetric, symmetric_adainf, symmetric_weak, asymmetric, asymmetric_adainf",
            &[],
        ),
        e(
            "aug::simclr",
            "aug::simclr(opts) -> Aug",
            "a symmetric augmentation; unset keys keep the `symmetric` values",
            AUG,
        ),
        e(
            "aug::auto",
            "aug::auto(data, opts) -> Aug",
            "the preset at the strength the adaptive rule gives `data` (docs/adaptive.md): the choice recorded by dup \"auto\", measured for a set inflated with a fixed dup, 1 for real data alone; named e.g. \"symmetric×0.7 (auto)\"",
            AUG_AUTO,
        ),
        e(
            "aug::pair",
            "aug::pair(view1, view2) -> Aug",
            "an asymmetric augmentation from two symmetric ones",
            &[],
        ),
        e(
            "aug::preview",
            "aug::preview(data, aug, path, opts)",
            "writes a PNG grid: each image and its two views",
            PREVIEW,
        ),
        e(
            "Aug.strength",
            "aug.strength(s) -> Aug",
            "jitter × s; crop_min ← crop_min^s (s < 1 = milder)",
            &[],
        ),
        e(
            "Aug.name",
            "aug.name -> string",
            "the augmentation's name",
            &[],
        ),
        e(
            "train::pretrain",
            "train::pretrain(opts) -> Run",
            "trains (or loads the cached) run; online probe on `probe`",
            PRETRAIN,
        ),
        e(
            "train::pretrain_all",
            "train::pretrain_all([opts, ...]) -> array",
            "trains (or loads) a batch of runs and returns them in order: one after another by default, in parallel with `adainf run --jobs N` (worker processes) or `--executor slurm` (one job array); each run is trained exactly once across every process sharing the runs folder",
            PRETRAIN,
        ),
        e(
            "train::load",
            "train::load(dir) -> Run",
            "a finished run from its folder (for eval::* and reports)",
            &[],
        ),
        e(
            "train::options",
            "train::options() -> array",
            "the names of every option train::pretrain accepts",
            &[],
        ),
        e(
            "train::defaults",
            "train::defaults(method) -> map",
            "a method's official default options (simclr, mocov2, byol, barlow)",
            &[],
        ),
        e(
            "Run.accuracy",
            "run.accuracy -> float",
            "final online-probe top-1 on the probe set (() without one)",
            &[],
        ),
        e(
            "Run.metrics",
            "run.metrics -> array",
            "maps: step, loss, lr, probe_acc, images_per_s, data_wait (fraction of time waiting for data)",
            &[],
        ),
        e(
            "Run.id",
            "run.id -> string",
            "content hash of config and data fingerprints",
            &[],
        ),
        e("Run.dir", "run.dir -> string", "the run's folder", &[]),
        e(
            "Run.cached",
            "run.cached -> bool",
            "whether the run was loaded from the cache",
            &[],
        ),
        e(
            "Run.tags",
            "run.tags -> map",
            "the `tags` the run was trained with (report columns, not part of the id)",
            &[],
        ),
        e(
            "Run.row",
            "run.row() -> map",
            "the run's report columns (config, data recipe, results, tags)",
            &[],
        ),
        e(
            "eval::knn",
            "eval::knn(run, train, test, opts) -> float",
            "weighted kNN top-1 on frozen features (k 20, T 0.07)",
            KNN,
        ),
        e(
            "eval::knn_pixels",
            "eval::knn_pixels(train, test, opts) -> float",
            "the same kNN on raw normalised pixels (a baseline)",
            KNN,
        ),
        e(
            "eval::knn_random",
            "eval::knn_random(run, train, test, opts) -> float",
            "the same kNN on a randomly initialised encoder of the run's shape",
            KNN,
        ),
        e(
            "eval::linear",
            "eval::linear(run, train, test, opts) -> float",
            "offline linear probe on frozen features",
            LINEAR,
        ),
        e(
            "theory::toy",
            "theory::toy(opts) -> map",
            "the paper's 2-D toy, exact: two Gaussians, disc augmentation of radius r; returns #{ alpha, alpha_population, lambda_k1, lambda, bound, n, r, k } (λ_{k+1} of the normalised Laplacian of the augmentation graph, bound = α/λ_{k+1} + α)",
            TOY,
        ),
        e(
            "theory::estimate",
            "theory::estimate([run,] data, aug, opts) -> map",
            "estimates on labelled images, in normalised-pixel space or, given a run, in its frozen encoder's space (L2-normalised features): α (how often an augmented view's nearest un-augmented images vote another class; `alpha_clean` is that judge's error without augmentation) and λ_{k+1} of the normalised Laplacian of the k-nearest-neighbour graph over augmented views (sparse eigensolver); #{ k, alpha, alpha_std, alpha_clean, lambda_k1, lambda_k1_std, lambda, converged }",
            ESTIMATE,
        ),
        e(
            "report::table",
            "report::table(rows, opts) -> string",
            "markdown table of runs or maps (printed)",
            TABLE,
        ),
        e(
            "report::compare",
            "report::compare(rows, opts) -> array",
            "differences of group means with their standard error (over the rows of each group, e.g. seeds) and whether each exceeds 2 standard errors; printed as a table, returned as maps",
            COMPARE,
        ),
        e(
            "report::plot",
            "report::plot(rows, opts)",
            "PNG line plot of y vs x per group: mean ± std over repeated x (seeds)",
            PLOT,
        ),
        e(
            "report::save_csv",
            "report::save_csv(rows, path, opts)",
            "one CSV line per run or map",
            CSV,
        ),
    ]
}

/// Doc comments (`/// …` lines) of `module::name` for Rhai definition files: the signature,
/// the one-line doc and the options.
pub fn doc_comments(module: &str, name: &str) -> Vec<String> {
    let path = format!("{module}::{name}");
    let Some(e) = catalogue().into_iter().find(|e| e.path == path) else {
        return Vec::new();
    };
    let mut out = vec![format!("/// {}", e.signature), format!("/// {}", e.doc)];
    if !e.options.is_empty() {
        out.push("///".into());
        out.push("/// Options:".into());
        out.extend(
            e.options
                .iter()
                .map(|o| format!("/// - `{}` ({}): {}", o.key, kind_short(o.kind), o.doc)),
        );
    }
    out
}

/// Parameter info for Rhai definition files: `params` then the return type of `module::name`
/// (from its catalogue signature).
pub fn params_info(module: &str, name: &str, params: &[&str]) -> Vec<String> {
    let path = format!("{module}::{name}");
    let ret = catalogue()
        .into_iter()
        .find(|e| e.path == path)
        .and_then(|e| e.signature.split("-> ").nth(1).map(str::to_string))
        .unwrap_or_else(|| "()".into());
    params.iter().map(|p| p.to_string()).chain([ret]).collect()
}

/// The catalogue as text, one function per line.
pub fn render() -> String {
    let mut out = String::new();
    for entry in catalogue() {
        out.push_str(&format!("{:<58} {}\n", entry.signature, entry.doc));
        for o in entry.options {
            out.push_str(&format!(
                "    {:<16} {:<12} {}\n",
                o.key,
                kind_short(o.kind),
                o.doc
            ));
        }
    }
    out
}

/// The catalogue as a markdown reference (`adainf api --markdown`, kept in `docs/api.md`; a
/// test checks that file is current).
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# The script API\n\nGenerated by `adainf api --markdown` from the catalogue the engine registers \
         (a test keeps the two in step); do not edit by hand. Option maps are checked: an unknown \
         key or a wrong type is an error naming the key and the script position; integers are \
         accepted where numbers are expected.\n",
    );
    let mut section = "";
    for entry in catalogue() {
        let module = entry
            .path
            .split_once("::")
            .map(|(m, _)| m)
            .unwrap_or_else(|| entry.path.split('.').next().unwrap_or(""));
        if module != section {
            section = module;
            let title = if entry.path.contains("::") {
                format!("`{module}`")
            } else {
                format!("`{module}` values")
            };
            out.push_str(&format!("\n## {title}\n"));
        }
        out.push_str(&format!("\n**`{}`**: {}\n", entry.signature, entry.doc));
        if !entry.options.is_empty() {
            out.push('\n');
            for o in entry.options {
                out.push_str(&format!(
                    "- `{}` ({}): {}\n",
                    o.key,
                    kind_short(o.kind),
                    o.doc
                ));
            }
        }
    }
    out
}

fn kind_short(k: Kind) -> &'static str {
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
    }
}
