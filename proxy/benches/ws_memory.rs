//! Benchmark 5: proxy memory per idle open WebSocket. The proxy's RSS is read before and after
//! opening 10,000 WebSockets through it (each proven end to end by one echo), and the same is done
//! with nginx in front of the same upstream as the same-run baseline.
//!
//! Client sockets leave from several 127.0.0.x addresses so the ephemeral port range never runs out;
//! the static identity maps all of them to the one bench sandbox, which holds all the connections.
//!
//! Run: `cargo bench -p sandcanary-proxy --bench ws_memory` (env: `WS_MEMORY_CONNS=10000`).
//! Needs permission to raise the open-file limit to 65536 (root, or a high `ulimit -Hn`).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::nginx::Nginx;
use common::proxy::{BENCH_ID, ProxyProcess, SESSION_TOKEN};
use common::{admin, limits, report};
use futures::{SinkExt, StreamExt, TryStreamExt};
use hyper::Method;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Target from issue 2.
const TARGET_KIB_PER_CONN: f64 = 16.0;
/// Client source addresses (127.0.0.1 .. 127.0.0.SOURCES).
const SOURCES: u8 = 4;

type Ws = WebSocketStream<TcpStream>;

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES as usize) as u8))
}

/// Opens one WebSocket from `src` to `dst` and proves the path with one echoed message.
async fn open(src: IpAddr, dst: SocketAddr) -> Result<Ws> {
    let tcp = sandcanary_testkit::connect_from(&src.to_string(), dst)
        .await
        .with_context(|| format!("connect {src} -> {dst}"))?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{dst}/"), tcp, Some(config))
            .await
            .with_context(|| format!("WebSocket handshake {src} -> {dst}"))?;
    ws.send(Message::text("hello")).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == "hello" => Ok(ws),
        other => bail!("no echo from {dst}: {other:?}"),
    }
}

async fn open_many(dst: SocketAddr, n: usize) -> Result<Vec<Ws>> {
    futures::stream::iter(0..n)
        .map(|i| open(source(i), dst))
        .buffer_unordered(128)
        .try_collect()
        .await
}

/// Waits for the allocator and kernel to settle, then reads `rss` a few times and keeps the last.
async fn settled(rss: impl Fn() -> Result<u64>) -> Result<u64> {
    let mut last = 0;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = rss()?;
    }
    Ok(last)
}

struct Measured {
    before_kib: u64,
    after_kib: u64,
    open_secs: f64,
}

impl Measured {
    fn per_conn(&self, n: usize) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) / n as f64
    }
}

async fn measure(
    dst: SocketAddr,
    n: usize,
    rss: impl Fn() -> Result<u64> + Copy,
) -> Result<(Measured, Vec<Ws>)> {
    // One connection first, so the session exists and the data path has run once.
    let first = open(source(0), dst).await?;
    let before_kib = settled(rss).await?;
    let start = Instant::now();
    let mut conns = open_many(dst, n).await?;
    let open_secs = start.elapsed().as_secs_f64();
    let after_kib = settled(rss).await?;
    conns.push(first);
    Ok((
        Measured {
            before_kib,
            after_kib,
            open_secs,
        },
        conns,
    ))
}

async fn open_connections_reported(proxy: &ProxyProcess) -> Result<u64> {
    let (_, body) = admin::call(
        proxy.admin,
        Method::GET,
        &format!("/v1/sessions/{BENCH_ID}"),
        Some(SESSION_TOKEN),
    )
    .await?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    v.get("open_connections")
        .and_then(|c| c.as_u64())
        .context("session has no open_connections")
}

async fn close_all(conns: Vec<Ws>) {
    futures::stream::iter(conns)
        .for_each_concurrent(256, |mut ws| async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
        })
        .await;
}

async fn run() -> Result<()> {
    let wanted: usize = std::env::var("WS_MEMORY_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // Each proxied connection is two descriptors in the proxy and in nginx (one client side, one
    // upstream side), one here and one in the upstream. Children inherit the limit.
    let limit = limits::raise_nofile_best(65_536)?;
    // Leave room for listeners, pipes and the admin API.
    let fit = (limit.saturating_sub(256) / 2) as usize;
    let n = wanted.min(fit);
    if n < wanted {
        println!(
            "ws_memory: NOTE the open-file limit is {limit} and cannot be raised here (no CAP_SYS_RESOURCE); \
             {wanted} connections need {} descriptors in the proxy, so this run opens {n}",
            2 * wanted + 256
        );
    }
    let statics: Vec<String> = (1..=SOURCES)
        .map(|i| format!("127.0.0.{i}={BENCH_ID}"))
        .collect();
    let statics = statics.join(",");
    let proxy = ProxyProcess::start(&[("IDENTITY_STATIC", &statics)]).await?;
    let upstream = proxy.ensure_bench().await?;
    println!(
        "ws_memory: {n} idle WebSockets; proxy {} (pid {}), upstream {upstream}; open-file limit {limit}",
        proxy.data,
        proxy.pid()
    );

    let pid = proxy.pid();
    let (p, conns) = measure(proxy.data, n, || common::proxy::rss_kib(pid)).await?;
    let reported = open_connections_reported(&proxy).await?;
    if reported < n as u64 {
        bail!("the proxy reports {reported} open connections, expected at least {n}");
    }
    close_all(conns).await;

    let nginx = Nginx::start(upstream, 1).await?;
    let (g, conns) = measure(nginx.addr, n, || nginx.rss_kib()).await?;
    close_all(conns).await;

    let (pk, gk) = (p.per_conn(n), g.per_conn(n));
    let row = |name: &str, m: &Measured, k: f64| {
        vec![
            name.to_string(),
            n.to_string(),
            format!("{}", m.before_kib),
            format!("{}", m.after_kib),
            format!("{k:.2}"),
            format!("{:.1}", m.open_secs),
        ]
    };
    report::table(
        "Memory per idle WebSocket (RSS in KiB)",
        &[
            "proxy",
            "connections",
            "RSS before",
            "RSS after",
            "KiB per connection",
            "open time (s)",
        ],
        &[
            row("sandcanary-proxy", &p, pk),
            row("nginx (1 worker)", &g, gk),
        ],
    );
    println!(
        "sandcanary-proxy: {pk:.2} KiB per idle WebSocket, {:.2} x nginx, {:.2} x the 16 KiB target: {}",
        pk / gk,
        pk / TARGET_KIB_PER_CONN,
        report::verdict(pk <= TARGET_KIB_PER_CONN)
    );
    Ok(())
}

fn main() -> Result<()> {
    common::main(run)
}
