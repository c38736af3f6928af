//! The activity recorder (several replicas only): writes the use this replica sees of each sandbox to
//! the shared record on its object, so that the leader never reaps a sandbox in use here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, warn};

use super::{Session, SessionManager, State};
use crate::metrics::Metrics;
use crate::replicas::Shared;
use crate::replicas::activity::Written;

impl SessionManager {
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
    pub(super) fn record_if_stale(&self, s: &Arc<Session>) {
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
}
