//! Where sandboxes come from. Each backend turns a sandbox id into a ready endpoint; the session manager
//! makes sure at most one `ensure` per id runs at a time, so backends need not.

pub mod cluster;
pub mod isola;
pub mod kars;
pub mod local;
pub mod naming;
pub mod sandbox_claim;
pub mod substrate;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

/// `host:port`, with IPv6 hosts bracketed (the reference's `%s:%d` broke them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    pub host: String,
    pub port: u16,
}

impl Authority {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') && !self.host.starts_with('[') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A ready sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where WebSocket upgrades go (the Playwright server).
    pub ws: Authority,
    /// Where plain HTTP goes (MCP over HTTP); the WebSocket port when the sandbox has no MCP port.
    pub mcp: Option<Authority>,
    /// Host header to send instead of the upstream authority (substrate routes by virtual host).
    pub host_header: Option<String>,
    /// Identity of the sandbox instance, which changes when the sandbox is recreated (the bench uses
    /// it to prove a cold start really was cold).
    pub instance: String,
}

impl Endpoint {
    pub fn http(&self) -> &Authority {
        self.mcp.as_ref().unwrap_or(&self.ws)
    }
}

/// Why a backend operation failed. Causes from the Kubernetes API and the operating system are kept
/// as sources (shared, since one ensure's result goes to every request waiting for it); what each
/// variant answers over HTTP is decided in one place, [`crate::http_error`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend has no room for another sandbox; the caller should retry later (503).
    #[error("{0}")]
    Capacity(String),
    /// The operation is not something this backend can do (501 on the session API).
    #[error("the {backend} backend cannot {operation}")]
    Unsupported {
        backend: &'static str,
        operation: &'static str,
    },
    #[error("no sandbox for id {0:?}")]
    NotFound(String),
    /// The sandbox failed for good (terminal condition, crashed during start-up, ...).
    #[error("{0}")]
    Failed(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// A Kubernetes API call failed: what the proxy was doing, and the API's error.
    #[error("{action}: {}", cluster::describe(.source))]
    Kube {
        action: String,
        #[source]
        source: Arc<kube::Error>,
    },
    /// A gRPC call to the sandbox platform (substrate's ate-api) failed: the call, and the status it
    /// answered. The status code decides the HTTP answer (ResourceExhausted is capacity).
    #[error("{action}: {:?}: {}", .source.code(), substrate::describe(.source))]
    Grpc {
        action: String,
        #[source]
        source: Arc<tonic::Status>,
    },
    /// A local operation (a directory, a socket, a child process) failed.
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl BackendError {
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source: Arc::new(source),
        }
    }

    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source: Arc::new(source),
        }
    }

    pub fn grpc(action: impl Into<String>, source: tonic::Status) -> Self {
        Self::Grpc {
            action: action.into(),
            source: Arc::new(source),
        }
    }

    /// The status a gRPC platform answered, for a failed gRPC call.
    pub fn grpc_status(&self) -> Option<&tonic::Status> {
        match self {
            Self::Grpc { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The backend has no room now: the caller may retry later (503), unlike any other failure.
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::Capacity(_))
            || self
                .grpc_status()
                .is_some_and(|s| s.code() == tonic::Code::ResourceExhausted)
    }
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Returns the ready endpoint for `id`, creating the sandbox if needed. Idempotent; may be
    /// cancelled by dropping the future.
    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError>;

    /// Removes the sandbox for `id`. Idempotent: an unknown id is success.
    async fn delete(&self, id: &str) -> Result<(), BackendError>;

    /// The ready sandbox the backend has for `id`, read without creating or changing anything: how
    /// a replica answers the session API for a session that another replica serves. `None`: no
    /// ready sandbox, or a backend whose sandboxes only this process knows.
    async fn lookup(&self, _id: &str) -> Result<Option<Endpoint>, BackendError> {
        Ok(None)
    }

    /// Ids of the sandboxes this proxy manages, for the start-up reconcile.
    async fn list(&self) -> Result<Vec<String>, BackendError>;

    /// Pauses the sandbox, keeping its state, so that a later `resume` is a restore.
    async fn suspend(&self, _id: &str) -> Result<(), BackendError> {
        Err(BackendError::Unsupported {
            backend: self.name(),
            operation: "suspend",
        })
    }

    async fn resume(&self, _id: &str) -> Result<(), BackendError> {
        Err(BackendError::Unsupported {
            backend: self.name(),
            operation: "resume",
        })
    }

    /// Where replicas share activity for this backend's sandboxes (cluster backends: the sandbox
    /// objects). `None`: the backend cannot take part in several replicas.
    fn activity_store(&self) -> Option<crate::replicas::ActivityStore> {
        None
    }

    /// Called once when the proxy exits. Backends whose sandboxes are the proxy's own children stop
    /// them; cluster backends leave their sandboxes for the next instance to adopt.
    async fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_brackets_ipv6() {
        assert_eq!(
            Authority::new("10.0.0.1", 9222).to_string(),
            "10.0.0.1:9222"
        );
        assert_eq!(
            Authority::new("fd00::1", 9222).to_string(),
            "[fd00::1]:9222"
        );
        assert_eq!(
            Authority::new("pw-a.ns.svc", 80).to_string(),
            "pw-a.ns.svc:80"
        );
    }
}
