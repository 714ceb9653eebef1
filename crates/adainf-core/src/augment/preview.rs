//! `aug::preview`: a PNG grid with one row per image: the original, then its two views.

use std::path::Path;

use burn::tensor::Device;

use super::{ViewPair, batch};
use crate::data::Dataset;
use crate::data::loader::gather;
use crate::error::{Error, Result};
use crate::png::{spread, tile_rgb};
use crate::rng::Rng;
use crate::tensor::read_floats;

/// Writes the grid for `n` images spread over `data` (the tiling of `png::tile_rgb`).
pub fn write_preview(
    data: &Dataset,
    aug: &ViewPair,
    path: &Path,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<()> {
    let (rgb, img_w, img_h) = preview_rgb(data, aug, n, seed, device)?;
    crate::png::write_rgb(path, &rgb, img_w, img_h)
}

/// The grid of `write_preview` as RGB bytes with its width and height.
pub fn preview_rgb(
    data: &Dataset,
    aug: &ViewPair,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<(Vec<u8>, usize, usize)> {
    let n = n.min(data.len());
    if n == 0 {
        return Err(Error::Data("aug::preview needs at least one image".into()));
    }
    let [h, w, c] = data.shape();
    if c != 3 {
        return Err(Error::Data(format!(
            "{}: preview needs RGB images, these have {c} channels",
            data.description()
        )));
    }
    let idx = spread(data.len(), n);
    let hb = gather(data, &idx);
    let x = batch::to_device(hb, device);
    let mut rng = Rng::new(seed);
    let mut columns = vec![read_floats(x.clone())];
    for view in &aug.views {
        let params = batch::sample_params(view, &mut rng, n, h, w);
        columns.push(read_floats(batch::augment(x.clone(), &params)));
    }
    // One row per image: the original, then its views, as RGB bytes.
    let rows: Vec<Vec<Vec<u8>>> = (0..n)
        .map(|item| {
            columns
                .iter()
                .map(|values| {
                    let mut image = Vec::with_capacity(h * w * 3);
                    for p in 0..h * w {
                        for ch in 0..3 {
                            let v = values[(item * 3 + ch) * h * w + p];
                            image.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
                        }
                    }
                    image
                })
                .collect()
        })
        .collect();
    Ok(tile_rgb(&rows, h, w, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::preset;
    use crate::data::synthetic::{SyntheticSpec, synthetic};

    #[test]
    fn writes_a_decodable_png_of_the_right_size() {
        let d = synthetic(&SyntheticSpec {
            n: 4,
            seed: 0,
            size: 16,
            split: "train".into(),
        })
        .unwrap();
        let path = std::env::temp_dir().join(format!("adainf-preview-{}.png", std::process::id()));
        write_preview(
            &d,
            &preset("symmetric").unwrap(),
            &path,
            4,
            0,
            &Device::flex(),
        )
        .unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(
            (info.width, info.height),
            (3 * (16 * 3 + 2) + 2, 4 * (16 * 3 + 2) + 2)
        );
        std::fs::remove_file(path).unwrap();
    }
}
