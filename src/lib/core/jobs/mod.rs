//! Jobs (seed 003's pipelines), pure: what a job asks for ([`spec`]), where it
//! is ([`state`]: steps in order, statuses derived, cancellation), and its
//! retained output ([`log`]: a bounded ring that says what it dropped). The
//! runtime spawns the processes and feeds outcomes in; time comes in as unix
//! nanoseconds.

pub mod log;
pub mod spec;
pub mod state;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

/// Seed 003's status of a step, and of a job (derived from its steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not started yet.
    Pending,
    /// Its process runs.
    Running,
    /// Exited 0 (a job: every step completed, or failed with `continue_on_error`).
    Completed,
    /// Exited non-zero, was killed by a signal, timed out or did not start.
    Failed,
    /// Stopped by `gsp cancel`, or never run because an earlier step failed.
    Cancelled,
}

impl Status {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether nothing will change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}
