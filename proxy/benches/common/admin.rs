//! A minimal client for the proxy's admin port (readiness and the session API of
//! docs/session-api.md), one short-lived HTTP/1.1 connection per call.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Sends one request and returns the status and body.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes)> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new()))?)
        .await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Ensures the session `id` (PUT) and returns its WebSocket endpoint, e.g. `127.0.0.1:41235`.
pub async fn ensure(addr: SocketAddr, token: &str, id: &str) -> Result<SocketAddr> {
    let (status, body) = call(
        addr,
        Method::PUT,
        &format!("/v1/sessions/{id}"),
        Some(token),
    )
    .await?;
    if status != StatusCode::OK {
        bail!(
            "PUT /v1/sessions/{id}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("session JSON")?;
    let ep = v
        .get("endpoint")
        .and_then(|e| e.as_str())
        .context("session has no endpoint")?;
    ep.parse()
        .with_context(|| format!("endpoint {ep:?} is not host:port"))
}
