//! One job's record as the journal holds it: written by the job ([`encode_record`],
//! cached once final), read back by the store ([`Record`]).

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::core::jobs::state::JobState;

/// A job's line in the journal (and an entry of the old `jobs.json`).
#[derive(Deserialize)]
pub(super) struct Record {
    pub(super) id: String,
    pub(super) actor: String,
    pub(super) state: JobState,
}

/// [`Record`] borrowed, for writing.
#[derive(Serialize)]
struct RecordRef<'a> {
    id: &'a str,
    actor: &'a str,
    state: &'a JobState,
}

/// The line that drops a job from the journal.
#[derive(Serialize)]
pub(super) struct Forget<'a> {
    pub(super) forget: &'a str,
}

/// Appends one job's record as the journal holds it, without the newline
/// (nothing if it cannot be encoded: a state is plain data, so only a serde
/// bug could do that, and the record would then be missing, not the file
/// broken).
pub(super) fn encode_record(id: &str, actor: &str, state: &JobState, out: &mut Vec<u8>) {
    let start = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, &RecordRef { id, actor, state }) {
        out.truncate(start);
        warn!(job = id, error = %e, "cannot encode a job record");
    }
}
