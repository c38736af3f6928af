//! Hostile raw requests over real sockets (issue #15 part 2): each is refused with a status that says
//! why, before any identity or session work, so no sandbox is created and no slot is used.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sandcanary_proxy::config::{Config, RawConfig, RawIdentity};
use sandcanary_proxy::identity::{Chain, Identity};
use sandcanary_proxy::server::{Running, start_with};
use support::{FakeBackend, connect_from, endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn proxy(backend: Arc<FakeBackend>, raw: RawConfig) -> Running {
    support::init_tracing();
    let cfg = support::config(raw);
    let identity: Arc<dyn Identity> = Arc::new(Chain::from_config(&cfg).unwrap());
    start_with(cfg, backend, identity).await.unwrap()
}

fn token_mode() -> RawConfig {
    RawConfig {
        identity: RawIdentity {
            identity: Some("token,static".into()),
            identity_token: Some(support::IDENTITY_TOKEN.into()),
            ..support::raw_config().identity
        },
        ..support::raw_config()
    }
}

/// Sends `head` as written from `source` and returns the whole answer (the proxy closes or the
/// read times out).
async fn raw(source: &str, to: SocketAddr, head: &str) -> String {
    let mut s = connect_from(source, to).await;
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    // One answer is enough: read until the head and its (small, Content-Length) body are in.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
        let text = String::from_utf8_lossy(&out);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn assert_nothing_created(p: &Running, b: &FakeBackend) {
    assert_eq!(b.ensures.load(Ordering::SeqCst), 0, "{:?}", b.calls());
    assert!(p.sessions.list().is_empty(), "{:?}", p.sessions.list());
}

#[tokio::test]
async fn connect_and_unforwardable_methods_get_405_before_any_sandbox() {
    let b = FakeBackend::new(endpoint("127.0.0.1:9".parse().unwrap(), None, "sb"));
    let p = proxy(b.clone(), support::raw_config()).await;
    // 127.0.0.2 is a known tenant: without the screen, each of these would start its sandbox.
    let a = raw(
        "127.0.0.2",
        p.data_addr,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(status(&a), 405, "{a}");
    assert!(a.contains("CONNECT is not supported"), "{a}");
    assert!(
        a.to_ascii_lowercase()
            .contains("allow: get, head, post, put, delete, options, patch"),
        "{a}"
    );
    for (method, target) in [("TRACE", "/"), ("BREW", "/pot"), ("PROPFIND", "/")] {
        let a = raw(
            "127.0.0.2",
            p.data_addr,
            &format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&a), 405, "{method}: {a}");
        assert!(
            a.contains(&format!("method {method} is not forwarded")),
            "{a}"
        );
    }
    // A WebSocket upgrade must be a GET.
    let a = raw(
        "127.0.0.2",
        p.data_addr,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&a), 405, "{a}");
    assert!(a.contains("must be a GET request"), "{a}");
    // Two Host headers.
    let a = raw(
        "127.0.0.2",
        p.data_addr,
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    )
    .await;
    assert_eq!(status(&a), 400, "{a}");
    assert!(a.contains("more than one Host header"), "{a}");
    assert_nothing_created(&p, &b);
    // An unknown caller's CONNECT is refused for its method too (the method is checked first).
    let a = raw(
        "127.0.0.1",
        p.data_addr,
        "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n",
    )
    .await;
    assert_eq!(status(&a), 405, "{a}");
    assert_nothing_created(&p, &b);
}

#[tokio::test]
async fn repeated_identity_headers_in_token_mode_are_a_400() {
    let (up, _) = tiny_upstream().await;
    let b = FakeBackend::new(endpoint(up, Some(up), "sb"));
    let p = proxy(b.clone(), token_mode()).await;
    let auth = format!("Authorization: Bearer {}\r\n", support::IDENTITY_TOKEN);
    for (what, head) in [
        (
            "two ids",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{auth}X-Sandbox-Id: alice\r\nX-Sandbox-Id: bob\r\n\r\n"
            ),
        ),
        (
            "the same id twice",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{auth}X-Sandbox-Id: alice\r\nX-Sandbox-Id: alice\r\n\r\n"
            ),
        ),
        (
            "two Authorization headers",
            format!("GET / HTTP/1.1\r\nHost: x\r\n{auth}{auth}X-Sandbox-Id: alice\r\n\r\n"),
        ),
        (
            "a wrong token beside the right one",
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n{auth}X-Sandbox-Id: alice\r\n\r\n"
            ),
        ),
    ] {
        // From a known static address too: token mode is tried first and stops at the ambiguity.
        let a = raw("127.0.0.2", p.data_addr, &head).await;
        assert_eq!(status(&a), 400, "{what}: {a}");
        assert!(
            a.contains("more than one") && a.contains("ambiguous"),
            "{what}: {a}"
        );
    }
    assert_nothing_created(&p, &b);
    // The dot segments are not ids.
    for id in [".", ".."] {
        let a = raw(
            "127.0.0.1",
            p.data_addr,
            &format!("GET / HTTP/1.1\r\nHost: x\r\n{auth}X-Sandbox-Id: {id}\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&a), 403, "{id}: {a}");
        assert!(a.contains("invalid sandbox id in x-sandbox-id"), "{a}");
        assert!(a.contains(r#"not "." or "..""#), "{a}");
    }
    assert_nothing_created(&p, &b);
    let m = p.metrics.render();
    assert!(
        m.lines()
            .any(|l| l == "sandcanary_identity_failures_total{kind=\"ambiguous\"} 4"),
        "{m}"
    );
    // One of each is still fine.
    let a = raw(
        "127.0.0.1",
        p.data_addr,
        &format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{auth}X-Sandbox-Id: alice\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status(&a), 200, "{a}");
    let ensured: Vec<_> = b
        .calls()
        .into_iter()
        .filter(|c| matches!(c, support::Call::Ensure(_)))
        .collect();
    assert_eq!(ensured, vec![support::Call::Ensure("alice".into())]);
}

#[tokio::test]
async fn the_session_api_refuses_dot_ids_and_repeated_authorization() {
    let b = FakeBackend::new(endpoint("127.0.0.1:9".parse().unwrap(), None, "sb"));
    let p = proxy(b.clone(), support::raw_config()).await;
    let auth = format!("Authorization: Bearer {}\r\n", support::SESSION_TOKEN);
    for target in [
        "/v1/sessions/.",
        "/v1/sessions/..",
        "/v1/sessions/%2e",
        "/v1/sessions/%2E%2e",
        "/v1/sessions/%2e%2e/suspend",
        "/v1/sessions/../resume",
    ] {
        let method = if target.ends_with("suspend") || target.ends_with("resume") {
            "POST"
        } else {
            "PUT"
        };
        let a = raw(
            "127.0.0.1",
            p.admin_addr,
            &format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&a), 400, "{target}: {a}");
        assert!(
            a.contains(
                r#"invalid session id: want 1-63 characters of [A-Za-z0-9._-], not \".\" or \"..\""#
            ),
            "{target}: {a}"
        );
    }
    let a = raw(
        "127.0.0.1",
        p.admin_addr,
        &format!(
            "PUT /v1/sessions/alice HTTP/1.1\r\nHost: x\r\n{auth}{auth}Content-Length: 0\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status(&a), 400, "{a}");
    assert!(a.contains("more than one authorization header"), "{a}");
    assert_nothing_created(&p, &b);
}

#[test]
fn dot_ids_in_the_static_map_stop_the_proxy_naming_the_variable() {
    for id in [".", ".."] {
        let e = Config::from_raw(RawConfig {
            identity: RawIdentity {
                identity_static: Some(format!("127.0.0.2={id}")),
                ..support::raw_config().identity
            },
            ..support::raw_config()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("IDENTITY_STATIC: invalid id"), "{e}");
        assert!(e.contains(r#"not "." or "..""#), "{e}");
    }
}

/// A sandbox that answers every HTTP request with 200.
async fn tiny_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let t = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |_req: hyper::Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, t)
}
