//! Adoption of the sandboxes the backend already has, at start-up.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{info, warn};

use super::SessionManager;

impl SessionManager {
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
}
