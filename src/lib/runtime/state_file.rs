//! Small JSON state files in the data dir (`maintenance.json`, `labels.json`):
//! a `schema` field checked on read, rewritten atomically and durably on every
//! change, and an error that names the file.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use super::identity::write_atomic;

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Reading or writing failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// read or write.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is not a state file this version understands.
    #[error("{path} is not a valid {what} file ({reason}); fix or remove it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should hold ("maintenance state", "labels").
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Reads `path` as a `T` whose `schema_of` must be `schema`; None if the file
/// does not exist.
///
/// # Errors
/// The file cannot be read, does not parse, or has another schema.
pub fn load<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
    schema: &str,
    schema_of: impl FnOnce(&T) -> &str,
) -> Result<Option<T>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |reason: String| StateFileError::Corrupt {
        path: path.to_path_buf(),
        what,
        reason,
    };
    let value: T = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let found = schema_of(&value);
    if found != schema {
        return Err(corrupt(format!("schema {found:?}, expected {schema:?}")));
    }
    Ok(Some(value))
}

/// Replaces `path` with `value` as pretty JSON, atomically and durably.
///
/// # Errors
/// The file cannot be written.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), StateFileError> {
    let io_err = |source| StateFileError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| io_err(e.into()))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes).map_err(io_err)
}
