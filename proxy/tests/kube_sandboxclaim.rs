//! The `sandboxclaim` backend against a real kube-apiserver with the agent-sandbox CRDs. The
//! test plays the agent-sandbox controller by writing claim status through `/status`.

mod kube_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use sandcanary_proxy::backend::naming::object_name;
use sandcanary_proxy::backend::sandbox_claim::{
    SandboxClaimBackend, SandboxClaimSettings, api_resource, manifest,
};
use sandcanary_proxy::backend::{Backend, BackendError, Endpoint};
use serde_json::json;

use kube_support::*;

struct Fixture {
    claims: Api<DynamicObject>,
    backend: Arc<SandboxClaimBackend>,
    settings: SandboxClaimSettings,
}

async fn fixture(prefix: &str, label_key: &str) -> Fixture {
    install_crds();
    let client = client().await;
    let ns = namespace(&client, prefix).await;
    let settings = SandboxClaimSettings {
        namespace: ns.clone(),
        warmpool: "playwright".into(),
        label_key: label_key.into(),
        sandbox_port: 9222,
        mcp_port: Some(8931),
    };
    Fixture {
        claims: Api::namespaced_with(client.clone(), &ns, &api_resource()),
        backend: Arc::new(SandboxClaimBackend::new(client, settings.clone())),
        settings,
    }
}

fn condition(status: &str, reason: &str) -> serde_json::Value {
    json!({
        "type": "Ready", "status": status, "reason": reason, "message": format!("test says {reason}"),
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
    })
}

/// Writes the claim's status as the agent-sandbox controller would.
async fn set_status(claims: &Api<DynamicObject>, name: &str, status: serde_json::Value) {
    claims
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .expect("patch claim status");
}

async fn wait_exists(claims: &Api<DynamicObject>, name: &str) -> DynamicObject {
    let mut found = None;
    let start = Instant::now();
    while found.is_none() {
        found = claims.get_opt(name).await.unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "claim {name} never created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    found.unwrap()
}

fn ensure(f: &Fixture, id: &str) -> tokio::task::JoinHandle<Result<Endpoint, BackendError>> {
    let b = f.backend.clone();
    let id = id.to_string();
    tokio::spawn(async move { b.ensure(&id).await })
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn ensure_creates_the_exact_claim_and_waits_for_ready_with_pod_ips() {
    let f = fixture("kp-claim", "playwright-id").await;
    let task = ensure(&f, "alice");
    let claim = wait_exists(&f.claims, "pw-alice").await;

    // The claim the backend writes (`sandbox_claim::manifest`), as stored by the server.
    let v = serde_json::to_value(&claim).unwrap();
    assert_eq!(v["apiVersion"], "extensions.agents.x-k8s.io/v1beta1");
    assert_eq!(v["kind"], "SandboxClaim");
    assert_eq!(v["metadata"]["namespace"], f.settings.namespace.as_str());
    assert_eq!(
        v["metadata"]["labels"],
        json!({"playwright-proxy/managed": "true", "playwright-id": "alice"})
    );
    assert_eq!(v["spec"]["warmPoolRef"], json!({"name": "playwright"}));
    assert_eq!(
        v["spec"]["additionalPodMetadata"],
        json!({"labels": {"sandbox.users.io/playwright-id": "alice"}})
    );

    // Ready=True without pod IPs is not ready.
    set_status(
        &f.claims,
        "pw-alice",
        json!({"conditions": [condition("False", "DependenciesNotReady")]}),
    )
    .await;
    set_status(
        &f.claims,
        "pw-alice",
        json!({"conditions": [condition("True", "DependenciesReady")], "sandbox": {"name": "sb-alice", "podIPs": []}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!task.is_finished(), "ready without pod IPs");

    let t = Instant::now();
    set_status(
        &f.claims,
        "pw-alice",
        json!({"conditions": [condition("True", "DependenciesReady")], "sandbox": {"name": "sb-alice", "podIPs": ["127.0.0.77"]}}),
    )
    .await;
    let ep = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("ensure returns once ready")
        .unwrap()
        .unwrap();
    // Seen by the watch or the 500 ms poll, whichever comes first.
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(ep.ws.to_string(), "127.0.0.77:9222");
    assert_eq!(ep.http().to_string(), "127.0.0.77:8931");
    assert_eq!(
        ep.instance,
        format!("{}/sb-alice", claim.metadata.uid.as_deref().unwrap())
    );

    // An existing ready claim is used as it is (no second object, same uid).
    let again = f.backend.ensure("alice").await.unwrap();
    assert_eq!(again, ep);
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn an_existing_claim_is_adopted_and_terminal_reasons_fail_fast() {
    let f = fixture("kp-terminal", "playwright-id").await;

    // A claim created by someone else first (the create gets 409) is adopted.
    let existing: DynamicObject = serde_json::from_value(manifest(&f.settings, "bob")).unwrap();
    let created = f
        .claims
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();
    let task = ensure(&f, "bob");
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_status(
        &f.claims,
        "pw-bob",
        json!({"conditions": [condition("True", "DependenciesReady")], "sandbox": {"name": "sb-bob", "podIPs": ["127.0.0.78"]}}),
    )
    .await;
    let ep = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        ep.instance
            .starts_with(created.metadata.uid.as_deref().unwrap())
    );

    // Every terminal reason ends the wait at once, and the broken claim is removed so the next
    // request starts over.
    for (i, reason) in [
        "WarmPoolNotFound",
        "TemplateNotFound",
        "InvalidMetadata",
        "EnvVarsInjectionRejected",
        "VolumeClaimTemplatesError",
        "ClaimExpired",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("broken-{i}");
        let name = object_name(&id);
        let task = ensure(&f, &id);
        wait_exists(&f.claims, &name).await;
        let t = Instant::now();
        set_status(
            &f.claims,
            &name,
            json!({"conditions": [condition("False", reason)]}),
        )
        .await;
        let r = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("terminal reason fails fast")
            .unwrap();
        assert!(t.elapsed() < Duration::from_millis(2500));
        match r {
            Err(BackendError::Failed(m)) => assert!(m.contains(reason), "{m}"),
            other => panic!("{reason}: {other:?}"),
        }
        eventually(Duration::from_secs(10), "failed claim removed", || {
            let claims = f.claims.clone();
            let name = name.clone();
            async move { claims.get_opt(&name).await.unwrap().is_none() }
        })
        .await;
    }

    // A non-terminal False keeps waiting.
    let task = ensure(&f, "slow");
    wait_exists(&f.claims, "pw-slow").await;
    set_status(
        &f.claims,
        "pw-slow",
        json!({"conditions": [condition("False", "DependenciesNotReady")]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!task.is_finished());
    task.abort();
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn a_claim_being_deleted_is_waited_out_and_replaced() {
    let f = fixture("kp-deleting", "playwright-id").await;
    // A ready claim held by a finalizer, then deleted: it lingers with a deletionTimestamp.
    let mut m = manifest(&f.settings, "dan");
    m["metadata"]["finalizers"] = json!(["test.sandcanary/hold"]);
    let old: DynamicObject = serde_json::from_value(m).unwrap();
    let old = f.claims.create(&PostParams::default(), &old).await.unwrap();
    set_status(
        &f.claims,
        "pw-dan",
        json!({"conditions": [condition("True", "DependenciesReady")], "sandbox": {"name": "sb-old", "podIPs": ["127.0.0.79"]}}),
    )
    .await;
    f.claims
        .delete("pw-dan", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        f.claims
            .get("pw-dan")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let task = ensure(&f, "dan");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!task.is_finished(), "a deleting claim was used");

    // Release it: the backend creates a new claim, which becomes ready.
    f.claims
        .patch(
            "pw-dan",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let new_uid = {
        let start = Instant::now();
        loop {
            if let Some(c) = f.claims.get_opt("pw-dan").await.unwrap()
                && c.metadata.uid != old.metadata.uid
            {
                break c.metadata.uid.unwrap();
            }
            assert!(start.elapsed() < Duration::from_secs(15), "no new claim");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    set_status(
        &f.claims,
        "pw-dan",
        json!({"conditions": [condition("True", "DependenciesReady")], "sandbox": {"name": "sb-new", "podIPs": ["127.0.0.80"]}}),
    )
    .await;
    let ep = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ep.instance, format!("{new_uid}/sb-new"));
    assert_eq!(ep.ws.host, "127.0.0.80");
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn delete_tolerates_missing_claims_and_list_returns_managed_ids_including_hashed_names() {
    let f = fixture("kp-list", "example.com/pw").await;
    // Deleting what does not exist is success.
    f.backend.delete("nobody").await.unwrap();

    // Ids that are not valid names get a hashed name and round-trip through list; the
    // custom key labels the claim and is used verbatim on the pod.
    for id in ["plain", "Upper_Case.id"] {
        let task = ensure(&f, id);
        let name = object_name(id);
        let claim = wait_exists(&f.claims, &name).await;
        let v = serde_json::to_value(&claim).unwrap();
        assert_eq!(v["metadata"]["labels"]["example.com/pw"], id);
        assert_eq!(
            v["spec"]["additionalPodMetadata"]["labels"],
            json!({"example.com/pw": id})
        );
        set_status(
            &f.claims,
            &name,
            json!({"conditions": [condition("True", "DependenciesReady")], "sandbox": {"name": "sb", "podIPs": ["127.0.0.81"]}}),
        )
        .await;
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    assert_ne!(object_name("Upper_Case.id"), "pw-Upper_Case.id");

    // Claims without the managed label are not ours.
    let mut foreign = manifest(&f.settings, "foreign");
    foreign["metadata"]["labels"] = json!({"example.com/pw": "foreign"});
    f.claims
        .create(
            &PostParams::default(),
            &serde_json::from_value(foreign).unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(
        f.backend.list().await.unwrap(),
        vec!["Upper_Case.id".to_string(), "plain".to_string()]
    );

    f.backend.delete("Upper_Case.id").await.unwrap();
    assert!(
        f.claims
            .get_opt(&object_name("Upper_Case.id"))
            .await
            .unwrap()
            .is_none()
    );
    f.backend.delete("Upper_Case.id").await.unwrap();
    assert_eq!(f.backend.list().await.unwrap(), vec!["plain".to_string()]);
}
