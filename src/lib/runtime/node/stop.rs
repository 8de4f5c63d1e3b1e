//! Stopping a node: serving until a signal, the graceful leave and drain,
//! and the abrupt stop of a dropped handle.

use tonic_health::ServingStatus;
use tracing::{info, warn};

use super::{NodeError, NodeHandle};

impl NodeHandle {
    /// Serves until `signal` resolves or the server stops on its own (it only does
    /// on error).
    ///
    /// # Errors
    /// The server failed.
    pub async fn serve_until(&mut self, signal: impl Future<Output = ()>) -> Result<(), NodeError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        tokio::select! {
            () = signal => Ok(()),
            r = server => {
                self.server = None;
                match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(NodeError::Transport(e.into())),
                    Err(join) => Err(NodeError::ServerTask(join.to_string())),
                }
            }
        }
    }

    /// Leaves gracefully: reports NOT_SERVING, announces the leave to peers, lets
    /// in-flight streams finish their current message (up to the drain timeout),
    /// then stops. Returns whether everything drained in time.
    pub async fn shutdown(mut self) -> bool {
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.engine.stop().await;
        self.agent.leave(self.config.leave_timeout).await;
        self.shutdown.cancel();
        self.tasks.close();
        let server = self.server.take();
        let http = self.http.take();
        let drain = async {
            self.tasks.wait().await;
            if let Some(server) = server {
                let _ = server.await;
            }
            if let Some(http) = http {
                let _ = http.await;
            }
        };
        let drained = tokio::time::timeout(self.config.drain_timeout, drain)
            .await
            .is_ok();
        if drained {
            info!(node_id = %self.identity.node_id, "node stopped");
        } else {
            warn!(
                node_id = %self.identity.node_id,
                timeout = ?self.config.drain_timeout,
                "streams did not drain in time; stopping anyway"
            );
        }
        drained
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.agent.cancel();
        self.engine.cancel();
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(http) = self.http.take() {
            http.abort();
        }
    }
}
