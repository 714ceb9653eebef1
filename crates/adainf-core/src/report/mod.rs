//! Result tables: rows are ordered maps of column → value; markdown tables (optionally grouped,
//! with mean ± std over the other rows of a group) and CSV files; `html` the self-contained report
//! page of a runs folder, `plot` line plots, `images` grids of a few images of datasets (a run's
//! TensorBoard event files are the training loop's: `train::events`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::train::FinishedRun;

pub mod html;
pub mod images;
pub mod plot;

/// A cell value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text, shown as is (quoted in CSV where needed).
    Text(String),
    /// A number (see `render`; CSV writes it at full precision).
    Number(f64),
    /// No value, e.g. a column the row lacks; renders as an empty string.
    Empty,
}

impl Cell {
    /// The cell as table text: whole numbers under 1e15 in magnitude without decimals, others
    /// with 4; text as is; `Empty` as "".
    pub fn render(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Number(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", *v as i64),
            Cell::Number(v) => format!("{v:.4}"),
            Cell::Empty => String::new(),
        }
    }
}

/// One row: column name → value, in insertion order.
pub type Row = Vec<(String, Cell)>;

pub(crate) fn get<'a>(row: &'a Row, key: &str) -> &'a Cell {
    row.iter()
        .find(|(k, _)| k == key)
        .map_or(&Cell::Empty, |(_, v)| v)
}

/// Columns: the given ones, or the union of all row keys in first-seen order.
pub fn columns_of(rows: &[Row], wanted: Option<&[String]>) -> Vec<String> {
    if let Some(w) = wanted {
        return w.to_vec();
    }
    let mut cols: Vec<String> = Vec::new();
    for row in rows {
        for (k, _) in row {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    cols
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Rows with equal values in the `by` columns, in first-seen order.
fn group_rows<'a>(rows: &'a [Row], by: &[String]) -> Vec<(Vec<String>, Vec<&'a Row>)> {
    let mut groups: Vec<(Vec<String>, Vec<&Row>)> = Vec::new();
    for r in rows {
        let key: Vec<String> = by.iter().map(|g| get(r, g).render()).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
}

/// The numbers in column `column` of `rows` (other cells skipped).
fn numbers(rows: &[&Row], column: &str) -> Vec<f64> {
    rows.iter()
        .filter_map(|r| match get(r, column) {
            Cell::Number(v) => Some(*v),
            _ => None,
        })
        .collect()
}

/// For each pair `(a, b)` of values of the `group` column: the difference of the means of
/// `value` (a − b), its standard error `sqrt(s_a²/n_a + s_b²/n_b)` (sample standard
/// deviations over each group's rows, e.g. seeds), and whether |difference| ≥ 2 standard
/// errors. A group with one row counts as exact (a deterministic baseline such as kNN on raw
/// pixels); two one-row groups have no standard error.
pub fn compare(
    rows: &[Row],
    group: &str,
    value: &str,
    pairs: &[(String, String)],
) -> Result<Vec<Row>> {
    let groups = group_rows(rows, &[group.to_string()]);
    let stats = |name: &str| -> Result<(f64, f64, usize)> {
        let members = groups
            .iter()
            .find(|(k, _)| k[0] == name)
            .map(|(_, m)| m.as_slice())
            .ok_or_else(|| {
                Error::Data(format!(
                    "no row has {group} = \"{name}\"; the groups are {}",
                    groups
                        .iter()
                        .map(|(k, _)| format!("\"{}\"", k[0]))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let nums = numbers(members, value);
        if nums.is_empty() {
            return Err(Error::Data(format!(
                "the rows with {group} = \"{name}\" have no number in column `{value}`"
            )));
        }
        let (m, s) = mean_std(&nums);
        Ok((m, s, nums.len()))
    };
    pairs
        .iter()
        .map(|(a, b)| {
            let (ma, sa, na) = stats(a)?;
            let (mb, sb, nb) = stats(b)?;
            let diff = ma - mb;
            let mut row: Row = vec![
                ("comparison".into(), Cell::Text(format!("{a} − {b}"))),
                ("difference".into(), Cell::Number(diff)),
                ("n".into(), Cell::Text(format!("{na}, {nb}"))),
            ];
            if na > 1 || nb > 1 {
                let se = (sa * sa / na as f64 + sb * sb / nb as f64).sqrt();
                let beyond = diff.abs() >= 2.0 * se;
                row.push(("std_error".into(), Cell::Number(se)));
                row.push((
                    "beyond_2_se".into(),
                    Cell::Text(if beyond { "yes" } else { "no" }.into()),
                ));
            } else {
                row.push(("std_error".into(), Cell::Empty));
                row.push(("beyond_2_se".into(), Cell::Text("n/a (one row)".into())));
            }
            Ok(row)
        })
        .collect()
}

/// A markdown table. With `group_by`, rows with equal values in those columns are merged:
/// numeric columns show `mean ± std (n)` (sample std), text columns their common value.
pub fn markdown(rows: &[Row], columns: &[String], group_by: &[String]) -> String {
    let body = table_cells(rows, columns, group_by);
    markdown_of(columns, &body)
}

/// The cells of `markdown`'s table (one line per row, or per group with `group_by`), as text.
pub fn table_cells(rows: &[Row], columns: &[String], group_by: &[String]) -> Vec<Vec<String>> {
    if group_by.is_empty() {
        rows.iter()
            .map(|r| columns.iter().map(|c| get(r, c).render()).collect())
            .collect()
    } else {
        group_rows(rows, group_by)
            .iter()
            .map(|(_, members)| {
                columns
                    .iter()
                    .map(|c| {
                        let nums = numbers(members, c);
                        if group_by.contains(c) || nums.len() != members.len() || nums.is_empty() {
                            get(members[0], c).render()
                        } else if members.len() == 1 || nums.iter().all(|v| *v == nums[0]) {
                            Cell::Number(nums[0]).render()
                        } else {
                            let (m, s) = mean_std(&nums);
                            format!("{m:.4} ± {s:.4} (n={})", nums.len())
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

fn markdown_of(columns: &[String], body: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count().max(3)).collect();
    for row in body {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = line(columns);
    out.push('\n');
    out.push_str(&format!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    ));
    for row in body {
        out.push('\n');
        out.push_str(&line(row));
    }
    out.push('\n');
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV with a header row; one line per row.
pub fn csv(rows: &[Row], columns: &[String]) -> String {
    let mut out = columns
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = columns
            .iter()
            .map(|c| match get(r, c) {
                Cell::Number(v) => format!("{v}"),
                other => csv_field(&other.render()),
            })
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Writes `csv(rows, columns)` to `path`, creating its parent folders.
pub fn save_csv(rows: &[Row], columns: &[String], path: &Path) -> Result<()> {
    crate::files::create_parent(path)?;
    crate::files::write_atomic(path, csv(rows, columns).as_bytes())
}

/// Number of distinct values per column (used to drop constant columns in summaries).
pub fn distinct_counts(rows: &[Row], columns: &[String]) -> BTreeMap<String, usize> {
    columns
        .iter()
        .map(|c| {
            let mut seen: Vec<String> = rows.iter().map(|r| get(r, c).render()).collect();
            seen.sort();
            seen.dedup();
            (c.clone(), seen.len())
        })
        .collect()
}

/// The share of generated images among all the images a run trained on, from its metric
/// rows (each row covers the steps since the previous one); None for rows of older runs.
pub fn realized_generated_fraction(run: &FinishedRun) -> Option<f64> {
    let (mut weighted, mut steps, mut previous) = (0.0, 0usize, 0usize);
    for m in &run.metrics {
        let span = m.step.saturating_sub(previous);
        weighted += m.generated_fraction? * span as f64;
        steps += span;
        previous = m.step;
    }
    (steps > 0).then(|| weighted / steps as f64)
}

/// The standard columns of a run: its config, data recipe and results.
pub fn run_row(run: &FinishedRun) -> Row {
    let c = &run.spec.config;
    let mut row: Row = vec![
        ("id".into(), Cell::Text(run.result.id.clone())),
        ("method".into(), Cell::Text(c.method().name().into())),
        ("backbone".into(), Cell::Text(c.backbone.name().into())),
        ("width".into(), Cell::Number(c.width as f64)),
        ("aug".into(), Cell::Text(run.spec.aug.name.clone())),
        ("data".into(), Cell::Text(run.spec.data.description.clone())),
        ("n_train".into(), Cell::Number(run.spec.data.len as f64)),
    ];
    for (k, v) in &run.spec.data.attributes {
        row.push((
            k.clone(),
            v.parse::<f64>().map_or(Cell::Text(v.clone()), Cell::Number),
        ));
    }
    row.extend([
        ("steps".into(), Cell::Number(c.steps as f64)),
        ("batch".into(), Cell::Number(c.batch as f64)),
        ("lr".into(), Cell::Number(c.lr)),
        ("seed".into(), Cell::Number(c.seed as f64)),
        (
            "accuracy".into(),
            run.result.accuracy.map_or(Cell::Empty, Cell::Number),
        ),
        ("final_loss".into(), Cell::Number(run.result.final_loss)),
        ("images_per_s".into(), Cell::Number(run.result.images_per_s)),
        ("data_wait".into(), Cell::Number(run.result.data_wait)),
        (
            "train_seconds".into(),
            Cell::Number(run.result.train_seconds),
        ),
        ("precision".into(), Cell::Text(c.precision.name().into())),
        (
            "schedule".into(),
            match c.schedule.summary() {
                keys if keys.is_empty() => Cell::Empty,
                keys => Cell::Text(keys),
            },
        ),
        (
            "generated_fraction".into(),
            realized_generated_fraction(run).map_or(Cell::Empty, Cell::Number),
        ),
        (
            "placement".into(),
            run.result
                .placement
                .map_or(Cell::Empty, |p| Cell::Text(p.name().into())),
        ),
    ]);
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(setting: &str, seed: f64, acc: f64) -> Row {
        vec![
            ("setting".into(), Cell::Text(setting.into())),
            ("seed".into(), Cell::Number(seed)),
            ("acc".into(), Cell::Number(acc)),
        ]
    }

    #[test]
    fn compare_gives_the_difference_of_means_and_its_standard_error() {
        let rows = vec![
            row("none", 0.0, 0.50),
            row("none", 1.0, 0.70),
            row("none", 2.0, 0.60),
            row("adainf", 0.0, 0.90),
            row("adainf", 1.0, 0.80),
            row("adainf", 2.0, 1.00),
            row("one", 0.0, 0.2),
        ];
        let pairs = [
            ("adainf".to_string(), "none".to_string()),
            ("none".to_string(), "one".to_string()),
        ];
        let out = compare(&rows, "setting", "acc", &pairs).unwrap();
        // Means 0.9 and 0.6; sample variances 0.01 each: SE = sqrt(0.01/3 + 0.01/3).
        let se = (0.02f64 / 3.0).sqrt();
        match (get(&out[0], "difference"), get(&out[0], "std_error")) {
            (Cell::Number(d), Cell::Number(s)) => {
                assert!((d - 0.3).abs() < 1e-12 && (s - se).abs() < 1e-12, "{d} {s}")
            }
            other => panic!("{other:?}"),
        }
        // 0.3 / 0.0816 = 3.7 standard errors.
        assert_eq!(get(&out[0], "beyond_2_se"), &Cell::Text("yes".into()));
        // A group of one counts as exact: SE = s_none / sqrt(3).
        match get(&out[1], "std_error") {
            Cell::Number(s) => assert!((s - (0.01f64 / 3.0).sqrt()).abs() < 1e-12, "{s}"),
            other => panic!("{other:?}"),
        }
        let single = vec![row("a", 0.0, 0.5), row("b", 0.0, 0.4)];
        let out = compare(&single, "setting", "acc", &[("a".into(), "b".into())]).unwrap();
        assert_eq!(get(&out[0], "std_error"), &Cell::Empty);
        let tight = vec![
            row("a", 0.0, 0.5),
            row("a", 1.0, 0.7),
            row("b", 0.0, 0.55),
            row("b", 1.0, 0.75),
        ];
        let out = compare(&tight, "setting", "acc", &[("a".into(), "b".into())]).unwrap();
        assert_eq!(get(&out[0], "beyond_2_se"), &Cell::Text("no".into()));
        let e = compare(
            &rows,
            "setting",
            "acc",
            &[("vanilla".into(), "none".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("vanilla") && e.contains("\"adainf\""), "{e}");
    }

    #[test]
    fn markdown_plain_and_grouped() {
        let rows = vec![
            row("none", 0.0, 0.5),
            row("none", 1.0, 0.7),
            row("adainf", 0.0, 0.9),
        ];
        let cols = columns_of(&rows, None);
        let plain = markdown(&rows, &cols, &[]);
        assert_eq!(plain.lines().count(), 5);
        assert!(
            plain
                .lines()
                .next()
                .unwrap()
                .starts_with("| setting | seed | acc")
        );
        let grouped = markdown(
            &rows,
            &["setting".into(), "acc".into()],
            &["setting".into()],
        );
        assert!(grouped.contains("0.6000 ± 0.1414 (n=2)"), "{grouped}");
        assert!(grouped.contains("| adainf  | 0.9000"), "{grouped}");
        // A column that is constant within a group shows its value, not "x ± 0".
        let constant: Vec<Row> = rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.push(("n".into(), Cell::Number(5.0)));
                r
            })
            .collect();
        let grouped = markdown(
            &constant,
            &["setting".into(), "n".into()],
            &["setting".into()],
        );
        assert!(grouped.contains("| none    | 5 "), "{grouped}");
    }

    #[test]
    fn csv_quotes_and_keeps_numbers() {
        let rows = vec![vec![
            ("a".into(), Cell::Text("x,y".into())),
            ("b".into(), Cell::Number(0.25)),
        ]];
        assert_eq!(
            csv(&rows, &["a".into(), "b".into(), "c".into()]),
            "a,b,c\n\"x,y\",0.25,\n"
        );
    }
}
