//! Several proxy replicas against one real kube-apiserver (BACKEND=sandboxclaim, LEADER_ELECTION on).
//! Each replica is the real binary, so that a leader can be killed outright. The test plays the
//! agent-sandbox controller: every claim becomes Ready at 127.0.0.1, where a WebSocket echo server
//! (SANDBOX_PORT) and an HTTP server (SANDBOX_MCP_PORT: a page at `/`, a slow stream at `/stream`)
//! stand in for the sandbox.
//!
//! Short durations everywhere: IDLE_TTL 3s, activity written at most every 500ms, a 2s Lease.

mod kube_support;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use sandcanary_proxy::backend::sandbox_claim::api_resource;
use sandcanary_proxy::replicas::activity::LAST_ACTIVE;
use sandcanary_testkit::{ProxyBuilder, ProxyProcess};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use kube_support::{client, eventually, install_crds, namespace, pod};

const BIN: &str = env!("CARGO_BIN_EXE_sandcanary-proxy");
const IDLE_TTL: Duration = Duration::from_secs(3);
const LEASE: Duration = Duration::from_secs(2);
/// The session API's token on every replica.
const API_TOKEN: &str = "replicas-session-api-token";

/// One replica: the real binary on free loopback ports, killed outright on drop.
struct Replica {
    name: String,
    proxy: ProxyProcess,
    data: SocketAddr,
    admin: SocketAddr,
}

impl Replica {
    fn start(name: &str, ns: &str, sandbox: &Sandbox) -> Replica {
        Self::start_with_ttl(name, ns, sandbox, IDLE_TTL)
    }

    fn start_with_ttl(name: &str, ns: &str, sandbox: &Sandbox, idle_ttl: Duration) -> Replica {
        let proxy = ProxyBuilder::new(BIN)
            .label(name)
            .env("BACKEND", "sandboxclaim")
            .env("POD_NAMESPACE", ns)
            .env("WARMPOOL_NAME", "playwright")
            .env("SANDBOX_PORT", sandbox.ws.port().to_string())
            .env("SANDBOX_MCP_PORT", sandbox.http.port().to_string())
            .env("IDLE_TTL", format!("{}s", idle_ttl.as_secs()))
            .env("IDLE_CHECK_INTERVAL", "250ms")
            .env("ENSURE_TIMEOUT", "20s")
            .env("SHUTDOWN_GRACE", "1s")
            .env("WS_SHUTDOWN_GRACE", "1s")
            .env("LEADER_ELECTION", "true")
            .env("LEADER_ELECTION_IDENTITY", name)
            .env(
                "LEADER_ELECTION_LEASE_DURATION",
                format!("{}s", LEASE.as_secs()),
            )
            .env("LEADER_ELECTION_RENEW_BEFORE", "1s")
            .env("ACTIVITY_INTERVAL", "500ms")
            .env("SESSION_API_TOKEN", API_TOKEN)
            .env("LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("REPLICA_LOG").unwrap_or_else(|_| "info".into()),
            )
            .echo_log(true)
            .log_file(false)
            .ready_timeout(Duration::from_secs(30))
            .stop_grace(Duration::ZERO)
            .start()
            .unwrap_or_else(|e| panic!("replica {name} did not start listening: {e}"));
        Replica {
            name: name.to_string(),
            data: proxy.data(),
            admin: proxy.admin(),
            proxy,
        }
    }

    /// A sample of the replica's /metrics (0 when absent).
    async fn metric(&self, sample: &str) -> f64 {
        let mut s = tokio::net::TcpStream::connect(self.admin).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(sample)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// One session API call on this replica's admin port: status and JSON body (Null when none).
    async fn api(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        let mut s = tokio::net::TcpStream::connect(self.admin).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {API_TOKEN}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut text))
            .await
            .expect("the session API answers in time")
            .unwrap();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or_default())
    }

    async fn leads(&self) -> bool {
        self.metric("sandcanary_leader").await == 1.0
    }

    async fn reaped(&self) -> f64 {
        self.metric("sandcanary_reaps_total{result=\"ok\"}").await
    }

    /// SIGTERM: a graceful stop that releases the Lease.
    fn terminate(&mut self) {
        if !matches!(self.proxy.terminate(Duration::from_secs(15)), Ok(Some(_))) {
            panic!("replica {} did not stop on SIGTERM", self.name);
        }
    }
}

/// The stand-in sandbox: a WebSocket echo server and an HTTP page server on 127.0.0.1.
struct Sandbox {
    ws: SocketAddr,
    http: SocketAddr,
}

async fn sandbox() -> Sandbox {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        let _ = ws.send(m).await;
                    }
                }
            });
        }
    });
    Sandbox {
        ws,
        http: http_sandbox().await,
    }
}

/// Ticks of `/stream`, one every [`TICK`]: a response that lasts longer than three IDLE_TTLs.
const TICKS: usize = 32;
const TICK: Duration = Duration::from_millis(300);

async fn http_sandbox() -> SocketAddr {
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::Frame;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = if req.uri().path() == "/stream" {
                            let ticks = futures::stream::unfold(0usize, |n| async move {
                                if n == TICKS {
                                    return None;
                                }
                                tokio::time::sleep(TICK).await;
                                let f = Frame::data(bytes::Bytes::from_static(b"tick\n"));
                                Some((Ok::<_, std::convert::Infallible>(f), n + 1))
                            });
                            BodyExt::boxed(StreamBody::new(ticks))
                        } else {
                            Full::new(bytes::Bytes::from_static(b"sandbox page")).boxed()
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

/// The agent-sandbox controller's part: every claim without status becomes Ready at 127.0.0.1.
/// Remembers the uid of every claim it served, by name, to tell adoption from re-creation.
#[derive(Default)]
struct Controller {
    served: Mutex<HashMap<String, Vec<String>>>,
}

impl Controller {
    fn run(self: &Arc<Self>, claims: Api<DynamicObject>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(list) = claims.list(&ListParams::default()).await {
                    for c in list.items {
                        if c.data.get("status").is_some_and(|s| !s.is_null())
                            || c.metadata.deletion_timestamp.is_some()
                        {
                            continue;
                        }
                        let name = c.metadata.name.clone().unwrap();
                        let status = json!({
                            "conditions": [{"type": "Ready", "status": "True", "reason": "DependenciesReady",
                                            "message": "ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                            "sandbox": {"name": format!("sb-{name}"), "podIPs": ["127.0.0.1"]},
                        });
                        if claims
                            .patch_status(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({ "status": status })),
                            )
                            .await
                            .is_ok()
                        {
                            me.served
                                .lock()
                                .unwrap()
                                .entry(name)
                                .or_default()
                                .push(c.metadata.uid.clone().unwrap_or_default());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    fn uids(&self, name: &str) -> Vec<String> {
        self.served
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

/// A namespace with the CRDs, the controller running, and labelled client pods at the given IPs.
struct World {
    ns: String,
    claims: Api<DynamicObject>,
    controller: Arc<Controller>,
    ctl: tokio::task::JoinHandle<()>,
    sandbox: Sandbox,
}

impl Drop for World {
    fn drop(&mut self) {
        self.ctl.abort();
    }
}

async fn world(prefix: &str, tenants: &[(&str, &str)]) -> World {
    support::init_tracing();
    install_crds();
    let client = client().await;
    let ns = namespace(&client, prefix).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for (ip, id) in tenants {
        pod(&pods, id, json!({"playwright-id": id}), Some(ip), false).await;
    }
    let claims: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());
    let controller = Arc::new(Controller::default());
    let ctl = controller.run(claims.clone());
    World {
        ns,
        claims,
        controller,
        ctl,
        sandbox: sandbox().await,
    }
}

impl World {
    async fn claim(&self, id: &str) -> Option<DynamicObject> {
        self.claims.get_opt(&format!("pw-{id}")).await.unwrap()
    }

    async fn claim_uid(&self, id: &str) -> Option<String> {
        self.claim(id).await.and_then(|c| c.metadata.uid)
    }
}

/// One HTTP request through `proxy` from a "pod" address; the status code.
async fn http_from(source: &str, proxy: SocketAddr) -> u16 {
    sandcanary_testkit::get_from(Some(source), proxy, "/", Duration::from_secs(30))
        .await
        .expect("response in time")
        .0
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn ws_from(source: &str, proxy: SocketAddr) -> Ws {
    let s = support::connect_from(source, proxy).await;
    let (ws, resp) = tokio_tungstenite::client_async(format!("ws://{proxy}/"), s)
        .await
        .expect("WebSocket through the proxy");
    assert_eq!(resp.status(), 101);
    ws
}

async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(got.into_text().unwrap().as_str(), text);
}

/// Waits until `a` leads and `b` does not.
async fn leader_is(a: &Replica, b: &Replica) {
    let what = format!("{} to lead and {} to follow", a.name, b.name);
    eventually(Duration::from_secs(20), &what, || async {
        a.leads().await && !b.leads().await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn a_tenant_in_use_on_b_is_never_reaped_by_the_leader_a() {
    let w = world(
        "kp-repl",
        &[
            ("127.0.0.41", "busy"),
            ("127.0.0.42", "chatty"),
            ("127.0.0.43", "quiet"),
            ("127.0.0.44", "streamer"),
        ],
    )
    .await;
    let a = Replica::start("replica-a", &w.ns, &w.sandbox);
    eventually(Duration::from_secs(20), "replica-a to lead", || a.leads()).await;
    let b = Replica::start("replica-b", &w.ns, &w.sandbox);
    leader_is(&a, &b).await;

    // All three tenants start on the leader, so that A has its own (soon idle) view of each; then
    // they move to B, which adopts their claims.
    for ip in ["127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"] {
        assert_eq!(http_from(ip, a.data).await, 200);
    }
    let uids: Vec<_> = {
        let mut v = Vec::new();
        for id in ["busy", "chatty", "quiet", "streamer"] {
            v.push(w.claim_uid(id).await.expect("claim exists"));
        }
        v
    };
    let mut busy = ws_from("127.0.0.41", b.data).await;
    echo(&mut busy, "hello").await;
    // streamer reads one long HTTP response through B.
    let stream = {
        let proxy = b.data;
        tokio::spawn(async move {
            let mut s = support::connect_from("127.0.0.44", proxy).await;
            s.write_all(b"GET /stream HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf).matches("tick\n").count()
        })
    };
    assert_eq!(http_from("127.0.0.43", b.data).await, 200);
    let quiet_last_use = Instant::now();

    // Three IDLE_TTLs: busy holds a WebSocket open on B (silent most of the time), chatty sends
    // HTTP requests to B, streamer reads one long response from B; none is reaped by A, whose own
    // view of all three is idle. quiet, idle on
    // both replicas, is reaped by the leader A, once, and not before IDLE_TTL.
    let until = Instant::now() + IDLE_TTL * 3;
    let mut quiet_gone_after = None;
    while Instant::now() < until {
        assert_eq!(http_from("127.0.0.42", b.data).await, 200);
        if quiet_gone_after.is_none() && w.claim("quiet").await.is_none() {
            quiet_gone_after = Some(quiet_last_use.elapsed());
        }
        assert_eq!(w.claim_uid("busy").await.as_ref(), Some(&uids[0]));
        assert_eq!(w.claim_uid("chatty").await.as_ref(), Some(&uids[1]));
        assert_eq!(w.claim_uid("streamer").await.as_ref(), Some(&uids[3]));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    echo(&mut busy, "still here").await;
    let ticks = tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .expect("the stream ends")
        .unwrap();
    assert_eq!(ticks, TICKS, "the stream ran to its end");
    let gone = quiet_gone_after.expect("the idle tenant was reaped");
    assert!(
        gone >= IDLE_TTL - Duration::from_millis(600),
        "quiet reaped {gone:?} after its last use, before IDLE_TTL"
    );
    assert_eq!(a.reaped().await, 1.0, "the leader reaped exactly quiet");
    assert_eq!(b.reaped().await, 0.0, "the follower never reaps");
    assert!(a.leads().await);

    // The records are on the claims, written by B.
    let rec = w.claim("busy").await.unwrap();
    let ann = rec.metadata.annotations.unwrap_or_default();
    assert!(ann.contains_key(LAST_ACTIVE), "{ann:?}");
    assert_eq!(
        ann.get("sandcanary.dev/last-active-by").map(String::as_str),
        Some("replica-b")
    );
    assert!(
        b.metric("sandcanary_activity_writes_total{result=\"updated\"}")
            .await
            >= 3.0
    );

    // Positive control: once B lets go, A reaps both within a few TTLs, each once.
    busy.close(None).await.unwrap();
    drop(busy);
    eventually(IDLE_TTL * 4, "busy, chatty and streamer reaped", || async {
        w.claim("busy").await.is_none()
            && w.claim("chatty").await.is_none()
            && w.claim("streamer").await.is_none()
    })
    .await;
    assert_eq!(a.reaped().await, 4.0);
    assert_eq!(b.reaped().await, 0.0);
    assert_eq!(
        w.controller.uids("pw-busy").len(),
        1,
        "busy was never re-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn a_killed_leader_is_replaced_within_its_lease_and_its_tenants_are_reaped() {
    let w = world("kp-failover", &[("127.0.0.51", "orphan")]).await;
    let mut a = Replica::start("replica-a", &w.ns, &w.sandbox);
    eventually(Duration::from_secs(20), "replica-a to lead", || a.leads()).await;
    let b = Replica::start("replica-b", &w.ns, &w.sandbox);
    leader_is(&a, &b).await;

    // A creates the claim and then dies without a word (SIGKILL: no Lease release).
    assert_eq!(http_from("127.0.0.51", a.data).await, 200);
    assert!(w.claim("orphan").await.is_some());
    a.proxy.kill().unwrap();
    let killed = Instant::now();

    eventually(LEASE * 3, "replica-b to take the Lease", || b.leads()).await;
    let took = killed.elapsed();
    // The Lease was last renewed less than LEASE before the kill; once it has expired, the
    // candidate waits a random 0.1-1s before taking it (kube-lease-manager spreads contenders).
    assert!(
        took <= LEASE + Duration::from_secs(2),
        "takeover took {took:?}"
    );

    // The claim the dead replica created is reaped by the new leader.
    eventually(IDLE_TTL * 3, "the dead replica's claim reaped", || async {
        w.claim("orphan").await.is_none()
    })
    .await;
    assert_eq!(b.reaped().await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn a_restarted_replica_adopts_existing_claims_and_racing_creates_make_one_claim() {
    let w = world(
        "kp-adopt",
        &[("127.0.0.61", "returning"), ("127.0.0.62", "twin")],
    )
    .await;
    // A long IDLE_TTL: nothing here may be reaped while replicas come and go.
    let ttl = Duration::from_secs(60);
    let mut a = Replica::start_with_ttl("replica-a", &w.ns, &w.sandbox, ttl);
    assert_eq!(http_from("127.0.0.61", a.data).await, 200);
    let uid = w.claim_uid("returning").await.expect("claim exists");
    a.terminate();
    // The stopped leader released its Lease: a new replica leads at once, not after LEASE.
    let released = Instant::now();
    let a2 = Replica::start_with_ttl("replica-a2", &w.ns, &w.sandbox, ttl);
    eventually(Duration::from_secs(20), "replica-a2 to lead", || a2.leads()).await;
    assert!(
        released.elapsed() < LEASE * 3,
        "took {:?}",
        released.elapsed()
    );
    assert_eq!(http_from("127.0.0.61", a2.data).await, 200);
    assert_eq!(w.claim_uid("returning").await, Some(uid));
    assert_eq!(
        w.controller.uids("pw-returning").len(),
        1,
        "the claim was adopted, not created again"
    );

    // Two replicas asked for a new tenant at the same moment: one creates, the other's create
    // meets 409 and uses the same claim.
    let b = Replica::start_with_ttl("replica-b", &w.ns, &w.sandbox, ttl);
    let (ra, rb) = tokio::join!(
        http_from("127.0.0.62", a2.data),
        http_from("127.0.0.62", b.data)
    );
    assert_eq!((ra, rb), (200, 200));
    assert_eq!(w.controller.uids("pw-twin").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn every_replica_shows_a_session_that_another_replica_serves() {
    // Behind a Service the bench's `GET /v1/sessions/{id}` and its data connection reach replicas
    // at random: the session must be visible through both, with the same sandbox.
    let w = world("kp-show", &[("127.0.0.71", "shown")]).await;
    let ttl = Duration::from_secs(60);
    let a = Replica::start_with_ttl("replica-a", &w.ns, &w.sandbox, ttl);
    let b = Replica::start_with_ttl("replica-b", &w.ns, &w.sandbox, ttl);

    // A tenant connected through A only.
    let mut ws = ws_from("127.0.0.71", a.data).await;
    echo(&mut ws, "hello").await;
    let (status, here) = a.api("GET", "/v1/sessions/shown").await;
    assert_eq!(status, 200, "{here}");
    assert_eq!(here["open_connections"], 1, "{here}");
    assert!(here.get("elsewhere").is_none(), "{here}");
    let sandbox = here["sandbox"].as_str().expect("a sandbox").to_string();
    assert!(sandbox.ends_with("/sb-pw-shown"), "{sandbox}");

    let (status, there) = b.api("GET", "/v1/sessions/shown").await;
    assert_eq!(status, 200, "B shows A's session: {there}");
    assert_eq!(there["state"], "ready");
    assert_eq!(there["sandbox"].as_str(), Some(sandbox.as_str()));
    assert_eq!(there["endpoint"], here["endpoint"]);
    assert_eq!(there["elsewhere"], true);
    assert_eq!(there["open_connections"], 0);
    // Showing created nothing on B, and B's list is its own.
    let (_, list) = b.api("GET", "/v1/sessions").await;
    assert_eq!(list["sessions"], json!([]), "{list}");

    // The bench's path: PUT through B, then the sandbox read through A, the same one.
    let (status, put) = b.api("PUT", "/v1/sessions/bench-warm-0").await;
    assert_eq!(status, 200, "{put}");
    let (status, seen) = a.api("GET", "/v1/sessions/bench-warm-0").await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["sandbox"], put["sandbox"]);

    // Unknown ids stay 404 on every replica, and no object appears for them.
    for r in [&a, &b] {
        let (status, body) = r.api("GET", "/v1/sessions/nobody").await;
        assert_eq!(status, 404, "{} {body}", r.name);
    }
    assert!(w.claim("nobody").await.is_none());

    // Deleted through the replica that holds it: gone on the other one too.
    let (status, _) = b.api("DELETE", "/v1/sessions/bench-warm-0").await;
    assert_eq!(status, 204);
    eventually(
        Duration::from_secs(10),
        "the deleted session gone on A",
        || async { a.api("GET", "/v1/sessions/bench-warm-0").await.0 == 404 },
    )
    .await;
    echo(&mut ws, "still here").await;
}
