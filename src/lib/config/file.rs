//! The YAML config file: iarnet's layout (an iarnet `config.yaml` loads unchanged)
//! plus a `gsp:` section. Every problem is collected and reported at once, naming
//! the key; unknown keys in gsp's sections are errors, with a suggestion.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::{Map, Value};

pub use super::reader::Problem;
use super::reader::Reader;

mod sections;

use sections::{read_discovery, read_gsp};

/// Largest config file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Values read from the file; `None` where the file says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    /// `gsp.listen`, or `0.0.0.0:<transport.rpc.discovery.port>`.
    pub listen: Option<String>,
    /// `gsp.advertise`.
    pub advertise: Option<String>,
    /// iarnet's `host`: the advertised host when `advertise` is not set.
    pub host: Option<String>,
    /// `gsp.name` or iarnet's `resource.name`.
    pub name: Option<String>,
    /// `gsp.domain` or iarnet's `resource.domain_id`.
    pub domain: Option<String>,
    /// `data_dir`.
    pub data_dir: Option<String>,
    /// `initial_peers` plus `gsp.join`.
    pub join: Vec<String>,
    /// `gsp.gossip_interval` or `resource.discovery.gossip_interval_seconds`.
    pub gossip_interval: Option<Duration>,
    /// `gsp.fanout` or `resource.discovery.fanout`.
    pub fanout: Option<usize>,
    /// `resource.discovery.max_gossip_peers`: caps peers pushed to per round.
    pub max_gossip_peers: Option<usize>,
    /// `gsp.node_ttl` or `resource.discovery.node_ttl_seconds`.
    pub node_ttl: Option<Duration>,
    /// `resource.discovery.use_anti_entropy`.
    pub use_anti_entropy: Option<bool>,
    /// `gsp.anti_entropy_interval` or `resource.discovery.anti_entropy_interval_seconds`.
    pub anti_entropy_interval: Option<Duration>,
    /// `resource.discovery.max_hops` (resource queries).
    pub max_hops: Option<u32>,
    /// `resource.discovery.query_timeout_seconds` (resource queries).
    pub query_timeout: Option<Duration>,
    /// `gsp.http_listen`: `Some(None)` is `off`.
    pub http_listen: Option<Option<String>>,
    /// `gsp.labels`.
    pub labels: BTreeMap<String, String>,
    /// `gsp.max_payload`.
    pub max_payload: Option<u64>,
    /// `gsp.resource_interval`.
    pub resource_interval: Option<Duration>,
    /// `gsp.capacity`: `cpu=8,memory=16GiB,gpu=2` or a mapping of the same.
    pub capacity: Option<String>,
    /// `gsp.relay`: `all` or a peer count.
    pub relay: Option<String>,
    /// `gsp.swarm_fanout`: 0 (off) or 2..=16.
    pub swarm_fanout: Option<usize>,
    /// `gsp.max_members`.
    pub max_members: Option<usize>,
    /// `gsp.seen_ttl`.
    pub seen_ttl: Option<Duration>,
    /// `gsp.on_message`.
    pub on_message: Option<String>,
    /// `gsp.on_event`: `[KIND,...=]CMD` handlers.
    pub on_event: Vec<String>,
    /// `gsp.exec`: whether the node runs jobs (`gsp run`).
    pub exec: Option<bool>,
    /// `gsp.log`: the log filter (`GSP_LOG` syntax); `GSP_LOG` wins over it.
    pub log: Option<String>,
    /// `gsp.security`.
    pub security: super::security::SecurityFile,
    /// `resource.discovery.enabled: false` was seen (gsp always runs discovery).
    pub discovery_disabled: bool,
}

/// Top-level keys of iarnet's config that gsp does not use and accepts silently.
const IARNET_TOP_LEVEL: &[&str] = &[
    "mode",
    "listen_addr",
    "peer_listen_addr",
    "resource_limits",
    "super_admin",
    "application",
    "enable_local_docker",
    "database",
    "logging",
];
const TOP_LEVEL: &[&str] = &[
    "host",
    "data_dir",
    "initial_peers",
    "resource",
    "transport",
    "gsp",
];
const DISCOVERY_KEYS: &[&str] = &[
    "enabled",
    "gossip_interval_seconds",
    "node_ttl_seconds",
    "max_gossip_peers",
    "max_hops",
    "query_timeout_seconds",
    "fanout",
    "use_anti_entropy",
    "anti_entropy_interval_seconds",
];
const GSP_KEYS: &[&str] = &[
    "listen",
    "advertise",
    "name",
    "domain",
    "join",
    "gossip_interval",
    "fanout",
    "node_ttl",
    "anti_entropy_interval",
    "http_listen",
    "labels",
    "max_payload",
    "resource_interval",
    "capacity",
    "relay",
    "swarm_fanout",
    "max_members",
    "seen_ttl",
    "on_message",
    "on_event",
    "exec",
    "log",
    "security",
];

/// Reads and checks a config file.
///
/// # Errors
/// The file cannot be read, is not YAML, or has problems (all of them listed).
pub fn load(path: &Path) -> Result<FileConfig, Vec<Problem>> {
    let whole = |m: String| {
        vec![Problem {
            key: path.display().to_string(),
            message: m,
        }]
    };
    let meta = std::fs::metadata(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(whole(format!(
            "{} bytes, over the limit of {MAX_FILE_BYTES}",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    parse(&text).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| Problem {
                key: format!("{}: {}", path.display(), p.key),
                message: p.message,
            })
            .collect()
    })
}

/// Parses config text.
///
/// # Errors
/// Not YAML, or problems (all of them listed).
pub fn parse(text: &str) -> Result<FileConfig, Vec<Problem>> {
    let doc: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            vec![Problem {
                key: "(file)".into(),
                message: format!("not valid YAML: {e}"),
            }]
        })?
    };
    let mut r = Reader::default();
    let Some(top) = r.map(&doc, "(top level)") else {
        return Err(r.problems);
    };
    let mut c = FileConfig::default();
    for k in top.keys() {
        if !TOP_LEVEL.contains(&k.as_str()) && !IARNET_TOP_LEVEL.contains(&k.as_str()) {
            r.unknown(k, k, TOP_LEVEL);
        }
    }
    c.host = r.string(top.get("host"), "host");
    c.data_dir = r.string(top.get("data_dir"), "data_dir");
    c.join = r.strings(top.get("initial_peers"), "initial_peers");
    if let Some(resource) = top.get("resource").and_then(|v| r.map(v, "resource")) {
        c.name = r.string(resource.get("name"), "resource.name");
        c.domain = r.string(resource.get("domain_id"), "resource.domain_id");
        if let Some(d) = resource
            .get("discovery")
            .and_then(|v| r.map(v, "resource.discovery"))
        {
            read_discovery(&mut r, d, &mut c);
        }
    }
    if let Some(port) = top
        .get("transport")
        .and_then(|t| t.get("rpc"))
        .and_then(|t| t.get("discovery"))
        .and_then(|t| t.get("port"))
    {
        match port
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        {
            Some(p) => c.listen = Some(format!("0.0.0.0:{p}")),
            None => r.problem(
                "transport.rpc.discovery.port",
                format!("must be a port number 1-65535, got {port}"),
            ),
        }
    }
    if let Some(g) = top.get("gsp").and_then(|v| r.map(v, "gsp")) {
        read_gsp(&mut r, g, &mut c);
    }
    if r.problems.is_empty() {
        Ok(c)
    } else {
        Err(r.problems)
    }
}

#[cfg(test)]
mod tests;
