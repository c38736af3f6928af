//! What the bench measures against: something that hands out Playwright endpoints in a cold, warm or
//! restored state. The proxy target drives the proxy's session API; the local target starts sandbox
//! processes itself, so the bench can be checked without a proxy.

pub mod local;
pub mod proxy;

use futures::future::BoxFuture;

use crate::scenario::Scenario;

pub use local::{LocalTarget, LocalTargetConfig};
pub use proxy::{ProxyTarget, ProxyTargetConfig};

/// Errors while preparing or observing a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("sandbox process: {0}")]
    Process(String),
    #[error("session API {method} {path}: {detail}")]
    SessionApi {
        method: String,
        path: String,
        detail: String,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// Where to connect for one sample.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Playwright WebSocket URL.
    pub ws_url: String,
    /// Upgrade headers that select the sandbox (identity headers through a proxy).
    pub headers: Vec<(String, String)>,
    /// MCP-over-HTTP URL, when the sandbox serves @playwright/mcp.
    pub mcp_url: Option<String>,
}

/// State recorded before the timed part of a sample.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Sandbox instance that existed before the sample (the one that was suspended for restore).
    pub instance_before: Option<String>,
    /// The sandbox was created by this prepare step (a warm sample then needs a warm-up session).
    pub fresh: bool,
}

/// A place that serves Playwright sandboxes in the three states the bench measures.
///
/// A sample calls `prepare` (untimed: delete, ensure, suspend), then `open` inside the timed connect
/// phase (for targets where the sandbox start or resume is the caller's job), then connects, and
/// after the session `observe` to learn which sandbox instance served it.
pub trait Target: Send {
    /// Short label used in reports.
    fn name(&self) -> &str;
    fn prepare(
        &mut self,
        scenario: Scenario,
        sample: usize,
    ) -> BoxFuture<'_, Result<Prepared, TargetError>>;
    fn open(&mut self, scenario: Scenario) -> BoxFuture<'_, Result<Endpoint, TargetError>>;
    fn observe(&mut self, scenario: Scenario)
    -> BoxFuture<'_, Result<Option<String>, TargetError>>;
    /// Releases every sandbox this target created.
    fn shutdown(&mut self) -> BoxFuture<'_, ()>;
}
