//! Anti-entropy digests <-> `discovery.GspNodeDigest`.

use super::{InvalidRecord, RecordLimits, invalid, node_id, states::state_to_pb};
use crate::{
    core::membership::record::{Digest, MemberState, Version},
    transport::pb::discovery as pb,
};

/// The wire form of a digest.
pub fn digest_to_pb(d: &Digest) -> pb::GspNodeDigest {
    pb::GspNodeDigest {
        node_id: d.id.to_string(),
        incarnation: d.version.incarnation,
        version: d.version.counter,
        state: state_to_pb(d.state).0.into(),
    }
}

/// Parses digests.
///
/// # Errors
/// Too many, or a malformed node id.
pub fn digests_from_pb(
    ds: Vec<pb::GspNodeDigest>,
    limits: &RecordLimits,
) -> Result<Vec<Digest>, InvalidRecord> {
    if ds.len() > limits.max_digests {
        return Err(invalid(
            "gsp_digests",
            format!(
                "{} digests, over the limit of {}",
                ds.len(),
                limits.max_digests
            ),
        ));
    }
    ds.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let state = match pb::GspMemberState::try_from(d.state) {
                Ok(pb::GspMemberState::Suspect) => MemberState::Suspect,
                Ok(pb::GspMemberState::Dead) => MemberState::Dead,
                Ok(pb::GspMemberState::Left) => MemberState::Left,
                _ => MemberState::Alive,
            };
            Ok(Digest {
                id: node_id(&format!("gsp_digests[{i}].node_id"), &d.node_id)?,
                version: Version {
                    incarnation: d.incarnation,
                    counter: d.version,
                },
                state,
            })
        })
        .collect()
}
