//! The `karssandbox` backend against a real kube-apiserver with the KARS CRD; the test
//! plays the KARS controller: it writes the phase and namespace through `/status` and creates
//! the sandbox pod in that namespace.

mod kube_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use sandcanary_proxy::backend::kars::{KarsBackend, KarsSettings, api_resource};
use sandcanary_proxy::backend::{Backend, BackendError};
use serde_json::json;

use kube_support::*;

async fn set_status(api: &Api<DynamicObject>, name: &str, status: serde_json::Value) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .expect("patch KarsSandbox status");
}

async fn wait_exists(api: &Api<DynamicObject>, name: &str) -> DynamicObject {
    let start = Instant::now();
    loop {
        if let Some(o) = api.get_opt(name).await.unwrap() {
            return o;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{name} never created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn kars_sandboxes_wait_for_running_and_a_pod_and_fail_fast_on_failed_phases() {
    install_crds();
    let client = client().await;
    let ns = namespace(&client, "kp-kars").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());
    let backend = Arc::new(KarsBackend::new(
        client.clone(),
        KarsSettings {
            namespace: ns.clone(),
            image: "registry.example/sandbox:1".into(),
            inference_ref: "gpt".into(),
            label_key: "playwright-id".into(),
            sandbox_port: 9222,
        },
    ));

    let b = backend.clone();
    let task = tokio::spawn(async move { b.ensure("abc").await });
    let obj = wait_exists(&api, "pw-abc").await;
    let v = serde_json::to_value(&obj).unwrap();
    assert_eq!(
        v["metadata"]["labels"],
        json!({"playwright-proxy/managed": "true", "playwright-id": "abc"})
    );
    assert_eq!(
        v["spec"]["runtime"]["byo"]["image"],
        "registry.example/sandbox:1"
    );
    assert_eq!(
        v["spec"]["runtime"]["byo"]["command"],
        json!(["node", "/server.js"])
    );
    assert_eq!(v["spec"]["inferenceRef"], json!({"name": "gpt"}));

    // The controller's namespace for this sandbox, and its phases.
    let sandbox_ns = namespace(&client, "kars-pw-abc").await;
    set_status(&api, "pw-abc", json!({"phase": "Creating"})).await;
    set_status(
        &api,
        "pw-abc",
        json!({"phase": "Running", "namespace": sandbox_ns}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!task.is_finished(), "ready without a sandbox pod");

    // A pod with another component label does not count; the sandbox pod does.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &sandbox_ns);
    pod(
        &pods,
        "router",
        json!({"kars.azure.com/component": "router"}),
        Some("127.0.0.87"),
        false,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!task.is_finished(), "ready with the wrong pod");
    pod(
        &pods,
        "sandbox",
        json!({"kars.azure.com/component": "sandbox"}),
        Some("127.0.0.88"),
        false,
    )
    .await;
    let ep = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        ep.ws.to_string(),
        format!("pw-abc.{sandbox_ns}.svc.cluster.local:9222")
    );

    // Failed and Degraded are terminal.
    for (id, phase) in [("bad-1", "Failed"), ("bad-2", "Degraded")] {
        let b = backend.clone();
        let task = tokio::spawn(async move { b.ensure(id).await });
        let name = format!("pw-{id}");
        wait_exists(&api, &name).await;
        let t = Instant::now();
        set_status(&api, &name, json!({"phase": phase})).await;
        let r = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(t.elapsed() < Duration::from_millis(2500));
        assert!(
            matches!(&r, Err(BackendError::Failed(m)) if m.contains(phase)),
            "{r:?}"
        );
    }

    assert_eq!(
        backend.list().await.unwrap(),
        vec!["abc".to_string(), "bad-1".to_string(), "bad-2".to_string()]
    );
    for id in ["bad-1", "bad-2", "bad-2", "never-existed"] {
        backend.delete(id).await.unwrap();
    }
    assert_eq!(backend.list().await.unwrap(), vec!["abc".to_string()]);
}
