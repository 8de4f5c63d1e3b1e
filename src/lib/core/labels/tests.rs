use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> LabelChange {
    LabelChange {
        set: map(pairs),
        actor: "alice".into(),
        ..LabelChange::default()
    }
}

#[test]
fn set_and_unset_overlay_the_configuration() {
    let config = map(&[("zone", "eu"), ("rack", "7")]);
    let t = apply(&config, &Overrides::default(), set(&[("zone", "us")]), 5).expect("set");
    assert!(t.changed());
    assert_eq!(t.after, map(&[("zone", "us"), ("rack", "7")]));
    assert_eq!(t.overrides.actor, "alice");
    assert_eq!(t.overrides.changed_unix_ns, 5);

    let unset = LabelChange {
        unset: vec!["rack".into()],
        actor: "bob".into(),
        ..LabelChange::default()
    };
    let t = apply(&config, &t.overrides, unset, 6).expect("unset");
    assert_eq!(t.after, map(&[("zone", "us")]));
    assert_eq!(t.overrides.actor, "bob");
}

#[test]
fn runtime_changes_win_over_a_reloaded_configuration_until_reset() {
    let t = apply(
        &map(&[("zone", "eu")]),
        &Overrides::default(),
        set(&[("zone", "us")]),
        1,
    )
    .expect("set");
    // The config file now says zone=ap and adds a key: the runtime value stays,
    // the new key applies.
    let reloaded = map(&[("zone", "ap"), ("os", "linux")]);
    assert_eq!(
        effective(&reloaded, &t.overrides),
        map(&[("zone", "us"), ("os", "linux")])
    );
    let reset = LabelChange {
        reset: vec!["zone".into()],
        ..LabelChange::default()
    };
    let t = apply(&reloaded, &t.overrides, reset, 2).expect("reset");
    assert_eq!(t.after, reloaded);
    assert!(t.overrides.entries.is_empty());
}

#[test]
fn setting_the_same_value_again_changes_nothing_published() {
    let config = map(&[("zone", "eu")]);
    let t = apply(&config, &Overrides::default(), set(&[("zone", "eu")]), 1).expect("set");
    assert!(!t.changed());
}

#[test]
fn bad_requests_name_what_is_wrong_and_change_nothing() {
    let none = Overrides::default();
    let config = BTreeMap::new();
    let e = apply(&config, &none, set(&[("", "x")]), 1).expect_err("empty key");
    assert!(e.to_string().contains("is empty"), "{e}");
    let e = apply(&config, &none, set(&[("a b", "x")]), 1).expect_err("space");
    assert!(e.to_string().contains("printable ASCII"), "{e}");
    let long = "v".repeat(MAX_LABEL_BYTES + 1);
    let e = apply(&config, &none, set(&[("k", &long)]), 1).expect_err("long value");
    assert!(e.to_string().contains("257 bytes"), "{e}");
    let mut both = set(&[("k", "v")]);
    both.unset.push("k".into());
    assert_eq!(
        apply(&config, &none, both, 1),
        Err(LabelError::Conflict("k".into()))
    );
    assert_eq!(
        apply(&config, &none, LabelChange::default(), 1),
        Err(LabelError::Empty)
    );
}

#[test]
fn the_label_count_is_bounded() {
    let config: BTreeMap<String, String> = (0..MAX_LABELS)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    let none = Overrides::default();
    // Replacing a value keeps the count.
    apply(&config, &none, set(&[("k0", "w")]), 1).expect("replace");
    assert_eq!(
        apply(&config, &none, set(&[("extra", "v")]), 1),
        Err(LabelError::TooMany(MAX_LABELS + 1))
    );
    // Removing one makes room in the same request.
    let mut swap = set(&[("extra", "v")]);
    swap.unset.push("k1".into());
    apply(&config, &none, swap, 1).expect("swap");
}
