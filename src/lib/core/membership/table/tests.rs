//! Unit tests of the member table: merge rules, tombstones, capacity and
//! digest diffs.

use super::*;

fn now(t0: Instant, ms: u64) -> Now {
    Now {
        instant: t0 + Duration::from_millis(ms),
        unix_ns: i64::try_from(ms).unwrap() * 1_000_000,
    }
}

fn rec(id: &str, counter: u64, state: MemberState) -> MemberRecord {
    crate::membership::record::testing::record(id, counter, state)
}

#[test]
fn removed_nodes_do_not_come_back_on_stale_gossip() {
    let t0 = Instant::now();
    let local = NodeId::parse("me").unwrap();
    let mut t = MemberTable::new(16);
    assert_eq!(
        t.apply(rec("x", 3, MemberState::Alive), now(t0, 0)).0,
        Applied::New
    );
    assert!(matches!(
        t.apply(rec("x", 3, MemberState::Dead), now(t0, 1)).0,
        Applied::Changed { .. }
    ));
    let events = t.reap(
        &local,
        Duration::from_secs(1),
        Duration::from_secs(60),
        now(t0, 1001),
    );
    assert_eq!(events[0].kind, EventKind::Removed);
    assert!(t.get(&NodeId::parse("x").unwrap()).is_none());
    // The old alive record keeps circulating: it must not resurrect x.
    assert_eq!(
        t.apply(rec("x", 3, MemberState::Alive), now(t0, 2000)).0,
        Applied::Stale
    );
    assert_eq!(
        t.apply(rec("x", 2, MemberState::Alive), now(t0, 2000)).0,
        Applied::Stale
    );
    // A newer version from x itself (a restart or refutation) does.
    assert_eq!(
        t.apply(rec("x", 4, MemberState::Alive), now(t0, 2000)).0,
        Applied::New
    );
}

#[test]
fn dead_is_not_overturned_by_the_same_version_alive() {
    let t0 = Instant::now();
    let mut t = MemberTable::new(16);
    t.apply(rec("x", 1, MemberState::Alive), now(t0, 0));
    t.apply(rec("x", 1, MemberState::Dead), now(t0, 0));
    assert_eq!(
        t.apply(rec("x", 1, MemberState::Alive), now(t0, 0)).0,
        Applied::Stale
    );
    let (a, e) = t.apply(rec("x", 2, MemberState::Alive), now(t0, 0));
    assert_eq!(
        a,
        Applied::Changed {
            from: MemberState::Dead
        }
    );
    assert_eq!(e.unwrap().kind, EventKind::AliveAgain);
}

#[test]
fn full_table_refuses_new_nodes_but_updates_known_ones() {
    let t0 = Instant::now();
    let mut t = MemberTable::new(2);
    t.apply(rec("a", 1, MemberState::Alive), now(t0, 0));
    t.apply(rec("b", 1, MemberState::Alive), now(t0, 0));
    assert_eq!(
        t.apply(rec("c", 1, MemberState::Alive), now(t0, 0)).0,
        Applied::TableFull
    );
    assert!(matches!(
        t.apply(rec("a", 2, MemberState::Alive), now(t0, 0)).0,
        Applied::Changed { .. }
    ));
}

#[test]
fn diff_sends_what_the_peer_lacks_and_wants_what_it_has_newer() {
    let t0 = Instant::now();
    let mut t = MemberTable::new(16);
    t.apply(rec("a", 2, MemberState::Alive), now(t0, 0));
    t.apply(rec("b", 1, MemberState::Alive), now(t0, 0));
    let remote = vec![
        rec("a", 1, MemberState::Alive).digest(),
        rec("b", 1, MemberState::Suspect).digest(),
        rec("c", 1, MemberState::Alive).digest(),
    ];
    let (send, want) = t.diff(&remote);
    assert_eq!(
        send.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["a"]
    );
    let mut want: Vec<_> = want.iter().map(NodeId::as_str).collect();
    want.sort_unstable();
    assert_eq!(want, vec!["b", "c"]);
    // Identical tables hash alike regardless of insertion order.
    let mut u = MemberTable::new(16);
    u.apply(rec("b", 1, MemberState::Alive), now(t0, 0));
    u.apply(rec("a", 2, MemberState::Alive), now(t0, 0));
    assert_eq!(t.hash(), u.hash());
}

#[test]
fn holders_of_an_address_or_a_name_are_found_and_follow_changes() {
    let t0 = Instant::now();
    let mut t = MemberTable::new(16);
    let named = |id: &str, counter: u64, name: &str, address: &str| {
        let mut r = rec(id, counter, MemberState::Alive);
        r.name = name.into();
        r.address = address.into();
        r
    };
    let (a, b) = (NodeId::parse("a").unwrap(), NodeId::parse("b").unwrap());
    t.apply(named("a", 1, "web-1", "10.0.0.1:7000"), now(t0, 0));
    assert_eq!(t.up_at_address("10.0.0.1:7000", &b), Some(&a));
    assert_eq!(t.up_at_address("10.0.0.1:7000", &a), None, "not itself");
    assert_eq!(t.up_at_address("10.0.0.2:7000", &b), None);
    // Names are indexed at the first question, with what is listed then.
    assert_eq!(t.up_named("web-1", &b), Some(&a));
    // A renamed, moved member is found under its new name and address only.
    t.apply(named("a", 2, "web-2", "10.0.0.2:7000"), now(t0, 1));
    assert_eq!(t.up_named("web-1", &b), None);
    assert_eq!(t.up_named("web-2", &b), Some(&a));
    assert_eq!(t.up_at_address("10.0.0.1:7000", &b), None);
    assert_eq!(t.up_at_address("10.0.0.2:7000", &b), Some(&a));
    // A member that is down holds nothing.
    t.apply(
        {
            let mut r = named("a", 2, "web-2", "10.0.0.2:7000");
            r.state = MemberState::Dead;
            r
        },
        now(t0, 2),
    );
    assert_eq!(t.up_named("web-2", &b), None);
    assert_eq!(t.up_at_address("10.0.0.2:7000", &b), None);
}
