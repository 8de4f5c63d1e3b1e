//! Resolving settings: defaults, precedence of flags over the file over
//! defaults, iarnet keys, and the problems named.

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
    let f = file::parse("gsp:\n  capacity: {gpu: 2, memory: 16GiB}\n  resource_interval: 0.5\n")
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
    let f = file::parse("host: 10.1.2.3\ntransport: {rpc: {discovery: {port: 6000}}}\n").unwrap();
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
