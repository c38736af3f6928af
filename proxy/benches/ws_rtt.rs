//! Benchmark 1: WebSocket per-message round trip through the proxy vs direct to the same sandbox.
//!
//! One client holds two connections to the same echo upstream, one direct and one through the proxy,
//! and sends one message at a time on each, in alternating blocks so that machine noise hits both
//! alike. The added latency is proxied minus direct, at the median and at p99.
//!
//! Run: `cargo bench -p sandcanary-proxy --bench ws_rtt` (env: `WS_RTT_ROUNDS`, `WS_RTT_BLOCK`).

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use common::proxy::ProxyProcess;
use common::report;
use common::stats::Latencies;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Targets from issue 2.
const TARGET_ADDED_MEDIAN_MS: f64 = 0.1;
const TARGET_ADDED_P99_MS: f64 = 0.5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn connect(addr: std::net::SocketAddr) -> Result<Ws> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), None, true)
        .await
        .with_context(|| format!("WebSocket connect to {addr}"))?;
    Ok(ws)
}

/// Sends one message and waits for its echo; returns the round-trip time.
async fn round_trip(ws: &mut Ws, payload: &Bytes) -> Result<Duration> {
    let start = Instant::now();
    ws.send(Message::Binary(payload.clone())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                let elapsed = start.elapsed();
                if b.len() != payload.len() {
                    bail!("echo of {} bytes came back as {}", payload.len(), b.len());
                }
                return Ok(elapsed);
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => bail!("unexpected message {other:?}"),
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection closed during the benchmark"),
        }
    }
}

async fn block(ws: &mut Ws, payload: &Bytes, n: usize, into: &mut Latencies) -> Result<()> {
    for _ in 0..n {
        into.record(round_trip(ws, payload).await?);
    }
    Ok(())
}

async fn run() -> Result<()> {
    let rounds = env_usize("WS_RTT_ROUNDS", 20);
    let block_len = env_usize("WS_RTT_BLOCK", 500);
    let proxy = ProxyProcess::start(&[]).await?;
    let upstream = proxy.ensure_bench().await?;
    let mut direct = connect(upstream).await?;
    let mut proxied = connect(proxy.data).await?;
    println!(
        "ws_rtt: proxy {} -> upstream {upstream}; {rounds} rounds x {block_len} messages per path and size",
        proxy.data
    );

    let mut rows = Vec::new();
    let mut all_met = true;
    for size in [64usize, 16 * 1024] {
        let payload = Bytes::from(vec![0x5a; size]);
        // Warm-up: connection buffers, allocator, CPU caches.
        let mut scratch = Latencies::new();
        block(&mut direct, &payload, 1000, &mut scratch).await?;
        block(&mut proxied, &payload, 1000, &mut scratch).await?;

        let (mut d, mut p) = (Latencies::new(), Latencies::new());
        for r in 0..rounds {
            if r % 2 == 0 {
                block(&mut direct, &payload, block_len, &mut d).await?;
                block(&mut proxied, &payload, block_len, &mut p).await?;
            } else {
                block(&mut proxied, &payload, block_len, &mut p).await?;
                block(&mut direct, &payload, block_len, &mut d).await?;
            }
        }
        let added_med = p.median_ms() - d.median_ms();
        let added_p99 = p.p99_ms() - d.p99_ms();
        let met = added_med <= TARGET_ADDED_MEDIAN_MS && added_p99 <= TARGET_ADDED_P99_MS;
        all_met &= met;
        rows.push(vec![
            format!("{size} B"),
            d.len().to_string(),
            format!("{:.3}", d.median_ms()),
            format!("{:.3}", p.median_ms()),
            format!("{added_med:+.3}"),
            format!("{:.3}", d.p99_ms()),
            format!("{:.3}", p.p99_ms()),
            format!("{added_p99:+.3}"),
            format!("{:.2}", p.median_ms() / d.median_ms()),
            report::verdict(met),
        ]);
    }
    report::table(
        "WebSocket round trip, proxied vs direct (ms)",
        &[
            "message",
            "samples/path",
            "direct median",
            "proxied median",
            "added median",
            "direct p99",
            "proxied p99",
            "added p99",
            "median ratio",
            "target (added median <= 0.1, p99 <= 0.5)",
        ],
        &rows,
    );
    let _ = direct.close(None).await;
    let _ = proxied.close(None).await;
    if !all_met {
        println!("ws_rtt: target NOT met (see table)");
    }
    Ok(())
}

fn main() -> Result<()> {
    common::main(run)
}
