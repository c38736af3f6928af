//! The RBAC documented in deploy/rbac/sandboxclaim.yaml is enough, and no more than needed: the pod
//! identity and the sandboxclaim backend run with a real ServiceAccount token bound by that file.

mod kube_support;

use std::time::Duration;

use http::HeaderMap;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use sandcanary_proxy::backend::Backend;
use sandcanary_proxy::backend::sandbox_claim::{
    SandboxClaimBackend, SandboxClaimSettings, api_resource,
};
use sandcanary_proxy::identity::{Identity, PodIdentity, Verdict};
use sandcanary_proxy::metrics::Metrics;
use sandcanary_proxy::replicas::activity::{Deleted, Written};
use sandcanary_proxy::replicas::{ElectionConfig, Leadership};
use serde_json::json;

use kube_support::*;

fn kubectl(args: &[&str]) -> String {
    let bin = std::env::var("SANDCANARY_KUBE_BIN").expect("SANDCANARY_KUBE_BIN");
    let out = std::process::Command::new(std::path::Path::new(&bin).join("kubectl"))
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A client that authenticates with `token` (the token goes into a private temp file only).
async fn client_with_token(token: &str) -> (kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = std::env::var("SANDCANARY_KUBE_SERVER").unwrap();
    let ca = std::env::var("SANDCANARY_KUBE_CA").unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context:\n    cluster: c\n    user: sa\ncurrent-context: sa\n"
        ),
    )
    .unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    (kube::Client::try_from(cfg).unwrap(), dir)
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn the_documented_role_is_enough_for_pod_identity_and_sandbox_claims() {
    install_crds();
    let admin = client().await;
    // The manifest names namespace `playwright`; this binary has the API server to itself.
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    ns_api
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "playwright"}})).unwrap(),
        )
        .await
        .unwrap();
    let rbac = repo_root().join("deploy/rbac/sandboxclaim.yaml");
    kubectl(&["apply", "-f", rbac.to_str().unwrap()]);
    let token = kubectl(&["create", "token", "sandcanary-proxy", "-n", "playwright"]);
    let (sa, _dir) = client_with_token(&token).await;

    // Pod identity under the ServiceAccount: list + watch (sync) and the fallback LIST.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "playwright");
    pod(
        &pods,
        "alice",
        json!({"playwright-id": "alice"}),
        Some("127.0.0.95"),
        false,
    )
    .await;
    let ident = PodIdentity::start(
        sa.clone(),
        "playwright",
        "playwright-id",
        Duration::from_secs(1),
    );
    eventually(
        Duration::from_secs(30),
        "sync under the ServiceAccount",
        || {
            let r = ident.ready();
            async move { r }
        },
    )
    .await;
    assert_eq!(
        ident
            .identify("127.0.0.95".parse().unwrap(), &HeaderMap::new())
            .await,
        Verdict::Known {
            id: "alice".into(),
            strip: vec![],
            tenant: None
        }
    );
    let before = ident.fallback_lists();
    assert_eq!(
        ident
            .identify("127.0.0.96".parse().unwrap(), &HeaderMap::new())
            .await,
        Verdict::Unknown
    );
    assert!(ident.fallback_lists() > before);

    // The backend under the ServiceAccount: create, watch/get, list, delete.
    let backend = SandboxClaimBackend::new(
        sa.clone(),
        SandboxClaimSettings {
            namespace: "playwright".into(),
            warmpool: "playwright".into(),
            label_key: "playwright-id".into(),
            sandbox_port: 9222,
            mcp_port: None,
        },
    );
    let claims: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), "playwright", &api_resource());
    let controller = {
        let claims = claims.clone();
        tokio::spawn(async move {
            loop {
                if claims.get_opt("pw-alice").await.unwrap().is_some() {
                    claims
                        .patch_status(
                            "pw-alice",
                            &PatchParams::default(),
                            &Patch::Merge(json!({"status": {
                                "conditions": [{"type": "Ready", "status": "True", "reason": "DependenciesReady",
                                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                                "sandbox": {"name": "sb", "podIPs": ["127.0.0.97"]}}})),
                        )
                        .await
                        .unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let ep = tokio::time::timeout(Duration::from_secs(15), backend.ensure("alice"))
        .await
        .unwrap()
        .unwrap();
    controller.await.unwrap();
    assert_eq!(ep.ws.to_string(), "127.0.0.97:9222");
    assert_eq!(backend.list().await.unwrap(), vec!["alice".to_string()]);

    // Several replicas under the same Role: the leader Lease, the activity annotation and the
    // leader's conditional delete.
    let stop = tokio_util::sync::CancellationToken::new();
    let (mut leadership, election) = Leadership::elect(
        sa.clone(),
        &ElectionConfig {
            lease_name: "sandcanary-proxy".into(),
            namespace: "playwright".into(),
            identity: "rbac-replica".into(),
            lease_duration: Duration::from_secs(4),
            renew_before: Duration::from_secs(1),
        },
        Metrics::new(),
        stop.clone(),
    )
    .await
    .expect("the Role lets the proxy create the Lease");
    tokio::time::timeout(Duration::from_secs(15), leadership.wait_for(true))
        .await
        .expect("leader under the Role");
    let store = backend
        .activity_store()
        .expect("sandboxclaim shares activity");
    assert_eq!(
        store
            .record("alice", k8s_openapi::jiff::Timestamp::now(), "rbac-replica")
            .await
            .unwrap(),
        Written::Updated
    );
    let stale = store.list().await.unwrap();
    assert_eq!(stale.len(), 1);
    // Activity recorded after the leader read the records saves the sandbox; an older time does not
    // move the record back.
    let later = k8s_openapi::jiff::Timestamp::now();
    assert_eq!(
        store.record("alice", later, "other").await.unwrap(),
        Written::Updated
    );
    assert_eq!(
        store
            .record(
                "alice",
                later - k8s_openapi::jiff::SignedDuration::from_secs(5),
                "late"
            )
            .await
            .unwrap(),
        Written::AlreadyNewer
    );
    assert_eq!(
        store.delete_if_unchanged(&stale[0]).await.unwrap(),
        Deleted::Changed
    );
    let fresh = store.list().await.unwrap();
    assert!(
        fresh[0].last_active.unwrap()
            >= later.round(k8s_openapi::jiff::Unit::Millisecond).unwrap()
                - k8s_openapi::jiff::SignedDuration::from_millis(1)
    );
    assert_eq!(
        store.delete_if_unchanged(&fresh[0]).await.unwrap(),
        Deleted::Deleted
    );
    assert_eq!(
        store.record("alice", later, "gone").await.unwrap(),
        Written::Missing
    );
    stop.cancel();
    election.await.unwrap();
    assert!(!leadership.is_leader());

    backend.delete("alice").await.unwrap();
    assert!(backend.list().await.unwrap().is_empty());

    // And no more: the token cannot read pods elsewhere.
    let other = namespace(&admin, "kp-rbac-other").await;
    let elsewhere: Api<Pod> = Api::namespaced(sa, &other);
    let err = elsewhere.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );
}
