//! The refusal side of `/metrics`: every refused input counted by reason in one
//! family (`gsp_refused_total{reason}`), gRPC error statuses by service and
//! code, and the server's connection table.

use crate::runtime::{membership::stats::MembershipStats, metrics::encode::Out};
use crate::transport::{data_plane::stats::DataPlaneStats, refusals::Refused};

pub(super) fn render(o: &mut Out, sources: &crate::runtime::metrics::Sources) {
    if let Some(tls) = &sources.tls {
        let expiry: Vec<(String, f64)> = tls
            .expiry()
            .into_iter()
            .map(|(role, t)| (format!("certificate=\"{role}\""), t as f64))
            .collect();
        let samples: Vec<(&str, f64)> = expiry.iter().map(|(l, t)| (l.as_str(), *t)).collect();
        o.gauge_f64(
            "gsp_tls_certificate_expiry_timestamp_seconds",
            "When the certificates in use expire (notAfter, unix seconds): this node's and the CA's; re-read on SIGHUP.",
            &samples,
        );
    }
    let st = sources.agent.stats();
    let (g, d) = (MembershipStats::get, DataPlaneStats::get);
    let dp = &*sources.data_plane;
    let own: Vec<(String, u64)> = Refused::ALL
        .iter()
        .map(|r| {
            (
                format!("reason=\"{}\"", r.as_str()),
                sources.refusals.count(*r),
            )
        })
        .collect();
    let mut samples: Vec<(&str, u64)> = own.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    samples.extend([
        ("reason=\"invalid_message\"", g(&st.refused_invalid)),
        ("reason=\"foreign_domain\"", g(&st.refused_foreign_domain)),
        ("reason=\"rate_limited\"", g(&st.refused_rate_limited)),
        ("reason=\"overloaded\"", g(&st.refused_overloaded)),
        ("reason=\"indirect_probe_refused\"", g(&st.ping_req_refused)),
        ("reason=\"payload_too_large\"", d(&dp.rejected_too_large)),
        ("reason=\"payload_checksum\"", d(&dp.rejected_checksum)),
        ("reason=\"data_protocol\"", d(&dp.protocol_errors)),
    ]);
    o.metric(
        "gsp_refused_total",
        "counter",
        "Connections, calls and messages refused, by reason (authentication, connection caps, malformed or oversized input, rate limits).",
        &samples,
    );
    let errors = sources.grpc_errors.snapshot();
    let labels: Vec<String> = errors
        .iter()
        .map(|(svc, code, _)| format!("service=\"{svc}\",code=\"{code}\""))
        .collect();
    let samples: Vec<(&str, u64)> = labels
        .iter()
        .zip(&errors)
        .map(|(l, (_, _, n))| (l.as_str(), *n))
        .collect();
    o.metric(
        "gsp_grpc_errors_total",
        "counter",
        "gRPC calls this node answered with an error status, by service and code.",
        &samples,
    );
    let (opening, established) = sources.conns.counts();
    o.metric(
        "gsp_connections",
        "gauge",
        "Connections to the gRPC port, being opened (first byte, TLS handshake) or established.",
        &[
            ("state=\"opening\"", opening as u64),
            ("state=\"established\"", established as u64),
        ],
    );
    o.metric(
        "gsp_indirect_probes_served_total",
        "counter",
        "Indirect probes this node made on a peer's request.",
        &[("", g(&st.ping_req_served))],
    );
}
