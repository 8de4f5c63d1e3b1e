//! Resolving the settings of `gsp node`: flags and environment merged with the
//! file and the defaults, every value checked, every problem named.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::{
    DEFAULT_HTTP_LISTEN, DEFAULT_LISTEN, DEFAULT_MAX_HOPS, DEFAULT_QUERY_TIMEOUT, MAX_MAX_MEMBERS,
    MAX_PAYLOAD_LIMIT, MIN_MAX_MEMBERS, NodeSettings, Overrides, data_dir, file,
};
use crate::{
    core::membership::config::MembershipConfig, runtime::node::DEFAULT_DOMAIN,
    transport::config::DEFAULT_MAX_PAYLOAD_BYTES,
};

fn host_port(key: &str, s: &str, problems: &mut Vec<String>) -> bool {
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        problems.push(format!("{key}: '{s}' is not HOST:PORT"));
    }
    ok
}

/// `all` or a peer count of at least 1.
fn parse_relay(s: &str) -> Result<crate::core::broadcast::config::Relay, String> {
    use crate::core::broadcast::config::Relay;
    if s.eq_ignore_ascii_case("all") {
        return Ok(Relay::All);
    }
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Relay::Fanout(n)),
        _ => Err(format!(
            "expected all or a peer count of at least 1, got '{s}'"
        )),
    }
}

/// Merges flags and environment with the file and the defaults.
///
/// # Errors
/// Every invalid setting, one message each, naming the flag and the file key.
pub fn resolve(o: Overrides, file: Option<file::FileConfig>) -> Result<NodeSettings, Vec<String>> {
    let f = file.unwrap_or_default();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let listen_text = o
        .listen
        .or(f.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text.parse::<SocketAddr>().map_err(|e| {
        problems.push(format!(
            "--listen / gsp.listen: '{listen_text}' is not an IP:PORT address ({e})"
        ));
    });
    let advertise = o.advertise.or(f.advertise);
    if let Some(a) = &advertise {
        host_port("--advertise / gsp.advertise", a, &mut problems);
    }
    let join = if o.join.is_empty() { f.join } else { o.join };
    for j in &join {
        host_port("--join / initial_peers", j, &mut problems);
    }
    let domain = o
        .domain
        .or(f.domain)
        .unwrap_or_else(|| DEFAULT_DOMAIN.to_owned());
    if domain.is_empty() || domain.len() > 128 {
        problems.push(format!(
            "--domain / resource.domain_id: must be 1-128 bytes, got '{domain}'"
        ));
    }

    let interval = o
        .gossip_interval
        .or(f.gossip_interval)
        .unwrap_or(crate::core::membership::config::DEFAULT_GOSSIP_INTERVAL);
    if interval < Duration::from_millis(10) || interval > Duration::from_secs(3600) {
        problems.push(format!(
            "--gossip-interval / gsp.gossip_interval: must be between 10ms and 1h, got {interval:?}"
        ));
    }
    let mut membership = MembershipConfig::with_interval(interval);
    let fanout = o.fanout.or(f.fanout).unwrap_or(membership.fanout);
    if fanout == 0 || fanout > 64 {
        problems.push(format!(
            "--fanout / gsp.fanout: must be between 1 and 64, got {fanout}"
        ));
    }
    membership.fanout = f.max_gossip_peers.map_or(fanout, |m| fanout.min(m.max(1)));
    membership.node_ttl = o.node_ttl.or(f.node_ttl).unwrap_or(membership.node_ttl);
    if membership.node_ttl < interval {
        problems.push(format!(
            "--node-ttl / gsp.node_ttl: {:?} is shorter than the gossip interval {interval:?}",
            membership.node_ttl
        ));
    }
    let max_members = o
        .max_members
        .or(f.max_members)
        .unwrap_or(membership.max_members);
    if !(MIN_MAX_MEMBERS..=MAX_MAX_MEMBERS).contains(&max_members) {
        problems.push(format!(
            "--max-members / gsp.max_members: must be between {MIN_MAX_MEMBERS} and {MAX_MAX_MEMBERS}, got {max_members}"
        ));
    }
    membership.max_members = max_members;
    if let Some(ae) = f.anti_entropy_interval {
        membership.anti_entropy_interval = ae;
    }
    let anti_entropy = f.use_anti_entropy.unwrap_or(true);
    if f.discovery_disabled {
        warnings.push("resource.discovery.enabled is false; gsp always runs discovery".to_owned());
    }

    let http_listen = match o
        .http_listen
        .or_else(|| f.http_listen.map(|h| h.unwrap_or_else(|| "off".into())))
    {
        None => DEFAULT_HTTP_LISTEN.parse::<SocketAddr>().ok(),
        Some(s) if s == "off" => None,
        Some(s) => match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(format!(
                    "--http-listen / gsp.http_listen: '{s}' is not IP:PORT or off ({e})"
                ));
                None
            }
        },
    };

    let mut labels = f.labels;
    for l in &o.labels {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k.to_owned(), v.to_owned());
            }
            _ => problems.push(format!("--label: '{l}' is not KEY=VALUE")),
        }
    }
    if labels.len() > 64 {
        problems.push(format!(
            "--label / gsp.labels: {} labels, over the limit of 64",
            labels.len()
        ));
    }
    for (k, v) in &labels {
        if k.len() > 256 || v.len() > 256 {
            problems.push(format!(
                "--label / gsp.labels: label '{k}' is longer than 256 bytes"
            ));
        }
    }
    let max_payload = o
        .max_payload
        .or(f.max_payload)
        .unwrap_or(DEFAULT_MAX_PAYLOAD_BYTES);
    if max_payload == 0 || max_payload > MAX_PAYLOAD_LIMIT {
        problems.push(format!(
            "--max-payload / gsp.max_payload: must be between 1 byte and 4GiB, got {max_payload}"
        ));
    }

    let resource_interval = o
        .resource_interval
        .or(f.resource_interval)
        .unwrap_or(crate::runtime::resources::DEFAULT_RESOURCE_INTERVAL);
    if resource_interval < Duration::from_millis(100) {
        problems.push(format!(
            "--resource-interval / gsp.resource_interval: must be at least 100ms, got {resource_interval:?}"
        ));
    }
    let capacity = match o.capacity.or(f.capacity) {
        Some(spec) => {
            crate::core::resources::capacity::Declared::parse(&spec).unwrap_or_else(|e| {
                problems.push(format!("--capacity / gsp.capacity: {e}"));
                crate::core::resources::capacity::Declared::default()
            })
        }
        None => crate::core::resources::capacity::Declared::default(),
    };

    let relay = match o.relay.or(f.relay) {
        None => crate::core::broadcast::config::Relay::Fanout(3),
        Some(spec) => parse_relay(&spec).unwrap_or_else(|e| {
            problems.push(format!("--relay / gsp.relay: {e}"));
            crate::core::broadcast::config::Relay::Fanout(3)
        }),
    };
    let swarm_fanout = o
        .swarm_fanout
        .or(f.swarm_fanout)
        .unwrap_or(crate::core::broadcast::config::DEFAULT_SWARM_FANOUT);
    if swarm_fanout == 1 || swarm_fanout > 16 {
        problems.push(format!(
            "--swarm-fanout / gsp.swarm_fanout: must be 0 (off) or between 2 and 16, got {swarm_fanout}"
        ));
    }
    let seen_ttl = o
        .seen_ttl
        .or(f.seen_ttl)
        .unwrap_or(crate::core::broadcast::config::DEFAULT_SEEN_TTL);
    if seen_ttl < Duration::from_secs(1) {
        problems.push(format!(
            "--seen-ttl / gsp.seen_ttl: must be at least 1s, got {seen_ttl:?}"
        ));
    }
    let on_message = o
        .on_message
        .or(f.on_message)
        .filter(|c| !c.trim().is_empty());
    let specs = if o.on_event.is_empty() {
        f.on_event
    } else {
        o.on_event
    };
    let mut on_event = Vec::with_capacity(specs.len());
    for spec in &specs {
        match crate::runtime::on_event::EventHandler::parse(spec) {
            Ok(h) => on_event.push(h),
            Err(e) => problems.push(e),
        }
    }

    let mut notes = Vec::new();
    let data_dir = if let Some(d) = o.data_dir.or_else(|| f.data_dir.map(PathBuf::from)) {
        d
    } else {
        let (d, note) = data_dir::default_data_dir(&data_dir::DataDirEnv::from_process());
        notes.extend(note);
        d
    };
    match listen {
        Ok(listen) if problems.is_empty() => Ok(NodeSettings {
            listen,
            advertise,
            advertise_host: f.host,
            name: o.name.or(f.name),
            domain,
            data_dir,
            join,
            membership,
            anti_entropy,
            http_listen,
            labels,
            max_payload,
            max_hops: f.max_hops.unwrap_or(DEFAULT_MAX_HOPS),
            query_timeout: f.query_timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT),
            resource_interval,
            capacity,
            relay,
            swarm_fanout,
            seen_ttl,
            on_message,
            on_event,
            exec: o.exec.or(f.exec).unwrap_or(false),
            warnings,
            notes,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests;
