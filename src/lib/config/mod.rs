//! Node configuration: flags > environment (`GSP_*`) > config file > defaults.
//! The CLI hands in what flags and environment said; this module merges it with
//! the file, validates everything at once and names each bad setting.

pub mod data_dir;
pub mod file;
mod reader;
pub mod security;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use crate::{
    core::membership::config::MembershipConfig, runtime::node::DEFAULT_DOMAIN,
    transport::config::DEFAULT_MAX_PAYLOAD_BYTES,
};

/// Default gRPC listen address (iarnet's discovery port).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50005";
/// Default HTTP side port.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:50080";
/// Default resource query hop limit (iarnet's `max_hops`).
pub const DEFAULT_MAX_HOPS: u32 = 5;
/// Largest `--max-payload` a node accepts.
pub const MAX_PAYLOAD_LIMIT: u64 = 4 << 30;
/// Smallest `--max-members`.
pub const MIN_MAX_MEMBERS: usize = 16;
/// Largest `--max-members`: a push-pull carries one digest per member, and a
/// message holds at most 65,536 (a member costs a few KiB on every node).
pub const MAX_MAX_MEMBERS: usize = 65_536;
/// Default resource query timeout (iarnet's `query_timeout_seconds`).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the flags or the environment set (clap resolves flag over environment).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--advertise`.
    pub advertise: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--domain`.
    pub domain: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--join`, repeatable; replaces the file's list when given.
    pub join: Vec<String>,
    /// `--gossip-interval`.
    pub gossip_interval: Option<Duration>,
    /// `--fanout`.
    pub fanout: Option<usize>,
    /// `--node-ttl`.
    pub node_ttl: Option<Duration>,
    /// `--http-listen` (`off` disables).
    pub http_listen: Option<String>,
    /// `--label KEY=VALUE`, repeatable; wins over the file's labels per key.
    pub labels: Vec<String>,
    /// `--max-payload`.
    pub max_payload: Option<u64>,
    /// `--resource-interval`.
    pub resource_interval: Option<Duration>,
    /// `--capacity`.
    pub capacity: Option<String>,
    /// `--relay`.
    pub relay: Option<String>,
    /// `--swarm-fanout`.
    pub swarm_fanout: Option<usize>,
    /// `--max-members`.
    pub max_members: Option<usize>,
    /// `--seen-ttl`.
    pub seen_ttl: Option<Duration>,
    /// `--on-message`.
    pub on_message: Option<String>,
    /// `--on-event`, repeatable; replace the file's handlers when given.
    pub on_event: Vec<String>,
    /// `--exec` (only ever `Some(true)`: the flag turns jobs on).
    pub exec: Option<bool>,
}

/// The resolved settings of `gsp node`.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Address peers dial (`None`: derive from the bound address).
    pub advertise: Option<String>,
    /// iarnet's `host`: advertised with the bound port when `advertise` is unset.
    pub advertise_host: Option<String>,
    /// Node name (`None`: the host name).
    pub name: Option<String>,
    /// Domain.
    pub domain: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Seeds.
    pub join: Vec<String>,
    /// Membership protocol settings.
    pub membership: MembershipConfig,
    /// Whether the periodic anti-entropy exchange runs.
    pub anti_entropy: bool,
    /// HTTP side port (`None`: off).
    pub http_listen: Option<SocketAddr>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Largest payload.
    pub max_payload: u64,
    /// Resource query hop limit.
    pub max_hops: u32,
    /// Resource query timeout.
    pub query_timeout: Duration,
    /// Time between resource readings.
    pub resource_interval: Duration,
    /// Declared capacity, overriding detected totals.
    pub capacity: crate::core::resources::capacity::Declared,
    /// Where received broadcasts are announced.
    pub relay: crate::core::broadcast::config::Relay,
    /// Fanout of swarm broadcasts; 0: off.
    pub swarm_fanout: usize,
    /// How long broadcast ids (and payloads) are remembered.
    pub seen_ttl: Duration,
    /// Command run per delivered broadcast.
    pub on_message: Option<String>,
    /// Commands run per membership or maintenance event.
    pub on_event: Vec<crate::runtime::on_event::EventHandler>,
    /// Whether the node runs jobs (`gsp run`).
    pub exec: bool,
    /// Things worth logging at start-up (accepted but ignored settings).
    pub warnings: Vec<String>,
    /// Things worth logging at start-up at info (where the data dir is).
    pub notes: Vec<String>,
}

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
mod tests {
    use super::*;

    #[test]
    fn defaults_make_a_single_node_cluster() {
        let s = resolve(Overrides::default(), None).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            s.http_listen.map(|a| a.to_string()).as_deref(),
            Some(DEFAULT_HTTP_LISTEN)
        );
        assert!(s.join.is_empty());
        assert_eq!(s.domain, "default");
        assert_eq!(s.membership.gossip_interval, Duration::from_secs(1));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let f = file::parse("initial_peers: [a:1]\ngsp:\n  fanout: 5\n  gossip_interval: 2\n  labels: {zone: eu, rack: r1}\n").unwrap();
        let o = Overrides {
            gossip_interval: Some(Duration::from_millis(200)),
            labels: vec!["zone=us".into()],
            ..Overrides::default()
        };
        let s = resolve(o, Some(f)).unwrap();
        assert_eq!(s.membership.gossip_interval, Duration::from_millis(200));
        assert_eq!(s.membership.fanout, 5);
        assert_eq!(s.join, vec!["a:1"]);
        assert_eq!(s.labels.get("zone").map(String::as_str), Some("us"));
        assert_eq!(s.labels.get("rack").map(String::as_str), Some("r1"));
    }

    #[test]
    fn capacity_comes_from_the_flag_or_a_mapping_in_the_file() {
        let f =
            file::parse("gsp:\n  capacity: {gpu: 2, memory: 16GiB}\n  resource_interval: 0.5\n")
                .unwrap();
        let s = resolve(Overrides::default(), Some(f.clone())).unwrap();
        assert_eq!(s.capacity.gpus, Some(2));
        assert_eq!(s.capacity.memory_bytes, Some(16 << 30));
        assert_eq!(s.resource_interval, Duration::from_millis(500));
        let o = Overrides {
            capacity: Some("cpu=8".into()),
            ..Overrides::default()
        };
        let s = resolve(o, Some(f)).unwrap();
        assert_eq!((s.capacity.cpu_millis, s.capacity.gpus), (Some(8000), None));
        let o = Overrides {
            capacity: Some("gpu=-1".into()),
            ..Overrides::default()
        };
        assert!(resolve(o, None).unwrap_err()[0].contains("--capacity"));
    }

    #[test]
    fn iarnet_host_becomes_the_advertised_address() {
        let f =
            file::parse("host: 10.1.2.3\ntransport: {rpc: {discovery: {port: 6000}}}\n").unwrap();
        let s = resolve(Overrides::default(), Some(f)).unwrap();
        assert_eq!(s.advertise, None);
        assert_eq!(s.advertise_host.as_deref(), Some("10.1.2.3"));
        assert_eq!(s.listen.port(), 6000);
    }

    #[test]
    fn every_bad_setting_is_named() {
        let o = Overrides {
            listen: Some("nowhere".into()),
            join: vec!["no-port".into()],
            fanout: Some(0),
            labels: vec!["novalue".into()],
            http_listen: Some("later".into()),
            ..Overrides::default()
        };
        let errs = resolve(o, None).unwrap_err();
        let all = errs.join("\n");
        assert_eq!(errs.len(), 5, "{all}");
        for key in ["--listen", "--join", "--fanout", "--label", "--http-listen"] {
            assert!(all.contains(key), "{key} missing in {all}");
        }
    }

    #[test]
    fn the_member_cap_comes_from_the_flag_or_the_file_and_allows_ten_thousand() {
        let s = resolve(Overrides::default(), None).unwrap();
        assert_eq!(
            s.membership.max_members,
            crate::core::membership::config::DEFAULT_MAX_MEMBERS
        );
        let f = file::parse("gsp:\n  max_members: 20000\n").unwrap();
        let s = resolve(Overrides::default(), Some(f.clone())).unwrap();
        assert_eq!(s.membership.max_members, 20_000);
        let o = Overrides {
            max_members: Some(12_000),
            ..Overrides::default()
        };
        assert_eq!(resolve(o, Some(f)).unwrap().membership.max_members, 12_000);
        let o = Overrides {
            max_members: Some(2_000_000),
            ..Overrides::default()
        };
        assert!(resolve(o, None).unwrap_err()[0].contains("--max-members"));
    }
}
