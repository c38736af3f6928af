//! Several proxy replicas in front of the same sandboxes. The Kubernetes API is the shared state:
//! every replica records the activity it serves on the sandbox objects ([`activity`]), and only the
//! elected leader ([`leader`]) deletes idle sandboxes, judging idleness from those records (the
//! newest of all replicas, [`reaper`]) so that a sandbox in use through one replica is never reaped by
//! another.

pub mod activity;
pub mod leader;
pub(crate) mod reaper;

use std::time::Duration;

pub use activity::ActivityStore;
pub use leader::{ElectionConfig, Leadership};

/// What the session manager needs to take part in a group of replicas.
#[derive(Clone)]
pub struct Shared {
    pub store: ActivityStore,
    pub leadership: Leadership,
    /// Least time between two activity writes for one sandbox; also how often open connections
    /// refresh their record.
    pub activity_interval: Duration,
    /// This replica's name, written next to the activity it records.
    pub replica: String,
}
