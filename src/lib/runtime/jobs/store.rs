//! `<data_dir>/jobs.json`: the records of the jobs this node runs and ran
//! (spec, statuses, who started and cancelled them; not their output;
//! readable by the node's user only, as the steps' environment may hold
//! secrets),
//! rewritten atomically after every change by one writer task that always
//! writes the latest records, and read back on start.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::job::Job;
use crate::{core::jobs::state::JobState, runtime::identity::write_private};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "jobs.json";
const SCHEMA: &str = "gsp.jobs-state.v1";

#[derive(Deserialize)]
struct OnDisk {
    schema: String,
    jobs: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    id: String,
    actor: String,
    state: JobState,
}

/// [`Record`] borrowed, for writing.
#[derive(Serialize)]
struct RecordRef<'a> {
    id: &'a str,
    actor: &'a str,
    state: &'a JobState,
}

/// Appends one job's record as `jobs.json` holds it (nothing if it cannot
/// be encoded: a state is plain data, so only a serde bug could do that, and
/// the record would then be missing, not the file broken).
pub(super) fn encode_record(id: &str, actor: &str, state: &JobState, out: &mut Vec<u8>) {
    let start = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, &RecordRef { id, actor, state }) {
        out.truncate(start);
        warn!(job = id, error = %e, "cannot encode a job record");
    }
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

    /// Writes the records of `jobs` (errors are logged; jobs run on without
    /// records).
    pub fn save(&self, jobs: &[Arc<Job>]) {
        let mut data = Vec::with_capacity(4096);
        data.extend_from_slice(br#"{"schema":""#);
        data.extend_from_slice(SCHEMA.as_bytes());
        data.extend_from_slice(br#"","jobs":["#);
        for (i, job) in jobs.iter().enumerate() {
            let before = data.len();
            if i > 0 {
                data.push(b',');
            }
            let at = data.len();
            job.encode_record(&mut data);
            if data.len() == at {
                data.truncate(before);
            }
        }
        data.extend_from_slice(b"]}");
        if let Err(e) = write_private(&self.path, &data) {
            warn!(path = %self.path.display(), error = %e, "cannot save the job records");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::jobs::{
        Status,
        spec::{JobSpec, StepSpec},
        state::Outcome,
    };

    fn job(id: &str) -> Arc<Job> {
        let spec = JobSpec {
            name: id.into(),
            steps: vec![StepSpec::new("s", vec!["true".into()])],
            workdir: None,
        }
        .normalize()
        .expect("valid spec");
        Arc::new(Job::new(
            id.into(),
            "alice".into(),
            JobState::new(spec, 1),
            1024,
        ))
    }

    #[test]
    fn records_round_trip_and_a_running_job_is_saved_as_it_is_now() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::in_dir(dir.path());
        let (done, running) = (job("000000000001"), job("000000000002"));
        done.update(|s| {
            let i = s.start_next(2).expect("a step");
            s.finish_step(i, Outcome::Exited(0), 3);
            s.start_next(3);
        });
        store.save(&[Arc::clone(&done), Arc::clone(&running)]);
        running.update(|s| s.start_next(4));
        // The finished record is reused as encoded; the running one is not.
        store.save(&[Arc::clone(&done), Arc::clone(&running)]);
        let loaded = store.load();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].0, "000000000001");
        assert_eq!(loaded[0].1, "alice");
        assert_eq!(loaded[0].2, done.lock().state);
        assert_eq!(loaded[0].2.status(), Status::Completed);
        assert_eq!(loaded[1].2.status(), Status::Running);
        assert_eq!(loaded[1].2, running.lock().state);
        store.save(&[]);
        assert!(store.load().is_empty());
    }
}
