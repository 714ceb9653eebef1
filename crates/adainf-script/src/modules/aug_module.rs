//! The `aug` module (presets, custom and adaptive augmentations, previews) and the `Aug` handle.

use super::*;

/// `Aug`: `strength(s)`, `name`.
pub(super) fn register_type(engine: &mut Engine) {
    engine.register_type_with_name::<ViewPair>("Aug");
    method!(
        engine.register_fn("strength", |a: &mut ViewPair, s: f64| -> Res<ViewPair> {
            strength(a, s)
        })
    );
    method!(
        engine.register_fn("strength", |a: &mut ViewPair, s: i64| -> Res<ViewPair> {
            strength(a, s as f64)
        })
    );
    method!(engine.register_get("name", |a: &mut ViewPair| a.name.clone()));
    method!(engine.register_fn("to_string", |a: &mut ViewPair| format!("Aug({})", a.name)));
    method!(engine.register_fn("to_debug", |a: &mut ViewPair| {
        format!("Aug({}: {:?})", a.name, a.views)
    }));
}

fn strength(a: &ViewPair, s: f64) -> Res<ViewPair> {
    let scale = |v: &[AugSpec; 2]| -> Res<[AugSpec; 2]> {
        Ok([core(v[0].with_strength(s))?, core(v[1].with_strength(s))?])
    };
    Ok(ViewPair {
        name: format!("{}×{s}", a.name),
        views: scale(&a.views)?,
        generated: a.generated.as_ref().map(scale).transpose()?,
    })
}

/// `aug::simclr`'s options: the `symmetric` preset (`AugSpec::default`) with the given keys
/// over it.
fn aug_spec_from(opts: &Map) -> Res<AugSpec> {
    check_array_lengths(opts).or_else(fail)?;
    let spec: AugSpec = options::parse("aug::simclr", opts, &[]).or_else(fail)?;
    core(spec.validate())?;
    Ok(spec)
}

/// The arrays of fixed length of `aug::simclr`, said in their own terms (serde says "invalid
/// length 0, expected an array of length 4"): the call and `adainf check` both ask it.
fn check_array_lengths(opts: &Map) -> Result<(), String> {
    let d = AugSpec::default();
    for (key, len, what) in [
        (
            "jitter",
            d.jitter.len(),
            "[brightness, contrast, saturation, hue]",
        ),
        ("mean", d.mean.len(), "one per channel [red, green, blue]"),
        ("std", d.std.len(), "one per channel [red, green, blue]"),
    ] {
        if let Some(given) = opts.get(key).and_then(|v| v.clone().into_array().ok())
            && given.len() != len
        {
            return Err(format!(
                "option `{key}` of aug::simclr takes {len} numbers {what}, got {}",
                given.len()
            ));
        }
    }
    Ok(())
}

/// The options of `aug::auto`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct AutoOptions {
    /// The augmentation to scale ("asymmetric" for BYOL and Barlow Twins).
    #[option(default = String::from(DEFAULT_PRESET))]
    preset: String,
}

/// The options of `aug::preview`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct PreviewOptions {
    /// Number of images shown.
    #[option(default = 8)]
    n: usize,
    /// Random seed.
    seed: u64,
}

pub(super) fn aug_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "aug";
    let mut m = Module::new();
    register!(m, "preset", |name: &str| -> Res<ViewPair> {
        core(preset(name))
    });
    register!(m, "simclr", |opts: Map| -> Res<ViewPair> {
        Ok(ViewPair::symmetric("custom", aug_spec_from(&opts)?))
    });
    let st = state.clone();
    // Overloads without an options map delegate with an empty one, so defaults live once.
    let auto = move |d: Dataset, opts: Map| -> Res<ViewPair> {
        let AutoOptions { preset } = parsed("aug::auto", &opts, &[])?;
        auto_strength(&d, &preset, &st.device)
    };
    let auto_default = auto.clone();
    register!(m, "auto", move |d: Dataset, opts: Map| -> Res<ViewPair> {
        auto(d, opts)
    });
    register!(m, "auto", move |d: Dataset| -> Res<ViewPair> {
        auto_default(d, Map::new())
    });
    register!(m, "pair", |a: ViewPair, b: ViewPair| -> Res<ViewPair> {
        if !a.is_symmetric() || !b.is_symmetric() {
            return fail("aug::pair takes two symmetric augmentations (one per view)");
        }
        Ok(ViewPair {
            name: format!("{}|{}", a.name, b.name),
            views: [a.views[0].clone(), b.views[0].clone()],
            generated: None,
        })
    });
    let st = state.clone();
    let preview = move |d: Dataset, a: ViewPair, path: &str, opts: Map| -> Res<()> {
        let PreviewOptions { n, seed } = parsed("aug::preview", &opts, &[])?;
        let target = st.resolve(path);
        core(write_preview(&d, &a, &target, n, seed, &st.device))
    };
    let preview_default = preview.clone();
    register!(m, "preview", move |d: Dataset,
                                  a: ViewPair,
                                  path: &str,
                                  opts: Map|
          -> Res<()> {
        preview(d, a, path, opts)
    });
    register!(m, "preview", move |d: Dataset,
                                  a: ViewPair,
                                  path: &str|
          -> Res<()> {
        preview_default(d, a, path, Map::new())
    });
    m
}

/// `aug::auto`: the preset `name` at the strength the adaptive rule gives `data`.
fn auto_strength(data: &Dataset, name: &str, device: &burn::tensor::Device) -> Res<ViewPair> {
    let choice = core(theory::adapt::strength_for(data, device))?;
    let scaled = strength(&core(preset(name))?, choice.strength)?;
    Ok(ViewPair {
        name: format!("{} (auto)", scaled.name),
        ..scaled
    })
}

pub(super) fn aug_option(v: Option<&Dynamic>) -> Res<ViewPair> {
    match v {
        None => core(preset(DEFAULT_PRESET)),
        Some(v) if v.is::<ViewPair>() => Ok(v.clone().cast::<ViewPair>()),
        Some(v) if v.is_string() => core(preset(&v.clone().into_string().unwrap_or_default())),
        Some(v) if v.is_map() => {
            // `#{ real: A, generated: B }`: each side one of the other forms.
            let map = v.clone().cast::<Map>();
            let side = |key: &str| -> Res<ViewPair> {
                let Some(x) = map.get(key) else {
                    return fail(format!(
                        "option `aug` as a map needs both `real` and `generated` (e.g. #{{ real: aug::preset(\"symmetric\"), generated: aug::preset(\"symmetric_weak\") }}); `{key}` is missing"
                    ));
                };
                if x.is_map() || !options::fits(Kind::Aug, x) {
                    return fail(format!(
                        "`aug.{key}` must be an augmentation (aug::preset(..)), a preset name or [view1, view2], got {}",
                        options::type_name(x)
                    ));
                }
                aug_option(Some(x))
            };
            if let Some(k) = map.keys().find(|k| !AUG_SOURCES.contains(&k.as_str())) {
                let known: Vec<Opt> = AUG_SOURCES
                    .iter()
                    .map(|&s| opt(s, Kind::Aug, "augmentation of this source"))
                    .collect();
                return fail(options::unknown_key_message("aug", k, &known));
            }
            let pair = ViewPair::per_source(&side("real")?, &side("generated")?);
            core(pair.validate())?;
            Ok(pair)
        }
        Some(v) => {
            let views: Vec<ViewPair> = v
                .clone()
                .into_array()
                .unwrap_or_default()
                .into_iter()
                .map(|x| x.cast::<ViewPair>())
                .collect();
            Ok(ViewPair {
                name: format!("{}|{}", views[0].name, views[1].name),
                views: [views[0].views[0].clone(), views[1].views[1].clone()],
                generated: None,
            })
        }
    }
}

/// The keys of `aug: #{ real: A, generated: B }` (augmentation per data source).
pub const AUG_SOURCES: [&str; 2] = ["real", "generated"];

/// The catalogue entries of `aug` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "aug::preset",
            "aug::preset(name) -> Aug",
            "official presets: symmetric, symmetric_adainf, symmetric_weak, asymmetric, asymmetric_adainf",
            &[],
        ),
        entry(
            "aug::simclr",
            "aug::simclr(opts) -> Aug",
            "a symmetric augmentation; unset keys keep the `symmetric` values",
            &[],
        )
        .typed(typed::<AugSpec>().with_check(|function, opts, unknown| {
            check_array_lengths(opts)?;
            let spec: AugSpec = options::parse(function, opts, &[])?;
            literal_outcome(opts, unknown, spec.validate())
        })),
        entry(
            "aug::auto",
            "aug::auto(data, opts) -> Aug",
            "the preset at the strength the adaptive rule gives `data` (docs/adaptive.md): the choice recorded by dup \"auto\", measured for a set inflated with a fixed dup, 1 for real data alone; named e.g. \"symmetric×0.7 (auto)\"",
            &[],
        )
        .typed(typed::<AutoOptions>()),
        entry(
            "aug::pair",
            "aug::pair(view1, view2) -> Aug",
            "an asymmetric augmentation from two symmetric ones",
            &[],
        ),
        entry(
            "aug::preview",
            "aug::preview(data, aug, path, opts)",
            "writes a PNG grid: each image and its two views",
            &[],
        )
        .typed(typed::<PreviewOptions>()),
        entry(
            "Aug.strength",
            "aug.strength(s) -> Aug",
            "jitter × s; crop_min ← crop_min^s (s < 1 = milder)",
            &[],
        ),
        entry(
            "Aug.name",
            "aug.name -> string",
            "the augmentation's name",
            &[],
        ),
    ]
}
