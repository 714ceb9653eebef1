//! The AdaInf generated-data format: an `.npz` archive (a ZIP of `.npy` arrays) with keys
//! `image` (N×H×W×3 u8, HWC) and `label` (integers, -1 = unlabeled). Archives written by
//! `np.savez` store their members uncompressed: the image array is then memory-mapped and never
//! copied, so a 1M-image (3 GB) file opens in constant time. Compressed members
//! (`np.savez_compressed`) are inflated once into memory. ZIP64 archives are supported.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use memmap2::Mmap;

use super::npy::{self, Header};
use super::{check_labels, file_fingerprint, gray_to_rgb, stored_labels};
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

struct Entry {
    name: String,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

fn zip_error(path: &Path, what: &str) -> Error {
    Error::file(path, format!("is not a valid .npz (ZIP) archive: {what}"))
}

/// The central directory's entries.
fn entries(path: &Path, b: &[u8]) -> Result<Vec<Entry>> {
    let search_from = b.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..b.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(b, i) == Some(0x0605_4b50))
        .ok_or_else(|| zip_error(path, "no end-of-central-directory record (truncated file?)"))?;
    let mut count = u16_at(b, eocd + 10).unwrap_or(0) as u64;
    let mut cd_offset = u32_at(b, eocd + 16).unwrap_or(0) as u64;
    // ZIP64: the locator sits right before the classic record.
    if eocd >= 20 && u32_at(b, eocd - 20) == Some(0x0706_4b50) {
        let z = u64_at(b, eocd - 12).unwrap_or(u64::MAX) as usize;
        if u32_at(b, z) != Some(0x0606_4b50) {
            return Err(zip_error(path, "bad ZIP64 end record"));
        }
        count = u64_at(b, z + 32).unwrap_or(0);
        cd_offset = u64_at(b, z + 48).unwrap_or(u64::MAX);
    }
    let mut out = Vec::new();
    let mut at = cd_offset as usize;
    for _ in 0..count {
        if u32_at(b, at) != Some(0x0201_4b50) {
            return Err(zip_error(path, "corrupt central directory"));
        }
        let field = |off: usize| {
            u32_at(b, at + off).ok_or_else(|| zip_error(path, "truncated central directory"))
        };
        let method = u16_at(b, at + 10).unwrap_or(0);
        let mut compressed = field(20)? as u64;
        let mut uncompressed = field(24)? as u64;
        let name_len = u16_at(b, at + 28).unwrap_or(0) as usize;
        let extra_len = u16_at(b, at + 30).unwrap_or(0) as usize;
        let comment_len = u16_at(b, at + 32).unwrap_or(0) as usize;
        let mut local_offset = field(42)? as u64;
        let name_bytes = b
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| zip_error(path, "truncated entry name"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        // ZIP64 extra field: 64-bit values for the fields saturated at 0xFFFFFFFF.
        let mut e = at + 46 + name_len;
        let extra_end = e + extra_len;
        while e + 4 <= extra_end {
            let id = u16_at(b, e).unwrap_or(0);
            let size = u16_at(b, e + 2).unwrap_or(0) as usize;
            if id == 0x0001 {
                let mut p = e + 4;
                for v in [&mut uncompressed, &mut compressed, &mut local_offset] {
                    if *v == 0xFFFF_FFFF {
                        *v =
                            u64_at(b, p).ok_or_else(|| zip_error(path, "truncated ZIP64 field"))?;
                        p += 8;
                    }
                }
            }
            e += 4 + size;
        }
        out.push(Entry {
            name,
            method,
            compressed,
            uncompressed,
            local_offset,
        });
        at = extra_end + comment_len;
    }
    Ok(out)
}

/// Byte range of an entry's data in the archive.
fn data_range(path: &Path, b: &[u8], e: &Entry) -> Result<(usize, usize)> {
    let lo = e.local_offset as usize;
    if u32_at(b, lo) != Some(0x0403_4b50) {
        return Err(zip_error(path, &format!("bad local header for {}", e.name)));
    }
    let start = lo
        + 30
        + u16_at(b, lo + 26).unwrap_or(0) as usize
        + u16_at(b, lo + 28).unwrap_or(0) as usize;
    let end = start
        .checked_add(e.compressed as usize)
        .filter(|end| *end <= b.len());
    match end {
        Some(end) => Ok((start, end)),
        None => Err(Error::file(
            path,
            format!(
                "member {} is truncated: the file ends before its {} bytes",
                e.name, e.compressed
            ),
        )),
    }
}

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

fn member<'a>(path: &Path, b: &'a [u8], all: &[Entry], key: &str) -> Result<Member<'a>> {
    let wanted = format!("{key}.npy");
    let Some(e) = all.iter().find(|e| e.name == wanted) else {
        let names: Vec<String> = all
            .iter()
            .map(|e| e.name.trim_end_matches(".npy").to_string())
            .collect();
        return Err(Error::file(
            path,
            format!("has no key `{key}`; its keys are: {}", names.join(", ")),
        ));
    };
    let (start, end) = data_range(path, b, e)?;
    match e.method {
        0 => Ok(Member::Stored {
            offset: start,
            bytes: &b[start..end],
        }),
        8 => {
            // Inflate no more than the size the archive declares (a deflate bomb stops there),
            // and only when that size fits in memory.
            let declared =
                crate::data::alloc::fits_in_memory(e.uncompressed as u128).map_err(|why| {
                    Error::file(
                        path,
                        format!(
                            "member {wanted} declares {} uncompressed, but {why}",
                            crate::data::alloc::human_bytes(e.uncompressed as u128)
                        ),
                    )
                })?;
            let mut out = Vec::new();
            out.try_reserve_exact(declared).map_err(|err| {
                Error::file(path, format!("member {wanted} cannot be held: {err}"))
            })?;
            flate2::read::DeflateDecoder::new(&b[start..end])
                .take(declared as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|err| {
                    Error::file(path, format!("member {wanted} cannot be inflated: {err}"))
                })?;
            if out.len() != declared {
                return Err(Error::file(
                    path,
                    format!(
                        "member {wanted} inflates to {} bytes but the archive declares {declared}; \
                         the file is corrupt",
                        if out.len() > declared {
                            format!("more than {declared}")
                        } else {
                            out.len().to_string()
                        }
                    ),
                ));
            }
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
    read_npz_store(path, opts).map(Dataset::from_store)
}

/// Opens an npz file as an image store (its source and fingerprint name the file; a run that
/// stored its own output there gives it back its own).
pub fn read_npz_store(path: &Path, opts: &NpzOptions) -> Result<ImageStore> {
    let (file, _) = super::open_regular(path)?;
    // SAFETY: the map is read-only; a file truncated by another process while mapped can fault
    // on access, which is the usual contract of memory-mapped readers.
    let map = unsafe { Mmap::map(&file) }
        .map_err(|e| Error::file(path, format!("cannot memory-map: {e}")))?;
    let all = entries(path, &map)?;

    let image = member(path, &map, &all, &opts.image_key)?;
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
        && !all
            .iter()
            .any(|e| e.name == format!("{}.npy", opts.label_key))
    {
        vec![UNLABELED; n]
    } else {
        let lm = member(path, &map, &all, &opts.label_key)?;
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
            stored_labels(path, &opts.label_key, raw)?
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
    Ok(
        ImageStore::new(source, fp, [h, w, 3], classes, pixels, labels)?
            .with_bgr(opts.bgr && c == 3),
    )
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

struct Crc32Writer {
    crc: flate2::Crc,
}

/// Writes `data` in the official format (`image` N×H×W×3 u8, `label` int64), stored
/// uncompressed like `np.savez`, atomically (temporary file, then rename).
pub fn save_npz(data: &Dataset, path: &Path) -> Result<()> {
    data.require_images("the set to save")?;
    let [h, w, c] = data.shape();
    let n = data.len();
    let image_header = npy::write_header("|u1", &[n, h, w, c]);
    let label_header = npy::write_header("<i8", &[n]);
    let image_len = image_header.len() as u64 + (n * h * w * c) as u64;
    if image_len >= 0xFFFF_FFFF {
        return Err(Error::file(
            path,
            "more than 4 GiB of pixels: writing ZIP64 archives is not supported; split the dataset",
        ));
    }
    // Pass 1: checksums.
    let mut image_crc = Crc32Writer {
        crc: flate2::Crc::new(),
    };
    image_crc.crc.update(&image_header);
    let mut rgb = Vec::with_capacity(h * w * c);
    for i in 0..n {
        rgb.clear();
        data.item(i).extend_rgb(&mut rgb);
        image_crc.crc.update(&rgb);
    }
    let mut label_bytes = label_header.clone();
    for i in 0..n {
        label_bytes.extend_from_slice(&(data.label(i) as i64).to_le_bytes());
    }
    let mut label_crc = flate2::Crc::new();
    label_crc.update(&label_bytes);

    crate::files::create_parent(path)?;
    crate::files::check_replaceable(path)?;
    let tmp = path.with_extension("npz.tmp");
    let io = |e: std::io::Error| Error::file(&tmp, e);
    let mut out = std::io::BufWriter::new(File::create(&tmp).map_err(io)?);
    let mut central = Vec::new();
    let mut offset: u64 = 0;
    let members: [(&str, u32, u64); 2] = [
        ("image.npy", image_crc.crc.sum(), image_len),
        ("label.npy", label_crc.sum(), label_bytes.len() as u64),
    ];
    for (k, (name, crc, len)) in members.iter().enumerate() {
        let local = local_header(name, *crc, *len as u32);
        out.write_all(&local).map_err(io)?;
        if k == 0 {
            out.write_all(&image_header).map_err(io)?;
            for i in 0..n {
                rgb.clear();
                data.item(i).extend_rgb(&mut rgb);
                out.write_all(&rgb).map_err(io)?;
            }
        } else {
            out.write_all(&label_bytes).map_err(io)?;
        }
        central.extend_from_slice(&central_header(name, *crc, *len as u32, offset as u32));
        offset += local.len() as u64 + len;
    }
    let cd_len = central.len() as u32;
    out.write_all(&central).map_err(io)?;
    let mut eocd = vec![0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 2, 0, 2, 0];
    eocd.extend_from_slice(&cd_len.to_le_bytes());
    eocd.extend_from_slice(&(offset as u32).to_le_bytes());
    eocd.extend_from_slice(&[0, 0]);
    out.write_all(&eocd).map_err(io)?;
    out.into_inner()
        .map_err(|e| Error::file(&tmp, e.error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}

fn local_header(name: &str, crc: u32, len: u32) -> Vec<u8> {
    let mut v = vec![0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0];
    v.extend_from_slice(&crc.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&(name.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(name.as_bytes());
    v
}

fn central_header(name: &str, crc: u32, len: u32, offset: u32) -> Vec<u8> {
    let mut v = vec![
        0x50, 0x4b, 0x01, 0x02, 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0,
    ];
    v.extend_from_slice(&crc.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&(name.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
    v.extend_from_slice(&0o644u32.wrapping_shl(16).to_le_bytes());
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}
