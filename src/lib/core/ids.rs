//! Identifier newtypes: node ids and message ids.

use std::{fmt, sync::Arc};

use uuid::Uuid;

/// A node's stable identity: persisted in `<data_dir>/node_id`, a UUID string by
/// default (iarnet's node ids are opaque strings, so any non-empty string is accepted
/// from peers).
///
/// Shared, not copied: every member table, queue and message of a node holds
/// the same few ids many times over, so a clone is a reference count.
///
/// Ordered as its string is, but its first 8 bytes are kept inline too, so
/// a comparison in a member table of 10,000 rarely follows the pointer to the
/// string (that load and a `memcmp` call were a quarter of a large
/// membership simulation's time).
#[derive(Clone, Debug)]
pub struct NodeId {
    /// The first 8 bytes, big-endian, zero-padded: compares as the string does.
    prefix: u64,
    id: Arc<str>,
}

fn prefix_of(s: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

impl From<Arc<str>> for NodeId {
    fn from(id: Arc<str>) -> Self {
        Self {
            prefix: prefix_of(&id),
            id,
        }
    }
}

impl PartialEq for NodeId {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && (Arc::ptr_eq(&self.id, &other.id) || self.id == other.id)
    }
}

impl Eq for NodeId {}

impl std::hash::Hash for NodeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialOrd for NodeId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NodeId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A shorter prefix's zero padding sorts before any byte, as the end of
        // a string does; equal prefixes fall back to the whole strings.
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl NodeId {
    /// Longest node id accepted from the wire or a file.
    pub const MAX_LEN: usize = 128;

    /// A fresh random node id (UUIDv4).
    pub fn random() -> Self {
        Arc::<str>::from(Uuid::new_v4().to_string()).into()
    }

    /// Validates an id received from a peer or read from disk.
    ///
    /// # Errors
    /// Empty, longer than [`Self::MAX_LEN`], or containing control characters or
    /// whitespace.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if s.is_empty() {
            return Err(InvalidId::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidId::TooLong(s.len()));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(InvalidId::BadCharacter);
        }
        Ok(Arc::<str>::from(s).into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// The id was the empty string.
    #[error("id is empty")]
    Empty,
    /// The id was longer than allowed.
    #[error("id is {0} bytes long, over the limit of {max}", max = NodeId::MAX_LEN)]
    TooLong(usize),
    /// The id contained whitespace or a control character.
    #[error("id contains whitespace or a control character")]
    BadCharacter,
    /// A message id was not exactly 16 bytes.
    #[error("message id must be 16 bytes, got {0}")]
    BadMessageIdLength(usize),
}

/// A message id: a UUIDv7, so ids sort by creation time and never repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(Uuid);

impl MessageId {
    /// A new id stamped with the current time.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id's 16 wire bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Parses the 16 wire bytes.
    ///
    /// # Errors
    /// The slice is not 16 bytes long.
    pub fn from_slice(b: &[u8]) -> Result<Self, InvalidId> {
        Uuid::from_slice(b)
            .map(Self)
            .map_err(|_| InvalidId::BadMessageIdLength(b.len()))
    }

    /// The id as a number.
    pub fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }

    /// Builds an id from a number; for tests and simulations that need predictable ids.
    pub fn from_u128(n: u128) -> Self {
        Self(Uuid::from_u128(n))
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_validation_names_the_problem() {
        assert_eq!(NodeId::parse(""), Err(InvalidId::Empty));
        assert_eq!(NodeId::parse("a b"), Err(InvalidId::BadCharacter));
        assert_eq!(
            NodeId::parse(&"x".repeat(129)),
            Err(InvalidId::TooLong(129))
        );
        assert_eq!(NodeId::parse("node-1").unwrap().as_str(), "node-1");
    }

    #[test]
    fn node_ids_sort_and_compare_as_their_strings() {
        // Short ids, ids equal in their first 8 bytes, prefixes of each
        // other, bytes above 0x7f: the inline prefix must not change the order
        // tables, `gsp peers` and digests see.
        let words = [
            "a",
            "ab",
            "abcdefgh",
            "abcdefgh-1",
            "abcdefgh-2",
            "abcdefg",
            "abcdefgi",
            "b",
            "node-10",
            "node-2",
            "node-1",
            "\u{e9}",
            "z\u{e9}z",
            "zz",
            "0",
            "~",
        ];
        let ids: Vec<NodeId> = words.iter().map(|w| NodeId::parse(w).unwrap()).collect();
        for (a, x) in words.iter().zip(&ids) {
            for (b, y) in words.iter().zip(&ids) {
                assert_eq!(x.cmp(y), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(x == y, a == b, "{a:?} == {b:?}");
            }
        }
        let copy = NodeId::parse("abcdefgh-1").unwrap();
        assert_eq!(copy, ids[3], "equal strings in different allocations");
    }

    #[test]
    fn message_ids_round_trip_and_are_unique() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert_ne!(a, b);
        assert_eq!(MessageId::from_slice(a.as_bytes()).unwrap(), a);
        assert_eq!(
            MessageId::from_slice(&[1, 2, 3]),
            Err(InvalidId::BadMessageIdLength(3))
        );
    }
}
