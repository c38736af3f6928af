//! End to end against a real kube-apiserver: the proxy with BACKEND=sandboxclaim and pod identity,
//! official Playwright clients from three "pods" (distinct 127.0.0.x addresses written into Pod
//! status), and this test playing the agent-sandbox controller: for each claim it starts a real
//! sandbox (deploy/sandbox/server.js with Chromium) on its own 127.0.100.x address and writes the
//! claim's status (Ready, podIPs) through `/status`.

mod kube_support;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use sandcanary_proxy::backend::sandbox_claim::api_resource;
use sandcanary_proxy::config::{RawConfig, RawSandboxClaim};
use sandcanary_proxy::server;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use kube_support::{client, eventually, install_crds, namespace, pod, remove_pod};

/// A sandbox started for a claim; its process group is killed when dropped.
struct Sandbox {
    pgid: i32,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions; ESRCH for a group already gone is fine.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
    }
}

/// The agent-sandbox controller's part: claims in, sandboxes and status out.
struct Controller {
    sandboxes: Mutex<HashMap<String, (String, Sandbox)>>,
    started: Mutex<Vec<String>>,
    /// Claims already handled (or being handled).
    seen: Mutex<std::collections::HashSet<String>>,
    port: u16,
}

fn condition(status: &str, reason: &str) -> serde_json::Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": reason,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

impl Controller {
    async fn start_sandbox(&self, host: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new("node")
            .arg(support::sandbox_server())
            .env("PORT", self.port.to_string())
            .env("HOST", host)
            .env("PW_WS_PATH", "/")
            .env("CHROMIUM_PATH", "/usr/bin/chromium")
            .env("TMPDIR", dir.path())
            .env("HOME", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let pgid = child.id().unwrap() as i32;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(90), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("SANDBOX_READY ") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "sandbox on {host} did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Sandbox {
            pgid,
            _child: child,
            _dir: dir,
        }
    }

    async fn reconcile(self: &Arc<Self>, claims: &Api<DynamicObject>) {
        let Ok(list) = claims.list(&ListParams::default()).await else {
            return;
        };
        let live: Vec<String> = list
            .items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        // Deleted claims stop their sandboxes.
        self.sandboxes
            .lock()
            .unwrap()
            .retain(|name, _| live.contains(name));
        for c in list.items {
            let name = c.metadata.name.clone().unwrap();
            if c.data.get("status").is_some_and(|s| !s.is_null())
                || !self.seen.lock().unwrap().insert(name.clone())
            {
                continue;
            }
            let id = c
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("playwright-id"))
                .cloned()
                .unwrap_or_default();
            // Each claim is served on its own task: sandboxes start concurrently, as in a cluster.
            let (me, claims) = (self.clone(), claims.clone());
            tokio::spawn(async move {
                let status = if id.starts_with("stuck") {
                    json!({"conditions": [condition("False", "DependenciesNotReady")]})
                } else if id.starts_with("broken") {
                    json!({"conditions": [condition("False", "WarmPoolNotFound")]})
                } else {
                    let host = {
                        let mut started = me.started.lock().unwrap();
                        started.push(id.clone());
                        format!("127.0.100.{}", started.len())
                    };
                    let sb = me.start_sandbox(&host).await;
                    me.sandboxes
                        .lock()
                        .unwrap()
                        .insert(name.clone(), (host.clone(), sb));
                    json!({"conditions": [condition("True", "DependenciesReady")],
                           "sandbox": {"name": format!("sb-{name}"), "podIPs": [host]}})
                };
                claims
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "status": status })),
                    )
                    .await
                    .expect("write claim status");
            });
        }
    }
}

/// One HTTP request from a chosen source address; returns (status, body).
async fn http_from(source: &str, proxy: SocketAddr) -> (u16, String) {
    sandcanary_testkit::get_from(
        Some(source),
        proxy,
        "/json/version",
        Duration::from_secs(60),
    )
    .await
    .expect("response in time")
}

async fn playwright_from(source: &str, proxy: SocketAddr, target: SocketAddr) {
    let r = support::run_node(
        "client.js",
        source,
        &[
            ("PW_URL", format!("ws://{proxy}/")),
            ("PW_TARGET_URL", format!("http://{target}/")),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "client from {source} failed: {}", r.stderr);
    let result = r.result.expect("RESULT line");
    assert_eq!(result["title"], "sandcanary fixture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn playwright_clients_from_three_pods_get_three_sticky_sandboxes() {
    support::init_tracing();
    install_crds();
    let client = client().await;
    let ns = namespace(&client, "kp-e2e").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let claims: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());

    let port = {
        let l = std::net::TcpListener::bind("127.0.100.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let controller = Arc::new(Controller {
        sandboxes: Mutex::new(HashMap::new()),
        started: Mutex::new(Vec::new()),
        seen: Mutex::new(Default::default()),
        port,
    });
    let ctl = {
        let (controller, claims) = (controller.clone(), claims.clone());
        tokio::spawn(async move {
            loop {
                controller.reconcile(&claims).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let running = server::start(support::config(RawConfig {
        listen_addr: Some("127.0.0.1:0".into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        backend: Some("sandboxclaim".into()),
        pod_namespace: Some(ns.clone()),
        sandbox_port: Some(port.to_string()),
        ensure_timeout: Some("90s".into()),
        session_api_token: Some(support::SESSION_TOKEN.into()),
        log_format: Some("text".into()),
        sandbox_claim: RawSandboxClaim {
            warmpool_name: Some("playwright".into()),
            ..Default::default()
        },
        ..Default::default()
    }))
    .await
    .expect("proxy starts");
    let proxy = running.data_addr;
    let admin = running.admin_addr;

    // /readyz is 200 once the pod cache has synced.
    eventually(Duration::from_secs(30), "/readyz 200", || async move {
        let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        buf.starts_with("HTTP/1.1 200")
    })
    .await;

    let tenants = [
        ("127.0.0.11", "tenant-a"),
        ("127.0.0.12", "tenant-b"),
        ("127.0.0.13", "tenant-c"),
    ];
    for (ip, id) in tenants {
        pod(&pods, id, json!({"playwright-id": id}), Some(ip), false).await;
    }
    let target = support::fixture_server().await;

    // Three pods, three sandboxes, concurrently.
    futures::future::join_all(
        tenants
            .iter()
            .map(|(ip, _)| playwright_from(ip, proxy, target)),
    )
    .await;
    let sessions = running.sessions.list();
    let endpoints: HashMap<String, String> = sessions
        .iter()
        .filter_map(|s| Some((s.id.clone(), s.endpoint.clone()?)))
        .collect();
    assert_eq!(endpoints.len(), 3, "{sessions:?}");
    let mut distinct: Vec<_> = endpoints.values().cloned().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "sandboxes shared: {endpoints:?}");
    for (_, id) in tenants {
        let host = controller.sandboxes.lock().unwrap()[&format!("pw-{id}")]
            .0
            .clone();
        assert_eq!(
            endpoints[id],
            format!("{host}:{port}"),
            "{id} routed to its own sandbox"
        );
    }

    // Sticky: a second session from tenant-a uses the same sandbox, no new claim or sandbox.
    let uid_before = claims.get("pw-tenant-a").await.unwrap().metadata.uid;
    playwright_from("127.0.0.11", proxy, target).await;
    assert_eq!(
        claims.get("pw-tenant-a").await.unwrap().metadata.uid,
        uid_before
    );
    assert_eq!(controller.started.lock().unwrap().len(), 3);
    let again: HashMap<String, String> = running
        .sessions
        .list()
        .iter()
        .filter_map(|s| Some((s.id.clone(), s.endpoint.clone()?)))
        .collect();
    assert_eq!(again, endpoints);

    // Deleting a pod makes its address unknown: 403, and fast.
    remove_pod(&pods, "tenant-c").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let (status, body) = http_from("127.0.0.13", proxy).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("client pod 127.0.0.13 not labelled with playwright-id"),
        "{body}"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // The address reused by a new pod maps to the new pod's id.
    pod(
        &pods,
        "tenant-d",
        json!({"playwright-id": "tenant-d"}),
        Some("127.0.0.13"),
        false,
    )
    .await;
    let (status, body) = http_from("127.0.0.13", proxy).await;
    assert_ne!(status, 403, "{body}");
    assert_ne!(status, 502, "{body}");
    assert!(claims.get_opt("pw-tenant-d").await.unwrap().is_some());
    assert!(
        running
            .sessions
            .list()
            .iter()
            .any(|s| s.id == "tenant-d" && s.endpoint.is_some())
    );

    // Faults, through a second proxy replica on the same namespace with a short ENSURE_TIMEOUT.
    let faulty = server::start(support::config(RawConfig {
        listen_addr: Some("127.0.0.1:0".into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        backend: Some("sandboxclaim".into()),
        pod_namespace: Some(ns.clone()),
        sandbox_port: Some(port.to_string()),
        ensure_timeout: Some("4s".into()),
        log_format: Some("text".into()),
        sandbox_claim: RawSandboxClaim {
            warmpool_name: Some("playwright".into()),
            ..Default::default()
        },
        ..Default::default()
    }))
    .await
    .expect("second proxy starts");
    let proxy = faulty.data_addr;

    // A claim that never becomes ready: 502 after ENSURE_TIMEOUT (4 s), not a hang.
    pod(
        &pods,
        "stuck",
        json!({"playwright-id": "stuck-1"}),
        Some("127.0.0.14"),
        false,
    )
    .await;
    let t = Instant::now();
    let (status, body) = http_from("127.0.0.14", proxy).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(3500),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    // A terminal condition: 502 at once, naming the reason.
    pod(
        &pods,
        "broken",
        json!({"playwright-id": "broken-1"}),
        Some("127.0.0.15"),
        false,
    )
    .await;
    let t = Instant::now();
    let (status, body) = http_from("127.0.0.15", proxy).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("WarmPoolNotFound"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    faulty.shutdown();
    running.shutdown();
    tokio::time::timeout(Duration::from_secs(60), faulty.wait())
        .await
        .expect("second proxy stops");
    tokio::time::timeout(Duration::from_secs(60), running.wait())
        .await
        .expect("proxy stops");
    ctl.abort();
    controller.sandboxes.lock().unwrap().clear();
}
