//! Files written whole and atomically (a temporary name, then a rename): what the run folders
//! and caches of every layer write with.

use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `path` through a temporary file renamed into place. The temporary name is unique to
/// the process and the call, so two processes writing the same file never share it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
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
