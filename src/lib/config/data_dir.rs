//! Where a node keeps its state when `--data-dir` and `data_dir` say nothing:
//! a per-user state directory (`$XDG_STATE_HOME/gsp`, `~/.local/state/gsp`),
//! or `/var/lib/gsp` as root, so starting from another directory never creates
//! a second identity. A `./gsp-data` with a node id in it (the default before)
//! is still found and used, and the node says so.

use std::path::{Path, PathBuf};

/// The data directory of earlier versions, relative to the working directory.
pub const LEGACY_DATA_DIR: &str = "gsp-data";
/// Root's default.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/gsp";

/// What the choice depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataDirEnv {
    /// `./gsp-data/node_id` exists.
    pub legacy_exists: bool,
    /// Running as root.
    pub is_root: bool,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl DataDirEnv {
    /// Read from this process.
    pub fn from_process() -> Self {
        #[cfg(unix)]
        let is_root = {
            use std::os::unix::fs::MetadataExt as _;
            // /proc/self belongs to the process's effective user.
            std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
        };
        #[cfg(not(unix))]
        let is_root = false;
        Self {
            legacy_exists: Path::new(LEGACY_DATA_DIR).join("node_id").is_file(),
            is_root,
            xdg_state_home: std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// The default data directory, and a note to log when the choice is worth
/// telling (the old location found, or no home to put it in).
pub fn default_data_dir(env: &DataDirEnv) -> (PathBuf, Option<String>) {
    let chosen = if env.is_root {
        Some(PathBuf::from(SYSTEM_DATA_DIR))
    } else {
        // The XDG spec: a relative $XDG_STATE_HOME is invalid and ignored.
        env.xdg_state_home
            .as_ref()
            .filter(|p| p.is_absolute())
            .map(|p| p.join("gsp"))
            .or_else(|| {
                env.home
                    .as_ref()
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".local/state/gsp"))
            })
    };
    if env.legacy_exists {
        let new = chosen.map_or_else(String::new, |p| {
            format!(" (the default is now {})", p.display())
        });
        return (
            PathBuf::from(LEGACY_DATA_DIR),
            Some(format!(
                "using the data dir ./{LEGACY_DATA_DIR} found in the working directory{new}; pass --data-dir to choose"
            )),
        );
    }
    match chosen {
        Some(p) => (p, None),
        None => (
            PathBuf::from(LEGACY_DATA_DIR),
            Some(format!(
                "neither $XDG_STATE_HOME nor $HOME is set: the data dir is ./{LEGACY_DATA_DIR}; pass --data-dir to choose"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_a_state_dir_and_root_gets_var_lib() {
        let user = DataDirEnv {
            home: Some("/home/ann".into()),
            ..DataDirEnv::default()
        };
        assert_eq!(
            default_data_dir(&user),
            (PathBuf::from("/home/ann/.local/state/gsp"), None)
        );
        let xdg = DataDirEnv {
            xdg_state_home: Some("/srv/state".into()),
            ..user.clone()
        };
        assert_eq!(default_data_dir(&xdg).0, PathBuf::from("/srv/state/gsp"));
        let relative = DataDirEnv {
            xdg_state_home: Some("state".into()),
            ..user.clone()
        };
        assert_eq!(
            default_data_dir(&relative).0,
            PathBuf::from("/home/ann/.local/state/gsp"),
            "a relative XDG_STATE_HOME is ignored"
        );
        let root = DataDirEnv {
            is_root: true,
            ..user
        };
        assert_eq!(
            default_data_dir(&root),
            (PathBuf::from(SYSTEM_DATA_DIR), None)
        );
    }

    #[test]
    fn the_old_directory_is_still_used_and_said() {
        let env = DataDirEnv {
            legacy_exists: true,
            home: Some("/home/ann".into()),
            ..DataDirEnv::default()
        };
        let (dir, note) = default_data_dir(&env);
        assert_eq!(dir, PathBuf::from(LEGACY_DATA_DIR));
        let note = note.expect("said");
        assert!(note.contains("/home/ann/.local/state/gsp"), "{note}");
        let (dir, note) = default_data_dir(&DataDirEnv::default());
        assert_eq!(dir, PathBuf::from(LEGACY_DATA_DIR));
        assert!(note.expect("said").contains("$HOME"));
    }
}
