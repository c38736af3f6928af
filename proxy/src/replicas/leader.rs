//! Which replica reaps: the holder of a coordination.k8s.io Lease, through `kube-lease-manager`
//! (kube 5 / k8s-openapi 0.29 like this crate, server-side apply so that two candidates cannot both
//! take the Lease, renewal before expiry, takeover of an expired Lease). `kube-leader-election` was
//! the other candidate; it only offers one-shot acquire/renew calls that we would have to schedule
//! ourselves.
//!
//! Being leader is a hint, not a fence: a leader cut off from the API server still believes it
//! leads until it can talk again. That is safe here because the reaper never acts on leadership
//! alone: it deletes only objects whose shared activity records say idle, with a `resourceVersion`
//! precondition (see [`super::activity`]), so two leaders for a moment at worst both try to delete
//! the same idle sandbox.

use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// Settings of the election (LEADER_ELECTION_* variables).
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a Lease stays valid after its last renewal; a standby takes over after it.
    pub lease_duration: Duration,
    /// How long before expiry the leader renews.
    pub renew_before: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("leader election Lease {namespace}/{name}: {source}")]
pub struct ElectionError {
    name: String,
    namespace: String,
    #[source]
    source: kube_lease_manager::LeaseManagerError,
}

/// Whether this replica leads now. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    /// A replica that is alone: always the leader (no election, no Kubernetes).
    pub fn alone() -> Self {
        let (tx, rx) = watch::channel(true);
        // The receiver keeps the last value after the sender is gone.
        drop(tx);
        Self { rx }
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until leadership is `want` (tests and the reaper's first pass).
    pub async fn wait_for(&mut self, want: bool) {
        let _ = self.rx.wait_for(|v| *v == want).await;
    }

    /// Joins the election; the returned task renews or campaigns until `stop`, then releases the
    /// Lease so that another replica takes over at once instead of after the Lease expires.
    pub async fn elect(
        client: kube::Client,
        cfg: &ElectionConfig,
        metrics: Metrics,
        stop: CancellationToken,
    ) -> Result<(Self, JoinHandle<()>), ElectionError> {
        let manager = LeaseManagerBuilder::new(client, &cfg.lease_name)
            .with_namespace(&cfg.namespace)
            .with_identity(&cfg.identity)
            .with_duration(cfg.lease_duration.as_secs())
            .with_grace(cfg.renew_before.as_secs())
            .build()
            .await
            .map_err(|source| ElectionError {
                name: cfg.lease_name.clone(),
                namespace: cfg.namespace.clone(),
                source,
            })?;
        let (tx, rx) = watch::channel(false);
        metrics.leader.set(0);
        let (lease, identity) = (cfg.lease_name.clone(), cfg.identity.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = manager.changed() => match r {
                        Ok(leading) => {
                            tx.send_replace(leading);
                            metrics.leader.set(leading as i64);
                            metrics.leader_transitions.inc();
                            if leading {
                                info!(lease = %lease, identity = %identity, "became the leader");
                            } else {
                                info!(lease = %lease, identity = %identity, "lost the leadership");
                            }
                        }
                        Err(e) => {
                            // The manager keeps its view; the next call re-reads the Lease.
                            warn!(lease = %lease, identity = %identity, error = %e, "leader election failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                    _ = stop.cancelled() => {
                        let was = *tx.borrow();
                        tx.send_replace(false);
                        metrics.leader.set(0);
                        if let Err(e) = manager.release().await {
                            warn!(lease = %lease, error = %e, "cannot release the leader Lease");
                        } else if was {
                            info!(lease = %lease, identity = %identity, "released the leadership");
                        }
                        return;
                    }
                }
            }
        });
        Ok((Self { rx }, task))
    }
}
