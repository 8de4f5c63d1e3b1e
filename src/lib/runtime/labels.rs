//! The node's labels at run time: the configured labels (replaced on SIGHUP)
//! with the operators' overlay (`gsp labels set/unset/reset`) applied,
//! persisted in `<data_dir>/labels.json`, published in the gossiped record
//! with a version bump on every change, and audited.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};
use tracing::info;

use super::{
    membership::{MembershipAgent, now},
    state_file::{self, StateFileError},
};
use crate::core::labels::{self, LabelChange, LabelError, LabelsTransition, Overrides};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "labels.json";
const SCHEMA: &str = "gsp.labels-state.v1";

/// A labels change that was not made.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// The request was invalid.
    #[error(transparent)]
    Invalid(#[from] LabelError),
    /// The file could not be read, parsed or written.
    #[error(transparent)]
    File(#[from] StateFileError),
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    schema: String,
    overrides: Overrides,
}

/// Reads the overlay persisted in `data_dir` (none without a data dir or file).
///
/// # Errors
/// The file exists but cannot be read or parsed.
pub fn load(data_dir: Option<&Path>) -> Result<Overrides, LabelsError> {
    let Some(dir) = data_dir else {
        return Ok(Overrides::default());
    };
    let disk = state_file::load::<OnDisk>(&dir.join(FILE_NAME), "labels", SCHEMA, |d| &d.schema)?;
    Ok(disk.map(|d| d.overrides).unwrap_or_default())
}

/// What `gsp labels show` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsStatus {
    /// The labels published.
    pub effective: BTreeMap<String, String>,
    /// The labels the configuration gives.
    pub configured: BTreeMap<String, String>,
    /// The operators' overlay.
    pub overrides: Overrides,
}

struct State {
    configured: BTreeMap<String, String>,
    overrides: Overrides,
}

/// The labels of the running node. Cheap to clone.
#[derive(Clone)]
pub struct LabelsControl {
    state: Arc<Mutex<State>>,
    file: Option<PathBuf>,
    agent: MembershipAgent,
}

impl std::fmt::Debug for LabelsControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelsControl")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl LabelsControl {
    /// Takes over `configured` and `overrides` (their effect already in the
    /// agent's record, see [`labels::effective`]); changes go to `data_dir`.
    pub fn new(
        configured: BTreeMap<String, String>,
        overrides: Overrides,
        data_dir: Option<&Path>,
        agent: MembershipAgent,
    ) -> Self {
        if !overrides.entries.is_empty() {
            info!(
                changed = overrides.entries.len(),
                actor = %overrides.actor,
                "labels changed at run time restored from {FILE_NAME} (they win over the configuration until `gsp labels reset`)"
            );
        }
        Self {
            state: Arc::new(Mutex::new(State {
                configured,
                overrides,
            })),
            file: data_dir.map(|d| d.join(FILE_NAME)),
            agent,
        }
    }

    /// The labels now.
    pub fn status(&self) -> LabelsStatus {
        let s = self.lock();
        LabelsStatus {
            effective: labels::effective(&s.configured, &s.overrides),
            configured: s.configured.clone(),
            overrides: s.overrides.clone(),
        }
    }

    /// Applies an operator's change: persisted first (a change that cannot be
    /// saved is not made), then published and audited.
    ///
    /// # Errors
    /// The request is invalid or the file cannot be written.
    pub fn change(&self, change: LabelChange) -> Result<LabelsTransition, LabelsError> {
        let actor = change.actor.clone();
        let (set, unset, reset) = (
            change.set.clone(),
            change.unset.clone(),
            change.reset.clone(),
        );
        let reset_all = change.reset_all;
        let mut s = self.lock();
        let t = labels::apply(&s.configured, &s.overrides, change, now().unix_ns)?;
        if t.overrides != s.overrides {
            self.save(&t.overrides)?;
            s.overrides = t.overrides.clone();
        }
        if t.changed() {
            let published = t.after.clone();
            self.agent
                .with_state(|m| m.update_local(now(), |r| r.labels = published));
        }
        drop(s);
        info!(
            target: "audit",
            node_id = %self.agent.local_id(),
            actor = %actor,
            set = ?set,
            unset = ?unset,
            reset = ?reset,
            reset_all,
            changed = t.changed(),
            "labels changed"
        );
        Ok(t)
    }

    /// A reloaded configuration: publishes the new effective labels if they
    /// changed; returns whether they did.
    pub fn reload_config(&self, configured: BTreeMap<String, String>) -> bool {
        let mut s = self.lock();
        let before = labels::effective(&s.configured, &s.overrides);
        s.configured = configured;
        let after = labels::effective(&s.configured, &s.overrides);
        if before == after {
            return false;
        }
        // Published under the lock, so records go out in the order of changes.
        self.agent
            .with_state(|m| m.update_local(now(), |r| r.labels = after));
        true
    }

    fn save(&self, overrides: &Overrides) -> Result<(), LabelsError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let disk = OnDisk {
            schema: SCHEMA.to_owned(),
            overrides: overrides.clone(),
        };
        Ok(state_file::save(path, &disk)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
