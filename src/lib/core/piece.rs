//! Pieces of a swarm broadcast: a large payload cut into equal parts that
//! travel as messages of their own, each naming the whole it belongs to and the
//! nodes the receiver forwards it to.

use std::ops::Range;

use super::ids::{MessageId, NodeId};

/// Pieces per broadcast, at most.
pub const MAX_PIECES: u32 = 65_536;
/// Nodes named in one piece's forwarding list, at most (a bigger cluster
/// broadcasts without pieces).
pub const MAX_SUBTREE: usize = 16_384;
/// Fanout of a swarm tree, at most.
pub const MAX_SWARM_FANOUT: u32 = 16;

/// What a piece says about the broadcast it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceInfo {
    /// Id of the whole broadcast.
    pub message: MessageId,
    /// This piece's index, from 0.
    pub index: u32,
    /// Pieces in the broadcast.
    pub count: u32,
    /// Length of every piece but the last.
    pub piece_len: u64,
    /// Length of the whole payload.
    pub total_len: u64,
    /// CRC-32 of the whole payload.
    pub crc32: u32,
    /// Fanout of the tree: how the receiver splits `subtree` among its children.
    pub fanout: u32,
    /// The nodes below the receiver in this piece's tree, in layout order; empty
    /// for a leaf, and for a piece sent to repair a gap.
    pub subtree: Vec<NodeId>,
}

impl PieceInfo {
    /// Where piece `index` lies in the payload.
    pub fn range(&self, index: u32) -> Range<u64> {
        let start = u64::from(index).saturating_mul(self.piece_len);
        start.min(self.total_len)..start.saturating_add(self.piece_len).min(self.total_len)
    }

    /// Checks the description is self-consistent, the whole fits in
    /// `max_payload`, and `data_len` is this piece's length.
    ///
    /// # Errors
    /// What is wrong, for the sender.
    pub fn check(&self, max_payload: u64, data_len: u64) -> Result<(), String> {
        if self.total_len > max_payload {
            return Err(format!(
                "broadcast of {} bytes exceeds this node's limit of {max_payload} bytes",
                self.total_len
            ));
        }
        if self.piece_len == 0 || self.count == 0 || self.count > MAX_PIECES {
            return Err(format!(
                "piece length {} and count {} are not a valid cut (at most {MAX_PIECES} pieces)",
                self.piece_len, self.count
            ));
        }
        if self.total_len.div_ceil(self.piece_len).max(1) != u64::from(self.count) {
            return Err(format!(
                "{} pieces of {} bytes do not make {} bytes",
                self.count, self.piece_len, self.total_len
            ));
        }
        if self.index >= self.count {
            return Err(format!(
                "piece {} of a broadcast of {} pieces",
                self.index, self.count
            ));
        }
        let r = self.range(self.index);
        if data_len != r.end - r.start {
            return Err(format!(
                "piece {} has {data_len} bytes, expected {}",
                self.index,
                r.end - r.start
            ));
        }
        if !(2..=MAX_SWARM_FANOUT).contains(&self.fanout) || self.subtree.len() > MAX_SUBTREE {
            return Err(format!(
                "tree fanout {} (2..={MAX_SWARM_FANOUT}) or {} forwarding targets (at most {MAX_SUBTREE}) out of range",
                self.fanout,
                self.subtree.len()
            ));
        }
        Ok(())
    }
}

/// The link-level id of piece `index` of broadcast `message`: distinct per
/// piece, and from the broadcast's own id.
pub fn piece_id(message: MessageId, index: u32) -> MessageId {
    MessageId::from_u128(message.as_u128() ^ (u128::from(index) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(total_len: u64, piece_len: u64, index: u32) -> PieceInfo {
        PieceInfo {
            message: MessageId::from_u128(1),
            index,
            count: u32::try_from(total_len.div_ceil(piece_len.max(1)).max(1)).unwrap(),
            piece_len,
            total_len,
            crc32: 0,
            fanout: 4,
            subtree: Vec::new(),
        }
    }

    #[test]
    fn ranges_tile_the_payload() {
        let i = info(10, 4, 0);
        assert_eq!(i.count, 3);
        assert_eq!([i.range(0), i.range(1), i.range(2)], [0..4, 4..8, 8..10]);
        assert_eq!(info(0, 4, 0).range(0), 0..0);
    }

    #[test]
    fn inconsistent_pieces_are_refused_with_the_reason() {
        assert!(info(10, 4, 2).check(100, 2).is_ok());
        assert!(
            info(10, 4, 2)
                .check(100, 4)
                .unwrap_err()
                .contains("expected 2")
        );
        assert!(
            info(10, 4, 0)
                .check(5, 4)
                .unwrap_err()
                .contains("limit of 5")
        );
        let mut bad = info(10, 4, 0);
        bad.count = 7;
        assert!(bad.check(100, 4).unwrap_err().contains("do not make"));
        let mut bad = info(10, 4, 0);
        bad.index = 3;
        assert!(bad.check(100, 4).is_err());
        let mut bad = info(10, 4, 0);
        bad.fanout = 1;
        assert!(bad.check(100, 4).unwrap_err().contains("fanout"));
        let mut bad = info(10, 0, 0);
        bad.count = 1;
        assert!(bad.check(100, 0).is_err());
    }

    #[test]
    fn piece_ids_differ_from_each_other_and_the_whole() {
        let m = MessageId::new();
        let ids: std::collections::HashSet<_> = (0..1000).map(|i| piece_id(m, i)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&m));
    }
}
