//! Member states and maintenance states on the wire: gsp's own enums, and
//! iarnet's coarse node status for records that carry nothing else.

use crate::{
    core::membership::record::{Maintenance, MemberState},
    transport::pb::discovery as pb,
};

pub(super) fn state_from_pb(info: &pb::PeerNodeInfo) -> MemberState {
    match pb::GspMemberState::try_from(info.gsp_state) {
        Ok(pb::GspMemberState::Alive) => MemberState::Alive,
        Ok(pb::GspMemberState::Suspect) => MemberState::Suspect,
        Ok(pb::GspMemberState::Dead) => MemberState::Dead,
        Ok(pb::GspMemberState::Left) => MemberState::Left,
        // iarnet records carry only the coarse status.
        Ok(pb::GspMemberState::Unspecified) | Err(_) => match pb::NodeStatus::try_from(info.status)
        {
            Ok(pb::NodeStatus::Offline) => MemberState::Dead,
            Ok(pb::NodeStatus::Error) => MemberState::Suspect,
            _ => MemberState::Alive,
        },
    }
}

pub(super) fn state_to_pb(s: MemberState) -> (pb::GspMemberState, pb::NodeStatus) {
    match s {
        MemberState::Alive => (pb::GspMemberState::Alive, pb::NodeStatus::Online),
        MemberState::Suspect => (pb::GspMemberState::Suspect, pb::NodeStatus::Error),
        MemberState::Dead => (pb::GspMemberState::Dead, pb::NodeStatus::Offline),
        MemberState::Left => (pb::GspMemberState::Left, pb::NodeStatus::Offline),
    }
}

/// The wire form of a maintenance state.
pub fn maintenance_to_pb(m: Maintenance) -> pb::GspMaintenance {
    match m {
        Maintenance::Normal => pb::GspMaintenance::Normal,
        Maintenance::Maintenance => pb::GspMaintenance::Maintenance,
        Maintenance::Disabled => pb::GspMaintenance::Disabled,
    }
}

/// The maintenance state of a wire value; `None` for a number this version
/// does not know.
pub fn maintenance_from_pb(v: i32) -> Option<Maintenance> {
    match pb::GspMaintenance::try_from(v).ok()? {
        pb::GspMaintenance::Normal => Some(Maintenance::Normal),
        pb::GspMaintenance::Maintenance => Some(Maintenance::Maintenance),
        pb::GspMaintenance::Disabled => Some(Maintenance::Disabled),
    }
}
