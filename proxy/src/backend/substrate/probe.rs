//! The readiness probe through atenet: `HEAD /` with the actor's Host header. RUNNING is reported
//! before a lazily restored workload binds its port, and atenet answers 503 meanwhile.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use crate::backend::Authority;

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The workload answered (any status but 503 and 404).
    Ready(u16),
    /// atenet answered 503: the workload is not listening yet, or no worker is free.
    Unavailable,
    /// atenet answered 404: it does not know the actor (yet, or at all).
    UnknownActor,
    /// No HTTP answer: connection refused, reset, timed out.
    NoAnswer(String),
}

const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(2);

/// One `HEAD /` to the router with `Host: host`, on a fresh connection (no keep-alive: a pooled
/// connection could be routed to a previous actor).
pub async fn probe(router: &Authority, host: &str) -> Probe {
    match tokio::time::timeout(TOTAL_TIMEOUT, head(router, host)).await {
        Ok(Ok(503)) => Probe::Unavailable,
        Ok(Ok(404)) => Probe::UnknownActor,
        Ok(Ok(code)) => Probe::Ready(code),
        Ok(Err(e)) => Probe::NoAnswer(e),
        Err(_) => Probe::NoAnswer(format!(
            "no answer within {}",
            crate::config::duration::format(TOTAL_TIMEOUT)
        )),
    }
}

async fn head(router: &Authority, host: &str) -> Result<u16, String> {
    let stream = tokio::time::timeout(
        DIAL_TIMEOUT,
        tokio::net::TcpStream::connect(router.to_string()),
    )
    .await
    .map_err(|_| format!("dial {router} timed out"))?
    .map_err(|e| format!("dial {router}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake with {router}: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = http::Request::head("/")
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("probe request: {e}"))?;
    let r = send.send_request(req).await;
    driver.abort();
    r.map(|resp| resp.status().as_u16())
        .map_err(|e| format!("HEAD via {router}: {e}"))
}
