//! MNIST-style IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`), raw
//! or gzip-compressed. Grey images are replicated to 3 identical channels so every method and
//! augmentation applies unchanged (colour jitter then only changes brightness and contrast).

use std::io::Read;
use std::path::Path;

use super::{check_labels, file_fingerprint, gray_to_rgb, read_all};
use crate::data::{Dataset, ImageStore, hash_hex};
use crate::error::{Error, Result};

/// The file's bytes, inflated when it is gzip-compressed (magic 1f 8b).
fn contents(path: &Path) -> Result<Vec<u8>> {
    let raw = read_all(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::file(path, format!("is not a valid gzip file: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// (dims, data) of an unsigned-byte IDX array of the expected rank.
fn parse(path: &Path, bytes: &[u8], rank: usize) -> Result<(Vec<usize>, usize)> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::file(path, "is not an IDX file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(Error::file(
            path,
            format!(
                "holds IDX type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    if bytes[3] as usize != rank {
        return Err(Error::file(
            path,
            format!(
                "has {} dimensions, expected {rank} ({})",
                bytes[3],
                if rank == 1 { "labels" } else { "images" }
            ),
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(Error::file(path, "is truncated inside its header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|d| {
            u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().unwrap_or([0; 4])) as usize
        })
        .collect();
    let need = dims
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| Error::file(path, format!("has impossible dimensions {dims:?}")))?;
    if bytes.len() - header != need {
        return Err(Error::file(
            path,
            format!(
                "has {} data bytes but its dimensions {dims:?} need {need} (truncated or wrong record size)",
                bytes.len() - header
            ),
        ));
    }
    Ok((dims, header))
}

/// Reads an IDX image file (N×H×W) and its label file (N), grey replicated to 3 channels;
/// the class count is the largest label + 1, at least 10.
pub fn read_idx(images: &Path, labels: &Path) -> Result<Dataset> {
    let ib = contents(images)?;
    let (idims, ioff) = parse(images, &ib, 3)?;
    let lb = contents(labels)?;
    let (ldims, loff) = parse(labels, &lb, 1)?;
    if idims[0] != ldims[0] {
        return Err(Error::Data(format!(
            "{} has {} images but {} has {} labels",
            images.display(),
            idims[0],
            labels.display(),
            ldims[0]
        )));
    }
    if idims[0] == 0 {
        return Err(Error::file(images, "holds no images"));
    }
    let labels_v: Vec<i32> = lb[loff..].iter().map(|&l| l as i32).collect();
    let classes = labels_v
        .iter()
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(0)
        .max(10);
    check_labels(labels, &labels_v, classes)?;
    let pixels = gray_to_rgb(&ib[ioff..]);
    let source = format!("idx({})", images.display());
    let fp = hash_hex(&[&file_fingerprint(images)?, &file_fingerprint(labels)?]);
    Ok(Dataset::from_store(ImageStore::new(
        source,
        fp,
        [idims[1], idims[2], 3],
        classes,
        pixels,
        labels_v,
    )?))
}
