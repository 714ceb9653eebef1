//! CIFAR-10 and CIFAR-100, as released: the binary version (`cifar-10-batches-bin`:
//! `data_batch_1..5.bin`, `test_batch.bin`, records of 1 label byte + 3072 pixel bytes;
//! `cifar-100-binary`: `train.bin`, `test.bin`, records of coarse + fine label bytes + 3072) and
//! the python version (`cifar-10-batches-py`, `cifar-100-python`: pickled dicts). The layout is
//! detected from the folder's files. Pixels are stored R plane, G plane, B plane per image and
//! become H×W×C.

use std::path::{Path, PathBuf};

use super::pickle::{self, Value};
use super::{check_labels, file_fingerprint, planar_to_hwc, read_all};
use crate::data::{Dataset, ImageStore, hash_hex};
use crate::error::{Error, Result};

const HW: usize = 32 * 32;
const RECORD_PIXELS: usize = 3 * HW;

/// Which CIFAR release, and for CIFAR-100 which labels to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Variant {
    /// CIFAR-10: 10 classes.
    Cifar10,
    /// CIFAR-100.
    Cifar100 {
        /// Read the 20 coarse (superclass) labels instead of the 100 fine ones.
        coarse: bool,
    },
}

fn split_files(dir: &Path, variant: Variant, split: &str, binary: bool) -> Result<Vec<PathBuf>> {
    let names: Vec<String> = match (variant, split, binary) {
        (Variant::Cifar10, "train", true) => {
            (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
        }
        (Variant::Cifar10, "test", true) => vec!["test_batch.bin".into()],
        (Variant::Cifar10, "train", false) => (1..=5).map(|i| format!("data_batch_{i}")).collect(),
        (Variant::Cifar10, "test", false) => vec!["test_batch".into()],
        (Variant::Cifar100 { .. }, "train", true) => vec!["train.bin".into()],
        (Variant::Cifar100 { .. }, "test", true) => vec!["test.bin".into()],
        (Variant::Cifar100 { .. }, "train", false) => vec!["train".into()],
        (Variant::Cifar100 { .. }, "test", false) => vec!["test".into()],
        (_, other, _) => {
            return Err(Error::config(
                "split",
                format!("must be \"train\" or \"test\", got \"{other}\""),
            ));
        }
    };
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        return Err(Error::file(
            missing,
            "is missing from the CIFAR folder (expected the official release's files)",
        ));
    }
    Ok(files)
}

/// Is this a binary release folder (else python)? Decided by which files are present.
fn is_binary(dir: &Path, variant: Variant) -> Result<bool> {
    if !dir.is_dir() {
        return Err(Error::file(
            dir,
            "is not a folder; pass the extracted CIFAR folder (e.g. cifar-10-batches-bin)",
        ));
    }
    let (bin, py) = match variant {
        Variant::Cifar10 => ("test_batch.bin", "test_batch"),
        Variant::Cifar100 { .. } => ("test.bin", "test"),
    };
    if dir.join(bin).exists() {
        Ok(true)
    } else if dir.join(py).exists() {
        Ok(false)
    } else {
        Err(Error::file(
            dir,
            format!("holds neither `{bin}` (binary release) nor `{py}` (python release)"),
        ))
    }
}

fn read_binary(
    file: &Path,
    variant: Variant,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<i32>,
) -> Result<()> {
    let bytes = read_all(file)?;
    let label_bytes = if matches!(variant, Variant::Cifar10) {
        1
    } else {
        2
    };
    let record = label_bytes + RECORD_PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(Error::file(
            file,
            format!(
                "has {} bytes, not a whole number of {record}-byte CIFAR records (truncated or the wrong CIFAR variant?)",
                bytes.len()
            ),
        ));
    }
    for r in bytes.chunks_exact(record) {
        let label = match variant {
            Variant::Cifar10 => r[0],
            Variant::Cifar100 { coarse: true } => r[0],
            Variant::Cifar100 { coarse: false } => r[1],
        };
        labels.push(label as i32);
        planar_to_hwc(&r[label_bytes..], 3, HW, pixels);
    }
    Ok(())
}

fn read_python(
    file: &Path,
    variant: Variant,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<i32>,
) -> Result<()> {
    let bytes = read_all(file)?;
    let value = pickle::load(&bytes)
        .map_err(|e| Error::file(file, format!("is not a readable CIFAR pickle: {e}")))?;
    let label_key = match variant {
        Variant::Cifar10 => "labels",
        Variant::Cifar100 { coarse: true } => "coarse_labels",
        Variant::Cifar100 { coarse: false } => "fine_labels",
    };
    let data = value
        .get("data")
        .ok_or_else(|| Error::file(file, "has no `data` entry"))?;
    let (raw, shape) = match data {
        Value::Array { bytes, shape } => (bytes, shape),
        _ => return Err(Error::file(file, "`data` is not a uint8 array")),
    };
    if shape.len() != 2 || shape[1] != RECORD_PIXELS {
        return Err(Error::file(
            file,
            format!("`data` has shape {shape:?}, expected N×3072"),
        ));
    }
    let list = match value.get(label_key) {
        Some(Value::List(items)) => items,
        _ => return Err(Error::file(file, format!("has no `{label_key}` list"))),
    };
    if list.len() != shape[0] || raw.len() != shape[0] * RECORD_PIXELS {
        return Err(Error::file(
            file,
            format!("holds {} labels for {} images", list.len(), shape[0]),
        ));
    }
    for (k, item) in list.iter().enumerate() {
        match item {
            Value::Int(l) => labels.push(*l as i32),
            _ => return Err(Error::file(file, format!("label {k} is not an integer"))),
        }
        planar_to_hwc(
            &raw[k * RECORD_PIXELS..(k + 1) * RECORD_PIXELS],
            3,
            HW,
            pixels,
        );
    }
    Ok(())
}

/// Reads the `split` ("train" or "test") of the extracted CIFAR folder `dir` (binary or
/// python release, detected from its files) as 32×32×3 images.
pub fn read_cifar(dir: &Path, variant: Variant, split: &str) -> Result<Dataset> {
    let binary = is_binary(dir, variant)?;
    let files = split_files(dir, variant, split, binary)?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut prints = vec![format!("{variant:?}{split}")];
    for f in &files {
        if binary {
            read_binary(f, variant, &mut pixels, &mut labels)?;
        } else {
            read_python(f, variant, &mut pixels, &mut labels)?;
        }
        prints.push(file_fingerprint(f)?);
    }
    let classes = match variant {
        Variant::Cifar10 => 10,
        Variant::Cifar100 { coarse: true } => 20,
        Variant::Cifar100 { coarse: false } => 100,
    };
    check_labels(&files[0], &labels, classes)?;
    let name = if matches!(variant, Variant::Cifar10) {
        "cifar10"
    } else {
        "cifar100"
    };
    let source = format!("{name}({}, {split})", dir.display());
    let refs: Vec<&str> = prints.iter().map(String::as_str).collect();
    Ok(Dataset::from_store(ImageStore::new(
        source,
        hash_hex(&refs),
        [32, 32, 3],
        classes,
        pixels,
        labels,
    )?))
}
