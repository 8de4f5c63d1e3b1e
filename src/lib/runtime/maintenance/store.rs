//! `<data_dir>/maintenance.json`: the maintenance state and the audit trail,
//! rewritten atomically on every change and read back on start.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    core::maintenance::{
        MaintStatus,
        audit::{AuditEntry, AuditLog},
    },
    runtime::state_file::{self, StateFileError},
};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "maintenance.json";
const SCHEMA: &str = "gsp.maintenance-state.v1";

/// A state file that cannot be used.
pub type StoreError = StateFileError;

#[derive(Serialize, Deserialize)]
struct OnDisk {
    schema: String,
    current: MaintStatus,
    #[serde(default)]
    audit: Vec<AuditEntry>,
}

/// The persisted state of one node.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store in `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// Reads the state and fills `audit`; a missing file is a node never
    /// changed (normal).
    ///
    /// # Errors
    /// The file cannot be read or is not a state file.
    pub fn load(&self, audit: &mut AuditLog) -> Result<MaintStatus, StoreError> {
        let Some(disk) =
            state_file::load::<OnDisk>(&self.path, "maintenance state", SCHEMA, |d| &d.schema)?
        else {
            return Ok(MaintStatus::default());
        };
        for e in disk.audit {
            audit.push(e);
        }
        Ok(disk.current)
    }

    /// Replaces the file with `current` and `audit`, atomically and durably.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, current: &MaintStatus, audit: &AuditLog) -> Result<(), StoreError> {
        let disk = OnDisk {
            schema: SCHEMA.to_owned(),
            current: current.clone(),
            audit: audit.entries().cloned().collect(),
        };
        state_file::save(&self.path, &disk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::maintenance::Maintenance;

    #[test]
    fn state_and_audit_survive_a_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::in_dir(dir.path());
        let mut audit = AuditLog::new(10);
        assert_eq!(
            store.load(&mut audit).expect("missing is normal"),
            MaintStatus::default()
        );
        let status = MaintStatus {
            state: Maintenance::Disabled,
            reason: "rack 4 power".into(),
            actor: "alice".into(),
            changed_unix_ns: 5,
        };
        audit.push(AuditEntry {
            node_id: "n1".into(),
            previous_state: Maintenance::Normal,
            state: Maintenance::Disabled,
            reason: "rack 4 power".into(),
            actor: "alice".into(),
            changed_unix_ns: 5,
        });
        store.save(&status, &audit).expect("save");
        let mut back = AuditLog::new(10);
        assert_eq!(store.load(&mut back).expect("load"), status);
        assert_eq!(back, audit);
    }

    #[test]
    fn a_corrupt_file_is_named_not_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE_NAME), "{not json").expect("write");
        let err = Store::in_dir(dir.path())
            .load(&mut AuditLog::new(1))
            .expect_err("corrupt");
        assert!(err.to_string().contains(FILE_NAME), "{err}");
    }
}
