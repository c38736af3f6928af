//! Sandbox id -> ready endpoint.
//!
//! * One `Backend::ensure` per id at a time (single flight); every waiter gets the same result, and a
//!   failed ensure is forgotten so the next request starts a fresh one ([`ensure`]).
//! * Requests hold a [`Lease`] for as long as they use the sandbox (a whole WebSocket, a whole HTTP
//!   response stream). Leases are taken under the same lock the reaper selects under, so the reaper
//!   never removes a session in use and a request never receives a session the reaper has picked.
//! * A new ensure for an id waits for an outstanding delete of that id, so it never races it.
//! * Deletes run concurrently with a timeout each; a failed one is retried on the next tick ([`reaper`]).
//! * The session API's operations are in [`control`]; adoption of existing sandboxes in [`reconcile`].
//! * With several replicas ([`SessionManager::share`]) the local reaper only forgets idle sessions;
//!   every replica records its activity on the sandbox objects ([`recorder`]), and the leader deletes
//!   the sandboxes that those shared records (and its own sessions) say are idle
//!   ([`crate::replicas::reaper`]).
//!
//! Times are [`tokio::time::Instant`]s, so tests drive idleness with paused time.

mod control;
mod ensure;
mod occupancy;
pub(crate) mod reaper;
mod reconcile;
mod recorder;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::backend::{Backend, BackendError, Endpoint};
use crate::metrics::Metrics;
use crate::replicas::Shared;

pub use control::ControlError;
pub use ensure::SessionError;

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

    /// An ensure or resume is running: the session is neither idle nor failed yet.
    fn settling(&self) -> bool {
        matches!(self, State::Ensuring | State::Resuming(_))
    }
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
    /// Not a session of this replica: the backend's ready sandbox for the id, which another replica
    /// serves (found with `Backend::lookup`). Its connections, idleness and age are that replica's
    /// and read 0 here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub elsewhere: bool,
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

    /// Stops the reaper and makes waiting requests give up.
    pub fn shutdown(&self) {
        self.0.shutdown.cancel();
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
        // +1 keeps every real time above 0, which `recorded` uses for "never".
        self.epoch.elapsed().as_millis() as u64 + 1
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
            elsewhere: false,
        }
    }
}
