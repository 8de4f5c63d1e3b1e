//! Reading the two sections of the config file that carry most keys:
//! iarnet's `resource.discovery` and gsp's own `gsp:`.

use serde_json::{Map, Value};

use super::{DISCOVERY_KEYS, FileConfig, GSP_KEYS};
use crate::{config::reader::Reader, core::units};

pub(super) fn read_discovery(r: &mut Reader, d: &Map<String, Value>, c: &mut FileConfig) {
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
pub(super) fn read_gsp(r: &mut Reader, g: &Map<String, Value>, c: &mut FileConfig) {
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
        c.security = crate::config::security::read(r, v);
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
