//! Readers for image files on disk: CIFAR-10/100 (binary and python releases), the AdaInf npz
//! format (memory-mapped when stored uncompressed) and its writer, MNIST-style IDX files, and
//! folders of PNG/JPEG images. Every reader checks sizes and labels and fails with a message
//! naming the file and what is wrong; none returns a partial dataset.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod npy;
pub mod npz;
mod pickle;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{alloc, hash_hex};
use crate::error::{Error, Result};

/// A cheap fingerprint of a file: its canonical path, size and modification time. Reading a
/// 3 GB file to hash it would defeat memory-mapping; a changed file changes size or mtime.
pub fn file_fingerprint(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(hash_hex(&[
        "file",
        &canonical.display().to_string(),
        &meta.len().to_string(),
        &mtime.to_string(),
    ]))
}

/// Opens `path` for reading when it is a regular file (after following links). A FIFO, a
/// device such as /dev/zero or a folder is refused before it is opened: reading one could
/// block forever or never end. Returns the file and its length in bytes.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a folder"
        } else {
            "a FIFO, socket or device"
        };
        return Err(Error::file(
            path,
            format!("is {kind}, not a regular file; give the path of a data file"),
        ));
    }
    let file = File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    Ok((file, meta.len()))
}

/// The whole of a regular file (`open_regular`), refused when it is larger than the memory
/// available; the error names the file.
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    let len = alloc::fits_in_memory(len as u128).map_err(|why| {
        Error::file(
            path,
            format!("is {} long, but {why}", alloc::human_bytes(len as u128)),
        )
    })?;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|e| Error::file(path, format!("cannot hold its {len} bytes: {e}")))?;
    // The file may grow while it is read: read no more than its length said.
    file.take(len as u64)
        .read_to_end(&mut out)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    Ok(out)
}

/// N×H×W×1 → N×H×W×3 by repeating the single channel (grey images stay grey, and every
/// augmentation and model works on them unchanged).
pub fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(gray.len() * 3);
    for &g in gray {
        out.extend_from_slice(&[g, g, g]);
    }
    out
}

/// Channel-planar records (C×H×W each, as CIFAR stores them) → H×W×C.
pub fn planar_to_hwc(planar: &[u8], channels: usize, hw: usize, out: &mut Vec<u8>) {
    for p in 0..hw {
        for c in 0..channels {
            out.push(planar[c * hw + p]);
        }
    }
}

/// Labels stored as integers of any width, as the class labels of a store (`i32`): a value
/// below -1 or past `i32::MAX` is an error naming the file, the key, the image and the value
/// as stored (it was clamped to 2147483647 and reported as that).
pub fn stored_labels(path: &Path, key: &str, raw: Vec<i64>) -> Result<Vec<i32>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, l)| {
            i32::try_from(l)
                .ok()
                .filter(|l| *l >= crate::data::UNLABELED)
                .ok_or_else(|| {
                    Error::file(
                        path,
                        format!(
                            "key `{key}`: label {l} of image {i} is not a class: labels are -1 (unlabelled) or class indices 0 to {}",
                            i32::MAX
                        ),
                    )
                })
        })
        .collect()
}

/// Checks that labels lie in 0..classes (or are -1), naming the file.
pub fn check_labels(path: &Path, labels: &[i32], classes: usize) -> Result<()> {
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| **l < -1 || (**l >= 0 && **l as usize >= classes))
    {
        return Err(Error::file(
            path,
            format!("label {l} of image {i} is outside 0..{classes} (and not -1)"),
        ));
    }
    Ok(())
}
