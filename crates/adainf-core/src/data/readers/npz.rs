//! The AdaInf generated-data format: an `.npz` archive (a ZIP of `.npy` arrays) with keys
//! `image` (N×H×W×3 u8, HWC) and `label` (integers, -1 = unlabeled). Archives written by
//! `np.savez` store their members uncompressed: the image array is then memory-mapped and never
//! copied, so a 1M-image (3 GB) file opens in constant time. Compressed members
//! (`np.savez_compressed`) are inflated once into memory. ZIP64 archives are supported.

use std::fs::File;
use std::io::{Cursor, Read, Write};
use std::path::Path;

use memmap2::Mmap;

use super::npy::{self, Header};
use super::{check_labels, file_fingerprint, gray_to_rgb};
use crate::data::{Dataset, ImageStore, Pixels, UNLABELED};
use crate::error::{Error, Result};

/// How `read_npz` reads an archive; the default reads keys `image` and `label`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NpzOptions {
    /// Key (member name without `.npy`) of the uint8 image array.
    pub image_key: String,
    /// Key of the integer label vector; it may be absent when `ignore_labels` is set.
    pub label_key: String,
    /// Replace every stored label by -1 (keeps generated images away from the probe).
    pub ignore_labels: bool,
    /// The pixels are stored B, G, R (files written with OpenCV): swap to RGB when reading.
    pub bgr: bool,
    /// Number of classes; default: largest label + 1.
    pub classes: Option<usize>,
}

impl Default for NpzOptions {
    fn default() -> Self {
        NpzOptions {
            image_key: "image".into(),
            label_key: "label".into(),
            ignore_labels: false,
            bgr: false,
            classes: None,
        }
    }
}

fn zip_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::file(path, format!("is not a valid .npz (ZIP) archive: {what}"))
}

/// The archive over the mapped bytes (the `zip` crate reads the directory, ZIP64 included).
type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// A member's `.npy` bytes: borrowed from the map when stored, inflated otherwise.
enum Member<'a> {
    Stored { offset: usize, bytes: &'a [u8] },
    Inflated(Vec<u8>),
}

impl Member<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Member::Stored { bytes, .. } => bytes,
            Member::Inflated(v) => v,
        }
    }
}

fn member<'a>(
    path: &Path,
    b: &'a [u8],
    archive: &mut Archive<'a>,
    key: &str,
) -> Result<Member<'a>> {
    let wanted = format!("{key}.npy");
    let Some(index) = archive.index_for_name(&wanted) else {
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.trim_end_matches(".npy").to_string())
            .collect();
        return Err(Error::file(
            path,
            format!("has no key `{key}`; its keys are: {}", names.join(", ")),
        ));
    };
    let mut file = archive.by_index(index).map_err(|e| zip_error(path, e))?;
    match file.compression() {
        // Stored: the member's bytes are borrowed from the memory map, never copied.
        zip::CompressionMethod::Stored => {
            let start = file.data_start() as usize;
            let end = start
                .checked_add(file.compressed_size() as usize)
                .filter(|end| *end <= b.len());
            match end {
                Some(end) => Ok(Member::Stored {
                    offset: start,
                    bytes: &b[start..end],
                }),
                None => Err(Error::file(
                    path,
                    format!(
                        "member {wanted} is truncated: the file ends before its {} bytes",
                        file.compressed_size()
                    ),
                )),
            }
        }
        zip::CompressionMethod::Deflated => {
            let mut out = Vec::with_capacity(file.size().min(1 << 34) as usize);
            file.read_to_end(&mut out).map_err(|err| {
                Error::file(path, format!("member {wanted} cannot be inflated: {err}"))
            })?;
            Ok(Member::Inflated(out))
        }
        m => Err(Error::file(
            path,
            format!(
                "member {wanted} uses ZIP compression method {m}; only stored (np.savez) and deflate (np.savez_compressed) are supported"
            ),
        )),
    }
}

fn header(path: &Path, m: &Member, key: &str) -> Result<Header> {
    let h =
        npy::parse_header(m.bytes()).map_err(|e| Error::file(path, format!("key `{key}`: {e}")))?;
    if h.fortran_order {
        return Err(Error::file(
            path,
            format!(
                "key `{key}` is stored in Fortran order; save it C-contiguous (np.ascontiguousarray)"
            ),
        ));
    }
    Ok(h)
}

/// Opens an npz file as a dataset.
pub fn read_npz(path: &Path, opts: &NpzOptions) -> Result<Dataset> {
    let file = File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    // SAFETY: the map is read-only; a file truncated by another process while mapped can fault
    // on access, which is the usual contract of memory-mapped readers.
    let map = unsafe { Mmap::map(&file) }
        .map_err(|e| Error::file(path, format!("cannot memory-map: {e}")))?;
    let mut archive =
        zip::ZipArchive::new(Cursor::new(&map[..])).map_err(|e| zip_error(path, e))?;

    let image = member(path, &map, &mut archive, &opts.image_key)?;
    let ih = header(path, &image, &opts.image_key)?;
    if ih.dtype.kind != 'u' || ih.dtype.size != 1 {
        return Err(Error::file(
            path,
            format!(
                "key `{}` must hold uint8 pixels, found dtype {}{}",
                opts.image_key, ih.dtype.kind, ih.dtype.size
            ),
        ));
    }
    let (n, h, w, c) = match ih.shape.as_slice() {
        [n, h, w, c] if *c == 3 || *c == 1 => (*n, *h, *w, *c),
        [n, h, w] => (*n, *h, *w, 1),
        other => {
            return Err(Error::file(
                path,
                format!(
                    "key `{}` must be N×H×W×3 (or N×H×W×1, N×H×W), found shape {other:?}",
                    opts.image_key
                ),
            ));
        }
    };
    let pixel_len = [n, h, w, c]
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "key `{}` has an impossible shape {:?}",
                    opts.image_key, ih.shape
                ),
            )
        })?;
    let available = image.bytes().len() - ih.data_offset;
    if available < pixel_len {
        return Err(Error::file(
            path,
            format!(
                "key `{}` is truncated: shape {:?} needs {pixel_len} bytes, found {available}",
                opts.image_key, ih.shape
            ),
        ));
    }

    let labels: Vec<i32> = if opts.ignore_labels
        && archive
            .index_for_name(&format!("{}.npy", opts.label_key))
            .is_none()
    {
        vec![UNLABELED; n]
    } else {
        let lm = member(path, &map, &mut archive, &opts.label_key)?;
        let lh = header(path, &lm, &opts.label_key)?;
        if lh.shape.len() != 1 || lh.shape[0] != n {
            return Err(Error::file(
                path,
                format!(
                    "key `{}` must be a vector of {n} labels, found shape {:?}",
                    opts.label_key, lh.shape
                ),
            ));
        }
        let raw = npy::read_ints(&lm.bytes()[lh.data_offset..], lh.dtype, n)
            .map_err(|e| Error::file(path, format!("key `{}`: {e}", opts.label_key)))?;
        if opts.ignore_labels {
            vec![UNLABELED; n]
        } else {
            raw.into_iter()
                .map(|l| l.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
                .collect()
        }
    };
    let classes = opts.classes.unwrap_or_else(|| {
        labels
            .iter()
            .map(|l| (*l + 1).max(0) as usize)
            .max()
            .unwrap_or(0)
    });
    check_labels(path, &labels, classes)?;

    let pixels = match (&image, c) {
        (Member::Stored { offset, .. }, 3) => {
            let offset = offset + ih.data_offset;
            Pixels::Mapped {
                map,
                offset,
                len: pixel_len,
            }
        }
        (m, 3) => Pixels::Owned(m.bytes()[ih.data_offset..ih.data_offset + pixel_len].to_vec()),
        (m, _) => Pixels::Owned(gray_to_rgb(
            &m.bytes()[ih.data_offset..ih.data_offset + pixel_len],
        )),
    };
    let source = format!("npz({})", path.display());
    let fp = file_fingerprint(path)?;
    let fp = crate::data::hash_hex(&[&fp, &format!("{opts:?}")]);
    let store = ImageStore::new(source, fp, [h, w, 3], classes, pixels, labels)?
        .with_bgr(opts.bgr && c == 3);
    Ok(Dataset::from_store(store))
}

/// If `data`'s channel means match `reference`'s better with R and B swapped, a warning.
pub fn channel_order_warning(data: &Dataset, reference: &Dataset) -> Option<String> {
    let (m, _) = data.channel_stats(5000);
    let (r, _) = reference.channel_stats(5000);
    let straight = (m[0] - r[0]).abs() + (m[2] - r[2]).abs();
    let swapped = (m[0] - r[2]).abs() + (m[2] - r[0]).abs();
    (swapped + 0.02 < straight).then(|| {
        format!(
            "{}: channel means (R {:.3}, B {:.3}) match the reference's with red and blue swapped (R {:.3}, B {:.3}); \
             the file may be BGR (written by OpenCV): pass `bgr: true` if so",
            data.description(),
            m[0],
            m[2],
            r[0],
            r[2]
        )
    })
}

/// Writes `data` in the official format (`image` N×H×W×3 u8, `label` int64), stored
/// uncompressed like `np.savez` (ZIP64 past 4 GiB), atomically (temporary file, then rename).
pub fn save_npz(data: &Dataset, path: &Path) -> Result<()> {
    let [h, w, c] = data.shape();
    let n = data.len();
    let image_header = npy::write_header("|u1", &[n, h, w, c]);
    let image_len = image_header.len() as u64 + (n * h * w * c) as u64;
    let mut label_bytes = npy::write_header("<i8", &[n]);
    for i in 0..n {
        label_bytes.extend_from_slice(&(data.label(i) as i64).to_le_bytes());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::file(parent, e))?;
    }
    let tmp = path.with_extension("npz.tmp");
    let io = |e: std::io::Error| Error::file(&tmp, e);
    let zip_err = |e: zip::result::ZipError| Error::file(&tmp, e);
    let file = File::create(&tmp).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(image_len >= 0xFFFF_FFFF);
    zip.start_file("image.npy", stored).map_err(zip_err)?;
    zip.write_all(&image_header).map_err(io)?;
    let mut rgb = Vec::with_capacity(h * w * c);
    for i in 0..n {
        rgb.clear();
        data.item(i).extend_rgb(&mut rgb);
        zip.write_all(&rgb).map_err(io)?;
    }
    zip.start_file("label.npy", stored.large_file(false))
        .map_err(zip_err)?;
    zip.write_all(&label_bytes).map_err(io)?;
    zip.finish()
        .map_err(zip_err)?
        .into_inner()
        .map_err(|e| Error::file(&tmp, e.error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}
