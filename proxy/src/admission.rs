//! Fair admission at capacity.
//!
//! A request whose sandbox is live passes at once. A request for a *new* sandbox needs a slot: at
//! most `MAX_SANDBOXES` sessions live at a time (counted by the session manager, plus ids admitted
//! whose session does not exist yet). Without a free slot it waits in a bounded queue
//! (`ADMISSION_QUEUE_LENGTH`, `ADMISSION_TIMEOUT`) with one FIFO per tenant, served round robin, so
//! one tenant's burst cannot starve another. When the queue is full, a newcomer whose tenant has
//! fewer waiting requests than the busiest tenant takes the place of that tenant's newest waiter.
//! Separately, each tenant may hold at most `TENANT_MAX_CONNECTIONS` connections on the data port.
//!
//! Slots come free when sessions go away (reaped, deleted, failed); the session manager has no
//! hook for that, so while anyone waits one dispatcher task re-checks every [`RECHECK`]. A waiter
//! that goes away (client disconnect) leaves the queue at once, and a grant it can no longer take
//! is handed back.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::StatusCode;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::admission::AdmissionConfig;
use crate::config::duration;
use crate::metrics::{Metrics, PathLabel, ReasonLabel, ResultLabel};
use crate::session::SessionManager;

/// How often capacity is re-checked while requests wait.
pub const RECHECK: Duration = Duration::from_millis(20);

/// Why a request was not admitted; each names the limit hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "admission queue full: ADMISSION_QUEUE_LENGTH={queue} requests already wait for one of MAX_SANDBOXES={max} sandboxes"
    )]
    QueueFull { queue: usize, max: usize },
    #[error(
        "admission queue full (ADMISSION_QUEUE_LENGTH={queue}): this tenant had the most waiting requests, so its newest made room for another tenant's"
    )]
    Evicted { queue: usize },
    #[error("no sandbox came free within ADMISSION_TIMEOUT={timeout} (MAX_SANDBOXES={max} in use)")]
    Timeout { timeout: String, max: usize },
    #[error("tenant {tenant:?} already has TENANT_MAX_CONNECTIONS={limit} connections open")]
    TenantConnections { tenant: String, limit: usize },
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

impl Refused {
    /// Every `reason` label value of `sandcanary_admission_rejections_total`.
    pub const REASONS: [&'static str; 5] = [
        "queue_full",
        "evicted",
        "timeout",
        "tenant_connections",
        "shutting_down",
    ];

    pub fn reason(&self) -> &'static str {
        match self {
            Refused::QueueFull { .. } => "queue_full",
            Refused::Evicted { .. } => "evicted",
            Refused::Timeout { .. } => "timeout",
            Refused::TenantConnections { .. } => "tenant_connections",
            Refused::ShuttingDown => "shutting_down",
        }
    }

    /// 429 when the tenant is over its own limit, 503 when the proxy is out of sandboxes.
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::TenantConnections { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A waiting request.
struct Waiter {
    seq: u64,
    id: String,
    tx: oneshot::Sender<()>,
}

#[derive(Default)]
struct Queue {
    /// Ids admitted (a slot each) whose request has not finished `SessionManager::get` yet.
    reserved: HashMap<String, usize>,
    /// One FIFO per tenant.
    waiting: HashMap<String, VecDeque<Waiter>>,
    /// Tenants with waiters, in round-robin order.
    order: VecDeque<String>,
    queued: usize,
    seq: u64,
    dispatcher: bool,
}

impl Queue {
    fn remove(&mut self, tenant: &str, seq: u64) -> bool {
        let Some(q) = self.waiting.get_mut(tenant) else {
            return false;
        };
        let Some(pos) = q.iter().position(|w| w.seq == seq) else {
            return false;
        };
        q.remove(pos);
        self.queued -= 1;
        if q.is_empty() {
            self.waiting.remove(tenant);
            self.order.retain(|t| t != tenant);
        }
        true
    }
}

pub struct Admission {
    cfg: AdmissionConfig,
    sessions: SessionManager,
    metrics: Metrics,
    queue: Mutex<Queue>,
    connections: Mutex<HashMap<String, usize>>,
    closed: CancellationToken,
}

/// A slot held for a new id until its request has its session (then the session counts).
#[must_use]
pub struct Ticket {
    held: Option<(Arc<Admission>, String)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((a, id)) = self.held.take() {
            let mut q = a.queue.lock().expect("admission lock");
            if let Some(n) = q.reserved.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    q.reserved.remove(&id);
                }
            }
            a.dispatch(&mut q);
        }
    }
}

/// One of a tenant's concurrent connections; dropping it frees the place.
pub struct Connection {
    held: Option<(Arc<Admission>, String)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some((a, tenant)) = self.held.take() {
            let mut c = a.connections.lock().expect("connections lock");
            if let Some(n) = c.get_mut(&tenant) {
                *n -= 1;
                if *n == 0 {
                    c.remove(&tenant);
                }
            }
        }
    }
}

/// Removes a waiter from the queue if its request goes away before the end of the wait, or hands
/// back a grant it did not take.
struct Waiting {
    admission: Arc<Admission>,
    tenant: String,
    id: String,
    seq: u64,
    rx: Option<oneshot::Receiver<()>>,
    started: Instant,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        let a = &self.admission;
        let mut q = a.queue.lock().expect("admission lock");
        if q.remove(&self.tenant, self.seq) {
            a.metrics.admission_queue.set(q.queued as i64);
            debug!(tenant = %self.tenant, id = %self.id, "queued request went away");
        } else if rx.try_recv().is_ok() {
            // Granted just as the request went away: give the slot back.
            release(&mut q, &self.id);
            a.dispatch(&mut q);
        }
        a.observe_wait("gone", self.started);
    }
}

fn release(q: &mut Queue, id: &str) {
    if let Some(n) = q.reserved.get_mut(id) {
        *n -= 1;
        if *n == 0 {
            q.reserved.remove(id);
        }
    }
}

impl Admission {
    pub fn new(cfg: AdmissionConfig, sessions: SessionManager, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            sessions,
            metrics,
            queue: Mutex::new(Queue::default()),
            connections: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
        })
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// Refuses every waiting and future request (shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Seconds a refused client should wait before retrying (`Retry-After`).
    pub fn retry_after(&self, r: &Refused) -> u64 {
        match r {
            Refused::TenantConnections { .. } => 1,
            // About when a full queue has turned over.
            _ => self.cfg.timeout.as_secs().clamp(1, 60),
        }
    }

    fn refuse(&self, r: Refused) -> Refused {
        self.metrics
            .admission_rejections
            .get_or_create(&ReasonLabel {
                reason: r.reason().into(),
            })
            .inc();
        r
    }

    fn admitted(&self, path: &str) {
        self.metrics
            .admissions
            .get_or_create(&PathLabel { path: path.into() })
            .inc();
    }

    fn observe_wait(&self, result: &str, started: Instant) {
        self.metrics
            .admission_wait_seconds
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts a connection of `tenant`; refused beyond TENANT_MAX_CONNECTIONS.
    pub fn connect(self: &Arc<Self>, tenant: &str) -> Result<Connection, Refused> {
        let Some(limit) = self.cfg.tenant_max_connections else {
            return Ok(Connection { held: None });
        };
        let mut c = self.connections.lock().expect("connections lock");
        let n = c.entry(tenant.to_string()).or_insert(0);
        if *n >= limit {
            drop(c);
            return Err(self.refuse(Refused::TenantConnections {
                tenant: tenant.to_string(),
                limit,
            }));
        }
        *n += 1;
        Ok(Connection {
            held: Some((self.clone(), tenant.to_string())),
        })
    }

    /// Tenants with open connections and how many (tests check that nothing is left behind).
    pub fn connections(&self) -> usize {
        self.connections
            .lock()
            .expect("connections lock")
            .values()
            .sum()
    }

    /// Requests waiting right now.
    pub fn queued(&self) -> usize {
        self.queue.lock().expect("admission lock").queued
    }

    /// Waits until `id` may have a sandbox: at once if it has one or a slot is free, else in the
    /// queue. Hold the ticket until `SessionManager::get` for `id` has returned.
    pub async fn admit(self: &Arc<Self>, tenant: &str, id: &str) -> Result<Ticket, Refused> {
        let Some(max) = self.cfg.max_sandboxes else {
            return Ok(Ticket { held: None });
        };
        if self.closed.is_cancelled() {
            return Err(self.refuse(Refused::ShuttingDown));
        }
        let (rx, seq) = {
            let mut q = self.queue.lock().expect("admission lock");
            if q.reserved.contains_key(id) || self.sessions.contains(id) {
                drop(q);
                self.admitted("existing");
                return Ok(Ticket { held: None });
            }
            if q.queued == 0
                && self
                    .sessions
                    .occupancy(q.reserved.keys().map(String::as_str))
                    < max
            {
                q.reserved.insert(id.to_string(), 1);
                drop(q);
                self.admitted("immediate");
                return Ok(Ticket {
                    held: Some((self.clone(), id.to_string())),
                });
            }
            if q.queued >= self.cfg.queue_length && !self.evict_for(&mut q, tenant) {
                drop(q);
                return Err(self.refuse(Refused::QueueFull {
                    queue: self.cfg.queue_length,
                    max,
                }));
            }
            q.seq += 1;
            let seq = q.seq;
            let (tx, rx) = oneshot::channel();
            let fifo = q.waiting.entry(tenant.to_string()).or_default();
            fifo.push_back(Waiter {
                seq,
                id: id.to_string(),
                tx,
            });
            if fifo.len() == 1 {
                q.order.push_back(tenant.to_string());
            }
            q.queued += 1;
            self.metrics.admission_queue.set(q.queued as i64);
            if !q.dispatcher {
                q.dispatcher = true;
                tokio::spawn(self.clone().run_dispatcher());
            }
            (rx, seq)
        };
        debug!(tenant, id, "waiting for a free sandbox");
        let mut waiting = Waiting {
            admission: self.clone(),
            tenant: tenant.to_string(),
            id: id.to_string(),
            seq,
            rx: Some(rx),
            started: Instant::now(),
        };
        let rx = waiting.rx.as_mut().expect("just set");
        let outcome = tokio::select! {
            r = rx => Some(r.is_ok()),
            _ = tokio::time::sleep(self.cfg.timeout) => None,
            _ = self.closed.cancelled() => None,
        };
        let granted = match outcome {
            Some(g) => g,
            None => {
                // Timed out or closing; a grant may have raced the timer, and then it counts.
                let mut rx = waiting.rx.take().expect("still held");
                let mut q = self.queue.lock().expect("admission lock");
                if q.remove(tenant, seq) {
                    self.metrics.admission_queue.set(q.queued as i64);
                    false
                } else {
                    rx.try_recv().is_ok()
                }
            }
        };
        waiting.rx = None;
        if granted {
            self.observe_wait("admitted", waiting.started);
            self.admitted("queued");
            return Ok(Ticket {
                held: Some((self.clone(), id.to_string())),
            });
        }
        self.observe_wait("refused", waiting.started);
        // The sender was dropped without a grant: evicted (a full queue made room), or the wait ended.
        let r = if self.closed.is_cancelled() {
            Refused::ShuttingDown
        } else if outcome == Some(false) {
            Refused::Evicted {
                queue: self.cfg.queue_length,
            }
        } else {
            Refused::Timeout {
                timeout: duration::format(self.cfg.timeout),
                max,
            }
        };
        Err(self.refuse(r))
    }

    /// The queue is full: if `tenant` waits with fewer requests than the busiest tenant, that
    /// tenant's newest waiter is refused to make room. Returns whether there is room now.
    fn evict_for(&self, q: &mut Queue, tenant: &str) -> bool {
        if self.cfg.queue_length == 0 {
            return false;
        }
        let mine = q.waiting.get(tenant).map_or(0, VecDeque::len);
        let Some((busiest, len)) = q
            .waiting
            .iter()
            .map(|(t, f)| (t.clone(), f.len()))
            .max_by_key(|(_, l)| *l)
        else {
            return false;
        };
        if mine + 1 >= len {
            return false;
        }
        let fifo = q.waiting.get_mut(&busiest).expect("found above");
        let victim = fifo.pop_back().expect("non-empty");
        q.queued -= 1;
        debug!(tenant = %busiest, id = %victim.id, for_tenant = tenant, "evicted the busiest tenant's newest waiter");
        // Dropping the sender wakes the victim without a grant.
        drop(victim);
        true
    }

    /// Grants free slots to waiters, one tenant at a time in round-robin order. Called with the lock.
    fn dispatch(&self, q: &mut Queue) {
        let Some(max) = self.cfg.max_sandboxes else {
            return;
        };
        while q.queued > 0 {
            let Some(tenant) = q.order.pop_front() else {
                break;
            };
            let fifo = q.waiting.get_mut(&tenant).expect("ordered tenants wait");
            let Some(w) = fifo.pop_front() else {
                q.waiting.remove(&tenant);
                continue;
            };
            let existing = q.reserved.contains_key(&w.id) || self.sessions.contains(&w.id);
            if !existing
                && self
                    .sessions
                    .occupancy(q.reserved.keys().map(String::as_str))
                    >= max
            {
                // No slot: this tenant keeps its turn.
                q.waiting
                    .get_mut(&tenant)
                    .expect("still there")
                    .push_front(w);
                q.order.push_front(tenant);
                break;
            }
            q.queued -= 1;
            let fifo = q.waiting.get_mut(&tenant).expect("still there");
            if fifo.is_empty() {
                q.waiting.remove(&tenant);
            } else {
                q.order.push_back(tenant.clone());
            }
            if w.tx.is_closed() {
                continue;
            }
            *q.reserved.entry(w.id.clone()).or_insert(0) += 1;
            if w.tx.send(()).is_err() {
                release(q, &w.id);
            } else {
                debug!(tenant = %tenant, id = %w.id, "admitted from the queue");
            }
        }
        self.metrics.admission_queue.set(q.queued as i64);
    }

    /// Re-checks capacity while anyone waits; ends when the queue is empty.
    async fn run_dispatcher(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RECHECK) => {}
                _ = self.closed.cancelled() => {}
            }
            let mut q = self.queue.lock().expect("admission lock");
            if self.closed.is_cancelled() {
                // Waiters see the token themselves; drop their senders so none waits on us.
                q.waiting.clear();
                q.order.clear();
                q.queued = 0;
                self.metrics.admission_queue.set(0);
            } else {
                self.dispatch(&mut q);
            }
            if q.queued == 0 {
                q.dispatcher = false;
                return;
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds a tenant's connection place until the body is done.
    pub struct Held<B> {
        #[pin]
        inner: B,
        connection: Option<Connection>,
    }
}

impl<B> Held<B> {
    pub fn new(inner: B, connection: Connection) -> Self {
        Self {
            inner,
            connection: Some(connection),
        }
    }
}

impl<B: HttpBody> HttpBody for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.connection.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
