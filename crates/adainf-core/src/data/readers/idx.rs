//! MNIST-style IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`), raw
//! or gzip-compressed. Grey images are replicated to 3 identical channels so every method and
//! augmentation applies unchanged (colour jitter then only changes brightness and contrast).

use std::io::{BufRead, Read};
use std::path::Path;

use super::{check_labels, file_fingerprint, gray_to_rgb, open_regular};
use crate::data::{Dataset, ImageStore, alloc, hash_hex};
use crate::error::{Error, Result};

/// An IDX array of unsigned bytes of the expected rank: its dims and its data. The file must be
/// a regular file (`open_regular`), raw or gzip-compressed (magic 1f 8b); no more data is read
/// or inflated than the header's dimensions declare, so a gzip bomb or a huge file stops there.
fn read_array(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let (file, _) = open_regular(path)?;
    let mut file = std::io::BufReader::new(file);
    let gzip = file
        .fill_buf()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?
        .starts_with(&[0x1f, 0x8b]);
    let mut input: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let read_err = |e: std::io::Error| {
        if gzip {
            Error::file(path, format!("is not a valid gzip file: {e}"))
        } else {
            Error::file(path, format!("cannot read: {e}"))
        }
    };
    let mut magic = Vec::with_capacity(4);
    (&mut input)
        .take(4)
        .read_to_end(&mut magic)
        .map_err(read_err)?;
    if magic.len() < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(Error::file(path, "is not an IDX file (bad magic number)"));
    }
    if magic[2] != 0x08 {
        return Err(Error::file(
            path,
            format!(
                "holds IDX type 0x{:02x}; only unsigned bytes (0x08) are supported",
                magic[2]
            ),
        ));
    }
    if magic[3] as usize != rank {
        return Err(Error::file(
            path,
            format!(
                "has {} dimensions, expected {rank} ({})",
                magic[3],
                if rank == 1 { "labels" } else { "images" }
            ),
        ));
    }
    let mut raw_dims = Vec::with_capacity(4 * rank);
    (&mut input)
        .take(4 * rank as u64)
        .read_to_end(&mut raw_dims)
        .map_err(read_err)?;
    if raw_dims.len() < 4 * rank {
        return Err(Error::file(path, "is truncated inside its header"));
    }
    let dims: Vec<usize> = raw_dims
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let need = dims
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| Error::file(path, format!("has impossible dimensions {dims:?}")))?;
    // Grey images become three channels: the data and its RGB copy must both fit.
    let hold = need as u128 * if rank == 1 { 1 } else { 4 };
    alloc::fits_in_memory(hold).map_err(|why| {
        Error::file(
            path,
            format!(
                "declares dimensions {dims:?}, {} of data with its RGB copy, but {why}",
                alloc::human_bytes(hold)
            ),
        )
    })?;
    let mut data = Vec::new();
    data.try_reserve_exact(need)
        .map_err(|e| Error::file(path, format!("cannot hold its {need} data bytes: {e}")))?;
    // One byte more than declared tells a file with trailing data from an exact one.
    input
        .take(need as u64 + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() != need {
        let got = if data.len() > need {
            format!("more than {need}")
        } else {
            data.len().to_string()
        };
        return Err(Error::file(
            path,
            format!(
                "has {got} data bytes but its dimensions {dims:?} need {need} (truncated or wrong record size)"
            ),
        ));
    }
    Ok((dims, data))
}

/// Reads an IDX image file (N×H×W) and its label file (N), grey replicated to 3 channels;
/// the class count is the largest label + 1, at least 10.
pub fn read_idx(images: &Path, labels: &Path) -> Result<Dataset> {
    let (idims, ib) = read_array(images, 3)?;
    let (ldims, lb) = read_array(labels, 1)?;
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
    let labels_v: Vec<i32> = lb.iter().map(|&l| l as i32).collect();
    let classes = labels_v
        .iter()
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(0)
        .max(10);
    check_labels(labels, &labels_v, classes)?;
    let pixels = gray_to_rgb(&ib);
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
