//! The local reaper: every IDLE_CHECK_INTERVAL, deletes the sandboxes of sessions idle for IDLE_TTL
//! (alone) or only forgets them (one of several replicas, where the leader decides from the shared
//! records), and retries deletes that failed. Also the session side of the leader's pass: which
//! idle records this replica may delete ([`SessionManager::claim_idle`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{SessionManager, State};
use crate::backend::BackendError;
use crate::metrics::Metrics;
use crate::replicas::activity::Record;

/// A managed sandbox the leader may delete for idleness. Until [`SessionManager::finish_claim`],
/// a new ensure for its id waits, as it does for any delete.
pub(crate) struct IdleClaim {
    pub record: Record,
    pub idle_for_ms: i64,
    done: watch::Sender<bool>,
}

impl SessionManager {
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

    /// One reaper pass: picks idle sessions and starts their deletes (and retries of failed ones);
    /// on the leader of several replicas, starts a pass over the shared records too.
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
                let settled = !s.state.borrow().settling();
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
                crate::replicas::reaper::pass(&this, &sh).await;
                this.0.shared_pass.store(false, Ordering::Release);
            });
        }
    }

    /// Of the shared `records`, those idle for IDLE_TTL judged with this replica's own sessions too
    /// (one in use, or settling, is never idle; activity not yet on record counts). Their sessions
    /// are forgotten and their ids registered as being deleted.
    pub(crate) fn claim_idle(&self, records: Vec<Record>, now_wall_ms: i64) -> Vec<IdleClaim> {
        let m = &self.0;
        let ttl = m.cfg.idle_ttl.as_millis() as i64;
        let mut claims = Vec::new();
        let mut inner = m.inner.lock().expect("session lock");
        for rec in records {
            if rec.deleting || inner.deleting.contains_key(&rec.id) {
                continue;
            }
            let mut last = rec.last_active.map(|t| t.as_millisecond());
            if let Some(s) = inner.sessions.get(&rec.id) {
                if s.state.borrow().settling() || s.active.load(Ordering::Acquire) > 0 {
                    continue;
                }
                let local = s.last_active.load(Ordering::Acquire);
                // Activity not yet on record counts too (an adopted session's does not).
                if local > s.recorded.load(Ordering::Acquire) {
                    last = last.max(Some(m.wall_ms(local)));
                }
            }
            let idle_for_ms = last.map_or(i64::MAX, |l| now_wall_ms.saturating_sub(l));
            if idle_for_ms < ttl {
                continue;
            }
            if let Some(s) = inner.sessions.remove(&rec.id) {
                s.state.send_replace(State::Failed(BackendError::Failed(
                    "the session was reaped".into(),
                )));
            }
            let (done, rx) = watch::channel(false);
            inner.deleting.insert(rec.id.clone(), rx);
            claims.push(IdleClaim {
                record: rec,
                idle_for_ms,
                done,
            });
        }
        m.metrics.sessions.set(inner.sessions.len() as i64);
        claims
    }

    /// The leader's delete of a claimed sandbox is over. The next pass judges again from the
    /// records, so nothing is queued for retry here.
    pub(crate) fn finish_claim(&self, claim: IdleClaim) {
        self.0.finish_delete(&claim.record.id, claim.done, true);
    }

    pub(crate) fn config(&self) -> &super::SessionConfig {
        &self.0.cfg
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
}
