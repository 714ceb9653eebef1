//! Reader tests on files written here in the official layouts, and the bad-input cases.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::cifar::{Variant, read_cifar};
use super::folder::read_folder;
use super::idx::read_idx;
use super::npy::write_header;
use super::npz::{NpzOptions, channel_order_warning, read_npz, save_npz};
use super::pickle::cifar_batch_pickle;
use crate::data::synthetic::{SyntheticSpec, synthetic};
use crate::data::{Dataset, Pixels};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("adainf-readers-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn err(r: crate::Result<Dataset>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A ZIP archive with the given members, each stored or deflated (what np.savez /
/// np.savez_compressed write).
fn write_zip(path: &Path, members: &[(&str, Vec<u8>, bool)]) {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, deflate) in members {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let body = if *deflate {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.clone()
        };
        let method: u16 = if *deflate { 8 } else { 0 };
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&method.to_le_bytes());
            v.extend_from_slice(&[0, 0, 0x21, 0]);
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&(body.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        common(&mut central);
        central.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    std::fs::write(path, out).unwrap();
}

fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut v = write_header(descr, shape);
    v.extend_from_slice(data);
    v
}

fn labels_i8(labels: &[i64]) -> Vec<u8> {
    labels.iter().flat_map(|l| l.to_le_bytes()).collect()
}

fn pixels(n: usize, h: usize) -> Vec<u8> {
    (0..n * h * h * 3).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn npz_stored_is_memory_mapped_and_compressed_is_read() {
    let d = Dir::new("npz");
    let px = pixels(5, 4);
    for (name, deflate) in [("stored.npz", false), ("compressed.npz", true)] {
        let p = d.path(name);
        write_zip(
            &p,
            &[
                ("image.npy", npy("|u1", &[5, 4, 4, 3], &px), deflate),
                (
                    "label.npy",
                    npy("<i8", &[5], &labels_i8(&[0, 1, 2, -1, 1])),
                    deflate,
                ),
            ],
        );
        let ds = read_npz(&p, &NpzOptions::default()).unwrap();
        assert_eq!((ds.len(), ds.shape(), ds.classes()), (5, [4, 4, 3], 3));
        assert_eq!(ds.item(2).pixels, &px[2 * 48..3 * 48]);
        assert_eq!(ds.label(3), -1);
        let ignored = read_npz(
            &p,
            &NpzOptions {
                ignore_labels: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!((0..5).all(|i| ignored.label(i) == -1));
    }
    // The stored file's pixels are served from the map.
    let ds = read_npz(&d.path("stored.npz"), &NpzOptions::default()).unwrap();
    assert!(matches!(
        ds.inner.parts[0].store.pixels,
        Pixels::Mapped { .. }
    ));
}

#[test]
fn npz_bgr_swap_and_channel_warning() {
    let d = Dir::new("bgr");
    let real = synthetic(&SyntheticSpec {
        n: 200,
        seed: 0,
        size: 8,
        split: "train".into(),
    })
    .unwrap();
    // A reference set with a strong red cast, and a BGR copy of it.
    let mut rgb = Vec::new();
    for i in 0..real.len() {
        for px in real.item(i).pixels.chunks_exact(3) {
            rgb.extend_from_slice(&[px[0] / 2 + 128, px[1] / 2, px[2] / 4]);
        }
    }
    let bgr: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    write_zip(
        &d.path("rgb.npz"),
        &[
            ("image.npy", npy("|u1", &[200, 8, 8, 3], &rgb), false),
            (
                "label.npy",
                npy("<i8", &[200], &labels_i8(&[-1; 200])),
                false,
            ),
        ],
    );
    write_zip(
        &d.path("bgr.npz"),
        &[
            ("image.npy", npy("|u1", &[200, 8, 8, 3], &bgr), false),
            (
                "label.npy",
                npy("<i8", &[200], &labels_i8(&[-1; 200])),
                false,
            ),
        ],
    );
    let reference = read_npz(&d.path("rgb.npz"), &NpzOptions::default()).unwrap();
    let swapped = read_npz(&d.path("bgr.npz"), &NpzOptions::default()).unwrap();
    assert!(
        channel_order_warning(&swapped, &reference)
            .unwrap()
            .contains("bgr: true")
    );
    let fixed = read_npz(
        &d.path("bgr.npz"),
        &NpzOptions {
            bgr: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(channel_order_warning(&fixed, &reference).is_none());
    let mut a = Vec::new();
    fixed.item(7).extend_rgb(&mut a);
    assert_eq!(a, &rgb[7 * 192..8 * 192]);
}

#[test]
fn save_npz_round_trips() {
    let d = Dir::new("save");
    let real = synthetic(&SyntheticSpec {
        n: 12,
        seed: 4,
        size: 8,
        split: "train".into(),
    })
    .unwrap();
    let p = d.path("out/real.npz");
    save_npz(&real, &p).unwrap();
    let back = read_npz(&p, &NpzOptions::default()).unwrap();
    assert_eq!(
        (back.len(), back.shape(), back.classes()),
        (12, [8, 8, 3], 10)
    );
    for i in 0..12 {
        assert_eq!(back.item(i).pixels, real.item(i).pixels);
        assert_eq!(back.label(i), real.label(i));
    }
}

#[test]
fn npz_bad_inputs_name_the_problem() {
    let d = Dir::new("badnpz");
    let px = pixels(2, 4);
    let good_labels = npy("<i8", &[2], &labels_i8(&[0, 1]));
    let case = |name: &str, members: &[(&str, Vec<u8>, bool)]| {
        let p = d.path(name);
        write_zip(&p, members);
        err(read_npz(&p, &NpzOptions::default()))
    };
    let e = case(
        "nokey.npz",
        &[("pixels.npy", npy("|u1", &[2, 4, 4, 3], &px), false)],
    );
    assert!(
        e.contains("nokey.npz") && e.contains("no key `image`") && e.contains("pixels"),
        "{e}"
    );
    let e = case(
        "dtype.npz",
        &[
            ("image.npy", npy("<f4", &[2, 4, 4, 3], &px), false),
            ("label.npy", good_labels.clone(), false),
        ],
    );
    assert!(e.contains("uint8") && e.contains("f4"), "{e}");
    let e = case(
        "rank.npz",
        &[
            ("image.npy", npy("|u1", &[2, 48], &px[..96]), false),
            ("label.npy", good_labels.clone(), false),
        ],
    );
    assert!(e.contains("N×H×W×3") && e.contains("[2, 48]"), "{e}");
    let e = case(
        "short.npz",
        &[
            ("image.npy", npy("|u1", &[2, 4, 4, 3], &px[..50]), false),
            ("label.npy", good_labels.clone(), false),
        ],
    );
    assert!(e.contains("truncated"), "{e}");
    let e = case(
        "nlabels.npz",
        &[
            ("image.npy", npy("|u1", &[2, 4, 4, 3], &px), false),
            ("label.npy", npy("<i8", &[3], &labels_i8(&[0, 1, 2])), false),
        ],
    );
    assert!(e.contains("vector of 2 labels"), "{e}");
    let e = case(
        "neg.npz",
        &[
            ("image.npy", npy("|u1", &[2, 4, 4, 3], &px), false),
            ("label.npy", npy("<i8", &[2], &labels_i8(&[0, -5])), false),
        ],
    );
    assert!(e.contains("label -5"), "{e}");
    // Labels past i32 are reported as stored (2^62 was clamped and shown as 2147483647), and a
    // uint64 past i64::MAX is not wrapped to -1 ("unlabelled").
    let e = case(
        "huge.npz",
        &[
            ("image.npy", npy("|u1", &[2, 4, 4, 3], &px), false),
            (
                "label.npy",
                npy("<i8", &[2], &labels_i8(&[0, 1 << 62])),
                false,
            ),
        ],
    );
    assert!(
        e.contains("huge.npz")
            && e.contains("label 4611686018427387904 of image 1")
            && e.contains("key `label`")
            && !e.contains("2147483647 of"),
        "{e}"
    );
    let e = case(
        "u64.npz",
        &[
            ("image.npy", npy("|u1", &[2, 4, 4, 3], &px), false),
            ("label.npy", npy("<u8", &[2], &labels_i8(&[0, -1])), false),
        ],
    );
    assert!(
        e.contains("u64.npz") && e.contains("18446744073709551615"),
        "{e}"
    );
    // A truncated archive (cut in the middle).
    let p = d.path("cut.npz");
    write_zip(
        &p,
        &[
            ("image.npy", npy("|u1", &[2, 4, 4, 3], &px), false),
            ("label.npy", good_labels, false),
        ],
    );
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(read_npz(&p, &NpzOptions::default()));
    assert!(e.contains("cut.npz") && e.contains("ZIP"), "{e}");
    std::fs::write(&p, b"hello").unwrap();
    assert!(err(read_npz(&p, &NpzOptions::default())).contains("not a valid .npz"));
    assert!(err(read_npz(&d.path("missing.npz"), &NpzOptions::default())).contains("cannot open"));
}

fn cifar_binary_records(n: usize, label_bytes: usize) -> (Vec<u8>, Vec<u8>) {
    let mut file = Vec::new();
    let mut planar = Vec::new();
    for i in 0..n {
        for b in 0..label_bytes {
            file.push(((i + b) % 10) as u8);
        }
        let img: Vec<u8> = (0..3072).map(|k| ((k + 13 * i) % 256) as u8).collect();
        planar.extend_from_slice(&img);
        file.extend_from_slice(&img);
    }
    (file, planar)
}

#[test]
fn cifar_binary_and_python_layouts() {
    let d = Dir::new("cifar");
    let bin = d.path("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let (rec, planar) = cifar_binary_records(3, 1);
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::write(bin.join(name), &rec).unwrap();
    }
    let train = read_cifar(&bin, Variant::Cifar10, "train").unwrap();
    assert_eq!(
        (train.len(), train.shape(), train.classes()),
        (15, [32, 32, 3], 10)
    );
    // Pixel (row 0, col 1) of image 1: R plane index 1, G plane 1024 + 1, B plane 2048 + 1.
    let item = train.item(1).pixels;
    assert_eq!(
        &item[3..6],
        &[planar[3072 + 1], planar[3072 + 1025], planar[3072 + 2049]]
    );
    assert_eq!(train.label(2), 2);

    let c100 = d.path("cifar-100-binary");
    std::fs::create_dir_all(&c100).unwrap();
    let (rec100, _) = cifar_binary_records(4, 2);
    std::fs::write(c100.join("train.bin"), &rec100).unwrap();
    std::fs::write(c100.join("test.bin"), &rec100).unwrap();
    let fine = read_cifar(&c100, Variant::Cifar100 { coarse: false }, "test").unwrap();
    let coarse = read_cifar(&c100, Variant::Cifar100 { coarse: true }, "test").unwrap();
    assert_eq!(
        (
            fine.label(1),
            coarse.label(1),
            fine.classes(),
            coarse.classes()
        ),
        (2, 1, 100, 20)
    );

    let py = d.path("cifar-10-batches-py");
    std::fs::create_dir_all(&py).unwrap();
    let labels = [3u8, 9, 0];
    for name in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ] {
        std::fs::write(
            py.join(name),
            cifar_batch_pickle("labels", &labels, &planar, 3),
        )
        .unwrap();
    }
    let test = read_cifar(&py, Variant::Cifar10, "test").unwrap();
    assert_eq!((test.len(), test.label(1)), (3, 9));
    assert_eq!(test.item(1).pixels, train.item(1).pixels);

    // Bad inputs: a truncated record, a missing batch, a wrong folder.
    std::fs::write(bin.join("test_batch.bin"), &rec[..rec.len() - 5]).unwrap();
    let e = err(read_cifar(&bin, Variant::Cifar10, "test"));
    assert!(
        e.contains("test_batch.bin") && e.contains("3073-byte"),
        "{e}"
    );
    std::fs::remove_file(bin.join("data_batch_4.bin")).unwrap();
    assert!(err(read_cifar(&bin, Variant::Cifar10, "train")).contains("data_batch_4.bin"));
    assert!(
        err(read_cifar(&d.path("nowhere"), Variant::Cifar10, "train")).contains("not a folder")
    );
    assert!(err(read_cifar(&py, Variant::Cifar10, "val")).contains("split"));
    std::fs::write(py.join("test_batch"), b"\x80\x02garbage").unwrap();
    assert!(err(read_cifar(&py, Variant::Cifar10, "test")).contains("pickle"));
}

fn idx_bytes(kind_dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, kind_dims.len() as u8];
    for d in kind_dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

#[test]
fn idx_raw_and_gz() {
    let d = Dir::new("idx");
    let images: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 256) as u8).collect();
    let img = idx_bytes(&[3, 28, 28], &images);
    let lab = idx_bytes(&[3], &[7, 0, 9]);
    std::fs::write(d.path("img"), &img).unwrap();
    std::fs::write(d.path("lab"), &lab).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&img).unwrap();
    std::fs::write(d.path("img.gz"), gz.finish().unwrap()).unwrap();
    for name in ["img", "img.gz"] {
        let ds = read_idx(&d.path(name), &d.path("lab")).unwrap();
        assert_eq!(
            (ds.len(), ds.shape(), ds.classes(), ds.label(2)),
            (3, [28, 28, 3], 10, 9)
        );
        let px = ds.item(1).pixels;
        assert_eq!(
            &px[..6],
            &[
                images[784],
                images[784],
                images[784],
                images[785],
                images[785],
                images[785]
            ]
        );
    }
    std::fs::write(d.path("short"), &img[..img.len() - 10]).unwrap();
    assert!(err(read_idx(&d.path("short"), &d.path("lab"))).contains("truncated"));
    std::fs::write(d.path("lab2"), idx_bytes(&[2], &[1, 2])).unwrap();
    assert!(err(read_idx(&d.path("img"), &d.path("lab2"))).contains("3 images but"));
    assert!(err(read_idx(&d.path("lab"), &d.path("lab"))).contains("expected 3"));
    std::fs::write(d.path("bad.gz"), [0x1f, 0x8b, 1, 2, 3]).unwrap();
    assert!(err(read_idx(&d.path("bad.gz"), &d.path("lab"))).contains("gzip"));
}

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) {
    crate::png::write_rgb(path, rgb, w as usize, h as usize).unwrap();
}

#[test]
fn png_folders_with_and_without_classes() {
    let d = Dir::new("folder");
    let flat = d.path("gen");
    std::fs::create_dir_all(&flat).unwrap();
    write_png(&flat.join("a.png"), 8, 8, &[200; 8 * 8 * 3]);
    write_png(&flat.join("b.png"), 16, 16, &[10; 16 * 16 * 3]);
    std::fs::write(flat.join("notes.txt"), "ignored").unwrap();
    let ds = read_folder(&flat, 8).unwrap();
    assert_eq!(
        (ds.len(), ds.shape(), ds.label(0), ds.label(1)),
        (2, [8, 8, 3], -1, -1)
    );
    assert!(ds.item(1).pixels.iter().all(|&p| p == 10));

    let classes = d.path("classes");
    for (k, c) in ["cat", "dog"].iter().enumerate() {
        std::fs::create_dir_all(classes.join(c)).unwrap();
        write_png(&classes.join(c).join("x.png"), 4, 4, &[k as u8 * 100; 48]);
    }
    let ds = read_folder(&classes, 4).unwrap();
    assert_eq!(
        (ds.len(), ds.classes(), ds.label(0), ds.label(1)),
        (2, 2, 0, 1)
    );

    let empty = d.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(err(read_folder(&empty, 8)).contains("no PNG or JPEG"));
    std::fs::write(flat.join("c.png"), b"\x89PNG broken").unwrap();
    let e = err(read_folder(&flat, 8));
    assert!(
        e.contains("c.png") && e.contains("not a readable image"),
        "{e}"
    );
}

/// Fuzzing the parsers with proptest: arbitrary bytes and randomly corrupted valid files must
/// give an error or a dataset, never a panic.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_npz(dir: &Dir) -> Vec<u8> {
        let p = dir.path("valid.npz");
        write_zip(
            &p,
            &[
                ("image.npy", npy("|u1", &[2, 4, 4, 3], &pixels(2, 4)), false),
                ("label.npy", npy("<i8", &[2], &labels_i8(&[0, 1])), true),
            ],
        );
        std::fs::read(p).unwrap()
    }

    fn corrupt(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        for (at, v) in edits {
            let n = bytes.len();
            bytes[at % n] = *v;
        }
        bytes.truncate(bytes.len() - cut % bytes.len());
        bytes
    }

    proptest! {
        // 400 cases per run in the test suite; ADAINF_FUZZ_CASES=N for a longer fuzzing session.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("ADAINF_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn npy_and_pickle_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = super::super::npy::parse_header(&bytes);
            let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = super::super::npy::parse_header(&with_magic);
            let _ = super::super::pickle::load(&bytes);
            let mut proto = vec![0x80, 0x02];
            proto.extend_from_slice(&bytes);
            let _ = super::super::pickle::load(&proto);
        }

        #[test]
        fn corrupted_npz_idx_and_cifar_files_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let dir = Dir::new("fuzz");
            let npz = dir.path("f.npz");
            std::fs::write(&npz, corrupt(valid_npz(&dir), &edits, cut)).unwrap();
            let _ = read_npz(&npz, &NpzOptions::default());
            let img = dir.path("img");
            std::fs::write(&img, corrupt(idx_bytes(&[2, 3, 3], &[7; 18]), &edits, cut)).unwrap();
            let lab = dir.path("lab");
            std::fs::write(&lab, corrupt(idx_bytes(&[2], &[1, 2]), &edits, cut / 3)).unwrap();
            let _ = read_idx(&img, &lab);
            let c = dir.path("cifar-10-batches-bin");
            std::fs::create_dir_all(&c).unwrap();
            let (rec, _) = cifar_binary_records(1, 1);
            std::fs::write(c.join("test_batch.bin"), corrupt(rec, &edits, cut)).unwrap();
            let _ = read_cifar(&c, Variant::Cifar10, "test");
            let py = dir.path("cifar-10-batches-py");
            std::fs::create_dir_all(&py).unwrap();
            std::fs::write(py.join("test_batch"), corrupt(cifar_batch_pickle("labels", &[1], &[9; 3072], 1), &edits, cut)).unwrap();
            let _ = read_cifar(&py, Variant::Cifar10, "test");
        }
    }
}

#[cfg(unix)]
#[test]
fn fifos_devices_and_folders_are_refused_before_they_are_read() {
    let d = Dir::new("special");
    let fifo = d.path("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(d.path("lab"), idx_bytes(&[1], &[0])).unwrap();
    // Opening a FIFO for reading would block until a writer comes: these return at once.
    for e in [
        err(read_idx(&fifo, &d.path("lab"))),
        err(read_npz(&fifo, &NpzOptions::default())),
        err(read_idx(Path::new("/dev/zero"), &d.path("lab"))),
    ] {
        assert!(e.contains("not a regular file"), "{e}");
    }
    assert!(err(read_npz(&d.0, &NpzOptions::default())).contains("is a folder"));
}

#[test]
fn idx_reads_stop_at_the_declared_size() {
    let d = Dir::new("idx-bounds");
    std::fs::write(d.path("lab"), idx_bytes(&[1], &[3])).unwrap();
    // A gzip bomb: 64 declared pixels followed by 16 MB of zeros; inflating stops after 65.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&idx_bytes(&[1, 8, 8], &vec![0; 16 << 20]))
        .unwrap();
    std::fs::write(d.path("bomb.gz"), gz.finish().unwrap()).unwrap();
    let e = err(read_idx(&d.path("bomb.gz"), &d.path("lab")));
    assert!(e.contains("more than 64 data bytes"), "{e}");
    // Dimensions whose data cannot fit in memory are refused before anything is allocated.
    std::fs::write(d.path("huge"), idx_bytes(&[65535, 65535, 65535], &[1, 2])).unwrap();
    let e = err(read_idx(&d.path("huge"), &d.path("lab")));
    assert!(
        e.contains("declares dimensions") && e.contains("1.1 PB"),
        "{e}"
    );
}

#[test]
fn npz_members_inflate_no_further_than_declared() {
    let d = Dir::new("npz-bomb");
    let path = d.path("bomb.npz");
    let px = vec![0u8; 1 << 20];
    write_zip(
        &path,
        &[
            ("image.npy", npy("|u1", &[1, 1024, 1024, 1], &px), true),
            ("label.npy", labels_i8(&[0]), true),
        ],
    );
    // Declare 1000 bytes for the image member in the central directory (offset 24 of its
    // entry): the archive lies about a member that inflates to a megabyte.
    let mut bytes = std::fs::read(&path).unwrap();
    let central = bytes
        .windows(4)
        .position(|w| w == 0x0201_4b50u32.to_le_bytes())
        .unwrap();
    bytes[central + 24..central + 28].copy_from_slice(&1000u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let e = err(read_npz(&path, &NpzOptions::default()));
    assert!(e.contains("inflates to more than 1000 bytes"), "{e}");
}
