//! The stand-in sandbox for pure data-path benchmarks: one port that answers plain HTTP with a small
//! fixed body and echoes every WebSocket message. It follows the contract of
//! `deploy/sandbox/server.js` (binds `PORT` on `HOST`, prints `SANDBOX_READY {...}` once listening),
//! so the proxy's local backend can start it in place of the Chromium sandbox, and measurements show
//! the proxy's cost rather than the browser's.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// Environment variable that turns a bench executable into the upstream.
pub const ROLE_ENV: &str = "PROXYBENCH_ROLE";
pub const ROLE_UPSTREAM: &str = "upstream";

/// The HTTP body every plain request gets (what wrk measures).
pub const HTTP_BODY: &[u8] = b"sandcanary proxybench upstream\n";

/// Reads PORT and HOST like the real sandbox server and serves until killed.
pub fn run_from_env() -> Result<()> {
    let port: u16 = std::env::var("PORT")
        .context("PORT is not set")?
        .parse()
        .context("PORT is not a port number")?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .with_context(|| format!("{host}:{port} is not a socket address"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        println!(
            "SANDBOX_READY {{\"ws\":\"ws://{addr}/\",\"mcp\":null,\"pid\":{}}}",
            std::process::id()
        );
        serve(listener).await
    })
}

/// Accepts connections on `listener` forever.
pub async fn serve(listener: TcpListener) -> Result<()> {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(v) => v,
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let upgrade = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !upgrade {
        return Ok(Response::builder()
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(HTTP_BODY)))
            .expect("static response"));
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::new(Bytes::from_static(
                b"missing Sec-WebSocket-Key\n",
            )))
            .expect("static response"));
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // A small read buffer: the memory benchmark holds 10,000 idle connections here.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        echo(ws).await;
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, HeaderValue::from_static("websocket"))
        .header(CONNECTION, HeaderValue::from_static("Upgrade"))
        .header(
            SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        )
        .body(Full::new(Bytes::new()))
        .expect("static response"))
}

/// Sends every data message back unchanged; tungstenite answers pings and closes by itself.
async fn echo<S>(ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    while let Some(Ok(msg)) = rx.next().await {
        if (msg.is_text() || msg.is_binary()) && tx.send(msg).await.is_err() {
            break;
        }
    }
}
