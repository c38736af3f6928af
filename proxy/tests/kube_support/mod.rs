//! Helpers for the tests against the real API server that `test/kube/apiserver.sh` runs: a client from
//! KUBECONFIG, the agent-sandbox CRDs installed once, a fresh namespace per test (this API server has
//! no namespace controller, so namespaces are never deleted), and client pods as plain objects whose
//! status the test writes.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Once;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

pub const IGNORE_REASON: &str = "needs the real API server: make test-kube-proxy";

pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn kubectl() -> std::path::PathBuf {
    let bin = std::env::var("SANDCANARY_KUBE_BIN")
        .expect("SANDCANARY_KUBE_BIN is set: run under test/kube/apiserver.sh run");
    std::path::Path::new(&bin).join("kubectl")
}

static CRDS: Once = Once::new();

/// Installs deploy/crds (agent-sandbox, KARS, isola) and waits until the API serves them (once per
/// test binary).
pub fn install_crds() {
    CRDS.call_once(|| {
        let dir = repo_root().join("deploy/crds");
        let out = std::process::Command::new(kubectl())
            .args(["apply", "--server-side", "-R", "-f"])
            .arg(&dir)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = std::process::Command::new(kubectl())
            .args([
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/sandboxclaims.extensions.agents.x-k8s.io",
                "crd/sandboxes.sandbox.isola.run",
                "crd/karssandboxes.kars.azure.com",
            ])
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "CRD not established: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

pub async fn client() -> kube::Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is set: run under test/kube/apiserver.sh run"
    );
    kube::Client::try_default()
        .await
        .expect("client from KUBECONFIG")
}

/// A new namespace named after the test with a random suffix.
pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
    let name = format!("{prefix}-{:08x}", rand::random::<u32>());
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .expect("create namespace");
    name
}

/// Creates a client pod with optional labels and, if `ip` is given, status Running with that IP.
/// `node` set means deletion only marks the pod (no kubelet finishes it).
pub async fn pod(
    api: &Api<Pod>,
    name: &str,
    labels: serde_json::Value,
    ip: Option<&str>,
    node: bool,
) -> Pod {
    let mut spec = json!({"containers": [{"name": "client", "image": "client:test"}]});
    if node {
        spec["nodeName"] = json!("node-1");
    }
    let p = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": spec,
            }))
            .unwrap(),
        )
        .await
        .expect("create pod");
    if let Some(ip) = ip {
        set_pod_status(api, name, "Running", Some(ip)).await
    } else {
        p
    }
}

pub async fn set_pod_status(api: &Api<Pod>, name: &str, phase: &str, ip: Option<&str>) -> Pod {
    let mut status = json!({"phase": phase});
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .expect("patch pod status")
}

/// Deletes a pod for good (a second delete with grace 0 finishes a pod bound to a node).
pub async fn remove_pod(api: &Api<Pod>, name: &str) {
    let _ = api.delete(name, &DeleteParams::default()).await;
    let _ = api
        .delete(name, &DeleteParams::default().grace_period(0))
        .await;
}

/// Polls `f` until it returns true or `timeout` passes; panics with `what` on timeout.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
