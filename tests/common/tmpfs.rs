//! A tiny tmpfs for tests of a full disk: mounted on a temporary directory
//! (root only), unmounted when dropped. Without root the test is skipped,
//! saying so, unless `GSP_NETNS_REQUIRED=1` (CI, as root: the suites that
//! need root must run there), where it fails.

use std::{path::Path, process::Command};

/// A mounted tmpfs.
pub struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    /// Mounts a tmpfs of `bytes` (a skip, or a failure under
    /// `GSP_NETNS_REQUIRED=1`, when it cannot be mounted).
    #[allow(clippy::print_stderr, reason = "a skipped test says so")]
    pub fn mount(bytes: u64, test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Self { dir }),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            !std::env::var("GSP_NETNS_REQUIRED").is_ok_and(|v| v == "1"),
            "{test}: cannot mount a tmpfs and GSP_NETNS_REQUIRED=1: {why}"
        );
        eprintln!("{test} SKIPPED: cannot mount a tmpfs (needs root): {why}");
        None
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills it: a file grown until the filesystem refuses more.
    pub fn fill(&self) {
        use std::io::Write as _;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        // The last partial write may have taken a few bytes: fill those too.
        while f.write_all(&[0]).is_ok() {}
    }

    /// Frees what [`Self::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
