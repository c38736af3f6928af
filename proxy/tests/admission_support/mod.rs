//! The admission scenario shared by the scripted, local (Chromium) and cluster (sandboxclaim) tests:
//! three tenants (source addresses, token identity), one of which opens ten sandboxes at once.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use sandcanary_proxy::admission::Admission;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{self, connect_from};

/// A refused request: status, `Retry-After` and body.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Opens a WebSocket as tenant `source` (token identity) for sandbox `id`.
pub async fn ws_open(
    source: &str,
    to: SocketAddr,
    id: &str,
) -> Result<WebSocketStream<TcpStream>, Refusal> {
    let s = connect_from(source, to).await;
    let mut req = "ws://proxy.test/".into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", support::IDENTITY_TOKEN)
            .parse()
            .unwrap(),
    );
    req.headers_mut()
        .insert("x-sandbox-id", id.parse().unwrap());
    match tokio_tungstenite::client_async(req, s).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(Refusal {
            status: resp.status().as_u16(),
            retry_after: resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
            body: String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        }),
        Err(e) => panic!("{id}: {e}"),
    }
}

/// One round trip on an echo sandbox.
pub async fn echo(ws: &mut WebSocketStream<TcpStream>) {
    ws.send(Message::text("ping")).await.unwrap();
    let m = ws.next().await.unwrap().unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "ping");
}

pub async fn close(mut ws: WebSocketStream<TcpStream>) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while ws.next().await.is_some() {}
    })
    .await;
}

pub async fn wait_until(what: &str, budget: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + budget;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Who was served, and how long after the burst began.
pub type Served = Vec<(String, Duration)>;

/// Tenant A (127.0.0.2) opens ten sandboxes `a-0`..`a-9` at once; the first two hold theirs until
/// B (127.0.0.3, `b-0`) and C (127.0.0.4, `c-0`) queue behind A's eight waiters. Every client
/// then uses its sandbox briefly (`echo`: one round trip) and closes. Requires capacity 2 and
/// slots freed by the reaper. Returns when every client has been served; panics on a refusal.
pub async fn burst(addr: SocketAddr, a: Arc<Admission>, talk: bool, budget: Duration) -> Served {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let served: Arc<Mutex<Served>> = Arc::default();
    let start = Instant::now();
    let client = |source: &'static str, id: String, hold: bool| {
        let served = served.clone();
        let mut release = release_rx.clone();
        tokio::spawn(async move {
            let mut ws = ws_open(source, addr, &id)
                .await
                .unwrap_or_else(|r| panic!("{id} refused: {r:?}"));
            served.lock().unwrap().push((id.clone(), start.elapsed()));
            if talk {
                echo(&mut ws).await;
            }
            if hold {
                let _ = release.wait_for(|r| *r).await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            close(ws).await;
        })
    };
    let mut clients: Vec<_> = (0..2)
        .map(|i| client("127.0.0.2", format!("a-{i}"), true))
        .collect();
    wait_until("A's first two sandboxes", budget, || {
        served.lock().unwrap().len() == 2
    })
    .await;
    clients.extend((2..10).map(|i| client("127.0.0.2", format!("a-{i}"), false)));
    wait_until("A's eight waiters", Duration::from_secs(10), || {
        a.queued() == 8
    })
    .await;
    clients.push(client("127.0.0.3", "b-0".into(), false));
    wait_until("B queued", Duration::from_secs(10), || a.queued() == 9).await;
    clients.push(client("127.0.0.4", "c-0".into(), false));
    wait_until("C queued", Duration::from_secs(10), || a.queued() == 10).await;
    release_tx.send_replace(true);
    for c in clients {
        tokio::time::timeout(budget, c)
            .await
            .expect("every client served in time")
            .unwrap();
    }
    served.lock().unwrap().clone()
}

/// The fairness claim: B and C were among the first six served and before A's last. Round robin
/// A, B, C grants them the 4th and 5th slots (two slots come free per reaper pass, so the order in
/// which two sandboxes granted together are served may swap); a first-come queue would give them
/// the 11th and 12th.
pub fn assert_fair(served: &Served) {
    let order: Vec<&str> = served.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(order.len(), 12, "{served:?}");
    let pos = |id: &str| order.iter().position(|o| *o == id).unwrap();
    assert!(pos("b-0") <= 5 && pos("c-0") <= 5, "{served:?}");
    let at = |id: &str| served[pos(id)].1;
    let last_a = served
        .iter()
        .filter(|(s, _)| s.starts_with("a-"))
        .map(|(_, t)| *t)
        .max()
        .unwrap();
    assert!(at("b-0") < last_a && at("c-0") < last_a, "{served:?}");
}
