//! Files written whole and atomically (a temporary name, then a rename): what the run folders
//! and caches of every layer write with.

use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Refuses to write `path` unless it names a regular file or nothing yet: a folder, a link, a
/// FIFO or a device is never replaced by a file (nor written into: a FIFO would block), and an
/// empty name is no file.
pub fn check_replaceable(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(Error::file(
            path,
            "this is not a file name: give the path of a file to write",
        ));
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => Err(Error::file(
            path,
            "this is not a regular file (a folder, a link, a FIFO or a device): adainf replaces only regular files; choose another path, or remove it first",
        )),
        _ => Ok(()),
    }
}

/// Creates the folder `dir` and the folders above it where they are missing (a run folder, a
/// runs folder). Where that fails, the error names the path in the way and what to do (a
/// file standing at a folder's name, a link to nothing) instead of the system's "File exists".
pub fn create_folder(dir: &Path) -> Result<()> {
    let Err(e) = fs::create_dir_all(dir) else {
        return Ok(());
    };
    let mut ancestors: Vec<&Path> = dir
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    ancestors.reverse();
    for p in ancestors {
        let Ok(meta) = fs::symlink_metadata(p) else {
            break;
        };
        if meta.file_type().is_symlink() && fs::metadata(p).is_err() {
            let target = fs::read_link(p).unwrap_or_default();
            return Err(Error::file(
                p,
                format!(
                    "this is a link to {}, which does not exist, so the folder {} cannot be made; create the folder it points to, or remove the link",
                    target.display(),
                    dir.display()
                ),
            ));
        }
        if !p.is_dir() {
            let reason = if p == dir {
                "a file stands where this folder is to be made; move or remove it".to_string()
            } else {
                format!(
                    "this is a file, not a folder, so the folder {} cannot be made in it; move or remove it, or choose another folder",
                    dir.display()
                )
            };
            return Err(Error::file(p, reason));
        }
    }
    Err(Error::file(dir, format!("cannot create the folder: {e}")))
}

/// Creates the folders `path` is to be written in (a file the user names: a plot, a table, a
/// report), where they are missing.
pub fn create_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fs::create_dir_all(parent).map_err(|e| Error::file(parent, e)),
        None => Ok(()),
    }
}

/// Writes `path` through a temporary file renamed into place. The temporary name is unique to
/// the process and the call, so two processes writing the same file never share it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    check_replaceable(path)?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    fs::write(&tmp, contents).map_err(|e| Error::file(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}

/// Writes `value` as pretty-printed JSON, atomically (`write_atomic`).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::file(path, e))?;
    write_atomic(path, text.as_bytes())
}
