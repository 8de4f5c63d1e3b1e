//! Known peers kept in the data dir (`peers.json`), as Serf's snapshot: a node
//! restarted after its seeds moved or died finds the cluster again through
//! the peers it knew. At most [`MAX_PEERS`] are kept, rewritten (atomically)
//! every [`SAVE_INTERVAL`] when they changed and once more at shutdown.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::membership::MembershipAgent;

/// Peers kept; the rest of a bigger cluster is found through them.
pub const MAX_PEERS: usize = 256;
/// How often the file is refreshed (only written when the peers changed).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(30);
/// Largest file read back; a bigger one is ignored with a warning.
const MAX_FILE_BYTES: u64 = 1 << 20;
const SCHEMA: &str = "gsp.peers-snapshot.v1";
const FILE: &str = "peers.json";

/// One remembered peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Node id.
    pub id: String,
    /// Name, for people reading the file.
    pub name: String,
    /// Address it was reached at.
    pub address: String,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    schema: String,
    peers: Vec<Peer>,
}

/// The snapshot file of one data dir.
#[derive(Debug, Clone)]
pub struct Snapshot {
    path: PathBuf,
}

impl Snapshot {
    /// The snapshot in `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE),
        }
    }

    /// The peers saved by the last run; none (and a warning naming the file)
    /// when it is missing, unreadable, too big or of another schema.
    pub fn load(&self) -> Vec<Peer> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                warn!(file = %self.path.display(), error = %e, "cannot read the peers snapshot; ignoring it");
                return Vec::new();
            }
        };
        if meta.len() > MAX_FILE_BYTES {
            warn!(file = %self.path.display(), bytes = meta.len(), "peers snapshot too big; ignoring it");
            return Vec::new();
        }
        let parsed = std::fs::read(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<OnDisk>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(d) if d.schema == SCHEMA => {
                let mut peers = d.peers;
                peers.truncate(MAX_PEERS);
                peers
            }
            Ok(d) => {
                warn!(file = %self.path.display(), schema = %d.schema, "peers snapshot of an unknown schema; ignoring it");
                Vec::new()
            }
            Err(e) => {
                warn!(file = %self.path.display(), error = %e, "peers snapshot is not valid; ignoring it");
                Vec::new()
            }
        }
    }

    /// Replaces the file with `peers` (at most [`MAX_PEERS`]).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, peers: &[Peer]) -> std::io::Result<()> {
        let disk = OnDisk {
            schema: SCHEMA.to_owned(),
            peers: peers.iter().take(MAX_PEERS).cloned().collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&disk).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        super::identity::write_atomic(&self.path, &bytes)
    }
}

/// The up members other than this node, in id order, at most [`MAX_PEERS`].
pub fn current(agent: &MembershipAgent) -> Vec<Peer> {
    let own = agent.local_id().clone();
    agent.with_state(|m| {
        let mut peers: Vec<Peer> = m
            .records()
            .filter(|r| r.state.is_up() && r.id != own)
            .map(|r| Peer {
                id: r.id.to_string(),
                name: r.name.clone(),
                address: r.address.clone(),
            })
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers.truncate(MAX_PEERS);
        peers
    })
}

/// Refreshes the snapshot every [`SAVE_INTERVAL`] until `shutdown`, then
/// writes it once more (the node still knows its peers while it leaves).
pub async fn keep(snapshot: Snapshot, agent: MembershipAgent, shutdown: CancellationToken) {
    let mut last = Vec::new();
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(SAVE_INTERVAL) => false,
        };
        let peers = current(&agent);
        // An empty table (alone, or partitioned off) keeps the older file: it
        // is the better guess of where the cluster is.
        if !peers.is_empty() && peers != last {
            match snapshot.save(&peers) {
                Ok(()) => debug!(peers = peers.len(), "peers snapshot saved"),
                Err(e) => {
                    warn!(file = %snapshot.path.display(), error = %e, "cannot save the peers snapshot");
                }
            }
            last = peers;
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: usize) -> Peer {
        Peer {
            id: format!("id-{i:04}"),
            name: format!("n{i}"),
            address: format!("10.0.0.{}:50005", i % 250),
        }
    }

    #[test]
    fn round_trips_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshot::in_dir(dir.path());
        assert!(s.load().is_empty(), "no file is no peers");
        let many: Vec<Peer> = (0..MAX_PEERS + 10).map(peer).collect();
        s.save(&many).unwrap();
        let back = s.load();
        assert_eq!(back.len(), MAX_PEERS);
        assert_eq!(back[0], many[0]);
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshot::in_dir(dir.path());
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(s.load().is_empty());
        std::fs::write(dir.path().join(FILE), br#"{"schema":"other","peers":[]}"#).unwrap();
        assert!(s.load().is_empty());
    }
}
