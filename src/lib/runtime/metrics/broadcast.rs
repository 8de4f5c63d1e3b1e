//! The broadcast engine's part of `/metrics`.

use crate::runtime::{
    broadcast::{BroadcastEngine, stats::get},
    metrics::encode::Out,
};

pub(super) fn render(o: &mut Out, engine: &BroadcastEngine) {
    let s = engine.stats();
    let counters: [(&str, &str, u64); 16] = [
        (
            "gsp_broadcast_originated_total",
            "Broadcasts started on this node.",
            get(&s.originated),
        ),
        (
            "gsp_broadcast_delivered_total",
            "Broadcasts delivered on this node (each once).",
            get(&s.delivered),
        ),
        (
            "gsp_broadcast_duplicates_total",
            "Broadcast payloads received again and dropped.",
            get(&s.duplicates),
        ),
        (
            "gsp_broadcast_refused_total",
            "Broadcast payloads refused (node disabled or stopping).",
            get(&s.refused),
        ),
        (
            "gsp_broadcast_payload_sends_total",
            "Broadcast payload sends put on links.",
            get(&s.payload_sends),
        ),
        (
            "gsp_broadcast_payload_bytes_sent_total",
            "Broadcast payload bytes put on links, retries included.",
            get(&s.payload_bytes_sent),
        ),
        (
            "gsp_broadcast_send_retries_total",
            "Broadcast payload sends retried.",
            get(&s.send_retries),
        ),
        (
            "gsp_broadcast_send_failures_total",
            "Broadcast payload sends abandoned.",
            get(&s.send_failures),
        ),
        (
            "gsp_broadcast_sends_dropped_total",
            "Broadcast payload sends dropped at the in-flight bound.",
            get(&s.sends_dropped),
        ),
        (
            "gsp_broadcast_control_sent_total",
            "Control frames (announcements, wants, digests) sent.",
            get(&s.control_sent),
        ),
        (
            "gsp_broadcast_control_received_total",
            "Control frames received.",
            get(&s.control_received),
        ),
        (
            "gsp_broadcast_timer_runs_total",
            "Runs of the broadcast timer loop (every 20 ms while pulls, assemblies or deadlines wait; once a second when idle).",
            get(&s.timer_runs),
        ),
        (
            "gsp_broadcast_receipts_received_total",
            "Delivery receipts received as origin.",
            get(&s.receipts_received),
        ),
        (
            "gsp_broadcast_local_drops_total",
            "Deliveries lost by slow local subscribers (watchers, on-message).",
            get(&s.local_drops),
        ),
        (
            "gsp_broadcast_unauthenticated_total",
            "Relayed broadcasts refused under TLS: unsigned, or not signed by their origin.",
            get(&s.unauthenticated),
        ),
        (
            "gsp_broadcast_malformed_total",
            "Malformed broadcast traffic refused.",
            get(&s.malformed),
        ),
    ];
    for (name, help, v) in counters {
        o.metric(name, "counter", help, &[("", v)]);
    }
    o.metric(
        "gsp_broadcast_handler_runs_total",
        "counter",
        "On-message command runs, by outcome.",
        &[
            ("outcome=\"started\"", get(&s.handler_runs)),
            ("outcome=\"failed\"", get(&s.handler_failures)),
            ("outcome=\"timed_out\"", get(&s.handler_timeouts)),
        ],
    );
    let c = engine.counters();
    o.metric(
        "gsp_broadcast_announces_dropped_total",
        "counter",
        "Announcements dropped at the per-peer bound.",
        &[("", c.announces_dropped)],
    );
    o.metric(
        "gsp_broadcast_receipts_sent_total",
        "counter",
        "Delivery receipts sent toward origins (acknowledged by the origin's node).",
        &[("", c.receipts_sent)],
    );
    o.metric(
        "gsp_broadcast_receipts_dropped_total",
        "counter",
        "Delivery receipts dropped (over the per-origin bound, every attempt failed, or the origin is gone).",
        &[("", c.receipts_dropped)],
    );
    o.metric(
        "gsp_broadcast_swarms_started_total",
        "counter",
        "Broadcasts started here as a swarm of pieces.",
        &[("", c.swarms_started)],
    );
    o.metric(
        "gsp_broadcast_piece_sends_total",
        "counter",
        "Swarm pieces put on links (origin's, forwards, reroutes), retries included.",
        &[("", get(&s.piece_sends))],
    );
    o.metric(
        "gsp_broadcast_pieces_received_total",
        "counter",
        "Swarm pieces received, by outcome.",
        &[
            ("outcome=\"new\"", c.pieces_received),
            ("outcome=\"duplicate\"", c.pieces_duplicate),
            ("outcome=\"refused\"", c.pieces_refused),
        ],
    );
    o.metric(
        "gsp_broadcast_pieces_rerouted_total",
        "counter",
        "Pieces sent on to the nodes below a peer that could not take them.",
        &[("", c.pieces_rerouted)],
    );
    o.metric(
        "gsp_broadcast_piece_wants_total",
        "counter",
        "Missing swarm pieces asked of a holder (sent: each want of each piece; served: pieces sent to a peer that wanted them).",
        &[
            ("direction=\"sent\"", c.pieces_wanted),
            ("direction=\"served\"", c.pieces_served),
        ],
    );
    o.metric(
        "gsp_broadcast_assemblies_total",
        "counter",
        "Swarm broadcasts assembled here, by outcome (corrupt and stalled ones are pulled whole).",
        &[
            ("outcome=\"assembled\"", c.assembled),
            ("outcome=\"corrupt\"", c.assembly_corrupt),
            ("outcome=\"stalled\"", c.assembly_stalls),
        ],
    );
    let (open, open_bytes) = engine.assemblies();
    o.metric(
        "gsp_broadcast_assemblies",
        "gauge",
        "Swarm broadcasts being assembled here (bounded; see docs/broadcast.md).",
        &[("", open as u64)],
    );
    o.metric(
        "gsp_broadcast_assembly_bytes",
        "gauge",
        "Bytes reserved for them.",
        &[("", open_bytes)],
    );
    let (seen, stored, stored_bytes, pulls, tracked) = engine.table_sizes();
    let gauges: [(&str, &str, u64); 5] = [
        (
            "gsp_broadcast_seen_ids",
            "Broadcast ids remembered (bounded; see --seen-ttl).",
            seen as u64,
        ),
        (
            "gsp_broadcast_stored_messages",
            "Broadcast payloads kept to serve peers.",
            stored as u64,
        ),
        (
            "gsp_broadcast_stored_bytes",
            "Bytes kept for them (payloads plus per-entry overhead).",
            stored_bytes,
        ),
        (
            "gsp_broadcast_pulls",
            "Broadcasts being pulled from peers.",
            pulls as u64,
        ),
        (
            "gsp_broadcast_tracked",
            "Broadcasts from this node awaiting receipts.",
            tracked as u64,
        ),
    ];
    for (name, help, v) in gauges {
        o.metric(name, "gauge", help, &[("", v)]);
    }
    o.histogram(
        "gsp_broadcast_convergence_seconds",
        "As origin: from send to the last receipt, for broadcasts every expected member delivered.",
        s.convergence_seconds.histogram(),
    );
    o.histogram(
        "gsp_broadcast_handler_duration_seconds",
        "How long --on-message commands ran.",
        s.handler_seconds.histogram(),
    );
}
