//! The core library's error type: every failure a user can cause, phrased for people
//! (what went wrong, where, how to fix it). The host adds script positions on top.

use std::path::PathBuf;

/// A failure of the core library, with a message meant for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid option `{key}`: {reason}")]
    Config {
        /// The option's name, as the user writes it.
        key: String,
        /// What is wrong with its value, and how to fix it.
        reason: String,
    },
    /// A problem with data or recorded runs: sets that must agree (shape, classes) do not, a
    /// file changed under a run request, a run id that names no run or several.
    #[error("{0}")]
    Data(String),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file or folder concerned.
        path: PathBuf,
        /// What failed, with the underlying error.
        reason: String,
    },
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
    /// An `Error::Config` for the option `key`.
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }
    /// An `Error::File` for `path`, with `reason` turned into text.
    pub fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

/// A result whose error is the core library's `Error`.
pub type Result<T> = std::result::Result<T, Error>;

/// Parses `name` as a value of a closed set whose accepted names are `names`; otherwise a config
/// error on `key` that lists them (`unknown <key> "<name>"; use one of a, b`). Every typed enum
/// of the options parses through it.
pub fn parse_one_of<T: std::str::FromStr>(key: &str, name: &str, names: &[&str]) -> Result<T> {
    name.parse().map_err(|_| {
        Error::config(
            key,
            format!("unknown {key} \"{name}\"; use one of {}", names.join(", ")),
        )
    })
}
