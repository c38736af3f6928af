//! What the session API does to a session: delete, suspend, resume, show.

use tokio::sync::watch;
use tracing::info;

use super::{SessionError, SessionInfo, SessionManager, State};
use crate::backend::BackendError;
use crate::config::duration;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no session for id {0:?}")]
    NotFound(String),
    #[error("session {id:?} is {state}, not ready")]
    Conflict { id: String, state: &'static str },
    #[error("{0}")]
    Backend(BackendError),
    #[error("the backend did not answer within {0}")]
    Timeout(String),
}

impl SessionManager {
    /// Deletes the sandbox for `id` now, whether or not it is in use (the bench's cold start).
    pub async fn delete(&self, id: &str) -> Result<(), ControlError> {
        let m = &self.0;
        let (done_tx, wait_for) = {
            let mut inner = m.inner.lock().expect("session lock");
            if let Some(s) = inner.sessions.remove(id) {
                s.cancel.cancel();
                s.state.send_replace(State::Failed(BackendError::Failed(
                    "the session was deleted".into(),
                )));
            }
            m.metrics.sessions.set(inner.sessions.len() as i64);
            inner.retry_delete.remove(id);
            match inner.deleting.get(id) {
                Some(rx) => (None, Some(rx.clone())),
                None => {
                    let (tx, rx) = watch::channel(false);
                    inner.deleting.insert(id.to_string(), rx);
                    (Some(tx), None)
                }
            }
        };
        if let Some(mut rx) = wait_for {
            // Someone else is deleting it already; wait for that.
            let _ = tokio::time::timeout(m.cfg.delete_timeout, rx.wait_for(|d| *d)).await;
            return Ok(());
        }
        let r = self.run_delete(id).await;
        m.finish_delete(id, done_tx.expect("we registered the delete"), r.is_ok());
        r
    }

    /// The backend's delete, bounded by DELETE_TIMEOUT; the caller has registered it in `deleting`.
    pub(super) async fn run_delete(&self, id: &str) -> Result<(), ControlError> {
        let m = &self.0;
        match tokio::time::timeout(m.cfg.delete_timeout, m.backend.delete(id)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ControlError::Backend(e)),
            Err(_) => Err(ControlError::Timeout(duration::format(
                m.cfg.delete_timeout,
            ))),
        }
    }

    pub async fn suspend(&self, id: &str) -> Result<SessionInfo, ControlError> {
        let m = &self.0;
        let session = m
            .current(id)
            .ok_or_else(|| ControlError::NotFound(id.into()))?;
        let ep = match &*session.state.borrow() {
            State::Ready(ep) => ep.clone(),
            State::Suspended(_) => return Ok(m.info(&session)),
            other => {
                return Err(ControlError::Conflict {
                    id: id.into(),
                    state: other.name(),
                });
            }
        };
        match tokio::time::timeout(m.cfg.ensure_timeout, m.backend.suspend(id)).await {
            Ok(Ok(())) => {
                session.state.send_replace(State::Suspended(ep));
                info!(id, "suspended sandbox");
                Ok(m.info(&session))
            }
            Ok(Err(e)) => Err(ControlError::Backend(e)),
            Err(_) => Err(ControlError::Timeout(duration::format(
                m.cfg.ensure_timeout,
            ))),
        }
    }

    pub async fn resume(&self, id: &str) -> Result<SessionInfo, ControlError> {
        let m = &self.0;
        let session = m
            .current(id)
            .ok_or_else(|| ControlError::NotFound(id.into()))?;
        if !matches!(&*session.state.borrow(), State::Suspended(_)) {
            return Ok(m.info(&session));
        }
        // Resuming through get() shares the single-flight path with requests that arrive meanwhile.
        match self.get(id).await {
            Ok((_lease, _)) => Ok(m.info(&session)),
            Err(SessionError::Ensure(e)) => Err(ControlError::Backend(e)),
            Err(e) => Err(ControlError::Timeout(e.to_string())),
        }
    }

    pub fn info(&self, id: &str) -> Option<SessionInfo> {
        self.0.current(id).map(|s| self.0.info(&s))
    }

    /// What `GET /v1/sessions/{id}` shows: this replica's session, or else the ready sandbox the
    /// backend has for `id`. Behind a Service with several replicas the session API call and the
    /// data connection land on different replicas, so a session one replica serves must be visible
    /// through all of them (the bench checks its sandbox this way). Bounded by DELETE_TIMEOUT.
    pub async fn show(&self, id: &str) -> Result<Option<SessionInfo>, ControlError> {
        if let Some(local) = self.info(id) {
            return Ok(Some(local));
        }
        let m = &self.0;
        let found = match tokio::time::timeout(m.cfg.delete_timeout, m.backend.lookup(id)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return Err(ControlError::Backend(e)),
            Err(_) => {
                return Err(ControlError::Timeout(duration::format(
                    m.cfg.delete_timeout,
                )));
            }
        };
        Ok(found.map(|ep| SessionInfo {
            id: id.to_string(),
            state: "ready",
            endpoint: Some(ep.ws.to_string()),
            mcp_endpoint: ep.mcp.as_ref().map(|a| a.to_string()),
            sandbox: Some(ep.instance),
            error: None,
            open_connections: 0,
            idle_seconds: 0.0,
            age_seconds: 0.0,
            elsewhere: true,
        }))
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let m = &self.0;
        let sessions: Vec<_> = m
            .inner
            .lock()
            .expect("session lock")
            .sessions
            .values()
            .cloned()
            .collect();
        let mut out: Vec<_> = sessions.iter().map(|s| m.info(s)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
