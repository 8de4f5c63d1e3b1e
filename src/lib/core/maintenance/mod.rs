//! Maintenance state (seed 003): normal, maintenance, disabled; who set it,
//! why and when; and the bounded audit trail of changes. Pure: callers pass
//! the time.

pub mod audit;

use serde::{Deserialize, Serialize};

pub use crate::membership::record::Maintenance;

/// Longest reason kept; longer ones are refused (they travel in audit events
/// and are persisted).
pub const MAX_REASON_BYTES: usize = 1024;

/// A node's current maintenance state and its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintStatus {
    /// The state.
    pub state: Maintenance,
    /// Why the operator set it (may be empty).
    pub reason: String,
    /// Who set it: token holder, certificate subject, or `anonymous@ADDR`.
    pub actor: String,
    /// When it was set, unix nanoseconds; 0 for a node that was never changed.
    pub changed_unix_ns: i64,
}

impl Default for MaintStatus {
    fn default() -> Self {
        Self {
            state: Maintenance::Normal,
            reason: String::new(),
            actor: String::new(),
            changed_unix_ns: 0,
        }
    }
}

/// A request to change the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    /// The wanted state.
    pub state: Maintenance,
    /// Why.
    pub reason: String,
    /// Who asks.
    pub actor: String,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The state before.
    pub previous: Maintenance,
    /// The status after (unchanged when the state was already the wanted one).
    pub status: MaintStatus,
    /// Whether anything changed; setting the current state again is a no-op
    /// that still succeeds.
    pub changed: bool,
}

/// A refused change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The reason is over [`MAX_REASON_BYTES`].
    #[error("reason is {len} bytes; at most {MAX_REASON_BYTES} are allowed")]
    ReasonTooLong {
        /// Its length.
        len: usize,
    },
}

/// Applies `req` to `current` at `now_unix_ns`. Every transition between the
/// three states is allowed; asking for the current state changes nothing (the
/// reason, actor and time of the standing change are kept).
///
/// # Errors
/// The reason is too long.
pub fn apply(
    current: &MaintStatus,
    req: ChangeRequest,
    now_unix_ns: i64,
) -> Result<Transition, ChangeError> {
    if req.reason.len() > MAX_REASON_BYTES {
        return Err(ChangeError::ReasonTooLong {
            len: req.reason.len(),
        });
    }
    if req.state == current.state {
        return Ok(Transition {
            previous: current.state,
            status: current.clone(),
            changed: false,
        });
    }
    Ok(Transition {
        previous: current.state,
        status: MaintStatus {
            state: req.state,
            reason: req.reason,
            actor: req.actor,
            changed_unix_ns: now_unix_ns,
        },
        changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Maintenance; 3] = [
        Maintenance::Normal,
        Maintenance::Maintenance,
        Maintenance::Disabled,
    ];

    fn req(state: Maintenance) -> ChangeRequest {
        ChangeRequest {
            state,
            reason: format!("to {state}"),
            actor: "alice".into(),
        }
    }

    #[test]
    fn every_transition_is_allowed_and_recorded() {
        for from in ALL {
            for to in ALL.into_iter().filter(|s| *s != from) {
                let cur = MaintStatus {
                    state: from,
                    ..MaintStatus::default()
                };
                let t = apply(&cur, req(to), 42).expect("allowed");
                assert!(t.changed);
                assert_eq!(t.previous, from);
                assert_eq!(t.status.state, to);
                assert_eq!(t.status.actor, "alice");
                assert_eq!(t.status.reason, format!("to {to}"));
                assert_eq!(t.status.changed_unix_ns, 42);
            }
        }
    }

    #[test]
    fn setting_the_current_state_is_a_no_op_that_succeeds() {
        let cur = MaintStatus {
            state: Maintenance::Maintenance,
            reason: "disk swap".into(),
            actor: "bob".into(),
            changed_unix_ns: 7,
        };
        let t = apply(&cur, req(Maintenance::Maintenance), 99).expect("no-op");
        assert!(!t.changed);
        assert_eq!(t.status, cur);
    }

    #[test]
    fn overlong_reasons_are_refused() {
        let mut r = req(Maintenance::Disabled);
        r.reason = "x".repeat(MAX_REASON_BYTES + 1);
        let err = apply(&MaintStatus::default(), r, 1).expect_err("too long");
        assert!(err.to_string().contains("1025 bytes"));
    }
}
