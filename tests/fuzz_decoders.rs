//! Fuzzing by property: every wire message decoder and the YAML config loader
//! take arbitrary bytes (and mutations of valid inputs) without panicking, and
//! what they accept stays within the configured limits.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::fmt::Write as _;

use bytes::Bytes;
use gsp::{
    config::file,
    core::chunk::Reassembler,
    transport::{
        convert::{chunk_from_pb, control_from_pb},
        membership::{
            convert::{RecordLimits, digests_from_pb, record_from_pb, records_from_pb},
            extras::{answer_from_pb, inventory_from_pb, query_from_pb},
        },
        pb::{admin::v1 as admin, discovery, gossip::v1 as gossip, membership::v1 as membership},
    },
};
use proptest::prelude::*;
use prost::Message;

const NOW: i64 = 1_800_000_000_000_000_000;

fn limits() -> RecordLimits {
    RecordLimits::default()
}

/// A valid record, encoded: the seed for mutations.
fn valid_info() -> discovery::PeerNodeInfo {
    discovery::PeerNodeInfo {
        node_id: "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
        node_name: "n1".into(),
        address: "127.0.0.1:50005".into(),
        domain_id: "default".into(),
        version: 3,
        gsp_incarnation: 7,
        gsp_state: 1,
        gsp_maintenance: 1,
        ..Default::default()
    }
}

/// A data plane frame carrying the whole `len`-byte message in one chunk.
fn seed_frame(len: usize) -> Vec<u8> {
    let data = vec![7u8; len];
    let header = gossip::MessageHeader {
        origin: "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
        sender: "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
        total_len: len as u64,
        crc32: crc32fast::hash(&data),
        ..Default::default()
    };
    gossip::Frame {
        kind: Some(gossip::frame::Kind::Chunk(gossip::Chunk {
            message_id: Bytes::from(vec![1u8; 16]),
            header: Some(header),
            data: Bytes::from(data),
            ..Default::default()
        })),
    }
    .encode_to_vec()
}

/// `seed` with bytes flipped, dropped or inserted at `edits` positions.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(pos, op, byte) in edits {
        let i = if v.is_empty() { 0 } else { pos % v.len() };
        match op % 3 {
            0 if !v.is_empty() => v[i] ^= byte | 1,
            1 if !v.is_empty() => {
                v.remove(i);
            }
            _ => v.insert(i, byte),
        }
    }
    v
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
}

/// Runs every discovery / membership decoder and converter on `b`.
fn membership_decoders(b: &[u8]) {
    let l = limits();
    if let Ok(m) = discovery::NodeInfoGossipMessage::decode(b)
        && let Ok(rs) = records_from_pb::<gsp::core::membership::record::MemberRecord>(
            m.nodes, "nodes", &l, NOW,
        )
    {
        assert!(rs.len() <= l.max_records);
    }
    if let Ok(m) = discovery::GetLocalNodeInfoResponse::decode(b)
        && let Some(info) = m.node_info
    {
        if let Some(inv) = info.gsp_inventory.clone() {
            let _ = inventory_from_pb(inv);
        }
        if let Ok(r) = record_from_pb(info, "node_info", &l, NOW) {
            assert!(r.name.len() <= l.max_text && r.labels.len() <= l.max_labels);
        }
    }
    if let Ok(m) = discovery::ResourceQueryRequest::decode(b) {
        let _ = query_from_pb(m, &l, std::time::Duration::from_secs(5));
    }
    if let Ok(m) = discovery::ResourceQueryResponse::decode(b) {
        let _ = answer_from_pb(m, &l, NOW);
    }
    let _ = discovery::PeerListExchangeRequest::decode(b);
    if let Ok(m) = membership::PingRequest::decode(b) {
        let _ = records_from_pb::<gsp::core::membership::record::MemberRecord>(
            m.updates, "updates", &l, NOW,
        );
    }
    if let Ok(m) = membership::IndirectPingRequest::decode(b) {
        let _ = records_from_pb::<gsp::core::membership::record::MemberRecord>(
            m.updates, "updates", &l, NOW,
        );
    }
    if let Ok(m) = membership::GossipRequest::decode(b) {
        let _ = records_from_pb::<gsp::core::membership::record::MemberRecord>(
            m.updates, "updates", &l, NOW,
        );
    }
    if let Ok(m) = discovery::NodeInfoGossipResponse::decode(b) {
        let _ = digests_from_pb(m.gsp_digests, &l);
        let _ = records_from_pb::<gsp::core::membership::record::MemberRecord>(
            m.nodes, "nodes", &l, NOW,
        );
    }
    if let Ok(m) = discovery::PeerNodeInfo::decode(b) {
        let _ = record_from_pb(m, "info", &l, NOW);
    }
}

/// Runs the data plane decoders: frames into a reassembler capped at 1 MiB.
fn data_plane_decoders(b: &[u8]) {
    let mut r = Reassembler::new(1 << 20, 64 << 10);
    if let Ok(f) = gossip::Frame::decode(b) {
        match f.kind {
            Some(gossip::frame::Kind::Chunk(c)) => {
                if let Ok(c) = chunk_from_pb(c) {
                    let _ = r.feed(c);
                }
            }
            Some(gossip::frame::Kind::Control(c)) => {
                let _ = control_from_pb(c);
            }
            _ => {}
        }
    }
    let _ = gossip::Receipts::decode(b);
    let _ = gossip::Reply::decode(b);
    let _ = gossip::Welcome::decode(b);
}

fn admin_decoders(b: &[u8]) {
    let _ = admin::SetMaintenanceRequest::decode(b);
    let _ = admin::GetMaintenanceRequest::decode(b);
    let _ = admin::SendRequest::decode(b);
    let _ = admin::QueryRequest::decode(b);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(b in proptest::collection::vec(any::<u8>(), 0..4096)) {
        membership_decoders(&b);
        data_plane_decoders(&b);
        admin_decoders(&b);
    }

    #[test]
    fn mutated_gossip_messages_never_panic(e in edits(), n in 1usize..20) {
        let seed = discovery::NodeInfoGossipMessage {
            sender_node_id: "x".into(),
            nodes: vec![valid_info(); n],
            ..Default::default()
        }
        .encode_to_vec();
        membership_decoders(&mutate(&seed, &e));
        let ping = membership::PingRequest { updates: vec![valid_info(); n], ..Default::default() }
            .encode_to_vec();
        membership_decoders(&mutate(&ping, &e));
    }

    #[test]
    fn mutated_data_frames_never_panic(e in edits(), len in 0usize..4096) {
        let frame = seed_frame(len);
        data_plane_decoders(&mutate(&frame, &e));
    }

    #[test]
    fn the_yaml_loader_never_panics(text in "\\PC{0,400}") {
        let _ = file::parse(&text);
    }

    #[test]
    fn yaml_built_from_real_keys_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("gsp:\n"), Just("  security:\n"), Just("    admin_token_file: /x\n"),
                Just("  labels:\n"), Just("    a: b\n"), Just("  max_payload: 1e99\n"),
                Just("  gossip_interval: -1\n"), Just("resource:\n"), Just("  discovery:\n"),
                Just("    fanout: [1, 2]\n"), Just("initial_peers: 7\n"), Just("  - x\n"),
                Just("&a [*a]\n"), Just("!!binary AAAA\n"), Just("  relay: {}\n"),
                Just("  seen_ttl: 99999999999999999999\n"), Just("data_dir: ~\n"),
            ],
            0..16,
        )
    ) {
        let text: String = parts.concat();
        let _ = file::parse(&text);
    }
}

/// The unmutated seeds pass every check, so mutations of them reach the code
/// past the first validation.
#[test]
fn the_seeds_are_valid() {
    let info = valid_info();
    record_from_pb(info, "info", &limits(), NOW).expect("the record seed is valid");
    let frame = gossip::Frame::decode(&seed_frame(100)[..]).expect("decodes");
    let Some(gossip::frame::Kind::Chunk(c)) = frame.kind else {
        panic!("not a chunk")
    };
    let mut r = Reassembler::new(1 << 20, 64 << 10);
    match r.feed(chunk_from_pb(c).expect("the frame seed is valid")) {
        Ok(gsp::core::chunk::Fed::Complete(m)) => assert_eq!(m.payload.len(), 100),
        other => panic!("the frame seed was not delivered: {other:?}"),
    }
}

#[test]
fn a_huge_declared_payload_is_refused_without_allocating_it() {
    // A header claiming 1 TiB: the reassembler refuses it by its cap instead of
    // reserving the memory.
    let mut r = Reassembler::new(1 << 20, 64 << 10);
    let c = gossip::Chunk {
        message_id: Bytes::from(vec![1u8; 16]),
        header: Some(gossip::MessageHeader {
            origin: "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
            sender: "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
            total_len: 1 << 40,
            ..Default::default()
        }),
        data: Bytes::from_static(b"x"),
        ..Default::default()
    };
    let chunk = chunk_from_pb(c).expect("a well-formed chunk");
    match r.feed(chunk) {
        Ok(gsp::core::chunk::Fed::Rejected { reason, .. }) => {
            assert!(reason.to_string().contains("exceeds"), "{reason}");
        }
        other => panic!("a 1 TiB message was not refused: {other:?}"),
    }
}

#[test]
fn an_alias_bomb_is_refused_not_expanded() {
    // "Billion laughs": nine levels of nine aliases would expand to 10^9 nodes.
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        let _ = writeln!(
            text,
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]"
        );
    }
    let err = file::parse(&format!("gsp:\n  labels:\n    k: v\n{text}")).expect_err("a bomb");
    let all: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert!(
        all.iter()
            .any(|e| e.contains("alias") || e.contains("budget") || e.contains("limit")),
        "{all:?}"
    );
}
