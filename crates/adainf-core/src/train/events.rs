//! `train::events`, the training loop's TensorBoard sink: event files. A run folder gets `events.out.tfevents.<time>.
//! <host>.<pid>.<n>` files: TFRecord framing (length, masked CRC32C of the length, an `Event`
//! protobuf, masked CRC32C of the data) around hand-encoded `Event`s: the file version, scalars
//! (`Summary.Value.simple_value`), PNG images (`Summary.Image`) and the HParams plugin's session
//! start and end (`HParamsPluginData`). The few messages are encoded by hand (field numbers
//! from tensorflow/core/util/event.proto, framework/summary.proto and tensorboard's
//! plugins/hparams/api.proto and plugin_data.proto), so no protobuf code generation is needed.
//! (The registry's writer, tensorboard-rs 0.5.9, pulls in protobuf 2 and image 0.23, writes no
//! HParams and cannot read files back, which resuming needs; CRC32C comes from the `crc32c`
//! crate, already in the dependency tree.)
//! `RunEvents` is what a training run writes: one new file per process start, the metric rows
//! as scalars under stable tags, the augmentation preview at step 0 and the run's config as
//! HParams; a resumed run first drops the steps after its checkpoint from the older files, so
//! every step is in exactly one file (and marks the restart with a `SessionLog` START, so a
//! TensorBoard that read the older files before drops those steps too).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::Device;
use serde_json::Value;

use crate::augment::ViewPair;
use crate::augment::preview::preview_rgb;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::train::run::{MetricRow, RunSpec, write_atomic};

/// Prefix of every event file's name (TensorBoard reads files whose name contains `tfevents`).
pub const FILE_PREFIX: &str = "events.out.tfevents.";
/// The run's augmentation preview, also kept as a PNG beside the event files (for reports).
pub const PREVIEW_FILE: &str = "preview.png";
/// TensorBoard tag of the augmentation preview image.
pub const PREVIEW_TAG: &str = "aug/preview";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// The TensorBoard tag of a metric row's field: the stable names for the standard fields,
/// `train/<field>` for any other (so a new per-step field needs no code here).
pub fn scalar_tag(field: &str) -> String {
    match field {
        "probe_acc" => "probe/accuracy".into(),
        other => format!("train/{other}"),
    }
}

/// The scalars of a metric row: every numeric field but `step`, in the row's field order,
/// found through its JSON form (fields added to `MetricRow` are written without code here).
pub fn row_scalars(row: &MetricRow) -> Vec<(String, f64)> {
    match serde_json::to_value(row) {
        Ok(Value::Object(map)) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "step")
            .filter_map(|(k, v)| v.as_f64().map(|x| (scalar_tag(k), x)))
            .collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// CRC32C and the record framing.

/// CRC32C (Castagnoli) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// TFRecord's masked CRC: rotate right by 15 and add a constant.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The records of a TFRecord file's bytes, up to the first one that is torn or fails its CRC
/// (a process killed while writing leaves at most a torn last record).
pub fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap_or([0; 4]));
        if masked_crc(len_bytes) != len_crc {
            break;
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8])) as usize;
        let start = at + 12;
        let Some(end) = start.checked_add(len).filter(|e| e + 4 <= bytes.len()) else {
            break;
        };
        let data = &bytes[start..end];
        let crc = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap_or([0; 4]));
        if masked_crc(data) != crc {
            break;
        }
        out.push(data);
        at = end + 4;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Protobuf encoding (the wire format's varints, fixed-width numbers and length-delimited fields).

#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u64) {
        self.varint(((field as u64) << 3) | wire);
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn double(&mut self, field: u32, v: f64) -> &mut Self {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }
    fn msg(&mut self, field: u32, m: &Pb) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// A value of the run's HParams (`google.protobuf.Value`: number, string or bool).
#[derive(Clone, Debug, PartialEq)]
pub enum HValue {
    /// `number_value`.
    Number(f64),
    /// `string_value`.
    Text(String),
    /// `bool_value`.
    Bool(bool),
}

impl HValue {
    fn encode(&self) -> Pb {
        let mut v = Pb::default();
        match self {
            HValue::Number(x) => v.double(2, *x),
            HValue::Text(s) => v.bytes(3, s.as_bytes()),
            HValue::Bool(b) => v.int(4, *b as i64),
        };
        v
    }
    /// The HParams value of a JSON scalar (None for null, arrays and objects).
    pub fn of_json(v: &Value) -> Option<HValue> {
        match v {
            Value::Number(n) => n.as_f64().map(HValue::Number),
            Value::String(s) => Some(HValue::Text(s.clone())),
            Value::Bool(b) => Some(HValue::Bool(*b)),
            _ => None,
        }
    }
}

/// An `Event` with `wall_time` and `step` set.
fn event(wall_time: f64, step: i64) -> Pb {
    let mut e = Pb::default();
    e.double(1, wall_time).int(2, step);
    e
}

/// An `Event` holding one `Summary` of `values`.
fn summary_event(wall_time: f64, step: i64, values: &[Pb]) -> Vec<u8> {
    let mut summary = Pb::default();
    for v in values {
        summary.msg(1, v);
    }
    let mut e = event(wall_time, step);
    e.msg(5, &summary);
    e.0
}

fn scalar_value(tag: &str, v: f64) -> Pb {
    let mut value = Pb::default();
    value.bytes(1, tag.as_bytes()).float(2, v as f32);
    value
}

fn image_value(tag: &str, png: &[u8], width: usize, height: usize) -> Pb {
    let mut image = Pb::default();
    image
        .int(1, height as i64)
        .int(2, width as i64)
        .int(3, 3)
        .bytes(4, png);
    let mut value = Pb::default();
    value.bytes(1, tag.as_bytes()).msg(4, &image);
    value
}

/// A `Summary.Value` that carries only HParams plugin data (`HParamsPluginData` field `field`).
fn hparams_value(tag: &str, field: u32, content: &Pb) -> Pb {
    let mut data = Pb::default();
    data.int(1, 0).msg(field, content);
    let mut plugin = Pb::default();
    plugin.bytes(1, b"hparams").msg(2, &data);
    let mut metadata = Pb::default();
    metadata.msg(1, &plugin);
    let mut value = Pb::default();
    value.bytes(1, tag.as_bytes()).msg(9, &metadata);
    value
}

/// What a decoded event record holds that matters for resuming: its step and its tags.
#[derive(Debug, Default, PartialEq)]
pub struct EventInfo {
    /// `Event.step` (0 when absent).
    pub step: i64,
    /// The tags of its summary values.
    pub tags: Vec<String>,
    /// `Event.file_version`, if set.
    pub file_version: Option<String>,
}

/// Reads one varint at `*at`.
fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// One field of a message: its number, its varint value (0 for others) and its payload
/// (empty for varints).
type Field<'a> = (u32, u64, &'a [u8]);

/// The fields of a message.
fn fields(b: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = read_varint(b, &mut at)?;
        let (field, wire) = ((key >> 3) as u32, key & 7);
        match wire {
            0 => out.push((field, read_varint(b, &mut at)?, &b[0..0])),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                let payload = b.get(at..at + n)?;
                at += n;
                out.push((field, 0, payload));
            }
            2 => {
                let n = read_varint(b, &mut at)? as usize;
                let payload = b.get(at..at.checked_add(n)?)?;
                at += n;
                out.push((field, 0, payload));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Decodes the step, summary tags and file version of an `Event` (None if it is not one).
pub fn event_info(record: &[u8]) -> Option<EventInfo> {
    let mut info = EventInfo::default();
    for (field, v, payload) in fields(record)? {
        match field {
            2 => info.step = v as i64,
            3 => info.file_version = Some(String::from_utf8_lossy(payload).into_owned()),
            5 => {
                for (f, _, value) in fields(payload)? {
                    if f == 1 {
                        for (vf, _, tag) in fields(value)? {
                            if vf == 1 {
                                info.tags.push(String::from_utf8_lossy(tag).into_owned());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(info)
}

// ---------------------------------------------------------------------------------------------
// Files.

/// The event files of `dir`, sorted by name (the order TensorBoard reads them in).
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(FILE_PREFIX))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn host_name() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An event file being written: each event is framed and written at once (TensorBoard shows
/// a live run's points as they come).
pub struct EventWriter {
    file: fs::File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates a new event file in `dir` (a unique name: time, host, process id and a counter)
    /// and writes the file-version event.
    pub fn create(dir: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = now();
        let name = format!(
            "{FILE_PREFIX}{}.{}.{}.{n}",
            t as u64,
            host_name(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::file(&path, format!("cannot create the event file: {e}")))?;
        let mut w = EventWriter { file, path };
        let mut e = Pb::default();
        e.double(1, t).bytes(3, b"brain.Event:2");
        w.write(&e.0)?;
        Ok(w)
    }
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    fn write(&mut self, event: &[u8]) -> Result<()> {
        self.file
            .write_all(&frame(event))
            .map_err(|e| Error::file(&self.path, e))
    }
    /// Scalars at `step`, one summary value each.
    pub fn scalars(&mut self, step: usize, values: &[(String, f64)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let values: Vec<Pb> = values.iter().map(|(t, v)| scalar_value(t, *v)).collect();
        self.write(&summary_event(now(), step as i64, &values))
    }
    /// A PNG image at `step`.
    pub fn image(
        &mut self,
        step: usize,
        tag: &str,
        png: &[u8],
        width: usize,
        height: usize,
    ) -> Result<()> {
        let value = image_value(tag, png, width, height);
        self.write(&summary_event(now(), step as i64, &[value]))
    }
    /// The HParams session start: the run's hyper-parameters, grouped under `group`.
    pub fn session_start(&mut self, hparams: &[(String, HValue)], group: &str) -> Result<()> {
        let mut info = Pb::default();
        for (k, v) in hparams {
            let mut entry = Pb::default();
            entry.bytes(1, k.as_bytes()).msg(2, &v.encode());
            info.msg(1, &entry);
        }
        info.bytes(4, group.as_bytes()).double(5, now());
        let value = hparams_value(SESSION_START_TAG, 3, &info);
        self.write(&summary_event(now(), 0, &[value]))
    }
    /// A `SessionLog` START at `step`: a TensorBoard that already read the older files drops
    /// their points at `step` and later (the resumed run writes those steps again).
    pub fn restart(&mut self, step: usize) -> Result<()> {
        let mut log = Pb::default();
        log.int(1, 1);
        let mut e = event(now(), step as i64);
        e.msg(7, &log);
        self.write(&e.0)
    }
    /// The HParams session end (status success) at `step`.
    pub fn session_end(&mut self, step: usize) -> Result<()> {
        let mut info = Pb::default();
        info.int(1, 1).double(2, now());
        let value = hparams_value(SESSION_END_TAG, 4, &info);
        self.write(&summary_event(now(), step as i64, &[value]))
    }
}

/// Removes the events after `last_step` from the event files of `dir` (each file rewritten
/// atomically when it changes); returns the tags that remain at steps up to `last_step`.
pub fn truncate_after(dir: &Path, last_step: usize) -> Result<Vec<String>> {
    let mut kept_tags = Vec::new();
    for path in event_files(dir) {
        let bytes = fs::read(&path).map_err(|e| Error::file(&path, e))?;
        let all = records(&bytes);
        let mut kept = Vec::new();
        for r in &all {
            match event_info(r) {
                Some(info) if info.step <= last_step as i64 => {
                    kept_tags.extend(info.tags);
                    kept.extend(frame(r));
                }
                _ => {}
            }
        }
        if kept.len() != bytes.len() {
            write_atomic(&path, &kept)?;
        }
    }
    Ok(kept_tags)
}

/// The HParams of a run: its config's scalar fields, the augmentation's name, the training
/// set's description, size and recipe attributes (`dup`, ...), then the script's tags (which
/// win over a config field of the same name).
pub fn run_hparams(spec: &RunSpec, tags: &serde_json::Map<String, Value>) -> Vec<(String, HValue)> {
    let mut out: Vec<(String, HValue)> = Vec::new();
    let mut put = |k: &str, v: HValue| match out.iter_mut().find(|(name, _)| name == k) {
        Some(slot) => slot.1 = v,
        None => out.push((k.to_string(), v)),
    };
    if let Ok(Value::Object(config)) = serde_json::to_value(&spec.config) {
        for (k, v) in &config {
            if let Some(h) = HValue::of_json(v) {
                put(k, h);
            }
        }
    }
    put("aug", HValue::Text(spec.aug.name.clone()));
    put("data", HValue::Text(spec.data.description.clone()));
    put("n_train", HValue::Number(spec.data.len as f64));
    for (k, v) in &spec.data.attributes {
        put(
            k,
            v.parse::<f64>()
                .map_or(HValue::Text(v.clone()), HValue::Number),
        );
    }
    for (k, v) in tags {
        if let Some(h) = HValue::of_json(v) {
            put(k, h);
        }
    }
    out
}

/// A PNG of the augmentation preview with its size.
pub struct Preview {
    /// The PNG file's bytes.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// Images in the preview of a run's augmentation.
const PREVIEW_IMAGES: usize = 6;

/// The preview grid of `aug` on images of `data` (`aug::preview`'s grid) as a PNG. Its
/// randomness is fixed (seed 0), so the runs of one setting that differ only in their seed
/// share their preview.
pub fn preview(data: &Dataset, aug: &ViewPair, device: &Device) -> Result<Preview> {
    let (rgb, width, height) = preview_rgb(data, aug, PREVIEW_IMAGES, 0, device)?;
    Ok(Preview {
        png: crate::png::encode_rgb(&rgb, width, height)?,
        width,
        height,
    })
}

/// The event file a training run writes in this process.
pub struct RunEvents {
    writer: EventWriter,
}

impl RunEvents {
    /// Starts the run's event file for a process that trains from `first_step` on: the older
    /// files lose their events after `first_step` (those steps run again); the HParams
    /// session and the preview (at step 0) are written unless an older file holds them.
    /// The preview is also written to `preview.png`.
    pub fn start(
        dir: &Path,
        spec: &RunSpec,
        first_step: usize,
        preview: impl FnOnce() -> Result<Preview>,
    ) -> Result<Self> {
        let kept = truncate_after(dir, first_step)?;
        let mut writer = EventWriter::create(dir)?;
        if first_step > 0 {
            writer.restart(first_step + 1)?;
        }
        if !kept.iter().any(|t| t == SESSION_START_TAG) {
            let tags = fs::read_to_string(dir.join(super::run::REQUEST_FILE))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v.get("tags").and_then(Value::as_object).cloned())
                .unwrap_or_default();
            let group = tags
                .get("setting")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            writer.session_start(&run_hparams(spec, &tags), &group)?;
        }
        if !kept.iter().any(|t| t == PREVIEW_TAG) {
            let p = preview()?;
            writer.image(0, PREVIEW_TAG, &p.png, p.width, p.height)?;
            write_atomic(&dir.join(PREVIEW_FILE), &p.png)?;
        }
        Ok(RunEvents { writer })
    }
    /// A metric row's scalars at its step.
    pub fn row(&mut self, row: &MetricRow) -> Result<()> {
        self.writer.scalars(row.step, &row_scalars(row))
    }
    /// The run finished after `steps` steps.
    pub fn finish(&mut self, steps: usize) -> Result<()> {
        self.writer.session_end(steps)
    }
}

/// Writes one evaluation result of a finished run (e.g. `eval/knn`) at step `step`, in a new
/// event file of its own.
pub fn write_eval(dir: &Path, tag: &str, step: usize, value: f64) -> Result<()> {
    EventWriter::create(dir)?.scalars(step, &[(tag.to_string(), value)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC32C check values from RFC 3720 (iSCSI), B.4, and the standard "123456789" check.
    #[test]
    fn crc32c_matches_published_check_values() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
    }

    /// Framed records read back; a torn last record or a flipped bit ends the reading there.
    #[test]
    fn frames_round_trip_and_torn_records_are_dropped() {
        let a = frame(b"first");
        let b = frame(b"second record");
        let mut bytes = [a.clone(), b.clone()].concat();
        assert_eq!(records(&bytes), vec![&b"first"[..], &b"second record"[..]]);
        bytes.truncate(bytes.len() - 3);
        assert_eq!(records(&bytes), vec![&b"first"[..]]);
        let mut flipped = a.clone();
        flipped[14] ^= 1;
        assert!(records(&flipped).is_empty());
    }

    #[test]
    fn events_decode_their_step_and_tags() {
        let values = [
            scalar_value("train/loss", 1.5),
            scalar_value("train/lr", 0.1),
        ];
        let bytes = summary_event(1.0, 300, &values);
        let info = event_info(&bytes).unwrap();
        assert_eq!(info.step, 300);
        assert_eq!(info.tags, ["train/loss", "train/lr"]);
    }

    #[test]
    fn every_numeric_field_of_a_row_becomes_a_scalar() {
        let row = MetricRow {
            step: 5,
            loss: 2.0,
            lr: 0.1,
            probe_acc: Some(0.5),
            images_per_s: 100.0,
            data_wait: 0.25,
            generated_fraction: Some(0.375),
            strength: Some(0.75),
        };
        let mut got = row_scalars(&row);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want = [
            ("probe/accuracy", 0.5),
            ("train/data_wait", 0.25),
            ("train/generated_fraction", 0.375),
            ("train/images_per_s", 100.0),
            ("train/loss", 2.0),
            ("train/lr", 0.1),
            ("train/strength", 0.75),
        ];
        assert_eq!(
            got,
            want.map(|(t, v)| (t.to_string(), v)).to_vec(),
            "every numeric field but the step, under its tag"
        );
    }
}
