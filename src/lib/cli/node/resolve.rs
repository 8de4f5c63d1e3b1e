//! The configuration of `gsp node` as read now: the config file merged with
//! the flags and the environment (at start and on SIGHUP), and the per-peer
//! rates derived from it.

use std::time::Duration;

use super::NodeArgs;
use crate::{
    cli::GlobalArgs,
    config::{
        self, Overrides,
        security::{Security, SecurityFlags},
    },
    core::rate_limit::RateConfig,
    transport::membership::service::{DEFAULT_GOSSIP_RATE, DEFAULT_QUERY_RATE, PeerRates},
};

/// The configuration as read now: the file, the settings, the security.
pub(in crate::cli) struct Resolved {
    pub(in crate::cli) file: Option<config::file::FileConfig>,
    pub(in crate::cli) settings: config::NodeSettings,
    pub(in crate::cli) security: Security,
}

/// Reads the config file and merges it with the flags and the environment;
/// run at start and again on SIGHUP.
///
/// # Errors
/// Every problem found, in one message.
pub(in crate::cli) fn resolve(args: &NodeArgs, global: &GlobalArgs) -> Result<Resolved, String> {
    let file = match &args.config {
        Some(path) => Some(config::file::load(path).map_err(|problems| {
            format!(
                "invalid config file:\n  - {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  - ")
            )
        })?),
        None => None,
    };
    let security_file = file
        .as_ref()
        .map(|f| f.security.clone())
        .unwrap_or_default();
    let auth = config::security::resolve(
        SecurityFlags {
            admin_token: args.admin_token.clone(),
            admin_token_file: args.admin_token_file.clone(),
            require_token_for_reads: args.require_token_for_reads,
            gossip_rate_limit: args.gossip_rate_limit,
            query_rate_limit: args.query_rate_limit,
            tls_cert: global.tls_cert.clone(),
            tls_key: global.tls_key.clone(),
            tls_ca: global.tls_ca.clone(),
            insecure: args.insecure,
        },
        &security_file,
    );
    let a = args.clone();
    let settings = config::resolve(
        Overrides {
            listen: a.listen,
            advertise: a.advertise,
            name: a.name,
            domain: a.domain,
            data_dir: a.data_dir,
            join: a.join,
            gossip_interval: a.gossip_interval,
            fanout: a.fanout,
            node_ttl: a.node_ttl,
            http_listen: a.http_listen,
            labels: a.label,
            max_payload: a.max_payload,
            resource_interval: a.resource_interval,
            capacity: a.capacity,
            relay: a.relay,
            swarm_fanout: a.swarm_fanout,
            max_members: a.max_members,
            seen_ttl: a.seen_ttl,
            on_message: a.on_message,
            on_event: a.on_event,
            exec: a.exec.then_some(true),
        },
        file.clone(),
    );
    match (settings, auth) {
        (Ok(settings), Ok(security)) => Ok(Resolved {
            file,
            settings,
            security,
        }),
        (s, a) => {
            let mut problems = s.err().unwrap_or_default();
            problems.extend(a.err().unwrap_or_default());
            Err(format!(
                "invalid settings:\n  - {}",
                problems.join("\n  - ")
            ))
        }
    }
}

/// The per-peer rates: as configured, else 200 gossip calls per second (or 10
/// per gossip interval when that is more: a peer probes, pushes and answers a
/// few times per round) and 50 queries per second.
#[allow(clippy::cast_precision_loss, reason = "rates are small counts")]
pub(super) fn peer_rates(s: &Security, gossip_interval: Duration) -> PeerRates {
    let per_round = 10.0 / gossip_interval.as_secs_f64().max(1e-3);
    PeerRates {
        gossip: RateConfig::per_second(
            s.gossip_rate_limit
                .map_or(DEFAULT_GOSSIP_RATE.max(per_round), |n| n as f64),
        ),
        query: RateConfig::per_second(s.query_rate_limit.map_or(DEFAULT_QUERY_RATE, |n| n as f64)),
    }
}
