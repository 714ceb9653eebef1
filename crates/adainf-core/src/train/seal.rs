//! The seal of a finished run, and of a checkpoint: the SHA-256 of each file that makes the
//! result, written last. A finished run is one whose seal exists; every load checks the seal
//! against the files (the small records on every load, the weights whenever they are used), so
//! a run folder edited, truncated or partly deleted after it finished is reported, never
//! served.

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

/// `seal.json`: file name → SHA-256 (hex) of its contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// Digest of each sealed file.
    pub files: BTreeMap<String, String>,
}

/// The SHA-256 of a file's contents, in hex (read in chunks: any size, bounded memory).
pub fn digest_file(path: &Path) -> std::io::Result<String> {
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
        let path = dir.join(name);
        let Some(want) = digests.get(*name) else {
            return Err(changed(dir, name, "it is not in the seal"));
        };
        match digest_file(&path) {
            Ok(got) if &got == want => {}
            Ok(_) => {
                return Err(changed(
                    dir,
                    name,
                    "its SHA-256 differs from the sealed one",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(changed(dir, name, "it is missing"));
            }
            Err(e) => return Err(Error::file(&path, e)),
        }
    }
    Ok(())
}

/// Whether `dir` holds a finished run whose `files` no longer match its seal.
pub fn damaged(dir: &Path, files: &[&str]) -> bool {
    is_sealed(dir) && verify(dir, files).is_err()
}

/// Checks `names` of the sealed run in `dir` against its seal.
pub fn verify(dir: &Path, names: &[&str]) -> Result<()> {
    let path = dir.join(SEAL_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    let seal: Seal = serde_json::from_str(&text)
        .map_err(|e| changed(dir, SEAL_FILE, &format!("it cannot be read ({e})")))?;
    check(dir, &seal.files, names)
}

fn changed(dir: &Path, name: &str, how: &str) -> Error {
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
    for path in [SEAL_FILE].iter().chain(files).map(|n| dir.join(n)) {
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
}
