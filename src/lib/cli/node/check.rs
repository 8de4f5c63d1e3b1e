//! `gsp node --check-config`: resolves the flags, the environment and the
//! config file as a start would, checks the TLS files, and prints the
//! effective settings (JSON with `--json`) without binding anything or
//! touching the data dir. Exit 0 when they are valid, 2 (naming every
//! problem) when not.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cli::{
    GlobalArgs,
    exit::{ExitStatus, UsageError},
    node::Resolved,
    output,
};
use crate::transport::tls::TlsConfig;

/// Prints the effective settings of `resolved`.
///
/// # Errors
/// The TLS files cannot be used (exit 2), or stdout is closed.
pub(super) fn run(resolved: &Resolved, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let Resolved {
        settings: s,
        security,
        file,
    } = resolved;
    if let Some(files) = &security.tls {
        TlsConfig::load(files.clone()).map_err(|e| UsageError(format!("cannot use TLS: {e}")))?;
    }
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let m = &s.membership;
    let v = json!({
        "schema": "gsp.node-config.v1",
        "config_file": file.is_some(),
        "listen": s.listen.to_string(),
        "advertise": s.advertise,
        "advertise_host": s.advertise_host,
        "name": s.name,
        "domain": s.domain,
        "data_dir": s.data_dir,
        "join": s.join,
        "gossip_interval_secs": secs(m.gossip_interval),
        "fanout": m.fanout,
        "node_ttl_secs": secs(m.node_ttl),
        "anti_entropy": s.anti_entropy,
        "anti_entropy_interval_secs": secs(m.anti_entropy_interval),
        "max_members": m.max_members,
        "http_listen": s.http_listen.map(|a| a.to_string()),
        "labels": s.labels,
        "max_payload_bytes": s.max_payload,
        "max_hops": s.max_hops,
        "query_timeout_secs": secs(s.query_timeout),
        "resource_interval_secs": secs(s.resource_interval),
        "capacity": {
            "cpu_millis": s.capacity.cpu_millis,
            "memory_bytes": s.capacity.memory_bytes,
            "gpus": s.capacity.gpus,
        },
        "relay": format!("{:?}", s.relay),
        "swarm_fanout": s.swarm_fanout,
        "seen_ttl_secs": secs(s.seen_ttl),
        "on_message": s.on_message,
        "on_event": s.on_event.iter().map(|h| serde_json::json!({
            "kinds": h.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "command": h.command,
        })).collect::<Vec<_>>(),
        "exec": s.exec,
        "admin_token": if security.auth.has_token() { "set" } else { "none" },
        "require_token_for_reads": security.auth.requires_token_for_reads(),
        "tls": security.tls.is_some(),
        "insecure": security.insecure,
        "warnings": s.warnings,
        "notes": s.notes,
    });
    if global.json {
        output::json(&v)?;
    } else {
        let mut out = String::from("configuration is valid; effective settings:\n");
        if let Value::Object(map) = &v {
            for (k, val) in map.iter().filter(|(k, _)| *k != "schema") {
                let _ = writeln!(out, "  {k}: {val}");
            }
        }
        output::stdout(&out)?;
    }
    Ok(ExitStatus::Success)
}
