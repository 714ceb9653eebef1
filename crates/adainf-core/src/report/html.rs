//! `report::html`: one self-contained HTML page of a runs folder (or of the runs a script
//! produced): a sortable, filterable table of runs with their state (a failed run shows its
//! error), the sweep tables (mean ± std per setting and differences with their standard error,
//! computed by `report::table_cells` and `report::compare`), loss and probe curves as inline
//! SVG per run and overlaid per setting, and the augmentation previews as data URIs. No
//! network: CSS and JS are inlined (`html/report.css`, `html/report.js`), the runs travel as
//! one JSON block, and curves are cut to at most `CURVE_POINTS` points each, so a 500-run
//! folder stays a few MB and renders at once.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{Cell, Row, columns_of, compare, table_cells};
use crate::error::Result;
use crate::runs::listing;
use crate::train::run::{RunSpec, read_metrics, write_atomic};

/// Points kept of each curve (evenly spaced by index, the first and last always).
pub const CURVE_POINTS: usize = 80;
/// Distinct augmentation previews embedded at most (each is a PNG of some 10–100 kB).
pub const MAX_PREVIEWS: usize = 24;

const CSS: &str = include_str!("html/report.css");
const JS: &str = include_str!("html/report.js");

/// One run as the page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    /// The run id.
    pub id: String,
    /// `done`, `damaged`, `running`, `claimed`, `failed`, `partial` or `requested`
    /// (`RunState::name`).
    pub state: String,
    /// The run's setting: its `setting` tag, else its other tags but the seed, else method
    /// and augmentation.
    pub setting: String,
    /// Training method.
    pub method: String,
    /// Augmentation preset.
    pub aug: String,
    /// The script's tags as `key=value` text.
    pub tags: String,
    /// Training set: description, size and recipe attributes.
    pub data: String,
    /// Steps done (last logged).
    pub step: usize,
    /// Steps asked for.
    pub steps: usize,
    /// Final online-probe accuracy.
    pub probe: Option<f64>,
    /// kNN accuracy of the trained encoder (the latest `eval::knn` of the run).
    pub knn: Option<f64>,
    /// Wall time of training in seconds (after a resume, the resumed part).
    pub seconds: Option<f64>,
    /// The last logged loss.
    pub loss: Option<f64>,
    /// The recorded failure.
    pub error: Option<String>,
    /// (step, loss) points, at most `CURVE_POINTS`.
    pub loss_curve: Vec<[f64; 2]>,
    /// (step, probe accuracy) points, at most `CURVE_POINTS`.
    pub probe_curve: Vec<[f64; 2]>,
    /// Index of the run's preview in the page's previews.
    pub preview: Option<usize>,
    /// The seed of the config.
    pub seed: u64,
    #[serde(skip)]
    preview_png: Option<Vec<u8>>,
}

/// Every `CURVE_POINTS`-th point or so: at most `CURVE_POINTS`, the first and last kept.
fn thin(points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    let n = points.len();
    if n <= CURVE_POINTS {
        return points;
    }
    (0..CURVE_POINTS)
        .map(|i| points[i * (n - 1) / (CURVE_POINTS - 1)])
        .collect()
}

/// The latest kNN result of the trained encoder in the run's eval cache (`evals/*.json`).
fn latest_knn(dir: &Path) -> Option<f64> {
    let mut found: Vec<(std::time::SystemTime, f64)> = std::fs::read_dir(dir.join("evals"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: Value = listing::read_json(&e.path())?;
            (v.get("kind")?.as_str()? == "knn").then_some(())?;
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, v.get("value")?.as_f64()?))
        })
        .collect();
    found.sort_by_key(|f| f.0);
    found.last().map(|f| f.1)
}

fn tag_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The view of one run folder (None when it is not one), with `tags` standing in for the
/// folder's own when given (a script's runs).
pub fn run_view(dir: &Path, tags: Option<&serde_json::Map<String, Value>>) -> Option<RunView> {
    view_of(listing::entry(dir)?, dir, tags)
}

/// The view of a pretraining run's entry (None for the other kinds of run folder: the page
/// shows pretraining runs).
fn view_of(
    entry: listing::RunEntry,
    dir: &Path,
    tags: Option<&serde_json::Map<String, Value>>,
) -> Option<RunView> {
    let pretrain = entry.pretrain.clone()?;
    let tags = tags.cloned().unwrap_or(entry.tags.clone());
    let spec: Option<RunSpec> = listing::read_json(&dir.join("config.json"));
    let metrics = read_metrics(&dir.join("metrics.jsonl")).unwrap_or_default();
    let aug = spec.as_ref().map_or(String::new(), |s| s.aug.name.clone());
    let setting = match tags.get("setting") {
        Some(v) => tag_text(v),
        None => {
            let others: Vec<String> = tags
                .iter()
                .filter(|(k, _)| k.as_str() != "seed")
                .map(|(k, v)| format!("{k}={}", tag_text(v)))
                .collect();
            if others.is_empty() {
                format!("{} · {aug}", pretrain.method)
            } else {
                others.join(" ")
            }
        }
    };
    let data = match &spec {
        Some(s) => {
            let mut text = format!("{} (n={})", s.data.description, s.data.len);
            for (k, v) in &s.data.attributes {
                text.push_str(&format!(" {k}={v}"));
            }
            text
        }
        None => entry.data.clone(),
    };
    let state = entry.state.name();
    Some(RunView {
        id: entry.id.clone(),
        state: state.into(),
        setting,
        method: pretrain.method,
        aug,
        tags: tags
            .iter()
            .map(|(k, v)| format!("{k}={}", tag_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        data,
        step: entry.step,
        steps: entry.steps,
        probe: entry.accuracy,
        knn: latest_knn(dir),
        // The result of a finished run only, as the listing read it (it checked its seal).
        seconds: entry.result.as_ref().map(|r| r.train_seconds),
        loss: entry.loss,
        error: entry.error.clone(),
        loss_curve: thin(
            metrics
                .iter()
                .map(|m| [m.step as f64, m.loss])
                .filter(|p| p[1].is_finite())
                .collect(),
        ),
        probe_curve: thin(
            metrics
                .iter()
                .filter_map(|m| m.probe_acc.map(|a| [m.step as f64, a]))
                .collect(),
        ),
        preview: None,
        seed: pretrain.seed,
        preview_png: std::fs::read(dir.join(crate::train::events::PREVIEW_FILE)).ok(),
    })
}

/// The views of every pretraining run folder of `runs_dir`, sorted by id.
pub fn runs_in(runs_dir: &Path) -> Result<Vec<RunView>> {
    Ok(listing::list(runs_dir)?
        .into_iter()
        .filter_map(|e| {
            let dir = runs_dir.join(&e.id);
            view_of(e, &dir, None)
        })
        .collect())
}

/// The views of the given run folders (with the script's tags), in order.
pub fn runs_at(dirs: &[(PathBuf, serde_json::Map<String, Value>)]) -> Vec<RunView> {
    dirs.iter()
        .filter_map(|(dir, tags)| run_view(dir, Some(tags)))
        .collect()
}

/// What the page shows besides the runs.
#[derive(Clone, Debug, Default)]
pub struct PageOptions {
    /// The page's title.
    pub title: String,
    /// Where the runs come from (shown under the title).
    pub source: String,
    /// While set, the page reloads itself every few seconds and shows this line (`adainf
    /// watch --report`).
    pub live: Option<String>,
}

/// A sweep table: columns and rows of text cells.
#[derive(Serialize)]
struct Table {
    title: String,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The report rows of the finished runs (setting, seed, probe, kNN, final loss, wall time).
fn result_rows(runs: &[RunView]) -> Vec<Row> {
    let num = |v: Option<f64>| v.map_or(Cell::Empty, Cell::Number);
    runs.iter()
        .filter(|r| r.state == "done")
        .map(|r| {
            vec![
                ("setting".into(), Cell::Text(r.setting.clone())),
                ("seed".into(), Cell::Number(r.seed as f64)),
                ("probe".into(), num(r.probe)),
                ("knn".into(), num(r.knn)),
                ("final_loss".into(), num(r.loss)),
                ("seconds".into(), num(r.seconds)),
            ]
        })
        .collect()
}

/// Mean ± std per setting, and each setting's difference to the first one (with its standard
/// error) for kNN and the probe, as `report::table` and `report::compare` compute them.
fn sweep_tables(runs: &[RunView]) -> Vec<Table> {
    let rows = result_rows(runs);
    if rows.is_empty() {
        return Vec::new();
    }
    let columns: Vec<String> = ["setting", "probe", "knn", "final_loss", "seconds"]
        .map(String::from)
        .to_vec();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in &rows {
        let s = super::get(r, "setting").render();
        match counts.iter_mut().find(|(k, _)| *k == s) {
            Some(c) => c.1 += 1,
            None => counts.push((s, 1)),
        }
    }
    let mut body = table_cells(&rows, &columns, &["setting".to_string()]);
    for line in &mut body {
        let n = counts
            .iter()
            .find(|(k, _)| *k == line[0])
            .map_or(0, |c| c.1);
        line.insert(1, n.to_string());
    }
    let mut grouped_columns = columns.clone();
    grouped_columns.insert(1, "runs".into());
    let mut tables = vec![Table {
        title: "Per setting: mean ± sample std (n) over its finished runs".into(),
        columns: grouped_columns,
        rows: body,
    }];
    if counts.len() > 1 {
        let first = counts[0].0.clone();
        for (value, label) in [("knn", "kNN"), ("probe", "online probe")] {
            let pairs: Vec<(String, String)> = counts[1..]
                .iter()
                .map(|(s, _)| (s.clone(), first.clone()))
                .collect();
            // A pair whose groups lack the value (e.g. no kNN computed) is left out.
            let out: Vec<Row> = pairs
                .iter()
                .filter_map(|p| {
                    compare(&rows, "setting", value, std::slice::from_ref(p))
                        .ok()
                        .and_then(|mut r| r.pop())
                })
                .collect();
            if out.is_empty() {
                continue;
            }
            let columns = columns_of(&out, None);
            tables.push(Table {
                title: format!(
                    "Differences of mean {label} to \"{first}\" with their standard error"
                ),
                rows: table_cells(&out, &columns, &[]),
                columns,
            });
        }
    }
    tables
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A preview shown on the page: its data URI and the settings whose runs have it.
#[derive(Serialize)]
struct PreviewView {
    uri: String,
    settings: Vec<String>,
}

/// Distinct previews (at most `MAX_PREVIEWS`), each run pointing at its own.
fn previews(runs: &mut [RunView]) -> (Vec<PreviewView>, usize) {
    let mut seen: Vec<(Vec<u8>, PreviewView)> = Vec::new();
    let mut left_out = 0;
    for r in runs.iter_mut() {
        let Some(png) = r.preview_png.take() else {
            continue;
        };
        let index = match seen.iter().position(|(p, _)| *p == png) {
            Some(i) => Some(i),
            None if seen.len() < MAX_PREVIEWS => {
                let uri = format!("data:image/png;base64,{}", base64(&png));
                seen.push((
                    png,
                    PreviewView {
                        uri,
                        settings: Vec::new(),
                    },
                ));
                Some(seen.len() - 1)
            }
            None => {
                left_out += 1;
                None
            }
        };
        if let Some(i) = index {
            let settings = &mut seen[i].1.settings;
            if !settings.contains(&r.setting) {
                settings.push(r.setting.clone());
            }
        }
        r.preview = index;
    }
    (seen.into_iter().map(|(_, v)| v).collect(), left_out)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `runs`.
pub fn page(mut runs: Vec<RunView>, opts: &PageOptions) -> String {
    let tables = sweep_tables(&runs);
    let (previews, previews_left_out) = previews(&mut runs);
    let generated = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let data = serde_json::json!({
        "title": opts.title,
        "source": opts.source,
        "generated": generated,
        "live": opts.live,
        "runs": runs,
        "tables": tables,
        "previews": previews,
        "previews_left_out": previews_left_out,
    });
    // `</` would end the script element early; JSON allows the escaped slash.
    let json = data.to_string().replace("</", "<\\/");
    let refresh = if opts.live.is_some() {
        "<meta http-equiv=\"refresh\" content=\"5\">\n"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{refresh}<title>{title}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<header><h1>{title}</h1><p id=\"source\"></p><p id=\"live\"></p><p id=\"counts\"></p></header>\n<main>\n<section id=\"runs-section\"><h2>Runs</h2><input id=\"filter\" type=\"search\" placeholder=\"filter: any text of a row (e.g. failed, adainf, seed=1)\"><table id=\"runs\"><thead></thead><tbody></tbody></table></section>\n<section id=\"sweep\"><h2>Sweep</h2></section>\n<section id=\"curves\"><h2>Curves per setting</h2></section>\n<section id=\"previews\"><h2>Augmentation previews</h2></section>\n</main>\n<script id=\"adainf-data\" type=\"application/json\">{json}</script>\n<script>\n{JS}</script>\n</body>\n</html>\n",
        title = escape(&opts.title),
    )
}

/// Writes the page of `runs` to `path` (atomically, creating its folder); returns its size.
pub fn write(runs: Vec<RunView>, opts: &PageOptions, path: &Path) -> Result<usize> {
    crate::files::create_parent(path)?;
    let text = page(runs, opts);
    write_atomic(path, text.as_bytes())?;
    Ok(text.len())
}

/// Writes the page of every run of `runs_dir` to `path`; returns the number of runs.
pub fn write_dir(runs_dir: &Path, path: &Path, live: Option<String>) -> Result<usize> {
    let runs = runs_in(runs_dir)?;
    let n = runs.len();
    let opts = PageOptions {
        title: format!("adainf runs: {}", runs_dir.display()),
        source: format!("{} run folder(s) in {}", n, runs_dir.display()),
        live,
    };
    write(runs, &opts, path)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn curves_are_thinned_to_their_budget_keeping_both_ends() {
        let points: Vec<[f64; 2]> = (0..1000).map(|i| [i as f64, i as f64]).collect();
        let t = thin(points);
        assert_eq!(t.len(), CURVE_POINTS);
        assert_eq!((t[0][0], t[CURVE_POINTS - 1][0]), (0.0, 999.0));
        assert!(t.windows(2).all(|w| w[0][0] < w[1][0]));
    }

    /// A finished run's view reads its `result.json` once (the listing's read; the view read
    /// it a second time) and shows its time from it.
    #[test]
    fn a_view_reads_the_result_once() {
        use crate::augment::preset;
        use crate::data::{Dataset, tiny_store};
        use crate::train::run::{MetricRow, RunResult, write_json};
        let dir = std::env::temp_dir().join(format!("adainf-html-once-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = Dataset::from_store(tiny_store(4, 2, 0));
        let spec = RunSpec::new(Default::default(), &d, preset("symmetric").unwrap(), None);
        write_json(&dir.join("config.json"), &spec).unwrap();
        let row = MetricRow {
            step: 1,
            loss: 2.0,
            lr: 0.1,
            probe_acc: None,
            images_per_s: 3.0,
            data_wait: 0.0,
            generated_fraction: None,
            strength: None,
        };
        std::fs::write(
            dir.join("metrics.jsonl"),
            serde_json::to_string(&row).unwrap() + "\n",
        )
        .unwrap();
        let result = RunResult {
            id: spec.id(),
            accuracy: Some(0.5),
            final_loss: 2.0,
            steps: 1,
            train_seconds: 7.5,
            images_per_s: 3.0,
            data_wait: 0.0,
            placement: None,
        };
        write_json(&dir.join("result.json"), &result).unwrap();
        crate::train::seal::write(&dir, &crate::train::seal::RECORDS).unwrap();
        listing::READS.with(|r| r.borrow_mut().clear());
        let view = run_view(&dir, None).unwrap();
        let reads = listing::READS.with(|r| {
            r.borrow()
                .iter()
                .filter(|p| p.ends_with("result.json"))
                .count()
        });
        assert_eq!((view.state.as_str(), view.seconds), ("done", Some(7.5)));
        assert_eq!(reads, 1, "result.json read {reads} times");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_data_block_cannot_close_its_script_element() {
        let text = page(
            Vec::new(),
            &PageOptions {
                title: "</script><b>".into(),
                source: "</script>".into(),
                live: None,
            },
        );
        assert_eq!(text.matches("</script>").count(), 2, "{text}");
        assert!(text.contains("<title>&lt;/script&gt;&lt;b&gt;</title>"));
    }
}
