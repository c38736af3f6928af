//! The leader's reaper: deletes every managed sandbox that no replica has used for IDLE_TTL, judged
//! from the shared activity records and the leader's own sessions. Each delete carries the listed
//! `resourceVersion`, so activity recorded after the list saves the sandbox. Started by the local
//! reaper's tick ([`SessionManager::reap_once`]) while this replica leads.

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use tracing::{info, warn};

use super::Shared;
use super::activity::Deleted;
use crate::metrics::Metrics;
use crate::session::SessionManager;
use crate::session::reaper::IdleClaim;

/// One pass over the shared records.
pub(crate) async fn pass(sessions: &SessionManager, sh: &Shared) {
    let timeout = sessions.config().delete_timeout;
    let records = match tokio::time::timeout(timeout, sh.store.list()).await {
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
    let claims = sessions.claim_idle(records, Timestamp::now().as_millisecond());
    futures::stream::iter(claims)
        .for_each_concurrent(8, |claim| async move {
            delete(sessions, sh, &claim).await;
            sessions.finish_claim(claim);
        })
        .await;
}

async fn delete(sessions: &SessionManager, sh: &Shared, claim: &IdleClaim) {
    let rec = &claim.record;
    let timeout = sessions.config().delete_timeout;
    let r = tokio::time::timeout(timeout, sh.store.delete_if_unchanged(rec)).await;
    let result = match r {
        Ok(Ok(Deleted::Deleted)) => {
            info!(id = %rec.id, object = %rec.name, idle_for_ms = claim.idle_for_ms, replica = %sh.replica, "reaped idle sandbox");
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
    sessions
        .metrics()
        .reaps
        .get_or_create(&Metrics::result(result))
        .inc();
}
