//! `<data_dir>/jobs.json`: the records of the jobs this node runs and ran
//! (spec, statuses, who started and cancelled them; not their output;
//! readable by the node's user only, as the steps' environment may hold
//! secrets),
//! rewritten atomically after every change by one writer task that always
//! writes the latest records, and read back on start.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{core::jobs::state::JobState, runtime::identity::write_private};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "jobs.json";
const SCHEMA: &str = "gsp.jobs-state.v1";

#[derive(Serialize, Deserialize)]
struct OnDisk {
    schema: String,
    jobs: Vec<Record>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    actor: String,
    state: JobState,
}

/// Where one node's job records live.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store in `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        Self {
            path: dir.as_ref().join(FILE_NAME),
        }
    }

    /// The records saved last, or none (a missing file is a first start; an
    /// unreadable one is logged and set aside as `jobs.json.bad`).
    pub fn load(&self) -> Vec<(String, String, JobState)> {
        let raw = match std::fs::read(&self.path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot read the job records");
                return Vec::new();
            }
        };
        match serde_json::from_slice::<OnDisk>(&raw) {
            Ok(d) if d.schema == SCHEMA => d
                .jobs
                .into_iter()
                .map(|r| (r.id, r.actor, r.state))
                .collect(),
            Ok(d) => {
                warn!(path = %self.path.display(), schema = %d.schema, "unknown job records schema; ignored");
                Vec::new()
            }
            Err(e) => {
                let bad = self.path.with_extension("json.bad");
                let _ = std::fs::rename(&self.path, &bad);
                warn!(path = %self.path.display(), moved_to = %bad.display(), error = %e,
                    "job records unreadable; set aside, starting with none");
                Vec::new()
            }
        }
    }

    /// Writes `records` (errors are logged; jobs run on without records).
    pub fn save(&self, records: &[(String, String, JobState)]) {
        let doc = OnDisk {
            schema: SCHEMA.to_owned(),
            jobs: records
                .iter()
                .map(|(id, actor, state)| Record {
                    id: id.clone(),
                    actor: actor.clone(),
                    state: state.clone(),
                })
                .collect(),
        };
        let result = serde_json::to_vec(&doc)
            .map_err(std::io::Error::other)
            .and_then(|data| write_private(&self.path, &data));
        if let Err(e) = result {
            warn!(path = %self.path.display(), error = %e, "cannot save the job records");
        }
    }
}
