//! Settings of fair admission at capacity (MAX_SANDBOXES, ADMISSION_QUEUE_LENGTH, ADMISSION_TIMEOUT,
//! TENANT_MAX_CONNECTIONS). See [`crate::admission`] for what they do.

use std::time::Duration;

use clap::Args;

use super::values::{count, positive_dur, set};
use super::{ConfigError, err};
use crate::backend::local::LocalSettings;

/// Raw admission settings (flattened into the command line and environment).
#[derive(Debug, Default, Clone, Args)]
#[command(next_help_heading = "Admission")]
pub struct RawAdmission {
    /// Most live sandboxes (sessions) at once; a request for a new one beyond it waits in the
    /// admission queue. 0 = no limit (no queue). Default: local backend LOCAL_MAX_SANDBOXES -
    /// LOCAL_WARM_POOL (at least 1), so a refilling warm pool never makes an admitted request fail;
    /// cluster backends no limit.
    #[arg(long, env = "MAX_SANDBOXES")]
    pub max_sandboxes: Option<String>,
    /// Most requests waiting for a new sandbox; 0 = no queue (refuse at once at capacity).
    #[arg(long, env = "ADMISSION_QUEUE_LENGTH")]
    pub admission_queue_length: Option<String>,
    /// Longest time a request waits in the admission queue.
    #[arg(long, env = "ADMISSION_TIMEOUT")]
    pub admission_timeout: Option<String>,
    /// Most concurrent data-port connections (open WebSockets, HTTP requests and streams) per
    /// tenant; 0 = no limit.
    #[arg(long, env = "TENANT_MAX_CONNECTIONS")]
    pub tenant_max_connections: Option<String>,
}

/// Validated admission settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// `None`: no limit on live sandboxes (no queue).
    pub max_sandboxes: Option<usize>,
    pub queue_length: usize,
    pub timeout: Duration,
    /// `None`: no per-tenant limit.
    pub tenant_max_connections: Option<usize>,
}

impl AdmissionConfig {
    /// Whether any admission check runs at all (both limits off: the request path skips it).
    pub fn enabled(&self) -> bool {
        self.max_sandboxes.is_some() || self.tenant_max_connections.is_some()
    }

    /// `local` is the local backend's settings when that is the backend: its room beside the warm
    /// pool is the default and the ceiling of MAX_SANDBOXES.
    pub fn from_raw(
        raw: &RawAdmission,
        local: Option<&LocalSettings>,
    ) -> Result<Self, ConfigError> {
        let local_room = local.map(|l| l.max_sandboxes.saturating_sub(l.warm_pool).max(1));
        let max_sandboxes = match set(&raw.max_sandboxes) {
            None => local_room,
            Some(_) => match count("MAX_SANDBOXES", &raw.max_sandboxes, 0, 0)? {
                0 => None,
                n => Some(n),
            },
        };
        if let (Some(local), Some(local_room), Some(n)) = (local, local_room, max_sandboxes)
            && n > local_room
        {
            return Err(err(
                "MAX_SANDBOXES",
                format!(
                    "{n} is more than the local backend can run beside its warm pool (LOCAL_MAX_SANDBOXES {} - LOCAL_WARM_POOL {} = {local_room})",
                    local.max_sandboxes, local.warm_pool
                ),
            ));
        }
        let queue_length = count("ADMISSION_QUEUE_LENGTH", &raw.admission_queue_length, 64, 0)?;
        let timeout = positive_dur("ADMISSION_TIMEOUT", &raw.admission_timeout, "30s")?;
        let tenant_max_connections =
            match count("TENANT_MAX_CONNECTIONS", &raw.tenant_max_connections, 64, 0)? {
                0 => None,
                n => Some(n),
            };
        Ok(Self {
            max_sandboxes,
            queue_length,
            timeout,
            tenant_max_connections,
        })
    }
}
