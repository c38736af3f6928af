//! Keep-alive HTTP/1.1 connections to sandboxes, keyed by authority. We dial ourselves (rather than use a
//! client that dials inside `send`) so that a refused dial is seen before the request body is consumed:
//! only then can the session be invalidated and the request retried on a fresh sandbox.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::backend::Authority;

/// Why a dial failed, and whether that means the sandbox is gone.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DialError {
    pub message: String,
    /// Refused or reset: nothing listens there any more, so the cached endpoint is stale.
    pub stale: bool,
}

impl DialError {
    fn io(authority: &Authority, e: io::Error) -> Self {
        let stale = matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        );
        Self {
            message: format!("dial tcp {authority}: {e}"),
            stale,
        }
    }
}

/// Dials `authority` with a timeout, with Nagle off (WebSocket frames and SSE events are small).
pub async fn dial(authority: &Authority, timeout: Duration) -> Result<TcpStream, DialError> {
    let target = (
        authority.host.trim_matches(|c| c == '[' || c == ']'),
        authority.port,
    );
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(DialError::io(authority, e)),
        Err(_) => Err(DialError {
            message: format!("dial tcp {authority}: timed out after {timeout:?}"),
            stale: false,
        }),
    }
}

pub struct UpstreamPool {
    idle: Mutex<HashMap<Authority, Vec<SendRequest<Incoming>>>>,
    dial_timeout: Duration,
    max_idle_per_host: usize,
}

/// A connection checked out of the pool; give it back with [`UpstreamPool::put`] once its response
/// has been read to the end.
pub struct Conn {
    pub sender: SendRequest<Incoming>,
    pub authority: Authority,
}

impl UpstreamPool {
    pub fn new(dial_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            dial_timeout,
            max_idle_per_host: 32,
        })
    }

    pub async fn checkout(&self, authority: &Authority) -> Result<Conn, DialError> {
        loop {
            let candidate = self
                .idle
                .lock()
                .expect("pool lock")
                .get_mut(authority)
                .and_then(Vec::pop);
            let Some(mut sender) = candidate else { break };
            if sender.is_closed() {
                continue;
            }
            // A connection returned at end of body may take a moment to become idle again.
            if tokio::time::timeout(Duration::from_millis(50), sender.ready())
                .await
                .is_ok_and(|r| r.is_ok())
            {
                return Ok(Conn {
                    sender,
                    authority: authority.clone(),
                });
            }
        }
        let stream = dial(authority, self.dial_timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| DialError {
                message: format!("handshake with {authority}: {e}"),
                stale: false,
            })?;
        let who = authority.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(upstream = %who, error = %e, "upstream connection ended");
            }
        });
        Ok(Conn {
            sender,
            authority: authority.clone(),
        })
    }

    pub fn put(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry(conn.authority).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < self.max_idle_per_host {
            list.push(conn.sender);
        }
    }

    /// Drops idle connections to an endpoint that has gone away.
    pub fn forget(&self, authority: &Authority) {
        self.idle.lock().expect("pool lock").remove(authority);
    }
}
