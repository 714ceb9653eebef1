//! Writing RGB images as PNG files (8 bits per channel), for augmentation previews and report
//! plots. The parent folder is created when missing.

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
