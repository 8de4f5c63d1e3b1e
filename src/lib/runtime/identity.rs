//! A node's identity on disk: `<data_dir>/node_id`, created on first start, and an
//! exclusive lock so two nodes never share one data directory (and one id).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use crate::core::ids::{InvalidId, NodeId};

/// Errors loading or creating the identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The data directory could not be created or read.
    #[error("cannot use data dir {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the data directory.
    #[error("data dir {0} is in use by another gsp node (lock file held)")]
    Locked(PathBuf),
    /// The stored id is malformed.
    #[error("{path} holds an invalid node id: {source}")]
    BadId {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: InvalidId,
    },
}

/// A node's persistent identity plus this run's incarnation.
#[derive(Debug)]
pub struct Identity {
    /// Stable node id.
    pub node_id: NodeId,
    /// Grows on every start: the start time in unix nanoseconds, as Fabric's inc_num.
    pub incarnation: u64,
    /// Where persisted state lives; `None` for an ephemeral identity.
    data_dir: Option<PathBuf>,
    /// Held for the life of the node; dropping it releases the data dir.
    _lock: Option<File>,
}

impl Identity {
    /// An identity that is not persisted (in-process bench and test nodes).
    pub fn ephemeral() -> Self {
        Self {
            node_id: NodeId::random(),
            incarnation: crate::clock::unix_ns_u64(),
            data_dir: None,
            _lock: None,
        }
    }

    /// Loads `<dir>/node_id`, creating the directory and the id on first start, and
    /// locks the directory for this process.
    ///
    /// # Errors
    /// The directory cannot be created or locked, or the stored id is invalid.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IdentityError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(IdentityError::Locked(dir.to_path_buf()));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let id_path = dir.join("node_id");
        let node_id = match fs::read_to_string(&id_path) {
            Ok(s) => NodeId::parse(s.trim()).map_err(|source| IdentityError::BadId {
                path: id_path.clone(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = NodeId::random();
                write_atomic(&id_path, format!("{id}\n").as_bytes()).map_err(io_err(&id_path))?;
                id
            }
            Err(e) => return Err(io_err(&id_path)(e)),
        };
        Ok(Self {
            node_id,
            incarnation: crate::clock::unix_ns_u64(),
            data_dir: Some(dir.to_path_buf()),
            _lock: Some(lock),
        })
    }

    /// The data directory this identity was loaded from and locks, if any.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so readers never
/// see a partial file.
///
/// # Errors
/// Any I/O error.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_as(path, data, None)
}

/// [`write_atomic`], the file readable and writable by this user only (it
/// may hold secrets: the environment of jobs).
///
/// # Errors
/// Any I/O error.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_as(path, data, Some(0o600))
}

fn write_atomic_as(path: &Path, data: &[u8], mode: Option<u32>) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = write_then_rename(path, &tmp, data, mode);
    if written.is_err() {
        // Nothing half-written stays behind (a full disk leaves an empty file).
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_then_rename(path: &Path, tmp: &Path, data: &[u8], mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if let Some(m) = mode {
            options.mode(m);
        }
        let mut f = options.open(tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    // The rename itself is durable once the directory is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_atomic_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // The rename cannot replace a non-empty directory.
        let target = dir.path().join("state.json");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"x").unwrap();
        assert!(write_atomic(&target, b"{}").is_err());
        assert!(
            !dir.path().join("state.tmp").exists(),
            "the temporary file stayed"
        );
    }

    #[test]
    fn id_persists_and_incarnation_grows() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        let (id, inc) = (first.node_id.clone(), first.incarnation);
        drop(first);
        let second = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(second.node_id, id);
        assert!(second.incarnation > inc);
    }

    #[test]
    fn a_data_dir_cannot_be_shared() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Identity::load_or_create(dir.path()).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Locked(_)), "{err}");
    }

    #[test]
    fn a_corrupt_id_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("node_id"), "has space\n").unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("node_id"), "{err}");
    }
}
