//! Unit tests of the connection table: per-address caps and eviction of
//! the connection idle longest.

use super::*;

fn is_closed(c: &mut Conn) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    c.closed.as_mut().poll(&mut cx).is_ready()
}

fn limits() -> ConnLimits {
    ConnLimits {
        max_opening: 4,
        max_opening_per_address: 2,
        max_established: 3,
        max_per_address: 2,
        ..ConnLimits::default()
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[test]
fn one_address_cannot_take_the_opening_table_or_the_connection_table() {
    let t = ConnTable::new(limits());
    let a1 = t.try_open(ip(2)).unwrap();
    let _a2 = t.try_open(ip(2)).unwrap();
    assert_eq!(t.try_open(ip(2)).unwrap_err(), Refused::OpeningTableFull);
    // Another address still gets in.
    let b = t.try_open(ip(1)).unwrap();
    let (_c1, _) = t.establish(a1, Instant::now()).unwrap();
    let a3 = t.try_open(ip(2)).unwrap();
    let (_c2, _) = t.establish(a3, Instant::now()).unwrap();
    // ip(2) now holds its two established connections.
    assert_eq!(t.try_open(ip(2)).unwrap_err(), Refused::PerAddressCap);
    let (cb, evicted) = t.establish(b, Instant::now()).unwrap();
    assert!(!evicted);
    assert_eq!(t.counts(), (1, 3));
    drop(cb);
    assert_eq!(t.counts().1, 2);
}

#[test]
fn at_the_global_cap_only_a_long_idle_connection_is_closed_for_a_new_one() {
    let t = ConnTable::new(ConnLimits {
        max_per_address: 8,
        max_opening_per_address: 8,
        ..limits()
    });
    let t0 = Instant::now();
    let mut conns = Vec::new();
    for i in 0..3 {
        conns.push(t.establish(t.try_open(ip(i + 1)).unwrap(), t0).unwrap().0);
    }
    // Everyone is fresh: the newcomer is refused rather than churning them.
    let late = t.try_open(ip(9)).unwrap();
    assert_eq!(t.establish(late, t0).unwrap_err(), Refused::EvictedIdle);
    // Later, the one idle longest makes room; the others were active.
    let later = t0 + MIN_IDLE_TO_EVICT + Duration::from_secs(1);
    for c in &conns[1..] {
        c.activity.store(t.ms(later), Ordering::Relaxed);
    }
    let late = t.try_open(ip(9)).unwrap();
    let (_c, evicted) = t.establish(late, later).unwrap();
    assert!(evicted);
    assert!(is_closed(&mut conns[0]), "the idle one is told to close");
    assert!(!is_closed(&mut conns[1]));
    assert_eq!(t.counts().1, 3);
}
