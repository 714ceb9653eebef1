//! Folders of PNG/JPEG images (e.g. a generator's samples). Images directly in the folder are
//! unlabeled (-1); with class subfolders instead, each subfolder is a class, in sorted name
//! order. Every image is converted to RGB and resized to `size`×`size` (bilinear, aspect ratio
//! not kept), so a folder of generated 32×32 PNGs loads as-is.

use std::path::{Path, PathBuf};

use super::file_fingerprint;
use crate::data::{Dataset, ImageStore, UNLABELED, hash_hex};
use crate::error::{Error, Result};

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::file(dir, format!("cannot list the folder: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}

/// Decodes one image to (width, height, RGB bytes).
pub fn decode(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let bytes = super::read_all(path)?;
    let bad = |e: String| Error::file(path, format!("is not a readable image: {e}"));
    if bytes.starts_with(b"\x89PNG") {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
        let mut buf = vec![
            0;
            reader
                .output_buffer_size()
                .ok_or_else(|| bad("image too large".into()))?
        ];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        let (w, h) = (info.width as usize, info.height as usize);
        let data = &buf[..info.buffer_size()];
        let rgb = match info.color_type {
            png::ColorType::Rgb => data.to_vec(),
            png::ColorType::Rgba => data
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            png::ColorType::Grayscale => data.iter().flat_map(|&g| [g, g, g]).collect(),
            png::ColorType::GrayscaleAlpha => data
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0]])
                .collect(),
            other => return Err(bad(format!("unsupported PNG colour type {other:?}"))),
        };
        Ok((w, h, rgb))
    } else if bytes.starts_with(&[0xff, 0xd8]) {
        let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(&bytes));
        let data = decoder.decode().map_err(|e| bad(e.to_string()))?;
        let info = decoder
            .info()
            .ok_or_else(|| bad("no image information".into()))?;
        let (w, h) = (info.width as usize, info.height as usize);
        let rgb = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => data,
            jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&g| [g, g, g]).collect(),
            other => return Err(bad(format!("unsupported JPEG pixel format {other:?}"))),
        };
        Ok((w, h, rgb))
    } else {
        Err(bad("neither PNG nor JPEG data".into()))
    }
}

/// Bilinear resize of an RGB image (pixel-centre aligned).
pub fn resize(src: &[u8], w: usize, h: usize, size: usize) -> Vec<u8> {
    if w == size && h == size {
        return src.to_vec();
    }
    let mut out = Vec::with_capacity(size * size * 3);
    let sample = |x: f64, max: usize| {
        let x = x.clamp(0.0, (max - 1) as f64);
        let x0 = x.floor() as usize;
        (x0, (x0 + 1).min(max - 1), x - x0 as f64)
    };
    for oy in 0..size {
        let (y0, y1, fy) = sample((oy as f64 + 0.5) * h as f64 / size as f64 - 0.5, h);
        for ox in 0..size {
            let (x0, x1, fx) = sample((ox as f64 + 0.5) * w as f64 / size as f64 - 0.5, w);
            for c in 0..3 {
                let p = |x: usize, y: usize| src[(y * w + x) * 3 + c] as f64;
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                out.push((top * (1.0 - fy) + bottom * fy).round() as u8);
            }
        }
    }
    out
}

/// Reads the PNG/JPEG images of `dir` (unlabeled, or one class per subfolder) as
/// `size`×`size` RGB images; `size` must be in 1..=1024.
pub fn read_folder(dir: &Path, size: usize) -> Result<Dataset> {
    if !(1..=1024).contains(&size) {
        return Err(Error::config(
            "size",
            format!("must be between 1 and 1024, got {size}"),
        ));
    }
    if !dir.is_dir() {
        return Err(Error::file(dir, "is not a folder"));
    }
    let entries = sorted_entries(dir)?;
    let classes: Vec<PathBuf> = entries.iter().filter(|p| p.is_dir()).cloned().collect();
    let mut files: Vec<(PathBuf, i32)> = entries
        .iter()
        .filter(|p| p.is_file() && is_image(p))
        .map(|p| (p.clone(), UNLABELED))
        .collect();
    if !classes.is_empty() && !files.is_empty() {
        return Err(Error::file(
            dir,
            "mixes images and class subfolders; use one or the other",
        ));
    }
    for (k, class_dir) in classes.iter().enumerate() {
        for p in sorted_entries(class_dir)? {
            if p.is_file() && is_image(&p) {
                files.push((p, k as i32));
            }
        }
    }
    if files.is_empty() {
        return Err(Error::file(dir, "holds no PNG or JPEG images"));
    }
    let mut pixels = Vec::with_capacity(files.len() * size * size * 3);
    let mut labels = Vec::with_capacity(files.len());
    let mut prints = vec![format!("folder{size}")];
    for (path, label) in &files {
        let (w, h, rgb) = decode(path)?;
        pixels.extend_from_slice(&resize(&rgb, w, h, size));
        labels.push(*label);
        prints.push(file_fingerprint(path)?);
    }
    let refs: Vec<&str> = prints.iter().map(String::as_str).collect();
    let source = format!("folder({}, size={size})", dir.display());
    Ok(Dataset::from_store(ImageStore::new(
        source,
        hash_hex(&refs),
        [size, size, 3],
        classes.len(),
        pixels,
        labels,
    )?))
}
