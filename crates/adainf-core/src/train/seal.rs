//! The seal of a finished run, and of a checkpoint: the SHA-256 of each file that makes the
//! result, written last. A finished run is one whose seal exists; every load checks the seal
//! against the files (the small records on every load, the weights whenever they are used), so
//! a run folder edited, truncated or partly deleted after it finished is reported, never
//! served.
//!
//! Reading every weight file on every load made a cached rerun slow (88% of a 20-run
//! ResNet-18 sweep's rerun went to SHA-256 and reading), so a finished run also keeps
//! `verified.json`: how each file looked (size, device and inode, modification and change
//! times) when its digest was last found right. A file that still looks exactly the same is
//! not read again. Any write, truncation, replacement or copy changes a file's change time
//! (which no tool sets back) or its inode; a file is only stamped once its change time is a
//! few seconds old, so a later write cannot share the stamped time (file times are coarse).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::files::write_json;

/// A finished run's seal.
pub const SEAL_FILE: &str = "seal.json";

/// The records of a finished pretraining run, checked each time it is loaded (small files).
pub const RECORDS: [&str; 3] = ["config.json", "result.json", "metrics.jsonl"];

/// The weights of a finished pretraining run, checked each time they are used.
pub const WEIGHTS: [&str; 4] = [
    "backbone.bpk",
    "projector.bpk",
    "probe.bpk",
    "backbone.safetensors",
];

/// Every sealed file of a finished pretraining run: its records and weights. (Other run kinds
/// seal their own files with the same functions.)
pub fn pretrain_files() -> Vec<&'static str> {
    RECORDS.iter().chain(&WEIGHTS).copied().collect()
}

/// How each file of a finished run looked when its digest was last found right.
pub const STAMPS_FILE: &str = "verified.json";

/// A file is stamped only once its change time is this much older than the clock.
const STAMP_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// How a file looks to `stat`: what any change to it changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Look {
    len: u64,
    dev: u64,
    ino: u64,
    /// Modification and change times, (seconds, nanoseconds).
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Look {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<Look> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Look {
            len: m.len(),
            dev: m.dev(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// Without change times a look proves nothing: every check reads the file.
    #[cfg(not(unix))]
    fn of(_: &Path) -> Option<Look> {
        None
    }

    /// Whether the file last changed at least `STAMP_AGE` before `now`.
    fn settled(&self, now: std::time::SystemTime) -> bool {
        let secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let changed = self.ctime.0 as f64 + self.ctime.1 as f64 * 1e-9;
        secs - changed >= STAMP_AGE.as_secs_f64()
    }
}

/// One entry of `verified.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    digest: String,
    look: Look,
}

/// `seal.json`: file name → SHA-256 (hex) of its contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// Digest of each sealed file.
    pub files: BTreeMap<String, String>,
}

/// The SHA-256 of a file's contents, in hex (read in chunks: any size, bounded memory).
pub fn digest_file(path: &Path) -> std::io::Result<String> {
    #[cfg(test)]
    READS.with(|r| r.set(r.get() + 1));
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The digests of `names` in `dir` (each must exist).
pub fn digests(dir: &Path, names: &[&str]) -> Result<BTreeMap<String, String>> {
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            digest_file(&path)
                .map(|d| (name.to_string(), d))
                .map_err(|e| Error::file(&path, format!("cannot read it to seal the run: {e}")))
        })
        .collect()
}

/// Seals the finished run in `dir`: the digests of its `files` (records and results); written
/// last.
pub fn write(dir: &Path, files: &[&str]) -> Result<()> {
    let seal = Seal {
        files: digests(dir, files)?,
    };
    write_json(&dir.join(SEAL_FILE), &seal)
}

/// Whether the run in `dir` is sealed (finished).
pub fn is_sealed(dir: &Path) -> bool {
    dir.join(SEAL_FILE).is_file()
}

/// Checks `names` in `dir` against `digests`; the error names the first file that differs
/// (or is missing) and says what to do.
pub fn check(dir: &Path, digests: &BTreeMap<String, String>, names: &[&str]) -> Result<()> {
    for name in names {
        check_one(dir, digests, name, &|name, how| changed(dir, name, how))?;
    }
    Ok(())
}

/// What a check reports when file `name` of a folder differs from its seal (`how`: the way it
/// differs); `changed` says it of a run, other owners of sealed folders say it their way.
pub type Changed<'a> = &'a dyn Fn(&str, &str) -> Error;

fn check_one(
    dir: &Path,
    digests: &BTreeMap<String, String>,
    name: &str,
    changed: Changed,
) -> Result<()> {
    let path = dir.join(name);
    let Some(want) = digests.get(name) else {
        return Err(changed(name, "it is not in the seal"));
    };
    match digest_file(&path) {
        Ok(got) if &got == want => Ok(()),
        Ok(_) => Err(changed(name, "its SHA-256 differs from the sealed one")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(changed(name, "it is missing")),
        Err(e) => Err(Error::file(&path, e)),
    }
}

/// `check` for a finished run, skipping the files that look as they did when last found
/// right (`verified.json`), and stamping those it read and found right.
fn check_stamped(
    dir: &Path,
    digests: &BTreeMap<String, String>,
    names: &[&str],
    now: std::time::SystemTime,
    changed: Changed,
) -> Result<()> {
    let stamps_path = dir.join(STAMPS_FILE);
    let mut stamps: BTreeMap<String, Stamp> = std::fs::read_to_string(&stamps_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut stamped = false;
    for name in names {
        let before = Look::of(&dir.join(name));
        if let (Some(look), Some(stamp), Some(want)) =
            (&before, stamps.get(*name), digests.get(*name))
            && stamp.look == *look
            && &stamp.digest == want
        {
            continue;
        }
        check_one(dir, digests, name, changed)?;
        // Stamped only if the file did not change while it was read, and changed long enough
        // ago that a later change gets another change time.
        let after = Look::of(&dir.join(name));
        if let Some(look) = after.filter(|a| Some(a) == before.as_ref() && a.settled(now)) {
            let digest = digests[*name].clone();
            stamps.insert(name.to_string(), Stamp { digest, look });
            stamped = true;
        }
    }
    if stamped {
        // Best effort: in a folder that cannot be written, every check reads the files.
        let _ = write_json(&stamps_path, &stamps);
    }
    Ok(())
}

/// Whether `dir` holds a finished run whose `files` no longer match its seal.
pub fn damaged(dir: &Path, files: &[&str]) -> bool {
    is_sealed(dir) && verify(dir, files).is_err()
}

/// Checks `names` of the sealed run in `dir` against its seal.
pub fn verify(dir: &Path, names: &[&str]) -> Result<()> {
    verify_as(dir, names, &|name, how| changed(dir, name, how))
}

/// `verify`, with `changed` phrasing the error when a file differs from the seal (or the seal
/// cannot be read).
pub fn verify_as(dir: &Path, names: &[&str], changed: Changed) -> Result<()> {
    let seal = read(dir, changed)?;
    check_stamped(
        dir,
        &seal.files,
        names,
        std::time::SystemTime::now(),
        changed,
    )
}

/// The seal of the finished folder `dir`.
fn read(dir: &Path, changed: Changed) -> Result<Seal> {
    let path = dir.join(SEAL_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    serde_json::from_str(&text).map_err(|e| changed(SEAL_FILE, &format!("it cannot be read ({e})")))
}

/// The sealed SHA-256 of file `name` of the finished folder `dir` (`changed` phrases the error
/// when the seal cannot be read or does not hold it); the file itself is not read.
pub fn sealed_digest(dir: &Path, name: &str, changed: Changed) -> Result<String> {
    read(dir, changed)?
        .files
        .remove(name)
        .ok_or_else(|| changed(name, "it is not in the seal"))
}

#[cfg(test)]
thread_local! {
    /// Files this thread has read to digest them (tests of the stamps).
    static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The error of a finished run whose file `name` differs from its seal (`how`).
pub fn changed(dir: &Path, name: &str, how: &str) -> Error {
    Error::file(
        dir.join(name),
        format!(
            "this run's files changed after it finished ({how}), so its results cannot be trusted; run the script again with --retry-failed to train it again, or delete the folder {}",
            dir.display()
        ),
    )
}

/// Makes a finished (or damaged) run in `dir` unfinished again, to be trained from the start:
/// removes its seal, its sealed `files`, evaluations and checkpoints (its claim, request and
/// logs stay).
pub fn discard(dir: &Path, files: &[&str]) -> Result<()> {
    for path in [SEAL_FILE, STAMPS_FILE]
        .iter()
        .chain(files)
        .map(|n| dir.join(n))
    {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::file(&path, e));
            }
            _ => {}
        }
    }
    for folder in ["evals", "checkpoint", "checkpoint.old", "checkpoint.tmp"] {
        let path = dir.join(folder);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::file(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_truncated_or_missing_file_is_reported_by_name() {
        let dir = std::env::temp_dir().join(format!("adainf-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in RECORDS.iter().chain(&WEIGHTS) {
            std::fs::write(dir.join(name), format!("contents of {name}")).unwrap();
        }
        write(&dir, &pretrain_files()).unwrap();
        assert!(is_sealed(&dir));
        verify(&dir, &RECORDS).unwrap();
        verify(&dir, &WEIGHTS).unwrap();
        // SHA-256("abc"), the FIPS 180-2 example: the digest is the real one.
        std::fs::write(dir.join("abc"), "abc").unwrap();
        assert_eq!(
            digest_file(&dir.join("abc")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // One changed byte, a truncation, a deletion: each named.
        std::fs::write(dir.join("result.json"), "contents of result.jsoN").unwrap();
        let e = verify(&dir, &RECORDS).unwrap_err().to_string();
        assert!(e.contains("result.json") && e.contains("differs"), "{e}");
        assert!(e.contains("--retry-failed"), "{e}");
        std::fs::write(dir.join("result.json"), "contents of result.json").unwrap();
        verify(&dir, &RECORDS).unwrap();
        std::fs::write(dir.join("backbone.bpk"), "contents").unwrap();
        let e = verify(&dir, &WEIGHTS).unwrap_err().to_string();
        assert!(e.contains("backbone.bpk"), "{e}");
        std::fs::remove_file(dir.join("metrics.jsonl")).unwrap();
        let e = verify(&dir, &RECORDS).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl") && e.contains("missing"), "{e}");
        discard(&dir, &pretrain_files()).unwrap();
        assert!(!is_sealed(&dir) && !dir.join("backbone.bpk").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reads of files to digest them during `f`.
    fn reads(f: impl FnOnce()) -> usize {
        let before = READS.with(std::cell::Cell::get);
        f();
        READS.with(std::cell::Cell::get) - before
    }

    #[test]
    fn a_file_that_looks_the_same_is_not_read_again_and_any_change_is_still_found() {
        let dir = std::env::temp_dir().join(format!("adainf-stamps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in RECORDS.iter().chain(&WEIGHTS) {
            std::fs::write(dir.join(name), format!("contents of {name}")).unwrap();
        }
        write(&dir, &pretrain_files()).unwrap();
        let seal: Seal =
            serde_json::from_str(&std::fs::read_to_string(dir.join(SEAL_FILE)).unwrap()).unwrap();
        let now = std::time::SystemTime::now;
        let later = || now() + std::time::Duration::from_secs(10);
        // Files that changed just now are read every time, and not stamped.
        let check = |at: std::time::SystemTime| {
            check_stamped(&dir, &seal.files, &WEIGHTS, at, &|n, h| changed(&dir, n, h))
        };
        assert_eq!(reads(|| check(now()).unwrap()), 4);
        assert_eq!(reads(|| check(now()).unwrap()), 4);
        assert!(!dir.join(STAMPS_FILE).exists());
        // Once settled, they are read once more and stamped, then not read again.
        assert_eq!(reads(|| check(later()).unwrap()), 4);
        assert_eq!(reads(|| check(later()).unwrap()), 0);
        // A change of the same size with the modification time set back is still found: the
        // change time moved (after a pause longer than the clock tick of file times; in use,
        // `STAMP_AGE` is that pause).
        std::thread::sleep(std::time::Duration::from_millis(50));
        let path = dir.join("backbone.bpk");
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, "contents of backbone.bpK").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let e = check(later()).unwrap_err().to_string();
        assert!(e.contains("backbone.bpk") && e.contains("differs"), "{e}");
        // Replaced by a copy of the right contents (a new inode): read, found right.
        std::fs::write(&path, "contents of backbone.bpk").unwrap();
        assert_eq!(reads(|| check(later()).unwrap()), 1);
        // A seal edited to another digest is not vouched for by the stamps.
        let mut other = seal.clone();
        other.files.insert("probe.bpk".into(), "0".repeat(64));
        let e = check_stamped(&dir, &other.files, &WEIGHTS, later(), &|n, h| {
            changed(&dir, n, h)
        })
        .unwrap_err();
        assert!(e.to_string().contains("probe.bpk"), "{e}");
        discard(&dir, &pretrain_files()).unwrap();
        assert!(!dir.join(STAMPS_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
