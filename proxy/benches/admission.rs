//! Benchmark 6: what fair admission costs on the uncontended path.
//!
//! Two proxies run in this process on the same instant backend and the same HTTP upstream, one with
//! admission on (MAX_SANDBOXES and TENANT_MAX_CONNECTIONS far above the load) and one with both
//! limits off (the request path skips admission: the same-run baseline). One keep-alive client per
//! proxy sends one request at a time, in alternating blocks so machine noise hits both alike, in
//! two cases: every request to the tenant's live sandbox (`existing`), and every request for a new
//! sandbox (`new`: admission reserves a slot, the backend answers at once).
//!
//! Run: `cargo bench -p sandcanary-proxy --bench admission` (env: `ADMISSION_ROUNDS`, `ADMISSION_BLOCK`).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use bytes::Bytes;
use common::report;
use common::stats::Latencies;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sandcanary_proxy::backend::{Authority, Backend, BackendError, Endpoint};
use sandcanary_proxy::config::admission::RawAdmission;
use sandcanary_proxy::config::{Config, RawConfig, RawIdentity, RawLocal};
use sandcanary_proxy::identity::{Chain, Identity};
use sandcanary_proxy::server::{Running, start_with};

const TOKEN: &str = "admission-bench-token-0123456789";

/// A backend whose every sandbox is the same upstream, ready at once.
struct Instant0(Endpoint);

#[async_trait]
impl Backend for Instant0 {
    fn name(&self) -> &'static str {
        "instant"
    }
    async fn ensure(&self, _id: &str) -> Result<Endpoint, BackendError> {
        Ok(self.0.clone())
    }
    async fn delete(&self, _id: &str) -> Result<(), BackendError> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<String>, BackendError> {
        Ok(vec![])
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn upstream() -> Result<SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn proxy(up: SocketAddr, admission: bool) -> Result<Running> {
    let limits = if admission { "100000" } else { "0" };
    let cfg = Config::from_raw(RawConfig {
        listen_addr: Some("127.0.0.1:0".into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        log_format: Some("text".into()),
        admission: RawAdmission {
            max_sandboxes: Some(limits.into()),
            tenant_max_connections: Some(limits.into()),
            ..Default::default()
        },
        identity: RawIdentity {
            identity: Some("token".into()),
            identity_token: Some(TOKEN.into()),
            ..Default::default()
        },
        local: RawLocal {
            local_sandbox_server: Some(
                concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/sandbox/server.js").into(),
            ),
            local_warm_pool: Some("0".into()),
            local_max_sandboxes: Some("100000".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .context("configuration")?;
    let ep = Endpoint {
        ws: Authority::new("127.0.0.1", up.port()),
        mcp: None,
        host_header: None,
        instance: "instant".into(),
    };
    let identity: Arc<dyn Identity> = Arc::new(Chain::from_config(&cfg).unwrap());
    let running = start_with(cfg, Arc::new(Instant0(ep)), identity).await?;
    if running.admission.is_some() != admission {
        bail!("admission should be {admission}");
    }
    Ok(running)
}

async fn client(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
    tokio::spawn(conn);
    Ok(tx)
}

async fn one(tx: &mut SendRequest<Empty<Bytes>>, id: &str) -> Result<std::time::Duration> {
    let req = hyper::Request::get("/")
        .header("host", "bench")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-sandbox-id", id)
        .body(Empty::new())?;
    let start = Instant::now();
    tx.ready().await?;
    let resp = tx.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    let took = start.elapsed();
    if status != 200 {
        bail!("status {status} for {id}");
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> Result<()> {
    let rounds = env_usize("ADMISSION_ROUNDS", 50);
    let block = env_usize("ADMISSION_BLOCK", 200);
    let up = upstream().await?;
    let on = proxy(up, true).await?;
    let off = proxy(up, false).await?;
    let mut rows = Vec::new();
    for case in ["existing", "new"] {
        let mut c_on = client(on.data_addr).await?;
        let mut c_off = client(off.data_addr).await?;
        // Warm-up: connections pooled, the tenant's sandbox live.
        for _ in 0..block {
            one(&mut c_on, "bench").await?;
            one(&mut c_off, "bench").await?;
        }
        let (mut l_on, mut l_off) = (Latencies::new(), Latencies::new());
        let mut n = 0usize;
        for r in 0..rounds {
            // Alternate which side goes first in each round.
            for side in [r % 2 == 0, r % 2 == 1] {
                let (tx, lat) = if side {
                    (&mut c_on, &mut l_on)
                } else {
                    (&mut c_off, &mut l_off)
                };
                for _ in 0..block {
                    let id = if case == "existing" {
                        "bench".to_string()
                    } else {
                        n += 1;
                        format!("{case}-{n}")
                    };
                    lat.record(one(tx, &id).await?);
                }
            }
        }
        let ratio = |q: f64| l_on.quantile_ms(q) / l_off.quantile_ms(q);
        rows.push(vec![
            case.to_string(),
            l_on.len().to_string(),
            format!("{:.3} / {:.3}", l_on.median_ms(), l_on.p99_ms()),
            format!("{:.3} / {:.3}", l_off.median_ms(), l_off.p99_ms()),
            format!("{:.3}", ratio(0.5)),
            format!("{:.3}", ratio(0.99)),
            format!("{:+.1}", (l_on.median_ms() - l_off.median_ms()) * 1000.0),
        ]);
    }
    report::table(
        "Admission on vs off, uncontended, one request at a time (ms)",
        &[
            "case",
            "requests per side",
            "on median / p99",
            "off median / p99",
            "ratio median",
            "ratio p99",
            "added median (µs)",
        ],
        &rows,
    );
    on.shutdown();
    off.shutdown();
    on.wait().await;
    off.wait().await;
    Ok(())
}
