//! The data port: identify the caller, get its sandbox, then stream HTTP (to the MCP port) or splice a
//! WebSocket (to the Playwright port). There are no reserved paths: every request goes to a sandbox.

mod headers;
mod http;
pub mod pool;
mod screen;
mod splice;
mod websocket;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

pub use headers::{forwarded_for, is_websocket_upgrade, remove_hop_by_hop};

use crate::admission::{Admission, Held, Refused};
use crate::backend::{Authority, Endpoint};
use crate::config::{Config, HostPolicy, OriginPolicy};
use crate::http_error::HttpError;
use crate::identity::{Identity, Verdict};
use crate::metrics::Metrics;
use crate::session::{Lease, SessionError, SessionManager};
use pool::{DialError, UpstreamPool};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// A plain-text answer; the body ends with a newline.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut body = message.into();
    body.push('\n');
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("static response parts are valid")
}

/// Settings the data path needs.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub dial_timeout: Duration,
    pub host: HostPolicy,
    pub origin: OriginPolicy,
    pub label_key: String,
}

impl From<&Config> for ForwardConfig {
    fn from(c: &Config) -> Self {
        Self {
            dial_timeout: c.dial_timeout,
            host: c.upstream_host,
            origin: c.upstream_origin,
            label_key: c.label_key.clone(),
        }
    }
}

pub struct Forwarder {
    identity: Arc<dyn Identity>,
    sessions: SessionManager,
    /// `None` when both admission limits are off: the request path skips admission entirely.
    admission: Option<Arc<Admission>>,
    metrics: Metrics,
    pool: Arc<UpstreamPool>,
    cfg: ForwardConfig,
    /// Spliced WebSockets, tracked apart from HTTP connections so shutdown can give them their own grace.
    ws_tasks: TaskTracker,
    ws_cancel: CancellationToken,
}

impl Forwarder {
    pub fn new(
        identity: Arc<dyn Identity>,
        sessions: SessionManager,
        admission: Option<Arc<Admission>>,
        metrics: Metrics,
        cfg: ForwardConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            identity,
            sessions,
            admission,
            metrics,
            pool: UpstreamPool::new(cfg.dial_timeout),
            cfg,
            ws_tasks: TaskTracker::new(),
            ws_cancel: CancellationToken::new(),
        })
    }

    pub fn websockets(&self) -> &TaskTracker {
        &self.ws_tasks
    }

    /// Closes every open WebSocket now (after the shutdown grace).
    pub fn close_websockets(&self) {
        self.ws_cancel.cancel();
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Infallible> {
        let ws = is_websocket_upgrade(req.headers());
        let protocol = if ws { "ws" } else { "http" };
        let resp = self.route(req, peer, ws).await;
        self.metrics.request(protocol, resp.status().as_u16());
        Ok(resp)
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr, ws: bool) -> Response<Body> {
        let ip = crate::identity::canonical(peer.ip());
        if let Some(refusal) = screen::refuse(req.method(), req.headers(), ws) {
            debug!(ip = %ip, method = %req.method(), status = refusal.status().as_u16(), "request refused before identity");
            return refusal;
        }
        let (id, strip, tenant) = match self.identity.identify(ip, req.headers()).await {
            Verdict::Known { id, strip, tenant } => (id, strip, tenant),
            Verdict::Unknown => {
                self.metrics
                    .identity_failures
                    .get_or_create(&Metrics::kind("unknown"))
                    .inc();
                debug!(ip = %ip, path = %req.uri().path(), "unknown client");
                return text(
                    StatusCode::FORBIDDEN,
                    format!("client pod {ip} not labelled with {}", self.cfg.label_key),
                );
            }
            Verdict::Rejected(reason) => {
                self.metrics
                    .identity_failures
                    .get_or_create(&Metrics::kind("rejected"))
                    .inc();
                warn!(ip = %ip, reason = %reason, "identity rejected");
                return text(StatusCode::FORBIDDEN, reason);
            }
            Verdict::Ambiguous(reason) => {
                self.metrics
                    .identity_failures
                    .get_or_create(&Metrics::kind("ambiguous"))
                    .inc();
                warn!(ip = %ip, reason = %reason, "ambiguous identity");
                return text(StatusCode::BAD_REQUEST, reason);
            }
        };
        let (connection, ticket) = match &self.admission {
            None => (None, None),
            Some(a) => {
                let tenant = tenant.unwrap_or_else(|| id.clone());
                let connection = match a.connect(&tenant) {
                    Ok(c) => c,
                    Err(r) => return refused(a, &tenant, &id, r),
                };
                match a.admit(&tenant, &id).await {
                    Ok(t) => (Some(connection), Some(t)),
                    Err(r) => return refused(a, &tenant, &id, r),
                }
            }
        };
        let got = self.sessions.get(&id).await;
        drop(ticket);
        let (lease, ep) = match got {
            Ok(v) => v,
            Err(e) => return session_error(&id, e),
        };
        if ws {
            self.websocket(req, peer, id, strip, lease, ep, connection)
                .await
        } else {
            let resp = self.http(req, peer, id, strip, lease, ep).await;
            match connection {
                Some(c) => resp.map(|b| Held::new(b, c).boxed()),
                None => resp,
            }
        }
    }

    /// Dials the sandbox; if it refuses or resets (the sandbox is gone), forgets the session and tries
    /// once more with whatever endpoint a fresh ensure returns.
    async fn dial_with_retry<T, F, Fut>(
        &self,
        id: &str,
        lease: Lease,
        ep: Endpoint,
        pick: fn(&Endpoint) -> &Authority,
        dial: F,
    ) -> Result<(Lease, Endpoint, T), (DialError, Option<Response<Body>>)>
    where
        F: Fn(Authority) -> Fut,
        Fut: Future<Output = Result<T, DialError>>,
    {
        match dial(pick(&ep).clone()).await {
            Ok(t) => Ok((lease, ep, t)),
            Err(e) if e.stale => {
                warn!(id, error = %e, "sandbox refused the connection; ensuring it again");
                self.sessions.invalidate(&lease, &ep);
                self.pool.forget(pick(&ep));
                drop(lease);
                let (lease, ep) = match self.sessions.get(id).await {
                    Ok(v) => v,
                    Err(se) => return Err((e, Some(session_error(id, se)))),
                };
                match dial(pick(&ep).clone()).await {
                    Ok(t) => Ok((lease, ep, t)),
                    Err(e) => Err((e, None)),
                }
            }
            Err(e) => Err((e, None)),
        }
    }

    /// A 502 for a failure talking to the sandbox, counted by kind and logged with the request's id.
    fn upstream_failure(&self, id: &str, kind: &str, message: String) -> Response<Body> {
        self.metrics
            .upstream_errors
            .get_or_create(&Metrics::kind(kind))
            .inc();
        warn!(id, kind, error = %message, "upstream error");
        text(StatusCode::BAD_GATEWAY, message)
    }

    fn upstream_host(&self, ep: &Endpoint, authority: &Authority) -> Option<String> {
        match self.cfg.host {
            HostPolicy::Preserve => None,
            HostPolicy::Rewrite => Some(
                ep.host_header
                    .clone()
                    .unwrap_or_else(|| authority.to_string()),
            ),
        }
    }
}

/// The answer to a request admission refused: 429 or 503, `Retry-After`, and the limit hit.
pub fn refused(a: &Admission, tenant: &str, id: &str, r: Refused) -> Response<Body> {
    warn!(tenant, id, reason = r.reason(), "admission refused");
    let mut resp = text(r.status(), r.to_string());
    resp.headers_mut()
        .insert(hyper::header::RETRY_AFTER, a.retry_after(&r).into());
    resp
}

fn session_error(id: &str, e: SessionError) -> Response<Body> {
    warn!(id, error = %e, "session get failed");
    text(e.status(), format!("session unavailable: {e}"))
}
