//! The `report` module: tables, comparisons of means, plots and CSV files of rows; grids of
//! dataset images.

use super::*;

fn cell_of(v: &Dynamic) -> Cell {
    if v.is_unit() {
        Cell::Empty
    } else if let Ok(i) = v.as_int() {
        Cell::Number(i as f64)
    } else if let Ok(f) = v.as_float() {
        Cell::Number(f)
    } else {
        Cell::Text(v.to_string())
    }
}

/// Script rows (maps or runs) → report rows.
fn rows_of(rows: &Array) -> Res<Vec<Row>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            if let Some(h) = r.clone().try_cast::<RunHandle>() {
                // Keep the run's own column order; tags come last.
                let mut row = report::run_row(&h.run);
                row.extend(h.tags.iter().map(|(k, v)| (k.to_string(), cell_of(v))));
                return Ok(row);
            }
            let map = if let Some(m) = r.clone().try_cast::<Map>() {
                m
            } else {
                return fail(format!(
                    "report rows must be runs or maps; row {i} is {}",
                    options::type_name(r)
                ));
            };
            Ok(map
                .iter()
                .map(|(k, v)| (k.to_string(), cell_of(v)))
                .collect())
        })
        .collect()
}

/// The options of `report::table`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct TableOptions {
    /// Columns to show, in order (unset: all).
    columns: Option<Vec<String>>,
    /// Merge rows with equal values here; numbers become mean ± std.
    group_by: Vec<String>,
    /// Print the table.
    #[option(default = true)]
    print: bool,
}

/// The options of `report::compare` (`group`, `value` and `pairs` are required).
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct CompareOptions {
    /// Column whose values name the groups, e.g. "setting" (required).
    group: Option<String>,
    /// Numeric column to compare, e.g. "knn" (required).
    value: Option<String>,
    /// [a, b] group pairs; each row gives mean(a) − mean(b) (required).
    pairs: Option<Vec<(String, String)>>,
    /// Print the table.
    #[option(default = true)]
    print: bool,
}

/// The options of `report::plot` (`x`, `y` and `path` are required).
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct PlotOptions {
    /// Column on the x axis (required).
    x: Option<String>,
    /// Column on the y axis (required).
    y: Option<String>,
    /// One line per value of this column.
    group: Option<String>,
    /// PNG file to write (required).
    path: Option<String>,
    /// Plot title (unset: "y vs x").
    title: Option<String>,
    /// Logarithmic x axis.
    log_x: bool,
}

/// The options of `report::save_csv`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct CsvOptions {
    /// Columns to write, in order (unset: all).
    columns: Option<Vec<String>>,
}

/// The options of `report::images`.
#[derive(serde::Serialize, serde::Deserialize, Options)]
#[serde(default, deny_unknown_fields)]
struct ImagesOptions {
    /// Images per row, spread evenly over each dataset (all of a smaller one).
    #[option(default = 16)]
    n: usize,
    /// One label per dataset, drawn left of its row (unset: none).
    labels: Option<Vec<String>>,
}

/// `report::images`: a PNG grid of a few images of each dataset of `sets`, one row each.
fn images(st: &HostState, sets: Array, path: &str, opts: Map) -> Res<()> {
    let o: ImagesOptions = parsed("report::images", &opts, &[])?;
    let mut data = Vec::with_capacity(sets.len());
    for (i, item) in sets.iter().enumerate() {
        let Some(d) = item.clone().try_cast::<Dataset>() else {
            return fail(format!(
                "report::images takes an array of datasets, e.g. [samples, real]; item {i} is {}",
                options::type_name(item)
            ));
        };
        data.push(d);
    }
    let spec = report::images::ImagesSpec {
        n: o.n,
        labels: o.labels.unwrap_or_default(),
    };
    core(report::images::write_images(
        &data,
        &spec,
        &st.resolve(path),
    ))
}

fn table(rows: Array, opts: Map) -> Res<String> {
    let o: TableOptions = parsed("report::table", &opts, &[])?;
    let rows = rows_of(&rows)?;
    let cols = report::columns_of(&rows, o.columns.as_deref());
    let text = report::markdown(&rows, &cols, &o.group_by);
    if o.print {
        println!("{text}");
    }
    Ok(text)
}

fn compare(rows: Array, opts: Map) -> Res<Array> {
    let o: CompareOptions = parsed("report::compare", &opts, &[])?;
    let text = |k: &str, v: Option<String>| match v {
        Some(v) => Ok(v),
        None => fail(format!(
            "report::compare needs `{k}` (e.g. #{{ group: \"setting\", value: \"knn\", pairs: [[\"adainf\", \"none\"]] }})"
        )),
    };
    let (group, value) = (text("group", o.group)?, text("value", o.value)?);
    let Some(pairs) = o.pairs else {
        return fail("report::compare needs `pairs`, e.g. [[\"adainf\", \"none\"]]");
    };
    let out = core(report::compare(&rows_of(&rows)?, &group, &value, &pairs))?;
    if o.print {
        println!(
            "{}",
            report::markdown(&out, &report::columns_of(&out, None), &[])
        );
    }
    Ok(out
        .iter()
        .map(|row| {
            Dynamic::from_map(
                row.iter()
                    .map(|(k, v)| (k.as_str().into(), cell_to_dynamic(v)))
                    .collect(),
            )
        })
        .collect())
}

fn save_csv(st: &HostState, rows: Array, path: &str, opts: Map) -> Res<()> {
    let o: CsvOptions = parsed("report::save_csv", &opts, &[])?;
    let rows = rows_of(&rows)?;
    let cols = report::columns_of(&rows, o.columns.as_deref());
    core(report::save_csv(&rows, &cols, &st.resolve(path)))
}

/// `report::html`: the page of a runs folder (a path) or of the runs of an array (with their
/// tags); returns the number of runs on it.
fn html(st: &HostState, runs_or_dir: Dynamic, path: &str) -> Res<i64> {
    let out = st.resolve(path);
    let n = if let Ok(dir) = runs_or_dir.clone().into_string() {
        core(report::html::write_dir(&st.resolve(&dir), &out, None))?
    } else if let Ok(items) = runs_or_dir.clone().into_array() {
        let mut dirs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(h) = item.clone().try_cast::<RunHandle>() else {
                return fail(format!(
                    "report::html takes runs or a runs folder; item {i} is {}",
                    options::type_name(item)
                ));
            };
            let tags = h
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), tag_json(v)))
                .collect();
            dirs.push((h.run.dir.clone(), tags));
        }
        let views = report::html::runs_at(&dirs);
        let n = views.len();
        let opts = report::html::PageOptions {
            title: format!("adainf report: {}", out.display()),
            source: format!("{n} run(s) of the script"),
            live: None,
        };
        core(report::html::write(views, &opts, &out))?;
        n
    } else {
        return fail(format!(
            "report::html takes an array of runs or a runs folder (a string), not {}",
            options::type_name(&runs_or_dir)
        ));
    };
    Ok(n as i64)
}

pub(super) fn report_module(state: &Rc<HostState>) -> Module {
    const MODULE: &str = "report";
    let mut m = Module::new();
    let st = state.clone();
    register!(m, "plot", move |rows: Array, opts: Map| -> Res<()> {
        let o: PlotOptions = parsed("report::plot", &opts, &[])?;
        let required = |k: &str, v: Option<String>| match v {
            Some(v) => Ok(v),
            None => fail(format!(
                "report::plot needs `{k}` (e.g. #{{ x: \"dup\", y: \"accuracy\", path: \"dup.png\" }})"
            )),
        };
        let spec = report::plot::PlotSpec {
            x: required("x", o.x)?,
            y: required("y", o.y)?,
            group: o.group,
            title: o.title,
            log_x: o.log_x,
        };
        let path = required("path", o.path)?;
        let rows = rows_of(&rows)?;
        core(report::plot::plot(&rows, &spec, &st.resolve(&path)))
    });
    register!(m, "table", |rows: Array, opts: Map| -> Res<String> {
        table(rows, opts)
    });
    register!(m, "table", |rows: Array| -> Res<String> {
        table(rows, Map::new())
    });
    register!(m, "compare", |rows: Array, opts: Map| -> Res<Array> {
        compare(rows, opts)
    });
    let st = state.clone();
    register!(m, "save_csv", move |rows: Array,
                                   path: &str,
                                   opts: Map|
          -> Res<()> {
        save_csv(&st, rows, path, opts)
    });
    let st = state.clone();
    register!(m, "save_csv", move |rows: Array, path: &str| -> Res<()> {
        save_csv(&st, rows, path, Map::new())
    });
    let st = state.clone();
    let images_with = move |sets: Array, path: &str, opts: Map| images(&st, sets, path, opts);
    let images_default = images_with.clone();
    register!(m, "images", move |sets: Array,
                                 path: &str,
                                 opts: Map|
          -> Res<()> {
        images_with(sets, path, opts)
    });
    register!(m, "images", move |sets: Array, path: &str| -> Res<()> {
        images_default(sets, path, Map::new())
    });
    let st = state.clone();
    register!(m, "html", move |runs_or_dir: Dynamic,
                               path: &str|
          -> Res<i64> {
        html(&st, runs_or_dir, path)
    });
    m
}

/// The catalogue entries of `report` and of the handle it returns (`api::catalogue`).
pub(super) fn entries() -> Vec<ApiEntry> {
    vec![
        entry(
            "report::table",
            "report::table(rows, opts) -> string",
            "markdown table of runs or maps (printed)",
            &[],
        )
        .typed(typed::<TableOptions>()),
        entry(
            "report::compare",
            "report::compare(rows, opts) -> array",
            "differences of group means with their standard error (over the rows of each group, e.g. seeds) and whether each exceeds 2 standard errors; printed as a table, returned as maps",
            &[],
        )
        .typed(typed::<CompareOptions>()),
        entry(
            "report::plot",
            "report::plot(rows, opts)",
            "PNG line plot of y vs x per group: mean ± std over repeated x (seeds)",
            &[],
        )
        .typed(typed::<PlotOptions>()),
        entry(
            "report::save_csv",
            "report::save_csv(rows, path, opts)",
            "one CSV line per run or map",
            &[],
        )
        .typed(typed::<CsvOptions>()),
        entry(
            "report::images",
            "report::images(datasets, path, opts)",
            "writes a PNG grid with one row per dataset of the array: a few of its images (e.g. generated samples above real ones), enlarged ×3 below 64 pixels",
            &[],
        )
        .typed(typed::<ImagesOptions>()),
        entry(
            "report::html",
            "report::html(runs_or_dir, path) -> int",
            "one self-contained HTML page (no network) of an array of runs or of a runs folder: a sortable, filterable table of runs (a failed run shows its error), mean ± std per setting and differences with their standard error, loss and probe curves, augmentation previews; returns the number of runs",
            &[],
        ),
    ]
}
