//! Sandbox id -> ready endpoint.
//!
//! * One `Backend::ensure` per id at a time (single flight); every waiter gets the same result, and a
//!   failed ensure is forgotten so the next request starts a fresh one.
//! * Requests hold a [`Lease`] for as long as they use the sandbox (a whole WebSocket, a whole HTTP
//!   response stream). Leases are taken under the same lock the reaper selects under, so the reaper
//!   never removes a session in use and a request never receives a session the reaper has picked.
//! * A new ensure for an id waits for an outstanding delete of that id, so it never races it.
//! * Deletes run concurrently with a timeout each; a failed one is retried on the next tick.
//! * With several replicas ([`SessionManager::share`]) the local reaper only forgets idle sessions;
//!   every replica records its activity on the sandbox objects, and the leader deletes the sandboxes
//!   that those shared records (and its own sessions) say are idle. See [`crate::replicas`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::{Backend, BackendError, Endpoint};
use crate::config::duration;
use crate::metrics::Metrics;
use crate::replicas::Shared;
use crate::replicas::activity::{Deleted, Record, Written};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub ensure_timeout: Duration,
    pub wait_timeout: Duration,
    pub idle_ttl: Duration,
    pub delete_timeout: Duration,
}

#[derive(Debug, Clone)]
enum State {
    Ensuring,
    Ready(Endpoint),
    Suspended(Endpoint),
    Resuming(Endpoint),
    Failed(BackendError),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Ensuring => "ensuring",
            State::Ready(_) => "ready",
            State::Suspended(_) => "suspended",
            State::Resuming(_) => "resuming",
            State::Failed(_) => "failed",
        }
    }

    fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            State::Ready(e) | State::Suspended(e) | State::Resuming(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Ensure(BackendError),
    #[error("sandbox not ready after {0}")]
    WaitTimeout(String),
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

impl SessionError {
    /// Capacity problems are the caller's to retry (503); everything else is a bad gateway.
    pub fn is_capacity(&self) -> bool {
        matches!(self, SessionError::Ensure(BackendError::Capacity(_)))
    }
}

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

struct Session {
    id: String,
    created: Instant,
    /// Milliseconds since the manager's epoch.
    last_active: AtomicU64,
    active: AtomicUsize,
    /// The activity (manager ms) last written to the shared record; 0 = none.
    recorded: AtomicU64,
    /// A write of the shared record is under way.
    recording: AtomicBool,
    state: watch::Sender<State>,
    cancel: CancellationToken,
}

/// Use of a session: while any lease is alive the session is not idle. Dropping it marks activity.
pub struct Lease {
    session: Arc<Session>,
    manager: Weak<Manager>,
}

impl Lease {
    pub fn id(&self) -> &str {
        &self.session.id
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(m) = self.manager.upgrade() {
            m.touch(&self.session);
        }
        self.session.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the session API shows of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub open_connections: usize,
    pub idle_seconds: f64,
    pub age_seconds: f64,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Arc<Session>>,
    /// Deletes in flight, by id; the receiver turns true when the delete is over.
    deleting: HashMap<String, watch::Receiver<bool>>,
    /// Ids whose delete failed, to retry on the next reaper tick.
    retry_delete: HashSet<String>,
}

struct Manager {
    backend: Arc<dyn Backend>,
    cfg: SessionConfig,
    metrics: Metrics,
    inner: Mutex<Inner>,
    epoch: Instant,
    reconcile_permits: Semaphore,
    shutdown: CancellationToken,
    /// Set when this proxy is one of several replicas.
    shared: OnceLock<Shared>,
    /// A leader's pass over the shared records is under way.
    shared_pass: AtomicBool,
}

/// The session manager. Cheap to clone.
#[derive(Clone)]
pub struct SessionManager(Arc<Manager>);

impl SessionManager {
    pub fn new(backend: Arc<dyn Backend>, cfg: SessionConfig, metrics: Metrics) -> Self {
        Self(Arc::new(Manager {
            backend,
            cfg,
            metrics,
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
            reconcile_permits: Semaphore::new(4),
            shutdown: CancellationToken::new(),
            shared: OnceLock::new(),
            shared_pass: AtomicBool::new(false),
        }))
    }

    /// Makes this manager one of several replicas: activity is recorded on the sandbox objects,
    /// idle sessions are only forgotten locally, and deletes for idleness happen only while
    /// `shared.leadership` says this replica leads. Call before the reaper and recorder start.
    pub fn share(&self, shared: Shared) {
        if self.0.shared.set(shared).is_err() {
            warn!("session manager already shared; ignoring the second configuration");
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.0.backend
    }

    /// Waits for the ready endpoint of `id`, starting an ensure if none is running.
    pub async fn get(&self, id: &str) -> Result<(Lease, Endpoint), SessionError> {
        let m = &self.0;
        let deadline = tokio::time::Instant::now() + m.cfg.wait_timeout;
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

    async fn resolve(self, session: Arc<Session>, reconcile: bool) {
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

    async fn run_delete(&self, id: &str) -> Result<(), ControlError> {
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
        if let State::Suspended(_) = &*session.state.borrow() {
        } else {
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

    /// Whether a session for `id` exists (admission lets its requests through without a new slot).
    pub fn contains(&self, id: &str) -> bool {
        self.0.current(id).is_some()
    }

    /// Sandboxes this proxy holds: live sessions, deletes still running (a backend such as the local
    /// one frees its capacity only when the delete is done), and the ids of `pending` (admitted,
    /// session not created yet) that are neither, counted under one lock: what admission compares
    /// with MAX_SANDBOXES.
    pub fn occupancy<'a>(&self, pending: impl IntoIterator<Item = &'a str>) -> usize {
        let inner = self.0.inner.lock().expect("session lock");
        let deleting = inner
            .deleting
            .keys()
            .filter(|id| !inner.sessions.contains_key(*id))
            .count();
        let pending = pending
            .into_iter()
            .filter(|id| !inner.sessions.contains_key(*id) && !inner.deleting.contains_key(*id))
            .count();
        inner.sessions.len() + deleting + pending
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

    /// Adopts the sandboxes the backend already has (after a restart) so their first request finds
    /// them ready and the reaper can collect the unused ones.
    pub async fn reconcile(&self) {
        let m = &self.0;
        let ids = match tokio::time::timeout(Duration::from_secs(10), m.backend.list()).await {
            Ok(Ok(ids)) => ids,
            Ok(Err(e)) => {
                warn!(error = %e, "reconcile: list failed; continuing without adoption");
                return;
            }
            Err(_) => {
                warn!("reconcile: list timed out after 10s; continuing without adoption");
                return;
            }
        };
        let mut adopted = Vec::new();
        {
            let mut inner = m.inner.lock().expect("session lock");
            for id in ids {
                if inner.sessions.contains_key(&id) {
                    continue;
                }
                let s = m.new_session(&id);
                // Adoption is not use: it must not refresh the shared record of every sandbox
                // each time a replica restarts.
                s.recorded
                    .store(s.last_active.load(Ordering::Acquire), Ordering::Release);
                inner.sessions.insert(id, s.clone());
                adopted.push(s);
            }
            m.metrics.sessions.set(inner.sessions.len() as i64);
        }
        info!(
            count = adopted.len(),
            "reconcile: adopted existing sandboxes"
        );
        for s in adopted {
            tokio::spawn(self.clone().resolve(s, true));
        }
    }

    /// Runs the idle reaper until shutdown.
    pub async fn run_reaper(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => self.reap_once(),
                _ = self.0.shutdown.cancelled() => return,
            }
        }
    }

    /// One reaper pass: picks idle sessions and starts their deletes (and retries of failed ones).
    pub fn reap_once(&self) {
        let m = &self.0;
        let now = m.now_ms();
        let ttl = m.cfg.idle_ttl.as_millis() as u64;
        let shared = m.shared.get();
        let mut jobs = Vec::new();
        {
            let mut inner = m.inner.lock().expect("session lock");
            let mut victims = Vec::new();
            for (id, s) in inner.sessions.iter() {
                let last = s.last_active.load(Ordering::Acquire);
                let idle_for = now.saturating_sub(last);
                let settled = !matches!(&*s.state.borrow(), State::Ensuring | State::Resuming(_));
                // Shared: keep the session until its last activity is on record, or it is lost.
                let flushed = shared.is_none() || s.recorded.load(Ordering::Acquire) >= last;
                if settled && flushed && s.active.load(Ordering::Acquire) == 0 && idle_for >= ttl {
                    victims.push((id.clone(), idle_for));
                }
            }
            for (id, idle_for) in victims {
                let s = inner.sessions.remove(&id).expect("victim is present");
                s.state.send_replace(State::Failed(BackendError::Failed(
                    "the session was reaped".into(),
                )));
                if shared.is_some() {
                    // Whether the sandbox goes is the leader's decision, from the shared records.
                    debug!(id = %id, idle_for_ms = idle_for, "forgot idle session");
                    continue;
                }
                jobs.push((id, Some(idle_for)));
            }
            let retries: Vec<String> = inner.retry_delete.drain().collect();
            jobs.extend(retries.into_iter().map(|id| (id, None)));
            jobs.retain(|(id, _)| !inner.deleting.contains_key(id));
            let mut started = Vec::new();
            for (id, idle) in jobs {
                let (tx, rx) = watch::channel(false);
                inner.deleting.insert(id.clone(), rx);
                started.push((id, idle, tx));
            }
            m.metrics.sessions.set(inner.sessions.len() as i64);
            for (id, idle, tx) in started {
                let this = self.clone();
                tokio::spawn(async move {
                    let r = this.run_delete(&id).await;
                    match &r {
                        Ok(()) => {
                            this.0
                                .metrics
                                .reaps
                                .get_or_create(&Metrics::result("ok"))
                                .inc();
                            match idle {
                                Some(ms) => {
                                    info!(id = %id, idle_for_ms = ms, "reaped idle session")
                                }
                                None => info!(id = %id, "retried delete succeeded"),
                            }
                        }
                        Err(e) => {
                            this.0
                                .metrics
                                .reaps
                                .get_or_create(&Metrics::result("error"))
                                .inc();
                            warn!(id = %id, error = %e, "reap delete failed; will retry");
                        }
                    }
                    this.0.finish_delete(&id, tx, r.is_ok());
                });
            }
        }
        if let Some(sh) = shared
            && sh.leadership.is_leader()
            && !m.shared_pass.swap(true, Ordering::AcqRel)
        {
            let this = self.clone();
            let sh = sh.clone();
            tokio::spawn(async move {
                this.reap_shared(&sh).await;
                this.0.shared_pass.store(false, Ordering::Release);
            });
        }
    }

    /// The leader's pass: deletes every managed sandbox that no replica has used for IDLE_TTL,
    /// judged from the shared records and this replica's own sessions. Each delete carries the
    /// listed `resourceVersion`, so activity recorded after the list saves the sandbox.
    async fn reap_shared(&self, sh: &Shared) {
        let m = &self.0;
        let records = match tokio::time::timeout(m.cfg.delete_timeout, sh.store.list()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                warn!(kind = sh.store.kind(), error = %e, "cannot read the shared activity records");
                return;
            }
            Err(_) => {
                warn!(
                    kind = sh.store.kind(),
                    "reading the shared activity records timed out"
                );
                return;
            }
        };
        let ttl = m.cfg.idle_ttl.as_millis() as i64;
        let now_wall = Timestamp::now().as_millisecond();
        let mut started = Vec::new();
        {
            let mut inner = m.inner.lock().expect("session lock");
            for rec in records {
                if rec.deleting || inner.deleting.contains_key(&rec.id) {
                    continue;
                }
                let mut last = rec.last_active.map(|t| t.as_millisecond());
                if let Some(s) = inner.sessions.get(&rec.id) {
                    let settled =
                        !matches!(&*s.state.borrow(), State::Ensuring | State::Resuming(_));
                    if !settled || s.active.load(Ordering::Acquire) > 0 {
                        continue;
                    }
                    let local = s.last_active.load(Ordering::Acquire);
                    // Activity not yet on record counts too (an adopted session's does not).
                    if local > s.recorded.load(Ordering::Acquire) {
                        last = last.max(Some(m.wall_ms(local)));
                    }
                }
                let idle_for = last.map_or(i64::MAX, |l| now_wall.saturating_sub(l));
                if idle_for < ttl {
                    continue;
                }
                if let Some(s) = inner.sessions.remove(&rec.id) {
                    s.state.send_replace(State::Failed(BackendError::Failed(
                        "the session was reaped".into(),
                    )));
                }
                let (tx, rx) = watch::channel(false);
                inner.deleting.insert(rec.id.clone(), rx);
                started.push((rec, idle_for, tx));
            }
            m.metrics.sessions.set(inner.sessions.len() as i64);
        }
        let jobs = started.into_iter().map(|(rec, idle_for, tx)| {
            let this = self.clone();
            async move {
                this.delete_record(sh, &rec, idle_for).await;
                // The next pass judges again from the records; nothing to retry here.
                this.0.finish_delete(&rec.id, tx, true);
            }
        });
        futures::stream::iter(jobs)
            .for_each_concurrent(8, |j| j)
            .await;
    }

    async fn delete_record(&self, sh: &Shared, rec: &Record, idle_for: i64) {
        let m = &self.0;
        let r = tokio::time::timeout(m.cfg.delete_timeout, sh.store.delete_if_unchanged(rec)).await;
        let result = match r {
            Ok(Ok(Deleted::Deleted)) => {
                info!(id = %rec.id, object = %rec.name, idle_for_ms = idle_for, replica = %sh.replica, "reaped idle sandbox");
                "ok"
            }
            Ok(Ok(Deleted::Changed)) => {
                info!(id = %rec.id, object = %rec.name, "sandbox changed since it was read (used again?); not reaped");
                "changed"
            }
            Ok(Ok(Deleted::Gone)) => return,
            Ok(Err(e)) => {
                warn!(id = %rec.id, object = %rec.name, error = %e, "reap delete failed; the next pass tries again");
                "error"
            }
            Err(_) => {
                warn!(id = %rec.id, object = %rec.name, "reap delete timed out; the next pass tries again");
                "error"
            }
        };
        m.metrics
            .reaps
            .get_or_create(&Metrics::result(result))
            .inc();
    }

    /// Runs until shutdown when shared: writes the activity of every session that has some not yet
    /// on record, every ACTIVITY_INTERVAL. Open connections count as activity at each pass, so a
    /// long WebSocket or HTTP stream keeps its record fresh. A last pass runs at shutdown.
    pub async fn run_recorder(self) {
        let Some(sh) = self.0.shared.get().cloned() else {
            return;
        };
        let mut tick = tokio::time::interval(sh.activity_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => self.record_pass(&sh).await,
                _ = self.0.shutdown.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.record_pass(&sh)).await;
                    return;
                }
            }
        }
    }

    async fn record_pass(&self, sh: &Shared) {
        let m = &self.0;
        let now = m.now_ms();
        let due: Vec<(Arc<Session>, u64)> = {
            let inner = m.inner.lock().expect("session lock");
            inner
                .sessions
                .values()
                // A request waiting on a slow ensure is use too (a missing object is no error).
                .filter(|s| !matches!(&*s.state.borrow(), State::Failed(_)))
                .filter_map(|s| {
                    let act = if s.active.load(Ordering::Acquire) > 0 {
                        now
                    } else {
                        s.last_active.load(Ordering::Acquire)
                    };
                    (act > s.recorded.load(Ordering::Acquire)).then(|| (s.clone(), act))
                })
                .collect()
        };
        futures::stream::iter(due)
            .for_each_concurrent(8, |(s, act)| async move {
                self.record(sh, &s, act).await;
            })
            .await;
    }

    /// A request for a session whose record is older than ACTIVITY_INTERVAL writes at once, so that
    /// the leader learns at once that a long-idle sandbox is in use again.
    fn record_if_stale(&self, s: &Arc<Session>) {
        let m = &self.0;
        let Some(sh) = m.shared.get() else { return };
        let now = m.now_ms();
        let stale = now.saturating_sub(s.recorded.load(Ordering::Acquire))
            >= sh.activity_interval.as_millis() as u64;
        if stale && !s.recording.load(Ordering::Acquire) {
            let (this, sh, s) = (self.clone(), sh.clone(), s.clone());
            tokio::spawn(async move { this.record(&sh, &s, now).await });
        }
    }

    async fn record(&self, sh: &Shared, s: &Session, act: u64) {
        let m = &self.0;
        if s.recording.swap(true, Ordering::AcqRel) {
            return;
        }
        let at = Timestamp::from_millisecond(m.wall_ms(act)).unwrap_or_else(|_| Timestamp::now());
        let r = tokio::time::timeout(
            m.cfg.delete_timeout,
            sh.store.record(&s.id, at, &sh.replica),
        )
        .await;
        let result = match r {
            Ok(Ok(w)) => {
                s.recorded.fetch_max(act, Ordering::AcqRel);
                match w {
                    Written::Updated => {
                        debug!(id = %s.id, at = %at, "recorded activity");
                        "updated"
                    }
                    Written::AlreadyNewer => "newer",
                    Written::Missing => "missing",
                }
            }
            Ok(Err(e)) => {
                warn!(id = %s.id, error = %e, "cannot record activity; retrying on the next pass");
                "error"
            }
            Err(_) => {
                warn!(id = %s.id, "recording activity timed out; retrying on the next pass");
                "error"
            }
        };
        m.metrics
            .activity_writes
            .get_or_create(&Metrics::result(result))
            .inc();
        s.recording.store(false, Ordering::Release);
    }

    /// Stops the reaper and makes waiting requests give up.
    pub fn shutdown(&self) {
        self.0.shutdown.cancel();
    }

    /// Test hook: pretend every session was last used `by` earlier than it was.
    #[doc(hidden)]
    pub fn age_all(&self, by: Duration) {
        let m = &self.0;
        for s in m.inner.lock().expect("session lock").sessions.values() {
            let v = s.last_active.load(Ordering::Acquire);
            s.last_active
                .store(v.saturating_sub(by.as_millis() as u64), Ordering::Release);
        }
    }
}

impl Manager {
    fn new_session(&self, id: &str) -> Arc<Session> {
        let (state, _) = watch::channel(State::Ensuring);
        Arc::new(Session {
            id: id.to_string(),
            created: Instant::now(),
            last_active: AtomicU64::new(self.now_ms()),
            active: AtomicUsize::new(0),
            recorded: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            state,
            cancel: CancellationToken::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        // +1 hour keeps test hooks that age sessions from underflowing at start-up.
        self.epoch.elapsed().as_millis() as u64 + 3_600_000
    }

    /// Wall-clock milliseconds since the Unix epoch of a manager timestamp.
    fn wall_ms(&self, ms: u64) -> i64 {
        let ago = self.now_ms().saturating_sub(ms) as i64;
        Timestamp::now().as_millisecond().saturating_sub(ago)
    }

    fn touch(&self, s: &Session) {
        s.last_active.store(self.now_ms(), Ordering::Release);
    }

    fn current(&self, id: &str) -> Option<Arc<Session>> {
        self.inner
            .lock()
            .expect("session lock")
            .sessions
            .get(id)
            .cloned()
    }

    /// Removes `s` from the map if it is still the session for its id. Returns whether it was.
    fn forget_if_current(&self, s: &Arc<Session>) -> bool {
        let mut inner = self.inner.lock().expect("session lock");
        let current = inner.sessions.get(&s.id).is_some_and(|c| Arc::ptr_eq(c, s));
        if current {
            inner.sessions.remove(&s.id);
            self.metrics.sessions.set(inner.sessions.len() as i64);
        }
        current
    }

    fn finish_delete(&self, id: &str, done: watch::Sender<bool>, ok: bool) {
        let mut inner = self.inner.lock().expect("session lock");
        inner.deleting.remove(id);
        if !ok && !inner.sessions.contains_key(id) {
            inner.retry_delete.insert(id.to_string());
        }
        drop(inner);
        done.send_replace(true);
    }

    fn info(&self, s: &Session) -> SessionInfo {
        let state = s.state.borrow();
        let ep = state.endpoint();
        SessionInfo {
            id: s.id.clone(),
            state: state.name(),
            endpoint: ep.map(|e| e.ws.to_string()),
            mcp_endpoint: ep.and_then(|e| e.mcp.as_ref()).map(|a| a.to_string()),
            sandbox: ep.map(|e| e.instance.clone()),
            error: match &*state {
                State::Failed(e) => Some(e.to_string()),
                _ => None,
            },
            open_connections: s.active.load(Ordering::Acquire),
            idle_seconds: self
                .now_ms()
                .saturating_sub(s.last_active.load(Ordering::Acquire))
                as f64
                / 1000.0,
            age_seconds: s.created.elapsed().as_secs_f64(),
        }
    }
}
