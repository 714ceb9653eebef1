//! The core library's error type: every failure a user can cause, phrased for people
//! (what went wrong, where, how to fix it). The host adds script positions on top.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid option `{key}`: {reason}")]
    Config { key: String, reason: String },
    /// Two datasets that must agree (shape, classes) do not.
    #[error("{0}")]
    Data(String),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// The requested compute device is not available.
    #[error("{0}")]
    Device(String),
    /// Training diverged or produced non-finite numbers.
    #[error("{0}")]
    Numeric(String),
    /// The run was cancelled (Ctrl-C or a file-watch reload).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }
    pub fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
