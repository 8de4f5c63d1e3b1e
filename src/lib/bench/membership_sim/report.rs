//! What [`super::run`] measured.

use serde::Serialize;

/// What a simulation measured.
#[derive(Debug, Clone, Serialize)]
pub struct MembershipSimReport {
    /// Nodes.
    pub nodes: usize,
    /// Rounds until every node listed every node alive (`None`: not within
    /// `max_rounds`).
    pub join_rounds: Option<u32>,
    /// Rounds after convergence until every node's gossip queue was empty
    /// (the join's retransmissions over).
    pub settle_rounds: Option<u32>,
    /// Estimated bytes each node sent and received per round, once idle.
    pub idle_bytes_per_node_per_round: f64,
    /// Messages each node sent per round, once idle.
    pub idle_messages_per_node_per_round: f64,
    /// Nodes crashed.
    pub crashed: usize,
    /// Rounds until every live node listed every crashed node dead (`None`:
    /// not within `max_rounds`).
    pub detection_rounds: Option<u32>,
    /// Dead events about nodes that were running, on any node.
    pub false_positives: u64,
    /// Suspect events about nodes that were running, on any node.
    pub false_suspicions: u64,
    /// Running nodes cut off from the rest (0: no partition, or it did not
    /// split within `max_rounds`). Its suspicions and deaths are not counted
    /// in the two figures above.
    pub partitioned: usize,
    /// Rounds until the rest listed every cut-off node down.
    pub split_rounds: Option<u32>,
    /// Rounds from the heal until every running node listed every running
    /// node alive (`None`: not within `max_rounds`).
    pub heal_rounds: Option<u32>,
    /// Nodes heard of second-hand and listed after answering a probe, summed
    /// over every node (a mass join without vouching costs N^2 of them).
    pub admitted_by_probe: u64,
    /// Nodes heard of second-hand and listed because a second member host
    /// introduced them too, summed over every node.
    pub admitted_by_vouch: u64,
    /// Nodes heard of second-hand and listed at once on their own signature
    /// (a mutual-TLS cluster: `membership.records_signed`), summed over every
    /// node.
    pub admitted_signed: u64,
    /// Messages sent in the whole run.
    pub messages: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time, in seconds.
    pub simulated_secs: f64,
}
