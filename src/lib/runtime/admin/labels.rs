//! `GetLabels` / `SetLabels`: answered by this node, or routed to the member
//! named by `node_id` like the maintenance calls.

use tonic::{Request, Response, Status};

use crate::runtime::{
    admin::maint::{MaintApi, Target, finish, forwarded, route_timeout},
    labels::{LabelsError, LabelsStatus},
};
use crate::{
    core::labels::LabelChange,
    transport::{auth::Access, pb::admin::v1 as pb},
};

impl MaintApi {
    /// `GetLabels`.
    ///
    /// # Errors
    /// Auth refused, unknown or unreachable target.
    pub async fn get_labels(
        &self,
        request: Request<pb::GetLabelsRequest>,
    ) -> Result<Response<pb::LabelsReply>, Status> {
        let actor = self.auth.check(&request, Access::Read)?;
        let target = self.target(&request, &request.get_ref().node_id)?;
        let timeout = route_timeout(request.get_ref().timeout_ms);
        match target {
            Target::Local => Ok(Response::new(
                self.labels_reply(&self.labels.status(), false),
            )),
            Target::Remote { id, address } => {
                let mut fwd = forwarded(&request, &actor, timeout)?;
                fwd.get_mut().node_id.clone_from(&id);
                let mut client = self.client(&id, &address)?;
                finish(&id, &address, timeout, client.get_labels(fwd)).await
            }
        }
    }

    /// `SetLabels`.
    ///
    /// # Errors
    /// Auth refused, an invalid change, unknown or unreachable target, or the
    /// labels could not be persisted.
    pub async fn set_labels(
        &self,
        request: Request<pb::SetLabelsRequest>,
    ) -> Result<Response<pb::LabelsReply>, Status> {
        let target = self.target(&request, &request.get_ref().node_id)?;
        let actor = match (&target, self.auth.has_token()) {
            // A node without a token lets the target judge the caller's token.
            (Target::Remote { .. }, false) => self.auth.check(&request, Access::Read)?,
            _ => self.auth.check(&request, Access::Write)?,
        };
        let timeout = route_timeout(request.get_ref().timeout_ms);
        match target {
            Target::Local => {
                let req = request.into_inner();
                let t = self
                    .labels
                    .change(LabelChange {
                        set: req.set.into_iter().collect(),
                        unset: req.unset,
                        reset: req.reset,
                        reset_all: req.reset_all,
                        actor,
                    })
                    .map_err(|e| match e {
                        LabelsError::Invalid(e) => Status::invalid_argument(e.to_string()),
                        LabelsError::File(e) => {
                            Status::internal(format!("labels not changed: {e}"))
                        }
                    })?;
                let changed = t.changed();
                Ok(Response::new(
                    self.labels_reply(&self.labels.status(), changed),
                ))
            }
            Target::Remote { id, address } => {
                let mut fwd = forwarded(&request, &actor, timeout)?;
                fwd.get_mut().node_id.clone_from(&id);
                let mut client = self.client(&id, &address)?;
                finish(&id, &address, timeout, client.set_labels(fwd)).await
            }
        }
    }

    fn labels_reply(&self, s: &LabelsStatus, changed: bool) -> pb::LabelsReply {
        let name = self.agent.with_state(|m| m.local().name.clone());
        let mut runtime_set = std::collections::HashMap::new();
        let mut runtime_unset = Vec::new();
        for (k, v) in &s.overrides.entries {
            match v {
                Some(v) => {
                    runtime_set.insert(k.clone(), v.clone());
                }
                None => runtime_unset.push(k.clone()),
            }
        }
        pb::LabelsReply {
            node_id: self.agent.local_id().to_string(),
            node_name: name,
            labels: s.effective.clone().into_iter().collect(),
            configured: s.configured.clone().into_iter().collect(),
            runtime_set,
            runtime_unset,
            actor: s.overrides.actor.clone(),
            changed_unix_ns: s.overrides.changed_unix_ns,
            changed,
        }
    }
}
