//! The data path over real sockets: identity, HTTP streaming, WebSocket splicing, bad input.
//! Sandboxes are played by small servers in this file; the backend
//! is scripted so each test controls where a session points.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::RngCore;
use sandcanary_proxy::config::{RawConfig, RawIdentity};
use sandcanary_proxy::identity::{Chain, Identity};
use sandcanary_proxy::server::{Running, start_with};
use sha2::{Digest, Sha256};
use support::{FakeBackend, Step, connect_from, endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

// ---------- sandboxes played by test servers ----------

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: hyper::HeaderMap,
    body_sha: String,
    body_len: usize,
}

/// An HTTP server that records what it receives and answers by path.
async fn http_upstream() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move { Ok::<_, Infallible>(answer(req, log).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// [`http_upstream`] on a runtime of its own, so that a jump of the test's paused clock leaves the
/// upstream's timers (the SSE stream's second event) alone.
fn http_upstream_on_its_own_runtime() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (addr, _) = http_upstream().await;
            tx.send(addr).unwrap();
            std::future::pending::<()>().await
        })
    });
    rx.recv().unwrap()
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(req: Request<Incoming>, log: Arc<Mutex<Vec<Seen>>>) -> Response<TestBody> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body_sha: hex(&Sha256::digest(&body)),
        body_len: body.len(),
    });
    match parts.uri.path() {
        "/sse" => {
            // Event 1 now, event 2 two seconds later: the proxy must not hold event 1 back.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Frame::data(Bytes::from("data: one\n\n")))).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from("data: two\n\n")))).await;
            });
            let stream = tokio_stream_from(rx);
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
        "/big" => {
            let n: usize = parts.uri.query().and_then(|q| q.parse().ok()).unwrap_or(0);
            let data = pattern(n);
            Response::builder()
                .header("x-digest", hex(&Sha256::digest(&data)))
                .body(Full::new(Bytes::from(data)).boxed())
                .unwrap()
        }
        _ => Response::builder()
            .status(201)
            .header("x-upstream", "yes")
            .header("connection", "x-private")
            .header("x-private", "hop")
            .body(Full::new(Bytes::from(format!("echo {} {}", parts.method, parts.uri))).boxed())
            .unwrap(),
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A WebSocket echo server that also records the upgrade request it got.
async fn ws_echo() -> (
    SocketAddr,
    Arc<Mutex<Vec<hyper::HeaderMap>>>,
    Arc<Mutex<Vec<String>>>,
) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (h2, p2) = (heads.clone(), paths.clone());
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let (h3, p3) = (h2.clone(), p2.clone());
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)] // the callback type is tungstenite's
                let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    h3.lock().unwrap().push(req.headers().clone());
                    p3.lock().unwrap().push(req.uri().to_string());
                    Ok(resp)
                };
                let cfg = WebSocketConfig::default()
                    .max_message_size(None)
                    .max_frame_size(None);
                let Ok(mut ws) =
                    tokio_tungstenite::accept_hdr_async_with_config(s, cb, Some(cfg)).await
                else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() || ((m.is_text() || m.is_binary()) && ws.send(m).await.is_err())
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads, paths)
}

/// A raw upgrade server: answers 101, then echoes every byte it receives and records them all.
async fn raw_ws_upstream(received: Arc<Mutex<Vec<u8>>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 65536];
                let head_end = loop {
                    let n = s.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let rest = buf.split_off(head_end);
                received.lock().unwrap().extend_from_slice(&rest);
                let _ = s.write_all(&rest).await;
                loop {
                    let n = match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    received.lock().unwrap().extend_from_slice(&tmp[..n]);
                    if s.write_all(&tmp[..n]).await.is_err() {
                        break;
                    }
                }
                // Client half-closed: keep talking in the other direction, then close.
                let _ = s.write_all(b"after-eof").await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

// ---------- the proxy ----------

async fn proxy(backend: Arc<FakeBackend>, raw: RawConfig) -> Running {
    support::init_tracing();
    let cfg = support::config(raw);
    let identity: Arc<dyn Identity> = Arc::new(Chain::from_config(&cfg).unwrap());
    start_with(cfg, backend, identity).await.unwrap()
}

async fn default_proxy(backend: Arc<FakeBackend>) -> Running {
    proxy(backend, support::raw_config()).await
}

/// One HTTP/1.1 request from a given source address; returns status, headers and the whole body.
async fn request_from(
    source: &str,
    to: SocketAddr,
    req: Request<Full<Bytes>>,
) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let s = connect_from(source, to).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tx.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "proxy.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn ws_connect_from(
    source: &str,
    to: SocketAddr,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let s = connect_from(source, to).await;
    let cfg = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (ws, resp) =
        tokio_tungstenite::client_async_with_config(format!("ws://proxy.test{path}"), s, Some(cfg))
            .await
            .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

// ---------- identity ----------

#[tokio::test]
async fn unknown_callers_get_a_fast_403_and_no_ensure() {
    let (up, _) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b.clone()).await;
    let started = Instant::now();
    let mut req = get("/anything");
    // Forwarding headers name a known pod; identity must ignore them.
    req.headers_mut()
        .insert("x-forwarded-for", "127.0.0.2".parse().unwrap());
    req.headers_mut()
        .insert("forwarded", "for=127.0.0.2".parse().unwrap());
    let (status, headers, body) = request_from("127.0.0.1", p.data_addr, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        &body[..],
        b"client pod 127.0.0.1 not labelled with playwright-id\n"
    );
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(b.ensures.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_403_names_the_configured_label_key() {
    let (up, _) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = proxy(
        b,
        RawConfig {
            playwright_label_key: Some("example.com/pw".into()),
            ..support::raw_config()
        },
    )
    .await;
    let (status, _, body) = request_from("127.0.0.1", p.data_addr, get("/")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        &body[..],
        b"client pod 127.0.0.1 not labelled with example.com/pw\n"
    );
}

#[tokio::test]
async fn token_identity_names_the_id_and_credentials_never_reach_the_sandbox() {
    let (up, seen) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = proxy(
        b.clone(),
        RawConfig {
            identity: RawIdentity {
                identity: Some("token".into()),
                identity_static: None,
                identity_token: Some(support::IDENTITY_TOKEN.into()),
                ..support::raw_config().identity
            },
            ..support::raw_config()
        },
    )
    .await;
    let mut req = get("/mcp");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", support::IDENTITY_TOKEN)
            .parse()
            .unwrap(),
    );
    req.headers_mut()
        .insert("x-sandbox-id", "bench-7".parse().unwrap());
    let (status, _, _) = request_from("127.0.0.1", p.data_addr, req).await;
    assert_eq!(status, 201);
    assert!(b.calls().contains(&support::Call::Ensure("bench-7".into())));
    let h = seen.lock().unwrap()[0].headers.clone();
    assert!(h.get("authorization").is_none());
    assert!(h.get("x-sandbox-id").is_none());

    let mut bad = get("/mcp");
    bad.headers_mut().insert(
        "authorization",
        "Bearer not-the-token-at-all".parse().unwrap(),
    );
    bad.headers_mut()
        .insert("x-sandbox-id", "bench-8".parse().unwrap());
    let (status, _, body) = request_from("127.0.0.1", p.data_addr, bad).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(&body[..], b"invalid identity token\n");
}

// ---------- HTTP ----------

#[tokio::test]
async fn http_requests_and_responses_pass_through() {
    let (up, seen) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b).await;
    let body = Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"method\":\"initialize\"}");
    let req = Request::post("/mcp/path?x=1&y=%20z")
        .header("host", "proxy.test")
        .header("mcp-session-id", "abc123")
        .header("x-forwarded-for", "10.1.1.1")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must-go")
        .header("origin", "http://evil.example")
        .body(Full::new(body.clone()))
        .unwrap();
    let (status, headers, resp_body) = request_from("127.0.0.2", p.data_addr, req).await;
    assert_eq!(status, 201);
    assert_eq!(headers["x-upstream"], "yes");
    assert!(
        headers.get("x-private").is_none(),
        "hop-by-hop response headers are removed"
    );
    assert_eq!(&resp_body[..], b"echo POST /mcp/path?x=1&y=%20z");
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.method, "POST");
    assert_eq!(s.uri, "/mcp/path?x=1&y=%20z");
    assert_eq!(s.headers["host"], up.to_string());
    assert_eq!(s.headers["x-forwarded-for"], "10.1.1.1, 127.0.0.2");
    assert_eq!(s.headers["mcp-session-id"], "abc123");
    assert!(s.headers.get("x-hop").is_none());
    assert!(s.headers.get("origin").is_none());
    assert_eq!(s.body_sha, hex(&Sha256::digest(&body)));
}

#[tokio::test]
async fn sse_events_are_flushed_at_once() {
    let (up, _) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b).await;
    let s = connect_from("127.0.0.2", p.data_addr).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let start = Instant::now();
    let resp = tx.send_request(get("/sse")).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let t1 = start.elapsed();
    assert_eq!(&first[..], b"data: one\n\n");
    assert!(
        t1 < Duration::from_millis(1000),
        "event 1 held back for {t1:?}"
    );
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&second[..], b"data: two\n\n");
    assert!(start.elapsed() >= Duration::from_millis(1900));
}

#[tokio::test]
async fn http_goes_to_the_mcp_port_and_websockets_to_the_ws_port() {
    let (mcp, seen) = http_upstream().await;
    let (ws, heads, _) = ws_echo().await;
    let b = FakeBackend::new(endpoint(ws, Some(mcp), "sb"));
    let p = default_proxy(b).await;
    let (status, _, _) = request_from("127.0.0.2", p.data_addr, get("/mcp")).await;
    assert_eq!(status, 201);
    assert_eq!(seen.lock().unwrap().len(), 1);
    let mut c = ws_connect_from("127.0.0.2", p.data_addr, "/").await;
    c.send(Message::text("hi")).await.unwrap();
    assert_eq!(c.next().await.unwrap().unwrap(), Message::text("hi"));
    assert_eq!(heads.lock().unwrap().len(), 1);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the upgrade did not go to the MCP port"
    );
}

#[tokio::test]
async fn fifty_megabyte_bodies_stream_both_ways() {
    let (up, seen) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b).await;
    let n = 50 * 1024 * 1024;
    let data = Bytes::from(pattern(n));
    let req = Request::put("/upload")
        .header("host", "x")
        .body(Full::new(data.clone()))
        .unwrap();
    let (status, _, _) = request_from("127.0.0.2", p.data_addr, req).await;
    assert_eq!(status, 201);
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.body_len, n);
    assert_eq!(s.body_sha, hex(&Sha256::digest(&data)));
    let (status, headers, body) =
        request_from("127.0.0.2", p.data_addr, get(&format!("/big?{n}"))).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), n);
    assert_eq!(
        headers["x-digest"].to_str().unwrap(),
        hex(&Sha256::digest(&body))
    );
}

#[tokio::test]
async fn a_refusing_sandbox_is_ensured_again_once_then_502() {
    // A port with nothing behind it.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let b = FakeBackend::new(endpoint(dead, None, "dead"));
    let p = default_proxy(b.clone()).await;
    let (status, _, body) = request_from("127.0.0.2", p.data_addr, get("/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.starts_with(b"upstream error: "), "{body:?}");
    assert_eq!(b.ensures.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(p.metrics.invalidations.get(), 1);
}

#[tokio::test]
async fn a_replaced_sandbox_is_found_after_invalidation() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (up, _) = http_upstream().await;
    let (ws, _, _) = ws_echo().await;
    let b = FakeBackend::new(endpoint(up, None, "live"));
    b.push(Step::Ok(endpoint(dead, None, "dead")));
    let p = default_proxy(b.clone()).await;
    let (status, _, _) = request_from("127.0.0.2", p.data_addr, get("/")).await;
    assert_eq!(status, 201);
    // The same for a WebSocket: the first endpoint refuses, the re-ensure gives a live one.
    b.push(Step::Ok(endpoint(dead, None, "dead")));
    b.push(Step::Ok(endpoint(ws, None, "live-ws")));
    let mut c = ws_connect_from("127.0.0.3", p.data_addr, "/").await;
    c.send(Message::text("ok")).await.unwrap();
    assert_eq!(c.next().await.unwrap().unwrap(), Message::text("ok"));
}

// ---------- WebSocket ----------

#[tokio::test]
async fn upgrade_requests_keep_path_query_and_websocket_headers() {
    let (ws, heads, paths) = ws_echo().await;
    let b = FakeBackend::new(endpoint(ws, None, "sb"));
    let p = default_proxy(b).await;
    // Connection split over two lines, mixed case: still an upgrade (reading only the first line
    // misses it).
    let mut s = connect_from("127.0.0.2", p.data_addr).await;
    s.write_all(
        b"GET /custom-ws-path?x=1 HTTP/1.1\r\nHost: proxy.test\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n\
          Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Protocol: chat\r\nUser-Agent: Playwright/1.65.1 (x64; debian 12) node/20.20\r\n\
          Origin: http://127.0.0.1\r\nX-Forwarded-For: 10.9.9.9\r\nx-playwright-browser: chromium\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let h = heads.lock().unwrap()[0].clone();
    assert_eq!(paths.lock().unwrap()[0], "/custom-ws-path?x=1");
    assert_eq!(h["host"], ws.to_string());
    assert_eq!(h["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(h["sec-websocket-protocol"], "chat");
    assert_eq!(
        h["user-agent"],
        "Playwright/1.65.1 (x64; debian 12) node/20.20"
    );
    assert_eq!(h["x-playwright-browser"], "chromium");
    assert_eq!(h["x-forwarded-for"], "10.9.9.9, 127.0.0.2");
    assert!(
        h.get("origin").is_none(),
        "Origin is dropped for Chromium's DevTools endpoint"
    );
}

#[tokio::test]
async fn websocket_messages_arrive_byte_exact_both_ways() {
    let (ws, _, _) = ws_echo().await;
    let b = FakeBackend::new(endpoint(ws, None, "sb"));
    let p = default_proxy(b).await;
    let mut c = ws_connect_from("127.0.0.2", p.data_addr, "/").await;
    let mut rng = rand::rng();
    let mut sent = Sha256::new();
    let mut got = Sha256::new();
    for size in [0usize, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20] {
        let mut data = vec![0u8; size];
        rng.fill_bytes(&mut data);
        sent.update(&data);
        c.send(Message::binary(data)).await.unwrap();
        match c.next().await.unwrap().unwrap() {
            Message::Binary(d) => got.update(&d),
            other => panic!("unexpected {other:?}"),
        }
        let text: String = (0..size.min(1 << 20))
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        sent.update(text.as_bytes());
        c.send(Message::text(text)).await.unwrap();
        match c.next().await.unwrap().unwrap() {
            Message::Text(t) => got.update(t.as_bytes()),
            other => panic!("unexpected {other:?}"),
        }
    }
    c.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    match c.next().await.unwrap().unwrap() {
        Message::Pong(d) => assert_eq!(&d[..], b"p"),
        other => panic!("expected pong, got {other:?}"),
    }
    assert_eq!(sent.finalize(), got.finalize());
    c.close(None).await.unwrap();
}

#[tokio::test]
async fn raw_bytes_after_the_upgrade_are_spliced_untouched_and_half_close_works() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let up = raw_ws_upstream(received.clone()).await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b).await;
    let mut s = connect_from("127.0.0.2", p.data_addr).await;
    // Bytes pipelined right behind the upgrade request, before any 101.
    let mut first =
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec();
    first.extend_from_slice(b"PIPELINED");
    s.write_all(&first).await.unwrap();
    // Random bytes shaped like fragmented frames or not: the proxy must not care.
    let mut payload = vec![0u8; 4 << 20];
    rand::rng().fill_bytes(&mut payload);
    let (mut r, mut w) = s.into_split();
    let to_send = payload.clone();
    let writer = tokio::spawn(async move {
        for chunk in to_send.chunks(100_003) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap(); // half-close: we are done sending
        w
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    let _w = writer.await.unwrap();
    let head_end = back.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let echoed = &back[head_end..];
    let mut expected = b"PIPELINED".to_vec();
    expected.extend_from_slice(&payload);
    assert_eq!(
        &received.lock().unwrap()[..],
        &expected[..],
        "upstream got the exact bytes"
    );
    let mut expected_back = expected.clone();
    expected_back.extend_from_slice(b"after-eof");
    assert_eq!(echoed.len(), expected_back.len());
    assert!(
        echoed == &expected_back[..],
        "client got the exact bytes, and data sent after its FIN"
    );
}

#[tokio::test]
async fn a_declined_upgrade_reaches_the_client_unchanged() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 428 Precondition Required\r\nContent-Type: text/plain\r\nX-Why: version\r\n\r\nPlaywright version mismatch")
                    .await;
            });
        }
    });
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b).await;
    let req = Request::get("/")
        .header("host", "x")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = request_from("127.0.0.2", p.data_addr, req).await;
    assert_eq!(status.as_u16(), 428);
    assert_eq!(headers["x-why"], "version");
    assert_eq!(&body[..], b"Playwright version mismatch");
}

/// A sandbox that reads one request head, writes `answer` in one go, then `then` after a moment, and
/// hangs up after another.
async fn scripted_ws_upstream(answer: Vec<u8>, then: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&answer).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = s.write_all(then).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
    });
    up
}

async fn upgrade_through(p: &Running) -> Vec<u8> {
    let mut s = connect_from("127.0.0.2", p.data_addr).await;
    // `close`, so that the proxy ends the connection after a refusal and the read below ends.
    s.write_all(
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn sandbox_answers_keep_their_bytes_and_hostile_ones_are_502s() {
    // Bytes the sandbox sends in the same packet as its 101, and later: all reach the client.
    let up = scripted_ws_upstream(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Extra: a\r\nX-Extra: b\r\n\r\n\x81\x02hi"
            .to_vec(),
        b"\x81\x03bye",
    )
    .await;
    let p = default_proxy(FakeBackend::new(endpoint(up, None, "sb"))).await;
    let out = upgrade_through(&p).await;
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("x-extra: a\r\nx-extra: b\r\n"), "{head}");
    assert_eq!(&out[head_end..], b"\x81\x02hi\x81\x03bye");

    // A chunked refusal is relayed de-chunked, with its status and headers.
    let up = scripted_ws_upstream(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-Why: gone\r\n\r\n5\r\nhello\r\n"
            .to_vec(),
        b"6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    let p = default_proxy(FakeBackend::new(endpoint(up, None, "sb"))).await;
    let req = Request::get("/")
        .header("host", "x")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = request_from("127.0.0.2", p.data_addr, req).await;
    assert_eq!(status.as_u16(), 404);
    assert_eq!(headers["x-why"], "gone");
    assert_eq!(&body[..], b"hello world");

    // A Content-Length refusal: exactly that many bytes, whatever follows.
    let up = scripted_ws_upstream(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad".to_vec(),
        b"TRAILING GARBAGE",
    )
    .await;
    let p = default_proxy(FakeBackend::new(endpoint(up, None, "sb"))).await;
    let out = String::from_utf8_lossy(&upgrade_through(&p).await).to_string();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.ends_with("\r\n\r\nbad"), "{out}");

    // Garbage, an oversized head, and silence before any answer: a 502 each, and the proxy serves on.
    let huge = format!(
        "HTTP/1.1 101 Switching Protocols\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    for answer in [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(),
        huge.into_bytes(),
        Vec::new(),
    ] {
        let up = scripted_ws_upstream(answer, b"").await;
        let p = default_proxy(FakeBackend::new(endpoint(up, None, "sb"))).await;
        let out = String::from_utf8_lossy(&upgrade_through(&p).await).to_string();
        assert!(out.starts_with("HTTP/1.1 502"), "{out}");
        assert!(out.contains("backend handshake failed: "), "{out}");
    }
}

#[tokio::test]
async fn an_unreachable_websocket_sandbox_is_a_502() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let b = FakeBackend::new(endpoint(dead, None, "dead"));
    let p = default_proxy(b).await;
    let req = Request::get("/")
        .header("host", "x")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = request_from("127.0.0.2", p.data_addr, req).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.starts_with(b"backend dial failed: "), "{body:?}");
}

/// Moves the clock `by` forward (tokio's, paused for the jump only): every session not in use
/// becomes idle that long, while the sockets keep running on real time.
async fn idle_for(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test]
async fn open_websockets_hold_their_session_and_a_thousand_cycles_leak_nothing() {
    let (ws, _, _) = ws_echo().await;
    let b = FakeBackend::new(endpoint(ws, None, "sb"));
    let p = default_proxy(b.clone()).await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(ws_connect_from("127.0.0.2", p.data_addr, "/").await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.metrics.websocket_connections.get(), 5);
    assert_eq!(p.sessions.info("tenant-2").unwrap().open_connections, 5);
    idle_for(Duration::from_secs(3600)).await;
    p.sessions.reap_once();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.deletes.load(std::sync::atomic::Ordering::SeqCst), 0);
    for mut c in open {
        c.close(None).await.unwrap();
        while c.next().await.is_some() {}
    }

    // Warm up, then count descriptors around 1,000 open/close cycles.
    let mut c = ws_connect_from("127.0.0.3", p.data_addr, "/").await;
    c.close(None).await.unwrap();
    while c.next().await.is_some() {}
    // A client that keeps its end open after the sandbox closed holds the half-open splice: close it.
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = open_fds();
    for i in 0..1000 {
        let mut c = ws_connect_from("127.0.0.3", p.data_addr, "/").await;
        if i % 2 == 0 {
            c.send(Message::text("x")).await.unwrap();
            c.next().await.unwrap().unwrap();
            c.close(None).await.unwrap();
            while c.next().await.is_some() {}
        } else {
            drop(c); // abrupt close
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = |p: &Running| {
        p.metrics.websocket_connections.get() != 0
            || p.sessions.info("tenant-3").unwrap().open_connections != 0
    };
    while (busy(&p) || open_fds() > before + 4) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        p.metrics.websocket_connections.get(),
        0,
        "{:?}",
        p.sessions.list()
    );
    let m = p.metrics.render();
    assert_eq!(
        p.sessions.info("tenant-3").unwrap().open_connections,
        0,
        "{m}"
    );
    let after = open_fds();
    assert!(after <= before + 4, "fds before {before}, after {after}");
}

// ---------- admin and bad input ----------

#[tokio::test]
async fn the_data_port_has_no_reserved_paths() {
    let (up, seen) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b).await;
    let (status, _, body) = request_from("127.0.0.2", p.data_addr, get("/healthz")).await;
    assert_eq!(status, 201);
    assert_eq!(&body[..], b"echo GET /healthz");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn admin_port_serves_health_metrics_and_an_authenticated_session_api() {
    let (up, _) = http_upstream().await;
    let b = FakeBackend::new(endpoint(up, None, "sb-1"));
    let p = default_proxy(b.clone()).await;
    let a = p.admin_addr;
    let (s, _, body) = request_from("127.0.0.1", a, get("/healthz")).await;
    assert_eq!((s.as_u16(), &body[..]), (200, &b"ok"[..]));
    let (s, _, body) = request_from("127.0.0.1", a, get("/readyz")).await;
    assert_eq!((s.as_u16(), &body[..]), (200, &b"ok"[..]));
    request_from("127.0.0.2", p.data_addr, get("/")).await;
    let (s, _, body) = request_from("127.0.0.1", a, get("/metrics")).await;
    assert_eq!(s, 200);
    let text = String::from_utf8_lossy(&body);
    for line in [
        "sandcanary_sessions 1",
        "sandcanary_ensure_duration_seconds_count{result=\"ok\"} 1",
        "sandcanary_ensures_total{result=\"ok\"} 1",
        "sandcanary_ensures_total{result=\"error\"} 0",
        "sandcanary_websocket_connections 0",
        "sandcanary_http_streams 0",
        "sandcanary_requests_total{protocol=\"http\",status=\"201\"} 1",
        "sandcanary_upstream_errors_total{kind=\"dial\"} 0",
        "sandcanary_identity_failures_total{kind=\"unknown\"} 0",
        "sandcanary_reaps_total{result=\"ok\"} 0",
        "sandcanary_invalidations_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    let (s, _, _) = request_from("127.0.0.1", a, get("/v1/sessions")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let auth = |r: Request<Full<Bytes>>| {
        let (mut parts, body) = r.into_parts();
        parts.headers.insert(
            "authorization",
            format!("Bearer {}", support::SESSION_TOKEN)
                .parse()
                .unwrap(),
        );
        Request::from_parts(parts, body)
    };
    let (s, _, body) = request_from("127.0.0.1", a, auth(get("/v1/sessions"))).await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["sessions"][0]["id"], "tenant-2");
    assert_eq!(v["sessions"][0]["sandbox"], "sb-1");
    assert_eq!(v["sessions"][0]["state"], "ready");
    let put = Request::put("/v1/sessions/made-by-api")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (s, _, body) = request_from("127.0.0.1", a, auth(put)).await;
    assert_eq!(s, 200, "{body:?}");
    let del = Request::delete("/v1/sessions/made-by-api")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (s, _, _) = request_from("127.0.0.1", a, auth(del)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(
        b.calls()
            .contains(&support::Call::Delete("made-by-api".into()))
    );
    let bad = Request::put("/v1/sessions/bad%20id")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (s, _, _) = request_from("127.0.0.1", a, auth(bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let missing = Request::post("/v1/sessions/nobody/suspend")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (s, _, _) = request_from("127.0.0.1", a, auth(missing)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hostile_clients_get_errors_and_the_proxy_keeps_serving() {
    let (up, _) = http_upstream().await;
    let (ws, _, _) = ws_echo().await;
    let b = FakeBackend::new(endpoint(ws, Some(up), "sb"));
    b.script.lock().unwrap().ensure.push_back(Step::Slow(
        Duration::from_millis(500),
        endpoint(ws, Some(up), "sb"),
    ));
    let p = default_proxy(b.clone()).await;

    // A client that disconnects while its sandbox is being ensured.
    let mut s = connect_from("127.0.0.2", p.data_addr).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);

    // Garbage instead of HTTP.
    let mut s = connect_from("127.0.0.2", p.data_addr).await;
    s.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );

    // A malformed upgrade (no key, bogus version) still goes to the sandbox, which declines it.
    let mut s = connect_from("127.0.0.2", p.data_addr).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    // This test sandbox hangs up on a bad handshake (a 502 from us); a Playwright server answers 400.
    assert!(
        head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 502"),
        "{head}"
    );

    // An oversized header block.
    let mut s = connect_from("127.0.0.2", p.data_addr).await;
    let big = "a".repeat(200 * 1024);
    let _ = s
        .write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&out[..out.len().min(80)])
    );

    // Still serving, and the abandoned ensure was shared rather than repeated.
    let (status, _, _) = request_from("127.0.0.2", p.data_addr, get("/")).await;
    assert_eq!(status, 201);
    assert_eq!(b.ensures.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_drains_http_and_closes_websockets_after_their_grace() {
    let (up, _) = http_upstream().await;
    let (ws, _, _) = ws_echo().await;
    let b = FakeBackend::new(endpoint(ws, Some(up), "sb"));
    let p = proxy(
        b,
        RawConfig {
            ws_shutdown_grace: Some("1s".into()),
            ..support::raw_config()
        },
    )
    .await;
    let data = p.data_addr;
    let mut c = ws_connect_from("127.0.0.2", data, "/").await;
    // An SSE response in flight when the signal comes completes.
    let s = connect_from("127.0.0.3", data).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tx.send_request(get("/sse")).await.unwrap();
    let started = Instant::now();
    p.shutdown();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"data: one\n\ndata: two\n\n");
    // The WebSocket works during its grace, then is closed.
    c.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        c.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "websocket was not closed after the grace period"
    );
    p.wait().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        TcpStream::connect(data).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn a_running_http_stream_keeps_its_sandbox_from_the_reaper() {
    let up = http_upstream_on_its_own_runtime();
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b.clone()).await;
    let s = connect_from("127.0.0.2", p.data_addr).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tx.send_request(get("/sse")).await.unwrap();
    let mut body = resp.into_body();
    body.frame().await.unwrap().unwrap();
    // The stream is older than any IDLE_TTL now, but still running.
    idle_for(Duration::from_secs(3600)).await;
    p.sessions.reap_once();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.deletes.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(p.metrics.http_streams.get(), 1);
    assert_eq!(p.sessions.info("tenant-2").unwrap().open_connections, 1);
    body.frame().await.unwrap().unwrap();
    assert!(body.frame().await.is_none());
    drop(body);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(p.sessions.info("tenant-2").unwrap().open_connections, 0);
    assert_eq!(p.metrics.http_streams.get(), 0);
    idle_for(Duration::from_secs(3600)).await;
    p.sessions.reap_once();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.deletes.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    // An upstream that counts the connections it accepts.
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"0123456789"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = default_proxy(b).await;
    let s = connect_from("127.0.0.2", p.data_addr).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..50 {
        tx.ready().await.unwrap();
        let resp = tx.send_request(get("/")).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"0123456789");
    }
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        n <= 2,
        "50 sequential requests opened {n} upstream connections"
    );
}
