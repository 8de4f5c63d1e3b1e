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
    /// Urgent changes waiting go out (see `upkeep.rs`).
    Spread,
    /// The periodic push-pull.
    AntiEntropy,
    /// The reconnect interval: one dead member and one absent seed are tried.
    Reconnect,
    /// Unknown nodes waiting for a verification retry are looked at again.
    Verify,
    /// Dead members may be tried again after a heal (at most once a round).
    Heal,
    /// The next attempt on seed (or earlier-run peer) number `.0`.
    Join(u32),
}

/// Why a push-pull beside the probe rounds runs ([`Action::Exchange`]); it
/// comes back in [`Input::Exchanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// Joining through seed number `seed`, attempt `attempt`; if it fails,
    /// the next attempt comes `retry_in` later.
    Join {
        /// The seed's number (in the order seeds were added).
        seed: u32,
        /// 1 for the first attempt.
        attempt: u32,
        /// The wait before the next attempt, if this one fails.
        retry_in: Duration,
    },
    /// A peer known in an earlier run, tried while no other member is known.
    Rejoin {
        /// Its number among the seeds.
        seed: u32,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A dead member, tried at the reconnect interval.
    Reconnect,
    /// A seed at whose address no up member is known (a partition outlasted
    /// the node TTL, or the seed restarted elsewhere).
    AbsentSeed,
    /// A dead member tried at once because another came back.
    Retry,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The state changed ([`crate::membership::Membership::needs_upkeep`]
    /// said so after records were merged): start what is due (checks of
    /// claims, urgent pushes, verifications, joins, retries after a heal).
    Changed,
    /// A push-pull of [`Action::Exchange`] ended: completed (`ok`) or failed.
    Exchanged {
        /// Why it ran.
        why: Exchange,
        /// Whether it completed.
        ok: bool,
    },
    /// A verification probe of [`Action::Verify`] ended: the node answered as
    /// itself (the runtime merges what it sent after reporting), or not.
    Verified {
        /// The unknown node.
        id: NodeId,
        /// Whether it answered as itself.
        answered: bool,
    },
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
    /// Run a push-pull exchange with the node at `to` (an address: seeds
    /// are known by address only), then report with [`Input::Exchanged`].
    Exchange {
        /// The address.
        to: String,
        /// Why.
        why: Exchange,
    },
    /// Ping a node heard of second-hand at its record's address: it is
    /// listed if it answers as itself. Report with [`Input::Verified`], then
    /// merge what it sent, charged to its host.
    Verify {
        /// The unknown node.
        target: ProbeTarget,
        /// Updates to piggyback.
        updates: Vec<SharedRecord>,
        /// How long to wait (a verification is not failure detection: a
        /// node answering late is still itself).
        timeout: Duration,
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
