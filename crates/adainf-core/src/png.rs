//! Writing RGB images as PNG files (8 bits per channel), for augmentation previews and report
//! plots (the parent folder is created when missing), and tiling images into a grid (white
//! gutters, small images enlarged) for `aug::preview` and `report::images`.

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `rgb` (row-major, 3 bytes per pixel) as a `width` × `height` PNG at `path`.
pub fn write_rgb(path: &Path, rgb: &[u8], width: usize, height: usize) -> Result<()> {
    crate::files::create_parent(path)?;
    crate::files::write_atomic(path, &encode_rgb(rgb, width, height)?)
}

/// `rgb` (row-major, 3 bytes per pixel) encoded as a `width` × `height` PNG.
pub fn encode_rgb(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let fail = |e: png::EncodingError| Error::Data(format!("cannot encode a PNG: {e}"));
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(rgb).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

/// White space between cells and around a grid, in pixels.
pub const GUTTER: usize = 2;

/// `n` indices spread evenly over `0..len` (all of them when `len <= n`).
pub fn spread(len: usize, n: usize) -> Vec<usize> {
    let n = n.min(len);
    (0..n).map(|k| k * len / n).collect()
}

/// How much small images are enlarged in a grid.
pub fn zoom(h: usize) -> usize {
    if h < 64 { 3 } else { 1 }
}

/// Tiles `rows` of RGB images (each `h`×`w`×3 bytes, row-major) into one white RGB picture:
/// ×`zoom(h)`, `GUTTER` pixels between and around the cells, and `left` pixels of margin
/// before the first column. Returns the picture with its width and height.
pub fn tile_rgb(rows: &[Vec<Vec<u8>>], h: usize, w: usize, left: usize) -> (Vec<u8>, usize, usize) {
    let z = zoom(h);
    let (cell_w, cell_h) = (w * z + GUTTER, h * z + GUTTER);
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (img_w, img_h) = (left + cell_w * cols + GUTTER, cell_h * rows.len() + GUTTER);
    let mut rgb = vec![255u8; img_w * img_h * 3];
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().enumerate() {
            for y in 0..h * z {
                for x in 0..w * z {
                    let src = ((y / z) * w + x / z) * 3;
                    let (oy, ox) = (GUTTER + r * cell_h + y, left + GUTTER + c * cell_w + x);
                    let dst = (oy * img_w + ox) * 3;
                    rgb[dst..dst + 3].copy_from_slice(&image[src..src + 3]);
                }
            }
        }
    }
    (rgb, img_w, img_h)
}
