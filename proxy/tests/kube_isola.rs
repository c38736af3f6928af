//! The `isola` backend against a real kube-apiserver with isola's Sandbox CRD; the test
//! plays the isola operator by writing status through `/status`.

mod kube_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use sandcanary_proxy::backend::isola::{IsolaBackend, IsolaSettings, api_resource, object_name};
use sandcanary_proxy::backend::{Backend, BackendError};
use serde_json::json;

use kube_support::*;

fn ready(status: &str, reason: &str, ip: Option<&str>) -> serde_json::Value {
    let mut s = json!({"conditions": [{"type": "Ready", "status": status, "reason": reason,
        "message": format!("operator says {reason}"), "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    if let Some(ip) = ip {
        s["podIP"] = json!(ip);
    }
    s
}

async fn set_status(api: &Api<DynamicObject>, name: &str, status: serde_json::Value) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .expect("patch sandbox status");
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
async fn isola_sandboxes_are_created_waited_for_failed_fast_listed_and_deleted() {
    install_crds();
    let client = client().await;
    // The sandboxes live in their own namespace, not the proxy's.
    let ns = namespace(&client, "kp-isola").await;
    let settings = IsolaSettings {
        namespace: ns.clone(),
        image: "registry.example/sandbox:1".into(),
        allowed_egress_cidrs: vec!["10.244.0.0/16".into()],
        label_key: "playwright-id".into(),
        sandbox_port: 9222,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());
    let backend = Arc::new(IsolaBackend::new(client, settings));

    // Manifest as stored, and readiness only with a pod IP.
    let b = backend.clone();
    let task = tokio::spawn(async move { b.ensure("abc").await });
    let obj = wait_exists(&api, "pw-abc").await;
    let v = serde_json::to_value(&obj).unwrap();
    assert_eq!(
        v["metadata"]["labels"],
        json!({"playwright-proxy/managed": "true", "playwright-id": "abc"})
    );
    let c = &v["spec"]["podTemplate"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["node", "/server.js"]));
    assert_eq!(c["image"], "registry.example/sandbox:1");
    assert_eq!(
        v["spec"]["network"]["allowedEgressCIDRs"],
        json!(["10.244.0.0/16"])
    );
    set_status(&api, "pw-abc", ready("True", "PodRunning", None)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!task.is_finished(), "ready without a pod IP");
    set_status(
        &api,
        "pw-abc",
        ready("True", "PodRunning", Some("127.0.0.85")),
    )
    .await;
    let ep = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ep.ws.to_string(), "127.0.0.85:9222");

    // Hashed names for ids that are not valid names, within isola's 47 characters.
    let b = backend.clone();
    let id = "Mixed_Case.ID";
    let task = tokio::spawn(async move { b.ensure(id).await });
    let name = object_name(id);
    assert_eq!(name.len(), 47);
    wait_exists(&api, &name).await;
    // Terminal reason: fails at once, with the reason.
    let t = Instant::now();
    set_status(&api, &name, ready("False", "StartupTimeoutExceeded", None)).await;
    let r = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(2500));
    assert!(
        matches!(&r, Err(BackendError::Failed(m)) if m.contains("StartupTimeoutExceeded")),
        "{r:?}"
    );

    // List returns the raw ids; delete tolerates 404.
    let b = backend.clone();
    let task = tokio::spawn(async move { b.ensure("Mixed_Case.ID").await });
    eventually(Duration::from_secs(15), "recreated sandbox", || {
        let api = api.clone();
        let name = name.clone();
        async move {
            api.get_opt(&name)
                .await
                .unwrap()
                .is_some_and(|o| o.metadata.deletion_timestamp.is_none())
        }
    })
    .await;
    set_status(&api, &name, ready("True", "PodRunning", Some("127.0.0.86"))).await;
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        backend.list().await.unwrap(),
        vec!["Mixed_Case.ID".to_string(), "abc".to_string()]
    );
    backend.delete("Mixed_Case.ID").await.unwrap();
    backend.delete("Mixed_Case.ID").await.unwrap();
    backend.delete("never-existed").await.unwrap();
    assert_eq!(backend.list().await.unwrap(), vec!["abc".to_string()]);
}
