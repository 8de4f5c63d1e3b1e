//! A member's record: what every node knows about one node, and the rules that
//! order two records about the same node.

use std::{cmp::Ordering, collections::BTreeMap, fmt, sync::Arc};

use crate::{ids::NodeId, message::OriginAuth};

/// Where a node is in its life, as this node believes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; may still refute.
    Suspect,
    /// Suspicion expired without refutation.
    Dead,
    /// Announced a graceful leave.
    Left,
}

impl MemberState {
    /// For two records with the same version, the one with the higher precedence
    /// wins: a claim of suspicion or death about a version can only be overturned
    /// by the node publishing a newer version.
    pub fn precedence(self) -> u8 {
        match self {
            Self::Alive => 0,
            Self::Suspect => 1,
            Self::Dead => 2,
            Self::Left => 3,
        }
    }

    /// Whether the node is believed to be running (alive or suspect).
    pub fn is_up(self) -> bool {
        matches!(self, Self::Alive | Self::Suspect)
    }

    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Dead => "dead",
            Self::Left => "left",
        }
    }

    /// iarnet's coarse status: online (alive), error (suspect), offline (dead, left).
    pub fn status(self) -> &'static str {
        match self {
            Self::Alive => "online",
            Self::Suspect => "error",
            Self::Dead | Self::Left => "offline",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "alive" => Some(Self::Alive),
            "suspect" => Some(Self::Suspect),
            "dead" => Some(Self::Dead),
            "left" => Some(Self::Left),
            _ => None,
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Operator-set availability of a node for work (seed 003).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Maintenance {
    /// Takes work.
    #[default]
    Normal,
    /// Excluded from query results; still gossips and relays.
    Maintenance,
    /// Also refuses broadcast payloads.
    Disabled,
}

impl Maintenance {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Maintenance => "maintenance",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Maintenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Maintenance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(Self::Normal),
            "maintenance" => Ok(Self::Maintenance),
            "disabled" => Ok(Self::Disabled),
            other => Err(format!(
                "unknown maintenance state {other:?}; expected normal, maintenance or disabled"
            )),
        }
    }
}

/// A record's position in its node's history: restart generation, then a counter
/// the node bumps on every change it publishes. A restarted node always supersedes
/// its old self because its incarnation (start time) is larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Restart generation: the node's start time in unix nanoseconds (0 for iarnet
    /// nodes, which have none).
    pub incarnation: u64,
    /// Changes published within this incarnation.
    pub counter: u64,
}

/// Largest counter a record may carry (records beyond it are refused on the
/// wire). A node whose counter reaches it moves to a new incarnation instead, so
/// a claim at any acceptable version can always be answered by a newer one.
pub const MAX_COUNTER: u64 = 1 << 48;

impl Version {
    /// The version a node publishes after `self`: the next counter, or, once the
    /// counter is at [`MAX_COUNTER`], counter 1 of a new incarnation (`now_unix_ns`,
    /// or one past the current incarnation if the clock is behind it).
    #[must_use]
    pub fn next(self, now_unix_ns: i64) -> Self {
        if self.counter < MAX_COUNTER {
            return Self {
                incarnation: self.incarnation,
                counter: self.counter + 1,
            };
        }
        let now = u64::try_from(now_unix_ns).unwrap_or(0);
        Self {
            incarnation: now.max(self.incarnation.saturating_add(1)),
            counter: 1,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.incarnation, self.counter)
    }
}

/// CPU millicores, memory bytes and GPU count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Amounts {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// Whole GPUs.
    pub gpus: i64,
}

/// Total, used and available resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Capacity {
    /// What the node has.
    pub total: Amounts,
    /// What is in use.
    pub used: Amounts,
    /// What is free.
    pub available: Amounts,
}

/// Coarse capability tags (iarnet's ResourceTags).
#[expect(
    clippy::struct_excessive_bools,
    reason = "mirrors iarnet's ResourceTags wire message"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Tags {
    /// Has CPU.
    pub cpu: bool,
    /// Has a GPU.
    pub gpu: bool,
    /// Has memory.
    pub memory: bool,
    /// Has a video device.
    pub camera: bool,
}

/// One device a job can be given: a GPU, or a MIG instance of one (a GPU in
/// MIG mode is offered as its instances).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Gpu {
    /// NVML's index of the GPU (for a MIG instance, its GPU's).
    pub index: u32,
    /// `GPU-…`, or `MIG-…` for a MIG instance: what `CUDA_VISIBLE_DEVICES`
    /// names.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// Memory in bytes.
    pub memory_total_bytes: u64,
    /// Memory in use in bytes.
    pub memory_used_bytes: u64,
    /// Utilization in percent.
    pub utilization_pct: u32,
    /// For a MIG instance: its GPU's UUID; empty otherwise.
    pub mig_parent: String,
    /// Processes using it.
    pub processes: u32,
    /// Of those, the ones gsp did not start.
    pub foreign_processes: u32,
    /// In use outside gsp: a process gsp did not start, or memory in use
    /// that no process listed explains. Not free for jobs.
    pub busy: bool,
    /// Held by a job of this node.
    pub held: bool,
}

impl Gpu {
    /// Memory not in use, in bytes.
    pub fn memory_free_bytes(&self) -> u64 {
        self.memory_total_bytes
            .saturating_sub(self.memory_used_bytes)
    }

    /// Whether a job may be given it: neither busy nor held.
    pub fn is_free(&self) -> bool {
        !self.busy && !self.held
    }
}

/// Everything the cluster knows about one node, as published by that node (plus,
/// for suspect records, who suspects it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Stable id.
    pub id: NodeId,
    /// Human-readable name.
    pub name: String,
    /// `host:port` peers dial.
    pub address: String,
    /// Only same-domain nodes are merged.
    pub domain: String,
    /// Position in the node's history.
    pub version: Version,
    /// Believed state.
    pub state: MemberState,
    /// For a suspect record: the node that suspects it.
    pub suspected_by: Option<NodeId>,
    /// Resources, when known.
    pub capacity: Option<Capacity>,
    /// Capability tags.
    pub tags: Tags,
    /// GPUs.
    pub gpus: Vec<Gpu>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Operator-set availability.
    pub maintenance: Maintenance,
    /// iarnet's scheduler address field, passed through.
    pub scheduler_address: String,
    /// The node's wall clock when it published this version, unix nanoseconds.
    pub updated_unix_ns: i64,
    /// gsp membership protocol revision the node speaks; 0 for iarnet nodes.
    pub protocol: u32,
    /// Runs jobs sent with `gsp run` (the node was started with `--exec`).
    pub exec: bool,
    /// The node's own signature over this record, with its certificate (under
    /// mutual TLS), so a relayed copy can be told from a forgery.
    pub proof: Option<OriginAuth>,
}

/// A record as tables, queues and messages hold it: one allocation shared by
/// every holder. A record is immutable once published (a change is a new
/// version, a new record), and a cluster of N members has each record in N
/// tables, N update queues and many messages; sharing keeps a simulated
/// 10,000-node cluster in memory and makes relaying a record a reference count.
pub type SharedRecord = Arc<MemberRecord>;

/// Signs the records a node publishes about itself (the runtime's TLS key;
/// passed in, so the core stays free of crypto).
pub trait RecordSigner: Send + Sync + fmt::Debug {
    /// The proof for `record` (`None`: cannot sign).
    fn sign_record(&self, record: &MemberRecord) -> Option<OriginAuth>;
}

/// Bytes a record's fixed fields take on the wire, at most (versions, state,
/// amounts, flags, times, field tags): [`MemberRecord::approx_wire_len`] adds
/// its variable parts to this.
const FIXED_WIRE_BYTES: usize = 160;

impl MemberRecord {
    /// About how many bytes this record takes in a message (an upper-leaning
    /// estimate, for packing messages to a byte budget without encoding).
    pub fn approx_wire_len(&self) -> usize {
        let strings = self.id.as_str().len()
            + self.name.len()
            + self.address.len()
            + self.domain.len()
            + self.scheduler_address.len()
            + self.suspected_by.as_ref().map_or(0, |s| s.as_str().len());
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let gpus: usize = self
            .gpus
            .iter()
            .map(|g| g.name.len() + g.uuid.len() + g.mig_parent.len() + 48)
            .sum();
        let proof = self
            .proof
            .as_ref()
            .map_or(0, |p| p.signature.len() + p.certificate.len() + 8);
        FIXED_WIRE_BYTES + strings + labels + gpus + proof
    }

    /// A fresh alive record for a starting node.
    pub fn new(
        id: NodeId,
        name: String,
        address: String,
        domain: String,
        incarnation: u64,
    ) -> Self {
        Self {
            id,
            name,
            address,
            domain,
            version: Version {
                incarnation,
                counter: 1,
            },
            state: MemberState::Alive,
            suspected_by: None,
            capacity: None,
            tags: Tags::default(),
            gpus: Vec::new(),
            labels: BTreeMap::new(),
            maintenance: Maintenance::Normal,
            scheduler_address: String::new(),
            updated_unix_ns: 0,
            protocol: super::PROTOCOL_VERSION,
            exec: false,
            proof: None,
        }
    }

    /// How `self` compares to `other` (both about the same node): newer version
    /// wins; for equal versions, the state with the higher precedence wins.
    pub fn supersedes(&self, other: &Self) -> bool {
        match self.version.cmp(&other.version) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => self.state.precedence() > other.state.precedence(),
        }
    }

    /// A compact summary for anti-entropy.
    pub fn digest(&self) -> Digest {
        Digest {
            id: self.id.clone(),
            version: self.version,
            state: self.state,
        }
    }
}

/// What anti-entropy compares: who, which version, which state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    /// The node.
    pub id: NodeId,
    /// Its version.
    pub version: Version,
    /// Its state.
    pub state: MemberState,
}

impl Digest {
    /// Whether a record with this digest would supersede one with `other`.
    pub fn supersedes(&self, other: &Self) -> bool {
        match self.version.cmp(&other.version) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => self.state.precedence() > other.state.precedence(),
        }
    }

    /// A stable 64-bit hash (FNV-1a), the same on every platform and release, so
    /// two nodes can compare sums of them.
    pub fn stable_hash(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(PRIME);
            }
        };
        eat(self.id.as_str().as_bytes());
        eat(&[0xff]);
        eat(&self.version.incarnation.to_le_bytes());
        eat(&self.version.counter.to_le_bytes());
        eat(&[self.state.precedence()]);
        h
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
