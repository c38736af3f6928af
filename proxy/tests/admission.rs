//! Fair admission at capacity over real sockets with a scripted backend (issue #14 part 1): the
//! round-robin queue, its limits and their answers, per-tenant connections, disconnects, leaks.
//! The same with real Chromium is `admission_local.rs`; with a cluster backend `kube_admission.rs`.

mod admission_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use admission_support::{Refusal, assert_fair, burst, close, echo, open_fds, wait_until, ws_open};
use futures::{SinkExt, StreamExt};
use sandcanary_proxy::config::admission::RawAdmission;
use sandcanary_proxy::config::{Config, RawConfig, RawIdentity};
use sandcanary_proxy::identity::{Chain, Identity};
use sandcanary_proxy::server::{Running, start_with};
use support::{Call, FakeBackend, connect_from, endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A WebSocket echo sandbox.
async fn ws_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() || (m.is_text() && ws.send(m).await.is_err()) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Token identity from every source address: the tenant is the address, the id is the header.
fn raw(max: &str, queue: &str, timeout: &str, per_tenant: &str) -> RawConfig {
    RawConfig {
        admission: RawAdmission {
            max_sandboxes: Some(max.into()),
            admission_queue_length: Some(queue.into()),
            admission_timeout: Some(timeout.into()),
            tenant_max_connections: Some(per_tenant.into()),
        },
        identity: RawIdentity {
            identity: Some("token".into()),
            identity_static: None,
            identity_token: Some(support::IDENTITY_TOKEN.into()),
            ..support::raw_config().identity
        },
        ..support::raw_config()
    }
}

async fn proxy(backend: Arc<FakeBackend>, raw: RawConfig) -> Running {
    support::init_tracing();
    let cfg = support::config(raw);
    let identity: Arc<dyn Identity> = Arc::new(Chain::from_config(&cfg).unwrap());
    start_with(cfg, backend, identity).await.unwrap()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn metric(p: &Running, line: &str) -> bool {
    p.metrics.render().lines().any(|l| l == line)
}

fn ensured(b: &FakeBackend) -> Vec<String> {
    b.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Ensure(id) => Some(id),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tenants_capacity_two_one_tenant_bursts_ten_the_others_are_served_in_turn() {
    let up = ws_echo().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = proxy(
        b.clone(),
        RawConfig {
            idle_ttl: Some("300ms".into()),
            idle_check_interval: Some("100ms".into()),
            ..raw("2", "64", "20s", "0")
        },
    )
    .await;
    let a = p.admission.clone().expect("admission on");
    let (fds0, tasks0) = (open_fds(), alive_tasks());
    let served = burst(p.data_addr, a.clone(), true, Duration::from_secs(30)).await;
    assert_fair(&served);
    assert_eq!(ensured(&b).len(), 12);

    assert!(metric(
        &p,
        "sandcanary_admissions_total{path=\"immediate\"} 2"
    ));
    assert!(metric(
        &p,
        "sandcanary_admissions_total{path=\"queued\"} 10"
    ));
    assert!(metric(
        &p,
        "sandcanary_admission_wait_seconds_count{result=\"admitted\"} 10"
    ));

    // Nothing left behind: queue, connection counts, sessions (reaped), sockets, tasks.
    wait_until("every session reaped", Duration::from_secs(10), || {
        p.sessions.list().is_empty()
    })
    .await;
    assert_eq!(a.queued(), 0);
    assert_eq!(a.connections(), 0);
    assert!(metric(&p, "sandcanary_admission_queue_length 0"));
    wait_until("sockets closed", Duration::from_secs(5), || {
        open_fds() <= fds0
    })
    .await;
    wait_until("tasks ended", Duration::from_secs(5), || {
        alive_tasks() <= tasks0
    })
    .await;
    p.shutdown();
    p.wait().await;
}

#[tokio::test]
async fn a_queued_client_that_disconnects_leaves_the_queue() {
    let up = ws_echo().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = proxy(b.clone(), raw("1", "64", "30s", "0")).await;
    let a = p.admission.clone().unwrap();
    let mut first = ws_open("127.0.0.2", p.data_addr, "a-0").await.unwrap();
    echo(&mut first).await;

    let mut s = connect_from("127.0.0.3", p.data_addr).await;
    s.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {}\r\nX-Sandbox-Id: b-0\r\n\r\n",
            support::IDENTITY_TOKEN
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    wait_until("B queued", Duration::from_secs(5), || a.queued() == 1).await;
    drop(s);
    wait_until("B gone from the queue", Duration::from_secs(2), || {
        a.queued() == 0
    })
    .await;
    assert!(metric(&p, "sandcanary_admission_queue_length 0"));
    assert!(metric(
        &p,
        "sandcanary_admission_wait_seconds_count{result=\"gone\"} 1"
    ));
    // The slot comes free: nobody is waiting for it, so B's sandbox is never made.
    p.sessions.delete("a-0").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ensured(&b), ["a-0"]);
    assert_eq!(
        a.connections(),
        0,
        "a refused or gone request holds no place"
    );
    drop(first);
}

/// One HTTP request as tenant `source` for sandbox `id`: status, Retry-After, body.
async fn get(source: &str, to: SocketAddr, id: &str) -> Refusal {
    let mut s = connect_from(source, to).await;
    s.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nX-Sandbox-Id: {id}\r\n\r\n",
            support::IDENTITY_TOKEN
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Refusal {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        retry_after: head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_string)
        }),
        body: body.to_string(),
    }
}

#[tokio::test]
async fn a_full_queue_a_timeout_and_an_evicted_waiter_say_which_limit_was_hit() {
    let up = ws_echo().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = proxy(b.clone(), raw("1", "2", "1s", "0")).await;
    let a = p.admission.clone().unwrap();
    let addr = p.data_addr;
    // a-0 takes the only slot (the session stays: IDLE_TTL is 10m).
    let _ = get("127.0.0.2", addr, "a-0").await;
    let a1 = tokio::spawn(get("127.0.0.2", addr, "a-1"));
    wait_until("a-1 queued", Duration::from_secs(5), || a.queued() == 1).await;
    let a2 = tokio::spawn(get("127.0.0.2", addr, "a-2"));
    wait_until("a-2 queued", Duration::from_secs(5), || a.queued() == 2).await;

    // Full, and A is the busiest tenant: A's third waiter is refused at once.
    let r = get("127.0.0.2", addr, "a-3").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.body
            .contains("admission queue full: ADMISSION_QUEUE_LENGTH=2")
            && r.body.contains("MAX_SANDBOXES=1"),
        "{r:?}"
    );
    assert_eq!(r.retry_after.as_deref(), Some("1"));

    // B has nothing queued: A's newest waiter makes room for it.
    let b0 = tokio::spawn(get("127.0.0.3", addr, "b-0"));
    let r = a2.await.unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("its newest made room"), "{r:?}");
    assert_eq!(a.queued(), 2);

    // Nothing frees the slot: both waiters time out after ADMISSION_TIMEOUT.
    for r in [a1.await.unwrap(), b0.await.unwrap()] {
        assert_eq!(r.status, 503, "{r:?}");
        assert!(
            r.body.contains(
                "no sandbox came free within ADMISSION_TIMEOUT=1s (MAX_SANDBOXES=1 in use)"
            ),
            "{r:?}"
        );
        assert!(r.retry_after.is_some());
    }
    assert_eq!(ensured(&b), ["a-0"]);
    for (reason, n) in [("queue_full", 1), ("evicted", 1), ("timeout", 2)] {
        let line = format!("sandcanary_admission_rejections_total{{reason=\"{reason}\"}} {n}");
        assert!(metric(&p, &line), "{line}\n{}", p.metrics.render());
    }
    // A request for the live sandbox never waits.
    let r = get("127.0.0.3", addr, "a-0").await;
    assert_ne!(r.status, 503, "{r:?}");
    assert!(metric(
        &p,
        "sandcanary_admissions_total{path=\"existing\"} 1"
    ));
    assert_eq!(a.queued(), 0);
    assert_eq!(a.connections(), 0);
}

#[tokio::test]
async fn each_tenant_has_at_most_its_connections_and_gets_429_beyond() {
    let up = ws_echo().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = proxy(b.clone(), raw("0", "64", "30s", "2")).await;
    let a = p.admission.clone().unwrap();
    let addr = p.data_addr;
    let mut one = ws_open("127.0.0.2", addr, "a-0").await.unwrap();
    let mut two = ws_open("127.0.0.2", addr, "a-1").await.unwrap();
    echo(&mut one).await;
    echo(&mut two).await;
    let r = ws_open("127.0.0.2", addr, "a-2").await.unwrap_err();
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    assert!(
        r.body
            .contains("tenant \"127.0.0.2\" already has TENANT_MAX_CONNECTIONS=2 connections open"),
        "{r:?}"
    );
    // An HTTP request counts as well, and so is refused.
    assert_eq!(get("127.0.0.2", addr, "a-0").await.status, 429);
    // Another tenant is not affected.
    let mut other = ws_open("127.0.0.3", addr, "b-0").await.unwrap();
    echo(&mut other).await;
    // A closed WebSocket gives its place back.
    close(one).await;
    wait_until("A's place back", Duration::from_secs(5), || {
        a.connections() == 2
    })
    .await;
    let mut three = ws_open("127.0.0.2", addr, "a-2").await.unwrap();
    echo(&mut three).await;
    assert!(metric(
        &p,
        "sandcanary_admission_rejections_total{reason=\"tenant_connections\"} 2"
    ));
    assert_eq!(ensured(&b), ["a-0", "a-1", "b-0", "a-2"]);
}

#[tokio::test]
async fn the_session_api_waits_for_a_slot_too() {
    let up = ws_echo().await;
    let b = FakeBackend::new(endpoint(up, None, "sb"));
    let p = proxy(b.clone(), raw("1", "4", "500ms", "0")).await;
    let put = |id: &str| {
        let id = id.to_string();
        let admin = p.admin_addr;
        async move {
            let mut s = connect_from("127.0.0.1", admin).await;
            s.write_all(
                format!(
                    "PUT /v1/sessions/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\nAuthorization: Bearer {}\r\n\r\n",
                    support::SESSION_TOKEN
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let r = put("s-1").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = put("s-2").await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 1"), "{r}");
    assert!(r.contains("ADMISSION_TIMEOUT=500ms"), "{r}");
    // Freed, the next one goes through.
    let del = p.sessions.delete("s-1").await;
    assert!(del.is_ok());
    let r = put("s-2").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(ensured(&b), ["s-1", "s-2"]);
}

#[test]
fn invalid_admission_settings_stop_the_proxy_naming_the_variable() {
    let cases = [
        (
            raw("many", "64", "30s", "0"),
            "MAX_SANDBOXES: \"many\" is not a non-negative integer",
        ),
        (
            raw("8", "64", "30s", "0"),
            "MAX_SANDBOXES: 8 is more than the local backend can run beside its warm pool (LOCAL_MAX_SANDBOXES 8 - LOCAL_WARM_POOL 1 = 7)",
        ),
        (
            raw("2", "-1", "30s", "0"),
            "ADMISSION_QUEUE_LENGTH: \"-1\" is not a non-negative integer",
        ),
        (
            raw("2", "64", "0s", "0"),
            "ADMISSION_TIMEOUT: must be greater than zero",
        ),
        (raw("2", "64", "soon", "0"), "ADMISSION_TIMEOUT:"),
        (
            raw("2", "64", "30s", "x"),
            "TENANT_MAX_CONNECTIONS: \"x\" is not a non-negative integer",
        ),
    ];
    for (raw, want) in cases {
        let e = Config::from_raw(raw).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
    }
    // Defaults: the local backend's room beside its pool, a queue of 64 for 30s, 64 per tenant.
    let c = Config::from_raw(support::raw_config()).unwrap();
    assert_eq!(c.admission.max_sandboxes, Some(7));
    assert_eq!(c.admission.queue_length, 64);
    assert_eq!(c.admission.timeout, Duration::from_secs(30));
    assert_eq!(c.admission.tenant_max_connections, Some(64));
    // Both limits off: no admission at all.
    let c = Config::from_raw(raw("0", "64", "30s", "0")).unwrap();
    assert!(!c.admission.enabled());
}

/// An HTTP sandbox whose `/stream` answers one chunk, then another after `gap`; other paths "ok".
async fn streaming_upstream(gap: Duration) -> SocketAddr {
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::Frame;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        type B = http_body_util::combinators::BoxBody<
                            bytes::Bytes,
                            std::convert::Infallible,
                        >;
                        let body: B = if req.uri().path() == "/stream" {
                            let chunks = futures::stream::unfold(0u8, move |i| async move {
                                match i {
                                    0 => Some((
                                        Ok::<_, std::convert::Infallible>(Frame::data(
                                            bytes::Bytes::from_static(b"one\n"),
                                        )),
                                        1,
                                    )),
                                    1 => {
                                        tokio::time::sleep(gap).await;
                                        Some((
                                            Ok(Frame::data(bytes::Bytes::from_static(b"two\n"))),
                                            2,
                                        ))
                                    }
                                    _ => None,
                                }
                            });
                            BodyExt::boxed(StreamBody::new(chunks))
                        } else {
                            Full::new(bytes::Bytes::from_static(b"ok")).boxed()
                        };
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_http_stream_holds_its_tenants_place_until_its_last_byte() {
    let up = streaming_upstream(Duration::from_millis(800)).await;
    let b = FakeBackend::new(endpoint(up, Some(up), "sb"));
    let p = proxy(b.clone(), raw("0", "64", "30s", "1")).await;
    let a = p.admission.clone().unwrap();
    let addr = p.data_addr;
    // A streamed response (SSE-like): the first chunk arrives, the second 800 ms later.
    let mut s = connect_from("127.0.0.2", addr).await;
    s.write_all(
        format!(
            "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nX-Sandbox-Id: a-0\r\n\r\n",
            support::IDENTITY_TOKEN
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut first = vec![0u8; 4096];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(a.connections(), 1);
    // While it streams, the tenant's one place is taken.
    let r = get("127.0.0.2", addr, "a-0").await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("TENANT_MAX_CONNECTIONS=1"), "{r:?}");
    // The stream ends: the place is free again.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let all = [&first[..n], &rest[..]].concat();
    assert!(String::from_utf8_lossy(&all).contains("two"), "{all:?}");
    wait_until("the place back", Duration::from_secs(5), || {
        a.connections() == 0
    })
    .await;
    let r = get("127.0.0.2", addr, "a-0").await;
    assert_eq!(r.status, 200, "{r:?}");
}
