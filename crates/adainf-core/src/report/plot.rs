//! `report::plot`: a PNG line plot of `y` against `x`, one line per `group`, with the mean over
//! rows that share (group, x) (e.g. seeds) and error bars of ± one sample standard deviation.
//! Text is drawn with the DejaVu Sans Mono font compiled into the binary (`assets/`).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{Cell, Row, get};
use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../../../../assets/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

/// Makes the embedded font plotters' "sans-serif" (once per process).
pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// What to plot: the columns for x, y and the lines, and the axis and title options.
#[derive(Clone, Debug)]
pub struct PlotSpec {
    /// Column for the x axis; rows without a number there are skipped.
    pub x: String,
    /// Column for the y axis; rows without a number there are skipped.
    pub y: String,
    /// Column whose (rendered) value names each row's line; None = one line, named after `y`.
    pub group: Option<String>,
    /// Plot title; None = "<y> vs <x>".
    pub title: Option<String>,
    /// Log10 x axis (x values are clamped to at least 1e-12).
    pub log_x: bool,
}

/// (group name, [(x, mean, std, n)]) sorted by x.
pub type Series = Vec<(String, Vec<(f64, f64, f64, usize)>)>;

/// Groups rows into series; rows without a numeric x or y are skipped.
pub fn series(rows: &[Row], spec: &PlotSpec) -> Series {
    /// Per group: each x with the y values seen at it.
    type Collected = Vec<(String, Vec<(f64, Vec<f64>)>)>;
    let mut groups: Collected = Vec::new();
    for r in rows {
        let (Cell::Number(x), Cell::Number(y)) = (get(r, &spec.x), get(r, &spec.y)) else {
            continue;
        };
        let name = spec
            .group
            .as_ref()
            .map_or_else(|| spec.y.clone(), |g| get(r, g).render());
        let idx = match groups.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                groups.push((name, Vec::new()));
                groups.len() - 1
            }
        };
        let points = &mut groups[idx].1;
        match points.iter_mut().find(|(px, _)| px == x) {
            Some((_, ys)) => ys.push(*y),
            None => points.push((*x, vec![*y])),
        }
    }
    groups
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let stats = points
                .into_iter()
                .map(|(x, ys)| {
                    let n = ys.len();
                    let mean = ys.iter().sum::<f64>() / n as f64;
                    let var = if n > 1 {
                        ys.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
                    } else {
                        0.0
                    };
                    (x, mean, var.sqrt(), n)
                })
                .collect();
            (name, stats)
        })
        .collect()
}

/// Draws `series(rows, spec)` as an 800×520 PNG at `path` (creating its folder); an error
/// when no row has numbers in both the x and the y column.
pub fn plot(rows: &[Row], spec: &PlotSpec, path: &Path) -> Result<()> {
    let data = series(rows, spec);
    if data.iter().all(|(_, p)| p.is_empty()) {
        return Err(Error::Data(format!(
            "nothing to plot: no row has numbers in both `{}` and `{}`",
            spec.x, spec.y
        )));
    }
    check_finite(rows, spec)?;
    register_font();
    let (w, h) = (800u32, 520u32);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    let draw_error = |e: String| Error::file(path, format!("cannot draw the plot: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(e.to_string()))?;
        // A log axis needs positive values; clamping them would draw a range of nothing.
        if spec.log_x
            && let Some(x) = data
                .iter()
                .flat_map(|(_, p)| p.iter().map(|q| q.0))
                .find(|&x| x <= 0.0)
        {
            return Err(Error::Data(format!(
                "`log_x` needs positive values of `{}`, but one is {x}; plot without log_x or leave those rows out",
                spec.x
            )));
        }
        let xs = data.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
        let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        let ys = data
            .iter()
            .flat_map(|(_, p)| p.iter().flat_map(|q| [q.1 - q.2, q.1 + q.2]));
        let (mut y0, mut y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        // A single value gets a range around it, wide enough to be seen at its magnitude.
        if x0 == x1 {
            let d = x0.abs().max(1.0) * 0.5;
            (x0, x1) = (x0 - d, x1 + d);
        }
        if y0 == y1 {
            let d = y0.abs().max(1.0) * 0.25;
            (y0, y1) = (y0 - d, y1 + d);
        }
        let pad = 0.08 * (y1 - y0);
        let title = spec
            .title
            .clone()
            .unwrap_or_else(|| format!("{} vs {}", spec.y, spec.x));
        let to_x = |x: f64| if spec.log_x { x.max(1e-12).log10() } else { x };
        let (lx0, lx1) = (to_x(x0), to_x(x1));
        let xpad = 0.04 * (lx1 - lx0);
        // Finite values can still make a range no number holds (from −1e308 to 1e308, or
        // ± a standard deviation of 1e308): the axes could not be drawn.
        let (ylo, yhi, xlo, xhi) = (y0 - pad, y1 + pad, lx0 - xpad, lx1 + xpad);
        for (column, lo, hi) in [(&spec.y, ylo, yhi), (&spec.x, xlo, xhi)] {
            if !(lo.is_finite() && hi.is_finite() && (hi - lo).is_finite() && lo < hi) {
                return Err(Error::Data(format!(
                    "cannot plot `{column}`: its values (with error bars) span a range too large \
                     to draw (from {lo:e} to {hi:e}); rescale the column or leave out the rows \
                     with extreme values"
                )));
            }
        }
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)
            .map_err(|e| draw_error(e.to_string()))?;
        let x_desc = if spec.log_x {
            format!("{} (log10)", spec.x)
        } else {
            spec.x.clone()
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(spec.y.clone())
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| draw_error(e.to_string()))?;
        for (k, (name, points)) in data.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let line: Vec<(f64, f64)> = points.iter().map(|p| (to_x(p.0), p.1)).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(|e| draw_error(e.to_string()))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|p| {
                    ErrorBar::new_vertical(to_x(p.0), p.1 - p.2, p.1, p.1 + p.2, color.filled(), 8)
                }))
                .map_err(|e| draw_error(e.to_string()))?;
            chart
                .draw_series(line.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(|e| draw_error(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| draw_error(e.to_string()))?;
        root.present().map_err(|e| draw_error(e.to_string()))?;
    }
    crate::png::write_rgb(path, &rgb, w as usize, h as usize)
}

/// Refuses rows whose x or y is infinite or NaN, naming the column, the value and the row.
fn check_finite(rows: &[Row], spec: &PlotSpec) -> Result<()> {
    for (i, r) in rows.iter().enumerate() {
        let (Cell::Number(x), Cell::Number(y)) = (get(r, &spec.x), get(r, &spec.y)) else {
            continue;
        };
        for (column, v) in [(&spec.x, x), (&spec.y, y)] {
            if !v.is_finite() {
                return Err(Error::Data(format!(
                    "cannot plot `{column}` = {v} (row {}): only finite numbers can be drawn; \
                     leave that row out or replace the value",
                    i + 1
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(g: &str, x: f64, y: f64) -> Row {
        vec![
            ("g".into(), Cell::Text(g.into())),
            ("x".into(), Cell::Number(x)),
            ("y".into(), Cell::Number(y)),
        ]
    }

    #[test]
    fn series_average_over_seeds_and_the_png_is_written() {
        let rows = vec![
            row("a", 1.0, 0.5),
            row("a", 1.0, 0.7),
            row("a", 10.0, 0.9),
            row("b", 1.0, 0.2),
        ];
        let spec = PlotSpec {
            x: "x".into(),
            y: "y".into(),
            group: Some("g".into()),
            title: None,
            log_x: true,
        };
        let s = series(&rows, &spec);
        assert_eq!(s.len(), 2);
        let (x, mean, std, n) = s[0].1[0];
        assert_eq!((x, n), (1.0, 2));
        assert!((mean - 0.6).abs() < 1e-12 && (std - 0.1414).abs() < 1e-3);
        let path = std::env::temp_dir().join(format!("adainf-plot-{}.png", std::process::id()));
        plot(&rows, &spec, &path).unwrap();
        let info = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
            .read_info()
            .unwrap()
            .info()
            .clone();
        assert_eq!((info.width, info.height), (800, 520));
        std::fs::remove_file(path).unwrap();
        // A log axis over a value ≤ 0 names the column and the value.
        let e = plot(
            &[row("a", -1.0, 0.5), row("a", 2.0, 0.7)],
            &spec,
            &std::env::temp_dir().join("log-x.png"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`log_x`") && e.contains("`x`") && e.contains("-1"),
            "{e}"
        );
        let bad = PlotSpec {
            y: "nope".into(),
            ..spec
        };
        assert!(
            plot(&rows, &bad, &std::env::temp_dir().join("x.png"))
                .unwrap_err()
                .to_string()
                .contains("nothing to plot")
        );
    }

    #[test]
    fn extreme_values_end_in_an_error_or_a_plot_never_a_hang() {
        let spec = PlotSpec {
            x: "x".into(),
            y: "y".into(),
            group: None,
            title: None,
            log_x: false,
        };
        let path = std::env::temp_dir().join(format!("adainf-plot-x-{}.png", std::process::id()));
        let draw = |ys: &[f64]| {
            let rows: Vec<Row> = ys
                .iter()
                .enumerate()
                .map(|(i, y)| row("a", i as f64, *y))
                .collect();
            plot(&rows, &spec, &path).map_err(|e| e.to_string())
        };
        for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let e = draw(&[0.5, bad]).unwrap_err();
            assert!(
                e.contains("`y`") && e.contains("row 2") && e.contains("finite"),
                "{e}"
            );
        }
        let e = draw(&[1e308, -1e308]).unwrap_err();
        assert!(e.contains("too large to draw"), "{e}");
        // Two seeds at one x whose standard deviation overflows.
        let rows = vec![row("a", 1.0, 1e308), row("a", 1.0, -1e308)];
        let e = plot(&rows, &spec, &path).unwrap_err().to_string();
        assert!(e.contains("too large to draw"), "{e}");
        for fine in [
            &[1e300][..],
            &[1e-300, 2e-300],
            &[-1e307, 1e307],
            &[5e-324, 0.0],
        ] {
            draw(fine).unwrap_or_else(|e| panic!("{fine:?}: {e}"));
        }
        let _ = std::fs::remove_file(&path);
    }
}
