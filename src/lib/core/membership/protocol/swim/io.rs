//! What the SWIM cycle takes and gives: inputs, actions and timers.

use std::time::{Duration, Instant};

use crate::{
    ids::NodeId,
    membership::{ProbeTarget, record::SharedRecord},
};

/// Names one probe (also the `seq` of its pings).
pub type ProbeId = u64;

/// A timer the runtime sets on the machine's behalf; when it fires, it comes
/// back as [`Input::Timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The next round.
    Round,
    /// The direct ping of a probe had its time.
    DirectTimeout(ProbeId),
    /// The indirect window of a probe closed.
    ProbeEnd(ProbeId),
    /// The peers asked about an expired suspect had their time.
    AskEnd(ProbeId),
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A timer fired.
    Timer(Timer),
    /// A direct ping of the probe came back: answered by its target (`true`),
    /// or failed (refused, answered by another node, timed out).
    Ping {
        /// The probe.
        probe: ProbeId,
        /// Whether the target answered.
        acked: bool,
    },
    /// A helper's answer to an indirect probe: `Some(ack)`, or `None` when the
    /// helper itself did not answer.
    Indirect {
        /// The probe.
        probe: ProbeId,
        /// The helper's verdict.
        ack: Option<bool>,
    },
    /// A peer asked about an expired suspect answered (its records already
    /// merged) or failed.
    Asked {
        /// The probe.
        probe: ProbeId,
    },
    /// Claims wait for a check ([`crate::membership::Membership::has_claims_due`]
    /// said so after records were merged): start what is due.
    Claims,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ping `target` directly; merge its answer with
    /// [`crate::membership::Membership::apply_answer`], then report with
    /// [`Input::Ping`].
    Ping {
        /// The probe (the ping's `seq`).
        probe: ProbeId,
        /// Whom.
        target: ProbeTarget,
        /// How long to wait.
        timeout: Duration,
        /// Updates to piggyback.
        updates: Vec<SharedRecord>,
        /// Ask the target to put its own record first in its answer (a check).
        want_record: bool,
    },
    /// Ask `helper` to ping `target`; report with [`Input::Indirect`].
    PingReq {
        /// The probe.
        probe: ProbeId,
        /// The helper.
        helper: ProbeTarget,
        /// The node to probe.
        target: ProbeTarget,
        /// How long the helper waits for the target.
        helper_timeout: Duration,
        /// How long to wait for the helper.
        timeout: Duration,
        /// Updates to piggyback.
        updates: Vec<SharedRecord>,
    },
    /// Ask `peer` for its record of `about` (a push-pull `Records` request);
    /// merge what comes back, then report with [`Input::Asked`].
    AskRecord {
        /// The probe.
        probe: ProbeId,
        /// Whom to ask.
        peer: ProbeTarget,
        /// The suspect.
        about: NodeId,
        /// How long to wait.
        timeout: Duration,
    },
    /// Push updates to a member.
    Gossip {
        /// Whom.
        to: ProbeTarget,
        /// What.
        updates: Vec<SharedRecord>,
        /// How long the push may take.
        timeout: Duration,
    },
    /// Run a push-pull exchange with `to` (nothing to report back).
    Sync {
        /// Whom.
        to: ProbeTarget,
    },
    /// Feed [`Input::Timer`] back at `at` (a timer set again replaces nothing:
    /// stale timers are ignored when they fire).
    SetTimer {
        /// When.
        at: Instant,
        /// Which.
        timer: Timer,
    },
}
