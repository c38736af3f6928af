//! The API server stopped and restarted under a running proxy (BACKEND=sandboxclaim, pod identity):
//! known callers keep being served from the cache, unknown ones get a quick 403, /readyz reports the
//! outage, and after the restart the watch recovers and sees pods created since. This binary stops the
//! shared API server, so it runs on its own (make test-kube-proxy runs each kube_* binary separately).

mod kube_support;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use sandcanary_proxy::backend::sandbox_claim::{SandboxClaimSettings, api_resource, manifest};
use sandcanary_proxy::config::{RawConfig, RawIdentity, RawSandboxClaim};
use sandcanary_proxy::server;
use serde_json::json;

use kube_support::{client, eventually, install_crds, namespace, pod, repo_root};

async fn request(source: Option<&str>, to: SocketAddr, path: &str) -> (u16, String) {
    sandcanary_testkit::get_from(source, to, path, Duration::from_secs(30))
        .await
        .expect("response in time")
}

fn apiserver(cmd: &str) {
    let dir = std::env::var("SANDCANARY_KUBE_DIR").expect("SANDCANARY_KUBE_DIR is set");
    let out = std::process::Command::new(repo_root().join("test/kube/apiserver.sh"))
        .args([cmd, &dir])
        .output()
        .expect("apiserver.sh runs");
    assert!(
        out.status.success(),
        "apiserver.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A ready claim pointing at `host:port`, written as the controller would.
async fn ready_claim(
    claims: &Api<DynamicObject>,
    settings: &SandboxClaimSettings,
    id: &str,
    host: &str,
) {
    let c: DynamicObject = serde_json::from_value(manifest(settings, id)).unwrap();
    claims.create(&PostParams::default(), &c).await.unwrap();
    claims
        .patch_status(
            &format!("pw-{id}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "DependenciesReady",
                                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "sandbox": {"name": format!("sb-{id}"), "podIPs": [host]}}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn the_proxy_rides_out_an_api_server_restart() {
    support::init_tracing();
    install_crds();
    let client = client().await;
    let ns = namespace(&client, "kp-outage").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let claims: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());

    // The "sandbox" is a plain HTTP server here: this test is about the API server, not Chromium.
    let sandbox = support::fixture_server().await;
    let settings = SandboxClaimSettings {
        namespace: ns.clone(),
        warmpool: "playwright".into(),
        label_key: "playwright-id".into(),
        sandbox_port: sandbox.port(),
        mcp_port: None,
    };
    ready_claim(&claims, &settings, "alice", "127.0.0.1").await;
    ready_claim(&claims, &settings, "bob", "127.0.0.1").await;
    pod(
        &pods,
        "alice",
        json!({"playwright-id": "alice"}),
        Some("127.0.0.90"),
        false,
    )
    .await;

    let running = server::start(support::config(RawConfig {
        listen_addr: Some("127.0.0.1:0".into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        backend: Some("sandboxclaim".into()),
        pod_namespace: Some(ns.clone()),
        sandbox_port: Some(sandbox.port().to_string()),
        log_format: Some("text".into()),
        sandbox_claim: RawSandboxClaim {
            warmpool_name: Some("playwright".into()),
            ..Default::default()
        },
        identity: RawIdentity {
            identity_lookup_timeout: Some("1s".into()),
            ..Default::default()
        },
        ..Default::default()
    }))
    .await
    .expect("proxy starts");
    let (proxy, admin) = (running.data_addr, running.admin_addr);
    eventually(Duration::from_secs(30), "/readyz 200", || async move {
        request(None, admin, "/readyz").await.0 == 200
    })
    .await;
    let (status, body) = request(Some("127.0.0.90"), proxy, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sandcanary fixture"));

    apiserver("stop-apiserver");

    // Readiness reports the outage once the watch has noticed it.
    eventually(
        Duration::from_secs(60),
        "/readyz 503 during the outage",
        || async move { request(None, admin, "/readyz").await.0 == 503 },
    )
    .await;
    // The cached caller is still served; an unknown one gets its 403 within the lookup budget.
    let (status, body) = request(Some("127.0.0.90"), proxy, "/").await;
    assert_eq!(status, 200, "{body}");
    let t = Instant::now();
    let (status, _) = request(Some("127.0.0.92"), proxy, "/").await;
    assert_eq!(status, 403);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    apiserver("start-apiserver");

    eventually(
        Duration::from_secs(60),
        "/readyz 200 after the restart",
        || async move { request(None, admin, "/readyz").await.0 == 200 },
    )
    .await;
    // A pod created after the restart is seen by the recovered watch (or the fallback).
    pod(
        &pods,
        "bob",
        json!({"playwright-id": "bob"}),
        Some("127.0.0.92"),
        false,
    )
    .await;
    let (status, body) = request(Some("127.0.0.92"), proxy, "/").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = request(Some("127.0.0.90"), proxy, "/").await;
    assert_eq!(status, 200);

    running.shutdown();
    tokio::time::timeout(Duration::from_secs(60), running.wait())
        .await
        .expect("proxy stops");
}
