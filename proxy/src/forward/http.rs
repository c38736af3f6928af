//! Plain HTTP (MCP over HTTP, SSE) to the sandbox's MCP port, streamed both ways. The response body
//! holds the session lease until its last byte, so a long SSE stream keeps its sandbox from the reaper.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue, ORIGIN};
use hyper::{Request, Response, StatusCode, Version};
use prometheus_client::metrics::gauge::Gauge;

use super::pool::{Conn, UpstreamPool};
use super::{Body, Forwarder, forwarded_for, remove_hop_by_hop, text};
use crate::backend::Endpoint;
use crate::config::OriginPolicy;
use crate::session::Lease;

impl Forwarder {
    pub(super) async fn http(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        id: String,
        strip: Vec<::http::HeaderName>,
        lease: Lease,
        ep: Endpoint,
    ) -> Response<Body> {
        let pool = self.pool.clone();
        let (lease, ep, mut conn) = match self
            .dial_with_retry(&id, lease, ep, Endpoint::http, |a| {
                let pool = pool.clone();
                async move { pool.checkout(&a).await }
            })
            .await
        {
            Ok(v) => v,
            Err((_, Some(resp))) => return resp,
            Err((e, None)) => {
                return self.upstream_failure(&id, "dial", format!("upstream error: {e}"));
            }
        };

        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        parts.uri = match path.parse() {
            Ok(u) => u,
            Err(_) => return text(StatusCode::BAD_REQUEST, "invalid request target"),
        };
        parts.version = Version::HTTP_11;
        let xff = forwarded_for(&parts.headers, peer.ip());
        remove_hop_by_hop(&mut parts.headers);
        for h in &strip {
            parts.headers.remove(h);
        }
        parts.headers.insert("x-forwarded-for", xff);
        if let Some(host) = self.upstream_host(&ep, &conn.authority) {
            match HeaderValue::from_str(&host) {
                Ok(v) => {
                    parts.headers.insert(HOST, v);
                }
                Err(_) => {
                    return text(
                        StatusCode::BAD_GATEWAY,
                        "upstream error: invalid upstream host",
                    );
                }
            }
        }
        if self.cfg.origin == OriginPolicy::Drop {
            parts.headers.remove(ORIGIN);
        }

        let resp = match conn
            .sender
            .send_request(Request::from_parts(parts, body))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return self.upstream_failure(&id, "http", format!("upstream error: {e}"));
            }
        };
        let (mut parts, body) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        let streamed = Streamed::new(
            body,
            lease,
            conn,
            self.pool.clone(),
            self.metrics.http_streams.clone(),
        );
        Response::from_parts(parts, streamed.boxed())
    }
}

pin_project_lite::pin_project! {
    /// The upstream response body on its way to the client. At the end of the stream the connection
    /// goes back to the pool; dropping it early (client gone) closes the connection instead.
    struct Streamed {
        #[pin]
        inner: Incoming,
        lease: Option<Lease>,
        conn: Option<Conn>,
        pool: Arc<UpstreamPool>,
        gauge: Gauge,
    }

    impl PinnedDrop for Streamed {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // hyper stops polling a body once `is_end_stream` says it is complete (a Content-Length
            // body's last frame), so a fully read body is often dropped rather than polled to `None`.
            if this.inner.is_end_stream()
                && let Some(conn) = this.conn.take()
            {
                this.pool.put(conn);
            }
            this.gauge.dec();
        }
    }
}

impl Streamed {
    fn new(
        inner: Incoming,
        lease: Lease,
        conn: Conn,
        pool: Arc<UpstreamPool>,
        gauge: Gauge,
    ) -> Self {
        gauge.inc();
        let mut conn = Some(conn);
        if inner.is_end_stream() {
            // An empty body may never be polled; the connection is reusable already.
            pool.put(conn.take().expect("just set"));
        }
        Self {
            inner,
            lease: Some(lease),
            conn,
            pool,
            gauge,
        }
    }
}

impl HttpBody for Streamed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let finished = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if finished {
            if let Some(conn) = this.conn.take() {
                this.pool.put(conn);
            }
            this.lease.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
