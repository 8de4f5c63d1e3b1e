//! Members by a string they advertise (address or name), kept small: every
//! node of a large simulation holds one per member, so a key is a 64-bit hash
//! of the string (no copy of it) and a single holder is stored inline.
//!
//! Two strings may share a hash; a lookup returns every holder of the hash,
//! and the caller checks the string against the holder's record. The hasher
//! is keyed per index (`RandomState`), so nobody can choose strings that
//! collide on purpose.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
};

use crate::ids::NodeId;

/// Who holds a key: one member, as it almost always is, or several.
#[derive(Debug)]
enum Holders {
    One(NodeId),
    Many(Vec<NodeId>),
}

impl Holders {
    fn as_slice(&self) -> &[NodeId] {
        match self {
            Self::One(id) => std::slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }
}

/// Members by the hash of a string they advertise.
#[derive(Debug, Default)]
pub(super) struct StrIndex {
    keys: RandomState,
    map: HashMap<u64, Holders>,
}

impl StrIndex {
    fn key(&self, s: &str) -> u64 {
        self.keys.hash_one(s)
    }

    /// Records that `id` holds `s`.
    pub(super) fn add(&mut self, s: &str, id: &NodeId) {
        let key = self.key(s);
        match self.map.get_mut(&key) {
            None => {
                self.map.insert(key, Holders::One(id.clone()));
            }
            Some(Holders::One(held)) => {
                if held != id {
                    let first = held.clone();
                    self.map.insert(key, Holders::Many(vec![first, id.clone()]));
                }
            }
            Some(Holders::Many(ids)) => {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
    }

    /// Records that `id` no longer holds `s`.
    pub(super) fn remove(&mut self, s: &str, id: &NodeId) {
        let key = self.key(s);
        let empty = match self.map.get_mut(&key) {
            None => return,
            Some(Holders::One(held)) => held == id,
            Some(Holders::Many(ids)) => {
                ids.retain(|x| x != id);
                match ids.as_slice() {
                    [] => true,
                    [one] => {
                        let one = one.clone();
                        self.map.insert(key, Holders::One(one));
                        false
                    }
                    _ => false,
                }
            }
        };
        if empty {
            self.map.remove(&key);
        }
    }

    /// Every member holding `s`, and maybe members holding another string
    /// of the same hash: the caller checks.
    pub(super) fn get(&self, s: &str) -> &[NodeId] {
        self.map
            .get(&self.key(s))
            .map_or(&[][..], Holders::as_slice)
    }

    /// Keys held (one per distinct string, collisions aside).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::from(std::sync::Arc::<str>::from(s))
    }

    #[test]
    fn holders_are_added_removed_and_listed_per_string() {
        let mut ix = StrIndex::default();
        ix.add("10.0.0.1:7000", &id("a"));
        ix.add("10.0.0.1:7000", &id("a"));
        assert_eq!(ix.get("10.0.0.1:7000"), &[id("a")]);
        ix.add("10.0.0.1:7000", &id("b"));
        assert_eq!(ix.get("10.0.0.1:7000"), &[id("a"), id("b")]);
        assert!(ix.get("10.0.0.2:7000").is_empty());
        ix.remove("10.0.0.1:7000", &id("a"));
        assert_eq!(ix.get("10.0.0.1:7000"), &[id("b")]);
        ix.remove("10.0.0.1:7000", &id("c"));
        assert_eq!(ix.get("10.0.0.1:7000"), &[id("b")]);
        ix.remove("10.0.0.1:7000", &id("b"));
        assert!(ix.get("10.0.0.1:7000").is_empty());
        assert_eq!(ix.len(), 0, "an emptied key is dropped");
    }
}
