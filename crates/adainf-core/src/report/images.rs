//! `report::images`: a PNG grid of a few images of each of several datasets, one row per set
//! (e.g. a generator's samples above real images), each row optionally labelled on its left;
//! the tiling, shared with `aug::preview`, is `png::tile_rgb`.

use std::path::Path;

use plotters::prelude::*;

use crate::data::Dataset;
use crate::data::loader::gather;
use crate::error::{Error, Result};
use crate::png::{GUTTER, spread, tile_rgb, zoom};

/// Height of a row label's text, in pixels.
const LABEL_PX: usize = 14;

/// What `write_images` draws.
#[derive(Clone, Debug)]
pub struct ImagesSpec {
    /// Images per row, spread evenly over each set (fewer when a set is smaller).
    pub n: usize,
    /// One label per set, drawn left of its row; empty = no labels.
    pub labels: Vec<String>,
}

/// The grid of `write_images` as RGB bytes with its width and height.
pub fn images_rgb(sets: &[Dataset], spec: &ImagesSpec) -> Result<(Vec<u8>, usize, usize)> {
    let Some(first) = sets.first() else {
        return Err(Error::Data(
            "report::images needs at least one dataset, e.g. [samples, real]".into(),
        ));
    };
    if spec.n == 0 {
        return Err(Error::config("n", "n is 0: show at least 1 image per row"));
    }
    if !spec.labels.is_empty() && spec.labels.len() != sets.len() {
        return Err(Error::config(
            "labels",
            format!(
                "{} labels for {} datasets: give one label per dataset, in the same order",
                spec.labels.len(),
                sets.len()
            ),
        ));
    }
    let [h, w, c] = first.shape();
    let mut rows = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        if set.is_empty() {
            return Err(Error::Data(format!(
                "report::images: dataset {i} ({}) has no images",
                set.description()
            )));
        }
        if set.shape() != [h, w, c] {
            let [h2, w2, c2] = set.shape();
            return Err(Error::Data(format!(
                "report::images: dataset {i} ({}) has {h2}×{w2}×{c2} images, dataset 0 ({}) {h}×{w}×{c}: one grid needs one image size",
                set.description(),
                first.description()
            )));
        }
        if c != 3 {
            return Err(Error::Data(format!(
                "report::images: {} has {c} channels; the grid shows RGB images",
                set.description()
            )));
        }
        let batch = gather(set, &spread(set.len(), spec.n));
        rows.push(
            batch
                .pixels
                .chunks_exact(h * w * 3)
                .map(<[u8]>::to_vec)
                .collect(),
        );
    }
    let chars = spec.labels.iter().map(|l| l.chars().count()).max();
    // DejaVu Sans Mono advances about 0.6 of its height per character.
    let left = chars.map_or(0, |n| GUTTER + 4 + (n * LABEL_PX * 6).div_ceil(10) + 4);
    let (mut rgb, img_w, img_h) = tile_rgb(&rows, h, w, left);
    if !spec.labels.is_empty() {
        draw_labels(&mut rgb, img_w, img_h, &spec.labels, h * zoom(h) + GUTTER)?;
    }
    Ok((rgb, img_w, img_h))
}

/// Each label in the left margin, centred on its row.
fn draw_labels(
    rgb: &mut [u8],
    img_w: usize,
    img_h: usize,
    labels: &[String],
    cell_h: usize,
) -> Result<()> {
    super::plot::register_font();
    let fail = |e: String| Error::Data(format!("cannot draw the image grid's labels: {e}"));
    let root = BitMapBackend::with_buffer(rgb, (img_w as u32, img_h as u32)).into_drawing_area();
    let style = ("sans-serif", LABEL_PX as u32).into_font().color(&BLACK);
    for (r, label) in labels.iter().enumerate() {
        let y = GUTTER + r * cell_h + (cell_h - GUTTER).saturating_sub(LABEL_PX) / 2;
        root.draw(&Text::new(
            label.clone(),
            (GUTTER as i32 + 4, y as i32),
            &style,
        ))
        .map_err(|e| fail(e.to_string()))?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

/// Writes the grid of `sets` (`ImagesSpec`) as a PNG at `path`, atomically; an existing file
/// there is replaced, anything else (a folder, a link) is refused before any work.
pub fn write_images(sets: &[Dataset], spec: &ImagesSpec, path: &Path) -> Result<()> {
    crate::files::check_replaceable(path)?;
    let (rgb, w, h) = images_rgb(sets, spec)?;
    crate::png::write_rgb(path, &rgb, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{SyntheticSpec, synthetic};

    fn set(n: usize, seed: u64, size: usize) -> Dataset {
        synthetic(&SyntheticSpec {
            n,
            seed,
            size,
            split: "train".into(),
        })
        .unwrap()
    }

    fn spec(n: usize, labels: &[&str]) -> ImagesSpec {
        ImagesSpec {
            n,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Every pixel of every cell is the pixel of the image it should show, read straight from
    /// the dataset: row r is set r, column k its image k·len/n, enlarged ×3 (16-pixel images),
    /// and the gutters stay white.
    #[test]
    fn each_row_shows_its_set_spread_evenly() {
        let sets = [set(10, 1, 16), set(7, 2, 16)];
        let (rgb, w, h) = images_rgb(&sets, &spec(4, &[])).unwrap();
        let cell = 16 * 3 + 2;
        assert_eq!((w, h), (4 * cell + 2, 2 * cell + 2));
        for (r, s) in sets.iter().enumerate() {
            for (k, i) in [0, 10 / 4, 2 * 10 / 4, 3 * 10 / 4].into_iter().enumerate() {
                let i = if r == 1 { k * 7 / 4 } else { i };
                let item = s.item(i);
                for y in 0..48 {
                    for x in 0..48 {
                        let src = &item.pixels[((y / 3) * 16 + x / 3) * 3..][..3];
                        let (oy, ox) = (2 + r * cell + y, 2 + k * cell + x);
                        assert_eq!(&rgb[(oy * w + ox) * 3..][..3], src, "row {r} image {k}");
                    }
                }
            }
        }
        // The gutter column between the first two cells, all rows.
        for y in 0..h {
            for x in [0, 1, cell, cell + 1] {
                assert_eq!(&rgb[(y * w + x) * 3..][..3], &[255, 255, 255]);
            }
        }
    }

    /// A set smaller than `n` shows all its images; the grid is as wide as the longest row.
    #[test]
    fn a_small_set_gives_a_short_row() {
        let (rgb, w, h) = images_rgb(&[set(2, 1, 8), set(5, 2, 8)], &spec(5, &[])).unwrap();
        let cell = 8 * 3 + 2;
        assert_eq!((w, h), (5 * cell + 2, 2 * cell + 2));
        // Row 0 has 2 images: its third cell is white.
        let (oy, ox) = (2 + 5, 2 + 2 * cell + 5);
        assert_eq!(&rgb[(oy * w + ox) * 3..][..3], &[255, 255, 255]);
    }

    /// Labels widen the grid by a margin and are drawn in it (dark pixels beside each row);
    /// without labels nothing is drawn there. The images move right by the margin.
    #[test]
    fn labels_are_drawn_in_a_left_margin() {
        let sets = [set(4, 1, 16), set(4, 2, 16)];
        let (plain, w0, _) = images_rgb(&sets, &spec(4, &[])).unwrap();
        let (rgb, w, h) = images_rgb(&sets, &spec(4, &["real", "1600 steps"])).unwrap();
        let left = w - w0;
        assert!(left >= 10 * 8, "margin {left} too narrow for 10 characters");
        let cell = 16 * 3 + 2;
        for r in 0..2 {
            let dark = (2 + r * cell..2 + (r + 1) * cell - 2)
                .flat_map(|y| (0..left).map(move |x| (y, x)))
                .filter(|&(y, x)| rgb[(y * w + x) * 3] < 128)
                .count();
            assert!(dark > 20, "row {r}: {dark} dark pixels in its label area");
        }
        for y in 0..h {
            let a = &rgb[(y * w + left) * 3..(y * w + w) * 3];
            let b = &plain[(y * w0) * 3..(y * w0 + w0) * 3];
            assert_eq!(
                a, b,
                "image area of line {y} differs from the unlabelled grid"
            );
        }
    }

    #[test]
    fn mistakes_are_refused_with_the_option_named() {
        let a = set(4, 1, 16);
        let err = |sets: &[Dataset], s: ImagesSpec| images_rgb(sets, &s).unwrap_err().to_string();
        assert!(err(&[], spec(4, &[])).contains("at least one dataset"));
        assert!(err(std::slice::from_ref(&a), spec(0, &[])).contains("`n`"));
        let e = err(std::slice::from_ref(&a), spec(4, &["x", "y"]));
        assert!(
            e.contains("`labels`") && e.contains("2 labels for 1 datasets"),
            "{e}"
        );
        let e = err(&[a.clone(), set(4, 1, 8)], spec(4, &[]));
        assert!(e.contains("dataset 1") && e.contains("8×8×3"), "{e}");
    }

    /// The PNG decodes to the grid; a folder at the path is refused and left as it was.
    #[test]
    fn writes_a_png_and_refuses_a_folder() {
        let dir = std::env::temp_dir().join(format!("adainf-images-{}", std::process::id()));
        let path = dir.join("sub/grid.png");
        let sets = [set(3, 1, 8)];
        write_images(&sets, &spec(3, &[]), &path).unwrap();
        let mut reader =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
                .read_info()
                .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (rgb, w, h) = images_rgb(&sets, &spec(3, &[])).unwrap();
        assert_eq!((info.width as usize, info.height as usize), (w, h));
        assert_eq!(&buf[..info.buffer_size()], &rgb[..]);
        let folder = dir.join("folder.png");
        std::fs::create_dir_all(&folder).unwrap();
        let e = write_images(&sets, &spec(3, &[]), &folder)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(folder.is_dir());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
