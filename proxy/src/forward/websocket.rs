//! WebSocket upgrades: the client's upgrade request goes to the sandbox's WebSocket port with its path,
//! query and headers intact (Host rewritten, Origin dropped by default, X-Forwarded-For appended), the
//! sandbox's answer comes back as it is, and after a 101 the two sockets are spliced byte for byte.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, ORIGIN, TRANSFER_ENCODING, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
/// Largest non-101 answer body relayed (error pages are small).
const MAX_ERROR_BODY: usize = 1024 * 1024;
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

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
        let (lease, ep, mut upstream) = match self
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

        let head = self.upgrade_head(&req, peer, &strip, &ep);
        if let Err(e) = upstream.write_all(&head).await {
            return self.upstream_failure(&id, "write", format!("backend write failed: {e}"));
        }

        let answer = tokio::time::timeout(RESPONSE_TIMEOUT, read_head(&mut upstream)).await;
        let (status, headers, rest) = match answer {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return self.upstream_failure(
                    &id,
                    "handshake",
                    format!("backend handshake failed: {e}"),
                );
            }
            Err(_) => {
                let msg = "backend handshake failed: no answer within 30s".to_string();
                return self.upstream_failure(&id, "handshake", msg);
            }
        };

        let mut resp = Response::builder().status(status);
        for (name, value) in &headers {
            resp = resp.header(name, value);
        }

        if status != StatusCode::SWITCHING_PROTOCOLS {
            // The sandbox declined (404, 428 version mismatch, ...): relay its answer unchanged.
            debug!(id, status = status.as_u16(), "sandbox declined the upgrade");
            let body = read_error_body(&mut upstream, &headers, rest).await;
            let mut resp = resp
                .body(Full::new(body).map_err(|never| match never {}).boxed())
                .unwrap_or_else(|_| {
                    text(StatusCode::BAD_GATEWAY, "backend sent an invalid response")
                });
            resp.headers_mut().remove(TRANSFER_ENCODING);
            resp.headers_mut().remove(CONTENT_LENGTH);
            return resp;
        }

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
        resp.body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| text(StatusCode::BAD_GATEWAY, "backend sent an invalid response"))
    }

    /// The upgrade request as the sandbox will see it.
    fn upgrade_head(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
        strip: &[HeaderName],
        ep: &Endpoint,
    ) -> Vec<u8> {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(req.method().as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let host = self.upstream_host(ep, &ep.ws);
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
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&joined.join(&b", "[..]));
                out.extend_from_slice(b"\r\n");
                continue;
            }
            for value in values {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        if let Some(h) = host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        out.extend_from_slice(forwarded_for(req.headers(), peer.ip()).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out
    }
}

type Head = (StatusCode, Vec<(HeaderName, HeaderValue)>, Bytes);

/// Reads the sandbox's response head; returns it and whatever bytes followed it.
async fn read_head(upstream: &mut TcpStream) -> std::io::Result<Head> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if upstream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the sandbox closed the connection before answering",
            ));
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = StatusCode::from_u16(parsed.code.unwrap_or(502))
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                let mut out = Vec::with_capacity(parsed.headers.len());
                for h in parsed.headers.iter() {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(h.name.as_bytes()),
                        HeaderValue::from_bytes(h.value),
                    ) {
                        out.push((n, v));
                    }
                }
                let rest = buf.split_off(len).freeze();
                return Ok((status, out, rest));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "response head too large",
                ));
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

/// Reads the body of a declined upgrade: by Content-Length, or to the end of the connection (de-chunked
/// when chunked). Bounded in size and time; a sandbox that keeps talking gets cut off.
async fn read_error_body(
    upstream: &mut TcpStream,
    headers: &[(HeaderName, HeaderValue)],
    rest: Bytes,
) -> Bytes {
    let header = |name: &HeaderName| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = BytesMut::from(&rest[..]);
    let length = header(&CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()))
        .map(|n| n.min(MAX_ERROR_BODY));
    let chunked = header(&TRANSFER_ENCODING)
        .and_then(|v| {
            v.to_str()
                .ok()
                .map(|s| s.to_ascii_lowercase().contains("chunked"))
        })
        .unwrap_or(false);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if length.is_some_and(|n| body.len() >= n) || body.len() >= MAX_ERROR_BODY {
                break;
            }
            if chunked && body.ends_with(b"0\r\n\r\n") {
                break;
            }
            match upstream.read_buf(&mut body).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    if let Some(n) = length {
        body.truncate(n);
    }
    if chunked {
        return dechunk(&body);
    }
    body.freeze()
}

fn dechunk(mut raw: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    while let Ok(httparse::Status::Complete((start, size))) = httparse::parse_chunk_size(raw) {
        let size = size as usize;
        if size == 0 || raw.len() < start + size {
            break;
        }
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks() {
        assert_eq!(
            &dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")[..],
            b"hello world"
        );
        assert_eq!(&dechunk(b"zz\r\n")[..], b"");
    }
}
