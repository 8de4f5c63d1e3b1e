//! The swarm path of the pure state: pieces forwarded as they come, the whole
//! delivered once, bounds, and repairs.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use rand::{SeedableRng as _, rngs::StdRng};

use super::{
    config::BroadcastConfig,
    state::{Action, Announce, BroadcastState, PieceVerdict},
};
use crate::{
    ids::NodeId,
    message::{InboundMessage, OutboundMessage},
};

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

fn peers(n: usize) -> Vec<NodeId> {
    (0..n).map(|i| id(&format!("p{i:02}"))).collect()
}

fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 7 % 251).to_le_bytes()[0])
        .collect::<Vec<u8>>()
        .into()
}

/// The origin's pieces for a `len`-byte payload to 20 peers.
fn originate(len: usize) -> (Vec<(NodeId, OutboundMessage)>, Bytes) {
    let mut rng = StdRng::seed_from_u64(3);
    let origin = id("origin");
    let mut s = BroadcastState::new(origin.clone(), BroadcastConfig::default());
    let data = payload(len);
    let msg = s.message("t", data.clone(), 16, 0);
    let mut members = peers(20);
    members.push(origin);
    let now = Instant::now();
    let actions = s
        .originate(msg, &members, now, now + Duration::from_secs(10), &mut rng)
        .unwrap();
    let pieces = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::SendPiece { to, piece } => Some((to, piece)),
            _ => None,
        })
        .collect();
    (pieces, data)
}

fn inbound(piece: &OutboundMessage, sender: &str) -> InboundMessage {
    InboundMessage {
        meta: piece.meta.clone(),
        sender: id(sender),
        payload: piece.payload.clone(),
        crc32: piece.crc32,
    }
}

fn sends(actions: &[Action]) -> Vec<NodeId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendPiece { to, .. } => Some(to.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_origin_uploads_one_copy_striped_over_its_trees() {
    let (pieces, data) = originate(1 << 20);
    assert_eq!(pieces.len(), 4, "1 MiB in 256 KiB pieces");
    let k = BroadcastConfig::default().swarm_fanout;
    let bytes: usize = pieces.iter().map(|(_, p)| p.payload.len()).sum();
    assert_eq!(bytes, data.len());
    let roots: std::collections::HashSet<_> = pieces.iter().map(|(to, _)| to).collect();
    assert_eq!(roots.len(), k, "each tree has its own root");
    for (_, p) in &pieces {
        let info = p.meta.piece.as_ref().unwrap();
        assert_eq!(info.subtree.len(), 19, "the root's list is everyone else");
    }
}

#[test]
fn a_piece_is_forwarded_the_moment_it_arrives_and_the_whole_delivered_once() {
    let (pieces, data) = originate(1 << 20);
    let now = Instant::now();
    // A root of tree 0 gets its piece: it forwards before anything else came.
    let (root, first) = &pieces[0];
    let mut s = BroadcastState::new(root.clone(), BroadcastConfig::default());
    let out = s.on_piece(&inbound(first, "origin"), 64 << 20, now);
    assert_eq!(out.verdict, PieceVerdict::New);
    assert!(out.complete.is_none());
    let children = sends(&out.actions);
    let k = BroadcastConfig::default().swarm_fanout;
    assert_eq!(children.len(), k, "forwarded to its children at once");
    // The same piece again (a retry): acknowledged, not forwarded twice.
    let again = s.on_piece(&inbound(first, "origin"), 64 << 20, now);
    assert_eq!(again.verdict, PieceVerdict::Duplicate);
    assert!(sends(&again.actions).is_empty());
    // The other pieces arrive (as a leaf would get them): the last completes it.
    let mut complete = None;
    for (_, p) in &pieces[1..] {
        let mut leaf = (**p.meta.piece.as_ref().unwrap()).clone();
        leaf.subtree.clear();
        let mut m = inbound(p, "p07");
        m.meta.piece = Some(Arc::new(leaf));
        let out = s.on_piece(&m, 64 << 20, now);
        assert_eq!(out.verdict, PieceVerdict::New);
        complete = complete.or(out.complete);
    }
    let whole = complete.expect("assembled");
    assert_eq!(whole.payload, data);
    assert_eq!(whole.meta.id, first.meta.piece.as_ref().unwrap().message);
    let (new, actions) = s.on_payload(
        whole.clone(),
        &peers(20),
        now,
        &mut StdRng::seed_from_u64(1),
    );
    assert!(new);
    assert!(actions.iter().any(|a| matches!(a, Action::Receipts { .. })));
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Deliver(_)))
            .count(),
        1
    );
    // A late piece of a delivered broadcast is a duplicate, never a second delivery.
    let late = s.on_piece(&inbound(&pieces[2].1, "p09"), 64 << 20, now);
    assert_eq!(late.verdict, PieceVerdict::Duplicate);
    assert!(late.complete.is_none());
    assert!(
        !s.on_payload(whole, &[], now, &mut StdRng::seed_from_u64(1))
            .0
    );
}

#[test]
fn pieces_arriving_in_any_order_assemble_the_exact_payload() {
    // A short last piece, and every piece arriving last-first.
    let (pieces, data) = originate((1 << 20) + 123);
    let now = Instant::now();
    let mut s = BroadcastState::new(id("p05"), BroadcastConfig::default());
    let mut complete = None;
    assert!(s.quiet());
    for (_, p) in pieces.iter().rev() {
        let out = s.on_piece(&inbound(p, "p07"), 64 << 20, now);
        assert_eq!(out.verdict, PieceVerdict::New);
        assert!(complete.is_none(), "completed before its last piece");
        complete = out.complete;
        // An assembly in progress waits on the stall timer.
        assert_eq!(s.quiet(), complete.is_some());
    }
    assert_eq!(complete.expect("assembled").payload, data);
}

#[test]
fn a_failed_child_is_routed_around_to_the_nodes_below_it() {
    let (pieces, _) = originate(1 << 20);
    let (root, first) = &pieces[0];
    let mut s = BroadcastState::new(root.clone(), BroadcastConfig::default());
    let out = s.on_piece(&inbound(first, "origin"), 64 << 20, Instant::now());
    let (child, piece) = out
        .actions
        .into_iter()
        .find_map(|a| match a {
            Action::SendPiece { to, piece }
                if !piece.meta.piece.as_ref().unwrap().subtree.is_empty() =>
            {
                Some((to, piece))
            }
            _ => None,
        })
        .expect("a child with children");
    let below = piece.meta.piece.as_ref().unwrap().subtree.clone();
    let rerouted = s.on_piece_failed(&piece);
    let mut got = sends(&rerouted);
    got.sort();
    let k = BroadcastConfig::default().swarm_fanout;
    let mut heads: Vec<NodeId> = super::tree::children(&below, k)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    heads.sort();
    assert_eq!(got, heads);
    assert!(!got.contains(&child));
    assert_eq!(s.counters().pieces_rerouted, 1);
}

#[test]
fn inconsistent_and_excess_pieces_are_refused_with_a_reason() {
    let (pieces, _) = originate(1 << 20);
    let now = Instant::now();
    let mut s = BroadcastState::new(id("p00"), BroadcastConfig::default());
    // Over this node's payload cap.
    let out = s.on_piece(&inbound(&pieces[0].1, "origin"), 1000, now);
    assert!(
        matches!(out.verdict, PieceVerdict::Rejected(ref why) if why.contains("limit of 1000"))
    );
    // A piece whose description disagrees with the first one seen.
    assert_eq!(
        s.on_piece(&inbound(&pieces[0].1, "origin"), 64 << 20, now)
            .verdict,
        PieceVerdict::New
    );
    let mut forged = inbound(&pieces[1].1, "p05");
    let mut info = (**forged.meta.piece.as_ref().unwrap()).clone();
    info.crc32 ^= 1;
    forged.meta.piece = Some(Arc::new(info));
    assert!(matches!(
        s.on_piece(&forged, 64 << 20, now).verdict,
        PieceVerdict::Rejected(ref why) if why.contains("disagrees")
    ));
    // The table of partial broadcasts is bounded.
    let config = BroadcastConfig {
        max_assemblies: 1,
        ..BroadcastConfig::default()
    };
    let mut s = BroadcastState::new(id("p00"), config);
    let (other, _) = originate(1 << 20);
    assert_eq!(
        s.on_piece(&inbound(&pieces[0].1, "origin"), 64 << 20, now)
            .verdict,
        PieceVerdict::New
    );
    assert!(matches!(
        s.on_piece(&inbound(&other[0].1, "origin"), 64 << 20, now).verdict,
        PieceVerdict::Rejected(ref why) if why.contains("being assembled")
    ));
    assert_eq!(s.counters().pieces_refused, 1);
    // One neighbour may open only a quarter of the table.
    let config = BroadcastConfig {
        max_assemblies: 8,
        ..BroadcastConfig::default()
    };
    let mut s = BroadcastState::new(id("p00"), config);
    let opened = (0..4)
        .map(|_| {
            s.on_piece(&inbound(&originate(1 << 20).0[0].1, "p09"), 64 << 20, now)
                .verdict
        })
        .filter(|v| *v == PieceVerdict::New)
        .count();
    assert_eq!(opened, 2);
    assert_eq!(
        s.on_piece(&inbound(&originate(1 << 20).0[0].1, "p10"), 64 << 20, now)
            .verdict,
        PieceVerdict::New,
        "another neighbour still gets room"
    );
}

#[test]
fn a_stalled_assembly_is_pulled_whole_but_not_while_pieces_still_come() {
    let (pieces, _) = originate(1 << 20);
    let t0 = Instant::now();
    let config = BroadcastConfig::default();
    let stall = config.swarm_stall;
    let mut s = BroadcastState::new(id("p00"), config);
    s.on_piece(&inbound(&pieces[0].1, "origin"), 64 << 20, t0);
    let whole = pieces[0].1.meta.piece.as_ref().unwrap().message;
    // A node that finished announces it: no pull while pieces are coming.
    let announce = Announce {
        id: whole,
        origin: id("origin"),
        size: 1 << 20,
    };
    let wants = |a: &[Action]| {
        a.iter()
            .filter_map(|a| match a {
                Action::Want { to, id } if *id == whole => Some(to.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let a = s.on_announce(&id("p13"), vec![announce], t0);
    assert!(wants(&a).is_empty());
    s.on_piece(&inbound(&pieces[1].1, "origin"), 64 << 20, t0 + stall / 2);
    assert!(wants(&s.tick(t0 + stall)).is_empty(), "pieces still coming");
    // Nothing more for a whole stall period: the whole is pulled, once.
    let a = s.tick(t0 + stall / 2 + stall + Duration::from_millis(1));
    let asked = wants(&a);
    assert_eq!(asked.len(), 1, "{a:?}");
    assert_eq!(s.counters().assembly_stalls, 1);
    assert_eq!(s.assemblies(), (1, 1 << 20));
    // Never completed: after two minutes without a piece its memory is freed.
    s.tick(t0 + Duration::from_secs(180));
    assert_eq!(s.assemblies(), (0, 0));
}

#[test]
fn the_origins_own_announcement_of_a_swarm_does_not_pull_the_whole_from_it() {
    let (pieces, _) = originate(1 << 20);
    let t0 = Instant::now();
    let config = BroadcastConfig::default();
    let stall = config.swarm_stall;
    let whole = pieces[0].1.meta.piece.as_ref().unwrap().message;
    let announce = Announce {
        id: whole,
        origin: id("origin"),
        size: 1 << 20,
    };
    let wants = |a: &[Action]| {
        a.iter()
            .filter(|a| matches!(a, Action::Want { id, .. } if *id == whole))
            .count()
    };
    // Mid-assembly: the pieces keep coming, nothing is pulled.
    let mut s = BroadcastState::new(id("p00"), config.clone());
    s.on_piece(&inbound(&pieces[0].1, "origin"), 64 << 20, t0);
    assert_eq!(
        wants(&s.on_announce(&id("origin"), vec![announce.clone()], t0)),
        0
    );
    s.on_piece(&inbound(&pieces[1].1, "origin"), 64 << 20, t0 + stall / 2);
    assert_eq!(wants(&s.tick(t0 + stall)), 0, "pieces still coming");
    // Before the first piece: the pieces get a stall period to start coming.
    let mut s = BroadcastState::new(id("p01"), config);
    assert_eq!(wants(&s.on_announce(&id("origin"), vec![announce], t0)), 0);
    assert_eq!(wants(&s.tick(t0 + stall / 2)), 0);
    // None came: then the whole is pulled from the origin, once.
    assert_eq!(wants(&s.tick(t0 + stall + Duration::from_millis(1))), 1);
}

#[test]
fn pieces_that_assemble_into_the_wrong_payload_are_not_delivered() {
    let (pieces, _) = originate(1 << 20);
    let now = Instant::now();
    let mut s = BroadcastState::new(id("p00"), BroadcastConfig::default());
    let mut complete = None;
    for (i, (_, p)) in pieces.iter().enumerate() {
        let mut m = inbound(p, "p05");
        if i == 2 {
            // Consistent with its own checksum, but not the origin's bytes.
            m.payload = Bytes::from(vec![0u8; p.payload.len()]);
            m.crc32 = crc32fast::hash(&m.payload);
        }
        complete = complete.or(s.on_piece(&m, 64 << 20, now).complete);
    }
    assert!(complete.is_none(), "a corrupt whole was handed on");
    assert_eq!(s.counters().assembly_corrupt, 1);
    // It is fetched whole from the origin instead.
    let a = s.tick(now);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Want { to, .. } if *to == id("origin"))),
        "{a:?}"
    );
}

#[test]
fn a_forwarding_list_naming_this_node_skips_it() {
    let (pieces, _) = originate(1 << 20);
    let (root, first) = &pieces[0];
    let info = first.meta.piece.as_ref().unwrap();
    // A list that names the receiver itself, as a child.
    let mut m = inbound(first, "origin");
    let mut bad = (**info).clone();
    bad.subtree.insert(0, root.clone());
    m.meta.piece = Some(Arc::new(bad));
    let mut s = BroadcastState::new(root.clone(), BroadcastConfig::default());
    let out = s.on_piece(&m, 64 << 20, Instant::now());
    let to = sends(&out.actions);
    assert!(!to.contains(root), "sent to itself");
    assert!(!to.is_empty());
}

fn piece_wants(actions: &[Action]) -> Vec<(NodeId, Vec<u32>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::WantPieces { to, pieces, .. } => Some((to.clone(), pieces.clone())),
            _ => None,
        })
        .collect()
}

/// Pieces of one tree for a 4 MiB broadcast (16 pieces over 2 trees), as its
/// root gets them.
fn tree0(pieces: &[(NodeId, OutboundMessage)]) -> (NodeId, Vec<OutboundMessage>) {
    let root = pieces[0].0.clone();
    let mine = pieces
        .iter()
        .filter(|(to, _)| *to == root)
        .map(|(_, p)| p.clone())
        .collect();
    (root, mine)
}

#[test]
fn a_piece_from_a_new_neighbour_has_the_trees_missing_pieces_wanted_from_it() {
    let (pieces, _) = originate(4 << 20);
    let (root, mine) = tree0(&pieces);
    let now = Instant::now();
    let mut s = BroadcastState::new(root, BroadcastConfig::default());
    // Pieces 0 and 2 come from the origin; 4 and 6 never do (lost with a
    // relay); 8 comes from another node, routing around: 4 and 6 are wanted
    // from it at once.
    for p in &mine[..2] {
        assert!(piece_wants(&s.on_piece(&inbound(p, "origin"), 64 << 20, now).actions).is_empty());
    }
    let out = s.on_piece(&inbound(&mine[4], "p19"), 64 << 20, now);
    assert_eq!(piece_wants(&out.actions), [(id("p19"), vec![4, 6])]);
    // Not wanted again before the answer is late.
    assert!(piece_wants(&s.tick(now + Duration::from_millis(10))).is_empty());
    // The answer comes without a forwarding list: it goes on down this
    // node's side of the tree, as the tree's own pieces did.
    let mut answer = inbound(&mine[2], "p19");
    let mut info = (**answer.meta.piece.as_ref().unwrap()).clone();
    info.subtree.clear();
    answer.meta.piece = Some(Arc::new(info));
    let out = s.on_piece(&answer, 64 << 20, now);
    assert_eq!(out.verdict, PieceVerdict::New);
    assert_eq!(
        sends(&out.actions).len(),
        BroadcastConfig::default().swarm_fanout,
        "forwarded to its children"
    );
    assert_eq!(s.counters().pieces_wanted, 2);
}

#[test]
fn wanted_pieces_are_served_from_the_stored_whole_or_a_partial_assembly() {
    let mut rng = StdRng::seed_from_u64(3);
    let origin = id("origin");
    let mut o = BroadcastState::new(origin.clone(), BroadcastConfig::default());
    let data = payload(4 << 20);
    let msg = o.message("t", data.clone(), 16, 0);
    let whole = msg.meta.id;
    let mut members = peers(20);
    members.push(origin);
    let now = Instant::now();
    let actions = o
        .originate(msg, &members, now, now + Duration::from_secs(10), &mut rng)
        .unwrap();
    // The origin serves any piece, from its stored payload.
    let served = o.on_want_pieces(&id("p03"), &[(whole, vec![5, 15])]);
    let got: Vec<(NodeId, Vec<u8>)> = served
        .iter()
        .filter_map(|a| match a {
            Action::SendPiece { to, piece } => {
                assert!(piece.meta.piece.as_ref().unwrap().subtree.is_empty());
                Some((to.clone(), piece.payload.to_vec()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, id("p03"));
    assert_eq!(got[0].1, data[5 * (256 << 10)..6 * (256 << 10)].to_vec());
    // A node still assembling serves the pieces it has, and says what it
    // could not.
    let first = actions
        .iter()
        .find_map(|a| match a {
            Action::SendPiece { piece, .. } => Some(piece.clone()),
            _ => None,
        })
        .unwrap();
    let index = first.meta.piece.as_ref().unwrap().index;
    let mut r = BroadcastState::new(id("p00"), BroadcastConfig::default());
    r.on_piece(&inbound(&first, "origin"), 64 << 20, now);
    let served = r.on_want_pieces(&id("p03"), &[(whole, vec![index, index + 1])]);
    assert_eq!(sends(&served), [id("p03")]);
    assert_eq!(r.counters().wants_unserved, 1);
}

#[test]
fn a_quiet_assembly_wants_what_is_missing_from_the_origin_a_batch_at_a_time() {
    let (pieces, _) = originate(4 << 20);
    let (root, mine) = tree0(&pieces);
    let t0 = Instant::now();
    let config = BroadcastConfig::default();
    let mut s = BroadcastState::new(root, config.clone());
    for (n, p) in mine[..3].iter().enumerate() {
        s.on_piece(
            &inbound(p, "origin"),
            64 << 20,
            t0 + Duration::from_millis(20 * n as u64),
        );
    }
    // Pieces kept coming every 20 ms: a pause (a loaded host or link) is not
    // quiet.
    assert!(piece_wants(&s.tick(t0 + Duration::from_secs(1))).is_empty());
    // Three quarters of the stall time: the origin is asked for what is
    // missing, 8 pieces at a time (before the whole would be pulled).
    let quiet = t0 + config.swarm_stall;
    let wants = piece_wants(&s.tick(quiet));
    assert_eq!(wants.len(), 1, "{wants:?}");
    assert_eq!(wants[0].0, id("origin"));
    assert_eq!(wants[0].1, [1, 3, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn a_trees_missing_pieces_are_wanted_from_the_holders_when_its_parent_is_gone() {
    let (pieces, _) = originate(4 << 20);
    let (root, mine) = tree0(&pieces);
    let now = Instant::now();
    let mut s = BroadcastState::new(root, BroadcastConfig::default());
    // Tree 0's pieces come from p07; the other tree's from p08.
    for p in &mine[..3] {
        s.on_piece(&inbound(p, "p07"), 64 << 20, now);
    }
    let other = pieces.iter().find(|(to, _)| *to != pieces[0].0).unwrap();
    s.on_piece(&inbound(&other.1, "p08"), 64 << 20, now);
    // p07 dies holding the rest of tree 0: its missing pieces are wanted from
    // the origin at the next tick; the other tree's are not (p08 is alive).
    s.on_member_gone(&id("p07"), now);
    let wants = piece_wants(&s.tick(now + Duration::from_millis(20)));
    assert_eq!(wants, [(id("origin"), vec![6, 8, 10, 12, 14])]);
}
