//! The request path: leases, the single-flight ensure per id, resume of a suspended sandbox, and
//! invalidation of a sandbox that stopped answering.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Lease, Session, SessionManager, State};
use crate::backend::{BackendError, Endpoint};
use crate::config::duration;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Ensure(BackendError),
    #[error("sandbox not ready after {0}")]
    WaitTimeout(String),
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

impl SessionManager {
    /// Waits for the ready endpoint of `id`, starting an ensure if none is running.
    pub async fn get(&self, id: &str) -> Result<(Lease, Endpoint), SessionError> {
        let m = &self.0;
        let deadline = Instant::now() + m.cfg.wait_timeout;
        let lease = self.lease(id);
        let session = lease.session.clone();
        let mut rx = session.state.subscribe();
        loop {
            if m.shutdown.is_cancelled() {
                return Err(SessionError::ShuttingDown);
            }
            let state = rx.borrow_and_update().clone();
            match state {
                State::Ready(ep) => {
                    m.touch(&session);
                    self.record_if_stale(&session);
                    return Ok((lease, ep));
                }
                State::Failed(e) => {
                    m.forget_if_current(&session);
                    return Err(SessionError::Ensure(e));
                }
                State::Suspended(ep) => {
                    let claimed = session.state.send_if_modified(|s| {
                        if matches!(s, State::Suspended(_)) {
                            *s = State::Resuming(ep.clone());
                            true
                        } else {
                            false
                        }
                    });
                    if claimed {
                        tokio::spawn(self.clone().resume_task(session.clone(), ep));
                    }
                }
                State::Ensuring | State::Resuming(_) => {
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => unreachable!("the session owns its state sender"),
                        Err(_) => {
                            return Err(SessionError::WaitTimeout(duration::format(
                                m.cfg.wait_timeout,
                            )));
                        }
                    }
                }
            }
        }
    }

    /// Takes a lease on the session for `id`, creating the session (and starting its ensure) if needed.
    fn lease(&self, id: &str) -> Lease {
        let m = &self.0;
        let (session, created) = {
            let mut inner = m.inner.lock().expect("session lock");
            let (session, created) = match inner.sessions.get(id) {
                Some(s) => (s.clone(), false),
                None => {
                    let s = m.new_session(id);
                    inner.sessions.insert(id.to_string(), s.clone());
                    inner.retry_delete.remove(id);
                    m.metrics.sessions.set(inner.sessions.len() as i64);
                    (s, true)
                }
            };
            session.active.fetch_add(1, Ordering::AcqRel);
            (session, created)
        };
        if created {
            tokio::spawn(self.clone().resolve(session.clone(), false));
        }
        Lease {
            session,
            manager: Arc::downgrade(&self.0),
        }
    }

    /// The one ensure of a session; `reconcile` ensures of adopted sandboxes share a few permits.
    pub(super) async fn resolve(self, session: Arc<Session>, reconcile: bool) {
        let m = &self.0;
        let _permit = if reconcile {
            m.reconcile_permits.acquire().await.ok()
        } else {
            None
        };
        let pending = m
            .inner
            .lock()
            .expect("session lock")
            .deleting
            .get(&session.id)
            .cloned();
        if let Some(mut done) = pending {
            debug!(id = %session.id, "waiting for the previous sandbox's delete");
            let _ = tokio::time::timeout(m.cfg.delete_timeout, done.wait_for(|d| *d)).await;
        }
        let start = Instant::now();
        let outcome = tokio::select! {
            r = tokio::time::timeout(m.cfg.ensure_timeout, m.backend.ensure(&session.id)) => Some(r),
            _ = session.cancel.cancelled() => None,
        };
        let elapsed = start.elapsed();
        let (result, state) = match outcome {
            Some(Ok(Ok(ep))) => {
                info!(id = %session.id, endpoint = %ep.ws, sandbox = %ep.instance, ms = elapsed.as_millis() as u64, "session ready");
                ("ok", State::Ready(ep))
            }
            Some(Ok(Err(e))) => {
                warn!(id = %session.id, error = %e, "ensure failed");
                ("error", State::Failed(e))
            }
            Some(Err(_)) => {
                let msg = format!(
                    "ensure exceeded ENSURE_TIMEOUT ({})",
                    duration::format(m.cfg.ensure_timeout)
                );
                warn!(id = %session.id, "{msg}");
                ("timeout", State::Failed(BackendError::Timeout(msg)))
            }
            None => (
                "cancelled",
                State::Failed(BackendError::Failed("the session was deleted".into())),
            ),
        };
        m.metrics
            .ensures
            .get_or_create(&Metrics::result(result))
            .inc();
        m.metrics
            .ensure_seconds
            .get_or_create(&Metrics::result(result))
            .observe(elapsed.as_secs_f64());
        let failed = matches!(state, State::Failed(_));
        m.touch(&session);
        session.state.send_replace(state);
        if failed {
            m.forget_if_current(&session);
        }
    }

    async fn resume_task(self, session: Arc<Session>, ep: Endpoint) {
        let m = &self.0;
        let r = tokio::time::timeout(m.cfg.ensure_timeout, m.backend.resume(&session.id)).await;
        let state = match r {
            Ok(Ok(())) => {
                info!(id = %session.id, "resumed sandbox");
                State::Ready(ep)
            }
            Ok(Err(e)) => {
                warn!(id = %session.id, error = %e, "resume failed");
                State::Failed(e)
            }
            Err(_) => State::Failed(BackendError::Timeout(
                "resume exceeded ENSURE_TIMEOUT".into(),
            )),
        };
        let failed = matches!(state, State::Failed(_));
        session.state.send_replace(state);
        if failed {
            m.forget_if_current(&session);
        }
    }

    /// The sandbox behind `lease` refused or reset a connection: forget the session so the next `get`
    /// asks the backend again. Only the first of several failing requests has any effect.
    pub fn invalidate(&self, lease: &Lease, endpoint: &Endpoint) {
        let m = &self.0;
        let s = &lease.session;
        let still_current = matches!(&*s.state.borrow(), State::Ready(ep) if ep == endpoint);
        if still_current && m.forget_if_current(s) {
            m.metrics.invalidations.inc();
            warn!(id = %s.id, endpoint = %endpoint.ws, "sandbox unreachable; session invalidated");
            s.state
                .send_replace(State::Failed(BackendError::Failed(format!(
                    "sandbox at {} stopped answering",
                    endpoint.ws
                ))));
        }
    }
}
