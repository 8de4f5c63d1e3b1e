//! `/metrics` in the OpenMetrics text format (prometheus-client, see
//! [`encode`]). Counter samples end in `_total`; label values
//! are bounded (states, event kinds).

mod broadcast;
mod encode;
mod process;
mod security;

use std::sync::Arc;

use super::{
    membership::{MembershipAgent, stats::MembershipStats},
    metrics::encode::Out,
};
use crate::{
    core::membership::{events::EventKind, record::MemberState},
    transport::{data_plane::stats::DataPlaneStats, grpc_errors::GrpcErrors, traffic::Traffic},
};

/// What the HTTP side port and `/metrics` report on.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Membership.
    pub agent: MembershipAgent,
    /// Data plane counters.
    pub data_plane: Arc<DataPlaneStats>,
    /// Wire bytes.
    pub traffic: Arc<Traffic>,
    /// gRPC error statuses.
    pub grpc_errors: Arc<GrpcErrors>,
    /// Failed authentications and refused connections.
    pub refusals: Arc<crate::transport::refusals::Refusals>,
    /// The server's connection table.
    pub conns: Arc<crate::transport::tls::conns::ConnTable>,
    /// Broadcast counters and tables.
    pub broadcast: super::broadcast::BroadcastEngine,
    /// Maintenance state and audit trail.
    pub maintenance: super::maintenance::MaintenanceControl,
    /// The TLS settings, for certificate expiry (None: plaintext).
    pub tls: Option<crate::transport::tls::TlsConfig>,
    /// Whether the data dir can be written.
    pub data_dir: Arc<super::data_dir::DataDirHealth>,
    /// The node's jobs (the side port's `/api/jobs`).
    pub jobs: super::jobs::Jobs,
    /// Who may read the side port (`--require-token-for-reads`).
    pub auth: crate::transport::auth::AdminAuth,
}

/// Renders every metric of a node.
pub fn render(sources: &Sources) -> String {
    let (agent, data_plane, traffic) = (&sources.agent, &*sources.data_plane, &*sources.traffic);
    let mut o = Out::default();
    let counts = agent.with_state(|s| {
        let mut c = [0u64; 4];
        for r in s.all_records() {
            let i = match r.state {
                MemberState::Alive => 0,
                MemberState::Suspect => 1,
                MemberState::Dead => 2,
                MemberState::Left => 3,
            };
            c[i] += 1;
        }
        (
            c,
            s.local_health(),
            s.tombstone_count() as u64,
            s.updates_dropped(),
            s.counters().clone(),
            s.unverified_count() as u64,
        )
    });
    let (by_state, health, tombstones, dropped, counters, unverified) = counts;
    o.metric(
        "gsp_members",
        "gauge",
        "Members this node lists, by state (this node included).",
        &[
            ("state=\"alive\"", by_state[0]),
            ("state=\"suspect\"", by_state[1]),
            ("state=\"dead\"", by_state[2]),
            ("state=\"left\"", by_state[3]),
        ],
    );
    o.metric(
        "gsp_data_dir_writable",
        "gauge",
        "1 when the last check of the data dir (write, sync, remove a small file, every 5 s) succeeded, 0 when it failed or hung.",
        &[("", u64::from(sources.data_dir.failure().is_none()))],
    );
    o.metric(
        "gsp_data_dir_check_failures_total",
        "counter",
        "Checks of the data dir that failed or hung.",
        &[("", sources.data_dir.failures())],
    );
    o.metric(
        "gsp_local_health",
        "gauge",
        "Lifeguard local health multiplier (0 = healthy).",
        &[("", u64::from(health))],
    );
    o.metric(
        "gsp_tombstones",
        "gauge",
        "Removed nodes whose last version is remembered.",
        &[("", tombstones)],
    );
    let st = agent.stats();
    let g = MembershipStats::get;
    o.metric(
        "gsp_gossip_rounds_total",
        "counter",
        "Gossip rounds run.",
        &[("", g(&st.rounds))],
    );
    o.metric(
        "gsp_probes_total",
        "counter",
        "Direct probes sent.",
        &[("", g(&st.probes))],
    );
    o.metric(
        "gsp_probe_failures_total",
        "counter",
        "Probes that failed directly and indirectly.",
        &[("", counters.probe_failures)],
    );
    o.metric(
        "gsp_indirect_probes_total",
        "counter",
        "Indirect probe requests sent.",
        &[("", g(&st.indirect_probes))],
    );
    o.metric(
        "gsp_gossip_pushes_total",
        "counter",
        "Gossip pushes of pending updates sent.",
        &[("", g(&st.gossip_pushes))],
    );
    o.metric(
        "gsp_push_pulls_total",
        "counter",
        "Push-pull anti-entropy exchanges started.",
        &[("", g(&st.push_pulls))],
    );
    o.metric(
        "gsp_refused_foreign_domain_total",
        "counter",
        "Calls and records refused because they came from another domain.",
        &[("", g(&st.refused_foreign_domain))],
    );
    o.metric(
        "gsp_refused_rate_limited_total",
        "counter",
        "Gossip and query calls refused because their peer went over its rate limit.",
        &[("", g(&st.refused_rate_limited))],
    );
    o.metric(
        "gsp_refused_overloaded_total",
        "counter",
        "Queries refused because too many were in flight.",
        &[("", g(&st.refused_overloaded))],
    );
    o.metric(
        "gsp_refused_invalid_total",
        "counter",
        "Membership messages refused as malformed or over a limit.",
        &[("", g(&st.refused_invalid))],
    );
    o.metric(
        "gsp_refutations_total",
        "counter",
        "Times this node refuted a suspicion about itself.",
        &[("", counters.refutations)],
    );
    o.metric(
        "gsp_members_refused_table_full_total",
        "counter",
        "New members refused because the table was full.",
        &[("", counters.refused_table_full)],
    );
    o.metric(
        "gsp_updates_dropped_total",
        "counter",
        "Pending updates dropped at the queue's capacity.",
        &[("", dropped)],
    );
    o.metric(
        "gsp_members_unverified",
        "gauge",
        "Nodes heard of second-hand, waiting to answer a probe before they are listed.",
        &[("", unverified)],
    );
    o.metric(
        "gsp_member_verifications_total",
        "counter",
        "Nodes heard of second-hand, by outcome: admitted after answering as themselves, vouched (introduced by a second member host), vouch_limited (a second member host introduced it, but one of the two had vouched its share for this window, so it must answer a probe), refused (no answer, another node answered, or waited too long), dropped (the waiting set was full).",
        &[
            ("result=\"admitted\"", counters.candidates_verified),
            ("result=\"vouched\"", counters.candidates_vouched),
            (
                "result=\"vouch_limited\"",
                counters.candidates_vouch_limited,
            ),
            ("result=\"refused\"", counters.candidates_refused),
            ("result=\"dropped\"", counters.candidates_dropped),
        ],
    );
    o.metric(
        "gsp_verification_probes_total",
        "counter",
        "Probes sent to nodes heard of second-hand.",
        &[("", g(&st.verification_probes))],
    );
    o.metric(
        "gsp_records_unauthenticated_total",
        "counter",
        "Alive or left records of other members dropped under TLS: not signed by the member, or renaming it.",
        &[("", g(&st.records_unauthenticated))],
    );
    o.metric(
        "gsp_claims_clamped_total",
        "counter",
        "Claims that a member is down at a version newer than known here, taken at the known version.",
        &[("", counters.claims_clamped)],
    );
    o.metric(
        "gsp_death_claims_doubted_total",
        "counter",
        "Claims that a member is dead, taken as a suspicion: this node had no reason of its own to think it down.",
        &[("", counters.death_claims_doubted)],
    );
    o.metric(
        "gsp_claims_checked_total",
        "counter",
        "Records that would list an alive member down, drained or moved, held until the member was asked: held (each record), refuted (the member answered its check; held claims dropped), unanswered (nobody reached it; the claim was weighed).",
        &[
            ("result=\"held\"", counters.claims_held),
            ("result=\"refuted\"", counters.claims_refuted),
            ("result=\"unanswered\"", counters.claims_unanswered),
        ],
    );
    o.metric(
        "gsp_members_refused_taken_total",
        "counter",
        "Unknown nodes refused because an up member already holds their address (one member per host:port) or, under mutual TLS, their certified name (one member per node certificate).",
        &[
            ("held=\"address\"", counters.refused_address_taken),
            ("held=\"name\"", counters.refused_name_taken),
        ],
    );
    o.metric(
        "gsp_claims_ignored_total",
        "counter",
        "Claims that an unknown node is down, ignored.",
        &[("", counters.unknown_down_ignored)],
    );
    let labels: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| format!("kind=\"{}\"", k.as_str()))
        .collect();
    let samples: Vec<(&str, u64)> = EventKind::ALL
        .iter()
        .zip(&labels)
        .map(|(k, l)| (l.as_str(), st.events_of(*k)))
        .collect();
    o.metric(
        "gsp_membership_events_total",
        "counter",
        "Membership events seen, by kind.",
        &samples,
    );
    o.metric(
        "gsp_event_handler_runs_total",
        "counter",
        "--on-event commands: started, failed (could not start or exited non-zero), timed_out (killed).",
        &[
            ("outcome=\"started\"", g(&st.event_hook_runs)),
            ("outcome=\"failed\"", g(&st.event_hook_failures)),
            ("outcome=\"timed_out\"", g(&st.event_hook_timeouts)),
        ],
    );
    o.metric(
        "gsp_event_handler_dropped_total",
        "counter",
        "Events skipped for --on-event commands that fell more than 1024 events behind.",
        &[("", g(&st.event_hook_dropped))],
    );
    let (sent, received) = traffic.snapshot();
    o.metric(
        "gsp_bytes_sent_total",
        "counter",
        "Bytes written to gRPC connections.",
        &[("", sent)],
    );
    o.metric(
        "gsp_bytes_received_total",
        "counter",
        "Bytes read from gRPC connections.",
        &[("", received)],
    );
    let d = DataPlaneStats::get;
    o.metric(
        "gsp_data_messages_received_total",
        "counter",
        "Data plane messages received and delivered.",
        &[("", d(&data_plane.messages_received))],
    );
    o.metric(
        "gsp_data_messages_sent_total",
        "counter",
        "Data plane messages sent.",
        &[("", d(&data_plane.messages_sent))],
    );
    o.metric(
        "gsp_data_rejected_total",
        "counter",
        "Data plane messages refused, by reason.",
        &[
            ("reason=\"too_large\"", d(&data_plane.rejected_too_large)),
            ("reason=\"checksum\"", d(&data_plane.rejected_checksum)),
            ("reason=\"node\"", d(&data_plane.rejected_by_node)),
        ],
    );
    o.metric(
        "gsp_data_protocol_errors_total",
        "counter",
        "Data plane streams cut off for breaking the protocol.",
        &[("", d(&data_plane.protocol_errors))],
    );
    o.metric(
        "gsp_data_peers_cut_off_total",
        "counter",
        "Outbound links closed because the peer stopped acknowledging.",
        &[("", d(&data_plane.peers_cut_off))],
    );
    super::metrics::broadcast::render(&mut o, &sources.broadcast);
    super::metrics::security::render(&mut o, sources);
    let state = sources.maintenance.status().state;
    let (_, audit_dropped) = sources.maintenance.audit(0);
    let is = |m: crate::core::maintenance::Maintenance| u64::from(state == m);
    o.metric(
        "gsp_maintenance",
        "gauge",
        "This node's maintenance state: 1 for the current one.",
        &[
            (
                "state=\"normal\"",
                is(crate::core::maintenance::Maintenance::Normal),
            ),
            (
                "state=\"maintenance\"",
                is(crate::core::maintenance::Maintenance::Maintenance),
            ),
            (
                "state=\"disabled\"",
                is(crate::core::maintenance::Maintenance::Disabled),
            ),
        ],
    );
    o.metric(
        "gsp_maintenance_audit_dropped_total",
        "counter",
        "Audit entries dropped at the trail's bound (the oldest go first).",
        &[("", audit_dropped)],
    );
    o.histogram(
        "gsp_probe_rtt_seconds",
        "Round trip of answered membership pings (probes, indirect probes, verifications).",
        st.probe_rtt.histogram(),
    );
    o.histogram(
        "gsp_event_handler_duration_seconds",
        "How long --on-event commands ran.",
        st.event_hook_seconds.histogram(),
    );
    super::metrics::process::render(&mut o);
    o.finish()
}
