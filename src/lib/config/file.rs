//! The YAML config file: iarnet's layout (an iarnet `config.yaml` loads unchanged)
//! plus a `gsp:` section. Every problem is collected and reported at once, naming
//! the key; unknown keys in gsp's sections are errors, with a suggestion.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::{Map, Value};

use super::reader::Reader;
use crate::core::units;

/// Largest config file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `resource.discovery.fanout`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

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

fn read_discovery(r: &mut Reader, d: &Map<String, Value>, c: &mut FileConfig) {
    const P: &str = "resource.discovery";
    for k in d.keys() {
        if !DISCOVERY_KEYS.contains(&k.as_str()) {
            r.unknown(&format!("{P}.{k}"), k, DISCOVERY_KEYS);
        }
    }
    if r.bool(d.get("enabled"), "resource.discovery.enabled") == Some(false) {
        c.discovery_disabled = true;
    }
    c.gossip_interval = r.seconds(
        d.get("gossip_interval_seconds"),
        "resource.discovery.gossip_interval_seconds",
    );
    c.node_ttl = r.seconds(
        d.get("node_ttl_seconds"),
        "resource.discovery.node_ttl_seconds",
    );
    c.max_gossip_peers = r.count(
        d.get("max_gossip_peers"),
        "resource.discovery.max_gossip_peers",
    );
    c.max_hops = r
        .count(d.get("max_hops"), "resource.discovery.max_hops")
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    c.query_timeout = r.seconds(
        d.get("query_timeout_seconds"),
        "resource.discovery.query_timeout_seconds",
    );
    c.fanout = r.count(d.get("fanout"), "resource.discovery.fanout");
    c.use_anti_entropy = r.bool(
        d.get("use_anti_entropy"),
        "resource.discovery.use_anti_entropy",
    );
    c.anti_entropy_interval = r.seconds(
        d.get("anti_entropy_interval_seconds"),
        "resource.discovery.anti_entropy_interval_seconds",
    );
}

#[expect(
    clippy::many_single_char_names,
    reason = "reader, section and config stay short so the key table reads as one"
)]
fn read_gsp(r: &mut Reader, g: &Map<String, Value>, c: &mut FileConfig) {
    for k in g.keys() {
        if !GSP_KEYS.contains(&k.as_str()) {
            r.unknown(&format!("gsp.{k}"), k, GSP_KEYS);
        }
    }
    c.listen = r.string(g.get("listen"), "gsp.listen").or(c.listen.take());
    c.advertise = r.string(g.get("advertise"), "gsp.advertise");
    c.name = r.string(g.get("name"), "gsp.name").or(c.name.take());
    c.domain = r.string(g.get("domain"), "gsp.domain").or(c.domain.take());
    c.join.extend(r.strings(g.get("join"), "gsp.join"));
    c.gossip_interval = r
        .seconds(g.get("gossip_interval"), "gsp.gossip_interval")
        .or(c.gossip_interval);
    c.fanout = r.count(g.get("fanout"), "gsp.fanout").or(c.fanout);
    c.node_ttl = r.seconds(g.get("node_ttl"), "gsp.node_ttl").or(c.node_ttl);
    c.anti_entropy_interval = r
        .seconds(g.get("anti_entropy_interval"), "gsp.anti_entropy_interval")
        .or(c.anti_entropy_interval);
    // YAML 1.1 reads a bare `off` as false.
    c.http_listen = match g.get("http_listen") {
        Some(Value::Bool(false)) => Some(None),
        v => r
            .string(v, "gsp.http_listen")
            .map(|s| (s != "off").then_some(s)),
    };
    if let Some(labels) = g.get("labels").and_then(|v| r.map(v, "gsp.labels")) {
        for (k, v) in labels {
            match v {
                Value::String(s) => {
                    c.labels.insert(k.clone(), s.clone());
                }
                Value::Number(n) => {
                    c.labels.insert(k.clone(), n.to_string());
                }
                Value::Bool(b) => {
                    c.labels.insert(k.clone(), b.to_string());
                }
                _ => r.problem(&format!("gsp.labels.{k}"), "must be a string".into()),
            }
        }
    }
    c.resource_interval = r.seconds(g.get("resource_interval"), "gsp.resource_interval");
    c.capacity = match g.get("capacity") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(m)) => Some(
            m.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Some(other) => {
            r.problem(
                "gsp.capacity",
                format!("expected cpu=..,memory=..,gpu=.. or a mapping, got {other}"),
            );
            None
        }
    };
    c.relay = match g.get("relay") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            r.problem(
                "gsp.relay",
                format!("expected all or a peer count, got {other}"),
            );
            None
        }
    };
    c.swarm_fanout = r.count(g.get("swarm_fanout"), "gsp.swarm_fanout");
    c.max_members = r.count(g.get("max_members"), "gsp.max_members");
    c.seen_ttl = r.seconds(g.get("seen_ttl"), "gsp.seen_ttl");
    if let Some(v) = g.get("security") {
        c.security = super::security::read(r, v);
    }
    c.log = match g.get("log") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match tracing_subscriber::EnvFilter::builder().parse(s) {
            Ok(_) => Some(s.clone()),
            Err(e) => {
                r.problem("gsp.log", format!("'{s}' is not a log filter: {e}"));
                None
            }
        },
        Some(other) => {
            r.problem(
                "gsp.log",
                format!("expected a log filter like info or gsp=debug, got {other}"),
            );
            None
        }
    };
    c.exec = match g.get("exec") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            r.problem("gsp.exec", format!("expected true or false, got {other}"));
            None
        }
    };
    c.on_event = match g.get("on_event") {
        Some(Value::String(s)) => vec![s.clone()],
        v => r.strings(v, "gsp.on_event"),
    };
    c.on_message = match g.get("on_message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            r.problem(
                "gsp.on_message",
                format!("expected a command line, got {other}"),
            );
            None
        }
    };
    if let Some(v) = g.get("max_payload") {
        let parsed = match v {
            Value::String(s) => units::parse_size(s).map_err(|e| e.to_string()),
            Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a byte count")),
            other => Err(format!("expected a size like 64MiB, got {other}")),
        };
        match parsed {
            Ok(n) => c.max_payload = Some(n),
            Err(e) => r.problem("gsp.max_payload", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's example plus the sections a real iarnet config carries.
    const IARNET: &str = r#"
host: 192.168.100.10
peer_listen_addr: :50051
initial_peers:
  - "peer1.example.com:50005"
  - "peer2.example.com:50005"
data_dir: ./data/node_0
application:
  workspace_dir: ../workspaces
resource:
  peer_port: 50051
  name: node.0
  description: an iarnet node
  domain_id: domain.abc
  discovery:
    enabled: true
    gossip_interval_seconds: 30
    node_ttl_seconds: 180
    max_gossip_peers: 10
    max_hops: 5
    query_timeout_seconds: 5
    fanout: 3
    use_anti_entropy: true
    anti_entropy_interval_seconds: 300
enable_local_docker: true
database:
  max_open_conns: 10
transport:
  http:
    port: 8083
  rpc:
    resource:
      port: 50051
    discovery:
      port: 50005
logging:
  enabled: true
"#;

    #[test]
    fn an_iarnet_config_loads_unchanged() {
        let c = parse(IARNET).unwrap();
        assert_eq!(c.host.as_deref(), Some("192.168.100.10"));
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:50005"));
        assert_eq!(c.name.as_deref(), Some("node.0"));
        assert_eq!(c.domain.as_deref(), Some("domain.abc"));
        assert_eq!(c.data_dir.as_deref(), Some("./data/node_0"));
        assert_eq!(
            c.join,
            vec!["peer1.example.com:50005", "peer2.example.com:50005"]
        );
        assert_eq!(c.gossip_interval, Some(Duration::from_secs(30)));
        assert_eq!(c.node_ttl, Some(Duration::from_secs(180)));
        assert_eq!(c.fanout, Some(3));
        assert_eq!(c.max_hops, Some(5));
        assert_eq!(c.anti_entropy_interval, Some(Duration::from_secs(300)));
    }

    #[test]
    fn gsp_keys_override_iarnet_ones_and_accept_fractions() {
        let c = parse(&format!(
            "{IARNET}\ngsp:\n  gossip_interval: 0.2\n  name: other\n  http_listen: off\n  labels: {{zone: eu, rack: 7}}\n  max_payload: 16MiB\n"
        ))
        .unwrap();
        assert_eq!(c.gossip_interval, Some(Duration::from_millis(200)));
        assert_eq!(c.name.as_deref(), Some("other"));
        assert_eq!(c.http_listen, Some(None));
        assert_eq!(c.labels.get("rack").map(String::as_str), Some("7"));
        assert_eq!(c.max_payload, Some(16 << 20));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let errs = parse(
            "inital_peers: [a]\nresource:\n  discovery:\n    gossip_interval_seconds: -1\n    fanut: 3\ngsp:\n  node_ttl: soon\n  max_payload: 5XB\ntransport: {rpc: {discovery: {port: 99999}}}\n",
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let all = text.join("\n");
        assert_eq!(errs.len(), 6, "{all}");
        assert!(
            all.contains("inital_peers: unknown key (did you mean 'initial_peers'?)"),
            "{all}"
        );
        assert!(
            all.contains("resource.discovery.fanut: unknown key (did you mean 'fanout'?)"),
            "{all}"
        );
        assert!(
            all.contains("resource.discovery.gossip_interval_seconds"),
            "{all}"
        );
        assert!(all.contains("gsp.node_ttl"), "{all}");
        assert!(all.contains("gsp.max_payload: unknown unit 'XB'"), "{all}");
        assert!(all.contains("transport.rpc.discovery.port"), "{all}");
    }

    #[test]
    fn non_yaml_and_wrong_shapes_are_named() {
        assert!(parse("a: [unclosed").is_err());
        let errs = parse("- just\n- a list\n").unwrap_err();
        assert!(errs[0].message.contains("expected a mapping"), "{errs:?}");
        let errs = parse("initial_peers: one-string\n").unwrap_err();
        assert!(errs[0].message.contains("expected a list"), "{errs:?}");
        assert_eq!(parse("").unwrap(), FileConfig::default());
    }
}
