//! SIGHUP: re-reads the config file, the admin token file and the TLS files,
//! and applies what a running node can change (labels, seeds, the admin token
//! and read policy, certificates, the log filter); every other change is named
//! in one "needs a restart" line. A config that no longer parses changes
//! nothing and says why, as `nginx -s reload` does.

use tracing::{error, info, warn};

use crate::cli::{
    GlobalArgs, logging,
    node::{NodeArgs, Resolved, resolve},
};
use crate::{
    config::{NodeSettings, security::Security},
    runtime::{labels::LabelsControl, membership::MembershipAgent},
    transport::{auth::AdminAuth, tls::TlsConfig},
};

/// What a reload acts on: the node's shared handles and the configuration it
/// runs with (updated by each successful reload).
pub(super) struct Reloader {
    pub(super) args: NodeArgs,
    pub(super) global: GlobalArgs,
    pub(super) settings: NodeSettings,
    pub(super) security: Security,
    pub(super) log: Option<String>,
    /// Shares its policy with the node's admin service.
    pub(super) auth: AdminAuth,
    pub(super) tls: Option<TlsConfig>,
    pub(super) agent: MembershipAgent,
    /// Configured labels go through it (run-time changes win over them).
    pub(super) labels: LabelsControl,
}

impl Reloader {
    /// One SIGHUP.
    pub(super) fn reload(&mut self) {
        let Resolved {
            file,
            settings,
            security,
        } = match resolve(&self.args, &self.global) {
            Ok(r) => r,
            Err(e) => {
                error!("SIGHUP: nothing reloaded: {e}");
                return;
            }
        };
        let mut applied = Vec::new();
        if settings.labels != self.settings.labels
            && self.labels.reload_config(settings.labels.clone())
        {
            let n = self.labels.status().effective.len();
            applied.push(format!("labels ({n} now)"));
        }
        let new_seeds: Vec<String> = settings
            .join
            .iter()
            .filter(|s| !self.settings.join.contains(s))
            .cloned()
            .collect();
        if !new_seeds.is_empty() {
            applied.push(format!("seeds (joining {})", new_seeds.join(", ")));
            self.agent.add_seeds(new_seeds);
        }
        if self.auth.replace_with(&security.auth) {
            applied.push(if security.auth.has_token() {
                "admin token".to_owned()
            } else {
                warn!("SIGHUP: the admin token was removed; admin changes are open to anyone who can reach the node");
                "admin token (removed)".to_owned()
            });
        }
        self.reload_tls(&security, &mut applied);
        let log = file.as_ref().and_then(|f| f.log.clone());
        if log != self.log {
            match logging::from_env() {
                Some(_) => warn!("SIGHUP: gsp.log changed but GSP_LOG/RUST_LOG is set and wins"),
                None => match logging::set_filter(log.as_deref().unwrap_or("info")) {
                    Ok(()) => applied.push("log filter".to_owned()),
                    Err(e) => error!("SIGHUP: log filter not changed: {e}"),
                },
            }
        }
        let restart = needs_restart(&self.settings, &settings, &self.security, &security);
        if restart.is_empty() {
            info!(
                "SIGHUP: reloaded {}",
                if applied.is_empty() {
                    "nothing (no change)".to_owned()
                } else {
                    applied.join(", ")
                }
            );
        } else {
            warn!(
                "SIGHUP: reloaded {}; changed but needs a restart: {}",
                if applied.is_empty() {
                    "nothing".to_owned()
                } else {
                    applied.join(", ")
                },
                restart.join(", ")
            );
        }
        // The running values of what needs a restart stay the old ones.
        self.settings.labels = settings.labels;
        self.settings.join = settings.join;
        self.security.auth = security.auth;
        self.log = log;
    }

    /// Certificates are re-read from the same paths; new paths need a restart.
    fn reload_tls(&self, new: &Security, applied: &mut Vec<String>) {
        let Some(tls) = &self.tls else {
            return;
        };
        if new.tls.as_ref() != Some(tls.files()) {
            return;
        }
        match tls.reload() {
            Ok(()) => applied.push("TLS certificates (new connections use them)".to_owned()),
            Err(e) => {
                error!(error = %e, "SIGHUP: TLS reload failed; keeping the previous certificates");
            }
        }
    }
}

/// The settings that changed and cannot change while the node runs, named by
/// their flags.
fn needs_restart(
    old: &NodeSettings,
    new: &NodeSettings,
    old_sec: &Security,
    new_sec: &Security,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |changed: bool, name: &'static str| {
        if changed {
            out.push(name);
        }
    };
    check(old.listen != new.listen, "--listen");
    check(
        old.advertise != new.advertise || old.advertise_host != new.advertise_host,
        "--advertise",
    );
    check(old.name != new.name, "--name");
    check(old.domain != new.domain, "--domain");
    check(old.data_dir != new.data_dir, "--data-dir");
    check(
        old.membership.gossip_interval != new.membership.gossip_interval,
        "--gossip-interval",
    );
    check(old.membership.fanout != new.membership.fanout, "--fanout");
    check(
        old.membership.node_ttl != new.membership.node_ttl,
        "--node-ttl",
    );
    check(
        old.membership != new.membership
            && old.membership.gossip_interval == new.membership.gossip_interval
            && old.membership.fanout == new.membership.fanout
            && old.membership.node_ttl == new.membership.node_ttl,
        "membership settings",
    );
    check(old.anti_entropy != new.anti_entropy, "use_anti_entropy");
    check(old.http_listen != new.http_listen, "--http-listen");
    check(old.max_payload != new.max_payload, "--max-payload");
    check(old.max_hops != new.max_hops, "max_hops");
    check(old.query_timeout != new.query_timeout, "query_timeout");
    check(
        old.resource_interval != new.resource_interval,
        "--resource-interval",
    );
    check(old.capacity != new.capacity, "--capacity");
    check(old.relay != new.relay, "--relay");
    check(old.swarm_fanout != new.swarm_fanout, "--swarm-fanout");
    check(old.seen_ttl != new.seen_ttl, "--seen-ttl");
    check(old.on_message != new.on_message, "--on-message");
    check(old_sec.tls != new_sec.tls, "TLS file paths");
    check(old_sec.insecure != new_sec.insecure, "--insecure");
    check(
        old_sec.gossip_rate_limit != new_sec.gossip_rate_limit,
        "--gossip-rate-limit",
    );
    check(
        old_sec.query_rate_limit != new_sec.query_rate_limit,
        "--query-rate-limit",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, file};

    fn settings(yaml: &str) -> NodeSettings {
        crate::config::resolve(Overrides::default(), Some(file::parse(yaml).unwrap())).unwrap()
    }

    #[test]
    fn names_what_needs_a_restart_and_only_that() {
        let sec = crate::config::security::resolve(
            crate::config::security::SecurityFlags::default(),
            &crate::config::security::SecurityFile::default(),
        )
        .unwrap();
        let a = settings("gsp:\n  fanout: 3\n  labels: {zone: a}\n");
        let b = settings("gsp:\n  fanout: 5\n  labels: {zone: b}\n  seen_ttl: 60\n");
        assert_eq!(
            needs_restart(&a, &b, &sec, &sec),
            ["--fanout", "--seen-ttl"]
        );
        let labels_only = settings("gsp:\n  fanout: 3\n  labels: {zone: c, rack: r}\n");
        assert!(needs_restart(&a, &labels_only, &sec, &sec).is_empty());
    }
}
