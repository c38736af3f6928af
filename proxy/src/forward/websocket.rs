//! WebSocket upgrades: the client's upgrade request goes to the sandbox's WebSocket port with its path,
//! query and headers intact (Host rewritten, Origin dropped by default, X-Forwarded-For appended), the
//! sandbox's answer comes back as it is, and after a 101 the two sockets are spliced byte for byte.
//!
//! The upgrade request is sent by hyper's HTTP/1 client connection (`client::conn::http1` with
//! upgrades): it writes exactly the headers we hand it, lower-case and in map order, adds none of its
//! own for a body-less GET, reads a declined answer's body whatever its framing, and after a 101 gives
//! back the TCP stream plus any bytes the sandbox sent behind the head, so the splice still sees every
//! byte. Where it differs from the hand-written client it replaced: handshake failures carry hyper's
//! wording (`connection closed before message completed`), a 1xx other than 101 is skipped rather than
//! relayed as the answer, and a `Transfer-Encoding` on the client's body-less GET is not passed on.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, ORIGIN,
    TRANSFER_ENCODING, UPGRADE,
};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::pool::dial;
use super::splice::splice;
use super::{Body, Forwarder, forwarded_for, text};
use crate::admission::Connection;
use crate::backend::Endpoint;
use crate::config::OriginPolicy;
use crate::session::Lease;

/// Largest response head we accept from a sandbox.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in a sandbox's response head.
const MAX_HEADERS: usize = 64;
/// Largest non-101 answer body relayed (error pages are small); a longer one is cut off here.
const MAX_ERROR_BODY: usize = 1024 * 1024;
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a declined upgrade's body gets to arrive; a sandbox that keeps talking is cut off.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);

impl Forwarder {
    #[allow(clippy::too_many_arguments)] // the request's parts as route() resolved them
    pub(super) async fn websocket(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        id: String,
        strip: Vec<HeaderName>,
        lease: Lease,
        ep: Endpoint,
        connection: Option<Connection>,
    ) -> Response<Body> {
        let timeout = self.cfg.dial_timeout;
        let (lease, ep, upstream) = match self
            .dial_with_retry(
                &id,
                lease,
                ep,
                |e| &e.ws,
                |a| async move { dial(&a, timeout).await },
            )
            .await
        {
            Ok(v) => v,
            Err((_, Some(resp))) => return resp,
            Err((e, None)) => {
                return self.upstream_failure(&id, "dial", format!("backend dial failed: {e}"));
            }
        };

        let upgrade = match self.upgrade_request(&req, peer, &strip, &ep) {
            Ok(r) => r,
            Err(message) => return text(StatusCode::BAD_GATEWAY, message),
        };
        let (mut sender, conn) = match http1::Builder::new()
            .max_header_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(upstream))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                return self.upstream_failure(&id, "write", format!("backend write failed: {e}"));
            }
        };
        // Drives the connection until it hands the socket over after a 101, or ends with the
        // declined answer; dropping `sender` and the response ends it in every other case.
        let conn = tokio::spawn(conn.with_upgrades());

        let answer = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(upgrade)).await;
        drop(sender);
        let mut answer = match answer {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return self.upstream_failure(
                    &id,
                    "handshake",
                    format!("backend handshake failed: {e}"),
                );
            }
            Err(_) => {
                conn.abort();
                let msg = "backend handshake failed: no answer within 30s".to_string();
                return self.upstream_failure(&id, "handshake", msg);
            }
        };
        let status = answer.status();

        if status != StatusCode::SWITCHING_PROTOCOLS {
            // The sandbox declined (404, 428 version mismatch, ...): relay its answer unchanged.
            debug!(id, status = status.as_u16(), "sandbox declined the upgrade");
            let (mut parts, body) = answer.into_parts();
            let body = read_error_body(body).await;
            parts.headers.remove(TRANSFER_ENCODING);
            parts.headers.remove(CONTENT_LENGTH);
            parts.extensions = Default::default();
            return Response::from_parts(
                parts,
                Full::new(body).map_err(|never| match never {}).boxed(),
            );
        }

        let upstream = match hyper::upgrade::on(&mut answer)
            .await
            .map(|u| u.downcast::<TokioIo<TcpStream>>())
        {
            Ok(Ok(parts)) => parts,
            // Cannot happen: the connection is the TcpStream given to the handshake above.
            Ok(Err(_)) => {
                let msg = "backend handshake failed: unexpected upgraded stream".to_string();
                return self.upstream_failure(&id, "handshake", msg);
            }
            Err(e) => {
                return self.upstream_failure(
                    &id,
                    "handshake",
                    format!("backend handshake failed: {e}"),
                );
            }
        };
        let (rest, upstream) = (upstream.read_buf, upstream.io.into_inner());

        let on_upgrade = hyper::upgrade::on(&mut req);
        let metrics = self.metrics.clone();
        let cancel = self.ws_cancel.clone();
        self.ws_tasks.spawn(async move {
            let client = match on_upgrade.await {
                Ok(c) => c,
                Err(e) => {
                    debug!(id, error = %e, "client upgrade failed");
                    return;
                }
            };
            metrics.websocket_connections.inc();
            let result = tokio::select! {
                r = splice(client, upstream, rest) => Some(r),
                _ = cancel.cancelled() => None,
            };
            metrics.websocket_connections.dec();
            match result {
                Some(Ok((up, down))) => {
                    debug!(id, bytes_up = up, bytes_down = down, "websocket closed")
                }
                Some(Err(e)) => debug!(id, error = %e, "websocket ended with an error"),
                None => info!(id, "websocket closed at shutdown"),
            }
            drop(lease);
            drop(connection);
        });
        let (parts, _) = answer.into_parts();
        let mut resp = Response::builder().status(status);
        if let Some(h) = resp.headers_mut() {
            *h = parts.headers;
        }
        resp.body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap_or_else(|_| text(StatusCode::BAD_GATEWAY, "backend sent an invalid response"))
    }

    /// The upgrade request as the sandbox will see it: the client's headers in their order, minus the
    /// ones policy drops, with `Host` and `X-Forwarded-For` last.
    fn upgrade_request(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
        strip: &[HeaderName],
        ep: &Endpoint,
    ) -> Result<Request<Empty<Bytes>>, String> {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let host = self.upstream_host(ep, &ep.ws);
        let mut headers = HeaderMap::with_capacity(req.headers().len() + 2);
        for name in req.headers().keys() {
            let skip = (name == HOST && host.is_some())
                || name == "x-forwarded-for"
                || (name == ORIGIN && self.cfg.origin == OriginPolicy::Drop)
                || strip.contains(name);
            if skip {
                continue;
            }
            let values = req.headers().get_all(name);
            if name == CONNECTION || name == UPGRADE {
                // Token lists split over several lines are joined into one: equivalent (RFC 9110
                // §5.3), and some WebSocket servers only read the first line.
                let joined: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
                let joined = HeaderValue::from_bytes(&joined.join(&b", "[..]))
                    .map_err(|e| format!("invalid {name} header: {e}"))?;
                headers.insert(name, joined);
                continue;
            }
            for value in values {
                headers.append(name, value.clone());
            }
        }
        if let Some(h) = host {
            let h = HeaderValue::from_str(&h)
                .map_err(|_| "upstream error: invalid upstream host".to_string())?;
            headers.insert(HOST, h);
        }
        headers.insert("x-forwarded-for", forwarded_for(req.headers(), peer.ip()));
        let mut out = Request::builder()
            .method(req.method())
            .uri(
                target
                    .parse::<Uri>()
                    .map_err(|e| format!("invalid request target: {e}"))?,
            )
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// Reads the body of a declined upgrade as hyper de-framed it (by Content-Length, chunked, or to the
/// end of the connection). Bounded in size and time: what arrived by then is relayed, the rest dropped.
async fn read_error_body(mut body: Incoming) -> Bytes {
    let mut out = BytesMut::new();
    let _ = tokio::time::timeout(ERROR_BODY_TIMEOUT, async {
        while out.len() < MAX_ERROR_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        out.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
    out.truncate(MAX_ERROR_BODY);
    out.freeze()
}
