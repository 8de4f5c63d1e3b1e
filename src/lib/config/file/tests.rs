//! Parsing of the config file: an iarnet config as is, gsp's keys, and the
//! problems reported.

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
